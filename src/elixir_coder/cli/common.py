"""What both CLIs share: the config is checked before anything runs, our errors become one clear
line on stderr and exit code 2, and library chatter that says nothing about the run is kept off
the console."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable
from typing import TypeVar

from hydra.errors import InstantiationException
from omegaconf import DictConfig

from elixir_coder.errors import ElixirCoderError
from elixir_coder.validation import check_config

T = TypeVar("T")


class _DropAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def quiet_libraries() -> None:
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropAdverts())
    # Deprecations inside Lightning itself, not actionable by our users.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated")


def our_error(exc: BaseException) -> ElixirCoderError | None:
    """Our error behind ``exc``: itself, or the cause Hydra wrapped while instantiating a config."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, ElixirCoderError):
            return exc
        if not isinstance(exc, InstantiationException):
            return None
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def run_reporting_errors(fn: Callable[[DictConfig], T], cfg: DictConfig) -> T:
    """Check ``cfg`` (validation.DOMAINS), then run ``fn(cfg)``; an ElixirCoderError from
    either (also one raised while Hydra instantiates) is one ``error:`` line and exit code 2."""
    quiet_libraries()
    try:
        check_config(cfg)
        return fn(cfg)
    except (ElixirCoderError, InstantiationException) as exc:
        ours = our_error(exc)
        if ours is None:
            raise
        print(f"error: {ours}", file=sys.stderr, flush=True)
        sys.exit(2)
