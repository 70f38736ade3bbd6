"""Running generated Elixir: the sandbox survives hostile samples, and pass@k is exact."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path
from fractions import Fraction

import pytest

from elixir_coder.evaluation.functional import Sample, score, summarise
from elixir_coder.evaluation.passk import mean_pass_at_k, pass_at_k
from elixir_coder.evaluation.problems import Problem, load_problems, write_problems

needs_elixir = pytest.mark.skipif(shutil.which("elixir") is None, reason="install elixir: apt-get install -y elixir")

TESTS = """defmodule MathTest do
  use ExUnit.Case
  test "adds" do
    assert Math.add(1, 2) == 3
  end
end
"""


def module(body: str, at_compile: str = "") -> str:
    return f"defmodule Math do\n{at_compile}  def add(a, b) do\n{body}\n  end\nend\n"


@pytest.fixture(scope="module")
def sandbox():
    from elixir_coder.evaluation.sandbox import Sandbox

    return Sandbox(timeout_s=6.0, test_timeout_s=3.0, memory_mb=512)


def test_pass_at_k_matches_the_closed_form():
    assert pass_at_k(5, 2, 1) == Fraction(2, 5)
    assert pass_at_k(5, 2, 2) == 1 - Fraction(3, 10)  # 1 - C(3,2)/C(5,2)
    assert pass_at_k(5, 2, 4) == 1  # fewer than 4 wrong samples: any 4 contain a right one
    assert pass_at_k(5, 0, 5) == 0
    assert mean_pass_at_k([(5, 2), (5, 0)], 1) == pytest.approx(0.2)
    assert mean_pass_at_k([(1, 1)], 5) is None  # no problem has 5 samples
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


def test_problem_files_round_trip_and_reject_bad_lines(tmp_path):
    p = Problem("add", "  def add(a, b) do\n", tests=TESTS, prefix="defmodule Math do\n", suffix="end\n",
                stop_tokens=("\ndefmodule",))
    write_problems(tmp_path / "p.jsonl", [p], {"what": "test"})
    assert load_problems(tmp_path / "p.jsonl") == [p]
    assert p.cut("    a + b\n  end\n\ndefmodule X do") == "    a + b\n  end\n"
    (tmp_path / "bad.jsonl").write_text('{"name": "x", "prompt": "a"}\n{"name": "y"}\n')
    from elixir_coder.errors import DataError

    with pytest.raises(DataError, match=r"bad.jsonl:2: a problem needs"):
        load_problems(tmp_path / "bad.jsonl")


@pytest.mark.elixir
@needs_elixir
def test_pass_at_k_of_known_right_and_wrong_completions(sandbox):
    from elixir_coder.corpus.parser import shared_parser

    p = Problem("add", "  def add(a, b) do\n", tests=TESTS, prefix="defmodule Math do\n", suffix="end\n")
    q = Problem("add_again", "  def add(a, b) do\n", tests=TESTS, prefix="defmodule Math do\n", suffix="end\n")
    right, wrong, broken = "    a + b\n  end\n", "    a - b\n  end\n", "    a +\n"
    samples = [Sample(p, c) for c in (right, wrong, broken, right, wrong)] + [Sample(q, c) for c in (wrong, wrong, broken, wrong, wrong)]
    parser = shared_parser()
    score(samples, sandbox, lambda codes: [r.ok for r in parser.parse_many(codes)], workers=2)
    assert [s.run.status for s in samples[:5]] == ["passed", "failed", "syntax_error", "passed", "failed"]
    summary = summarise(samples, [1, 2, 5])["all"]
    # p: n=5, c=2 -> pass@1 2/5, pass@2 7/10, pass@5 1; q: c=0 -> 0. Means over the two problems.
    assert summary["pass@1"] == pytest.approx(0.2, abs=1e-12)
    assert summary["pass@2"] == pytest.approx(0.35, abs=1e-12)
    assert summary["pass@5"] == pytest.approx(0.5, abs=1e-12)
    assert summary["parse_rate"] == pytest.approx(0.8)
    assert summary["runs"] == {"passed": 2, "failed": 6, "syntax_error": 2}


HOSTILE = {
    "infinite loop while compiling": module("    a + b", at_compile="  Stream.repeatedly(fn -> 1 end) |> Stream.run()\n"),
    "System.halt": module("    System.halt(0)"),
    "10 GB allocation": module("    _ = :binary.copy(<<0>>, 10_000_000_000)\n    a + b"),
    "many processes": module('    for _ <- 1..500, do: Port.open({:spawn, "sleep 30"}, [])\n'
                             "    for _ <- 1..100_000, do: spawn(fn -> Process.sleep(30_000) end)\n    a + b"),
    "write outside its folder": module('    File.write!("{path}", "escaped")\n    a + b'),
    "network call": module("    {:ok, _} = :gen_tcp.connect({127, 0, 0, 1}, 4369, [], 2000)\n    a + b"),
}


@pytest.mark.elixir
@needs_elixir
@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_sample_is_that_samples_failure(sandbox, tmp_path, case):
    if sandbox.isolation != "namespaces" and case in ("write outside its folder", "network call"):
        pytest.skip("needs root and unshare for filesystem and network isolation")
    outside = tmp_path / f"escaped-{uuid.uuid4().hex}"
    program = HOSTILE[case].replace("{path}", str(outside))
    result = sandbox.run(program, TESTS)
    assert not result.passed and result.status in ("failed", "crashed", "timeout"), result
    assert not outside.exists()
    if case == "infinite loop while compiling":
        assert result.status == "timeout"
    # The evaluating process carries on: the next sample runs normally.
    assert sandbox.run(module("    a + b"), TESTS).passed


@pytest.mark.elixir
@needs_elixir
def test_sandbox_leaves_no_process_or_folder_behind(sandbox):
    import tempfile
    from pathlib import Path

    before = set(Path(tempfile.gettempdir()).glob("elixir-eval-*"))
    sandbox.run(module('    spawn(fn -> System.cmd("sleep", ["60"]) end)\n    a + b'), TESTS)
    assert set(Path(tempfile.gettempdir()).glob("elixir-eval-*")) == before
    if sandbox.isolation == "namespaces":
        # The kernel kills what is left in the PID namespace when its init ends; on a busy machine
        # that SIGKILL can still be in flight when run() returns, so allow it a moment to land.
        deadline = time.monotonic() + 5
        while (sleepers := [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p).startswith("sleep\x0060")]) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not sleepers, [_whence(p) for p in sleepers]  # what it was, should this ever fail again


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline") as fh:
            return fh.read()
    except OSError:
        return ""


def _whence(pid: str) -> str:
    """A process's state, parent and PID namespace: enough to tell where a leftover came from."""
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        return "; ".join([*(line for line in status if line.startswith(("State", "PPid", "NSpid"))),
                          os.readlink(f"/proc/{pid}/ns/pid"), f"own {os.readlink('/proc/self/ns/pid')}"])
    except OSError as exc:
        return f"{pid}: gone ({exc})"


def test_demo_benchmark_problems_rebuild_their_modules():
    from elixir_coder.corpus.demo.modules import build_all
    from elixir_coder.evaluation.problems import demo_problems

    problems, references = demo_problems(seed=7, n_modules=40, val_fraction=0.1, test_fraction=0.3)
    assert references and problems
    sources = {r.module.name: r for r in build_all(7, 40)}
    for p in problems:
        if p.task == "test_generation":
            assert p.subject == p.prompt == references[p.name.removesuffix("Test")][0]
            continue
        module = sources[p.name.rsplit(".", 1)[0]]
        body = dict(module.prompts)[p.prompt]
        assert p.code(body) == module.module.source  # the reference completion restores the module
        assert (p.tests == module.module.test_source) == (f".{p.entry_point}(" in module.module.test_source)
