"""Ops over lists of records: totals, filters, grouping, sorting, lookups, paging, dates.

Each op looks at the entity's fields, picks one that suits it, and adds a documented function
with a spec, a body drawn from several idiomatic variants, ExUnit tests whose expected values
are computed from the sample data, and a sentence of explanation. An op that does not apply
(no such field, name taken) returns False.
"""

from __future__ import annotations

from elixir_coder.corpus.demo.ex import Atom, Clause, Fn, StrMap, Test, etype, lit
from elixir_coder.corpus.demo.kit import Kit, delta, eq, eq_ids, fits, ids, stem, sum_type
from elixir_coder.corpus.demo.words import ADJ_ORDER, NUMERIC, RETURNS


def op_total(k: Kit) -> bool:
    c = k.c
    fields = k.fields(*NUMERIC)
    if not fields:
        return False
    f = c.pick(fields)
    name = f"sum_{f.name}" if f.name.startswith("total") else f"total_{f.name}"
    if not k.free(name):
        return False
    many, one = c.many, c.one
    zero = "0.0" if f.type == "float" else "0"
    body = k.choose([
        [many, f"|> Enum.map(& &1.{f.name})", "|> Enum.sum()"],
        [f"Enum.reduce({many}, {zero}, fn {one}, acc -> acc + {one}.{f.name} end)"],
        [f"for {one} <- {many}, reduce: {zero} do", f"  acc -> acc + {one}.{f.name}", "end"],
    ])
    total = sum(k.column(f.name))
    check = delta(k.call(name, c.attr), total) if f.type == "float" else eq(k.call(name, c.attr), total)
    doc = c.pick([
        f"Returns the sum of `{f.name}` over all {c.entity.human_plural}.",
        f"Adds up the `{f.name}` of the given {c.entity.human_plural}.\n\nAn empty list gives `{zero}`.",
        f"Total `{f.name}` of a list of {c.entity.human_plural}.",
    ])
    return k.add(Fn.simple(
        name, [many], body, doc=doc, spec=f"{name}({k.list_type}) :: {sum_type(f.type)}",
        explain=f"`{name}/1` adds up the `{f.name}` of every {c.entity.human} and returns the "
        f"total, `{zero}` for an empty list.",
        tests=[
            Test(f"sums {f.name} across {c.entity.human_plural}", check),
            Test("returns zero for an empty list", eq(k.call(name, "[]"), 0)),
        ],
    ))


def _flag_name(k: Kit, flag: str) -> str:
    return f"{flag}_{k.c.many}"


def op_filter_flag(k: Kit) -> bool:
    c = k.c
    flags = k.fields("flag")
    if not flags:
        return False
    f = c.pick(flags)
    name = _flag_name(k, f.name)
    if not k.free(name):
        return False
    many, one = c.many, c.one
    body = k.choose([
        [f"Enum.filter({many}, & &1.{f.name})"],
        [f"for {one} <- {many}, {one}.{f.name}, do: {one}"],
        [f"Enum.filter({many}, fn {one} -> {one}.{f.name} end)"],
    ])
    expected = ids([r for r in c.samples if r[f.name]])
    return k.add(Fn.simple(
        name, [many], body,
        doc=c.pick([
            f"Keeps only the {c.entity.human_plural} whose `{f.name}` flag is set.",
            f"{c.pick(RETURNS)} the {c.entity.human_plural} marked as `{f.name}`, in their original order.",
        ]),
        spec=f"{name}({k.list_type}) :: {k.list_type}",
        explain=f"`{name}/1` keeps the {c.entity.human_plural} whose `{f.name}` field is true, "
        "preserving their order.",
        tests=[Test(f"keeps {f.name.replace('_', ' ')} {c.entity.human_plural} only",
                    eq_ids(k.call(name, c.attr), expected))],
    ))


