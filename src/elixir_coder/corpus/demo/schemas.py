"""Ecto schemas with changesets: database-backed (``schema "table"``) or embedded forms/filters.

Validations are drawn per field from what the field means (a code gets a format and a unique
constraint, an amount a lower bound, a label a length range...), and the sample record is
checked against the same rules here, so the "valid attributes" in the test really are valid.
"""

from __future__ import annotations

import re

from elixir_coder.corpus.demo.ex import (
    MAX_LINE,
    Clause,
    Ctx,
    Fn,
    ModSpec,
    Test,
    TestModule,
    lit,
    lit_lines,
)
from elixir_coder.corpus.demo.words import ECTO_TYPES, RANGES, STRING_POOLS, Field

CHOICE_FIELDS = ("currency", "method", "carrier", "channel", "locale", "country", "unit", "department")


def code_regex(sample: str) -> str:
    prefix = sample.split("-", 1)[0]
    cls = "\\d" if prefix.isdigit() else "[A-Z]" if prefix.isupper() else "[a-z]"
    return f"~r/^{cls}+-\\d+$/"


def field_line(f: Field, rng) -> str:
    if f.type == "status":
        values = ", ".join(":" + v for v in f.values)
        return f"field :{f.name}, Ecto.Enum, values: [{values}], default: :{f.values[0]}"
    line = f"field :{f.name}, {ECTO_TYPES[f.type]}"
    if f.type == "flag":
        line += f", default: {rng.choice(['false', 'true'])}"
    elif f.type == "count":
        line += ", default: 0"
    return line


class Rules:
    """The changeset pipeline for some fields, with the tests and prose that go with it."""

    def __init__(self, c: Ctx, mod: str, new: str):
        self.c, self.mod, self.new = c, mod, new  # ``new``: how a test builds an empty struct
        self.pipe: list[str] = []
        self.tests: list[Test] = []
        self.notes: list[str] = []

    def _invalid(self, field: str, value, what: str) -> None:
        call = f"{self.mod}.changeset({self.new}, %{{@valid_attrs | {field}: {lit(value)}}})"
        lines = [f"changeset = {call}"] if len(call) + 18 <= MAX_LINE else [
            f"attrs = %{{@valid_attrs | {field}: {lit(value)}}}", f"changeset = {self.mod}.changeset({self.new}, attrs)"]
        self.tests.append(Test(f"rejects {what}", lines + ["", "refute changeset.valid?",
                                                            f"assert changeset.errors[:{field}]"]))

    def add(self, f: Field, value) -> None:
        rng = self.c.rng
        n = f.name
        if f.type == "text":
            hi = max(rng.choice([40, 80, 120, 160]), len(str(value)))
            self.pipe.append(f"validate_length(:{n}, min: 2, max: {hi})")
            self._invalid(n, "x", f"a one-letter {n.replace('_', ' ')}")
            self.notes.append(f"`{n}` must be 2 to {hi} characters long")
        elif f.type == "string" and n in CHOICE_FIELDS:
            pool = " ".join(STRING_POOLS[n])
            self.pipe.append(f"validate_inclusion(:{n}, ~w({pool}))")
            self._invalid(n, "zzz", f"an unknown {n.replace('_', ' ')}")
            self.notes.append(f"`{n}` must be one of {', '.join(STRING_POOLS[n])}")
        elif f.type == "string":
            hi = rng.choice([255, 500, 1000])
            self.pipe.append(f"validate_length(:{n}, max: {hi})")
            self.notes.append(f"`{n}` is capped at {hi} characters")
        elif f.type == "code":
            self.pipe += [f"validate_format(:{n}, {code_regex(str(value))})", f"unique_constraint(:{n})"]
            self._invalid(n, "not a code", f"a malformed {n.replace('_', ' ')}")
            self.notes.append(f"`{n}` must match `{code_regex(str(value))}` and is unique (backed by a "
                              "unique index, checked when the row is written)")
        elif f.type == "email":
            self.pipe += [f"update_change(:{n}, &String.downcase/1)",
                          f'validate_format(:{n}, ~r/^[^\\s]+@[^\\s]+$/, message: "must be an email address")',
                          f"unique_constraint(:{n})"]
            self._invalid(n, "not-an-email", f"an invalid {n}")
            self.tests.append(Test(f"downcases {n}", [
                f"attrs = %{{@valid_attrs | {n}: {lit(str(value).upper())}}}", "",
                f"assert {self.mod}.changeset({self.new}, attrs).changes.{n} == {lit(value)}"]))
            self.notes.append(f"`{n}` is downcased, checked against a simple email pattern and unique")
        elif f.type in ("money", "count"):
            self.pipe.append(f"validate_number(:{n}, greater_than_or_equal_to: 0)")
            self._invalid(n, -1, f"a negative {n.replace('_', ' ')}")
            self.notes.append(f"`{n}` cannot be negative")
        elif f.type == "int" and n in RANGES:
            lo, hi = (int(x) for x in RANGES[n])
            if rng.random() < 0.5:
                self.pipe.append(f"validate_inclusion(:{n}, {lo}..{hi})")
            else:
                self.pipe.append(f"validate_number(:{n}, greater_than_or_equal_to: {lo}, less_than_or_equal_to: {hi})")
            self._invalid(n, hi + 1, f"a {n.replace('_', ' ')} above {hi}")
            self.notes.append(f"`{n}` must lie between {lo} and {hi}")
        elif f.type == "float" and RANGES.get(n, (1, 1))[0] > 0:
            self.pipe.append(f"validate_number(:{n}, greater_than: 0)")
            self._invalid(n, 0.0, f"a zero {n.replace('_', ' ')}")
            self.notes.append(f"`{n}` must be positive")
        elif f.type == "status":
            self._invalid(n, "bogus", f"an unknown {n}")
            self.notes.append(f"`{n}` is an `Ecto.Enum`, so only {', '.join(':' + v for v in f.values)} "
                              "cast")


