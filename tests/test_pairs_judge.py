"""Pairs that teach the rule: security twins differ only at the site, lengths do not give the
answer away, the real Credo and Sobelow judge what is kept, and the layout keeps data flowing
one way (corpus never imports training)."""

from __future__ import annotations

import difflib
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from elixir_coder.corpus.demo import generate_records
from elixir_coder.corpus.lint import Judge, ToolMissing, find_tool, require_tool
from elixir_coder.corpus.pairs import clean_sources, format_report, injected_block, make_pairs, shortcut_probe
from elixir_coder.corpus.rules import SECURITY_INJECTORS
from elixir_coder.labels import QUALITY_LABELS, SECURITY_LABELS

ROOT = Path(__file__).resolve().parents[1]
TOOLS = Judge.find()
needs_tools = pytest.mark.skipif(
    TOOLS is None, reason="install Credo and Sobelow (mix escript.install hex credo|sobelow) or set $CREDO/$SOBELOW")


@pytest.fixture(scope="module")
def demo_sources():
    return clean_sources(generate_records(0, 320), 24)


def _hunks(clean: str, bad: str) -> list[tuple[int, int]]:
    ops = difflib.SequenceMatcher(None, clean.split("\n"), bad.split("\n"), autojunk=False).get_opcodes()
    return [(j1, j2) for tag, _, _, j1, j2 in ops if tag != "equal"]


def test_security_twins_differ_in_one_place_and_not_always_by_growing(demo_sources):
    for label, injector in SECURITY_INJECTORS.items():
        if label == "Sobelow.Config.CSRF":
            continue  # routers only; covered below
        twins = [injector(code, random.Random(f"{source}:{v}")) for source, code in demo_sources for v in range(2)]
        twins = [t for t in twins if t is not None]
        assert len(twins) >= 20, label
        for clean, bad in twins:
            hunks = _hunks(clean, bad)
            assert hunks and hunks[-1][0] - hunks[0][1] <= 3, f"{label}: edits far apart\n{bad}"
        longer = sum(len(bad) > len(clean) for clean, bad in twins) / len(twins)
        assert 0.2 <= longer <= 0.7, f"{label}: vulnerable side longer in {longer:.0%} of twins"
        blocks = {injected_block(clean, bad) for clean, bad in twins}
        assert len(blocks) >= 0.5 * len(twins), f"{label}: only {len(blocks)} distinct blocks in {len(twins)} twins"


def test_security_twins_reuse_the_modules_own_names():
    code = ('defmodule Shop.Orders.Invoice do\n  @moduledoc "Invoices."\n\n  def total(invoice_id) do\n'
            '    invoice_id\n  end\nend\n')
    seen = set()
    for seed in range(12):
        clean, bad = SECURITY_INJECTORS["Sobelow.SQL.Query"](code, seed)
        assert "invoice" in bad
        seen.add(bad)
    assert len(seen) >= 6


def test_csrf_twins_keep_or_drop_only_the_forgery_plug():
    router = ('defmodule ShopWeb.Router do\n  use ShopWeb, :router\n\n  pipeline :browser do\n'
              '    plug :accepts, ["html"]\n    plug :fetch_session\n    plug :protect_from_forgery\n  end\nend\n')
    for seed in range(6):
        clean, bad = SECURITY_INJECTORS["Sobelow.Config.CSRF"](router, seed)
        assert clean.count("plug :protect_from_forgery") == bad.count("plug :protect_from_forgery") + 1
        assert len(_hunks(clean, bad)) == 1


def test_anchors_cover_every_module_kind():
    from elixir_coder.corpus.prepare import load_records
    from elixir_coder.corpus.recipe import recipe

    records = load_records(recipe(jsonl=None, source_dir=None, vocab_size=8192, val_fraction=0.1, seed=0,
                                  demo_modules=320, max_sample_tokens=2048))
    picked = clean_sources(records, 12)
    assert len(picked) == 12 and any("router" in code and ":router" in code for _, code in picked)


