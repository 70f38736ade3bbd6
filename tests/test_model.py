"""The backbone: shapes, tied weights, causality, and packing that never leaks across samples."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from elixir_coder.config import conf_dir
from elixir_coder.model.transformer import Transformer

V = 97


@pytest.fixture
def model():
    torch.manual_seed(0)
    return Transformer(V, d_model=32, n_layers=2, n_heads=4, max_len=64).eval()


def test_shapes_and_tied_embeddings(model):
    ids = torch.randint(0, V, (3, 10))
    hidden = model(ids)
    assert hidden.shape == (3, 10, 32)
    assert model.lm_logits(hidden).shape == (3, 10, V)
    model.embed.weight.data[5] += 1.0
    assert torch.equal(model.lm_logits(torch.eye(32)[:1])[0, :], model.embed.weight[:, 0])


def test_packed_sample_equals_sample_alone(model):
    """Three samples in one row (positions restart, own segment ids) + padding = each run alone."""
    lengths = [7, 12, 5]
    samples = [torch.randint(0, V, (n,)) for n in lengths]
    width = sum(lengths) + 4
    ids = torch.zeros(1, width, dtype=torch.long)
    pos = torch.zeros(1, width, dtype=torch.long)
    seg = torch.zeros(1, width, dtype=torch.long)
    col = 0
    for k, s in enumerate(samples):
        ids[0, col : col + len(s)] = s
        pos[0, col : col + len(s)] = torch.arange(len(s))
        seg[0, col : col + len(s)] = k + 1
        col += len(s)
    with torch.no_grad():
        packed = model.lm_logits(model(ids, position_ids=pos, segment_ids=seg))
        assert torch.isfinite(packed).all()  # padding rows included
        col = 0
        for s in samples:
            alone = model.lm_logits(model(s[None]))
            torch.testing.assert_close(packed[0, col : col + len(s)], alone[0], atol=1e-5, rtol=0)
            col += len(s)


def test_padding_does_not_change_real_tokens(model):
    ids = torch.randint(0, V, (1, 9))
    padded = torch.cat([ids, torch.zeros(1, 5, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(1, 9), torch.zeros(1, 5)], dim=1).long()
    with torch.no_grad():
        a = model(ids)
        b = model(padded, attention_mask=mask)
    assert torch.isfinite(b).all()
    torch.testing.assert_close(a, b[:, :9], atol=1e-5, rtol=0)


def test_causal_flag(model):
    ids = torch.randint(0, V, (1, 12))
    changed = ids.clone()
    changed[0, 8] = (changed[0, 8] + 1) % V
    with torch.no_grad():
        torch.testing.assert_close(model(ids)[0, :8], model(changed)[0, :8])
        bidir_a, bidir_b = model(ids, causal=False), model(changed, causal=False)
    assert not torch.allclose(bidir_a[0, :8], bidir_b[0, :8])


def test_segments_are_isolated_even_bidirectionally(model):
    ids = torch.randint(0, V, (1, 10))
    seg = torch.tensor([[1] * 5 + [2] * 5])
    changed = ids.clone()
    changed[0, 7] = (changed[0, 7] + 1) % V
    with torch.no_grad():
        a = model(ids, segment_ids=seg, causal=False)
        b = model(changed, segment_ids=seg, causal=False)
    torch.testing.assert_close(a[0, :5], b[0, :5])


def test_gradients_reach_every_parameter(model):
    model.train()
    ids = torch.randint(0, V, (2, 16))
    model.lm_logits(model(ids)).logsumexp(-1).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_too_long_input_is_a_clear_error(model):
    with pytest.raises(ValueError, match="exceeds the model's max_len 64"):
        model(torch.zeros(1, 65, dtype=torch.long))


@pytest.mark.parametrize("name", ["tiny", "small", "base"])
def test_configs_instantiate_in_struct_mode(name):
    cfg = OmegaConf.load(conf_dir() / "model" / f"{name}.yaml")
    OmegaConf.set_struct(cfg, True)
    if name != "tiny":  # building the bigger ones is slow-ish; check the keys bind
        assert set(cfg) - {"_target_"} <= set(Transformer.__init__.__code__.co_varnames)
        return
    model = instantiate(cfg, vocab_size=8192)
    assert model.vocab_size == 8192
    assert model.num_parameters() < 3_000_000
    assert model.flops_per_token(256) > 6 * model.num_parameters(exclude_embeddings=True)