def op_partition_flag(k: Kit) -> bool:
    c = k.c
    flags = k.fields("flag")
    if not flags:
        return False
    f = c.pick(flags)
    name = f"split_by_{f.name}"
    if not k.free(name):
        return False
    many = c.many
    body = [f"Enum.split_with({many}, & &1.{f.name})"]
    yes = ids([r for r in c.samples if r[f.name]])
    no = ids([r for r in c.samples if not r[f.name]])
    lines = [f"{{yes, no}} = {k.call(name, c.attr)}", "", *eq("Enum.map(yes, & &1.id)", yes),
             *eq("Enum.map(no, & &1.id)", no)]
    return k.add(Fn.simple(
        name, [many], body,
        doc=f"Splits {c.entity.human_plural} into two lists: those with `{f.name}` set and the rest.",
        spec=f"{name}({k.list_type}) :: {{{k.list_type}, {k.list_type}}}",
        explain=f"`{name}/1` returns a tuple of two lists, the {c.entity.human_plural} with "
        f"`{f.name}` set first and all others second.",
        tests=[Test(f"splits on {f.name.replace('_', ' ')}", lines)],
    ))


def op_filter_status(k: Kit) -> bool:
    c = k.c
    statuses = k.fields("status")
    if not statuses:
        return False
    f = c.pick(statuses)
    name = f"{c.many}_with_{f.name}"
    if not k.free(name):
        return False
    many, one, arg = c.many, c.one, f.name
    guard = c.pick(["", f"is_atom({arg})"])
    body = k.choose([
        [f"Enum.filter({many}, &(&1.{f.name} == {arg}))"],
        [f"for %{{{f.name}: ^{arg}}} = {one} <- {many}, do: {one}"],
        [f"Enum.filter({many}, fn {one} -> {one}.{f.name} == {arg} end)"],
    ])
    value = c.samples[0][f.name]
    expected = ids([r for r in c.samples if r[f.name] == value])
    missing = next((v for v in f.values if v not in k.column(f.name)), None)
    tests = [Test(f"selects {c.entity.human_plural} by {f.name}",
                  eq_ids(k.call(name, f'{c.attr}, {lit(value)}'), expected))]
    if missing:
        tests.append(Test("returns an empty list when nothing matches",
                          eq(k.call(name, f"{c.attr}, {lit(Atom(missing))}"), [])))
    values = " | ".join(":" + v for v in f.values)
    return k.add(Fn(
        name, 2, [Clause(f"{many}, {arg}", body, guard)],
        doc=c.pick([
            f"Selects the {c.entity.human_plural} whose `{f.name}` equals `{arg}`.",
            f"Filters {c.entity.human_plural} by `{f.name}` (one of {values.replace(' |', ',')}).",
        ]),
        spec=f"{name}({k.list_type}, atom()) :: {k.list_type}",
        explain=f"`{name}/2` filters the list down to the {c.entity.human_plural} whose "
        f"`{f.name}` matches the given atom.",
        tests=tests,
    ))


def op_count_by(k: Kit) -> bool:
    c = k.c
    cands = k.fields("status", "flag")
    if not cands:
        return False
    f = c.pick(cands)
    name = f"count_by_{f.name}"
    if not k.free(name):
        return False
    many, one = c.many, c.one
    body = k.choose([
        [f"Enum.frequencies_by({many}, & &1.{f.name})"],
        [f"Enum.reduce({many}, %{{}}, fn {one}, acc ->",
         f"  Map.update(acc, {one}.{f.name}, 1, &(&1 + 1))", "end)"],
    ])
    counts: dict = {}
    for v in k.column(f.name):
        counts[v] = counts.get(v, 0) + 1
    if f.type == "flag":
        check = [f"counts = {k.call(name, c.attr)}", ""]
        check += [f"assert counts[{lit(v)}] == {n}" for v, n in sorted(counts.items())]
    else:
        expected = {str(v): n for v, n in sorted(counts.items())}
        check = eq(k.call(name, c.attr), expected)
    return k.add(Fn.simple(
        name, [many], body,
        doc=c.pick([
            f"Counts the {c.entity.human_plural} per `{f.name}` value.",
            f"{c.pick(RETURNS)} a map from each `{f.name}` to the number of {c.entity.human_plural} "
            "that have it.",
        ]),
        spec=f"{name}({k.list_type}) :: %{{optional({etype(f.type)}) => pos_integer()}}",
        explain=f"`{name}/1` returns a map from each `{f.name}` value to how many "
        f"{c.entity.human_plural} carry it.",
        tests=[Test(f"counts {c.entity.human_plural} per {f.name}", check),
               Test("returns an empty map for no input", eq(k.call(name, "[]"), {}))],
    ))


