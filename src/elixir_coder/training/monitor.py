"""Training monitor (spec 4.7.4): the live state of a run, named events for attached handlers,
a JSON-lines event log, and an optional Prometheus endpoint.

The spec's GenServer + ``:telemetry`` become a thread-safe object: ``Monitor.start_link`` starts
it, ``emit`` updates the state and calls every handler attached to the event, the way
``:telemetry.execute`` does. No Python library offers that attach/detach model with failing
handlers isolated from the training loop, hence this small class; the exporter itself is
``prometheus_client``'s, on a registry of its own.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import lightning as L

from elixir_coder.errors import ConfigError

log = logging.getLogger("elixir_coder")

EVENTS = ("start", "step", "epoch", "validation", "checkpoint", "phase", "stop", "exception")
Handler = Callable[[tuple, dict, dict], None]


def event_name(event: str) -> tuple[str, str, str]:
    """The :telemetry-style name, e.g. ``("elixir_coder", "train", "step")``."""
    return ("elixir_coder", "train", event)


def _check_event(event: str) -> None:
    # A typo would otherwise reach no handler filtering on the right name, silently.
    if event not in EVENTS:
        raise ValueError(f"unknown monitor event {event!r}; events are {', '.join(EVENTS)}")


def _plain(value: Any) -> Any:
    """Tensors and numpy scalars as Python numbers, containers recursively, the rest as text:
    handlers and the log see the same plain values, and no tensor keeps a device alive."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    size = getattr(value, "numel", None) or getattr(value, "size", None)
    size = size() if callable(size) else size
    if hasattr(value, "item") and size == 1:
        return value.item()
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    return str(value)


