"""Monitor (spec 4.7.4): events to handlers, failing handlers isolated, thread safety, JSONL log,
Prometheus endpoint on loopback, and the callback inside a real Lightning run."""

from __future__ import annotations

import json
import logging
import math
import threading
import urllib.request

import lightning as L
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader, TensorDataset

from elixir_coder.training.monitor import EVENTS, Monitor, MonitorCallback


@pytest.fixture
def monitor():
    m = Monitor.start_link()
    yield m
    m.close()


def test_each_event_reaches_an_attached_handler_with_its_payload(monitor):
    seen = []
    monitor.attach("all", None, lambda name, m, meta: seen.append((name, m, meta)))
    for i, event in enumerate(EVENTS):
        monitor.emit(event, {"global_step": i, "value": torch.tensor(0.5)}, {"n": np.int64(i), "event": event})
    assert [s[0] for s in seen] == [("elixir_coder", "train", e) for e in EVENTS]
    for i, (_, measurements, metadata) in enumerate(seen):
        assert measurements == {"global_step": i, "value": 0.5} and type(measurements["value"]) is float
        assert metadata == {"n": i, "event": EVENTS[i]}
    state = monitor.snapshot()
    assert state["events"] == dict.fromkeys(EVENTS, 1) and state["status"] == "failed"  # exception came last
    assert state["step"] == len(EVENTS) - 1 and state["metrics"]["value"] == 0.5


def test_filtering_by_event_and_detach(monitor):
    steps, phases = [], []
    monitor.attach("steps", ["step"], lambda name, m, meta: steps.append(m["global_step"]))
    monitor.attach("phases", ("phase",), lambda name, m, meta: phases.append(meta["phase"]))
    monitor.emit("step", {"global_step": 1})
    monitor.emit("phase", {}, {"phase": "annotation"})
    monitor.emit("epoch", {"epoch": 1})
    assert steps == [1] and phases == ["annotation"]
    assert monitor.detach("steps") is True and monitor.detach("steps") is False
    monitor.emit("step", {"global_step": 2})
    assert steps == [1] and monitor.handlers() == ["phases"]
    state = monitor.snapshot()
    assert state["step"] == 2 and state["epoch"] == 1 and state["phase"] == "annotation"
    with pytest.raises(ValueError, match="unknown monitor event 'stp'"):
        monitor.attach("x", ["stp"], print)
    with pytest.raises(ValueError, match="unknown monitor event 'stp'"):
        monitor.emit("stp", {})


