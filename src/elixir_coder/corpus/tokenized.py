"""The tokenized dataset on disk: shards ``{split}-NNNNN.bin`` + ``.idx``, and ``meta.json``.

A split is one or more shards (``meta.json`` lists them in order); the loader reads them as one
dataset, so preparation can write them in parallel, on one machine or many. Each ``.bin`` holds
token ids as one flat little-endian array after a fixed header, so it can be memory-mapped and
never loaded whole. Each ``.idx`` holds one fixed-size record per sample (offset in its shard,
length, prompt length, task id, license id, source project id, quality and security label bits).
Readers check magic, version, sizes and id ranges before handing out a single sample, because a
silently corrupt corpus costs far more GPU time than the check.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from elixir_coder.errors import DataError
from elixir_coder.io import atomic_write, default_mode, sha256_file
from elixir_coder.labels import QUALITY_LABELS, SECURITY_LABELS, TASKS

FORMAT_VERSION = 2
BIN_MAGIC = b"ECTOKBIN"
IDX_MAGIC = b"ECTOKIDX"
# magic, version, dtype itemsize, count, reserved
HEADER = struct.Struct("<8sIIQQ")
HEADER_SIZE = HEADER.size  # 32 bytes, keeps the arrays 8-byte aligned

INDEX_DTYPE = np.dtype(
    [
        ("offset", "<u8"),  # first token in the .bin array
        ("length", "<u4"),  # tokens in the sample, bos..eos
        ("prompt_len", "<u4"),  # tokens not trained on with the LM loss (bos, task, prompt, sep)
        ("task", "<u2"),
        ("license", "<u2"),  # index into meta["licenses"]
        ("source", "<u4"),  # index into meta["sources"] (the project the sample came from)
        ("quality", "<u8"),  # bit i set: QUALITY_LABELS[i] applies
        ("security", "<u8"),
    ]
)
TOKEN_DTYPES = {2: np.dtype("<u2"), 4: np.dtype("<u4")}


def token_dtype(vocab_size: int) -> np.dtype:
    return TOKEN_DTYPES[2] if vocab_size <= np.iinfo(np.uint16).max + 1 else TOKEN_DTYPES[4]


def write_shard(out_dir: Path, name: str, tokens: np.ndarray, index: np.ndarray, dtype: np.dtype) -> dict:
    """Write one shard (``{name}.bin`` + ``{name}.idx``) atomically; returns its entry for ``meta.json``."""
    tokens = np.ascontiguousarray(tokens, dtype=dtype)
    with atomic_write(out_dir / f"{name}.bin") as fh:
        fh.write(HEADER.pack(BIN_MAGIC, FORMAT_VERSION, dtype.itemsize, tokens.size, 0))
        fh.write(memoryview(tokens).cast("B"))
    return _finish_shard(out_dir, name, index, tokens.size)


def _finish_shard(out_dir: Path, name: str, index: np.ndarray, n_tokens: int) -> dict:
    """Write the shard's index atomically; its entry for ``meta.json``."""
    with atomic_write(out_dir / f"{name}.idx") as fh:
        fh.write(HEADER.pack(IDX_MAGIC, FORMAT_VERSION, INDEX_DTYPE.itemsize, len(index), 0))
        fh.write(index.astype(INDEX_DTYPE).tobytes())
    return {
        "name": name,
        "samples": int(len(index)),
        "tokens": int(n_tokens),
        "bin_sha256": sha256_file(out_dir / f"{name}.bin"),
        "idx_sha256": sha256_file(out_dir / f"{name}.idx"),
    }


