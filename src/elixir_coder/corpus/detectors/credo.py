"""Built-in detectors for the Credo checks in ``labels.QUALITY_LABELS``, on the token structure of
``corpus.source``, following each check's rule with Credo's shipped default configuration
(``corpus.credo_defaults``). Where a rule depends on the AST, the token structure stands in for it;
the docstrings say what is modelled and what is approximated. The real Credo is the judge
(``corpus.lint``); these are what runs without it, and what ``elixir-data pairs --report`` compares.
"""

from __future__ import annotations

import re

from elixir_coder.corpus.credo_defaults import (
    ALIAS_EXCLUDED_LASTNAMES,
    ALIAS_EXCLUDED_NAMESPACES,
    ALIAS_NESTED_DEEPER_THAN,
    DUPLICATE_MASS,
    MAX_COMPLEXITY,
    MAX_LINE_LENGTH,
    MAX_NESTING,
    MODULEDOC_IGNORED_NAMES,
    MODULEDOC_IGNORED_USES,
    URL_RE,
)
from elixir_coder.corpus.source import Definition, Module, Source, Token, alias_statements, attribute_spans

__all__ = ["detect_quality", "max_nesting", "complexity", "QUALITY_RULES"]

_SNAKE_RE = re.compile(r"[a-z0-9_?!]+")
_PASCAL_RE = re.compile(r"[A-Z][a-zA-Z0-9]*")


def max_nesting(src: Source, d: Definition) -> int:
    """Deepest chain of nest ops inside a definition's body (Credo ``Refactor.Nesting``)."""
    if d.body is None:
        return 0
    lo, hi = d.body
    scopes = sorted((s for s in src.nest_scopes if lo <= s[0] <= hi), key=lambda s: (s[0], -s[1]))
    stack: list[tuple[int, int]] = []
    best = 0
    for s in scopes:
        while stack and not (stack[-1][0] <= s[0] and s[1] <= stack[-1][1]):
            stack.pop()
        stack.append(s)
        best = max(best, len(stack))
    return best


def complexity(src: Source, d: Definition) -> int:
    """Cyclomatic complexity as Credo counts it: 1 per def, if/unless/for/try/and/or/&&/||,
    and one per clause of every case/cond (``Refactor.CyclomaticComplexity``)."""
    score = 1
    for k in range(d.at + 1, d.last + 1):
        tok = src.t[k]
        if tok.kind == "ident" and not src.after_dot(k):
            if tok.text in ("if", "unless", "for", "try", "and", "or"):
                score += 1
            elif tok.text in ("case", "cond"):
                do_at = src.block_do(k)
                if do_at is not None:
                    score += len(src.clause_arrows(do_at))
        elif tok.kind == "op" and tok.text in ("&&", "||"):
            score += 1
    return score


def stripped_lines(src: Source) -> list[str]:
    """Source lines with the contents of strings, heredocs and sigils removed (delimiters kept),
    which is what Credo MaxLineLength measures with ``ignore_strings``/``ignore_heredocs``/``ignore_sigils``."""
    code = src.code
    parts, pos = [], 0
    for tok in src.t:
        if tok.kind not in ("str", "sigil") or tok.text.startswith("'") and not tok.heredoc:
            continue
        if tok.kind == "sigil":
            m = re.match(r"~[a-zA-Z]+(\"\"\"|'''|.)", tok.text)
            open_len = m.end() if m else 2
        else:
            open_len = 3 if tok.heredoc else 1
        close = tok.text.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        close_len = 3 if tok.heredoc else 1
        inner_start = tok.start + open_len
        inner_end = tok.start + len(close) - close_len
        if inner_end < inner_start:
            continue
        parts.append(code[pos:inner_start])
        parts.append("\n" * code.count("\n", inner_start, inner_end))
        pos = inner_end
    parts.append(code[pos:])
    return "".join(parts).split("\n")


def long_lines(src: Source) -> list[int]:
    """1-based numbers of lines Credo ``Readability.MaxLineLength`` reports: longer than 120
    once strings/heredocs/sigils are dropped, not a URL line, not the line of a def/defp/defmacro
    (``ignore_definitions: true``); ``@spec`` lines count (``ignore_specs: false``)."""
    def_lines = {src.t[d.at].line for d in src.definitions if d.word in ("def", "defp", "defmacro")}
    out = []
    for no, line in enumerate(stripped_lines(src), start=1):
        if len(line) > MAX_LINE_LENGTH and not URL_RE.search(line) and no not in def_lines:
            out.append(no)
    return out


