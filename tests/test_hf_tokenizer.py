"""model=hf: the data are prepared with the backbone's own tokenizer (a tiny random Llama and a
tiny byte-level BPE built here), and data tokenized otherwise are refused at start."""

from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import open_dict
from tokenizers import Tokenizer

transformers = pytest.importorskip("transformers", reason="pip install -e '.[dev]' (transformers)")

from elixir_coder.config import conf_dir  # noqa: E402
from elixir_coder.corpus import tokenized  # noqa: E402
from elixir_coder.corpus.tokenizer import SPECIAL_TOKENS, train_tokenizer  # noqa: E402
from elixir_coder.errors import DataError  # noqa: E402
from elixir_coder.labels import TASKS  # noqa: E402
from elixir_coder.training import loop as training_loop  # noqa: E402


@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory, tiny_corpus):
    """A "pretrained" model folder: a BPE with its own special tokens (none of ours) and a random
    Llama sized to it, as `save_pretrained` lays them out."""
    folder = tmp_path_factory.mktemp("llama")
    texts = [r.get("text") or r["prompt"] + r["completion"] for r in map(json.loads, tiny_corpus.read_text().splitlines())]
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    tok.train_from_iterator(texts[::3], trainers.BpeTrainer(vocab_size=350, special_tokens=["<s>", "</s>", "<unk>"],
                                                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tok.save(str(folder / "tokenizer.json"))
    config = transformers.LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                      num_key_value_heads=2, vocab_size=tok.get_vocab_size(), max_position_embeddings=128)
    transformers.LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def compose_cfg(tmp_path, tiny_corpus, *overrides):
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=[f"data.jsonl={tiny_corpus}", f"paths.data_dir={tmp_path}/data", "data.vocab_size=400",
                                           "data.max_len=64", "data.batch_size=8", "~callbacks.progress_bar", *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
    return cfg


def test_prepared_samples_decode_with_the_backbones_tokenizer(tmp_path, tiny_corpus, llama_folder):
    model_tok = Tokenizer.from_file(str(llama_folder / "tokenizer.json"))
    loop = training_loop.init(compose_cfg(tmp_path, tiny_corpus, "model=hf", f"model.path={llama_folder}"))
    meta = loop.datamodule.meta
    assert meta["recipe"]["tokenizer"]["path"] == str((llama_folder / "tokenizer.json").resolve())
    # Every id of the backbone's vocabulary kept; only our special tokens appended, and the
    # embeddings grown by exactly those rows.
    assert meta["vocab_size"] == model_tok.get_vocab_size() + len(SPECIAL_TOKENS)
    assert loop.module.model.hf.get_input_embeddings().num_embeddings == meta["vocab_size"]
    assert all(model_tok.token_to_id(t) is None and meta["special_tokens"][t] >= model_tok.get_vocab_size() for t in SPECIAL_TOKENS)
    records = [json.loads(line) for line in tiny_corpus.read_text().splitlines()]
    split = tokenized.open_split(loop.datamodule.data_dir, "train", meta["vocab_size"])
    specials = set(meta["special_tokens"].values())
    checked = 0
    for row, shard in zip(split.index[:20], split.shard[:20]):
        ids = [int(i) for i in split.tokens[shard][row["offset"]: row["offset"] + row["length"]]]
        prompt, body = ids[:row["prompt_len"]], ids[row["prompt_len"]:]
        text = model_tok.decode([i for i in body if i not in specials]) if TASKS[row["task"]] == "code_generation" \
            else model_tok.decode([i for i in prompt if i not in specials])
        assert any(text in (r.get("completion"), r.get("text")) for r in records), text[:80]
        checked += 1
    assert checked == 20


def test_data_tokenized_otherwise_are_refused_naming_both(tmp_path, tiny_corpus, llama_folder):
    training_loop.init(compose_cfg(tmp_path, tiny_corpus, "model=tiny"))  # prepares data/ with a corpus BPE
    with pytest.raises(DataError) as err:
        training_loop.init(compose_cfg(tmp_path, tiny_corpus, "model=hf", f"model.path={llama_folder}"))
    message = str(err.value)
    assert "was tokenized with a BPE trained on the corpus" in message
    assert f"this run needs {(llama_folder / 'tokenizer.json').resolve()}" in message


def test_corpus_bpe_unchanged_without_a_backbone_tokenizer(tmp_path, tiny_corpus):
    loop = training_loop.init(compose_cfg(tmp_path, tiny_corpus, "model=tiny"))
    assert loop.datamodule.meta["recipe"]["tokenizer"] is None
    expected = train_tokenizer([], 400)  # specials first: <pad> is 0
    assert loop.datamodule.meta["special_tokens"]["<pad>"] == expected.token_to_id("<pad>") == 0
