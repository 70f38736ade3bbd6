"""The backbone: shapes, tied weights, causality, and packing that never leaks across samples."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from elixir_coder.config import conf_dir
from elixir_coder.model.transformer import Transformer

V, D = 97, 64


@pytest.fixture
def model():
    torch.manual_seed(0)
    return Transformer(V, d_model=D, n_layers=2, n_heads=4, max_len=64, dropout=0.1).eval()


def pack(samples: list[torch.Tensor], width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One row: samples side by side, positions restarting at 0, segment ids 1..k, 0 = padding."""
    ids, pos, seg = (torch.zeros(1, width, dtype=torch.long) for _ in range(3))
    col = 0
    for k, s in enumerate(samples):
        ids[0, col : col + len(s)] = s
        pos[0, col : col + len(s)] = torch.arange(len(s))
        seg[0, col : col + len(s)] = k + 1
        col += len(s)
    return ids, pos, seg


def test_shapes(model):
    ids = torch.randint(0, V, (3, 10))
    hidden = model(ids)
    assert hidden.shape == (3, 10, D)
    assert model.lm_logits(hidden).shape == (3, 10, V)
    assert model.last_shared_layer is model.norm


def test_lm_head_is_the_embedding_matrix(model):
    assert [n for n, p in model.named_parameters() if p.shape == (V, D)] == ["embed.weight"]
    hidden = torch.randn(2, 5, D)
    torch.testing.assert_close(model.lm_logits(hidden), hidden @ model.embed.weight.T)
    with torch.no_grad():
        model.embed.weight[3] = 0.0
    assert (model.lm_logits(hidden)[..., 3] == 0).all()  # same tensor, not a copy


@pytest.mark.parametrize("causal", [True, False])
def test_packed_sample_equals_sample_alone(model, causal):
    """Three samples in one row (positions restart, own segment ids) + padding = each run alone."""
    lengths = [7, 12, 5]
    samples = [torch.randint(1, V, (n,)) for n in lengths]
    ids, pos, seg = pack(samples, sum(lengths) + 4)
    with torch.no_grad():
        packed = model.lm_logits(model(ids, position_ids=pos, segment_ids=seg, causal=causal))
        assert torch.isfinite(packed).all()  # padding rows included
        col = 0
        for s in samples:
            alone = model.lm_logits(model(s[None], causal=causal))
            torch.testing.assert_close(packed[0, col : col + len(s)], alone[0], atol=1e-5, rtol=0)
            col += len(s)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("dtype", [torch.long, torch.bool])
def test_padding_does_not_change_real_tokens(model, causal, dtype):
    lengths = [9, 14]
    rows = [torch.randint(1, V, (n,)) for n in lengths]
    ids = torch.zeros(2, 16, dtype=torch.long)
    mask = torch.zeros(2, 16, dtype=dtype)
    for r, x in enumerate(rows):
        ids[r, : len(x)], mask[r, : len(x)] = x, 1
    with torch.no_grad():
        padded = model.lm_logits(model(ids, attention_mask=mask, causal=causal))
        assert torch.isfinite(padded).all()
        for r, x in enumerate(rows):
            alone = model.lm_logits(model(x[None], causal=causal))
            torch.testing.assert_close(padded[r, : len(x)], alone[0], atol=1e-5, rtol=0)


def test_no_nan_in_gradients_with_padding(model):
    model.train()
    ids, pos, seg = pack([torch.randint(1, V, (6,)), torch.randint(1, V, (9,))], 20)
    model.lm_logits(model(ids, position_ids=pos, segment_ids=seg)).logsumexp(-1).mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_causal_flag(model):
    ids = torch.randint(0, V, (1, 12))
    changed = ids.clone()
    changed[0, 8] = (changed[0, 8] + 1) % V
    with torch.no_grad():
        torch.testing.assert_close(model(ids)[0, :8], model(changed)[0, :8])
        bidir_a, bidir_b = model(ids, causal=False), model(changed, causal=False)
        assert not torch.allclose(bidir_a[0, :8], bidir_b[0, :8])
        bidirectional = Transformer(V, d_model=D, n_layers=2, n_heads=4, max_len=64, causal=False).eval()
        bidirectional.load_state_dict(model.state_dict())
        torch.testing.assert_close(bidirectional(ids), bidir_a)  # constructor flag = per-call flag
        torch.testing.assert_close(bidirectional(ids, causal=True), model(ids))


