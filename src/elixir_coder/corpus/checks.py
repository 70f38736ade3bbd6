"""Text-level detectors for the Credo checks and Sobelow findings named in ``labels.py``.

The detectors never evaluate Elixir. They run a small string-, sigil- and comment-aware lexer,
match ``do``/``fn``/``end`` and brackets, and apply each check's rule as the real tool states it
with its DEFAULT parameters (sources read: ``rrrene/credo`` ``lib/credo/check/**`` and
``nccgroup/sobelow`` ``lib/sobelow/**``). Where a rule depends on the AST, the token structure
stands in for it; the docstrings below say what is modelled and what is approximated.

``detect_quality(code)`` returns Credo check names, ``detect_security(code)`` Sobelow finding
names; both return an empty set for code they cannot lex into a balanced structure.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from functools import cached_property

__all__ = ["Token", "Source", "tokenize", "detect_quality", "detect_security", "max_nesting", "complexity"]

# -- lexer ------------------------------------------------------------------

_OPERATORS = sorted(
    [
        "===", "!==", "<<<", ">>>", "|||", "&&&", "^^^", "~~~", "<<~", "~>>", "<~>", "<|>", "...", "+++", "---",
        "|>", "<>", "++", "--", "..", "::", "==", "!=", "=~", "<=", ">=", "&&", "||", "->", "<-", "=>", "<<", ">>",
        "~>", "<~", "**", "//", "\\\\",
        "+", "-", "*", "/", "=", "<", ">", "!", "^", "&", "|", ".", "@", "%", "\\", "~", ":",
    ],
    key=len,
    reverse=True,
)
_PAIRS = {"(": ")", "[": "]", "{": "}", "<": ">"}
_SIGIL_DELIMS = '/|"\'([{<'
_IDENT_RE = re.compile(r"[^\W\dA-Z][\w]*[?!]?")
_ALIAS_RE = re.compile(r"[A-Z]\w*")
_NUM_RE = re.compile(r"0x[0-9a-fA-F_]+|0b[01_]+|0o[0-7_]+|\d[\d_]*(?:\.\d[\d_]*(?:[eE][-+]?\d+)?)?")
_ATOM_RE = re.compile(r"[A-Za-z_][\w@]*[?!]?")


@dataclass(frozen=True, slots=True)
class Token:
    """One lexeme. ``kind`` is one of ident, alias, kw (keyword key such as ``do:``), atom, num,
    str (strings, charlists, heredocs), sigil, op, punct, nl, comment, other."""

    kind: str
    text: str
    start: int
    end: int
    line: int
    interp: bool = False  # a string or sigil holding ``#{...}``
    heredoc: bool = False


class _Lexer:
    def __init__(self, code: str):
        self.code = code
        self.n = len(code)
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", code)]

    def line_of(self, pos: int) -> int:
        return bisect.bisect_right(self.line_starts, pos)

    def lex(self, pos: int, stop_at_brace: bool) -> tuple[list[Token], int]:
        """Tokens from ``pos``; with ``stop_at_brace``, stop at the ``}`` closing an interpolation."""
        code, n = self.code, self.n
        out: list[Token] = []
        braces = 0
        i = pos
        while i < n:
            c = code[i]
            if c == "\n":
                out.append(Token("nl", "\n", i, i + 1, self.line_of(i)))
                i += 1
            elif c in " \t\r\f\v":
                i += 1
            elif c == "\\" and code.startswith("\\\n", i):
                i += 2
            elif c == "#":
                j = code.find("\n", i)
                j = n if j < 0 else j
                out.append(Token("comment", code[i:j], i, j, self.line_of(i)))
                i = j
            elif code.startswith('"""', i) or code.startswith("'''", i):
                j, interp = self._heredoc(i + 3, code[i], allow_interp=True)
                out.append(self._maybe_kw(Token("str", code[i:j], i, j, self.line_of(i), interp, True)))
                i = out[-1].end
            elif c in "\"'":
                j, interp = self._quoted(i + 1, c, c, allow_interp=True)
                out.append(self._maybe_kw(Token("str", code[i:j], i, j, self.line_of(i), interp)))
                i = out[-1].end
            elif c == "~" and i + 1 < n and code[i + 1].isalpha():
                j = self._sigil(i)
                if j is None:
                    out.append(Token("op", "~", i, i + 1, self.line_of(i)))
                    i += 1
                else:
                    j, interp, heredoc = j
                    out.append(Token("sigil", code[i:j], i, j, self.line_of(i), interp, heredoc))
                    i = j
            elif c == "?" and i + 1 < n and not (out and out[-1].end == i and out[-1].kind in ("ident", "alias")):
                j = i + 3 if code[i + 1] == "\\" and i + 2 < n else i + 2
                out.append(Token("num", code[i:j], i, j, self.line_of(i)))
                i = j
            elif c == ":" and i + 1 < n and code[i + 1] != ":":
                i = self._colon(i, out)
            elif c.isdigit():
                m = _NUM_RE.match(code, i)
                out.append(Token("num", m.group(), i, m.end(), self.line_of(i)))
                i = m.end()
            elif c.isalpha() or c == "_":
                i = self._word(i, out)
            elif c in "()[]{},;":
                if stop_at_brace and c == "}" and braces == 0:
                    return out, i + 1
                if c == "{":
                    braces += 1
                elif c == "}":
                    braces -= 1
                out.append(Token("punct", c, i, i + 1, self.line_of(i)))
                i += 1
            else:
                for op in _OPERATORS:
                    if code.startswith(op, i):
                        # ``Kernel.+`` and ``&>=/2`` name functions: Elixir's tokenizer makes them identifiers
                        prev = out[-1] if out and out[-1].end == i and out[-1].kind == "op" else None
                        called = prev is not None and (
                            prev.text == "." or prev.text == "&" and code.startswith("/", i + len(op))
                        )
                        out.append(Token("ident" if called else "op", op, i, i + len(op), self.line_of(i)))
                        i += len(op)
                        break
                else:
                    out.append(Token("other", c, i, i + 1, self.line_of(i)))
                    i += 1
        return out, n

    def _maybe_kw(self, tok: Token) -> Token:
        """``"quoted key": value`` is a keyword key, like ``key: value``."""
        j = tok.end
        if not tok.heredoc and self.code.startswith(":", j) and (j + 1 >= self.n or self.code[j + 1] in " \t\n"):
            return Token("kw", tok.text, tok.start, j + 1, tok.line)
        return tok

    def _interp_end(self, i: int) -> int:
        _, j = self.lex(i + 2, stop_at_brace=True)
        return j

    def _quoted(self, i: int, close: str, opener: str, allow_interp: bool) -> tuple[int, bool]:
        """End offset (after the closing delimiter) of a one-line-delimited literal starting at ``i``."""
        code, n = self.code, self.n
        interp = False
        while i < n:
            c = code[i]
            if c == "\\":
                i += 2
            elif allow_interp and c == "#" and code.startswith("#{", i):
                interp = True
                i = self._interp_end(i)
            elif c == close:
                return i + 1, interp
            else:
                i += 1
        return n, interp

    def _heredoc(self, i: int, quote: str, allow_interp: bool) -> tuple[int, bool]:
        """End offset of a heredoc whose opening triple quote ends at ``i``."""
        code, n = self.code, self.n
        closing = re.compile(r"^[ \t]*" + re.escape(quote * 3), re.M)
        nl = code.find("\n", i)
        if nl < 0:
            return n, False
        m = closing.search(code, nl + 1)
        end = n if m is None else m.end()
        body = code[nl + 1 : end]
        return end, allow_interp and "#{" in body

    def _sigil(self, i: int) -> tuple[int, bool, bool] | None:
        code, n = self.code, self.n
        j = i + 1
        if code[j].islower():
            j += 1
            lower = True
        else:
            while j < n and code[j].isupper():
                j += 1
            lower = False
        if j >= n:
            return None
        if code.startswith('"""', j) or code.startswith("'''", j):
            end, interp = self._heredoc(j + 3, code[j], allow_interp=lower)
            heredoc = True
        elif code[j] in _SIGIL_DELIMS:
            end, interp = self._quoted(j + 1, _PAIRS.get(code[j], code[j]), code[j], allow_interp=lower)
            heredoc = False
        else:
            return None
        while end < n and code[end].isalnum():
            end += 1
        return end, interp, heredoc

    def _colon(self, i: int, out: list[Token]) -> int:
        code = self.code
        nxt = code[i + 1]
        if nxt in "\"'":
            j, interp = self._quoted(i + 2, nxt, nxt, allow_interp=True)
            out.append(Token("atom", code[i:j], i, j, self.line_of(i), interp))
            return j
        m = _ATOM_RE.match(code, i + 1)
        if m:
            j = m.end()
            while code.startswith(".", j) and _ALIAS_RE.match(code, j + 1):  # :"Elixir.Foo" style
                j = _ALIAS_RE.match(code, j + 1).end()
            out.append(Token("atom", code[i:j], i, j, self.line_of(i)))
            return j
        for op in _OPERATORS:
            if op != ":" and code.startswith(op, i + 1):
                out.append(Token("atom", ":" + op, i, i + 1 + len(op), self.line_of(i)))
                return i + 1 + len(op)
        out.append(Token("op", ":", i, i + 1, self.line_of(i)))
        return i + 1

    def _word(self, i: int, out: list[Token]) -> int:
        code, n = self.code, self.n
        m = _ALIAS_RE.match(code, i)
        kind = "alias"
        if m is None:
            m = _IDENT_RE.match(code, i)
            kind = "ident"
        if m is None:
            out.append(Token("other", code[i], i, i + 1, self.line_of(i)))
            return i + 1
        j = m.end()
        if code.startswith(":", j) and (j + 1 >= n or code[j + 1] in " \t\r\n") and not code.startswith("::", j):
            out.append(Token("kw", code[i:j], i, j + 1, self.line_of(i)))
            return j + 1
        out.append(Token(kind, code[i:j], i, j, self.line_of(i)))
        return j


