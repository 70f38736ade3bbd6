"""Step time of each task-weighting strategy, as a ratio to static weights, in one run.

    python bench/loss_balancing.py [--steps 100] [--batch-size 16] [--max-len 256] [--only gradnorm10,uncertainty]

Same tiny model, same batches (a synthetic six-task corpus), same Lightning Trainer; only the
`loss=` strategy differs. GradNorm is measured applied every step and every 10 steps. Every
strategy is timed the same way: total wall time over ``--steps`` steps after a warm-up (data
fetch included), a mean, so a cost paid every 10th step counts for a tenth of its size.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import lightning as L
from common import WallTimer, datamodule, six_task_corpus

from elixir_coder.labels import TASKS
from elixir_coder.model.transformer import Transformer
from elixir_coder.training.loss import GradNorm, GradNormWeighting, TaskWeighting, UncertaintyWeighting, VarianceWeighting
from elixir_coder.training.module import ElixirCoderModule
from elixir_coder.training.optimizer import config as adamw


def run(data_dir: Path, weighting, steps: int, args) -> float:
    L.seed_everything(0, verbose=False)
    dm = datamodule(data_dir, args.batch_size, args.max_len)
    model = Transformer(dm.vocab_size, d_model=128, n_layers=4, n_heads=4, max_len=args.max_len)
    module = ElixirCoderModule(model, adamw, tasks=list(TASKS), weighting=weighting)
    timer = WallTimer(warmup=5)
    callbacks = [timer] + ([GradNorm()] if isinstance(weighting, GradNormWeighting) else [])
    trainer = L.Trainer(
        accelerator="cpu", max_steps=steps + 5, limit_val_batches=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks, use_distributed_sampler=False,
    )
    trainer.fit(module, datamodule=dm)
    return timer.window.mean_step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-len", type=int, default=256)
    ap.add_argument("--only", default="", help="comma-separated strategies to compare with static (default: all)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = six_task_corpus(Path(tmp), max_len=args.max_len)
        strategies = {
            "static": lambda: TaskWeighting(TASKS),
            "uncertainty": lambda: UncertaintyWeighting(TASKS),
            "variance": lambda: VarianceWeighting(TASKS),
            "gradnorm": lambda: GradNormWeighting(TASKS, every_n_steps=1),
            "gradnorm10": lambda: GradNormWeighting(TASKS, every_n_steps=10),
        }
        if args.only:
            strategies = {k: v for k, v in strategies.items() if k == "static" or k in args.only.split(",")}
        times = {name: run(data_dir, make(), args.steps, args) for name, make in strategies.items()}
    base = times["static"]
    print(f"{'strategy (gradnorm10: every 10 steps)':38s} {'mean step':>12s} {'vs static':>10s}")
    for name, t in times.items():
        print(f"{name:38s} {t * 1e3:10.1f} ms {t / base:9.2f}x")


if __name__ == "__main__":
    main()
