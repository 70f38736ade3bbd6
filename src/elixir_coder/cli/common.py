"""What both CLIs share: our errors become one clear line on stderr and a non-zero exit, and
library chatter that says nothing about the run is kept off the console."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable
from typing import TypeVar

from elixir_coder.errors import ElixirCoderError

T = TypeVar("T")


class _DropAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def quiet_libraries() -> None:
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropAdverts())
    # Deprecations inside Lightning itself, not actionable by our users.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated")


def run_reporting_errors(fn: Callable[..., T], *args) -> T:
    quiet_libraries()
    try:
        return fn(*args)
    except ElixirCoderError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