def _attr_list(name: str, items: list[str], sigil: bool) -> list[str]:
    line = f"@{name} ~w({' '.join(items)})a" if sigil else f"@{name} [" + ", ".join(":" + x for x in items) + "]"
    if len(line) + 2 <= MAX_LINE:
        return [line]
    return [f"@{name} ["] + [f"  :{x}," for x in items[:-1]] + [f"  :{items[-1]}", "]"]


def _cast_lists(c: Ctx, required: list[str], optional: list[str]) -> tuple[list[str], str, str]:
    """Module attributes for the field lists, and how ``cast``/``validate_required`` refer to them."""
    style = c.rng.choice(["atoms", "sigil", "inline"])
    if style == "inline" and len(", ".join(required + optional)) < 50:
        req = "[" + ", ".join(":" + x for x in required) + "]"
        every = "[" + ", ".join(":" + x for x in required + optional) + "]"
        return [], every, req
    attrs = _attr_list("required_fields", required, style == "sigil")
    if optional:
        attrs += _attr_list("optional_fields", optional, style == "sigil")
    every = "@required_fields ++ @optional_fields" if optional else "@required_fields"
    return attrs, every, "@required_fields"


def _valid_attrs(row: dict, fields: list[Field]) -> dict:
    return {f.name: row[f.name] for f in fields}


def _year_check(f: Field) -> tuple[Fn, str]:
    """A custom validation with ``validate_change/3`` for a date or datetime field."""
    fn = Fn.simple("validate_recent", ["changeset", "field"], [
        "validate_change(changeset, field, fn ^field, value ->",
        "  if value.year < 2000 do",
        '    [{field, "is too far in the past"}]',
        "  else",
        "    []",
        "  end",
        "end)",
    ], public=False)
    return fn, f"validate_recent(:{f.name})"


