"""Data pipeline (spec 4.1): reader, sampler, collation, prefetch, DataLoader."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from elixir_coder.corpus.synthetic import lognormal_lengths, write_synthetic
from elixir_coder.training.data import (
    IGNORE_INDEX,
    BatchSampler,
    DataLoader,
    collate,
    expand_batch,
    gather_batch,
    pack_rows,
    prefetch_stream,
    read_dataset,
)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    lengths = lognormal_lengths(600, median=60, max_len=400, seed=1)
    return write_synthetic(tmp_path_factory.mktemp("syn") / "tok", lengths, vocab_size=500, seed=1)


def test_reader_streams_valid_samples(synthetic):
    ds = read_dataset(synthetic, "train")
    assert len(ds) == 600
    for sample in list(ds)[:50]:
        n = len(sample.input_ids)
        assert sample.input_ids.dtype == np.int64 and sample.input_ids.max() < ds.vocab_size
        assert (sample.attention_mask == 1).all() and len(sample.attention_mask) == n
        # labels are the next token, from the last prompt token on; never on the last token
        trained = np.flatnonzero(sample.labels != IGNORE_INDEX)
        if n <= 8:  # all prompt (synthetic prompts are 8 tokens): nothing to train on
            assert trained.size == 0
            continue
        assert trained[0] == 7 and trained[-1] == n - 2
        assert (sample.labels[trained] == sample.input_ids[trained + 1]).all()


def test_sampler_reshuffles_each_epoch_reproducibly(synthetic):
    ds = read_dataset(synthetic, "train")
    sampler = BatchSampler.new(ds, 8, seed=3)
    epoch0 = [i for batch in sampler for row in batch for i in row]
    sampler.set_epoch(1)
    epoch1 = [i for batch in sampler for row in batch for i in row]
    again = BatchSampler.new(ds, 8, seed=3)
    assert epoch0 != epoch1
    assert epoch0 == [i for batch in again for row in batch for i in row]
    assert epoch0 != sorted(epoch0)


def test_sampler_drop_last_and_exactly_once(synthetic):
    ds = read_dataset(synthetic, "train")
    dropping = BatchSampler.new(ds, 7, drop_last=True)
    assert len(dropping) == 600 // 7 and all(len(b) == 7 for b in dropping)
    keeping = BatchSampler.new(ds, 7, drop_last=False)
    seen = [i for batch in keeping for row in batch for i in row]
    assert sorted(seen) == list(range(600))


@pytest.mark.parametrize("packing", [False, True])
def test_ranks_get_disjoint_samples_and_equal_batch_counts(synthetic, packing):
    ds = read_dataset(synthetic, "train")
    per_rank = []
    for rank in range(3):
        s = BatchSampler.new(ds, 4, drop_last=False, rank=rank, world_size=3, packing=packing, max_len=256, seed=5)
        per_rank.append([i for batch in s for row in batch for i in row])
        assert len(list(s)) == len(s)
    assert len({len(BatchSampler.new(ds, 4, rank=r, world_size=3, packing=packing, max_len=256)) for r in range(3)}) == 1
    union = [i for ids in per_rank for i in ids]
    assert len(union) == len(set(union))  # disjoint
    assert sorted(union) == list(range(600))  # 600 = 3 ranks x 200: nothing dropped


def test_packing_fills_rows(synthetic):
    ds = read_dataset(synthetic, "train")
    rows = pack_rows(ds.lengths, np.random.default_rng(0).permutation(len(ds)), 256)
    fill = np.array([sum(min(int(ds.lengths[i]), 256) for i in row) for row in rows])
    assert fill.max() <= 256
    assert sorted(i for row in rows for i in row) == list(range(len(ds)))
    assert 1 - fill.sum() / (256 * len(rows)) < 0.05  # under 5% padding


@pytest.mark.parametrize("packing", [False, True])
def test_collate_matches_samples(synthetic, packing):
    """Every row of a batch holds its samples' tokens, labels, restarting positions and segments."""
    ds = read_dataset(synthetic, "train")
    max_len = 128
    sampler = BatchSampler.new(ds, 6, packing=packing, max_len=max_len, seed=2)
    for rows in list(sampler)[:10]:
        b = collate(ds, rows, max_len)
        width = b["input_ids"].shape[1]
        assert width <= max_len
        assert all(b[k].shape == (len(rows), width) for k in ("labels", "attention_mask", "position_ids", "segment_ids"))
        for r, row in enumerate(rows):
            col = 0
            for k, i in enumerate(row):
                s = ds[i]
                n = min(len(s.input_ids), max_len)
                expected = s.labels[:n].copy()
                expected[n - 1] = IGNORE_INDEX  # a truncated sample's last kept token has no target
                assert (b["input_ids"][r, col : col + n].numpy() == s.input_ids[:n]).all()
                assert (b["labels"][r, col : col + n].numpy() == expected).all()
                assert (b["position_ids"][r, col : col + n].numpy() == np.arange(n)).all()
                assert (b["segment_ids"][r, col : col + n] == k + 1).all()
                col += n
            assert (b["attention_mask"][r, :col] == 1).all()
            assert (b["attention_mask"][r, col:] == 0).all() and (b["labels"][r, col:] == IGNORE_INDEX).all()
            assert (b["input_ids"][r, col:] == ds.pad_id).all()