def op_group_by(k: Kit) -> bool:
    c = k.c
    keys = k.fields("status", "string", "flag")
    if not keys:
        return False
    g = c.pick(keys)
    label = c.entity.label
    with_values = label.name != g.name and c.rng.random() < 0.5
    name = f"{label.name}s_by_{g.name}" if with_values else f"group_by_{g.name}"
    if not k.free(name):
        return False
    many = c.many
    groups: dict = {}
    for r in c.samples:
        groups.setdefault(r[g.name], []).append(r)
    key = c.samples[0][g.name]
    if with_values:
        body = [f"Enum.group_by({many}, & &1.{g.name}, & &1.{label.name})"]
        check = eq(f"{k.call(name, c.attr)}[{lit(key)}]", [r[label.name] for r in groups[key]])
        spec_v = f"[{etype(label.type)}]"
        what = f"the `{label.name}` values"
    else:
        body = k.choose([
            [f"Enum.group_by({many}, & &1.{g.name})"],
            [many, f"|> Enum.group_by(& &1.{g.name})"],
        ])
        check = eq(f"{k.call(name, c.attr)}[{lit(key)}] |> Enum.map(& &1.id)", ids(groups[key]))
        spec_v = k.list_type
        what = f"the {c.entity.human_plural}"
    keys_check = eq(f"{k.call(name, c.attr)} |> Map.keys() |> Enum.sort()", sorted(groups, key=str))
    return k.add(Fn.simple(
        name, [many], body,
        doc=f"Groups {what} by `{g.name}`.\n\nKeys are the distinct `{g.name}` values; "
        "each list keeps the input order.",
        spec=f"{name}({k.list_type}) :: %{{optional({etype(g.type)}) => {spec_v}}}",
        explain=f"`{name}/1` groups {what} into a map keyed by `{g.name}`.",
        tests=[Test(f"groups by {g.name}", check), Test("has one key per value", keys_check)],
    ))


def _sort_key(f, many: str) -> tuple[str, str]:
    """(sorter argument suffix, capture) for sorting or comparing a field's values."""
    module = {"date": "Date", "datetime": "DateTime"}.get(f.type)
    return (module or "", f"& &1.{f.name}")


def op_extreme(k: Kit) -> bool:
    c = k.c
    cands = k.fields(*NUMERIC, "date", "datetime")
    if not cands:
        return False
    f = c.pick(cands)
    high = c.rng.random() < 0.6
    word = c.pick(ADJ_ORDER["desc" if high else "asc"])
    if f.type in ("date", "datetime"):
        word = "latest" if high else "earliest"
    name = f"{word}_{c.one}" if word in ("latest", "earliest") else f"{c.one}_with_{word}_{f.name}"
    if not k.free(name) or len(name) > 40:
        return False
    many = c.many
    fun = "Enum.max_by" if high else "Enum.min_by"
    module, capture = _sort_key(f, many)
    sorter = f", {module}" if module else ""
    body = k.choose([
        [f"{fun}({many}, {capture}{sorter}, fn -> nil end)"],
        [f"case {many} do", "  [] -> nil", f"  _ -> {fun}({many}, {capture}{sorter})", "end"],
    ])
    pick = (max if high else min)(c.samples, key=lambda r: r[f.name])
    return k.add(Fn.simple(
        name, [many], body,
        doc=c.pick([
            f"{c.pick(RETURNS)} the {c.entity.human} with the {word} `{f.name}`, or `nil` for an "
            "empty list.",
            f"Finds the {c.entity.human} whose `{f.name}` is the {word}.\n\n"
            "Returns `nil` when there are none.",
        ]),
        spec=f"{name}({k.list_type}) :: {k.item_type} | nil",
        explain=f"`{name}/1` picks the {c.entity.human} with the {word} `{f.name}` "
        "and returns `nil` for an empty list instead of raising.",
        tests=[Test(f"finds the {word} {f.name.replace('_', ' ')}", eq(f"{k.call(name, c.attr)}.id", pick["id"])),
               Test("returns nil for an empty list", eq(k.call(name, "[]"), None))],
    ))


