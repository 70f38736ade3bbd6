"""The tokenizer a dataset is prepared with: a byte-level BPE trained with Hugging Face
``tokenizers`` on the corpus itself, or (``data.tokenizer``, what ``model=hf`` sets) the
pretrained backbone's own tokenizer, so its embeddings see the ids they were trained on.

Byte-level so that any Elixir source (sigils, unicode atoms, odd whitespace) round-trips exactly.
Our special tokens come first in a trained tokenizer so their ids are fixed (``<pad>`` is 0); a
backbone's tokenizer keeps all its ids and gets only the special tokens it lacks appended.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from elixir_coder.errors import DataError
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


def piecewise(tok: Tokenizer) -> bool:
    """Whether ``tok`` gives a text the tokens of its pieces end to end, pieces cut where
    :func:`elixir_coder.corpus.encode.split_pieces` cuts (at line starts): true of a plain
    byte-level BPE (ours, GPT-2's), whose pre-tokenizer regex always has a boundary there, unless
    an added token could start at such a cut."""
    spec = json.loads(tok.to_str())
    pre, added = spec.get("pre_tokenizer") or {}, spec.get("added_tokens") or []
    return (spec.get("normalizer") is None and pre.get("type") == "ByteLevel" and pre.get("use_regex", True)
            and not pre.get("add_prefix_space") and all(_CANNOT_START_A_PIECE.match(t["content"]) for t in added))


_CANNOT_START_A_PIECE = re.compile(r"[^\s!-;=-~][^\s]*\Z")  # e.g. "<eos>": a piece starts with whitespace + [!-;=-~]


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    return Tokenizer.from_file(str(path))


def special_ids(tok: Tokenizer) -> dict[str, int]:
    return {name: tok.token_to_id(name) for name in SPECIAL_TOKENS}


def tokenizer_file(spec: str | os.PathLike) -> Path:
    """``data.tokenizer`` as a file: a ``tokenizer.json`` or a Hugging Face folder holding one."""
    path = Path(spec)
    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        raise DataError(f"data.tokenizer={spec}: no tokenizer.json there; point it at a Hugging Face tokenizer "
                        "folder (one saved with a fast tokenizer) or at its tokenizer.json")
    return file


def tokenizer_id(spec: str | os.PathLike | None) -> dict | None:
    """What identifies a dataset's tokenizer in its recipe: the backbone tokenizer's path and
    content hash; None for a BPE trained on the corpus (the rest of the recipe pins that one)."""
    if spec in (None, ""):
        return None
    file = tokenizer_file(spec)
    return {"path": str(file.resolve()), "sha256": hashlib.sha256(file.read_bytes()).hexdigest()}


def load_or_train_tokenizer(spec: str | os.PathLike | None, texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """The backbone's tokenizer at ``spec`` with our missing special tokens appended (the
    model's embeddings then grow by exactly those), or a BPE trained on ``texts`` if ``spec`` is None."""
    if spec in (None, ""):
        return train_tokenizer(texts, vocab_size)
    tok = load_tokenizer(tokenizer_file(spec))
    tok.add_special_tokens([t for t in SPECIAL_TOKENS if tok.token_to_id(t) is None])
    return tok


def describe(tokenizer: dict | None) -> str:
    return "a BPE trained on the corpus" if tokenizer is None else f"{tokenizer['path']} (sha256 {tokenizer['sha256'][:12]})"


def check_same_tokenizer(data_dir: str | os.PathLike, prepared: dict | None, wanted: dict | None) -> None:
    """Refuse a dataset tokenized with another tokenizer than the run's (one error naming both)."""
    if prepared != wanted:
        raise DataError(
            f"{data_dir} was tokenized with {describe(prepared)}, but this run needs {describe(wanted)} "
            "(data.tokenizer; model=hf sets it to the backbone's folder); pass data.overwrite=true to re-prepare "
            "it, or set data.data_dir to another folder"
        )
