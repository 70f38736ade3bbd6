"""Training records for every task, mined from one project's real Elixir files.

What each task learns from (``kind`` names the source, and the preparation report counts by it):

- ``code_generation``: every file whole (``file``; prompt empty, never truncated here: the
  pipeline splits long records), and each documented function (``documented_function``: prompt =
  its ``@doc``, ``@spec`` and head up to ``do``; completion = the body and the other clauses).
- ``test_generation``: a module with its ExUnit test file, paired by mix convention
  (``lib/a/b.ex`` <-> ``test/a/b_test.exs``, also under ``apps/*/`` and side-by-side apps), else by
  the test module's name (``A.BTest`` tests ``A.B``) (``test_file``); a ``describe "fun/arity"``
  block with that function (``describe_block``); and a doctest: the function with its ``iex>``
  examples taken out of the ``@doc`` as prompt, the examples as completion (``doctest``).
- ``explanation``: a module without its ``@moduledoc`` as prompt, the moduledoc text as completion
  (``moduledoc``); a function without its ``@doc``, the doc text as completion (``function_doc``).
  ``@moduledoc false`` / ``@doc false`` mark internals the authors chose not to explain: skipped.
- ``quality`` / ``security``: modules (``module``), or, in a module longer than
  ``classify_max_lines``, each of its functions and other multi-line blocks (``function``,
  ``block``), labelled by a ``Labeler``; code with no finding is a negative. A deterministic
  ``classify_fraction`` of them (chosen by a hash of file and line) is labelled: the detectors
  take over 1 CPU second per MB of code, the rest of mining under 0.1, so labelling everything
  would hold preparation under 1 MB/s per core. The units left out are counted.
- ``clarification``: nothing. Code holds no honest source of an ambiguous request with the
  question that resolves it; clarification records come from JSONL only.

Everything looked at and not mined is counted in ``stats`` by reason: ``blank_file``,
``unclosed_block`` (a ``do`` without its ``end`` at the same indentation), ``doc_without_function``
(a ``@doc`` above generated code), ``module_without_moduledoc``,
``moduledoc_false``, ``doc_false``, ``empty_doc``, ``doc_not_literal``, ``public_function_without_doc``,
``documented_function_without_body``, ``test_file_without_module``, ``describe_not_function``,
``describe_function_not_found``, ``classification_unit_too_long``, ``classification_unit_not_sampled``,
``unlabelable_for_classification``, and the labeler's own (findings outside our vocabularies).
Files are read through their ``mix format`` layout (``corpus/layout.py``), never evaluated and
not parsed again.
"""

from __future__ import annotations

import re
import textwrap
import zlib
from collections import Counter
from collections.abc import Collection, Iterator, Mapping

from elixir_coder.corpus.labelers import Labeler, make_labeler
from elixir_coder.corpus.layout import DESCRIBE_RE, Function, Layout, Module, defined_names
from elixir_coder.errors import DataError
from elixir_coder.labels import QUALITY_LABELS, SECURITY_LABELS

# Defaults of mine_project's settings (the preparation config exposes both).
CLASSIFY_MAX_LINES = 200
CLASSIFY_FRACTION = 0.1
_IEX = re.compile(r"^\s*iex(?:\(\d+\))?>")
_ONE_LINE_DO = re.compile(r"(?:,\s*|^\s*)do:")
_HEADING = re.compile(r"^\s*#+\s")
_FUN_ARITY = re.compile(r"^(?:(?P<module>[A-Z][\w]*(?:\.[A-Z]\w*)*)\.)?(?P<name>[a-z_]\w*[?!]?)/(?P<arity>\d+)\b")


