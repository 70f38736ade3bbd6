"""A small decoder-only transformer: pre-norm (RMSNorm), RoPE, SDPA attention, SwiGLU MLP,
tied embeddings, and attention masks that understand packed rows.

SwiGLU rather than GELU: at equal parameter count it trains faster on code (LLaMA, litgpt's
defaults), and costs nothing extra at these sizes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def rope_cache(max_len: int, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x1, x2) of the head dimension; cos/sin are (B, 1, T, head_dim/2)."""
    x1, x2 = x.float().chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).type_as(x)


class Attention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.n_heads, self.head_dim = n_heads, d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.proj = nn.Linear(d_model, d_model, bias=False)
        self.dropout = dropout

    def forward(self, x, cos, sin, mask: torch.Tensor | None, is_causal: bool) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=is_causal and mask is None,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class SwiGLU(nn.Module):
    def __init__(self, d_model: int, hidden: int):
        super().__init__()
        self.gate_up = nn.Linear(d_model, 2 * hidden, bias=False)
        self.proj = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.proj(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int, ff_hidden: int, dropout: float, norm_eps: float):
        super().__init__()
        self.norm_attn = nn.RMSNorm(d_model, eps=norm_eps)
        self.attn = Attention(d_model, n_heads, dropout)
        self.norm_mlp = nn.RMSNorm(d_model, eps=norm_eps)
        self.mlp = SwiGLU(d_model, ff_hidden)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, cos, sin, mask, is_causal) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm_attn(x), cos, sin, mask, is_causal))
        return x + self.drop(self.mlp(self.norm_mlp(x)))


class Transformer(nn.Module):
    """Returns final-normed hidden states; ``lm_logits`` maps them to the vocabulary."""

    def __init__(
        self, vocab_size: int, d_model: int, n_layers: int, n_heads: int, max_len: int, ff_mult: float = 4.0,
        dropout: float = 0.0, rope_theta: float = 10000.0, norm_eps: float = 1e-5, causal: bool = True,
        init_std: float = 0.02,
    ):
        super().__init__()
        self.vocab_size, self.d_model, self.n_layers, self.max_len = vocab_size, d_model, n_layers, max_len
        self.causal = causal
        # SwiGLU has three matrices: 2/3 of ff_mult keeps the MLP's parameters at ff_mult * d^2 * 2.
        ff_hidden = int(2 * ff_mult * d_model / 3 + 63) // 64 * 64
        self.embed = nn.Embedding(vocab_size, d_model)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, ff_hidden, dropout, norm_eps) for _ in range(n_layers))
        self.norm = nn.RMSNorm(d_model, eps=norm_eps)
        cos, sin = rope_cache(max_len, d_model // n_heads, rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self._init_weights(init_std)

    def _init_weights(self, std: float) -> None:
        """GPT-2 init: N(0, std), residual projections scaled by 1/sqrt(2 * n_layers)."""
        for name, p in self.named_parameters():
            if p.ndim == 2:
                scale = 1 / math.sqrt(2 * self.n_layers) if name.endswith("proj.weight") else 1.0
                nn.init.normal_(p, mean=0.0, std=std * scale)

    @property
    def last_shared_layer(self) -> nn.Module:
        """The final norm: every task head reads its output, so GradNorm measures gradients here."""
        return self.norm

    def lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.linear(hidden, self.embed.weight)  # tied with the input embedding

    def attention_mask(self, segment_ids: torch.Tensor, causal: bool) -> torch.Tensor:
        """(B, 1, T, T) boolean: same segment (and not in the future when causal).

        Padding (segment 0) attends to itself only, so its rows stay finite.
        """
        same = segment_ids[:, :, None] == segment_ids[:, None, :]
        same &= (segment_ids != 0)[:, None, :] | torch.eye(segment_ids.shape[1], dtype=torch.bool, device=segment_ids.device)
        if causal:
            same &= torch.ones_like(same[0], dtype=torch.bool).tril()
        return same[:, None]

    def forward(
        self, input_ids: torch.Tensor, position_ids: torch.Tensor | None = None, segment_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None, causal: bool | None = None,
    ) -> torch.Tensor:
        B, T = input_ids.shape
        if T > self.max_len:
            raise ValueError(f"sequence length {T} exceeds the model's max_len {self.max_len} (model.max_len)")
        causal = self.causal if causal is None else causal
        if position_ids is None:
            position_ids = torch.arange(T, device=input_ids.device).expand(B, T)
        if segment_ids is None and attention_mask is not None:
            segment_ids = attention_mask
        mask = self.attention_mask(segment_ids, causal) if segment_ids is not None else None
        pos = position_ids.long()
        cos, sin = self.rope_cos[pos][:, None], self.rope_sin[pos][:, None]
        x = self.drop(self.embed(input_ids))
        for block in self.blocks:
            x = block(x, cos, sin, mask, causal)
        return self.norm(x)

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n - self.embed.weight.numel() if exclude_embeddings else n

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token (PaLM appendix B): 6N + 12 * L * d * T, for MFU."""
        return 6 * self.num_parameters(exclude_embeddings=True) + 12 * self.n_layers * self.d_model * seq_len
