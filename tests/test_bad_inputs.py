"""Every bad input a user can hand the CLIs is refused the same way: exit code 2, exactly one
``error:`` line naming the file or config key, and no file on disk changed.

The CLIs run in-process through their real ``main`` (a subprocess per case would spend most of
the time importing torch); the Hydra run folder of each case is the only place allowed to change.
"""

from __future__ import annotations

import errno
import hashlib
import json
import re
import shutil
import socket
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import FAST
from elixir_coder.cli import data as data_cli
from elixir_coder.cli import train as train_cli
from elixir_coder.corpus import tokenized

pytestmark = pytest.mark.slow


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (the Hydra run folder aside) and a hash of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file() and p.relative_to(root).parts[0] != "run"
    }


def run_cli(main, argv: list[str], cwd: Path, capsys, monkeypatch) -> tuple[int, str]:
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", argv)
    capsys.readouterr()
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


@pytest.fixture(scope="session")
def corpus_and_data(tmp_path_factory, tiny_corpus):
    """The tiny corpus prepared once, and a checkpoint of a two-step run on it."""
    root = tmp_path_factory.mktemp("bad_inputs_base")
    mp = pytest.MonkeyPatch()
    try:
        mp.chdir(root)
        mp.setattr(sys, "argv", ["elixir-train", *base_args(root, tiny_corpus), f"hydra.run.dir={root}/run"])
        train_cli.main()
    finally:
        mp.undo()
    assert (root / "run" / "checkpoints" / "last.ckpt").is_file()
    return tiny_corpus, root / "data" / "tokenized", root / "run" / "checkpoints"


def base_args(tmp: Path, corpus: Path) -> list[str]:
    return [f"data.jsonl={corpus}", f"paths.data_dir={tmp}/data", *FAST, "validate_before_fit=false",
            "trainer.limit_train_batches=2", "trainer.limit_val_batches=1"]


# -- damage helpers: each takes the case folder and returns nothing ------------------------------

def edit_index(field: str, value: int, record: int = 0):
    def damage(tmp: Path) -> None:
        path = tmp / "data" / "tokenized" / "train-00000.idx"
        raw = bytearray(path.read_bytes())
        index = np.frombuffer(bytes(raw[tokenized.HEADER_SIZE:]), dtype=tokenized.INDEX_DTYPE).copy()
        index[field][record] = value
        path.write_bytes(bytes(raw[: tokenized.HEADER_SIZE]) + index.tobytes())
    return damage


def edit_meta(fn):
    def damage(tmp: Path) -> None:
        path = tmp / "data" / "tokenized" / "meta.json"
        out = fn(json.loads(path.read_text()))
        path.write_text(out if isinstance(out, str) else json.dumps(out))
    return damage


def without(key):
    def fn(meta):
        meta.pop(key)
        return meta
    return fn


def replaced(key, value):
    return lambda meta: {**meta, key: value}


def edit_file(relative: str, fn):
    def damage(tmp: Path) -> None:
        path = tmp / relative
        path.write_bytes(fn(path.read_bytes()))
    return damage


def write_jsonl(content: bytes):
    def damage(tmp: Path) -> None:
        good = b'{"task": "quality", "text": "defmodule A do end", "labels": []}\n'
        (tmp / "bad.jsonl").write_bytes(good + content)
    return damage


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


CKPT = "old/checkpoints/last.ckpt"

