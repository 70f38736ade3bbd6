"""The training loop (spec 4.5) under the spec's names, built on Lightning's Trainer.

``init`` composes the DataModule, LightningModule and Trainer from the Hydra config; the Trainer
is the loop. ``step_fn``, ``validate`` and ``run_epoch`` are the spec's entry points for driving
it one piece at a time (tests, notebooks, debugging).
"""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from elixir_coder.training.data import ElixirDataModule
from elixir_coder.training.loss import GradNorm, GradNormWeighting
from elixir_coder.training.module import ElixirCoderModule


@dataclass
class Loop:
    datamodule: ElixirDataModule
    module: ElixirCoderModule
    trainer: L.Trainer


def init(cfg: DictConfig) -> Loop:
    """Spec 4.5.1: seed, prepare the data, build model + optimizer + loss + metrics, and the Trainer."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule: ElixirDataModule = instantiate(cfg.data)
    datamodule.prepare_data()
    model = instantiate(cfg.model, vocab_size=datamodule.vocab_size)
    weighting = instantiate(cfg.loss.weighting)
    module = ElixirCoderModule(
        model=model,
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        tasks=list(cfg.task.tasks),
        weighting=weighting,
        label_smoothing=cfg.loss.label_smoothing,
    )
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    if isinstance(weighting, GradNormWeighting):
        callbacks.append(GradNorm())
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    return Loop(datamodule, module, trainer)


def step_fn(module: ElixirCoderModule, batch: dict, optimizer: torch.optim.Optimizer) -> torch.Tensor:
    """Spec 4.5.2: one step outside the Trainer (forward, loss, backward, update); returns the loss."""
    module.train()
    optimizer.zero_grad(set_to_none=True)
    losses = module.task_losses(module.task_outputs(batch))
    loss, _ = module.weighting.combine(losses, module.task_scale)
    loss.backward()
    optimizer.step()
    return loss.detach()


def validate(loop: Loop) -> dict[str, float]:
    """Spec 4.5.3: a validation pass without gradients; returns the logged metrics."""
    results = loop.trainer.validate(loop.module, datamodule=loop.datamodule, verbose=False)
    return {k: float(v) for k, v in results[0].items()} if results else {}


def run_epoch(loop: Loop, ckpt_path: str | None = None) -> dict[str, float]:
    """Spec 4.5.4: train one more epoch (the sampler reshuffles for it) and return the metrics."""
    loop.trainer.fit_loop.max_epochs = loop.trainer.current_epoch + 1
    loop.trainer.fit(loop.module, datamodule=loop.datamodule, ckpt_path=ckpt_path)
    return {k: float(v) for k, v in loop.trainer.callback_metrics.items()}