def mine_project(
    files: Mapping[str, str],
    *,
    labeler: Labeler | None = None,
    stats: Counter | None = None,
    classify_max_lines: int = CLASSIFY_MAX_LINES,
    classify_fraction: float = CLASSIFY_FRACTION,
    emit: Collection[str] | None = None,
    defines: Mapping[str, Collection[str]] | None = None,
) -> Iterator[dict]:
    """Records of all tasks from one project's ``.ex``/``.exs`` files (relative posix path -> text).
    ``emit``: only the records of these files; the project's other source (not test) files are still
    read as the context a test file is paired with, so a big project can be mined in pieces.
    ``defines``: each file's :func:`~elixir_coder.corpus.layout.defined_names`, when known already
    (then ``files`` may read its texts lazily: only the files mined or paired with a test are read)."""
    if not 0.0 <= classify_fraction <= 1.0:
        raise DataError(f"classify_fraction={classify_fraction}: must be between 0 and 1")
    if classify_max_lines < 1:
        raise DataError(f"classify_max_lines={classify_max_lines}: must be at least 1")
    stats = stats if stats is not None else Counter()
    labeler = labeler if labeler is not None else make_labeler("detectors")
    layouts = _Layouts(files)
    mined = []
    for path in sorted(files):
        if emit is None or path in emit:
            if files[path].strip():
                mined.append(path)
            else:
                stats["blank_file"] += 1
    modules = _Modules(files, layouts, defines)
    units: list[tuple[str, str, str]] = []  # (path, kind, text) to classify
    for path in mined:
        lay = layouts[path]
        stats["unclosed_block"] += lay.unclosed
        stats["doc_without_function"] += lay.unattached_docs
        yield _gen("code_generation", "", files[path], path, "file")
        for mod in _walk(lay.modules):
            yield from _module_records(path, lay, mod, stats)
        for fun in lay.loose.functions:
            yield from _function_records(path, lay, fun, stats)
        if _is_test(path):
            yield from _test_records(path, lay, files, layouts, modules, stats)
        units.extend(_units(path, lay, classify_max_lines, classify_fraction, stats))
    yield from _classify(units, labeler, stats)


class _Layouts(dict):
    """path -> the file's Layout, built on first use: a chunk of a big project lays out only its
    own files and the few other files its tests are paired with."""

    def __init__(self, files: Mapping[str, str]):
        super().__init__()
        self.files = files

    def __missing__(self, path: str) -> Layout:
        lay = self[path] = Layout(self.files[path])
        return lay


class _Modules:
    """Module name -> (path, module) over the project's non-test files, the last definition in
    path order winning. A file is laid out for a name only when one of its ``defmodule`` /
    ``defprotocol`` / ``defimpl`` lines ends the name (:func:`defined_names`), so a chunk of a
    big project lays out the modules its tests name, not the whole project."""

    def __init__(self, files: Mapping[str, str], layouts: _Layouts, defines: Mapping[str, Collection[str]] | None = None):
        self.files, self.layouts = files, layouts
        self.paths = [p for p in sorted(files) if not _is_test(p) and (defines is not None or files[p].strip())]
        self.found: dict[str, tuple[str, Module] | None] = {}
        self._defines = dict(defines or {})  # path -> defined_names(text)

    def _segments(self, path: str) -> Collection[str]:
        if path not in self._defines:
            self._defines[path] = defined_names(self.files[path])
        return self._defines[path]

    def get(self, name: str | None) -> tuple[str, Module] | None:
        if name is None:
            return None
        if name not in self.found:
            last, hit = name.rsplit(".", 1)[-1], None
            for path in self.paths:  # a substring search first, unless the names are known: definition lines only of files holding it
                if (path in self._defines or last in self.files[path]) and last in self._segments(path):
                    for mod in _walk(self.layouts[path].modules):
                        if mod.name == name:
                            hit = (path, mod)
            self.found[name] = hit
        return self.found[name]


def _gen(task: str, prompt: str, completion: str, source: str, kind: str) -> dict:
    return {"task": task, "prompt": prompt, "completion": completion, "source": source, "kind": kind}


def _is_test(path: str) -> bool:
    return path.endswith("_test.exs")


def _walk(mods: list[Module]) -> Iterator[Module]:
    for mod in mods:
        yield mod
        yield from _walk(mod.children)


