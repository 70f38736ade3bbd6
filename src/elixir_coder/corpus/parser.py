"""Syntax-check Elixir snippets with the real Elixir parser.

No Python package exposes Elixir's own parser (``Code.string_to_quoted/1``),
so this module keeps one long-lived ``elixir`` process running
``parse_server.ex`` and talks to it over pipes. The server only parses:
snippets are never evaluated, compiled or run, and names that are not atoms yet
are never turned into atoms, so hostile input has no side effects.

Wire protocol (both directions): every message is a frame made of a 4-byte
big-endian length followed by that many raw bytes, so snippets may hold any
bytes (newlines, NUL, invalid UTF-8, megabyte lines). The server first sends
``ready``; then it answers each snippet, in order, with ``ok`` or
``error:<line>:<message>`` (``<line>`` empty when unknown). It exits at EOF.

Failure policy: if the server dies while answering, it is restarted and the
unanswered snippet is sent once more; if the server dies again on that same
snippet, the snippet is answered with an error. A snippet that gets no answer
within ``timeout`` seconds is answered with ``"timeout after Ns"``, and the
server is killed and restarted for the next snippet. Hostile input never
raises; only a server that cannot start at all raises ``RuntimeError``. A
forked child (e.g. a DataLoader worker) starts its own server on first use.

Without Elixir, ``backend="auto"`` falls back to tree-sitter-elixir, a
different grammar: it accepts some code the real parser rejects and vice versa.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import logging
import os
import select
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time
import warnings
import weakref
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ElixirNotInstalled",
    "ElixirParser",
    "ParseResult",
    "shared_parser",
    "string_to_quoted",
]

log = logging.getLogger(__name__)

SERVER_SOURCE = Path(__file__).with_name("parse_server.ex")
_SERVER_BEAM = "Elixir.ElixirCoder.ParseServer.beam"
INSTALL_HINT = "install it with `apt-get install -y elixir`"

_HEADER = struct.Struct(">I")
_MAX_FRAME = 2**32 - 1
_WRITE_CHUNK = 1 << 18
_READ_CHUNK = 1 << 16
# One scheduler is enough for a sequential parser, and schedulers that do not
# busy-wait leave the second core to the Python side of the pipe.
_ERL_FLAGS = "+S 1 +sbwt none +sbwtdcpu none +sbwtdio none"
_STARTUP_TIMEOUT = 30.0


@dataclass(frozen=True)
class ParseResult:
    ok: bool
    line: int | None = None  # 1-based line of the error
    message: str | None = None
    # Lines where top-level forms start, and forms inside defmodule/defimpl/defprotocol/describe
    # bodies: where a long file can be cut between definitions. Empty from tree-sitter.
    boundaries: tuple[int, ...] = field(default=(), compare=False)


class ElixirNotInstalled(RuntimeError):
    """The ``elixir`` executable (or, for ``auto``, any backend) is missing."""


class _Timeout(Exception):
    pass


class _ServerDied(Exception):
    pass


_fallback_warned = False


def _warn_fallback(executable: str) -> None:
    """Warn once per process: tree-sitter answers are not the real parser's."""
    global _fallback_warned
    if _fallback_warned:
        return
    _fallback_warned = True
    warnings.warn(
        f"Elixir executable {executable!r} not found; checking syntax with tree-sitter-elixir "
        "instead. Fidelity is reduced: tree-sitter-elixir accepts some code the real Elixir "
        f"parser rejects and vice versa. For the real parser, {INSTALL_HINT}.",
        RuntimeWarning,
        stacklevel=3,
    )


def _to_bytes(code: str | bytes) -> bytes:
    if isinstance(code, str):
        try:
            return code.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            # Lone surrogates become invalid UTF-8, which the parser rejects.
            return code.encode("utf-8", "surrogatepass")
    if isinstance(code, (bytes, bytearray, memoryview)):
        return bytes(code)
    raise TypeError(f"code must be str or bytes, not {type(code).__name__}")