def test_position_ids_drive_rope(model):
    """RoPE is relative: a constant shift changes nothing, a gap between positions does.

    (This is why packing equality alone cannot show that position_ids are used.)
    """
    ids = torch.randint(0, V, (1, 12))
    pos = torch.arange(12)[None]
    gap = torch.cat([pos[:, :6], pos[:, 6:] + 5], dim=1)
    with torch.no_grad():
        base = model(ids)
        torch.testing.assert_close(model(ids, position_ids=pos + 17), base, atol=1e-4, rtol=0)
        gapped = model(ids, position_ids=gap)
    torch.testing.assert_close(gapped[0, :6], base[0, :6])  # causal: positions before the gap are unaffected
    assert not torch.allclose(gapped[0, 6:], base[0, 6:], atol=1e-3)


def test_segment_mask():
    seg = torch.tensor([[1, 1, 2, 2, 2, 0, 0]])
    expected_causal = torch.tensor([
        [1, 0, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 0],
        [0, 0, 1, 0, 0, 0, 0],
        [0, 0, 1, 1, 0, 0, 0],
        [0, 0, 1, 1, 1, 0, 0],
        [0, 0, 0, 0, 0, 1, 0],  # padding sees only padding, itself at least: never an empty row
        [0, 0, 0, 0, 0, 1, 1],
    ], dtype=torch.bool)
    assert torch.equal(Transformer.segment_mask(seg, causal=True)[0, 0], expected_causal)
    bidirectional = Transformer.segment_mask(seg, causal=False)[0, 0]
    assert torch.equal(bidirectional, seg[0, :, None] == seg[0, None, :])
    assert Transformer.segment_mask(seg, causal=True).shape == (1, 1, 7, 7)  # broadcasts over heads


def test_segment_mask_path_matches_fast_causal_path(model):
    ids = torch.randint(0, V, (2, 12))
    with torch.no_grad():
        fast = model(ids)
        masked = model(ids, segment_ids=torch.ones_like(ids))
    torch.testing.assert_close(fast, masked, atol=1e-5, rtol=0)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("changed_pos, kept", [(7, slice(0, 5)), (2, slice(5, 10))])
def test_segments_are_isolated(model, causal, changed_pos, kept):
    """Changing a token of one segment leaves the other segment's outputs alone, in both directions."""
    ids = torch.randint(0, V, (1, 10))
    seg = torch.tensor([[1] * 5 + [2] * 5])
    changed = ids.clone()
    changed[0, changed_pos] = (changed[0, changed_pos] + 1) % V
    with torch.no_grad():
        a = model(ids, segment_ids=seg, causal=causal)
        b = model(changed, segment_ids=seg, causal=causal)
    torch.testing.assert_close(a[0, kept], b[0, kept])
    assert not torch.allclose(a[0, changed_pos], b[0, changed_pos])


def test_gradients_reach_every_parameter(model):
    model.train()
    ids = torch.randint(0, V, (2, 16))
    loss = torch.nn.functional.cross_entropy(model.lm_logits(model(ids[:, :-1])).flatten(0, 1), ids[:, 1:].flatten())
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_residual_projections_are_scaled_down():
    torch.manual_seed(0)
    m = Transformer(V, d_model=128, n_layers=8, n_heads=4, max_len=16)
    assert m.blocks[0].attn.qkv.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert m.blocks[0].attn.proj.weight.std().item() == pytest.approx(0.02 / 4, rel=0.05)
    assert m.blocks[0].mlp.proj.weight.std().item() == pytest.approx(0.02 / 4, rel=0.05)
    assert all(mod.bias is None for mod in m.modules() if isinstance(mod, torch.nn.Linear))


def test_too_long_input_is_a_clear_error(model):
    with pytest.raises(ValueError, match="exceeds the model's max_len 64"):
        model(torch.zeros(1, 65, dtype=torch.long))


def test_flops_per_token(model):
    assert model.flops_per_token(32) == 6 * model.num_parameters() + 12 * 2 * D * 32
    assert model.num_parameters() - model.num_parameters(exclude_embeddings=True) == V * D


@pytest.mark.parametrize("name, d_model, n_layers", [("tiny", 128, 4), ("small", 512, 8), ("base", 768, 12)])
def test_configs_instantiate_in_struct_mode(name, d_model, n_layers):
    cfg = OmegaConf.load(conf_dir() / "model" / f"{name}.yaml")
    assert cfg.pop("compile") is False  # read by the training loop, not a constructor argument
    OmegaConf.set_struct(cfg, True)
    # The bigger models are built on the meta device: same modules and shapes, no memory or init time.
    with torch.device("cpu" if name == "tiny" else "meta"):
        model = instantiate(cfg, vocab_size=8192)
    assert isinstance(model, Transformer)
    assert (model.vocab_size, model.d_model, model.n_layers, model.causal) == (8192, d_model, n_layers, True)
    assert OmegaConf.is_struct(cfg) and "vocab_size" not in cfg  # the caller's config is untouched
    if name == "tiny":
        assert model.num_parameters() < 3_000_000
        with torch.no_grad():
            assert model(torch.randint(0, 8192, (2, 16))).shape == (2, 16, 128)
