"""Turn corpora (Elixir project folders, Hex tarballs, JSONL records, the embedded demo) into the
sharded, tokenized dataset that training memory-maps.

Two streaming passes over one pool of worker processes, so memory is bounded by the largest
project, not by the corpus; the passes overlap where they can (an encode task mines while the
tokenizer still trains; one mined before it is saved hands its records back and is tokenized
later, its worker mining the next task meanwhile):

1. *scan* (chunks of files): read, filter (counted by reason), parse with the real Elixir parser,
   hash and MinHash each file; the main process deduplicates in corpus order and trains the
   tokenizer on a bounded, hash-chosen sample of training files as their scans come in.
2. *encode* (a project, or a chunk of a big one, per task): mine every task's records from the
   kept files (:mod:`elixir_coder.corpus.mining`), tokenize, split long records into several
   samples (:mod:`elixir_coder.corpus.encode`) and write per-split parts; the main process
   concatenates parts, in corpus order, into shards of at most ``shard_tokens`` tokens.

The output is built in a sibling temp folder and swapped in with one rename, so a crash never
leaves a half-prepared dataset. The same inputs and seed give byte-identical files, whatever the
number of workers. ``meta.json`` keeps the preparation report (:mod:`elixir_coder.corpus.report`).
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing as mp
import os
import shutil
import tempfile
import time
from collections import Counter, deque
from contextlib import contextmanager
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, as_completed, wait
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np

from elixir_coder.corpus import tokenized
from elixir_coder.corpus.dedup import DedupConfig, Deduplicator
from elixir_coder.corpus.encode import Encoder, PieceCache
from elixir_coder.corpus.recipe import DEMO_LICENSE, SPLITS, demo_key, module_unit, split_of
from elixir_coder.corpus.records import iter_jsonl_from, validate_record
from elixir_coder.corpus.report import build_report
from elixir_coder.corpus.scan import CHUNK_BYTES, chunks_by_size, sample_rate, scan_items
from elixir_coder.corpus.scan import scan as scan_files
from elixir_coder.corpus.projects import FileLimits, KeptFiles, Project, decode_source, discover, read_files
from elixir_coder.corpus.tokenizer import load_or_train_tokenizer, special_ids
from elixir_coder.errors import DataError
from elixir_coder.io import default_mode, fsync_dir
from elixir_coder.labels import QUALITY_LABELS, SECURITY_LABELS, TASKS

# -- pass 2: encode ----------------------------------------------------------------------------

class Kept(NamedTuple):
    """What the scan pass learnt of a file kept for training."""

    bounds: np.ndarray | None  # lines where its top-level definitions start (long files only)
    defines: tuple[str, ...]  # layout.defined_names: the modules a task may look for in it


def _encode_chunks(project: Project, kept: dict[str, Kept]) -> Iterator[list[str] | None]:
    """The kept files of a project in tasks of about ``CHUNK_BYTES`` of source (None: the whole
    project in one task); each task still has the project's other source files as context (read
    when its tests name their modules).
    Files are ordered by module (``lib/a/b.ex`` beside ``test/a/b_test.exs``), so a test file's
    module, which its records quote, is mostly tokenized in the same task (13% less text to
    tokenize on the Elixir checkout than in path order)."""
    if not kept:
        return
    if project.kind != "dir" or project.source_bytes <= CHUNK_BYTES:
        yield None
        return
    yield from chunks_by_size(project.path, sorted(kept, key=lambda rel: (module_unit(rel), rel)), CHUNK_BYTES)


@dataclass
class EncodeItem:
    """One task of the encode pass: a project's kept files, or a batch of ready records."""

    number: int
    project: Project | None = None
    kept: dict[str, Kept] | None = None
    emit: list[str] | None = None  # the kept files whose records this task writes (None: all)
    records: list[dict] | None = None  # demo records
    jsonl: tuple[str, int, int, int] | None = None  # (file, byte offset, line, record index) of a chunk
    licenses: list[str] | None = None  # the dataset's license names (records may name their own)
    license_id: int = 0
    source_id: int = 0
    unit_split: str | None = None  # the project's split (split_by=project)
    mined: tuple[dict[str, list[dict]], Counter] | None = None  # (records by split, stats), mined before the tokenizer was ready


