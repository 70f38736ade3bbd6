"""Contrastive pairs from clean Elixir: (clean, violating) per Credo check and (secure, vulnerable)
per Sobelow finding, plus semantics-preserving positive views of an anchor.

Every injector is a pure function of ``(code, rng)``: it changes only what its rule needs and
returns the violating code, or ``None`` when the input gives it nothing to work with. Injectors
follow the rules as Credo (default params) and Sobelow state them; they do not consult the
detectors in ``corpus.checks``, which are written independently and validate them. ``inject``
is the entry point for callers: it re-draws outputs that do not parse, do not differ or are not
confirmed, and drops the pair (``None``) when no draw succeeds.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable

import lightning as L
import torch

from elixir_coder.corpus.checks import (
    ALIAS_EXCLUDED_LASTNAMES,
    ALIAS_EXCLUDED_NAMESPACES,
    DEF_WORDS,
    MAX_LINE_LENGTH,
    URL_RE,
    Definition,
    Module,
    Source,
    alias_statements,
    complexity,
    detect_quality,
    detect_security,
    max_nesting,
    moduledoc_ignored,
    stripped_lines,
)
from elixir_coder.corpus.parser import ElixirParser, shared_parser
from elixir_coder.labels import QUALITY_LABELS, SECURITY_CWE, SECURITY_LABELS, quality_tier

__all__ = [
    "PairBatches",
    "PairLoader",
    "RuleTiers",
    "active_tiers",
    "batch_sampler",
    "generate_pairs",
    "rule_difficulty",
    "security_pairs",
    "QUALITY_INJECTORS",
    "SECURITY_INJECTORS",
    "inject",
    "positive_view",
    "validated",
]

RngLike = random.Random | int | None
Injector = Callable[[str, RngLike], "str | None"]

# Callbacks and conventional entry points whose names other code relies on.
_CALLBACKS = {
    "init", "start_link", "child_spec", "terminate", "code_change", "format_status", "mount", "render",
    "update", "changeset", "call", "run", "perform", "main", "__using__",
}
_RESERVED_VARS = {"conn", "socket", "assigns", "__MODULE__", "__ENV__", "__CALLER__", "true", "false", "nil"}


def _rng(rng: RngLike) -> random.Random:
    """A ``random.Random``; ints (and None, as 0) seed a fresh one so equal seeds give equal output."""
    if isinstance(rng, random.Random):
        return rng
    return random.Random(0 if rng is None else rng)


# -- text helpers ---------------------------------------------------------------


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


# -- quality injectors: Credo checks -------------------------------------------


def inject_io_inspect(code: str, rng: RngLike = None) -> str | None:
    """Leave a debugging ``IO.inspect`` behind (Credo ``Warning.IoInspect`` flags every call):
    after the last step of a multi-line pipeline, after a one-line assignment, or on a parameter."""
    rng = _rng(rng)
    src = Source(code)
    if not src.balanced:
        return None
    lines = _lines(code)
    strings = _multiline_string_lines(src)
    spots: list[tuple[int, str]] = []  # (insert after line, text)
    for d in src.definitions:
        if d.body is None or d.do_at is None:
            continue
        lo, hi = d.body
        for k in range(lo, hi + 1):
            tok = src.t[k]
            line = _line_of(src, k)
            if line in strings or not _first_on_line(src, k):
                continue
            if tok.kind == "op" and tok.text == "|>":
                end = src.expr_end(k)
                q = src.next_code(end)
                if _line_of(src, end) != line or src.is_word(end, "do") or src.t[end].text in (",", "(", "[", "{"):
                    continue
                if q is not None and src.t[q].kind == "op" and src.t[q].text == "|>" and src.t[q].line > tok.line:
                    continue
                label = rng.choice(["", f'label: "{d.name}"'])
                spots.append((line, f"{_indent(lines[line])}|> IO.inspect({label})"))
            elif tok.kind == "ident" and src.statement_start(k) and k + 1 <= hi and src.t[k + 1].text == "=":
                end = src.expr_end(k)
                if _line_of(src, end) == line and not src.is_word(end, "end"):
                    spots.append((line, f'{_indent(lines[line])}IO.inspect({tok.text}, label: "{tok.text}")'))
    if not spots:
        for d in src.definitions:
            params = _simple_params(src, d)
            span = _block_def_lines(src, d)
            if params and span:
                body_indent = _indent(lines[span[0] + 1])
                spots.append((span[0], f"{body_indent}IO.inspect({params[0]})"))
    if not spots:
        return None
    after, text = rng.choice(spots)
    return _join(lines[: after + 1] + [text] + lines[after + 1 :])


_GUARDS = (
    ("if", "not is_nil({p})", ":missing_{p}"),
    ("if", '{p} != ""', ":blank_{p}"),
    ("case", "nil", ":missing_{p}"),
    ("if", "{p} != :error", ":invalid_{p}"),
)


def _nest_wrapper(guard: tuple[str, str, str], param: str, indent: str, inner: list[str]) -> list[str]:
    """One guard level around ``inner`` (already indented for it)."""
    kind, cond, reason = guard
    error = f"{{:error, {reason.format(p=param)}}}"
    if kind == "if":
        return [f"{indent}if {cond.format(p=param)} do", *inner, f"{indent}else", f"{indent}  {error}", f"{indent}end"]
    return [
        f"{indent}case {param} do", f"{indent}  nil ->", f"{indent}    {error}", "", f"{indent}  _ ->", *inner, f"{indent}end"
    ]


def inject_nesting(code: str, rng: RngLike) -> str | None:
    """Wrap a function body in guard ``if``/``case`` levels on its parameters until something in it
    sits deeper than Credo ``Refactor.Nesting`` allows (``max_nesting: 2``)."""
    rng = _rng(rng)
    src = Source(code)
    if not src.balanced:
        return None
    lines = _lines(code)
    strings = _multiline_string_lines(src)
    candidates = []
    for d in src.definitions:
        span = _block_def_lines(src, d)
        params = _simple_params(src, d)
        if not span or not params or any(x in strings for x in range(span[0] + 1, span[1])):
            continue
        levels = 3 - max_nesting(src, d)
        if levels >= 1:
            candidates.append((d, span, params, levels))
    rng.shuffle(candidates)
    for d, (first, last), params, levels in candidates:
        pairs = [(p, g) for g in _GUARDS for p in params]
        pairs.sort(key=lambda pg: (_GUARDS.index(pg[1]), params.index(pg[0])))
        chosen, seen = [], set()
        for p, g in pairs:  # distinct parameters first, then further checks on the same ones
            if (p, g[2]) not in seen:
                chosen.append((p, g))
                seen.add((p, g[2]))
        chosen = sorted(chosen[:levels], key=lambda pg: rng.random()) if len(chosen) >= levels else []
        if not chosen:
            continue
        base = _indent(lines[first + 1])
        shifts = ["  " if g[0] == "if" else "    " for _, g in chosen]
        inner = _reindent(lines[first + 1 : last], "".join(shifts))
        for depth in reversed(range(levels)):
            p, g = chosen[depth]
            inner = _nest_wrapper(g, p, base + "".join(shifts[:depth]), inner)
        if _fits(inner):
            return _join(lines[: first + 1] + inner + lines[last:])
    return None


_COMMENT_WORDS = (
    "keep the order of these steps because the downstream consumer relies on it",
    "callers expect an error tuple here rather than an exception",
    "this mirrors the behaviour of the previous implementation so existing clients keep working",
    "do not change the shape of the result without updating the API documentation and the mobile app",
    "the values are normalised first so that blank strings and missing keys are treated the same way",
    "see the discussion in the team channel about why we do not cache this result yet",
    "this runs on every request so keep it cheap and avoid extra database round trips",
    "the fallback branch covers records imported from the legacy system before the migration",
)


def _long_comment(rng: random.Random, indent: str) -> str:
    """A comment line over 120 characters made of whole phrases, without URL-like ``word.word``
    text (Credo skips lines that look like URLs)."""
    pool = list(_COMMENT_WORDS)
    rng.shuffle(pool)
    text = ""
    for phrase in pool:
        text = f"{text}; {phrase}" if text else phrase[0].upper() + phrase[1:]
        if len(indent) + 2 + len(text) > MAX_LINE_LENGTH:
            break
    return f"{indent}# {text}."


def _joined_line(lines: list[str]) -> str:
    out = lines[0].rstrip()
    for line in lines[1:]:
        piece = line.strip()
        if not piece:
            continue
        if out.endswith(",") and piece[0] in ")]}":
            out = out[:-1]
        out += piece if out.endswith(("(", "[", "{")) or piece[0] in ")]}" else " " + piece
    return out


def _join_candidates(src: Source, lines: list[str]) -> list[tuple[int, int]]:
    """Line ranges (inside function bodies) that can be put on one line without changing the code:
    a multi-line bracketed argument list/collection, or a pipeline whose steps start lines."""
    strings = _multiline_string_lines(src)
    comment_lines = {tok.line - 1 for tok in src.all_tokens if tok.kind == "comment"}
    out = set()
    for d in src.definitions:
        if d.body is None:
            continue
        lo, hi = d.body
        for k in range(lo, hi + 1):
            tok = src.t[k]
            a = _line_of(src, k)
            if tok.kind == "punct" and tok.text in "([{" and k in src.partner:
                close = src.partner[k]
                b = _line_of(src, close)
                blocks = any(src.is_word(j, "do", "fn") for j in range(k, close))
                if a < b <= a + 10 and not blocks:
                    out.add((a, b))
            elif _first_on_line(src, k) and src.statement_start(k) and tok.kind != "nl":
                b = a
                while b + 1 < len(lines) and lines[b + 1].lstrip().startswith("|> "):
                    b += 1
                if b > a:
                    out.add((a, b))
    return sorted((a, b) for a, b in out if not any(x in strings or x in comment_lines for x in range(a, b + 1)))


def inject_long_lines(code: str, rng: RngLike) -> str | None:
    """Produce a line Credo ``Readability.MaxLineLength`` reports (> 120 characters once strings,
    heredocs and sigils are dropped, not a def head, no URL): join a multi-line call, collection or
    pipeline onto one line when that is long enough, else add a long explanatory comment."""
    rng = _rng(rng)
    src = Source(code)
    if not src.balanced:
        return None
    lines = _lines(code)
    def_lines = {_line_of(src, d.at) for d in src.definitions}
    joined = []
    for a, b in _join_candidates(src, lines):
        new = _joined_line(lines[a : b + 1])
        candidate = lines[:a] + [new] + lines[b + 1 :]
        measured = stripped_lines(Source(_join(candidate)))[a]
        if a not in def_lines and len(measured) > MAX_LINE_LENGTH and not URL_RE.search(measured):
            joined.append(candidate)
    if joined and rng.random() < 0.7:
        return _join(rng.choice(joined))
    spots = []
    for d in src.definitions:
        span = _block_def_lines(src, d)
        if span:
            spots.append((span[0] + 1, _indent(lines[span[0] + 1])))
            spots.append((_group_start(src, lines, span[0]), _indent(lines[span[0]])))
    if not spots:
        module = _main_module(src)
        if module is None:
            return None
        first = _line_of(src, module.at)
        spots.append((first + 1, _indent(lines[first]) + "  "))
    at, indent = rng.choice(spots)
    return _join(lines[:at] + [_long_comment(rng, indent)] + lines[at:])


# Input checks for a validation ``cond``: (condition, error reason, extra ``and``/``or`` count), by the
# kind of value a parameter name suggests.
_STRING_CHECKS = (
    ("is_nil({p})", ":missing_{p}", 0),
    ('{p} == ""', ":blank_{p}", 0),
    ("is_binary({p}) and byte_size({p}) > 255", ":{p}_too_long", 1),
    ("is_binary({p}) and String.trim({p}) != {p}", ":untrimmed_{p}", 1),
    ("is_binary({p}) and not String.valid?({p})", ":invalid_{p}", 1),
)
_NUMBER_CHECKS = (
    ("is_nil({p})", ":missing_{p}", 0),
    ("is_integer({p}) and {p} < 0", ":negative_{p}", 1),
    ("is_integer({p}) and {p} > 10_000", ":{p}_too_large", 1),
    ("not is_integer({p}) and not is_binary({p})", ":invalid_{p}", 1),
    ("is_float({p})", ":fractional_{p}", 0),
)
_COLLECTION_CHECKS = (
    ("is_nil({p})", ":missing_{p}", 0),
    ("is_map({p}) and map_size({p}) == 0", ":empty_{p}", 1),
    ("is_list({p}) and {p} == []", ":empty_{p}", 1),
    ("not is_map({p}) and not is_list({p})", ":invalid_{p}", 1),
    ("is_map({p}) and map_size({p}) > 100", ":too_many_{p}", 1),
    ("is_list({p}) and length({p}) > 100", ":too_long_{p}", 1),
)
_NUMBER_NAMES = re.compile(r"(^|_)(id|count|limit|page|per_page|offset|size|amount|quantity|total|age|index|n)$")
_COLLECTION_NAMES = re.compile(r"(^|_)(attrs|params|opts|options|args|items|list|map|data|state|changes|fields|entries)$")


def _checks_for(param: str, struct: bool) -> tuple[tuple[str, str, int], ...]:
    if struct:
        return _COLLECTION_CHECKS[:1]
    if _NUMBER_NAMES.search(param):
        return _NUMBER_CHECKS
    if _COLLECTION_NAMES.search(param) or param.endswith("s"):
        return _COLLECTION_CHECKS
    return _STRING_CHECKS


def inject_complexity(code: str, rng: RngLike) -> str | None:
    """Put a function body behind a ``cond`` of input validations until its cyclomatic complexity,
    counted as Credo does (1 per def, per cond clause and per ``and``/``or``), exceeds 9."""
    rng = _rng(rng)
    src = Source(code)
    if not src.balanced:
        return None
    lines = _lines(code)
    strings = _multiline_string_lines(src)
    candidates = []
    for d in src.definitions:
        span = _block_def_lines(src, d)
        params = _simple_params(src, d)
        if span and params and not any(x in strings for x in range(span[0] + 1, span[1])):
            candidates.append((max_nesting(src, d) > 1, rng.random(), d, span, params))
    candidates.sort(key=lambda c: (c[0], c[1]))
    for _, _, d, (first, last), params in candidates:
        score = complexity(src, d) + 1  # the final ``true ->`` clause
        head = code[src.t[d.at].start : src.t[d.body[0]].start]
        structs = {p for p in params if re.search(r"%\w[\w.]*\{[^}]*\}\s*=\s*" + p + r"\b", head)}
        checks = [(check, p) for p in params for check in _checks_for(p, p in structs)]
        rng.shuffle(checks)
        clauses: list[tuple[str, str]] = []
        used = set()
        for (cond, reason, extra), p in checks:
            if score > 9 + rng.randint(0, 2):
                break
            if reason.format(p=p) in used:
                continue
            used.add(reason.format(p=p))
            clauses.append((cond.format(p=p), reason.format(p=p)))
            score += 1 + extra
        if score <= 9:
            continue
        base = _indent(lines[first + 1])
        new = [f"{base}cond do"]
        for cond, reason in clauses:
            new += [f"{base}  {cond} ->", f"{base}    {{:error, {reason}}}", ""]
        new += [f"{base}  true ->", *_reindent(lines[first + 1 : last], "    "), f"{base}end"]
        if _fits(new):
            return _join(lines[: first + 1] + new + lines[last:])
    return None


def _camel(name: str) -> str | None:
    """``list_active_users`` -> ``listActiveUsers`` (suffix ``?``/``!`` kept); None if unchanged."""
    core, suffix = (name[:-1], name[-1]) if name[-1] in "?!" else (name, "")
    parts = core.split("_")
    if core.startswith("_") or len(parts) < 2 or not any(p[:1].isalpha() for p in parts[1:]):
        return None
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:]) + suffix


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


def inject_function_names(code: str, rng: RngLike) -> str | None:
    """Rename a function (all its clauses, local calls, captures and specs) to camelCase, which
    Credo ``Readability.FunctionNames`` rejects; callbacks and routed actions keep their names."""
    rng = _rng(rng)
    src = Source(code)
    if not src.balanced:
        return None
    lines = _lines(code)
    taken = _defined_names(src)
    choices = {}
    for d in src.definitions:
        m = src.module_of(d.at)
        new = _camel(d.name) if d.name else None
        if new is None or new in taken or m is None or _is_callback(src, lines, d):
            continue
        if d.word == "def" and _module_kind(src, m) in ("controller", "router", "live"):
            continue
        choices[(d.name, m.at)] = (new, m)
    if not choices:
        return None
    (old, _), (new, m) = rng.choice(sorted(choices.items(), key=lambda kv: kv[0]))
    edits = [
        tok for k, tok in enumerate(src.t)
        if m.do_at < k < m.end_at and tok.kind == "ident" and tok.text == old and not src.after_dot(k)
    ]
    out = code
    for tok in sorted(edits, key=lambda t: t.start, reverse=True):
        out = out[: tok.start] + new + out[tok.end :]
    return out


def _words(part: str) -> list[str]:
    return re.findall(r"[A-Z][a-z0-9]*|[a-z0-9]+", part)


def inject_module_names(code: str, rng: RngLike) -> str | None:
    """Spell one part of a module name with an underscore (``Web_searchController``), which
    Credo ``Readability.ModuleNames`` rejects (parts must match ``^[A-Z][a-zA-Z0-9]*$``)."""
    rng = _rng(rng)
    src = Source(code)
    if not src.balanced:
        return None
    options = []
    for m in src.modules:
        if src.t[m.at + 1].kind != "alias":
            continue
        parts, _ = src.alias_chain(m.at + 1)
        ignored = moduledoc_ignored(src, m)
        for i, part in enumerate(parts):
            words = _words(part)
            if len(words) < 2 or (ignored and i == len(parts) - 1):
                continue
            for cut in range(1, len(words)):
                new = "".join(words[:cut]) + "_" + words[cut].lower() + "".join(words[cut + 1 :])
                options.append((m, parts, i, new))
    if not options:
        return None
    m, parts, index, new_part = rng.choice(options)
    old_name = ".".join(parts)
    new_parts = list(parts)
    new_parts[index] = new_part
    edits = []
    for k in range(len(src.t)):
        if not src.chain_start(k):
            continue
        chain, _ = src.alias_chain(k)
        if chain[: len(parts)] == parts:
            edits.append((src.t[k].start, src.t[k + 2 * (len(parts) - 1)].end, ".".join(new_parts)))
    out = code
    for start, end, text in sorted(edits, reverse=True):
        out = out[:start] + text + out[end:]
    return out if old_name != ".".join(new_parts) else None


def inject_module_doc(code: str, rng: RngLike) -> str | None:
    """Drop the ``@moduledoc`` of a module Credo ``Readability.ModuleDoc`` checks (not matched by its
    default ``ignore_names``/``ignore_modules_using``, not an exception module)."""
    rng = _rng(rng)
    src = Source(code)
    if not src.balanced:
        return None
    lines = _lines(code)
    ignored: list[Module] = []
    options = []
    for m in src.modules:
        if any(o.do_at < m.at < o.end_at for o in ignored) or moduledoc_ignored(src, m):
            ignored.append(m)
            continue
        if any(src.is_word(k, "defexception") and src.module_of(k) is m for k in range(m.do_at, m.end_at)):
            continue
        for k in range(m.do_at + 1, m.end_at):
            if src.t[k].text == "@" and src.t[k + 1].text == "moduledoc" and src.module_of(k) is m:
                options.append((_line_of(src, k), _end_line_of(src, src.expr_end(k))))
                break
    if not options:
        return None
    a, b = rng.choice(options)
    if b + 1 < len(lines) and not lines[b + 1].strip():
        b += 1
    return _join(lines[:a] + lines[b + 1 :])


def inject_alias_order(code: str, rng: RngLike) -> str | None:
    """Swap two neighbouring aliases of a group (or two names inside ``alias A.{B, C}``) so the group
    is no longer alphabetical, as Credo ``Readability.AliasOrder`` requires."""
    rng = _rng(rng)
    src = Source(code)
    if not src.balanced:
        return None
    lines = _lines(code)
    stmts = [(s, src.t[s[0]].line - 1) for s in alias_statements(src) if src.t[s[0]].line == src.t[s[1]].line]
    options = []
    for (prev, line_a), (cur, line_b) in zip(stmts, stmts[1:]):
        if line_b == line_a + 1 and prev[2].lower() < cur[2].lower() and not prev[3] and not cur[3]:
            options.append(("swap", line_a, line_b))
    for (_, _, _, inner), line in stmts:
        lowered = [x.lower() for x in inner]
        if len(inner) >= 2 and len(set(lowered)) == len(lowered):
            options.append(("inner", line, inner))
    if not options:
        return None
    kind, a, b = rng.choice(options)
    if kind == "swap":
        lines[a], lines[b] = lines[b], lines[a]
        return _join(lines)
    i = rng.randrange(len(b) - 1)
    names = list(b)
    names[i], names[i + 1] = names[i + 1], names[i]
    lines[a] = re.sub(r"\{[^}]*\}", "{" + ", ".join(names) + "}", lines[a], count=1)
    return _join(lines)


def inject_cond_statements(code: str, rng: RngLike) -> str | None:
    """Rewrite an ``if c do a else b end`` as ``cond do c -> a; true -> b end``: a cond with one
    condition besides ``true``, which Credo ``Refactor.CondStatements`` asks to write as ``if``."""
    rng = _rng(rng)
    src = Source(code)
    if not src.balanced:
        return None
    lines = _lines(code)
    strings = _multiline_string_lines(src)
    options = []
    for k in range(len(src.t)):
        if not src.is_word(k, "if"):
            continue
        do_at = src.block_do(k)
        if do_at is None or not _last_on_line(src, do_at) or src.t[do_at].line != src.t[k].line:
            continue
        end = src.partner[do_at]
        elses = [j for j in range(do_at + 1, end) if src.depth[j] == src.depth[do_at] + 1 and src.is_word(j, "else")]
        if not _first_on_line(src, end) or not _last_on_line(src, end) or len(elses) > 1:
            continue
        if elses and not (_first_on_line(src, elses[0]) and _last_on_line(src, elses[0])):
            continue
        first, last = _line_of(src, k), _line_of(src, end)
        if any(x in strings for x in range(first, last + 1)):
            continue
        options.append((k, do_at, first, last, _line_of(src, elses[0]) if elses else None))
    if not options:
        return None
    k, do_at, first, last, else_line = rng.choice(options)
    head = lines[first]
    col = src.t[k].start - (src.code.rfind("\n", 0, src.t[k].start) + 1)
    condition = code[src.t[k].end : src.t[do_at].start].strip()
    indent = _indent(lines[last])
    then_lines = lines[first + 1 : else_line if else_line is not None else last]
    else_lines = lines[else_line + 1 : last] if else_line is not None else [f"{indent}  nil"]
    new = [head[:col] + "cond do", f"{indent}  {condition} ->", *_reindent(then_lines, "  "), ""]
    new += [f"{indent}  true ->", *_reindent(else_lines, "  "), f"{indent}end"]
    if not _fits(new):
        return None
    return _join(lines[:first] + new + lines[last + 1 :])


_COPY_SUFFIXES = ("_legacy", "_v2", "_for_export", "_unchecked", "_uncached", "_internal")


def _body_mass(src: Source, d: Definition) -> int:
    """Lower bound of the AST tuple count of a body (calls, variables, operators, pairs, maps)."""
    lo, hi = d.body
    mass = 0
    for k in range(lo, hi + 1):
        tok = src.t[k]
        if tok.kind == "ident" and tok.text not in ("end", "true", "false", "nil"):
            mass += 2 if src.after_dot(k) else 1
        elif tok.kind == "alias" and src.chain_start(k) or tok.kind == "kw":
            mass += 1
        elif tok.kind == "op" and tok.text not in (".", ">>"):
            mass += 1
    return mass


def inject_duplicated_code(code: str, rng: RngLike) -> str | None:
    """Copy-paste a function under a new name. Its body is an identical AST subtree of mass >= 40,
    which Credo ``Design.DuplicatedCode`` reports (``mass_threshold: 40``, ``nodes_threshold: 2``)."""
    rng = _rng(rng)
    src = Source(code)
    if not src.balanced:
        return None
    lines = _lines(code)
    taken = _defined_names(src)
    options = []
    for d in src.definitions:
        span = _block_def_lines(src, d)
        if not span or d.word not in ("def", "defp") or not d.name or _is_callback(src, lines, d):
            continue
        if _body_mass(src, d) + 1 >= 42:  # + the ``{:do, body}`` pair; 2 above the threshold
            options.append((d, span))
    if not options:
        return None
    d, (first, last) = rng.choice(options)
    core, mark = (d.name[:-1], d.name[-1]) if d.name[-1] in "?!" else (d.name, "")
    suffixes = [s for s in _COPY_SUFFIXES if core + s + mark not in taken]
    new_name = core + rng.choice(suffixes) + mark
    module = src.module_of(d.at)
    group_end = max(_line_of(src, o.last) for o in src.definitions if o.name == d.name and src.module_of(o.at) is module)
    copy = list(lines[first : last + 1])
    name_tok = src.t[src.next_code(d.at)]
    col = name_tok.start - (code.rfind("\n", 0, name_tok.start) + 1)
    copy[0] = copy[0][:col] + new_name + copy[0][col + len(d.name) :]
    return _join(lines[: group_end + 1] + [""] + copy + lines[group_end + 1 :])


def inject_alias_usage(code: str, rng: RngLike) -> str | None:
    """Drop an ``alias A.B.C`` and spell ``A.B.C`` out where ``C`` was used, so nested modules are
    called fully qualified, which Credo ``Design.AliasUsage`` reports with its defaults."""
    rng = _rng(rng)
    src = Source(code)
    if not src.balanced:
        return None
    attributes = [(k, src.expr_end(k)) for k, tok in enumerate(src.t) if tok.text == "@" and src.statement_start(k)]
    options = []
    for k, last, full, inner in alias_statements(src):
        parts = full.split(".")
        if inner or len(parts) < 2 or src.t[k].line != src.t[last].line or src.t[src.alias_chain(k + 1)[1] + 1].text == ",":
            continue
        if parts[0] in ALIAS_EXCLUDED_NAMESPACES or parts[-1] in ALIAS_EXCLUDED_LASTNAMES:
            continue
        m = src.module_of(k)
        if m is None:
            continue
        uses = [j for j in range(m.do_at + 1, m.end_at) if src.chain_start(j) and src.t[j].text == parts[-1] and j != k + 1]
        calls = [
            j for j in uses
            if src.alias_chain(j)[0] == [parts[-1]] and src.t[j + 1].text == "." and src.t[j + 2].kind == "ident"
            and not any(a <= j <= b for a, b in attributes)  # Credo skips module attributes such as @spec
        ]
        if calls:
            options.append((k, full, uses))
    rng.shuffle(options)
    for k, full, uses in options:
        out = code
        for j in sorted(uses, key=lambda j: -src.t[j].start):
            out = out[: src.t[j].start] + full + out[src.t[j].end :]
        new_lines = _lines(out)
        line = _line_of(src, k)
        drop = [line]
        if (line == 0 or not new_lines[line - 1].strip()) and line + 1 < len(new_lines) and not new_lines[line + 1].strip():
            drop.append(line + 1)
        new_lines = [x for i, x in enumerate(new_lines) if i not in drop]
        if _fits(new_lines):
            return _join(new_lines)
    return None


# Operators Credo's SpaceAroundOperators counts, and the ones safe to write without spaces.
_COUNTED_OPS = {
    "==", "!=", "<>", "++", "*", "&&", "||", "=", "->", "<-", "<=", ">=", "<", ">", "+", "-", "/", "|", "\\\\",
    "===", "!==", "=~",
}
_TIGHTEN_OPS = {"==", "!=", "===", "!==", "<>", "++", "*", "&&", "||", "=", "->", "<-", "<=", ">="}


def inject_space_around_operators(code: str, rng: RngLike) -> str | None:
    """Remove the spaces around one to three binary operators (``a==b``) in a file that otherwise
    spaces them, the inconsistency Credo ``Consistency.SpaceAroundOperators`` reports. Operators in
    ``@spec``/``@type`` lines, captures and after a binary ``<<`` are left alone (Credo skips them)."""
    rng = _rng(rng)
    src = Source(code)
    if not src.balanced:
        return None
    t = src.t
    skip_lines = set()
    stop = len(t)
    for k, tok in enumerate(t):
        if tok.kind == "op" and tok.text == "@" and k + 1 < len(t) and t[k + 1].text in ("spec", "type", "typep", "callback"):
            skip_lines.update(range(tok.line, t[src.expr_end(k)].line + 1))
        if tok.kind == "op" and tok.text == "<<" and stop == len(t):
            stop = k
    spaced = []
    for k in range(1, stop - 1):
        tok, prev, nxt = t[k], t[k - 1], t[k + 1]
        if tok.kind != "op" or tok.text not in _COUNTED_OPS:
            continue
        if prev.kind == "nl" or nxt.kind == "nl" or tok.line in skip_lines:
            continue
        if any(t[j].kind == "op" and t[j].text == "&" for j in range(max(0, k - 4), k)):
            continue  # Credo drops the tokens of a ``&fun/arity`` capture
        before, after = code[prev.end : tok.start], code[tok.end : nxt.start]
        if before and after and not before.strip(" ") and not after.strip(" "):
            spaced.append(k)
    options = [k for k in spaced if t[k].text in _TIGHTEN_OPS]
    if len(spaced) < 2 or not options:
        return None
    rng.shuffle(options)
    count = rng.randint(1, max(1, min(3, len(spaced) // 3, len(options))))
    reference = [(tok.kind, tok.text) for tok in t if tok.kind != "nl"]
    for chosen in (options[:count], options[:1]):
        out = code
        for k in sorted(chosen, key=lambda k: -t[k].start):
            out = out[: t[k - 1].end] + t[k].text + out[t[k + 1].start :]
        again = [(tok.kind, tok.text) for tok in Source(out).t if tok.kind != "nl"]
        if again == reference:
            return out
    return None


def inject_tabs_or_spaces(code: str, rng: RngLike) -> str | None:
    """Indent one function with tabs in a file indented with spaces, the mix Credo
    ``Consistency.TabsOrSpaces`` reports. Lines inside multi-line strings are left untouched."""
    rng = _rng(rng)
    src = Source(code)
    if not src.balanced:
        return None
    lines = _lines(code)
    strings = _multiline_string_lines(src)
    heredoc_openers = {tok.line - 1 for tok in src.t if tok.kind != "nl" and "\n" in tok.text}
    options = []
    for d in src.definitions:
        span = _block_def_lines(src, d)
        if span:
            options.append(span)
    rng.shuffle(options)
    for first, last in options:
        new = list(lines)
        for i in range(first, last + 1):
            if i in strings or i in heredoc_openers:
                continue
            indent = _indent(new[i])
            if indent and set(indent) == {" "}:
                new[i] = "\t" * (len(indent) // 2) + " " * (len(indent) % 2) + new[i][len(indent) :]
        if new != lines and any(line.startswith("  ") for line in new):
            return _join(new)
    return None


QUALITY_INJECTORS: dict[str, Injector] = {
    "Credo.Check.Readability.FunctionNames": inject_function_names,
    "Credo.Check.Readability.ModuleNames": inject_module_names,
    "Credo.Check.Warning.IoInspect": inject_io_inspect,
    "Credo.Check.Readability.ModuleDoc": inject_module_doc,
    "Credo.Check.Readability.AliasOrder": inject_alias_order,
    "Credo.Check.Readability.MaxLineLength": inject_long_lines,
    "Credo.Check.Refactor.Nesting": inject_nesting,
    "Credo.Check.Refactor.CyclomaticComplexity": inject_complexity,
    "Credo.Check.Refactor.CondStatements": inject_cond_statements,
    "Credo.Check.Design.DuplicatedCode": inject_duplicated_code,
    "Credo.Check.Design.AliasUsage": inject_alias_usage,
    "Credo.Check.Consistency.SpaceAroundOperators": inject_space_around_operators,
    "Credo.Check.Consistency.TabsOrSpaces": inject_tabs_or_spaces,
}
assert set(QUALITY_INJECTORS) == set(QUALITY_LABELS)


# -- security injectors: Sobelow findings -----------------------------------------
#
# Each template is (function names to choose from, body). Bodies are written at module-body
# indentation 0 and use ``{name}``, ``{repo}`` and ``{table}`` placeholders. The sink's checked
# argument is always a non-literal that comes from the function's input, the shape Sobelow's
# ``parse_def`` looks for (``Repo.query`` arg 0, ``SQL.query`` arg 1, ``send_resp``/``send_file``
# arg 2, ``File.*``/``System.cmd``/``:os.cmd``/``String.to_atom``/``Code.eval_*``/
# ``:erlang.binary_to_term``/``raw`` arg 0, piped values included).

_Template = tuple[tuple[str, ...], str]

_CONTROLLER_TEMPLATES: dict[str, tuple[_Template, ...]] = {
    "Sobelow.SQL.Query": (
        (("search", "lookup"), """\
