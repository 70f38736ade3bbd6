"""Training monitor (spec 4.7.4): the live state of a run, named events for attached handlers,
a JSON-lines event log, and an optional Prometheus endpoint.

The spec's GenServer + ``:telemetry`` become a thread-safe object: ``Monitor.start_link`` starts
it, ``emit`` updates the state and calls every handler attached to the event, the way
``:telemetry.execute`` does. No Python library offers that attach/detach model with failing
handlers isolated from the training loop, hence this small class; the exporter itself is
``prometheus_client``'s.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import lightning as L

log = logging.getLogger("elixir_coder")

EVENTS = ("start", "step", "epoch", "validation", "checkpoint", "phase", "stop", "exception")
Handler = Callable[[tuple, dict, dict], None]


def event_name(event: str) -> tuple[str, str, str]:
    """The :telemetry-style name, e.g. ``("elixir_coder", "train", "step")``."""
    return ("elixir_coder", "train", event)


def _plain(value: Any) -> Any:
    if hasattr(value, "item") and getattr(value, "numel", lambda: 1)() == 1:
        return value.item()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)


class Monitor:
    def __init__(self, event_log: str | None = None, prometheus_port: int | None = None,
                 prometheus_host: str = "127.0.0.1"):
        self._lock = threading.RLock()
        self._handlers: dict[str, tuple[frozenset[str] | None, Handler]] = {}
        self.state: dict[str, Any] = {"status": "created", "epoch": 0, "step": 0, "phase": "", "metrics": {},
                                      "events": {e: 0 for e in EVENTS}, "started_at": None, "updated_at": None}
        self.event_log_path, self._log_file = event_log, None
        self.prometheus_host, self.prometheus_port = prometheus_host, prometheus_port
        self._server = None
        self._gauges: dict[str, Any] = {}

    @classmethod
    def start_link(cls, **opts) -> Monitor:
        """Spec 4.7.4.1: create and start a monitor (event log file, Prometheus endpoint)."""
        monitor = cls(**opts)
        monitor.start()
        return monitor

    def start(self) -> None:
        if self.event_log_path:
            from pathlib import Path

            Path(self.event_log_path).parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.event_log_path, "a", encoding="utf-8")  # noqa: SIM115
        if self.prometheus_port is not None:
            self._start_exporter()
        with self._lock:
            self.state["status"] = "running"
            self.state["started_at"] = time.time()

    def _start_exporter(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

        registry = CollectorRegistry()  # our own: two monitors in one process never clash
        self._gauges = {
            "step": Gauge("elixir_coder_train_step", "Global optimizer step", registry=registry),
            "epoch": Gauge("elixir_coder_train_epoch", "Current epoch", registry=registry),
            "loss": Gauge("elixir_coder_train_loss", "Last training loss", registry=registry),
            "val_loss": Gauge("elixir_coder_val_loss", "Last validation loss", registry=registry),
            "tokens": Gauge("elixir_coder_tokens_per_second", "Real tokens per second", registry=registry),
            "task_loss": Gauge("elixir_coder_task_loss", "Last training loss per task", ["task"], registry=registry),
            "events": Counter("elixir_coder_events", "Training events emitted", ["event"], registry=registry),
        }
        server, thread = start_http_server(self.prometheus_port, addr=self.prometheus_host, registry=registry)
        self._server, self._thread = server, thread
        self.prometheus_port = server.server_address[1]
        log.info("monitor: Prometheus metrics on http://%s:%d/metrics", self.prometheus_host, self.prometheus_port)

    # -- handlers ----------------------------------------------------------------------------

    def attach(self, handler_id: str, events: Iterable[str] | None, handler: Handler) -> None:
        """Call ``handler(name, measurements, metadata)`` for ``events`` (None: all of them)."""
        unknown = [e for e in events or () if e not in EVENTS]
        if unknown:
            raise ValueError(f"unknown monitor event {unknown[0]!r}; events are {', '.join(EVENTS)}")
        with self._lock:
            self._handlers[handler_id] = (frozenset(events) if events is not None else None, handler)

    def detach(self, handler_id: str) -> None:
        with self._lock:
            self._handlers.pop(handler_id, None)

    def emit(self, event: str, measurements: dict | None = None, metadata: dict | None = None) -> None:
        """Update the live state, log the event, and call the attached handlers. A handler that
        raises is detached and reported once; training never sees the exception."""
        measurements, metadata = _plain(measurements or {}), _plain(metadata or {})
        with self._lock:
            self._update_state(event, measurements, metadata)
            handlers = list(self._handlers.items())
            if self._log_file is not None:
                self._log_file.write(json.dumps({"time": time.time(), "event": event, "measurements": measurements,
                                                 "metadata": metadata}) + "\n")
                self._log_file.flush()
        for handler_id, (events, handler) in handlers:
            if events is not None and event not in events:
                continue
            try:
                handler(event_name(event), measurements, metadata)
            except Exception as exc:  # isolate training from monitoring tools
                self.detach(handler_id)
                log.warning("monitor: handler %r raised %s: %s; detached", handler_id, type(exc).__name__, exc)

    def _update_state(self, event: str, measurements: dict, metadata: dict) -> None:
        s = self.state
        s["events"][event] = s["events"].get(event, 0) + 1
        s["updated_at"] = time.time()
        s["step"] = measurements.get("global_step", s["step"])
        s["epoch"] = measurements.get("epoch", s["epoch"])
        if event == "phase":
            s["phase"] = metadata.get("phase", s["phase"])
        if event in ("stop", "exception"):
            s["status"] = "stopped" if event == "stop" else "failed"
        s["metrics"].update({k: v for k, v in measurements.items() if isinstance(v, (int, float))})
        if self._gauges:
            g = self._gauges
            g["events"].labels(event=event).inc()
            g["step"].set(s["step"])
            g["epoch"].set(s["epoch"])
            for key, value in measurements.items():
                if not isinstance(value, (int, float)):
                    continue
                if key == "train/loss":
                    g["loss"].set(value)
                elif key == "val/loss":
                    g["val_loss"].set(value)
                elif key == "train/tokens_per_s":
                    g["tokens"].set(value)
                elif key.startswith("train/") and key.endswith("/loss") and key.count("/") == 2:
                    g["task_loss"].labels(task=key.split("/")[1]).set(value)

    def snapshot(self) -> dict:
        with self._lock:
            return json.loads(json.dumps(self.state))

    def close(self) -> None:
        with self._lock:
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None
            if self._server is not None:
                self._server.shutdown()
                self._server.server_close()
                self._server = None


def start_link(**opts) -> Monitor:
    """Spec 4.7.4.1 as a module function."""
    return Monitor.start_link(**opts)


class MonitorCallback(L.Callback):
    """Starts a Monitor for the run (exporter and event log on global rank 0 only), makes it
    ``pl_module.monitor``, and emits the training events from Lightning's hooks."""

    def __init__(self, event_log: str | None = None, prometheus_port: int | None = None,
                 prometheus_host: str = "127.0.0.1", every_n_steps: int = 1, handlers: dict[str, Handler] | None = None):
        super().__init__()
        self.opts = {"event_log": event_log, "prometheus_port": prometheus_port, "prometheus_host": prometheus_host}
        self.every_n_steps = max(1, every_n_steps)
        self.handlers = dict(handlers or {})
        self.monitor: Monitor | None = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        if self.monitor is None:
            opts = self.opts if trainer.is_global_zero else {}
            self.monitor = Monitor.start_link(**opts)
            for handler_id, handler in self.handlers.items():
                self.monitor.attach(handler_id, None, handler)
        pl_module.monitor = self.monitor

    @staticmethod
    def _metrics(trainer, prefix: str) -> dict:
        return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(prefix) and v.numel() == 1}

    def on_fit_start(self, trainer, pl_module) -> None:
        self.monitor.emit("start", {"global_step": trainer.global_step, "epoch": trainer.current_epoch},
                          {"max_epochs": trainer.max_epochs, "world_size": trainer.world_size})

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self.monitor.emit("step", {"global_step": trainer.global_step, "epoch": trainer.current_epoch,
                                       **self._metrics(trainer, "train/")})

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.monitor.emit("epoch", {"global_step": trainer.global_step, "epoch": trainer.current_epoch,
                                    **self._metrics(trainer, "train/")})

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.monitor.emit("validation", {"global_step": trainer.global_step, "epoch": trainer.current_epoch,
                                             **self._metrics(trainer, "val/")})

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        self.monitor.emit("checkpoint", {"global_step": trainer.global_step, "epoch": trainer.current_epoch},
                          {"epoch": checkpoint.get("epoch"), "step": checkpoint.get("global_step")})

    def on_fit_end(self, trainer, pl_module) -> None:
        self.monitor.emit("stop", {"global_step": trainer.global_step, "epoch": trainer.current_epoch})

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if self.monitor is not None:
            self.monitor.emit("exception", {"global_step": trainer.global_step},
                              {"type": type(exception).__name__, "message": str(exception)})

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if self.monitor is not None and stage == "fit":
            self.monitor.close()
            self.monitor = None