def test_gather_then_expand_equals_collate(synthetic):
    ds = read_dataset(synthetic, "train")
    rows = next(iter(BatchSampler.new(ds, 5, packing=True, max_len=200)))
    a, b = collate(ds, rows, 200), expand_batch(gather_batch(ds, rows, 200))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_prefetch_runs_ahead_with_backpressure():
    produced = []

    def slow_source():
        for i in range(20):
            produced.append(i)
            yield i

    stream = prefetch_stream(slow_source(), size=2)
    assert next(stream) == 0
    time.sleep(0.2)  # the producer fills the queue, then blocks
    assert 2 <= len(produced) <= 4  # one consumed + 2 queued + 1 waiting to be put
    assert list(stream) == list(range(1, 20))


def test_prefetch_produces_on_another_thread_and_reraises():
    threads = []

    def source():
        threads.append(threading.current_thread())
        yield 1
        raise ValueError("bad batch")

    stream = prefetch_stream(source(), size=2)
    assert next(stream) == 1
    assert threads[0] is not threading.current_thread()
    with pytest.raises(ValueError, match="bad batch"):
        next(stream)


def test_prefetch_close_stops_producer():
    stream = prefetch_stream(iter(range(10**9)), size=2)
    next(stream)
    stream.close()
    time.sleep(0.05)
    assert not any(t.name == "elixir-coder-prefetch" for t in threading.enumerate())


def test_dataloader_epoch_stream_and_resume(synthetic):
    loader = DataLoader.new(synthetic, "train", batch_size=16, packing=False, max_len=128, seed=4)
    epoch = [b["input_ids"] for b in loader]
    assert len(loader.dataset) > 600  # samples longer than max_len are served as several windows
    assert len(epoch) == len(loader) == len(loader.dataset) // 16
    assert all(b.shape[0] == 16 for b in epoch)
    stream = loader.stream()
    endless = [next(stream) for _ in range(len(loader) + 3)]  # runs into the next epoch
    assert len(endless) == len(loader) + 3

    # Resume mid-epoch from the state after 5 batches: the rest of the epoch is the same.
    fresh = DataLoader.new(synthetic, "train", batch_size=16, max_len=128, seed=4)
    it = iter(fresh)
    for _ in range(5):
        next(it)
    state = fresh.state_dict()
    assert state == {"epoch": 0, "position": 5}
    resumed = DataLoader.new(synthetic, "train", batch_size=16, max_len=128, seed=4)
    resumed.load_state_dict(state)
    rest = [b["input_ids"] for b in resumed]
    assert len(rest) == len(epoch) - 5
    assert all(torch.equal(a, b) for a, b in zip(rest, epoch[5:]))


def test_task_filter_draws_only_active_tasks(tmp_path):
    lengths = lognormal_lengths(200, median=40, max_len=200)
    tasks = np.arange(200) % 3  # code_generation, quality, security
    d = write_synthetic(tmp_path / "tok", lengths, vocab_size=500, tasks=tasks)
    loader = DataLoader.new(d, "train", batch_size=8, tasks=["quality"], max_len=64)
    seen = torch.cat([b["task"] for b in loader])
    assert set(seen.tolist()) == {1}
