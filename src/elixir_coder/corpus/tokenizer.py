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
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from elixir_coder.errors import DataError
from elixir_coder.labels import TASKS

PAD, BOS, EOS, MASK, SEP = "<pad>", "<bos>", "<eos>", "<mask>", "<sep>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, MASK, SEP) + tuple(f"<task:{t}>" for t in TASKS)


# Where a text is cut into pieces: before the last whitespace character of a run holding a newline,
# when printable ASCII other than "<" (special tokens) follows. The byte-level pre-tokenizer
# regex has a boundary there whatever surrounds it, so the pieces' tokens are the text's tokens.
# A match starts at the run's first newline: a literal first lets the regex engine skip from
# newline to newline (3x faster than matching from the run's start), and the cut is the same.
_CUT = re.compile(r"\n[ \t\r\n\f\v]*(?=[!-;=-~])")


def split_pieces(text: str) -> list[str]:
    """``text`` cut at line starts (see ``_CUT``) into pieces that tokenize independently."""
    cuts = [m.end() - 1 for m in _CUT.finditer(text)]
    if cuts and cuts[0] == 0:  # a cut at 0 starts no piece
        del cuts[0]
    return [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)])] if text else []


def outer_cuts(text: str) -> tuple[int, int] | None:
    """Where ``text``'s second and last pieces start (see :func:`split_pieces`), or None when it
    has fewer than three pieces. Within any text holding ``text``, the same offsets are cuts too:
    a cut depends only on its whitespace run, and the runs after the first one in ``text`` are
    whole there (the first one may only grow leftwards, still ending where it did)."""
    first = _CUT.search(text)
    if first is not None and first.end() == 1:  # a cut at 0 starts no piece
        first = _CUT.search(text, 1)
    end = len(text)
    while first is not None:
        newline = text.rfind("\n", 0, end)  # a match from any newline of a run ends where the run does
        if newline < first.end():  # the first cut's run
            return None
        last = _CUT.match(text, newline)
        if last is not None:
            return first.end() - 1, last.end() - 1
        end = newline
    return None


# Files are fed to tokenizer training in items of about this many characters, cut at pieces.
# ``tokenizers`` reads its training input 256 items at a time before counting them, so a
# preparation's few hundred sampled files would only be counted once the scan had read the last of
# them; items of a few KB are counted as the scan produces them.
_TRAINING_ITEM_CHARS = 1024


def _training_items(texts: Iterable[str]) -> Iterator[str]:
    """``texts`` in items of about ``_TRAINING_ITEM_CHARS``, cut where :func:`split_pieces` would
    (the first cut past that size: a search from there, not a split of the whole text): the
    pre-tokenizer splits there anyway, so the word counts, and the tokenizer, are the same."""
    for text in texts:
        start = 0
        while len(text) - start > _TRAINING_ITEM_CHARS:
            m = _CUT.search(text, start + _TRAINING_ITEM_CHARS)
            if m is None:
                break
            yield text[start : m.end() - 1]
            start = m.end() - 1
        yield text[start:]


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
    tok.train_from_iterator(_training_items(texts), trainer=trainer)
    return tok


def piecewise(tok: Tokenizer) -> bool:
    """Whether ``tok`` gives a text the tokens of its pieces end to end, pieces cut where
    :func:`split_pieces` cuts (at line starts): true of a plain byte-level BPE (ours, GPT-2's),
    whose pre-tokenizer regex always has a boundary there, unless an added token could start at
    such a cut."""
    return _piecewise(json.loads(tok.to_str()))


def _piecewise(spec: dict) -> bool:
    """:func:`piecewise` of a tokenizer.json's contents."""
    pre, added = spec.get("pre_tokenizer") or {}, spec.get("added_tokens") or []
    return (spec.get("normalizer") is None and pre.get("type") == "ByteLevel" and pre.get("use_regex", True)
            and not pre.get("add_prefix_space") and all(_CANNOT_START_A_PIECE.match(t["content"]) for t in added))


_CANNOT_START_A_PIECE = re.compile(r"[^\s!-;=-~][^\s]*\Z")  # e.g. "<eos>": a piece starts with whitespace + [!-;=-~]


# The byte-level pre-tokenizer's split regex (tokenizers' ByteLevel with use_regex, GPT-2's).
_BYTE_LEVEL_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def _byte_chars() -> list[str]:
    """The character the byte-level alphabet writes each byte as (GPT-2's ``bytes_to_unicode``)."""
    printable = [b for b in range(256) if 33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255]
    shifted = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(shifted)) for b in range(256)]


