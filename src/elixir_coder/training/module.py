"""The LightningModule (spec 4.5): one shared backbone, task heads, weighted multi-task loss.

Lightning's Trainer is the loop the spec builds with Axon.Loop: it drives ``training_step``,
runs ``validation_step`` under ``torch.no_grad``, steps the scheduler every optimizer step and
saves everything a resume needs (the weighting strategy's parameters and buffers included).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MultilabelAccuracy

from elixir_coder.errors import ElixirCoderError
from elixir_coder.labels import CLASSIFICATION_TASKS, QUALITY_LABELS, SECURITY_LABELS, TASKS
from elixir_coder.model.heads import TaskHeads, pool
from elixir_coder.training.checkpoint import FORMAT_VERSION, KEY, check_architecture
from elixir_coder.training import metrics
from elixir_coder.training.metrics import MacroF1, Throughput
from elixir_coder.training.loss import (
    IGNORE_INDEX,
    ContrastiveBeta,
    TaskWeighting,
    contrastive_multi_task,
    cross_entropy,
    info_nce,
    multi_label_bce,
)
from elixir_coder.training.optimizer import clip_gradients

class NonFiniteLossError(ElixirCoderError):
    """Training diverged: the loss stayed NaN/inf for too many steps."""


SELECTION_METRIC = "val/select"
N_LABELS = {"quality": len(QUALITY_LABELS), "security": len(SECURITY_LABELS)}


class ElixirCoderModule(L.LightningModule):
    def __init__(
        self,
        model: nn.Module,
        optimizer: Callable[[nn.Module], torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        tasks: Sequence[str] = ("code_generation",),
        weighting: TaskWeighting | None = None,
        label_smoothing: float = 0.0,
        projection_dim: int = 128,
        max_nonfinite_steps: int = 10,
        config_yaml: str = "",
        contrastive: dict | None = None,
    ):
        super().__init__()
        self.model = model
        self.tasks = list(tasks)
        self.heads = TaskHeads(model.d_model, N_LABELS["quality"], N_LABELS["security"], projection_dim)
        self.weighting = weighting if weighting is not None else TaskWeighting(self.tasks)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.label_smoothing = label_smoothing
        # Curriculum scale per task (1.0 = full weight); the curriculum callback updates it.
        self.task_scale: dict[str, float] = {t: 1.0 for t in self.tasks}
        # Per-label weights of the classification losses (the curriculum's rule tiers); None = all.
        self.label_mask: dict[str, list[float]] | None = None
        self.last_task_losses: dict[str, torch.Tensor] = {}
        # Token-weighted means over the whole validation set; "a__b" is logged as "val/a/b".
        self.val_means = nn.ModuleDict({"loss": MeanMetric()})
        for t in self.tasks:
            self.val_means[f"{t}__loss"] = MeanMetric()
            if t not in CLASSIFICATION_TASKS:
                self.val_means[f"{t}__token_acc"] = MeanMetric()
        self.cls_metrics = nn.ModuleDict({
            f"{stage}_{t}": MetricCollection({
                "f1": MacroF1(N_LABELS[t]),
                "acc": MultilabelAccuracy(N_LABELS[t]),
            })
            for t in self.tasks if t in CLASSIFICATION_TASKS for stage in ("train", "val")
        })
        self.throughput = Throughput()
        self.total_steps: int | None = None  # what the LR schedule spans (also the console's ETA)
        self.curriculum_phase = ""
        self.max_nonfinite_steps = max_nonfinite_steps
        self.nonfinite_in_a_row = 0
        self.nonfinite_total = 0
        self.config_yaml = config_yaml  # saved in every checkpoint, for resume checks and provenance
        # InfoNCE on clean/violating pairs beside the primary objectives (use_contrastive=true).
        self.contrastive = dict(contrastive) if contrastive and contrastive.get("enabled") else None
        self.beta = None
        if self.contrastive is not None:
            c = self.contrastive
            self.beta = ContrastiveBeta(c["beta"], c["beta_min"], c["beta_max"], c["beta_target"], c["beta_gain"], c["beta_metric"])

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # Masked-LM batches (a curriculum phase) attend in both directions.
        causal = "mlm_labels" not in batch
        return self.model(batch["input_ids"], position_ids=batch["position_ids"], segment_ids=batch["segment_ids"],
                          causal=causal)

    def task_outputs(self, batch: dict, tasks=None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Predictions and targets of every task of ``tasks`` (default: the active ones) present
        in the batch.

        Generation tasks: next-token logits, computed only at target positions. Classification
        tasks: head logits on each sample's pooled representation. Inactive tasks' heads are not
        run in training, so they get no gradient and cost nothing.
        """
        hidden = self(batch)
        tasks = self.task_scale if tasks is None else tasks
        present = [TASKS[i] for i in batch["tasks_present"] if TASKS[i] in tasks]
        outputs = {}
        generation = [t for t in present if t not in CLASSIFICATION_TASKS]
        if generation:
            target = batch["labels"] != IGNORE_INDEX
            logits = self.model.lm_logits(hidden[target])
            labels = batch["labels"][target]
            token_task = batch["task"][batch["sample_index"][target]]
            in_batch = [TASKS[i] for i in batch["tasks_present"] if TASKS[i] not in CLASSIFICATION_TASKS]
            if in_batch == generation and len(generation) == 1:  # one task: no split, no copy of the logits
                outputs[generation[0]] = (logits, labels)
            else:
                for t in generation:
                    m = token_task == TASKS.index(t)
                    outputs[t] = (logits[m], labels[m])
        classification = [t for t in present if t in CLASSIFICATION_TASKS]
        if classification:
            pooled = pool(hidden, batch["sample_index"], batch["task"].numel())
            for t in classification:
                m = batch["task"] == TASKS.index(t)
                outputs[t] = (self.heads.classify(t, pooled[m]), batch[t][m])
        return outputs

    def task_losses(self, outputs: dict) -> dict[str, torch.Tensor]:
        mask = self.label_mask or {}
        losses = {
            t: multi_label_bce(p, y, mask.get(t)) if t in CLASSIFICATION_TASKS else cross_entropy(p, y, self.label_smoothing)
            for t, (p, y) in outputs.items()
        }
        if self.training and self._world_size() > 1:
            losses = self._normalise_across_ranks(losses, outputs)
        return losses

    def _world_size(self) -> int:
        return self._trainer.world_size if self._trainer is not None else 1

    def _task_vector(self, values: dict[str, torch.Tensor | float]) -> torch.Tensor:
        vec = torch.zeros(len(TASKS), device=self.device)
        for t, v in values.items():
            vec[TASKS.index(t)] = v
        return vec

    def _normalise_across_ranks(self, losses: dict, outputs: dict) -> dict[str, torch.Tensor]:
        """Under DDP each rank's mean becomes its share of the *global* mean (its sum divided by
        the global count / world size), so the averaged gradient equals a single process's on
        the same global batch even when ranks hold different numbers of target tokens."""
        counts = self._task_vector({t: float(y.shape[0]) for t, (_, y) in outputs.items()})
        total = self.trainer.strategy.reduce(counts.clone(), reduce_op="sum")
        world = self._world_size()
        return {t: loss * counts[TASKS.index(t)] * world / total[TASKS.index(t)].clamp(min=1) for t, loss in losses.items()}

    def _mean_across_ranks(self, losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Detached per-task losses of the whole global batch, identical on every rank. Each
        rank's loss is already its share of the global mean (``_normalise_across_ranks``), so
        the global value is their sum over ranks divided by the world size."""
        world = self._world_size()
        if world == 1:
            return {t: v.detach() for t, v in losses.items()}
        both = torch.stack([self._task_vector({t: v.detach() for t, v in losses.items()}),
                            self._task_vector({t: 1.0 for t in losses})])
        both = self.trainer.strategy.reduce(both, reduce_op="sum")
        return {TASKS[i]: both[0, i] / world for i in range(len(TASKS)) if both[1, i] > 0}

    # -- the training loop -------------------------------------------------------------------

    def on_train_start(self) -> None:
        self.throughput.reset()

    def contrastive_loss(self, pairs: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """InfoNCE between anchors, their positives and their negatives (rows laid out by
        ``PairBatches.tensors``), on the projection of each row's pooled representation;
        also the share of anchors closer to their positive than to every negative."""
        seg = pairs["segment_ids"]
        hidden = self.model(pairs["input_ids"], position_ids=pairs["position_ids"], segment_ids=seg)
        rows = torch.arange(seg.shape[0], device=seg.device)[:, None].expand_as(seg)
        z = self.heads.projection(pool(hidden, torch.where(seg > 0, rows, -1), seg.shape[0]))
        a_n, m = pairs["n_anchors"], pairs["n_negatives"]
        anchors, positives, negatives = z[:a_n], z[a_n : 2 * a_n], z[2 * a_n :].view(a_n, m, -1)
        c = self.contrastive
        loss = info_nce(anchors, positives, negatives, c["temperature"], c["in_batch_negatives"])
        with torch.no_grad():
            a = torch.nn.functional.normalize(anchors, dim=-1)
            pos = (a * torch.nn.functional.normalize(positives, dim=-1)).sum(-1)
            neg = torch.einsum("nd,nmd->nm", a, torch.nn.functional.normalize(negatives, dim=-1)).amax(-1)
        return loss, (pos > neg).float().mean()

    def training_loss(self, batch: dict) -> tuple[torch.Tensor, dict, dict, dict, dict]:
        """The step's total loss and its parts: per-task outputs, losses, weights, and the
        contrastive figures (empty unless use_contrastive and a pair batch rides along)."""
        pairs = None
        if "main" in batch:
            pairs, batch = batch.get("pairs"), batch["main"]
        outputs = self.task_outputs(batch)
        losses = self.task_losses(outputs)
        total, weights = self.weighting.combine(losses, self.task_scale)
        extra = {}
        if pairs is not None and self.contrastive is not None:
            c_loss, c_acc = self.contrastive_loss(pairs)
            total = contrastive_multi_task(total, c_loss, self.contrastive["alpha"], self.beta.beta)
            extra = {"train/contrastive/loss": c_loss, "train/contrastive/accuracy": c_acc,
                     "train/contrastive/beta": self.beta.beta}
        return total, outputs, losses, weights, extra

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        total, outputs, losses, weights, extra = self.training_loss(batch)
        batch = batch.get("main", batch)
        if extra:
            self.log_dict(extra, batch_size=batch["input_ids"].shape[0])
        if not torch.isfinite(total):
            return self.skip_nonfinite(losses)
        self.nonfinite_in_a_row = 0
        self.weighting.observe(self._mean_across_ranks(losses))
        self.last_task_losses = losses  # with their graphs, for the GradNorm callback
        n = batch["input_ids"].shape[0]
        self.log("train/loss", total, prog_bar=True, batch_size=n)
        self.throughput.update(batch["n_tokens"], batch["task"].numel())
        # Per-task metrics only on the steps the logger writes: computing and logging them every
        # step would cost more than the tiny model's step on a CPU.
        if self.global_step % self.trainer.log_every_n_steps == 0:
            self.log_dict({f"train/{k}": v for k, v in metrics.compute(outputs, losses).items()}, batch_size=n)
            self.log_dict({f"train/{t}/weight": w for t, w in weights.items()}, batch_size=n)
            for t in losses:
                if t in CLASSIFICATION_TASKS and outputs[t][1].numel():
                    f1 = self.cls_metrics[f"train_{t}"]["f1"]
                    self.log(f"train/{t}/f1", f1(outputs[t][0].detach(), outputs[t][1].long()), batch_size=n)
        return total

    def skip_nonfinite(self, losses: dict[str, torch.Tensor]) -> None:
        """A non-finite loss skips the step (Lightning skips the update when the step returns
        None); too many in a row stop the run before anything non-finite can be saved."""
        self.nonfinite_in_a_row += 1
        self.nonfinite_total += 1
        self.log("train/nonfinite_steps", float(self.nonfinite_total))
        if self.nonfinite_in_a_row >= self.max_nonfinite_steps:
            bad = ", ".join(t for t, v in losses.items() if not torch.isfinite(v)) or "the total"
            raise NonFiniteLossError(
                f"non-finite loss ({bad}) in {self.nonfinite_in_a_row} steps in a row at step {self.global_step}; "
                "lower optimizer.lr, check the data, or raise max_nonfinite_steps"
            )
        return None

    def on_train_batch_end(self, outputs, batch: dict, batch_idx: int) -> None:
        if self.global_step % self.trainer.log_every_n_steps == 0 and self.throughput.steps:
            self.log_dict({f"train/{k}": v for k, v in self.throughput.compute().items()})

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        # Every task of the run, active or not, without the curriculum's label masks: the
        # per-task losses (and the selection metric built from them) mean the same in every epoch.
        outputs = self.task_outputs(batch, self.tasks)
        losses = {t: multi_label_bce(p, y) if t in CLASSIFICATION_TASKS else cross_entropy(p, y, self.label_smoothing)
                  for t, (p, y) in outputs.items()}
        active = {t: v for t, v in losses.items() if t in self.task_scale}
        if active:  # the weighted objective of the active tasks, as trained (val/loss)
            self.val_means["loss"].update(self.weighting.combine(active)[0], weight=batch["n_tokens"])
        for t, loss in losses.items():
            preds, targets = outputs[t]
            count = targets.shape[0]
            if count == 0:
                continue
            self.val_means[f"{t}__loss"].update(loss, weight=count)
            if t in CLASSIFICATION_TASKS:
                self.cls_metrics[f"val_{t}"].update(preds, targets.long())
            else:
                acc = (preds.argmax(-1) == targets).float().mean()
                self.val_means[f"{t}__token_acc"].update(acc, weight=count)

    def on_validation_epoch_end(self) -> None:
        self._log_validation()
        if self.beta is not None and not self.trainer.sanity_checking:
            self.beta.update(self.trainer.callback_metrics)

    def _log_validation(self) -> None:
        task_means = []
        for name, metric in self.val_means.items():
            if metric.update_count:
                value = metric.compute()
                if name.endswith("__loss"):
                    task_means.append(value)
                self.log("val/" + name.replace("__", "/"), value, prog_bar=name == "loss")
                if name == "code_generation__loss":
                    self.log("val/perplexity", torch.exp(value.clamp(max=math.log(1e6))))
            metric.reset()
        if task_means:
            # The selection metric (checkpoints, before/after, sweeps): the unweighted mean of the
            # per-task losses over every task with validation data, whatever the curriculum,
            # the weighting strategy or its current weights.
            self.log(SELECTION_METRIC, torch.stack(task_means).mean(), prog_bar=True)
        for t in self.tasks:
            if t in CLASSIFICATION_TASKS:
                collection = self.cls_metrics[f"val_{t}"]
                if collection["f1"].update_count:
                    self.log_dict({f"val/{t}/{k}": v for k, v in collection.compute().items()})
                collection.reset()

    # -- test (elixir-eval) ------------------------------------------------------------------

    def test_step(self, batch: dict, batch_idx: int) -> None:
        """The validation computation on the test split; its metrics are logged as ``test/...``."""
        self.validation_step(batch, batch_idx)

    def on_test_epoch_end(self) -> None:
        self._test_prefix = True
        try:
            self.on_validation_epoch_end()
        finally:
            self._test_prefix = False

    def predict_step(self, batch: dict, batch_idx: int) -> list[list[int]]:
        """``trainer.predict`` over prompt batches: ``{"prompt_ids": [[...], ...], "eos_id", "pad_id"}``
        plus optional ``"sampling"`` (a ``model.generate.Sampling``; greedy by default) and ``"seed"``;
        returns the new token ids of each prompt."""
        from elixir_coder.model.generate import Sampling, generate_ids

        generator = torch.Generator().manual_seed(int(batch["seed"])) if "seed" in batch else None
        return generate_ids(self.model, batch["prompt_ids"], batch.get("sampling") or Sampling(temperature=0),
                            eos_id=int(batch["eos_id"]), pad_id=int(batch["pad_id"]), generator=generator)

    def log(self, name: str, value, *args, **kwargs) -> None:
        # One metric code path for val and test: under test, "val/..." names become "test/...".
        if getattr(self, "_test_prefix", False) and name.startswith("val/"):
            name = "test/" + name[len("val/"):]
        super().log(name, value, *args, **kwargs)

    # -- checkpoints -------------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[KEY] = {
            "format_version": FORMAT_VERSION,
            "config_yaml": self.config_yaml,
            "metrics": {k: float(v) for k, v in self.trainer.callback_metrics.items() if v.numel() == 1},
            "rng": {"torch": torch.get_rng_state()},
            "task_scale": dict(self.task_scale),
            "nonfinite_total": self.nonfinite_total,
            "contrastive_beta": self.beta.state_dict() if self.beta is not None else None,
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        check_architecture(self.state_dict(), checkpoint["state_dict"], "ckpt_path")
        ours = checkpoint.get(KEY, {})
        if "torch" in ours.get("rng", {}):
            torch.set_rng_state(ours["rng"]["torch"])
        self.task_scale.update(ours.get("task_scale", {}))
        self.nonfinite_total = ours.get("nonfinite_total", 0)
        if self.beta is not None and ours.get("contrastive_beta"):
            self.beta.load_state_dict(ours["contrastive_beta"])

    # -- optimisation ------------------------------------------------------------------------

    def configure_optimizers(self):
        # The backbone, the heads and any learned weighting parameters (uncertainty's log-variances).
        optimizer = self.optimizer_factory(nn.ModuleList([self.model, self.heads, self.weighting]))
        if self.scheduler_factory is None:
            return optimizer
        total = self.total_steps = max(1, self.planned_steps())
        scheduler = self.scheduler_factory(optimizer, total_steps=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}

    def planned_steps(self) -> int:
        """Optimizer steps the LR schedule spans: exact under a curriculum whose phases change the
        epoch length (Lightning's estimate assumes every epoch is as long as the first)."""
        from elixir_coder.training.curriculum import Curriculum, active_tasks, current_phase

        trainer = self.trainer
        curriculum = next((c for c in trainer.callbacks if isinstance(c, Curriculum)), None)
        dm = trainer.datamodule
        if curriculum is None or dm is None or trainer.max_epochs in (None, -1) or trainer.limit_train_batches not in (None, 1.0):
            return int(trainer.estimated_stepping_batches)
        batches = dm.planned_batches(lambda e: active_tasks(current_phase(curriculum.phases, e), self.tasks), trainer.max_epochs)
        steps = batches // trainer.accumulate_grad_batches
        return min(steps, trainer.max_steps) if trainer.max_steps > 0 else steps

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Spec 4.4.4 as a Lightning hook: clip by global norm before the update, log the pre-clip norm."""
        max_norm = float(gradient_clip_val) if gradient_clip_val else float("inf")
        params = [p for group in optimizer.param_groups for p in group["params"]]
        self.log("train/grad_norm", clip_gradients(params, max_norm))
