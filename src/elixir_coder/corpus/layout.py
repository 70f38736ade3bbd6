"""Modules, functions, docs and test blocks of an Elixir file, read from its ``mix format`` layout.

Mining runs on every byte of a corpus, so it cannot afford a lexer or a parser per file (the
preparation pipeline already parses each file once). Formatted Elixir states its structure in
its indentation: a ``do`` block closes with ``end`` at the indentation of the line that opened it,
and everything inside is indented deeper. This module reads that layout line by line, skipping
heredoc bodies and comments; it never evaluates anything. A block whose ``end`` is missing
(unformatted or broken code) is reported as ``unclosed`` so callers count it instead of guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DEF_RE = re.compile(
    r"^[ \t]*(?P<word>defp?|defmacrop?|defguardp?|defdelegate|defn|defnp)\s+(?P<name>[a-z_][\w]*[?!]?)(?P<rest>.*)$"
)
ALIAS = r"[A-Z]\w*(?:\.[A-Z]\w*)*"
# defmodule, defprotocol and defimpl (named after protocol and type, as Elixir names it).
_MODULE_HEAD = rf"^[ \t]*def(?:module|protocol|impl)\s+(?P<name>{ALIAS})(?:\s*,\s*for:\s*(?P<for>{ALIAS}))?"
MODULE_RE = re.compile(_MODULE_HEAD + r"\s+do\s*(?:#.*)?$")
# Any definition line, formatted or not (a looser match than MODULE_RE): what a file may define.
_DEFINES = re.compile("(?m)" + _MODULE_HEAD)
BLOCK_OPEN_RE = re.compile(r"(?:^|[\s)\]}])do\s*(?:#.*)?$")
DOC_HEREDOC_RE = re.compile(r"""^[ \t]*@(?P<attr>moduledoc|doc)\s+(?:~[sS])?(?:\"\"\"|''')\s*$""")
DOC_LINE_RE = re.compile(r'^[ \t]*@(?P<attr>moduledoc|doc)\s+(?P<sigil>~[sS])?"(?P<body>(?:[^"\\]|\\.)*)"\s*$')
DOC_FALSE_RE = re.compile(r"^[ \t]*@(?P<attr>moduledoc|doc)\s+false\s*$")
DOC_META_RE = re.compile(r"^[ \t]*@doc\s+[a-z_]+:")
ATTR_RE = re.compile(r"^[ \t]*@(?P<attr>[a-z_]\w*)")
DESCRIBE_RE = re.compile(r'^[ \t]*describe\s+"(?P<title>[^"#]*)"')
# Attributes that belong to the function defined below them.
FUNCTION_ATTRS = frozenset({"doc", "spec", "impl", "deprecated"})
_CONTINUE_WORDS = ("else", "rescue", "catch", "after")
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


@dataclass(slots=True)
class Doc:
    """A ``@doc``/``@moduledoc``: its line span and text (``None`` when ``false``, not a literal or empty)."""

    start: int
    end: int
    text: str | None
    reason: str | None = None  # why there is no text: doc_false, moduledoc_false, doc_not_literal, empty_doc
    body_start: int = 0  # first line of a heredoc body (text line k is file line body_start + k)


@dataclass(slots=True)
class Function:
    """Consecutive clauses of one name, with the @doc/@spec/@impl lines above them."""

    name: str
    public: bool
    start: int
    end: int
    clauses: list[tuple[int, int, int | None]] = field(default_factory=list)  # (start, end, line holding `do`)
    doc: Doc | None = None


@dataclass(slots=True)
class Module:
    name: str
    start: int
    end: int
    moduledoc: Doc | None = None
    functions: list[Function] = field(default_factory=list)
    blocks: list[tuple[int, int, str]] = field(default_factory=list)  # other multi-line statements: (start, end, first line)
    children: list[Module] = field(default_factory=list)


def defined_names(text: str) -> tuple[str, ...]:
    """The last segments of the module names ``text``'s definition lines give (``A.B`` -> ``B``;
    a ``defimpl``'s type), sorted: a cheap superset of the modules a file may define, found
    with one regex pass, so a module can be looked up without laying out every file."""
    return tuple(sorted({(m["for"] or m["name"]).rsplit(".", 1)[-1] for m in _DEFINES.finditer(text)}))