class ShardWriter:
    """Appends parts, in order, to shards of at most ``shard_tokens`` tokens. Tokens go straight
    to the open shard file, so memory holds one part and the shard's index, whatever the shard
    size; the files are written inside a preparation's temp folder, swapped in whole when done."""

    def __init__(self, out: Path, split: str, dtype: np.dtype, shard_tokens: int):
        self.out, self.split, self.dtype, self.limit = out, split, dtype, shard_tokens
        self.shards: list[dict] = []
        self.index: list[np.ndarray] = []
        self.size = 0
        self.fh = None

    def add(self, tokens: np.ndarray, index: np.ndarray) -> None:
        if self.size and self.size + tokens.size > self.limit:
            self.flush()
        if self.fh is None:
            self.fh = open(self.out / f"{self.split}-{len(self.shards):05d}.bin", "wb")
            os.chmod(self.fh.fileno(), default_mode())
            self.fh.write(HEADER.pack(BIN_MAGIC, FORMAT_VERSION, self.dtype.itemsize, 0, 0))  # count set at flush
        index = index.copy()
        index["offset"] += self.size
        self.fh.write(np.ascontiguousarray(tokens, dtype=self.dtype).tobytes())
        self.index.append(index)
        self.size += tokens.size

    def flush(self) -> None:
        if self.fh is None:
            return
        self.fh.seek(0)
        self.fh.write(HEADER.pack(BIN_MAGIC, FORMAT_VERSION, self.dtype.itemsize, self.size, 0))
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        name = f"{self.split}-{len(self.shards):05d}"
        self.shards.append(_finish_shard(self.out, name, np.concatenate(self.index), self.size))
        self.fh, self.index, self.size = None, [], 0


def part_paths(parts: Path, number: int, split: str) -> tuple[Path, Path]:
    """Where an encode task writes a split's (tokens, index) part, numbered in corpus order."""
    return parts / f"{number:07d}-{split}-tokens.npy", parts / f"{number:07d}-{split}-index.npy"


def merge_parts(out: Path, parts: Path, numbers: list[int], split: str, dtype: np.dtype, shard_tokens: int,
                licenses: list[str]) -> dict | None:
    """A split's shards from its parts (in ``numbers`` order), and its entry for ``meta.json``
    with samples and tokens by task and by license; None when it has no samples."""
    writer = ShardWriter(out, split, dtype, shard_tokens)
    task_samples, task_tokens, by_license = np.zeros(len(TASKS), np.int64), np.zeros(len(TASKS), np.int64), np.zeros(len(licenses), np.int64)
    for number in numbers:
        tokens, index = (np.load(p) for p in part_paths(parts, number, split))
        writer.add(tokens, index)
        task_samples += np.bincount(index["task"].astype(np.int64), minlength=len(TASKS))
        task_tokens += np.bincount(index["task"].astype(np.int64), weights=index["length"], minlength=len(TASKS)).astype(np.int64)
        by_license += np.bincount(index["license"].astype(np.int64), minlength=len(licenses))
    writer.flush()
    if not writer.shards:
        return None
    return {
        "samples": sum(s["samples"] for s in writer.shards), "tokens": sum(s["tokens"] for s in writer.shards),
        "shards": writer.shards, "tasks": dict(zip(TASKS, task_samples.tolist())),
        "task_tokens": dict(zip(TASKS, task_tokens.tolist())),
        "licenses": {lic: int(n) for lic, n in zip(licenses, by_license) if n},
    }


def write_split(out_dir: Path, split: str, samples: list[np.ndarray], index: np.ndarray, dtype: np.dtype) -> dict:
    """Write a small split held in memory as one shard; returns its entry for ``meta.json``."""
    if len(samples) != len(index):
        raise ValueError("one index record per sample")
    index = index.copy()
    index["offset"] = np.cumsum([0] + [len(s) for s in samples[:-1]]) if samples else []
    tokens = np.concatenate(samples) if samples else np.zeros(0, dtype)
    shard = write_shard(out_dir, f"{split}-00000", tokens, index, dtype)
    return {"samples": shard["samples"], "tokens": shard["tokens"], "shards": [shard]}


def write_meta(out_dir: Path, meta: dict) -> None:
    with atomic_write(out_dir / "meta.json", "w") as fh:
        json.dump(meta, fh, indent=2, sort_keys=True)
        fh.write("\n")


