"""Shared fixtures: composed Hydra configs pointing at tiny data in a temp folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

# Tiny models gain nothing from intra-op threads, and the tests' own subprocesses (Elixir parsers,
# worker pools, trainer runs) share the same few cores: oversubscribed OpenMP threads spin-wait,
# which made CPU-bound tests several times slower on a 2-core machine. Children inherit this.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from elixir_coder.config import conf_dir

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))  # in case torch was imported before this file

FUNCS = [
    ("add", "a, b", "a + b"),
    ("double", "x", "x * 2"),
    ("greet", "name", '"Hello, " <> name'),
    ("total", "items", "Enum.sum(items)"),
    ("names", "users", "Enum.map(users, & &1.name)"),
    ("active", "users", "Enum.filter(users, & &1.active)"),
]


def write_tiny_corpus(path: Path, modules: int = 80) -> Path:
    """A few hundred short, learnable Elixir records (code_generation, quality, security)."""
    with open(path, "w") as fh:
        for i in range(modules):
            name, args, body = FUNCS[i % len(FUNCS)]
            code = (f"defmodule App.M{i} do\n  @moduledoc \"Module {i}.\"\n\n  alias App.Repo\n\n  def {name}({args}) do\n"
                    f"    {body}\n  end\n\n  def load_{i}(id) do\n    Repo.get(App.Item, id)\n  end\nend\n")
            src = f"lib/m{i}.ex"
            fh.write(json.dumps({"task": "code_generation", "prompt": f"# {name}\n", "completion": code, "source": src}) + "\n")
            fh.write(json.dumps({"task": "code_generation", "prompt": "", "completion": code, "source": src}) + "\n")
            bad = code.replace(f"    {body}\n", f"    IO.inspect({body})\n")
            fh.write(json.dumps({"task": "quality", "text": bad, "labels": ["Credo.Check.Warning.IoInspect"], "source": src}) + "\n")
            fh.write(json.dumps({"task": "quality", "text": code, "labels": [], "source": src}) + "\n")
            vuln = f'defmodule App.C{i} do\n  def run(p), do: String.to_atom(p["k"])\nend\n'
            fh.write(json.dumps({"task": "security", "text": vuln, "labels": ["Sobelow.DOS.StringToAtom"], "source": src}) + "\n")
    return path


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    return write_tiny_corpus(tmp_path_factory.mktemp("corpus") / "records.jsonl")


FAST = [
    "data.vocab_size=400",
    "data.batch_size=8",
    "data.val_batch_size=16",
    "data.max_len=64",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=null",
    "data.packing=false",
    "trainer.log_every_n_steps=1",
    "trainer.enable_model_summary=false",
    "model.d_model=32",
    "model.n_layers=1",
    "model.n_heads=2",
    "model.max_len=64",
    "~callbacks.progress_bar",
    "callbacks.console_table.every_n_steps=5",
    # Pairs judged by the built-in detectors: the real tools cost seconds a call, and their
    # judgement has its own tests (test_pairs_judge.py).
    "contrastive.judge=builtin",
]


@pytest.fixture
def make_cfg(tmp_path, tiny_corpus):
    """Compose the real config tree with overrides, outputs and data under ``tmp_path``."""

    def make(*overrides: str):
        with initialize_config_dir(str(conf_dir()), version_base="1.3"):
            cfg = compose(
                "config",
                overrides=[f"data.jsonl={tiny_corpus}", f"paths.data_dir={tmp_path}/data", *FAST, *overrides],
                return_hydra_config=True,
            )
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / "run")
        return cfg

    return make