def _module_records(path: str, lay: Layout, mod: Module, stats: Counter) -> Iterator[dict]:
    doc = mod.moduledoc
    if doc is None:
        stats["module_without_moduledoc"] += 1
    elif doc.text is None:
        stats[doc.reason] += 1
    else:
        skip = set(range(doc.start, doc.end + 1))
        yield _gen("explanation", lay.text(mod.start, mod.end, skip), doc.text + "\n", path, "moduledoc")
    for fun in mod.functions:
        yield from _function_records(path, lay, fun, stats)


def _function_records(path: str, lay: Layout, fun: Function, stats: Counter) -> Iterator[dict]:
    doc = fun.doc
    if doc is None:
        if fun.public:
            stats["public_function_without_doc"] += 1
        return
    if doc.text is None:
        stats[doc.reason] += 1
        return
    split = _body_split(lay, fun)
    if split is None:
        stats["documented_function_without_body"] += 1  # protocol functions, bodiless heads
    else:
        yield _gen("code_generation", split[0], split[1], path, "documented_function")
    doc_lines = set(range(doc.start, doc.end + 1))
    yield _gen("explanation", lay.text(fun.start, fun.end, doc_lines), doc.text + "\n", path, "function_doc")
    examples, removed = _doctests(lay, doc.body_start, doc.end)
    if examples:
        prompt = re.sub(r"\n{3,}", "\n\n", lay.text(fun.start, fun.end, removed))
        yield _gen("test_generation", prompt, "\n\n".join(examples) + "\n", path, "doctest")


def _body_split(lay: Layout, fun: Function) -> tuple[str, str] | None:
    """(doc, attributes and head up to ``do``, the rest) of a function: the first clause with a
    ``do`` block, else the first ``, do:`` one-liner; None when no clause has a body."""
    block = next((do for _, _, do in fun.clauses if do is not None), None)
    if block is not None:
        return lay.text(fun.start, block), lay.text(block + 1, fun.end)
    for start, end, _ in fun.clauses:
        for k in range(start, end + 1):
            m = _ONE_LINE_DO.search(lay.lines[k])
            if m:
                head = lay.text(fun.start, k - 1) if k > fun.start else ""
                rest = lay.lines[k][m.end() :] + "\n" + (lay.text(k + 1, fun.end) if k < fun.end else "")
                return head + lay.lines[k][: m.end()], rest
    return None


def _doctests(lay: Layout, lo: int, hi: int) -> tuple[list[str], set[int]]:
    """``iex>`` example blocks (runs of non-blank lines starting with a prompt) inside a heredoc doc
    spanning lines ``lo..hi-1``, dedented, and the lines they occupy."""
    examples, removed = [], set()
    k = lo
    while k < hi:
        if _IEX.match(lay.lines[k]) and (k == lo or not lay.lines[k - 1].strip()):
            j = k
            while j < hi and lay.lines[j].strip():
                j += 1
            examples.append(textwrap.dedent("\n".join(lay.lines[k:j])))
            removed.update(range(k, j))
            k = j
        k += 1
    # A heading left with nothing under it ("## Examples") goes with its examples.
    kept = [k for k in range(lo, hi + 1) if k not in removed and lay.lines[k].strip()]
    for a, b in zip(kept, kept[1:]):
        if _HEADING.match(lay.lines[a]) and (b == hi or _HEADING.match(lay.lines[b])) and any(k in removed for k in range(a + 1, b)):
            removed.add(a)
    return examples, removed


def _lib_for_test(path: str, files: Mapping[str, str]) -> str | None:
    """The mix-convention source of a test file: ``<app>/test/<dirs>/<name>_test.exs`` ->
    ``<app>/lib/<dirs>/<name>.ex``, dropping leading test folders (``test/elixir/string_test.exs``
    tests ``lib/string.ex`` in the Elixir repository)."""
    parts = path.split("/")
    if "test" not in parts[:-1]:
        return None
    t = len(parts) - 2 - parts[-2::-1].index("test")
    app, dirs, name = parts[:t], parts[t + 1 : -1], parts[-1][: -len("_test.exs")]
    for k in range(len(dirs) + 1):
        candidate = "/".join([*app, "lib", *dirs[k:], f"{name}.ex"])
        if candidate in files:
            return candidate
    return None