# (id, CLI, extra arguments, damage to the case folder, the error line must match this)
CONFIG = [
    ("max_len_zero", ["data.max_len=0"], r"data\.max_len=0: must be an integer >= 2"),
    ("batch_size_text", ["data.batch_size=abc"], r"data\.batch_size=abc: must be an integer >= 1"),
    ("batch_size_zero", ["data.batch_size=0"], r"data\.batch_size=0: must be an integer >= 1"),
    ("val_batch_size_negative", ["data.val_batch_size=-1"], r"data\.val_batch_size=-1: must be an integer >= 1 or null"),
    ("lr_negative", ["optimizer.lr=-0.01"], r"optimizer\.lr=-0\.01: must be a finite number > 0"),
    ("lr_nan", ["optimizer.lr=nan"], r"optimizer\.lr=nan: must be a finite number > 0"),
    ("lr_inf", ["optimizer.lr=inf"], r"optimizer\.lr=inf: must be a finite number > 0"),
    ("max_len_beyond_positions", ["data.max_len=4096", "model.max_len=512"],
     r"data\.max_len=4096: must be at most model\.max_len=512 \(the model's positions\)"),
    ("checkpoint_interval_negative", ["checkpoint_every_n_steps=-3"], r"checkpoint_every_n_steps=-3: must be an integer >= 1"),
    ("unknown_task", ["task.tasks=[poetry]"], r"task\.tasks=\['poetry'\]: must be a non-empty list of distinct names out of \[code_generation"),
    ("no_tasks", ["task.tasks=[]"], r"task\.tasks=\[\]: must be a non-empty list"),
    ("task_twice", ["task.tasks=[quality,quality]"], r"task\.tasks=\['quality', 'quality'\]: must be a non-empty list of distinct"),
    ("val_fraction_above_one", ["data.val_fraction=1.5"], r"data\.val_fraction=1\.5: must be a finite number > 0 and < 1"),
    ("vocab_too_small", ["data.vocab_size=10"], r"data\.vocab_size=10: must be an integer >= 267"),
    ("source_dir_missing", ["data.source_dir=no_such_dir"], r"no_such_dir: not a directory \(data\.source_dir\)"),
    ("heads_do_not_divide", ["model.n_heads=3"], r"model\.d_model=32: must be a multiple of model\.n_heads=3"),
    ("port_out_of_range", ["callbacks.monitor.prometheus_port=70000"], r"callbacks\.monitor\.prometheus_port=70000: must be an integer >= 0 and <= 65535"),
    ("beta_above_one", ["optimizer.betas=[0.9,1.5]"], r"optimizer\.betas\[1\]=1\.5: must be a finite number >= 0 and < 1"),
    ("negative_task_weight", ["loss.weights.quality=-1"], r"loss\.weights\.quality=-1: must be a finite number >= 0"),
    ("max_epochs_below_minus_one", ["trainer.max_epochs=-5"], r"trainer\.max_epochs=-5: must be an integer >= -1"),
    ("mlm_rate_above_one", ["data.mlm_rate=1.5"], r"data\.mlm_rate=1\.5: must be a finite number >= 0 and < 1"),
    ("warmup_negative", ["scheduler.warmup_steps=-1"], r"scheduler\.warmup_steps=-1: must be an integer >= 0"),
    ("accumulate_zero", ["trainer.accumulate_grad_batches=0"], r"trainer\.accumulate_grad_batches=0: must be an integer >= 1"),
    ("temperature_zero", ["contrastive.temperature=0"], r"contrastive\.temperature=0: must be a finite number > 0"),
    ("epoch_scale_zero", ["epoch_scale=0"], r"epoch_scale=0: must be a finite number > 0"),
    ("prefetch_negative", ["data.prefetch=-1"], r"data\.prefetch=-1: must be an integer >= 0"),
    ("dropout_one", ["model.dropout=1.0"], r"model\.dropout=1\.0: must be a finite number >= 0 and < 1"),
    ("log_interval_zero", ["trainer.log_every_n_steps=0"], r"trainer\.log_every_n_steps=0: must be an integer >= 1"),
    ("flag_as_number", ["data.packing=3"], r"data\.packing=3: must be true or false"),
]

JSONL = [
    ("jsonl_not_utf8", b'{"task": "quality", "text": "caf\xe9", "labels": []}\n', r"bad\.jsonl:2: not UTF-8"),
    ("jsonl_lone_surrogate", b'{"task": "quality", "text": "a\\ud800b", "labels": []}\n',
     r"bad\.jsonl:2: invalid text \(lone surrogate \\ud800"),
    ("jsonl_5000_digit_number", b'{"task": "quality", "text": "x", "labels": [], "n": ' + b"7" * 5000 + b"}\n",
     r"bad\.jsonl:2: malformed JSON \(a number longer than \d+ digits\)"),
    ("jsonl_nested_too_deeply", b"[" * 100_000 + b"]" * 100_000 + b"\n", r"bad\.jsonl:2: malformed JSON \(nested too deeply\)"),
    ("jsonl_malformed", b'{"task": "quality", \n', r"bad\.jsonl:2: malformed JSON"),
    ("jsonl_unknown_task", b'{"task": "poetry", "text": "x"}\n', r"bad\.jsonl:2: unknown task 'poetry'"),
    ("jsonl_unknown_label", b'{"task": "quality", "text": "x", "labels": ["Credo.Nope"]}\n', r"bad\.jsonl:2: unknown quality label"),
]

