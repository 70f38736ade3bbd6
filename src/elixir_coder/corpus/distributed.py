"""Corpus preparation beyond one machine, on datatrove's executors (Slurm, local, Ray).

The stages of :class:`elixir_coder.corpus.prepare.Preparation` become four datatrove pipelines
that hand over through a shared work folder:

1. ``ScanStep`` (``tasks`` ranks): rank ``r`` scans every ``tasks``-th chunk of files and writes
   its results (hashes, MinHash signatures, parse results, tokenizer sample) as JSON lines;
2. ``PlanStep`` (1 task): deduplicates all results in corpus order and trains the tokenizer;
3. ``EncodeStep`` (``tasks`` ranks): mines, tokenizes and writes the parts of every
   ``tasks``-th project;
4. ``MergeStep`` (1 task): concatenates the parts into shards, writes ``meta.json`` with the
   report, and moves the finished dataset to ``data_dir`` in one rename.

Each stage ``depends`` on the one before, so Slurm runs them as dependent job arrays. The
output is byte-identical to :func:`elixir_coder.corpus.prepare.prepare` for the same recipe.
Only ``data.source_dir`` corpora (project folders, Hex tarballs) are distributed: JSONL and the
demo corpus are small enough for :func:`prepare`.

Worked example (Slurm; the work folder must be on a filesystem every node sees)::

    from elixir_coder.corpus.distributed import executors
    from elixir_coder.corpus.recipe import recipe
    from datatrove.executor import SlurmPipelineExecutor

    rec = recipe(source_dir="/shared/hex_packages", test_fraction=0.05, seed=1)
    stages = executors(rec, "/shared/work/hex", "/shared/data/hex", tasks=64,
                       executor=SlurmPipelineExecutor, time="02:00:00", partition="cpu",
                       cpus_per_task=2, mem_per_cpu_gb=4)
    stages[-1].run()  # launches all four, each depending on the one before

then train with ``elixir-train data.data_dir=/shared/data/hex data.prepare=false``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.base import PipelineStep

from elixir_coder.corpus.prepare import Kept, Preparation, _encode
from elixir_coder.corpus.scan import scan as _scan
from elixir_coder.errors import DataError
from elixir_coder.io import fsync_dir


def _check(rec: dict) -> None:
    if set(rec["sources"]) != {"jsonl", "source_dir"} or rec["sources"]["jsonl"] or not rec["sources"]["source_dir"]:
        raise DataError("distributed preparation takes data.source_dir corpora only; prepare JSONL and the demo with `elixir-data prepare`")


def _row_to_json(row: tuple) -> list:
    rel, reason, size, digest, sig, bounds, defines, text = row
    return [rel, reason, size, digest.hex() if digest is not None else None, sig.tolist() if sig is not None else None,
            bounds.tolist() if bounds is not None else None, defines, text]


def _row_from_json(row: list) -> tuple:
    rel, reason, size, digest, sig, bounds, defines, text = row
    return (rel, reason, size, bytes.fromhex(digest) if digest is not None else None,
            np.asarray(sig, dtype=np.uint64) if sig is not None else None,
            np.asarray(bounds, dtype=np.int32) if bounds is not None else None, tuple(defines), text)


class _Stage(PipelineStep):
    type = "ElixirCoder"

    def __init__(self, rec: dict, work: str):
        super().__init__()
        _check(rec)
        self.rec, self.work = rec, Path(work)

    def preparation(self) -> Preparation:
        return Preparation(self.work / "dataset", self.rec)


class ScanStep(_Stage):
    name = "scan"

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        tasks = self.preparation().scan_tasks()
        out = self.work / "scan" / f"{rank:05d}.jsonl"
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out.with_suffix(".tmp"), "w") as fh:
            for number in range(rank, len(tasks), world_size):
                k, rows, skipped = _scan(tasks[number])
                fh.write(json.dumps({"task": number, "project": k, "rows": [_row_to_json(r) for r in rows], "skipped": skipped}) + "\n")
                self.stat_update("chunks")
        os.replace(out.with_suffix(".tmp"), out)
        yield from data or ()


def _plan_state(prep: Preparation) -> dict:
    return {"kept": [{rel: [k.bounds.tolist() if k.bounds is not None else None, k.defines] for rel, k in kept.items()}
                     for kept in prep.kept],
            "stats": dict(prep.stats), "skipped": dict(prep.skipped), "examples": prep.examples}


class PlanStep(_Stage):
    name = "plan"

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        prep = self.preparation()
        shutil.rmtree(prep.out, ignore_errors=True)
        prep.out.mkdir(parents=True)
        results = []
        for path in sorted((self.work / "scan").glob("*.jsonl")):
            with open(path) as fh:
                results += [json.loads(line) for line in fh]
        results.sort(key=lambda r: r["task"])
        prep.plan((r["project"], [_row_from_json(row) for row in r["rows"]], r["skipped"]) for r in results)
        (self.work / "plan.json").write_text(json.dumps(_plan_state(prep)))
        yield from data or ()


def _planned(step: _Stage) -> Preparation:
    prep = step.preparation()
    state = json.loads((step.work / "plan.json").read_text())
    prep.kept = [{rel: Kept(np.asarray(b, dtype=np.int32) if b is not None else None, tuple(d)) for rel, (b, d) in kept.items()}
                 for kept in state["kept"]]
    prep.stats, prep.skipped = Counter(state["stats"]), Counter(state["skipped"])  # discovery's counts included
    prep.examples = state["examples"]
    return prep


class EncodeStep(_Stage):
    name = "encode"

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        tasks = _planned(self).encode_tasks()
        results = [_encode(tasks[i]) for i in range(rank, len(tasks), world_size)]
        out = self.work / "encoded" / f"{rank:05d}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps([[n, w, dict(st)] for n, w, st in results]))
        self.stat_update("projects", value=len(results))
        yield from data or ()


class MergeStep(_Stage):
    name = "merge"

    def __init__(self, rec: dict, work: str, data_dir: str):
        super().__init__(rec, work)
        self.data_dir = Path(data_dir)

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        prep = _planned(self)
        encoded = []
        for path in sorted((self.work / "encoded").glob("*.json")):
            encoded += [(n, w, Counter(st)) for n, w, st in json.loads(path.read_text())]
        prep.finish(encoded)
        if self.data_dir.exists():
            raise DataError(f"{self.data_dir}: already exists; the finished dataset is left in {prep.out}")
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        os.replace(prep.out, self.data_dir)
        fsync_dir(self.data_dir.parent)
        yield from data or ()


def executors(rec: dict, work: str | os.PathLike, data_dir: str | os.PathLike, *, tasks: int = 4,
              executor=LocalPipelineExecutor, **executor_kwargs) -> list:
    """The four stages as datatrove executors, each depending on the one before; run the last."""
    _check(rec)
    work = str(Path(work).resolve())
    logs = f"{work}/logs"
    scan = executor([ScanStep(rec, work)], tasks=tasks, logging_dir=f"{logs}/scan", **executor_kwargs)
    plan = executor([PlanStep(rec, work)], tasks=1, logging_dir=f"{logs}/plan", depends=scan, **executor_kwargs)
    encode = executor([EncodeStep(rec, work)], tasks=tasks, logging_dir=f"{logs}/encode", depends=plan, **executor_kwargs)
    merge = executor([MergeStep(rec, work, str(Path(data_dir).resolve()))], tasks=1, logging_dir=f"{logs}/merge",
                     depends=encode, **executor_kwargs)
    return [scan, plan, encode, merge]