def op_sort(k: Kit) -> bool:
    c = k.c
    cands = k.fields(*NUMERIC, "date", "datetime", "text")
    if not cands:
        return False
    f = c.pick(cands)
    name = f"sort_by_{f.name}"
    if not k.free(name):
        return False
    many = c.many
    module, capture = _sort_key(f, many)
    order = "{order, " + module + "}" if module else "order"
    body = [f"Enum.sort_by({many}, {capture}, {order})"]
    asc = ids(sorted(c.samples, key=lambda r: r[f.name]))
    return k.add(Fn(
        name, 2, [Clause(f"{many}, order \\\\ :asc", body, "order in [:asc, :desc]")],
        doc=f"Sorts {c.entity.human_plural} by `{f.name}`, ascending unless `order` is `:desc`.",
        spec=f"{name}({k.list_type}, :asc | :desc) :: {k.list_type}",
        explain=f"`{name}/2` sorts by `{f.name}`; the order defaults to `:asc` and a guard "
        "only accepts `:asc` or `:desc`.",
        tests=[
            Test("sorts ascending by default", eq_ids(k.call(name, c.attr), asc)),
            Test("sorts descending on request",
                 eq_ids(k.call(name, c.attr + ', :desc'), asc[::-1])),
        ],
    ))


def op_top(k: Kit) -> bool:
    c = k.c
    cands = k.fields("money", "count", "int", "float")
    if not cands:
        return False
    f = c.pick(cands)
    name = f"top_by_{f.name}"
    if not k.free(name):
        return False
    many = c.many
    body = k.choose([
        [many, f"|> Enum.sort_by(& &1.{f.name}, :desc)", "|> Enum.take(n)"],
        [many, f"|> Enum.sort_by(& &1.{f.name}, &>=/2)", "|> Enum.take(n)"],
    ])
    top2 = ids(sorted(c.samples, key=lambda r: -r[f.name])[:2])
    return k.add(Fn(
        name, 2, [Clause(f"{many}, n", body, "is_integer(n) and n >= 0")],
        doc=f"{c.pick(RETURNS)} the `n` {c.entity.human_plural} with the highest `{f.name}`.",
        spec=f"{name}({k.list_type}, non_neg_integer()) :: {k.list_type}",
        explain=f"`{name}/2` sorts by `{f.name}` in descending order and keeps the first `n`.",
        tests=[Test(f"keeps the two highest by {f.name.replace('_', ' ')}",
                    eq_ids(k.call(name, c.attr + ', 2'), top2)),
               Test("returns nothing for n = 0", eq(k.call(name, c.attr + ", 0"), []))],
    ))


def op_average(k: Kit) -> bool:
    c = k.c
    cands = k.fields(*NUMERIC)
    if not cands:
        return False
    f = c.pick(cands)
    name = f"average_{f.name}"
    if not k.free(name):
        return False
    many, one = c.many, c.one
    body = k.choose([
        [f"case {many} do", "  [] -> 0.0", f"  _ -> Enum.sum(Enum.map({many}, & &1.{f.name})) / length({many})",
         "end"],
        [f"{{count, sum}} = Enum.reduce({many}, {{0, 0}}, fn {one}, {{n, acc}} -> {{n + 1, acc + {one}.{f.name}}} end)",
         "", "if count == 0, do: 0.0, else: sum / count"],
        ["{count, sum} =", f"  Enum.reduce({many}, {{0, 0}}, fn {one}, {{n, acc}} ->",
         f"    {{n + 1, acc + {one}.{f.name}}}", "  end)", "", "if count == 0, do: 0.0, else: sum / count"],
    ])
    mean = sum(k.column(f.name)) / len(c.samples)
    return k.add(Fn.simple(
        name, [many], body,
        doc=f"Mean `{f.name}` of the given {c.entity.human_plural}; `0.0` when the list is empty.",
        spec=f"{name}({k.list_type}) :: float()",
        explain=f"`{name}/1` returns the arithmetic mean of `{f.name}` as a float and guards "
        "against division by zero by returning `0.0` for an empty list.",
        tests=[Test(f"averages {f.name.replace('_', ' ')}", delta(k.call(name, c.attr), mean)),
               Test("is 0.0 for an empty list", eq(k.call(name, "[]"), 0.0))],
    ))


