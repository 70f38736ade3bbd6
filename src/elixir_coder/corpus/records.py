"""Corpus records: the JSONL schema, its validation, and ingestion of a tree of Elixir files.

A record is one line of JSON: ``task``, ``prompt`` + ``completion`` for generation tasks, or
``text`` + ``labels`` for classification tasks, an optional ``source`` (the file it came
from, used to keep all records of one file in the same split) and an optional ``kind`` (what a
mined record was made from, see ``corpus/mining.py``). Other keys are kept as they are.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from elixir_coder.errors import DataError
from elixir_coder.labels import GENERATION_TASKS, QUALITY_LABELS, SECURITY_LABELS, TASKS

LABELS_OF = {"quality": frozenset(QUALITY_LABELS), "security": frozenset(SECURITY_LABELS)}


def validate_record(record: object, where: str) -> dict:
    """Return the record if it follows the schema; raise a DataError naming ``where`` otherwise."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    task = record.get("task")
    if task not in TASKS:
        raise DataError(f"{where}: unknown task {task!r}; tasks are: {', '.join(TASKS)}")
    if task in GENERATION_TASKS:
        for key in ("prompt", "completion"):
            if not isinstance(record.get(key), str):
                raise DataError(f"{where}: a {task} record needs a string {key!r}")
        if not record["completion"]:
            raise DataError(f"{where}: empty 'completion'")
    else:
        if not isinstance(record.get("text"), str) or not record["text"]:
            raise DataError(f"{where}: a {task} record needs a non-empty string 'text'")
        labels = record.get("labels")
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise DataError(f"{where}: a {task} record needs 'labels', a list of check names")
        unknown = [x for x in labels if x not in LABELS_OF[task]]
        if unknown:
            raise DataError(f"{where}: unknown {task} label {unknown[0]!r}; known: {', '.join(sorted(LABELS_OF[task]))}")
    for key in ("source", "kind"):  # kind: what a mined record came from (counted in the report)
        if key in record and not isinstance(record[key], str):
            raise DataError(f"{where}: {key!r} must be a string")
    return record


def _lone_surrogate(obj: object) -> str | None:
    """The first string in ``obj`` holding a lone UTF-16 surrogate (``"\\ud800"`` parses, but no
    tokenizer or file can encode it), or None."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                return f"lone surrogate \\u{ord(item[exc.start]):04x} at character {exc.start}"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def iter_jsonl(path: str | os.PathLike, what: str = "file") -> Iterator[tuple[str, object]]:
    """``(file:line, object)`` for every non-blank line; a malformed line raises naming both.

    Malformed means: not UTF-8, not JSON, a number Python refuses to convert (more than 4,300
    digits), nesting deeper than the parser's recursion limit, or a string holding a lone surrogate.
    """
    for where, obj, _ in iter_jsonl_from(path, what):
        yield where, obj


def iter_jsonl_from(path: str | os.PathLike, what: str = "file", offset: int = 0, first_line: int = 1) -> Iterator[tuple[str, object, int]]:
    """:func:`iter_jsonl` from byte ``offset`` (the start of line ``first_line``), also yielding
    each line's byte offset: a worker can resume a large file where its chunk starts."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such {what}")
    with open(path, "rb") as fh:
        fh.seek(offset)
        for lineno, raw in enumerate(fh, first_line):
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{where}: not UTF-8 ({exc.reason}: byte 0x{raw[exc.start]:02x} at column {exc.start + 1})") from exc
            at, offset = offset, offset + len(raw)
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: malformed JSON ({exc.msg} at column {exc.colno})") from exc
            except ValueError as exc:  # Python's limit on integer digits
                raise DataError(f"{where}: malformed JSON (a number longer than {sys.get_int_max_str_digits()} digits)") from exc
            except RecursionError as exc:
                raise DataError(f"{where}: malformed JSON (nested too deeply)") from exc
            if "\\u" in line.lower() and (bad := _lone_surrogate(obj)):
                raise DataError(f"{where}: invalid text ({bad}); write the characters as valid UTF-8")
            yield where, obj, at


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read and validate every line; the first bad line raises with ``file:line``."""
    records = [validate_record(obj, where) for where, obj in iter_jsonl(path, "file (data.jsonl)")]
    if not records:
        raise DataError(f"{path}: no records")
    return records


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> None:
    from elixir_coder.io import atomic_write

    with atomic_write(path, "w") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
