"""Built-in detectors for the Sobelow findings in ``labels.SECURITY_LABELS``: a sink whose checked
argument is not a literal, inside a def/defp body, following each check's ``parse_def`` in
``nccgroup/sobelow``; Config.CSRF for a router pipeline that fetches the session without
``:protect_from_forgery``. The real Sobelow is the judge (``corpus.lint``).
"""

from __future__ import annotations

from dataclasses import dataclass

from elixir_coder.corpus.source import DEF_WORDS, Source

__all__ = ["detect_security", "find_calls", "Call"]


FILE_FUNCS = {
    "read", "read!", "write", "write!", "rm", "rm!", "rm_rf", "open", "open!", "chmod", "chmod!", "chown", "chown!",
    "mkdir", "mkdir!", "mkdir_p", "mkdir_p!",
}
FILE_DOUBLE_FUNCS = {"cp", "copy", "cp!", "copy!", "cp_r", "cp_r!", "ln", "ln!", "ln_s", "ln_s!"}


@dataclass(frozen=True, slots=True)
class Call:
    at: int  # the function name token
    module: tuple[str, ...] | None  # alias parts, (":erlang",) for Erlang modules, None for a local call
    args: tuple[tuple[int, int], ...]  # explicit argument token spans
    piped: bool
    capture: bool


def _split_args(src: Source, lo: int, hi: int, depth: int) -> tuple[tuple[int, int], ...]:
    spans, start = [], lo
    for k in range(lo, hi + 1):
        if src.depth[k] == depth and src.t[k].kind == "punct" and src.t[k].text == ",":
            spans.append((start, k - 1))
            start = k + 1
    if start <= hi:
        spans.append((start, hi))
    return tuple((a, b) for a, b in spans if any(src.t[x].kind != "nl" for x in range(a, b + 1)))


_ARG_START = ("ident", "alias", "str", "num", "atom", "sigil")


def find_calls(src: Source, lo: int, hi: int, names: set[str] | frozenset[str]) -> list[Call]:
    """Calls of functions named ``names`` between tokens lo..hi, remote or local, with their args."""
    out = []
    t = src.t
    for k in range(lo, hi + 1):
        if t[k].kind != "ident" or t[k].text not in names:
            continue
        start, module = k, None
        if src.after_dot(k):
            q = k - 2
            if q < 0:
                continue
            if t[q].kind == "atom":
                module, start = (t[q].text,), q
            elif t[q].kind == "alias":
                s = q
                while s >= 2 and t[s - 1].text == "." and t[s - 2].kind == "alias" and t[s - 1].start == t[s - 2].end:
                    s -= 2
                module, start = tuple(src.alias_chain(s)[0]), s
            else:
                continue
        else:
            p = src.prev_code(k)
            if p is not None and t[p].kind == "ident" and t[p].text in DEF_WORDS:
                continue
        p = src.prev_code(start)
        piped = p is not None and t[p].kind == "op" and t[p].text == "|>"
        capture = p is not None and t[p].kind == "op" and t[p].text == "&" and k + 1 < len(t) and t[k + 1].text == "/"
        args: tuple[tuple[int, int], ...] = ()
        if k + 1 < len(t) and t[k + 1].text == "(" and t[k + 1].start == t[k].end and k + 1 in src.partner:
            close = src.partner[k + 1]
            args = _split_args(src, k + 2, close - 1, src.depth[k] + 1)
        elif k + 1 < len(t) and t[k + 1].line == t[k].line and t[k + 1].kind in _ARG_START:
            end = src.expr_end(k + 1)
            args = _split_args(src, k + 1, end, src.depth[k])
        out.append(Call(k, module, args, piped, capture))
    return out


def is_literal(src: Source, lo: int, hi: int) -> bool:
    """Sobelow's ``parse_opts`` finds no variable in tokens lo..hi: plain strings, numbers, atoms,
    lists/tuples of those, a module attribute, ``~s``/``~e`` sigils, operators joining literals."""
    toks = [src.t[k] for k in range(lo, hi + 1) if src.t[k].kind != "nl"]
    if len(toks) == 2 and toks[0].text == "@" and toks[1].kind == "ident":
        return True
    for tok in toks:
        if tok.kind in ("str", "atom") and not tok.interp:
            continue
        if tok.kind == "sigil" and tok.text[1] in "se":
            continue
        if tok.kind in ("num", "kw"):
            continue
        if tok.kind == "ident" and tok.text in ("true", "false", "nil"):
            continue
        if tok.kind == "punct" and tok.text in "[]{},":
            continue
        if tok.kind == "op" and tok.text in ("-", "+", "<>", "++", "<<", ">>", "::", "*", "/"):
            continue
        return False
    return True


def tainted(src: Source, call: Call, idx: int) -> bool:
    """The argument at position ``idx`` (the piped value counts as position 0) is not a literal."""
    if call.capture:
        return True
    args: list[tuple[int, int] | None] = ([None] if call.piped else []) + list(call.args)
    if idx >= len(args):
        return False
    return args[idx] is None or not is_literal(src, *args[idx])


