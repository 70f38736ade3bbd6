"""A small decoder-only transformer: pre-norm (RMSNorm), RoPE, SDPA attention, SwiGLU MLP,
tied embeddings, and attention masks that understand packed rows.

SwiGLU rather than GELU: at equal parameter count it reaches a lower loss (Shazeer 2020), it is
what LLaMA and litgpt's defaults use, and at these sizes it costs nothing extra in speed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def rope_cache(max_len: int, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables (max_len, head_dim/2), in float32 so long positions keep their precision."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the pairs (x[i], x[i + head_dim/2]) (GPT-NeoX / litgpt layout).

    x is (B, H, T, head_dim); cos/sin are (B, 1, T, head_dim/2), gathered per token from the
    position ids, so positions can restart inside a packed row.
    """
    x1, x2 = x.float().chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).type_as(x)


class KVCache:
    """Keys and values of every layer for a batch being generated, so each new token costs one
    position's attention instead of re-running the whole sequence.

    ``valid`` marks real (not left-padding) key positions; ``padded`` is False when every row is
    real, so decoding keeps SDPA's mask-free path.
    """

    def __init__(self, n_layers: int, batch: int, n_heads: int, max_len: int, head_dim: int,
                 dtype: torch.dtype, device: torch.device):
        shape = (n_layers, batch, n_heads, max_len, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.valid = torch.ones(batch, max_len, dtype=torch.bool, device=device)
        self.length = 0  # positions filled so far (the same for every row: prompts are left-padded)
        self.padded = False

    @property
    def max_len(self) -> int:
        return self.k.shape[3]

    def mask(self, T: int) -> torch.Tensor | None:
        """(B, 1, T, length + T) boolean mask for T new queries, or None when plain causal
        attention is exact (no padding; one query, or a first chunk starting at 0)."""
        end = self.length + T
        if not self.padded and (T == 1 or self.length == 0):
            return None
        q = torch.arange(self.length, end, device=self.k.device)[:, None]
        kpos = torch.arange(end, device=self.k.device)[None, :]
        allowed = (kpos <= q)[None] & self.valid[:, None, :end]
        allowed |= (kpos == q)[None]  # a padding query sees itself: no empty softmax row
        return allowed[:, None]


class Attention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.n_heads, self.head_dim = n_heads, d_model // n_heads
        if self.head_dim % 2:
            raise ValueError(f"head_dim={self.head_dim} must be even for RoPE")
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.proj = nn.Linear(d_model, d_model, bias=False)
        self.dropout = dropout

    def forward(self, x, cos, sin, mask: torch.Tensor | None, is_causal: bool,
                cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            start, end = cache.length, cache.length + T
            cache.k[layer, :, :, start:end], cache.v[layer, :, :, start:end] = k, v
            k, v = cache.k[layer, :, :, :end], cache.v[layer, :, :, :end]
            is_causal = is_causal and start == 0  # later chunks: the cache's mask (or none for one query)
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

    def forward(self, x, cos, sin, mask, is_causal, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm_attn(x), cos, sin, mask, is_causal, cache, layer))
        return x + self.drop(self.mlp(self.norm_mlp(x)))


class Transformer(nn.Module):
    """Decoder-only backbone shared by every task head.

    ``forward`` returns final-normed hidden states so task heads (classifiers, GradNorm) can read
    them directly; ``lm_logits`` maps them to the vocabulary through the tied embedding matrix.
    """

    def __init__(
        self, vocab_size: int, d_model: int, n_layers: int, n_heads: int, max_len: int, ff_mult: float = 4.0,
        dropout: float = 0.0, rope_theta: float = 10000.0, norm_eps: float = 1e-5, causal: bool = True,
        init_std: float = 0.02,
    ):
        super().__init__()
        self.vocab_size, self.d_model, self.n_layers, self.n_heads = vocab_size, d_model, n_layers, n_heads
        self.max_len, self.causal = max_len, causal
        # SwiGLU has three matrices: 2/3 of ff_mult keeps the MLP at 2 * ff_mult * d^2 parameters,
        # like a GELU MLP of width ff_mult * d; rounded up to a multiple of 64 for the matmuls.
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
        """GPT-2 init: N(0, std) for matrices, residual projections scaled by 1/sqrt(2 * n_layers)
        so the residual stream's variance does not grow with depth; norms start at 1."""
        for name, p in self.named_parameters():
            if p.ndim == 2:
                scale = 1 / math.sqrt(2 * self.n_layers) if name.endswith("proj.weight") else 1.0
                nn.init.normal_(p, mean=0.0, std=std * scale)

    @property
    def last_shared_layer(self) -> nn.Module:
        """The final norm: every task head reads its output, so GradNorm measures gradients on its weight."""
        return self.norm

    def lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., d_model) -> (..., vocab_size), tied with the input embedding."""
        return F.linear(hidden, self.embed.weight)

    @staticmethod
    def segment_mask(segment_ids: torch.Tensor, causal: bool) -> torch.Tensor:
        """(B, 1, T, T) boolean, True = may attend: same segment, and not in the future when causal.

        Padding is segment 0, so real tokens never see it, and pad tokens see only (earlier) pad
        tokens. The diagonal is always allowed, so no query row is fully masked: no NaN from
        softmax over nothing, whatever the SDPA backend.
        """
        T = segment_ids.shape[1]
        mask = segment_ids[:, :, None] == segment_ids[:, None, :]
        if causal:
            mask &= torch.ones(T, T, dtype=torch.bool, device=segment_ids.device).tril()
        return mask[:, None]

    def forward(
        self, input_ids: torch.Tensor, position_ids: torch.Tensor | None = None, segment_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None, causal: bool | None = None, cache: KVCache | None = None,
    ) -> torch.Tensor:
        """Returns final-normed hidden states (B, T, d_model).

        segment_ids (B, T): 0 = padding, k = the k-th sample packed in the row; tokens attend only
        within their segment. attention_mask (B, T, 1 real / 0 pad) is used as segment ids when
        segment_ids is None. With neither, attention runs on SDPA's fast ``is_causal`` path.
        ``causal`` overrides the constructor's flag for this call (False = bidirectional, for MLM).

        With ``cache`` (generation), ``input_ids`` are the next T tokens after the cached ones;
        ``attention_mask`` (B, T) marks left-padding among them, and the cache advances by T.
        """
        B, T = input_ids.shape
        if cache is not None:
            return self._forward_cached(input_ids, position_ids, attention_mask, cache)
        if T > self.max_len:
            raise ValueError(f"sequence length {T} exceeds the model's max_len {self.max_len} (model.max_len)")
        causal = self.causal if causal is None else causal
        if position_ids is None:
            position_ids = torch.arange(T, device=input_ids.device).expand(B, T)
        if segment_ids is None and attention_mask is not None:
            segment_ids = attention_mask.long()
        mask = self.segment_mask(segment_ids, causal) if segment_ids is not None else None  # once, for all layers
        pos = position_ids.long()
        cos, sin = self.rope_cos[pos][:, None], self.rope_sin[pos][:, None]
        x = self.drop(self.embed(input_ids))
        for block in self.blocks:
            x = block(x, cos, sin, mask, causal)
        return self.norm(x)

    def new_cache(self, batch: int, max_len: int | None = None) -> KVCache:
        """An empty cache for ``batch`` rows of up to ``max_len`` (default: the model's) positions."""
        p = self.embed.weight
        return KVCache(self.n_layers, batch, self.n_heads, max_len or self.max_len, self.d_model // self.n_heads, p.dtype, p.device)

    def _forward_cached(self, input_ids, position_ids, attention_mask, cache: KVCache) -> torch.Tensor:
        B, T = input_ids.shape
        start, end = cache.length, cache.length + T
        if end > cache.max_len:
            raise ValueError(f"generation reached {end} positions, beyond the cache's {cache.max_len} (model.max_len)")
        if attention_mask is not None:
            cache.valid[:, start:end] = attention_mask.bool()
            cache.padded = cache.padded or not bool(attention_mask.all())
        if position_ids is None:
            position_ids = torch.arange(start, end, device=input_ids.device).expand(B, T)
        mask = cache.mask(T)
        pos = position_ids.long()
        cos, sin = self.rope_cos[pos][:, None], self.rope_sin[pos][:, None]
        x = self.drop(self.embed(input_ids))
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin, mask, True, cache, i)
        cache.length = end
        return self.norm(x)

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n - self.embed.weight.numel() if exclude_embeddings else n

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token, 6N + 12 * L * d * T (PaLM appendix B, nanoGPT), for MFU.

        N includes the tied embedding: the lookup is free, but the same matrix is the LM head's
        matmul, which 6 * V * d counts exactly (as nanoGPT does).
        """
        return 6 * self.num_parameters() + 12 * self.n_layers * self.d_model * seq_len
