"""Contrastive data: throughput and shortcuts.

Throughput: the Elixir parser bridge (ElixirParser.parse_many) against one `elixir -e` process
per snippet, and valid pairs/s of pair generation on the demo corpus. The per-snippet baseline is
what a naive checker would do; it pays the BEAM start-up for every snippet, which is why the
long-lived server exists.

Shortcut probe (--probe): per rule, the accuracy of "the longer side is the violating one" (ties
count half: a coin flip) and the share of distinct injected blocks (``corpus.pairs.injected_block``:
the changed lines widened to the definition that carries them). A rule a length test separates, or
whose injections repeat a few blocks, teaches the shortcut rather than the rule. Reads the pair
files `elixir-data pairs` wrote (--pairs-dir, e.g. data/processed), or generates them for
--anchors modules of the demo corpus or of --source-dir, printing the judge's per-rule report
first (with --judge tools: the real tools' agreement, unlabelled findings, clean positives).

Usage: python bench/pairs.py [--snippets 1000] [--baseline 10] [--anchors 32]
       python bench/pairs.py --probe [--pairs-dir data/processed | --source-dir DIR] [--anchors 0] [--judge tools]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from elixir_coder.corpus.parser import ElixirParser

BASELINE_SCRIPT = "IO.read(:stdio, :eof) |> Code.string_to_quoted() |> elem(0) |> IO.puts()"

NAMES = ["user", "order", "item", "account", "event", "payload", "config", "state", "entry", "token"]


def _function(rng: random.Random, name: str) -> list[str]:
    arg, other = rng.sample(NAMES, 2)
    kind = rng.randrange(5)
    if kind == 0:
        return [
            f"  @doc \"Returns the {arg} with its {other} normalised.\"",
            f"  @spec {name}(map(), keyword()) :: {{:ok, map()}} | {{:error, term()}}",
            f"  def {name}(%{{{arg}: {arg}}} = params, opts \\\\ []) when is_map(params) do",
            f"    {arg}",
            f"    |> Map.get(:{other}, %{{}})",
            f"    |> Enum.map(fn {{k, v}} -> {{k, String.trim(to_string(v))}} end)",
            "    |> Map.new()",
            f"    |> then(&{{:ok, Map.put(params, :{other}, &1)}})",
            "  end",
        ]
    if kind == 1:
        return [
            f"  def {name}({arg}) do",
            f"    case Repo.get({arg}.id) do",
            "      nil ->",
            "        {:error, :not_found}",
            "",
            f"      %{{status: :active}} = {other} ->",
            f"        {{:ok, {other}}}",
            "",
            f"      {other} ->",
            f"        Logger.warning(\"inactive #{{inspect({other})}}\")",
            f"        {{:error, {{:inactive, {other}.id}}}}",
            "    end",
            "  end",
        ]
    if kind == 2:
        return [
            f"  defp {name}({arg}, acc) when is_list({arg}) do",
            f"    with {{:ok, first}} <- fetch_first({arg}),",
            "         {:ok, rest} <- validate(tl(first), acc),",
            "         :ok <- check_limits(rest) do",
            f"      {{:ok, [first | rest] ++ acc}}",
            "    else",
            "      {:error, reason} -> {:error, reason}",
            "      other -> {:error, {:unexpected, other}}",
            "    end",
            "  end",
        ]
    if kind == 3:
        return [
            f"  def handle_call({{:{name}, {arg}}}, _from, state) do",
            f"    new_state = update_in(state.{other}s, &[{arg} | &1])",
            f"    {{:reply, {{:ok, length(new_state.{other}s)}}, new_state}}",
            "  end",
        ]
    return [
        f"  def {name}(binary) when is_binary(binary) do",
        "    for <<byte <- binary>>, byte in ?a..?z, reduce: 0 do",
        "      acc -> acc * 31 + byte",
        "    end",
        "  end",
    ]


def make_snippet(rng: random.Random, index: int) -> str:
    """A realistic 20-60 line module; about one in ten is truncated (invalid)."""
    module = f"MyApp.{rng.choice(['Accounts', 'Billing', 'Catalog', 'Orders'])}.Worker{index}"
    lines = [
        f"defmodule {module} do",
        "  @moduledoc \"\"\"",
        f"  Handles {rng.choice(NAMES)} processing for worker {index}.",
        "  \"\"\"",
        "  use GenServer",
        "  require Logger",
        "  alias MyApp.{Repo, Schema}",
        "",
        f"  defstruct [:id, :name, count: 0, tags: ~w(a b c)a]",
        "",
    ]
    target = rng.randint(20, 60)
    n = 0
    while len(lines) < target:
        function = _function(rng, f"{rng.choice(NAMES)}_{n}") + [""]
        if len(lines) >= 20 and len(lines) + len(function) >= 60:
            break
        lines += function
        n += 1
    lines.append("end")
    if rng.random() < 0.1:
        lines = lines[: rng.randint(3, len(lines) - 1)]
    return "\n".join(lines) + "\n"


def baseline_rate(executable: str, snippets: list[str]) -> float:
    start = time.perf_counter()
    for code in snippets:
        subprocess.run([executable, "-e", BASELINE_SCRIPT], input=code.encode(), capture_output=True, check=True)
    return len(snippets) / (time.perf_counter() - start)


def _sources(args) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Clean anchors and every candidate module (the reserve for rare rules): whole .ex files of --source-dir that parse with the real parser (read, never
    run), or the demo corpus's training modules (routers included) as `elixir-data pairs` takes them."""
    from elixir_coder.corpus.pairs import clean_sources

    if args.source_dir:
        root = Path(args.source_dir)
        files = sorted(p for p in root.rglob("*.ex") if p.is_file())
        texts = [(str(p.relative_to(root)), p.read_text(encoding="utf-8", errors="replace")) for p in files]
        texts = [(name, code) for name, code in texts if "defmodule" in code]
        with ElixirParser(backend="elixir") as elixir:
            ok = [r.ok for r in elixir.parse_many([code for _, code in texts])]
        sources = [t for t, good in zip(texts, ok) if good]
        print(f"{root}: {len(files)} .ex files, {len(texts)} with a module, {len(sources)} parse")
        records = [{"task": "code_generation", "prompt": "", "completion": code, "source": name} for name, code in sources]
    else:
        from elixir_coder.corpus.prepare import load_records
        from elixir_coder.corpus.recipe import recipe

        records = load_records(recipe(jsonl=None, source_dir=None, vocab_size=8192, val_fraction=0.1, seed=0,
                                      demo_modules=320, max_sample_tokens=2048))
    return clean_sources(records, args.anchors or None), clean_sources(records)


