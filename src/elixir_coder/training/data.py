"""Data pipeline (spec 4.1): memory-mapped reader, epoch-shuffled (and rank-sharded) batch
sampler, vectorised collation with optional sequence packing, a bounded prefetcher, and the
LightningDataModule that wires them for train and val.

Why not ``torch.utils.data.DataLoader`` + a per-sample ``Dataset``: on a pre-tokenized corpus the
per-sample Python objects and ``pad_sequence`` are the bottleneck (about 10M real tokens/s on a
laptop core, see ``bench/data_pipeline.py``). Here a batch is built by a handful of numpy gathers
straight from the memory map, so one thread keeps a GPU fed, and the whole loader state is two
integers (epoch, batches served), which is what exact mid-epoch resume needs.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
from lightning.pytorch.accelerators import CPUAccelerator
import numpy as np
import torch

from elixir_coder.corpus import tokenized
from elixir_coder.corpus.prepare import ensure_prepared
from elixir_coder.corpus.recipe import recipe
from elixir_coder.corpus.tokenizer import check_same_tokenizer
from elixir_coder.errors import DataError
from elixir_coder.labels import GENERATION_TASKS, QUALITY_LABELS, SECURITY_LABELS, TASKS

IGNORE_INDEX = -100


@dataclass
class Sample:
    """One training sample as the spec's reader returns it: ids, mask, labels and task metadata."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    labels: np.ndarray  # next-token targets aligned with input_ids; IGNORE_INDEX on prompt and last token
    task: str
    quality: tuple[str, ...]
    security: tuple[str, ...]