def _slug_helpers(source: str) -> list[Fn]:
    return [
        Fn.simple("put_slug", ["changeset"], [
            f"case get_change(changeset, :{source}) do",
            "  nil -> changeset",
            f"  {source} -> put_change(changeset, :slug, slugify({source}))",
            "end",
        ], public=False),
        Fn.simple("slugify", ["text"], [
            "text", "|> String.downcase()", '|> String.replace(~r/[^a-z0-9]+/, "-")', '|> String.trim("-")'],
            public=False),
    ]


def build_schema(c: Ctx) -> ModSpec:
    rng, e, d = c.rng, c.entity, c.domain
    row = c.samples[0]
    fields = list(e.fields)
    table = e.plural
    has_slug = any(f.name == "slug" for f in fields) and e.label.name != "slug"
    required = [f.name for f in fields if f.type in ("text", "code", "email", "money")
                or (f.type == "int" and f.name in RANGES)]
    if not required:
        required = [fields[0].name]
    optional = [f.name for f in fields if f.name not in required]
    schema_lines = [f'schema "{table}" do'] + [f"  {field_line(f, rng)}" for f in fields]
    others = [x for x in d.entities if x.singular != e.singular]
    assoc = ""
    if others and rng.random() < 0.5:
        o = rng.choice(others)
        if rng.random() < 0.5:
            schema_lines.append(f"  belongs_to :{o.singular}, {d.app}.{o.context}.{o.camel}")
            optional.append(f"{o.singular}_id")
            assoc = f"belongs to {o.a}; `{o.singular}_id` is optional and checked by a foreign key constraint"
        else:
            schema_lines.append(f"  has_many :{o.plural}, {d.app}.{o.context}.{o.camel}")
            assoc = f"has many {o.human_plural}"
    schema_lines += ["", f"  timestamps({rng.choice(['', 'type: :utc_datetime'])})", "end"]
    attrs, every, req = _cast_lists(c, required, optional)
    rules = Rules(c, c.short, f"%{c.short}{{}}")
    for f in fields:
        rules.add(f, row[f.name])
    helpers: list[Fn] = []
    dated = [f for f in fields if f.type in ("date", "datetime")]
    if dated and rng.random() < 0.6:
        helper, stage = _year_check(dated[0])
        helpers.append(helper)
        rules.pipe.append(stage)
        rules._invalid(dated[0].name, _old(dated[0]), f"a {dated[0].name.replace('_', ' ')} before 2000")
        rules.notes.append(f"`{dated[0].name}` may not be before the year 2000 (a custom "
                           "`validate_change/3` check)")
    if has_slug:
        helpers += _slug_helpers(e.label.name)
        rules.pipe.append("put_slug()")
        rules.tests.append(Test(f"derives the slug from the {e.label.name}", [
            f"changeset = {c.short}.changeset(%{c.short}{{}}, @valid_attrs)", "",
            f"assert changeset.changes.slug == {lit(_slugify(str(row[e.label.name])))}"]))
        rules.notes.append(f"`slug` is derived from `{e.label.name}` whenever it changes")
    if assoc.startswith("belongs"):
        rules.pipe.append(f"foreign_key_constraint(:{assoc.split('`')[1]})")
    pipe = [e.singular, f"|> cast(attrs, {every})", f"|> validate_required({req})"]
    pipe += [f"|> {p}" for p in rules.pipe]
    changeset = Fn.simple(
        "changeset", [e.singular, "attrs"], pipe,
        doc=rng.choice([f"Builds a changeset for creating or updating {e.a}.",
                        f"Casts and validates `attrs` for {e.a}.\n\nRequired: "
                        + ", ".join(f"`{x}`" for x in required) + "."]),
        spec="changeset(t(), map()) :: Ecto.Changeset.t()",
        explain=f"`changeset/2` casts the permitted fields, requires {', '.join(required)}, and "
        "validates: " + "; ".join(rules.notes) + "." if rules.notes else
        f"`changeset/2` casts the permitted fields and requires {', '.join(required)}.",
        tests=[Test("is valid with valid attributes", [
            f"assert {c.short}.changeset(%{c.short}{{}}, @valid_attrs).valid?"])]
        + [Test(f"requires {required[0].replace('_', ' ')}", [
            f"attrs = Map.delete(@valid_attrs, :{required[0]})",
            f"changeset = {c.short}.changeset(%{c.short}{{}}, attrs)", "",
            "refute changeset.valid?", f'assert {{"can\'t be blank", _}} = changeset.errors[:{required[0]}]'])]
        + rules.tests,
    )
    fns = [changeset] + _transitions(c) + helpers
    header = ["use Ecto.Schema", "", "import Ecto.Changeset"]
    blocks = [["@type t :: %__MODULE__{}"]]
    if rng.random() < 0.3:
        shown = ", ".join(":" + f.name for f in fields[:3])
        blocks[0].insert(0, f"@derive {{Jason.Encoder, only: [:id, {shown}]}}")
    if attrs:
        blocks.append(attrs)
    blocks.append(schema_lines)
    doc = rng.choice([
        f"{upper(e.a)} in {d.blurb}, stored in the `{table}` table.",
        f"Ecto schema for {e.human_plural} (`{table}` table) and the changesets that validate them.",
    ])
    summary = (f"`{c.name}` is an Ecto schema mapping the `{table}` table with fields "
               + ", ".join(f"`{f.name}`" for f in fields) + (f"; it {assoc}" if assoc else "") + ". "
               "It imports `Ecto.Changeset` and exposes changeset functions that validate input before "
               "anything reaches the database.")
    test = TestModule(aliases=[c.name], blocks=[lit_lines(_valid_attrs(row, fields), 2, "@valid_attrs ")])
    return ModSpec(c.name, "ecto_schema", doc, header, blocks, fns, test, summary,
                   notes=[fn.explain for fn in fns if fn.explain], ctx=c)