def {name}(conn, %{{"q" => term}}) do
  {{:ok, result}} = {repo}.query("SELECT id, title FROM {table} WHERE title ILIKE '%#{{term}}%'")
  json(conn, %{{rows: result.rows}})
end"""),
        (("export", "sorted_index"), """\
def {name}(conn, %{{"sort" => sort}}) do
  {{:ok, %{{rows: rows}}}} = {repo}.query("SELECT * FROM {table} ORDER BY #{{sort}}")
  json(conn, %{{data: rows}})
end"""),
    ),
    "Sobelow.XSS.SendResp": (
        (("preview", "render_preview"), """\
def {name}(conn, %{{"body" => body}}) do
  conn
  |> put_resp_content_type("text/html")
  |> send_resp(200, "<div class=\\"preview\\">#{{body}}</div>")
end"""),
        (("greet", "welcome"), """\
def {name}(conn, params) do
  send_resp(conn, 200, "<h1>Hello, #{{params["name"]}}!</h1>")
end"""),
    ),
    "Sobelow.Traversal.FileModule": (
        (("download", "download_report"), """\
def {name}(conn, %{{"name" => name}}) do
  content = File.read!(Path.join("priv/reports", name))
  send_download(conn, {{:binary, content}}, filename: name)
end"""),
        (("remove_upload", "delete_upload"), """\
