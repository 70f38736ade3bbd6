"""Cost of logging at default settings against logging off, in one run.

    python bench/logging_overhead.py [--steps 400] [--repeats 2]

Both runs are composed from the real config (tiny model, multitask, batch 16 x 256): "default"
keeps the `callbacks` and `logger` groups as they ship (TensorBoard scalars every 10 steps,
histograms every 200, console table every 100, LR monitor, progress output, event log);
"off" removes every logging callback and the logger. Both are timed the same way: total wall
time over ``--steps`` steps after a warm-up (data fetch included), a mean; the default 400
steps include two histogram dumps, 4 console rows and 40 scalar writes. The two are
interleaved ``--repeats`` times to spread machine noise; the share of wall time logging takes
is (default - off) / default.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import six_task_corpus, timed
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from elixir_coder.config import conf_dir
from elixir_coder.training import loop as training_loop

OFF = ["~logger", "~callbacks.lr_monitor", "~callbacks.progress_bar", "~callbacks.console_table",
       "~callbacks.tensorboard_extras", "~callbacks.model_checkpoint", "+trainer.enable_progress_bar=false"]


def run(data_dir: Path, out: Path, steps: int, extra: list[str]) -> float:
    overrides = [f"data.data_dir={data_dir}", "data.prepare=false", "task=multitask", "data.batch_size=16", "data.max_len=256",
                 f"trainer.max_steps={steps + 5}", "trainer.max_epochs=-1", "trainer.limit_train_batches=null",
                 "trainer.limit_val_batches=0", "validate_before_fit=false",
                 "~callbacks.model_checkpoint", *extra]
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=list(dict.fromkeys(overrides)), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    loop = training_loop.init(cfg)
    window = timed(loop.trainer)
    loop.trainer.fit(loop.module, datamodule=loop.datamodule)
    return window.mean_step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = six_task_corpus(Path(tmp))
        times = {"default": [], "off": []}
        for r in range(args.repeats):
            for name, extra in (("default", []), ("off", OFF)):
                times[name].append(run(data_dir, Path(tmp) / f"{name}{r}", args.steps, extra))
    mean = {k: sum(v) / len(v) for k, v in times.items()}
    print(f"{'logging':10s} {'mean step (mean of repeats)':>30s}")
    for name, t in mean.items():
        print(f"{name:10s} {t * 1e3:27.1f} ms")
    print(f"default / off = {mean['default'] / mean['off']:.3f}x; "
          f"logging share of wall time = {(mean['default'] - mean['off']) / mean['default']:.1%}")


if __name__ == "__main__":
    main()
