"""kill -9 at random, unaligned points of a curriculum + GradNorm + contrastive run, then resume
from the run folder: parameters, loss weights, curriculum and contrastive state end bitwise
equal to those of an uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ARGS = ["task=multitask", "curriculum=tiered", "loss=gradnorm", "epoch_scale=0.1", "trainer.max_epochs=3",
        "trainer.limit_train_batches=8", "contrastive.max_anchors=8", "contrastive.epochs_per_tier=1", "contrastive.judge=builtin",
        "checkpoint_every_n_steps=3", "callbacks.monitor.every_n_steps=1", "validate_before_fit=false",
        "data.vocab_size=400", "data.max_len=64", "data.batch_size=8", "data.val_batch_size=16", "data.packing=false",
        "model.d_model=32", "model.n_layers=1", "model.n_heads=2", "model.max_len=64", "~callbacks.progress_bar",
        "trainer.log_every_n_steps=1"]


def last_step(run: Path) -> int:
    events = run / "events.jsonl"
    if not events.is_file():
        return -1
    steps = [json.loads(line)["measurements"].get("global_step", -1) for line in events.read_text().splitlines()
             if line.strip() and '"event": "step"' in line]
    return max(steps, default=-1)


def train(run: Path, cwd: Path, data_args: list[str], kill_after: int | None = None, resume: bool = False) -> None:
    args = [*data_args, *ARGS, f"hydra.run.dir={run}", *([f"ckpt_path={run}"] if resume else [])]
    proc = subprocess.Popen([sys.executable, "-m", "elixir_coder.cli.train", *args], cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if kill_after is not None:
        deadline = time.time() + 600
        while last_step(run) < kill_after:
            if proc.poll() is not None or time.time() > deadline:
                raise AssertionError(f"run ended before the kill (exit {proc.poll()}): {proc.stderr.read()[-3000:]}")
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        return
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]


def final_state(run: Path) -> dict:
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    callbacks = {k.split("{")[0]: v for k, v in ckpt["callbacks"].items() if k.startswith(("Curriculum", "RuleTiers"))}
    return {"step": ckpt["global_step"], "state": ckpt["state_dict"], "callbacks": callbacks,
            "beta": ckpt["elixir_coder"]["contrastive_beta"], "rng": ckpt["elixir_coder"]["rng"]["torch"]}


@pytest.mark.slow
@pytest.mark.elixir
@pytest.mark.skipif(shutil.which("elixir") is None, reason="install elixir: apt-get install -y elixir")
def test_killed_curriculum_gradnorm_contrastive_run_resumes_bitwise(tmp_path, tiny_corpus):
    data = [f"data.jsonl={tiny_corpus}", f"paths.data_dir={tmp_path}/data"]
    train(tmp_path / "whole", tmp_path, data)
    # Two kills at steps that are not checkpoint steps, in different epochs and phases.
    rng = random.Random(int(os.environ.get("KILL_SEED", "12")))
    first = rng.choice([s for s in range(4, 11) if s % 3])
    second = rng.choice([s for s in range(first + 4, 21) if s % 3])
    train(tmp_path / "crashed", tmp_path, data, kill_after=first)
    train(tmp_path / "crashed", tmp_path, data, kill_after=second, resume=True)
    train(tmp_path / "crashed", tmp_path, data, resume=True)
    whole, resumed = final_state(tmp_path / "whole"), final_state(tmp_path / "crashed")
    assert whole["step"] == resumed["step"] == 24
    assert whole["state"].keys() == resumed["state"].keys()
    differ = [k for k in whole["state"] if not torch.equal(whole["state"][k], resumed["state"][k])]
    assert not differ, f"kills after steps {first}, {second}: differ {differ[:8]}"
    assert not torch.equal(whole["state"]["weighting.current"], torch.ones_like(whole["state"]["weighting.current"]))
    assert whole["callbacks"] == resumed["callbacks"] and whole["beta"] == resumed["beta"]
    assert torch.equal(whole["rng"], resumed["rng"])
