"""Shared pieces of the training benchmarks: a synthetic six-task corpus and a step timer."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import lightning as L
import numpy as np

from elixir_coder.corpus.synthetic import lognormal_lengths, write_synthetic
from elixir_coder.labels import TASKS
from elixir_coder.training.data import ElixirDataModule


class StepTimer(L.Callback):
    """Wall time of each training step after ``warmup`` steps; ``median`` summarises them."""

    def __init__(self, warmup: int = 5):
        self.warmup, self.times, self._t = warmup, [], 0.0

    def on_train_batch_start(self, *args):
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step > self.warmup:
            self.times.append(time.perf_counter() - self._t)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def six_task_corpus(folder: Path, n: int = 4000, max_len: int = 256, median: int = 120) -> Path:
    return write_synthetic(folder / "tok", lognormal_lengths(n, median=median, max_len=max_len), tasks=np.arange(n) % len(TASKS))


def datamodule(data_dir: Path, batch_size: int, max_len: int, **kwargs) -> ElixirDataModule:
    return ElixirDataModule(data_dir=str(data_dir), batch_size=batch_size, max_len=max_len, tasks=list(TASKS),
                            prepare=False, **kwargs)
