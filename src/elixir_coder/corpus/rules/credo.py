"""Injectors for the surface and layout Credo checks (tiers 1-2): names, ``IO.inspect``, module
docs, alias order, line length. Each is a pure function of ``(code, rng)`` that changes only what
its rule needs and returns the violating code, or None when the input offers nothing to work
with. They follow Credo's shipped default configuration (``corpus.credo_defaults``) and use none
of the detectors' code: the real Credo (``corpus.lint``) or the built-in detectors judge them.
"""

from __future__ import annotations

import random
import re

from elixir_coder.corpus.credo_defaults import MAX_LINE_LENGTH, MODULEDOC_IGNORED_NAMES, MODULEDOC_IGNORED_USES, URL_RE
from elixir_coder.corpus.rules.text import (
    _start,
    RngLike,
    _block_def_lines,
    _defined_names,
    _end_line_of,
    _first_on_line,
    _group_start,
    _indent,
    _is_callback,
    _join,
    _line_of,
    _lines,
    _main_module,
    _module_kind,
    _multiline_string_lines,
    _simple_params,
)
from elixir_coder.corpus.source import Module, Source, alias_statements


def inject_io_inspect(code: str, rng: RngLike = None) -> str | None:
    """Leave a debugging ``IO.inspect`` behind (Credo ``Warning.IoInspect`` flags every call):
    after the last step of a multi-line pipeline, after a one-line assignment, or on a parameter."""
    start = _start(code, rng)
    if start is None:
        return None
    rng, src, lines = start
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
    start = _start(code, rng)
    if start is None:
        return None
    rng, src, lines = start
    def_lines = {_line_of(src, d.at) for d in src.definitions}
    joined = []
    for a, b in _join_candidates(src, lines):
        new = _joined_line(lines[a : b + 1])
        candidate = lines[:a] + [new] + lines[b + 1 :]
        plain = not any(q in new for q in ('"', "'", "~"))  # Credo measures lines without strings/sigils
        if plain and a not in def_lines and len(new) > MAX_LINE_LENGTH and not URL_RE.search(new):
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


def _camel(name: str) -> str | None:
    """``list_active_users`` -> ``listActiveUsers`` (suffix ``?``/``!`` kept); None if unchanged."""
    core, suffix = (name[:-1], name[-1]) if name[-1] in "?!" else (name, "")
    parts = core.split("_")
    if core.startswith("_") or len(parts) < 2 or not any(p[:1].isalpha() for p in parts[1:]):
        return None
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:]) + suffix


def inject_function_names(code: str, rng: RngLike) -> str | None:
    """Rename a function (all its clauses, local calls, captures and specs) to camelCase, which
    Credo ``Readability.FunctionNames`` rejects; callbacks and routed actions keep their names."""
    start = _start(code, rng)
    if start is None:
        return None
    rng, src, lines = start
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


_USE_RE = re.compile(r"^\s*use\s+([A-Z][\w.]*)", re.M)


def _doc_exempt(src: Source, m: Module) -> bool:
    """Modules the shipped ModuleDoc config exempts: ``ignore_names`` matches the name, or the
    module ``use``s one of ``ignore_modules_using`` (or a ``*.Web`` module)."""
    if MODULEDOC_IGNORED_NAMES.search(m.name):
        return True
    own = src.code[src.t[m.do_at].end : src.t[m.end_at].start]
    nested = [(src.t[o.at].start, src.t[o.end_at].end) for o in src.modules if m.do_at < o.at < m.end_at]
    for found in _USE_RE.finditer(own):
        at = src.t[m.do_at].end + found.start(1)
        if any(a <= at < b for a, b in nested):
            continue
        used = found.group(1)
        if any(name in used for name in MODULEDOC_IGNORED_USES) or used.endswith(".Web"):
            return True
    return False


def _defines_exception(src: Source, m: Module) -> bool:
    return any(src.is_word(k, "defexception") and src.module_of(k) is m for k in range(m.do_at, m.end_at))


def inject_module_names(code: str, rng: RngLike) -> str | None:
    """Spell one part of a module name with an underscore (``Web_searchController``), which
    Credo ``Readability.ModuleNames`` rejects (parts must match ``^[A-Z][a-zA-Z0-9]*$``).
    Exception modules keep their names."""
    start = _start(code, rng)
    if start is None:
        return None
    rng, src, _ = start
    options = []
    named = [m for m in src.modules if src.t[m.at + 1].kind == "alias"]
    # Renaming an exception module (or the namespace it sits in) also trips ``Consistency.ExceptionNames``.
    exceptions = [e for e in src.modules if _defines_exception(src, e)]
    for m in named:
        parts, _ = src.alias_chain(m.at + 1)
        if any(m.at <= e.at < m.end_at or src.alias_chain(e.at + 1)[0][: len(parts)] == parts for e in exceptions):
            continue
        ignored = _doc_exempt(src, m)
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
    """Drop the ``@moduledoc`` attributes of a module Credo ``Readability.ModuleDoc`` checks (not matched by its
    default ``ignore_names``/``ignore_modules_using``, not an exception module)."""
    start = _start(code, rng)
    if start is None:
        return None
    rng, src, lines = start
    ignored: list[Module] = []
    options = []
    for m in src.modules:
        if any(o.do_at < m.at < o.end_at for o in ignored) or _doc_exempt(src, m):
            ignored.append(m)
            continue
        if _defines_exception(src, m):
            continue
        # Every ``@moduledoc`` of the module: ``@moduledoc since: ...`` or ``deprecated: ...`` beside
        # the text is one too, and Credo counts the module as documented while any is left.
        docs = [(_line_of(src, k), _end_line_of(src, src.expr_end(k))) for k in range(m.do_at + 1, m.end_at)
                if src.t[k].text == "@" and src.t[k + 1].text == "moduledoc" and src.module_of(k) is m]
        if docs:
            options.append(docs)
    if not options:
        return None
    drop = set()
    for a, b in rng.choice(options):
        if b + 1 < len(lines) and not lines[b + 1].strip():
            b += 1
        drop.update(range(a, b + 1))
    return _join([line for i, line in enumerate(lines) if i not in drop])