def upper(text: str) -> str:
    return text[:1].upper() + text[1:]


def _slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _old(f: Field):
    import datetime as dt

    return dt.date(1999, 12, 31) if f.type == "date" else dt.datetime(1999, 12, 31, 23, 0, 0)


def _transitions(c: Ctx) -> list[Fn]:
    """Small changesets for one state change, e.g. ``mark_paid/1`` or ``set_active/2``."""
    e, out = c.entity, []
    status = e.of("status")
    if status and c.rng.random() < 0.7:
        f = status[0]
        value = c.rng.choice(f.values[1:])
        out.append(Fn.simple(
            f"mark_{value}", [e.singular], [f"change({e.singular}, {f.name}: :{value})"],
            doc=f"Changeset that sets the {e.human}'s `{f.name}` to `:{value}`.",
            spec=f"mark_{value}(t()) :: Ecto.Changeset.t()",
            explain=f"`mark_{value}/1` uses `change/2` (no casting, trusted input) to set `{f.name}` "
            f"to `:{value}`.",
            tests=[Test(f"sets {f.name} to {value}", [
                f"assert {c.short}.mark_{value}(%{c.short}{{}}).changes == %{{{f.name}: :{value}}}"])]))
    flags = e.of("flag")
    if flags and c.rng.random() < 0.5:
        f = c.rng.choice(flags)
        out.append(Fn(
            f"put_{f.name}", 2, [Clause(f"{e.singular}, value", [f"change({e.singular}, {f.name}: value)"],
                                        "is_boolean(value)")],
            doc=f"Changeset that sets `{f.name}` to `value`.",
            spec=f"put_{f.name}(t(), boolean()) :: Ecto.Changeset.t()",
            explain=f"`put_{f.name}/2` only accepts booleans (guard) and wraps `change/2`.",
            tests=[Test(f"changes {f.name}", [
                f"changeset = {c.short}.put_{f.name}(%{c.short}{{{f.name}: false}}, true)", "",
                f"assert changeset.changes == %{{{f.name}: true}}"])]))
    return out


def build_embedded(c: Ctx) -> ModSpec:
    nums = c.entity.of("money", "count", "int", "float")
    if c.short.endswith("Filter") and nums:
        return _filter(c, c.rng.choice(nums))
    return _form(c)