def _decode_answer(payload: bytes) -> ParseResult:
    text = payload.decode("utf-8", "replace")
    if text == "ok" or text.startswith("ok:"):
        lines = text[3:]
        return ParseResult(True, boundaries=tuple(int(x) for x in lines.split(",")) if lines else ())
    parts = text.split(":", 2)
    if parts[0] == "error" and len(parts) == 3:
        line, message = parts[1], parts[2]
        return ParseResult(False, int(line) if line.isdigit() else None, message)
    return ParseResult(False, None, f"unexpected answer from the Elixir parser: {text[:200]!r}")


def _write_frames(fd: int, payloads: list[bytes]) -> None:
    """Send framed snippets; batching small frames keeps syscalls few."""
    batch = bytearray()
    try:
        for payload in payloads:
            batch += _HEADER.pack(len(payload))
            if len(payload) >= _WRITE_CHUNK:
                _write_all(fd, batch)
                batch.clear()
                _write_all(fd, payload)
                continue
            batch += payload
            if len(batch) >= _WRITE_CHUNK:
                _write_all(fd, batch)
                batch.clear()
        _write_all(fd, batch)
    except OSError:
        # The server died or was killed; the reading side notices and recovers.
        pass


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _server_command(executable: str) -> list[str]:
    """How to run the parse server: from its module compiled once into a cache folder, or, where
    that cannot be written, from the source (compiled in memory at every start, 0.2 CPU-s more)."""
    beams = _compiled_server(executable)
    load = ["-pa", str(beams)] if beams is not None else ["-r", str(SERVER_SOURCE)]
    return [executable, "--erl", _ERL_FLAGS, *load, "-e", "ElixirCoder.ParseServer.main()"]


