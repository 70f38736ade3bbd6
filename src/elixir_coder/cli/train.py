"""``elixir-train``: compose the config, prepare the data if needed, train, report.

    elixir-train                                   # the CPU demo (experiment=demo)
    elixir-train task=multitask curriculum=tiered  # pick config-group options
    elixir-train -m loss.weights.quality=0.25,1.0  # a Hydra multirun sweep
    elixir-train ckpt_path=outputs/.../last.ckpt   # resume
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from elixir_coder.cli.common import run_reporting_errors
from elixir_coder.config import conf_dir
from elixir_coder.training import loop as training_loop

log = logging.getLogger("elixir_coder")


def train(cfg: DictConfig) -> float | None:
    """Train with ``cfg``; returns ``cfg.optimized_metric`` at the end (what sweepers optimise)."""
    loop = training_loop.init(cfg)
    first, name = None, cfg.selection_metric
    if cfg.validate_before_fit and not loop.trainer.fast_dev_run and not cfg.ckpt_path:
        first = training_loop.validate(loop).get(name)
    loop.trainer.fit(loop.module, datamodule=loop.datamodule, ckpt_path=cfg.ckpt_path)
    metrics = {k: float(v) for k, v in loop.trainer.callback_metrics.items()}
    last = metrics.get(name)
    if first is not None and last is not None:
        log.info("%s %.4f before training -> %.4f after %d epochs", name, first, last, loop.trainer.current_epoch)
    best = getattr(loop.trainer.checkpoint_callback, "best_model_path", "")
    if best:
        log.info("best checkpoint: %s", best)
    return metrics.get(cfg.optimized_metric)


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")
def _main(cfg: DictConfig) -> float | None:
    return run_reporting_errors(train, cfg)


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
