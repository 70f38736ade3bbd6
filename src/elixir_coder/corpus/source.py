"""The token structure the detectors and injectors share: a string-, sigil- and comment-aware
lexer for Elixir, matched ``do``/``fn``/``end`` blocks and brackets, definitions and modules.

It never evaluates Elixir and is not a parser: code it cannot balance is reported as such
(``Source.balanced``) and every caller treats it as "nothing to say".
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from functools import cached_property

__all__ = ["Token", "Source", "Definition", "Module", "tokenize", "alias_statements", "attribute_spans", "DEF_WORDS"]

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


# Compared and hashed by value like a frozen dataclass, without a frozen one's __init__ (7x
# slower; the lexer makes a token every few characters of a corpus).
@dataclass(slots=True, unsafe_hash=True)
class Token:
    """One lexeme. ``kind`` is one of ident, alias, kw (keyword key such as ``do:``), atom, num,
    str (strings, charlists, heredocs), sigil, op, punct, nl, comment, other. Never modified."""

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
        self.unterminated = False  # the code ends inside a string, heredoc, sigil or interpolation

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
        self.unterminated = True
        return n, interp

    def _heredoc(self, i: int, quote: str, allow_interp: bool) -> tuple[int, bool]:
        """End offset of a heredoc whose opening triple quote ends at ``i``."""
        code, n = self.code, self.n
        closing = re.compile(r"^[ \t]*" + re.escape(quote * 3), re.M)
        nl = code.find("\n", i)
        if nl < 0:
            self.unterminated = True
            return n, False
        m = closing.search(code, nl + 1)
        self.unterminated |= m is None
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
    return _tokenize(code)[0]


def _tokenize(code: str) -> tuple[list[Token], bool]:
    """The tokens of ``code`` and whether it ends inside an unterminated literal."""
    lexer = _Lexer(code)
    tokens, _ = lexer.lex(0, stop_at_brace=False)
    return tokens, lexer.unterminated


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
        self.all_tokens, self.unterminated = _tokenize(code)
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


def attribute_spans(src: Source) -> list[tuple[int, int]]:
    return [
        (k, src.expr_end(k)) for k, tok in enumerate(src.t)
        if tok.kind == "op" and tok.text == "@" and src.statement_start(k)
    ]