def _module_is(call: Call, *, last: str | None = None, exact: tuple[str, ...] | None = None, local: bool = False) -> bool:
    if call.module is None:
        return local
    if exact is not None:
        return call.module == exact
    return call.module[-1] == last


def _content_types_allow_html(src: Source, lo: int, hi: int) -> bool:
    """Sobelow XSS.SendResp confidence: a function that only sets non-HTML content types is dropped."""
    types = []
    for c in find_calls(src, lo, hi, {"put_resp_content_type"}):
        if c.module is not None and c.module[-1] != "Conn":
            continue
        if not c.args:
            continue
        a, b = c.args[0]
        toks = [src.t[x] for x in range(a, b + 1) if src.t[x].kind != "nl"]
        if len(toks) == 1 and toks[0].kind == "str" and not toks[0].interp:
            types.append(toks[0].text.strip("\"'").lower())
        else:
            types.append(None)
    if not types or any(x is None for x in types):
        return True
    return any("html" in x for x in types)


def _function_findings(src: Source, lo: int, hi: int, controller: bool) -> set[str]:
    """Findings inside one def/defp body (Sobelow analyses each function on its own)."""
    found = set()

    def calls(*names: str) -> list[Call]:
        return find_calls(src, lo, hi, set(names))

    for c in calls("query"):
        sql = _module_is(c, last="SQL", local=True) and tainted(src, c, 1)
        if sql or _module_is(c, last="Repo", local=True) and tainted(src, c, 0):
            found.add("Sobelow.SQL.Query")
    if not controller and any(_module_is(c, last="HTML", local=True) and tainted(src, c, 0) for c in calls("raw")):
        found.add("Sobelow.XSS.Raw")
    if any(_module_is(c, last="Conn", local=True) and tainted(src, c, 2) for c in calls("send_resp")):
        if _content_types_allow_html(src, lo, hi):
            found.add("Sobelow.XSS.SendResp")
    for c in calls(*FILE_FUNCS, *FILE_DOUBLE_FUNCS):
        if not _module_is(c, exact=("File",)):
            continue
        if tainted(src, c, 0) or src.t[c.at].text in FILE_DOUBLE_FUNCS and tainted(src, c, 1):
            found.add("Sobelow.Traversal.FileModule")
    if any(_module_is(c, last="Conn", local=True) and tainted(src, c, 2) for c in calls("send_file")):
        found.add("Sobelow.Traversal.SendFile")
    if any(_module_is(c, exact=("System",)) and tainted(src, c, 0) for c in calls("cmd")):
        found.add("Sobelow.CI.System")
    if any(_module_is(c, exact=(":os",)) and tainted(src, c, 0) for c in calls("cmd")):
        found.add("Sobelow.CI.OS")
    if any(_module_is(c, exact=("String",)) and tainted(src, c, 0) for c in calls("to_atom")):
        found.add("Sobelow.DOS.StringToAtom")
    if any(_module_is(c, exact=(":erlang",)) and tainted(src, c, 0) for c in calls("binary_to_term")):
        found.add("Sobelow.Misc.BinToTerm")
    if any(_module_is(c, exact=("Code",)) and tainted(src, c, 0) for c in calls("eval_string", "eval_file", "eval_quoted")):
        found.add("Sobelow.RCE.CodeModule")
    return found


def pipeline_plugs(src: Source) -> list[tuple[int, list[str]]]:
    """Router ``pipeline :name do ... end`` blocks and the atom plugs directly inside them."""
    out = []
    for k in range(len(src.t)):
        if not src.is_word(k, "pipeline") or not src.statement_start(k):
            continue
        do_at = src.block_do(k)
        if do_at is None:
            continue
        d = src.depth[do_at] + 1
        plugs = []
        for j in range(do_at + 1, src.partner[do_at]):
            if src.depth[j] == d and src.is_word(j, "plug") and src.statement_start(j):
                nxt = src.t[j + 1]
                if nxt.text == "(" and j + 2 < len(src.t):
                    nxt = src.t[j + 2]
                if nxt.kind == "atom":
                    plugs.append(nxt.text[1:])
        out.append((k, plugs))
    return out


def detect_security(code: str | Source) -> set[str]:
    """Sobelow finding names (``labels.SECURITY_LABELS``) for ``code``: a sink whose checked argument
    is not a literal, inside a def/defp body, following each check's ``parse_def``; Config.CSRF for a
    pipeline that fetches the session without ``:protect_from_forgery``. XSS.Raw is not reported in
    controllers (Sobelow looks at their templates instead); the module name stands in for the file name."""
    src = code if isinstance(code, Source) else Source(code)
    if not src.balanced:
        return set()
    found: set[str] = set()
    for d in src.definitions:
        if d.word not in ("def", "defp") or d.body is None or d.body[0] > d.body[1]:
            continue
        mod = src.module_of(d.at)
        controller = mod is not None and mod.name.endswith("Controller")
        found |= _function_findings(src, d.body[0], d.body[1], controller)
    for _, plugs in pipeline_plugs(src):
        if "fetch_session" in plugs and "protect_from_forgery" not in plugs:
            found.add("Sobelow.Config.CSRF")
    return found
