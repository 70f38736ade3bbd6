"""The piece encoder preparation tokenizes with: exactly the ids of the dataset's tokenizer.

tiktoken runs the byte-level BPE 4x faster than ``tokenizers``; a dataset whose ids differed from
what ``tokenizer.json`` gives at sampling time would be trained on a tokenization the model never
sees again, so every path here is compared with ``tokenizers`` itself.
"""

from __future__ import annotations

import random

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from elixir_coder.corpus.demo import generate_records
from elixir_coder.corpus import tokenizer as tokenizer_module
from elixir_coder.corpus.tokenizer import PieceEncoder, split_pieces, train_tokenizer


def hf_ids(tok: Tokenizer, pieces: list[str]) -> list[list[int]]:
    return [e.ids for e in tok.encode_batch(pieces, add_special_tokens=False)]


def test_trained_tokenizer_takes_the_fast_path_with_the_same_ids():
    texts = [r.get("completion") or r.get("text", "") for r in generate_records(0, 40)]
    tok = train_tokenizer(texts, 600)
    encode = PieceEncoder(tok)
    assert encode.fast is not None  # a BPE trained by tokenizers is rank-consistent
    pieces = list(dict.fromkeys(p for t in texts for p in split_pieces(t)))
    assert [ids.tolist() for ids in encode(pieces)] == hf_ids(tok, pieces)
    for text in texts[:100]:  # plain texts are tokenized whole, and token offsets come with them
        assert encode.plain(text)
        ids, whole = encode.whole(text), tok.encode(text, add_special_tokens=False)
        assert ids.tolist() == whole.ids and encode.starts(ids).tolist() == [start for start, _ in whole.offsets]
    assert not encode.plain("# café") and not encode.plain("x = <eos>") and encode.plain("x = <eos")

    rng = random.Random(0)  # what the split regex and the merges see at their edges
    parts = [" ", "  ", "\t", "\n", "\r\n", "\x0b", "\x0c", "\x1c", "\x7f", "'s", "'t", "'re", "'ll", "'", "def", "do",
             "end", "x1", "10_000", "@doc", "|>", "<>", "<", "<eos>", "<pad>x", "é", "日本", "\u2028", "\xa0", "🙂"]
    for _ in range(300):
        batch = ["".join(rng.choice(parts) for _ in range(rng.randint(1, 30))) for _ in range(8)]
        assert [ids.tolist() for ids in encode(batch)] == hf_ids(tok, batch), batch


def bpe(merges: list[tuple[str, str]]) -> Tokenizer:
    """A byte-level BPE with the given merges (all 256 bytes first)."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    tok = Tokenizer(models.BPE(vocab, merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tok


def test_merges_tiktoken_would_apply_differently_keep_tokenizers():
    # tokenizers merges only listed pairs: "abc" is b+c first, then a+bc is no merge -> [a, bc].
    # tiktoken merges any adjacent pair whose concatenation is a token -> [abc]. Such a vocabulary
    # must not take the fast path.
    tok = bpe([("b", "c"), ("a", "b"), ("ab", "c")])
    encode = PieceEncoder(tok)
    assert encode.fast is None
    assert [ids.tolist() for ids in encode(["abc", "xabc ab"])] == hf_ids(tok, ["abc", "xabc ab"])
    assert len(hf_ids(tok, ["abc"])[0]) == 2

    consistent = bpe([("a", "b"), ("ab", "c"), ("b", "c")])
    assert PieceEncoder(consistent).fast is not None
    assert [ids.tolist() for ids in PieceEncoder(consistent)(["abc", "bcab"])] == hf_ids(consistent, ["abc", "bcab"])


def test_training_on_pieces_gives_the_tokenizer_of_whole_files(monkeypatch):
    """Preparation trains the tokenizer on files cut at line starts, so it counts them while the
    scan still reads the rest: the tokenizer must be the one the whole files give."""
    rng = random.Random(1)
    parts = ["def", " do", "end", "\n", "\n  ", "\n\n    ", "\t", "\r\n", " ", "  ", "|>", "<eos>", "<", "é", "日本",
             "\u2028", "\xa0", "@doc", "'s", "x1", "10_000", "# note", "\n<sep>"]
    texts = ["".join(rng.choice(parts) for _ in range(rng.randint(50, 3000))) for _ in range(60)]
    monkeypatch.setattr(tokenizer_module, "_TRAINING_ITEM_CHARS", 10**9)
    whole = train_tokenizer(texts, 400).to_str()
    monkeypatch.setattr(tokenizer_module, "_TRAINING_ITEM_CHARS", 64)
    items = list(tokenizer_module._training_items(texts))
    assert len(items) > 5 * len(texts) and "".join(items) == "".join(texts)
    assert train_tokenizer(texts, 400).to_str() == whole
