"""What both CLIs share: our errors become one clear line on stderr and a non-zero exit."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from elixir_coder.errors import ElixirCoderError

T = TypeVar("T")


def run_reporting_errors(fn: Callable[..., T], *args) -> T:
    try:
        return fn(*args)
    except ElixirCoderError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
