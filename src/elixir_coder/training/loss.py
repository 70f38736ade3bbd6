"""Loss functions and task weighting (spec 4.2, 4.3.3, 4.3.7), as plain differentiable torch ops
so autograd (and ``torch.autograd.gradcheck``) sees every step.

Four ways to weight the tasks, one per ``loss=`` option:

* ``static``: fixed weights (``default_weights``), the spec's starting point.
* ``uncertainty``: Kendall et al. 2018. Each task learns a log-variance s_i with the model and the
  total is sum L_i / (2 sigma_i^2) + log sigma_i. A task whose loss stays noisy (high, hard to
  reduce) raises its sigma, so it gets a *smaller* weight: the opposite of the wording of spec
  4.2.6.3-4, which ``variance`` implements instead.
* ``variance``: spec 4.2.6.2-4 as written. Track each task's recent losses over a window; tasks
  whose loss still varies (relative to its mean) get more weight, settled tasks less.
* ``gradnorm``: Chen et al. 2018. Weights move so that each task's gradient norm at the last
  shared layer follows its relative training rate (``gradnorm_weights``, applied by a callback).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

IGNORE_INDEX = -100


# -- per-task losses -----------------------------------------------------------------------------


def cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Spec 4.2.1: mean token cross-entropy over real targets (``labels != ignore_index``).

    ``logits`` (..., V) and ``labels`` (...) are aligned (labels already hold the next token).
    Label smoothing mixes the one-hot target with the uniform distribution over V classes.
    Returns 0 (still differentiable) when a batch has no target at all.
    """
    logits = logits.reshape(-1, logits.shape[-1])
    labels = labels.reshape(-1)
    keep = labels != ignore_index
    logp = F.log_softmax(logits[keep].float() if logits.dtype != torch.float64 else logits[keep], dim=-1)
    target = labels[keep].long()
    nll = -logp.gather(-1, target[:, None]).squeeze(-1)
    if label_smoothing > 0.0:
        nll = (1.0 - label_smoothing) * nll - label_smoothing * logp.mean(dim=-1)
    if nll.numel() == 0:
        return logits.sum() * 0.0
    return nll.mean()


