"""What ``elixir-eval`` and ``elixir-generate`` share: the checkpoint's own config with the
command line's overrides on top, and the trained module built from it.

A checkpoint stores the resolved config it was trained with. Evaluating it with the defaults
of ``conf/`` instead would silently rebuild another model or read other data, so the saved
config is the base; only what the user typed (``model.max_len=...``, ``trainer=gpu``) and the
keys that belong to the evaluation run itself (its folder, logger, eval/generation settings)
come from the freshly composed config.
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig, OmegaConf, open_dict

from elixir_coder.errors import ConfigError
from elixir_coder.training.checkpoint import KEY, load, read, resolve_ckpt_path

log = logging.getLogger("elixir_coder")

# Top-level keys owned by the evaluation run, never taken from the checkpoint.
RUN_KEYS = ("ckpt_path", "paths", "logger", "hydra", "eval", "generation", "sandbox", "generate", "use_checkpoint_config", "prompt")


def user_overrides() -> list[str]:
    """The command line's overrides (empty outside a Hydra app)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def merged_config(cfg: DictConfig, saved_yaml: str, overrides: list[str]) -> DictConfig:
    """``saved_yaml`` with the run keys of ``cfg`` and every key the ``overrides`` touch taken from ``cfg``."""
    base = OmegaConf.create(saved_yaml)
    for key in RUN_KEYS:
        if key in cfg:
            base[key] = cfg[key]
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key.split(".")[0] in RUN_KEYS:
            continue
        if override.startswith("~"):
            parent, _, leaf = key.rpartition(".")
            node = OmegaConf.select(base, parent) if parent else base
            if node is not None and leaf in node:
                del node[leaf]
            continue
        value = OmegaConf.select(cfg, key, default="__missing__")
        if value == "__missing__":
            # A config group that writes elsewhere (experiment=, hparams_search=): not applicable.
            log.warning("override %s does not apply to a checkpoint's config; ignored", override)
            continue
        OmegaConf.update(base, key, value, force_add=True)
    OmegaConf.set_struct(base, True)
    return base


def checkpoint_config(cfg: DictConfig, overrides: list[str] | None = None) -> tuple[DictConfig, str]:
    """Resolve ``cfg.ckpt_path`` (file, run folder or ``last``) and return (config, checkpoint file)."""
    ckpt = resolve_ckpt_path(cfg.get("ckpt_path"))
    if ckpt is None:
        raise ConfigError("ckpt_path is not set: pass a checkpoint file, a run folder or ckpt_path=last")
    if not cfg.get("use_checkpoint_config", True):
        return cfg, ckpt
    saved = read(ckpt).get(KEY, {}).get("config_yaml", "")
    if not saved:
        log.warning("%s holds no config; using the composed one", ckpt)
        return cfg, ckpt
    merged = merged_config(cfg, saved, user_overrides() if overrides is None else overrides)
    with open_dict(merged):
        merged.ckpt_path = ckpt
    return merged, ckpt


def load_trained(cfg: DictConfig, ckpt: str):
    """(datamodule, module) built from ``cfg`` with the checkpoint's weights, in eval mode."""
    from elixir_coder.training.loop import build

    datamodule, module = build(cfg)
    saved = load(ckpt, module)
    module.eval()
    return datamodule, module, saved