_worker: dict = {}


def _start_worker(tokenizer_ready) -> None:
    """Pool initializer: encode tasks wait for ``tokenizer_ready`` (an event) before tokenizing."""
    _worker["tokenizer_ready"] = tokenizer_ready


def _setup_labeler(run: str, rec: dict) -> None:
    """The labeler, once per process and preparation ``run`` (lazily: an error in a pool
    initializer would make the pool respawn workers forever instead of reporting it)."""
    if _worker.get("labeler_run") != run:
        from elixir_coder.corpus.labelers import make_labeler

        _worker.update(labeler_run=run, labeler=make_labeler(rec["labeler"]))


def _setup_tokenizer(tokenizer_path: str) -> None:
    """The tokenizer, once per process, when the main process has saved it."""
    if _worker.get("tokenizer_path") == tokenizer_path:
        return
    ready = _worker.get("tokenizer_ready")
    if ready is not None:
        ready.wait()
        if not os.path.exists(tokenizer_path):
            raise DataError("the tokenizer could not be trained (see the error before this one)")
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer_path)
    cache = PieceCache(tok)  # emptied at the start of each task; unused if tok cannot take pieces
    _worker.update(tokenizer_path=tokenizer_path, tok=tok, special=special_ids(tok), pieces=cache if cache.encode.piecewise else None)


class Mined(NamedTuple):
    """An encode task's arguments, its item carrying the records it mined before the tokenizer was
    saved: the worker hands them back instead of waiting and mines its next task; the task is
    submitted again to tokenize them."""

    args: tuple[EncodeItem, str, str, dict]


def _encode(args: tuple[EncodeItem, str, str, dict]) -> tuple[int, dict[str, tuple[int, int]], Counter] | Mined:
    result = _encode_item(*args)
    release_freed_memory()  # the task's records and tokens are gone now
    return result


def _encode_item(item: EncodeItem, parts_dir: str, tokenizer_path: str, rec: dict) -> tuple[int, dict[str, tuple[int, int]], Counter] | Mined:
    """Mine (or read) the task's records, then tokenize them into per-split parts; mining needs no
    tokenizer, so in a pool it runs while the main process still trains it."""
    ready = _worker.get("tokenizer_ready")
    if ready is not None:  # a pool worker: its scan is over, its parser's memory can go
        from elixir_coder.corpus.parser import stop_shared_parser

        stop_shared_parser()
    if item.mined is not None:
        (by_split, stats), files = item.mined, KeptFiles(item.project, item.kept) if item.project is not None else None
    else:
        stats = Counter()
        by_split, files = _records(item, rec, tokenizer_path, stats)
        if ready is not None and not ready.is_set():
            return Mined((replace(item, mined=(by_split, stats)), parts_dir, tokenizer_path, rec))
    _setup_tokenizer(tokenizer_path)
    if _worker["pieces"] is not None:
        _worker["pieces"].next_task()
    written = {}
    for split, records in by_split.items():
        if not records:
            continue
        enc = Encoder(_worker["tok"], _worker["special"], rec["max_sample_tokens"], stats, _worker["pieces"], files)
        enc.add(records, item.license_id, item.source_id)
        tokens, index = enc.take()
        stats[f"split/{split}/samples"] += len(index)
        tokens_path, index_path = tokenized.part_paths(Path(parts_dir), item.number, split)
        np.save(tokens_path, tokens.astype(tokenized.token_dtype(_worker["tok"].get_vocab_size())))
        np.save(index_path, index)
        written[split] = (len(index), int(tokens.size))
    return item.number, written, stats


