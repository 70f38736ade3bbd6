"""What a person watching a run sees (spec 4.7.2-4.7.3): a compact console table every N steps,
a progress bar that stays clean (plain lines when stdout is not a terminal), and TensorBoard
extras Lightning's logger does not write by itself: weight and gradient histograms, the resolved
config as text, and hparams with the final metrics.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar


def _fmt(value: float) -> str:
    if value != value or math.isinf(value):
        return str(value)
    return f"{value:.3g}" if abs(value) < 1e-2 or abs(value) >= 1e4 else f"{value:.4f}".rstrip("0").rstrip(".")


def _eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class ConsoleTable(L.Callback):
    """Spec 4.7.2: one row every ``every_n_steps`` steps: step, epoch, phase, loss, per-task
    losses, learning rate, tokens/s and ETA, with a header row at the start.

    Printed through the rich progress bar's console when there is one (so the bar is redrawn
    below the row instead of being torn), otherwise as plain text lines.
    """

    def __init__(self, every_n_steps: int = 100):
        super().__init__()
        self.every_n_steps = every_n_steps
        self._tokens = 0
        self._window_start = time.perf_counter()
        self._columns: list[str] | None = None

    def _print(self, trainer: L.Trainer, line: str) -> None:
        bar = trainer.progress_bar_callback
        console = getattr(getattr(bar, "progress", None), "console", None)
        if isinstance(bar, RichProgressBar) and console is not None:
            console.print(line, markup=False, highlight=False, soft_wrap=True)  # a table row is one line, however wide
        else:
            print(line, flush=True)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._window_start, self._tokens = time.perf_counter(), 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        main = batch.get("main", batch) if isinstance(batch, dict) else None  # {"main", "pairs"} with contrastive pairs
        self._tokens += int(main.get("n_tokens", 0)) if isinstance(main, dict) else 0
        step = trainer.global_step
        if step == 0 or step % self.every_n_steps or not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        tasks = [k.split("/")[1] for k in metrics if k.startswith("train/") and k.endswith("/loss") and k.count("/") == 2]
        if self._columns is None:
            self._columns = ["step", "epoch", "phase", "loss", *tasks, "lr", "tok/s", "eta"]
            self._print(trainer, " | ".join(c.rjust(max(10, len(c))) for c in self._columns))
        elapsed = max(time.perf_counter() - self._window_start, 1e-9)
        rate = self._tokens / elapsed
        step_time = elapsed / self.every_n_steps
        total = getattr(pl_module, "total_steps", None) or trainer.estimated_stepping_batches
        eta = _eta((total - step) * step_time) if total not in (None, float("inf")) else "?"
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
        curriculum = getattr(pl_module, "curriculum_phase", "") or "-"
        row = {"step": str(step), "epoch": str(trainer.current_epoch), "phase": curriculum[:10],
               "loss": _fmt(float(metrics.get("train/loss", float("nan")))), "lr": f"{lr:.2e}",
               "tok/s": f"{rate:,.0f}", "eta": eta}
        for task in tasks:
            row[task] = _fmt(float(metrics[f"train/{task}/loss"]))
        self._print(trainer, " | ".join(row.get(c, "").rjust(max(10, len(c))) for c in self._columns))
        self._window_start, self._tokens = time.perf_counter(), 0


def callback(every_n_steps: int = 100) -> ConsoleTable:
    """Spec 4.7.2.1: the console logging callback."""
    return ConsoleTable(every_n_steps)


class PlainProgress(ProgressBar):
    """For logs that are not terminals (CI, ``| tee``): one plain line per finished epoch and
    validation, no carriage returns or redraws."""

    def __init__(self):
        super().__init__()
        self._enabled = True

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _line(self, trainer: L.Trainer, prefix: str) -> None:
        if not (self._enabled and trainer.is_global_zero):
            return
        shown = {k: v for k, v in trainer.callback_metrics.items() if k.startswith(prefix) and k.count("/") == 1}
        text = " ".join(f"{k}={_fmt(float(v))}" for k, v in sorted(shown.items()))
        print(f"epoch {trainer.current_epoch} step {trainer.global_step}: {text}", flush=True)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._line(trainer, "train/")

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._line(trainer, "val/")


def progress_bar(refresh_rate: int = 1) -> ProgressBar:
    """A rich progress bar on a terminal, plain epoch lines otherwise."""
    return RichProgressBar(refresh_rate=refresh_rate) if sys.stdout.isatty() else PlainProgress()


class TensorBoardExtras(L.Callback):
    """Spec 4.7.3: histograms of weights and gradients every ``histogram_every_n_steps`` steps,
    the resolved config as a text entry, and hparams with the final metrics at the end."""

    def __init__(self, histogram_every_n_steps: int = 200, config_yaml: str = "", hparams: dict | None = None):
        super().__init__()
        self.every = histogram_every_n_steps
        self.config_yaml = config_yaml
        self.hparams = hparams or {}

    @staticmethod
    def _writers(trainer: L.Trainer):
        return [lg.experiment for lg in trainer.loggers if hasattr(getattr(lg, "experiment", None), "add_histogram")]

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero and self.config_yaml:
            for writer in self._writers(trainer):
                writer.add_text("config", f"```yaml\n{self.config_yaml}\n```", global_step=trainer.global_step)

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        step = trainer.global_step
        if not self.every or step % self.every or not trainer.is_global_zero:
            return
        for writer in self._writers(trainer):
            for name, p in pl_module.named_parameters():
                writer.add_histogram(f"weights/{name}", p.detach().float().cpu(), step)
                if p.grad is not None:
                    writer.add_histogram(f"grads/{name}", p.grad.detach().float().cpu(), step)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        final = {f"final/{k}": float(v) for k, v in trainer.callback_metrics.items()
                 if isinstance(v, torch.Tensor) and v.numel() == 1 and k.startswith("val/")}
        for lg in trainer.loggers:
            if final and hasattr(lg, "log_hyperparams"):
                lg.log_hyperparams(self.hparams, final)