def windows(lengths: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(sample, start) of every window: a sample longer than ``max_len`` is read as consecutive
    windows of ``max_len`` tokens that overlap by one, so each of its tokens is a next-token
    target exactly once; other samples are one window from their start."""
    stride = max(max_len - 1, 1)
    n = 1 + np.ceil(np.maximum(lengths - max_len, 0) / stride).astype(np.int64)
    sample = np.repeat(np.arange(len(lengths)), n)
    k = np.arange(len(sample)) - np.repeat(np.cumsum(n) - n, n)
    return sample, k * stride


class TokenizedDataset:
    """A validated, memory-mapped split (all its shards). Indexing and iteration stream samples lazily.

    With ``max_len``, a sample longer than that is served as several windows (see
    :func:`windows`), so an epoch trains on every stored token whatever ``data.max_len`` is. A
    window of a classification text carries the whole text's labels (noisy where a rule fires in
    one place only); :attr:`coverage` counts windows so the report can say how many.
    """

    def __init__(self, data_dir: str | Path, split: str, tasks: Sequence[str] | None = None, max_len: int | None = None):
        self.data_dir = Path(data_dir)
        self.split = split
        self.meta = tokenized.read_meta(self.data_dir)
        self.vocab_size = int(self.meta["vocab_size"])
        arrays = tokenized.open_split(self.data_dir, split, self.vocab_size, self.meta)
        self.shards = [np.asarray(t) for t in arrays.tokens]  # plain ndarrays over the maps: cheaper fancy indexing
        self.tokens = self.shards[0] if len(self.shards) == 1 else None
        index, shard = arrays.index, arrays.shard
        if tasks is not None:
            unknown = [t for t in tasks if t not in TASKS]
            if unknown:
                raise DataError(f"unknown task {unknown[0]!r} in task.tasks; tasks are: {', '.join(TASKS)}")
            keep = np.isin(index["task"], [TASKS.index(t) for t in tasks])
            index, shard = index[keep], shard[keep]
            if not len(index):
                raise DataError(f"{self.data_dir}: the {split!r} split has no samples of the active tasks {list(tasks)}")
        lengths = index["length"].astype(np.int64)
        prompt_lens = index["prompt_len"].astype(np.int64)
        if max_len is not None:
            sample, start = windows(lengths, max_len)
        else:
            sample, start = np.arange(len(index)), np.zeros(len(index), np.int64)
        self.index, self.sample = index, sample
        # Plain contiguous arrays, one entry per window: fancy indexing into these is what the
        # collator does per batch.
        self.offsets = index["offset"].astype(np.int64)[sample] + start
        self.lengths = np.minimum(lengths[sample] - start, max_len) if max_len is not None else lengths
        self.prompt_lens = np.clip(prompt_lens[sample] - start, 0, None)
        self.task_ids = index["task"].astype(np.int64)[sample]
        self.shard_ids = shard.astype(np.int64)[sample]
        self.quality_bits = index["quality"].astype(np.uint64)[sample]
        self.security_bits = index["security"].astype(np.uint64)[sample]
        stored = int(lengths.sum())
        self.coverage = {
            "stored_tokens": stored, "served_tokens": int(self.lengths.sum() - (start > 0).sum()),
            "windows": int(len(sample) - len(index)),
            "windowed_classification_samples": int(
                (~np.isin(index["task"], [TASKS.index(t) for t in GENERATION_TASKS]) & (lengths > (max_len or np.inf))).sum()),
        }
        self.pad_id = int(self.meta["special_tokens"]["<pad>"])
        self.mask_id = int(self.meta["special_tokens"]["<mask>"])
        self.n_special = len(self.meta["special_tokens"])  # special tokens take the first ids

    def take(self, starts: np.ndarray, lens: np.ndarray, shards: np.ndarray) -> np.ndarray:
        """Tokens of several (start, length) runs, concatenated, across shards."""
        total = int(lens.sum())
        flat = np.repeat(starts - (np.cumsum(lens) - lens), lens) + _counter(total)
        if self.tokens is not None:
            return self.tokens[flat]
        out = np.empty(total, dtype=self.shards[0].dtype)
        which = np.repeat(shards, lens)
        for k in np.unique(shards).tolist():
            hit = which == k
            out[hit] = self.shards[k][flat[hit]]
        return out

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, i: int) -> Sample:
        off, n, p = int(self.offsets[i]), int(self.lengths[i]), int(self.prompt_lens[i])
        ids = np.asarray(self.shards[int(self.shard_ids[i])][off : off + n], dtype=np.int64)
        labels = np.full(n, IGNORE_INDEX, dtype=np.int64)
        start = max(p - 1, 0)
        labels[start : n - 1] = ids[start + 1 : n]
        q, s = int(self.quality_bits[i]), int(self.security_bits[i])
        return Sample(
            input_ids=ids,
            attention_mask=np.ones(n, dtype=np.int64),
            labels=labels,
            task=TASKS[int(self.task_ids[i])],
            quality=tuple(name for k, name in enumerate(QUALITY_LABELS) if q >> k & 1),
            security=tuple(name for k, name in enumerate(SECURITY_LABELS) if s >> k & 1),
        )

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]


def read_dataset(data_dir: str | Path, split: str, tasks: Sequence[str] | None = None, max_len: int | None = None) -> TokenizedDataset:
    """Spec 4.1.1: open the shards of ``split`` (validated, memory-mapped); iterate it to stream samples."""
    return TokenizedDataset(data_dir, split, tasks, max_len)


def pack_rows(lengths: np.ndarray, order: np.ndarray, max_len: int, open_rows: int = 64) -> list[list[int]]:
    """First-fit packing of samples (in the given shuffled order) into rows of ``max_len`` tokens.

    Keeps at most ``open_rows`` partly filled rows, so the cost stays linear and a row is never
    far in the epoch from where its samples were drawn; on code-like length distributions this
    wastes 1-3% of a row on padding, against ~50% for one sample per row.
    """
    rows: list[list[int]] = []
    free: list[int] = []  # free space of each open row
    slot: list[int] = []  # index into rows of each open row
    for i in order.tolist():
        n = min(int(lengths[i]), max_len)
        for k, space in enumerate(free):
            if space >= n:
                rows[slot[k]].append(i)
                free[k] = space - n
                if free[k] == 0:
                    del free[k], slot[k]
                break
        else:
            rows.append([i])
            if n < max_len:
                free.append(max_len - n)
                slot.append(len(rows) - 1)
                if len(free) > open_rows:  # retire the fullest row
                    k = int(np.argmin(free))
                    del free[k], slot[k]
    return rows


class BatchSampler:
    """Spec 4.1.2: a new shuffle each epoch from ``seed + epoch``, ``drop_last``, and rank sharding.

    Every rank computes the same global plan and takes every ``world_size``-th batch, so ranks see
    disjoint samples and the same number of batches. Yields lists of rows, each row a list of
    sample indices (one per row unless packing).
    """

    def __init__(
        self, lengths: np.ndarray, batch_size: int, *, shuffle: bool = True, drop_last: bool = True,
        seed: int = 0, rank: int = 0, world_size: int = 1, packing: bool = False, max_len: int = 512,
    ):
        if batch_size < 1:
            raise DataError(f"data.batch_size={batch_size}: must be at least 1")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in world of size {world_size}")
        self.lengths = np.asarray(lengths)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.packing, self.max_len = packing, max_len
        self.epoch = 0
        self.candidates = np.arange(len(self.lengths))  # the samples that may be drawn (active tasks)
        self._plan_key: tuple | None = None
        self._plan: list[list[list[int]]] = []

    @classmethod
    def new(cls, dataset: TokenizedDataset, batch_size: int, **opts) -> BatchSampler:
        return cls(dataset.lengths, batch_size, **opts)

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at every epoch start, through ``DataLoader.sampler``."""
        self.epoch = epoch

    def set_candidates(self, indices: np.ndarray) -> None:
        """Draw only these samples from now on (the curriculum's active tasks)."""
        self.candidates = np.asarray(indices, dtype=np.int64)

    def _global_batches(self) -> list[list[list[int]]]:
        key = (self.epoch, len(self.candidates), hash(self.candidates.tobytes()))
        if self._plan_key == key:
            return self._plan
        n = len(self.candidates)
        order = self.candidates[np.random.default_rng([self.seed, self.epoch]).permutation(n)] if self.shuffle else self.candidates
        rows = pack_rows(self.lengths, order, self.max_len) if self.packing else [[i] for i in order.tolist()]
        per_step = self.batch_size * self.world_size
        full = len(rows) // per_step * per_step
        batches = [rows[k : k + self.batch_size] for k in range(0, full, self.batch_size)]
        rest = rows[full:]
        if rest and not self.drop_last:
            # Spread the remainder so every rank gets one more, possibly smaller, batch.
            parts = [p for p in np.array_split(np.arange(len(rest)), self.world_size)]
            if min(len(p) for p in parts) > 0:
                batches += [[rest[j] for j in p.tolist()] for p in parts]
        self._plan, self._plan_key = batches, key
        return batches

    def __iter__(self) -> Iterator[list[list[int]]]:
        return iter(self._global_batches()[self.rank :: self.world_size])

    def __len__(self) -> int:
        return len(self._global_batches()) // self.world_size