def _records(item: EncodeItem, rec: dict, run: str, stats: Counter) -> tuple[dict[str, list[dict]], KeptFiles | None]:
    """The task's records by split: mined from a project's kept files (returned too), or read (demo, JSONL)."""
    by_split: dict[str, list[dict]] = {s: [] for s in SPLITS}
    files = None
    if item.project is not None:
        from elixir_coder.corpus.mining import mine_project

        _setup_labeler(run, rec)
        mined = Counter()
        files = KeptFiles(item.project, item.kept)
        emit = set(item.emit) if item.emit is not None else None
        records = list(mine_project(files, labeler=_worker["labeler"], stats=mined, emit=emit,
                                    defines={rel: k.defines for rel, k in item.kept.items()}, **rec["mining"]))
        stats.update({f"mining/{k}": v for k, v in mined.items()})
        long_files = {files[rel]: k.bounds.tolist() for rel, k in item.kept.items()
                      if k.bounds is not None and (emit is None or rel in emit)}
        for r in records:
            r = validate_record(r, f"{item.project.name}/{r.get('source')}: mined record")
            stats[f"records/{r['task']}/{r.get('kind', 'record')}"] += 1
            bounds = long_files.get(r.get("completion"))
            if bounds is not None:  # a whole long file as completion: cut it between definitions
                r["boundaries"] = bounds
            split = item.unit_split or split_of(f"{item.project.name}:{module_unit(r['source'])}", rec)
            by_split[split].append(r)
    else:
        for r in item.records if item.records is not None else _jsonl_chunk(item, rec):
            stats[f"records/{r['task']}/{r.get('kind', 'record')}"] += 1
            if r.get("license") in item.licenses:
                r["_license"] = item.licenses.index(r["license"])
            by_split[r.pop("_split")].append(r)
    return by_split, files


# -- the pipeline ------------------------------------------------------------------------------

_malloc_trim = getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc only


def release_freed_memory() -> None:
    """Give the heap pages freed by a finished task back to the OS. glibc keeps them for reuse, so
    a long-lived process's resident size crept up with the number of tasks it ran (a worker's
    peak was 1.4x higher over ten copies of a corpus than over one) although what it holds stays
    bounded. A no-op where the C library has no ``malloc_trim``."""
    if _malloc_trim is not None:
        _malloc_trim(0)


@contextmanager
def _pool(workers: int, tokenizer_ready=None) -> Iterator[ProcessPoolExecutor]:
    """Worker processes, forked at the first task; unlike ``multiprocessing.Pool``, a worker that
    dies (OOM killer) fails the run with an error instead of hanging it; on an error the queued
    tasks are cancelled. Encode tasks wait for ``tokenizer_ready`` (an event), if given."""
    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"), initializer=_start_worker, initargs=(tokenizer_ready,))
    try:
        yield pool
    finally:
        pool.shutdown(cancel_futures=True)


JSONL_CHUNK = 4096  # records of one encode task; a worker re-reads its chunk from a byte offset


def _record_items(rec: dict, stats: Counter, sample: list[str], sample_budget: int, first: int,
                  licenses: set[str] | None = None) -> Iterator[EncodeItem]:
    """The demo corpus (in memory, it is small) and JSONL files (streamed: each item names a chunk
    of a file, which its worker reads again), counting records and sampling tokenizer text."""
    n = first
    if "demo" in rec["sources"]:
        batch = []
        for i, r in enumerate(demo_records(rec)):
            r = _keep_record(demo_key(r.get("source") or str(i)), r, rec, stats)
            if r is not None:
                sample_budget = _sample(r, sample, sample_budget)
                batch.append(r)
        for k in range(0, len(batch), JSONL_CHUNK):
            yield EncodeItem(n, records=batch[k : k + JSONL_CHUNK])
            n += 1
    for path in rec["sources"].get("jsonl", []):
        start, count = None, 0
        for i, (where, obj, offset) in enumerate(iter_jsonl_from(path, "file (data.jsonl)")):
            if start is None:
                start = (path, offset, int(where.rsplit(":", 1)[1]), i)
            r = _keep_record(_jsonl_key(path, obj, i), validate_record(obj, where), rec, stats)
            if r is not None:
                sample_budget = _sample(r, sample, sample_budget)
                if licenses is not None and isinstance(r.get("license"), str):
                    licenses.add(r["license"])
            count += 1
            if count == JSONL_CHUNK:
                yield EncodeItem(n, jsonl=start)
                n, start, count = n + 1, None, 0
        if start is not None:
            yield EncodeItem(n, jsonl=start)
            n += 1


