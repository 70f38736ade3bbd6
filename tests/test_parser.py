"""Tests for the bridge to the real Elixir parser (and its tree-sitter fallback)."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
import time
import warnings

import pytest

from elixir_coder.corpus import parser as parser_module
from elixir_coder.corpus.parser import (
    ElixirNotInstalled,
    ElixirParser,
    ParseResult,
    shared_parser,
    string_to_quoted,
)

needs_elixir = pytest.mark.skipif(
    shutil.which("elixir") is None, reason="install elixir: apt-get install -y elixir"
)

VALID = """\
defmodule Demo.Greeter do
  @moduledoc "Greets people."

  @spec greet(String.t()) :: String.t()
  def greet(name) when is_binary(name) do
    name
    |> String.trim()
    |> then(&"Hello, #{&1}!")
  end

  defp shout(%{name: name} = person, opts \\\\ []) do
    case Keyword.get(opts, :loud, false) do
      true -> String.upcase(name)
      false -> person
    end
  end
end
"""

UNCLOSED_DO = "defmodule A do\n  def f(x) do\n    x + 1\n  end\n"


@pytest.fixture(scope="module")
def elixir():
    with ElixirParser(backend="elixir") as parser:
        yield parser


def _wait_until_dead(pid: int) -> None:
    """Until the killed server is gone or a zombie (we are its parent, so it is not reaped yet)."""
    for _ in range(200):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return
        except FileNotFoundError:
            return
        time.sleep(0.01)


# -- real parser ------------------------------------------------------------


@pytest.mark.elixir
@needs_elixir
def test_valid_module_is_ok(elixir):
    assert elixir.backend_name == "elixir"
    assert elixir.parse(VALID) == ParseResult(True)
    assert elixir.parse(VALID.encode()) == ParseResult(True)


@pytest.mark.elixir
@needs_elixir
def test_syntax_errors_report_line_and_message(elixir):
    unclosed = elixir.parse(UNCLOSED_DO)
    assert not unclosed.ok
    assert unclosed.line == 5  # the real parser reports a missing `end` at end of input
    assert 'missing terminator: end (for "do" starting at line 1)' in unclosed.message

    stray = elixir.parse("a = 1\nb = )\nc = 3\n")
    assert (stray.ok, stray.line) == (False, 2)
    assert "unexpected token: )" in stray.message


@pytest.mark.elixir
@needs_elixir
def test_snippets_are_never_evaluated(elixir, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    written = tmp_path / "written.txt"
    pid = elixir.pid or (elixir.parse("1") and elixir.pid)

    assert elixir.parse("System.halt(1)").ok
    assert elixir.parse(f'File.rm_rf!("{victim}")').ok
    assert elixir.parse(f'File.write!("{written}", "x")').ok
    assert elixir.parse('IO.puts("not a frame")\nIO.binwrite(<<0, 0, 0, 2>>)').ok
    assert elixir.parse("1 + 1") == ParseResult(True)

    assert victim.is_dir()
    assert not written.exists()
    assert elixir.pid == pid  # the server never halted or restarted


@pytest.mark.elixir
@needs_elixir
def test_hostile_bytes_get_answers(elixir):
    pid = elixir.pid or (elixir.parse("1") and elixir.pid)

    big = elixir.parse("x = " + "foo(1, :bar) + " * 70_000 + "1")  # ~1 MB on one line
    assert big.ok
    invalid_utf8 = elixir.parse(b"a = 1\nb = \"\xff\xfe\"\n")
    assert (invalid_utf8.ok, invalid_utf8.line) == (False, 2)
    assert "UTF-8" in invalid_utf8.message
    lone_surrogate = elixir.parse("x = '\ud800'")
    assert not lone_surrogate.ok
    nul = elixir.parse("a = 1\x00")
    assert not nul.ok and "null byte" in nul.message
    assert not elixir.parse("defmodule A do").ok
    long_name = elixir.parse("x" * 1_000_000)
    assert not long_name.ok and len(long_name.message) < 5000
    assert elixir.parse(b"") == ParseResult(True)

    assert elixir.pid == pid



@pytest.mark.elixir
@needs_elixir
def test_server_is_compiled_once_into_the_cache(monkeypatch, tmp_path):
    """The server module is compiled on first use and started from the cache afterwards (half the
    CPU of a start); where the cache cannot be written it still runs, from source."""
    monkeypatch.setenv("ELIXIR_CODER_CACHE", str(tmp_path / "cache"))
    parser_module._compiled_server.cache_clear()
    with ElixirParser(backend="elixir") as elixir:
        assert elixir.parse(VALID).ok
    [built] = (tmp_path / "cache").iterdir()
    assert (built / "Elixir.ElixirCoder.ParseServer.beam").is_file()
    assert ["-pa", str(built)] == parser_module._server_command(shutil.which("elixir"))[3:5]

    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("ELIXIR_CODER_CACHE", str(tmp_path / "file" / "cache"))
    parser_module._compiled_server.cache_clear()
    assert "-r" in parser_module._server_command(shutil.which("elixir"))
    with ElixirParser(backend="elixir") as elixir:
        assert elixir.parse(VALID).ok and not elixir.parse("def f(").ok
    parser_module._compiled_server.cache_clear()

@pytest.mark.elixir
@needs_elixir
def test_fresh_atoms_are_not_created(monkeypatch):
    # About 21k atoms exist after start-up: with a 40k limit, creating 100k fresh
    # atoms would crash the VM. The server must answer and stay up.
    monkeypatch.setattr(parser_module, "_ERL_FLAGS", parser_module._ERL_FLAGS + " +t 40000")
    atoms = "[" + ", ".join(f":fresh_atom_{i}" for i in range(100_000)) + "]"
    names = " + ".join(f"fresh_var_{i}" for i in range(30_000))
    with ElixirParser(backend="elixir") as elixir:
        assert elixir.parse(atoms).ok
        pid = elixir.pid
        assert elixir.parse(names).ok
        assert elixir.parse(f"[Fresh.Alias{pid}, fresh_call{pid}(1)]").ok
        assert elixir.pid == pid


@pytest.mark.elixir
@needs_elixir
def test_fresh_names_keep_real_semantics_and_messages(elixir):
    # Rejected by the real parser even though the names are not atoms yet.
    assert not elixir.parse(":brand_new_atom_q.Alias").ok
    keyword = elixir.parse("[brand_new_key:1]")
    assert not keyword.ok and "brand_new_key:" in keyword.message
    alias_call = elixir.parse("BrandNewAlias(1)")
    assert not alias_call.ok and "BrandNewAlias" in alias_call.message


@pytest.mark.elixir
@needs_elixir
def test_parse_many_keeps_input_order(elixir):
    codes = [VALID, "a end", "x = 1", UNCLOSED_DO, b"\xff", "[1, 2]", "foo(", ""] * 25
    results = elixir.parse_many(iter(codes))
    assert results == [elixir.parse(code) for code in codes]
    assert [r.ok for r in results[:8]] == [True, False, True, False, False, True, False, True]


@pytest.mark.elixir
@needs_elixir
def test_concurrent_callers_get_their_own_answers(elixir):
    failures = []

    def worker(code: str, ok: bool) -> None:
        for _ in range(50):
            if elixir.parse(code).ok != ok:
                failures.append(code)

    threads = [threading.Thread(target=worker, args=(c, ok)) for c, ok in [(VALID, True), ("a end", False)] * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


@pytest.mark.elixir
@needs_elixir
def test_killed_process_is_restarted():
    with ElixirParser(backend="elixir") as elixir:
        assert elixir.parse("1").ok
        pid = elixir.pid
        os.kill(pid, signal.SIGKILL)
        _wait_until_dead(pid)
        assert elixir.parse(VALID) == ParseResult(True)
        assert elixir.pid not in (None, pid)

        # Killed without waiting: the batch is retried on a new process.
        os.kill(elixir.pid, signal.SIGKILL)
        assert elixir.parse_many([VALID, "a end"] * 3) == [ParseResult(True), elixir.parse("a end")] * 3


@pytest.mark.elixir
@needs_elixir
def test_timeout_kills_and_restarts():
    huge = "x = " + " + ".join(f"v{i}" for i in range(200_000))
    with ElixirParser(backend="elixir", timeout=0.05) as elixir:
        assert elixir.parse("1").ok
        pid = elixir.pid
        results = elixir.parse_many(["1", huge, "2 +"])
        assert results[0] == ParseResult(True)
        assert results[1] == ParseResult(False, None, "timeout after 0.05s")
        assert results[2].ok is False and results[2].line == 1
        elixir.timeout = 10.0
        assert elixir.parse(VALID).ok
        assert elixir.pid != pid


@pytest.mark.elixir
@needs_elixir
def test_forked_child_gets_its_own_server(elixir):
    assert elixir.parse("1").ok
    pid = elixir.pid
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            ok = elixir.parse(VALID).ok and elixir.pid not in (None, pid)
            os.write(write_end, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(child, 0)
    assert os.read(read_end, 1) == b"1"
    os.close(read_end)
    assert elixir.parse_many([VALID, "a end"]) == [ParseResult(True), elixir.parse("a end")]
    assert elixir.pid == pid


@pytest.mark.elixir
@needs_elixir
def test_shared_parser_and_string_to_quoted():
    assert shared_parser() is shared_parser()
    assert string_to_quoted(VALID) == ParseResult(True)
    error = string_to_quoted(UNCLOSED_DO)
    assert (error.ok, error.line) == (False, 5)


# -- failure policy, with a stand-in server --------------------------------

FAKE_SERVER = """\
import os, struct, sys
def frame(payload):
    sys.stdout.buffer.write(struct.pack(">I", len(payload)) + payload)
    sys.stdout.buffer.flush()