@functools.lru_cache(maxsize=None)
def _compiled_server(executable: str) -> Path | None:
    """The folder holding the server's compiled module, built with ``elixirc`` on first use.

    A preparation starts a parse server per worker and the tests start hundreds; compiling the
    source at each start was 40% of a start's CPU. The folder (under ``ELIXIR_CODER_CACHE``,
    else ``$XDG_CACHE_HOME/elixir-coder`` or ``~/.cache/elixir-coder``) is named after the
    source and the Elixir installation, so an upgrade of either compiles anew; it is written
    under a temporary name and renamed, so concurrent first uses never see half a module.
    """
    exe = Path(executable).resolve()
    elixirc = exe.with_name("elixirc")
    try:
        key = hashlib.sha256(SERVER_SOURCE.read_bytes() + f"\0{exe}\0{exe.stat().st_mtime_ns}".encode()).hexdigest()[:16]
        cache = os.environ.get("ELIXIR_CODER_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "elixir-coder"
    except (OSError, RuntimeError):  # RuntimeError: no home folder to find
        return None
    target = Path(cache) / f"parse-server-{key}"
    if (target / _SERVER_BEAM).is_file():
        return target
    if not elixirc.is_file():
        return None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".parse-server-", dir=target.parent))
    except OSError:
        return None
    try:
        built = subprocess.run([str(elixirc), "-o", str(tmp), str(SERVER_SOURCE)], capture_output=True, timeout=_STARTUP_TIMEOUT * 4)
        if built.returncode != 0 or not (tmp / _SERVER_BEAM).is_file():
            log.warning("could not compile the Elixir parse server (%s); running it from source", built.stderr.decode(errors="replace")[-300:])
            return None
        try:
            os.rename(tmp, target)
        except OSError:
            pass  # another process compiled it first
        return target if (target / _SERVER_BEAM).is_file() else None
    except (OSError, subprocess.TimeoutExpired):
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class _Server:
    """One running parse server process and its read buffer."""

    def __init__(self, executable: str) -> None:
        self.proc = subprocess.Popen(
            _server_command(executable),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            start_new_session=True,  # its own process group: killed as a whole
            # A VM that dies must not litter the working directory with erl_crash.dump.
            env={**os.environ, "ERL_CRASH_DUMP_SECONDS": "0"},
        )
        self.stdin_fd = self.proc.stdin.fileno()
        self.stdout_fd = self.proc.stdout.fileno()
        self.poller = select.poll()
        self.poller.register(self.stdout_fd, select.POLLIN)
        self.buffer = bytearray()
        self.stderr_tail: deque[str] = deque(maxlen=20)
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _drain_stderr(self) -> None:
        # Warnings go to stderr; an undrained pipe would eventually block the server.
        for line in self.proc.stderr:
            self.stderr_tail.append(line[:500].decode("utf-8", "replace").rstrip())

    def read_frame(self, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buffer) >= 4:
                (size,) = _HEADER.unpack_from(self.buffer)
                if len(self.buffer) >= 4 + size:
                    payload = bytes(self.buffer[4 : 4 + size])
                    del self.buffer[: 4 + size]
                    return payload
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.poller.poll(remaining * 1000):
                raise _Timeout
            chunk = os.read(self.stdout_fd, _READ_CHUNK)
            if not chunk:
                raise _ServerDied
            self.buffer += chunk

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.returncode is None:  # not reaped yet, so its group id is still ours
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.proc.wait()

    def close_pipes(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                pipe.close()
            except OSError:
                pass

    def shutdown(self, grace: float = 2.0) -> None:
        """Close stdin so the server halts by itself; kill it if it lingers."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill()
        self.close_pipes()


class ElixirParser:
    """Checks Elixir syntax with a long-lived Elixir process (or tree-sitter).

    Thread-safe: one lock serialises each request/answer exchange. Hostile
    input never raises; it is answered ``ok`` or with an error.
    """

    def __init__(self, executable: str = "elixir", timeout: float = 10.0, backend: str = "auto"):
        if backend not in ("auto", "elixir", "tree-sitter"):
            raise ValueError(f"backend must be 'auto', 'elixir' or 'tree-sitter', not {backend!r}")
        self.executable = executable
        self.timeout = float(timeout)
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._ts_parser: Any = None
        self._executable_path = shutil.which(executable)
        _instances.add(self)

        if backend == "auto":
            if self._executable_path is not None:
                backend = "elixir"
            else:
                try:
                    self._ts_parser = _tree_sitter_parser()
                except ImportError as exc:
                    raise ElixirNotInstalled(
                        f"Elixir executable {executable!r} not found and the tree-sitter fallback "
                        f"is unavailable ({exc}); {INSTALL_HINT}"
                    ) from exc
                _warn_fallback(executable)
                backend = "tree-sitter"
        elif backend == "elixir":
            if self._executable_path is None:
                raise ElixirNotInstalled(f"Elixir executable {executable!r} not found; {INSTALL_HINT}")
        else:
            self._ts_parser = _tree_sitter_parser()
        self.backend_name = backend

    # -- public API ---------------------------------------------------------

    def parse(self, code: str | bytes) -> ParseResult:
        return self.parse_many([code])[0]

    def parse_many(self, codes: Iterable[str | bytes]) -> list[ParseResult]:
        """Check many snippets; answers come back in input order.

        For Elixir, requests are written by a helper thread while this thread
        reads answers, so neither pipe can fill up and deadlock.
        """
        payloads = [_to_bytes(code) for code in codes]
        with self._lock:
            if self.backend_name == "tree-sitter":
                return [_tree_sitter_check(self._ts_parser, p) for p in payloads]
            return self._exchange(payloads)

    def close(self) -> None:
        """Stop the Elixir process; a later call starts a new one."""
        with self._lock:
            if self._server is not None:
                self._server.shutdown()
                self._server = None

    @property
    def pid(self) -> int | None:
        """OS pid of the running Elixir process, if any."""
        server = self._server
        return server.proc.pid if server is not None and server.alive() else None

    def _forget_after_fork(self) -> None:
        # A forked child (e.g. a DataLoader worker) must not share the parent's
        # pipes or a lock some parent thread held: drop both, start afresh.
        self._lock = threading.Lock()
        if self._server is not None:
            self._server.close_pipes()  # the child's copies only; the parent's server lives on
            self._server = None

    def __enter__(self) -> ElixirParser:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- Elixir backend -----------------------------------------------------

    def _exchange(self, payloads: list[bytes]) -> list[ParseResult]:
        results: list[ParseResult | None] = [None] * len(payloads)
        todo = []  # indices still to send, in order
        for i, payload in enumerate(payloads):
            if len(payload) > _MAX_FRAME:
                results[i] = ParseResult(False, None, "snippet too large (4 GiB frame limit)")
            else:
                todo.append(i)

        retried: set[int] = set()
        while todo:
            server = self._running_server()
            writer = threading.Thread(
                target=_write_frames, args=(server.stdin_fd, [payloads[i] for i in todo]), daemon=True
            )
            writer.start()
            done = 0
            try:
                while done < len(todo):
                    results[todo[done]] = _decode_answer(server.read_frame(self.timeout))
                    done += 1
            except _Timeout:
                self._discard(server, writer)
                results[todo[done]] = ParseResult(False, None, f"timeout after {self.timeout:g}s")
                done += 1
            except _ServerDied:
                tail = " | ".join(server.stderr_tail)
                self._discard(server, writer)
                index = todo[done]
                if index in retried:
                    message = "Elixir parser process died twice on this snippet"
                    results[index] = ParseResult(False, None, f"{message}: {tail}" if tail else message)
                    done += 1
                else:
                    log.warning("Elixir parser process died; restarting it. stderr: %s", tail)
                    retried.add(index)
            except BaseException:
                self._discard(server, writer)
                raise
            else:
                writer.join()
            todo = todo[done:]
        return results  # type: ignore[return-value]

    def _running_server(self) -> _Server:
        if self._server is not None and self._server.alive():
            return self._server
        if self._server is not None:
            self._discard(self._server, None)
        if self._executable_path is None:
            raise ElixirNotInstalled(f"Elixir executable {self.executable!r} not found; {INSTALL_HINT}")
        server = _Server(self._executable_path)
        try:
            ready = server.read_frame(max(self.timeout, _STARTUP_TIMEOUT))
        except (_Timeout, _ServerDied):
            ready = b""
        if ready != b"ready":
            server.kill()
            server.close_pipes()
            raise RuntimeError(
                f"the Elixir parse server did not start: {' | '.join(server.stderr_tail) or 'no output'}"
            )
        self._server = server
        return server

    def _discard(self, server: _Server, writer: threading.Thread | None) -> None:
        # Kill before joining the writer: a killed reader makes its write fail.
        server.kill()
        if writer is not None:
            writer.join()
        server.close_pipes()
        if self._server is server:
            self._server = None


# -- tree-sitter backend ----------------------------------------------------


def _tree_sitter_parser() -> Any:
    try:
        import tree_sitter
        import tree_sitter_elixir
    except ImportError as exc:
        raise ImportError(
            "tree-sitter fallback needs `pip install tree-sitter tree-sitter-elixir`"
        ) from exc
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_elixir.language()))


def _tree_sitter_check(parser: Any, payload: bytes) -> ParseResult:
    """ok = no ERROR/MISSING node; the line is that of the first such node."""
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = payload.count(b"\n", 0, exc.start) + 1
        return ParseResult(False, line, f"invalid UTF-8 starting at byte {exc.start}")
    root = parser.parse(payload).root_node
    if not root.has_error:
        return ParseResult(True)
    stack = [root]  # iterative: deeply nested input must not hit the recursion limit
    while stack:
        node = stack.pop()
        if node.is_missing:
            return ParseResult(False, node.start_point[0] + 1, f"missing {node.type}")
        if node.is_error:
            text = payload[node.start_byte : node.start_byte + 40].decode("utf-8", "replace")
            return ParseResult(False, node.start_point[0] + 1, f"syntax error near {text!r}")
        stack.extend(reversed([c for c in node.children if c.has_error or c.is_missing]))
    return ParseResult(False, None, "syntax error")


# -- process-wide instance --------------------------------------------------

_shared: ElixirParser | None = None
_shared_lock = threading.Lock()
_instances: weakref.WeakSet[ElixirParser] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    global _shared_lock
    _shared_lock = threading.Lock()
    for parser in list(_instances):
        parser._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def shared_parser() -> ElixirParser:
    """The process-wide parser; its Elixir process starts on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ElixirParser()
            atexit.register(_shared.close)
        return _shared


def stop_shared_parser() -> None:
    """Stop the process-wide parser's Elixir process, if one runs (it starts again on next use)."""
    with _shared_lock:
        shared = _shared
    if shared is not None:
        shared.close()


def string_to_quoted(code: str | bytes) -> ParseResult:
    """Check ``code`` like Elixir's ``Code.string_to_quoted/1`` (AST not returned)."""
    return shared_parser().parse(code)
