"""``elixir-generate``: completions from a checkpoint.

    elixir-generate prompt='  @doc "Adds two numbers."\\n  def add(a, b) do\\n'
    elixir-generate generate.prompts=prompts.jsonl generation.temperature=0 generate.samples=3
    elixir-generate prompt="$(cat lib/my_module.ex)" generate.task=test_generation

Sampling: ``generation.temperature`` (0 = greedy), ``generation.top_k``, ``generation.top_p``,
``generation.max_new_tokens``, ``generation.seed``; a completion ends at ``<eos>`` or, with
``generation.stop_at_complete``, as soon as it is complete Elixir. The prompt is what the model
was trained to continue for that task: a doc, spec and ``def`` line for code_generation, a whole
module for test_generation.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from elixir_coder.cli.common import run_reporting_errors
from elixir_coder.config import conf_dir
from elixir_coder.corpus.records import iter_jsonl
from elixir_coder.errors import ConfigError, DataError
from elixir_coder.evaluation.from_checkpoint import checkpoint_config, load_trained
from elixir_coder.io import atomic_write
from elixir_coder.labels import GENERATION_TASKS

log = logging.getLogger("elixir_coder")


def read_prompts(cfg: DictConfig) -> list[dict]:
    """``[{"prompt", "task"}]`` from ``prompt=`` or the ``generate.prompts`` JSONL (errors name file:line)."""
    default = cfg.generate.task
    if (cfg.prompt is None) == (cfg.generate.prompts is None):
        raise ConfigError("give exactly one of prompt=\"...\" and generate.prompts=<file.jsonl>")
    if cfg.prompt is not None:
        text = str(cfg.prompt)
        # A one-line shell argument: a literal \n stands for a newline (a prompt with real newlines is kept as is).
        rows = [{"prompt": text if "\n" in text else text.replace("\\n", "\n"), "task": default}]
    else:
        rows = []
        for where, row in iter_jsonl(cfg.generate.prompts, "file (generate.prompts)"):
            if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
                raise DataError(f"{where}: each line needs a string field 'prompt'")
            rows.append({"prompt": row["prompt"], "task": row.get("task", default)})
    for r in rows:
        if r["task"] not in GENERATION_TASKS:
            raise ConfigError(f"task {r['task']!r} (generate.task or a prompt's 'task'): use one of {', '.join(GENERATION_TASKS)}")
    return rows


def generate(cfg: DictConfig) -> list[dict]:
    """Generate for every prompt; returns (and writes) ``{"prompt", "task", "completions"}`` rows."""
    from elixir_coder.corpus.tokenizer import load_tokenizer
    from elixir_coder.model.generate import Sampling, TextGenerator

    cfg, ckpt = checkpoint_config(cfg)
    rows = read_prompts(cfg)
    datamodule, module, _ = load_trained(cfg, ckpt)
    tokenizer = load_tokenizer(Path(datamodule.data_dir) / datamodule.meta["tokenizer"])
    g = cfg.generation
    sampling = Sampling(g.temperature, g.top_k, g.top_p, g.max_new_tokens)
    for task in sorted({r["task"] for r in rows}):
        mine = [r for r in rows if r["task"] == task]
        gen = TextGenerator(module.model, tokenizer, task=task, stop_at_complete=g.stop_at_complete, batch_size=g.batch_size,
                            threads=g.threads)
        for r in mine:
            if len(gen.encode(r["prompt"])) >= gen.max_prompt_tokens():
                raise DataError(f"a {task} prompt of {len(gen.encode(r['prompt']))} tokens leaves no room before "
                                f"model.max_len={gen.max_prompt_tokens() + 1}; shorten it")
        for r, texts in zip(mine, gen.complete([r["prompt"] for r in mine], sampling, seed=g.seed, samples=cfg.generate.samples)):
            r["completions"] = texts
    out = Path(cfg.paths.output_dir) / "generations.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out, "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    for r in rows:
        for text in r["completions"]:
            print(r["prompt"] + text if r["task"] == "code_generation" else text)
            print("-" * 40)
    log.info("%d completions from %s written to %s", sum(len(r["completions"]) for r in rows), ckpt, out)
    return rows


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="generate")
def _main(cfg: DictConfig) -> None:
    run_reporting_errors(generate, cfg)


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