def _filter(c: Ctx, num: Field) -> ModSpec:
    rng, e = c.rng, c.entity
    lo, hi = f"min_{num.name}", f"max_{num.name}"
    per_page = rng.choice([10, 20, 25, 50])
    ecto_type = ECTO_TYPES[num.type]
    status = e.of("status")
    fields = ["field :query, :string", f"field :{lo}, {ecto_type}", f"field :{hi}, {ecto_type}"]
    cast = ["query", lo, hi]
    if status:
        fields.append(field_line(status[0], rng).replace(f", default: :{status[0].values[0]}", ""))
        cast.append(status[0].name)
    fields += ["field :page, :integer, default: 1", f"field :per_page, :integer, default: {per_page}"]
    cast += ["page", "per_page"]
    cast_list = "[" + ", ".join(":" + x for x in cast) + "]"
    blocks = [["@type t :: %__MODULE__{}"], ["@primary_key false", "embedded_schema do"]
              + [f"  {x}" for x in fields] + ["end"]]
    mk = c.short
    a, b = sorted(r[num.name] for r in c.samples)[:2]
    changeset = Fn.simple("changeset", ["params"], [
        "%__MODULE__{}", f"|> cast(params, {cast_list})", "|> validate_number(:page, greater_than: 0)",
        "|> validate_number(:per_page, greater_than: 0, less_than_or_equal_to: 100)", "|> validate_range()"],
        doc=f"Casts {e.human} filter params, e.g. from a query string.",
        spec="changeset(map()) :: Ecto.Changeset.t()",
        explain=f"`changeset/1` casts the filter fields from string-keyed params, requires a positive "
        f"`page` and a `per_page` of at most 100, and checks that `{lo}` is not above `{hi}`.",
        tests=[Test("rejects huge pages", [f'refute {mk}.changeset(%{{"per_page" => "500"}}).valid?'])])
    parse = Fn.simple("parse", ["params"], ["params", "|> changeset()", "|> apply_action(:validate)"],
                      doc="Parses params into a filter.\n\nReturns `{:ok, filter}` or `{:error, changeset}`.",
                      spec="parse(map()) :: {:ok, t()} | {:error, Ecto.Changeset.t()}",
                      explain="`parse/1` runs the changeset through `apply_action/2`, giving a struct "
                      "with defaults filled in or the invalid changeset.",
                      tests=[Test("uses defaults", [f"assert {{:ok, filter}} = {mk}.parse(%{{}})", "",
                                                    "assert filter.page == 1", f"assert filter.per_page == {per_page}"]),
                             Test("casts strings", [f'assert {{:ok, filter}} = {mk}.parse(%{{"page" => "3"}})', "",
                                                    "assert filter.page == 3"]),
                             Test("rejects an inverted range", [
                                 f'params = %{{"{lo}" => {lit(str(b))}, "{hi}" => {lit(str(a))}}}', "",
                                 f"assert {{:error, changeset}} = {mk}.parse(params)",
                                 f"assert changeset.errors[:{lo}]"])])
    offset = Fn.simple("offset", ["%__MODULE__{page: page, per_page: per_page}"], ["(page - 1) * per_page"],
                       doc="Number of rows to skip for the filter's page, for `offset/2` in a query.",
                       spec="offset(t()) :: non_neg_integer()",
                       explain="`offset/1` pattern-matches `page` and `per_page` out of the struct and "
                       "returns `(page - 1) * per_page`.",
                       tests=[Test("skips earlier pages", [
                           f"assert {mk}.offset(%{mk}{{page: 3, per_page: 10}}) == 20"])])
    helper = Fn.simple("validate_range", ["changeset"], [
        f"min = get_field(changeset, :{lo})", f"max = get_field(changeset, :{hi})", "",
        "if min && max && min > max do", f'  add_error(changeset, :{lo}, "must not be greater than {hi}")',
        "else", "  changeset", "end"], public=False)
    fns = [changeset, parse] + ([offset] if rng.random() < 0.6 else []) + [helper]
    header = ["use Ecto.Schema", "", "import Ecto.Changeset"]
    doc = (f"Search filter for {e.human_plural}: free text, a `{num.name}` range and paging.\n\n"
           "An embedded schema, never stored; it only validates user input.")
    summary = (f"`{c.name}` is an embedded Ecto schema (`@primary_key false`, no table) that turns "
               f"query-string params into a validated search filter for {e.human_plural}, with a "
               f"`{num.name}` range, paging defaults (`page` 1, `per_page` {per_page}) and a custom "
               f"check that `{lo}` does not exceed `{hi}`.")
    return ModSpec(c.name, "ecto_schema", doc, header, blocks, fns, TestModule(aliases=[c.name]), summary,
                   notes=[fn.explain for fn in fns if fn.explain], ctx=c)


