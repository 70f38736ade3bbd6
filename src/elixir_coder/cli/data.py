"""``elixir-data COMMAND [overrides]``: data tasks on the same Hydra config as training.

    elixir-data prepare                          # tokenize the embedded demo corpus
    elixir-data prepare data.source_dir=~/src data.data_dir=data/mine   # projects, Hex tarballs
    elixir-data prepare data.jsonl=records.jsonl data.overwrite=true
    elixir-data verify                           # re-check sizes, ids, checksums and the report
    elixir-data pairs                            # contrastive pairs -> data/processed/*.jsonl
    elixir-data pairs --report                   # ... and per-rule figures (judge, detectors vs tools)
    elixir-data export ckpt_path=outputs/.../checkpoints/model-3.ckpt   # weights as safetensors
"""

from __future__ import annotations

import json
import sys

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from elixir_coder.cli.common import run_reporting_errors
from elixir_coder.config import conf_dir
from elixir_coder.corpus import tokenized
from elixir_coder.corpus.report import format_report, verify_report
from elixir_coder.errors import ElixirCoderError
from elixir_coder.training.data import ElixirDataModule, read_dataset


def prepare(cfg: DictConfig) -> None:
    """Prepare (or find up to date) the configured corpus; the report is printed either way."""
    dm: ElixirDataModule = instantiate(cfg.data)
    fresh = not (dm.data_dir / "meta.json").is_file() or dm.overwrite
    dm.prepare_data()
    meta = dm.meta
    if not fresh and "report" in meta:
        print(format_report(meta["report"]))
    summary = {split: {"samples": info["samples"], "tokens": info["tokens"]} for split, info in meta["splits"].items()}
    print(f"{dm.data_dir}: vocab {meta['vocab_size']}, " + json.dumps(summary))


def verify(cfg: DictConfig) -> None:
    dm: ElixirDataModule = instantiate(cfg.data)
    meta = tokenized.read_meta(dm.data_dir)
    for split in meta["splits"]:
        read_dataset(dm.data_dir, split)  # headers, sizes, offsets, id ranges
    tokenized.verify_checksums(dm.data_dir, meta)
    verify_report(dm.data_dir, meta)
    print(f"{dm.data_dir}: ok ({', '.join(meta['splits'])}; report matches the files)")


def export(cfg: DictConfig) -> None:
    """Write a checkpoint's weights as safetensors (no pickle at all) for deployment."""
    from elixir_coder.training.checkpoint import export_safetensors, resolve_ckpt_path

    ckpt = resolve_ckpt_path(cfg.ckpt_path)
    if ckpt is None:
        raise ElixirCoderError("export needs ckpt_path=<checkpoint file, run folder or last>")
    out = export_safetensors(ckpt)
    print(f"{out} (+ {out.with_suffix('.yaml').name})")


def pairs(cfg: DictConfig) -> None:
    """Write the contrastive pair files from the configured corpus's training split, judged by the
    real Credo and Sobelow when found (``contrastive.judge``); ``--report`` is
    ``contrastive.report=true``."""
    dm: ElixirDataModule = instantiate(cfg.data)
    dm.prepare_data()
    dm.contrastive = dict(cfg.contrastive)
    dm.prepare_pairs(overwrite=True)
    for path in (cfg.contrastive.pairs_path, cfg.contrastive.security_path):
        with open(path, encoding="utf-8") as fh:
            print(f"{path}: {sum(1 for _ in fh)} pairs")


COMMANDS = {"prepare": prepare, "verify": verify, "pairs": pairs, "export": export}


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")
def _main(cfg: DictConfig) -> None:
    run_reporting_errors(COMMANDS[_COMMAND], cfg)


_COMMAND = "prepare"


def main() -> None:
    global _COMMAND
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(f"usage: elixir-data {{{','.join(COMMANDS)}}} [hydra overrides]", file=sys.stderr)
        sys.exit(2)
    _COMMAND = sys.argv.pop(1)
    if _COMMAND == "pairs" and "--report" in sys.argv:
        sys.argv.remove("--report")
        sys.argv.append("contrastive.report=true")
    # Data commands write no run folder of their own.
    sys.argv += ["hydra.output_subdir=null", "hydra/job_logging=disabled", "hydra/hydra_logging=disabled", "hydra.run.dir=."]
    _main()


if __name__ == "__main__":
    main()
