"""Records to token samples, with long records split into several samples, never truncated.

A sample is ``[<bos>, <task:...>, prompt..., <sep>, completion..., <eos>]`` (generation) or
``[<bos>, <task:...>, text..., <eos>]`` (classification). A generation record longer than
``max_sample_tokens`` becomes several samples, each with the record's prompt and a consecutive
piece of its completion, cut where a top-level definition starts (the lines the Elixir parser
reports for the file) and, where a single definition is still too long, at a token window.
Only the last piece ends with ``<eos>``. Every completion token lands in exactly one sample.

What cannot be split honestly is counted instead: a classification text over the limit (its
labels speak of the whole text), and prompt tokens beyond half a sample (context only: the LM
loss is on the completion, so the prompt keeps its last tokens).
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
from tokenizers import Tokenizer

from elixir_coder.corpus import tokenized
from elixir_coder.corpus.tokenizer import BOS, EOS, SEP, PieceEncoder, outer_cuts, split_pieces
from elixir_coder.labels import GENERATION_TASKS, QUALITY_LABELS, SECURITY_LABELS, TASKS

# Byte-level BPE tokens of code are a few characters long: a prompt's head beyond this many
# characters per kept token would be cut after tokenizing anyway, so it is cut before (counted).
_MAX_CHARS_PER_TOKEN = 16
_BATCH = 256  # records tokenized together: bounds the tokenizer's Encoding objects (heavy: a string per token) held at once
# Distinct pieces a cache generation holds (about 150 bytes each; see PieceCache).
PIECE_CACHE = 1 << 16
# A text found in its source file takes the file's tokens (PieceCache.part) from this length on:
# below it, finding it costs about what tokenizing it does.
_MIN_PART_CHARS = 256


class PieceCache:
    """Tokens of the texts a worker has tokenized in its current task: whole plain texts, and the
    pieces of the texts tiktoken cannot take whole (non-ASCII text, or a tokenizer it cannot stand
    in for; see :class:`~elixir_coder.corpus.tokenizer.PieceEncoder`). Mined records repeat a
    task's lines many times (a file, its modules, functions, docs, the tests quoting them). Nothing
    is carried into the next task (:meth:`next_task`): a task costs the same wherever and after
    whatever it runs, so memory stays flat with corpus size and a corpus of near copies is not
    tokenized faster than a real one. A task holding over ``limit`` distinct pieces keeps only the last ``limit`` to
    ``2 * limit`` of them (two generations). ``encode`` tokenizes the pieces missing from it."""

    def __init__(self, tok: Tokenizer, limit: int = PIECE_CACHE):
        self.encode, self.limit = PieceEncoder(tok), limit
        self.current: dict[str, np.ndarray] = {}
        self.previous: dict[str, np.ndarray] = {}
        self.texts: dict[str, np.ndarray] = {}  # plain texts tokenized in this task
        self.files: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}  # file -> (ids, token starts), if plain

    def next_task(self) -> None:
        self.current, self.previous, self.texts, self.files = {}, {}, {}, {}

    def whole(self, text: str) -> np.ndarray:
        """The ids of a plain text, tokenized once per task (a file or module is several records'
        text, not always in the same batch: 5% of the Elixir checkout's record text)."""
        ids = self.texts.get(text)
        if ids is None:
            ids = self.texts[text] = self.encode.whole(text)
        return ids

    def part(self, text: str, file: str | None) -> np.ndarray:
        """The ids of a plain ``text``, cut from the tokens of ``file`` (its record's source file)
        when ``file`` holds it: all but its first and last piece (:func:`outer_cuts`) are the
        file's tokens as they stand; only those two are tokenized. A module, a function, a
        ``describe`` block is a record's text and the file's too: a fifth of the text to tokenize
        on the Elixir checkout."""
        ids = self.texts.get(text)
        if ids is not None:
            return ids
        at = file.find(text) if file is not None and len(text) >= _MIN_PART_CHARS and text != file else -1
        cuts = outer_cuts(text) if at >= 0 else None
        tokens = self._file(file) if cuts is not None else None
        if tokens is None:
            return self.whole(text)
        (first, last), (file_ids, starts) = cuts, tokens
        i, j = np.searchsorted(starts, (at + first, at + last))
        if starts[i] != at + first or starts[j] != at + last:  # cannot be (cuts are token starts); never wrong if it were
            return self.whole(text)
        ids = self.texts[text] = np.concatenate([self.encode.whole(text[:first]), file_ids[i:j], self.encode.whole(text[last:])])
        return ids

    def _file(self, file: str) -> tuple[np.ndarray, np.ndarray] | None:
        if file not in self.files:
            ids = self.whole(file) if self.encode.plain(file) else None
            self.files[file] = (ids, self.encode.starts(ids)) if ids is not None else None
        return self.files[file]

    def get(self, piece: str) -> np.ndarray | None:
        ids = self.current.get(piece)
        if ids is None:
            ids = self.previous.get(piece)
            if ids is not None:
                self.current[piece] = ids
        return ids

    def put(self, piece: str, ids: np.ndarray) -> None:
        if len(self.current) >= self.limit:
            self.previous, self.current = self.current, {}
        self.current[piece] = ids


def label_bits(labels: Sequence[str], vocab: Sequence[str]) -> int:
    bits = 0
    for label in labels:
        bits |= 1 << vocab.index(label)
    return bits


_ATTRIBUTE = re.compile(r"\s*@\w")


def line_starts(text: str, lines: Sequence[int]) -> list[int]:
    """Character offsets where the given 1-based lines start, leaving out a line whose form
    follows an attribute form (``@doc``, ``@spec``, ...): a definition stays with its attributes."""
    starts, pos = [0], 0
    while True:
        pos = text.find("\n", pos) + 1
        if pos == 0:
            break
        starts.append(pos)
    out, previous = [], None
    for n in sorted(set(lines)):
        if not 1 <= n <= len(starts):
            continue
        if previous is None or not _ATTRIBUTE.match(text, starts[previous - 1]):
            if n > 1:
                out.append(starts[n - 1])
        previous = n
    return out


def cut_points(token_starts: Sequence[int], boundary_chars: Sequence[int], budget: int) -> tuple[list[int], int]:
    """Token indices where pieces of at most ``budget`` tokens begin (0 first), and how many of
    the cuts fall inside a definition.

    Greedy: each piece ends at the last definition boundary that still fits, or at ``budget``
    tokens when no boundary does.
    """
    n = len(token_starts)
    boundary_tokens = sorted({bisect.bisect_left(token_starts, c) for c in boundary_chars} - {0, n})
    cuts, start, inside = [0], 0, 0
    while n - start > budget:
        k = bisect.bisect_right(boundary_tokens, start + budget) - 1
        if k >= 0 and boundary_tokens[k] > start:
            nxt = boundary_tokens[k]
        else:
            nxt, inside = start + budget, inside + 1
        cuts.append(nxt)
        start = nxt
    return cuts, inside


class Encoder:
    """Tokenizes records of one work item and appends their samples to flat per-split buffers."""

    def __init__(self, tok: Tokenizer, special: dict[str, int], max_sample_tokens: int, stats: Counter,
                 pieces: PieceCache | None = None, files: Mapping[str, str] | None = None):
        """``pieces``: the worker's piece cache when ``tok`` tokenizes pieces independently
        (:func:`elixir_coder.corpus.tokenizer.piecewise`); None otherwise. ``files``: the records'
        source files (path -> text), whose tokens their texts may be cut from."""
        self.tok, self.max, self.pieces, self.files = tok, max_sample_tokens, pieces, files or {}
        self.batch_pieces: dict[str, np.ndarray] = {}  # the current batch's pieces and their tokens
        self.batch_texts: dict[str, list[str]] = {}  # the current batch's texts and their pieces
        self.bos, self.eos, self.sep = special[BOS], special[EOS], special[SEP]
        self.task_ids = {t: special[f"<task:{t}>"] for t in TASKS}
        self.stats = stats
        self.tokens: list[np.ndarray] = []
        self.rows: list[tuple] = []

    def add(self, records: list[dict], license_id: int = 0, source_id: int = 0) -> None:
        """Encode ``records``; each may carry ``boundaries`` (1-based lines of its completion where
        definitions start) and ``_license`` (overrides ``license_id``)."""
        for k in range(0, len(records), _BATCH):  # bounds the token ids held at once
            self._add(records[k : k + _BATCH], license_id, source_id)

    def _add(self, records: list[dict], license_id: int, source_id: int) -> None:
        # Mined records repeat text (a module is one sample's completion and another's prompt; a
        # unit is classified for quality and for security): each distinct text is tokenized once.
        # Prompts are context only, kept to their last tokens, so their head is not tokenized.
        keep_chars = self.max * _MAX_CHARS_PER_TOKEN
        texts: dict[str, str | None] = {}  # text -> its record's source file
        for r in records:
            source = r.get("source")
            if r["task"] in GENERATION_TASKS:
                texts.setdefault(r["prompt"][-keep_chars:], source)
                if not r.get("boundaries") or self.pieces is not None:
                    texts.setdefault(r["completion"], source)
            else:
                texts.setdefault(r["text"], source)
        ids = self._ids(texts)
        for r in records:
            lic = r.get("_license", license_id)
            if r["task"] in GENERATION_TASKS:
                prompt = r["prompt"]
                if len(prompt) > keep_chars:
                    self.stats["prompt_context_chars_cut"] += len(prompt) - keep_chars
                self._generation(r, ids[prompt[-keep_chars:]], ids.get(r["completion"]), lic, source_id)
            else:
                self._classification(r, ids[r["text"]], lic, source_id)

    def _ids(self, texts: dict[str, str | None]) -> dict[str, np.ndarray]:
        if self.pieces is None:
            encoded = self.tok.encode_batch_fast(list(texts), add_special_tokens=False)
            return {t: np.asarray(e.ids, dtype=np.int32) for t, e in zip(texts, encoded)}
        # A plain text (nearly all code) is tokenized whole by tiktoken, or cut from its file's
        # tokens: faster than looking its pieces up. The others are tokenized by pieces, each
        # distinct piece once.
        coder, out, rest = self.pieces.encode, {}, []
        for t, source in texts.items():
            if coder.plain(t):
                out[t] = self.pieces.part(t, self.files.get(source) if source is not None else None)
            else:
                rest.append(t)
        cache, pieces, found = self.pieces, {t: split_pieces(t) for t in rest}, {}
        for ps in pieces.values():
            for piece in ps:
                if piece not in found:
                    found[piece] = cache.get(piece)
        new = [piece for piece, ids in found.items() if ids is None]
        for piece, ids in zip(new, cache.encode(new)):
            found[piece] = ids
            cache.put(piece, ids)
        self.batch_pieces, self.batch_texts = found, pieces
        empty = np.zeros(0, np.int32)
        out.update((t, np.concatenate([found[piece] for piece in ps]) if ps else empty) for t, ps in pieces.items())
        return out

    def _token_starts(self, text: str, ids: np.ndarray | None) -> tuple[np.ndarray, list[int]]:
        """(tokens, the character offset where each token starts) of a long completion. A text
        tokenized by pieces places a token at its piece's start (a piece starting with its own
        newline token: the rest one character later), which orders tokens against line starts
        exactly as their real offsets do: all a cut at a line needs."""
        if ids is not None and self.pieces is not None and text not in self.batch_texts:  # tokenized whole
            return ids, self.pieces.encode.starts(ids).tolist()
        if ids is not None and self.pieces is not None:
            pieces = self.batch_texts[text]
            counts = np.fromiter((len(self.batch_pieces[p]) for p in pieces), np.int64, len(pieces))
            at = np.cumsum([0] + [len(p) for p in pieces])[:-1]
            starts = np.repeat(at, counts)
            # A piece starting with "\n": the newline is a token of its own; the line starts after it.
            later = np.repeat(np.fromiter((p[0] == "\n" for p in pieces), bool, len(pieces)), counts)
            later[np.cumsum(counts)[counts > 0] - counts[counts > 0]] = False
            starts[later] += 1
            return ids, starts.tolist()
        encoding = self.tok.encode(text, add_special_tokens=False)
        return np.asarray(encoding.ids, dtype=np.int32), [o[0] for o in encoding.offsets]

    def _row(self, parts: list, prompt_len: int, r: dict, license_id: int, source_id: int) -> None:
        task = r["task"]
        ids = np.concatenate([np.asarray(p, dtype=np.int32) for p in parts])
        self.tokens.append(ids)
        q = label_bits(r.get("labels", []), QUALITY_LABELS) if task == "quality" else 0
        s = label_bits(r.get("labels", []), SECURITY_LABELS) if task == "security" else 0
        self.rows.append((0, len(ids), prompt_len, TASKS.index(task), license_id, source_id, q, s))

    def _generation(self, r: dict, prompt: np.ndarray, ids: np.ndarray | None, license_id: int, source_id: int) -> None:
        head = [self.bos, self.task_ids[r["task"]]]
        keep = max(self.max // 2 - len(head) - 1, 0)
        if len(prompt) > keep:  # context only (no loss on the prompt): keep its last tokens
            self.stats["prompt_tokens_cut"] += len(prompt) - keep
            prompt = prompt[len(prompt) - keep :]
        body = [head, prompt, [self.sep]]
        body_len = len(head) + len(prompt) + 1
        text, bounds = r["completion"], r.get("boundaries")
        if bounds:  # a long file: token offsets map its definition boundaries to tokens
            ids, starts = self._token_starts(text, ids)
        budget = self.max - body_len - 1
        if len(ids) <= budget:
            self._row([*body, ids, [self.eos]], body_len, r, license_id, source_id)
            return
        if not bounds:
            starts = list(range(len(ids)))
        cuts, inside = cut_points(starts, line_starts(text, bounds) if bounds else [], budget)
        self.stats["records_split"] += 1
        self.stats["pieces_from_split_records"] += len(cuts)
        self.stats["pieces_cut_inside_a_definition"] += inside
        for k, start in enumerate(cuts):
            end = cuts[k + 1] if k + 1 < len(cuts) else len(ids)
            tail = [self.eos] if end == len(ids) else []
            self._row([*body, ids[start:end], tail], body_len, r, license_id, source_id)

    def _classification(self, r: dict, text: np.ndarray, license_id: int, source_id: int) -> None:
        n = len(text) + 3
        if n > self.max:
            self.stats[f"skipped/{r['task']}_text_over_max_sample_tokens"] += 1
            return
        self._row([[self.bos, self.task_ids[r["task"]]], text, [self.eos]], n, r, license_id, source_id)

    def take(self) -> tuple[np.ndarray, np.ndarray]:
        """The buffered samples as (flat tokens, index rows with offsets), and clear the buffers."""
        index = np.array(self.rows, dtype=tokenized.INDEX_DTYPE) if self.rows else np.zeros(0, tokenized.INDEX_DTYPE)
        if len(index):
            index["offset"] = np.cumsum(index["length"].astype(np.int64)) - index["length"]
        tokens = np.concatenate(self.tokens) if self.tokens else np.zeros(0, np.int32)
        self.tokens, self.rows = [], []
        return tokens, index
