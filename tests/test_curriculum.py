"""Curriculum (spec 4.8): phases, active tasks, ramps, transitions, masked LM, resume."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from elixir_coder.config import conf_dir
from elixir_coder.corpus.synthetic import lognormal_lengths, write_synthetic
from elixir_coder.training import loop as training_loop
from elixir_coder.training.curriculum import Curriculum, active_tasks, current_phase, loss_weights, make_phases
from elixir_coder.training.data import DataLoader, IGNORE_INDEX, expand_batch

PHASES = make_phases(OmegaConf.to_container(OmegaConf.load(conf_dir() / "curriculum" / "phased.yaml").curriculum.phases))


@pytest.mark.parametrize("epoch, name", [(1, "code"), (10, "code"), (11, "annotation"), (30, "annotation"),
                                         (31, "full_ontology"), (50, "full_ontology"), (51, "all_tasks"), (500, "all_tasks")])
def test_phase_from_epoch_at_every_boundary(epoch, name):
    assert current_phase(PHASES, epoch).name == name


def test_active_tasks_per_phase():
    assert active_tasks(current_phase(PHASES, 1)) == ["code_generation"]
    assert active_tasks(current_phase(PHASES, 11)) == ["code_generation", "quality", "security"]
    assert active_tasks(current_phase(PHASES, 31)) == ["code_generation", "quality", "security", "test_generation"]
    assert len(active_tasks(current_phase(PHASES, 51))) == 6
    assert active_tasks(current_phase(PHASES, 51), enabled=["code_generation", "explanation"]) == ["code_generation", "explanation"]


def test_new_tasks_ramp_from_a_tenth_to_full_over_five_epochs():
    at = {e: loss_weights(PHASES, e) for e in (11, 13, 15, 16, 31)}
    assert at[11]["quality"] == pytest.approx(0.1) and at[11]["code_generation"] == 1.0
    assert at[13]["quality"] == pytest.approx(0.55)  # half way
    assert at[15]["quality"] == pytest.approx(1.0) and at[16]["quality"] == 1.0
    assert at[31]["test_generation"] == pytest.approx(0.1) and at[31]["quality"] == 1.0
    weighted = loss_weights(PHASES, 13, weights={"code_generation": 1.0, "quality": 0.5, "security": 0.5})
    assert weighted["quality"] == pytest.approx(0.275)


def test_epoch_scale_compresses_the_phases():
    specs = OmegaConf.to_container(OmegaConf.load(conf_dir() / "curriculum" / "phased.yaml").curriculum.phases)
    demo = make_phases(specs, epoch_scale=0.1)
    assert [(p.first_epoch, p.last_epoch) for p in demo] == [(1, 1), (2, 3), (4, 5), (6, None)]
    with pytest.raises(ValueError, match="must be consecutive"):
        make_phases([{**specs[0], "last_epoch": 5}, *specs[1:]])


def test_sampler_draws_only_active_tasks_and_mlm_masks_fifteen_percent(tmp_path, make_cfg):
    tasks = np.arange(3000) % 6
    d = write_synthetic(tmp_path / "tok", lognormal_lengths(3000, median=100, max_len=256), vocab_size=600, tasks=tasks)
    loader = DataLoader.new(d, "train", batch_size=64, max_len=256)
    loader.batch_sampler.set_candidates(np.flatnonzero(np.isin(loader.dataset.task_ids, [0, 3])))
    seen = torch.cat([b["task"] for b in loader])
    assert set(seen.tolist()) == {0, 3} and len(seen) == len(loader) * 64

    loader.mlm_rate = 0.15
    batch = expand_batch(next(iter(loader)))
    real = (batch["attention_mask"] == 1) & (batch["input_ids"] >= 0)
    masked = batch["labels"] != IGNORE_INDEX
    assert abs(masked.sum().item() / real.sum().item() - 0.15) < 0.01
    assert (batch["input_ids"][masked] == loader.dataset.mask_id).all()  # loss only where masked
    assert not (batch["input_ids"][~masked] == loader.dataset.mask_id).any()


class Messages(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_training_through_phases(make_cfg):
    """Each transition is announced exactly once; inactive heads get no gradient; weights ramp."""
    cfg = make_cfg("task=multitask", "curriculum=phased", "epoch_scale=0.1", "trainer.max_epochs=6")
    loop = training_loop.init(cfg)
    handler = Messages()
    logger = logging.getLogger("elixir_coder")
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    grads = {}

    class Probe(Curriculum.__mro__[1]):  # a plain lightning Callback
        def on_after_backward(self, trainer, module):
            if trainer.current_epoch == 0:
                grads["quality"] = module.heads.quality.weight.grad
                grads["embed"] = module.model.embed.weight.grad.abs().sum()

    loop.trainer.callbacks.append(Probe())
    try:
        loop.trainer.fit(loop.module, datamodule=loop.datamodule)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    transitions = [line for line in handler.lines if line.startswith("curriculum:")]
    assert [line.split("phase ")[1].split(" ")[0] for line in transitions] == ["'code'", "'annotation'", "'full_ontology'", "'all_tasks'"]
    assert grads["quality"] is None or grads["quality"].abs().sum() == 0  # quality inactive in phase 1
    assert grads["embed"] > 0
    metrics = loop.trainer.callback_metrics
    assert metrics["curriculum/phase"] == 4


def test_resume_mid_ramp_gives_the_same_weights(make_cfg):
    """A restored callback at epoch 13 (mid-ramp) sets exactly what an uninterrupted run sets."""
    specs = OmegaConf.to_container(OmegaConf.load(conf_dir() / "curriculum" / "phased.yaml").curriculum.phases)
    straight = Curriculum(specs)
    resumed = Curriculum(specs)
    resumed.load_state_dict(straight.state_dict())

    class Module:
        tasks = ["code_generation", "quality", "security", "test_generation"]
        task_scale = {}

    class Trainer:
        datamodule = None

    a, b = Module(), Module()
    for epoch in range(1, 14):
        straight.apply(Trainer(), a, epoch)
    resumed.on_load_checkpoint(Trainer(), b, {"epoch": 12})  # saved during epoch 13 (0-based 12)
    # Epoch 13 of `phased`: quality and security came in at epoch 11 and ramp 0.1 -> 1.0 over 5
    # epochs, so they stand at 0.1 + 0.9 * 2/4; the rule tiers are those of `annotation`.
    expected = {"code_generation": 1.0, "quality": pytest.approx(0.55), "security": pytest.approx(0.55)}
    assert a.task_scale == expected and b.task_scale == expected
    assert b.curriculum_phase == "annotation" and b.objective == "clm"
    assert b.label_mask == a.label_mask and 0 < sum(b.label_mask["quality"]) < len(b.label_mask["quality"])
