"""Checkpoints (spec 4.6): atomic top-K saves, exact resume after kill -9, clear errors."""

from __future__ import annotations

import errno
import hashlib
import json
import random
import shutil
from pathlib import Path

import crash
import pytest
import torch


from elixir_coder.io import atomic_write
from elixir_coder.training import checkpoint as ckpt_mod
from elixir_coder.training import loop as training_loop
from elixir_coder.training.checkpoint import Checkpoint, CheckpointError, read, resolve_ckpt_path


@pytest.fixture
def trained(make_cfg):
    """A short run with epoch and step checkpoints; returns (cfg, loop, checkpoint folder)."""
    cfg = make_cfg("trainer.max_epochs=2", "checkpoint_every_n_steps=4")
    loop = training_loop.init(cfg)
    loop.trainer.fit(loop.module, datamodule=loop.datamodule)
    return cfg, loop, Path(cfg.paths.output_dir) / "checkpoints"


def test_checkpoint_holds_everything_a_resume_needs(trained):
    cfg, loop, folder = trained
    view = Checkpoint.load(folder / "last.ckpt")
    assert view.epoch == 1 and view.step == loop.trainer.global_step
    assert set(view.model) == set(loop.module.model.state_dict())
    assert view.optimizer and view.scheduler and view.scheduler[0]["last_epoch"] == view.step
    assert "base" in view.loss_weighting and "torch" in view.rng
    assert "model:" in view.config_yaml and "d_model: 32" in view.config_yaml
    meta = json.loads((folder / "last.json").read_text())
    assert {"epoch", "step", "metrics", "config_sha256", "package_version", "file_sha256"} <= set(meta)
    assert "val/loss" in meta["metrics"]


def test_load_restores_parameters_and_refuses_other_architectures(trained, make_cfg):
    cfg, loop, folder = trained
    fresh = training_loop.init(make_cfg("trainer.max_epochs=2")).module
    ckpt_mod.load(folder / "last.ckpt", fresh)
    for a, b in zip(fresh.model.parameters(), loop.module.model.parameters()):
        assert torch.equal(a, b)
    other = training_loop.init(make_cfg("model.d_model=48")).module
    with pytest.raises(CheckpointError, match=r"architecture differs from the config \(shapes differ: .*: checkpoint \(\d+, 32\) vs config \(\d+, 48\)"):
        ckpt_mod.load(folder / "last.ckpt", other)


def test_top_k_keeps_the_three_best_and_last(make_cfg):
    cfg = make_cfg("trainer.max_epochs=6", "optimizer.lr=3e-2")
    loop = training_loop.init(cfg)
    loop.trainer.fit(loop.module, datamodule=loop.datamodule)
    folder = Path(cfg.paths.output_dir) / "checkpoints"
    kept = sorted(p.name for p in folder.glob("*.ckpt"))
    assert len(kept) == 4 and "last.ckpt" in kept
    assert all((folder / name).with_suffix(".json").is_file() for name in kept)
    assert len(list(folder.glob("*.json"))) == 4  # metadata of deleted checkpoints went with them
    scores = {p.name: json.loads(p.with_suffix(".json").read_text())["metrics"]["val/select"] for p in folder.glob("model-*.ckpt")}
    callback = loop.trainer.checkpoint_callback
    best = sorted(float(v) for v in callback.best_k_models.values())
    assert sorted(scores.values()) == pytest.approx(best)


def test_failed_write_keeps_previous_checkpoints(trained, monkeypatch):
    """Disk full in the middle of a save: the old checkpoints stay intact, nothing partial appears."""
    cfg, loop, folder = trained
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    class DiskFull:
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            self.fh.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.fh, name)

    real = atomic_write

    def failing(path, mode="wb"):
        cm = real(path, mode)

        class Wrapped:
            def __enter__(self):
                return DiskFull(cm.__enter__())

            def __exit__(self, *exc):
                return cm.__exit__(*exc)

        return Wrapped()

    monkeypatch.setattr(ckpt_mod, "atomic_write", failing)
    with pytest.raises(CheckpointError, match=r"model-9.ckpt: cannot write the checkpoint \(No space left on device\); free some disk space"):
        loop.trainer.save_checkpoint(str(folder / "model-9.ckpt"))
    after = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert after == before  # no model-9.ckpt, no temp file, old files untouched
    read(folder / "last.ckpt")