def {name}(conn, %{{"file" => file}}) do
  :ok = File.rm(Path.join("priv/uploads", file))
  send_resp(conn, :no_content, "")
end"""),
    ),
    "Sobelow.Traversal.SendFile": (
        (("attachment", "serve_attachment"), """\
def {name}(conn, %{{"path" => path}}) do
  send_file(conn, 200, path)
end"""),
        (("avatar", "show_avatar"), """\
def {name}(conn, %{{"file" => file}}) do
  conn
  |> put_resp_content_type("image/png")
  |> send_file(200, Path.join("priv/static/avatars", file))
end"""),
    ),
    "Sobelow.CI.System": (
        (("convert", "run_tool"), """\
def {name}(conn, %{{"tool" => tool, "file" => file}}) do
  {{output, 0}} = System.cmd(tool, [file], stderr_to_stdout: true)
  text(conn, output)
end"""),
    ),
    "Sobelow.CI.OS": (
        (("ping", "check_host"), """\
def {name}(conn, %{{"host" => host}}) do
  output = :os.cmd(String.to_charlist("ping -c 1 " <> host))
  text(conn, List.to_string(output))
end"""),
    ),
    "Sobelow.DOS.StringToAtom": (
        (("filter", "filter_by_status"), """\
def {name}(conn, %{{"status" => status}}) do
  json(conn, %{{status: String.to_atom(status)}})