_COUNTER = np.arange(0, dtype=np.int64)


def _counter(n: int) -> np.ndarray:
    """0..n-1, kept between batches (slicing a view is free, a fresh arange is not)."""
    global _COUNTER
    if len(_COUNTER) < n:
        _COUNTER = np.arange(max(n, 2 * len(_COUNTER)), dtype=np.int64)
    return _COUNTER[:n]


def gather_batch(
    dataset: TokenizedDataset, rows: Sequence[Sequence[int]], max_len: int, mlm_rate: float = 0.0,
    rng: np.random.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """The host half of collation: token ids laid out in rows, plus a per-sample table.

    Rows hold one sample each, or several back to back when packing; the width is the longest
    row, capped at ``max_len``. Labels, masks, positions and segment ids are all functions of
    this table, so they are built by :func:`expand_batch` after the copy to the device (the
    cu_seqlens idea of variable-length attention kernels): the host does one gather per batch
    and ships a quarter of the bytes.

    With ``mlm_rate`` > 0 (the curriculum's masked-language-modelling phase) that share of the
    real, non-special tokens is replaced by ``<mask>`` and ``mlm_labels`` holds the originals
    there (-100 elsewhere): the loss is on masked positions only, with bidirectional attention.
    """
    counts = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    idx = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64, count=int(counts.sum()))
    n_rows = len(rows)
    lens = np.minimum(dataset.lengths[idx], max_len)
    first = np.cumsum(counts) - counts  # position in idx of each row's first sample
    starts = np.cumsum(lens) - lens  # start of each sample among the batch's tokens, in flat order
    row_start = np.repeat(starts[first], counts)
    row_len = np.add.reduceat(lens, first)
    width = int(row_len.max())
    tokens = dataset.take(dataset.offsets[idx], lens, dataset.shard_ids[idx])
    # Rows are contiguous runs of the flat order, so a row-major boolean mask places them.
    ids = np.full((n_rows, width), dataset.pad_id, dtype=np.int32)
    ids[_counter(width)[None, :] < row_len[:, None]] = tokens
    extra = {}
    if mlm_rate > 0:
        rng = rng if rng is not None else np.random.default_rng()
        masked = (ids >= dataset.n_special) & (rng.random(ids.shape) < mlm_rate)
        extra["mlm_labels"] = torch.from_numpy(np.where(masked, ids, IGNORE_INDEX).astype(np.int32))
        ids[masked] = dataset.mask_id

    def bits(arr: np.ndarray, n_labels: int) -> torch.Tensor:
        unpacked = np.unpackbits(arr[idx].view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")
        return torch.from_numpy(unpacked[:, :n_labels].astype(np.float32))

    return {
        "input_ids": torch.from_numpy(ids),
        "index": torch.from_numpy(idx),  # which samples of the split: for debugging and exactly-once checks
        "sample_row": torch.from_numpy(np.repeat(np.arange(n_rows), counts)),
        "sample_start": torch.from_numpy(starts - row_start),
        "sample_len": torch.from_numpy(lens),
        "sample_prompt_len": torch.from_numpy(dataset.prompt_lens[idx]),
        "task": torch.from_numpy(dataset.task_ids[idx]),
        "quality": bits(dataset.quality_bits, len(QUALITY_LABELS)),
        "security": bits(dataset.security_bits, len(SECURITY_LABELS)),
        **extra,
    }


def expand_batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The device half of collation: per-token tensors from the per-sample table.

    Adds ``attention_mask`` (1 real / 0 pad), ``segment_ids`` (1..k for the k samples of a row,
    0 on padding), ``position_ids`` (restarting at 0 for each sample) and ``labels`` (the next
    token, ``-100`` on padding, on the prompt and on each sample's last token, so packed samples
    never predict across a boundary), ``sample_index`` (each token's row in the sample table, -1 on
    padding) and ``segment`` (each sample's segment id). Only
    elementwise ops on the (rows, width) grid: no host sync, cheap on any accelerator.
    """
    if "labels" in batch:
        return batch
    ids = batch["input_ids"]
    n_rows, width = ids.shape
    row, start, length = batch["sample_row"], batch["sample_start"], batch["sample_len"]
    n = row.numel()
    # Number each sample within its row: samples of a row are consecutive in the table.
    first_of_row = torch.full((n_rows,), n, dtype=torch.long, device=ids.device).scatter_reduce(
        0, row, torch.arange(n, device=ids.device), reduce="amin"
    )
    segment = torch.arange(n, device=ids.device) - first_of_row[row] + 1
    marks = torch.zeros(n_rows, width + 1, dtype=torch.long, device=ids.device)
    marks.index_put_((row, start), torch.ones_like(row), accumulate=True)
    row_len = torch.zeros(n_rows, dtype=torch.long, device=ids.device).scatter_reduce(0, row, start + length, reduce="amax")
    col = torch.arange(width, device=ids.device)
    real = col[None, :] < row_len[:, None]
    seg = marks[:, :width].cumsum(1) * real
    sample = (first_of_row[:, None] + seg - 1).clamp(min=0)  # table index of the token's sample
    pos = (col[None, :] - start[sample]) * real
    trained = real & (pos >= batch["sample_prompt_len"][sample] - 1) & (pos < length[sample] - 1)
    if "mlm_labels" in batch:  # masked LM: predict the original token at masked positions
        labels = batch["mlm_labels"]
    else:
        labels = torch.full_like(ids, IGNORE_INDEX)
        labels[:, :-1] = torch.where(trained[:, :-1], ids[:, 1:], IGNORE_INDEX)
    return {
        **batch, "attention_mask": real.to(ids.dtype), "segment_ids": seg.to(ids.dtype),
        "position_ids": pos.to(ids.dtype), "labels": labels, "segment": segment,
        "sample_index": torch.where(real, sample, -1),
    }


def collate(dataset: TokenizedDataset, rows: Sequence[Sequence[int]], max_len: int) -> dict[str, torch.Tensor]:
    """Spec 4.1.3: stack the batch's samples into padded tensors with masks and labels.

    ``rows`` lists sample indices per row (one per row, or several when packing). This is
    :func:`gather_batch` followed by :func:`expand_batch` on the host; the DataLoader ships the
    gathered form and the LightningModule expands it on the device.
    """
    return expand_batch(gather_batch(dataset, rows, max_len))


_DONE = object()


def prefetch_stream(iterable, size: int = 2) -> Iterator:
    """Spec 4.1.4: produce items on a background thread into a queue of ``size``.

    The producer blocks when the queue is full (backpressure), errors are re-raised in the
    consumer, and closing the generator stops the producer.
    """
    if size <= 0:
        yield from iterable
        return
    q: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in iterable:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as exc:  # handed to the consumer
            q.put(exc)

    thread = threading.Thread(target=produce, name="elixir-coder-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


class DataLoader:
    """Spec 4.1.5: sampler + collate + prefetch over one split.

    Iterating gives one epoch (Lightning sets the epoch through ``sampler.set_epoch``);
    ``stream()`` is the spec's endless stream across epochs. ``state_dict``/``load_state_dict``
    record the epoch and how many batches were served, so a resumed run continues mid-epoch.
    """

    def __init__(self, dataset: TokenizedDataset, batch_sampler: BatchSampler, max_len: int, prefetch: int = 2):
        self.dataset, self.batch_sampler = dataset, batch_sampler
        self.max_len, self.prefetch = max_len, prefetch
        # Batches of the current epoch already used. Counted when a batch is handed out, unless
        # a consumer that reads ahead (Lightning fetches one batch early) counts them itself.
        self.position = 0
        self.count_on_yield = True
        self.mlm_rate = 0.0  # > 0 while the curriculum trains with masked language modelling
        self._resume: tuple[int, int] | None = None  # (epoch, position) to continue from

    @classmethod
    def new(
        cls, data_dir: str | Path, split: str = "train", *, batch_size: int = 32, shuffle: bool = True,
        prefetch: int = 2, drop_last: bool = True, packing: bool = False, max_len: int = 512, seed: int = 0,
        rank: int = 0, world_size: int = 1, tasks: Sequence[str] | None = None,
    ) -> DataLoader:
        dataset = read_dataset(data_dir, split, tasks, max_len)
        sampler = BatchSampler.new(
            dataset, batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed, rank=rank,
            world_size=world_size, packing=packing, max_len=max_len,
        )
        return cls(dataset, sampler, max_len, prefetch)

    @property
    def sampler(self) -> BatchSampler:
        """Lightning calls ``dataloader.sampler.set_epoch(epoch)`` at every epoch start."""
        return self.batch_sampler

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        # Kept until the epoch changes: Lightning may create the iterator more than once.
        resume = self._resume
        skip = resume[1] if resume is not None and resume[0] == self.batch_sampler.epoch else 0
        if resume is not None and resume[0] != self.batch_sampler.epoch:
            self._resume = None
        self.position = skip
        plan = list(self.batch_sampler)[skip:]
        epoch, seed = self.batch_sampler.epoch, self.batch_sampler.seed
        mlm = self.mlm_rate
        batches = (  # a generator per batch only when masking: creating one costs as much as a gather
            gather_batch(self.dataset, rows, self.max_len, mlm, np.random.default_rng([seed, epoch, skip + k]) if mlm else None)
            for k, rows in enumerate(plan)
        )
        for batch in prefetch_stream(batches, self.prefetch):
            if self.count_on_yield:
                self.position += 1
            yield batch

    def stream(self) -> Iterator[dict[str, torch.Tensor]]:
        while True:
            yield from self
            self.batch_sampler.set_epoch(self.batch_sampler.epoch + 1)

    def state_dict(self) -> dict:
        return {"epoch": self.batch_sampler.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``position`` in ``epoch`` at the next iteration (exact mid-epoch resume)."""
        self.batch_sampler.set_epoch(int(state["epoch"]))
        self._resume = (int(state["epoch"]), int(state["position"]))


class ElixirDataModule(L.LightningDataModule):
    """Prepares the corpus on first use and serves train/val DataLoaders over the active tasks."""

    def __init__(
        self, data_dir: str = "data/tokenized", jsonl=None, source_dir=None,
        vocab_size: int = 8192, val_fraction: float = 0.1, test_fraction: float = 0.0, demo_modules: int = 320,
        max_sample_tokens: int = 2048, overwrite: bool = False, batch_size: int = 32, val_batch_size: int | None = None,
        max_len: int = 512, packing: bool = False, shuffle: bool = True, drop_last: bool = True, prefetch: int = 2,
        seed: int = 0, tasks: Sequence[str] | None = None, mlm_rate: float = 0.15, prepare: bool = True,
        contrastive: dict | None = None, licenses=None, dedup: dict | None = None, filters: dict | None = None,
        labeler: str = "detectors", split_by: str = "auto", min_projects: int = 20, tokenizer_sample_mb: float = 4.0,
        shard_tokens: int = 1 << 28, workers: int | None = None, mining: dict | None = None, tokenizer: str | None = None,
    ):
        super().__init__()
        self.data_dir = Path(data_dir)
        self.recipe = recipe(
            jsonl=jsonl, source_dir=source_dir, vocab_size=vocab_size, val_fraction=val_fraction,
            test_fraction=test_fraction, seed=seed, demo_modules=demo_modules, max_sample_tokens=max_sample_tokens,
            licenses=licenses, dedup=dedup, filters=filters, labeler=labeler, split_by=split_by,
            min_projects=min_projects, tokenizer_sample_mb=tokenizer_sample_mb, shard_tokens=shard_tokens, mining=mining,
            tokenizer=tokenizer, check_paths=prepare,
        )
        self.workers = workers
        self.overwrite, self.prepare = overwrite, prepare
        self.batch_size, self.val_batch_size = batch_size, val_batch_size or batch_size
        self.max_len, self.packing, self.shuffle, self.drop_last = max_len, packing, shuffle, drop_last
        self.prefetch, self.seed, self.mlm_rate = prefetch, seed, mlm_rate
        self.tasks = list(tasks) if tasks is not None else None
        self.meta: dict | None = None
        # Contrastive pairs (use_contrastive=true): paths, batch shape, generation limits.
        self.contrastive = dict(contrastive) if contrastive and contrastive.get("enabled") else None
        self._pairs: object | None = None
        self._loaders: dict[str, DataLoader] = {}
        self._train_state: dict | None = None  # a resumed run's data position, applied to the loader

    def prepare_data(self) -> None:
        if (self.data_dir / "meta.json").is_file() and not self.overwrite:
            prepared = tokenized.read_meta(self.data_dir).get("recipe", {}).get("tokenizer")
            check_same_tokenizer(self.data_dir, prepared, self.recipe.get("tokenizer"))
        if not self.prepare:  # a dataset prepared elsewhere (shared, read-only): use it as it is
            self.meta = tokenized.read_meta(self.data_dir)
            return
        self.meta = ensure_prepared(self.data_dir, self.recipe, overwrite=self.overwrite, workers=self.workers)
        if self.contrastive is not None:
            self.prepare_pairs(overwrite=self.overwrite)
        self.overwrite = False  # prepared once per run, not again at every trainer stage

    def train_records(self) -> list[dict]:
        """The demo/JSONL records of the training split (what contrastive anchors are drawn from)."""
        from elixir_coder.corpus.prepare import load_records

        return [r for r in load_records(self.recipe) if r["_split"] == "train"]

    def prepare_pairs(self, overwrite: bool = False) -> None:
        from elixir_coder.corpus.pairs import prepare_pairs

        c = self.contrastive
        if overwrite or not (Path(c["pairs_path"]).is_file() and Path(c["security_path"]).is_file()):
            prepare_pairs(self.train_records(), c["pairs_path"], c["security_path"], self.seed, c["variants"], c["max_anchors"],
                          c.get("judge", "auto"), c.get("credo"), c.get("sobelow"), c.get("min_pairs", 0), c.get("report", False),
                          max_variants=c["max_variants"])

    def pairs_loader(self):
        from tokenizers import Tokenizer

        from elixir_coder.training.contrastive import PairLoader, batch_sampler, read_pairs

        if self._pairs is None:
            c, meta = self.contrastive, self.meta or tokenized.read_meta(self.data_dir)
            pairs = read_pairs(c["pairs_path"]) + read_pairs(c["security_path"])
            special = meta["special_tokens"]
            self._pairs = PairLoader(
                batch_sampler(pairs, c["anchors_per_batch"], c["negatives_per_anchor"], self.seed),
                Tokenizer.from_file(str(self.data_dir / meta["tokenizer"])), special["<bos>"], special["<task:quality>"],
                special["<eos>"], special["<pad>"], c.get("max_len") or self.max_len,
            )
        return self._pairs

    @property
    def vocab_size(self) -> int:
        if self.meta is None:
            self.meta = tokenized.read_meta(self.data_dir)
        return int(self.meta["vocab_size"])

    def _overlaps_device(self) -> bool:
        """Prefetch on a thread only when training on an accelerator: there it overlaps batch
        building with device compute. On a CPU-only run the thread would compete with the
        training step for the same cores and the GIL, so batches are built inline."""
        trainer = self.trainer
        return trainer is None or not isinstance(trainer.accelerator, CPUAccelerator)

    def _rank_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def loader(self, split: str) -> DataLoader:
        """Built once per split so the sampler state (epoch, position) lives as long as the run."""
        if split not in self._loaders:
            rank, world = self._rank_world()
            train = split == "train"
            self._loaders[split] = DataLoader.new(
                self.data_dir, split, batch_size=self.batch_size if train else self.val_batch_size,
                shuffle=self.shuffle and train, prefetch=self.prefetch if self._overlaps_device() else 0, drop_last=self.drop_last and train,
                packing=self.packing, max_len=self.max_len, seed=self.seed, rank=rank, world_size=world,
                tasks=self.tasks,
            )
            # Lightning fetches one batch ahead; the position advances when a batch is trained on.
            self._loaders[split].count_on_yield = not train
        if split == "train" and self._train_state is not None:
            self._loaders[split].load_state_dict(self._train_state)
            self._train_state = None
        return self._loaders[split]

    def set_active(self, tasks: Sequence[str], objective: str = "clm") -> None:
        """Train only on samples of ``tasks`` (no compute on inactive tasks), with ``objective``."""
        loader = self.loader("train")
        ids = [TASKS.index(t) for t in tasks]
        loader.batch_sampler.set_candidates(np.flatnonzero(np.isin(loader.dataset.task_ids, ids)))
        loader.mlm_rate = self.mlm_rate if objective == "mlm" else 0.0

    def planned_batches(self, tasks_of_epoch, epochs: int) -> int:
        """Training batches over ``epochs`` epochs when epoch e (1-based) trains ``tasks_of_epoch(e)``:
        what the LR schedule spans when a curriculum changes the epoch length."""
        loader = self.loader("train")
        sampler = loader.batch_sampler
        saved = (sampler.candidates, sampler.epoch)
        total = 0
        for e in range(1, epochs + 1):
            ids = [TASKS.index(t) for t in tasks_of_epoch(e)]
            sampler.set_candidates(np.flatnonzero(np.isin(loader.dataset.task_ids, ids)))
            sampler.set_epoch(e - 1)
            total += len(sampler)
        sampler.set_candidates(saved[0])
        sampler.set_epoch(saved[1])
        return total

    def state_dict(self) -> dict:
        """Saved by Lightning in every checkpoint: the training loader's epoch and position.

        Restored through the DataModule rather than only through the loader's own
        ``state_dict``: Lightning sets up the train loader early (to count the stepping batches
        for the LR schedule) and then skips loading loader states on resume.
        """
        return {"train": self._loaders["train"].state_dict()} if "train" in self._loaders else {}

    def load_state_dict(self, state: dict) -> None:
        if "train" in state:
            self._train_state = state["train"]
            if self.contrastive is not None:
                self.pairs_loader().skip_once = int(state["train"]["position"])
            if "train" in self._loaders:
                self.loader("train")

    def on_before_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        if "main" in batch:  # main stream + contrastive pairs
            return {**batch, "main": self.on_before_batch_transfer(batch["main"], dataloader_idx)}
        # Real tokens counted on the host, before the copy: throughput logging needs no device sync.
        if self.trainer is not None and self.trainer.training and "train" in self._loaders:
            self._loaders["train"].position += 1
        batch["n_tokens"] = int(batch["sample_len"].sum())
        batch["tasks_present"] = torch.unique(batch["task"]).tolist()  # known on the host: no device sync
        return batch

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        if "main" in batch:
            return {**batch, "main": expand_batch(batch["main"])}
        return expand_batch(batch)

    def train_dataloader(self):
        if self.contrastive is not None:  # Lightning combines these (max_size_cycle): pairs cycle
            return {"main": self.loader("train"), "pairs": self.pairs_loader()}
        return self.loader("train")

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        """The held-out test split (``data.test_fraction``), served like val: in order, every sample."""
        if "test" not in (self.meta or tokenized.read_meta(self.data_dir))["splits"]:
            raise DataError(f"{self.data_dir} has no test split; prepare it with data.test_fraction > 0 "
                            "(data.overwrite=true re-prepares an existing folder)")
        return self.loader("test")