def _jsonl_key(path: str, r: dict, i: int) -> str:
    """A record's split unit: its ``source`` (shared across JSONL files), else its place in the file
    (by the file's name: the same corpus gets the same split wherever it is stored)."""
    return f"jsonl:{r['source']}" if r.get("source") else f"jsonl:{Path(path).name}:record-{i}"


def _keep_record(key: str, r: dict, rec: dict, stats: Counter | None) -> dict | None:
    """The record with its split, or None when its license is not kept (counted once, in ``stats``)."""
    if stats is not None:
        stats["records_in"] += 1
    if rec["licenses"] and r.get("license", DEMO_LICENSE if "demo" in rec["sources"] else "unknown") not in rec["licenses"]:
        if stats is not None:
            stats["skipped_records/license_not_allowed"] += 1
        return None
    return {**r, "_split": split_of(key, rec)}


def _sample(r: dict, sample: list[str], budget: int) -> int:
    if r["_split"] == "train" and budget > 0:
        text = r.get("text") or r.get("prompt", "") + r.get("completion", "")
        sample.append(text)
        budget -= len(text)
    return budget


def _jsonl_chunk(item: EncodeItem, rec: dict) -> Iterator[dict]:
    path, offset, line, first = item.jsonl
    for i, (where, obj, _) in enumerate(iter_jsonl_from(path, "file (data.jsonl)", offset, line), first):
        if i - first == JSONL_CHUNK:
            return
        r = _keep_record(_jsonl_key(path, obj, i), validate_record(obj, where), rec, None)
        if r is not None:
            yield r


def demo_records(rec: dict) -> list[dict]:
    from elixir_coder.corpus.demo import generate_modules, generate_records
    from elixir_coder.corpus.demo.labelled import labelled_records
    from elixir_coder.corpus.demo.routers import routers

    n = rec["sources"]["demo"]
    modules = generate_modules(rec["seed"], n)
    records = generate_records(rec["seed"], n) + routers(modules) + labelled_records(modules, rec["seed"])
    return [validate_record(r, f"demo record {i}") for i, r in enumerate(records)]


def load_records(rec: dict) -> list[dict]:
    """Records with their split (``_split``), e.g. for contrastive anchors: the demo/JSONL records,
    and each readable source file whole (not deduplicated or parsed: pair generation parses)."""
    out = []
    for item in _record_items(rec, Counter(), [], 0, 0):
        out += item.records if item.records is not None else list(_jsonl_chunk(item, rec))
    limits, skipped = FileLimits(**rec["filters"]), Counter()
    projects = [p for folder in rec["sources"].get("source_dir", []) for p in discover(folder, skipped)]
    by_project = rec["split_by"] == "project" or (rec["split_by"] == "auto" and len(projects) >= rec["min_projects"])
    for project in projects:
        if rec["licenses"] and project.license not in rec["licenses"]:
            continue
        for rel, raw in read_files(project, skipped):
            text, _ = decode_source(raw, limits)
            if text is not None:
                key = project.name if by_project else f"{project.name}:{module_unit(rel)}"
                out.append({"task": "code_generation", "prompt": "", "completion": text, "source": rel, "_split": split_of(key, rec)})
    return out