def tokenize(code: str) -> list[Token]:
    """All tokens of ``code`` (comments and newlines included); never raises on odd input."""
    tokens, _ = _Lexer(code).lex(0, stop_at_brace=False)
    return tokens


# -- structure ----------------------------------------------------------------

_CLOSERS = {")", "]", "}", ">>"}
_SECTION_WORDS = {"else", "after", "rescue", "catch"}
_PREFIX_OPS = {"@", "&", "^", "!", "%"}
_WORD_OPS = {"when", "and", "or", "in", "not"}
# Binary operators that, at the start of a line, continue the previous expression.
_LINE_CONT_OPS = {
    "|>", "<>", "++", "--", ".", "==", "!=", "===", "!==", "=~", "=", "&&", "||", "&&&", "|||", "*", "/",
    "<", ">", "<=", ">=", "|", "::", "->", "<-", "\\\\", "//", "**", "=>", "~>", "<~", "<<<", ">>>",
}
DEF_WORDS = ("def", "defp", "defmacro", "defmacrop", "defguard", "defguardp")


@dataclass(frozen=True, slots=True)
class Definition:
    """A ``def``-like clause: token indices of the keyword, its name and its body."""

    word: str
    name: str
    at: int  # index of the def keyword in ``Source.t``
    body: tuple[int, int] | None  # first/last token index of the body (exclusive of do/end)
    do_at: int | None  # index of the ``do`` token for block bodies, else None
    last: int  # last token of the whole clause


