"""Plain utility modules: pure functions over lists of entity maps, composed from ops.

A module draws a handful of ops (from ``ops_lists`` and ``ops_values``) in random order until
it has three to five functions; a quarter of them also define a struct with ``new/1``.
"""

from __future__ import annotations

from elixir_coder.corpus.demo.ex import MAX_LINE, Ctx, Fn, ModSpec, Struct, Test, TestModule, etype, lit, lit_lines
from elixir_coder.corpus.demo.kit import Kit, Op
from elixir_coder.corpus.demo.ops_lists import (
    op_all_any,
    op_average,
    op_before,
    op_chunk,
    op_count_by,
    op_distinct,
    op_extreme,
    op_fetch,
    op_filter_flag,
    op_filter_status,
    op_group_by,
    op_index,
    op_paginate,
    op_partition_flag,
    op_sort,
    op_summary,
    op_threshold,
    op_top,
    op_total,
    op_totals_by,
)
from elixir_coder.corpus.demo.ops_values import (
    op_build,
    op_classify,
    op_format,
    op_label,
    op_money,
    op_normalize,
    op_parse,
    op_row,
    op_until,
    op_update,
    op_validate,
)

OPS: tuple[Op, ...] = (
    op_total, op_filter_flag, op_partition_flag, op_filter_status, op_count_by, op_group_by,
    op_extreme, op_sort, op_top, op_average, op_classify, op_format, op_index, op_fetch,
    op_normalize, op_parse, op_build, op_paginate, op_money, op_update, op_row, op_totals_by,
    op_all_any, op_distinct, op_threshold, op_before, op_until, op_summary, op_chunk, op_label,
    op_validate,
)


SUFFIX_PURPOSE = {
    "Stats": "statistics", "Helpers": "helpers", "Formatter": "formatting helpers",
    "Filters": "filters", "Calculator": "calculations", "Report": "reporting helpers",
    "Utils": "utilities", "Rules": "business rules", "Summary": "summaries", "Query": "in-memory queries",
    "Ranking": "ranking helpers", "Insights": "insights", "Toolkit": "tools", "Digest": "digest helpers",
}


def _struct_blocks(c: Ctx) -> list[list[str]]:
    """``defstruct`` and ``@type t``, laid out the way mix format lays them out."""
    defaults = {"count": "0", "money": "0", "flag": "false"}
    plain = [":id"] + [f":{f.name}" for f in c.entity.fields if f.type not in defaults and f.type != "status"]
    kw = [f"{f.name}: {defaults[f.type]}" for f in c.entity.fields if f.type in defaults]
    kw += [f"{f.name}: :{f.values[0]}" for f in c.entity.fields if f.type == "status"]
    items = plain + kw
    one = "defstruct [" + ", ".join(items) + "]"
    struct = [one] if len(one) + 2 <= MAX_LINE else ["defstruct ["] + [
        f"  {x}," for x in items[:-1]] + [f"  {items[-1]}", "]"]
    types = [("id", "pos_integer() | nil")] + [
        (f.name, etype(f.type) + ("" if f.type in defaults or f.type == "status" else " | nil"))
        for f in c.entity.fields]
    type_lines = ["@type t :: %__MODULE__{"]
    type_lines += [f"        {n}: {t}," for n, t in types[:-1]] + [f"        {types[-1][0]}: {types[-1][1]}",
                                                                  "      }"]
    return [["@enforce_keys [:" + c.entity.label.name + "]", *struct], type_lines]


def _new_fn(c: Ctx) -> Fn:
    label = c.entity.label
    row = c.samples[0]
    return Fn.simple(
        "new", ["attrs"], ["struct!(__MODULE__, attrs)"],
        doc=f"Builds {c.entity.a} from a keyword list or map.\n\n"
        f"Raises if `:{label.name}` is missing or an unknown key is given.",
        spec="new(keyword() | map()) :: t()",
        explain=f"`new/1` wraps `struct!/2`, so a missing `:{label.name}` (listed in "
        "`@enforce_keys`) or an unknown key raises instead of producing a half-built struct.",
        tests=[Test(f"builds {c.entity.a}",
                    [f"assert %{c.short}{{{label.name}: {lit(row[label.name])}}} = "
                     f"{c.short}.new({label.name}: {lit(row[label.name])})"]),
               Test(f"requires {label.name}", [f"assert_raise ArgumentError, fn -> {c.short}.new([]) end"])],
    )


def build_plain(c: Ctx, struct: bool, suffix: str = "") -> ModSpec:
    kit = Kit(c, "t()" if struct else "map()")
    if struct:
        kit.add(_new_fn(c))
    ops = list(OPS)
    c.rng.shuffle(ops)
    target = c.rng.randint(3, 5) + (1 if struct else 0)
    for op in ops:
        if len(kit.fns) >= target:
            break
        op(kit)
    blocks = _struct_blocks(c) if struct else []
    if kit.attrs:
        blocks.insert(0, list(kit.attrs))
    fns = kit.fns + list(kit.helpers.values())
    e, d = c.entity, c.domain
    if struct:
        doc = (f"A {e.human} in {d.blurb}, as a plain struct.\n\nHolds the {e.human} fields and the "
               f"pure functions that work on one {e.human} or a list of them.")
        summary = (f"`{c.name}` defines a `%{c.short}{{}}` struct for a {e.human} in {d.blurb} "
                   "together with pure functions over it; it keeps no state and does no I/O.")
    else:
        purpose = SUFFIX_PURPOSE.get(suffix, "helpers")
        doc = c.pick([
            f"Pure {purpose} for {e.human_plural} in {d.blurb}.\n\nEvery function takes plain maps "
            f"(or lists of them) with the {e.human} fields, so they work on structs as well.",
            f"{purpose.capitalize()} for {e.human_plural}.\n\nNothing here touches the database or "
            "keeps state; callers pass the data in.",
        ])
        summary = (f"`{c.name}` is a plain module of {purpose} for {e.human_plural} in {d.blurb}. "
                   "Its functions are pure: they take maps or lists of maps and return new values, "
                   "with no processes, state or I/O involved.")
    sample = [Struct(c.short, r) for r in c.samples] if struct else c.samples
    test = TestModule(aliases=[c.name], blocks=[lit_lines(sample, 2, f"{c.attr} ")])
    return ModSpec(c.name, "plain", doc, [], blocks, fns, test, summary,
                   notes=[fn.explain for fn in kit.fns], ctx=c)