def _pairs_from(args) -> list[tuple[str, str, str]]:
    if args.pairs_dir:
        rows = []
        for name in ("contrastive_pairs.jsonl", "security_contrastive.jsonl"):
            with open(Path(args.pairs_dir) / name, encoding="utf-8") as fh:
                for line in fh:
                    r = json.loads(line)
                    rows.append((r.get("rule") or r["sobelow_check"], r.get("clean_code") or r["secure_code"],
                                 r.get("violating_code") or r["vulnerable_code"]))
        return rows
    from elixir_coder.corpus.lint import Judge
    from elixir_coder.corpus.pairs import format_report, make_pairs

    tool = None if args.judge == "builtin" else Judge.find(required=args.judge == "tools")
    sources, every = _sources(args)
    start = time.perf_counter()
    kept, cands, drops = make_pairs(sources, seed=0, variants=args.variants, tool=tool, min_pairs=args.min_pairs,
                                    max_variants=args.max_variants, reserve=every)
    names = {name for name, _ in sources}
    extra = Counter(r.get("rule") or r["sobelow_check"] for r in kept if r["source"] not in names)
    print(f"{len(sources)} anchors, {len(cands)} candidates, {len(kept)} pairs kept in {time.perf_counter() - start:.0f} s; "
          f"from modules beyond the anchors (rules short of --min-pairs): "
          + (", ".join(f"{rule.rsplit('.', 1)[-1]} {n}" for rule, n in sorted(extra.items())) or "none"))
    print(format_report(cands, kept, drops, tool is not None))
    return [(r.get("rule") or r["sobelow_check"], r.get("clean_code") or r["secure_code"],
             r.get("violating_code") or r["vulnerable_code"]) for r in kept]


