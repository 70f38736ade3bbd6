"""Crash trials: train, kill at a random instant, resume from the run folder, and compare the final
parameters bit for bit with an uninterrupted run of the same config.

    python bench/crash_resume.py [--trials 20] [--seed 0] [--epochs 3]

Trials alternate between two configs, the tiny code-generation run and a multi-task run with
GradNorm weighting and the tiered curriculum (phases plus contrastive rule tiers). Odd trials
die like ``kill -9`` at a random phase of a random checkpoint save (tests/crash.py lists the
phases); even trials get a real SIGKILL at a random wall-clock instant between the first
checkpoint and the end of the run. Prints one line per trial and how many ended bitwise
identical (the claim: all of them).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import crash  # noqa: E402
from conftest import write_tiny_corpus  # noqa: E402

CONFIGS = {
    "codegen": [],
    "multitask+gradnorm+tiered": ["task=multitask", "loss=gradnorm", "curriculum=tiered"],
}
SHAPE = ["data.vocab_size=400", "data.max_len=64", "data.batch_size=8", "model.d_model=32", "model.n_layers=1",
         "model.n_heads=2", "model.max_len=64", "validate_before_fit=false", "~callbacks.progress_bar",
         "trainer.limit_val_batches=2", "trainer.limit_train_batches=5", "checkpoint_every_n_steps=2"]


def kill_at_random_time(args, run: Path, tmp: Path, rng: random.Random, span: tuple[float, float]) -> tuple[int, str]:
    """SIGKILL at a uniform instant in ``span`` seconds after start (or once the first checkpoint
    exists, if that comes later). A run that finishes first was not crashed: it is started again
    in a clean folder and killed at an instant drawn below its own duration (up to 3 times)."""
    for _ in range(3):
        at = rng.uniform(*span)
        cmd = [sys.executable, "-m", "elixir_coder.cli.train", *args, f"hydra.run.dir={run}"]
        proc = subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env=dict(os.environ))
        start = time.perf_counter()
        while proc.poll() is None and (time.perf_counter() - start < at or not list(run.glob("checkpoints/*.ckpt"))):
            time.sleep(0.01)
        killed = proc.poll() is None
        if killed:
            proc.send_signal(signal.SIGKILL)
        proc.communicate()
        elapsed = time.perf_counter() - start
        if killed:
            return proc.returncode, f"at {elapsed:.1f}s"
        shutil.rmtree(run)
        span = (span[0], 0.8 * elapsed)
    return 0, "(every draw came after the run finished)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    results: dict[str, list[bool]] = {name: [] for name in CONFIGS}
    crashes = 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = write_tiny_corpus(tmp / "records.jsonl")
        reference, duration, saves = {}, {}, {}
        for name, extra in CONFIGS.items():
            common = [f"data.jsonl={corpus}", *SHAPE, f"trainer.max_epochs={args.epochs}", *extra]
            start = time.perf_counter()
            code, err = crash.train(common, tmp / f"whole-{name}", tmp)
            duration[name] = time.perf_counter() - start
            if code != 0:
                sys.exit(err[-3000:])
            reference[name] = crash.final_params(tmp / f"whole-{name}")
            saves[name] = sum(1 for line in (tmp / f"whole-{name}" / "events.jsonl").read_text().splitlines()
                              if '"event": "checkpoint"' in line)
            print(f"reference {name}: {duration[name]:.1f}s, {saves[name]} checkpoint saves", flush=True)
        for trial in range(args.trials):
            name = list(CONFIGS)[trial % len(CONFIGS)]
            common = [f"data.jsonl={corpus}", *SHAPE, f"trainer.max_epochs={args.epochs}", *CONFIGS[name]]
            run = tmp / f"trial{trial}"
            if trial % 4 in (1, 2):
                phase = rng.choice(crash.PHASES)
                nth = rng.randint(2, max(2, saves[name] - 2))  # a checkpoint exists behind every kill
                code, _ = crash.train(common, run, tmp, die_at=f"{phase}:{nth}")
                what = f"{phase} #{nth}"
            else:
                code, what = kill_at_random_time(common, run, tmp, rng, (0.0, duration[name]))
                what = f"kill -9 {what}"
            crashed = code != 0
            if not crashed:
                what += " (finished before the kill: not a crash trial)"
            code, err = crash.train([*common, f"ckpt_path={run}"], tmp / f"resumed{trial}", tmp)
            same = code == 0 and crash.same_params(reference[name], crash.final_params(run))
            results[name].append(same)
            crashes += crashed
            detail = "" if code == 0 else f" (resume exit {code}: {err.strip().splitlines()[-1] if err.strip() else ''})"
            print(f"trial {trial:2d} {name}: {what}: resumed -> {'bitwise identical' if same else 'DIFFERENT'}{detail}",
                  flush=True)
    for name, ok in results.items():
        print(f"{name}: {sum(ok)}/{len(ok)} bitwise identical")
    total = [x for ok in results.values() for x in ok]
    print(f"{sum(total)}/{len(total)} trials bitwise identical to the uninterrupted run "
          f"({crashes} of them ended by the kill, the rest finished first)")


if __name__ == "__main__":
    main()