class Layout:
    """Line-level structure of one file: ``modules`` (top level, children nested) and ``loose``
    (functions and blocks outside any module, as in scripts)."""

    def __init__(self, text: str):
        self.lines = lines = text.split("\n")
        n = len(lines)
        stripped = [line.lstrip(" \t") for line in lines]
        # None: blank, comment, or inside a heredoc (their indentation says nothing about blocks).
        self.indent: list[int | None] = [
            len(line) - len(s) if s and s[0] != "#" else None for line, s in zip(lines, stripped)
        ]
        self.ext = list(range(n))  # last line of the heredoc opened on a line
        self.unclosed = 0  # blocks opened with `do` whose `end` was not found
        self.unattached_docs = 0  # @doc not followed by a def (e.g. defs generated in a `for`)
        quoted = [i for i, line in enumerate(lines) if ('"""' in line or "'''" in line) and (line.count('"""') + line.count("'''")) % 2]
        for opener, closer in zip(quoted[::2], quoted[1::2]):
            self.ext[opener] = closer
            self.indent[opener + 1 : closer + 1] = [None] * (closer - opener)
        if len(quoted) % 2:  # an unterminated heredoc runs to the end of the file
            self.ext[quoted[-1]] = n - 1
            self.indent[quoted[-1] + 1 :] = [None] * (n - 1 - quoted[-1])
        self.modules: list[Module] = []
        root = Module("", -1, n)
        self._statements(root, 0, n - 1)
        self.modules = root.children
        self.loose = root

    def text(self, start: int, end: int, skip: frozenset[int] | set[int] = frozenset()) -> str:
        """Lines ``start..end`` (inclusive) as text ending in a newline, without the ``skip`` lines."""
        return "\n".join(self.lines[k] for k in range(start, end + 1) if k not in skip) + "\n"

    def block_end(self, i: int) -> int:
        """Last line of the statement starting on line ``i``: deeper-indented lines, heredocs, and a
        closing ``end`` (or ``else``/``rescue``/... section) at the same indentation."""
        base = self.indent[i]
        last = self.ext[i]
        j = last + 1
        n = len(self.lines)
        while j < n:
            d = self.indent[j]
            if d is None:
                j += 1
                continue
            if d > base:
                last = self.ext[j]
                j = last + 1
                continue
            if d == base:
                s = self.lines[j].lstrip(" \t")
                word = re.match(r"[a-z_]+", s)
                w = word.group(0) if word else ""
                if w == "end":
                    return self.ext[j]
                if w in _CONTINUE_WORDS or s.startswith(("|>", ")", "]", "}", ">>")):
                    last = self.ext[j]
                    j = last + 1
                    continue
            break
        return last

    def arities(self, fun: Function) -> set[int]:
        """Arities the clauses of ``fun`` accept (computed on demand: only describe blocks need them)."""
        out: set[int] = set()
        for start, end, do in fun.clauses:
            head = self.text(start, do if do is not None else end)
            out |= arities(head[head.index(fun.name, head.index("def")) + len(fun.name) :])
        return out

    def do_line(self, start: int, end: int) -> int | None:
        """The line ending in ``do`` that opens the block of the statement ``start..end``, if it has one
        and the block is closed by ``end``."""
        for k in range(start, end + 1):
            if self.indent[k] is not None and BLOCK_OPEN_RE.search(self.lines[k]):
                closes = self.lines[end].lstrip(" \t").startswith("end") and self.indent[end] == self.indent[start]
                if not closes:
                    self.unclosed += 1
                    return None
                return k
            if self.ext[k] != k:  # a heredoc argument before any `do`: not a block head
                return None
        return None

    def _statements(self, mod: Module, lo: int, hi: int) -> None:
        """Read the statements directly inside ``lo..hi`` into ``mod``."""
        body = next((self.indent[k] for k in range(lo, hi + 1) if self.indent[k] is not None), None)
        pending: list[tuple[int, int, str]] = []  # (start, end, attr) attached to the next def
        current: Function | None = None
        k = lo
        while k <= hi:
            d = self.indent[k]
            if d is None or d != body:
                k = self.ext[k] + 1
                continue
            end = min(self.block_end(k), hi)
            line = self.lines[k]
            attr = ATTR_RE.match(line)
            dm = DEF_RE.match(line)
            mm = MODULE_RE.match(line)
            if attr and attr.group("attr") == "moduledoc" and mod.moduledoc is None:
                mod.moduledoc = self._doc(k, end)
                pending, current = [], None
            elif attr and attr.group("attr") in FUNCTION_ATTRS:
                pending.append((k, end, attr.group("attr")))
            elif dm:
                name = dm.group("name")
                public = dm.group("word") in ("def", "defmacro", "defguard", "defdelegate", "defn")
                do = self.do_line(k, end)
                if current is None or current.name != name or current.public != public or pending and any(
                    a == "doc" for _, _, a in pending
                ):
                    current = Function(name, public, pending[0][0] if pending else k, end)
                    docs = [(s, e) for s, e, a in pending if a == "doc" and not DOC_META_RE.match(self.lines[s])]
                    if docs:
                        current.doc = self._doc(*docs[-1])
                    mod.functions.append(current)
                current.end = end
                current.clauses.append((k, end, do))
                pending = []
            elif mm:
                name = ".".join(x for x in (mod.name, mm.group("name"), mm.group("for")) if x)
                child = Module(name, k, end)
                if self.do_line(k, end) is not None:
                    self._statements(child, k + 1, end - 1)
                    mod.children.append(child)
                pending, current = [], None
            else:
                if end > k:
                    mod.blocks.append((k, end, line.strip()))
                self.unattached_docs += any(a == "doc" for _, _, a in pending)
                pending, current = [], None
            k = end + 1
        self.unattached_docs += any(a == "doc" for _, _, a in pending)

    def _doc(self, start: int, end: int) -> Doc:
        line = self.lines[start]
        if m := DOC_FALSE_RE.match(line):
            return Doc(start, end, None, f"{m.group('attr')}_false")
        if DOC_HEREDOC_RE.match(line) and self.ext[start] > start:
            close = self.ext[start]
            margin = len(self.lines[close]) - len(self.lines[close].lstrip(" \t"))
            body = [ln[margin:] if ln[:margin].isspace() else ln.lstrip(" \t") for ln in self.lines[start + 1 : close]]
            text = "\n".join(body).strip("\n")
            return Doc(start, end, text or None, None if text.strip() else "empty_doc", start + 1)
        if m := DOC_LINE_RE.match(line):
            body = m.group("body")
            if not m.group("sigil"):
                body = re.sub(r"\\(.)", lambda e: _ESCAPES.get(e.group(1), e.group(0)), body)
            return Doc(start, end, body or None, None if body.strip() else "empty_doc", start)
        return Doc(start, end, None, "doc_not_literal")


