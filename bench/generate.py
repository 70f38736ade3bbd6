"""What generation and functional evaluation cost, each against a baseline in the same run:

1. tokens/s of KV-cached greedy generation against recomputing the whole sequence every step
   (the tiny model, 512 new tokens, batch 1 by default; the same prompts, the same tokens out);
2. ExUnit evaluations per second in the sandbox (namespaces, limits) against the same runner
   as a plain ``elixir`` process (``isolate=limits-only``), one at a time and two in parallel;
3. the training sample callback's time per validation epoch against a demo epoch's training
   time (32 steps of the demo config), to decide whether the demo keeps it on (<= 5%).

    python bench/generate.py [--new-tokens 512] [--repeats 2] [--batches 1 8] [--runs 12]

Every figure is a mean over the repeats (interleaved), never a best or a median.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from elixir_coder.config import conf_dir
from elixir_coder.model.generate import Sampling, cpu_threads, generate_ids
from elixir_coder.model.transformer import Transformer

PROGRAM = "defmodule Math do\n  def add(a, b), do: a + b\nend\n"
TESTS = 'defmodule MathTest do\n  use ExUnit.Case\n  test "adds" do\n    assert Math.add(1, 2) == 3\n  end\nend\n'


def generation(new_tokens: int, repeats: int, batches: list[int], threads: int) -> None:
    torch.manual_seed(0)
    # conf/model/tiny.yaml at the demo's vocabulary, with room for the prompt plus 512 new tokens.
    model = Transformer(vocab_size=8192, d_model=128, n_layers=4, n_heads=4, max_len=new_tokens + 64).eval()
    greedy = Sampling(temperature=0, max_new_tokens=new_tokens)
    for batch in batches:
        prompts = [list(range(10 + i, 42 + i)) for i in range(batch)]  # 32-token prompts
        times = {True: [], False: []}
        cpu = {True: [], False: []}
        outputs = {}
        for _ in range(repeats):
            for cached in (True, False):
                t0, c0 = time.perf_counter(), time.process_time()
                with cpu_threads(threads):  # both sides on the same threads (generation.threads)
                    outputs[cached] = generate_ids(model, prompts, greedy, eos_id=-1, pad_id=0, use_cache=cached)
                times[cached].append(time.perf_counter() - t0)
                cpu[cached].append(time.process_time() - c0)
        assert outputs[True] == outputs[False], "cached and recomputed generation disagree"
        tokens = sum(len(o) for o in outputs[True])
        rate = {c: tokens / statistics.mean(t) for c, t in times.items()}
        per_cpu = {c: tokens / statistics.mean(t) for c, t in cpu.items()}
        print(f"generation, batch {batch}, {new_tokens} new tokens, {threads} thread(s): cached {rate[True]:,.0f} tokens/s, "
              f"recompute {rate[False]:,.0f} tokens/s, cached / recompute = {rate[True] / rate[False]:.1f}x wall time "
              f"({per_cpu[True] / per_cpu[False]:.1f}x in CPU time: {per_cpu[True]:,.0f} vs {per_cpu[False]:,.0f} tokens per CPU-second)")


def exunit(runs: int, repeats: int) -> None:
    from elixir_coder.evaluation.sandbox import Sandbox

    boxes = {"sandbox": Sandbox(), "plain elixir": Sandbox(isolate="limits-only")}
    rates: dict[tuple[str, int], list[float]] = {}
    for _ in range(repeats):
        for name, box in boxes.items():
            for workers in (1, 2):
                t0 = time.perf_counter()
                with ThreadPoolExecutor(workers) as pool:
                    results = list(pool.map(lambda _: box.run(PROGRAM, TESTS), range(runs)))
                assert all(r.passed for r in results), results
                rates.setdefault((name, workers), []).append(runs / (time.perf_counter() - t0))
    isolation = boxes["sandbox"].isolation
    for workers in (1, 2):
        s, p = statistics.mean(rates[("sandbox", workers)]), statistics.mean(rates[("plain elixir", workers)])
        print(f"ExUnit runs, {workers} at a time: sandbox ({isolation}) {s:.2f}/s, plain elixir {p:.2f}/s, "
              f"sandbox / plain = {s / p:.2f}x")


def sample_callback(steps: int) -> None:
    """The callback's time per validation epoch against one demo epoch (32 steps) of training."""
    from common import StepTimer

    from elixir_coder.training import loop as training_loop
    from elixir_coder.training.samples import SampleCompletions

    with tempfile.TemporaryDirectory() as tmp:
        overrides = ["trainer.max_epochs=1", "trainer.limit_val_batches=1", "validate_before_fit=false",
                     "~callbacks.model_checkpoint", "~callbacks.progress_bar"]  # demo config, data in ./data
        with initialize_config_dir(str(conf_dir()), version_base="1.3"):
            cfg = compose("config", overrides=overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        demo_batches = cfg.trainer.limit_train_batches  # a demo epoch
        with open_dict(cfg):
            cfg.paths.output_dir = tmp
            cfg.trainer.limit_train_batches = steps + 2  # a short epoch, then one validation with the callback
        loop = training_loop.init(cfg)
        timer = StepTimer(warmup=2)
        loop.trainer.callbacks.append(timer)
        loop.trainer.fit(loop.module, datamodule=loop.datamodule)
        callback = next(c for c in loop.trainer.callbacks if isinstance(c, SampleCompletions))
        epoch = statistics.mean(timer.times) * demo_batches
        per_val = callback.seconds / max(callback.val_epochs, 1)
        print(f"sample callback: {per_val:.2f} s per validation epoch ({callback.n_prompts} prompts, up to "
              f"{callback.max_new_tokens} tokens, untrained model: no early <eos>); demo epoch "
              f"{demo_batches} steps x {statistics.mean(timer.times):.3f} s = {epoch:.1f} s; "
              f"cost {100 * per_val / epoch:.1f}% of training time")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--new-tokens", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batches", type=int, nargs="+", default=[1], help="generation batch sizes")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads for both sides (generation.threads)")
    ap.add_argument("--runs", type=int, default=12, help="ExUnit runs per measurement")
    ap.add_argument("--steps", type=int, default=12, help="training steps timed for the callback's share")
    ap.add_argument("--only", choices=["generation", "exunit", "callback"], default=None)
    args = ap.parse_args()
    if args.only in (None, "generation"):
        generation(args.new_tokens, args.repeats, args.batches, args.threads)
    if args.only in (None, "exunit"):
        exunit(args.runs, args.repeats)
    if args.only in (None, "callback"):
        sample_callback(args.steps)


if __name__ == "__main__":
    main()
