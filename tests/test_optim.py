"""Optimizer, LR schedule and clipping (spec 4.4)."""

from __future__ import annotations

import math

import pytest
import torch

from elixir_coder.model.transformer import Transformer
from elixir_coder.training import optimizer, schedule


def tiny():
    torch.manual_seed(0)
    return Transformer(50, d_model=16, n_layers=1, n_heads=2, max_len=16)


def test_adamw_defaults_and_no_decay_groups():
    model = tiny()
    opt = optimizer.config(model)
    assert isinstance(opt, torch.optim.AdamW)
    decay, no_decay = opt.param_groups
    assert (decay["lr"], decay["betas"], decay["eps"], decay["weight_decay"]) == (3e-4, (0.9, 0.999), 1e-8, 0.01)
    assert no_decay["weight_decay"] == 0.0
    no_decay_ids = {id(p) for p in no_decay["params"]}
    assert id(model.embed.weight) in no_decay_ids and id(model.norm.weight) in no_decay_ids
    assert all(p.ndim == 2 for p in decay["params"])
    assert optimizer.config(model, lr=1e-2).param_groups[0]["lr"] == 1e-2


def test_warmup_then_cosine_to_ten_percent():
    lrs = [schedule.warmup_cosine(s, 1.0, warmup_steps=10, total_steps=110) for s in range(120)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(lrs[:9], lrs[1:10]))  # linear warmup rises
    assert all(a >= b for a, b in zip(lrs[10:110], lrs[11:111]))  # then decays
    assert lrs[60] == pytest.approx(0.55)  # half way: midpoint of max and min
    assert lrs[110] == pytest.approx(0.1) and lrs[119] == pytest.approx(0.1)  # floor = 10% of max


def test_warmup_is_capped_on_short_runs():
    assert schedule.effective_warmup(2000, 300, 0.1) == 30
    assert schedule.effective_warmup(2000, 10**6, 0.1) == 2000


def test_scheduler_updates_lr_every_step():
    model = tiny()
    opt = optimizer.config(model, lr=1.0)
    sched = schedule.init(opt, total_steps=100, warmup_steps=10, max_warmup_fraction=0.5)
    seen = []
    for _ in range(100):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen[:3] == pytest.approx([0.1, 0.2, 0.3])
    assert seen[-1] == pytest.approx(0.1, abs=1e-3)
    restored = schedule.init(optimizer.config(tiny(), lr=1.0), total_steps=100, warmup_steps=10, max_warmup_fraction=0.5)
    restored.load_state_dict(sched.state_dict())
    assert restored.last_epoch == sched.last_epoch


def test_clipping_bounds_exploding_gradients():
    model = tiny()
    for p in model.parameters():
        p.grad = torch.full_like(p, 1e6)
    before = optimizer.clip_gradients(model.parameters(), max_norm=1.0)
    after = torch.norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    assert before > 1e6 and math.isclose(float(after), 1.0, rel_tol=1e-4)
