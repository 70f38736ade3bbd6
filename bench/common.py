"""Shared pieces of the training benchmarks: a synthetic six-task corpus and a wall-clock timer.

Every ratio the benches print compares two sides timed the same way: the total wall time of a
window of steps (data fetch, collation, expansion, the step, callbacks and logging all inside
it), divided by the steps in the window. A mean over a window, never a median: periodic costs
(logging every N steps, histograms, GradNorm every N steps) are what we want to see, and a
median hides exactly them. Windows should span several periods of the slowest periodic cost.
"""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
import numpy as np

from elixir_coder.corpus.synthetic import lognormal_lengths, write_synthetic
from elixir_coder.labels import TASKS
from elixir_coder.training.data import ElixirDataModule


class Window:
    """Wall time and real tokens from the end of step ``warmup`` to the end of the last step."""

    def __init__(self, warmup: int = 5):
        self.warmup, self.steps, self.tokens = warmup, 0, 0
        self.start = self.end = 0.0

    def step_done(self, step: int, tokens: int) -> None:
        """Call after each optimizer step (1-based ``step``) with the step's real tokens."""
        now = time.perf_counter()
        if step == self.warmup:
            self.start = now
        elif step > self.warmup:
            self.end, self.steps, self.tokens = now, self.steps + 1, self.tokens + tokens

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def mean_step(self) -> float:
        return self.seconds / max(self.steps, 1)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / max(self.seconds, 1e-12)


class WallTimer(L.Callback):
    """A ``Window`` over a Trainer run. Placed first in the callback list; its end-of-step time is
    taken before the other callbacks' ``on_train_batch_end``, which the next window step then
    includes (so every step's callbacks are counted exactly once)."""

    def __init__(self, warmup: int = 5):
        self.window = Window(warmup)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        main = batch.get("main", batch) if isinstance(batch, dict) else batch
        self.window.step_done(trainer.global_step, int(main.get("n_tokens", 0)))


def timed(trainer: L.Trainer, warmup: int = 5) -> Window:
    timer = WallTimer(warmup)
    trainer.callbacks.insert(0, timer)
    return timer.window


def six_task_corpus(folder: Path, n: int = 4000, max_len: int = 256, median: int = 120) -> Path:
    return write_synthetic(folder / "tok", lognormal_lengths(n, median=median, max_len=max_len), tasks=np.arange(n) % len(TASKS))


def datamodule(data_dir: Path, batch_size: int, max_len: int, **kwargs) -> ElixirDataModule:
    return ElixirDataModule(data_dir=str(data_dir), batch_size=batch_size, max_len=max_len, tasks=list(TASKS),
                            prepare=False, **kwargs)
