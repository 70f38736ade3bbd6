"""Turn records (the embedded demo corpus, a JSONL file or a tree of Elixir files) into the
tokenized dataset that training memory-maps.

The output folder is built in a sibling temp folder and swapped in with one rename, so a crash
never leaves a half-prepared dataset, and an existing dataset is replaced only when asked.
The same inputs and seed give byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from elixir_coder.corpus import tokenized
from elixir_coder.corpus.records import ingest_source_dir, read_jsonl, validate_record
from elixir_coder.corpus.tokenizer import BOS, EOS, SEP, SPECIAL_TOKENS, special_ids, train_tokenizer
from elixir_coder.errors import DataError
from elixir_coder.io import default_mode, fsync_dir
from elixir_coder.labels import GENERATION_TASKS, QUALITY_LABELS, SECURITY_LABELS, TASKS

SPLITS = ("train", "val", "test")


def recipe(
    *, jsonl: str | None, source_dir: str | None, vocab_size: int, val_fraction: float, seed: int,
    demo_modules: int, max_sample_tokens: int, test_fraction: float = 0.1,
) -> dict:
    """Everything that determines the prepared files; stored in meta.json to detect stale data."""
    if jsonl and source_dir:
        raise DataError("set only one of data.jsonl and data.source_dir")
    if jsonl:
        source = {"kind": "jsonl", "path": str(Path(jsonl).resolve())}
    elif source_dir:
        source = {"kind": "source_dir", "path": str(Path(source_dir).resolve())}
    else:
        source = {"kind": "demo", "modules": demo_modules}
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"data.val_fraction={val_fraction}: must be between 0 and 1")
    if not 0.0 <= test_fraction < 1.0 - val_fraction:
        raise DataError(f"data.test_fraction={test_fraction}: must be at least 0 and below 1 - data.val_fraction")
    if vocab_size < len(SPECIAL_TOKENS) + 256:
        raise DataError(f"data.vocab_size={vocab_size}: must be at least {len(SPECIAL_TOKENS) + 256} (bytes + special tokens)")
    return {
        "source": source, "vocab_size": vocab_size, "val_fraction": val_fraction,
        "test_fraction": test_fraction, "seed": seed,
        "max_sample_tokens": max_sample_tokens,
    }


def load_records(rec: dict) -> list[dict]:
    source = rec["source"]
    if source["kind"] == "jsonl":
        return read_jsonl(source["path"])
    if source["kind"] == "source_dir":
        return ingest_source_dir(source["path"])
    from elixir_coder.corpus.demo import generate_modules, generate_records
    from elixir_coder.corpus.demo.labelled import labelled_records
    from elixir_coder.corpus.demo.routers import routers

    modules = generate_modules(rec["seed"], source["modules"])
    records = generate_records(rec["seed"], source["modules"]) + routers(modules)
    records += labelled_records(modules, rec["seed"])
    return [validate_record(r, f"demo record {i}") for i, r in enumerate(records)]


def _split_of(record: dict, i: int, seed: int, val_fraction: float, test_fraction: float = 0.0) -> str:
    """Split by source file, so near-duplicate records of one module never straddle two splits.
    The test share sits right after the val share: changing it never moves a module into val."""
    key = record.get("source") or f"record-{i}"
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "little") / 2**64
    return "val" if u < val_fraction else "test" if u < val_fraction + test_fraction else "train"


def _label_bits(labels: list[str], vocab: tuple[str, ...]) -> int:
    bits = 0
    for label in labels:
        bits |= 1 << vocab.index(label)
    return bits


def encode_records(records: list[dict], tok, max_sample_tokens: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Token ids per sample ([bos, task, prompt..., sep, completion..., eos]) and their index rows."""
    ids = special_ids(tok)
    gen = [r for r in records if r["task"] in GENERATION_TASKS]
    prompts = tok.encode_batch([r["prompt"] for r in gen], add_special_tokens=False)
    completions = tok.encode_batch([r["completion"] for r in gen], add_special_tokens=False)
    texts = tok.encode_batch([r["text"] for r in records if r["task"] not in GENERATION_TASKS], add_special_tokens=False)
    gen_it, text_it = iter(zip(prompts, completions)), iter(texts)
    samples, rows = [], np.zeros(len(records), dtype=tokenized.INDEX_DTYPE)
    offset = 0
    for i, r in enumerate(records):
        head = [ids[BOS], ids[f"<task:{r['task']}>"]]
        if r["task"] in GENERATION_TASKS:
            prompt, completion = next(gen_it)
            body = head + prompt.ids + [ids[SEP]]
            prompt_len = len(body)
            body += completion.ids + [ids[EOS]]
        else:
            body = head + next(text_it).ids + [ids[EOS]]
            prompt_len = len(body)  # classified from the pooled representation, no LM loss
        body = body[:max_sample_tokens]
        arr = np.asarray(body, dtype=np.int64)
        rows[i] = (
            offset, len(arr), min(prompt_len, len(arr)), TASKS.index(r["task"]), 0, 0,
            _label_bits(r.get("labels", []), QUALITY_LABELS) if r["task"] == "quality" else 0,
            _label_bits(r.get("labels", []), SECURITY_LABELS) if r["task"] == "security" else 0,
        )
        samples.append(arr)
        offset += len(arr)
    return samples, rows


