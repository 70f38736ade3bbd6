"""Functional evaluation: k samples per problem, then the share that parses (the real Elixir
parser), the share the quality detectors (or the real Credo) find clean, and pass@k from
running the problem's ExUnit tests in the sandbox.

Samples that do not parse are failures without a run (they cannot compile), and identical
programs run once: both only save time, the figures are the same as running every sample.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from elixir_coder.corpus.checks import detect_quality
from elixir_coder.evaluation.passk import mean_pass_at_k
from elixir_coder.evaluation.problems import TASKS, Problem
from elixir_coder.evaluation.sandbox import RunResult, Sandbox
from elixir_coder.labels import QUALITY_LABELS
from elixir_coder.model.generate import Sampling, TextGenerator


def select(problems: Sequence[Problem], max_per_task: int | None, seed: int) -> list[Problem]:
    """Up to ``max_per_task`` problems per task, executable ones first, in a seeded order."""
    out = []
    for task in TASKS:
        mine = [p for p in problems if p.task == task]
        random.Random(seed).shuffle(mine)
        mine.sort(key=lambda p: not p.executable)  # stable: the shuffle decides within each group
        out += mine[:max_per_task] if max_per_task else mine
    return out


def find_credo(setting: str) -> str | None:
    """``linter=credo|auto``: the Credo escript from ``$CREDO`` or PATH (None when absent and auto)."""
    exe = os.environ.get("CREDO") or shutil.which("credo")
    if setting == "credo" and not exe:
        raise FileNotFoundError("eval.functional.linter=credo: no Credo found; set CREDO=/path/to/credo or put it on PATH")
    return exe if setting in ("credo", "auto") else None


def credo_unclean(codes: dict[int, str], credo: str, timeout_s: float) -> set[int]:
    """Indices of the codes in which Credo (one run over all of them) reports a quality-label issue.
    Credo only parses the files, it never runs them."""
    with tempfile.TemporaryDirectory(prefix="elixir-credo-") as tmp:
        (Path(tmp) / "lib").mkdir()
        for i, code in codes.items():
            (Path(tmp) / "lib" / f"sample_{i}.ex").write_text(code)
        proc = subprocess.run([credo, "suggest", "--strict", "--format", "json", "--no-color", "--mute-exit-status"],
                              cwd=tmp, capture_output=True, text=True, timeout=timeout_s)
        issues = json.loads(proc.stdout or "{}").get("issues", [])
    labels = set(QUALITY_LABELS)
    return {int(Path(i["filename"]).stem.split("_")[1]) for i in issues if i.get("check") in labels}


@dataclass
class Sample:
    problem: Problem
    completion: str
    parses: bool = False
    clean: bool = False
    run: RunResult | None = None

    def to_dict(self) -> dict:
        return {"problem": self.problem.name, "task": self.problem.task, "completion": self.completion,
                "parses": self.parses, "clean": self.clean, "run": self.run.to_dict() if self.run else None}


def generate_samples(model, tokenizer, problems: Sequence[Problem], samples: int, sampling: Sampling, seed: int,
                     batch_size: int, min_new_tokens: int, threads: int | None = 1) -> tuple[list[Sample], Counter]:
    """``samples`` completions per problem; prompts leaving fewer than ``min_new_tokens`` positions are skipped (counted)."""
    out, skipped = [], Counter()
    for task in TASKS:
        gen = TextGenerator(model, tokenizer, task=task, batch_size=batch_size, threads=threads)
        mine = []
        for p in problems:
            if p.task != task:
                continue
            if len(gen.encode(p.prompt)) + min_new_tokens > gen.max_prompt_tokens():
                skipped[f"{task}: prompt too long for model.max_len"] += 1
            else:
                mine.append(p)
        if not mine:
            continue
        texts = gen.complete([p.prompt for p in mine], sampling, seed=seed, samples=samples)
        out += [Sample(p, p.cut(t)) for p, ts in zip(mine, texts) for t in ts]
    return out, skipped


def score(samples: list[Sample], sandbox: Sandbox | None, parse, credo: str | None = None,
          workers: int = 1, credo_timeout_s: float = 300.0) -> None:
    """Fill in ``parses``, ``clean`` and ``run`` of every sample."""
    codes = [s.problem.code(s.completion) for s in samples]
    for s, code, ok in zip(samples, codes, parse(codes)):
        s.parses = ok
        s.clean = ok and (credo is not None or not detect_quality(code))
    if credo is not None:
        flagged = credo_unclean({i: c for i, (s, c) in enumerate(zip(samples, codes)) if s.parses}, credo, credo_timeout_s)
        for i in flagged:
            samples[i].clean = False
    todo = [s for s in samples if s.problem.executable]
    for s in todo:
        if not s.parses:
            s.run = RunResult(False, "syntax_error")
    runnable = {s.problem.run_inputs(s.completion) for s in todo if s.parses}
    if runnable and sandbox is None:
        raise RuntimeError("executable problems need a sandbox")
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = dict(zip(runnable, pool.map(lambda pt: sandbox.run(*pt), runnable)))
    for s in todo:
        if s.parses:
            s.run = results[s.problem.run_inputs(s.completion)]


def summarise(samples: list[Sample], ks: Sequence[int], skipped: Counter | None = None) -> dict:
    """Per task and overall: parse rate, clean rate, pass@k over executable problems, run outcomes."""
    def block(group: list[Sample]) -> dict:
        by_problem: dict[str, list[Sample]] = {}
        for s in group:
            by_problem.setdefault(s.problem.name, []).append(s)
        executable = [(len(ss), sum(bool(s.run and s.run.passed) for s in ss))
                      for ss in by_problem.values() if ss[0].problem.executable]
        n = len(group)
        out = {"problems": len(by_problem), "samples": n,
               "parse_rate": sum(s.parses for s in group) / n if n else None,
               "clean_rate": sum(s.clean for s in group) / n if n else None,
               "executable_problems": len(executable)}
        for k in ks:
            out[f"pass@{k}"] = mean_pass_at_k(executable, k)
        out["runs"] = dict(Counter(s.run.status for s in group if s.run is not None))
        return out

    summary = {task: block([s for s in samples if s.problem.task == task]) for task in TASKS}
    summary["all"] = block(samples)
    summary["skipped"] = dict(skipped or {})
    return summary
