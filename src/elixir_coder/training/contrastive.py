"""Contrastive training (spec 4.3.4-4.3.5): batches of anchors, positives and negatives drawn
from the pair files ``corpus.pairs`` writes, tokenized beside the main stream, and the rule-tier
curriculum over them. InfoNCE and the beta rule live in ``training.loss``/``training.module``.
"""

from __future__ import annotations

import logging
import random

import lightning as L
import torch

from elixir_coder.corpus.pairs import rule_difficulty

__all__ = ["PairBatches", "PairLoader", "RuleTiers", "active_tiers", "batch_sampler", "read_pairs"]


def active_tiers(epoch: int, epochs_per_tier: int, max_tier: int = 4) -> list[int]:
    """Spec 4.3.5.3-5: tier 1 first, one more tier every ``epochs_per_tier`` epochs (1-based
    epochs), earlier tiers kept in the mix (expanding window)."""
    current = min(max_tier, 1 + (max(epoch, 1) - 1) // max(epochs_per_tier, 1))
    return list(range(1, current + 1))


class PairBatches:
    """Spec 4.3.4 (``batch_sampler``): batches of anchors (clean modules), positives (another view
    of the same anchor) and negatives (violating variants), rule types balanced.

    ``pairs`` are uniform records ``{anchor, positive, negative, rule}``. Each batch takes
    ``batch_size`` distinct anchors; each anchor gets ``negatives`` negatives, preferring its own
    variants (hard negatives) and always the least-used rule among them, so every rule type shows
    up about equally often. Only rules of ``tiers`` are drawn (the rule-tier curriculum).
    Deterministic from ``seed`` and the epoch. Iteration yields lists of
    ``(anchor, positive, [negatives], [rules])``; :meth:`tensors` tokenizes one.
    """

    def __init__(self, pairs: list[dict], batch_size: int = 4, negatives: int = 3, seed: int = 0):
        self.pairs, self.batch_size, self.negatives, self.seed = pairs, batch_size, negatives, seed
        self.epoch = 0
        self.tiers: list[int] = [1, 2, 3, 4]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_tiers(self, tiers) -> None:
        self.tiers = list(tiers)

    def _by_anchor(self) -> dict[str, list[dict]]:
        groups: dict[str, list[dict]] = {}
        for p in self.pairs:
            if rule_difficulty(p["rule"]) in self.tiers:
                groups.setdefault(p["anchor"], []).append(p)
        return groups

    def __len__(self) -> int:
        return max(1, len(self._by_anchor()) // self.batch_size)

    def __iter__(self):
        groups = self._by_anchor()
        if not groups:
            return
        rng = random.Random(f"{self.seed}:{self.epoch}")
        anchors = sorted(groups)
        rng.shuffle(anchors)
        used: dict[str, int] = {}
        everything = [p for a in anchors for p in groups[a]]
        for start in range(0, max(len(anchors) - self.batch_size + 1, 1), self.batch_size):
            batch = []
            for anchor in anchors[start : start + self.batch_size]:
                own = list(groups[anchor])
                rng.shuffle(own)
                chosen: list[dict] = []
                while len(chosen) < self.negatives:
                    pool = [p for p in own if p not in chosen] or [p for p in everything if p["anchor"] != anchor and p not in chosen]
                    if not pool:
                        break
                    pick = min(pool, key=lambda p: (used.get(p["rule"], 0), rng.random()))
                    used[pick["rule"]] = used.get(pick["rule"], 0) + 1
                    chosen.append(pick)
                batch.append((anchor, own[0]["positive"], [p["negative"] for p in chosen], [p["rule"] for p in chosen]))
            yield batch

    @staticmethod
    def tensors(batch, encode, max_len: int, pad_id: int) -> dict:
        """Rows: all anchors, then all positives, then each anchor's negatives; padded to the
        longest row (capped at ``max_len``), in the layout the backbone takes."""
        texts = [a for a, _, _, _ in batch] + [p for _, p, _, _ in batch] + [n for _, _, negs, _ in batch for n in negs]
        rows = [encode(t)[:max_len] for t in texts]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        seg = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            seg[i, : len(r)] = 1
        pos = torch.arange(width).expand(len(rows), width) * seg
        return {"input_ids": ids, "segment_ids": seg, "position_ids": pos, "n_anchors": len(batch),
                "n_negatives": len(batch[0][2]), "rules": [r for _, _, _, rules in batch for r in rules]}


def batch_sampler(pairs: list[dict], batch_size: int = 4, negatives: int = 3, seed: int = 0) -> PairBatches:
    """Spec 4.3.4.1: the contrastive batch sampler over quality and security pair records."""
    uniform = [
        {"anchor": p.get("clean_code", p.get("secure_code")), "positive": p["positive_code"],
         "negative": p.get("violating_code", p.get("vulnerable_code")), "rule": p.get("rule", p.get("sobelow_check"))}
        for p in pairs
    ]
    return PairBatches(uniform, batch_size, negatives, seed)


def read_pairs(path) -> list[dict]:
    from pathlib import Path

    from elixir_coder.corpus.records import iter_jsonl
    from elixir_coder.errors import DataError

    if not Path(path).is_file():
        raise DataError(f"{path}: no contrastive pairs; run `elixir-data pairs` (training with use_contrastive=true does it)")
    return [obj for _, obj in iter_jsonl(path)]


class PairLoader:
    """Tokenized contrastive batches beside the main stream (Lightning combines the two).

    Epochs and tiers come from the trainer (``sampler.set_epoch``) and the tier curriculum
    (``set_tiers``); anchors are encoded with the corpus tokenizer as quality samples.
    """

    def __init__(self, batches: PairBatches, tokenizer, bos: int, task_token: int, eos: int, pad_id: int, max_len: int):
        self.sampler, self.tokenizer = batches, tokenizer
        self.head, self.eos, self.pad_id, self.max_len = [bos, task_token], eos, pad_id, max_len
        self._cache: dict[str, list[int]] = {}
        # Main-stream batches already trained on in a resumed epoch: the pairs cycle beside them
        # one per batch, so the next pass starts at that position modulo their length.
        self.skip_once = 0

    def encode(self, text: str) -> list[int]:
        if text not in self._cache:
            self._cache[text] = self.head + self.tokenizer.encode(text, add_special_tokens=False).ids + [self.eos]
        return self._cache[text]

    def set_tiers(self, tiers) -> None:
        self.sampler.set_tiers(tiers)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        skip, self.skip_once = self.skip_once % max(len(self), 1), 0
        for i, batch in enumerate(self.sampler):
            if i >= skip:
                yield PairBatches.tensors(batch, self.encode, self.max_len, self.pad_id)


class RuleTiers(L.Callback):
    """Spec 4.3.5.3-5: the contrastive pairs of tier 1 first, one more tier every
    ``epochs_per_tier`` epochs (times ``epoch_scale``, at least 1), earlier tiers kept (expanding
    window). A no-op unless the datamodule has contrastive pairs. The next epoch's tiers are
    set before Lightning sizes the pair loader for it; the current tier is logged as
    ``contrastive/tier`` and saved in checkpoints."""

    def __init__(self, epochs_per_tier: int = 10, epoch_scale: float = 1.0):
        super().__init__()
        self.epochs_per_tier = max(1, round(epochs_per_tier * epoch_scale))
        self.tier = 0

    @staticmethod
    def _active(trainer: L.Trainer) -> bool:
        dm = trainer.datamodule
        return dm is not None and getattr(dm, "contrastive", None) is not None

    def _apply(self, trainer: L.Trainer, epoch: int) -> list[int]:
        tiers = active_tiers(epoch, self.epochs_per_tier)
        if self._active(trainer):
            trainer.datamodule.pairs_loader().set_tiers(tiers)
        return tiers

    def setup(self, trainer, pl_module, stage: str) -> None:
        self._apply(trainer, 1)

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        self._apply(trainer, int(checkpoint.get("epoch", 0)) + 1)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._apply(trainer, trainer.current_epoch + 2)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if not self._active(trainer):
            return
        tier = max(active_tiers(trainer.current_epoch + 1, self.epochs_per_tier))
        pl_module.log("contrastive/tier", float(tier), on_step=False, on_epoch=True)
        if tier != self.tier:
            message = f"contrastive: epoch {trainer.current_epoch + 1} -> rule tiers 1..{tier}"
            logging.getLogger("elixir_coder").info(message)
            for lg in trainer.loggers:
                if hasattr(lg.experiment, "add_text"):
                    lg.experiment.add_text("contrastive", message, global_step=trainer.global_step)
        self.tier = tier

    def state_dict(self) -> dict:
        return {"tier": self.tier}

    def load_state_dict(self, state: dict) -> None:
        self.tier = int(state.get("tier", 0))
