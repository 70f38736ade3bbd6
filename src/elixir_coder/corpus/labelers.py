"""Quality and security labels for code texts: the built-in detectors, or the real Credo and Sobelow.

A labeler turns a batch of Elixir texts into ``(quality labels, security labels)`` per text, in the
vocabularies of ``elixir_coder.labels``, or ``None`` for a text it cannot analyse (so it is counted,
never passed off as clean). The real tools start slowly (an escript each), so
``CredoSobelowLabeler`` writes a whole batch into one throwaway mix project and runs each tool
once; findings are mapped back by file. Findings outside our vocabularies are counted by name.
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
from typing import Protocol

from elixir_coder.corpus.checks import Source, detect_quality, detect_security
from elixir_coder.errors import DataError
from elixir_coder.labels import QUALITY_LABELS, SECURITY_LABELS

Labels = tuple[set[str], set[str]]

# Every Sobelow check in ``detect_security`` needs one of these call names (or the `fetch_session`
# plug) in the code; text without any of them is clean, so the detector can be skipped.
_SECURITY_SINKS = re.compile(
    r"\b(?:File|query|raw|send_resp|send_file|cmd|to_atom|binary_to_term|eval_string|eval_file|eval_quoted|fetch_session)\b"
)
INSTALL = {
    "CREDO": ("credo", "mix escript.install hex credo"),
    "SOBELOW": ("sobelow", "mix escript.install hex sobelow"),
}


class Labeler(Protocol):
    """Labels a batch of code texts; ``None`` for a text the labeler cannot analyse."""

    name: str

    def label(self, texts: Sequence[str], stats: Counter | None = None) -> list[Labels | None]: ...


class DetectorLabeler:
    """The built-in text-level detectors of ``corpus/checks.py`` (fast, approximate)."""

    name = "detectors"

    def label(self, texts: Sequence[str], stats: Counter | None = None) -> list[Labels | None]:
        out: list[Labels | None] = []
        for text in texts:
            src = Source(text)  # lexed once, for both detectors
            quality = detect_quality(src)
            security = detect_security(src) if _SECURITY_SINKS.search(text) else set()
            # The detectors also answer "nothing found" for code they cannot read: code that does
            # not lex into a balanced structure, or ends inside an unterminated string, heredoc
            # or sigil. Only then is the answer ambiguous.
            if not quality and not security and (not src.balanced or src.unterminated):
                out.append(None)
            else:
                out.append((quality, security))
        return out


def find_tool(env: str) -> str:
    """The executable for ``env`` (``CREDO``/``SOBELOW``): that variable if set, else PATH."""
    exe, install = INSTALL[env]
    configured = os.environ.get(env)
    if configured:
        if not (os.path.isfile(configured) and os.access(configured, os.X_OK)):
            raise DataError(f"{env}={configured}: not an executable file; point {env} at the {exe} escript ({install})")
        return configured
    found = shutil.which(exe)
    if found is None:
        raise DataError(
            f"data.labeler=credo_sobelow needs {exe}: install it with `{install}` (it lands in ~/.mix/escripts; "
            f"put that on PATH) or set {env}=/path/to/{exe}"
        )
    return found


_MIX_EXS = """defmodule ElixirCoderLabels.MixProject do
  use Mix.Project
  def project, do: [app: :elixir_coder_labels, version: "0.1.0"]
end
"""
# Credo's default configuration plus Design.DuplicatedCode, which our vocabulary names but Credo
# leaves out of its default set.
_CREDO_EXS = """%{configs: [%{name: "default", files: %{included: ["lib/"], excluded: []}, strict: true,
  checks: %{extra: [{Credo.Check.Design.DuplicatedCode, []}]}}]}
"""


class CredoSobelowLabeler:
    """The real Credo (``suggest --strict``) and Sobelow, run once per batch."""

    name = "credo_sobelow"

    def __init__(self, credo: str | None = None, sobelow: str | None = None, timeout: float = 1800.0):
        self.credo = credo or find_tool("CREDO")
        self.sobelow = sobelow or find_tool("SOBELOW")
        self.timeout = timeout

    def label(self, texts: Sequence[str], stats: Counter | None = None) -> list[Labels | None]:
        stats = stats if stats is not None else Counter()
        if not texts:
            return []
        from elixir_coder.corpus.parser import shared_parser

        # Credo skips files it cannot parse without a word; the real parser finds them first.
        parsed = shared_parser().parse_many(texts)
        out: list[Labels | None] = [(set(), set()) if r.ok else None for r in parsed]
        with tempfile.TemporaryDirectory(prefix="elixir-coder-lint-") as tmp:
            root = Path(tmp)
            (root / "lib").mkdir()
            (root / "mix.exs").write_text(_MIX_EXS, encoding="utf-8")
            (root / ".credo.exs").write_text(_CREDO_EXS, encoding="utf-8")
            for i, text in enumerate(texts):
                if out[i] is not None:
                    (root / "lib" / f"unit_{i}.ex").write_text(text, encoding="utf-8")
            credo = self._run([self.credo, "suggest", "--strict", "--format", "json", "--no-color", "--mute-exit-status"], root)
            for issue in credo.get("issues", []):
                self._add(out, issue.get("filename", ""), issue.get("check", ""), 0, QUALITY_LABELS, "credo", stats)
            sobelow = self._run([self.sobelow, "--private", "--format", "json", "--root", "."], root)
            for findings in sobelow.get("findings", {}).values():
                for finding in findings:
                    check = "Sobelow." + str(finding.get("type", "")).split(":", 1)[0]
                    self._add(out, finding.get("file", ""), check, 1, SECURITY_LABELS, "sobelow", stats)
        return out

    def _run(self, argv: list[str], cwd: Path) -> dict:
        """The tool's JSON report; a tool that fails or prints no report raises (never "all clean")."""
        try:
            proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=self.timeout, check=False)
        except OSError as exc:
            raise DataError(f"{argv[0]}: cannot run it ({exc.strerror})") from exc
        except subprocess.TimeoutExpired as exc:
            raise DataError(f"{argv[0]}: no report after {self.timeout:.0f} s on one batch") from exc
        start = proc.stdout.find("{")  # Sobelow may print a notice before its report
        try:
            report = json.loads(proc.stdout[start:]) if start >= 0 else None
        except json.JSONDecodeError:
            report = None
        if not isinstance(report, dict):
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise DataError(f"{argv[0]}: printed no JSON report (exit {proc.returncode}: {tail[0]})")
        return report

    @staticmethod
    def _add(out: list, filename: str, check: str, slot: int, vocab: tuple[str, ...], tool: str, stats: Counter) -> None:
        m = re.search(r"unit_(\d+)\.ex$", filename)
        if m is None or int(m.group(1)) >= len(out) or out[int(m.group(1))] is None:
            stats[f"{tool}_finding_outside_units"] += 1
        elif check not in vocab:
            stats[f"{tool}_finding_outside_vocabulary:{check}"] += 1
        else:
            out[int(m.group(1))][slot].add(check)


LABELERS = {"detectors": DetectorLabeler, "credo_sobelow": CredoSobelowLabeler}


def make_labeler(name: str) -> Labeler:
    """``detectors`` (default) or ``credo_sobelow`` (``data.labeler``)."""
    if name not in LABELERS:
        raise DataError(f"data.labeler={name!r}: unknown labeler; choose one of {', '.join(LABELERS)}")
    return LABELERS[name]()
