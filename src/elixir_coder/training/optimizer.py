"""Optimizer (spec 4.4.1, 4.4.4): AdamW with decoupled weight decay, and global-norm clipping."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices only: decaying biases, norm gains and embeddings hurts more than it helps."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim < 2 or "embed" in name or "norm" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def config(
    model: nn.Module, lr: float = 3.0e-4, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1.0e-8,
    weight_decay: float = 0.01, fused: bool | None = None,
) -> torch.optim.AdamW:
    """Spec 4.4.1: AdamW with the spec's defaults over the model's parameter groups."""
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=tuple(betas), eps=eps, fused=fused)


def clip_gradients(parameters: Iterable[torch.Tensor], max_norm: float = 1.0) -> torch.Tensor:
    """Spec 4.4.4: clip by global norm before the update; returns the pre-clip norm for logging."""
    return torch.nn.utils.clip_grad_norm_(list(parameters), max_norm, error_if_nonfinite=False)
