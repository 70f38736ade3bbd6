"""What our training layers cost: tokens/s of the LightningModule with every default callback on
against a hand-written PyTorch loop with the same model, optimizer, schedule and batches; and
packed against padded batches in real tokens/s. One run, interleaved repeats.

    python bench/step_overhead.py [--steps 200] [--repeats 2]

Both sides train the tiny model (batch 16, max_len 512) on the demo corpus's code_generation
task with static weights, AdamW, the warmup-cosine schedule and global-norm clipping, and both
are timed the same way (``common.Window``): total wall time over ``--steps`` steps after a
warm-up, batch fetch, collation and expansion included on both sides. The default 200 steps
span every periodic cost of the default callbacks (logging every 10, console every 100,
histograms every 200). Checkpointing and validation are off on both sides.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from common import Window, timed
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from elixir_coder.config import conf_dir
from elixir_coder.corpus.prepare import ensure_prepared
from elixir_coder.corpus.recipe import recipe
from elixir_coder.model.transformer import Transformer
from elixir_coder.training import loop as training_loop
from elixir_coder.training.data import DataLoader, expand_batch
from elixir_coder.training.loss import IGNORE_INDEX, cross_entropy
from elixir_coder.training.optimizer import clip_gradients
from elixir_coder.training.optimizer import config as adamw
from elixir_coder.training.schedule import init as warmup_cosine


def compose_cfg(data_dir: Path, out: Path, steps: int, packing: bool):
    overrides = [f"data.data_dir={data_dir}", "data.prepare=false", "data.batch_size=16", "data.max_len=512",
                 f"data.packing={str(packing).lower()}", f"trainer.max_steps={steps + 5}", "trainer.max_epochs=-1",
                 "trainer.limit_val_batches=0",
                 "trainer.limit_train_batches=null", "validate_before_fit=false", "~callbacks.model_checkpoint"]
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    return cfg


def ours(data_dir: Path, out: Path, steps: int, packing: bool) -> float:
    """Real tokens/s through elixir-train's own composition (all default callbacks and logger)."""
    loop = training_loop.init(compose_cfg(data_dir, out, steps, packing))
    window = timed(loop.trainer)
    loop.trainer.fit(loop.module, datamodule=loop.datamodule)
    return window.tokens_per_s


def bare(data_dir: Path, steps: int, packing: bool, seed: int = 1234) -> float:
    """The same training written by hand: no Trainer, no callbacks, no logging."""
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)  # as the Trainer presets do (trainer.deterministic)
    loader = DataLoader.new(data_dir, "train", batch_size=16, max_len=512, packing=packing, seed=seed, tasks=["code_generation"])
    model = Transformer(loader.dataset.vocab_size, d_model=128, n_layers=4, n_heads=4, max_len=512)
    opt = adamw(model, lr=1e-3)
    sched = warmup_cosine(opt, total_steps=steps + 5, warmup_steps=50)
    window = Window(warmup=5)
    for step, batch in enumerate(loader.stream()):
        if step == steps + 5:
            break
        batch = expand_batch(batch)
        hidden = model(batch["input_ids"], position_ids=batch["position_ids"], segment_ids=batch["segment_ids"])
        target = batch["labels"] != IGNORE_INDEX
        loss = cross_entropy(model.lm_logits(hidden[target]), batch["labels"][target])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        clip_gradients(model.parameters(), 1.0)
        opt.step()
        sched.step()
        loss.item()  # what a loop that prints its loss pays
        window.step_done(step + 1, int(batch["sample_len"].sum()))
    return window.tokens_per_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    results: dict[str, list[float]] = {"ours, padded": [], "bare loop, padded": [], "ours, packed": [], "bare loop, packed": []}
    with tempfile.TemporaryDirectory() as tmp:
        # The embedded demo corpus itself, prepared as elixir-train would.
        data_dir = Path(tmp) / "tok"
        ensure_prepared(data_dir, recipe(jsonl=None, source_dir=None, vocab_size=8192, val_fraction=0.1, seed=1234,
                                         demo_modules=320, max_sample_tokens=2048), log=lambda _: None)
        for r in range(args.repeats):
            for packing in (False, True):
                kind = "packed" if packing else "padded"
                results[f"ours, {kind}"].append(ours(data_dir, Path(tmp) / f"run{r}{kind}", args.steps, packing))
                results[f"bare loop, {kind}"].append(bare(data_dir, args.steps, packing))
    best = {k: sum(v) / len(v) for k, v in results.items()}
    print(f"{'':20s} {'real tokens/s (mean of repeats)':>32s}")
    for name, rate in best.items():
        print(f"{name:20s} {rate:32,.0f}")
    for kind in ("padded", "packed"):
        print(f"step overhead, {kind}: ours step time / bare loop step time = "
              f"{best[f'bare loop, {kind}'] / best[f'ours, {kind}']:.3f}x")
    print(f"packed / padded (ours): {best['ours, packed'] / best['ours, padded']:.2f}x real tokens/s")


if __name__ == "__main__":
    main()