@dataclass(frozen=True, slots=True)
class Module:
    name: str
    at: int
    do_at: int
    end_at: int


class Source:
    """Code plus its tokens (``t``: comments dropped, newlines kept) and bracket/block structure."""

    def __init__(self, code: str):
        self.code = code
        self.all_tokens = tokenize(code)
        self.t = [tok for tok in self.all_tokens if tok.kind != "comment"]
        self.partner: dict[int, int] = {}
        self.depth: list[int] = []
        self.balanced = self._match()

    # structure
    def _match(self) -> bool:
        stack: list[int] = []
        ok = True
        for i, tok in enumerate(self.t):
            closes = False
            binary_close = tok.kind == "op" and tok.text == ">>" and stack and self.t[stack[-1]].text == "<<"
            if tok.kind == "punct" and tok.text in _CLOSERS or binary_close:
                want = {")": "(", "]": "[", "}": "{", ">>": "<<"}[tok.text]
                closes = True
            elif tok.kind == "ident" and tok.text == "end":
                want = None
                closes = True
            if closes:
                j = len(stack) - 1
                while j >= 0:
                    o = self.t[stack[j]]
                    if (want is None and o.text in ("do", "fn")) or o.text == want:
                        break
                    j -= 1
                if j < 0:
                    ok = False
                    self.depth.append(len(stack))
                    continue
                if j != len(stack) - 1:
                    ok = False
                opener = stack[j]
                del stack[j:]
                self.partner[opener] = i
                self.partner[i] = opener
                self.depth.append(len(stack))
                continue
            self.depth.append(len(stack))
            if self.is_opener(i):
                stack.append(i)
        return ok and not stack

    def is_opener(self, i: int) -> bool:
        tok = self.t[i]
        if tok.kind == "punct":
            return tok.text in "([{"
        if tok.kind == "op":
            return tok.text == "<<"
        return tok.kind == "ident" and tok.text in ("do", "fn") and not self.after_dot(i)

    def after_dot(self, i: int) -> bool:
        return i > 0 and self.t[i - 1].kind == "op" and self.t[i - 1].text == "." and self.t[i - 1].end == self.t[i].start

    def prev_code(self, i: int) -> int | None:
        i -= 1
        while i >= 0 and self.t[i].kind == "nl":
            i -= 1
        return i if i >= 0 else None

    def next_code(self, i: int) -> int | None:
        i += 1
        while i < len(self.t) and self.t[i].kind == "nl":
            i += 1
        return i if i < len(self.t) else None

    def is_word(self, i: int, *words: str) -> bool:
        tok = self.t[i]
        return tok.kind == "ident" and tok.text in words and not self.after_dot(i)

    def _continues_after(self, i: int) -> bool:
        """The expression goes on past the end of the line holding token ``i``."""
        tok = self.t[i]
        if tok.kind == "punct" and tok.text == ",":
            return True
        if tok.kind == "kw":
            return True
        if tok.kind == "op" and tok.text not in _PREFIX_OPS:
            return True
        return tok.kind == "ident" and tok.text in _WORD_OPS

    def _continues_before(self, i: int) -> bool:
        """A line starting with token ``i`` continues the previous expression."""
        tok = self.t[i]
        if tok.kind == "op" and tok.text in _LINE_CONT_OPS and tok.text != "->":
            return True
        return tok.kind == "ident" and tok.text in ("when", "and", "or", "in") and not self.after_dot(i)

    def expr_end(self, i: int, stop_at_do: bool = False) -> int:
        """Index of the last token of the expression starting at token ``i``."""
        d = self.depth[i]
        last = i
        j = i
        n = len(self.t)
        while j < n:
            tok = self.t[j]
            if self.depth[j] < d:
                break
            if self.depth[j] == d and j != i:
                if tok.kind == "nl":
                    p, q = self.prev_code(j), self.next_code(j)
                    if p is not None and p >= i and self._continues_after(p):
                        j += 1
                        continue
                    if q is not None and self._continues_before(q):
                        j += 1
                        continue
                    break
                if tok.kind == "punct" and tok.text == ";":
                    break
                if tok.kind == "ident" and tok.text in _SECTION_WORDS:
                    break
                if stop_at_do and self.is_word(j, "do"):
                    return j
            if tok.kind != "nl":
                last = j
            if self.is_opener(j) and j in self.partner:
                j = self.partner[j]
                last = j
            j += 1
        return last

    def block_do(self, i: int) -> int | None:
        """The ``do`` opening the block of the call starting at token ``i``, if it has one."""
        j = self.expr_end(i, stop_at_do=True)
        return j if self.is_word(j, "do") and j in self.partner else None

    def statement_start(self, i: int) -> bool:
        p = self.prev_code(i)
        if p is None:
            return True
        if self.t[p].line != self.t[i].line:
            return not self._continues_after(p)
        tok = self.t[p]
        if tok.kind == "punct" and tok.text == ";" or tok.kind == "op" and tok.text == "->":
            return True
        return self.is_word(p, "do", "else", "after", "rescue", "catch")

    # definitions and modules
    @cached_property
    def definitions(self) -> list[Definition]:
        out = []
        for i, tok in enumerate(self.t):
            if tok.kind != "ident" or tok.text not in DEF_WORDS or self.after_dot(i):
                continue
            if not self.statement_start(i):
                continue
            q = self.next_code(i)
            if q is None or self.t[q].line != tok.line:
                continue
            name_tok = self.t[q]
            name = name_tok.text if name_tok.kind in ("ident", "alias") else ""
            body, do_at = None, None
            j = self.expr_end(i, stop_at_do=True)
            if self.is_word(j, "do") and j in self.partner:
                do_at, end = j, self.partner[j]
                body = (j + 1, end - 1)
                last = end
            else:
                last = j
                for k in range(i + 1, j + 1):
                    if self.t[k].kind == "kw" and self.t[k].text == "do" and self.depth[k] == self.depth[i]:
                        body = (k + 1, j)
                        break
            out.append(Definition(tok.text, name, i, body, do_at, last))
        return out

    @cached_property
    def modules(self) -> list[Module]:
        out = []
        for i in range(len(self.t)):
            if not self.is_word(i, "defmodule"):
                continue
            do_at = self.block_do(i)
            if do_at is None:
                continue
            parts = []
            k = i + 1
            while k < do_at and self.t[k].kind in ("alias", "op", "ident") and self.t[k].text not in ("do",):
                parts.append(self.t[k].text)
                k += 1
            out.append(Module("".join(parts), i, do_at, self.partner[do_at]))
        return out

    def module_of(self, i: int) -> Module | None:
        """The innermost module enclosing token ``i``."""
        best = None
        for m in self.modules:
            if m.do_at < i < m.end_at and (best is None or m.do_at > best.do_at):
                best = m
        return best

    def alias_chain(self, i: int) -> tuple[list[str], int]:
        """Alias parts starting at token ``i`` (``Foo.Bar.Baz``) and the index of the last part."""
        parts = [self.t[i].text]
        j = i
        while (
            j + 2 < len(self.t)
            and self.t[j + 1].kind == "op"
            and self.t[j + 1].text == "."
            and self.t[j + 2].kind == "alias"
            and self.t[j + 1].start == self.t[j].end
        ):
            parts.append(self.t[j + 2].text)
            j += 2
        return parts, j

    def chain_start(self, i: int) -> bool:
        """Token ``i`` is an alias that is not itself the tail of ``X.Alias``."""
        if self.t[i].kind != "alias":
            return False
        return not (i > 0 and self.t[i - 1].kind == "op" and self.t[i - 1].text == "." and self.t[i - 1].end == self.t[i].start)

    # nesting
    _NEST_WORDS = ("if", "unless", "case", "cond", "fn", "for", "with")

    @cached_property
    def nest_scopes(self) -> list[tuple[int, int]]:
        """(start, end) token spans of if/unless/case/cond/fn/for/with, Credo Nesting's nest ops."""
        out = []
        for i, tok in enumerate(self.t):
            if tok.kind != "ident" or tok.text not in self._NEST_WORDS or self.after_dot(i):
                continue
            if tok.text == "fn":
                if i in self.partner:
                    out.append((i, self.partner[i]))
                continue
            do_at = self.block_do(i)
            out.append((i, self.partner[do_at] if do_at is not None else self.expr_end(i)))
        return out

    def scope_words(self, i: int, j: int, words: tuple[str, ...]) -> list[int]:
        return [k for k in range(i, j + 1) if self.t[k].kind == "ident" and self.t[k].text in words and not self.after_dot(k)]

    def clause_arrows(self, do_at: int) -> list[int]:
        """``->`` tokens directly inside the do block opened at ``do_at`` (its clauses)."""
        end = self.partner.get(do_at)
        if end is None:
            return []
        d = self.depth[do_at] + 1
        return [k for k in range(do_at + 1, end) if self.depth[k] == d and self.t[k].kind == "op" and self.t[k].text == "->"]


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