def _function_names(src: Source) -> bool:
    """``Readability.FunctionNames``: def/defp/defmacro/defmacrop/defguard/defguardp names are snake_case;
    operators, ``unquote`` names and ``sigil_X`` are exempt."""
    for d in src.definitions:
        q = src.next_code(d.at)
        if q is None or src.t[q].kind not in ("ident", "alias"):
            continue
        after = src.t[q + 1] if q + 1 < len(src.t) else None
        if after is not None and after.kind == "op" and after.text != "\\\\":
            continue  # operator definition such as ``def left ++ right``
        name = src.t[q].text
        if name == "unquote" or re.fullmatch(r"sigil_[A-Za-z]+", name):
            continue
        if not _SNAKE_RE.fullmatch(name):
            return True
    return False


def _module_names(src: Source) -> bool:
    """``Readability.ModuleNames``: every part of a defmodule name is PascalCase."""
    for m in src.modules:
        chain, _ = src.alias_chain(m.at + 1) if src.t[m.at + 1].kind == "alias" else ([], 0)
        if any(not _PASCAL_RE.fullmatch(part) for part in chain):
            return True
    return False


def _io_inspect(src: Source) -> bool:
    """``Warning.IoInspect``: any ``IO.inspect`` call or capture."""
    t = src.t
    return any(
        t[i].kind == "alias" and t[i].text == "IO" and src.chain_start(i)
        and t[i + 1].text == "." and t[i + 2].kind == "ident" and t[i + 2].text == "inspect"
        for i in range(len(t) - 2)
    )


def _own_tokens(src: Source, m: Module) -> list[int]:
    """Token indices directly in module ``m`` (not in modules nested inside it)."""
    return [k for k in range(m.do_at + 1, m.end_at) if src.module_of(k) is m]


def _moduledoc(src: Source, m: Module) -> tuple[bool, Token | None]:
    """Whether module ``m`` sets ``@moduledoc`` itself, and the token holding the value."""
    for k in _own_tokens(src, m):
        if src.t[k].kind == "op" and src.t[k].text == "@" and k + 1 < len(src.t) and src.t[k + 1].text == "moduledoc":
            return True, src.t[k + 2] if k + 2 < len(src.t) else None
    return False, None


def module_uses(src: Source, m: Module) -> list[str]:
    """Full names of the modules ``m`` itself ``use``s."""
    out = []
    for k in _own_tokens(src, m):
        if src.is_word(k, "use") and src.statement_start(k) and k + 1 < len(src.t) and src.t[k + 1].kind == "alias":
            out.append(".".join(src.alias_chain(k + 1)[0]))
    return out


def moduledoc_ignored(src: Source, m: Module) -> bool:
    """Credo ModuleDoc's default ``ignore_names`` regex and ``ignore_modules_using`` list."""
    if MODULEDOC_IGNORED_NAMES.search(m.name):
        return True
    return any(
        any(name in used for name in MODULEDOC_IGNORED_USES) or re.search(r"\.Web$", used)
        for used in module_uses(src, m)
    )


def _module_doc(src: Source) -> bool:
    """``Readability.ModuleDoc``: a (non-ignored, non-exception) module without ``@moduledoc``,
    or with a blank one. Ignoring a module skips its nested modules too."""
    skipped: list[Module] = []
    for m in src.modules:
        if any(s.do_at < m.at < s.end_at for s in skipped):
            continue
        if moduledoc_ignored(src, m):
            skipped.append(m)
            continue
        found, value = _moduledoc(src, m)
        if not found:
            if not any(src.is_word(k, "defexception") for k in _own_tokens(src, m)):
                return True
        elif value is not None and value.kind == "str" and not value.text.strip("\"'").strip():
            return True
    return False


def _alias_order(src: Source) -> bool:
    """``Readability.AliasOrder``: within a group of aliases on consecutive lines, names (downcased)
    must be ascending, and so must the names inside a multi-alias ``{...}``."""
    prev = None
    for k, last, full, inner in alias_statements(src):
        lowered = [name.lower() for name in inner]
        if lowered != sorted(lowered):
            return True
        key = "alias " + full.lower()
        line, end_line = src.t[k].line, src.t[last].line
        if prev is not None and line == prev[1] + 1 and prev[0] > key:
            return True
        prev = (key, end_line)
    return False


