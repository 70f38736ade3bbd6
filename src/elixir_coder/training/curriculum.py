"""Curriculum (spec 4.8): training phases that introduce tasks gradually, ramp the weight of
newly introduced tasks, and widen the Credo/Sobelow rule tiers a classifier is trained on.

Epochs here are counted from 1 as in the spec (Lightning's epoch 0 is curriculum epoch 1).
Everything is a pure function of the epoch, so a resumed run reproduces the same phase and ramp
position; the callback also saves them in checkpoints for inspection.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import lightning as L

from elixir_coder.errors import ElixirCoderError
from elixir_coder.labels import QUALITY_LABELS, SECURITY_LABELS, TASKS, quality_tier

log = logging.getLogger("elixir_coder")

OBJECTIVES = ("clm", "mlm")


class CurriculumError(ElixirCoderError, ValueError):
    """A curriculum config that does not describe a valid sequence of phases."""


@dataclass(frozen=True)
class Phase:
    """Spec 4.8.1: a span of epochs (``last_epoch`` None = open-ended), its tasks and objective.

    ``rule_tiers``: the Credo tiers (1-4) whose labels the quality head is trained on in this
    phase; security findings are all tier-free and follow ``quality`` in or out.
    """

    name: str
    first_epoch: int
    last_epoch: int | None
    tasks: tuple[str, ...]
    objective: str = "clm"
    rule_tiers: tuple[int, ...] = (1, 2, 3, 4)

    def __post_init__(self):
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown:
            raise ValueError(f"curriculum phase {self.name!r}: unknown task {unknown[0]!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"curriculum phase {self.name!r}: objective must be one of {OBJECTIVES}")

    def covers(self, epoch: int) -> bool:
        return self.first_epoch <= epoch and (self.last_epoch is None or epoch <= self.last_epoch)


def scale_epoch(first_epoch: int, scale: float) -> int:
    """Where a phase starting at ``first_epoch`` starts when every phase is ``scale`` times as long."""
    return 1 + round((first_epoch - 1) * scale)


def make_phases(specs: Sequence[Mapping], epoch_scale: float = 1.0) -> list[Phase]:
    """Phases from config dicts, checked to tile the epochs from 1 without gaps or overlaps;
    ``epoch_scale`` stretches or compresses them (the CPU demo runs them at 0.1)."""
    firsts = [scale_epoch(int(s["first_epoch"]), epoch_scale) for s in specs]
    lasts = [None if s.get("last_epoch") is None else scale_epoch(int(s["last_epoch"]) + 1, epoch_scale) - 1 for s in specs]
    phases = [Phase(s["name"], first, last, tuple(s["tasks"]), s.get("objective", "clm"),
                    tuple(s.get("rule_tiers", (1, 2, 3, 4)))) for s, first, last in zip(specs, firsts, lasts)]
    empty = [p.name for p in phases if p.last_epoch is not None and p.last_epoch < p.first_epoch]
    if empty:
        raise CurriculumError(f"curriculum phase {empty[0]!r} has no epochs at epoch_scale={epoch_scale}; raise epoch_scale")
    if not phases or phases[0].first_epoch != 1:
        raise CurriculumError("curriculum.phases must start at epoch 1")
    for a, b in zip(phases, phases[1:]):
        if a.last_epoch is None or b.first_epoch != a.last_epoch + 1:
            raise CurriculumError(f"curriculum.phases {a.name!r} and {b.name!r} must be consecutive (last_epoch + 1 = first_epoch)")
    if phases[-1].last_epoch is not None:
        raise CurriculumError("the last of curriculum.phases must be open-ended (last_epoch: null)")
    return phases


def current_phase(phases: Sequence[Phase], epoch: int) -> Phase:
    """Spec 4.8.2: the phase of a (1-based) epoch."""
    for phase in phases:
        if phase.covers(epoch):
            return phase
    raise ValueError(f"no curriculum phase covers epoch {epoch}")


def active_tasks(phase: Phase, enabled: Sequence[str] | None = None) -> list[str]:
    """Spec 4.8.3: the phase's tasks, limited to the run's ``task.tasks`` when given."""
    return [t for t in phase.tasks if enabled is None or t in enabled]


def introduced_at(phases: Sequence[Phase], task: str) -> int | None:
    """The first epoch of the first phase that trains ``task``."""
    return next((p.first_epoch for p in phases if task in p.tasks), None)


def loss_weights(
    phases: Sequence[Phase], epoch: int, weights: Mapping[str, float] | None = None,
    ramp_epochs: int = 5, ramp_start: float = 0.1,
) -> dict[str, float]:
    """Spec 4.8.4: the weight of every active task at ``epoch``.

    A task introduced after the first phase starts at ``ramp_start`` of its weight and reaches
    its full weight linearly over ``ramp_epochs`` epochs; tasks of the first phase, and tasks past
    their ramp, keep their full weight. ``weights`` defaults to 1.0 per task (then the result is
    the multiplier the LightningModule applies on top of its weighting strategy).
    """
    phase = current_phase(phases, epoch)
    out = {}
    for task in phase.tasks:
        full = 1.0 if weights is None else float(weights[task])
        start = introduced_at(phases, task)
        if start == 1 or ramp_epochs <= 1:
            out[task] = full
            continue
        progress = min(1.0, (epoch - start) / (ramp_epochs - 1))
        out[task] = full * (ramp_start + (1.0 - ramp_start) * progress)
    return out


def label_mask(tiers: Sequence[int]) -> dict[str, list[float]]:
    """Per-label 1/0 weights: quality labels of the allowed Credo tiers; all security labels."""
    return {
        "quality": [1.0 if quality_tier(label) in tiers else 0.0 for label in QUALITY_LABELS],
        "security": [1.0] * len(SECURITY_LABELS),
    }


@dataclass
class CurriculumState:
    phase: str = ""
    epoch: int = 0
    scale: dict[str, float] = field(default_factory=dict)
    transitions: int = 0


class Curriculum(L.Callback):
    """Spec 4.8.5: at every epoch start, set the active tasks (the sampler draws only those),
    the per-task weight multipliers, the phase's objective and rule tiers; log each transition
    once to the console, to TensorBoard (text + a ``curriculum/phase`` scalar) and to the monitor.
    """

    def __init__(self, phases: Sequence[Mapping] | Sequence[Phase], ramp_epochs: int = 5, ramp_start: float = 0.1,
                 epoch_scale: float = 1.0):
        super().__init__()
        self.phases = list(phases) if phases and isinstance(phases[0], Phase) else make_phases(phases, epoch_scale)
        # A compressed curriculum keeps a visible ramp: at least 2 epochs when the ramp had any.
        scaled = math.ceil(ramp_epochs * epoch_scale)
        self.ramp_epochs = max(scaled, 2) if ramp_epochs >= 2 else ramp_epochs
        self.ramp_start = ramp_start
        self.state = CurriculumState()

    def apply(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int) -> Phase:
        phase = current_phase(self.phases, epoch)
        tasks = active_tasks(phase, pl_module.tasks)
        scale = loss_weights(self.phases, epoch, ramp_epochs=self.ramp_epochs, ramp_start=self.ramp_start)
        pl_module.task_scale = {t: scale[t] for t in tasks}
        pl_module.label_mask = label_mask(phase.rule_tiers)
        pl_module.objective = phase.objective
        pl_module.curriculum_phase = phase.name
        dm = trainer.datamodule
        if dm is not None:
            dm.set_active(tasks, phase.objective)
        return phase

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        phase = current_phase(self.phases, epoch)  # applied already, before the loader was set up
        changed = phase.name != self.state.phase
        self.state = CurriculumState(phase.name, epoch, dict(pl_module.task_scale), self.state.transitions + changed)
        for task, s in pl_module.task_scale.items():
            pl_module.log(f"curriculum/scale/{task}", s, on_step=False, on_epoch=True)
        pl_module.log("curriculum/phase", float(self.phases.index(phase) + 1), on_step=False, on_epoch=True)
        if changed:
            message = (f"curriculum: epoch {epoch} -> phase {phase.name!r} ({phase.objective}), tasks "
                       f"{', '.join(pl_module.task_scale)}, rule tiers {list(phase.rule_tiers)}")
            log.info(message)
            for logger in trainer.loggers:
                if hasattr(logger.experiment, "add_text"):
                    logger.experiment.add_text("curriculum", message, global_step=trainer.global_step)
            monitor = getattr(pl_module, "monitor", None)
            if monitor is not None:
                monitor.emit("phase", {"epoch": epoch}, {"phase": phase.name, "tasks": list(pl_module.task_scale)})

    # The next epoch's tasks are set before Lightning sizes its loader for that epoch: at setup
    # (first epoch), when a checkpoint is restored, and at the end of each training epoch.
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.apply(trainer, pl_module, 1)

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self.apply(trainer, pl_module, int(checkpoint.get("epoch", 0)) + 1)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.apply(trainer, pl_module, trainer.current_epoch + 2)

    def state_dict(self) -> dict:
        return {"phase": self.state.phase, "epoch": self.state.epoch, "scale": dict(self.state.scale),
                "transitions": self.state.transitions}

    def load_state_dict(self, state: dict) -> None:
        self.state = CurriculumState(state.get("phase", ""), state.get("epoch", 0), dict(state.get("scale", {})),
                                     state.get("transitions", 0))