# -- Credo checks -------------------------------------------------------------

MAX_LINE_LENGTH = 120
MAX_NESTING = 2
MAX_COMPLEXITY = 9
DUPLICATE_MASS = 40
# Credo MaxLineLength's ``ignore_urls`` pattern, applied to the line with strings removed.
URL_RE = re.compile(r"[-a-zA-Z0-9@:%._\+~#=]{2,256}\.[a-z]{2,6}\b([-a-zA-Z0-9@:%_\+.~#?&//=]*)", re.ASCII)
MODULEDOC_IGNORED_NAMES = re.compile(
    r"(\.\w+Controller|\.Endpoint|\.\w+Live(\.\w+)?|\.Repo|\.Router|\.\w+Socket|\.\w+View|\.\w+HTML|\.\w+JSON"
    r"|\.Telemetry|\.Layouts|\.Mailer)$"
)
MODULEDOC_IGNORED_USES = ("Credo.Check", "Ecto.Schema", "Phoenix.LiveView")
ALIAS_EXCLUDED_NAMESPACES = {"File", "IO", "Inspect", "Kernel", "Macro", "Supervisor", "Task", "Version"}
ALIAS_EXCLUDED_LASTNAMES = set(
    "Access Agent Application Atom Base Behaviour Bitwise Code Date DateTime Dict Enum Exception File Float "
    "GenEvent GenServer HashDict HashSet Integer IO Kernel Keyword List Macro Map MapSet Module NaiveDateTime "
    "Node OptionParser Path Port Process Protocol Range Record Regex Registry Set Stream String StringIO "
    "Supervisor System Task Time Tuple URI Version".split()
)
_SNAKE_RE = re.compile(r"[a-z0-9_?!]+")
_PASCAL_RE = re.compile(r"[A-Z][a-zA-Z0-9]*")


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


