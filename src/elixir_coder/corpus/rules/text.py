"""Line and token helpers the injectors share: where a function body starts and ends, its simple
parameters, the attributes above it, what kind of Phoenix module a file is. Structure only; no
rule knowledge (that lives in ``rules.credo*`` and ``rules.sobelow``).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from elixir_coder.corpus.credo_defaults import MAX_LINE_LENGTH
from elixir_coder.corpus.source import Definition, Module, Source


RngLike = random.Random | int | None
# The violating code; or a (clean, violating) twin when the site had to be built (security twins,
# an alias group for AliasOrder); None when the input offers nothing to work with.
Injector = Callable[[str, RngLike], "str | tuple[str, str] | None"]


# Callbacks and conventional entry points whose names other code relies on.
_CALLBACKS = {
    "init", "start_link", "child_spec", "terminate", "code_change", "format_status", "mount", "render",
    "update", "changeset", "call", "run", "perform", "main", "__using__",
}


_RESERVED_VARS = {"conn", "socket", "assigns", "__MODULE__", "__ENV__", "__CALLER__", "true", "false", "nil"}


def _start(code: str, rng: RngLike) -> tuple[random.Random, Source, list[str]] | None:
    """What every injector starts from: its generator, the lexed code and its lines; None when the
    code does not lex into a balanced structure."""
    src = Source(code)
    return (_rng(rng), src, _lines(code)) if src.balanced else None


def _rng(rng: RngLike) -> random.Random:
    """A ``random.Random``; ints (and None, as 0) seed a fresh one so equal seeds give equal output."""
    if isinstance(rng, random.Random):
        return rng
    return random.Random(0 if rng is None else rng)


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _reindent(lines: list[str], extra: str) -> list[str]:
    return [extra + line if line.strip() else line for line in lines]


def _lines(code: str) -> list[str]:
    return code.split("\n")


def _join(lines: list[str]) -> str:
    return "\n".join(lines)


def _line_of(src: Source, i: int) -> int:
    """0-based line index of token ``i``."""
    return src.t[i].line - 1


def _end_line_of(src: Source, i: int) -> int:
    """0-based line index where token ``i`` ends (heredocs span lines)."""
    tok = src.t[i]
    return tok.line - 1 + (tok.text.count("\n") if tok.kind != "nl" else 0)


def _last_on_line(src: Source, i: int) -> bool:
    nxt = i + 1
    return nxt >= len(src.t) or src.t[nxt].kind == "nl" or src.t[nxt].line != src.t[i].line


def _first_on_line(src: Source, i: int) -> bool:
    return i == 0 or src.t[i - 1].kind == "nl"


def _multiline_string_lines(src: Source) -> set[int]:
    """0-based lines inside (or closing) a multi-line string, charlist or sigil, heredocs included."""
    out: set[int] = set()
    for tok in src.t:
        if tok.kind in ("str", "sigil", "kw", "atom") and "\n" in tok.text:
            first = tok.line - 1
            out.update(range(first + 1, first + tok.text.count("\n") + 1))
    return out


def _fits(lines: list[str]) -> bool:
    return all(len(line) <= MAX_LINE_LENGTH for line in lines)


def _main_module(src: Source) -> Module | None:
    """The first outermost module of the file."""
    for m in src.modules:
        if not any(o.do_at < m.at < o.end_at for o in src.modules if o is not m):
            return m
    return None


def _block_def_lines(src: Source, d: Definition) -> tuple[int, int] | None:
    """(def line, end line) of a ``do ... end`` definition laid out as ``def ... do`` / body / ``end``."""
    if d.do_at is None or not _last_on_line(src, d.do_at):
        return None
    end = src.partner[d.do_at]
    if not _first_on_line(src, end) or not _last_on_line(src, end):
        return None
    first, last = _line_of(src, d.at), _line_of(src, end)
    return (first, last) if last - first >= 2 else None


def _simple_params(src: Source, d: Definition) -> list[str]:
    """Variables bound directly by the head's arguments: ``x``, ``x \\\\ default``, ``pattern = x``."""
    q = src.next_code(d.at)
    if q is None or q + 1 >= len(src.t) or src.t[q + 1].text != "(" or q + 1 not in src.partner:
        return []
    close = src.partner[q + 1]
    depth = src.depth[q + 1] + 1
    names: list[str] = []
    start = q + 2
    for k in range(q + 2, close + 1):
        if k == close or (src.depth[k] == depth and src.t[k].text == ","):
            arg = [j for j in range(start, k) if src.t[j].kind != "nl"]
            cut = [j for j in arg if src.t[j].text == "\\\\" and src.depth[j] == depth]
            arg = arg[: arg.index(cut[0])] if cut else arg
            found = []
            if arg and src.t[arg[-1]].kind == "ident" and (len(arg) == 1 or src.t[arg[-2]].text == "="):
                found.append(src.t[arg[-1]].text)
            elif len(arg) >= 2 and src.t[arg[0]].text == "%" and src.t[arg[1]].text == "{":
                # %{"key" => var} patterns bind ``var``
                found += [
                    src.t[j + 1].text for j in arg[2:-1]
                    if src.t[j].text == "=>" and src.t[j + 1].kind == "ident" and src.t[j + 2].text in (",", "}")
                ]
            names += [n for n in found if not n.startswith("_") and n not in _RESERVED_VARS]
            start = k + 1
    return names


