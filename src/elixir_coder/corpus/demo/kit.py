"""Shared tools for composing functions from ops: the Kit that collects them, and test helpers.

Expected values in tests are computed in Python from the sample data; the helpers here turn
them into ``assert`` lines laid out the way mix format would lay them out.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from elixir_coder.corpus.demo.ex import MAX_LINE, Ctx, Fn, lit, lit_lines

TEST_INDENT = 6  # test bodies sit inside ``describe`` and ``test``
BODY_INDENT = 4


def fits(lines: list[str], indent: int = BODY_INDENT) -> bool:
    return all(len(line) + indent <= MAX_LINE for line in lines)


def eq(call: str, expected) -> list[str]:
    """``assert call == expected``, binding a long expected value first."""
    line = f"assert {call} == {lit(expected)}"
    if len(line) + TEST_INDENT <= MAX_LINE:
        return [line]
    bound = [f"result = {call}"]
    if len(bound[0]) + TEST_INDENT > MAX_LINE:
        parts = call.split(" |> ")
        bound = ["result =", f"  {parts[0]}"] + [f"  |> {p}" for p in parts[1:]]
    check = f"assert result == {lit(expected)}"
    if len(check) + TEST_INDENT <= MAX_LINE:
        return [*bound, "", check]
    lines = [x[TEST_INDENT:] for x in lit_lines(expected, TEST_INDENT, "expected = ")]
    return [*bound, "", *lines, "", "assert result == expected"]


def eq_ids(call: str, expected: list[int]) -> list[str]:
    """Assert the ids of the records ``call`` returns, binding the result first when long."""
    line = f"assert Enum.map({call}, & &1.id) == {lit(expected)}"
    if len(line) + TEST_INDENT <= MAX_LINE:
        return [line]
    bound = f"result = {call}"
    bound_lines = [bound] if len(bound) + TEST_INDENT <= MAX_LINE else ["result =", f"  {call}"]
    return [*bound_lines, "", f"assert Enum.map(result, & &1.id) == {lit(expected)}"]


def delta(call: str, value: float) -> list[str]:
    return [f"assert_in_delta {call}, {lit(round(float(value), 4))}, 0.01"]


def ids(rows: list[dict]) -> list[int]:
    return [r["id"] for r in rows]


def ex_round(x: float) -> int:
    """Elixir's round/1: halves away from zero."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def to_s(v) -> str:
    """Elixir's to_string/1 for sample values."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if hasattr(v, "hour"):
        return f"{v:%Y-%m-%d %H:%M:%S}Z"
    if hasattr(v, "year"):
        return f"{v:%Y-%m-%d}"
    return str(v)


def sum_type(kind: str) -> str:
    return {"money": "non_neg_integer()", "count": "non_neg_integer()", "int": "integer()"}.get(kind, "number()")


def stem(field_name: str) -> str:
    """``due_on`` -> ``due``, ``placed_at`` -> ``placed``: the verb-ish part of a date field."""
    for suffix in ("_on", "_at"):
        if field_name.endswith(suffix):
            return field_name[: -len(suffix)]
    return field_name


class Kit:
    """Functions, private helpers and module attributes collected for one module."""

    def __init__(self, c: Ctx, item_type: str = "map()"):
        self.c = c
        self.item_type = item_type
        self.fns: list[Fn] = []
        self.helpers: dict[str, Fn] = {}
        self.attrs: list[str] = []
        self.names: set[str] = set()

    @property
    def list_type(self) -> str:
        return f"[{self.item_type}]"

    def free(self, name: str) -> bool:
        return name not in self.names

    def add(self, fn: Fn) -> bool:
        self.fns.append(fn)
        self.names.add(fn.name)
        return True

    def helper(self, fn: Fn) -> None:
        if fn.name not in self.helpers:
            self.helpers[fn.name] = fn
            self.names.add(fn.name)

    def call(self, name: str, args: str) -> str:
        return f"{self.c.short}.{name}({args})"

    def choose(self, variants: list[list[str]]) -> list[str] | None:
        """A random variant among those whose lines fit the line limit."""
        ok = [v for v in variants if fits(v)]
        return self.c.pick(ok) if ok else None

    def fields(self, *types: str):
        return self.c.entity.of(*types)

    def column(self, name: str) -> list:
        return [r[name] for r in self.c.samples]


Op = Callable[[Kit], bool]