def _test_records(
    path: str, lay: Layout, files: Mapping[str, str], layouts: _Layouts, modules: _Modules,
    stats: Counter,
) -> Iterator[dict]:
    """The test file with its module, and each ``describe "fun/arity"`` block with its function."""
    lib = _lib_for_test(path, files)
    tested = [modules.get(mod.name[: -len("Test")]) for mod in _walk(lay.modules) if mod.name.endswith("Test")]
    targets = [found for found in tested if found is not None]
    if lib is None:
        lib = targets[0][0] if targets else None
    if lib is None:
        stats["test_file_without_module"] += 1
    else:
        yield _gen("test_generation", files[lib], files[path], path, "test_file")
    if lib is not None:
        targets += [(lib, mod) for mod in layouts[lib].modules if (lib, mod) not in targets]
    for test_mod in _walk(lay.modules):
        for start, end, first in test_mod.blocks:
            title = DESCRIBE_RE.match(first)
            if title is None:
                continue
            want = _FUN_ARITY.match(title.group("title"))
            if want is None:
                stats["describe_not_function"] += 1
                continue
            named = modules.get(want.group("module"))
            where = [named] if named is not None else targets
            function = _find_function(where, want.group("name"), int(want.group("arity")), layouts)
            if function is None:
                stats["describe_function_not_found"] += 1
                continue
            yield _gen("test_generation", function, lay.text(start, end), path, "describe_block")


def _find_function(where: list[tuple[str, Module]], name: str, arity: int, layouts: dict[str, Layout]) -> str | None:
    """Source of the first function ``name/arity`` in the candidate modules."""
    for src_path, mod in where:
        for fun in mod.functions:
            if fun.name == name and arity in layouts[src_path].arities(fun):
                return layouts[src_path].text(fun.start, fun.end)
    return None


def _units(path: str, lay: Layout, max_lines: int, fraction: float, stats: Counter) -> Iterator[tuple[str, str, str]]:
    """Classification texts of one file: short modules whole, long ones per function/block."""

    def split(mod: Module) -> Iterator[tuple[int, int, str]]:
        if mod.end - mod.start < max_lines:
            yield mod.start, mod.end, "module"
            return
        for fun in mod.functions:
            yield fun.start, fun.end, "function"
        for start, end, _ in mod.blocks:
            yield start, end, "block"
        for child in mod.children:
            yield from split(child)

    if lay.modules:
        spans = [span for mod in lay.modules for span in split(mod)]
    elif len(lay.lines) <= max_lines:
        spans = [(0, len(lay.lines) - 1, "file")]
    else:
        spans = [(f.start, f.end, "function") for f in lay.loose.functions] + [(s, e, "block") for s, e, _ in lay.loose.blocks]
    for start, end, kind in spans:
        if end - start >= max_lines:
            stats["classification_unit_too_long"] += 1
        elif zlib.crc32(f"{path}:{start}".encode()) >= fraction * 2**32:
            stats["classification_unit_not_sampled"] += 1
        else:
            yield path, kind, lay.text(start, end)


def _classify(units: list[tuple[str, str, str]], labeler: Labeler, stats: Counter) -> Iterator[dict]:
    labels = labeler.label([text for _, _, text in units], stats)
    for (path, kind, text), found in zip(units, labels):
        if found is None:
            stats["unlabelable_for_classification"] += 1
            continue
        quality, security = found
        yield {"task": "quality", "text": text, "labels": [x for x in QUALITY_LABELS if x in quality], "source": path, "kind": kind}
        yield {"task": "security", "text": text, "labels": [x for x in SECURITY_LABELS if x in security], "source": path, "kind": kind}