def op_index(k: Kit) -> bool:
    c = k.c
    cands = k.fields("code", "email") or k.fields("text")
    if not cands:
        return False
    f = c.pick(cands)
    if len(set(k.column(f.name))) < len(c.samples):
        return False
    name = f"index_by_{f.name}"
    if not k.free(name):
        return False
    many, one = c.many, c.one
    body = k.choose([
        [f"Map.new({many}, &{{&1.{f.name}, &1}})"],
        [f"for {one} <- {many}, into: %{{}}, do: {{{one}.{f.name}, {one}}}"],
        [many, f"|> Enum.map(&{{&1.{f.name}, &1}})", "|> Map.new()"],
    ])
    probe = c.samples[1]
    return k.add(Fn.simple(
        name, [many], body,
        doc=f"Builds a map from `{f.name}` to {c.entity.human}, for quick lookups.\n\n"
        f"If two {c.entity.human_plural} share a `{f.name}`, the last one wins.",
        spec=f"{name}({k.list_type}) :: %{{optional(String.t()) => {k.item_type}}}",
        explain=f"`{name}/1` turns the list into a map keyed by `{f.name}`; on duplicate "
        "keys the later entry wins.",
        tests=[Test(f"indexes by {f.name}", [f"index = {k.call(name, c.attr)}", "",
                                            f"assert map_size(index) == {len(c.samples)}",
                                            *eq(f"index[{lit(probe[f.name])}].id", probe["id"])])],
    ))


def op_fetch(k: Kit) -> bool:
    c = k.c
    name = f"fetch_{c.one}"
    if not k.free(name):
        return False
    many, one = c.many, c.one
    body = k.choose([
        [f"case Enum.find({many}, &(&1.id == id)) do", "  nil -> {:error, :not_found}",
         f"  {one} -> {{:ok, {one}}}", "end"],
        [f"with %{{}} = {one} <- Enum.find({many}, &(&1.id == id)) do", f"  {{:ok, {one}}}", "else",
         "  nil -> {:error, :not_found}", "end"],
    ])
    return k.add(Fn(
        name, 2, [Clause(f"{many}, id", body, "is_integer(id)")],
        doc=c.pick([
            f"Looks up {c.entity.a} by id.\n\nReturns `{{:ok, {one}}}` or `{{:error, :not_found}}`.",
            f"Finds the {c.entity.human} with the given `id` in a list.",
        ]),
        spec=f"{name}({k.list_type}, integer()) :: {{:ok, {k.item_type}}} | {{:error, :not_found}}",
        explain=f"`{name}/2` searches the list by `id` and returns `{{:ok, {one}}}` or "
        "`{:error, :not_found}`, so callers can pattern-match instead of checking for nil.",
        tests=[Test("finds by id", [f"assert {{:ok, %{{id: 2}}}} = {k.call(name, c.attr + ', 2')}"]),
               Test("reports a missing id", eq(k.call(name, c.attr + ", 99"), (Atom("error"), Atom("not_found"))))],
    ))


def op_paginate(k: Kit) -> bool:
    c = k.c
    if not k.free("paginate"):
        return False
    per = c.pick([10, 20, 25, 50])
    body = ["page = Keyword.get(opts, :page, 1)", f"per_page = Keyword.get(opts, :per_page, {per})", "",
            c.many, "|> Enum.drop((page - 1) * per_page)", "|> Enum.take(per_page)"]
    return k.add(Fn(
        "paginate", 2, [Clause(f"{c.many}, opts \\\\ []", body)],
        doc=f"Returns one page of {c.entity.human_plural}.\n\n## Options\n\n"
        f"  * `:page` - 1-based page number (default `1`)\n  * `:per_page` - page size (default `{per}`)",
        spec=f"paginate({k.list_type}, keyword()) :: {k.list_type}",
        explain=f"`paginate/2` reads `:page` and `:per_page` (default {per}) from a keyword list and "
        "slices the list with `Enum.drop/2` and `Enum.take/2`.",
        tests=[Test("returns the requested page",
                    eq_ids(k.call("paginate", c.attr + ", page: 2, per_page: 2"), ids(c.samples[2:4]))),
               Test("defaults to the first page",
                    eq(f"length({k.call('paginate', c.attr)})", min(per, len(c.samples))))],
    ))


