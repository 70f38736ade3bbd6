"""Pass 1 of corpus preparation (:mod:`elixir_coder.corpus.prepare`): read each chunk of a
project's files, filter them (counted by reason), parse them with the real Elixir parser, and hash
and MinHash them for deduplication, in a worker process."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from elixir_coder.corpus.dedup import DedupConfig, content_hash, signature
from elixir_coder.corpus.layout import defined_names
from elixir_coder.corpus.projects import FileLimits, Project, decode_source, read_files


@dataclass
class ScanItem:
    project: int
    rels: list[str] | None  # None: every file of the project (Hex tarballs)


def scan(args: tuple[Project, ScanItem, dict, float]) -> tuple[int, list[tuple], Counter]:
    """Per file: (rel, reason or None, bytes, digest, signature, boundaries if long, the names it
    may define (:func:`~elixir_coder.corpus.layout.defined_names`), tokenizer text)."""
    project, item, rec, sample_rate = args
    from elixir_coder.corpus.parser import shared_parser

    skipped, out, texts = Counter(), [], []
    limits, dedup = FileLimits(**rec["filters"]), DedupConfig(**rec["dedup"])
    view = Project(**{**project.__dict__, "files": item.rels}) if item.rels is not None else project
    for rel, raw in read_files(view, skipped):
        text, reason = decode_source(raw, limits)
        out.append([rel, reason, len(raw), None, None, None, (), None])
        texts.append(text)
    parsed = shared_parser().parse_many([t for t in texts if t is not None])
    it = iter(parsed)
    for row, text in zip(out, texts):
        if text is None:
            continue
        result = next(it)
        if not result.ok:
            row[1] = "unparsable"
            continue
        row[3] = content_hash(text) if dedup.exact else row[0].encode()
        row[4] = signature(text, dedup) if dedup.near else None
        if len(text) > rec["max_sample_tokens"]:  # only a file this long can need splitting
            row[5] = np.asarray(result.boundaries, dtype=np.int32)
        row[6] = defined_names(text)
        if sampled(f"{project.name}/{row[0]}", rec["seed"], sample_rate):
            row[7] = text
    return item.project, [tuple(r) for r in out], skipped


# Source bytes per task of either pass: small enough that a big project (one holds 69% of the
# Elixir checkout) is spread over all workers, large enough that a task's fixed costs stay small.
CHUNK_BYTES = 1 << 20


def sample_rate(budget_bytes: float, total_bytes: int) -> float:
    """The share of files to send to the tokenizer sample: a quarter more than the budget needs,
    since duplicates and unparsable files are dropped from it; the budget then stops it."""
    return min(1.0, budget_bytes / max(total_bytes, 1) * 1.25)


def sampled(key: str, seed: int, rate: float) -> bool:
    if rate >= 1.0:
        return True
    digest = hashlib.blake2b(f"tok:{seed}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64 < rate


def chunks_by_size(root: str, rels: Iterable[str], limit: int) -> Iterator[list[str]]:
    """``rels`` (files under ``root``) in consecutive chunks of about ``limit`` bytes."""
    chunk, size = [], 0
    for rel in rels:
        chunk.append(rel)
        size += (Path(root) / rel).stat().st_size
        if size >= limit:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def scan_items(projects: list[Project], chunk_bytes: int) -> Iterator[tuple[Project, ScanItem]]:
    for k, p in enumerate(projects):
        if p.kind != "dir":
            yield p, ScanItem(k, None)
            continue
        for chunk in chunks_by_size(p.path, p.files, chunk_bytes):
            yield p, ScanItem(k, chunk)