class Preparation:
    """The pipeline's state, stage by stage, so the stages can run in one process pool
    (:func:`prepare`) or as separate tasks of a distributed engine
    (:mod:`elixir_coder.corpus.distributed`): ``scan_tasks`` -> :func:`~elixir_coder.corpus.scan.scan` each ->
    ``plan`` -> ``encode_tasks`` -> :func:`_encode` each -> ``finish``. Discovery is
    deterministic, so every task that builds a ``Preparation`` sees the same projects."""

    def __init__(self, out: Path, rec: dict, workers: int = 1):
        self.out, self.rec, self.workers = Path(out), rec, workers
        self.started = time.perf_counter()
        self.stats, self.skipped = Counter(), Counter()
        self.examples: dict[str, list[str]] = {}  # the first files skipped for each reason, for the report
        self.projects: list[Project] = []
        for k, folder in enumerate(rec["sources"].get("source_dir", [])):
            found = discover(folder, self.skipped)
            for p in found:
                p.name = f"{k}:{p.name}" if len(rec["sources"]["source_dir"]) > 1 else p.name
            self.projects += found
        if rec["licenses"]:
            for p in self.projects:
                if p.license not in rec["licenses"]:
                    self.skipped["license_not_allowed"] += len(p.files) or 1
            self.projects = [p for p in self.projects if p.license in rec["licenses"]]
        if rec["sources"].get("source_dir") and not self.projects:
            raise DataError(f"{', '.join(rec['sources']['source_dir'])}: no .ex or .exs files to use (data.source_dir); "
                            f"skipped: {dict(self.skipped)}")
        self.by_project = rec["split_by"] == "project" or (rec["split_by"] == "auto" and len(self.projects) >= rec["min_projects"])
        self.licenses = sorted({p.license for p in self.projects} | ({DEMO_LICENSE} if "demo" in rec["sources"] else set()) | {"unknown"})
        self.kept: list[dict[str, Kept]] = [{} for _ in self.projects]
        self.record_items: list[EncodeItem] = []

    # -- scan ---------------------------------------------------------------------------------

    def scan_tasks(self) -> list[tuple]:
        budget = self.rec["tokenizer_sample_mb"] * 1e6
        rate = sample_rate(budget, sum(p.source_bytes for p in self.projects))
        return [(p, item, self.rec, rate) for p, item in scan_items(self.projects, CHUNK_BYTES)]

    def plan(self, scans, deduplicated: Callable[[], None] | None = None) -> None:
        """Deduplicate in corpus order and train the tokenizer on the sample of training files as
        they come, so its word counting overlaps the scan. ``scans``: the scan results in task
        order, or (in a pool) a deque of their futures, whose texts the tokenizer then counts only
        while the next scan still runs: deduplication keeps up with the scan. ``deduplicated`` is
        called as soon as the kept files are known, while the tokenizer may still be training: the
        encode tasks can start mining."""
        (self.out / "parts").mkdir(exist_ok=True)
        # The tokenizer sees only training text, so validation measures real generalisation.
        backbone = self.rec["tokenizer"]["path"] if self.rec["tokenizer"] else None
        sample = self._deduplicate(scans, deduplicated)
        if backbone is not None:
            deque(sample, maxlen=0)  # nothing to train: deduplicate only
        tmp = self.out / "tokenizer.json.partial"  # renamed when whole: encode tasks wait for the name
        load_or_train_tokenizer(backbone, sample, self.rec["vocab_size"]).save(str(tmp))
        os.replace(tmp, self.out / "tokenizer.json")

    def _deduplicate(self, scans, deduplicated: Callable[[], None] | None) -> Iterator[str]:
        """Deduplicate; yield the tokenizer's sample as it is chosen (a bounded, hash-chosen sample
        of training files, then of demo and JSONL records)."""
        rec, stats, skipped = self.rec, self.stats, self.skipped
        dedup = Deduplicator(DedupConfig(**rec["dedup"]))
        budget, sampled, pending = int(rec["tokenizer_sample_mb"] * 1e6), False, deque()
        futures = scans if isinstance(scans, deque) else None
        for k, rows, skip in _in_order(futures) if futures is not None else scans:
            skipped.update(skip)
            name = self.projects[k].name
            train = self.by_project and split_of(name, rec) == "train"
            for rel, reason, size, digest, sig, bounds, defines, text in rows:
                stats["files_seen"] += 1
                stats["source_bytes_seen"] += size
                if reason is None:
                    reason = dedup.check(digest, sig)
                if reason is not None:
                    skipped[reason] += 1
                    if len(self.examples.setdefault(reason, [])) < 3:
                        self.examples[reason].append(f"{name}/{rel}")
                    continue
                stats["files_parsed"] += 1
                self.kept[k][rel] = Kept(bounds, defines)
                in_train = train or (not self.by_project and split_of(f"{name}:{module_unit(rel)}", rec) == "train")
                if text is not None and in_train and budget > 0:
                    pending.append(text)
                    sampled = True
                    budget -= len(text)
            while pending and (futures is None or futures and not futures[0].done()):
                yield pending.popleft()
        named: set[str] = set()
        sample: list[str] = []
        self.record_items = list(_record_items(rec, stats, sample, budget, len(self.project_items()), named))
        self.licenses = sorted(set(self.licenses) | named)
        for item in self.record_items:
            item.license_id = self.licenses.index(DEMO_LICENSE if "demo" in rec["sources"] else "unknown")
            item.licenses = self.licenses
        if not sampled and not sample and rec["tokenizer"] is None:
            raise DataError("nothing to train the tokenizer on: the training split is empty; give the corpus more files or lower data.val_fraction")
        if deduplicated is not None:
            deduplicated()
        yield from pending
        yield from sample

    # -- encode -------------------------------------------------------------------------------

    def project_items(self) -> list[EncodeItem]:
        """The projects' encode tasks, numbered in corpus order (the order of the shards)."""
        chunks = [(k, p, emit) for k, p in enumerate(self.projects) for emit in _encode_chunks(p, self.kept[k])]
        return [EncodeItem(n, project=p, kept=self.kept[k], emit=emit, license_id=self.licenses.index(p.license), source_id=k,
                           unit_split=split_of(p.name, self.rec) if self.by_project else None)
                for n, (k, p, emit) in enumerate(chunks)]

    def encode_tasks(self) -> list[tuple]:
        """Largest first, so one big project does not start last and hold up the pass alone."""
        items = self.project_items() + self.record_items
        items.sort(key=lambda it: -(it.project.source_bytes if it.project else 0))
        return [(it, str(self.out / "parts"), str(self.out / "tokenizer.json"), self.rec) for it in items]

    # -- merge --------------------------------------------------------------------------------

    def finish(self, encoded) -> dict:
        """Concatenate the parts into shards in corpus order; write meta.json with the report."""
        rec, out, licenses = self.rec, self.out, self.licenses
        written: dict[int, dict] = {}
        for number, w, st in encoded:
            written[number] = w
            self.stats.update(st)
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(out / "tokenizer.json"))
        vocab_size = tok.get_vocab_size()
        dtype = tokenized.token_dtype(vocab_size)
        parts, split_meta = out / "parts", {}
        for split in SPLITS if rec["test_fraction"] > 0 else SPLITS[:2]:
            numbers = [n for n in sorted(written) if split in written[n]]
            split_meta[split] = tokenized.merge_parts(out, parts, numbers, split, dtype, rec["shard_tokens"], licenses)
            if split_meta[split] is None:
                raise DataError(
                    f"the {split!r} split would be empty ({len(self.projects)} projects, {self.stats['records_in']} records); "
                    "give the corpus more files or change data.val_fraction / data.test_fraction"
                )
        shutil.rmtree(parts)
        report = build_report(self.stats, self.skipped, self.projects, self.by_project, split_meta, licenses,
                              time.perf_counter() - self.started, self.workers, rec)
        report["files"]["examples"] = self.examples
        meta = {
            "format": "elixir-coder-tokenized",
            "version": tokenized.FORMAT_VERSION,
            "dtype": dtype.name,
            "vocab_size": vocab_size,
            "special_tokens": special_ids(tok),
            "tasks": list(TASKS),
            "quality_labels": list(QUALITY_LABELS),
            "security_labels": list(SECURITY_LABELS),
            "licenses": licenses,
            "sources": [p.name for p in self.projects],
            "splits": split_meta,
            "tokenizer": "tokenizer.json",
            "recipe": rec,
            "report": report,
        }
        tokenized.write_meta(out, meta)
        return meta