def inject_alias_order(code: str, rng: RngLike) -> str | None:
    """Swap two neighbouring aliases of a group (or two names inside ``alias A.{B, C}``) so the group
    is no longer alphabetical, as Credo ``Readability.AliasOrder`` requires. A module without a group
    gets one from the nested modules it calls (a ``(clean, violating)`` twin, see ``_alias_group``)."""
    start = _start(code, rng)
    if start is None:
        return None
    rng, src, lines = start
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
        return _alias_group(code, src, lines, rng)
    kind, a, b = rng.choice(options)
    if kind == "swap":
        lines[a], lines[b] = lines[b], lines[a]
        return _join(lines)
    i = rng.randrange(len(b) - 1)
    names = list(b)
    names[i], names[i + 1] = names[i + 1], names[i]
    lines[a] = re.sub(r"\{[^}]*\}", "{" + ", ".join(names) + "}", lines[a], count=1)
    return _join(lines)


def _alias_group(code: str, src: Source, lines: list[str], rng: random.Random) -> tuple[str, str] | None:
    """``(clean, violating)``: two or three of the nested modules the main module calls fully
    qualified (``Mix.Project.config()``) get aliases and are called by their last part on both
    sides; the clean side lists the aliases in order, the violating side swaps two of them."""
    m = _main_module(src)
    if m is None:
        return None
    at = _line_of(src, m.do_at) + 1
    for k in range(m.do_at + 1, m.end_at):
        if src.t[k].text == "@" and src.t[k + 1].text == "moduledoc" and src.module_of(k) is m:
            at = _end_line_of(src, src.expr_end(k)) + 1
            break
    defined = [o.name for o in src.modules]
    chains: dict[str, list[tuple[int, int]]] = {}  # full name -> (first, last token) of each use
    short, unsafe = set(), set()
    for k in range(m.do_at + 1, m.end_at):
        if not src.chain_start(k):
            continue
        parts, last = src.alias_chain(k)
        if len(parts) == 1:
            short.add(parts[0])
            continue
        for n in range(2, len(parts) + 1):
            name = ".".join(parts[:n])
            chains.setdefault(name, []).append((k, k + 2 * (n - 1)))
            if _line_of(src, k) < at or src.is_word(src.prev_code(k), "use", "import", "require", "alias", "defmodule"):
                unsafe.add(name)
    called = {".".join(src.alias_chain(k)[0]) for k in range(m.do_at + 1, m.end_at) if src.chain_start(k)
              and src.t[src.alias_chain(k)[1] + 1].text == "." and src.t[src.alias_chain(k)[1] + 2].kind == "ident"}
    options = sorted(
        name for name in called & set(chains)
        if name not in unsafe and name.rsplit(".", 1)[1] not in short
        and not any(d == name or d.startswith(name + ".") or name.startswith(d + ".") for d in defined)
    )
    by_last: dict[str, str] = {}
    for name in options:
        by_last.setdefault(name.rsplit(".", 1)[1], name)
    if len(by_last) < 2:
        return None
    chosen = sorted(rng.sample(sorted(by_last.values()), rng.randint(2, min(3, len(by_last)))), key=str.lower)
    spans: dict[int, tuple[str, int]] = {}  # first token of a use -> (the longest chosen name it starts with, its last token)
    for name in chosen:
        for first, last in chains[name]:
            if first not in spans or last > spans[first][1]:
                spans[first] = (name, last)
    out = code
    for first in sorted(spans, key=lambda k: -src.t[k].start):
        name, last = spans[first]
        out = out[: src.t[first].start] + name.rsplit(".", 1)[1] + out[src.t[last].end :]
    new = _lines(out)
    head = _line_of(src, m.do_at)
    indent = _indent(lines[head]) + "  "
    swap = rng.randrange(len(chosen) - 1)
    bad_order = list(chosen)
    bad_order[swap], bad_order[swap + 1] = bad_order[swap + 1], bad_order[swap]

    def with_aliases(order: list[str]) -> str:
        block = [f"{indent}alias {name}" for name in order]
        return _join(new[:at] + ([""] if at > head + 1 else []) + block + ([""] if new[at].strip() else []) + new[at:])

    return with_aliases(chosen), with_aliases(bad_order)