def read_meta(data_dir: str | os.PathLike) -> dict:
    """``meta.json``, checked for every field readers use (types and ranges), so a hand-edited or
    foreign file is one clear error here rather than a KeyError deep in a loader."""
    path = Path(data_dir) / "meta.json"
    if not path.is_file():
        raise DataError(f"{path}: no tokenized dataset here; run `elixir-data prepare` (or `elixir-train`, which prepares it)")
    try:
        meta = json.loads(path.read_bytes().decode("utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); re-run `elixir-data prepare`") from exc
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DataError(f"{path}: not valid JSON ({type(exc).__name__}); re-run `elixir-data prepare`") from exc
    redo = "re-run `elixir-data prepare data.overwrite=true`"
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(meta).__name__}; {redo}")
    if meta.get("version") != FORMAT_VERSION:
        raise DataError(f"{path}: format version {meta.get('version')!r}, this package reads version {FORMAT_VERSION}; {redo}")
    problem = _meta_problem(meta)
    if problem:
        raise DataError(f"{path}: {problem}; {redo}")
    return meta


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _meta_problem(meta: dict) -> str | None:
    from elixir_coder.corpus.tokenizer import SPECIAL_TOKENS

    vocab = meta.get("vocab_size")
    if not _is_int(vocab) or not len(SPECIAL_TOKENS) <= vocab <= np.iinfo(np.uint32).max:
        return f"'vocab_size' is {vocab!r}, expected an integer >= {len(SPECIAL_TOKENS)}"
    special = meta.get("special_tokens")
    if not isinstance(special, dict):
        return f"'special_tokens' is {type(special).__name__ if special is not None else 'missing'}, expected an object of token -> id"
    for token in SPECIAL_TOKENS:
        if not _is_int(special.get(token)) or not 0 <= special[token] < vocab:
            return f"special_tokens[{token!r}] is {special.get(token)!r}, expected an id in [0, {vocab})"
    if "tokenizer" not in meta or not isinstance(meta["tokenizer"], (str, type(None))):
        return f"'tokenizer' is {meta.get('tokenizer', 'missing')!r}, expected a file name (or null: synthetic data)"
    splits = meta.get("splits")
    if not isinstance(splits, dict) or not all(isinstance(v, dict) for v in splits.values()):
        return "'splits' is missing or not an object of split -> {samples, tokens, shards}"
    text = lambda v: isinstance(v, str)  # noqa: E731
    for split, info in splits.items():
        for key, ok in (("samples", _is_int), ("tokens", _is_int), ("shards", lambda v: isinstance(v, list))):
            if not ok(info.get(key)):
                return f"splits.{split}.{key} is {info.get(key)!r}"
        for k, shard in enumerate(info["shards"]):
            if not isinstance(shard, dict):
                return f"splits.{split}.shards[{k}] is {shard!r}, expected an object"
            for key, ok in (("name", lambda v: text(v) and "/" not in v and not v.startswith(".")), ("samples", _is_int),
                            ("tokens", _is_int), ("bin_sha256", text), ("idx_sha256", text)):
                if not ok(shard.get(key)):
                    return f"splits.{split}.shards[{k}].{key} is {shard.get(key)!r}"
    for key, ours in (("tasks", TASKS), ("quality_labels", QUALITY_LABELS), ("security_labels", SECURITY_LABELS)):
        if key in meta and meta[key] != list(ours):
            return f"'{key}' differs from this package's ({meta[key]!r}): the ids in the .idx files would mean other things"
    return None


