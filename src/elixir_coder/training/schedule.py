"""Learning-rate schedule (spec 4.4.2-4.4.3): linear warmup, then cosine decay to a floor."""

from __future__ import annotations

import math

import torch


def effective_warmup(warmup_steps: int, total_steps: int, max_warmup_fraction: float) -> int:
    """Cap warmup on short runs, so a 200-step demo does not spend all of it warming up."""
    return max(0, min(warmup_steps, int(max_warmup_fraction * total_steps)))


def warmup_cosine(step: int, max_lr: float, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.1) -> float:
    """Spec 4.4.2: the learning rate at optimizer step ``step`` (0-based)."""
    if warmup_steps > 0 and step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    min_lr = max_lr * min_lr_ratio
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def init(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 2000, min_lr_ratio: float = 0.1,
    max_warmup_fraction: float = 0.1,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Spec 4.4.3: a scheduler stepped once per optimizer step.

    The step counter the spec keeps in an ``:agent`` is the scheduler's own ``last_epoch``, which
    Lightning saves in every checkpoint, so a resumed run continues the same curve.
    """
    warmup = effective_warmup(warmup_steps, total_steps, max_warmup_fraction)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, 1.0, warmup, total_steps, min_lr_ratio)
    )
