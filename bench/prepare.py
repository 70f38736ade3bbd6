"""Corpus preparation throughput (source MB/s) and peak memory, at 1x and 10x corpus size.

    python bench/prepare.py [--source ../shared/corpora/elixir] [--workers N] [--floor]
    python bench/prepare.py --against REV [--repeat 10]

Runs the real pipeline (``elixir_coder.corpus.prepare``: scan, parse, dedup, mine, tokenize,
shard) end to end in a child process per configuration, timing its wall clock and sampling the
resident memory of the whole process tree (workers and their Elixir parsers included) every
50 ms; the peak is the largest sum seen.

Configurations:
- ``1x``: the corpus with the default settings (exact + near dedup);
- ``1x, no dedup`` and ``10x, no dedup``: the corpus and ten copies of it (module names and
  paths renamed per copy); dedup is off in both so the 10x run really does ten times the work
  (with dedup on, nine copies out of ten would be dropped as duplicates, a flattering figure).
Two ratios follow: the 10x peak memory over the 1x peak memory of the same settings, and the 1x
wall time over the floor bound (``--floor``, measured at the start of the same run): the
pipeline's overheads over the work it cannot skip, less tied to the machine's speed of the moment
than MB/s (on a shared machine whose speed changes even within one run, not independent of it).

``--against REV`` compares the 1x preparation of this checkout with that of git revision ``REV``
(checked out in a temporary worktree), alternating runs so both sides share the machine's moods.

``--floor`` measures instead, in a fresh process, the CPU time of the work no preparation of the
corpus can skip: importing the libraries, the real Elixir parser (its VM and one parse of every
file), training the BPE on the default sample, and tokenizing every file once. Their sum over
the cores is a lower bound on the wall time, before any mining, labelling, deduplication or
writing, and so an upper bound on the source MB/s this machine can reach.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT.parent / "shared" / "corpora" / "elixir"

CHILD = """
import json, sys
from elixir_coder.corpus.prepare import prepare
try:
    from elixir_coder.corpus.recipe import recipe
except ImportError:  # a revision from before corpus/recipe.py (--against)
    from elixir_coder.corpus.prepare import recipe
rec = recipe(**json.loads(sys.argv[1]))
meta = prepare(sys.argv[2], rec, workers=int(sys.argv[3]))
print(json.dumps(meta["report"]))
"""


FLOOR = """
import json, resource, sys, time
from pathlib import Path
def cpu():
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
steps, mark = {}, cpu()
def step(name):
    global mark
    now = cpu(); steps[name] = now - mark; mark = now
from tokenizers import Tokenizer
from elixir_coder.corpus.parser import ElixirParser
from elixir_coder.corpus.recipe import recipe
from elixir_coder.corpus.scan import sample_rate, sampled
from elixir_coder.corpus.tokenizer import PieceEncoder, load_or_train_tokenizer, split_pieces
step("imports")
root = Path(sys.argv[1])
texts = {str(p.relative_to(root)): p.read_text("utf-8", "surrogateescape") for p in sorted(root.rglob("*.ex*")) if p.suffix in (".ex", ".exs")}
parser = ElixirParser(backend="elixir")
parser.parse_many(list(texts.values()))
parser.close()
step("Elixir parser: VM start and one parse of every file")
rec = recipe(source_dir=str(root))
budget = rec["tokenizer_sample_mb"] * 1e6
rate = sample_rate(budget, sum(map(len, texts.values())))
sample = []
for rel, t in texts.items():  # as the scan pass samples: by a hash of the path, until the budget is spent
    if budget > 0 and sampled(rel, 1, rate):
        sample.append(t)
        budget -= len(t)
tok = load_or_train_tokenizer(None, sample, rec["vocab_size"])
step(f"BPE training on {sum(map(len, sample)) / 1e6:.1f} MB")
coder = PieceEncoder(tok)
for t in texts.values():  # as preparation does: tiktoken on plain text, where it provably gives tokenizers' ids
    coder.whole(t) if coder.plain(t) else coder(split_pieces(t))