TOKENIZED = [
    ("idx_offset_near_2_64", edit_index("offset", 2**64 - 5), r"train-00000\.idx: record 0: offset 18446744073709551611 is past the end of train-00000\.bin"),
    ("idx_length_past_end", edit_index("length", 2**32 - 1, record=3), r"train-00000\.idx: record 3: offset \d+ \+ length 4294967295 runs past the end"),
    ("idx_unknown_task_id", edit_index("task", 9, record=5), r"train-00000\.idx: record 5: task id 9, but there are 6 tasks"),
    ("idx_unknown_label_bit", edit_index("quality", 1 << 40), r"train-00000\.idx: record 0: quality label bits 0x10000000000 name labels beyond"),
    ("idx_unknown_security_bit", edit_index("security", 1 << 63, record=7), r"train-00000\.idx: record 7: security label bits 0x8000000000000000 name labels beyond"),
    ("idx_prompt_longer_than_sample", edit_index("prompt_len", 60000), r"train-00000\.idx: record 0: prompt length 60000 is longer than the sample"),
    ("idx_zero_length", edit_index("length", 0, record=2), r"train-00000\.idx: record 2: length 0"),
    ("meta_a_list", edit_meta(lambda meta: "[1, 2]"), r"meta\.json: expected a JSON object, got list"),
    ("meta_vocab_wrong_type", edit_meta(replaced("vocab_size", "400")), r"meta\.json: 'vocab_size' is '400', expected an integer"),
    ("meta_no_special_tokens", edit_meta(without("special_tokens")), r"meta\.json: 'special_tokens' is missing"),
    ("meta_special_token_out_of_range", edit_meta(lambda m: {**m, "special_tokens": {**m["special_tokens"], "<pad>": 5000}}),
     r"meta\.json: special_tokens\['<pad>'\] is 5000, expected an id in \[0, 400\)"),
    ("meta_splits_wrong_type", edit_meta(replaced("splits", ["train"])), r"meta\.json: 'splits' is missing or not an object"),
    ("meta_not_json", edit_file("data/tokenized/meta.json", lambda d: d[:40]), r"meta\.json:\d+: not valid JSON"),
    ("meta_not_utf8", edit_file("data/tokenized/meta.json", lambda d: b"\xff" + d), r"meta\.json: not valid JSON"),
    ("bin_truncated", edit_file("data/tokenized/train-00000.bin", lambda d: d[:-6]), r"train-00000\.bin: size \d+ bytes but the header promises"),
]

