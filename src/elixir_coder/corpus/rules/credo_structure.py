"""Injectors for the structural and consistency Credo checks (tiers 3-4): nesting, complexity,
single-condition ``cond``, duplicated code, fully qualified nested modules, operator spacing,
tabs. Same contract as ``rules.credo``: pure ``(code, rng) -> code | None``, Credo's shipped
default configuration, none of the detectors' code.
"""

from __future__ import annotations

import re

from elixir_coder.corpus.credo_defaults import (
    ALIAS_EXCLUDED_LASTNAMES,
    ALIAS_EXCLUDED_NAMESPACES,
    ALIAS_NESTED_DEEPER_THAN,
    MAX_COMPLEXITY,
    MAX_NESTING,
)
from elixir_coder.corpus.rules.text import (
    _start,
    RngLike,
    _block_def_lines,
    _body_depth,
    _defined_names,
    _first_on_line,
    _fits,
    _indent,
    _is_callback,
    _join,
    _last_on_line,
    _line_of,
    _lines,
    _multiline_string_lines,
    _reindent,
    _simple_params,
)
from elixir_coder.corpus.source import Definition, Source, alias_statements


# Guard levels: (kind, condition that rejects, error reason). The rejecting branch comes first,
# so no ``if not ... else`` (Credo ``Refactor.NegatedConditionsWithElse`` would report it too).
_GUARDS = (
    ("if", "is_nil({p})", ":missing_{p}"),
    ("if", '{p} == ""', ":blank_{p}"),
    ("case", "nil", ":missing_{p}"),
    ("if", "{p} == :error", ":invalid_{p}"),
)
# Levels wrapped around a body: one more than ``Refactor.Nesting``'s ``max_nesting``, whatever the
# body holds already.
_NEST_LEVELS = MAX_NESTING + 1


def _nest_wrapper(guard: tuple[str, str, str], param: str, indent: str, inner: list[str]) -> list[str]:
    """One guard level around ``inner`` (already indented for it)."""
    kind, cond, reason = guard
    error = f"{{:error, {reason.format(p=param)}}}"
    if kind == "if":
        return [f"{indent}if {cond.format(p=param)} do", f"{indent}  {error}", f"{indent}else", *inner, f"{indent}end"]
    return [
        f"{indent}case {param} do", f"{indent}  nil ->", f"{indent}    {error}", "", f"{indent}  _ ->", *inner, f"{indent}end"
    ]


def inject_nesting(code: str, rng: RngLike) -> str | None:
    """Wrap a function body in three guard ``if``/``case`` levels on its parameters, deeper than
    Credo ``Refactor.Nesting`` allows (``max_nesting: 2``); shallow bodies first, so the added
    branches rarely push ``CyclomaticComplexity`` over its limit as well."""
    start = _start(code, rng)
    if start is None:
        return None
    rng, src, lines = start
    strings = _multiline_string_lines(src)
    candidates = []
    for d in src.definitions:
        span = _block_def_lines(src, d)
        params = _simple_params(src, d)
        if not span or not params or any(x in strings for x in range(span[0] + 1, span[1])):
            continue
        candidates.append((_body_depth(lines, *span), rng.random(), d, span, params, _NEST_LEVELS))
    candidates.sort(key=lambda c: c[:2])
    for _, _, d, (first, last), params, levels in candidates:
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
    """Put a function body behind a ``cond`` of input validations that alone take its cyclomatic
    complexity, counted as Credo does (1 per def, per cond clause and per ``and``/``or``), over
    ``max_complexity`` (9); shallow bodies first, so the extra level rarely trips ``Nesting``."""
    start = _start(code, rng)
    if start is None:
        return None
    rng, src, lines = start
    strings = _multiline_string_lines(src)
    candidates = []
    for d in src.definitions:
        span = _block_def_lines(src, d)
        params = _simple_params(src, d)
        if span and params and not any(x in strings for x in range(span[0] + 1, span[1])):
            candidates.append((_body_depth(lines, *span) > 1, rng.random(), d, span, params))
    candidates.sort(key=lambda c: (c[0], c[1]))
    for _, _, d, (first, last), params in candidates:
        score = 2  # the def and the final ``true ->`` clause
        head = code[src.t[d.at].start : src.t[d.body[0]].start]
        structs = {p for p in params if re.search(r"%\w[\w.]*\{[^}]*\}\s*=\s*" + p + r"\b", head)}
        checks = [(check, p) for p in params for check in _checks_for(p, p in structs)]
        rng.shuffle(checks)
        clauses: list[tuple[str, str]] = []
        used = set()
        for (cond, reason, extra), p in checks:
            if score > MAX_COMPLEXITY + rng.randint(0, 2):
                break
            if reason.format(p=p) in used:
                continue
            used.add(reason.format(p=p))
            clauses.append((cond.format(p=p), reason.format(p=p)))
            score += 1 + extra
        if score <= MAX_COMPLEXITY:
            continue
        base = _indent(lines[first + 1])
        new = [f"{base}cond do"]
        for cond, reason in clauses:
            new += [f"{base}  {cond} ->", f"{base}    {{:error, {reason}}}", ""]
        new += [f"{base}  true ->", *_reindent(lines[first + 1 : last], "    "), f"{base}end"]
        if _fits(new):
            return _join(lines[: first + 1] + new + lines[last:])
    return None


