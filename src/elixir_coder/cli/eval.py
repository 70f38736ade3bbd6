"""``elixir-eval``: a checkpoint's test-split metrics and functional checks of the Elixir it writes.

    elixir-eval                                     # ckpt_path=last: the newest run under outputs/
    elixir-eval ckpt_path=outputs/2026-01-01/12-00-00 eval.functional.samples=10
    elixir-eval eval.functional.problems=multipl-e-elixir.jsonl
    elixir-eval eval.functional.enabled=false       # test metrics only

The checkpoint's own config is the base (``use_checkpoint_config=false`` composes from conf/).
Results: ``metrics.json`` and ``samples.jsonl`` in the run folder, the same figures in its
TensorBoard events at the checkpoint's step, and a table on the console.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from elixir_coder.cli.common import run_reporting_errors
from elixir_coder.config import conf_dir
from elixir_coder.errors import ConfigError
from elixir_coder.evaluation.from_checkpoint import checkpoint_config, load_trained
from elixir_coder.io import atomic_write

log = logging.getLogger("elixir_coder")


def test_metrics(cfg: DictConfig, datamodule, module) -> dict[str, float]:
    """Every task's test-split metrics through ``trainer.test`` (the validation computation)."""
    trainer: L.Trainer = instantiate(cfg.trainer, default_root_dir=cfg.paths.output_dir, logger=False,
                                     callbacks=[], enable_checkpointing=False, enable_progress_bar=False)
    results = trainer.test(module, datamodule=datamodule, verbose=False)
    return {k: float(v) for k, v in results[0].items()} if results else {}


def functional(cfg: DictConfig, datamodule, module) -> tuple[dict, list]:
    """k samples per problem; parse, clean and pass@k figures, and every sample."""
    from elixir_coder.corpus.parser import shared_parser
    from elixir_coder.corpus.tokenizer import load_tokenizer
    from elixir_coder.evaluation import functional as fn
    from elixir_coder.evaluation.problems import demo_benchmark, load_problems
    from elixir_coder.model.generate import Sampling

    f = cfg.eval.functional
    if max(f.pass_k) > f.samples:
        raise ConfigError(f"eval.functional.pass_k={list(f.pass_k)}: every k must be at most eval.functional.samples={f.samples}")
    try:
        sandbox = instantiate(cfg.sandbox)
        credo = fn.find_credo(f.linter)
    except Exception as exc:  # elixir or Credo missing, or isolation asked for and unavailable
        cause = exc.__cause__ or exc
        raise ConfigError(f"sandbox / eval.functional.linter: {cause}") from None
    if f.problems:
        path, header = Path(f.problems), {}
    elif cfg.data.jsonl or cfg.data.source_dir:
        raise ConfigError("the built-in benchmark comes from the demo corpus; with data.jsonl or data.source_dir "
                          "pass eval.functional.problems=<problems.jsonl>")
    else:
        d = cfg.data
        path, header = demo_benchmark(f.benchmark_dir, d.seed, d.demo_modules, d.val_fraction, d.test_fraction, sandbox, log.info,
                                    f.workers)
    problems = fn.select(load_problems(path), f.max_problems_per_task, cfg.seed)
    g = cfg.generation
    sampling = Sampling(g.temperature, g.top_k, g.top_p, g.max_new_tokens)
    tokenizer = load_tokenizer(Path(datamodule.data_dir) / datamodule.meta["tokenizer"])
    start = time.perf_counter()
    samples, skipped = fn.generate_samples(module.model, tokenizer, problems, f.samples, sampling, g.seed, g.batch_size,
                                            f.min_new_tokens, g.threads)
    generated = time.perf_counter() - start
    parser = shared_parser()
    fn.score(samples, sandbox, lambda codes: [r.ok for r in parser.parse_many(codes)], credo, f.workers)
    summary = fn.summarise(samples, list(f.pass_k), skipped)
    summary["setup"] = {"problems_file": str(path), "benchmark": header, "sandbox_isolation": sandbox.isolation,
                        "linter": "credo" if credo else "detectors", "samples_per_problem": f.samples,
                        "generation_seconds": round(generated, 2), "run_seconds": round(time.perf_counter() - start - generated, 2)}
    return summary, samples


def flat_functional(summary: dict) -> dict[str, float]:
    """``functional/<task>/<figure>`` scalars for TensorBoard and metrics.json."""
    out = {}
    for task in ("code_generation", "test_generation", "all"):
        for k, v in summary.get(task, {}).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "problems":
                out[f"functional/{task}/{k}"] = float(v)
    return out


def print_table(metrics: dict[str, float], summary: dict | None, ckpt: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # a log file or pipe: wide enough for the whole table
        console = Console(width=120)
    console.print(f"checkpoint: {ckpt}")
    table = Table(title="test split")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k in sorted(metrics):
        if k.startswith("test/"):
            table.add_row(k, f"{metrics[k]:.4f}")
    console.print(table)
    if summary is None:
        return
    ks = [k for k in summary["all"] if k.startswith("pass@")]
    table = Table(title=f"functional ({summary['setup']['samples_per_problem']} samples per problem, "
                        f"linter: {summary['setup']['linter']}, sandbox: {summary['setup']['sandbox_isolation']})")
    for col in ("task", "problems", "samples", "parse rate", "clean rate", "with tests", *ks):
        table.add_column(col, justify="left" if col == "task" else "right")

    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}%"

    for task in ("code_generation", "test_generation", "all"):
        s = summary[task]
        table.add_row(task, str(s["problems"]), str(s["samples"]), pct(s["parse_rate"]), pct(s["clean_rate"]),
                      str(s["executable_problems"]), *(pct(s[k]) for k in ks))
    console.print(table)
    runs = summary["all"]["runs"]
    if runs or summary["skipped"]:
        console.print("runs: " + ", ".join(f"{k} {v}" for k, v in sorted(runs.items()))
                      + ("; skipped: " + ", ".join(f"{k} {v}" for k, v in summary["skipped"].items()) if summary["skipped"] else ""))


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Evaluate ``cfg.ckpt_path``; returns the flat metrics written to metrics.json."""
    cfg, ckpt = checkpoint_config(cfg)
    datamodule, module, saved = load_trained(cfg, ckpt)
    out = Path(cfg.paths.output_dir)
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    metrics: dict[str, float] = {}
    if cfg.eval.test_metrics:
        metrics.update(test_metrics(cfg, datamodule, module))
    summary, samples = None, []
    if cfg.eval.functional.enabled:
        summary, samples = functional(cfg, datamodule, module)
        metrics.update(flat_functional(summary))
    for lg in loggers:  # at the checkpoint's step, beside its training curves when logdirs are shared
        lg.log_metrics(metrics, step=saved.step)
        lg.save()
    out.mkdir(parents=True, exist_ok=True)
    report = {"checkpoint": ckpt, "epoch": saved.epoch, "step": saved.step, "metrics": metrics, "functional": summary,
              "config": OmegaConf.to_container(cfg.eval, resolve=True)}
    with atomic_write(out / "metrics.json", "w") as fh:
        json.dump(report, fh, indent=2, sort_keys=True)
    if samples:
        with atomic_write(out / "samples.jsonl", "w") as fh:
            fh.writelines(json.dumps(s.to_dict()) + "\n" for s in samples)
    print_table(metrics, summary, ckpt)
    log.info("results in %s", out / "metrics.json")
    return metrics


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="eval")
def _main(cfg: DictConfig) -> None:
    run_reporting_errors(evaluate, cfg)


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
