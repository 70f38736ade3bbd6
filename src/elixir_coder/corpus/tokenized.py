"""The tokenized dataset on disk: shards ``{split}-NNNNN.bin`` + ``.idx``, and ``meta.json``.

A split is one or more shards (``meta.json`` lists them in order); the loader reads them as one
dataset, so preparation can write them in parallel, on one machine or many. Each ``.bin`` holds
token ids as one flat little-endian array after a fixed header, so it can be memory-mapped and
never loaded whole. Each ``.idx`` holds one fixed-size record per sample (offset in its shard,
length, prompt length, task id, license id, source project id, quality and security label bits).
Readers check magic, version, sizes and id ranges before handing out a single sample, because a
silently corrupt corpus costs far more GPU time than the check.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from elixir_coder.errors import DataError
from elixir_coder.io import atomic_write, sha256_file

FORMAT_VERSION = 2
BIN_MAGIC = b"ECTOKBIN"
IDX_MAGIC = b"ECTOKIDX"
# magic, version, dtype itemsize, count, reserved
HEADER = struct.Struct("<8sIIQQ")
HEADER_SIZE = HEADER.size  # 32 bytes, keeps the arrays 8-byte aligned

INDEX_DTYPE = np.dtype(
    [
        ("offset", "<u8"),  # first token in the .bin array
        ("length", "<u4"),  # tokens in the sample, bos..eos
        ("prompt_len", "<u4"),  # tokens not trained on with the LM loss (bos, task, prompt, sep)
        ("task", "<u2"),
        ("license", "<u2"),  # index into meta["licenses"]
        ("source", "<u4"),  # index into meta["sources"] (the project the sample came from)
        ("quality", "<u8"),  # bit i set: QUALITY_LABELS[i] applies
        ("security", "<u8"),
    ]
)
TOKEN_DTYPES = {2: np.dtype("<u2"), 4: np.dtype("<u4")}


def token_dtype(vocab_size: int) -> np.dtype:
    return TOKEN_DTYPES[2] if vocab_size <= np.iinfo(np.uint16).max + 1 else TOKEN_DTYPES[4]


def write_shard(out_dir: Path, name: str, tokens: np.ndarray, index: np.ndarray, dtype: np.dtype) -> dict:
    """Write one shard (``{name}.bin`` + ``{name}.idx``) atomically; returns its entry for ``meta.json``."""
    bin_path, idx_path = out_dir / f"{name}.bin", out_dir / f"{name}.idx"
    tokens = np.ascontiguousarray(tokens, dtype=dtype)
    with atomic_write(bin_path) as fh:
        fh.write(HEADER.pack(BIN_MAGIC, FORMAT_VERSION, dtype.itemsize, tokens.size, 0))
        fh.write(memoryview(tokens).cast("B"))
    with atomic_write(idx_path) as fh:
        fh.write(HEADER.pack(IDX_MAGIC, FORMAT_VERSION, INDEX_DTYPE.itemsize, len(index), 0))
        fh.write(index.astype(INDEX_DTYPE).tobytes())
    return {
        "name": name,
        "samples": int(len(index)),
        "tokens": int(tokens.size),
        "bin_sha256": sha256_file(bin_path),
        "idx_sha256": sha256_file(idx_path),
    }


def write_split(out_dir: Path, split: str, samples: list[np.ndarray], index: np.ndarray, dtype: np.dtype) -> dict:
    """Write a small split held in memory as one shard; returns its entry for ``meta.json``."""
    if len(samples) != len(index):
        raise ValueError("one index record per sample")
    index = index.copy()
    index["offset"] = np.cumsum([0] + [len(s) for s in samples[:-1]]) if samples else []
    tokens = np.concatenate(samples) if samples else np.zeros(0, dtype)
    shard = write_shard(out_dir, f"{split}-00000", tokens, index, dtype)
    return {"samples": shard["samples"], "tokens": shard["tokens"], "shards": [shard]}


def write_meta(out_dir: Path, meta: dict) -> None:
    with atomic_write(out_dir / "meta.json", "w") as fh:
        json.dump(meta, fh, indent=2, sort_keys=True)
        fh.write("\n")


def read_meta(data_dir: str | os.PathLike) -> dict:
    path = Path(data_dir) / "meta.json"
    if not path.is_file():
        raise DataError(f"{path}: no tokenized dataset here; run `elixir-data prepare` (or `elixir-train`, which prepares it)")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); re-run `elixir-data prepare`") from exc
    if meta.get("version") != FORMAT_VERSION:
        raise DataError(
            f"{path}: format version {meta.get('version')!r}, this package reads version {FORMAT_VERSION}; "
            "re-run `elixir-data prepare data.overwrite=true`"
        )
    return meta


def _read_header(path: Path, magic: bytes, itemsize: int | None) -> tuple[int, int]:
    """Validate a file header; returns (itemsize, count)."""
    if not path.is_file():
        raise DataError(f"{path}: missing; run `elixir-data prepare`")
    size = path.stat().st_size
    if size < HEADER_SIZE:
        raise DataError(f"{path}: truncated ({size} bytes, shorter than the {HEADER_SIZE}-byte header); re-run `elixir-data prepare`")
    with open(path, "rb") as fh:
        got_magic, version, got_itemsize, count, _ = HEADER.unpack(fh.read(HEADER_SIZE))
    if got_magic != magic:
        raise DataError(f"{path}: not an elixir-coder {magic[-3:].decode().lower()} file (magic {got_magic!r}, expected {magic!r})")
    if version != FORMAT_VERSION:
        raise DataError(
            f"{path}: format version {version}, this package reads version {FORMAT_VERSION}; "
            "re-run `elixir-data prepare data.overwrite=true`"
        )
    if itemsize is not None and got_itemsize != itemsize:
        raise DataError(f"{path}: record size {got_itemsize}, expected {itemsize}")
    if got_itemsize not in (2, 4, INDEX_DTYPE.itemsize):
        raise DataError(f"{path}: unsupported item size {got_itemsize}")
    expected = HEADER_SIZE + count * got_itemsize
    if size != expected:
        raise DataError(
            f"{path}: size {size} bytes but the header promises {count} items = {expected} bytes "
            "(truncated or overwritten); re-run `elixir-data prepare data.overwrite=true`"
        )
    return got_itemsize, count


@dataclass
class SplitArrays:
    """The memory-mapped shards of one validated split, and its index with each sample's shard."""

    tokens: list[np.memmap]
    index: np.ndarray
    shard: np.ndarray  # per sample: which of ``tokens`` holds it