def flip_byte(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


def stale_json(p):
    """The crash window of a two-step save: a new checkpoint beside the previous one's metadata."""
    meta = json.loads(p.with_suffix(".json").read_text())
    p.with_suffix(".json").write_text(json.dumps({**meta, "file_bytes": meta["file_bytes"] - 510, "file_sha256": "0" * 64}))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: p.write_bytes(p.read_bytes()[:1000]), r"no integrity record at its end \(1000 bytes, \d+ when written\)"),
        (lambda p: (p.write_bytes(p.read_bytes()[:1000]), p.with_suffix(".json").unlink()), r"no integrity record at its end \(1000 bytes\)"),
        (lambda p: p.write_bytes(b""), r"empty file \(0 bytes\)"),
        (lambda p: p.write_bytes(flip_byte(p.read_bytes(), 5000)), r"checksum does not match the integrity record inside it"),
        # A flipped byte deep in the optimizer state, with no metadata file to compare against.
        (lambda p: (p.write_bytes(flip_byte(p.read_bytes(), len(p.read_bytes()) - 3000)), p.with_suffix(".json").unlink()),
         r"checksum does not match the integrity record inside it"),
        (lambda p: p.write_bytes(flip_byte(p.read_bytes(), len(p.read_bytes()) - 5)), r"checksum does not match last\.json"),
        (lambda p: (p.write_bytes(flip_byte(p.read_bytes(), len(p.read_bytes()) - 5)), p.with_suffix(".json").unlink()),
         r"no integrity record at its end"),
        (lambda p: p.unlink(), r"no such checkpoint file"),
    ],
)
def test_damaged_checkpoints_give_one_clear_error(trained, damage, message):
    _, _, folder = trained
    damage(folder / "last.ckpt")
    with pytest.raises(CheckpointError, match=message):
        read(folder / "last.ckpt")


@pytest.mark.parametrize("damage", [stale_json, lambda p: p.with_suffix(".json").write_text("{not json"),
                                    lambda p: p.with_suffix(".json").unlink()])
def test_metadata_file_is_never_needed_to_load(trained, damage):
    """The integrity record travels inside the checkpoint: a stale, corrupt or missing .json
    beside it (a kill between the two writes, a hand edit) changes nothing."""
    _, loop, folder = trained
    damage(folder / "last.ckpt")
    state = read(folder / "last.ckpt")["state_dict"]
    assert all(torch.equal(state[k], v) for k, v in loop.module.state_dict().items())


def test_sealed_checkpoint_is_still_a_plain_torch_file(trained):
    _, _, folder = trained
    data = (folder / "last.ckpt").read_bytes()
    record, body = ckpt_mod.unseal(data)
    assert record["format"] == "elixir-coder-checkpoint" and record["bytes"] == len(body)
    assert record["step"] == json.loads((folder / "last.json").read_text())["step"]
    assert "state_dict" in torch.load(folder / "last.ckpt", weights_only=True)


def test_checkpoint_from_before_integrity_records_is_checked_against_its_json(trained):
    _, loop, folder = trained
    legacy = folder / "legacy.ckpt"
    _, body = ckpt_mod.unseal((folder / "last.ckpt").read_bytes())
    archive = body + b"\x00\x00"  # exactly as torch.save wrote it: no zip comment
    legacy.write_bytes(archive)
    meta = {"file_bytes": len(archive), "file_sha256": hashlib.sha256(archive).hexdigest()}
    legacy.with_suffix(".json").write_text(json.dumps(meta))
    assert read(legacy)["global_step"] == loop.trainer.global_step
    legacy.write_bytes(flip_byte(legacy.read_bytes(), 5000))
    with pytest.raises(CheckpointError, match=r"checksum does not match legacy\.json"):
        read(legacy)


def test_older_format_version_is_refused(trained):
    _, loop, folder = trained
    old = folder / "old.ckpt"
    state = torch.load(folder / "last.ckpt", weights_only=True)
    state["elixir_coder"]["format_version"] = 0
    ckpt_mod.AtomicCheckpointIO().save_checkpoint(state, old)
    with pytest.raises(CheckpointError, match=r"format version 0, this package reads version 1"):
        read(old)