end"""),
        (("sort", "sort_by"), """\
def {name}(conn, %{{"field" => field, "dir" => dir}}) do
  order = [{{String.to_atom(dir), String.to_atom(field)}}]
  json(conn, %{{order: inspect(order)}})
end"""),
    ),
    "Sobelow.Misc.BinToTerm": (
        (("restore", "restore_state"), """\
def {name}(conn, %{{"state" => state}}) do
  data = state |> Base.decode64!() |> :erlang.binary_to_term()
  json(conn, %{{restored: map_size(data)}})
end"""),
    ),
    "Sobelow.RCE.CodeModule": (
        (("calculate", "evaluate"), """\
def {name}(conn, %{{"expression" => expression}}) do
  {{result, _binding}} = Code.eval_string(expression)
  json(conn, %{{result: result}})
end"""),
    ),
}

_GENERIC_TEMPLATES: dict[str, tuple[_Template, ...]] = {
    "Sobelow.SQL.Query": (
        (("find_by_name", "search_by_name"), """\
def {name}(name) do
  {repo}.query("SELECT * FROM {table} WHERE name = '#{{name}}'")
end"""),
        (("count_since", "count_created_since"), """\
def {name}(date) do
  {{:ok, %{{rows: [[count]]}}}} = {repo}.query("SELECT count(*) FROM {table} WHERE inserted_at > '#{{date}}'")
  count