def _bce_terms(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-element BCE from logits: max(x, 0) - x*y + log(1 + exp(-|x|)), finite for any x."""
    return logits.clamp(min=0) - logits * targets + torch.log1p(torch.exp(-logits.abs()))


def binary_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Spec 4.2.2: BCE on logits (no sigmoid outside), in the log-sum-exp-stable form; a scalar."""
    return _bce_terms(logits, targets.to(logits.dtype)).mean()


def multi_label_bce(
    logits: torch.Tensor, targets: torch.Tensor, label_weights: torch.Tensor | Sequence[float] | None = None
) -> torch.Tensor:
    """Spec 4.2.3: per-label BCE for (N, K) logits, each label scaled by ``label_weights`` (K,),
    then the mean over all N*K entries (so weights of 1 give plain BCE)."""
    terms = _bce_terms(logits, targets.to(logits.dtype))
    if label_weights is not None:
        terms = terms * torch.as_tensor(label_weights, dtype=terms.dtype, device=terms.device)
    return terms.mean()


def info_nce(
    anchor: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor, temperature: float = 0.07,
    in_batch_negatives: bool = False,
) -> torch.Tensor:
    """Spec 4.3.3: -log(exp(s+) / (exp(s+) + sum exp(s-))) with s = cos(a, b) / temperature.

    ``anchor``, ``positive``: (N, D); ``negatives``: (N, M, D) per-anchor negatives. With
    ``in_batch_negatives`` the other anchors' positives count as negatives too. Computed with
    log-softmax (logsumexp), so large similarities / small temperatures stay finite.
    """
    a = F.normalize(anchor, dim=-1)
    p = F.normalize(positive, dim=-1)
    n = F.normalize(negatives, dim=-1)
    pos = (a * p).sum(-1, keepdim=True)  # (N, 1)
    neg = torch.einsum("nd,nmd->nm", a, n)  # (N, M)
    logits = [pos, neg]
    if in_batch_negatives and a.shape[0] > 1:
        others = a @ p.T  # (N, N): positives of other anchors
        mask = torch.eye(a.shape[0], dtype=torch.bool, device=a.device)
        logits.append(others.masked_fill(mask, float("-inf")))
    logits = torch.cat(logits, dim=1) / temperature
    return -(logits[:, 0] - torch.logsumexp(logits, dim=1)).mean()


# -- combining tasks ----------------------------------------------------------------------------


def default_weights() -> dict[str, float]:
    """Spec 4.2.5: the starting weights.

    code_generation 1.0: the primary task, what the model is for. test_generation 0.8: also
    generation of code, close to the primary task and nearly as valuable. quality 0.5 and
    security 0.5: secondary, classification heads on the shared representation; their losses are
    on a different scale (BCE over labels) and they should shape, not dominate, the features.
    clarification 0.3 and explanation 0.3: natural-language outputs, useful for the assistant but
    least related to writing correct Elixir, and plentiful text that would otherwise swamp it.
    """
    return {
        "code_generation": 1.0,
        "quality": 0.5,
        "security": 0.5,
        "test_generation": 0.8,
        "clarification": 0.3,
        "explanation": 0.3,
    }


def task_loss(task: str, predictions: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """The loss a task uses: multi-label BCE for the classification tasks, cross-entropy otherwise."""
    if task in ("quality", "security"):
        return multi_label_bce(predictions, targets)
    return cross_entropy(predictions, targets, label_smoothing=label_smoothing)


def multi_task_loss(
    outputs: Mapping[str, tuple[torch.Tensor, torch.Tensor]], weights: Mapping[str, float | torch.Tensor],
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Spec 4.2.4: sum_i w_i * L_i over the tasks present in ``outputs`` (task -> (predictions, targets)).

    Returns the total and the per-task losses. Tasks without outputs in a batch add nothing; a
    task with no weight is an error rather than silently ignored.
    """
    losses = {task: task_loss(task, p, t, label_smoothing) for task, (p, t) in outputs.items()}
    missing = [t for t in losses if t not in weights]
    if missing:
        raise KeyError(f"no loss weight for task {missing[0]!r} (loss.weights.{missing[0]})")
    if not losses:
        raise ValueError("multi_task_loss needs at least one task's outputs")
    total = sum(weights[t] * loss for t, loss in losses.items())
    return total, losses


def uncertainty_weighted(losses: Mapping[str, torch.Tensor], log_vars: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Spec 4.2.6.5-6: sum_i L_i / (2 sigma_i^2) + log sigma_i, with s_i = log sigma_i^2 learned."""
    return sum(0.5 * torch.exp(-log_vars[t]) * loss + 0.5 * log_vars[t] for t, loss in losses.items())


def contrastive_multi_task(primary: torch.Tensor, contrastive: torch.Tensor, alpha: float = 1.0, beta: float = 0.3) -> torch.Tensor:
    """Spec 4.3.7: alpha * primary + beta * contrastive."""
    return alpha * primary + beta * contrastive


# -- weighting strategies: one object per `loss=` option ----------------------------------------


class TaskWeighting(nn.Module):
    """Static weights; the base of the adaptive strategies.

    ``combine`` returns the weighted total and the effective weight of every task in the batch.
    The ``scale`` (from the curriculum) multiplies each task's weight; tasks absent from a batch
    contribute nothing. Everything a strategy learns or tracks lives in parameters and buffers,
    so it is saved in checkpoints with the model.
    """

    def __init__(self, tasks: Sequence[str], weights: Mapping[str, float] | None = None):
        super().__init__()
        self.tasks = list(tasks)
        base = {**default_weights(), **(weights or {})}
        unknown = [t for t in base if t not in default_weights()]
        if unknown:
            raise KeyError(f"loss.weights.{unknown[0]}: not a task")
        self.register_buffer("base", torch.tensor([float(base[t]) for t in self.tasks]))

    def index(self, task: str) -> int:
        return self.tasks.index(task)

    def weights(self) -> torch.Tensor:
        """The current weight of each task in ``self.tasks`` (before curriculum scaling)."""
        return self.base

    def observe(self, losses: Mapping[str, torch.Tensor]) -> None:
        """Called once per training step with the detached per-task losses."""

    def combine(
        self, losses: Mapping[str, torch.Tensor], scale: Mapping[str, float] | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        w = self.weights()
        used = {t: w[self.index(t)] * (1.0 if scale is None else scale.get(t, 1.0)) for t in losses}
        return sum(used[t] * losses[t] for t in losses), {t: v.detach() for t, v in used.items()}


class UncertaintyWeighting(TaskWeighting):
    """Kendall et al.: a learned log-variance per task, trained with the model."""

    def __init__(self, tasks: Sequence[str], weights: Mapping[str, float] | None = None, init_log_var: float = 0.0):
        super().__init__(tasks, weights)
        self.log_vars = nn.Parameter(torch.full((len(self.tasks),), float(init_log_var)))

    def weights(self) -> torch.Tensor:
        return 0.5 * torch.exp(-self.log_vars.detach())

    def combine(self, losses, scale=None):
        scale = scale or {}
        log_vars = {t: self.log_vars[self.index(t)] for t in losses}
        total = uncertainty_weighted({t: scale.get(t, 1.0) * loss for t, loss in losses.items()}, log_vars)
        return total, {t: scale.get(t, 1.0) * 0.5 * torch.exp(-log_vars[t].detach()) for t in losses}


class VarianceWeighting(TaskWeighting):
    """Spec 4.2.6.2-4: weight_i proportional to the coefficient of variation of task i's loss over the
    last ``window`` steps, normalised to sum to the number of tasks tracked; static weights until
    a task has ``min_steps`` observations. Ring buffers on the device: no host sync per step."""

    def __init__(self, tasks: Sequence[str], weights: Mapping[str, float] | None = None, window: int = 50,
                 min_steps: int = 10, eps: float = 1e-8):
        super().__init__(tasks, weights)
        self.window, self.min_steps, self.eps = window, min_steps, eps
        self.register_buffer("history", torch.zeros(len(self.tasks), window))
        self.register_buffer("count", torch.zeros(len(self.tasks), dtype=torch.long))

    def observe(self, losses):
        for t, loss in losses.items():
            i = self.index(t)
            self.history[i, self.count[i] % self.window] = loss.detach().float()
            self.count[i] += 1

    def weights(self) -> torch.Tensor:
        n = self.count.clamp(max=self.window)
        ready = n >= self.min_steps
        if not bool(ready.any()):
            return self.base
        mask = torch.arange(self.window, device=n.device)[None, :] < n[:, None]
        mean = (self.history * mask).sum(1) / n.clamp(min=1)
        var = (((self.history - mean[:, None]) * mask) ** 2).sum(1) / (n - 1).clamp(min=1)
        cv = var.sqrt() / (mean.abs() + self.eps)
        w = self.base.clone()
        w[ready] = cv[ready] / (cv[ready].sum() + self.eps) * ready.sum()
        return w


class GradNormWeighting(TaskWeighting):
    """Chen et al.: weights are buffers updated by ``gradnorm_weights`` (via the GradNorm callback),
    not by the model's optimizer; kept summing to the number of tasks."""

    def __init__(self, tasks: Sequence[str], weights: Mapping[str, float] | None = None, alpha: float = 1.5,
                 lr: float = 0.01, every_n_steps: int = 1):
        super().__init__(tasks, weights)
        self.alpha, self.lr, self.every_n_steps = alpha, lr, every_n_steps
        w = self.base / self.base.sum() * len(self.tasks)
        self.register_buffer("current", w)
        self.register_buffer("initial_losses", torch.zeros(len(self.tasks)))
        self.register_buffer("has_initial", torch.zeros(len(self.tasks), dtype=torch.bool))

    def weights(self) -> torch.Tensor:
        return self.current


def gradnorm_weights(
    weights: torch.Tensor, task_grad_norms: torch.Tensor, losses: torch.Tensor, initial_losses: torch.Tensor,
    alpha: float = 1.5, lr: float = 0.01,
) -> torch.Tensor:
    """Spec 4.2.7: one GradNorm update of the task weights; returns the new weights (sum = T).

    ``task_grad_norms`` g_i = ||d L_i / d W|| at the last shared layer (unweighted), so the
    weighted norm is G_i = w_i g_i. With L~_i = L_i / L_i(0) and r_i = L~_i / mean(L~), the target
    is mean(G) * r_i^alpha (a constant); L_grad = sum_i |G_i - target_i| is minimised over w by
    one gradient step of size ``lr`` (divided by mean(g), so ``lr`` means the same at any gradient
    scale), then the weights are renormalised to sum to T.
    """
    w = weights.detach().clone().requires_grad_(True)
    g = task_grad_norms.detach()
    G = w * g
    ratio = losses.detach() / initial_losses.detach().clamp(min=1e-12)
    r = ratio / ratio.mean()
    target = (G.mean() * r.pow(alpha)).detach()
    grad = torch.autograd.grad((G - target).abs().sum(), w)[0]
    with torch.no_grad():
        new = (w - lr * grad / g.mean().clamp(min=1e-12)).clamp(min=1e-3)
        return new / new.sum() * len(new)


class GradNorm(L.Callback):
    """Spec 4.2.7.5: applies ``gradnorm_weights`` every N steps, just before the backward pass.

    Per-task gradient norms are taken at the backbone's last shared layer with
    ``torch.autograd.grad(..., retain_graph=True)``: one extra backward per task through the
    heads and that layer only. Under DDP the norms and the initial losses are averaged across
    ranks (tasks absent on a rank count only where present), so every rank holds the same weights.
    """

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        weighting = pl_module.weighting
        if not isinstance(weighting, GradNormWeighting) or trainer.global_step % weighting.every_n_steps:
            return
        losses = pl_module.last_task_losses
        shared = pl_module.model.last_shared_layer.weight
        T = len(weighting.tasks)
        grads = torch.zeros(T, shared.numel(), device=shared.device)
        values = torch.zeros(T, device=shared.device)
        present = torch.zeros(T, device=shared.device)
        for task, task_loss in losses.items():
            if not task_loss.requires_grad:
                continue
            i = weighting.index(task)
            (grad,) = torch.autograd.grad(task_loss, shared, retain_graph=True, allow_unused=True)
            if grad is not None:
                grads[i] = grad.reshape(-1)
            values[i] = task_loss.detach()
            present[i] = 1.0
        # Each rank's loss is its share of the global mean, so the global gradient (and loss) of a
        # task is the sum over ranks divided by the world size; norms are taken after that.
        world = trainer.world_size
        grads = trainer.strategy.reduce(grads, reduce_op="sum") / world
        values = trainer.strategy.reduce(values, reduce_op="sum") / world
        active = trainer.strategy.reduce(present, reduce_op="sum") > 0
        norms = grads.norm(dim=1)
        fresh = active & ~weighting.has_initial
        weighting.initial_losses[fresh] = values[fresh]
        weighting.has_initial |= fresh
        if int(active.sum()) < 2:
            return  # balancing needs at least two tasks in the step
        new = gradnorm_weights(
            weighting.current[active], norms[active], values[active], weighting.initial_losses[active],
            alpha=weighting.alpha, lr=weighting.lr,
        )
        current = weighting.current.clone()
        current[active] = new * current[active].sum() / len(new)  # keep the inactive tasks' share
        weighting.current.copy_(current / current.sum() * T)


class ContrastiveBeta:
    """Spec 4.3.7.5: beta (the contrastive share of the loss) follows a validation quality metric.

    After each validation: beta <- clip(beta * exp(gain * (target - metric)), beta_min, beta_max).
    While the quality classifier's metric (default ``val/quality/f1``) is below ``target``, beta
    grows, pushing clean and violating code further apart in embedding space; once the metric
    passes the target, beta shrinks back and the primary objectives get the capacity. No metric
    (the quality task not active yet): beta stays where it is.
    """

    def __init__(self, beta: float = 0.3, beta_min: float = 0.05, beta_max: float = 1.0, target: float = 0.8,
                 gain: float = 0.5, metric: str = "val/quality/f1"):
        if not beta_min <= beta <= beta_max:
            raise ValueError(f"contrastive.beta={beta} must lie in [beta_min={beta_min}, beta_max={beta_max}]")
        self.beta, self.beta_min, self.beta_max = beta, beta_min, beta_max
        self.target, self.gain, self.metric = target, gain, metric

    def update(self, metrics: Mapping[str, float | torch.Tensor]) -> float:
        if self.metric in metrics:
            value = float(metrics[self.metric])
            self.beta = min(self.beta_max, max(self.beta_min, self.beta * math.exp(self.gain * (self.target - value))))
        return self.beta

    def state_dict(self) -> dict:
        return {"beta": self.beta}

    def load_state_dict(self, state: dict) -> None:
        self.beta = float(state["beta"])
