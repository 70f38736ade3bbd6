"""Metrics (spec 4.7.1): per-task losses and accuracies, and throughput in real tokens.

Everything returned by ``compute`` stays a device tensor (no ``.item()``), and ``Throughput``
times windows of steps with the host clock, so measuring never forces a device sync per step.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import torch
from torchmetrics.classification import MultilabelStatScores

from elixir_coder.labels import CLASSIFICATION_TASKS


def compute(
    outputs: Mapping[str, tuple[torch.Tensor, torch.Tensor]], losses: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Spec 4.7.1.1: ``{task}/loss``, and ``{task}/token_acc`` (generation: argmax == next token)
    or ``{task}/accuracy`` (classification: share of labels right at a 0.5 threshold)."""
    out = {}
    for task, (preds, targets) in outputs.items():
        out[f"{task}/loss"] = losses[task].detach()
        if targets.numel() == 0:
            continue
        preds = preds.detach()
        if task in CLASSIFICATION_TASKS:
            out[f"{task}/accuracy"] = ((preds > 0) == (targets > 0.5)).float().mean()
        else:
            out[f"{task}/token_acc"] = (preds.argmax(-1) == targets).float().mean()
    return out


class MacroF1(MultilabelStatScores):
    """Macro F1 over the labels that occur in the predictions or the targets.

    Our own reduction because torchmetrics' multilabel macro average (1.9) keeps every label:
    with ``zero_division=1`` a label absent from both predictions and targets scores a perfect
    1.0 (an untrained model read 1.0), with ``zero_division=0`` it scores 0 (a perfect model
    reads below 1). Here such labels are left out of the mean; a label predicted but never
    true, or true but never predicted, scores 0. Nothing predicted and nothing true at all: 0.
    """

    def __init__(self, num_labels: int, threshold: float = 0.5, **kwargs):
        super().__init__(num_labels, threshold=threshold, average=None, **kwargs)

    def compute(self) -> torch.Tensor:
        tp, fp, _, fn = self._final_state()
        tp, fp, fn = tp.float(), fp.float(), fn.float()
        seen = (tp + fp + fn) > 0
        f1 = 2 * tp / (2 * tp + fp + fn).clamp(min=1)
        return f1[seen].mean() if bool(seen.any()) else f1.new_zeros(())


class Throughput:
    """Real tokens/s and samples/s over the window since the last ``compute``.

    Counts come from the host (the batch's sample table, before the copy to the device); the
    window's wall time includes every device step inside it, so it is exact over a window even
    though no single step is synchronised.
    """

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.tokens = self.samples = self.steps = 0
        self.started = time.perf_counter()

    def update(self, tokens: int, samples: int) -> None:
        self.tokens += tokens
        self.samples += samples
        self.steps += 1

    def compute(self) -> dict[str, float]:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        rates = {
            "tokens_per_s": self.tokens / elapsed,
            "samples_per_s": self.samples / elapsed,
            "step_time_s": elapsed / max(self.steps, 1),
        }
        self.reset()
        return rates
