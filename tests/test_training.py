"""The training loop (spec 4.5) through Lightning, and the `elixir-train` command end to end."""

from __future__ import annotations

import os
import subprocess
import sys

import lightning as L
import pytest
import torch

from elixir_coder.training import loop as training_loop
from elixir_coder.training.optimizer import config as adamw


class RecordSamples(L.Callback):
    def __init__(self):
        self.seen: list[int] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.seen += batch["index"].tolist()


def test_loop_initialises_from_config(make_cfg):
    loop = training_loop.init(make_cfg())
    assert loop.datamodule.vocab_size <= 400
    assert loop.module.model.vocab_size == loop.datamodule.vocab_size
    assert loop.trainer.max_epochs == 1


def test_training_step_updates_parameters(make_cfg):
    loop = training_loop.init(make_cfg())
    dm = loop.datamodule
    batch = dm.on_after_batch_transfer(dm.on_before_batch_transfer(next(iter(dm.loader("train"))), 0), 0)
    before = [p.detach().clone() for p in loop.module.model.parameters()]
    loss = training_loop.step_fn(loop.module, batch, adamw(loop.module.model, lr=1e-2))
    assert torch.isfinite(loss)
    assert all(not torch.equal(a, b) for a, b in zip(before, loop.module.model.parameters()))


def test_validation_computes_metrics(make_cfg):
    loop = training_loop.init(make_cfg())
    metrics = training_loop.validate(loop)
    assert set(metrics) >= {"val/loss", "val/code_generation/loss", "val/code_generation/token_acc", "val/perplexity"}
    lm = metrics["val/code_generation/loss"]
    assert lm > 0 and metrics["val/perplexity"] == pytest.approx(torch.tensor(lm).exp().item(), rel=1e-4)
    assert 0 <= metrics["val/code_generation/token_acc"] <= 1


def test_epoch_visits_every_training_sample_exactly_once(make_cfg):
    cfg = make_cfg("data.drop_last=false", "data.batch_size=7")
    loop = training_loop.init(cfg)
    recorder = RecordSamples()
    loop.trainer.callbacks.append(recorder)
    training_loop.run_epoch(loop)
    n = len(loop.datamodule.loader("train").dataset)
    assert sorted(recorder.seen) == list(range(n))
    first = recorder.seen[:]
    recorder.seen.clear()
    training_loop.run_epoch(loop)  # reshuffled for the next epoch
    assert sorted(recorder.seen) == list(range(n)) and recorder.seen != first


@pytest.mark.slow
def test_elixir_train_end_to_end(tmp_path, tiny_corpus):
    """The console script: prepares data, trains, validates better than it started, writes a run folder."""
    out = subprocess.run(
        [sys.executable, "-m", "elixir_coder.cli.train", f"data.jsonl={tiny_corpus}", "data.vocab_size=400",
         "data.max_len=128", "trainer.max_epochs=3", "optimizer.lr=3e-3", "model.d_model=64", "model.n_layers=2",
         "model.max_len=128", f"hydra.run.dir={tmp_path}/run"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "120"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Preparing the tokenized corpus from data.jsonl in data/tokenized" in out.stdout
    run = tmp_path / "run"
    assert (run / ".hydra" / "config.yaml").is_file()
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert "last.ckpt" in ckpts and any(name.startswith("model-") for name in ckpts)
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert (tmp_path / "data" / "tokenized" / "meta.json").is_file()  # relative to where we started
    line = next(line for line in out.stdout.splitlines() + out.stderr.splitlines() if "before training ->" in line)
    first, last = [float(tok) for tok in line.split() if tok.replace(".", "").isdigit()][:2]
    assert last < 0.8 * first


def test_cluster_presets_compose():
    """The SLURM launcher preset (hydra-submitit-launcher) and the Optuna sweeper preset resolve."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from elixir_coder.config import conf_dir

    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=8", "trainer.num_nodes=2",
                                           "hparams_search=loss_weights"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 8, 8)
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper") and cfg.hydra.sweeper.n_trials == 20
    assert OmegaConf.select(cfg, "trainer.strategy._target_").endswith("DDPStrategy")


@pytest.mark.slow
def test_sweeps_leave_complete_job_folders(tmp_path, tiny_corpus):
    """A grid over a loss weight and a 3-trial Optuna search both run to the end."""
    fast = [f"data.jsonl={tiny_corpus}", "data.vocab_size=400", "data.max_len=64", "model.d_model=32", "model.n_layers=1",
            "model.n_heads=2", "model.max_len=64", "trainer.max_epochs=1", "trainer.limit_train_batches=3",
            "task=multitask", "~callbacks.progress_bar"]
    grid = subprocess.run([sys.executable, "-m", "elixir_coder.cli.train", "-m", "loss.weights.quality=0.25,1.0", *fast,
                           f"hydra.sweep.dir={tmp_path}/grid"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert grid.returncode == 0, grid.stderr[-2000:]
    jobs = sorted(p for p in (tmp_path / "grid").iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1"]
    for job in jobs:
        assert (job / ".hydra" / "overrides.yaml").is_file() and (job / "checkpoints" / "last.ckpt").is_file()
    optuna = subprocess.run([sys.executable, "-m", "elixir_coder.cli.train", "-m", "hparams_search=loss_weights",
                             "hydra.sweeper.n_trials=3", *fast, f"hydra.sweep.dir={tmp_path}/optuna"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert optuna.returncode == 0, optuna.stderr[-2000:]
    results = (tmp_path / "optuna" / "optimization_results.yaml").read_text()
    assert "best_params" in results and "loss.weights.quality" in results
