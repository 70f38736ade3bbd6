"""The intermediate form every module builder fills in, Elixir literals, and sample data.

Builders describe a module as a :class:`ModSpec` (functions with their docs, specs, tests and
prose) instead of writing text directly, so that the source, its ExUnit test, the
explanation and the code-generation prompts are all rendered from one description and
cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

from elixir_coder.corpus.demo.words import (
    CODE_PREFIX,
    ELIXIR_TYPES,
    GENERIC_WORDS,
    RANGES,
    STRING_POOLS,
    TYPE_RANGES,
    Domain,
    Entity,
)

MAX_LINE = 98


class Atom(str):
    """A Python string that renders as an Elixir atom."""


class Raw(str):
    """Elixir code that renders verbatim (e.g. ``@products`` or ``product.id``)."""


class StrMap(dict):
    """A map with string keys (``%{"name" => "Ada"}``), as controller params are."""


class Struct(dict):
    """A struct literal: ``Struct("Product", name="Lamp")`` renders ``%Product{name: "Lamp"}``."""

    def __init__(self, module: str, *args, **kw):
        super().__init__(*args, **kw)
        self.module = module


@dataclass
class Clause:
    args: str  # the text between the parentheses; "" means no parentheses at all
    body: list[str]  # lines relative to the body indentation
    guard: str = ""
    oneline: bool = False  # render as ``def f(args), do: expr``


@dataclass
class Test:
    name: str
    lines: list[str]
    context: str = ""  # a test context pattern such as ``%{conn: conn}``


@dataclass
class Fn:
    name: str
    arity: int
    clauses: list[Clause]
    doc: str = ""  # empty: no @doc (private functions, callbacks)
    spec: str = ""  # what follows ``@spec ``
    public: bool = True
    impl: bool = False  # precede with ``@impl true``
    explain: str = ""  # one or two sentences for the explanation task
    tests: list[Test] = field(default_factory=list)

    @classmethod
    def simple(cls, name: str, args: list[str], body: list[str], **kw) -> Fn:
        """A single-clause function; arity is counted from ``args``."""
        guard = kw.pop("guard", "")
        return cls(name, len(args), [Clause(", ".join(args), body, guard)], **kw)


@dataclass
class TestModule:
    aliases: list[str]
    blocks: list[list[str]] = field(default_factory=list)  # attributes, setup, helpers
    use: str = "use ExUnit.Case, async: true"
    extra: list[Test] = field(default_factory=list)  # tests outside any describe block


@dataclass
class ModSpec:
    name: str
    kind: str
    moduledoc: str
    header: list[str]  # use / import / alias / require lines, blank lines allowed
    blocks: list[list[str]]  # attributes, defstruct, schema: lines relative to module indent
    fns: list[Fn]
    test: TestModule
    summary: str  # first sentence(s) of the module explanation
    notes: list[str] = field(default_factory=list)  # closing sentences of the explanation
    clarify: list[tuple[str, str]] = field(default_factory=list)  # (request, question)
    ctx: Ctx | None = None  # what the module was composed from, for prose about it
    facts: dict = field(default_factory=dict)  # details prose may quote: route path, separator...


@dataclass
class Ctx:
    """What a builder needs to know about the module it is composing."""

    rng: random.Random
    domain: Domain
    entity: Entity
    name: str  # the module name
    samples: list[dict]

    @property
    def short(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    @property
    def one(self) -> str:
        return self.entity.singular

    @property
    def many(self) -> str:
        return self.entity.plural

    @property
    def attr(self) -> str:
        return "@" + self.entity.plural

    def pick(self, seq):
        return seq[self.rng.randrange(len(seq))]


# -- literals ------------------------------------------------------------------


def _int(v: int) -> str:
    text = str(abs(v))
    if abs(v) >= 10_000:
        groups = []
        while text:
            groups.insert(0, text[-3:])
            text = text[:-3]
        text = "_".join(groups)
    return ("-" if v < 0 else "") + text


def _float(v: float) -> str:
    text = repr(round(v, 4))
    if "e" in text or "." not in text:
        raise ValueError(f"float {v!r} has no plain Elixir literal")
    return text


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def string(s: str) -> str:
    """An Elixir string literal; ``#{`` is escaped so that nothing is interpolated."""
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in s).replace("#{", "\\#{") + '"'


