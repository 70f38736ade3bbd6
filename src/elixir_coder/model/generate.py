"""Text generation from a trained backbone: batched, KV-cached, seeded sampling (temperature,
top-k, top-p), stopping at ``<eos>`` or once the generated Elixir is complete.

Samples are laid out as in training (``<bos> <task:...> prompt <sep> completion <eos>``), so a
generation prompt is the training prompt up to ``<sep>``. Prompts of a batch are left-padded to
one length: every row then writes its next token at the same cache position.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from elixir_coder.corpus.tokenizer import BOS, EOS, PAD, SEP

# stop(row, new_ids) -> True once that row's completion is finished (besides <eos>).
StopFn = Callable[[int, list[int]], bool]


@dataclass(frozen=True)
class Sampling:
    """How the next token is drawn: ``temperature`` 0 is greedy; ``top_k`` 0 and ``top_p`` 1 keep every token."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    max_new_tokens: int = 256


def next_token(logits: torch.Tensor, s: Sampling, generator: torch.Generator | None) -> torch.Tensor:
    """(B, V) logits -> (B,) token ids."""
    if s.temperature <= 0:
        return logits.argmax(-1)
    logits = logits.float() / s.temperature
    if 0 < s.top_k < logits.shape[-1]:
        kth = torch.topk(logits, s.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if s.top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) > s.top_p  # keep the smallest prefix reaching top_p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Run the block on ``n`` intra-op threads (None = unchanged). One token at a time, a small
    model's matmuls are too small to split: on the tiny model one thread uses ~10x less CPU than
    two, and far less wall time when the cores are shared."""
    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _left_pad(prompts: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(prompts), width), dtype=torch.long, device=device)
    for i, p in enumerate(prompts):
        if p:
            ids[i, width - len(p):] = torch.as_tensor(list(p), dtype=torch.long)
            mask[i, width - len(p):] = 1
    return ids, mask


@torch.no_grad()
def generate_ids(
    model: torch.nn.Module, prompts: Sequence[Sequence[int]], sampling: Sampling, *, eos_id: int, pad_id: int,
    generator: torch.Generator | None = None, use_cache: bool = True, stop: StopFn | None = None,
) -> list[list[int]]:
    """New token ids per prompt (``<eos>`` excluded). Backbones without our KV cache (``model=hf``)
    use their own ``generate``; ``use_cache=False`` recomputes the whole sequence every step
    (the reference the cache is tested and benchmarked against)."""
    if not hasattr(model, "new_cache"):
        return model.generate(prompts, sampling, eos_id=eos_id, pad_id=pad_id, generator=generator, stop=stop)
    device = model.embed.weight.device
    ids, mask = _left_pad(prompts, pad_id, device)
    B, P = ids.shape
    steps = min(sampling.max_new_tokens, model.max_len - P)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out: list[list[int]] = [[] for _ in range(B)]
    done = torch.zeros(B, dtype=torch.bool, device=device)
    cache = model.new_cache(B, P + steps) if use_cache else None
    seq, seq_mask, seq_pos = ids, mask, positions
    for step in range(steps):
        if cache is not None:
            if step == 0:
                hidden = model(ids, position_ids=positions, attention_mask=mask, cache=cache)
            else:
                hidden = model(seq[:, -1:], position_ids=seq_pos[:, -1:], attention_mask=seq_mask[:, -1:], cache=cache)
        else:
            hidden = model(seq, position_ids=seq_pos, segment_ids=seq_mask)
        token = next_token(model.lm_logits(hidden[:, -1]), sampling, generator)
        token = torch.where(done, torch.full_like(token, pad_id), token)
        for i in torch.nonzero(~done).flatten().tolist():
            t = int(token[i])
            if t == eos_id:
                done[i] = True
                continue
            out[i].append(t)
            if stop is not None and stop(i, out[i]):
                done[i] = True
        if bool(done.all()):
            break
        seq = torch.cat([seq, token[:, None]], 1)
        seq_mask = torch.cat([seq_mask, torch.ones_like(token)[:, None]], 1)
        seq_pos = torch.cat([seq_pos, seq_pos[:, -1:] + 1], 1)
    return out


def parses_in_context(prompt: str, completion: str, parse: Callable[[str], bool], prompt_parses: bool | None = None) -> bool:
    """Does the completion make complete Elixir? With the prompt when the prompt is an unfinished
    piece (a ``def`` head), on its own when the prompt is empty or already complete (a module to test)."""
    if prompt_parses is None:
        prompt_parses = bool(prompt.strip()) and parse(prompt)
    return parse(completion if prompt_parses or not prompt.strip() else prompt + completion)


class ElixirComplete:
    """Stops a row once its text is a complete piece of Elixir: its last line is a block's
    ``end`` and the real parser accepts the prompt plus completion (or, when the prompt parses
    on its own, as with a module given to write tests for, the completion alone)."""

    def __init__(self, tokenizer, prompt_texts: Sequence[str], parse: Callable[[str], bool] | None = None):
        if parse is None:
            from elixir_coder.corpus.parser import string_to_quoted

            parse = lambda code: string_to_quoted(code).ok  # noqa: E731
        self.tokenizer, self.parse, self.prompts = tokenizer, parse, list(prompt_texts)
        self._prompt_parses: dict[int, bool] = {}
        self._checked: dict[int, int] = {}

    def __call__(self, row: int, new_ids: list[int]) -> bool:
        text = self.tokenizer.decode(new_ids)
        closed = text.rstrip()
        # Only a line that is just `end` can close the outermost block: the parser is asked then, once.
        if closed.rsplit("\n", 1)[-1].strip() != "end" or self._checked.get(row) == len(closed):
            return False
        self._checked[row] = len(closed)
        prompt = self.prompts[row]
        if row not in self._prompt_parses:
            self._prompt_parses[row] = bool(prompt.strip()) and self.parse(prompt)
        return parses_in_context(prompt, text, self.parse, self._prompt_parses[row])


@dataclass
class TextGenerator:
    """Prompts in, completions out, for one task, with the prepared dataset's tokenizer."""

    model: torch.nn.Module
    tokenizer: object
    task: str = "code_generation"
    stop_at_complete: bool = True
    batch_size: int = 16
    threads: int | None = 1  # intra-op threads while generating on the CPU (None = torch's default)

    def encode(self, prompt: str) -> list[int]:
        t = self.tokenizer
        return [t.token_to_id(BOS), t.token_to_id(f"<task:{self.task}>")] + t.encode(prompt, add_special_tokens=False).ids + [t.token_to_id(SEP)]

    def max_prompt_tokens(self) -> int:
        return int(getattr(self.model, "max_len", None) or 1 << 30) - 1

    def complete(self, prompts: Sequence[str], sampling: Sampling, seed: int, samples: int = 1,
                 use_cache: bool = True) -> list[list[str]]:
        """``samples`` completions per prompt, in batches of ``batch_size`` rows; the seed fixes them all."""
        generator = torch.Generator(device="cpu").manual_seed(seed)
        rows = [(i, p) for i, p in enumerate(prompts) for _ in range(samples)]
        texts: list[list[str]] = [[] for _ in prompts]
        eos, pad = self.tokenizer.token_to_id(EOS), self.tokenizer.token_to_id(PAD)
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start:start + self.batch_size]
            stop = ElixirComplete(self.tokenizer, [p for _, p in chunk]) if self.stop_at_complete else None
            with cpu_threads(self.threads):
                ids = generate_ids(self.model, [self.encode(p) for _, p in chunk], sampling, eos_id=eos, pad_id=pad,
                                   generator=generator, use_cache=use_cache, stop=stop)
            for (i, _), new in zip(chunk, ids):
                texts[i].append(self.tokenizer.decode(new))
        return texts