def alias_statements(src: Source) -> list[tuple[int, int, str, list[str]]]:
    """``alias`` statements as (first token, last token, full name, names inside ``{}``)."""
    out = []
    for k in range(len(src.t)):
        if not src.is_word(k, "alias") or k + 1 >= len(src.t) or src.t[k + 1].kind != "alias":
            continue
        if not src.statement_start(k):
            continue
        parts, j = src.alias_chain(k + 1)
        inner: list[str] = []
        if j + 2 < len(src.t) and src.t[j + 1].text == "." and src.t[j + 2].text == "{" and j + 2 in src.partner:
            close = src.partner[j + 2]
            inner = [src.t[x].text for x in range(j + 3, close) if src.chain_start(x)]
        out.append((k, src.expr_end(k), ".".join(parts), inner))
    return out


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


def attribute_spans(src: Source) -> list[tuple[int, int]]:
    return [
        (k, src.expr_end(k)) for k, tok in enumerate(src.t)
        if tok.kind == "op" and tok.text == "@" and src.statement_start(k)
    ]


def nested_alias_calls(src: Source, lo: int = 0, hi: int | None = None) -> list[tuple[int, str]]:
    """(token index, full name) of ``A.B.fun`` calls Credo ``Design.AliasUsage`` reports with its
    defaults: more than one part, not under an excluded namespace/last name, no alias or other
    referenced module sharing the last name, not inside a module attribute."""
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
        if len(parts) < 2 or j + 2 > hi or src.t[j + 1].text != "." or src.t[j + 2].kind != "ident":
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


