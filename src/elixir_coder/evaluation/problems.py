"""Evaluation problems: what the model is asked to write and how its answer is run.

A problem file is JSONL, one problem a line (the built-in benchmark is written in the same
format, so MultiPL-E's Elixir problems, or your own, drop in with ``eval.functional.problems=``):

    {"name": "HumanEval_0_has_close_elements",      required, unique
     "task": "code_generation",                     or "test_generation"; default code_generation
     "prompt": "defmodule HumanEval do\n  def ...",  what the model continues
     "tests": "defmodule HumanEvalTest do ...",     ExUnit test module(s) run against the program
     "entry_point": "has_close_elements",           the function under test (informational)
     "prefix": "", "suffix": "",                    code around prompt + completion (default "")
     "stop_tokens": ["\ndefmodule", "\n\n"],         the completion is cut at the first one
     "subject": "defmodule M do ... end"}           test_generation: the module the generated tests run against

For ``code_generation`` the program is ``prefix + prompt + completion + suffix`` and ``tests`` run
against it; for ``test_generation`` the completion is the test module, run against ``subject``.
Without ``tests``/``subject`` a problem is still scored for parsing and cleanliness. A MultiPL-E
row (``name``, ``prompt``, ``tests``, ``stop_tokens``) is a valid problem as it is: its
``ExUnit.start()`` line is harmless, the harness starts ExUnit itself.

The built-in benchmark is the demo corpus's test split: for every documented function of a
test-split module, its doc, spec and head as the prompt, the rest of the module as prefix and
suffix, and the module's ExUnit tests; the whole module as a test_generation prompt. Tests are
kept only for modules whose reference source passes them in the sandbox (Phoenix and Ecto
modules need libraries the sandbox does not have); the others are scored for parsing and
cleanliness only, and the count is reported.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from elixir_coder.errors import DataError
from elixir_coder.io import atomic_write

TASKS = ("code_generation", "test_generation")
FIELDS = {"name", "task", "prompt", "tests", "entry_point", "prefix", "suffix", "stop_tokens", "subject"}


@dataclass(frozen=True)
class Problem:
    name: str
    prompt: str
    task: str = "code_generation"
    tests: str = ""
    entry_point: str = ""
    prefix: str = ""
    suffix: str = ""
    stop_tokens: tuple[str, ...] = field(default_factory=tuple)
    subject: str = ""

    @property
    def executable(self) -> bool:
        return bool(self.subject if self.task == "test_generation" else self.tests)

    def cut(self, completion: str) -> str:
        """The completion up to its first stop token."""
        ends = [i for i in (completion.find(s) for s in self.stop_tokens if s) if i >= 0]
        return completion[:min(ends)] if ends else completion

    def code(self, completion: str) -> str:
        """What is parsed and linted: the whole program, or the generated test module."""
        return completion if self.task == "test_generation" else self.prefix + self.prompt + completion + self.suffix

    def run_inputs(self, completion: str) -> tuple[str, str]:
        """(program, tests) for the sandbox."""
        if self.task == "test_generation":
            return self.subject, completion
        return self.code(completion), self.tests


def read_problems(path: str | Path) -> list[Problem]:
    """Problems from a JSONL file; a bad line stops with ``file:line`` and the reason."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such problem file (eval.functional.problems)")
    problems, names = [], set()
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("name"), str) or not isinstance(row.get("prompt"), str):
            raise DataError(f"{where}: a problem needs string fields 'name' and 'prompt'")
        row = {k: v for k, v in row.items() if k in FIELDS}
        row.setdefault("task", "code_generation")
        if row["task"] not in TASKS:
            raise DataError(f"{where}: task {row['task']!r}; use one of {', '.join(TASKS)}")
        if row["name"] in names:
            raise DataError(f"{where}: duplicate problem name {row['name']!r}")
        names.add(row["name"])
        row["stop_tokens"] = tuple(row.get("stop_tokens") or ())
        problems.append(Problem(**row))
    if not problems:
        raise DataError(f"{path}: holds no problems")
    return problems


def write_problems(path: str | Path, problems: list[Problem], header: dict) -> None:
    with atomic_write(path, "w") as fh:
        fh.write(json.dumps({"name": "#header", "prompt": "", "header": header}) + "\n")
        for p in problems:
            fh.write(json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in asdict(p).items()}) + "\n")


def _called(fn_name: str, tests: str) -> bool:
    return re.search(rf"\.{re.escape(fn_name)}\(", tests) is not None


def demo_problems(seed: int, n_modules: int, val_fraction: float, test_fraction: float,
                  split: str = "test") -> tuple[list[Problem], dict[str, tuple[str, str]]]:
    """Problems from the demo modules of ``split`` and, per module, (source, tests) to validate."""
    from elixir_coder.corpus.demo.modules import build_all
    from elixir_coder.corpus.recipe import demo_split

    problems, references = [], {}
    for r in build_all(seed, n_modules):
        m = r.module
        if demo_split(m.path, {"seed": seed, "val_fraction": val_fraction, "test_fraction": test_fraction}) != split:
            continue
        references[m.name] = (m.source, m.test_source)
        for prompt, body in r.prompts:
            at = m.source.find(prompt + body)
            fn = re.search(r"def\w*\s+(\w+[?!]?)", prompt.rstrip().splitlines()[-1])
            if at < 0 or fn is None:
                continue
            tested = _called(fn.group(1), m.test_source)
            problems.append(Problem(
                name=f"{m.name}.{fn.group(1)}", prompt=prompt, entry_point=fn.group(1),
                tests=m.test_source if tested else "", prefix=m.source[:at], suffix=m.source[at + len(prompt + body):],
            ))
        problems.append(Problem(name=f"{m.name}Test", prompt=m.source, task="test_generation", subject=m.source))
    return problems, references


def demo_benchmark(folder: str | Path, seed: int, n_modules: int, val_fraction: float, test_fraction: float,
                   sandbox, log=print, workers: int = 1) -> tuple[Path, dict]:
    """The demo benchmark file (built once, its references checked in ``sandbox``); returns (path, header)."""
    key = {"seed": seed, "demo_modules": n_modules, "val_fraction": val_fraction, "test_fraction": test_fraction}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    path = Path(folder) / f"demo-test-{digest}.jsonl"
    if path.is_file():
        return path, json.loads(path.read_text().split("\n", 1)[0])["header"]
    problems, references = demo_problems(seed, n_modules, val_fraction, test_fraction)
    log(f"Building the demo benchmark ({len(references)} test-split modules, references run once) in {path} ...")
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max(1, workers)) as pool:
        ran = dict(zip(references, pool.map(lambda st: sandbox.run(*st), references.values())))
    passing = {name for name, result in ran.items() if result.passed}
    kept = []
    for p in problems:
        module = p.name.removesuffix("Test") if p.task == "test_generation" else p.name.rsplit(".", 1)[0]
        if module not in passing:
            p = Problem(**{**asdict(p), "tests": "", "subject": ""})
        kept.append(p)
    header = {**key, "modules": len(references), "modules_with_passing_tests": len(passing),
              "problems": len(kept), "executable": sum(p.executable for p in kept)}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_problems(path, kept, header)
    return path, header


def load_problems(path: str | Path) -> list[Problem]:
    """``read_problems`` without the benchmark header line."""
    return [p for p in read_problems(path) if p.name != "#header"]
