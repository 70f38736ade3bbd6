"""Ops on single records and values: tiers, formatting, parsing, validation, updates, money.

Same contract as the list ops: an op adds one documented function (plus private helpers it
needs) or returns False when the entity has nothing it applies to.
"""

from __future__ import annotations

from datetime import timedelta

from elixir_coder.corpus.demo.ex import Atom, Clause, Fn, StrMap, Test, etype, lit
from elixir_coder.corpus.demo.kit import Kit, eq, ex_round, stem, to_s
from elixir_coder.corpus.demo.words import NUMERIC


TIERS = (("high", "medium", "low"), ("large", "medium", "small"), ("gold", "silver", "bronze"),
         ("top", "middle", "bottom"), ("hot", "warm", "cold"))


def op_classify(k: Kit) -> bool:
    c = k.c
    cands = k.fields(*NUMERIC)
    if not cands:
        return False
    f = c.pick(cands)
    name = c.pick([f"{f.name}_tier", f"classify_{f.name}", f"{f.name}_band"])
    if not k.free(name):
        return False
    tiers = c.pick(TIERS)
    values = sorted(k.column(f.name))
    lo, hi = values[1], values[2]
    by_attr = c.rng.random() < 0.5
    if by_attr:
        k.attrs += [f"@{tiers[0]}_{f.name} {lit(hi)}", f"@{tiers[1]}_{f.name} {lit(lo)}"]
        hi_s, lo_s = f"@{tiers[0]}_{f.name}", f"@{tiers[1]}_{f.name}"
    else:
        hi_s, lo_s = lit(hi), lit(lo)
    on_item = c.rng.random() < 0.5
    var = f.name
    body = ["cond do", f"  {var} >= {hi_s} -> :{tiers[0]}", f"  {var} >= {lo_s} -> :{tiers[1]}",
            f"  true -> :{tiers[2]}", "end"]
    if on_item:
        clause = Clause(f"%{{{f.name}: {var}}}", body)
        spec_arg = k.item_type
        calls = [(f"{c.attr} |> Enum.at({i})", r[f.name]) for i, r in enumerate(c.samples)]
    else:
        clause = Clause(var, body, "is_number(" + var + ")")
        spec_arg = "number()"
        calls = [(lit(r[f.name]), r[f.name]) for r in c.samples]

    def tier(v):
        return tiers[0] if v >= hi else tiers[1] if v >= lo else tiers[2]

    checks = []
    for expr, v in calls:
        checks += eq(k.call(name, expr), Atom(tier(v)))
    what = f"{c.entity.a}" if on_item else f"a `{f.name}` value"
    return k.add(Fn(
        name, 1, [clause],
        doc=f"Puts {what} into a tier: `:{tiers[0]}`, `:{tiers[1]}` or `:{tiers[2]}`.\n\n"
        f"Values of at least {lit(hi)} are `:{tiers[0]}`, values of at least {lit(lo)} are "
        f"`:{tiers[1]}`.",
        spec=f"{name}({spec_arg}) :: :{tiers[0]} | :{tiers[1]} | :{tiers[2]}",
        explain=f"`{name}/1` uses a `cond` on `{f.name}`: {lit(hi)} or more is `:{tiers[0]}`, "
        f"{lit(lo)} or more is `:{tiers[1]}`, anything lower is `:{tiers[2]}`"
        + (" (the thresholds are module attributes)." if by_attr else "."),
        tests=[Test(f"assigns every {f.name.replace('_', ' ')} a tier", checks)],
    ))


def money_helper() -> Fn:
    return Fn.simple("format_cents", ["cents"], [
        "units = div(cents, 100)",
        "rest = cents |> rem(100) |> Integer.to_string() |> String.pad_leading(2, \"0\")",
        "",
        "\"#{units}.#{rest}\"",
    ], public=False)