def test_a_raising_handler_is_detached_and_reported_once(monitor, caplog):
    calls = []

    def broken(*_):
        raise RuntimeError("dashboard down")

    monitor.attach("broken", None, broken)
    monitor.attach("fine", None, lambda *a: calls.append(a))
    with caplog.at_level(logging.WARNING, logger="elixir_coder"):
        monitor.emit("step", {"global_step": 1})
        monitor.emit("step", {"global_step": 2})
    assert len(calls) == 2 and monitor.handlers() == ["fine"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "'broken'" in warnings[0] and "RuntimeError" in warnings[0] and "dashboard down" in warnings[0]


def test_emit_is_thread_safe(monitor):
    seen = []
    monitor.attach("count", ["step"], lambda name, m, meta: seen.append(1))

    def work():
        for i in range(500):
            monitor.emit("step", {"global_step": i, "train/loss": 1.0})

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert monitor.snapshot()["events"]["step"] == 4000 and len(seen) == 4000


def test_jsonl_log_has_one_parseable_line_per_event(tmp_path):
    path = tmp_path / "run" / "events.jsonl"
    monitor = Monitor.start_link(event_log=str(path))
    for i, event in enumerate(EVENTS):
        monitor.emit(event, {"global_step": i, "train/loss": torch.tensor(1.25), "x": np.float32(0.5)}, {"rank": 0})
    # Flushed per line: readable before close, as `tail -f` would read it.
    assert len(path.read_text().splitlines()) == len(EVENTS)
    monitor.emit("step", {"train/loss": math.nan})
    monitor.close()
    lines = [json.loads(line, parse_constant=pytest.fail) for line in path.read_text().splitlines()]
    assert [line["event"] for line in lines] == [*EVENTS, "step"]
    assert lines[0]["measurements"] == {"global_step": 0, "train/loss": 1.25, "x": 0.5}
    assert lines[0]["metadata"] == {"rank": 0} and isinstance(lines[0]["time"], float)
    assert lines[-1]["measurements"]["train/loss"] == "NaN"  # strict JSON, still visible


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def test_prometheus_endpoint_on_loopback_and_closed_by_close():
    monitor = Monitor.start_link(prometheus_port=0)
    other = Monitor.start_link(prometheus_port=0)  # own registries: no clash between monitors
    try:
        port = monitor.prometheus_port
        assert port > 0 and port != other.prometheus_port
        assert monitor._server.server_address[0] == "127.0.0.1"
        assert "elixir_coder_train" not in scrape(port)  # absent until first set, not a fake 0.0
        for step in range(1, 8):
            monitor.emit("step", {"global_step": step, "epoch": 1, "train/loss": 1 / step, "train/quality/loss": 0.5,
                                  "train/tokens_per_s": 1000.0})
        assert "elixir_coder_val_loss" not in scrape(port)
        monitor.emit("validation", {"val/loss": 0.75})
        text = scrape(port)
        assert "elixir_coder_train_step 7.0" in text and f"elixir_coder_train_loss {1 / 7}" in text
        assert "elixir_coder_train_epoch 1.0" in text and "elixir_coder_val_loss 0.75" in text
        assert 'elixir_coder_task_loss{task="quality"} 0.5' in text
        assert "elixir_coder_tokens_per_second 1000.0" in text
        assert 'elixir_coder_events_total{event="step"} 7.0' in text
        untouched = scrape(other.prometheus_port)
        assert "elixir_coder_train_step" not in untouched and "elixir_coder_val_loss" not in untouched
    finally:
        monitor.close()
        other.close()
    with pytest.raises(OSError):
        scrape(port)
    monitor.close()  # idempotent


class TinyModule(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", torch.nn.functional.mse_loss(self.layer(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def _loader(self):
        generator = torch.Generator().manual_seed(0)
        data = TensorDataset(torch.randn(32, 4, generator=generator), torch.randn(32, 1, generator=generator))
        return DataLoader(data, batch_size=4)

    def train_dataloader(self):
        return self._loader()

    def val_dataloader(self):
        return self._loader()


def test_callback_in_a_real_lightning_run(tmp_path, caplog):
    """A handler raising on the first step is detached and training finishes; the endpoint
    answers during the run; every event kind lands in the log; the monitor is closed after."""
    log_path = tmp_path / "events.jsonl"
    calls = []

    def fails_on_first_step(name, measurements, metadata):
        calls.append(name[-1])
        if name[-1] == "step":
            raise RuntimeError("dashboard down")

    scraped, phases = [], []

    class During(L.Callback):
        def on_train_batch_end(self, trainer, module, *args):
            if trainer.global_step == 3:
                scraped.append(scrape(module.monitor.prometheus_port))
                module.monitor.emit("phase", {"epoch": trainer.current_epoch}, {"phase": "pretraining"})
                phases.append(module.monitor.snapshot()["phase"])

    callback = MonitorCallback(event_log=str(log_path), prometheus_port=0, handlers={"fails": fails_on_first_step})
    trainer = L.Trainer(max_epochs=2, limit_train_batches=4, limit_val_batches=2, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        accelerator="cpu", devices=1, callbacks=[callback, During()])
    module = TinyModule()
    with caplog.at_level(logging.WARNING, logger="elixir_coder"):
        trainer.fit(module)
    assert trainer.global_step == 8
    assert calls == ["start", "step"]  # detached after raising
    assert sum("'fails'" in r.getMessage() and "dashboard down" in r.getMessage() for r in caplog.records) == 1

    text = scraped[0]
    assert "elixir_coder_train_step 3.0" in text and "elixir_coder_train_loss " in text
    assert phases == ["pretraining"]

    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    events = [line["event"] for line in lines]
    assert events[0] == "start" and events[-1] == "stop"
    assert {"start", "step", "epoch", "validation", "phase", "stop"} <= set(events)
    assert events.count("step") == 8 and events.count("epoch") == 2 and events.count("validation") == 2
    assert lines[0]["metadata"] == {"max_epochs": 2, "world_size": 1}
    steps = [line["measurements"] for line in lines if line["event"] == "step"]
    assert [m["global_step"] for m in steps] == list(range(1, 9)) and all("train/loss" in m for m in steps)
    validation = next(line["measurements"] for line in lines if line["event"] == "validation")
    assert "val/loss" in validation and not any(k.startswith("train/") for k in validation)

    assert callback.monitor is None  # closed on teardown: the port is free again
    with pytest.raises(OSError):
        scrape(module.monitor.prometheus_port)


def test_a_busy_port_is_one_clear_config_error():
    import socket

    from elixir_coder.errors import ConfigError

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"callbacks.monitor.prometheus_port={port}: cannot serve .* pick a free port"):
            Monitor.start_link(prometheus_port=port)


def test_one_endpoint_from_pre_fit_validation_to_the_end_of_fit(tmp_path):
    """elixir-train validates before fit: the address logged then answers for the whole run and
    the pre-fit validation loss is kept, until fit ends."""
    callback = MonitorCallback(event_log=str(tmp_path / "events.jsonl"), prometheus_port=0)
    seen = []

    class During(L.Callback):
        def on_train_batch_end(self, trainer, module, *args):
            seen.append((module.monitor.prometheus_port, scrape(module.monitor.prometheus_port)))

    trainer = L.Trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=2, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        accelerator="cpu", devices=1, callbacks=[callback, During()])
    module = TinyModule()
    before = trainer.validate(module, verbose=False)[0]["val/loss"]
    port = callback.monitor.prometheus_port
    assert f"elixir_coder_val_loss {before}" in scrape(port)
    trainer.fit(module)
    assert seen[0][0] == port and f"elixir_coder_val_loss {before}" in seen[0][1]
    events = [json.loads(line)["event"] for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert events[:2] == ["validation", "start"] and events[-1] == "stop"
    assert callback.monitor is None
    with pytest.raises(OSError):
        scrape(port)


def test_callback_reports_an_exception_and_closes(tmp_path):
    class Crashes(TinyModule):
        def training_step(self, batch, batch_idx):
            if self.global_step == 2:
                raise RuntimeError("out of memory, say")
            return super().training_step(batch, batch_idx)

    log_path = tmp_path / "events.jsonl"
    callback = MonitorCallback(event_log=str(log_path), prometheus_port=0, every_n_steps=2)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=4, limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        accelerator="cpu", devices=1, callbacks=[callback])
    module = Crashes()
    with pytest.raises(RuntimeError, match="out of memory"):
        trainer.fit(module)
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [line["event"] for line in lines] == ["start", "step", "exception"]
    assert lines[-1]["metadata"] == {"type": "RuntimeError", "message": "out of memory, say"}
    assert module.monitor.snapshot()["status"] == "failed" and callback.monitor is None
    with pytest.raises(OSError):
        scrape(module.monitor.prometheus_port)


def test_default_config_wires_the_callback(make_cfg):
    cfg = make_cfg("callbacks.monitor.prometheus_port=0")
    callback = instantiate(cfg.callbacks.monitor)
    assert isinstance(callback, MonitorCallback)
    assert callback.opts["event_log"].endswith("events.jsonl") and callback.opts["prometheus_host"] == "127.0.0.1"
    with pytest.raises(ValueError, match="every_n_steps"):
        MonitorCallback(every_n_steps=0)
