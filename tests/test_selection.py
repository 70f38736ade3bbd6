"""Results a user relies on: a fresh last.ckpt, a selection metric with one meaning for the whole
run, and a macro F1 that scores an untrained classifier as untrained."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import lightning as L
import pytest
import torch

from elixir_coder.training import loop as training_loop
from elixir_coder.training.checkpoint import Checkpoint, resolve_ckpt_path
from elixir_coder.training.metrics import MacroF1

needs_elixir = pytest.mark.skipif(shutil.which("elixir") is None, reason="install elixir: apt-get install -y elixir")


def test_last_checkpoint_is_the_final_epoch_when_the_metric_stays_flat(make_cfg):
    """optimizer.lr=0: the validation metric never improves after the first top-K fill, so
    Lightning alone would leave last.ckpt at epoch 2."""
    cfg = make_cfg("optimizer.lr=0", "trainer.max_epochs=5")
    loop = training_loop.init(cfg)
    loop.trainer.fit(loop.module, datamodule=loop.datamodule)
    folder = Path(cfg.paths.output_dir) / "checkpoints"
    assert Checkpoint.load(folder / "last.ckpt").epoch == 4
    assert json.loads((folder / "last.json").read_text())["step"] == loop.trainer.global_step
    resolved = resolve_ckpt_path(cfg.paths.output_dir)
    assert Checkpoint.load(resolved).epoch == 4 and Checkpoint.load(resolved).step == loop.trainer.global_step


class LastStepProbe(L.Callback):
    """Records the step last.ckpt holds at the start of each batch (after the previous step's saves)."""

    def __init__(self, folder: Path):
        self.folder, self.seen = folder, {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        meta = self.folder / "last.json"
        if meta.is_file():
            self.seen[trainer.global_step] = json.loads(meta.read_text())["step"]


def test_last_checkpoint_follows_every_step_checkpoint(make_cfg):
    cfg = make_cfg("optimizer.lr=0", "trainer.max_epochs=2", "checkpoint_every_n_steps=3")
    loop = training_loop.init(cfg)
    probe = LastStepProbe(Path(cfg.paths.output_dir) / "checkpoints")
    loop.trainer.callbacks.insert(0, probe)
    loop.trainer.fit(loop.module, datamodule=loop.datamodule)
    per_epoch = loop.trainer.num_training_batches
    second_epoch = [s for s in probe.seen if s > per_epoch]
    assert second_epoch, probe.seen
    for step in second_epoch:  # in epoch 2 top-K never saves (flat metric): last.ckpt follows the step saves
        assert probe.seen[step] == max(per_epoch, step // 3 * 3), (step, probe.seen)


class SelectionRecorder(L.Callback):
    def __init__(self):
        self.epochs: list[dict[str, float]] = []

    def on_validation_end(self, trainer, pl_module):
        if trainer.state.fn == "fit":
            self.epochs.append({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")})


@pytest.mark.slow
@pytest.mark.elixir
@needs_elixir
def test_tiered_run_selects_on_a_metric_with_one_meaning(make_cfg):
    """The phases change the active tasks (code only, then + quality/security); val/select is the
    mean over the same tasks every epoch, and the best checkpoint is its minimum."""
    cfg = make_cfg("task=multitask", "curriculum=tiered", "epoch_scale=0.1", "trainer.max_epochs=4",
                   "optimizer.lr=3e-3", "trainer.limit_train_batches=8", "contrastive.max_anchors=8")
    loop = training_loop.init(cfg)
    recorder = SelectionRecorder()
    loop.trainer.callbacks.insert(0, recorder)
    loop.trainer.fit(loop.module, datamodule=loop.datamodule)
    tasks_of = [sorted(k for k in e if k.endswith("/loss") and k.count("/") == 2) for e in recorder.epochs]
    assert len(recorder.epochs) == 4 and all(t == tasks_of[0] for t in tasks_of)
    assert {"val/code_generation/loss", "val/quality/loss", "val/security/loss"} <= set(tasks_of[0])
    for e, tasks in zip(recorder.epochs, tasks_of):
        assert e["val/select"] == pytest.approx(sum(e[t] for t in tasks) / len(tasks), rel=1e-5)
    select = [e["val/select"] for e in recorder.epochs]
    best = Checkpoint.load(loop.trainer.checkpoint_callback.best_model_path)
    assert best.epoch == min(range(len(select)), key=select.__getitem__)
    assert float(loop.trainer.checkpoint_callback.best_model_score) == pytest.approx(min(select))


def test_untrained_classifiers_score_well_below_one(make_cfg):
    loop = training_loop.init(make_cfg("task=multitask"))
    metrics = training_loop.validate(loop)
    assert metrics["val/quality/f1"] < 0.6 and metrics["val/security/f1"] < 0.6, metrics


def test_macro_f1_leaves_out_labels_absent_from_predictions_and_targets():
    f1 = MacroF1(4)
    targets = torch.tensor([[1, 0, 0, 0], [0, 1, 0, 0]])
    assert float(f1(torch.tensor([[5.0, -5, -5, -5], [-5, 5, -5, -5]]), targets)) == 1.0  # labels 2, 3: absent, not counted
    # label 0 right, label 1 missed, label 3 predicted but never true: (1 + 0 + 0) / 3
    assert float(f1(torch.tensor([[5.0, -5, -5, 5], [-5, -5, -5, -5]]), targets)) == pytest.approx(1 / 3)
    assert float(f1(torch.full((2, 4), -5.0), torch.zeros(2, 4, dtype=torch.long))) == 0.0  # never "perfect" by absence
    assert not math.isnan(float(f1.compute()))