def nested_alias_calls(src: Source, lo: int = 0, hi: int | None = None) -> list[tuple[int, str]]:
    """(token index, full name) of ``A.B.fun`` calls Credo ``Design.AliasUsage`` reports with its
    shipped config: more than ``if_nested_deeper_than`` (2) parts, not under an excluded
    namespace/last name, no alias or other referenced module sharing the last name, not inside a
    module attribute."""
    hi = len(src.t) - 1 if hi is None else hi
    attrs = attribute_spans(src)
    aliases = set()
    for k, _, full, inner in alias_statements(src):
        if lo <= k <= hi:
            aliases.update([f"{full}.{name}" for name in inner] or [full])
    referenced = set()
    calls = []
    for i in range(lo, hi + 1):
        if not src.chain_start(i):
            continue
        parts, j = src.alias_chain(i)
        full = ".".join(parts)
        referenced.add(full)
        if len(parts) <= ALIAS_NESTED_DEEPER_THAN or j + 2 > hi or src.t[j + 1].text != "." or src.t[j + 2].kind != "ident":
            continue
        if any(a <= i <= b for a, b in attrs):
            continue
        if parts[0] in ALIAS_EXCLUDED_NAMESPACES or parts[-1] in ALIAS_EXCLUDED_LASTNAMES:
            continue
        calls.append((i, full))
    out = []
    for i, full in calls:
        last = full.rsplit(".", 1)[-1]
        if any(a != full and a.rsplit(".", 1)[-1] == last for a in aliases):
            continue
        if any(r != full and "." in r and r.rsplit(".", 1)[-1] == last for r in referenced):
            continue
        out.append((i, full))
    return out


def _mass(src: Source, lo: int, hi: int) -> int:
    """A lower-bound estimate of Credo DuplicatedCode's mass (tuple nodes of the AST) of tokens lo..hi."""
    mass = 0
    for k in range(lo, hi + 1):
        tok = src.t[k]
        if tok.kind == "ident":
            if src.after_dot(k):
                mass += 2
            elif tok.text in ("end", "true", "false", "nil"):
                continue
            else:
                mass += 1
        elif tok.kind == "alias":
            mass += 1 if src.chain_start(k) else 0
        elif tok.kind == "kw":
            mass += 1
        elif tok.kind == "op":
            mass += 0 if tok.text in (".", ">>") else 1
        elif tok.kind == "punct" and tok.text == "{":
            bare_map = k > 0 and src.t[k - 1].kind == "op" and src.t[k - 1].text == "%"
            mass += 0 if bare_map else 1  # ``%{`` is one ``{:%{}, _, _}`` node, already counted at ``%``
        elif tok.kind == "str" and tok.interp:
            mass += 2
    return mass


def body_key(src: Source, d: Definition) -> str:
    lo, hi = d.body
    return " ".join(src.t[k].text for k in range(lo, hi + 1) if src.t[k].kind != "nl")


def duplicated_bodies(src: Source) -> list[tuple[Definition, Definition]]:
    """Pairs of definitions with identical bodies of mass >= 40 (Credo ``Design.DuplicatedCode``,
    ``mass_threshold: 40``, ``nodes_threshold: 2``), modelled on whole function bodies. Credo's
    default config lists this check among the opt-in ones; these are its defaults once enabled."""
    seen: dict[str, Definition] = {}
    out = []
    for d in src.definitions:
        if d.body is None or d.body[0] > d.body[1]:
            continue
        key = body_key(src, d)
        if key in seen:
            if _mass(src, *d.body) + 1 >= DUPLICATE_MASS:
                out.append((seen[key], d))
        else:
            seen[key] = d
    return out


_SPACED_OPS = {
    "==", "!=", "=~", "===", "!==", "+", "-", "*", "/", "++", "--", "+++", "---", "<>", "<", ">", "<=", ">=",
    "&&", "&&&", "||", "|||", "=", "<-", "\\\\", "->", "|",
}
_CAPTURE_DROP = {"ident", "alias", "atom"}