def test_stale_temp_files_are_found_and_removed(tmp_path):
    for name in (".last.ckpt.abc123.tmp", ".step-6.json.x.tmp", "last.ckpt", ".hidden", "other.tmp"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in ckpt_mod.remove_stale_temp_files(tmp_path)] == [".last.ckpt.abc123.tmp", ".step-6.json.x.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden", "last.ckpt", "other.tmp"]


def test_ckpt_path_resolution(trained, tmp_path):
    _, _, folder = trained
    assert resolve_ckpt_path(str(folder.parent)).endswith((".ckpt"))
    newest = max([folder / "last.ckpt", *folder.glob("step-*.ckpt")], key=lambda p: p.stat().st_mtime)
    assert resolve_ckpt_path(str(folder.parent)) == str(newest)
    assert resolve_ckpt_path("last", outputs_dir=folder.parent.parent) == str(newest)
    with pytest.raises(CheckpointError, match="ckpt_path=last: no checkpoints/last.ckpt"):
        resolve_ckpt_path("last", outputs_dir=tmp_path / "nothing")
    with pytest.raises(CheckpointError, match="no such file or folder"):
        resolve_ckpt_path(str(tmp_path / "missing.ckpt"))


def test_no_checkpoint_with_nonfinite_parameters(trained):
    _, loop, folder = trained
    with torch.no_grad():
        next(loop.module.model.parameters()).fill_(float("nan"))
    with pytest.raises(CheckpointError, match="non-finite parameters"):
        loop.trainer.save_checkpoint(str(folder / "nan.ckpt"))
    assert not (folder / "nan.ckpt").exists()


# -- kill -9 and resume: the final parameters are bitwise those of an uninterrupted run ----------

KILL_ARGS = ["data.vocab_size=400", "data.max_len=64", "data.batch_size=8", "model.d_model=32", "model.n_layers=1",
             "model.n_heads=2", "model.max_len=64", "validate_before_fit=false", "~callbacks.progress_bar",
             "trainer.limit_val_batches=2", "checkpoint_every_n_steps=2"]

# (phase, which occurrence in that run): each crash resumes the previous one's run folder. The
# first needs a checkpoint behind it; the others die at their first chance.
CHAIN = [(phase, 2 if i == 0 else 1) for i, phase in enumerate(crash.PHASES)]


@pytest.mark.slow
def test_killed_at_every_phase_of_a_save_resumes_bitwise_identical(tmp_path, tiny_corpus):
    """One run killed at each phase of a save in turn (each resume is killed at the next phase),
    then resumed to the end: the parameters equal the uninterrupted run's bit for bit, and no
    temp file or superseded checkpoint is left behind."""
    args = [f"data.jsonl={tiny_corpus}", *KILL_ARGS, "trainer.max_epochs=3", "trainer.limit_train_batches=5"]
    code, err = crash.train(args, tmp_path / "whole", tmp_path)
    assert code == 0, err[-2000:]
    run = tmp_path / "crashed"
    code, err = crash.train(args, run, tmp_path, die_at=f"{CHAIN[0][0]}:{CHAIN[0][1]}")
    assert code == 137, err[-2000:]
    for k, (phase, nth) in enumerate(CHAIN[1:], 1):
        code, err = crash.train([*args, f"ckpt_path={run}"], tmp_path / f"resume{k}", tmp_path, die_at=f"{phase}:{nth}")
        assert code == 137, f"{phase}: {err[-2000:]}"
    code, err = crash.train([*args, f"ckpt_path={run}"], tmp_path / "final", tmp_path)
    assert code == 0, err[-2000:]
    assert crash.same_params(crash.final_params(tmp_path / "whole"), crash.final_params(run))
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "whole" / "checkpoints").iterdir())


@pytest.mark.slow
def test_kill_9_at_a_step_and_resume_is_bitwise_identical(tmp_path, tiny_corpus):
    args = [f"data.jsonl={tiny_corpus}", *KILL_ARGS, "trainer.max_epochs=2", "checkpoint_every_n_steps=3"]
    code, err = crash.train(args, tmp_path / "whole", tmp_path)
    assert code == 0, err[-2000:]
    code, _ = crash.train(args, tmp_path / "crashed", tmp_path, kill_at_step=3 * random.Random(0).randint(1, 4))
    assert code != 0
    code, err = crash.train([*args, f"ckpt_path={tmp_path / 'crashed'}"], tmp_path / "resumed", tmp_path)
    assert code == 0, err[-2000:]
    assert crash.same_params(crash.final_params(tmp_path / "whole"), crash.final_params(tmp_path / "crashed"))


