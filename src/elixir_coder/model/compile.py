"""``model.compile=true``: ``torch.compile`` of the backbone's forward.

Compiling ``forward`` in place (rather than wrapping the module in an ``OptimizedModule``) keeps
the model's own attributes and its state-dict keys unchanged, so checkpoints of compiled and
uncompiled runs are interchangeable. It pays off on GPUs with stable shapes; on a CPU it works
but the first steps spend a while compiling (``dynamic=True`` avoids recompiling for every new
batch width).
"""

from __future__ import annotations

import torch
from torch import nn


def compile_model(model: nn.Module, enabled: bool = False, mode: str | None = None) -> nn.Module:
    if enabled:
        model.forward = torch.compile(model.forward, mode=mode, dynamic=True)
    return model