def op_totals_by(k: Kit) -> bool:
    c = k.c
    nums = k.fields("money", "count", "int")
    keys = k.fields("status", "string")
    if not nums or not keys:
        return False
    f, g = c.pick(nums), c.pick(keys)
    name = f"{f.name}_by_{g.name}"
    if not k.free(name):
        return False
    many, one = c.many, c.one
    body = k.choose([
        [f"Enum.reduce({many}, %{{}}, fn {one}, acc ->",
         f"  Map.update(acc, {one}.{g.name}, {one}.{f.name}, &(&1 + {one}.{f.name}))", "end)"],
        [many, f"|> Enum.group_by(& &1.{g.name}, & &1.{f.name})",
         "|> Map.new(fn {key, values} -> {key, Enum.sum(values)} end)"],
    ])
    totals: dict = {}
    for r in c.samples:
        totals[r[g.name]] = totals.get(r[g.name], 0) + r[f.name]
    expected = (StrMap if g.type == "string" else dict)((str(key), v) for key, v in sorted(totals.items()))
    return k.add(Fn.simple(
        name, [many], body,
        doc=f"Sums `{f.name}` per `{g.name}`.",
        spec=f"{name}({k.list_type}) :: %{{optional({etype(g.type)}) => integer()}}",
        explain=f"`{name}/1` returns a map from each `{g.name}` to the total `{f.name}` of the "
        f"{c.entity.human_plural} that have it.",
        tests=[Test(f"totals {f.name.replace('_', ' ')} per {g.name}", eq(k.call(name, c.attr), expected))],
    ))


def op_all_any(k: Kit) -> bool:
    c = k.c
    flags = k.fields("flag")
    if not flags:
        return False
    f = c.pick(flags)
    word = c.pick(["all", "any"])
    name = f"{word}_{f.name}?"
    if not k.free(name):
        return False
    fun = "Enum.all?" if word == "all" else "Enum.any?"
    body = [f"{fun}({c.many}, & &1.{f.name})"]
    col = k.column(f.name)
    got = all(col) if word == "all" else any(col)
    return k.add(Fn.simple(
        name, [c.many], body,
        doc=f"Tells whether {word} of the {c.entity.human_plural} have `{f.name}` set.",
        spec=f"{name}({k.list_type}) :: boolean()",
        explain=f"`{name}/1` uses `{fun}/2`; for an empty list it returns "
        f"`{'true' if word == 'all' else 'false'}`.",
        tests=[Test(f"checks {f.name.replace('_', ' ')}", eq(k.call(name, c.attr), got)),
               Test("handles an empty list", eq(k.call(name, "[]"), word == "all"))],
    ))


def op_distinct(k: Kit) -> bool:
    c = k.c
    cands = k.fields("string", "status", "code")
    if not cands:
        return False
    f = c.pick(cands)
    name = f"distinct_{f.name}s" if not f.name.endswith("s") else f"distinct_{f.name}"
    if not k.free(name):
        return False
    many = c.many
    body = k.choose([
        [many, f"|> Enum.map(& &1.{f.name})", "|> Enum.uniq()", "|> Enum.sort()"],
        [many, f"|> Enum.uniq_by(& &1.{f.name})", f"|> Enum.map(& &1.{f.name})", "|> Enum.sort()"],
    ])
    expected = sorted(set(k.column(f.name)), key=str)
    return k.add(Fn.simple(
        name, [many], body,
        doc=f"{c.pick(RETURNS)} the distinct `{f.name}` values, sorted.",
        spec=f"{name}({k.list_type}) :: [{etype(f.type)}]",
        explain=f"`{name}/1` collects every `{f.name}`, removes duplicates and sorts the result.",
        tests=[Test(f"lists each {f.name.replace('_', ' ')} once", eq(k.call(name, c.attr), expected))],
    ))


def op_threshold(k: Kit) -> bool:
    c = k.c
    cands = k.fields("count", "money", "int")
    if not cands:
        return False
    f = c.pick(cands)
    below = c.rng.random() < 0.5
    name = f"{'below' if below else 'above'}_{f.name}_threshold"
    if not k.free(name):
        return False
    limit = sorted(k.column(f.name))[1]
    attr = f"@{f.name}_threshold"
    if any(a.startswith(attr + " ") for a in k.attrs):
        return False
    k.attrs.append(f"{attr} {lit(limit)}")
    op = "<" if below else ">"
    body = k.choose([[f"Enum.filter({c.many}, &(&1.{f.name} {op} {attr}))"],
                     [f"Enum.reject({c.many}, &(&1.{f.name} {'>=' if below else '<='} {attr}))"]])
    keep = ids([r for r in c.samples if (r[f.name] < limit if below else r[f.name] > limit)])
    return k.add(Fn.simple(
        name, [c.many], body,
        doc=f"Keeps the {c.entity.human_plural} whose `{f.name}` is {'below' if below else 'above'} "
        f"`{attr}` ({lit(limit)}).",
        spec=f"{name}({k.list_type}) :: {k.list_type}",
        explain=f"`{name}/1` compares `{f.name}` with the module attribute `{attr}` "
        f"({lit(limit)}) and keeps the {c.entity.human_plural} "
        f"{'under' if below else 'over'} it.",
        tests=[Test(f"filters on the {f.name.replace('_', ' ')} threshold",
                    eq_ids(k.call(name, c.attr), keep))],
    ))