frame(b"ready")
while len(header := sys.stdin.buffer.read(4)) == 4:
    sys.stdin.buffer.read(struct.unpack(">I", header)[0])
    if MODE == "always" or not os.path.exists(MARKER):
        open(MARKER, "a").close()
        os._exit(1)
    frame(b"ok")
"""


def _fake_elixir(tmp_path, mode: str) -> str:
    """An executable that speaks the protocol but dies on requests (once or always)."""
    script = tmp_path / "fake_elixir"
    marker = tmp_path / "died"
    body = f"MODE = {mode!r}\nMARKER = {str(marker)!r}\n" + FAKE_SERVER
    script.write_text(f"#!{sys.executable}\n{body}")
    script.chmod(0o755)
    return str(script)


def test_death_in_flight_is_retried_once(tmp_path):
    with ElixirParser(executable=_fake_elixir(tmp_path, "once"), backend="elixir") as parser:
        assert parser.parse_many(["a", "b"]) == [ParseResult(True), ParseResult(True)]
    assert (tmp_path / "died").exists()


def test_second_death_on_same_snippet_is_an_error(tmp_path):
    with ElixirParser(executable=_fake_elixir(tmp_path, "always"), backend="elixir") as parser:
        results = parser.parse_many(["a", "b"])
    assert [r.ok for r in results] == [False, False]
    assert all("died twice" in r.message for r in results)


# -- backend selection ------------------------------------------------------


def test_elixir_backend_requires_elixir():
    with pytest.raises(ElixirNotInstalled, match="apt-get install -y elixir"):
        ElixirParser(executable="no-such-elixir-binary", backend="elixir")


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError):
        ElixirParser(backend="regex")


def test_auto_falls_back_to_tree_sitter_with_one_warning(monkeypatch):
    pytest.importorskip("tree_sitter_elixir")
    monkeypatch.setattr(parser_module, "_fallback_warned", False)
    with pytest.warns(RuntimeWarning, match="fidelity is reduced|Fidelity is reduced"):
        first = ElixirParser(executable="no-such-elixir-binary")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ElixirParser(executable="no-such-elixir-binary")
    assert first.backend_name == "tree-sitter"
    assert first.parse(VALID).ok


# -- tree-sitter fallback ---------------------------------------------------


def test_tree_sitter_backend():
    pytest.importorskip("tree_sitter_elixir")
    with ElixirParser(backend="tree-sitter") as ts:
        assert ts.backend_name == "tree-sitter"
        assert ts.parse(VALID) == ParseResult(True)
        broken = ts.parse("defmodule A do\n  def f(x) do\n    x +\n")
        assert not broken.ok and broken.line is not None and broken.message
        assert not ts.parse(b"x = \"\xff\"").ok
        assert [r.ok for r in ts.parse_many([VALID, "foo(", "[1, 2]"])] == [True, False, True]
        assert not ts.parse("(" * 100_000).ok  # deep nesting must not hit the recursion limit
