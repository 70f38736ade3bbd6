"""The tokenizer a dataset is prepared with: a byte-level BPE trained with Hugging Face
``tokenizers`` on the corpus itself, or (``data.tokenizer``, what ``model=hf`` sets) the
pretrained backbone's own tokenizer, so its embeddings see the ids they were trained on.

Byte-level so that any Elixir source (sigils, unicode atoms, odd whitespace) round-trips exactly.
A trained tokenizer never merges across a newline (each line ends its own pre-token), so a text's
tokens are its lines' tokens end to end: preparation tokenizes each distinct line once
(:mod:`elixir_coder.corpus.encode`), though mined records repeat the same lines many times.
Our special tokens come first in a trained tokenizer so their ids are fixed (``<pad>`` is 0); a
backbone's tokenizer keeps all its ids and gets only the special tokens it lacks appended.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from elixir_coder.errors import DataError
from elixir_coder.labels import TASKS

PAD, BOS, EOS, MASK, SEP = "<pad>", "<bos>", "<eos>", "<mask>", "<sep>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, MASK, SEP) + tuple(f"<task:{t}>" for t in TASKS)


def train_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split("\n", behavior="merged_with_previous"),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
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


def splits_lines(tok: Tokenizer) -> bool:
    """Whether ``tok`` tokenizes each line on its own (ours; a backbone's tokenizer usually not)."""
    pre = json.loads(tok.to_str()).get("pre_tokenizer") or {}
    first = (pre.get("pretokenizers") or [{}])[0] if pre.get("type") == "Sequence" else {}
    return first.get("type") == "Split" and first.get("pattern") == {"String": "\n"} and first.get("behavior") == "MergedWithPrevious"


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