class PieceEncoder:
    """Token ids of texts, or of pieces of them (see :func:`piecewise`), exactly as ``tok`` gives them.

    Tokenizing is most of a preparation's work, and ``tokenizers`` spends most of its time on
    the bookkeeping of an ``Encoding`` (offsets, alignments, a Python object per piece) that
    preparation never reads. OpenAI's ``tiktoken`` runs the same byte-level BPE without it, 4x
    faster on the Elixir checkout. It is used only where it provably gives the same ids (a
    *plain* text), and ``tokenizers`` everywhere else:

    - the tokenizer is a plain byte-level BPE (no normalizer, dropout, byte fallback, prefix or
      suffix) with all 256 bytes, and its merges are *rank-consistent*: merge i makes a token whose
      id grows with i, and tiktoken's rule (merge the adjacent pair whose concatenation has the
      lowest id) applied to that token's bytes with lower ids only ends in exactly merge i's pair.
      Then, by induction on the merge steps, tiktoken makes the same merges as ``tokenizers``'
      merge list on any word (BPE tokenizers trained by ``tokenizers`` are; checked when built);
    - the text is ASCII (the split regex's letter, digit and space classes then mean the same in
      tokenizers' Oniguruma and tiktoken's regex engine, whatever their Unicode versions) and holds
      no added token's text (``tokenizers`` matches those first, e.g. ``<eos>`` in a source file).
    """

    def __init__(self, tok: Tokenizer):
        self.tok = tok
        spec = json.loads(tok.to_str())
        added = [t["content"] for t in spec.get("added_tokens") or []]
        self._added = re.compile("|".join(map(re.escape, added))) if added else None
        self.piecewise = _piecewise(spec)
        self.fast, ranks = _tiktoken_bpe(spec) if self.piecewise else (None, {})
        self.lengths = np.zeros(max(ranks.values(), default=-1) + 1, dtype=np.int64)  # id -> bytes
        for token, rank in ranks.items():
            self.lengths[rank] = len(token)

    def plain(self, text: str) -> bool:
        """Whether tiktoken tokenizes ``text`` exactly as ``tok`` does (see the class)."""
        return self.fast is not None and text.isascii() and (self._added is None or self._added.search(text) is None)

    def whole(self, text: str) -> np.ndarray:
        """The ids of a :meth:`plain` text."""
        return np.asarray(self.fast.encode_ordinary(text), dtype=np.int32)

    def starts(self, ids: np.ndarray) -> np.ndarray:
        """The character offset where each token of a plain text starts (its bytes are its characters)."""
        lengths = self.lengths[ids]
        return np.cumsum(lengths) - lengths

    def __call__(self, pieces: list[str]) -> list[np.ndarray]:
        """The ids of each piece."""
        if self.fast is None:
            return self._slow(pieces)
        fast = [True] * len(pieces) if self.plain("\0".join(pieces)) else [self.plain(p) for p in pieces]
        out = [self.whole(p) if ok else None for p, ok in zip(pieces, fast)]
        slow = [p for p, ok in zip(pieces, fast) if not ok]
        if slow:
            it = iter(self._slow(slow))
            out = [ids if ids is not None else next(it) for ids in out]
        return out

    def _slow(self, pieces: list[str]) -> list[np.ndarray]:
        return [np.asarray(e.ids, dtype=np.int32) for e in self.tok.encode_batch_fast(pieces, add_special_tokens=False)]


def _tiktoken_bpe(spec: dict) -> tuple:
    """A tiktoken ``Encoding`` giving the BPE model of ``spec`` (a tokenizer.json) the same ids,
    and its tokens' bytes -> id; (None, {}) when that cannot be shown (see :class:`PieceEncoder`)."""
    import tiktoken

    model, chars = spec.get("model") or {}, _byte_chars()
    options = ("dropout", "continuing_subword_prefix", "end_of_word_suffix", "byte_fallback", "ignore_merges")
    if model.get("type") != "BPE" or any(model.get(k) for k in options) or not all(ch in model["vocab"] for ch in chars):
        return None, {}
    to_byte = {ch: b for b, ch in enumerate(chars)}
    ranks = {bytes([b]): model["vocab"][ch] for b, ch in enumerate(chars)}

    def as_bytes(token: str) -> bytes | None:
        try:
            return bytes(to_byte[ch] for ch in token)
        except KeyError:
            return None

    last, pairs = -1, []
    for merge in model["merges"]:
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        x, y, made = as_bytes(left), as_bytes(right), model["vocab"].get(left + right)
        if x is None or y is None or made is None or made <= last or x + y in ranks:
            return None, {}
        ranks[x + y], last = made, made
        pairs.append((x, y))
    for x, y in pairs:  # tiktoken's rule on each token's bytes, lower ids only
        limit, parts = ranks[x + y], [bytes([b]) for b in x + y]
        while len(parts) > 2:
            best, at = limit, -1
            for i in range(len(parts) - 1):
                rank = ranks.get(parts[i] + parts[i + 1], limit)
                if rank < best:
                    best, at = rank, i
            if at < 0:
                return None, {}
            parts[at : at + 2] = [parts[at] + parts[at + 1]]
        if parts != [x, y]:
            return None, {}
    return tiktoken.Encoding("elixir-coder-bpe", pat_str=_BYTE_LEVEL_SPLIT, mergeable_ranks=ranks, special_tokens={}), ranks


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
