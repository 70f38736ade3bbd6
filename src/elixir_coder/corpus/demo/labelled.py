"""Labelled quality and security examples for the demo corpus.

Each chosen module appears clean (no labels) and with one injected Credo violation or Sobelow
finding; the labels are what the independent detectors report on the changed code, and the
changed code is checked with the Elixir parser (``training.contrastive.inject``).
"""

from __future__ import annotations

import random

from elixir_coder.corpus.checks import detect_quality, detect_security
from elixir_coder.corpus.demo.modules import DemoModule
from elixir_coder.labels import QUALITY_LABELS, SECURITY_LABELS


def labelled_records(modules: list[DemoModule], seed: int = 0, share: float = 0.5) -> list[dict]:
    """``quality`` and ``security`` records for about ``share`` of the modules."""
    from elixir_coder.training.contrastive import inject

    rng = random.Random(f"{seed}:labelled")
    out = []
    for module in modules:
        if rng.random() >= share:
            continue
        for task, labels, detect in (("quality", QUALITY_LABELS, detect_quality), ("security", SECURITY_LABELS, detect_security)):
            order = list(labels)
            rng.shuffle(order)
            for label in order:  # the first rule this module lends itself to
                bad = inject(module.source, label, random.Random(f"{seed}:{module.path}:{label}"))
                if bad is not None:
                    out.append({"task": task, "text": module.source, "labels": [], "source": module.path})
                    out.append({"task": task, "text": bad, "labels": sorted(detect(bad)), "source": module.path})
                    break
    return out