CHECKPOINTS = [
    ("ckpt_empty", edit_file(CKPT, lambda d: b""), r"last\.ckpt: empty file \(0 bytes\)"),
    ("ckpt_truncated", edit_file(CKPT, lambda d: d[: len(d) // 2]), r"last\.ckpt: no integrity record at its end \(\d+ bytes, \d+ when written\)"),
    ("ckpt_flipped_byte_no_json", lambda tmp: (edit_file(CKPT, lambda d: flip(d, len(d) - 4000))(tmp),
                                               (tmp / CKPT).with_suffix(".json").unlink()),
     r"last\.ckpt: checksum does not match the integrity record inside it"),
    ("ckpt_unsealed_and_corrupt_json", lambda tmp: (edit_file(CKPT, lambda d: d[: d.rfind(b"PK\x05\x06") + 20] + b"\0\0")(tmp),
                                                    (tmp / CKPT).with_suffix(".json").write_text("{oops")),
     r"last\.ckpt: no integrity record at its end"),
    ("ckpt_not_a_checkpoint", edit_file(CKPT, lambda d: b"#!/bin/sh\necho hi\n"), r"last\.ckpt: no integrity record at its end"),
    ("ckpt_missing", lambda tmp: (tmp / CKPT).unlink(), r"ckpt_path=.*last\.ckpt: no such file or folder"),
]


def copy_base(tmp: Path, base) -> None:
    _, data, checkpoints = base
    shutil.copytree(data, tmp / "data" / "tokenized")
    shutil.copytree(checkpoints, tmp / "old" / "checkpoints")


def assert_refused(code: int, err: str, expect: str, before: dict, tmp: Path) -> None:
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, err[-3000:]
    assert len(errors) == 1, errors
    assert re.search(expect, errors[0]), errors[0]
    assert snapshot(tmp) == before


@pytest.mark.parametrize("args, expect", [c[1:] for c in CONFIG], ids=[c[0] for c in CONFIG])
def test_bad_config_value(args, expect, tmp_path, corpus_and_data, capsys, monkeypatch):
    corpus = corpus_and_data[0]
    before = snapshot(tmp_path)
    code, err = run_cli(train_cli.main, ["elixir-train", *base_args(tmp_path, corpus), *args, f"hydra.run.dir={tmp_path}/run"],
                        tmp_path, capsys, monkeypatch)
    assert_refused(code, err, expect, before, tmp_path)
    assert not (tmp_path / "data").exists()  # refused before anything was prepared


@pytest.mark.parametrize("content, expect", [c[1:] for c in JSONL], ids=[c[0] for c in JSONL])
def test_bad_jsonl_line(content, expect, tmp_path, capsys, monkeypatch):
    write_jsonl(content)(tmp_path)
    before = snapshot(tmp_path)
    code, err = run_cli(data_cli.main, ["elixir-data", "prepare", f"data.jsonl={tmp_path}/bad.jsonl", "data.data_dir=tok",
                                        "data.vocab_size=400"], tmp_path, capsys, monkeypatch)
    assert_refused(code, err, expect, before, tmp_path)


DAMAGED = [(name, damage, False, expect) for name, damage, expect in TOKENIZED]
DAMAGED += [(name, damage, True, expect) for name, damage, expect in CHECKPOINTS]


@pytest.mark.parametrize("damage, resume, expect", [c[1:] for c in DAMAGED], ids=[c[0] for c in DAMAGED])
def test_damaged_file(damage, resume, expect, tmp_path, corpus_and_data, capsys, monkeypatch):
    copy_base(tmp_path, corpus_and_data)
    damage(tmp_path)
    before = snapshot(tmp_path)
    args = [f"ckpt_path={tmp_path / CKPT}"] if resume else []
    code, err = run_cli(train_cli.main, ["elixir-train", *base_args(tmp_path, corpus_and_data[0]), *args,
                                         f"hydra.run.dir={tmp_path}/run"], tmp_path, capsys, monkeypatch)
    assert_refused(code, err, expect, before, tmp_path)


def test_disk_full_during_a_save(tmp_path, corpus_and_data, capsys, monkeypatch):
    from elixir_coder.io import atomic_write
    from elixir_coder.training import checkpoint as ckpt_mod

    def disk_full(path, blob):
        with atomic_write(path) as fh:
            fh.write(blob[: len(blob) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

    copy_base(tmp_path, corpus_and_data)
    monkeypatch.setattr(ckpt_mod, "_write_durably", disk_full)
    before = snapshot(tmp_path)
    code, err = run_cli(train_cli.main, ["elixir-train", *base_args(tmp_path, corpus_and_data[0]), f"hydra.run.dir={tmp_path}/run"],
                        tmp_path, capsys, monkeypatch)
    assert_refused(code, err, r"\.ckpt: cannot write the checkpoint \(No space left on device\); free some disk space", before, tmp_path)
    assert not [p for p in (tmp_path / "run").rglob("*.tmp")]


def test_busy_prometheus_port(tmp_path, corpus_and_data, capsys, monkeypatch):
    copy_base(tmp_path, corpus_and_data)
    before = snapshot(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, err = run_cli(train_cli.main, ["elixir-train", *base_args(tmp_path, corpus_and_data[0]),
                                             f"callbacks.monitor.prometheus_port={port}", f"hydra.run.dir={tmp_path}/run"],
                            tmp_path, capsys, monkeypatch)
    assert_refused(code, err, rf"callbacks\.monitor\.prometheus_port={port}: cannot serve Prometheus metrics on 127\.0\.0\.1:{port}",
                   before, tmp_path)


def test_data_error_raised_inside_hydra_instantiate_is_our_line(capsys):
    """Hydra wraps what a ``_target_`` raises in InstantiationException; ours still comes out as
    one ``error:`` line and exit code 2."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from elixir_coder.cli.common import run_reporting_errors

    cfg = OmegaConf.create({"thing": {"_target_": "elixir_coder.corpus.recipe.recipe", "jsonl": "a.jsonl",
                                     "vocab_size": 400, "val_fraction": 0.1, "seed": 0, "demo_modules": 1, "max_sample_tokens": 8}})
    with pytest.raises(SystemExit) as exc:
        run_reporting_errors(lambda c: instantiate(c.thing), cfg)
    assert exc.value.code == 2
    assert capsys.readouterr().err.splitlines() == ["error: a.jsonl: no such file (data.jsonl)"]


def test_a_foreign_error_inside_instantiate_is_not_swallowed():
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from elixir_coder.cli.common import run_reporting_errors

    cfg = OmegaConf.create({"x": {"_target_": "builtins.int", "_args_": ["not a number"]}})
    with pytest.raises(InstantiationException):
        run_reporting_errors(lambda c: instantiate(c.x), cfg)
