"""Config validation before anything runs: one table of config key -> allowed domain.

Hydra checks that a key exists, not that its value makes sense: ``data.max_len=0`` would train
with loss 0, ``optimizer.lr=nan`` would train on garbage, ``data.batch_size=abc`` would fail
deep inside a loader. ``check_config`` refuses such values with one line naming the key, the
value and the allowed range, before any data is prepared or any file is written. A key absent
from the composed config (another model type, a group not chosen) is not checked.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from omegaconf import DictConfig, ListConfig, OmegaConf

from elixir_coder.corpus.tokenizer import SPECIAL_TOKENS
from elixir_coder.errors import ConfigError
from elixir_coder.labels import TASKS

_MISSING = object()


@dataclass(frozen=True)
class Number:
    """An int (``integer=True``) or a finite real number within optional bounds."""

    integer: bool = False
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    nullable: bool = False

    def ok(self, v: object) -> bool:
        if v is None:
            return self.nullable
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (self.integer and not isinstance(v, int)):
            return False
        if not math.isfinite(v):
            return False
        return ((self.ge is None or v >= self.ge) and (self.gt is None or v > self.gt)
                and (self.le is None or v <= self.le) and (self.lt is None or v < self.lt))

    def __str__(self) -> str:
        bounds = [f"{op} {b:g}" for op, b in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt)) if b is not None]
        what = "an integer" if self.integer else "a finite number"
        return f"{what}{' ' + ' and '.join(bounds) if bounds else ''}{' or null' if self.nullable else ''}"


@dataclass(frozen=True)
class Flag:
    def ok(self, v: object) -> bool:
        return isinstance(v, bool)

    def __str__(self) -> str:
        return "true or false"


@dataclass(frozen=True)
class OneOf:
    """One name out of ``choices``."""

    choices: tuple[str, ...]

    def ok(self, v: object) -> bool:
        return isinstance(v, str) and v in self.choices

    def __str__(self) -> str:
        return f"one of {', '.join(self.choices)}"


@dataclass(frozen=True)
class Subset:
    """A non-empty list of distinct names out of ``choices``."""

    choices: tuple[str, ...]

    def ok(self, v: object) -> bool:
        return (isinstance(v, (list, tuple)) and len(v) > 0 and len(set(v)) == len(v)
                and all(isinstance(x, str) and x in self.choices for x in v))

    def __str__(self) -> str:
        return f"a non-empty list of distinct names out of [{', '.join(self.choices)}]"


def Int(**bounds) -> Number:  # noqa: N802 (reads as a type in the table)
    return Number(integer=True, **bounds)


def Real(**bounds) -> Number:  # noqa: N802
    return Number(integer=False, **bounds)


POSITIVE_INT, COUNT, RATE = Int(ge=1), Int(ge=0), Real(ge=0, lt=1)

# Every numeric (and a few other) keys with a domain. Keys ending in ``.*`` cover every child.
DOMAINS: dict[str, Number | Flag | OneOf | Subset] = {
    "seed": Int(ge=0),
    "epoch_scale": Real(gt=0),
    "max_nonfinite_steps": POSITIVE_INT,
    "checkpoint_every_n_steps": Int(ge=1, nullable=True),
    "validate_before_fit": Flag(),
    "use_contrastive": Flag(),
    "task.tasks": Subset(TASKS),
    "data.vocab_size": Int(ge=len(SPECIAL_TOKENS) + 256),  # every byte plus the special tokens
    "data.val_fraction": Real(gt=0, lt=1),
    "data.demo_modules": POSITIVE_INT,
    "data.max_sample_tokens": Int(ge=16),
    "data.test_fraction": RATE,
    "data.split_by": OneOf(("auto", "project", "file")),
    "data.min_projects": POSITIVE_INT,
    "data.labeler": OneOf(("detectors", "credo_sobelow")),
    "data.dedup.threshold": Real(gt=0, le=1),
    "data.dedup.num_perm": Int(ge=2),
    "data.dedup.shingle": POSITIVE_INT,
    "data.dedup.exact": Flag(), "data.dedup.near": Flag(),
    "data.filters.max_file_bytes": POSITIVE_INT,
    "data.filters.max_line_chars": POSITIVE_INT,
    "data.filters.generated_header_lines": COUNT,
    "data.tokenizer_sample_mb": Real(gt=0),
    "data.shard_tokens": POSITIVE_INT,
    "data.workers": Int(ge=1, nullable=True),
    "data.batch_size": POSITIVE_INT,
    "data.val_batch_size": Int(ge=1, nullable=True),
    "data.max_len": Int(ge=2),  # next-token prediction needs two tokens
    "data.prefetch": COUNT,
    "data.mlm_rate": RATE,
    "data.packing": Flag(), "data.shuffle": Flag(), "data.drop_last": Flag(), "data.overwrite": Flag(),
    "data.prepare": Flag(),
    "model.d_model": POSITIVE_INT,
    "model.n_layers": POSITIVE_INT,
    "model.n_heads": POSITIVE_INT,
    "model.max_len": Int(ge=2, nullable=True),
    "model.ff_mult": Real(gt=0),
    "model.dropout": RATE,
    "model.rope_theta": Real(gt=0),
    "model.norm_eps": Real(gt=0),
    "model.init_std": Real(gt=0),
    "optimizer.lr": Real(gt=0),
    "optimizer.betas.*": RATE,
    "optimizer.eps": Real(gt=0),
    "optimizer.weight_decay": Real(ge=0),
    "scheduler.warmup_steps": COUNT,
    "scheduler.min_lr_ratio": Real(ge=0, le=1),
    "scheduler.max_warmup_fraction": Real(ge=0, le=1),
    "loss.weights.*": Real(ge=0),
    "loss.label_smoothing": RATE,
    "loss.weighting.alpha": Real(ge=0),
    "loss.weighting.lr": Real(gt=0),
    "loss.weighting.every_n_steps": POSITIVE_INT,
    "loss.weighting.window": POSITIVE_INT,
    "loss.weighting.min_steps": COUNT,
    "loss.weighting.init_log_var": Real(),
    "curriculum.ramp_epochs": COUNT,
    "curriculum.ramp_start": Real(gt=0, le=1),
    "contrastive.variants": POSITIVE_INT,
    "contrastive.max_anchors": Int(ge=1, nullable=True),
    "contrastive.min_pairs": Int(ge=0),
    "contrastive.max_variants": POSITIVE_INT,
    "contrastive.judge": OneOf(("auto", "tools", "builtin")),
    "contrastive.anchors_per_batch": POSITIVE_INT,
    "contrastive.negatives_per_anchor": POSITIVE_INT,
    "contrastive.temperature": Real(gt=0),
    "contrastive.alpha": Real(ge=0),
    "contrastive.beta": Real(ge=0),
    "contrastive.beta_min": Real(ge=0),
    "contrastive.beta_max": Real(ge=0),
    "contrastive.beta_target": Real(),
    "contrastive.beta_gain": Real(ge=0),
    "contrastive.epochs_per_tier": POSITIVE_INT,
    "trainer.max_epochs": Int(ge=-1, nullable=True),
    "trainer.max_steps": Int(ge=-1),
    "trainer.limit_train_batches": Real(gt=0, nullable=True),
    "trainer.limit_val_batches": Real(ge=0, nullable=True),
    "trainer.val_check_interval": Real(gt=0, nullable=True),
    "trainer.check_val_every_n_epoch": Int(ge=1, nullable=True),
    "trainer.log_every_n_steps": POSITIVE_INT,
    "trainer.gradient_clip_val": Real(ge=0, nullable=True),
    "trainer.accumulate_grad_batches": POSITIVE_INT,
    "trainer.num_sanity_val_steps": Int(ge=-1),
    "callbacks.model_checkpoint.save_top_k": Int(ge=-1),
    "callbacks.model_checkpoint.every_n_epochs": Int(ge=0, nullable=True),
    "callbacks.console_table.every_n_steps": POSITIVE_INT,
    "callbacks.tensorboard_extras.histogram_every_n_steps": COUNT,
    "callbacks.monitor.prometheus_port": Int(ge=0, le=65535, nullable=True),
    "callbacks.monitor.every_n_steps": POSITIVE_INT,
}


def _at_most(small: str, large: str, why: str) -> Callable[[DictConfig], str | None]:
    def rule(cfg: DictConfig) -> str | None:
        a, b = _get(cfg, small), _get(cfg, large)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a > b:
            return f"{small}={a}: must be at most {large}={b} ({why})"
        return None

    return rule


def _divides(cfg: DictConfig) -> str | None:
    d, h = _get(cfg, "model.d_model"), _get(cfg, "model.n_heads")
    if isinstance(d, int) and isinstance(h, int) and d % h:
        return f"model.d_model={d}: must be a multiple of model.n_heads={h}"
    return None


def _pairs_fit(cfg: DictConfig) -> str | None:
    # contrastive.max_len follows data.max_len unless set: report it only when set on its own.
    if _get(cfg, "contrastive.max_len") == _get(cfg, "data.max_len"):
        return None
    return _at_most("contrastive.max_len", "model.max_len", "the model's positions")(cfg)


def _weights_of_tasks(cfg: DictConfig) -> str | None:
    weights = _get(cfg, "loss.weights")
    unknown = [k for k in weights if k not in TASKS] if isinstance(weights, dict) else []
    return f"loss.weights.{unknown[0]}: not a task; tasks are {', '.join(TASKS)}" if unknown else None


def _fractions(cfg: DictConfig) -> str | None:
    val, test = _get(cfg, "data.val_fraction"), _get(cfg, "data.test_fraction")
    if isinstance(val, (int, float)) and isinstance(test, (int, float)) and val + test >= 1:
        return f"data.test_fraction={test}: val_fraction + test_fraction must stay below 1 (val_fraction is {val})"
    return None


# Rules between keys, checked once every key is in its own domain.
RELATIONS: tuple[Callable[[DictConfig], str | None], ...] = (
    _at_most("data.max_len", "model.max_len", "the model's positions"),
    _pairs_fit,
    _at_most("contrastive.beta_min", "contrastive.beta", "beta moves between beta_min and beta_max"),
    _at_most("contrastive.beta", "contrastive.beta_max", "beta moves between beta_min and beta_max"),
    _divides,
    _weights_of_tasks,
    _fractions,
)


def _get(cfg: DictConfig, key: str) -> object:
    try:
        node = OmegaConf.select(cfg, key, default=_MISSING, throw_on_missing=False)
    except Exception as exc:  # an interpolation that does not resolve
        raise ConfigError(f"{key}: {str(exc).splitlines()[0]}") from exc
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node


def _entries(cfg: DictConfig, key: str) -> list[tuple[str, object]]:
    if not key.endswith(".*"):
        value = _get(cfg, key)
        return [] if value is _MISSING else [(key, value)]
    parent = _get(cfg, key[:-2])
    if isinstance(parent, dict):
        return [(f"{key[:-2]}.{k}", v) for k, v in parent.items()]
    if isinstance(parent, list):
        return [(f"{key[:-2]}[{i}]", v) for i, v in enumerate(parent)]
    return []


def problems(cfg: DictConfig) -> list[str]:
    """Every value outside its domain, then (if none) every broken relation between keys."""
    out = []
    for key, domain in DOMAINS.items():
        for name, value in _entries(cfg, key):
            if value == "???":
                continue  # a mandatory value left unset: OmegaConf names it when it is used
            if not domain.ok(value):
                out.append(f"{name}={_show(value)}: must be {domain}")
    if not out:
        out = [msg for rule in RELATIONS if (msg := rule(cfg))]
    return out


def _show(value: object) -> str:
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return f"{value!r}" if isinstance(value, (list, tuple)) else str(value)


def check_config(cfg: DictConfig) -> None:
    """Raise ``ConfigError`` naming the first bad key (and how many more there are)."""
    found = problems(cfg)
    if found:
        more = f" (and {len(found) - 1} more config problem{'s' if len(found) > 2 else ''})" if len(found) > 1 else ""
        raise ConfigError(found[0] + more)