def _is_operator(src: Source, k: int) -> bool:
    """Credo SpaceHelper ``operator?``: comparison, dual, mult, concat, relational, and/or, match,
    in-match, stab and pipe (``|``) operators; ``|>`` and other arrow ops are not counted."""
    tok = src.t[k]
    if tok.kind == "op":
        return tok.text in _SPACED_OPS
    return tok.kind == "ident" and tok.text in ("and", "or") and not src.after_dot(k)


def _space_between(a: Token, b: Token) -> bool:
    return a.line == b.line and a.end < b.start and "\n" not in a.text


def _no_space_between(a: Token, b: Token) -> bool:
    return a.line == b.line and a.end == b.start and "\n" not in a.text


def _captures_argument(t: list[Token], i: int) -> bool:
    """``&1``: a capture of an argument, not of a function."""
    return i + 1 < len(t) and t[i + 1].kind == "num" and t[i + 1].start == t[i].end


def _operator_triples(src: Source) -> list[tuple[Token, int, Token]]:
    """(prev, operator index, next) as Credo's collector visits them, skipping @spec/@type lines,
    function captures and everything after a ``<<`` (its binary-pattern skip never stops)."""
    t = src.t
    n = len(t)
    out = []
    i = 0
    while True:
        if i < n and t[i].kind == "op" and t[i].text == "@":
            line = t[i].line
            if i + 1 < n and t[i + 1].kind == "ident" and t[i + 1].text in ("spec", "type"):
                i += 2
                while i < n and t[i].line == line and t[i].kind != "nl":
                    i += 1
            else:
                i += 1
        elif i < n and t[i].kind == "op" and t[i].text == "&" and not _captures_argument(t, i):
            i += 1
            while i < n and (t[i].kind in _CAPTURE_DROP or t[i].text in ("@", "/", ".", "(", ")")):
                i += 1
        elif i < n and t[i].kind == "op" and t[i].text == "<<":
            break
        if i + 2 >= n:
            break
        if _is_operator(src, i + 1):
            out.append((t[i], i + 1, t[i + 2]))
        i += 1
    return out


def _no_space_before_usual(prev: Token, op: Token) -> bool:
    if op.text == "-":
        if prev.text == "^":
            return True
        return not (prev.kind == "num" or prev.kind == "ident")
    return op.text == ".."


def _no_space_after_usual(prev: Token, op: Token, nxt: Token) -> bool:
    if op.text == "-":
        if prev.text in ("(", ",") and nxt.kind in ("ident", "num"):
            return True
        return prev.text in ("^", "=", "..")
    return op.text == ".."


def _with_space(prev: Token, op: Token, nxt: Token) -> bool:
    return _space_between(prev, op) or _space_between(op, nxt)


def _without_space(prev: Token, op: Token, nxt: Token) -> bool:
    return (not _no_space_before_usual(prev, op) and _no_space_between(prev, op)) or (
        not _no_space_after_usual(prev, op, nxt) and _no_space_between(op, nxt) and nxt.kind != "nl"
    )


def _reportable(src: Source, op: Token) -> bool:
    """Credo SpaceAroundOperators ``create_issue?`` exceptions (signed numbers, ranges, typespec
    arrows, ``&fun/2`` captures, binary-size minus, ``_::_*``) and the default ``ignore: [:|]``."""
    if op.text == "|":
        return False
    line_start = src.code.rfind("\n", 0, op.start) + 1
    line_end = src.code.find("\n", op.start)
    line = src.code[line_start : len(src.code) if line_end < 0 else line_end]
    col = op.start - line_start
    before, after = line[:col], line[col + 1 :]
    if op.text in ("+", "-"):
        if re.search(r"(\A\s+|@[a-zA-Z0-9_]+\.?|[|\\{\[(,:><=+\-*/])\s*$", before):
            return False
        if re.match(r"\d+\.\.", after):
            return False
        if op.text == "-":
            hints = [
                "<<" in before, ">>" in after, "::" in before,
                re.match(r"\s*(integer|native|signed|unsigned|binary|size|little|float)", after) is not None,
                re.search(r"(integer|native|signed|unsigned|binary|size|little|float)\s*$", before) is not None,
            ]
            if sum(hints) >= 2:
                return False
    if op.text == "->" and re.search(r"\(\s*$", before):
        return False
    if op.text == "/" and re.search(r"[.&][a-z0-9_]+[!?]?$", before):
        return False
    if op.text == "*" and "_::_*" in line:
        return False
    return True


