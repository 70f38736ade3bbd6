"""Features that must change what a Trainer run does: adaptive task weights, the InfoNCE
gradient, the masked-LM phase, and the curriculum state a checkpoint records."""

from __future__ import annotations

import shutil
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import open_dict

from elixir_coder.training import loop as training_loop
from elixir_coder.training.checkpoint import Checkpoint

needs_elixir = pytest.mark.skipif(shutil.which("elixir") is None, reason="install elixir: apt-get install -y elixir")


def fit(cfg):
    loop = training_loop.init(cfg)
    loop.trainer.fit(loop.module, datamodule=loop.datamodule)
    return loop


def test_gradnorm_moves_the_weights_inside_a_trainer_run(make_cfg):
    loop = fit(make_cfg("task=multitask", "loss=gradnorm"))
    w = loop.module.weighting
    start = w.base / w.base.sum() * len(w.tasks)
    trained = [w.index(t) for t in ("code_generation", "quality", "security")]  # the tasks with data
    assert bool(w.has_initial[trained].all())
    assert (w.current[trained] - start[trained]).abs().max() > 1e-3, (w.current, start)
    assert torch.isclose(w.current.sum(), torch.tensor(float(len(w.tasks))))


def test_uncertainty_weighting_learns_its_variances_inside_a_trainer_run(make_cfg):
    loop = fit(make_cfg("task=multitask", "loss=uncertainty", "optimizer.lr=1e-2"))
    w = loop.module.weighting
    trained = [w.index(t) for t in ("code_generation", "quality", "security")]
    untrained = [w.index(t) for t in ("test_generation", "clarification", "explanation")]
    log_vars = w.log_vars.detach()
    assert log_vars[trained].abs().min() > 1e-3  # learned
    assert torch.equal(log_vars[untrained], torch.zeros(3))  # no data, no gradient
    assert len({round(float(v), 4) for v in log_vars[trained]}) == 3  # each task its own


@pytest.mark.elixir
@needs_elixir
def test_infonce_gradient_reaches_the_backbone(make_cfg):
    loop = training_loop.init(make_cfg("task=multitask", "use_contrastive=true", "contrastive.max_anchors=8"))
    module = loop.module
    pairs = next(iter(loop.datamodule.pairs_loader()))
    loss, _ = module.contrastive_loss(pairs)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    for name, p in [("embed", module.model.embed.weight), ("attention", module.model.blocks[0].attn.qkv.weight),
                    ("projection", module.heads.projection[0].weight)]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name


class Losses(L.Callback):
    def __init__(self):
        self.losses, self.masked = [], []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))
        self.masked.append("mlm_labels" in batch and bool((batch["mlm_labels"] != -100).any()))


def test_masked_lm_phase_trains(make_cfg):
    cfg = make_cfg("curriculum=phased", "epoch_scale=0.2", "trainer.max_epochs=2", "optimizer.lr=3e-3")
    with open_dict(cfg):
        cfg.curriculum.phases[0].objective = "mlm"
    loop = training_loop.init(cfg)
    probe = Losses()
    causal = []
    forward = loop.module.model.forward

    def spy(*args, **kwargs):
        causal.append((loop.module.training, kwargs.get("causal")))
        return forward(*args, **kwargs)

    loop.module.model.forward = spy
    loop.trainer.callbacks.append(probe)
    loop.trainer.fit(loop.module, datamodule=loop.datamodule)
    assert probe.masked and all(probe.masked)  # every training batch of the phase masks tokens
    in_training = [c for training, c in causal if training]
    assert len(in_training) == len(probe.losses) and not any(in_training)  # bidirectional attention
    first, last = sum(probe.losses[:5]) / 5, sum(probe.losses[-5:]) / 5
    assert last < 0.8 * first, (first, last)


def test_checkpoint_view_holds_the_curriculum_state(make_cfg):
    cfg = make_cfg("task=multitask", "curriculum=phased", "epoch_scale=0.1", "trainer.max_epochs=2")
    fit(cfg)
    view = Checkpoint.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt")
    assert view.curriculum["phase"] == "annotation" and view.curriculum["epoch"] == 2
    assert view.curriculum["scale"]["quality"] < 1.0 and view.curriculum["transitions"] == 2