end"""),
    ),
    "Sobelow.XSS.Raw": (
        (("format_comment", "render_comment"), """\
def {name}(comment) do
  Phoenix.HTML.raw("<p class=\\"comment\\">#{{comment.body}}</p>")
end"""),
    ),
    "Sobelow.XSS.SendResp": (
        (("send_error_page", "render_error_page"), """\
def {name}(conn, message) do
  conn
  |> Plug.Conn.put_resp_content_type("text/html")
  |> Plug.Conn.send_resp(400, "<p class=\\"error\\">#{{message}}</p>")
end"""),
    ),
    "Sobelow.Traversal.FileModule": (
        (("read_template", "load_template"), """\
def {name}(name) do
  File.read(Path.join("priv/templates", name))
end"""),
        (("remove_export", "delete_export"), """\
def {name}(filename) do
  File.rm(filename)
end"""),
    ),
    "Sobelow.Traversal.SendFile": (
        (("send_export", "serve_export"), """\
def {name}(conn, name) do
  Plug.Conn.send_file(conn, 200, Path.join("priv/exports", name))
end"""),
    ),
    "Sobelow.CI.System": (
        (("run_hook", "run_command"), """\
def {name}(command, args) do
  {{output, status}} = System.cmd(command, args, stderr_to_stdout: true)
  {{status, output}}
end"""),
    ),
    "Sobelow.CI.OS": (
        (("disk_usage", "directory_size"), """\
def {name}(path) do
  path
  |> then(&"du -sh #{{&1}}")
  |> String.to_charlist()
  |> :os.cmd()
end"""),
    ),
    "Sobelow.DOS.StringToAtom": (
        (("parse_status", "to_status"), """\
def {name}(status) when is_binary(status), do: String.to_atom(status)"""),
        (("atomize_keys", "symbolize_keys"), """\
def {name}(map) do
  Map.new(map, fn {{key, value}} -> {{String.to_atom(key), value}} end)
end"""),
    ),
    "Sobelow.Misc.BinToTerm": (
        (("decode_session", "decode_cookie"), """\
def {name}(cookie) do
  cookie
  |> Base.url_decode64!()
  |> :erlang.binary_to_term()
end"""),
        (("load_snapshot", "restore_snapshot"), """\
def {name}(binary), do: :erlang.binary_to_term(binary)"""),
    ),
    "Sobelow.RCE.CodeModule": (
        (("evaluate_rule", "apply_rule"), """\
def {name}(rule, bindings) do
  {{result, _binding}} = Code.eval_string(rule, bindings)
  result
end"""),
        (("load_config", "read_config"), """\
def {name}(path) do
  {{config, _binding}} = Code.eval_file(path)
  config
end"""),
    ),
}

_VIEW_TEMPLATES: dict[str, tuple[_Template, ...]] = {
    "Sobelow.XSS.Raw": (
        (("render_bio", "bio_html"), """\
def {name}(user), do: raw(user.bio)"""),
        (("highlight", "highlight_term"), """\
def {name}(text, term) do
  text
  |> String.replace(term, "<mark>#{{term}}</mark>")
  |> raw()
end"""),
    ),
}


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _placeholders(src: Source, m: Module) -> dict[str, str]:
    """Names the templates refer to: the Repo as this module reaches it, and a plausible table."""
    app = m.name.split(".")[0]
    app = app[:-3] if app.endswith("Web") and len(app) > 3 else app
    repo = f"{app}.Repo"
    table = None
    for k, _, full, inner in alias_statements(src):
        if src.module_of(k) is not m:
            continue
        names = [f"{full}.{x}" for x in inner] or [full]
        for name in names:
            last = name.rsplit(".", 1)[-1]
            if last == "Repo":
                repo = name
            elif table is None and len(name.split(".")) >= 3:
                table = _snake(last) + "s"
    found = re.search(r'\bschema\s+"(\w+)"', src.code)
    table = found.group(1) if found else table or _snake(m.name.rsplit(".", 1)[-1]) + "_records"
    return {"repo": repo, "table": table}


def _alias_insertion(src: Source, lines: list[str], m: Module, full: str) -> tuple[int, str] | None | str:
    """How module ``m`` can call ``full`` by its last name: "ok" if already aliased, (line, text)
    for an ``alias`` line to insert (alphabetically into the first alias group, else after the
    ``use``/``import``/``require`` lines), None when another alias already takes that name."""
    last = full.rsplit(".", 1)[-1]
    depth = src.depth[m.do_at] + 1
    stmts = [s for s in alias_statements(src) if src.module_of(s[0]) is m and src.depth[s[0]] == depth]
    names = [n for _, _, f, inner in stmts for n in ([f"{f}.{x}" for x in inner] or [f])]
    if full in names:
        return "ok"
    if any(n.rsplit(".", 1)[-1] == last for n in names):
        return None
    indent = _indent(lines[_line_of(src, m.at)]) + "  "
    text = f"{indent}alias {full}"
    single = [s for s in stmts if src.t[s[0]].line == src.t[s[1]].line]
    if single:
        group = [single[0]]
        for st in single[1:]:
            if src.t[st[0]].line != src.t[group[-1][0]].line + 1:
                break
            group.append(st)
        at = _line_of(src, group[-1][0]) + 1
        for st in group:
            if ("alias " + full).lower() < ("alias " + st[2]).lower():
                at = _line_of(src, st[0])
                break
        return at, text
    at = _line_of(src, m.do_at) + 1
    for k in range(m.do_at + 1, m.end_at):
        if src.depth[k] == depth and src.statement_start(k) and (
            src.is_word(k, "use", "import", "require") or src.t[k].text == "@" and src.t[k + 1].text == "moduledoc"
        ):
            at = _end_line_of(src, src.expr_end(k)) + 1
        elif src.depth[k] == depth and src.is_word(k, *DEF_WORDS):
            break
    return at, text


def _append_function(code: str, src: Source, m: Module, body: str) -> str:
    """Insert ``body`` (module-body indentation 0) before the closing ``end`` of module ``m``,
    calling nested modules through an alias (added when missing) as clean code does."""
    lines = _lines(code)
    inserts: list[tuple[int, str]] = []
    for full in sorted(set(re.findall(r"(?<![\w.])([A-Z]\w*(?:\.[A-Z]\w*)+)\.(?=[a-z_])", body))):
        how = _alias_insertion(src, lines, m, full)
        if how is None:
            continue
        if how != "ok":
            inserts.append(how)
        body = re.sub(rf"(?<![\w.]){re.escape(full)}\.(?=[a-z_])", full.rsplit(".", 1)[-1] + ".", body)
    end_line = _line_of(src, m.end_at)
    indent = _indent(lines[_line_of(src, m.at)]) + "  "
    new = [indent + line if line else "" for line in body.split("\n")]
    if lines[end_line - 1].strip():
        new = [""] + new
    lines = lines[:end_line] + new + lines[end_line:]
    for at, text in sorted(inserts, reverse=True):
        block = [text]
        if not any(line.strip().startswith("alias ") for line in lines[max(0, at - 1) : at + 1]):
            block = [text, ""] if lines[at].strip() else [text]
            if lines[at - 1].strip() and not lines[at - 1].rstrip().endswith(" do"):
                block = [""] + block
        lines = lines[:at] + block + lines[at:]
    return _join(lines)


def _templates_for(kind: str, label: str) -> tuple[_Template, ...] | None:
    """Templates fitting a module kind. XSS.Raw has none for controllers (Sobelow only follows their
    templates) and routers; views call the imported ``raw``, other modules ``Phoenix.HTML.raw``."""
    if label == "Sobelow.XSS.Raw":
        if kind == "view":
            return _VIEW_TEMPLATES[label]
        return None if kind in ("controller", "router") else _GENERIC_TEMPLATES[label]
    if kind == "controller":
        return _CONTROLLER_TEMPLATES.get(label) or _GENERIC_TEMPLATES.get(label)
    return _GENERIC_TEMPLATES.get(label)


def _add_from_templates(code: str, rng: random.Random, label: str) -> str | None:
    """Add one template function for ``label`` to the main module, picking templates by module kind."""
    src = Source(code)
    if not src.balanced:
        return None
    m = _main_module(src)
    if m is None:
        return None
    templates = _templates_for(_module_kind(src, m), label)
    if not templates:
        return None
    taken = _defined_names(src)
    options = [(name, body) for names, body in templates for name in names if name not in taken]
    if not options:
        return None
    name, body = rng.choice(options)
    return _append_function(code, src, m, body.format(name=name, **_placeholders(src, m)))


def inject_sql_query(code: str, rng: RngLike) -> str | None:
    """Sobelow ``SQL.Query``: a ``Repo.query`` whose SQL string interpolates input."""
    return _add_from_templates(code, _rng(rng), "Sobelow.SQL.Query")


def inject_xss_raw(code: str, rng: RngLike) -> str | None:
    """Sobelow ``XSS.Raw``: ``raw/1`` of input in a view (``Phoenix.HTML.raw`` elsewhere); None for
    controllers and routers, where Sobelow does not report ``raw`` calls."""
    return _add_from_templates(code, _rng(rng), "Sobelow.XSS.Raw")


def inject_xss_send_resp(code: str, rng: RngLike) -> str | None:
    """Sobelow ``XSS.SendResp``: ``send_resp`` of an interpolated HTML body (HTML or no content type)."""
    return _add_from_templates(code, _rng(rng), "Sobelow.XSS.SendResp")


def inject_traversal_file(code: str, rng: RngLike) -> str | None:
    """Sobelow ``Traversal.FileModule``: ``File.read!/rm/...`` of a path built from input."""
    return _add_from_templates(code, _rng(rng), "Sobelow.Traversal.FileModule")


def inject_traversal_send_file(code: str, rng: RngLike) -> str | None:
    """Sobelow ``Traversal.SendFile``: ``send_file(conn, 200, path)`` with a path from input."""
    return _add_from_templates(code, _rng(rng), "Sobelow.Traversal.SendFile")


def inject_ci_system(code: str, rng: RngLike) -> str | None:
    """Sobelow ``CI.System``: ``System.cmd`` whose command (argument 0) comes from input."""
    return _add_from_templates(code, _rng(rng), "Sobelow.CI.System")


def inject_ci_os(code: str, rng: RngLike) -> str | None:
    """Sobelow ``CI.OS``: ``:os.cmd`` of a command line built from input."""
    return _add_from_templates(code, _rng(rng), "Sobelow.CI.OS")


def inject_string_to_atom(code: str, rng: RngLike) -> str | None:
    """Sobelow ``DOS.StringToAtom``: turn a ``String.to_existing_atom`` of input into ``String.to_atom``,
    or add a function that atomizes input."""
    rng = _rng(rng)
    src = Source(code)
    if not src.balanced:
        return None
    safe = [
        k for k in range(2, len(src.t))
        if src.t[k].text == "to_existing_atom" and src.after_dot(k) and src.t[k - 2].text == "String"
        and any(d.body and d.body[0] <= k <= d.body[1] for d in src.definitions)
    ]
    if safe and rng.random() < 0.5:
        tok = src.t[rng.choice(safe)]
        return code[: tok.start] + "to_atom" + code[tok.end :]
    return _add_from_templates(code, rng, "Sobelow.DOS.StringToAtom")


def inject_bin_to_term(code: str, rng: RngLike) -> str | None:
    """Sobelow ``Misc.BinToTerm``: ``:erlang.binary_to_term`` of input."""
    return _add_from_templates(code, _rng(rng), "Sobelow.Misc.BinToTerm")


def inject_code_eval(code: str, rng: RngLike) -> str | None:
    """Sobelow ``RCE.CodeModule``: ``Code.eval_string``/``eval_file`` of input."""
    return _add_from_templates(code, _rng(rng), "Sobelow.RCE.CodeModule")


_BROWSER_PIPELINE = """\
pipeline :{name} do
  plug :accepts, ["html"]
  plug :fetch_session
  plug :fetch_flash
  plug :put_secure_browser_headers