def _read_header(path: Path, magic: bytes, itemsize: int | None) -> tuple[int, int]:
    """Validate a file header; returns (itemsize, count)."""
    if not path.is_file():
        raise DataError(f"{path}: missing; run `elixir-data prepare`")
    size = path.stat().st_size
    if size < HEADER_SIZE:
        raise DataError(f"{path}: truncated ({size} bytes, shorter than the {HEADER_SIZE}-byte header); re-run `elixir-data prepare`")
    with open(path, "rb") as fh:
        got_magic, version, got_itemsize, count, _ = HEADER.unpack(fh.read(HEADER_SIZE))
    if got_magic != magic:
        raise DataError(f"{path}: not an elixir-coder {magic[-3:].decode().lower()} file (magic {got_magic!r}, expected {magic!r})")
    if version != FORMAT_VERSION:
        raise DataError(
            f"{path}: format version {version}, this package reads version {FORMAT_VERSION}; "
            "re-run `elixir-data prepare data.overwrite=true`"
        )
    if itemsize is not None and got_itemsize != itemsize:
        raise DataError(f"{path}: record size {got_itemsize}, expected {itemsize}")
    if got_itemsize not in (2, 4, INDEX_DTYPE.itemsize):
        raise DataError(f"{path}: unsupported item size {got_itemsize}")
    expected = HEADER_SIZE + count * got_itemsize
    if size != expected:
        raise DataError(
            f"{path}: size {size} bytes but the header promises {count} items = {expected} bytes "
            "(truncated or overwritten); re-run `elixir-data prepare data.overwrite=true`"
        )
    return got_itemsize, count


@dataclass
class SplitArrays:
    """The memory-mapped shards of one validated split, and its index with each sample's shard."""

    tokens: list[np.memmap]
    index: np.ndarray
    shard: np.ndarray  # per sample: which of ``tokens`` holds it


def _open_shard(data_dir: Path, name: str, vocab_size: int) -> tuple[np.memmap, np.ndarray]:
    bin_path, idx_path = data_dir / f"{name}.bin", data_dir / f"{name}.idx"
    itemsize, n_tokens = _read_header(bin_path, BIN_MAGIC, None)
    _, n_samples = _read_header(idx_path, IDX_MAGIC, INDEX_DTYPE.itemsize)
    tokens = np.memmap(bin_path, dtype=TOKEN_DTYPES[itemsize], mode="r", offset=HEADER_SIZE, shape=(n_tokens,)) if n_tokens else np.zeros(0, TOKEN_DTYPES[itemsize])
    index = np.fromfile(idx_path, dtype=INDEX_DTYPE, offset=HEADER_SIZE)
    validate_index(index, n_tokens, idx_path=idx_path, bin_path=bin_path)
    if n_tokens:
        top = int(tokens.max())
        if top >= vocab_size:
            pos = int(np.argmax(tokens >= vocab_size))
            raise DataError(
                f"{bin_path}: token id {top} at position {pos} is >= the vocabulary size {vocab_size} in meta.json; "
                "the data and tokenizer do not match: re-run `elixir-data prepare data.overwrite=true`"
            )
    return tokens, index


def shard_names(meta: dict, split: str) -> list[str]:
    info = meta.get("splits", {}).get(split)
    if info is None:
        raise DataError(f"meta.json has no {split!r} split (it has: {', '.join(meta.get('splits', {})) or 'none'}); re-run `elixir-data prepare data.overwrite=true`")
    return [s["name"] for s in info["shards"]]


def open_split(data_dir: str | os.PathLike, split: str, vocab_size: int, meta: dict | None = None) -> SplitArrays:
    data_dir = Path(data_dir)
    meta = meta if meta is not None else read_meta(data_dir)
    tokens, indexes = [], []
    for name in shard_names(meta, split):
        t, i = _open_shard(data_dir, name, vocab_size)
        tokens.append(t)
        indexes.append(i)
    index = np.concatenate(indexes) if indexes else np.zeros(0, INDEX_DTYPE)
    if len(index) == 0:
        raise DataError(f"{data_dir}: the {split!r} split is empty; give the corpus more records or lower data.val_fraction")
    shard = np.repeat(np.arange(len(indexes), dtype=np.int32), [len(i) for i in indexes])
    return SplitArrays(tokens=tokens, index=index, shard=shard)


def index_columns(index: np.ndarray) -> dict[str, np.ndarray]:
    """The index fields as contiguous arrays, which readers index per batch (and checks run on
    at memory speed; the interleaved 40-byte records are many times slower to scan)."""
    return {
        "offset": index["offset"].astype(np.uint64), "length": index["length"].astype(np.int64),
        "prompt_len": index["prompt_len"].astype(np.int64), "task": index["task"].astype(np.int64),
        "quality": index["quality"].astype(np.uint64), "security": index["security"].astype(np.uint64),
    }