def test_tool_lookup_order_and_a_clear_error(tmp_path, monkeypatch):
    fake = tmp_path / "credo"
    fake.write_text("#!/bin/sh\n")
    monkeypatch.setenv("CREDO", str(tmp_path / "absent"))
    assert find_tool("credo", str(fake)) == str(fake.resolve())  # config first
    assert find_tool("credo") is None  # then $CREDO, even when wrong: no silent fallback
    monkeypatch.delenv("CREDO")
    monkeypatch.setenv("PATH", str(tmp_path))
    fake.chmod(0o755)
    assert find_tool("credo") == str(fake)
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("SOBELOW", raising=False)  # CI points it at the real escript
    with pytest.raises(ToolMissing, match=r"mix escript.install hex sobelow"):
        require_tool("sobelow", None, "contrastive.sobelow")


def test_report_lists_every_rule_and_every_drop(demo_sources):
    kept, cands, drops = make_pairs(demo_sources[:6], seed=0)
    text = format_report(cands, kept, drops, judged_by_tools=False)
    assert all(label in text for label in QUALITY_LABELS + SECURITY_LABELS)
    assert "built-in detectors" in text and "dropped:" in text


def test_shortcut_probe_sees_length_and_repetition():
    same = [("R", "a\n", "a\nIO.inspect(x)\n")] * 4
    varied = [("S", f"def f{i}(x) do\n  x\nend\n", f"def f{i}(x) do\n  z\nend\n") for i in range(4)]
    probe = shortcut_probe(same + varied)
    assert probe["R"] == (4, 1.0, 0.25)
    assert probe["S"][1] == 0.5 and probe["S"][2] == 1.0  # equal lengths: a coin flip; every block differs
    assert injected_block(varied[0][1], varied[0][2]) == "def f0(x) do\nz\nend"


def test_corpus_never_imports_training():
    offenders = [str(p) for p in (ROOT / "src/elixir_coder/corpus").rglob("*.py")
                 if re.search(r"^\s*(from|import) elixir_coder\.training", p.read_text(), re.M)]
    assert offenders == []


def test_pair_modules_stay_under_about_600_lines():
    corpus = ROOT / "src/elixir_coder/corpus"
    files = [*corpus.glob("*.py"), *corpus.glob("rules/*.py"), *corpus.glob("detectors/*.py"),
             ROOT / "src/elixir_coder/training/contrastive.py"]
    long = {str(p.relative_to(ROOT)): n for p in files if (n := p.read_text().count("\n")) > 620}
    assert long == {}


@pytest.mark.lint
@needs_tools
def test_judge_maps_findings_back_and_ignores_copies_in_other_files():
    clean = 'defmodule A.B do\n  @moduledoc "x"\n\n  def run(x), do: x + 1\nend\n'
    inspect = clean.replace("x + 1", "IO.inspect(x)")
    body = ("  def run(user, opts) do\n    user\n    |> Map.get(:items, [])\n"
            "    |> Enum.filter(fn item -> item.active and item.count > 0 end)\n"
            "    |> Enum.map(fn item -> %{id: item.id, total: item.count * item.price} end)\n"
            "    |> Enum.take(Keyword.get(opts, :limit, 10))\n  end\n")
    one = f'defmodule C.D do\n  @moduledoc "x"\n\n{body}end\n'
    twice = f'defmodule E.F do\n  @moduledoc "x"\n\n{body}\n{body.replace("def run(", "def run_again(")}end\n'
    found = TOOLS.credo([clean, inspect, one, twice, twice.replace("E.F", "K.L")], groups=["a", "b", "c", "c", "d"])
    assert found[0] == {} and found[1]["Credo.Check.Warning.IoInspect"] == 1
    assert "Credo.Check.Design.DuplicatedCode" not in found[2]  # its copy lives in another file
    # two modules with the same copied function: each still reports its own copy
    assert found[3]["Credo.Check.Design.DuplicatedCode"] >= 1 and found[4]["Credo.Check.Design.DuplicatedCode"] >= 1
    sql = ('defmodule G.H do\n  alias G.Repo\n\n  def find(id), do: Repo.query("SELECT * FROM t WHERE id = #{id}")\nend\n')
    assert TOOLS.sobelow([clean, sql]) == [{}, {"Sobelow.SQL.Query": 1}]


