"""Monitor (spec 4.7.4): events to handlers, failing handlers isolated, JSONL log, Prometheus."""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from pathlib import Path

import lightning as L
import pytest

from elixir_coder.training import loop as training_loop
from elixir_coder.training.monitor import EVENTS, Monitor, MonitorCallback


def test_events_reach_attached_handlers_with_their_payload():
    monitor = Monitor.start_link()
    seen = []
    monitor.attach("all", None, lambda name, m, meta: seen.append((name, m, meta)))
    monitor.attach("steps", ["step"], lambda name, m, meta: seen.append(("steps-only", m)))
    monitor.emit("step", {"global_step": 3, "train/loss": 1.5}, {"rank": 0})
    monitor.emit("phase", {}, {"phase": "annotation"})
    assert seen[0] == (("elixir_coder", "train", "step"), {"global_step": 3, "train/loss": 1.5}, {"rank": 0})
    assert seen[1] == ("steps-only", {"global_step": 3, "train/loss": 1.5})
    assert seen[2][0] == ("elixir_coder", "train", "phase") and len(seen) == 3
    monitor.detach("all")
    monitor.emit("stop", {})
    assert len(seen) == 3
    state = monitor.snapshot()
    assert state["step"] == 3 and state["phase"] == "annotation" and state["status"] == "stopped"
    with pytest.raises(ValueError, match="unknown monitor event 'stp'"):
        monitor.attach("x", ["stp"], print)


def test_a_raising_handler_is_detached_and_reported(caplog):
    monitor = Monitor.start_link()
    calls = []

    def broken(*_):
        raise RuntimeError("dashboard down")

    monitor.attach("broken", None, broken)
    monitor.attach("fine", None, lambda *a: calls.append(a))
    with caplog.at_level(logging.WARNING, logger="elixir_coder"):
        monitor.emit("step", {"global_step": 1})
        monitor.emit("step", {"global_step": 2})
    assert len(calls) == 2
    warnings = [r.getMessage() for r in caplog.records if "broken" in r.getMessage()]
    assert len(warnings) == 1 and "dashboard down" in warnings[0] and "detached" in warnings[0]


def test_emit_is_thread_safe():
    monitor = Monitor.start_link()
    threads = [threading.Thread(target=lambda: [monitor.emit("step", {"train/loss": 1.0}) for _ in range(500)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert monitor.snapshot()["events"]["step"] == 4000


def test_jsonl_log_has_one_line_per_event(tmp_path):
    monitor = Monitor.start_link(event_log=str(tmp_path / "events.jsonl"))
    for event in EVENTS:
        monitor.emit(event, {"global_step": 1})
    monitor.close()
    lines = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [line["event"] for line in lines] == list(EVENTS)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def test_prometheus_endpoint_on_loopback():
    monitor = Monitor.start_link(prometheus_port=0)
    try:
        assert monitor._server.server_address[0] == "127.0.0.1"
        monitor.emit("step", {"global_step": 7, "epoch": 1, "train/loss": 0.25, "train/quality/loss": 0.5})
        text = scrape(monitor.prometheus_port)
        assert "elixir_coder_train_step 7.0" in text and "elixir_coder_train_loss 0.25" in text
        assert 'elixir_coder_task_loss{task="quality"} 0.5' in text
    finally:
        monitor.close()
    with pytest.raises(OSError):
        scrape(monitor.prometheus_port)


def test_monitor_inside_a_training_run(make_cfg):
    """A raising handler is detached and training finishes; the endpoint answers during the run."""
    cfg = make_cfg("trainer.max_epochs=2", "callbacks.monitor.prometheus_port=0", "callbacks.monitor.every_n_steps=1")
    loop = training_loop.init(cfg)
    callback = next(c for c in loop.trainer.callbacks if isinstance(c, MonitorCallback))

    def fails_once(name, m, meta):
        raise ValueError("boom")

    callback.handlers["fails"] = fails_once
    scraped = []

    class Scrape(L.Callback):
        def on_train_batch_end(self, trainer, module, *args):
            if trainer.global_step == 3:
                scraped.append(scrape(module.monitor.prometheus_port))

    loop.trainer.callbacks.append(Scrape())
    loop.trainer.fit(loop.module, datamodule=loop.datamodule)
    assert "elixir_coder_train_step 3.0" in scraped[0]
    events = [json.loads(line)["event"] for line in (Path(cfg.paths.output_dir) / "events.jsonl").read_text().splitlines()]
    assert {"start", "step", "epoch", "validation", "checkpoint", "stop"} <= set(events)
    assert events[0] == "start" and events[-1] == "stop"
