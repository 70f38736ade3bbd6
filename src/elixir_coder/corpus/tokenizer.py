"""Byte-level BPE tokenizer trained with Hugging Face ``tokenizers`` on the corpus itself.

Byte-level so that any Elixir source (sigils, unicode atoms, odd whitespace) round-trips exactly.
Special tokens come first so their ids are fixed: ``<pad>`` is 0.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from elixir_coder.labels import TASKS

PAD, BOS, EOS, MASK, SEP = "<pad>", "<bos>", "<eos>", "<mask>", "<sep>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, MASK, SEP) + tuple(f"<task:{t}>" for t in TASKS)


def train_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    return Tokenizer.from_file(str(path))


def special_ids(tok: Tokenizer) -> dict[str, int]:
    return {name: tok.token_to_id(name) for name in SPECIAL_TOKENS}
