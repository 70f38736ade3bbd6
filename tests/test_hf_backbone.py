"""A local Hugging Face causal LM as the backbone (tiny random models built here, no download),
and torch.compile of the project's own model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

transformers = pytest.importorskip("transformers", reason="pip install -e '.[dev]' (transformers)")

from elixir_coder.config import conf_dir  # noqa: E402
from elixir_coder.model.compile import compile_model  # noqa: E402
from elixir_coder.model.hf import HFBackbone  # noqa: E402
from elixir_coder.model.transformer import Transformer  # noqa: E402


def tiny(kind: str, folder) -> str:
    torch.manual_seed(0)
    if kind == "gpt2":
        config = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=300, n_positions=128)
        model = transformers.GPT2LMHeadModel(config)
    else:
        config = transformers.LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                          num_key_value_heads=2, vocab_size=300, max_position_embeddings=128)
        model = transformers.LlamaForCausalLM(config)
    model.save_pretrained(folder / kind)
    return str(folder / kind)


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def backbone_path(request, tmp_path_factory):
    return tiny(request.param, tmp_path_factory.mktemp("hf"))


def test_interface_matches_the_hf_model(backbone_path):
    model = HFBackbone(backbone_path).eval()
    ids = torch.randint(0, 300, (2, 12))
    hidden = model(ids)
    assert hidden.shape == (2, 12, 32) and model.d_model == 32 and model.vocab_size == 300
    with torch.no_grad():
        reference = model.hf(input_ids=ids).logits
        torch.testing.assert_close(model.lm_logits(model(ids)), reference, atol=1e-5, rtol=1e-4)
    model.train()
    model.lm_logits(model(ids)).logsumexp(-1).mean().backward()
    assert model.last_shared_layer.weight.grad.abs().sum() > 0


def test_vocabulary_grows_to_the_corpus_tokenizer(backbone_path):
    assert HFBackbone(backbone_path, vocab_size=320).vocab_size == 320


def test_packed_llama_sample_equals_the_sample_alone(tmp_path):
    model = HFBackbone(tiny("llama", tmp_path)).eval()
    a, b = torch.randint(0, 300, (7,)), torch.randint(0, 300, (5,))
    ids = torch.cat([a, b, torch.zeros(2, dtype=torch.long)])[None]
    pos = torch.cat([torch.arange(7), torch.arange(5), torch.zeros(2, dtype=torch.long)])[None]
    seg = torch.tensor([[1] * 7 + [2] * 5 + [0] * 2])
    with torch.no_grad():
        packed = model(ids, position_ids=pos, segment_ids=seg)
        torch.testing.assert_close(packed[0, 7:12], model(b[None])[0], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(packed[0, :7], model(a[None])[0], atol=1e-4, rtol=1e-4)


def test_a_few_steps_lower_the_loss(backbone_path):
    model = HFBackbone(backbone_path)
    x = torch.randint(0, 300, (4, 16))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(4):
        loss = F.cross_entropy(model.lm_logits(model(x))[:, :-1].reshape(-1, 300), x[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_hydra_config_instantiates(backbone_path):
    cfg = OmegaConf.load(conf_dir() / "model" / "hf.yaml")
    cfg.pop("compile")
    cfg.path = backbone_path
    OmegaConf.set_struct(cfg, True)
    assert instantiate(cfg, vocab_size=300).d_model == 32


@pytest.mark.slow
def test_compiled_model_matches_and_keeps_its_keys():
    torch.manual_seed(0)
    model = Transformer(97, d_model=32, n_layers=1, n_heads=2, max_len=32).eval()
    keys = list(model.state_dict())
    ids = torch.randint(0, 97, (2, 10))
    with torch.no_grad():
        expected = model.lm_logits(model(ids))
    compiled = compile_model(model, enabled=True)
    with torch.no_grad():
        got = compiled.lm_logits(compiled(ids))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert list(compiled.state_dict()) == keys and compiled.d_model == 32