def detect_quality(code: str) -> set[str]:
    """Credo check names (``labels.QUALITY_LABELS``) that ``code`` violates under default params."""
    src = Source(code)
    if not src.balanced:
        return set()
    return {label for label, rule in QUALITY_RULES.items() if rule(src)}


# -- Sobelow findings -----------------------------------------------------------

FILE_FUNCS = {
    "read", "read!", "write", "write!", "rm", "rm!", "rm_rf", "open", "open!", "chmod", "chmod!", "chown", "chown!",
    "mkdir", "mkdir!", "mkdir_p", "mkdir_p!",
}
FILE_DOUBLE_FUNCS = {"cp", "copy", "cp!", "copy!", "cp_r", "cp_r!", "ln", "ln!", "ln_s", "ln_s!"}


@dataclass(frozen=True, slots=True)
class Call:
    at: int  # the function name token
    module: tuple[str, ...] | None  # alias parts, (":erlang",) for Erlang modules, None for a local call
    args: tuple[tuple[int, int], ...]  # explicit argument token spans
    piped: bool
    capture: bool


def _split_args(src: Source, lo: int, hi: int, depth: int) -> tuple[tuple[int, int], ...]:
    spans, start = [], lo
    for k in range(lo, hi + 1):
        if src.depth[k] == depth and src.t[k].kind == "punct" and src.t[k].text == ",":
            spans.append((start, k - 1))
            start = k + 1
    if start <= hi:
        spans.append((start, hi))
    return tuple((a, b) for a, b in spans if any(src.t[x].kind != "nl" for x in range(a, b + 1)))


