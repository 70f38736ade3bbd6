"""Labelled quality and security examples for the demo corpus.

Each chosen module appears clean (no labels) and with one injected Credo violation or Sobelow
finding (for Sobelow, the clean side is the module's secure twin: the same site in its safe
form); the labels are what the independent detectors report on the changed code, and both sides
are checked with the Elixir parser (``corpus.pairs.inject_pair``).
"""

from __future__ import annotations

import random

from elixir_coder.corpus.checks import detect_quality, detect_security
from elixir_coder.corpus.demo.modules import DemoModule
from elixir_coder.labels import QUALITY_LABELS, SECURITY_LABELS


def labelled_records(modules: list[DemoModule], seed: int = 0, share: float = 0.5) -> list[dict]:
    """``quality`` and ``security`` records for about ``share`` of the modules."""
    from elixir_coder.corpus.pairs import inject_pair

    rng = random.Random(f"{seed}:labelled")
    out = []
    for module in modules:
        if rng.random() >= share:
            continue
        for task, labels, detect in (("quality", QUALITY_LABELS, detect_quality), ("security", SECURITY_LABELS, detect_security)):
            order = list(labels)
            rng.shuffle(order)
            for label in order:  # the first rule this module lends itself to
                got = inject_pair(module.source, label, random.Random(f"{seed}:{module.path}:{label}"))
                if got is not None:
                    clean, bad = got
                    out.append({"task": task, "text": clean, "labels": sorted(detect(clean)), "source": module.path})
                    out.append({"task": task, "text": bad, "labels": sorted(detect(bad)), "source": module.path})
                    break
    return out
