"""Task heads on the shared backbone: Credo and Sobelow multi-label classifiers and the
contrastive projection, all reading one pooled representation per sample.

The language-model head needs no module of its own: it is the backbone's tied embedding.
"""

from __future__ import annotations

import torch
from torch import nn


def pool(hidden: torch.Tensor, sample_index: torch.Tensor, n_samples: int) -> torch.Tensor:
    """Mean of each sample's hidden states: (B, T, D) -> (N, D).

    ``sample_index`` (B, T) names the sample (row of the batch's sample table) of every token,
    -1 on padding, so packed rows pool each of their samples separately.
    """
    flat = hidden.reshape(-1, hidden.shape[-1])
    idx = sample_index.reshape(-1)
    keep = idx >= 0
    sums = flat.new_zeros(n_samples, flat.shape[-1]).index_add_(0, idx[keep], flat[keep])
    counts = torch.bincount(idx[keep], minlength=n_samples).clamp(min=1)
    return sums / counts[:, None].to(sums.dtype)


class TaskHeads(nn.Module):
    def __init__(self, d_model: int, n_quality: int, n_security: int, projection_dim: int = 128):
        super().__init__()
        self.quality = nn.Linear(d_model, n_quality)
        self.security = nn.Linear(d_model, n_security)
        # A small MLP projection, as in SimCLR/ContraCode: the contrastive loss shapes this
        # space, and the backbone's own features stay usable for the other tasks.
        self.projection = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(), nn.Linear(d_model, projection_dim))

    def classify(self, task: str, pooled: torch.Tensor) -> torch.Tensor:
        return self.quality(pooled) if task == "quality" else self.security(pooled)