def _shown(f, value, var: str) -> tuple[str, str, Fn | None]:
    """(Elixir expression, Python-rendered text, helper needed) to show a field in a string."""
    if f.type == "money":
        return f"#{{format_cents({var})}}", f"{value // 100}.{value % 100:02d}", money_helper()
    if f.type == "float":
        return f"#{{:erlang.float_to_binary({var}, decimals: 1)}}", f"{value:.1f}", None
    if f.type == "date":
        return f"#{{Calendar.strftime({var}, \"%d %b %Y\")}}", value.strftime("%d %b %Y"), None
    return f"#{{{var}}}", to_s(value), None


def op_format(k: Kit) -> bool:
    c = k.c
    label = c.entity.label
    others = [f for f in c.entity.fields if f.name != label.name and f.type not in ("flag", "datetime")]
    if not others:
        return False
    f = c.pick(others)
    name = c.pick([f"describe_{c.one}", f"format_{c.one}", f"{c.one}_line"])
    if not k.free(name):
        return False
    one = c.one
    sep = c.pick([" - ", ": ", " | ", ", "])
    in_head = c.rng.random() < 0.5
    lv, fv = (label.name, f.name) if in_head else (f"{one}.{label.name}", f"{one}.{f.name}")
    shown, text, helper = _shown(f, c.samples[0][f.name], fv)
    lead = f"#{{{lv}}}"
    line = f'"{lead}{sep}{shown}"'
    if c.rng.random() < 0.4 and f.type in ("count", "int"):
        line = f'"{lead} ({shown} {f.name.replace("_", " ")})"'
        expected = f"{c.samples[0][label.name]} ({text} {f.name.replace('_', ' ')})"
    else:
        expected = f"{c.samples[0][label.name]}{sep}{text}"
    args = f"%{{{label.name}: {label.name}, {f.name}: {f.name}}}" if in_head else one
    if helper:
        k.helper(helper)
    how = "formatted as money" if f.type == "money" else f"its `{f.name}`"
    return k.add(Fn(
        name, 1, [Clause(args, [line])],
        doc=c.pick([
            f"Formats {c.entity.a} as one line of text: its `{label.name}` and {how}.",
            f"Human-readable summary of {c.entity.a}, e.g. for logs or emails.",
        ]),
        spec=f"{name}({k.item_type}) :: String.t()",
        explain=f"`{name}/1` builds a one-line string from the `{label.name}` and `{f.name}` "
        + ("fields, pattern-matching them in the function head." if in_head else "fields.")
        + (" Amounts in cents are rendered with two decimals by the private `format_cents/1`."
           if helper else ""),
        tests=[Test(f"formats {c.entity.a}", eq(k.call(name, f"hd({c.attr})"), expected))],
    ))


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def op_normalize(k: Kit) -> bool:
    c = k.c
    cands = k.fields("text", "string")
    if not cands:
        return False
    f = c.pick(cands)
    slug = c.rng.random() < 0.5
    name = f"slugify_{f.name}" if slug else f"normalize_{f.name}"
    if not k.free(name):
        return False
    raw = "  " + str(c.samples[0][f.name]).title() + " "
    if slug:
        body = ["value", "|> String.downcase()", '|> String.replace(~r/[^a-z0-9]+/, "-")',
                '|> String.trim("-")']
        expected, what = _slug(raw), "a URL-friendly slug: lowercase, runs of other characters become `-`"
    else:
        body = k.choose([["value", "|> String.trim()", "|> String.downcase()"],
                         ["value |> String.trim() |> String.downcase()"]])
        expected, what = raw.strip().lower(), "trimmed, lowercase form"
    return k.add(Fn(
        name, 1, [Clause("value", body, "is_binary(value)")],
        doc=f"Turns a `{f.name}` into its {what}.",
        spec=f"{name}(String.t()) :: String.t()",
        explain=f"`{name}/1` converts a `{f.name}` string to its {what}; a guard rejects "
        "non-binaries.",
        tests=[Test(f"normalizes {lit(raw)}", eq(k.call(name, lit(raw)), expected))],
    ))


