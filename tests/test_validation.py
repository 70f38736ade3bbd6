"""The config domain table accepts every shipped config: validation must never refuse a good run."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from elixir_coder.config import conf_dir
from elixir_coder.validation import DOMAINS, problems

SHIPPED = [
    [], ["~experiment"], ["task=multitask", "loss=gradnorm", "curriculum=tiered"], ["model=hf", "model.path=x"],
    ["model=base"], ["model=small", "loss=uncertainty"], ["loss=variance", "curriculum=phased"], ["trainer=debug"],
    ["trainer=ddp_cpu"], ["task=quality"], ["checkpoint_every_n_steps=5", "callbacks.monitor.prometheus_port=0"],
]


@pytest.mark.parametrize("overrides", SHIPPED, ids=lambda o: " ".join(o) or "defaults")
def test_shipped_configs_pass(overrides):
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    assert problems(cfg) == []


def test_every_table_key_exists_in_some_shipped_config():
    """A key misspelt in the table would silently check nothing."""
    seen = set()
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        for overrides in SHIPPED + [["loss=gradnorm"], ["loss=uncertainty"], ["loss=variance"]]:
            cfg = compose("config", overrides=overrides)
            for key in DOMAINS:
                if OmegaConf.select(cfg, key.removesuffix(".*"), default="<absent>") != "<absent>":
                    seen.add(key)
    assert sorted(set(DOMAINS) - seen) == []