end"""


def inject_csrf(code: str, rng: RngLike) -> str | None:
    """Sobelow ``Config.CSRF``: a router pipeline that fetches the session without
    ``plug :protect_from_forgery``. Drops that plug from such a pipeline, or adds a browser
    pipeline without it to a router that has none; None for modules that are not routers."""
    rng = _rng(rng)
    src = Source(code)
    if not src.balanced:
        return None
    m = _main_module(src)
    if m is None or _module_kind(src, m) != "router":
        return None
    lines = _lines(code)
    protect_lines = []
    pipelines = []
    for k in range(len(src.t)):
        if not (src.is_word(k, "pipeline") and src.statement_start(k)):
            continue
        pipelines.append(k)
        do_at = src.block_do(k)
        if do_at is None:
            continue
        body = range(do_at + 1, src.partner[do_at])
        plugs = {
            src.t[j + 1].text: j for j in body
            if src.is_word(j, "plug") and src.statement_start(j) and src.t[j + 1].kind == "atom"
        }
        if ":fetch_session" in plugs and ":protect_from_forgery" in plugs:
            j = plugs[":protect_from_forgery"]
            protect_lines.append((_line_of(src, j), _end_line_of(src, src.expr_end(j))))
    if protect_lines:
        a, b = rng.choice(protect_lines)
        return _join(lines[:a] + lines[b + 1 :])
    taken = {src.t[k + 1].text for k in pipelines if k + 1 < len(src.t)}
    name = next((n for n in ("browser", "html", "web") if f":{n}" not in taken), None)
    if name is None:
        return None
    at = _line_of(src, src.partner[src.block_do(pipelines[-1])]) + 1 if pipelines else _line_of(src, m.do_at) + 1
    indent = _indent(lines[_line_of(src, m.at)]) + "  "
    block = [""] + [indent + line for line in _BROWSER_PIPELINE.format(name=name).split("\n")]
    if not pipelines:
        while at < len(lines) and lines[at].strip().startswith(("use ", "import ", "alias ", "require ", "@")):
            at += 1
    return _join(lines[:at] + block + lines[at:])


SECURITY_INJECTORS: dict[str, Injector] = {
    "Sobelow.SQL.Query": inject_sql_query,
    "Sobelow.XSS.Raw": inject_xss_raw,
    "Sobelow.XSS.SendResp": inject_xss_send_resp,
    "Sobelow.Traversal.FileModule": inject_traversal_file,
    "Sobelow.Traversal.SendFile": inject_traversal_send_file,
    "Sobelow.CI.System": inject_ci_system,
    "Sobelow.CI.OS": inject_ci_os,
    "Sobelow.DOS.StringToAtom": inject_string_to_atom,
    "Sobelow.Misc.BinToTerm": inject_bin_to_term,
    "Sobelow.RCE.CodeModule": inject_code_eval,
    "Sobelow.Config.CSRF": inject_csrf,
}
assert set(SECURITY_INJECTORS) == set(SECURITY_LABELS)


# -- positive views ---------------------------------------------------------------

_SYNONYMS = {
    "text": "input", "title": "heading", "limit": "max_length", "opts": "options", "options": "opts",
    "attrs": "attributes", "params": "request_params", "user": "account", "post": "entry", "state": "server_state",
    "key": "bucket", "count": "hits", "counts": "tally", "words": "tokens", "minutes": "reading_minutes",
    "first": "lead", "page": "page_number", "per_page": "page_size", "password": "plain_password",
    "currency": "currency_code", "invoice": "bill", "today": "date", "id": "record_id", "posts": "entries",
    "locale": "language", "now": "current_ms", "subtotal": "net", "tax": "tax_amount", "body": "content",
    "changeset": "cs", "full_name": "name", "part": "segment", "item": "line", "acc": "sum",
}


def _rename_variable(code: str, src: Source, rng: random.Random) -> str | None:
    """Rename one variable consistently within one function clause."""
    taken = _defined_names(src)
    options = []
    for d in src.definitions:
        if d.body is None:
            continue
        names = set(_simple_params(src, d))
        names.update(
            src.t[k].text for k in range(d.body[0], d.body[1] + 1)
            if src.t[k].kind == "ident" and src.statement_start(k) and k + 1 < len(src.t) and src.t[k + 1].text == "="
        )
        clause = range(d.at, d.last + 1)
        texts = {src.t[k].text.rstrip(":") for k in clause}
        for name in sorted(names):
            new = _SYNONYMS.get(name, f"{name}_value")
            if name in taken or name in _RESERVED_VARS or name.startswith("_") or new in texts or new in taken:
                continue
            uses = [k for k in clause if src.t[k].kind == "ident" and src.t[k].text == name and not src.after_dot(k)]
            as_call = any(
                k + 1 < len(src.t) and src.t[k + 1].text in ("(", "/") and src.t[k + 1].start == src.t[k].end for k in uses
            )
            word = re.compile(rf"\b{re.escape(name)}\b")
            in_text = any(
                src.t[k].kind in ("str", "sigil", "atom") and src.t[k].interp and word.search(src.t[k].text) for k in clause
            )
            if uses and not as_call and not in_text:
                options.append((uses, new))
    if not options:
        return None
    uses, new = rng.choice(options)
    out = code
    for k in sorted(uses, key=lambda k: -src.t[k].start):
        out = out[: src.t[k].start] + new + out[src.t[k].end :]
    return out


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


def _swap_functions(code: str, src: Source, rng: random.Random) -> str | None:
    """Swap two neighbouring top-level functions separated only by blank lines."""
    m = _main_module(src)
    if m is None:
        return None
    lines = _lines(code)
    groups = _top_level_groups(src, lines, m)
    options = [
        (a, b) for a, b in zip(groups, groups[1:])
        if not a[2] and not b[2] and all(not line.strip() for line in lines[a[1] + 1 : b[0]]) and b[0] > a[1]
    ]
    if not options:
        return None
    (s1, e1, _), (s2, e2, _) = rng.choice(options)
    return _join(lines[:s1] + lines[s2 : e2 + 1] + lines[e1 + 1 : s2] + lines[s1 : e1 + 1] + lines[e2 + 1 :])


_NOTES = (
    "Public API",
    "Helpers",
    "Keep this free of side effects: callers rely on it",
    "Called from several places; keep the return shape stable",
    "Kept small on purpose so it is easy to test",
)


def _add_comment(code: str, src: Source, rng: random.Random) -> str | None:
    """Add a short comment line above a function or at the top of a function body."""
    lines = _lines(code)
    spots = []
    for d in src.definitions:
        first = _line_of(src, d.at)
        if not _first_on_line(src, d.at):
            continue
        words = d.name.rstrip("?!").replace("_", " ").strip()
        spots.append((_group_start(src, lines, first), _indent(lines[first]), words))
        span = _block_def_lines(src, d)
        if span:
            spots.append((span[0] + 1, _indent(lines[span[0] + 1]), words))
    if not spots:
        m = _main_module(src)
        if m is None:
            return None
        spots.append((_line_of(src, m.at) + 1, _indent(lines[_line_of(src, m.at)]) + "  ", "module"))
    at, indent, words = rng.choice(spots)
    note = rng.choice(_NOTES + (f"{words[:1].upper()}{words[1:]}",))
    return _join(lines[:at] + [f"{indent}# {note}"] + lines[at:])


def _edit_comment(code: str, src: Source, rng: random.Random) -> str | None:
    """Remove or reword a full-line comment."""
    lines = _lines(code)
    full = [
        tok for tok in src.all_tokens
        if tok.kind == "comment" and not code[code.rfind("\n", 0, tok.start) + 1 : tok.start].strip()
    ]
    if not full:
        return None
    tok = rng.choice(full)
    i = tok.line - 1
    if rng.random() < 0.5:
        return _join(lines[:i] + lines[i + 1 :])
    return _join(lines[:i] + [f"{_indent(lines[i])}# {rng.choice(_NOTES)}"] + lines[i + 1 :])


def _reflow_pipe(code: str, src: Source, rng: random.Random) -> str | None:
    """Put a short multi-line pipeline on one line, or split a one-line pipeline into steps."""
    lines = _lines(code)
    options = []
    for a, b in _join_candidates(src, lines):
        if all(line.lstrip().startswith("|> ") for line in lines[a + 1 : b + 1]):
            joined = _joined_line(lines[a : b + 1])
            if len(joined) <= 98:
                options.append(lines[:a] + [joined] + lines[b + 1 :])
    for k, tok in enumerate(src.t):
        if tok.kind == "nl" or not _first_on_line(src, k) or not src.statement_start(k):
            continue
        end = src.expr_end(k)
        if src.t[end].line != tok.line:
            continue
        top = [j for j in range(k, end + 1) if src.depth[j] == src.depth[k]]
        pipes = [j for j in top if src.t[j].text == "|>"]
        if len(pipes) < 2 or any(src.t[j].text in ("=", "<-", "->", "do") or src.t[j].kind == "kw" for j in top):
            continue
        i = tok.line - 1
        indent = _indent(lines[i])
        cuts = [src.t[j].start for j in pipes]
        line_start = code.rfind("\n", 0, tok.start) + 1
        pieces, prev = [], tok.start
        for c in cuts:
            pieces.append(code[prev:c].strip())
            prev = c
        pieces.append(code[prev : src.t[end].end].strip())
        tail = code[src.t[end].end : line_start + len(lines[i])]
        if tail.strip():
            continue
        options.append(lines[:i] + [indent + p for p in pieces] + lines[i + 1 :])
    if not options:
        return None
    return _join(rng.choice(options))


_VIEWS = (_rename_variable, _swap_functions, _add_comment, _edit_comment, _reflow_pipe)


def positive_view(code: str, rng: RngLike) -> str:
    """A rewrite of ``code`` with the same meaning that stays as clean as it was: one or two of
    renaming a local variable, swapping neighbouring functions, adding/removing/rewording a
    comment, reflowing a pipeline. Rewrites that would add a Credo/Sobelow label are skipped."""
    rng = _rng(rng)
    base_quality, base_security = detect_quality(code), detect_security(code)
    views = list(_VIEWS)
    rng.shuffle(views)
    wanted = rng.randint(1, 2)
    out = code
    for view in views:
        src = Source(out)
        if not src.balanced:
            break
        new = view(out, src, rng)
        if new is None or new == out:
            continue
        if not detect_quality(new) <= base_quality or not detect_security(new) <= base_security:
            continue
        out = new
        wanted -= 1
        if wanted == 0:
            break
    if out == code:
        out = f"# {rng.choice(_NOTES)}\n{code}"
    return out


# -- entry points -----------------------------------------------------------------


def validated(code: str) -> bool:
    """``code`` parses with the real Elixir parser (``Code.string_to_quoted``; never evaluated)."""
    return shared_parser().parse(code).ok


def inject(
    code: str, label: str, rng: RngLike = None, parser: ElixirParser | None = None, attempts: int = 3
) -> str | None:
    """Violating/vulnerable version of ``code`` for ``label``, or None (the pair is dropped).

    Draws again (up to ``attempts`` draws) when the output does not parse with the real parser, is
    identical to the input, or the detector does not confirm ``label``; an injector returning None
    means the input offers nothing to work with, so no further draws are made.
    """
    if label in QUALITY_INJECTORS:
        injector, detect = QUALITY_INJECTORS[label], detect_quality
    elif label in SECURITY_INJECTORS:
        injector, detect = SECURITY_INJECTORS[label], detect_security
    else:
        raise KeyError(f"no injector for {label!r}; known: {', '.join(QUALITY_LABELS + SECURITY_LABELS)}")
    rng = _rng(rng)
    parser = parser or shared_parser()
    for _ in range(attempts):
        out = injector(code, rng)
        if out is None:
            return None
        if out != code and parser.parse(out).ok and label in detect(out):
            return out
    return None


# -- pairs for training (spec 4.3.1, 4.3.4-4.3.6) ------------------------------------------------

def rule_difficulty(label: str) -> int:
    """Spec 4.3.5.2: the curriculum tier of a rule: Credo tiers 1-4 (surface patterns, structure,
    cross-function, corpus-level); Sobelow findings are single-call patterns, tier 1."""
    return 1 if label in SECURITY_CWE else quality_tier(label)


def active_tiers(epoch: int, epochs_per_tier: int, max_tier: int = 4) -> list[int]:
    """Spec 4.3.5.3-5: tier 1 first, one more tier every ``epochs_per_tier`` epochs (1-based
    epochs), earlier tiers kept in the mix (expanding window)."""
    current = min(max_tier, 1 + (max(epoch, 1) - 1) // max(epochs_per_tier, 1))
    return list(range(1, current + 1))


def _pairs_for(
    sources: list[tuple[str, str]], labels: tuple[str, ...], seed: int, variants: int, parser, make_record
) -> list[dict]:
    out = []
    for k, (source, code) in enumerate(sources):
        if detect_quality(code) or detect_security(code):
            continue  # only clean code anchors a pair
        positive = positive_view(code, random.Random(f"{seed}:{source}:view"))
        if not parser.parse(positive).ok:
            positive = code
        for label in labels:
            seen = set()
            for v in range(variants):
                bad = inject(code, label, random.Random(f"{seed}:{source}:{label}:{v}"), parser=parser)
                if bad is None or bad in seen:
                    continue
                seen.add(bad)
                out.append(make_record(code, bad, positive, label, source))
    return out


def generate_pairs(
    sources: list[tuple[str, str]], out_path=None, seed: int = 0, variants: int = 2, parser: ElixirParser | None = None
) -> list[dict]:
    """Spec 4.3.1: ``{clean_code, violating_code, positive_code, rule, tier, source}`` for every
    Credo rule and up to ``variants`` distinct violating variants per clean module; every
    violating side parses with the real parser and carries its rule. ``sources`` are
    ``(source name, clean module code)``. Written atomically to ``out_path`` when given."""
    parser = parser or shared_parser()
    records = _pairs_for(sources, QUALITY_LABELS, seed, variants, parser, lambda clean, bad, pos, rule, src: {
        "clean_code": clean, "violating_code": bad, "positive_code": pos, "rule": rule,
        "tier": rule_difficulty(rule), "source": src,
    })
    if out_path is not None:
        from elixir_coder.corpus.records import write_jsonl

        write_jsonl(out_path, records)
    return records


def security_pairs(
    sources: list[tuple[str, str]], out_path=None, seed: int = 0, variants: int = 1, parser: ElixirParser | None = None
) -> list[dict]:
    """Spec 4.3.6: ``{secure_code, vulnerable_code, positive_code, cwe_id, sobelow_check, source}``
    for every Sobelow finding, on Phoenix-shaped code."""
    parser = parser or shared_parser()
    records = _pairs_for(sources, SECURITY_LABELS, seed, variants, parser, lambda clean, bad, pos, rule, src: {
        "secure_code": clean, "vulnerable_code": bad, "positive_code": pos, "cwe_id": SECURITY_CWE[rule],
        "sobelow_check": rule, "source": src,
    })
    if out_path is not None:
        from elixir_coder.corpus.records import write_jsonl

        write_jsonl(out_path, records)
    return records


class PairBatches:
    """Spec 4.3.4 (``batch_sampler``): batches of anchors (clean modules), positives (another view
    of the same anchor) and negatives (violating variants), rule types balanced.

    ``pairs`` are uniform records ``{anchor, positive, negative, rule}``. Each batch takes
    ``batch_size`` distinct anchors; each anchor gets ``negatives`` negatives, preferring its own
    variants (hard negatives) and always the least-used rule among them, so every rule type shows
    up about equally often. Only rules of ``tiers`` are drawn (the rule-tier curriculum).
    Deterministic from ``seed`` and the epoch. Iteration yields lists of
    ``(anchor, positive, [negatives], [rules])``; :meth:`tensors` tokenizes one.
    """

    def __init__(self, pairs: list[dict], batch_size: int = 4, negatives: int = 3, seed: int = 0):
        self.pairs, self.batch_size, self.negatives, self.seed = pairs, batch_size, negatives, seed
        self.epoch = 0
        self.tiers: list[int] = [1, 2, 3, 4]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_tiers(self, tiers) -> None:
        self.tiers = list(tiers)

    def _by_anchor(self) -> dict[str, list[dict]]:
        groups: dict[str, list[dict]] = {}
        for p in self.pairs:
            if rule_difficulty(p["rule"]) in self.tiers:
                groups.setdefault(p["anchor"], []).append(p)
        return groups

    def __len__(self) -> int:
        return max(1, len(self._by_anchor()) // self.batch_size)

    def __iter__(self):
        groups = self._by_anchor()
        if not groups:
            return
        rng = random.Random(f"{self.seed}:{self.epoch}")
        anchors = sorted(groups)
        rng.shuffle(anchors)
        used: dict[str, int] = {}
        everything = [p for a in anchors for p in groups[a]]
        for start in range(0, max(len(anchors) - self.batch_size + 1, 1), self.batch_size):
            batch = []
            for anchor in anchors[start : start + self.batch_size]:
                own = list(groups[anchor])
                rng.shuffle(own)
                chosen: list[dict] = []
                while len(chosen) < self.negatives:
                    pool = [p for p in own if p not in chosen] or [p for p in everything if p["anchor"] != anchor and p not in chosen]
                    if not pool:
                        break
                    pick = min(pool, key=lambda p: (used.get(p["rule"], 0), rng.random()))
                    used[pick["rule"]] = used.get(pick["rule"], 0) + 1
                    chosen.append(pick)
                batch.append((anchor, own[0]["positive"], [p["negative"] for p in chosen], [p["rule"] for p in chosen]))
            yield batch

    @staticmethod
    def tensors(batch, encode, max_len: int, pad_id: int) -> dict:
        """Rows: all anchors, then all positives, then each anchor's negatives; padded to the
        longest row (capped at ``max_len``), in the layout the backbone takes."""
        texts = [a for a, _, _, _ in batch] + [p for _, p, _, _ in batch] + [n for _, _, negs, _ in batch for n in negs]
        rows = [encode(t)[:max_len] for t in texts]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        seg = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            seg[i, : len(r)] = 1
        pos = torch.arange(width).expand(len(rows), width) * seg
        return {"input_ids": ids, "segment_ids": seg, "position_ids": pos, "n_anchors": len(batch),
                "n_negatives": len(batch[0][2]), "rules": [r for _, _, _, rules in batch for r in rules]}


def batch_sampler(pairs: list[dict], batch_size: int = 4, negatives: int = 3, seed: int = 0) -> PairBatches:
    """Spec 4.3.4.1: the contrastive batch sampler over quality and security pair records."""
    uniform = [
        {"anchor": p.get("clean_code", p.get("secure_code")), "positive": p["positive_code"],
         "negative": p.get("violating_code", p.get("vulnerable_code")), "rule": p.get("rule", p.get("sobelow_check"))}
        for p in pairs
    ]
    return PairBatches(uniform, batch_size, negatives, seed)


def clean_sources(records: list[dict], limit: int | None = None) -> list[tuple[str, str]]:
    """Whole-module code_generation records (prompt ""), one per source file; with ``limit``,
    that many spread evenly over the corpus so every kind of module is represented."""
    seen, out = set(), []
    for r in records:
        if r["task"] == "code_generation" and not r.get("prompt") and "defmodule" in r["completion"]:
            source = r.get("source") or f"record-{len(out)}"
            if source not in seen:
                seen.add(source)
                out.append((source, r["completion"]))
    if limit and len(out) > limit:
        out = [out[i * len(out) // limit] for i in range(limit)]
    return out


def prepare_pairs(records: list[dict], quality_path, security_path, seed: int = 0, variants: int = 1,
                  max_anchors: int | None = None, log=print) -> tuple[list[dict], list[dict]]:
    """Write both pair files from the corpus's clean modules (``elixir-data pairs``)."""
    sources = clean_sources(records, max_anchors)
    if not sources:
        from elixir_coder.errors import DataError

        raise DataError("no contrastive pairs: the corpus has no whole-module code_generation records "
                        '(prompt "" and a defmodule in the completion) to use as clean anchors')
    log(f"Generating contrastive pairs from {len(sources)} clean modules into {quality_path} and {security_path} ...")
    parser = shared_parser()
    return (generate_pairs(sources, quality_path, seed, variants, parser),
            security_pairs(sources, security_path, seed, variants, parser))