@pytest.mark.lint
@pytest.mark.slow
@needs_tools
def test_kept_pairs_are_what_the_real_tools_say(demo_sources):
    kept, cands, drops = make_pairs(demo_sources[:8], seed=0, tool=TOOLS)
    assert kept and all(c.verdict for c in cands)
    by_rule = {}
    for c in cands:
        by_rule.setdefault(c.rule, []).append(c.verdict["bad"] and not c.verdict["clean"] and not c.verdict["extra"])
    confirmed = {rule: sum(v) / len(v) for rule, v in by_rule.items()}
    assert all(share >= 0.8 for share in confirmed.values()), confirmed


def test_data_cli_prints_the_report(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "elixir_coder.cli.data", "pairs", "--report", "contrastive.judge=builtin",
         "contrastive.max_anchors=6", "contrastive.min_pairs=0", f"paths.data_dir={tmp_path}", "data.demo_modules=40"],
        capture_output=True, text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert "judge: built-in detectors" in out.stdout and "Sobelow.SQL.Query" in out.stdout


def test_rare_rules_draw_from_the_reserve_and_drop_nothing_for_it(demo_sources):
    from elixir_coder.corpus.pairs import candidates

    plain = demo_sources[:3]
    router = ('defmodule ShopWeb.Router do\n  use ShopWeb, :router\n\n  pipeline :browser do\n'
              '    plug :accepts, ["html"]\n    plug :fetch_session\n    plug :protect_from_forgery\n  end\nend\n')
    routers = [("shop", router), ("blog", router.replace("Shop", "Blog"))]
    csrf = ["Sobelow.Config.CSRF"]
    alone, drops = candidates(plain, csrf, min_pairs=2, max_variants=2)
    assert alone == [] and drops[("Sobelow.Config.CSRF", "no site or not confirmed")] == 3
    more, more_drops = candidates(plain, csrf, min_pairs=2, max_variants=2, reserve=routers)
    assert len(more) == 2 and {c.source for c in more} <= {n for n, _ in routers}
    assert more_drops == drops  # reserve modules without a site are no drops


def test_module_doc_and_module_name_injections_leave_no_side_finding():
    from elixir_coder.corpus.rules import QUALITY_INJECTORS

    doc = ('defmodule Old.Thing do\n  @moduledoc "Old."\n  @moduledoc deprecated: "Use New.Thing"\n\n'
           '  def run(x), do: x\nend\n')
    bad = QUALITY_INJECTORS["Credo.Check.Readability.ModuleDoc"](doc, 0)
    assert "@moduledoc" not in bad  # a second @moduledoc (since:/deprecated:) also documents the module
    errors = ('defmodule Shop.OrderMissingError do\n  @moduledoc "Raised."\n  defexception [:id]\nend\n\n'
              'defmodule ShopCart.LineItem do\n  @moduledoc "Items."\n  def run(x), do: x\nend\n')
    for seed in range(8):
        renamed = QUALITY_INJECTORS["Credo.Check.Readability.ModuleNames"](errors, seed)
        assert "Shop.OrderMissingError" in renamed and "ShopCart.LineItem" not in renamed


def test_alias_order_builds_a_group_from_the_modules_it_calls():
    from elixir_coder.corpus.rules import QUALITY_INJECTORS

    code = ('defmodule Shop.Report do\n  @moduledoc "Report."\n\n  def run(rows) do\n'
            '    rows |> Shop.Orders.Totals.sum() |> Shop.Billing.Invoice.format()\n  end\nend\n')
    clean, bad = QUALITY_INJECTORS["Credo.Check.Readability.AliasOrder"](code, 0)
    assert "  alias Shop.Billing.Invoice\n  alias Shop.Orders.Totals\n" in clean  # in order on the clean side
    assert "rows |> Totals.sum() |> Invoice.format()" in clean
    assert bad == clean.replace("alias Shop.Billing.Invoice\n  alias Shop.Orders.Totals",
                                "alias Shop.Orders.Totals\n  alias Shop.Billing.Invoice")
