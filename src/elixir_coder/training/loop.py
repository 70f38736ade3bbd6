"""The training loop (spec 4.5) under the spec's names, built on Lightning's Trainer.

``init`` composes the DataModule, LightningModule and Trainer from the Hydra config; the Trainer
is the loop. ``step_fn``, ``validate`` and ``run_epoch`` are the spec's entry points for driving
it one piece at a time (tests, notebooks, debugging).
"""

from __future__ import annotations

from dataclasses import dataclass

import logging

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from elixir_coder.model.compile import compile_model
from elixir_coder.training.checkpoint import KEY, StepCheckpoint, read, remove_stale_temp_files, resolve_ckpt_path, run_dir_of

from elixir_coder.training.data import ElixirDataModule
from elixir_coder.training.logging import TensorBoardExtras
from elixir_coder.training.module import ElixirCoderModule


log = logging.getLogger("elixir_coder")


@dataclass
class Loop:
    datamodule: ElixirDataModule
    module: ElixirCoderModule
    trainer: L.Trainer


def config_yaml(cfg: DictConfig) -> str:
    """The resolved run config as plain YAML (Hydra's own settings left out)."""
    return OmegaConf.to_yaml(OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True))


# Keys a resumed run may change without changing what is being trained.
RUN_LENGTH_KEYS = ("ckpt_path", "trainer.max_epochs", "trainer.max_steps", "trainer.limit_train_batches",
                   "trainer.limit_val_batches", "paths.", "trainer.default_root_dir", "callbacks.", "logger.",
                   "validate_before_fit")


def config_differences(saved_yaml: str, cfg: DictConfig) -> list[str]:
    """Keys (other than run-length ones) whose values differ between a checkpoint's config and ``cfg``."""
    def flat(d, prefix=""):
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    old = flat(OmegaConf.to_container(OmegaConf.create(saved_yaml)) if saved_yaml else {})
    new = flat(OmegaConf.to_container(OmegaConf.create(config_yaml(cfg))))
    keys = sorted(set(old) | set(new))
    return [
        f"{k}: {old.get(k, '<absent>')!r} -> {new.get(k, '<absent>')!r}"
        for k in keys if old.get(k) != new.get(k) and not k.startswith(RUN_LENGTH_KEYS)
    ]


def flat_hparams(cfg: DictConfig) -> dict:
    """The run's main choices as flat scalars, for TensorBoard's hparams view."""
    plain = OmegaConf.create(config_yaml(cfg))
    keep = ("model", "optimizer", "scheduler", "loss", "data", "seed", "epoch_scale", "task", "curriculum")
    out = {}

    def walk(node, prefix):
        for k, v in node.items():
            key = f"{prefix}{k}"
            if isinstance(v, dict):
                walk(v, key + ".")
            elif isinstance(v, (int, float, str, bool)) and not key.endswith("_target_"):
                out[key] = v
            elif isinstance(v, list) and len(v) <= 8 and all(isinstance(x, (int, float, str)) for x in v):
                out[key] = ",".join(map(str, v))

    walk({k: v for k, v in OmegaConf.to_container(plain).items() if k in keep}, "")
    return out


def build(cfg: DictConfig) -> tuple[ElixirDataModule, ElixirCoderModule]:
    """Seed, prepare the data and build the LightningModule: what training and evaluation share."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule: ElixirDataModule = instantiate(cfg.data)
    datamodule.prepare_data()
    model_cfg = OmegaConf.masked_copy(cfg.model, [k for k in cfg.model if k != "compile"])
    model = compile_model(instantiate(model_cfg, vocab_size=datamodule.vocab_size), cfg.model.get("compile", False))
    module = ElixirCoderModule(
        model=model,
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        tasks=list(cfg.task.tasks),
        weighting=instantiate(cfg.loss.weighting),
        label_smoothing=cfg.loss.label_smoothing,
        max_nonfinite_steps=cfg.max_nonfinite_steps,
        config_yaml=config_yaml(cfg),
        contrastive=OmegaConf.to_container(cfg.contrastive, resolve=True),
    )
    return datamodule, module


def init(cfg: DictConfig) -> Loop:
    """Spec 4.5.1: seed, prepare the data, build model + optimizer + loss + metrics, and the Trainer.

    With ``ckpt_path`` set, the run continues in the checkpoint's run folder (checkpoints and
    TensorBoard events), TensorBoard drops events past the checkpoint's step, and any config
    difference other than run length is reported before training starts.
    """
    ckpt = resolve_ckpt_path(cfg.get("ckpt_path"))
    purge_step = None
    if ckpt is not None:
        saved = read(ckpt)
        purge_step = int(saved.get("global_step", 0))
        diffs = config_differences(saved.get(KEY, {}).get("config_yaml", ""), cfg)
        if diffs:
            log.warning("resuming with a config that differs from the checkpoint's:\n  %s", "\n  ".join(diffs))
        with open_dict(cfg):
            cfg.ckpt_path = ckpt
            cfg.paths.output_dir = str(run_dir_of(ckpt))
        log.info("resuming from %s (epoch %s, step %s) in %s", ckpt, saved.get("epoch"), purge_step, cfg.paths.output_dir)
        del saved
    for stale in remove_stale_temp_files(f"{cfg.paths.output_dir}/checkpoints"):  # what a killed save left
        log.info("removed %s, left by an interrupted checkpoint save", stale)
    datamodule, module = build(cfg)
    # Every callback comes from the `callbacks` config; choices that need one (loss=gradnorm,
    # curriculum=phased|tiered) add theirs to it from their own group.
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    for cb in callbacks:
        if isinstance(cb, TensorBoardExtras):
            cb.config_yaml, cb.hparams = module.config_yaml, flat_hparams(cfg)
    if cfg.get("checkpoint_every_n_steps"):
        # Mid-epoch checkpoints for crash recovery: the newest one is kept, beside the epoch
        # checkpoints of the `callbacks` group; resuming from the run folder takes the newest.
        callbacks.append(StepCheckpoint(f"{cfg.paths.output_dir}/checkpoints", cfg.checkpoint_every_n_steps))
    loggers = [
        instantiate(c, **({"purge_step": purge_step} if purge_step is not None and "TensorBoard" in c._target_ else {}))
        for c in (cfg.get("logger") or {}).values() if c is not None
    ]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    return Loop(datamodule, module, trainer)


def step_fn(module: ElixirCoderModule, batch: dict, optimizer: torch.optim.Optimizer) -> torch.Tensor:
    """Spec 4.5.2: one step outside the Trainer (forward, loss, backward, update); returns the loss."""
    module.train()
    optimizer.zero_grad(set_to_none=True)
    loss = module.training_loss(batch)[0]
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
