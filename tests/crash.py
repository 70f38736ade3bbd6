"""Crash machinery shared by the kill tests and ``bench/crash_resume.py``: run ``elixir-train`` in a
subprocess and end it like ``kill -9`` (``os._exit``: no cleanup, no flush) either at a named
phase of a checkpoint save or from outside once a step checkpoint exists.

The phases are reached by wrapping, inside the child only, the three places a save touches the
disk: ``checkpoint._write_durably`` (one call per file), ``os.replace`` into ``checkpoints/``,
and ``AtomicCheckpointIO.remove_checkpoint``. Production code has no hook for this.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

# Every instant of a save and of a removal, in the order they happen. "checkpoint" is the .ckpt
# file (with its integrity record), "metadata" the .json beside it.
PHASES = (
    "before_write_checkpoint",  # nothing of this save on disk yet
    "during_write_checkpoint",  # half of the temp file written and synced
    "before_rename_checkpoint",  # the whole temp file synced, not yet renamed
    "after_rename_checkpoint",  # the new .ckpt in place beside the previous save's .json
    "before_write_metadata",
    "during_write_metadata",
    "before_rename_metadata",
    "after_rename_metadata",  # the save complete, Lightning not yet told
    "before_removal",  # a superseded checkpoint about to be deleted
    "between_removal",  # its .json deleted, the .ckpt not yet
)

DIE_AT_PHASE = r"""
import os, sys
from pathlib import Path
import elixir_coder.training.checkpoint as c

phase, nth = os.environ["DIE_AT"].rsplit(":", 1)
nth, count = int(nth), {"checkpoint": 0, "metadata": 0, "removal": 0}

def die_if(point, kind):
    if phase == f"{point}_{kind}" and count[kind] == nth:
        os._exit(137)

def kind_of(path):
    path = Path(path)
    if path.parent.name != "checkpoints":
        return None
    return {".ckpt": "checkpoint", ".json": "metadata"}.get(path.suffix)

real_write, real_replace = c._write_durably, os.replace

def write(path, blob):
    kind = kind_of(path)
    count[kind] += 1
    die_if("before_write", kind)
    if phase == f"during_write_{kind}" and count[kind] == nth:
        with c.atomic_write(path) as fh:
            fh.write(blob[: len(blob) // 2])
            fh.flush()
            os.fsync(fh.fileno())
            os._exit(137)
    real_write(path, blob)

def replace(src, dst):
    kind = kind_of(dst)
    if kind:
        die_if("before_rename", kind)
    real_replace(src, dst)
    if kind:
        die_if("after_rename", kind)

def remove(self, path):
    count["removal"] += 1
    die_if("before", "removal")
    c.metadata_path(path).unlink(missing_ok=True)
    die_if("between", "removal")
    Path(path).unlink(missing_ok=True)

c._write_durably, os.replace, c.AtomicCheckpointIO.remove_checkpoint = write, replace, remove
from elixir_coder.cli.train import main
sys.argv = ["elixir-train", *sys.argv[1:]]
main()
"""


def train(args: list[str], run_dir: Path, cwd: Path, *, die_at: str | None = None,
          kill_at_step: int | None = None, timeout: float = 900) -> tuple[int, str]:
    """Run ``elixir-train args`` with Hydra's folder ``run_dir``; ``die_at="phase:n"`` ends it at
    the n-th time that phase is reached, ``kill_at_step`` SIGKILLs it once ``step-K.ckpt`` with
    K >= kill_at_step exists. Returns (exit code, stderr)."""
    if die_at is not None:
        cmd = [sys.executable, "-c", DIE_AT_PHASE, *args, f"hydra.run.dir={run_dir}"]
    else:
        cmd = [sys.executable, "-m", "elixir_coder.cli.train", *args, f"hydra.run.dir={run_dir}"]
    env = {**os.environ, **({"DIE_AT": die_at} if die_at else {})}
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    if kill_at_step is not None:
        deadline = time.time() + timeout

        def reached() -> bool:
            steps = [int(p.stem.split("-")[1]) for p in Path(run_dir).glob("checkpoints/step-*.ckpt")]
            return bool(steps) and max(steps) >= kill_at_step

        while not reached():
            if proc.poll() is not None or time.time() > deadline:
                raise AssertionError(f"run ended before the kill (exit {proc.poll()}): {proc.stderr.read()[-2000:]}")
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def final_params(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(Path(run_dir) / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def same_params(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
