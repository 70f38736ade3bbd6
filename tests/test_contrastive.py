"""Contrastive training (spec 4.3): pair files, the pair sampler, rule tiers, beta, integration."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from elixir_coder.corpus.checks import detect_quality, detect_security
from elixir_coder.corpus.prepare import load_records
from elixir_coder.corpus.recipe import recipe
from elixir_coder.corpus.demo import generate_records
from elixir_coder.labels import QUALITY_LABELS, SECURITY_CWE
from elixir_coder.training import loop as training_loop
from elixir_coder.corpus.pairs import clean_sources, prepare_pairs, rule_difficulty
from elixir_coder.training.contrastive import active_tiers, batch_sampler
from elixir_coder.training.loss import ContrastiveBeta

needs_elixir = pytest.mark.skipif(shutil.which("elixir") is None, reason="install elixir: apt-get install -y elixir")


@pytest.fixture(scope="module")
def demo_pairs(tmp_path_factory):
    """The pair files `elixir-data pairs` writes for the demo corpus at its default settings, judged
    by the built-in detectors (the real tools' judgement is tested in test_pairs_judge.py)."""
    folder = tmp_path_factory.mktemp("pairs")
    records = load_records(recipe(jsonl=None, source_dir=None, vocab_size=8192, val_fraction=0.1, seed=0,
                                  demo_modules=320, max_sample_tokens=2048))
    quality, security = prepare_pairs(records, folder / "q.jsonl", folder / "s.jsonl", seed=0, variants=1,
                                      max_anchors=64, judge="builtin", log=lambda _: None)
    return folder, quality, security


@pytest.mark.elixir
@pytest.mark.slow
@needs_elixir
def test_demo_pairs_parse_and_carry_exactly_their_rule(demo_pairs):
    from elixir_coder.corpus.parser import ElixirParser

    folder, quality, security = demo_pairs
    assert [json.loads(line) for line in open(folder / "q.jsonl")] == quality
    # DuplicatedCode and AliasUsage (names of more than two parts, shipped .credo.exs) have sites in
    # few demo modules; 64 anchors may hold none of them
    rare = {"Credo.Check.Design.DuplicatedCode", "Credo.Check.Design.AliasUsage"}
    assert {p["rule"] for p in quality} >= set(QUALITY_LABELS) - rare
    assert {p["sobelow_check"] for p in security} == set(SECURITY_CWE)
    assert all(p["cwe_id"] == SECURITY_CWE[p["sobelow_check"]] for p in security)
    assert all(p["tier"] == rule_difficulty(p["rule"]) for p in quality)
    snippets = [p["violating_code"] for p in quality] + [p["vulnerable_code"] for p in security]
    snippets += list({p["positive_code"] for p in quality + security})
    with ElixirParser(backend="elixir") as parser:
        results = parser.parse_many(snippets)
    assert all(r.ok for r in results), [r for r in results if not r.ok][:3]
    for p in quality:
        assert p["rule"] in detect_quality(p["violating_code"]) and not detect_quality(p["clean_code"])
    for p in security:
        assert p["sobelow_check"] in detect_security(p["vulnerable_code"]) and not detect_security(p["secure_code"])
    for p in quality + security:  # positives stay clean
        assert not detect_quality(p["positive_code"]) and not detect_security(p["positive_code"])


def fake_pairs(anchors=6, rules=("Credo.Check.Warning.IoInspect", "Credo.Check.Refactor.Nesting", "Sobelow.SQL.Query")):
    return [
        {"clean_code": f"clean {a}", "positive_code": f"view {a}", "violating_code": f"bad {a} {r}", "rule": r}
        for a in range(anchors) for r in rules
    ]


def test_sampler_pairs_each_anchor_with_its_view_and_balanced_negatives():
    sampler = batch_sampler(fake_pairs(), batch_size=3, negatives=2, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 2
    rules = Counter()
    for batch in batches:
        assert len({a for a, _, _, _ in batch}) == 3  # distinct anchors
        for anchor, positive, negatives, picked in batch:
            n = anchor.split()[1]
            assert positive == f"view {n}" and len(negatives) == 2
            assert all(neg.startswith(f"bad {n} ") for neg in negatives)  # hard negatives of its own
            rules.update(picked)
    assert max(rules.values()) - min(rules.values()) <= 1  # rule types balanced


def test_sampler_draws_only_active_tiers():
    sampler = batch_sampler(fake_pairs(), batch_size=2, negatives=1)
    sampler.set_tiers([1])
    tiers = {rule_difficulty(r) for batch in sampler for *_, picked in batch for r in picked}
    assert tiers == {1}


def test_tiers_open_in_order_and_keep_earlier_ones():
    assert [active_tiers(e, 2) for e in (1, 2, 3, 5, 7, 20)] == [[1], [1], [1, 2], [1, 2, 3], [1, 2, 3, 4], [1, 2, 3, 4]]
    assert rule_difficulty("Credo.Check.Refactor.Nesting") == 3 and rule_difficulty("Sobelow.SQL.Query") == 1


def test_beta_rule_moves_toward_the_quality_target_within_bounds():
    beta = ContrastiveBeta(beta=0.3, beta_min=0.05, beta_max=1.0, target=0.8, gain=0.5)
    assert beta.update({}) == 0.3  # no metric yet: unchanged
    up = beta.update({"val/quality/f1": 0.2})
    assert up > 0.3
    for _ in range(50):
        beta.update({"val/quality/f1": 0.0})
    assert beta.beta == 1.0  # capped
    for _ in range(200):
        beta.update({"val/quality/f1": 1.0})
    assert beta.beta == 0.05  # floored
    with pytest.raises(ValueError, match="must lie in"):
        ContrastiveBeta(beta=2.0)


def test_clean_sources_are_whole_modules():
    records = generate_records(0, 10)
    sources = clean_sources(records)
    assert len(sources) == 10 and all(code.startswith("defmodule") for _, code in sources)
    spread = clean_sources(generate_records(0, 40), limit=8)
    assert len(spread) == 8 and spread[-1][0] != clean_sources(generate_records(0, 40))[7][0]


@pytest.mark.slow
def test_use_contrastive_trains_and_logs(make_cfg, tmp_path, capsys):
    cfg = make_cfg("task=multitask", "use_contrastive=true", "contrastive.max_anchors=20", "contrastive.epochs_per_tier=1",
                   "trainer.max_epochs=2", "epoch_scale=1.0", f"paths.data_dir={tmp_path}/data",
                   "callbacks.console_table.every_n_steps=4")
    loop = training_loop.init(cfg)
    loop.trainer.fit(loop.module, datamodule=loop.datamodule)
    lines = capsys.readouterr().out.splitlines()
    header = next(line.split("|") for line in lines if line.strip().startswith("step |"))
    rate = [c.strip() for c in header].index("tok/s")
    rows = [line.split("|") for line in lines if line.strip()[:1].isdigit() and len(line.split("|")) == len(header)]
    assert rows and all(float(row[rate].replace(",", "")) > 0 for row in rows)  # the main stream's tokens, pairs riding along
    assert Path(cfg.contrastive.pairs_path).is_file() and Path(cfg.contrastive.security_path).is_file()
    events = next((Path(cfg.paths.output_dir) / "tensorboard").glob("events.out.tfevents.*"))
    acc = EventAccumulator(str(events.parent))
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    assert {"train/contrastive/loss", "train/contrastive/beta", "contrastive/tier"} <= scalars
    assert [e.value for e in acc.Scalars("contrastive/tier")] == [1.0, 2.0]


@pytest.mark.elixir
@needs_elixir
def test_use_contrastive_switches_the_infonce_term(make_cfg):
    """On: the loss is alpha * primary + beta * InfoNCE of the pair batch. Off: no pair stream,
    and a real pair batch riding along changes nothing."""
    on = training_loop.init(make_cfg("task=multitask", "use_contrastive=true", "contrastive.max_anchors=8"))
    dm, module = on.datamodule, on.module
    assert isinstance(dm.train_dataloader(), dict)
    batch = dm.on_after_batch_transfer(dm.on_before_batch_transfer(next(iter(dm.loader("train"))), 0), 0)
    pairs = next(iter(dm.pairs_loader()))
    plain, *_ = module.training_loss(batch)
    total, *_, extra = module.training_loss({"main": batch, "pairs": pairs})
    c = module.contrastive
    assert extra["train/contrastive/loss"] > 0
    assert torch.allclose(total, c["alpha"] * plain + module.beta.beta * extra["train/contrastive/loss"])
    assert not torch.allclose(total, plain)

    off = training_loop.init(make_cfg("task=multitask"))
    assert off.module.contrastive is None and not isinstance(off.datamodule.train_dataloader(), dict)
    plain, *_ = off.module.training_loss(batch)
    with_pairs, *_, extra = off.module.training_loss({"main": batch, "pairs": pairs})
    assert torch.equal(plain, with_pairs) and extra == {}