def run_probe(args) -> None:
    from elixir_coder.labels import SECURITY_LABELS

    from elixir_coder.corpus.pairs import shortcut_probe

    results = shortcut_probe(_pairs_from(args))
    print(f"{'rule':48} {'pairs':>5} {'longer=violating':>16} {'distinct blocks':>15}")
    for rule, (n, longer, distinct) in sorted(results.items()):
        print(f"{rule:48} {n:5} {100 * longer:15.1f}% {100 * distinct:14.1f}%")
    security = [results[r][1] for r in SECURITY_LABELS if r in results]
    print(f"worst security length accuracy: {100 * max(security, default=0):.1f}% (a coin flip is 50%); "
          f"lowest distinct share: {100 * min((r[2] for r in results.values()), default=0):.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probe", action="store_true", help="the shortcut probe instead of throughput")
    parser.add_argument("--pairs-dir", default=None, help="folder with the pair files of `elixir-data pairs`")
    parser.add_argument("--source-dir", default=None, help="probe: anchors from the .ex files of this tree")
    parser.add_argument("--judge", choices=("auto", "tools", "builtin"), default="auto",
                        help="probe: who keeps a pair (tools = the real Credo/Sobelow, $CREDO/$SOBELOW or PATH)")
    parser.add_argument("--variants", type=int, default=1)
    parser.add_argument("--min-pairs", type=int, default=20)
    parser.add_argument("--max-variants", type=int, default=8, help="variants per anchor for rules short of --min-pairs")
    parser.add_argument("--snippets", type=int, default=1000)
    parser.add_argument("--baseline", type=int, default=10, help="snippets for the per-process baseline")
    parser.add_argument("--rounds", type=int, default=3, help="parse_many rounds; the best is reported")
    parser.add_argument("--anchors", type=int, default=32, help="clean modules (0 = all) for pair generation")
    args = parser.parse_args()
    if args.probe:
        run_probe(args)
        return

    executable = shutil.which("elixir")
    if executable is None:
        sys.exit("elixir not found: install it with `apt-get install -y elixir`")

    rng = random.Random(0)
    snippets = [make_snippet(rng, i) for i in range(args.snippets)]
    lines = [code.count("\n") for code in snippets]
    print(f"{len(snippets)} snippets, {min(lines)}-{max(lines)} lines, "
          f"{sum(map(len, snippets)) / len(snippets):.0f} bytes on average")

    with ElixirParser(backend="elixir") as elixir:
        start = time.perf_counter()
        elixir.parse("1")
        print(f"server start-up + first answer: {time.perf_counter() - start:.3f} s")

        best = 0.0
        for _ in range(args.rounds):
            start = time.perf_counter()
            results = elixir.parse_many(snippets)
            best = max(best, len(snippets) / (time.perf_counter() - start))
        invalid = sum(not r.ok for r in results)
        print(f"parse_many: {best:,.0f} snippets/s ({invalid} invalid)")

    base = baseline_rate(executable, snippets[: args.baseline])
    print(f"baseline (one `elixir -e` per snippet, {args.baseline} snippets): {base:,.1f} snippets/s")
    print(f"speed-up: {best / base:,.0f}x")

    # Valid pairs/s as `elixir-data pairs` makes them: inject, re-draw, parse, detect.
    from elixir_coder.corpus.demo import generate_records
    from elixir_coder.corpus.pairs import clean_sources, make_pairs

    sources = clean_sources(generate_records(0, 320), args.anchors)
    start = time.perf_counter()
    kept, _, _ = make_pairs(sources, seed=0, variants=1)
    elapsed = time.perf_counter() - start
    print(f"pairs (built-in detectors as judge): {len(kept)} valid pairs from {len(sources)} modules in {elapsed:.1f} s = "
          f"{len(kept) / elapsed:,.0f} pairs/s")


if __name__ == "__main__":
    main()