def _write_dataset(out: Path, rec: dict, records: list[dict]) -> dict:
    splits = {s: [] for s in SPLITS if s != "test" or rec.get("test_fraction", 0.0) > 0}
    for i, r in enumerate(records):
        splits[_split_of(r, i, rec["seed"], rec["val_fraction"], rec.get("test_fraction", 0.0))].append(r)
    for split, rs in splits.items():
        if not rs:
            raise DataError(
                f"the {split!r} split would be empty ({len(records)} records from {len(set(r.get('source') for r in records))} "
                f"sources); give the corpus more files or change data.{'test' if split == 'test' else 'val'}_fraction"
            )
    # The tokenizer sees only training text, so validation measures real generalisation.
    train_text = [r.get("text") or (r["prompt"] + r["completion"]) for r in splits["train"]]
    tok = train_tokenizer(train_text, rec["vocab_size"])
    tok.save(str(out / "tokenizer.json"))
    vocab_size = tok.get_vocab_size()
    dtype = tokenized.token_dtype(vocab_size)
    split_meta = {}
    for split, rs in splits.items():
        samples, index = encode_records(rs, tok, rec["max_sample_tokens"])
        split_meta[split] = tokenized.write_split(out, split, samples, index, dtype)
        split_meta[split]["tasks"] = {t: int((index["task"] == k).sum()) for k, t in enumerate(TASKS)}
    meta = {
        "format": "elixir-coder-tokenized",
        "version": tokenized.FORMAT_VERSION,
        "dtype": dtype.name,
        "vocab_size": vocab_size,
        "special_tokens": special_ids(tok),
        "tasks": list(TASKS),
        "quality_labels": list(QUALITY_LABELS),
        "security_labels": list(SECURITY_LABELS),
        "splits": split_meta,
        "tokenizer": "tokenizer.json",
        "recipe": rec,
    }
    tokenized.write_meta(out, meta)
    return meta


def prepare(data_dir: str | os.PathLike, rec: dict, *, overwrite: bool = False) -> dict:
    """Build the dataset in a temp folder beside ``data_dir`` and swap it in atomically."""
    data_dir = Path(data_dir)
    if data_dir.exists() and not overwrite and any(data_dir.iterdir()):
        raise DataError(f"{data_dir}: already holds files; pass data.overwrite=true to replace them, or pick another data.data_dir")
    records = load_records(rec)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}.", dir=data_dir.parent))
    os.chmod(tmp, default_mode(directory=True))
    try:
        meta = _write_dataset(tmp, rec, records)
        old = None
        if data_dir.exists():
            old = data_dir.with_name(f".{data_dir.name}.old-{os.getpid()}")
            os.replace(data_dir, old)
        os.replace(tmp, data_dir)
        fsync_dir(data_dir.parent)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def ensure_prepared(data_dir: str | os.PathLike, rec: dict, *, overwrite: bool = False, log: Callable[[str], None] = print) -> dict:
    """Return the dataset's meta, preparing it first when missing (one line says so)."""
    data_dir = Path(data_dir)
    if (data_dir / "meta.json").is_file():
        meta = tokenized.read_meta(data_dir)
        if meta.get("recipe") == rec and not overwrite:
            return meta
        if not overwrite:
            raise DataError(
                f"{data_dir} was prepared from {json.dumps(meta.get('recipe'), sort_keys=True)}, "
                f"but the config asks for {json.dumps(rec, sort_keys=True)}; pass data.overwrite=true to "
                "re-prepare it, or set data.data_dir to another folder"
            )
    what = {"demo": "the embedded demo corpus", "jsonl": "data.jsonl", "source_dir": "data.source_dir"}[rec["source"]["kind"]]
    log(f"Preparing the tokenized corpus from {what} in {data_dir} ...")
    return prepare(data_dir, rec, overwrite=overwrite)