def op_parse(k: Kit) -> bool:
    c = k.c
    cands = k.fields("count", "int", "money", "float")
    if not cands:
        return False
    f = c.pick(cands)
    name = f"parse_{f.name}"
    if not k.free(name):
        return False
    mod = "Float" if f.type == "float" else "Integer"
    cond = " when value >= 0" if f.type in ("count", "money") else ""
    body = [f"case {mod}.parse(String.trim(input)) do", f"  {{value, \"\"}}{cond} -> {{:ok, value}}",
            f"  _ -> {{:error, :invalid_{f.name}}}", "end"]
    good = c.samples[0][f.name]
    err = (Atom("error"), Atom(f"invalid_{f.name}"))
    tests = [Test("parses a padded number", eq(k.call(name, lit(f" {good} ")), (Atom("ok"), good))),
             Test("rejects trailing garbage", eq(k.call(name, lit(f"{good}x")), err))]
    if cond:
        tests.append(Test("rejects negative values", eq(k.call(name, '"-3"'), err)))
    return k.add(Fn(
        name, 1, [Clause("input", body, "is_binary(input)")],
        doc=f"Parses user input into a `{f.name}`.\n\nSurrounding whitespace is ignored; anything "
        "else that is not a number is an error.",
        spec=f"{name}(String.t()) :: {{:ok, {etype(f.type)}}} | {{:error, :invalid_{f.name}}}",
        explain=f"`{name}/1` trims the input and uses `{mod}.parse/1`; only a complete number"
        + (" that is not negative" if cond else "") + f" gives `{{:ok, value}}`, everything else "
        f"`{{:error, :invalid_{f.name}}}`.",
        tests=tests,
    ))


def _param_helpers(k: Kit) -> None:
    k.helper(Fn.simple("fetch_param", ["params", "key"], [
        "case Map.fetch(params, key) do",
        '  {:ok, value} when is_binary(value) and value != "" -> {:ok, value}',
        "  _ -> {:error, {:missing, key}}",
        "end",
    ], public=False))
    k.helper(Fn.simple("fetch_integer", ["params", "key"], [
        "with {:ok, raw} <- fetch_param(params, key),",
        '     {value, ""} <- Integer.parse(raw) do',
        "  {:ok, value}",
        "else",
        "  {:error, reason} -> {:error, reason}",
        "  _ -> {:error, {:invalid, key}}",
        "end",
    ], public=False))


def op_build(k: Kit) -> bool:
    c = k.c
    texts = k.fields("text", "string")
    nums = k.fields("count", "int", "money")
    if not texts or not nums:
        return False
    t, n = texts[0], c.pick(nums)
    name = f"build_{c.one}"
    if not k.free(name):
        return False
    _param_helpers(k)
    body = [f'with {{:ok, {t.name}}} <- fetch_param(params, "{t.name}"),',
            f'     {{:ok, {n.name}}} <- fetch_integer(params, "{n.name}") do',
            f"  {{:ok, %{{{t.name}: {t.name}, {n.name}: {n.name}}}}}", "end"]
    row = c.samples[0]
    good = StrMap({t.name: str(row[t.name]), n.name: str(row[n.name])})
    return k.add(Fn(
        name, 1, [Clause("params", body, "is_map(params)")],
        doc=f"Builds {c.entity.a} map from string-keyed params, such as form input.\n\n"
        f"`\"{t.name}\"` must be a non-empty string and `\"{n.name}\"` an integer.",
        spec=f"{name}(map()) :: {{:ok, map()}} | {{:error, term()}}",
        explain=f"`{name}/1` chains `fetch_param/2` and `fetch_integer/2` in a `with`; the first "
        f"failure, such as `{{:error, {{:missing, \"{t.name}\"}}}}`, is returned unchanged.",
        tests=[
            Test("builds from valid params", eq(k.call(name, lit(good)),
                                                (Atom("ok"), {t.name: str(row[t.name]), n.name: row[n.name]}))),
            Test(f"requires {t.name}", eq(k.call(name, lit(StrMap({n.name: "1"}))),
                                          (Atom("error"), (Atom("missing"), t.name)))),
            Test(f"rejects a non-numeric {n.name}",
                 eq(k.call(name, lit(StrMap({t.name: str(row[t.name]), n.name: "many"}))),
                    (Atom("error"), (Atom("invalid"), n.name)))),
        ],
    ))