def validate_index(index: np.ndarray, n_tokens: int, *, idx_path: Path, bin_path: Path) -> dict[str, np.ndarray]:
    """Check every record of ``index`` and return its columns (``index_columns``): offset and
    length inside the ``n_tokens`` of ``bin_path`` (no wrap-around near 2**64), length > 0, a
    prompt no longer than its sample, a known task id, and label bits only of known labels.

    Reductions (max/min: no array written) decide a good index with two elementwise passes;
    only a bad one pays for the per-record pass that names its first bad record."""
    cols = index_columns(index)
    check_columns(cols, n_tokens, idx_path=idx_path, bin_path=bin_path)
    return cols


def check_columns(cols: dict[str, np.ndarray], n_tokens: int, *, idx_path: Path, bin_path: Path) -> None:
    """``validate_index`` on columns already made."""
    offset, length, prompt, task = cols["offset"], cols["length"], cols["prompt_len"], cols["task"]
    good = len(offset) == 0 or (
        int(offset.max()) <= n_tokens and int(length.min()) >= 1 and int(task.max()) < len(TASKS)
        and int(cols["quality"].max()) >> len(QUALITY_LABELS) == 0
        and int(cols["security"].max()) >> len(SECURITY_LABELS) == 0
        # offsets <= n_tokens < 2**63 and lengths < 2**32 (checked above): the sum cannot wrap
        and int(np.add(offset, length.view(np.uint64)).max()) <= n_tokens
        and bool(np.less_equal(prompt, length).all())
    )
    if not good:
        n = np.uint64(n_tokens)
        room = n - np.minimum(offset, n)  # tokens after each offset; never wraps
        bad = (length.view(np.uint64) - np.uint64(1) >= room) | (prompt > length) | (task >= len(TASKS))
        bad |= (cols["quality"] >> np.uint64(len(QUALITY_LABELS))) != 0
        bad |= (cols["security"] >> np.uint64(len(SECURITY_LABELS))) != 0
        i = int(np.argmax(bad))
        raise DataError(f"{idx_path}: record {i}: {_record_problem(cols, i, n_tokens, bin_path)}; "
                        "re-run `elixir-data prepare data.overwrite=true`")


def _record_problem(cols: dict[str, np.ndarray], i: int, n_tokens: int, bin_path: Path) -> str:
    offset, length, prompt, task = (int(cols[k][i]) for k in ("offset", "length", "prompt_len", "task"))
    if offset > n_tokens:
        return f"offset {offset} is past the end of {bin_path.name} ({n_tokens} tokens)"
    if length == 0:
        return "length 0"
    if offset + length > n_tokens:
        return f"offset {offset} + length {length} runs past the end of {bin_path.name} ({n_tokens} tokens)"
    if prompt > length:
        return f"prompt length {prompt} is longer than the sample ({length} tokens)"
    if task >= len(TASKS):
        return f"task id {task}, but there are {len(TASKS)} tasks (0..{len(TASKS) - 1})"
    for name, labels in (("quality", QUALITY_LABELS), ("security", SECURITY_LABELS)):
        bits = int(cols[name][i])
        if bits >> len(labels):
            return f"{name} label bits {bits:#x} name labels beyond the {len(labels)} known ones"
    return "invalid"


def verify_checksums(data_dir: str | os.PathLike, meta: dict) -> None:
    """Full-content check against meta.json (slow on big corpora, so not done on every open)."""
    data_dir = Path(data_dir)
    for split, info in meta["splits"].items():
        for shard in info["shards"]:
            for kind in ("bin", "idx"):
                path = data_dir / f"{shard['name']}.{kind}"
                if sha256_file(path) != shard[f"{kind}_sha256"]:
                    raise DataError(f"{path}: checksum does not match meta.json; the file changed after preparation")