def _write_dataset(out: Path, rec: dict, workers: int) -> dict:
    prep = Preparation(out, rec, workers)
    scan = prep.scan_tasks()
    # The tokenizer trains on one thread, in step with the scan: tokenizers' threads would pull
    # the scan's results themselves, out of reach of Ctrl-C, and compete with the worker processes.
    parallelism = os.environ.get("TOKENIZERS_PARALLELISM", "true")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    if workers > 1 and len(scan) > 1:
        return _write_in_pool(prep, scan, workers)
    # One worker, or a corpus of one scan task: scanned here, with this process's own parser.
    prep.plan(map(scan_files, scan))
    # Tokenizer threads would only compete with the other worker processes.
    os.environ["TOKENIZERS_PARALLELISM"] = "false" if workers > 1 else parallelism
    tasks = prep.encode_tasks()
    if workers <= 1 or len(tasks) <= 1:
        return prep.finish(map(_encode, tasks))
    release_freed_memory()  # before the encode workers are forked from this process
    with _pool(workers) as pool:
        return prep.finish(f.result() for f in as_completed([pool.submit(_encode, t) for t in tasks]))


def _in_order(futures: deque) -> Iterator:
    """The futures' results in order, each dropped once taken (memory stays flat)."""
    while futures:
        yield futures.popleft().result()


