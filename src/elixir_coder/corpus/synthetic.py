"""Synthetic tokenized datasets in the real on-disk format, with code-like sample lengths.

For tests and benchmarks that need a corpus of a given size or length distribution without
tokenizing text; random ids, so nothing here is meant to be learnt.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from elixir_coder.corpus import tokenized
from elixir_coder.corpus.tokenizer import SPECIAL_TOKENS
from elixir_coder.labels import QUALITY_LABELS, SECURITY_LABELS, TASKS


def lognormal_lengths(n: int, median: float = 180.0, sigma: float = 0.8, seed: int = 0, max_len: int = 2048) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.lognormal(np.log(median), sigma, n).astype(np.int64), 8, max_len)


def write_synthetic(
    out_dir: Path, lengths: np.ndarray, vocab_size: int = 8192, seed: int = 0, tasks: np.ndarray | None = None
) -> Path:
    """Write train and val splits (the same samples) plus meta.json; ``tasks`` gives task ids."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    dtype = tokenized.token_dtype(vocab_size)
    samples = [rng.integers(len(SPECIAL_TOKENS), vocab_size, n) for n in lengths]
    index = np.zeros(len(lengths), dtype=tokenized.INDEX_DTYPE)
    index["offset"] = np.cumsum(lengths) - lengths
    index["length"] = lengths
    index["prompt_len"] = np.minimum(lengths, 8)
    if tasks is not None:
        index["task"] = tasks
    splits = {}
    for split in ("train", "val"):
        splits[split] = tokenized.write_split(out_dir, split, samples, index, dtype)
    tokenized.write_meta(out_dir, {
        "format": "elixir-coder-tokenized", "version": tokenized.FORMAT_VERSION, "dtype": dtype.name,
        "vocab_size": vocab_size, "special_tokens": {t: i for i, t in enumerate(SPECIAL_TOKENS)},
        "tasks": list(TASKS), "quality_labels": list(QUALITY_LABELS), "security_labels": list(SECURITY_LABELS),
        "splits": splits, "tokenizer": None, "recipe": {"source": {"kind": "synthetic"}},
    })
    return out_dir
