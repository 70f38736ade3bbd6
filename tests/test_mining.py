"""Mining all tasks from a small mix project written here: what each task gets, and what is counted."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

import pytest

from elixir_coder.corpus.labelers import CredoSobelowLabeler, DetectorLabeler, make_labeler
from elixir_coder.corpus.layout import arities, defined_names
from elixir_coder.corpus.mining import mine_project
from elixir_coder.corpus.records import validate_record
from elixir_coder.errors import DataError

SHOP = '''defmodule Shop do
  @moduledoc """
  A tiny shop.
  """

  @doc """
  Adds two prices.

  ## Examples

      iex> Shop.add(1, 2)
      3

  """
  @spec add(integer, integer) :: integer
  def add(a, b) do
    a + b
  end

  @doc "Doubles a price."
  def double(x), do: x * 2

  @doc false
  def internal(x), do: x

  def undocumented(x) do
    x
  end
end
'''
CART = '''defmodule Shop.Cart do
  @moduledoc false

  def total(items, discount \\\\ 0) do
    Enum.sum(items) - discount
  end
end
'''
FILES = '''defmodule Shop.Files do
  @moduledoc "Reads user files."

  @doc "Reads the file at `path`."
  def read(path) do
    File.read!(path)
  end
end
'''
SHOP_TEST = '''defmodule ShopTest do
  use ExUnit.Case
  doctest Shop

  describe "add/2" do
    test "adds" do
      assert Shop.add(1, 2) == 3
    end
  end

  describe "when empty" do
    test "nothing" do
      assert Shop.undocumented(1) == 1
    end
  end
end
'''
CART_TEST = '''defmodule Shop.CartTest do
  use ExUnit.Case

  describe "total/1" do
    test "sums" do
      assert Shop.Cart.total([1, 2]) == 3
    end
  end

  describe "missing/3" do
    test "is not there" do
      assert true
    end
  end
end
'''
ORPHAN_TEST = '''defmodule OrphanTest do
  use ExUnit.Case

  test "has no module" do
    assert true
  end
end
'''
PROJECT = {
    "lib/shop.ex": SHOP,
    "lib/shop/cart.ex": CART,
    "lib/shop/files.ex": FILES,
    "test/shop_test.exs": SHOP_TEST,
    "test/shop/cart_test.exs": CART_TEST,
    "test/orphan_test.exs": ORPHAN_TEST,
    "test/test_helper.exs": "ExUnit.start()\n",
    "mix.exs": 'defmodule Shop.MixProject do\n  use Mix.Project\n\n  def project, do: [app: :shop, version: "0.1.0"]\nend\n',
}


@pytest.fixture
def project(tmp_path: Path) -> dict[str, str]:
    """The fixture project written to disk and read back as the pipeline hands it over."""
    for rel, text in PROJECT.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    return {p.relative_to(tmp_path).as_posix(): p.read_text(encoding="utf-8") for p in tmp_path.rglob("*.ex*")}


def mine(files, **kw):
    stats = Counter()
    records = list(mine_project(files, stats=stats, **kw))
    return records, stats


def only(records, task, kind, source=None):
    return [r for r in records if r["task"] == task and r["kind"] == kind and (source is None or r["source"] == source)]


def test_every_record_follows_the_schema_and_keeps_its_kind(project):
    records, _ = mine(project, classify_fraction=1.0)
    for i, r in enumerate(records):
        assert validate_record(r, f"record {i}")["kind"]
    tasks = Counter(r["task"] for r in records)
    assert set(tasks) == {"code_generation", "test_generation", "explanation", "quality", "security"}


def test_code_generation_has_every_file_whole_and_documented_functions(project):
    records, _ = mine(project)
    files = only(records, "code_generation", "file")
    assert {r["source"]: r["completion"] for r in files} == project
    assert all(r["prompt"] == "" for r in files)
    add, double = only(records, "code_generation", "documented_function", "lib/shop.ex")
    assert add["prompt"].startswith('  @doc """\n  Adds two prices.')
    assert add["prompt"].endswith("  @spec add(integer, integer) :: integer\n  def add(a, b) do\n")
    assert add["completion"] == "    a + b\n  end\n"
    assert double["prompt"] == '  @doc "Doubles a price."\n  def double(x), do:' and double["completion"] == " x * 2\n"
    (read,) = only(records, "code_generation", "documented_function", "lib/shop/files.ex")
    assert read["prompt"].endswith("def read(path) do\n") and read["completion"] == "    File.read!(path)\n  end\n"


