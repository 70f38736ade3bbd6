"""The real Credo and Sobelow as judges of generated code.

Each tool is started once per batch: every snippet is written as ``lib/f<i>.ex`` of a temporary
mix project, the tool runs over the folder, and its JSON findings are mapped back by file name
(the escripts cost about a second to start, so one run per snippet would dominate). Code is only
read by the tools, never compiled or run.

Credo runs once with its shipped default configuration over all snippets (the Consistency
checks then compare each snippet with the batch, as they compare a file with its project), and
then with ``Design.DuplicatedCode`` alone over the snippets asked for, in rounds that hold at most
one snippet of each ``group`` (the variants of one anchor, whose shared code would otherwise
count as duplicated) and no two snippets sharing lines; a DuplicatedCode finding counts only when
the copy it names is in the same file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from elixir_coder.corpus.credo_defaults import CREDO_CONFIG, CREDO_DUPLICATES_CONFIG
from elixir_coder.errors import ElixirCoderError

__all__ = ["ToolMissing", "find_tool", "Judge"]

_INSTALL = {
    "credo": "mix escript.install hex credo",
    "sobelow": "mix escript.install hex sobelow",
}
_MIX_EXS = """\
defmodule Judged.MixProject do
  use Mix.Project
  def project, do: [app: :judged, version: "0.1.0"]
end
"""
_DUPLICATE = "Credo.Check.Design.DuplicatedCode"
_FILE_RE = re.compile(r"(lib/f\d+\.ex):\d+")


class ToolMissing(ElixirCoderError):
    """A real linter was asked for and is not installed."""


def find_tool(name: str, configured: str | None = None) -> str | None:
    """Path of ``credo``/``sobelow``: the configured path, else ``$CREDO``/``$SOBELOW``, else PATH."""
    for candidate in (configured, os.environ.get(name.upper())):
        if candidate:
            path = Path(candidate).expanduser()
            return str(path.resolve()) if path.is_file() else None
    return shutil.which(name)


def require_tool(name: str, configured: str | None = None, key: str = "") -> str:
    found = find_tool(name, configured)
    if found is None:
        where = f"{key}=<path>, " if key else ""
        raise ToolMissing(
            f"{name} not found (looked at {where}${name.upper()} and PATH); install it with "
            f"`{_INSTALL[name]}` or point ${name.upper()} at the escript"
        )
    return found


def _run(argv: list[str], cwd: Path, tool: str, timeout: float) -> dict:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    out = done.stdout
    start = out.find("{")
    try:
        return json.loads(out[start:]) if start >= 0 else {}
    except json.JSONDecodeError as exc:
        tail = (done.stderr or out).strip().splitlines()[-3:]
        raise ElixirCoderError(f"{tool} ({argv[0]}) gave no JSON report (exit {done.returncode}): {' | '.join(tail)}") from exc


def _project(codes: dict[int, str], root: Path, credo_config: str = CREDO_CONFIG) -> None:
    (root / "lib").mkdir(parents=True)
    (root / "mix.exs").write_text(_MIX_EXS, encoding="utf-8")
    (root / ".credo.exs").write_text(credo_config, encoding="utf-8")
    for i, code in codes.items():
        (root / "lib" / f"f{i}.ex").write_text(code, encoding="utf-8")


def _index(filename: str) -> int | None:
    found = re.fullmatch(r"(?:\./)?lib/f(\d+)\.ex", filename)
    return int(found.group(1)) if found else None


def _shingles(code: str, width: int = 3) -> set[tuple[str, ...]]:
    """Runs of ``width`` non-blank lines (stripped): snippets sharing one may share a subtree as
    large as a copied function, and Credo would then report the copy across files (naming the two
    files) instead of the copy inside one, so they go to different DuplicatedCode rounds."""
    lines = [line.strip() for line in code.splitlines() if line.strip() not in ("", "end")]
    return {tuple(lines[i : i + width]) for i in range(len(lines) - width + 1)}


class Judge:
    """Findings of the real tools for many snippets: ``credo(codes, groups)`` and ``sobelow(codes)``
    return one ``Counter`` of check names per snippet (Credo check modules as Credo names them,
    Sobelow findings as ``Sobelow.<type>``)."""

    def __init__(self, credo: str | None = None, sobelow: str | None = None, timeout: float = 1800.0):
        self.credo_path, self.sobelow_path, self.timeout = credo, sobelow, timeout

    @classmethod
    def find(cls, credo: str | None = None, sobelow: str | None = None, required: bool = False) -> Judge | None:
        """Both tools (configured path, env or PATH), or None when either is missing and not ``required``."""
        if required:
            return cls(require_tool("credo", credo, "contrastive.credo"), require_tool("sobelow", sobelow, "contrastive.sobelow"))
        paths = find_tool("credo", credo), find_tool("sobelow", sobelow)
        return cls(*paths) if all(paths) else None

    def _credo_run(self, batch: dict[int, str], config: str, out: list[Counter]) -> None:
        with tempfile.TemporaryDirectory(prefix="credo-") as tmp:
            root = Path(tmp)
            _project(batch, root, config)
            argv = [self.credo_path, "suggest", "--strict", "--format", "json", "--no-color", "--mute-exit-status"]
            report = _run(argv, root, "credo", self.timeout)
        for issue in report.get("issues", []):
            i = _index(issue.get("filename", ""))
            if i is None or i not in batch:
                continue
            if issue["check"] == _DUPLICATE and f"lib/f{i}.ex" not in _FILE_RE.findall(issue.get("message", "")):
                continue  # a copy in another snippet: not this file's finding
            out[i][issue["check"]] += 1

    def credo(self, codes: Sequence[str], groups: Sequence[object] | None = None,
              duplicates: Sequence[bool] | None = None) -> list[Counter]:
        """Credo findings per snippet; DuplicatedCode only for the snippets ``duplicates`` marks
        (all by default), each round holding at most one snippet per group and no two that share
        code (:func:`_shingles`)."""
        out = [Counter() for _ in codes]
        if not codes:
            return out
        self._credo_run(dict(enumerate(codes)), CREDO_CONFIG, out)
        groups = list(groups) if groups is not None else list(range(len(codes)))
        wanted = list(duplicates) if duplicates is not None else [True] * len(codes)
        rounds: list[tuple[dict[int, str], set, set]] = []  # (snippets, their groups, their shingles)
        for i, (code, group) in enumerate(zip(codes, groups)):
            if not wanted[i]:
                continue
            shingles = _shingles(code)
            free = next((r for r in rounds if group not in r[1] and not shingles & r[2]), None)
            if free is None:
                free = ({}, set(), set())
                rounds.append(free)
            free[0][i] = code
            free[1].add(group)
            free[2].update(shingles)
        for batch, _, _ in rounds:
            self._credo_run(batch, CREDO_DUPLICATES_CONFIG, out)
        return out

    def sobelow(self, codes: Sequence[str]) -> list[Counter]:
        out = [Counter() for _ in codes]
        if not codes:
            return out
        with tempfile.TemporaryDirectory(prefix="sobelow-") as tmp:
            root = Path(tmp)
            _project(dict(enumerate(codes)), root)
            report = _run([self.sobelow_path, "--private", "--format", "json", "--root", "."], root, "sobelow", self.timeout)
        for findings in report.get("findings", {}).values():
            for finding in findings:
                i = _index(finding.get("file", ""))
                if i is not None and i < len(codes):
                    out[i]["Sobelow." + finding["type"].split(":", 1)[0].strip()] += 1
        return out