_ARG_START = ("ident", "alias", "str", "num", "atom", "sigil")


def find_calls(src: Source, lo: int, hi: int, names: set[str] | frozenset[str]) -> list[Call]:
    """Calls of functions named ``names`` between tokens lo..hi, remote or local, with their args."""
    out = []
    t = src.t
    for k in range(lo, hi + 1):
        if t[k].kind != "ident" or t[k].text not in names:
            continue
        start, module = k, None
        if src.after_dot(k):
            q = k - 2
            if q < 0:
                continue
            if t[q].kind == "atom":
                module, start = (t[q].text,), q
            elif t[q].kind == "alias":
                s = q
                while s >= 2 and t[s - 1].text == "." and t[s - 2].kind == "alias" and t[s - 1].start == t[s - 2].end:
                    s -= 2
                module, start = tuple(src.alias_chain(s)[0]), s
            else:
                continue
        else:
            p = src.prev_code(k)
            if p is not None and t[p].kind == "ident" and t[p].text in DEF_WORDS:
                continue
        p = src.prev_code(start)
        piped = p is not None and t[p].kind == "op" and t[p].text == "|>"
        capture = p is not None and t[p].kind == "op" and t[p].text == "&" and k + 1 < len(t) and t[k + 1].text == "/"
        args: tuple[tuple[int, int], ...] = ()
        if k + 1 < len(t) and t[k + 1].text == "(" and t[k + 1].start == t[k].end and k + 1 in src.partner:
            close = src.partner[k + 1]
            args = _split_args(src, k + 2, close - 1, src.depth[k] + 1)
        elif k + 1 < len(t) and t[k + 1].line == t[k].line and t[k + 1].kind in _ARG_START:
            end = src.expr_end(k + 1)
            args = _split_args(src, k + 1, end, src.depth[k])
        out.append(Call(k, module, args, piped, capture))
    return out


def is_literal(src: Source, lo: int, hi: int) -> bool:
    """Sobelow's ``parse_opts`` finds no variable in tokens lo..hi: plain strings, numbers, atoms,
    lists/tuples of those, a module attribute, ``~s``/``~e`` sigils, operators joining literals."""
    toks = [src.t[k] for k in range(lo, hi + 1) if src.t[k].kind != "nl"]
    if len(toks) == 2 and toks[0].text == "@" and toks[1].kind == "ident":
        return True
    for tok in toks:
        if tok.kind in ("str", "atom") and not tok.interp:
            continue
        if tok.kind == "sigil" and tok.text[1] in "se":
            continue
        if tok.kind in ("num", "kw"):
            continue
        if tok.kind == "ident" and tok.text in ("true", "false", "nil"):
            continue
        if tok.kind == "punct" and tok.text in "[]{},":
            continue
        if tok.kind == "op" and tok.text in ("-", "+", "<>", "++", "<<", ">>", "::", "*", "/"):
            continue
        return False
    return True


def tainted(src: Source, call: Call, idx: int) -> bool:
    """The argument at position ``idx`` (the piped value counts as position 0) is not a literal."""
    if call.capture:
        return True
    args: list[tuple[int, int] | None] = ([None] if call.piped else []) + list(call.args)
    if idx >= len(args):
        return False
    return args[idx] is None or not is_literal(src, *args[idx])


def _module_is(call: Call, *, last: str | None = None, exact: tuple[str, ...] | None = None, local: bool = False) -> bool:
    if call.module is None:
        return local
    if exact is not None:
        return call.module == exact
    return call.module[-1] == last


def _content_types_allow_html(src: Source, lo: int, hi: int) -> bool:
    """Sobelow XSS.SendResp confidence: a function that only sets non-HTML content types is dropped."""
    types = []
    for c in find_calls(src, lo, hi, {"put_resp_content_type"}):
        if c.module is not None and c.module[-1] != "Conn":
            continue
        if not c.args:
            continue
        a, b = c.args[0]
        toks = [src.t[x] for x in range(a, b + 1) if src.t[x].kind != "nl"]
        if len(toks) == 1 and toks[0].kind == "str" and not toks[0].interp:
            types.append(toks[0].text.strip("\"'").lower())
        else:
            types.append(None)
    if not types or any(x is None for x in types):
        return True
    return any("html" in x for x in types)


