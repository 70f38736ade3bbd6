"""DDP through Lightning (2 gloo processes on CPU) against one process with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

FAST = ["data.vocab_size=600", "trainer.max_epochs=2", "validate_before_fit=false", "model.d_model=32", "model.n_layers=1",
        "model.n_heads=2", "task=multitask", "~experiment", "data.max_len=128", "model.max_len=128",
        "scheduler.warmup_steps=5", "~callbacks.progress_bar"]


def train(tmp_path, corpus, run: str, *extra: str) -> dict:
    args = [f"data.jsonl={corpus}", f"data.data_dir={tmp_path}/data", *FAST, *extra, f"hydra.run.dir={tmp_path}/{run}"]
    out = subprocess.run([sys.executable, "-m", "elixir_coder.cli.train", *args], cwd=tmp_path, capture_output=True,
                         text=True, timeout=900, env={**os.environ})
    assert out.returncode == 0, out.stderr[-3000:]
    return torch.load(tmp_path / run / "checkpoints" / "last.ckpt", weights_only=True)


@pytest.mark.slow
@pytest.mark.parametrize("setting", [[], ["loss=gradnorm", "curriculum=phased", "epoch_scale=0.1"]], ids=["static", "gradnorm+curriculum"])
def test_two_gloo_ranks_match_one_process(tmp_path, tiny_corpus, setting):
    single = train(tmp_path, tiny_corpus, "single", "data.batch_size=8", *setting)
    ddp = train(tmp_path, tiny_corpus, "ddp", "trainer=ddp_cpu", "data.batch_size=4", *setting)
    assert single["global_step"] == ddp["global_step"] > 0
    for key, value in single["state_dict"].items():
        if value.is_floating_point():
            torch.testing.assert_close(ddp["state_dict"][key], value, atol=1e-5, rtol=1e-4, msg=key)
    # One run folder for both ranks (Lightning relaunches rank 1 into the parent's hydra.run.dir),
    # and checkpoints written once, by rank 0.
    folder = tmp_path / "ddp"
    assert (folder / "train_ddp_process_1.log").is_file()
    assert sorted(p.name for p in (folder / "checkpoints").glob("*.ckpt")) == ["last.ckpt", "model-0.ckpt", "model-1.ckpt"]
    assert not list(tmp_path.glob("outputs"))