def test_test_generation_pairs_modules_with_tests_describes_and_doctests(project):
    records, stats = mine(project)
    pairs = {(r["source"], r["prompt"]) for r in only(records, "test_generation", "test_file")}
    assert pairs == {("test/shop_test.exs", SHOP), ("test/shop/cart_test.exs", CART)}
    assert all(r["completion"] == project[r["source"]] for r in only(records, "test_generation", "test_file"))

    describes = {r["completion"].splitlines()[0]: r["prompt"] for r in only(records, "test_generation", "describe_block")}
    assert set(describes) == {'  describe "add/2" do', '  describe "total/1" do'}
    assert "  def add(a, b) do\n    a + b\n  end\n" in describes['  describe "add/2" do']
    assert "def total(items, discount \\\\ 0) do" in describes['  describe "total/1" do']  # total/1 through its default

    (doctest,) = only(records, "test_generation", "doctest")
    assert doctest["completion"] == "iex> Shop.add(1, 2)\n3\n"
    assert "iex>" not in doctest["prompt"] and "## Examples" not in doctest["prompt"]
    assert "Adds two prices." in doctest["prompt"] and doctest["prompt"].endswith("def add(a, b) do\n    a + b\n  end\n")

    assert stats["test_file_without_module"] == 1  # test/orphan_test.exs
    assert stats["describe_not_function"] == 1  # "when empty"
    assert stats["describe_function_not_found"] == 1  # "missing/3"


@pytest.mark.parametrize("pieces", [1, 2, 3])
def test_a_project_mined_in_pieces_gives_the_same_records(project, pieces):
    """Preparation mines a big project in chunks of files (each reads the others as context):
    together they give exactly the records and counts of mining it whole."""
    whole, whole_stats = mine(project)
    paths = sorted(project)
    chunks = [paths[k::pieces] for k in range(pieces)]  # tests and their modules in different chunks
    parts, part_stats = [], Counter()
    for chunk in chunks:
        records, stats = mine(project, emit=set(chunk))
        parts += records
        part_stats += stats
    key = lambda r: sorted((k, str(v)) for k, v in r.items())  # noqa: E731
    assert sorted(map(key, parts)) == sorted(map(key, whole)) and part_stats == whole_stats
    assert only(whole, "test_generation", "describe_block")  # the context mattered


class Reads(dict):
    """Files that note which of them were read (preparation reads a task's files lazily)."""

    def __init__(self, files):
        super().__init__(files)
        self.read = set()

    def __getitem__(self, path):
        self.read.add(path)
        return super().__getitem__(path)


def test_a_chunk_reads_only_its_files_and_the_modules_its_tests_name(project):
    """With each file's defined names known from the scan pass, a chunk of a big project reads its
    own files and the modules its tests are paired with, not the whole project, and mines the same."""
    defines = {path: defined_names(text) for path, text in project.items()}
    for test, lib in (("test/shop/cart_test.exs", "lib/shop/cart.ex"), ("test/shop_test.exs", "lib/shop.ex")):
        files = Reads(project)
        records, stats = mine(files, emit={test}, defines=defines)
        assert (records, stats) == mine(project, emit={test})
        assert files.read == {test, lib}
        assert only(records, "test_generation", "describe_block", test)


@pytest.mark.parametrize(
    "lib, test",
    [
        ("apps/billing/lib/billing/invoice.ex", "apps/billing/test/billing/invoice_test.exs"),  # umbrella
        ("lib/elixir/lib/invoice.ex", "lib/elixir/test/elixir/invoice_test.exs"),  # the Elixir repository
        ("lib/invoicing.ex", "test/whatever_test.exs"),  # no path match: by the test module's name
    ],
)
def test_test_files_pair_in_umbrellas_side_by_side_apps_and_by_module_name(lib, test):
    files = {
        lib: "defmodule Billing.Invoice do\n  def total(x), do: x\nend\n",
        test: 'defmodule Billing.InvoiceTest do\n  use ExUnit.Case\n\n  describe "total/1" do\n    test "t" do\n'
        "      assert Billing.Invoice.total(1) == 1\n    end\n  end\nend\n",
    }
    records, stats = mine(files)
    assert [(r["prompt"], r["completion"]) for r in only(records, "test_generation", "test_file")] == [(files[lib], files[test])]
    (describe,) = only(records, "test_generation", "describe_block")
    assert describe["prompt"] == "  def total(x), do: x\n" and describe["source"] == test
    assert not stats["test_file_without_module"]


