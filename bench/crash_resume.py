"""Crash trials: train, `kill -9` at a random step (or in the middle of a checkpoint write),
resume from the run folder, and compare the final parameters with an uninterrupted run.

    python bench/crash_resume.py [--trials 5] [--seed 0]

Prints one line per trial and how many ended bitwise identical (the claim: all of them).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import write_tiny_corpus  # noqa: E402
from test_checkpoint import _train, final_params  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    identical = 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = write_tiny_corpus(tmp / "records.jsonl")
        common = [f"data.jsonl={corpus}", "data.vocab_size=400", "data.max_len=64", "data.batch_size=8",
                  "model.d_model=32", "model.n_layers=1", "model.n_heads=2", "model.max_len=64", "trainer.max_epochs=3",
                  "checkpoint_every_n_steps=3", "validate_before_fit=false", "~callbacks.progress_bar"]
        code, err = _train(common, tmp / "whole", tmp)
        if code != 0:
            sys.exit(err[-2000:])
        reference = final_params(tmp / "whole")
        for trial in range(args.trials):
            during_save = trial % 2 == 1
            run = tmp / f"trial{trial}"
            if during_save:
                point = rng.randint(3, 15)
                _train(common, run, tmp, env={"DIE_AT_WRITE": str(point)})
                what = f"killed during checkpoint write #{point}"
            else:
                point = 3 * rng.randint(1, 6)
                _train(common, run, tmp, kill_at_step=point)
                what = f"kill -9 at step >= {point}"
            code, err = _train([*common, f"ckpt_path={run}"], tmp / f"resumed{trial}", tmp)
            final = final_params(run)
            same = code == 0 and all(torch.equal(reference[k], final[k]) for k in reference)
            identical += same
            print(f"trial {trial}: {what}: resumed -> {'bitwise identical' if same else 'DIFFERENT'}")
    print(f"{identical}/{args.trials} trials bitwise identical to the uninterrupted run")


if __name__ == "__main__":
    main()
