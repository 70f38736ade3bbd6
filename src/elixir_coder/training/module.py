"""The LightningModule (spec 4.5): training and validation steps, optimizer and LR schedule.

Lightning's Trainer is the loop the spec builds with Axon.Loop: it drives ``training_step``,
runs ``validation_step`` under ``torch.no_grad``, steps the scheduler every optimizer step and
saves everything a resume needs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric

from elixir_coder.training.loss import IGNORE_INDEX, cross_entropy
from elixir_coder.training.optimizer import clip_gradients


class ElixirCoderModule(L.LightningModule):
    def __init__(
        self,
        model: nn.Module,
        optimizer: Callable[[nn.Module], torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        self.model = model
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.label_smoothing = label_smoothing
        self.val_loss = MeanMetric()
        self.val_token_acc = MeanMetric()
        self._tokens_in_batch = 0
        self._step_started: float | None = None

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(batch["input_ids"], position_ids=batch["position_ids"], segment_ids=batch["segment_ids"])

    def lm_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Language-model loss on completion tokens only; logits are computed just for those rows."""
        hidden = self(batch)
        target = batch["labels"] != IGNORE_INDEX
        labels = batch["labels"][target].long()
        logits = self.model.lm_logits(hidden[target])
        loss = cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        acc = (logits.detach().argmax(-1) == labels).float().mean() if labels.numel() else loss.detach() * 0
        return loss, acc, target.sum()

    # -- the training loop -------------------------------------------------------------------

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        self._step_started = time.perf_counter()
        self._tokens_in_batch = batch["n_tokens"]

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, acc, n_targets = self.lm_loss(batch)
        n = batch["input_ids"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        self.log("train/token_acc", acc, batch_size=n)
        return loss

    def on_train_batch_end(self, outputs, batch: dict, batch_idx: int) -> None:
        if self._step_started is not None:
            elapsed = time.perf_counter() - self._step_started
            self.log("train/tokens_per_s", self._tokens_in_batch / max(elapsed, 1e-9))

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        loss, acc, n_targets = self.lm_loss(batch)
        self.val_loss.update(loss, weight=n_targets)
        self.val_token_acc.update(acc, weight=n_targets)

    def on_validation_epoch_end(self) -> None:
        loss = self.val_loss.compute()
        self.log("val/loss", loss, prog_bar=True, sync_dist=False)
        self.log("val/token_acc", self.val_token_acc.compute())
        self.log("val/perplexity", torch.exp(loss.clamp(max=math.log(1e6))))
        self.val_loss.reset()
        self.val_token_acc.reset()

    # -- optimisation ------------------------------------------------------------------------

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.model)
        if self.scheduler_factory is None:
            return optimizer
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = self.scheduler_factory(optimizer, total_steps=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Spec 4.4.4 as a Lightning hook: clip by global norm before the update, log the pre-clip norm."""
        max_norm = float(gradient_clip_val) if gradient_clip_val else float("inf")
        norm = clip_gradients(self.model.parameters(), max_norm)
        self.log("train/grad_norm", norm)
