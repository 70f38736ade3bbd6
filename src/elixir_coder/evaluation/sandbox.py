"""Run untrusted generated Elixir against its ExUnit tests, one ``elixir`` process per run.

Each run gets its own temp folder and, where the machine allows it (root and util-linux's
``unshare``; the default on CI containers), its own mount, network and PID namespaces: the
whole filesystem is remounted read-only except the run's folder, the network namespace has no
interfaces, and the BEAM runs as ``nobody`` without capabilities, so it cannot undo any of it.
Everywhere, resource limits bound it: a wall-clock timeout (the process group, and with it the
PID namespace, is killed), ``RLIMIT_DATA`` for memory (``RLIMIT_AS`` does not work: the BEAM
reserves gigabytes of address space it never touches), ``RLIMIT_NPROC`` plus the BEAM's own
process limit (``+P``) against forks, and ``RLIMIT_FSIZE`` against filling the disk.

Without isolation (not root, or no ``unshare``) only the limits apply: network access and writes
outside the folder are then possible, and ``Sandbox.isolation`` says so (the evaluation reports it).

The test harness prints a line with a per-run random token after ``ExUnit.run()``; a run counts as
passed only when that line reports at least one test and no failures, so code that halts the VM
early (``System.halt(0)``) fails instead of passing.
"""

from __future__ import annotations

import os
import re
import resource
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

# Few BEAM threads: each one counts against RLIMIT_NPROC, and a test run needs no parallelism.
BEAM_FLAGS = "+S 1 +SDcpu 1 +SDio 1 +A 1 +sbwt none +sbwtdcpu none +sbwtdio none"
NOBODY = 65534

_RUNNER = """\
ExUnit.start(autorun: false, formatters: [], timeout: {test_timeout_ms})
Code.require_file("program.ex")
Code.require_file("tests.exs")
result = ExUnit.run()
IO.puts("{token} total=#{{result.total}} failures=#{{result.failures}} skipped=#{{result.skipped + result.excluded}}")
"""
_RESULT = re.compile(r"^(\S+) total=(\d+) failures=(\d+) skipped=(\d+)$", re.M)


@dataclass(frozen=True)
class RunResult:
    """One sample's run: ``passed`` only when every test ran and passed; ``status`` says why not."""

    passed: bool
    status: str  # passed | failed | compile_error | timeout | crashed | no_tests
    tests: int = 0
    failures: int = 0
    seconds: float = 0.0
    detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _isolation_available() -> bool:
    return os.geteuid() == 0 and shutil.which("unshare") is not None and shutil.which("setpriv") is not None


class Sandbox:
    """Runs ``program`` + ``tests`` under limits; ``isolation`` is ``namespaces`` or ``limits-only``."""

    def __init__(self, elixir: str = "elixir", timeout_s: float = 10.0, memory_mb: int = 1024,
                 max_processes: int = 64, max_beam_processes: int = 4096, max_file_mb: int = 16,
                 test_timeout_s: float = 5.0, isolate: str = "auto", workdir: str | None = None):
        exe = shutil.which(elixir)
        if exe is None:
            raise FileNotFoundError(f"{elixir}: not found; install Elixir (apt-get install -y elixir) to run ExUnit tests")
        self.elixir = exe
        self.timeout_s, self.memory_mb, self.max_processes = timeout_s, memory_mb, max_processes
        self.max_beam_processes, self.max_file_mb, self.test_timeout_s = max_beam_processes, max_file_mb, test_timeout_s
        self.workdir = workdir
        if isolate not in ("auto", "namespaces", "limits-only"):
            raise ValueError(f"sandbox.isolate={isolate!r}: use auto, namespaces or limits-only")
        available = _isolation_available()
        if isolate == "namespaces" and not available:
            raise RuntimeError("sandbox.isolate=namespaces needs root and util-linux's unshare and setpriv")
        self.isolation = "namespaces" if isolate != "limits-only" and available else "limits-only"

    def _limits(self) -> None:  # runs in the child between fork and exec
        os.setsid()
        mem = self.memory_mb << 20
        resource.setrlimit(resource.RLIMIT_DATA, (mem, mem))
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.max_file_mb << 20, self.max_file_mb << 20))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if self.isolation == "limits-only":  # counted per user: leave room for what already runs
            running = sum(1 for p in Path("/proc").iterdir() if p.name.isdigit())
            resource.setrlimit(resource.RLIMIT_NPROC, (running + self.max_processes,) * 2)
        else:
            resource.setrlimit(resource.RLIMIT_NPROC, (self.max_processes, self.max_processes))

    def _command(self, folder: Path) -> list[str]:
        env = ["env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin", f"HOME={folder}", "LANG=C.UTF-8",
               f"ERL_FLAGS={BEAM_FLAGS} +P {self.max_beam_processes}", "ERL_CRASH_DUMP_SECONDS=0"]
        if self.isolation == "limits-only":
            return [*env, self.elixir, "runner.exs"]
        readonly = " && ".join(
            f"mount -o remount,bind,ro {m}" for m in ("/", "/dev/shm") if m == "/" or os.path.ismount(m)
        )
        script = (
            f'mount --bind "$0" "$0" && {readonly} && cd "$0" && exec setpriv --reuid={NOBODY} --regid={NOBODY} '
            '--clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs "$@"'
        )
        return ["unshare", "--mount", "--net", "--pid", "--fork", "--kill-child", "sh", "-c", script, str(folder),
                *env, self.elixir, "runner.exs"]

    def run(self, program: str, tests: str) -> RunResult:
        """Compile ``program`` and run the ExUnit ``tests`` against it; never raises for what the code does."""
        folder = Path(tempfile.mkdtemp(prefix="elixir-eval-", dir=self.workdir))
        token = secrets.token_hex(16)
        try:
            (folder / "program.ex").write_text(program)
            (folder / "tests.exs").write_text(tests)
            (folder / "runner.exs").write_text(_RUNNER.format(token=token, test_timeout_ms=int(self.test_timeout_s * 1000)))
            if self.isolation == "namespaces":
                for p in [folder, *folder.iterdir()]:
                    os.chown(p, NOBODY, NOBODY)
            start = time.perf_counter()
            proc = subprocess.Popen(self._command(folder), cwd=folder, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, preexec_fn=self._limits)
            try:
                out, err = proc.communicate(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                proc.communicate()
                return RunResult(False, "timeout", seconds=time.perf_counter() - start, detail=f"over {self.timeout_s:g}s")
            finally:
                _kill_group(proc)  # anything it left behind (limits-only: background OS processes)
            seconds = time.perf_counter() - start
            return _classify(out.decode(errors="replace"), err.decode(errors="replace"), proc.returncode, token, seconds)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _classify(out: str, err: str, code: int, token: str, seconds: float) -> RunResult:
    found = [m for m in _RESULT.finditer(out) if m.group(1) == token]
    if found:
        total, failures, skipped = (int(found[-1].group(k)) for k in (2, 3, 4))
        ran = total - skipped
        if ran <= 0:
            return RunResult(False, "no_tests", total, failures, seconds)
        return RunResult(failures == 0, "passed" if failures == 0 else "failed", ran, failures, seconds)
    tail = (err.strip() or out.strip()).splitlines()[-3:]
    detail = " | ".join(tail)[-300:]
    text = err + out
    if "CompileError" in text or "SyntaxError" in text or "TokenMissingError" in text:
        return RunResult(False, "compile_error", seconds=seconds, detail=detail)
    return RunResult(False, "crashed", seconds=seconds, detail=f"exit {code}: {detail}")
