"""Checkpoints (spec 4.6): durable atomic writes, an integrity record inside each checkpoint file,
a metadata file beside it, loading without unpickling code, and clear errors for every way a
checkpoint can be wrong.

Lightning's own save writes a temp file through fsspec and never fsyncs, so a power cut can
leave a checkpoint that looks complete but is not on disk; ``AtomicCheckpointIO`` plugs our
temp-file + fsync + rename + folder fsync into the Trainer as its ``CheckpointIO``.

The integrity record (format, SHA-256 and size of the archive) is the zip comment of the file
``torch.save`` writes: one rename publishes checkpoint and record together, so every instant of
a save leaves the newest or the previous checkpoint loadable and verifiable, the file stays a
plain ``torch.load``-able archive, and a copy or link of it (``last.ckpt``) carries its record.
The ``.json`` beside it is a convenience copy for people and tools; loading never trusts it.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import pickle
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import CheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from elixir_coder.errors import ElixirCoderError
from elixir_coder.io import atomic_write

FORMAT_VERSION = 1
KEY = "elixir_coder"  # our section inside Lightning's checkpoint dict
RECORD_FORMAT = "elixir-coder-checkpoint"
# The zip end-of-central-directory record: signature, 16 bytes of fields, comment length, comment.
_EOCD = b"PK\x05\x06"
_EOCD_SIZE = 22
_MAX_COMMENT = 0xFFFF


class CheckpointError(ElixirCoderError):
    """A checkpoint that is missing, damaged, from another format or another architecture."""


def metadata_path(path: str | os.PathLike) -> Path:
    return Path(path).with_suffix(".json")


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("elixir-coder")
    except PackageNotFoundError:
        return "unknown"


def _all_finite(obj: Any) -> bool:
    if isinstance(obj, torch.Tensor):
        return not obj.is_floating_point() or bool(torch.isfinite(obj).all())
    if isinstance(obj, dict):
        return all(_all_finite(v) for v in obj.values())
    return True


def seal(archive: bytes, record: dict) -> bytes:
    """``archive`` (a ``torch.save`` zip) with ``record`` plus the archive's SHA-256 and size as
    its zip comment; ``torch.load`` and ``zipfile`` read the result unchanged."""
    at = archive.rfind(_EOCD)
    if at < 0 or len(archive) != at + _EOCD_SIZE:
        raise CheckpointError("torch.save wrote an archive this package cannot seal (unexpected zip ending)")
    body = archive[: at + _EOCD_SIZE - 2]  # everything but the comment length
    comment = json.dumps({**record, "format": RECORD_FORMAT, "sha256": hashlib.sha256(body).hexdigest(),
                          "bytes": len(body)}, sort_keys=True).encode()
    if len(comment) > _MAX_COMMENT:
        raise CheckpointError(f"checkpoint integrity record too long ({len(comment)} bytes)")
    return body + struct.pack("<H", len(comment)) + comment


def unseal(data: bytes) -> tuple[dict | None, bytes]:
    """The integrity record of a sealed checkpoint (None when it has none) and the bytes it covers."""
    lo = max(0, len(data) - _EOCD_SIZE - _MAX_COMMENT)
    at = data.rfind(_EOCD, lo)
    while at >= 0:  # the end record is the one whose comment runs exactly to the end of the file
        if at + _EOCD_SIZE <= len(data) and at + _EOCD_SIZE + struct.unpack_from("<H", data, at + 20)[0] == len(data):
            break
        at = data.rfind(_EOCD, lo, at)
    if at < 0 or at + _EOCD_SIZE == len(data):
        return None, data
    try:
        record = json.loads(data[at + _EOCD_SIZE :])
    except (ValueError, UnicodeDecodeError):
        return None, data
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        return None, data
    return record, data[: at + _EOCD_SIZE - 2]


def _write_durably(path: Path, blob: bytes) -> None:
    """Temp file beside ``path``, fsync, rename over it, fsync the folder (``io.atomic_write``)."""
    with atomic_write(path) as fh:
        fh.write(blob)


def stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Temp files a killed save left in ``folder`` (``.X.ckpt.*.tmp``, ``.X.json.*.tmp``)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(".*.tmp") if p.is_file() and (".ckpt." in p.name or ".json." in p.name))


def remove_stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete what a killed save left behind (each such file holds a whole checkpoint's bytes)."""
    removed = stale_temp_files(folder)
    for p in removed:
        p.unlink(missing_ok=True)
    return removed


