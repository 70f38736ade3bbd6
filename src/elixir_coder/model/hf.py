"""A local Hugging Face causal LM as the backbone (``model=hf model.path=/models/my-code-llm``):
fine-tune a pretrained code model with our task heads, losses and curricula instead of training
the small transformer from scratch.

It exposes the interface the LightningModule uses (``forward`` -> final hidden states,
``lm_logits``, ``last_shared_layer``, ``d_model``); nothing is downloaded, the folder is read
with ``local_files_only=True``.
"""

from __future__ import annotations

import torch
from torch import nn

# Where the final norm (the output of which is the last hidden state) lives per architecture.
_FINAL_NORMS = ("model.norm", "transformer.ln_f", "model.final_layernorm", "gpt_neox.final_layer_norm",
                "model.decoder.final_layer_norm")


class HFBackbone(nn.Module):
    def __init__(self, path: str, vocab_size: int | None = None, max_len: int | None = None,
                 gradient_checkpointing: bool = False, torch_dtype: str | None = None, tokenizer: str | None = None):
        super().__init__()
        from transformers import AutoModelForCausalLM

        self.tokenizer_path = tokenizer or path  # what data.tokenizer prepares the data with
        dtype = getattr(torch, torch_dtype) if torch_dtype else None
        self.hf = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, torch_dtype=dtype)
        config = self.hf.config
        # The data's tokenizer is the backbone's plus the special tokens it lacked: only those
        # rows are added (a tokenizer smaller than the embedding matrix needs none).
        if vocab_size is not None and vocab_size > self.hf.get_input_embeddings().num_embeddings:
            self.hf.resize_token_embeddings(vocab_size)
        if gradient_checkpointing:
            self.hf.gradient_checkpointing_enable()
        self.vocab_size = self.hf.get_input_embeddings().num_embeddings
        self.d_model = config.hidden_size
        self.n_layers = config.num_hidden_layers
        positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        self.max_len = max_len or positions
        self.causal = True
        self._norm = self._find_final_norm()

    def _find_final_norm(self) -> nn.Module:
        modules = dict(self.hf.named_modules())
        for name in _FINAL_NORMS:
            if name in modules:
                return modules[name]
        raise ValueError(
            f"HFBackbone: no final norm found in {type(self.hf).__name__} (looked for {', '.join(_FINAL_NORMS)}); "
            "GradNorm needs it as the last shared layer"
        )

    @property
    def last_shared_layer(self) -> nn.Module:
        return self._norm

    def lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.hf.get_output_embeddings()(hidden)

    @staticmethod
    def packed_mask(segment_ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(B, 1, T, T) additive mask: 0 where a token may attend (same segment, not in the
        future), the dtype's minimum elsewhere; padding attends to itself so no row is empty."""
        T = segment_ids.shape[1]
        eye = torch.eye(T, dtype=torch.bool, device=segment_ids.device)
        allowed = (segment_ids[:, :, None] == segment_ids[:, None, :]) & ((segment_ids != 0)[:, None, :] | eye)
        allowed &= torch.ones(T, T, dtype=torch.bool, device=segment_ids.device).tril()
        return torch.zeros(allowed.shape, dtype=dtype, device=segment_ids.device).masked_fill(
            ~allowed, torch.finfo(dtype).min)[:, None]

    def forward(self, input_ids, position_ids=None, segment_ids=None, attention_mask=None, causal=None) -> torch.Tensor:
        if causal is False:
            raise ValueError("model=hf is a causal LM: the masked-LM curriculum objective needs model=tiny|small|base")
        if segment_ids is None and attention_mask is not None:
            segment_ids = attention_mask
        mask = None
        if segment_ids is not None:
            packed = bool((segment_ids.amax(dim=1) > 1).any())
            # Several samples in a row need a block-diagonal mask (4D, as Llama-style models take
            # it); one sample per row only needs the padding mask.
            mask = self.packed_mask(segment_ids, self.hf.dtype) if packed else (segment_ids > 0).long()
        out = self.hf(input_ids=input_ids.long(), position_ids=None if position_ids is None else position_ids.long(),
                      attention_mask=mask, output_hidden_states=True, use_cache=False)
        return out.hidden_states[-1]

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n - self.hf.get_input_embeddings().weight.numel() if exclude_embeddings else n

    def flops_per_token(self, seq_len: int) -> float:
        return 6 * self.num_parameters(exclude_embeddings=True) + 12 * self.n_layers * self.d_model * seq_len

    @torch.no_grad()
    def generate(self, prompts, sampling, *, eos_id: int, pad_id: int, generator: torch.Generator | None = None,
                 stop=None) -> list[list[int]]:
        """New token ids per prompt through the model's own ``generate`` (its KV cache), with the
        same sampling settings, seed and stopping rule as ``model.generate.generate_ids``."""
        from transformers import StoppingCriteria, StoppingCriteriaList

        device = self.hf.device
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, p in enumerate(prompts):
            ids[i, width - len(p):], mask[i, width - len(p):] = torch.as_tensor(list(p)), 1

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.tensor([stop is not None and stop(i, [t for t in row[width:].tolist() if t != eos_id])
                                     for i, row in enumerate(input_ids)], device=input_ids.device)

        seed = int(torch.randint(2**62, (1,), generator=generator)) if generator is not None else None
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            if seed is not None:
                torch.manual_seed(seed)
            greedy = sampling.temperature <= 0
            out = self.hf.generate(
                input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=sampling.max_new_tokens,
                do_sample=not greedy, temperature=None if greedy else sampling.temperature,
                top_k=None if greedy else sampling.top_k, top_p=None if greedy else sampling.top_p,
                eos_token_id=eos_id, pad_token_id=pad_id, stopping_criteria=StoppingCriteriaList([_Stop()]),
            )
        result = []
        for row in out[:, width:].tolist():
            row = row[:row.index(eos_id)] if eos_id in row else row
            result.append([t for t in row if t != pad_id])
        return result