def _write_in_pool(prep: Preparation, scan: list[tuple], workers: int) -> dict:
    """Both passes in one pool: its workers scan (each with its Elixir parser), mine the kept
    files while the main process finishes training the tokenizer, and tokenize once it is saved."""
    ready = mp.get_context("fork").Event()
    encoding: list = []
    with _pool(workers, ready) as pool:
        try:
            prep.plan(deque(pool.submit(scan_files, t) for t in scan),
                      lambda: encoding.extend(pool.submit(_encode, t) for t in prep.encode_tasks()))
        finally:
            ready.set()  # the tokenizer is saved, or never will be: waiting tasks go on either way
        return prep.finish(_tokenized(pool, encoding))


def _tokenized(pool: ProcessPoolExecutor, futures: list) -> Iterator[tuple[int, dict, Counter]]:
    """The encode tasks' results as they complete; a task that came back :class:`Mined` is
    submitted again, to tokenize its records."""
    pending = set(futures)
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        for f in done:
            result = f.result()
            if isinstance(result, Mined):
                pending.add(pool.submit(_encode, result.args))
            else:
                yield result


def prepare(data_dir: str | os.PathLike, rec: dict, *, overwrite: bool = False, workers: int | None = None) -> dict:
    """Build the dataset in a temp folder beside ``data_dir`` and swap it in atomically."""
    data_dir = Path(data_dir)
    if data_dir.exists() and not overwrite and any(data_dir.iterdir()):
        raise DataError(f"{data_dir}: already holds files; pass data.overwrite=true to replace them, or pick another data.data_dir")
    workers = workers or os.cpu_count() or 1
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}.", dir=data_dir.parent))
    os.chmod(tmp, default_mode(directory=True))
    try:
        meta = _write_dataset(tmp, rec, workers)
        old = None
        if data_dir.exists():
            old = data_dir.with_name(f".{data_dir.name}.old-{os.getpid()}")
            os.replace(data_dir, old)
        os.replace(tmp, data_dir)
        fsync_dir(data_dir.parent)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def ensure_prepared(data_dir: str | os.PathLike, rec: dict, *, overwrite: bool = False, workers: int | None = None,
                    log: Callable[[str], None] = print) -> dict:
    """Return the dataset's meta, preparing it first when missing (its report is printed)."""
    data_dir = Path(data_dir)
    if (data_dir / "meta.json").is_file():
        meta = tokenized.read_meta(data_dir)
        if meta.get("recipe") == rec and not overwrite:
            return meta
        if not overwrite:
            raise DataError(
                f"{data_dir} was prepared from {json.dumps(meta.get('recipe'), sort_keys=True)}, "
                f"but the config asks for {json.dumps(rec, sort_keys=True)}; pass data.overwrite=true to "
                "re-prepare it, or set data.data_dir to another folder"
            )
    what = " and ".join(f"data.{k}" for k, v in rec["sources"].items() if v) if "demo" not in rec["sources"] else "the embedded demo corpus"
    log(f"Preparing the tokenized corpus from {what} in {data_dir} ...")
    meta = prepare(data_dir, rec, overwrite=overwrite, workers=workers)
    from elixir_coder.corpus.report import format_report

    log(format_report(meta["report"]))
    return meta
