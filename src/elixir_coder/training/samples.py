"""What the model writes, while it trains: every N validation epochs a few fixed validation
prompts are completed greedily and logged to TensorBoard as text beside their references, with
the share of completions the real Elixir parser accepts as a scalar (``val/sample_parse_rate``).

A falling loss says little about whether the code parses; this shows it on the same curve.
"""

from __future__ import annotations

import time

import lightning as L
import numpy as np

from elixir_coder.labels import TASKS


class SampleCompletions(L.Callback):
    def __init__(self, every_n_val_epochs: int = 1, n_prompts: int = 4, max_new_tokens: int = 128,
                 task: str = "code_generation", stop_at_complete: bool = True, threads: int | None = 1):
        self.every, self.n_prompts, self.max_new_tokens = every_n_val_epochs, n_prompts, max_new_tokens
        self.threads = threads
        self.task, self.stop_at_complete = task, stop_at_complete
        self.val_epochs = 0
        self.seconds = 0.0  # total time spent here, to judge its cost against the run's
        self._prompts: list[tuple[list[int], list[int]]] | None = None
        self._tokenizer = None

    def _setup(self, trainer, model) -> None:
        """Fixed prompts: validation samples of the task, evenly spread, that leave room to generate."""
        from elixir_coder.corpus.tokenizer import load_tokenizer

        dm = trainer.datamodule
        ds = dm.loader("val").dataset
        limit = getattr(model, "max_len", None) or 1 << 30
        ok = np.flatnonzero((ds.task_ids == TASKS.index(self.task)) & (ds.prompt_lens + self.max_new_tokens <= limit))
        picked = ok[np.linspace(0, len(ok) - 1, min(self.n_prompts, len(ok))).round().astype(int)] if len(ok) else []
        self._prompts = []
        for i in picked:
            off, n, p = int(ds.offsets[i]), int(ds.lengths[i]), int(ds.prompt_lens[i])
            ids = np.asarray(ds.tokens[off:off + n], dtype=np.int64).tolist()
            self._prompts.append((ids[:p], ids[p:-1]))  # prompt up to <sep>; reference without <eos>
        self._tokenizer = load_tokenizer(dm.data_dir / dm.meta["tokenizer"])

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        self.val_epochs += 1
        if (self.val_epochs - 1) % self.every:
            return
        start = time.perf_counter()
        from elixir_coder.corpus.parser import string_to_quoted
        from elixir_coder.corpus.tokenizer import EOS, PAD
        from elixir_coder.model.generate import ElixirComplete, Sampling, cpu_threads, generate_ids, parses_in_context

        model = pl_module.model
        if self._prompts is None:
            self._setup(trainer, model)
        if not self._prompts:
            return
        tok = self._tokenizer
        texts = [tok.decode(p) for p, _ in self._prompts]  # special tokens dropped: the prompt text
        parse = lambda code: string_to_quoted(code).ok  # noqa: E731
        was_training = model.training
        model.eval()
        with cpu_threads(self.threads if pl_module.device.type == "cpu" else None):
            new = generate_ids(model, [p for p, _ in self._prompts], Sampling(temperature=0, max_new_tokens=self.max_new_tokens),
                               eos_id=tok.token_to_id(EOS), pad_id=tok.token_to_id(PAD),
                               stop=ElixirComplete(tok, texts, parse) if self.stop_at_complete else None)
        model.train(was_training)
        completions = [tok.decode(ids) for ids in new]
        parsed = [parses_in_context(t, c, parse) for t, c in zip(texts, completions)]
        pl_module.log("val/sample_parse_rate", sum(parsed) / len(parsed))
        for logger in trainer.loggers:
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_text"):
                for i, ((_, ref), text, completion, ok) in enumerate(zip(self._prompts, texts, completions, parsed)):
                    body = (f"**prompt**\n\n```elixir\n{text}\n```\n\n**completion** ({'parses' if ok else 'does not parse'})"
                            f"\n\n```elixir\n{completion}\n```\n\n**reference**\n\n```elixir\n{tok.decode(ref)}\n```")
                    experiment.add_text(f"samples/{i}", body, global_step=trainer.global_step)
        self.seconds += time.perf_counter() - start
