"""Where the Hydra config tree lives, and turning config sections into objects.

``conf/`` sits at the top of the repository; a built wheel carries a copy inside the package.
Look inside the package first (wheel), then beside ``src/`` (clone or editable install).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf


def conf_dir() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"config tree not found next to {here} (expected conf/config.yaml)")


def to_plain(cfg: DictConfig) -> dict:
    """A resolved, plain-Python copy (safe to store in checkpoints and logs)."""
    return OmegaConf.to_container(cfg, resolve=True)
