"""Text-level detectors for the Credo checks and Sobelow findings named in ``labels.py``.

The detectors never evaluate Elixir: they run the lexer of ``corpus.source`` and apply each rule
as the real tool states it with its shipped default configuration. ``detect_quality(code)``
returns Credo check names, ``detect_security(code)`` Sobelow finding names; both return an
empty set for code they cannot lex into a balanced structure. The rule families live in
``corpus.detectors.credo`` and ``corpus.detectors.sobelow``; this module is their front door.
"""

from __future__ import annotations

from elixir_coder.corpus.detectors.credo import QUALITY_RULES, complexity, detect_quality, max_nesting
from elixir_coder.corpus.detectors.sobelow import detect_security
from elixir_coder.corpus.source import Source, Token, tokenize

__all__ = ["Token", "Source", "tokenize", "detect_quality", "detect_security", "max_nesting", "complexity", "QUALITY_RULES"]