def lit(v) -> str:
    """One-line Elixir literal for a Python value."""
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, Atom):
        return ":" + v
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "nil"
    if isinstance(v, int):
        return _int(v)
    if isinstance(v, float):
        return _float(v)
    if isinstance(v, str):
        return string(v)
    if isinstance(v, dt.datetime):
        return f"~U[{v:%Y-%m-%d %H:%M:%S}Z]"
    if isinstance(v, dt.date):
        return f"~D[{v:%Y-%m-%d}]"
    if isinstance(v, tuple):
        return "{" + ", ".join(lit(x) for x in v) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(lit(x) for x in v) + "]"
    if isinstance(v, StrMap):
        return "%{" + ", ".join(f"{string(k)} => {lit(x)}" for k, x in v.items()) + "}"
    if isinstance(v, Struct):
        return f"%{v.module}{{" + ", ".join(f"{k}: {lit(x)}" for k, x in v.items()) + "}"
    if isinstance(v, dict):
        return "%{" + ", ".join(f"{k}: {lit(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"no Elixir literal for {type(v).__name__}")


def lit_lines(v, indent: int, prefix: str = "", suffix: str = "") -> list[str]:
    """``prefix + literal + suffix`` at ``indent``, broken over lines like mix format when long."""
    pad = " " * indent
    one = pad + prefix + lit(v) + suffix
    if len(one) <= MAX_LINE or not isinstance(v, (list, dict)):
        return [one]
    if isinstance(v, list):
        opener, closer = "[", "]"
        parts = [(None, x) for x in v]
    else:
        opener, closer = (f"%{v.module}{{" if isinstance(v, Struct) else "%{"), "}"
        parts = list(v.items())
    lines = [pad + prefix + opener]
    for i, (key, x) in enumerate(parts):
        comma = "," if i < len(parts) - 1 else ""
        if key is None:
            head = ""
        elif isinstance(v, StrMap):
            head = f"{string(key)} => "
        else:
            head = f"{key}: "
        lines.extend(lit_lines(x, indent + 2, head, comma))
    lines.append(pad + closer + suffix)
    return lines


def etype(kind: str) -> str:
    return ELIXIR_TYPES[kind]


# -- sample data -----------------------------------------------------------------


def _distinct(rng: random.Random, pool, n: int) -> list:
    pool = list(pool)
    rng.shuffle(pool)
    return [pool[i % len(pool)] for i in range(n)]


def _numbers(rng: random.Random, name: str, kind: str, n: int) -> list:
    lo, hi = RANGES.get(name, TYPE_RANGES[kind])
    if kind == "float":
        picks = set()
        while len(picks) < n:
            picks.add(round(rng.uniform(lo, hi), 1 if hi > 10 else 2))
        values = sorted(picks)
    else:
        step = 5 if kind == "money" else 1  # amounts in cents end in 0 or 5, like prices do
        values = [step * v for v in rng.sample(range(int(lo) // step, int(hi) // step + 1), n)]
    rng.shuffle(values)
    return values


def sample_column(rng: random.Random, entity: Entity, f, n: int) -> list:
    if f.type in ("money", "count", "int", "float"):
        return _numbers(rng, f.name, f.type, n)
    if f.type == "flag":
        flags = [True, False] + [rng.random() < 0.5 for _ in range(n - 2)]
        rng.shuffle(flags)
        return flags
    if f.type == "status":
        values = _distinct(rng, f.values, n)
        if n > 2 and len(f.values) > 2 and rng.random() < 0.5:
            values[-1] = values[0]  # a repeat, so that counts are not all 1
        return [Atom(v) for v in values]
    if f.type == "date":
        days = rng.sample(range(0, 300), n)
        return [dt.date(2024, 1, 1) + dt.timedelta(days=d) for d in days]
    if f.type == "datetime":
        hours = rng.sample(range(0, 2000), n)
        return [dt.datetime(2024, 3, 1, 8, 0, 0) + dt.timedelta(hours=h) for h in hours]
    if f.type == "email":
        return [f"{w.lower()}@example.com" for w in _distinct(rng, ("ada", "grace", "alan", "joan", "linus"), n)]
    if f.type == "code":
        prefix = CODE_PREFIX.get(f.name, f.name[:3].upper())
        return [f"{prefix}-{v}" for v in rng.sample(range(100, 1000), n)]
    if f.type == "text" and entity.samples:
        return _distinct(rng, entity.samples, n)
    return _distinct(rng, STRING_POOLS.get(f.name, GENERIC_WORDS), n)


def make_samples(rng: random.Random, entity: Entity, n: int = 3) -> list[dict]:
    """``n`` records with an ``id`` and every field; values in a column are distinct when possible."""
    columns = {f.name: sample_column(rng, entity, f, n) for f in entity.fields}
    rows = []
    for i in range(n):
        row = {"id": i + 1}
        row.update({name: col[i] for name, col in columns.items()})
        rows.append(row)
    return rows


def arity_of(args: str) -> int:
    """Top-level comma count of an argument list (brackets and strings respected)."""
    if not args.strip():
        return 0
    depth, count, quote = 0, 1, False
    for ch in args:
        if ch == '"':
            quote = not quote
        elif quote:
            continue
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            count += 1
    return count