def _defined_names(src: Source) -> set[str]:
    return {d.name for d in src.definitions}


_FUNCTION_ATTRS = ("doc", "spec", "impl", "since", "deprecated")


def _group_start(src: Source, lines: list[str], first: int) -> int:
    """First line of the ``@doc``/``@spec``/``@impl`` attributes and comments right above line ``first``."""
    spans = {}
    for k, tok in enumerate(src.t):
        if tok.kind == "op" and tok.text == "@" and src.statement_start(k) and k + 1 < len(src.t):
            if src.t[k + 1].text in _FUNCTION_ATTRS:
                spans[_end_line_of(src, src.expr_end(k))] = _line_of(src, k)
    k = first
    while k > 0:
        above = lines[k - 1].strip()
        if above.startswith("#"):
            k -= 1
        elif k - 1 in spans:
            k = spans[k - 1]
        else:
            break
    return k


def _is_callback(src: Source, lines: list[str], d: Definition) -> bool:
    if d.name in _CALLBACKS or d.name.startswith(("handle_", "sigil_")):
        return True
    start = _group_start(src, lines, _line_of(src, d.at))
    return any(line.strip().startswith("@impl") for line in lines[start : _line_of(src, d.at)])


def _module_kind(src: Source, m: Module) -> str:
    """router, controller, view, live or other, from ``use`` lines and the module name."""
    uses = []
    for k in range(m.do_at + 1, m.end_at):
        if src.is_word(k, "use") and src.module_of(k) is m and src.t[k + 1].kind == "alias":
            chain, j = src.alias_chain(k + 1)
            atom = src.t[j + 2].text if j + 2 < len(src.t) and src.t[j + 1].text == "," and src.t[j + 2].kind == "atom" else ""
            uses.append((".".join(chain), atom))
    mods = {mod for mod, _ in uses}
    atoms = {atom for _, atom in uses}
    if ":router" in atoms or "Phoenix.Router" in mods or m.name.endswith("Router"):
        return "router"
    if ":controller" in atoms or "Phoenix.Controller" in mods or m.name.endswith("Controller"):
        return "controller"
    if ":live_view" in atoms or ":live_component" in atoms or "Phoenix.LiveView" in mods or m.name.endswith("Live"):
        return "live"
    if atoms & {":view", ":html"} or m.name.endswith(("View", "HTML")):
        return "view"
    return "other"


def _body_depth(lines: list[str], first: int, last: int) -> int:
    """How many indentation steps (2 spaces) the body between def line ``first`` and ``end`` line
    ``last`` reaches below its first line: a layout-only stand-in for block depth."""
    base = len(_indent(lines[first + 1]))
    depths = [len(_indent(line)) - base for line in lines[first + 1 : last] if line.strip()]
    return max(depths, default=0) // 2


def _top_level_groups(src: Source, lines: list[str], m: Module) -> list[tuple[int, int, bool]]:
    """(first line, last line, is_macro) of each run of same-name top-level definitions with their attributes."""
    depth = src.depth[m.do_at] + 1
    defs = [d for d in src.definitions if src.module_of(d.at) is m and src.depth[d.at] == depth]
    groups: list[list[Definition]] = []
    for d in defs:
        if groups and groups[-1][-1].name == d.name:
            groups[-1].append(d)
        else:
            groups.append([d])
    out = []
    for g in groups:
        start = _group_start(src, lines, _line_of(src, g[0].at))
        out.append((start, _end_line_of(src, g[-1].last), any(d.word.startswith("defmacro") for d in g)))
    return out