def test_protocols_and_implementations_are_modules():
    code = (
        'defprotocol Priced do\n  @moduledoc "Things with a price."\n\n  @doc "The price."\n  def price(item)\nend\n\n'
        "defimpl Priced, for: Map do\n  def price(map), do: map.price\nend\n"
    )
    records, stats = mine({"lib/priced.ex": code}, classify_fraction=1.0)
    assert [r["completion"] for r in only(records, "explanation", "moduledoc")] == ["Things with a price.\n"]
    assert [r["completion"] for r in only(records, "explanation", "function_doc")] == ["The price.\n"]
    assert stats["documented_function_without_body"] == 1  # a protocol function has no body to generate
    assert [r["text"].splitlines()[0] for r in records if r["task"] == "quality"] == ["defprotocol Priced do", "defimpl Priced, for: Map do"]


def test_explanation_takes_moduledoc_and_doc_text_out_of_the_code(project):
    records, stats = mine(project)
    moduledocs = {r["source"]: r for r in only(records, "explanation", "moduledoc")}
    assert set(moduledocs) == {"lib/shop.ex", "lib/shop/files.ex"}  # Shop.Cart says @moduledoc false
    assert moduledocs["lib/shop.ex"]["completion"] == "A tiny shop.\n"
    assert moduledocs["lib/shop.ex"]["prompt"].startswith("defmodule Shop do\n\n  @doc")
    assert "A tiny shop" not in moduledocs["lib/shop.ex"]["prompt"]
    assert moduledocs["lib/shop/files.ex"]["completion"] == "Reads user files.\n"

    docs = {r["completion"]: r["prompt"] for r in only(records, "explanation", "function_doc")}
    assert docs["Reads the file at `path`.\n"] == "  def read(path) do\n    File.read!(path)\n  end\n"
    add_doc = next(d for d in docs if d.startswith("Adds two prices."))
    assert "iex> Shop.add(1, 2)" in add_doc and docs[add_doc].startswith("  @spec add")

    assert stats["moduledoc_false"] == 1 and stats["doc_false"] == 1
    assert stats["public_function_without_doc"] >= 2  # Shop.undocumented, Shop.Cart.total, ...
    assert not [r for r in records if r["task"] == "clarification"]


def test_quality_and_security_label_modules_with_clean_ones_as_negatives(project):
    records, stats = mine(project, classify_fraction=1.0)
    security = {r["source"]: r for r in records if r["task"] == "security"}
    assert security["lib/shop/files.ex"]["labels"] == ["Sobelow.Traversal.FileModule"]
    assert security["lib/shop/files.ex"]["text"] == FILES and security["lib/shop/files.ex"]["kind"] == "module"
    assert security["lib/shop.ex"]["labels"] == []
    quality = {r["source"]: r["labels"] for r in records if r["task"] == "quality"}
    assert quality["test/orphan_test.exs"] == ["Credo.Check.Readability.ModuleDoc"]
    assert quality["lib/shop.ex"] == []
    assert stats["classification_unit_not_sampled"] == 0


def test_long_modules_are_labelled_per_function_and_nothing_is_longer_than_the_bound(project):
    records, stats = mine(project, classify_fraction=1.0, classify_max_lines=6)
    texts = [r for r in records if r["task"] == "security"]
    assert all(len(r["text"].splitlines()) <= 6 for r in texts)
    read = [r for r in texts if "def read(path)" in r["text"]]
    assert [(r["kind"], r["labels"]) for r in read] == [("function", ["Sobelow.Traversal.FileModule"])]
    assert any(r["kind"] == "block" and r["text"].startswith('  describe "add/2"') for r in texts)
    assert stats["classification_unit_too_long"] >= 1  # Shop.add with its doc is 13 lines


def test_classify_fraction_samples_units_and_counts_the_rest(project):
    everything, _ = mine(project, classify_fraction=1.0)
    units = sum(r["task"] == "quality" for r in everything)
    records, stats = mine(project, classify_fraction=0.0)
    assert not [r for r in records if r["task"] in ("quality", "security")]
    assert stats["classification_unit_not_sampled"] == units
    assert mine(project, classify_fraction=0.5) == mine(project, classify_fraction=0.5)  # deterministic


def test_bad_mining_settings_are_refused():
    with pytest.raises(DataError, match="classify_fraction=1.5"):
        mine({"lib/a.ex": "x = 1\n"}, classify_fraction=1.5)
    with pytest.raises(DataError, match="classify_max_lines=0"):
        mine({"lib/a.ex": "x = 1\n"}, classify_max_lines=0)


def test_a_block_without_its_end_is_counted_not_guessed():
    records, stats = mine({"lib/a.ex": 'defmodule A do\n  @moduledoc "A."\n\n  def f(x) do\n    x\n'}, classify_fraction=1.0)
    assert stats["unclosed_block"] == 1 and stats["unlabelable_for_classification"] == 1
    assert [r["kind"] for r in records] == ["file"]