def _form(c: Ctx) -> ModSpec:
    rng, e = c.rng, c.entity
    row = c.samples[0]
    fields = [f for f in e.fields if f.type not in ("date", "datetime")][:4]
    required = [f.name for f in fields if f.type in ("text", "email", "code")] or [fields[0].name]
    optional = [f.name for f in fields if f.name not in required]
    attrs, every, req = _cast_lists(c, required, optional)
    rules = Rules(c, c.short, f"%{c.short}{{}}")
    for f in fields:
        rules.add(f, row[f.name])
    blocks = [["@type t :: %__MODULE__{}"]]
    if attrs:
        blocks.append(attrs)
    blocks.append(["@primary_key false", "embedded_schema do"] + [f"  {field_line(f, rng)}" for f in fields] + ["end"])
    mk = c.short
    changeset = Fn.simple(
        "changeset", ["form", "params"],
        ["form", f"|> cast(params, {every})", f"|> validate_required({req})"] + [f"|> {p}" for p in rules.pipe],
        doc=f"Validates {e.human} form input.",
        spec="changeset(t(), map()) :: Ecto.Changeset.t()",
        explain=f"`changeset/2` casts the form fields, requires {', '.join(required)}"
        + ("; " + "; ".join(rules.notes) if rules.notes else "") + ".",
        tests=[Test("accepts valid input", [f"assert {mk}.changeset(%{mk}{{}}, @valid_attrs).valid?"])] + rules.tests)
    submit = Fn.simple(
        "submit", ["params"], ["%__MODULE__{}", "|> changeset(params)", "|> apply_action(:insert)"],
        doc="Validates `params` and returns `{:ok, form}` or `{:error, changeset}` for re-rendering.",
        spec="submit(map()) :: {:ok, t()} | {:error, Ecto.Changeset.t()}",
        explain="`submit/1` applies the changeset with `apply_action/2`, so an invalid form comes back "
        "as `{:error, changeset}` with the action set, ready for error display.",
        tests=[Test("returns the form", [f"assert {{:ok, %{mk}{{}}}} = {mk}.submit(@valid_attrs)"]),
               Test("returns the changeset on errors", [f"assert {{:error, changeset}} = {mk}.submit(%{{}})", "",
                                                        f"assert changeset.errors[:{required[0]}]"])])
    header = ["use Ecto.Schema", "", "import Ecto.Changeset"]
    doc = (f"Form data for {e.a}, validated without touching the database.\n\n"
           "Backed by an embedded schema, so it can be used with `Phoenix.HTML` forms.")
    summary = (f"`{c.name}` is an embedded Ecto schema for {e.human} form input: nothing is persisted, "
               f"the changeset only validates. It casts {', '.join(f.name for f in fields)}.")
    test = TestModule(aliases=[c.name], blocks=[lit_lines(_valid_attrs(row, fields), 2, "@valid_attrs ")])
    return ModSpec(c.name, "ecto_schema", doc, header, blocks, [changeset, submit], test, summary,
                   notes=[changeset.explain, submit.explain], ctx=c)