step("tokenizing every file once")
print(json.dumps({"steps": steps, "source_mb": sum(len(t.encode("utf-8", "surrogateescape")) for t in texts.values()) / 1e6}))
"""


def measure_floor(source: Path) -> dict:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    out = subprocess.run([sys.executable, "-c", FLOOR, str(source)], capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"floor measurement failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def floor(source: Path, workers: int) -> None:
    r = measure_floor(source)
    total = sum(r["steps"].values())
    print(f"corpus: {source} ({r['source_mb']:.1f} MB of .ex/.exs); CPU seconds of the work no preparation can skip:")
    for name, seconds in r["steps"].items():
        print(f"  {seconds:6.2f}  {name}")
    print(f"  {total:6.2f}  in all: at least {total / workers:.2f} s on {workers} cores before any mining, labelling, "
          f"dedup or writing; at most {r['source_mb'] * workers / total:.2f} MB/s")


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/statm") as fh:
                total += int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            pass
        stack += children.get(p, [])
    return total


def coverage(data_dir: Path, max_len: int, packing: bool) -> float:
    """Share of the prepared training tokens one epoch of the train loader serves (drop_last on)."""
    from elixir_coder.training.data import DataLoader

    loader = DataLoader.new(data_dir, "train", batch_size=16, max_len=max_len, packing=packing, drop_last=True, seed=0)
    served = sum(int(b["sample_len"].sum()) for b in loader) - loader.dataset.coverage["windows"]
    return served / loader.dataset.coverage["stored_tokens"]


def run(source: Path, out: Path, workers: int, keep: bool = False, code: Path | None = None, **opts) -> dict:
    """One preparation in a child process; ``code``: the ``src`` folder to import it from."""
    rec = {"source_dir": str(source), "seed": 1, "test_fraction": 0.05, **opts}
    env = {**os.environ, "PYTHONPATH": str(code)} if code is not None else None
    proc = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(rec), str(out), str(workers)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak, start = 0, time.perf_counter()
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(0.05)
    wall = time.perf_counter() - start
    stdout, stderr = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"preparation failed:\n{stderr}")
    report = json.loads(stdout.strip().splitlines()[-1])
    if not keep:
        shutil.rmtree(out, ignore_errors=True)
    return {"wall_s": wall, "peak_mb": peak / 1e6, "source_mb": report["source_mb"], "report": report}


def copies(source: Path, dest: Path, n: int) -> Path:
    """``n`` renamed copies of every Elixir file of ``source`` (plus its LICENSE files)."""
    module = re.compile(r"\bdefmodule\s+([A-Z]\w*)")
    for k in range(n):
        for path in source.rglob("*"):
            rel = path.relative_to(source)
            target = dest / f"copy{k}" / rel
            if path.is_dir() or path.suffix not in (".ex", ".exs") and not path.name.startswith("LICENSE"):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
            target.write_text(module.sub(lambda m: f"defmodule Copy{k}{m.group(1)}", text) if path.suffix else text,
                              encoding="utf-8", errors="surrogateescape")
    return dest


def against(source: Path, workers: int, rev: str, repeat: int) -> None:
    """1x (default settings) with this checkout and with git revision ``rev``, run after run in
    turn so both see the same machine; mean wall time of each (no median: a slow run counts)."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-prepare-"))
    try:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tmp / "rev"), rev], check=True, capture_output=True)
        walls: dict[str, list[float]] = {"this checkout": [], rev: []}
        for _ in range(repeat):
            for name, code in (("this checkout", ROOT / "src"), (rev, tmp / "rev" / "src")):
                walls[name].append(run(source, tmp / "out", workers, code=code)["wall_s"])
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tmp / "rev")], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    mean = {name: sum(w) / len(w) for name, w in walls.items()}
    for name, w in walls.items():
        print(f"{name:<16} mean {mean[name]:.2f} s over {len(w)} runs ({min(w):.2f}-{max(w):.2f})")
    print(f"this checkout / {rev}: {mean['this checkout'] / mean[rev]:.3f}x the wall time")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--floor", action="store_true", help="measure the CPU time of the unskippable work instead")
    ap.add_argument("--against", metavar="REV", help="compare 1x with git revision REV instead, runs in turn")
    ap.add_argument("--repeat", type=int, default=10, help="runs of each side with --against")
    args = ap.parse_args()
    if args.floor:
        floor(args.source, args.workers)
        return
    if args.against:
        against(args.source, args.workers, args.against, args.repeat)
        return
    bound = sum(measure_floor(args.source)["steps"].values()) / args.workers  # this machine's speed, now
    tmp = Path(tempfile.mkdtemp(prefix="bench-prepare-"))
    try:
        no_dedup = {"dedup": {"exact": False, "near": False}}
        rows = [
            ("1x", run(args.source, tmp / "a", args.workers, keep=True)),
            ("1x, no dedup", run(args.source, tmp / "b", args.workers, **no_dedup)),
        ]
        big = copies(args.source, tmp / "big", args.scale)
        os.sync()  # the copies' writeback would otherwise run during the timed preparation
        rows.append((f"{args.scale}x, no dedup", run(big, tmp / "c", args.workers, **no_dedup)))
        covered = {(n, p): coverage(tmp / "a", n, p) for n in (512, 128) for p in (False, True)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"corpus: {args.source} ({rows[0][1]['source_mb']:.1f} MB of .ex/.exs), {args.workers} workers")
    print(f"{'run':<16}{'source MB':>10}{'wall s':>9}{'MB/s':>8}{'peak RSS MB':>13}")
    for name, r in rows:
        print(f"{name:<16}{r['source_mb']:>10.1f}{r['wall_s']:>9.1f}{r['source_mb'] / r['wall_s']:>8.2f}{r['peak_mb']:>13.0f}")
    print(f"peak memory {args.scale}x / 1x (no dedup): {rows[2][1]['peak_mb'] / rows[1][1]['peak_mb']:.2f}x")
    print(f"1x wall / floor bound measured in this run ({bound:.2f} s, see --floor): {rows[0][1]['wall_s'] / bound:.2f}x")
    for (n, p), share in covered.items():
        print(f"train loader, one epoch, max_len={n}, {'packed' if p else 'padded'}: {100 * share:.2f}% of prepared training tokens")
    r = rows[0][1]["report"]
    print("samples by task (train/val/test):", {t: [r["splits"][s]["samples_by_task"].get(t, 0) for s in r["splits"]]
                                                 for t in ("code_generation", "quality", "security", "test_generation", "clarification", "explanation")})


if __name__ == "__main__":
    main()