def spacing_issues(src: Source) -> list[int]:
    """Token indices of operators Credo ``Consistency.SpaceAroundOperators`` reports: the file's
    majority style (with spaces wins ties) decides which operators are inconsistent."""
    triples = _operator_triples(src)
    with_n = sum(_with_space(p, src.t[k], q) for p, k, q in triples)
    without_n = sum(_without_space(p, src.t[k], q) for p, k, q in triples)
    expect_space = with_n >= without_n
    out = []
    for p, k, q in triples:
        op = src.t[k]
        bad = _without_space(p, op, q) if expect_space else _with_space(p, op, q)
        if bad and _reportable(src, op):
            out.append(k)
    return out


def _tabs_or_spaces(src: Source) -> bool:
    """``Consistency.TabsOrSpaces``: lines indented with two spaces and lines indented with a tab
    in the same file (the minority style is what Credo reports)."""
    lines = src.code.split("\n")
    return any(line.startswith("  ") for line in lines) and any(line.startswith("\t") for line in lines)


def single_condition_conds(src: Source) -> list[int]:
    """``cond`` tokens Credo ``Refactor.CondStatements`` reports: at most two clauses, one of them
    always matching (``true`` or an ``_`` variable)."""
    out = []
    for k in range(len(src.t)):
        if not src.is_word(k, "cond"):
            continue
        do_at = src.block_do(k)
        if do_at is None:
            continue
        arrows = src.clause_arrows(do_at)
        if not arrows or len(arrows) > 2:
            continue
        d = src.depth[do_at] + 1
        always = False
        for a in arrows:
            left = []
            j = a - 1
            while j > do_at and not (src.t[j].kind == "nl" and src.depth[j] == d):
                left.append(src.t[j])
                j -= 1
            if len(left) == 1 and left[0].kind == "ident" and (left[0].text == "true" or left[0].text.startswith("_")):
                always = True
        if always:
            out.append(k)
    return out


def _deep_nesting(src: Source) -> bool:
    """``Refactor.Nesting`` (``max_nesting: 2``)."""
    return any(max_nesting(src, d) > MAX_NESTING for d in src.definitions if d.word in ("def", "defp", "defmacro"))


def _too_complex(src: Source) -> bool:
    """``Refactor.CyclomaticComplexity`` (``max_complexity: 9``); ``defmacro __using__`` is exempt."""
    for d in src.definitions:
        if d.word not in ("def", "defp", "defmacro") or (d.word == "defmacro" and d.name == "__using__"):
            continue
        if complexity(src, d) > MAX_COMPLEXITY:
            return True
    return False


QUALITY_RULES = {
    "Credo.Check.Readability.FunctionNames": _function_names,
    "Credo.Check.Readability.ModuleNames": _module_names,
    "Credo.Check.Warning.IoInspect": _io_inspect,
    "Credo.Check.Readability.ModuleDoc": _module_doc,
    "Credo.Check.Readability.AliasOrder": _alias_order,
    "Credo.Check.Readability.MaxLineLength": lambda src: bool(long_lines(src)),
    "Credo.Check.Refactor.Nesting": _deep_nesting,
    "Credo.Check.Refactor.CyclomaticComplexity": _too_complex,
    "Credo.Check.Refactor.CondStatements": lambda src: bool(single_condition_conds(src)),
    "Credo.Check.Design.DuplicatedCode": lambda src: bool(duplicated_bodies(src)),
    "Credo.Check.Design.AliasUsage": lambda src: bool(nested_alias_calls(src)),
    "Credo.Check.Consistency.SpaceAroundOperators": lambda src: bool(spacing_issues(src)),
    "Credo.Check.Consistency.TabsOrSpaces": _tabs_or_spaces,
}


def detect_quality(code: str | Source) -> set[str]:
    """Credo check names (``labels.QUALITY_LABELS``) that ``code`` violates under default params."""
    src = code if isinstance(code, Source) else Source(code)
    if not src.balanced:
        return set()
    return {label for label, rule in QUALITY_RULES.items() if rule(src)}
