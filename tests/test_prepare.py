"""Corpus preparation and every bad input the issue names: one clear error, nothing damaged."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from elixir_coder.corpus import tokenized
from elixir_coder.corpus.prepare import ensure_prepared, prepare
from elixir_coder.corpus.recipe import recipe
from elixir_coder.corpus.records import read_jsonl
from elixir_coder.errors import DataError
from elixir_coder.training.data import read_dataset

MODULE = '''defmodule Shop.Cart{i} do
  @moduledoc "A cart."

  @doc """
  Adds an item.
  """
  def add(cart, item) do
    [item | cart]
  end

  @doc "Counts items."
  def count(cart) do
    length(cart) + {i}
  end
end
'''


def write_records(path, n=60):
    with open(path, "w") as fh:
        for i in range(n):
            fh.write(json.dumps({"task": "code_generation", "prompt": "", "completion": MODULE.format(i=i), "source": f"cart{i}.ex"}) + "\n")
            fh.write(json.dumps({"task": "quality", "text": f"IO.inspect({i})", "labels": ["Credo.Check.Warning.IoInspect"], "source": f"cart{i}.ex"}) + "\n")
    return path


def rec_for(jsonl, seed=0):
    return recipe(jsonl=str(jsonl), source_dir=None, vocab_size=400, val_fraction=0.2, test_fraction=0.1, seed=seed,
                  demo_modules=0, max_sample_tokens=512)


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.exists() else None


@pytest.fixture
def prepared(tmp_path):
    jsonl = write_records(tmp_path / "records.jsonl")
    out = tmp_path / "tok"
    ensure_prepared(out, rec_for(jsonl), log=lambda _: None)
    return out


def test_prepare_writes_validated_splits_and_meta(prepared):
    meta = tokenized.read_meta(prepared)
    assert set(meta["splits"]) == {"train", "val", "test"}
    assert meta["vocab_size"] <= 400 and meta["special_tokens"]["<pad>"] == 0
    for split in ("train", "val", "test"):
        ds = read_dataset(prepared, split)
        assert len(ds) == meta["splits"][split]["samples"]
        assert {s.task for s in ds} == {"code_generation", "quality"}
    quality = [s for s in read_dataset(prepared, "train") if s.task == "quality"]
    assert all(s.quality == ("Credo.Check.Warning.IoInspect",) for s in quality)
    assert all((s.labels == -100).all() for s in quality)  # classification: no LM loss


def test_same_seed_gives_byte_identical_files(tmp_path):
    jsonl = write_records(tmp_path / "records.jsonl")
    a, b = prepare(tmp_path / "a", rec_for(jsonl)), prepare(tmp_path / "b", rec_for(jsonl))
    data = lambda folder: {k: v for k, v in snapshot(folder).items() if k != "meta.json"}  # noqa: E731
    assert data(tmp_path / "a") == data(tmp_path / "b")
    timing = ("seconds", "source_mb_per_s")  # the report's timings are the only difference in meta.json
    for meta in (a, b):
        for key in timing:
            meta["report"].pop(key)
    assert a == b


def test_stale_dataset_is_reported_not_overwritten(prepared, tmp_path):
    other = write_records(tmp_path / "other.jsonl", n=70)
    before = snapshot(prepared)
    with pytest.raises(DataError, match="data.overwrite=true"):
        ensure_prepared(prepared, rec_for(other), log=lambda _: None)
    assert snapshot(prepared) == before


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"task": "code_generation", "prompt": ""', r"bad\.jsonl:2: malformed JSON"),
        ('{"task": "poetry", "prompt": "", "completion": "x"}', r"bad\.jsonl:2: unknown task 'poetry'"),
        ('{"task": "quality", "text": "x", "labels": ["Credo.Nope"]}', r"bad\.jsonl:2: unknown quality label"),
    ],
)
def test_bad_jsonl_line_is_named(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"task": "code_generation", "prompt": "", "completion": "x"}\n' + line + "\n")
    with pytest.raises(DataError, match=message):
        read_jsonl(path)


# -- a damaged dataset on disk ------------------------------------------------------------------


def damage(folder, name, fn):
    path = folder / name
    data = bytearray(path.read_bytes())
    path.write_bytes(bytes(fn(data)))
    return path


def set_header(data, **fields):
    magic, version, itemsize, count, reserved = tokenized.HEADER.unpack(bytes(data[: tokenized.HEADER_SIZE]))
    vals = dict(magic=magic, version=version, itemsize=itemsize, count=count, reserved=reserved) | fields
    data[: tokenized.HEADER_SIZE] = tokenized.HEADER.pack(*vals.values())
    return data


def set_index(data, field, value):
    index = np.frombuffer(bytes(data[tokenized.HEADER_SIZE :]), dtype=tokenized.INDEX_DTYPE).copy()
    index[field][0] = value
    return data[: tokenized.HEADER_SIZE] + index.tobytes()


@pytest.mark.parametrize(
    "name, fn, message",
    [
        ("train-00000.bin", lambda d: d[:-10], r"train-00000\.bin: size .* \(truncated or overwritten\)"),
        ("train-00000.bin", lambda d: b"GARBAGE!" + d[8:], r"train-00000\.bin: not an elixir-coder bin file"),
        ("train-00000.bin", lambda d: set_header(d, version=99), r"train-00000\.bin: format version 99"),
        ("train-00000.idx", lambda d: set_index(d, "offset", 10**9), r"train-00000\.idx: record 0: offset 1000000000 is past the end of train-00000\.bin"),
        ("train-00000.idx", lambda d: set_index(d, "offset", 2**64 - 5), r"train-00000\.idx: record 0: offset 18446744073709551611 is past the end"),
        ("train-00000.bin", lambda d: d[: tokenized.HEADER_SIZE] + struct.pack("<H", 399) + d[tokenized.HEADER_SIZE + 2 :],
         r"token id \d+ at position 0 is >= the vocabulary size"),
        ("train-00000.idx", lambda d: d[:5], r"train-00000\.idx: truncated"),
    ],
)
def test_damaged_dataset_gives_one_clear_error(prepared, name, fn, message):
    meta = tokenized.read_meta(prepared)
    if "vocabulary" in message:  # make the planted id out of range for this vocabulary
        meta["vocab_size"] = 399
        tokenized.write_meta(prepared, meta)
    path = damage(prepared, name, fn)
    before = path.read_bytes()
    with pytest.raises(DataError, match=message):
        read_dataset(prepared, "train")
    assert path.read_bytes() == before  # reading never "repairs" anything


def test_empty_split_is_an_error(prepared):
    damage(prepared, "val-00000.idx", lambda d: set_header(d[: tokenized.HEADER_SIZE], count=0))
    with pytest.raises(DataError, match="the 'val' split is empty"):
        read_dataset(prepared, "val")


def test_unknown_task_filter_is_an_error(prepared):
    with pytest.raises(DataError, match="unknown task 'codegen'"):
        read_dataset(prepared, "train", tasks=["codegen"])


# -- the CLI: one line on stderr, non-zero exit, nothing written --------------------------------


def run_cli(*args, cwd):
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120)


def test_cli_malformed_jsonl(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task": "code_generation", "prompt": "", "completion": "x"}\n{oops\n')
    out = run_cli("elixir_coder.cli.data", "prepare", f"data.jsonl={bad}", "data.data_dir=tok", cwd=tmp_path)
    assert out.returncode != 0
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"{bad}:2: malformed JSON" in errors[0]
    assert not (tmp_path / "tok").exists() and not list(tmp_path.glob(".tok*"))


def test_cli_unknown_config_key(tmp_path):
    out = run_cli("elixir_coder.cli.train", "data.batch_sizee=3", cwd=tmp_path)
    assert out.returncode != 0
    assert "Key 'batch_sizee' is not in struct" in out.stderr
    assert not (tmp_path / "data").exists()


def test_cli_verify_reports_damage(prepared, tmp_path):
    damage(prepared, "val-00000.bin", lambda d: d[:-1] + bytes([d[-1] ^ 1]))
    out = run_cli("elixir_coder.cli.data", "verify", f"data.data_dir={prepared}", f"data.jsonl={tmp_path / 'records.jsonl'}",
                  cwd=tmp_path)
    assert out.returncode != 0
    assert "val-00000.bin: checksum does not match meta.json" in out.stderr