def _json_safe(value: Any) -> Any:
    """Non-finite floats as the strings ``NaN``/``Infinity``/``-Infinity``: a diverging loss
    stays visible while every line remains strict JSON for ``jq`` and other tailing tools."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Monitor:
    """Live training state plus :telemetry-style events.

    ``attach(handler_id, events, handler)`` registers ``handler(name, measurements, metadata)``
    for some events (None: all); ``emit`` updates ``state`` under a lock, appends the event to
    the log, then calls the handlers outside the lock (a slow dashboard never blocks another
    thread's emit). A handler that raises is detached and reported once, never re-raised:
    monitoring must not crash training.
    """

    def __init__(self, event_log: str | Path | None = None, prometheus_port: int | None = None,
                 prometheus_host: str = "127.0.0.1"):
        self._lock = threading.RLock()
        self._handlers: dict[str, tuple[frozenset[str] | None, Handler]] = {}
        self.state: dict[str, Any] = {
            "status": "created", "epoch": 0, "step": 0, "phase": "", "metrics": {}, "tokens_per_s": None,
            "last_event": None, "events": dict.fromkeys(EVENTS, 0), "started_at": None, "updated_at": None,
        }
        self.event_log_path = str(event_log) if event_log else None
        self.prometheus_host, self.prometheus_port = prometheus_host, prometheus_port
        self._log_file = None
        self._server = None
        self._thread: threading.Thread | None = None
        self._gauges: dict[str, Any] = {}
        self._latest: _LatestValues | None = None

    @classmethod
    def start_link(cls, **opts) -> Monitor:
        """Spec 4.7.4.1: create and start a monitor (event log file, Prometheus endpoint)."""
        monitor = cls(**opts)
        monitor.start()
        return monitor

    def start(self) -> None:
        if self.event_log_path:
            Path(self.event_log_path).parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.event_log_path, "a", encoding="utf-8")  # noqa: SIM115
        if self.prometheus_port is not None:
            try:
                self._start_exporter()
            except OSError as exc:
                self.close()
                raise ConfigError(f"callbacks.monitor.prometheus_port={self.prometheus_port}: cannot serve Prometheus "
                                  f"metrics on {self.prometheus_host}:{self.prometheus_port} ({exc.strerror or exc}); "
                                  "pick a free port, or 0 for any free one") from exc
        with self._lock:
            self.state["status"] = "running"
            self.state["started_at"] = self.state["updated_at"] = time.time()

    def _start_exporter(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

        registry = CollectorRegistry()  # our own: two monitors in one process never clash
        self._latest = _LatestValues()
        registry.register(self._latest)
        self._gauges = {
            "task_loss": Gauge("elixir_coder_task_loss", "Last training loss per task", ["task"], registry=registry),
            # Exposed as elixir_coder_events_total (prometheus_client adds the suffix).
            "events": Counter("elixir_coder_events", "Training events emitted", ["event"], registry=registry),
        }
        self._server, self._thread = start_http_server(self.prometheus_port, addr=self.prometheus_host,
                                                       registry=registry)
        self.prometheus_port = self._server.server_address[1]  # the real port when 0 was asked
        log.info("monitor: Prometheus metrics on http://%s:%d/metrics", self.prometheus_host, self.prometheus_port)

    def __deepcopy__(self, memo: dict) -> Monitor:
        """Shared, not copied: it is a live resource (lock, file, server), and callbacks such as
        StochasticWeightAveraging deepcopy the module that holds it as ``pl_module.monitor``."""
        return self

    # -- handlers ----------------------------------------------------------------------------

    def attach(self, handler_id: str, events: Iterable[str] | None, handler: Handler) -> None:
        """Call ``handler(name, measurements, metadata)`` for ``events`` (None: all of them);
        attaching an id again replaces its handler, as :telemetry refuses duplicates."""
        events = None if events is None else frozenset(events)
        for event in events or ():
            _check_event(event)
        with self._lock:
            self._handlers[handler_id] = (events, handler)

    def detach(self, handler_id: str) -> bool:
        """Stop calling ``handler_id``; True when it was attached."""
        with self._lock:
            return self._handlers.pop(handler_id, None) is not None

    def handlers(self) -> list[str]:
        with self._lock:
            return list(self._handlers)

    def emit(self, event: str, measurements: dict | None = None, metadata: dict | None = None) -> None:
        """Update the live state, log the event, and call the attached handlers."""
        _check_event(event)
        measurements, metadata = _plain(measurements or {}), _plain(metadata or {})
        with self._lock:
            now = time.time()
            self._update_state(event, measurements, metadata, now)
            handlers = [(hid, h) for hid, (events, h) in self._handlers.items() if events is None or event in events]
            if self._log_file is not None:
                line = {"time": now, "event": event, "measurements": measurements, "metadata": metadata}
                self._log_file.write(json.dumps(_json_safe(line)) + "\n")
                self._log_file.flush()  # per line, so `tail -f` tools see each event at once
        for handler_id, handler in handlers:
            try:
                handler(event_name(event), measurements, metadata)
            except Exception as exc:  # isolate training from monitoring tools
                self._drop(handler_id, handler, exc)

    def _drop(self, handler_id: str, handler: Handler, exc: Exception) -> None:
        # Another thread may hit the same failure concurrently: only the one that removes the
        # handler reports it, and a handler re-attached under the id meanwhile stays.
        with self._lock:
            current = self._handlers.get(handler_id)
            if current is None or current[1] is not handler:
                return
            del self._handlers[handler_id]
        log.warning("monitor: handler %r raised %s: %s; detached", handler_id, type(exc).__name__, exc,
                    exc_info=exc)

    def _update_state(self, event: str, measurements: dict, metadata: dict, now: float) -> None:
        s = self.state
        s["events"][event] += 1
        s["last_event"] = event
        s["updated_at"] = now
        if _number(measurements.get("global_step")):
            s["step"] = measurements["global_step"]
        if _number(measurements.get("epoch")):
            s["epoch"] = measurements["epoch"]
        if event == "phase" and metadata.get("phase"):
            s["phase"] = metadata["phase"]
        elif event == "stop":
            s["status"] = "stopped"
        elif event == "exception":
            s["status"] = "failed"
        numbers = {k: v for k, v in measurements.items() if _number(v) and k not in ("global_step", "epoch")}
        s["metrics"].update(numbers)
        tokens = numbers.get("train/tokens_per_s", numbers.get("tokens_per_s"))
        if tokens is not None:
            s["tokens_per_s"] = tokens
        if self._gauges:
            self._export(event, numbers)

    def _export(self, event: str, numbers: dict) -> None:
        g, latest = self._gauges, self._latest
        g["events"].labels(event=event).inc()
        latest.set("step", self.state["step"])
        latest.set("epoch", self.state["epoch"])
        if self.state["tokens_per_s"] is not None:
            latest.set("tokens", self.state["tokens_per_s"])
        for key, value in numbers.items():
            if key == "train/loss":
                latest.set("loss", value)
            elif key == "val/loss":
                latest.set("val_loss", value)
            elif key.startswith("train/") and key.endswith("/loss") and key.count("/") == 2:
                g["task_loss"].labels(task=key.split("/")[1]).set(value)

    def snapshot(self) -> dict:
        """A deep copy of the state: callers may keep or change it freely."""
        with self._lock:
            return copy.deepcopy(self.state)

    def close(self) -> None:
        """Close the event log and shut the endpoint down (its port is free again); idempotent."""
        with self._lock:
            log_file, self._log_file = self._log_file, None
            server, self._server = self._server, None
            thread, self._thread = self._thread, None
        if log_file is not None:
            log_file.close()
        if server is not None:
            server.shutdown()  # outside the lock: it waits for the serving loop to notice
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)


class _LatestValues:
    """A prometheus_client collector exposing each gauge only once it has a value: a gauge that
    reads 0.0 before the first step would look like a real loss of zero on a dashboard."""

    GAUGES = {
        "step": ("elixir_coder_train_step", "Global optimizer step"),
        "epoch": ("elixir_coder_train_epoch", "Current epoch"),
        "loss": ("elixir_coder_train_loss", "Last training loss"),
        "val_loss": ("elixir_coder_val_loss", "Last validation loss"),
        "tokens": ("elixir_coder_tokens_per_second", "Real tokens per second"),
    }

    def __init__(self):
        self.values: dict[str, float] = {}

    def set(self, key: str, value: float) -> None:
        self.values[key] = float(value)

    def describe(self):
        return []  # metric names vary with what is set; nothing to check at registration

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        for key, value in list(self.values.items()):
            name, doc = self.GAUGES[key]
            yield GaugeMetricFamily(name, doc, value=value)


def start_link(**opts) -> Monitor:
    """Spec 4.7.4.1 as a module function."""
    return Monitor.start_link(**opts)


def _scalars(trainer: L.Trainer, prefix: str) -> dict[str, float]:
    """The one-element ``prefix`` metrics Lightning holds, as floats (read only when emitting:
    each ``float`` of a device tensor is a host sync)."""
    out = {}
    for key, value in trainer.callback_metrics.items():
        if not key.startswith(prefix):
            continue
        if hasattr(value, "numel"):
            if value.numel() == 1:
                out[key] = float(value)
        elif _number(value):
            out[key] = float(value)
    return out


class MonitorCallback(L.Callback):
    """Starts a Monitor for the run, makes it ``pl_module.monitor`` (other code emits ``phase``
    through it), and emits the training events from Lightning's hooks.

    The event log and the Prometheus endpoint exist on global rank 0 only: one file and one
    port per run. The monitor starts at the first stage (the pre-fit validation of
    ``elixir-train``) and stays up through ``fit``, so the address logged first answers for the
    whole run and the pre-fit validation loss stays in the state; it closes after ``fit`` or
    an exception (an endpoint opened for validation alone lives until the process ends: its
    server thread is a daemon). ``handlers`` (id -> handler, for all events) are attached as
    soon as the monitor starts, so they see ``start``.
    """

    def __init__(self, event_log: str | None = None, prometheus_port: int | None = None,
                 prometheus_host: str = "127.0.0.1", every_n_steps: int = 1,
                 handlers: dict[str, Handler] | None = None):
        super().__init__()
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be at least 1, got {every_n_steps}")
        self.opts = {"event_log": event_log, "prometheus_port": prometheus_port, "prometheus_host": prometheus_host}
        self.every_n_steps = every_n_steps
        self.handlers = dict(handlers or {})
        self.monitor: Monitor | None = None
        self._last_step = -1

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.monitor is None:
            self.monitor = Monitor.start_link(**(self.opts if trainer.is_global_zero else {}))
            for handler_id, handler in self.handlers.items():
                self.monitor.attach(handler_id, None, handler)
        pl_module.monitor = self.monitor

    @staticmethod
    def _position(trainer: L.Trainer) -> dict:
        return {"global_step": trainer.global_step, "epoch": trainer.current_epoch}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_step = trainer.global_step  # a resumed run starts counting where it stopped
        self.monitor.emit("start", self._position(trainer),
                          {"max_epochs": trainer.max_epochs, "world_size": trainer.world_size})

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # Once per optimizer step: with gradient accumulation several batches share a step.
        step = trainer.global_step
        if step > self._last_step and step % self.every_n_steps == 0:
            self._last_step = step
            self.monitor.emit("step", {**self._position(trainer), **_scalars(trainer, "train/")})

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.monitor.emit("epoch", {**self._position(trainer), **_scalars(trainer, "train/")})

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.monitor.emit("validation", {**self._position(trainer), **_scalars(trainer, "val/")})

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if self.monitor is not None:
            self.monitor.emit("checkpoint", self._position(trainer),
                              {"epoch": checkpoint.get("epoch"), "step": checkpoint.get("global_step")})

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.monitor.emit("stop", self._position(trainer))

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if self.monitor is None:
            return
        self.monitor.emit("exception", self._position(trainer),
                          {"type": type(exception).__name__, "message": str(exception)})
        self._close()  # Lightning skips the teardown hook after an exception

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":
            self._close()

    def _close(self) -> None:
        if self.monitor is not None:
            self.monitor.close()
            self.monitor = None