def arities(head: str) -> set[int]:
    """Arities a def head accepts: top-level arguments inside its parentheses, each ``\\\\``
    default adding one more (``def f(a, b \\\\ 1)`` is f/1 and f/2)."""
    s = head.lstrip(" ")
    if not s.startswith("("):
        return {0}
    depth, args, defaults, seen, i, n = 0, 0, 0, False, 0, len(s)
    while i < n:
        c = s[i]
        if c in "\"'":
            j = i + 1
            while j < n and s[j] != c:
                j += 2 if s[j] == "\\" else 1
            i = j + 1
            seen = True
            continue
        if c == "?" and i + 1 < n and not (i and (s[i - 1].isalnum() or s[i - 1] == "_")):  # ?( or ?, literals
            seen = True
            i += 2
            continue
        if s.startswith("<<", i) or s.startswith(">>", i) and depth > 1:  # binaries nest like brackets
            depth += 1 if c == "<" else -1
            seen = True
            i += 2
            continue
        if c in "([{":
            depth += 1
            if depth == 1:
                i += 1
                continue
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                break
        elif depth == 1 and c == ",":
            args += 1
            seen = False
            i += 1
            continue
        elif depth == 1 and s.startswith("\\\\", i):
            defaults += 1
            i += 2
            continue
        if not c.isspace():
            seen = True
        i += 1
    total = args + (1 if seen else 0)
    return set(range(total - defaults, total + 1))
