"""Logging (spec 4.7): metrics, the console table, and TensorBoard files read back with
TensorBoard's own reader."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from elixir_coder.training import loop as training_loop
from elixir_coder.training import metrics
from lightning.pytorch.callbacks import RichProgressBar

from elixir_coder.training.logging import PlainProgress, progress_bar


def test_metrics_compute_per_task_losses_and_accuracies():
    outputs = {
        "code_generation": (torch.tensor([[0.1, 2.0], [3.0, 0.0], [0.0, 1.0]]), torch.tensor([1, 0, 0])),
        "quality": (torch.tensor([[2.0, -1.0], [-3.0, 1.0]]), torch.tensor([[1.0, 0.0], [1.0, 1.0]])),
    }
    losses = {"code_generation": torch.tensor(0.7), "quality": torch.tensor(0.2)}
    out = metrics.compute(outputs, losses)
    assert out["code_generation/token_acc"] == pytest.approx(2 / 3)
    assert out["quality/accuracy"] == pytest.approx(3 / 4)
    assert out["code_generation/loss"] == pytest.approx(0.7)


def test_throughput_counts_real_tokens_over_a_window():
    t = metrics.Throughput()
    t.update(tokens=1000, samples=10)
    t.update(tokens=3000, samples=30)
    rates = t.compute()
    assert rates["tokens_per_s"] / rates["samples_per_s"] == pytest.approx(100.0)
    assert t.steps == 0  # a new window


class FakeStdout(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_bar_is_plain_off_a_terminal(monkeypatch):
    monkeypatch.setattr(sys, "stdout", FakeStdout(tty=False))
    assert isinstance(progress_bar(), PlainProgress)
    monkeypatch.setattr(sys, "stdout", FakeStdout(tty=True))
    bar = progress_bar()
    assert isinstance(bar, RichProgressBar) and not isinstance(bar, PlainProgress)


def test_console_table_and_tensorboard_events(make_cfg, capsys):
    cfg = make_cfg("task=multitask", "trainer.max_epochs=2", "callbacks.console_table.every_n_steps=4",
                   "callbacks.tensorboard_extras.histogram_every_n_steps=4",
                   "+callbacks.progress_bar={_target_: elixir_coder.training.logging.progress_bar}")
    loop = training_loop.init(cfg)
    loop.trainer.fit(loop.module, datamodule=loop.datamodule)
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.strip().startswith("step |"))
    assert {"epoch", "phase", "loss", "code_generation", "quality", "lr", "tok/s", "eta"} <= {c.strip() for c in header.split("|")}
    rows = [line for line in out.splitlines() if line.strip()[:1].isdigit() and line.count("|") == header.count("|")]
    assert len(rows) >= 2 and rows[0].split("|")[0].strip() == "4"
    assert "epoch 1 step" in out and "val/loss=" in out  # plain progress lines

    events = list((Path(cfg.paths.output_dir) / "tensorboard").glob("events.out.tfevents.*"))
    acc = EventAccumulator(str(events[0].parent), size_guidance={"histograms": 0, "scalars": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"train/loss", "train/code_generation/loss", "train/quality/loss", "train/quality/weight", "val/loss",
            "val/quality/f1", "train/tokens_per_s", "lr-AdamW/pg1"} <= set(tags["scalars"])
    assert any(t.startswith("weights/model.") for t in tags["histograms"])
    assert any(t.startswith("grads/model.") for t in tags["histograms"])
    assert "config/text_summary" in tags["tensors"]
    config_text = acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "d_model: 32" in config_text
    tensors = set()
    for path in events[0].parent.rglob("events.out.tfevents.*"):
        reader = EventAccumulator(str(path))
        reader.Reload()
        try:
            tensors |= set(reader.PluginTagToContent("hparams"))
        except KeyError:  # no hparams in this file
            pass
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= tensors
