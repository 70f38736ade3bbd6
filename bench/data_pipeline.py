"""Data pipeline throughput: our DataLoader (padded and packed) against two common baselines,
all over the same memory-mapped .bin, measured in one run.

    python bench/data_pipeline.py [--samples 50000] [--batch-size 32] [--max-len 512] [--seconds 3]

Samples follow a code-like log-normal length distribution (median ~180 tokens). "Real" tokens
are non-padding tokens; nanoGPT-style crops have no padding but cut samples at random points.
Every row yields what a training step consumes: token ids, labels and an attention mask (ours:
also positions and segments), so our batches go through ``expand_batch`` here as on a CPU-only
run; the table-only rows (expansion left to the device) are printed apart, not as ratios.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from elixir_coder.corpus.synthetic import lognormal_lengths, write_synthetic
from elixir_coder.training.data import DataLoader, expand_batch, read_dataset


class PlainDataset(torch.utils.data.Dataset):
    """The usual per-sample Dataset: one tensor per sample, padded by pad_sequence in collate."""

    def __init__(self, data_dir: Path, max_len: int):
        self.ds = read_dataset(data_dir, "train")
        self.max_len = max_len

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> torch.Tensor:
        off, n = int(self.ds.offsets[i]), min(int(self.ds.lengths[i]), self.max_len)
        return torch.from_numpy(self.ds.tokens[off : off + n].astype(np.int64))


def plain_collate(samples: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    ids = pad_sequence(samples, batch_first=True, padding_value=0)
    mask = pad_sequence([torch.ones_like(s) for s in samples], batch_first=True, padding_value=0)
    labels = ids.masked_fill(mask == 0, -100)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def crops(data_dir: Path, batch_size: int, max_len: int, seed: int = 0):
    """nanoGPT's get_batch: random windows of the flat token stream (no padding, no boundaries)."""
    ds = read_dataset(data_dir, "train")
    rng = np.random.default_rng(seed)
    while True:
        ix = rng.integers(0, len(ds.tokens) - max_len - 1, batch_size)
        x = torch.stack([torch.from_numpy(ds.tokens[i : i + max_len].astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy(ds.tokens[i + 1 : i + 1 + max_len].astype(np.int64)) for i in ix])
        yield {"input_ids": x, "labels": y, "attention_mask": torch.ones_like(x)}


def measure(batches, seconds: float) -> dict[str, float]:
    real = total = samples = n = 0
    it = iter(batches)
    next(it)  # warm-up: thread start, first page faults
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        try:
            b = next(it)
        except StopIteration:
            it = iter(batches)
            continue
        if "sample_len" in b:  # ours: real tokens from the per-sample table
            real += int(b["sample_len"].sum())
            samples += b["sample_len"].numel()
        else:
            real += int(b["attention_mask"].sum())
            samples += b["input_ids"].shape[0]
        total += b["input_ids"].numel()
        n += 1
    dt = time.perf_counter() - start
    return {"tok_s": real / dt, "samples_s": samples / dt, "pad": 1 - real / max(total, 1), "batches": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=50_000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-len", type=int, default=512)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = write_synthetic(Path(tmp) / "tok", lognormal_lengths(args.samples))
        lens = read_dataset(data_dir, "train").lengths
        print(f"{args.samples} samples, median length {int(np.median(lens))}, batch {args.batch_size}, max_len {args.max_len}, "
              f"torch threads {torch.get_num_threads()}")
        plain = torch.utils.data.DataLoader(
            PlainDataset(data_dir, args.max_len), batch_size=args.batch_size, shuffle=True, collate_fn=plain_collate,
            drop_last=True,
        )
        rows = {
            "plain Dataset + pad_sequence": measure(plain, args.seconds),
            "nanoGPT random crops": measure(crops(data_dir, args.batch_size, args.max_len), args.seconds),
        }
        # As the DataModule serves them on a CPU-only machine (built inline, see
        # ElixirDataModule._overlaps_device), expanded to ids/labels/masks as the step needs them.
        for packing in (False, True):
            kind = "packed" if packing else "padded"
            loader = DataLoader.new(data_dir, "train", batch_size=args.batch_size, max_len=args.max_len, packing=packing)
            rows[f"ours, {kind}"] = measure(map(expand_batch, loader), args.seconds)
        # Not comparable (fewer tensors): the per-sample table alone, expansion left to the device.
        table = {}
        for packing in (False, True):
            loader = DataLoader.new(data_dir, "train", batch_size=args.batch_size, max_len=args.max_len, packing=packing)
            table[f"ours, {'packed' if packing else 'padded'}, table only"] = measure(loader, args.seconds)

    base = rows["plain Dataset + pad_sequence"]["tok_s"]
    print(f"{'loader (ids + labels + mask)':36s} {'real tok/s':>12s} {'samples/s':>10s} {'padding':>8s} {'vs plain':>9s}")
    for name, r in rows.items():
        print(f"{name:36s} {r['tok_s'] / 1e6:10.1f} M {r['samples_s']:10.0f} {r['pad']:8.1%} {r['tok_s'] / base:8.2f}x")
    print("not comparable (no labels or masks yet; a GPU run expands on the device):")
    for name, r in table.items():
        print(f"{name:36s} {r['tok_s'] / 1e6:10.1f} M {r['samples_s']:10.0f} {r['pad']:8.1%}")


if __name__ == "__main__":
    main()