def inject_cond_statements(code: str, rng: RngLike) -> str | None:
    """Rewrite an ``if c do a else b end`` as ``cond do c -> a; true -> b end``: a cond with one
    condition besides ``true``, which Credo ``Refactor.CondStatements`` asks to write as ``if``.
    A module without such an ``if`` gets one input check written that way in front of a body."""
    start = _start(code, rng)
    if start is None:
        return None
    rng, src, lines = start
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
        return _guard_cond(code, src, lines, strings, rng)
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


def _guard_cond(code: str, src: Source, lines: list[str], strings: set[int], rng) -> str | None:
    """``cond do <check on a parameter> -> {:error, reason}; true -> <body> end`` around a shallow body."""
    candidates = []
    for d in src.definitions:
        span = _block_def_lines(src, d)
        params = _simple_params(src, d)
        if span and params and not any(x in strings for x in range(span[0] + 1, span[1])):
            candidates.append((_body_depth(lines, *span), rng.random(), span, params))
    for _, _, (first, last), params in sorted(candidates)[:4]:
        p = rng.choice(params)
        check, reason, _ = rng.choice([c for c in _checks_for(p, False) if c[2] == 0])
        base = _indent(lines[first + 1])
        new = [f"{base}cond do", f"{base}  {check.format(p=p)} ->", f"{base}    {{:error, {reason.format(p=p)}}}", "",
               f"{base}  true ->", *_reindent(lines[first + 1 : last], "    "), f"{base}end"]
        if _fits(new):
            return _join(lines[: first + 1] + new + lines[last:])
    return None


_TAG = re.compile(r"\b(TODO|FIXME)\b", re.I)
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
    start = _start(code, rng)
    if start is None:
        return None
    rng, src, lines = start
    taken = _defined_names(src)
    options = []
    for d in src.definitions:
        span = _block_def_lines(src, d)
        if not span or d.word not in ("def", "defp") or not d.name or _is_callback(src, lines, d):
            continue
        if any(_TAG.search(line) for line in lines[span[0] : span[1] + 1]):
            continue  # a copied TODO/FIXME is a second ``Design.TagTODO``/``TagFIXME`` finding
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
    called fully qualified, which Credo ``Design.AliasUsage`` reports with its shipped config
    (names of more than ``if_nested_deeper_than: 2`` parts). A module without such an alias but
    with such a name gets one local call of its own public function written fully qualified."""
    start = _start(code, rng)
    if start is None:
        return None
    rng, src, _ = start
    attributes = [(k, src.expr_end(k)) for k, tok in enumerate(src.t) if tok.text == "@" and src.statement_start(k)]
    options = []
    for k, last, full, inner in alias_statements(src):
        parts = full.split(".")
        if inner or len(parts) <= ALIAS_NESTED_DEEPER_THAN or src.t[k].line != src.t[last].line or src.t[src.alias_chain(k + 1)[1] + 1].text == ",":
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
    return _qualify_own_call(code, src, rng)


def _qualify_own_call(code: str, src: Source, rng) -> str | None:
    """``helper(x)`` -> ``A.B.C.helper(x)`` inside module ``A.B.C`` (its public functions only)."""
    options = []
    for m in src.modules:
        parts = m.name.split(".")
        if len(parts) <= ALIAS_NESTED_DEEPER_THAN or parts[0] in ALIAS_EXCLUDED_NAMESPACES or parts[-1] in ALIAS_EXCLUDED_LASTNAMES:
            continue
        public = {d.name for d in src.definitions if d.word == "def" and src.module_of(d.at) is m}
        for d in src.definitions:
            if d.body is None or src.module_of(d.at) is not m:
                continue
            for k in range(d.body[0], d.body[1] + 1):
                tok = src.t[k]
                if (tok.kind == "ident" and tok.text in public and not src.after_dot(k) and k + 1 < len(src.t)
                        and src.t[k + 1].text == "(" and src.t[k + 1].start == tok.end
                        and not (k > 0 and src.t[k - 1].text == "&")):
                    options.append((k, m.name))
    rng.shuffle(options)
    for k, full in options:
        tok = src.t[k]
        out = code[: tok.start] + f"{full}." + code[tok.start :]
        if _fits(_lines(out)[tok.line - 1 : tok.line]):
            return out
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
    start = _start(code, rng)
    if start is None:
        return None
    rng, src, _ = start
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
    start = _start(code, rng)
    if start is None:
        return None
    rng, src, lines = start
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
