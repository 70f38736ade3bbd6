"""Positive views (spec 4.3.4): rewrites of a clean module with the same meaning that stay as
clean as it was, the anchor's positive in InfoNCE.
"""

from __future__ import annotations

import random
import re

from elixir_coder.corpus.checks import detect_quality, detect_security
from elixir_coder.corpus.rules.text import (
    RngLike,
    _RESERVED_VARS,
    _block_def_lines,
    _defined_names,
    _first_on_line,
    _group_start,
    _indent,
    _join,
    _line_of,
    _lines,
    _main_module,
    _rng,
    _simple_params,
    _top_level_groups,
)
from elixir_coder.corpus.rules.credo import _join_candidates, _joined_line
from elixir_coder.corpus.source import Source


__all__ = ["positive_view"]


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