def test_unlabelable_text_is_counted_not_called_clean():
    labeler = DetectorLabeler()
    clean = "defmodule A do\n  @moduledoc false\n  def f(x), do: x\nend\n"
    assert labeler.label([clean, "defmodule A do\n  def f(x) do\n"]) == [(set(), set()), None]
    # Balanced, but the rest (and any finding in it) is inside a heredoc that never closes.
    open_heredoc = 'defmodule A do\n  @moduledoc false\n  def f(x), do: x\nend\n@doc """\ndef badName, do: IO.inspect(1)\n'
    assert labeler.label([open_heredoc, open_heredoc.replace("@doc", "@doc ~S")]) == [None, None]
    files = {"lib/a.ex": "defmodule A do\n  def f(x) do\n    [x\n  end\nend\n"}
    records, stats = mine(files, classify_fraction=1.0)
    assert stats["unlabelable_for_classification"] == 1
    assert not [r for r in records if r["task"] in ("quality", "security")]


def test_detector_labeler_matches_the_detectors_it_wraps(project):
    from elixir_coder.corpus.checks import detect_quality, detect_security

    texts = list(project.values()) + ["def run(p), do: System.cmd(p, [])\n", "def f(x), do: String.to_atom(x)\n"]
    assert DetectorLabeler().label(texts) == [(detect_quality(t), detect_security(t)) for t in texts]


def test_arities_count_defaults_and_binaries():
    assert arities("(a, b \\\\ 1) do") == {1, 2}
    assert arities("(<<a, b>>, [c, d]) when is_binary(a) do") == {2}
    assert arities(" do") == {0}
    assert arities('("a,b", ?,)') == {2}


def test_credo_sobelow_absent_names_what_to_install(monkeypatch, tmp_path):
    monkeypatch.delenv("CREDO", raising=False)
    monkeypatch.delenv("SOBELOW", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DataError, match="mix escript.install hex credo"):
        make_labeler("credo_sobelow")
    monkeypatch.setenv("CREDO", str(tmp_path / "nope"))
    with pytest.raises(DataError, match="CREDO=.*not an executable"):
        make_labeler("credo_sobelow")
    with pytest.raises(DataError, match="data.labeler='pylint'"):
        make_labeler("pylint")


@pytest.mark.elixir
def test_a_tool_that_prints_no_report_is_an_error_not_all_clean(tmp_path):
    broken = tmp_path / "credo"
    broken.write_text("#!/bin/sh\necho 'escript: exception error: undef' >&2\nexit 127\n")
    broken.chmod(0o755)
    with pytest.raises(DataError, match="credo: printed no JSON report .exit 127: escript: exception error"):
        CredoSobelowLabeler(credo=str(broken), sobelow=str(broken)).label([FILES])


def _missing_tools() -> list[str]:
    return [env for env, exe in (("CREDO", "credo"), ("SOBELOW", "sobelow")) if not (os.environ.get(env) or shutil.which(exe))]


@pytest.mark.lint
@pytest.mark.elixir
@pytest.mark.skipif(bool(_missing_tools()), reason=f"needs the real tools: set {' and '.join(_missing_tools())} (or put them on PATH)")
def test_credo_sobelow_label_a_batch_with_the_real_tools(project):
    stats = Counter()
    texts = [FILES, SHOP, "def badName(x) do\n  IO.inspect(x)\n  System.cmd(x, [])\nend\n", "defmodule A do\n  def f(x) do\n",
             "def f(path) do\n  File.read!(path)\n  :ok\nend\n"]
    labels = make_labeler("credo_sobelow").label(texts, stats)
    assert labels[0] == (set(), {"Sobelow.Traversal.FileModule"})
    assert labels[1] == (set(), set())
    assert labels[2] == ({"Credo.Check.Readability.FunctionNames", "Credo.Check.Warning.IoInspect"}, {"Sobelow.CI.System"})
    assert labels[3] is None  # the real parser rejects it; Credo would have skipped it silently
    assert labels[4] == (set(), {"Sobelow.Traversal.FileModule"})
    assert stats["credo_finding_outside_vocabulary:Credo.Check.Warning.UnusedFileOperation"] == 1
    records = list(mine_project(project, labeler=CredoSobelowLabeler(), classify_fraction=1.0))
    security = {r["source"]: r["labels"] for r in records if r["task"] == "security"}
    assert security["lib/shop/files.ex"] == ["Sobelow.Traversal.FileModule"]
