"""Contrastive data throughput: the Elixir parser bridge (ElixirParser.parse_many) against one
`elixir -e` process per snippet, and valid pairs/s of pair generation on the demo corpus.

The per-snippet baseline is what a naive checker would do; it pays the BEAM start-up for every
snippet, which is why the long-lived server exists.

Usage: python bench/pairs.py [--snippets 1000] [--baseline 10] [--anchors 32]
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import time
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snippets", type=int, default=1000)
    parser.add_argument("--baseline", type=int, default=10, help="snippets for the per-process baseline")
    parser.add_argument("--rounds", type=int, default=3, help="parse_many rounds; the best is reported")
    parser.add_argument("--anchors", type=int, default=32, help="clean demo modules for the pair generation rate")
    args = parser.parse_args()

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
    from elixir_coder.training.contrastive import clean_sources, generate_pairs, security_pairs

    sources = clean_sources(generate_records(0, 320), args.anchors)
    start = time.perf_counter()
    quality = generate_pairs(sources, seed=0, variants=1)
    security = security_pairs(sources, seed=0, variants=1)
    elapsed = time.perf_counter() - start
    print(f"pairs: {len(quality) + len(security)} valid pairs from {len(sources)} modules in {elapsed:.1f} s = "
          f"{(len(quality) + len(security)) / elapsed:,.0f} pairs/s")


if __name__ == "__main__":
    main()