def op_before(k: Kit) -> bool:
    c = k.c
    cands = k.fields("date", "datetime")
    if not cands:
        return False
    f = c.pick(cands)
    name = f"{stem(f.name)}_before"
    if not k.free(name):
        return False
    mod = "Date" if f.type == "date" else "DateTime"
    var = "date" if f.type == "date" else "moment"
    body = k.choose([
        [f"Enum.filter({c.many}, &({mod}.compare(&1.{f.name}, {var}) == :lt))"],
        [f"Enum.filter({c.many}, fn {c.one} -> {mod}.compare({c.one}.{f.name}, {var}) == :lt end)"],
        [f"for {c.one} <- {c.many}, {mod}.compare({c.one}.{f.name}, {var}) == :lt, do: {c.one}"],
    ])
    if body is None:
        return False
    pivot = sorted(k.column(f.name))[1]
    keep = ids([r for r in c.samples if r[f.name] < pivot])
    return k.add(Fn(
        name, 2, [Clause(f"{c.many}, %{mod}{{}} = {var}", body)],
        doc=f"Keeps the {c.entity.human_plural} whose `{f.name}` is strictly before `{var}`.",
        spec=f"{name}({k.list_type}, {mod}.t()) :: {k.list_type}",
        explain=f"`{name}/2` matches a `%{mod}{{}}` in its head and compares with "
        f"`{mod}.compare/2`, because `<` on structs would compare field by field.",
        tests=[Test(f"keeps {c.entity.human_plural} before the pivot",
                    eq_ids(k.call(name, f'{c.attr}, {lit(pivot)}'), keep))],
    ))


def op_summary(k: Kit) -> bool:
    c = k.c
    nums = k.fields("money", "count", "int")
    if not nums or not k.free("summarize"):
        return False
    f = c.pick(nums)
    flags = k.fields("flag")
    many = c.many
    body = ["%{", f"  count: length({many}),", f"  total_{f.name}: {many} |> Enum.map(& &1.{f.name}) |> Enum.sum()"]
    expected = {"count": len(c.samples), f"total_{f.name}": sum(k.column(f.name))}
    if flags:
        g = c.pick(flags)
        body[-1] += ","
        body.append(f"  {g.name}: Enum.count({many}, & &1.{g.name})")
        expected[g.name] = sum(1 for v in k.column(g.name) if v)
    body.append("}")
    if not fits(body):
        return False
    keys = ", ".join(f"`{x}`" for x in expected)
    return k.add(Fn.simple(
        "summarize", [many], body,
        doc=f"Summarizes a list of {c.entity.human_plural} as a map with {keys}.",
        spec=f"summarize({k.list_type}) :: map()",
        explain=f"`summarize/1` returns a map with {keys}, computed in a single map literal.",
        tests=[Test("summarizes the sample", eq(k.call("summarize", c.attr), expected))],
    ))


def op_chunk(k: Kit) -> bool:
    c = k.c
    if not k.free("batches"):
        return False
    body = k.choose([[f"Enum.chunk_every({c.many}, size)"], [c.many, "|> Enum.chunk_every(size)"]])
    return k.add(Fn(
        "batches", 2, [Clause(f"{c.many}, size", body, "is_integer(size) and size > 0")],
        doc=f"Splits {c.entity.human_plural} into batches of at most `size`, e.g. for bulk inserts.",
        spec=f"batches({k.list_type}, pos_integer()) :: [{k.list_type}]",
        explain="`batches/2` uses `Enum.chunk_every/2`; the last batch may be shorter.",
        tests=[Test("makes batches of two", eq(f"{k.call('batches', c.attr + ', 2')} |> Enum.map(&length/1)",
                                              [2, 1]))],
    ))