class AtomicCheckpointIO(CheckpointIO):
    """Writes ``X.ckpt`` (with its integrity record inside) and then ``X.json`` (metadata) durably
    and atomically; loads with ``weights_only=True`` after checking the file against its record."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if not _all_finite(checkpoint.get("state_dict", {})):
            raise CheckpointError(f"{path}: refusing to write a checkpoint with non-finite parameters")
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        ours = checkpoint.get(KEY, {})
        meta = {
            "format_version": FORMAT_VERSION,
            "epoch": checkpoint.get("epoch"),
            "step": checkpoint.get("global_step"),
            "config_sha256": hashlib.sha256(ours.get("config_yaml", "").encode()).hexdigest(),
            "package_version": _package_version(),
        }
        data = seal(buffer.getvalue(), meta)
        del buffer
        meta = {**meta, "metrics": ours.get("metrics", {}), "file_sha256": hashlib.sha256(data).hexdigest(),
                "file_bytes": len(data)}
        try:
            _write_durably(Path(path), data)
            _write_durably(metadata_path(path), (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
        except OSError as exc:
            hint = "free some disk space" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "check the folder"
            raise CheckpointError(
                f"{path}: cannot write the checkpoint ({exc.strerror or exc}); {hint} (paths.output_dir) "
                "and resume with ckpt_path=<run folder>: the previous checkpoints are intact"
            ) from exc

    def load_checkpoint(self, path, map_location: Any | None = None, weights_only: bool | None = None) -> dict[str, Any]:
        return read(path, map_location=map_location)

    def remove_checkpoint(self, path) -> None:
        # Metadata first: a kill between the two leaves a checkpoint without metadata (still
        # loadable and verifiable: the record is inside it), never metadata pointing at nothing.
        for p in (metadata_path(path), Path(path)):
            p.unlink(missing_ok=True)


def _step_of(path: str | os.PathLike) -> int:
    try:
        return int(Path(path).stem.split("-", 1)[1])
    except (IndexError, ValueError):
        return -1


class StepCheckpoint(ModelCheckpoint):
    """Mid-epoch checkpoints ``step-N.ckpt`` every N optimizer steps, only the newest kept, that
    a run can be killed and resumed from exactly. Two gaps of Lightning's ``ModelCheckpoint``
    are closed here:

    - Lightning never deletes the checkpoint a run resumed from, nor one whose deletion a kill
      interrupted; here both are superseded step checkpoints of this run folder, so each save
      removes every older ``step-*.ckpt`` (and its ``.json``).
    - Resuming from a step checkpoint taken on an epoch's last batch, Lightning counts that
      epoch as finished and skips its validation and epoch-end hooks (so no epoch checkpoint,
      and anything driven by validation metrics drifts from an uninterrupted run). Here they run
      first, as the uninterrupted run ran them right after that batch.
    """

    def __init__(self, dirpath: str, every_n_train_steps: int):
        super().__init__(dirpath=dirpath, filename="step-{step}", every_n_train_steps=every_n_train_steps,
                         save_top_k=1, monitor="step", mode="max", save_last=False, auto_insert_metric_name=False,
                         enable_version_counter=False)

    def _save_checkpoint(self, trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        if trainer.is_global_zero:
            for old in Path(filepath).parent.glob("step-*.ckpt"):
                if _step_of(old) < _step_of(filepath):
                    trainer.strategy.remove_checkpoint(old)

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        fit, epoch_loop = trainer.fit_loop, trainer.fit_loop.epoch_loop
        if not (fit.restarted_mid_epoch and epoch_loop.restarted_on_train_batch_end and epoch_loop.batch_progress.is_last_batch):
            return
        from lightning.pytorch.trainer import call

        fit.epoch_progress.current.completed -= 1  # back in the epoch whose last batch was trained
        try:
            if epoch_loop._should_check_val_epoch():
                trainer.validating = True
                epoch_loop.val_loop.run()
                trainer.training = True
            trainer._logger_connector.epoch_end_reached()
            call._call_callback_hooks(trainer, "on_train_epoch_end")
            call._call_lightning_module_hook(trainer, "on_train_epoch_end")
            trainer._logger_connector.on_epoch_end()
        finally:
            fit.epoch_progress.current.completed += 1


def verify(path: str | os.PathLike, data: bytes) -> None:
    """Check checkpoint bytes against the integrity record inside them (or, for a checkpoint
    written before records existed, the SHA-256 in the ``.json`` beside it)."""
    path = Path(path)
    if not data:
        raise CheckpointError(f"{path}: empty file (0 bytes); a save was cut short: use an earlier checkpoint")
    record, body = unseal(data)
    if record is not None:
        if record.get("bytes") != len(body) or record.get("sha256") != hashlib.sha256(body).hexdigest():
            raise CheckpointError(f"{path}: checksum does not match the integrity record inside it; "
                                  "the file was damaged after it was written: use an earlier checkpoint")
        return
    meta_file = metadata_path(path)
    try:
        meta = json.loads(meta_file.read_text()) if meta_file.is_file() else None
    except (ValueError, UnicodeDecodeError, OSError):
        meta = None
    written = meta.get("file_bytes") if isinstance(meta, dict) else None
    if isinstance(meta, dict) and written == len(data) and isinstance(meta.get("file_sha256"), str):
        if meta["file_sha256"] != hashlib.sha256(data).hexdigest():  # written before records existed
            raise CheckpointError(f"{path}: checksum does not match {meta_file.name}; the file changed after it "
                                  "was written: use an earlier checkpoint")
        return
    size = f"{len(data)} bytes" + (f", {written} when written" if isinstance(written, int) else "")
    raise CheckpointError(f"{path}: no integrity record at its end ({size}): truncated, damaged, or not written "
                          "by elixir-coder; use an earlier checkpoint")


def read(path: str | os.PathLike, map_location: Any | None = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely: verify its integrity record, then ``torch.load(weights_only=True)``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    data = path.read_bytes()
    verify(path, data)
    try:
        checkpoint = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({str(exc).splitlines()[0]}); it may be truncated") from exc
    version = checkpoint.get(KEY, {}).get("format_version") if isinstance(checkpoint, dict) else None
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r}, this package reads version {FORMAT_VERSION}; "
            "it was written by another version of elixir-coder"
        )
    return checkpoint


def check_architecture(expected: dict[str, torch.Tensor], saved: dict[str, torch.Tensor], path: str = "checkpoint") -> None:
    """Refuse a checkpoint whose parameter names or shapes differ from the model built from the config."""
    missing = sorted(set(expected) - set(saved))
    unexpected = sorted(set(saved) - set(expected))
    shapes = sorted(
        f"{k}: checkpoint {tuple(saved[k].shape)} vs config {tuple(expected[k].shape)}"
        for k in set(expected) & set(saved) if tuple(saved[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append("shapes differ: " + "; ".join(shapes[:5]) + (" ..." if len(shapes) > 5 else ""))
        if missing:
            parts.append("missing in checkpoint: " + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
        if unexpected:
            parts.append("not in this model: " + ", ".join(unexpected[:5]) + (" ..." if len(unexpected) > 5 else ""))
        raise CheckpointError(f"{path}: the model architecture differs from the config ({'; '.join(parts)}); "
                              "use the model=/model.* settings the checkpoint was trained with")


@dataclass
class Checkpoint:
    """A read-only view of what a checkpoint holds (spec 4.6.1)."""

    path: Path
    epoch: int
    step: int
    model: dict[str, torch.Tensor]
    optimizer: list[dict]
    scheduler: list[dict]
    loss_weighting: dict[str, torch.Tensor]
    curriculum: dict
    rng: dict
    data_position: list[dict]
    config_yaml: str
    metrics: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Checkpoint:
        ckpt = read(path)
        ours = ckpt.get(KEY, {})
        state = ckpt.get("state_dict", {})
        return cls(
            path=Path(path), epoch=ckpt.get("epoch", 0), step=ckpt.get("global_step", 0),
            model={k[len("model."):]: v for k, v in state.items() if k.startswith("model.")},
            optimizer=ckpt.get("optimizer_states", []), scheduler=ckpt.get("lr_schedulers", []),
            loss_weighting={k[len("weighting."):]: v for k, v in state.items() if k.startswith("weighting.")},
            curriculum=_callback_state(ckpt, "Curriculum"), rng=ours.get("rng", {}),
            data_position=ckpt.get("loops", {}).get("fit_loop", {}).get("state_dict", {}).get("combined_loader", []),
            config_yaml=ours.get("config_yaml", ""), metrics=ours.get("metrics", {}),
        )


def _callback_state(ckpt: dict, name: str) -> dict:
    """A callback's saved state (Lightning keys it by class name, plus its settings if any)."""
    return next((v for k, v in ckpt.get("callbacks", {}).items() if k.split("{")[0] == name), {})


class FreshLastCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` with ``last.ckpt`` always the newest state.

    Lightning 2.6 rewrites ``last.ckpt`` only in a step where it also saved a top-K checkpoint,
    so a run whose monitored metric stops improving keeps an old one, and resuming or exporting
    ``last`` silently goes back in time. Here ``last.ckpt`` is rewritten at every epoch end and,
    with ``last_every_n_train_steps``, every N optimizer steps (the mid-epoch crash-recovery
    points), whatever top-K decides.
    """

    def __init__(self, *args, last_every_n_train_steps: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.last_every_n_train_steps = last_every_n_train_steps
        self._last_step_written: int | None = None

    def _save_last_checkpoint(self, trainer, monitor_candidates) -> None:
        super()._save_last_checkpoint(trainer, monitor_candidates)
        if self.save_last:
            self._last_step_written = trainer.global_step

    def _refresh_last(self, trainer) -> None:
        if self.save_last and self._last_step_written != trainer.global_step and not trainer.sanity_checking \
                and not trainer.fast_dev_run and trainer.state.fn == "fit":
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        n = self.last_every_n_train_steps
        # The epoch's last batch is left to the epoch-end save, which then holds the finished epoch
        # (and top-K still sees a step it has not saved at).
        if n and trainer.global_step % n == 0 and not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            self._refresh_last(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        self._refresh_last(trainer)  # a run stopped by max_steps mid-epoch ends on its newest state


def resolve_ckpt_path(ckpt_path: str | None, outputs_dir: str | os.PathLike = "outputs") -> str | None:
    """``ckpt_path=`` accepts a file, a run folder (its newest ``last.ckpt`` or ``step-*.ckpt``), or
    ``last`` (the newest such checkpoint under ``outputs/`` and ``multirun/``)."""
    if ckpt_path in (None, ""):
        return None
    if ckpt_path == "last":
        roots = [Path(outputs_dir), Path(outputs_dir).parent / "multirun"]
        found = [p for root in roots if root.is_dir() for p in _resumable(root.glob("**/checkpoints"))]
        if not found:
            raise CheckpointError(f"ckpt_path=last: no checkpoints/last.ckpt under {outputs_dir}/ or multirun/; "
                                  "pass the checkpoint file or run folder instead")
        return str(max(found, key=lambda p: p.stat().st_mtime))
    path = Path(ckpt_path)
    if path.is_dir():
        folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        found = _resumable([folder])
        if not found:
            raise CheckpointError(f"ckpt_path={ckpt_path}: no last.ckpt or step-*.ckpt in {folder}")
        return str(max(found, key=lambda p: p.stat().st_mtime))
    if not path.is_file():
        raise CheckpointError(f"ckpt_path={ckpt_path}: no such file or folder")
    return str(path)


def _resumable(folders) -> list[Path]:
    return [p for folder in folders for pattern in ("last.ckpt", "step-*.ckpt") for p in Path(folder).glob(pattern)]


def run_dir_of(ckpt_file: str | os.PathLike) -> Path:
    """The run folder a checkpoint was written in (``<run>/checkpoints/x.ckpt``)."""
    path = Path(ckpt_file).resolve()
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def save(trainer, path: str | os.PathLike) -> Path:
    """Spec 4.6.2: save the full training state now (through the Trainer's atomic CheckpointIO)."""
    trainer.save_checkpoint(str(path))
    return Path(path)


def load(path: str | os.PathLike, module: torch.nn.Module) -> Checkpoint:
    """Spec 4.6.3: restore a module's parameters (architecture checked); returns the full view.

    To resume a run (optimizer, scheduler, counters, data position, RNG) pass ``ckpt_path=`` to
    ``elixir-train``, which hands the file to Lightning.
    """
    ckpt = read(path)
    state = ckpt["state_dict"]
    check_architecture(module.state_dict(), state, str(path))
    module.load_state_dict(state)
    return Checkpoint.load(path)


def export_safetensors(ckpt_path: str | os.PathLike) -> Path:
    """The model and head weights of a checkpoint as ``<name>.safetensors`` plus its config as
    ``<name>.yaml``, beside the checkpoint, both written atomically."""
    from safetensors.torch import save

    ckpt_path = Path(ckpt_path)
    ckpt = read(ckpt_path)
    tensors = {k: v.contiguous() for k, v in ckpt["state_dict"].items() if k.startswith(("model.", "heads."))}
    out = ckpt_path.with_suffix(".safetensors")
    meta = {"epoch": str(ckpt.get("epoch")), "step": str(ckpt.get("global_step")), "format": "elixir-coder"}
    with atomic_write(out) as fh:
        fh.write(save(tensors, metadata=meta))
    with atomic_write(out.with_suffix(".yaml"), "w") as fh:
        fh.write(ckpt.get(KEY, {}).get("config_yaml", ""))
    return out
