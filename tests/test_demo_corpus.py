"""The built-in demo corpus: deterministic, varied, clean Elixir that the real parser accepts."""

from __future__ import annotations

import random
import re
import shutil
import time
from collections import Counter

import pytest

from elixir_coder.corpus.demo import DemoModule, generate_modules, generate_records
from elixir_coder.corpus.demo.modules import KINDS
from elixir_coder.corpus.records import validate_record
from elixir_coder.labels import GENERATION_TASKS

needs_elixir = pytest.mark.skipif(shutil.which("elixir") is None, reason="install elixir: apt-get install -y elixir")

DEF_NAME = re.compile(r"^\s*defp?\s+([^\s(,]+)")
ALIAS = re.compile(r"^\s*alias\s+(\S+)\s*$")


@pytest.fixture(scope="module")
def modules() -> list[DemoModule]:
    return generate_modules(0)


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return generate_records(0)


def test_same_seed_same_output_and_other_seed_differs():
    assert generate_modules(3, 40) == generate_modules(3, 40)
    random.seed(12345)  # global random state must not matter
    assert generate_records(3, 40) == generate_records(3, 40)
    assert [m.source for m in generate_modules(3, 40)] != [m.source for m in generate_modules(4, 40)]


def test_generation_is_fast():
    start = time.perf_counter()
    generate_records(0)
    assert time.perf_counter() - start < 3.0


def test_many_distinct_modules_of_every_kind(modules):
    assert len(modules) == 320
    assert len({m.name for m in modules}) >= 300
    assert len({m.path for m in modules}) == len(modules)
    counts = Counter(m.kind for m in modules)
    assert set(counts) == set(KINDS)
    assert min(counts.values()) >= 25, counts


def test_modules_are_composed_not_renamed(modules):
    bodies = {f.body for m in modules for f in m.functions}
    assert len(bodies) > 600
    masked = {m.source.replace(m.name, "X") for m in modules}
    assert len(masked) == len(modules)
    assert len({len(m.functions) for m in modules}) > 5


def test_functions_are_slices_of_the_source(modules):
    for m in modules:
        assert m.functions, m.name
        for f in m.functions:
            assert f.head + "\n" + f.body in m.source, (m.name, f.head)
            assert re.match(r"^  defp? \S", f.head) and f.head.endswith(" do")
            assert f.body.endswith("\n  end\n")
            assert f.public == f.head.startswith("  def ")
            assert f.arity >= 0


def test_records_follow_the_schema(records, modules):
    paths = {m.path for m in modules}
    for i, r in enumerate(records):
        validate_record(r, f"record {i}")
        assert set(r) == {"task", "prompt", "completion", "source"}
        assert r["task"] in GENERATION_TASKS
        assert r["completion"].strip()
        assert r["source"] in paths
    tasks_of: dict[str, set[str]] = {}
    for r in records:
        tasks_of.setdefault(r["source"], set()).add(r["task"])
    assert all(t == set(GENERATION_TASKS) for t in tasks_of.values())
    assert len(tasks_of) == len(modules)
    assert 2500 <= len(records) <= 4500
    assert sum(len(r["prompt"]) + len(r["completion"]) for r in records) < 3_200_000


def test_code_generation_records_come_from_the_module(records, modules):
    by_path = {m.path: m for m in modules}
    whole = [r for r in records if r["task"] == "code_generation" and not r["prompt"]]
    assert len(whole) == len(modules)
    for r in records:
        m = by_path[r["source"]]
        if r["task"] == "code_generation" and r["prompt"]:
            assert r["prompt"].lstrip().startswith("@doc")
            assert r["prompt"] + r["completion"] in m.source
        elif r["task"] == "code_generation":
            assert r["completion"] == m.source
        elif r["task"] == "test_generation":
            assert r["prompt"] == m.source and r["completion"] == m.test_source


def test_tests_call_the_modules_real_functions(modules):
    for m in modules:
        assert "use ExUnit.Case, async: true" in m.test_source or "ConnCase, async: true" in m.test_source
        assert re.search(r"^\s+(test|describe) ", m.test_source, re.M)
        if m.kind == "genserver":
            assert "start_supervised!" in m.test_source
        if m.kind == "ecto_schema":
            assert ".valid?" in m.test_source or "parse(" in m.test_source
        if m.kind == "phoenix_controller":
            assert re.search(r'(get|post|put|delete)\((conn|build_conn\(\)), ~p"/', m.test_source)


def test_sources_are_clean(modules):
    for m in modules:
        assert "@moduledoc" in m.source
        for part in m.name.split("."):
            assert re.fullmatch(r"[A-Z][A-Za-z0-9]*", part), m.name
        for text in (m.source, m.test_source):
            assert "IO.inspect" not in text
            assert "\t" not in text
            for line in text.splitlines():
                assert len(line) <= 98, (m.name, line)
                assert line == line.rstrip(), (m.name, line)
            aliases = [ALIAS.match(line).group(1) for line in text.splitlines() if ALIAS.match(line)]
            # Credo's AliasOrder has compared both case-sensitively and not; satisfy both
            assert aliases == sorted(aliases) == sorted(aliases, key=str.lower), m.name
        for line in m.source.splitlines():
            found = DEF_NAME.match(line)
            if found:
                assert re.fullmatch(r"[a-z_][a-z0-9_]*[?!]?", found.group(1)), (m.name, line)


def test_docs_sit_right_above_the_function(modules):
    for m in modules:
        lines = m.source.splitlines()
        for i, line in enumerate(lines):
            if line.strip().startswith("@doc"):
                j = i
                if line.strip().endswith('"""'):
                    j = next(k for k in range(i + 1, len(lines)) if lines[k].strip() == '"""')
                after = lines[j + 1].strip()
                assert after.startswith(("@spec", "def ")), (m.name, after)


@pytest.mark.elixir
@needs_elixir
def test_everything_parses_with_the_real_elixir_parser(modules, records):
    from elixir_coder.corpus.parser import ElixirParser

    snippets = [m.source for m in modules] + [m.test_source for m in modules]
    labels = [f"{m.path}" for m in modules] + [f"{m.path} (test)" for m in modules]
    for r in records:
        if r["task"] == "code_generation" and r["prompt"]:
            snippets.append(f"defmodule X do\n{r['prompt']}{r['completion']}end\n")
            labels.append(f"{r['source']}: {r['prompt'].splitlines()[-1].strip()}")
    with ElixirParser(backend="elixir") as parser:
        results = parser.parse_many(snippets)
    failures = [(label, res.line, res.message) for label, res in zip(labels, results) if not res.ok]
    assert not failures, failures[:5]