def _open_shard(data_dir: Path, name: str, vocab_size: int) -> tuple[np.memmap, np.ndarray]:
    bin_path, idx_path = data_dir / f"{name}.bin", data_dir / f"{name}.idx"
    itemsize, n_tokens = _read_header(bin_path, BIN_MAGIC, None)
    _, n_samples = _read_header(idx_path, IDX_MAGIC, INDEX_DTYPE.itemsize)
    tokens = np.memmap(bin_path, dtype=TOKEN_DTYPES[itemsize], mode="r", offset=HEADER_SIZE, shape=(n_tokens,)) if n_tokens else np.zeros(0, TOKEN_DTYPES[itemsize])
    index = np.fromfile(idx_path, dtype=INDEX_DTYPE, offset=HEADER_SIZE)
    ends = index["offset"] + index["length"]
    bad = np.flatnonzero(ends > n_tokens)
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{idx_path}: sample {i} ends at token {int(ends[i])}, past the end of {bin_path.name} "
            f"({n_tokens} tokens); re-run `elixir-data prepare data.overwrite=true`"
        )
    if np.any(index["prompt_len"] > index["length"]) or np.any(index["length"] == 0):
        raise DataError(f"{idx_path}: a sample has length 0 or a prompt longer than itself")
    if n_tokens:
        top = int(tokens.max())
        if top >= vocab_size:
            pos = int(np.argmax(tokens >= vocab_size))
            raise DataError(
                f"{bin_path}: token id {top} at position {pos} is >= the vocabulary size {vocab_size} in meta.json; "
                "the data and tokenizer do not match: re-run `elixir-data prepare data.overwrite=true`"
            )
    return tokens, index


def shard_names(meta: dict, split: str) -> list[str]:
    info = meta.get("splits", {}).get(split)
    if info is None:
        raise DataError(f"meta.json has no {split!r} split (it has: {', '.join(meta.get('splits', {})) or 'none'}); re-run `elixir-data prepare data.overwrite=true`")
    return [s["name"] for s in info["shards"]]


def open_split(data_dir: str | os.PathLike, split: str, vocab_size: int, meta: dict | None = None) -> SplitArrays:
    data_dir = Path(data_dir)
    meta = meta if meta is not None else read_meta(data_dir)
    tokens, indexes = [], []
    for name in shard_names(meta, split):
        t, i = _open_shard(data_dir, name, vocab_size)
        tokens.append(t)
        indexes.append(i)
    index = np.concatenate(indexes) if indexes else np.zeros(0, INDEX_DTYPE)
    if len(index) == 0:
        raise DataError(f"{data_dir}: the {split!r} split is empty; give the corpus more records or lower data.val_fraction")
    shard = np.repeat(np.arange(len(indexes), dtype=np.int32), [len(i) for i in indexes])
    return SplitArrays(tokens=tokens, index=index, shard=shard)


def verify_checksums(data_dir: str | os.PathLike, meta: dict) -> None:
    """Full-content check against meta.json (slow on big corpora, so not done on every open)."""
    data_dir = Path(data_dir)
    for split, info in meta["splits"].items():
        for shard in info["shards"]:
            for kind in ("bin", "idx"):
                path = data_dir / f"{shard['name']}.{kind}"
                if sha256_file(path) != shard[f"{kind}_sha256"]:
                    raise DataError(f"{path}: checksum does not match meta.json; the file changed after preparation")