def _function_findings(src: Source, lo: int, hi: int, controller: bool) -> set[str]:
    """Findings inside one def/defp body (Sobelow analyses each function on its own)."""
    found = set()

    def calls(*names: str) -> list[Call]:
        return find_calls(src, lo, hi, set(names))

    for c in calls("query"):
        sql = _module_is(c, last="SQL", local=True) and tainted(src, c, 1)
        if sql or _module_is(c, last="Repo", local=True) and tainted(src, c, 0):
            found.add("Sobelow.SQL.Query")
    if not controller and any(_module_is(c, last="HTML", local=True) and tainted(src, c, 0) for c in calls("raw")):
        found.add("Sobelow.XSS.Raw")
    if any(_module_is(c, last="Conn", local=True) and tainted(src, c, 2) for c in calls("send_resp")):
        if _content_types_allow_html(src, lo, hi):
            found.add("Sobelow.XSS.SendResp")
    for c in calls(*FILE_FUNCS, *FILE_DOUBLE_FUNCS):
        if not _module_is(c, exact=("File",)):
            continue
        if tainted(src, c, 0) or src.t[c.at].text in FILE_DOUBLE_FUNCS and tainted(src, c, 1):
            found.add("Sobelow.Traversal.FileModule")
    if any(_module_is(c, last="Conn", local=True) and tainted(src, c, 2) for c in calls("send_file")):
        found.add("Sobelow.Traversal.SendFile")
    if any(_module_is(c, exact=("System",)) and tainted(src, c, 0) for c in calls("cmd")):
        found.add("Sobelow.CI.System")
    if any(_module_is(c, exact=(":os",)) and tainted(src, c, 0) for c in calls("cmd")):
        found.add("Sobelow.CI.OS")
    if any(_module_is(c, exact=("String",)) and tainted(src, c, 0) for c in calls("to_atom")):
        found.add("Sobelow.DOS.StringToAtom")
    if any(_module_is(c, exact=(":erlang",)) and tainted(src, c, 0) for c in calls("binary_to_term")):
        found.add("Sobelow.Misc.BinToTerm")
    if any(_module_is(c, exact=("Code",)) and tainted(src, c, 0) for c in calls("eval_string", "eval_file", "eval_quoted")):
        found.add("Sobelow.RCE.CodeModule")
    return found


def pipeline_plugs(src: Source) -> list[tuple[int, list[str]]]:
    """Router ``pipeline :name do ... end`` blocks and the atom plugs directly inside them."""
    out = []
    for k in range(len(src.t)):
        if not src.is_word(k, "pipeline") or not src.statement_start(k):
            continue
        do_at = src.block_do(k)
        if do_at is None:
            continue
        d = src.depth[do_at] + 1
        plugs = []
        for j in range(do_at + 1, src.partner[do_at]):
            if src.depth[j] == d and src.is_word(j, "plug") and src.statement_start(j):
                nxt = src.t[j + 1]
                if nxt.text == "(" and j + 2 < len(src.t):
                    nxt = src.t[j + 2]
                if nxt.kind == "atom":
                    plugs.append(nxt.text[1:])
        out.append((k, plugs))
    return out


def detect_security(code: str) -> set[str]:
    """Sobelow finding names (``labels.SECURITY_LABELS``) for ``code``: a sink whose checked argument
    is not a literal, inside a def/defp body, following each check's ``parse_def``; Config.CSRF for a
    pipeline that fetches the session without ``:protect_from_forgery``. XSS.Raw is not reported in
    controllers (Sobelow looks at their templates instead); the module name stands in for the file name."""
    src = Source(code)
    if not src.balanced:
        return set()
    found: set[str] = set()
    for d in src.definitions:
        if d.word not in ("def", "defp") or d.body is None or d.body[0] > d.body[1]:
            continue
        mod = src.module_of(d.at)
        controller = mod is not None and mod.name.endswith("Controller")
        found |= _function_findings(src, d.body[0], d.body[1], controller)
    for _, plugs in pipeline_plugs(src):
        if "fetch_session" in plugs and "protect_from_forgery" not in plugs:
            found.add("Sobelow.Config.CSRF")
    return found
