"""``elixir-eval`` and ``elixir-generate`` on a checkpoint of a tiny run."""

from __future__ import annotations

import json
import shutil

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from elixir_coder.config import conf_dir
from elixir_coder.evaluation.problems import Problem, write_problems
from elixir_coder.training import loop as training_loop

TASKS = "task.tasks=[code_generation,quality,security]"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_corpus):
    """A one-epoch run of all three tasks the tiny corpus has."""
    from conftest import FAST

    tmp = tmp_path_factory.mktemp("evalrun")
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=[f"data.jsonl={tiny_corpus}", f"paths.data_dir={tmp}/data", *FAST, TASKS,
                                           "validate_before_fit=false"], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp / "run")
    loop = training_loop.init(cfg)
    loop.trainer.fit(loop.module, datamodule=loop.datamodule)
    return tmp


def eval_cfg(tmp, name: str, *overrides: str):
    overrides = [f"paths.data_dir={tmp}/data", *overrides]
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        cfg = compose(name, overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp / f"{name}-out")
    return cfg


def test_eval_writes_every_tasks_test_metrics(run_dir):
    from elixir_coder.cli.eval import evaluate

    # trainer.max_epochs differs from the run: only the keys typed here replace the checkpoint's own.
    metrics = evaluate(eval_cfg(run_dir, "eval", f"ckpt_path={run_dir / 'run'}", "eval.functional.enabled=false",
                                "data.val_batch_size=4"))
    report = json.loads((run_dir / "eval-out" / "metrics.json").read_text())
    assert report["checkpoint"].endswith("last.ckpt") and report["metrics"] == metrics
    for task in ("code_generation", "quality", "security"):
        assert f"test/{task}/loss" in metrics
    assert {"test/loss", "test/code_generation/token_acc", "test/quality/f1", "test/security/f1"} <= set(metrics)
    assert list((run_dir / "eval-out" / "tensorboard").glob("events.out.tfevents.*"))


def test_eval_uses_the_checkpoints_config_not_the_defaults(run_dir):
    from elixir_coder.evaluation.from_checkpoint import checkpoint_config

    cfg, ckpt = checkpoint_config(eval_cfg(run_dir, "eval", f"ckpt_path={run_dir / 'run'}", "data.val_batch_size=4"),
                                  [f"ckpt_path={run_dir / 'run'}", "data.val_batch_size=4"])
    assert cfg.model.d_model == 32 and list(cfg.task.tasks) == ["code_generation", "quality", "security"]  # saved
    assert cfg.data.val_batch_size == 4 and cfg.ckpt_path == ckpt  # typed


@pytest.mark.elixir
@pytest.mark.skipif(shutil.which("elixir") is None, reason="install elixir: apt-get install -y elixir")
def test_eval_functional_figures_from_a_problem_file(run_dir):
    from elixir_coder.cli.eval import evaluate

    tests = 'defmodule MTest do\n  use ExUnit.Case\n  test "x" do\n    assert M.double(2) == 4\n  end\nend\n'
    problems = [Problem("double", "# double\n", tests=tests, prefix="", suffix=""),
                Problem("untested", "# add\n")]
    write_problems(run_dir / "problems.jsonl", problems, {})
    metrics = evaluate(eval_cfg(run_dir, "eval", f"ckpt_path={run_dir / 'run' / 'checkpoints' / 'last.ckpt'}",
                                "eval.test_metrics=false", f"eval.functional.problems={run_dir / 'problems.jsonl'}",
                                "eval.functional.samples=2", "eval.functional.pass_k=[1,2]", "generation.max_new_tokens=16",
                                "eval.functional.min_new_tokens=8"))
    assert metrics["functional/code_generation/samples"] == 4
    assert 0 <= metrics["functional/code_generation/parse_rate"] <= 1
    assert metrics["functional/code_generation/executable_problems"] == 1
    assert metrics["functional/code_generation/pass@2"] == 0.0  # an untrained model's 16 tokens do not pass
    lines = (run_dir / "eval-out" / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 4 and {json.loads(x)["problem"] for x in lines} == {"double", "untested"}


def test_generate_writes_completions_for_each_prompt(run_dir, capsys):
    from elixir_coder.cli.generate import generate

    (run_dir / "prompts.jsonl").write_text(json.dumps({"prompt": "# add\n"}) + "\n" + json.dumps({"prompt": "# greet\n"}) + "\n")
    rows = generate(eval_cfg(run_dir, "generate", f"ckpt_path={run_dir / 'run'}", f"generate.prompts={run_dir / 'prompts.jsonl'}",
                             "generate.samples=2", "generation.max_new_tokens=8", "generation.stop_at_complete=false"))
    assert [len(r["completions"]) for r in rows] == [2, 2]
    written = [json.loads(x) for x in (run_dir / "generate-out" / "generations.jsonl").read_text().splitlines()]
    assert written == rows
    again = generate(eval_cfg(run_dir, "generate", f"ckpt_path={run_dir / 'run'}", f"generate.prompts={run_dir / 'prompts.jsonl'}",
                              "generate.samples=2", "generation.max_new_tokens=8", "generation.stop_at_complete=false"))
    assert again == rows  # the seed fixes the samples


def test_generate_needs_exactly_one_prompt_source(run_dir):
    from elixir_coder.cli.generate import generate
    from elixir_coder.errors import ConfigError

    with pytest.raises(ConfigError, match="exactly one of prompt"):
        generate(eval_cfg(run_dir, "generate", f"ckpt_path={run_dir / 'run'}"))