def read_pairs(path) -> list[dict]:
    from pathlib import Path

    from elixir_coder.corpus.records import iter_jsonl
    from elixir_coder.errors import DataError

    if not Path(path).is_file():
        raise DataError(f"{path}: no contrastive pairs; run `elixir-data pairs` (training with use_contrastive=true does it)")
    return [obj for _, obj in iter_jsonl(path)]


class PairLoader:
    """Tokenized contrastive batches beside the main stream (Lightning combines the two).

    Epochs and tiers come from the trainer (``sampler.set_epoch``) and the tier curriculum
    (``set_tiers``); anchors are encoded with the corpus tokenizer as quality samples.
    """

    def __init__(self, batches: PairBatches, tokenizer, bos: int, task_token: int, eos: int, pad_id: int, max_len: int):
        self.sampler, self.tokenizer = batches, tokenizer
        self.head, self.eos, self.pad_id, self.max_len = [bos, task_token], eos, pad_id, max_len
        self._cache: dict[str, list[int]] = {}
        # Main-stream batches already trained on in a resumed epoch: the pairs cycle beside them
        # one per batch, so the next pass starts at that position modulo their length.
        self.skip_once = 0

    def encode(self, text: str) -> list[int]:
        if text not in self._cache:
            self._cache[text] = self.head + self.tokenizer.encode(text, add_special_tokens=False).ids + [self.eos]
        return self._cache[text]

    def set_tiers(self, tiers) -> None:
        self.sampler.set_tiers(tiers)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        skip, self.skip_once = self.skip_once % max(len(self), 1), 0
        for i, batch in enumerate(self.sampler):
            if i >= skip:
                yield PairBatches.tensors(batch, self.encode, self.max_len, self.pad_id)


