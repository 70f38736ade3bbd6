"""The preparation report: what was seen, kept, skipped (by reason), deduplicated and produced.

Kept in ``meta.json`` and printed at the end of preparation, so a user of a real corpus sees
exactly what the model will and will not train on; ``elixir-data verify`` re-checks its sample
and token counts against the files on disk.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from elixir_coder.corpus import tokenized
from elixir_coder.errors import DataError
from elixir_coder.labels import TASKS


def _prefixed(stats: Counter, prefix: str) -> dict[str, int]:
    return {k[len(prefix):]: int(v) for k, v in sorted(stats.items()) if k.startswith(prefix)}


def build_report(stats: Counter, skipped: Counter, projects, by_project: bool, split_meta: dict, licenses: list[str],
                 seconds: float, workers: int, rec: dict) -> dict:
    records: dict[str, dict[str, int]] = {}
    for key, n in _prefixed(stats, "records/").items():
        task, kind = key.split("/", 1)
        records.setdefault(task, {})[kind] = n
    source_mb = stats["source_bytes_seen"] / 1e6
    return {
        "sources": {
            "projects": sum(1 for p in projects if p.kind == "dir"),
            "hex_packages": sum(1 for p in projects if p.kind == "hex"),
            "records_in": int(stats["records_in"]),
            "licenses": dict(sorted(Counter(p.license for p in projects).items())),
        },
        "split_unit": "project" if by_project else "module (too few projects for a project-level split: see data.min_projects)",
        "files": {
            "seen": int(stats["files_seen"]),
            "kept": int(stats["files_parsed"]),
            "skipped": {k: int(v) for k, v in sorted(skipped.items()) if v},
        },
        "duplicates_removed": {"exact": int(skipped["duplicate_exact"]), "near": int(skipped["duplicate_near"])},
        "records": records,
        "long_records": {
            "split": int(stats["records_split"]),
            "samples_made_from_them": int(stats["pieces_from_split_records"]),
            "cuts_inside_a_definition": int(stats["pieces_cut_inside_a_definition"]),
        },
        "not_trained_on": {
            "prompt_context_chars_cut": int(stats["prompt_context_chars_cut"]),
            "prompt_context_tokens_cut": int(stats["prompt_tokens_cut"]),
            **_prefixed(stats, "skipped/"),
            **{f"records_{k}": v for k, v in _prefixed(stats, "skipped_records/").items()},
            **{f"mining_{k}": v for k, v in _prefixed(stats, "mining/").items()},
        },
        "splits": {
            split: {"samples": info["samples"], "tokens": info["tokens"], "shards": len(info["shards"]),
                    "samples_by_task": {t: n for t, n in info["tasks"].items() if n},
                    "tokens_by_task": {t: n for t, n in info["task_tokens"].items() if n},
                    "samples_by_license": info["licenses"]}
            for split, info in split_meta.items()
        },
        "licenses": licenses,
        "seconds": round(seconds, 2),
        "source_mb": round(source_mb, 3),
        "source_mb_per_s": round(source_mb / seconds, 3) if seconds > 0 else None,
        "workers": workers,
    }


def format_report(report: dict) -> str:
    """A few aligned lines for the console."""
    f, s = report["files"], report["splits"]
    lines = [
        "Preparation report",
        f"  sources     {report['sources']['projects']} projects, {report['sources']['hex_packages']} Hex packages, "
        f"{report['sources']['records_in']} JSONL/demo records; split by {report['split_unit'].split(' ')[0]}",
        f"  files       {f['seen']} seen, {f['kept']} kept" + (f"; skipped: {', '.join(f'{k} {v}' for k, v in f['skipped'].items())}" if f["skipped"] else ""),
        f"  duplicates  {report['duplicates_removed']['exact']} exact, {report['duplicates_removed']['near']} near removed",
    ]
    for task in TASKS:
        per_split = [f"{split} {info['samples_by_task'].get(task, 0)}/{info['tokens_by_task'].get(task, 0)}" for split, info in s.items()]
        lines.append(f"  {task:<16} samples/tokens: {', '.join(per_split)}")
    long = report["long_records"]
    lines.append(f"  long records {long['split']} split into {long['samples_made_from_them']} samples ({long['cuts_inside_a_definition']} cuts inside a definition)")
    dropped = {k: v for k, v in report["not_trained_on"].items() if v}
    if dropped:
        lines.append(f"  not trained on: {', '.join(f'{k} {v}' for k, v in dropped.items())}")
    lines.append(f"  {report['source_mb']} MB of source in {report['seconds']} s ({report['source_mb_per_s']} MB/s, {report['workers']} workers)")
    return "\n".join(lines)


def verify_report(data_dir, meta: dict) -> None:
    """The report's per-split, per-task sample and token counts must match the index files."""
    for split, info in meta["splits"].items():
        arrays = tokenized.open_split(data_dir, split, int(meta["vocab_size"]), meta) if info["samples"] else None
        samples = Counter() if arrays is None else Counter({TASKS[t]: int(n) for t, n in zip(*np.unique(arrays.index["task"], return_counts=True))})
        want = meta.get("report", {}).get("splits", {}).get(split, {}).get("samples_by_task", {t: n for t, n in info["tasks"].items() if n})
        if dict(samples) != want:
            raise DataError(f"{data_dir}: the {split!r} split holds {dict(samples)} samples by task, the report says {want}; re-run `elixir-data prepare data.overwrite=true`")