def op_money(k: Kit) -> bool:
    c = k.c
    if not k.fields("money"):
        return False
    kind = c.pick(["discount", "tax", "split"])
    amount = c.pick(k.column(c.pick(k.fields("money")).name))
    if kind == "discount" and k.free("apply_discount"):
        pct = c.pick([5, 10, 15, 20, 25])
        body = k.choose([["amount - div(amount * percent, 100)"],
                         ["discount = div(amount * percent, 100)", "amount - discount"]])
        return k.add(Fn(
            "apply_discount", 2,
            [Clause("amount, percent", body, "is_integer(amount) and percent in 0..100")],
            doc="Takes `percent` off an amount in cents, rounding the discount down.",
            spec="apply_discount(non_neg_integer(), 0..100) :: non_neg_integer()",
            explain="`apply_discount/2` subtracts a whole-cent discount computed with `div/2`; "
            "its guard only accepts percentages from 0 to 100.",
            tests=[Test(f"takes {pct}% off", eq(k.call("apply_discount", f"{lit(amount)}, {pct}"),
                                               amount - amount * pct // 100)),
                   Test("keeps the amount at 0%", eq(k.call("apply_discount", f"{lit(amount)}, 0"), amount))],
        ))
    if kind == "tax" and k.free("with_tax"):
        rate = c.pick([0.07, 0.1, 0.2, 0.21])
        body = ["round(amount * (1 + rate))"]
        return k.add(Fn(
            "with_tax", 2, [Clause("amount, rate", body, "is_integer(amount) and is_float(rate)")],
            doc="Adds tax at `rate` (e.g. `0.2` for 20%) to an amount in cents, rounded to a cent.",
            spec="with_tax(non_neg_integer(), float()) :: non_neg_integer()",
            explain="`with_tax/2` multiplies the amount by `1 + rate` and rounds to whole cents.",
            tests=[Test("adds tax", eq(k.call("with_tax", f"{lit(amount)}, {rate}"),
                                       ex_round(amount * (1 + rate))))],
        ))
    if kind == "split" and k.free("split_amount"):
        parts = c.pick([2, 3, 4])
        body = ["base = div(amount, parts)", "extra = rem(amount, parts)", "",
                "List.duplicate(base + 1, extra) ++ List.duplicate(base, parts - extra)"]
        base, extra = divmod(amount + 1, parts)
        shares = [base + 1] * extra + [base] * (parts - extra)
        return k.add(Fn(
            "split_amount", 2, [Clause("amount, parts", body, "is_integer(amount) and parts > 0")],
            doc="Splits an amount in cents into `parts` shares that differ by at most one cent.\n\n"
            "The shares always add up to the original amount.",
            spec="split_amount(non_neg_integer(), pos_integer()) :: [non_neg_integer()]",
            explain="`split_amount/2` divides with `div/2` and `rem/2` and hands the leftover "
            "cents to the first shares, so nothing is lost to rounding.",
            tests=[Test("splits without losing cents", [
                f"shares = {k.call('split_amount', f'{lit(amount + 1)}, {parts}')}", "",
                *eq("shares", shares), f"assert Enum.sum(shares) == {lit(amount + 1)}"])],
        ))
    return False


def op_update(k: Kit) -> bool:
    c = k.c
    one, row = c.one, c.samples[0]
    cands = [f for f in c.entity.fields if f.type in ("count", "flag", "status")]
    if not cands:
        return False
    f = c.pick(cands)
    if f.type == "count":
        name = f"increment_{f.name}"
        if not k.free(name):
            return False
        body = k.choose([[f"Map.update!({one}, :{f.name}, &(&1 + by))"],
                         [f"%{{{one} | {f.name}: {one}.{f.name} + by}}"]])
        return k.add(Fn(
            name, 2, [Clause(f"{one}, by \\\\ 1", body, "is_integer(by)")],
            doc=f"Adds `by` (default 1) to the {c.entity.human}'s `{f.name}`.",
            spec=f"{name}({k.item_type}, integer()) :: {k.item_type}",
            explain=f"`{name}/2` returns the {c.entity.human} with `{f.name}` increased by `by`, "
            "which defaults to 1.",
            tests=[Test("adds one by default", eq(f"{k.call(name, f'hd({c.attr})')}.{f.name}", row[f.name] + 1)),
                   Test("adds the given amount",
                        eq(f"{k.call(name, f'hd({c.attr}), 5')}.{f.name}", row[f.name] + 5))],
        ))
    if f.type == "flag":
        name = f"toggle_{f.name}"
        if not k.free(name):
            return False
        body = k.choose([[f"%{{{one} | {f.name}: not {one}.{f.name}}}"],
                         [f"Map.update!({one}, :{f.name}, &(not &1))"]])
        return k.add(Fn.simple(
            name, [one], body,
            doc=f"Flips the `{f.name}` flag of {c.entity.a}.",
            spec=f"{name}({k.item_type}) :: {k.item_type}",
            explain=f"`{name}/1` returns a copy of the {c.entity.human} with `{f.name}` negated.",
            tests=[Test(f"flips {f.name}", eq(f"{k.call(name, f'hd({c.attr})')}.{f.name}", not row[f.name]))],
        ))
    value = c.pick(f.values)
    name = f"mark_{value}"
    if not k.free(name):
        return False
    body = k.choose([[f"%{{{one} | {f.name}: :{value}}}"], [f"Map.put({one}, :{f.name}, :{value})"]])
    return k.add(Fn.simple(
        name, [one], body,
        doc=f"Sets the {c.entity.human}'s `{f.name}` to `:{value}`.",
        spec=f"{name}({k.item_type}) :: {k.item_type}",
        explain=f"`{name}/1` returns the {c.entity.human} with `{f.name}` set to `:{value}`; the "
        "original map is not changed.",
        tests=[Test(f"marks as {value}", eq(f"{k.call(name, f'hd({c.attr})')}.{f.name}", Atom(value)))],
    ))


def op_row(k: Kit) -> bool:
    c = k.c
    if not k.free("to_csv_row"):
        return False
    cols = [f for f in c.entity.fields if f.type != "flag"]
    if len(cols) < 2:
        return False
    cols = cols[: c.pick([2, 3, 4])]
    one, sep = c.one, c.pick([",", ";"])
    fields = ", ".join(f"{one}.{f.name}" for f in cols)
    body = k.choose([
        [f"[{fields}]", "|> Enum.map(&to_string/1)", f'|> Enum.join("{sep}")'],
        [f'Enum.map_join([{fields}], "{sep}", &to_string/1)'],
    ])
    if body is None:
        return False
    expected = sep.join(to_s(c.samples[0][f.name]) for f in cols)
    names = ", ".join(f"`{f.name}`" for f in cols)
    return k.add(Fn.simple(
        "to_csv_row", [one], body,
        doc=f"Renders {c.entity.a} as a `{sep}`-separated row: {names}.",
        spec=f"to_csv_row({k.item_type}) :: String.t()",
        explain=f"`to_csv_row/1` converts {names} to strings with `to_string/1` and joins them "
        f"with `{sep}`.",
        tests=[Test("renders a row", eq(k.call("to_csv_row", f"hd({c.attr})"), expected))],
    ))


def op_until(k: Kit) -> bool:
    c = k.c
    cands = k.fields("date", "datetime")
    if not cands:
        return False
    f = c.pick(cands)
    row = c.samples[0]
    if f.type == "date":
        name = f"days_until_{stem(f.name)}"
        if not k.free(name):
            return False
        today = min(k.column(f.name)) - timedelta(days=3)
        body = [f"Date.diff({c.one}.{f.name}, today)"]
        return k.add(Fn(
            name, 2, [Clause(f"{c.one}, today \\\\ Date.utc_today()", body)],
            doc=f"Days from `today` until the {c.entity.human}'s `{f.name}`; negative once it has passed.",
            spec=f"{name}({k.item_type}, Date.t()) :: integer()",
            explain=f"`{name}/2` uses `Date.diff/2`; `today` defaults to `Date.utc_today/0` so "
            "tests can pass a fixed date.",
            tests=[Test("counts days from a fixed date", eq(k.call(name, f"hd({c.attr}), {lit(today)}"),
                                                          (row[f.name] - today).days))],
        ))
    name = f"hours_since_{stem(f.name)}"
    if not k.free(name):
        return False
    now = max(k.column(f.name)) + timedelta(hours=5)
    body = [f"DateTime.diff(now, {c.one}.{f.name}, :hour)"]
    return k.add(Fn(
        name, 2, [Clause(f"{c.one}, now \\\\ DateTime.utc_now()", body)],
        doc=f"Whole hours elapsed since the {c.entity.human}'s `{f.name}`.",
        spec=f"{name}({k.item_type}, DateTime.t()) :: integer()",
        explain=f"`{name}/2` returns `DateTime.diff/3` in hours between `now` (default "
        f"`DateTime.utc_now/0`) and `{f.name}`.",
        tests=[Test("counts whole hours", eq(k.call(name, f"hd({c.attr}), {lit(now)}"),
                                             int((now - row[f.name]).total_seconds() // 3600)))],
    ))


def op_label(k: Kit) -> bool:
    c = k.c
    cands = k.fields("status")
    if not cands:
        return False
    f = c.pick(cands)
    name, helper = f"{f.name}_label", f"humanize_{f.name}"
    if not k.free(name) or not k.free(helper):
        return False
    style = c.pick(["title", "upper", "plain"])

    def show(v: str) -> str:
        text = v.replace("_", " ")
        return text.capitalize() if style == "title" else text.upper() if style == "upper" else text

    clauses = [Clause(f":{v}", [lit(show(v))], oneline=True) for v in f.values]
    clauses.append(Clause("other", ["other |> Atom.to_string() |> String.replace(\"_\", \" \")"], oneline=True))
    k.helper(Fn(helper, 1, clauses, public=False))
    row = c.samples[0]
    return k.add(Fn.simple(
        name, [c.one], [f"{helper}({c.one}.{f.name})"],
        doc=f"Human-readable label for the {c.entity.human}'s `{f.name}`.",
        spec=f"{name}({k.item_type}) :: String.t()",
        explain=f"`{name}/1` delegates to the multi-clause private function `{helper}/1`, which "
        f"pattern-matches each known `{f.name}` atom and falls back to the atom's name.",
        tests=[Test(f"labels the {f.name}", eq(k.call(name, f"hd({c.attr})"), show(str(row[f.name])))),
               Test("falls back for unknown values", eq(k.call(name, f"%{{{f.name}: :on_hold}}"), "on hold"))],
    ))


def op_validate(k: Kit) -> bool:
    c = k.c
    cands = k.fields("int", "count", "text")
    if not cands:
        return False
    f = c.pick(cands)
    name = f"valid_{f.name}?"
    if not k.free(name):
        return False
    if f.type == "text":
        hi = c.pick([40, 80, 120])
        guard, good, bad = f"is_binary(value) and byte_size(value) in 1..{hi}", c.samples[0][f.name], ""
        rule = f"a string of 1 to {hi} bytes"
    else:
        vals = k.column(f.name)
        lo, hi = (0, max(vals) * 2) if f.type == "count" else (min(vals), max(vals))
        guard, good, bad = f"is_integer(value) and value in {lo}..{hi}", vals[0], hi + 1
        rule = f"an integer from {lo} to {hi}"
    clauses = [Clause("value", ["true"], guard, oneline=True), Clause("_value", ["false"], oneline=True)]
    return k.add(Fn(
        name, 1, clauses,
        doc=f"Tells whether `value` is an acceptable `{f.name}`: {rule}.",
        spec=f"{name}(term()) :: boolean()",
        explain=f"`{name}/1` has two clauses: a guarded one accepting {rule}, and a catch-all "
        "returning `false`.",
        tests=[Test("accepts a valid value", eq(k.call(name, lit(good)), True)),
               Test("rejects an invalid value", eq(k.call(name, lit(bad)), False)),
               Test("rejects other types", eq(k.call(name, "nil"), False))],
    ))
