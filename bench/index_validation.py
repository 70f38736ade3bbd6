"""What validating every index record costs, as a share of opening a split.

    python bench/index_validation.py [--samples 2000000] [--repeats 5]

Both sides are timed the same way in the same run, mean over ``repeats`` opens from a warm page
cache: ``read_dataset`` (what a loader does to open a split: meta, headers, index read, index
checks, token-id range scan of the memory-mapped .bin, task filter) against the index checks
alone on the same index (``check_columns``, i.e. ``validate_index`` without ``index_columns``, the
conversion to columns the loader needs anyway; also shown). The claim: the checks under 1% of
opening.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from elixir_coder.corpus import tokenized
from elixir_coder.corpus.synthetic import lognormal_lengths, write_synthetic
from elixir_coder.labels import TASKS
from elixir_coder.training.data import read_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=2_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lengths = lognormal_lengths(args.samples, median=120, max_len=1024)
        data = write_synthetic(Path(tmp), lengths, tasks=np.arange(args.samples) % len(TASKS))
        vocab = tokenized.read_meta(data)["vocab_size"]
        read_dataset(data, "train", tasks=list(TASKS))  # warm the page cache for every side
        opening, checking, converting = [], [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            dataset = read_dataset(data, "train", tasks=list(TASKS))
            opening.append(time.perf_counter() - start)
            index, n_tokens = dataset.index, dataset.tokens.size
            start = time.perf_counter()
            cols = tokenized.index_columns(index)
            converting.append(time.perf_counter() - start)
            start = time.perf_counter()
            tokenized.check_columns(cols, n_tokens, idx_path=data / "train-00000.idx", bin_path=data / "train-00000.bin")
            checking.append(time.perf_counter() - start)
        open_s, check_s, conv_s = (sum(x) / len(x) for x in (opening, checking, converting))
        print(f"{args.samples} samples, {int(lengths.sum())} tokens: opening {open_s * 1e3:.1f} ms; "
              f"index checks {check_s * 1e3:.2f} ms = {100 * check_s / open_s:.2f}% of opening "
              f"(the column conversion readers need anyway: {conv_s * 1e3:.1f} ms = {100 * conv_s / open_s:.1f}%)")


if __name__ == "__main__":
    main()
