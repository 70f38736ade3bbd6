"""A preparation's recipe (everything that determines the prepared files, stored in ``meta.json``
to detect stale data) and the splits it assigns: a seeded hash of each unit (project, module or
record source), so stable, uniform and independent of how the work is spread over processes."""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict
from pathlib import Path

from elixir_coder.corpus.dedup import DedupConfig
from elixir_coder.corpus.projects import FileLimits
from elixir_coder.corpus.tokenizer import SPECIAL_TOKENS, tokenizer_id
from elixir_coder.errors import DataError

SPLITS = ("train", "val", "test")
DEMO_LICENSE = "Apache-2.0"  # the demo corpus is this project's own code


def _as_list(value) -> list[str]:
    """A config value that may be one path (or name), a list of them, or null."""
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [str(value)]
    return [str(v) for v in value]


def recipe(
    *, jsonl=None, source_dir=None, vocab_size: int = 8192, val_fraction: float = 0.1, test_fraction: float = 0.0,
    seed: int = 0, demo_modules: int = 320, max_sample_tokens: int = 2048, licenses=None, dedup: dict | None = None,
    filters: dict | None = None, labeler: str = "detectors", split_by: str = "auto", min_projects: int = 20,
    tokenizer_sample_mb: float = 4.0, shard_tokens: int = 1 << 28, mining: dict | None = None, tokenizer: str | None = None,
    check_paths: bool = True,
) -> dict:
    """Everything that determines the prepared files; stored in meta.json to detect stale data.
    ``check_paths``: the sources must exist (not when using a dataset prepared elsewhere)."""
    jsonls = [str(Path(p).resolve()) for p in _as_list(jsonl)]
    dirs = [str(Path(p).resolve()) for p in _as_list(source_dir)]
    sources = {"jsonl": jsonls, "source_dir": dirs} if jsonls or dirs else {"demo": demo_modules}
    for given, path in zip(_as_list(source_dir), dirs):
        if check_paths and not Path(path).is_dir():
            raise DataError(f"{given}: not a directory (data.source_dir)")
    for given, path in zip(_as_list(jsonl), jsonls):
        if check_paths and not Path(path).is_file():
            raise DataError(f"{given}: no such file (data.jsonl)")
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"data.val_fraction={val_fraction}: must be between 0 and 1")
    if not 0.0 <= test_fraction < 1.0 - val_fraction:
        raise DataError(f"data.test_fraction={test_fraction}: must be >= 0 and leave room for training (val_fraction is {val_fraction})")
    if vocab_size < len(SPECIAL_TOKENS) + 256:
        raise DataError(f"data.vocab_size={vocab_size}: must be at least {len(SPECIAL_TOKENS) + 256} (bytes + special tokens)")
    if max_sample_tokens < 16:
        raise DataError(f"data.max_sample_tokens={max_sample_tokens}: must be at least 16")
    if split_by not in ("auto", "project", "file"):
        raise DataError(f"data.split_by={split_by!r}: must be auto, project or file")
    dedup = asdict(DedupConfig(**(dedup or {})))
    filters = asdict(FileLimits(**(filters or {})))
    return {
        "sources": sources, "vocab_size": vocab_size, "val_fraction": val_fraction, "test_fraction": test_fraction,
        "seed": seed, "max_sample_tokens": max_sample_tokens, "licenses": sorted(_as_list(licenses)) or None,
        "dedup": dedup, "filters": filters, "labeler": labeler, "split_by": split_by, "min_projects": min_projects,
        "tokenizer_sample_mb": tokenizer_sample_mb, "shard_tokens": shard_tokens, "mining": dict(mining or {}),
        # A backbone's tokenizer (path + content hash); None: a BPE trained on the corpus.
        "tokenizer": tokenizer_id(tokenizer),
    }


def split_of(key: str, rec: dict) -> str:
    """The split of a unit (project, module or record source): a seeded hash, so stable and uniform."""
    digest = hashlib.sha256(f"{rec['seed']}:{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "little") / 2**64
    if u < rec["val_fraction"]:
        return "val"
    return "test" if u < rec["val_fraction"] + rec["test_fraction"] else "train"


def demo_key(source: str) -> str:
    return f"demo:{source}"


def demo_split(source: str, rec: dict) -> str:
    """The split of a demo record (and of the demo benchmark problem made from the same module)."""
    return split_of(demo_key(source), rec)


def module_unit(rel: str) -> str:
    """Files of one module (``lib/a/b.ex``, ``test/a/b_test.exs``) share a split unit."""
    stem = Path(rel).name.rsplit(".", 1)[0]
    return stem[: -len("_test")] if stem.endswith("_test") else stem