class RuleTiers(L.Callback):
    """Spec 4.3.5.3-5: the contrastive pairs of tier 1 first, one more tier every
    ``epochs_per_tier`` epochs, earlier tiers kept (expanding window). The next epoch's tiers are
    set before Lightning sizes the pair loader for it; the current tier is logged as
    ``contrastive/tier`` and saved in checkpoints."""

    def __init__(self, epochs_per_tier: int = 10):
        super().__init__()
        self.epochs_per_tier = max(1, int(epochs_per_tier))
        self.tier = 0

    def _apply(self, trainer: L.Trainer, epoch: int) -> list[int]:
        tiers = active_tiers(epoch, self.epochs_per_tier)
        dm = trainer.datamodule
        if dm is not None and getattr(dm, "contrastive", None) is not None:
            dm.pairs_loader().set_tiers(tiers)
        return tiers

    def setup(self, trainer, pl_module, stage: str) -> None:
        self._apply(trainer, 1)

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        self._apply(trainer, int(checkpoint.get("epoch", 0)) + 1)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._apply(trainer, trainer.current_epoch + 2)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        tier = max(active_tiers(trainer.current_epoch + 1, self.epochs_per_tier))
        pl_module.log("contrastive/tier", float(tier), on_step=False, on_epoch=True)
        if tier != self.tier:
            message = f"contrastive: epoch {trainer.current_epoch + 1} -> rule tiers 1..{tier}"
            logging.getLogger("elixir_coder").info(message)
            for lg in trainer.loggers:
                if hasattr(lg.experiment, "add_text"):
                    lg.experiment.add_text("contrastive", message, global_step=trainer.global_step)
        self.tier = tier

    def state_dict(self) -> dict:
        return {"tier": self.tier}

    def load_state_dict(self, state: dict) -> None:
        self.tier = int(state.get("tier", 0))