def test_export_to_safetensors(trained):
    from safetensors.torch import load_file

    _, loop, folder = trained
    out = ckpt_mod.export_safetensors(folder / "last.ckpt")
    tensors = load_file(out)
    state = loop.module.state_dict()
    assert set(tensors) == {k for k in state if k.startswith(("model.", "heads."))}
    assert all(torch.equal(tensors[k], state[k]) for k in tensors)
    assert "d_model: 32" in out.with_suffix(".yaml").read_text()


def test_resume_reports_config_differences_but_not_run_length(trained, make_cfg):
    cfg, _, folder = trained
    saved = read(folder / "last.ckpt")["elixir_coder"]["config_yaml"]
    longer = make_cfg("trainer.max_epochs=5", "checkpoint_every_n_steps=4")
    assert training_loop.config_differences(saved, longer) == []
    changed = make_cfg("trainer.max_epochs=2", "checkpoint_every_n_steps=4", "optimizer.lr=0.5")
    assert training_loop.config_differences(saved, changed) == ["optimizer.lr: 0.001 -> 0.5"]


def test_resume_from_a_last_batch_step_checkpoint_finishes_that_epoch(make_cfg, tmp_path):
    """Killed right after the step checkpoint of an epoch's last batch (before validation and
    the epoch checkpoint): the resumed run validates that epoch, writes its epoch checkpoint,
    cleans up the step checkpoint it resumed from and a killed save's temp file, and ends
    bitwise where the uninterrupted run ends, with the same files."""
    shape = ["trainer.limit_train_batches=6", "trainer.limit_val_batches=2", "checkpoint_every_n_steps=3"]

    def fit(cfg):
        loop = training_loop.init(cfg)
        loop.trainer.fit(loop.module, datamodule=loop.datamodule, ckpt_path=cfg.get("ckpt_path"))
        return loop

    first = make_cfg(*shape)
    fit(first)
    whole = Path(first.paths.output_dir)
    crashed = tmp_path / "crashed"
    shutil.copytree(whole, crashed)
    for name in ("last.ckpt", "last.json", "model-0.ckpt", "model-0.json"):  # the kill came before these
        (crashed / "checkpoints" / name).unlink()
    (crashed / "checkpoints" / ".last.ckpt.k1ll3d.tmp").write_bytes(b"half a checkpoint")
    assert sorted(p.name for p in (crashed / "checkpoints").iterdir()) == [".last.ckpt.k1ll3d.tmp", "step-6.ckpt", "step-6.json"]

    fit(make_cfg(*shape, "trainer.max_epochs=2", f"ckpt_path={whole}/checkpoints/last.ckpt"))
    fit(make_cfg(*shape, "trainer.max_epochs=2", f"ckpt_path={crashed}"))

    names = sorted(p.name for p in (whole / "checkpoints").iterdir())
    assert names == ["last.ckpt", "last.json", "model-0.ckpt", "model-0.json", "model-1.ckpt", "model-1.json",
                     "step-12.ckpt", "step-12.json"]
    assert sorted(p.name for p in (crashed / "checkpoints").iterdir()) == names
    for name in ("model-0.json", "model-1.json"):
        a, b = (json.loads((run / "checkpoints" / name).read_text()) for run in (whole, crashed))
        assert a["step"] == b["step"] and a["metrics"]["val/loss"] == b["metrics"]["val/loss"]
    events = [json.loads(line) for line in (crashed / "events.jsonl").read_text().splitlines()]
    events = events[max(i for i, e in enumerate(events) if e["event"] == "start"):]  # the resumed run's
    assert [(e["event"], e["measurements"]["global_step"]) for e in events if e["event"] in ("validation", "epoch")] == [
        ("validation", 6), ("epoch", 6), ("validation", 12), ("epoch", 12)]
    a, b = crash.final_params(whole), crash.final_params(crashed)
    assert all(torch.equal(a[k], b[k]) for k in a)
