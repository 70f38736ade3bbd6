"""Injectors for the Sobelow findings in ``labels.SECURITY_LABELS``.

Each returns a twin ``(secure, vulnerable)`` or None: the same module with one site written in
its safe form and in its vulnerable form, so the two differ only where the finding is. A site is
an existing safe call rewritten (``Repo.get`` into an interpolated SQL query, a fixed
``File.read!`` path into one from the function's argument, ``String.to_existing_atom`` into
``String.to_atom``, a router pipeline's ``:protect_from_forgery``), or, where the module has
none, a function built from the module's own names (its noun, table, columns, parameters) in
both forms. Safe forms are chosen so that the vulnerable side is not systematically the longer
one. The forms follow what Sobelow 0.13 reports (``--private``, all confidences); none of the
detectors' code is used.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from elixir_coder.corpus.rules.text import (
    _start,
    RngLike,
    _defined_names,
    _end_line_of,
    _indent,
    _join,
    _line_of,
    _lines,
    _main_module,
    _module_kind,
    _simple_params,
    _top_level_groups,
)
from elixir_coder.corpus.source import DEF_WORDS, Module, Source, alias_statements

Twin = tuple[str, str]

def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _placeholders(src: Source, m: Module) -> dict[str, str]:
    """Names the templates refer to: the Repo as this module reaches it, and a plausible table."""
    app = m.name.split(".")[0]
    app = app[:-3] if app.endswith("Web") and len(app) > 3 else app
    repo = f"{app}.Repo"
    table = None
    for k, _, full, inner in alias_statements(src):
        if src.module_of(k) is not m:
            continue
        names = [f"{full}.{x}" for x in inner] or [full]
        for name in names:
            last = name.rsplit(".", 1)[-1]
            if last == "Repo":
                repo = name
            elif table is None and len(name.split(".")) >= 3:
                table = _snake(last) + "s"
    found = re.search(r'\bschema\s+"(\w+)"', src.code)
    table = found.group(1) if found else table or _snake(m.name.rsplit(".", 1)[-1]) + "_records"
    return {"repo": repo, "table": table}


def _alias_insertion(src: Source, lines: list[str], m: Module, full: str) -> tuple[int, str] | None | str:
    """How module ``m`` can call ``full`` by its last name: "ok" if already aliased, (line, text)
    for an ``alias`` line to insert (alphabetically into the first alias group, else after the
    ``use``/``import``/``require`` lines), None when another alias already takes that name."""
    last = full.rsplit(".", 1)[-1]
    depth = src.depth[m.do_at] + 1
    stmts = [s for s in alias_statements(src) if src.module_of(s[0]) is m and src.depth[s[0]] == depth]
    names = [n for _, _, f, inner in stmts for n in ([f"{f}.{x}" for x in inner] or [f])]
    if full in names:
        return "ok"
    if any(n.rsplit(".", 1)[-1] == last for n in names):
        return None
    indent = _indent(lines[_line_of(src, m.at)]) + "  "
    text = f"{indent}alias {full}"
    single = [s for s in stmts if src.t[s[0]].line == src.t[s[1]].line]
    if single:
        group = [single[0]]
        for st in single[1:]:
            if src.t[st[0]].line != src.t[group[-1][0]].line + 1:
                break
            group.append(st)
        at = _line_of(src, group[-1][0]) + 1
        for st in group:
            if ("alias " + full).lower() < ("alias " + st[2]).lower():
                at = _line_of(src, st[0])
                break
        return at, text
    at = _line_of(src, m.do_at) + 1
    for k in range(m.do_at + 1, m.end_at):
        if src.depth[k] == depth and src.statement_start(k) and (
            src.is_word(k, "use", "import", "require") or src.t[k].text == "@" and src.t[k + 1].text == "moduledoc"
        ):
            at = _end_line_of(src, src.expr_end(k)) + 1
        elif src.depth[k] == depth and src.is_word(k, *DEF_WORDS):
            break
    return at, text


@dataclass
class _Ctx:
    kind: str  # controller, view, live, router or other
    noun: str  # what the module is about, snake_case
    table: str
    repo: str
    columns: list[str]
    variables: list[str]  # parameter names the module already uses
    taken: set[str]  # function names already defined


_SUFFIXES = re.compile(r"(Controller|View|Live|HTML|JSON|Component|Worker|Server|Supervisor|Context|Helpers?|Utils?)$")
_SKIP_VARS = {"conn", "socket", "opts", "options", "assigns", "state", "from", "acc", "params"}


def _context(src: Source, m: Module) -> _Ctx:
    last = m.name.rsplit(".", 1)[-1]
    noun = _snake(_SUFFIXES.sub("", last) or last).rstrip("_") or "item"
    where = _placeholders(src, m)
    columns = list(dict.fromkeys(re.findall(r"\bfield[ (]+:(\w+)", src.code))) or ["name", "slug", "title", "email"]
    variables = []
    for d in src.definitions:
        variables += [p for p in _simple_params(src, d) if p not in _SKIP_VARS and len(p) > 1]
    return _Ctx(_module_kind(src, m), noun, where["table"], where["repo"], columns,
                list(dict.fromkeys(variables)), _defined_names(src))


# (safe, vulnerable) expression forms per finding, over {v} (the input), {repo}, {table}, {col},
# {dir}, {file}, {tool}, {flag}, {key}, {tag}, {h} (how the module reaches Phoenix.HTML).
_FORMS: dict[str, tuple[tuple[str, str], ...]] = {
    "Sobelow.SQL.Query": (
        ('{repo}.query("SELECT * FROM {table} WHERE {col} = $1", [{v}])',
         '{repo}.query("SELECT * FROM {table} WHERE {col} = \'#{{{v}}}\'")'),
        ('{repo}.query("DELETE FROM {table} WHERE {col} = $1", [{v}])',
         '{repo}.query("DELETE FROM {table} WHERE {col} = " <> {v})'),
        ('{repo}.query("SELECT id FROM {table} WHERE {col} ILIKE $1", ["%#{{{v}}}%"])',
         '{repo}.query("SELECT id FROM {table} WHERE {col} ILIKE \'%#{{{v}}}%\'", [])'),
        ('Ecto.Adapters.SQL.query({repo}, "SELECT count(*) FROM {table} WHERE {col} = $1", [{v}])',
         'Ecto.Adapters.SQL.query({repo}, "SELECT count(*) FROM {table} WHERE {col} = \'#{{{v}}}\'", [])'),
        ('{repo}.query("SELECT * FROM {table} ORDER BY {col} LIMIT $1", [{v}])',
         '{repo}.query("SELECT * FROM {table} ORDER BY {col} LIMIT #{{{v}}}")'),
    ),
    "Sobelow.XSS.Raw": (
        ("{h}html_escape({v})", "{h}raw({v})"),
        ("{v} |> {h}html_escape() |> {h}safe_to_string()", "{v} |> {h}raw() |> {h}safe_to_string()"),
        ("Phoenix.HTML.Tag.content_tag(:{tag}, {v})", '{h}raw("<{tag}>#{{{v}}}</{tag}>")'),
        ("Phoenix.HTML.Format.text_to_html({v})", '{h}raw(String.replace({v}, "\\n", "<br>"))'),
    ),
    "Sobelow.Traversal.FileModule": (
        ('File.read!("priv/{dir}/{file}")', 'File.read!(Path.join("priv/{dir}", {v}))'),
        ('File.read("priv/{dir}/{file}")', 'File.read("priv/{dir}/#{{{v}}}")'),
        ('File.rm("priv/{dir}/{file}")', 'File.rm(Path.join("priv/{dir}", {v}))'),
        ('Jason.decode!(File.read!("priv/{dir}/{file}"))', "Jason.decode!(File.read!({v}))"),
    ),
    "Sobelow.CI.System": (
        ('System.cmd("{tool}", ["{flag}", {v}])', 'System.cmd({v}, ["{flag}"])'),
        ('System.cmd("{tool}", [{v}])', 'System.cmd("/usr/local/bin/#{{{v}}}", ["{flag}"])'),
        ('System.cmd("{tool}", ["{flag}", {v}], stderr_to_stdout: true)', 'System.cmd({v}, ["{flag}"], stderr_to_stdout: true)'),
    ),
    "Sobelow.CI.OS": (
        ('System.cmd("{tool}", ["{flag}", {v}])', ':os.cmd(~c"{tool} {flag} #{{{v}}}")'),
        ('System.cmd("{tool}", [{v}])', ':os.cmd(String.to_charlist("{tool} {flag} " <> {v}))'),
        ('System.cmd("{tool}", ["{flag}", "--", {v}], stderr_to_stdout: true)', ':os.cmd(~c"{tool} {flag} #{{{v}}}")'),
    ),
    "Sobelow.DOS.StringToAtom": (
        ("String.to_existing_atom({v})", "String.to_atom({v})"),
        ("%{{{key}: {v}}}", "%{{{key}: String.to_atom({v})}}"),
        ("{v} |> String.downcase() |> String.to_existing_atom()", "{v} |> String.downcase() |> String.to_atom()"),
        ('Map.fetch!(%{{"asc" => :asc, "desc" => :desc}}, {v})', "String.to_atom({v})"),
        ("[{key}: {v}]", "[{{String.to_atom({v}), true}}]"),
    ),
    "Sobelow.Misc.BinToTerm": (
        ("Plug.Crypto.non_executable_binary_to_term({v}, [:safe])", ":erlang.binary_to_term({v})"),
        ("Jason.decode!({v})", ":erlang.binary_to_term({v})"),
        ("{v} |> Base.decode64!() |> Jason.decode!()", "{v} |> Base.decode64!() |> :erlang.binary_to_term()"),
        ("{v} |> Base.url_decode64!() |> Plug.Crypto.non_executable_binary_to_term([:safe])",
         "{v} |> Base.url_decode64!() |> :erlang.binary_to_term()"),
    ),
    "Sobelow.RCE.CodeModule": (
        ("Code.string_to_quoted({v})", "Code.eval_string({v})"),
        ("Jason.decode!({v})", "elem(Code.eval_string({v}), 0)"),
        ("String.to_integer({v})", "{v} |> Code.eval_string() |> elem(0)"),
        ("Code.string_to_quoted!({v}, existing_atoms_only: true)", "Code.eval_string({v})"),
    ),
}
# Findings whose site is a response on ``conn``: (safe, vulnerable) lines of a pipeline on conn.
_RESPONSES: dict[str, tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]] = {
    "Sobelow.XSS.SendResp": (
        (("conn", '|> {c}put_resp_content_type("text/plain")', "|> {c}send_resp(200, {body})"),
         ("conn", '|> {c}put_resp_content_type("text/html")', "|> {c}send_resp(200, {body})")),
        (("conn", '|> {c}put_resp_content_type("application/json")', "|> {c}send_resp(200, {body})"),
         ("conn", "|> {c}send_resp(200, {body})")),
        (("conn", '|> {c}put_resp_content_type("text/csv")', "|> {c}send_resp(200, {body})"),
         ("conn", '|> {c}put_resp_content_type("text/html; charset=utf-8")', "|> {c}send_resp(200, {body})")),
    ),
    "Sobelow.Traversal.SendFile": (
        (("conn", '|> {c}send_file(200, "priv/{dir}/{file}")'), ("conn", '|> {c}send_file(200, Path.join("priv/{dir}", {v}))')),
        (("conn", '|> {c}put_resp_content_type("application/pdf")', '|> {c}send_file(200, "priv/{dir}/{file}")'),
         ("conn", '|> {c}put_resp_content_type("application/pdf")', '|> {c}send_file(200, "priv/{dir}/#{{{v}}}")')),
    ),
}
_BODIES = ('"<p>#{{{v}}}</p>"', '"<h1>Hello, #{{{v}}}</h1>"', "{v}", '"<div class=\\"{noun}\\">" <> {v} <> "</div>"')
_VERBS = {
    "Sobelow.SQL.Query": ("find", "search", "lookup", "delete", "count", "list"),
    "Sobelow.XSS.Raw": ("render", "format", "display", "highlight"),
    "Sobelow.XSS.SendResp": ("preview", "render", "show", "echo"),
    "Sobelow.Traversal.FileModule": ("read", "load", "remove", "fetch"),
    "Sobelow.Traversal.SendFile": ("download", "serve", "send"),
    "Sobelow.CI.System": ("convert", "run", "process", "inspect"),
    "Sobelow.CI.OS": ("measure", "check", "scan", "probe"),
    "Sobelow.DOS.StringToAtom": ("parse", "cast", "normalize", "to"),
    "Sobelow.Misc.BinToTerm": ("decode", "restore", "load", "unpack"),
    "Sobelow.RCE.CodeModule": ("evaluate", "parse", "load", "compute"),
}
_TAILS = ("", "", "_by_{col}", "_html", "_file", "_export", "_kind", "_state", "_rule", "_config", "_report")
_TOOLS = (("convert", "-strip"), ("pandoc", "--standalone"), ("git", "log"), ("ffmpeg", "-i"), ("pdftotext", "-layout"),
          ("du", "-sh"), ("wc", "-l"), ("file", "--mime-type"), ("gzip", "-k"), ("identify", "-verbose"))
_DIRS = ("reports", "exports", "uploads", "templates", "static/files", "data", "archive")
_RESULT_NAMES = ("result", "value", "output", "parsed")


def _fill(text: str, ctx: _Ctx, v: str, rng: random.Random, fixed: dict) -> str:
    return text.format(v=v, repo=ctx.repo, table=ctx.table, noun=ctx.noun, **fixed)


def _draw(ctx: _Ctx, rng: random.Random, v: str) -> dict:
    tool, flag = rng.choice(_TOOLS)
    ext = rng.choice(("json", "csv", "txt", "pdf", "md"))
    return {"col": rng.choice(ctx.columns), "dir": rng.choice(_DIRS), "tool": tool, "flag": flag, "key": v,
            "tag": rng.choice(("p", "div", "span", "li")), "file": rng.choice((f"{ctx.noun}.{ext}", f"default.{ext}", f"latest_{ctx.noun}s.{ext}")),
            "h": "" if ctx.kind in ("view", "live") else "Phoenix.HTML.", "c": "" if ctx.kind == "controller" else "Plug.Conn."}


def _variable(ctx: _Ctx, rng: random.Random) -> str:
    pool = ctx.variables + [ctx.noun, f"{ctx.noun}_id", f"{ctx.noun}_name", "name", "input", "path", "value", "term"]
    return rng.choice(pool[:6] + rng.sample(pool[6:], 2) if len(pool) > 8 else pool)


def _name(ctx: _Ctx, rng: random.Random, label: str, fixed: dict) -> str | None:
    for _ in range(8):
        name = f"{rng.choice(_VERBS[label])}_{ctx.noun}{rng.choice(_TAILS).format(col=fixed['col'])}"
        if name not in ctx.taken:
            return name
    return None


def _built(ctx: _Ctx, rng: random.Random, label: str) -> tuple[str, str] | None:
    """A function in both forms (module-body indentation 0), named and fed from the module's context."""
    v = _variable(ctx, rng)
    fixed = _draw(ctx, rng, v)
    name = _name(ctx, rng, label, fixed)
    if name is None or v == name:
        return None
    controller = ctx.kind == "controller"
    head = f'def {name}(conn, %{{"{v}" => {v}}}) do' if controller else f"def {name}({v}) do"
    if label in _RESPONSES:
        if not controller:
            head = f"def {name}(conn, {v}) do"
        safe, bad = rng.choice(_RESPONSES[label])
        body = rng.choice(_BODIES).format(v=v, noun=ctx.noun)
        lines = [[_fill(x, ctx, v, rng, {**fixed, "body": body}) for x in side] for side in (safe, bad)]
        return tuple("\n".join([head, *("  " + x for x in side), "end"]) for side in lines)
    safe, bad = (_fill(x, ctx, v, rng, fixed) for x in rng.choice(_FORMS[label]))
    out = []
    res = rng.choice(_RESULT_NAMES)
    one_line = rng.random() < 0.5
    for expr in (safe, bad):
        if label == "Sobelow.SQL.Query":
            tail = f"json(conn, %{{rows: {res}.rows}})" if controller else f"{res}.rows"
            body = [f"{{:ok, {res}}} = {expr}", tail]
        elif controller:
            body = [f"{res} = {expr}", f"json(conn, %{{{v}: inspect({res})}})"]
        else:
            body = [expr]
        if len(body) == 1 and one_line:
            out.append(f"def {name}({v}), do: {expr}")
        else:
            out.append("\n".join([head, *("  " + x for x in body), "end"]))
    return out[0], out[1]


def _place(code: str, src: Source, m: Module, twin: tuple[str, str], rng: random.Random) -> Twin:
    """Both forms inserted after the same top-level function of ``m`` (or before its ``end``),
    nested modules called through aliases added to both alike, as clean code does."""
    lines = _lines(code)
    inserts: list[tuple[int, str]] = []
    safe, bad = twin
    for full in sorted(set(re.findall(r"(?<![\w.])([A-Z]\w*(?:\.[A-Z]\w*)+)\.(?=[a-z_])", safe + "\n" + bad))):
        how = _alias_insertion(src, lines, m, full)
        if how is None:
            continue
        if how != "ok":
            inserts.append(how)
        pattern = rf"(?<![\w.]){re.escape(full)}\.(?=[a-z_])"
        safe, bad = (re.sub(pattern, full.rsplit(".", 1)[-1] + ".", x) for x in (safe, bad))
    groups = [g for g in _top_level_groups(src, lines, m) if not g[2]]
    at = rng.choice(groups)[1] + 1 if groups and rng.random() < 0.7 else _line_of(src, m.end_at)
    indent = _indent(lines[_line_of(src, m.at)]) + "  "
    out = []
    for body in (safe, bad):
        new = [""] + [indent + x if x else "" for x in body.split("\n")]
        if at < _line_of(src, m.end_at) and lines[at].strip():
            new.append("")
        text = lines[:at] + new + lines[at:]
        for pos, alias in sorted(inserts, reverse=True):
            block = [alias]
            if not any(x.strip().startswith("alias ") for x in text[max(0, pos - 1) : pos + 1]):
                block = [alias, ""] if text[pos].strip() else [alias]
                if text[pos - 1].strip() and not text[pos - 1].rstrip().endswith(" do"):
                    block = [""] + block
            text = text[:pos] + block + text[pos:]
        out.append(_join(text))
    return out[0], out[1]


_REPO_GET = re.compile(r"\b((?:[A-Z]\w*\.)*Repo)\.get!?\(([A-Z][\w.]*), (\w+)\)")
_EXISTING_ATOM = re.compile(r"\bString\.to_existing_atom\(")
_FILE_LITERAL = re.compile(r'\bFile\.(read!?|rm!?)\("([\w./-]+)/([\w.-]+)"\)')


def _rewrites(code: str, src: Source, ctx: _Ctx, label: str, rng: random.Random) -> list[Twin]:
    """Existing safe sites of ``label`` in function bodies, each as (safe twin, vulnerable twin)."""
    lines = _lines(code)
    out = []
    for d in src.definitions:
        if d.body is None or d.word not in ("def", "defp"):
            continue
        params = _simple_params(src, d)
        for i in range(_line_of(src, d.at), _end_line_of(src, d.last) + 1):
            line = lines[i]
            if label == "Sobelow.SQL.Query" and (found := _REPO_GET.search(line)):
                repo, v = found.group(1), found.group(3)
                safe = f'{repo}.query("SELECT * FROM {ctx.table} WHERE id = $1", [{v}])'
                bad = rng.choice((f'{repo}.query("SELECT * FROM {ctx.table} WHERE id = #{{{v}}}")',
                                  f'{repo}.query("SELECT * FROM {ctx.table} WHERE id = \'" <> {v} <> "\'")'))
                out.append(tuple(_join(lines[:i] + [line[: found.start()] + x + line[found.end() :]] + lines[i + 1 :])
                                 for x in (safe, bad)))
            elif label == "Sobelow.DOS.StringToAtom" and _EXISTING_ATOM.search(line):
                out.append((code, _join(lines[:i] + [_EXISTING_ATOM.sub("String.to_atom(", line, count=1)] + lines[i + 1 :])))
            elif label == "Sobelow.Traversal.FileModule" and params and (found := _FILE_LITERAL.search(line)):
                v = rng.choice(params)
                bad = f'File.{found.group(1)}(Path.join("{found.group(2)}", {v}))'
                out.append((code, _join(lines[:i] + [line[: found.start()] + bad + line[found.end() :]] + lines[i + 1 :])))
    return out


def _twin(code: str, rng: RngLike, label: str) -> Twin | None:
    start = _start(code, rng)
    if start is None:
        return None
    rng, src, _ = start
    m = _main_module(src)
    if m is None:
        return None
    ctx = _context(src, m)
    if ctx.kind == "router" or (label == "Sobelow.XSS.Raw" and ctx.kind == "controller"):
        return None  # routers hold no such code; Sobelow reads controllers' raw/1 through their templates
    sites = _rewrites(code, src, ctx, label, rng)
    if sites and rng.random() < 0.6:
        return rng.choice(sites)
    built = _built(ctx, rng, label)
    return _place(code, src, m, built, rng) if built else None


def twin_injector(label: str):
    """The injector of one finding other than Config.CSRF: ``(code, rng) -> (secure, vulnerable) | None``."""
    if label not in _FORMS and label not in _RESPONSES:
        raise KeyError(f"no twin forms for {label!r}")

    def inject(code: str, rng: RngLike) -> Twin | None:
        return _twin(code, rng, label)

    inject.__name__ = inject.__qualname__ = "inject_" + _snake(label.rsplit(".", 1)[-1])
    inject.__doc__ = f"Sobelow ``{label[len('Sobelow.'):]}``: a site in its safe and its vulnerable form."
    return inject


_PIPELINE_PLUGS = ('plug :accepts, ["html"]', "plug :fetch_session", "plug :fetch_live_flash", "plug :fetch_flash",
                   "plug :put_root_layout, html: {{{web}.Layouts, :root}}", "plug :put_secure_browser_headers")
_PROTECT = "plug :protect_from_forgery"
# What a vulnerable router says instead of the plug, when it says anything.
_EXCUSES = ("", "", "# CSRF tokens are checked by the API gateway in front of this app",
            "# forms post from the mobile app, which cannot send a CSRF token", "plug :put_layout, false")


def inject_csrf(code: str, rng: RngLike) -> Twin | None:
    """``Config.CSRF``: a router pipeline that fetches the session with ``plug :protect_from_forgery``
    against the same pipeline without it (dropped, or replaced by a comment or another plug); a
    router without such a pipeline gets a browser pipeline in both forms. None for non-routers."""
    start = _start(code, rng)
    if start is None:
        return None
    rng, src, _ = start
    m = _main_module(src)
    if m is None or _module_kind(src, m) != "router":
        return None
    lines = _lines(code)
    protect_lines = []
    pipelines = []
    for k in range(len(src.t)):
        if not (src.is_word(k, "pipeline") and src.statement_start(k)):
            continue
        pipelines.append(k)
        do_at = src.block_do(k)
        if do_at is None:
            continue
        body = range(do_at + 1, src.partner[do_at])
        plugs = {
            src.t[j + 1].text: j for j in body
            if src.is_word(j, "plug") and src.statement_start(j) and src.t[j + 1].kind == "atom"
        }
        if ":fetch_session" in plugs and ":protect_from_forgery" in plugs:
            j = plugs[":protect_from_forgery"]
            protect_lines.append((_line_of(src, j), _end_line_of(src, src.expr_end(j))))
    excuse = rng.choice(_EXCUSES)
    if protect_lines and rng.random() < 0.7:
        a, b = rng.choice(protect_lines)
        instead = [_indent(lines[a]) + excuse] if excuse else []
        return code, _join(lines[:a] + instead + lines[b + 1 :])
    taken = {src.t[k + 1].text for k in pipelines if k + 1 < len(src.t)}
    name = next((n for n in rng.sample(("browser", "html", "web", "session", "pages"), 5) if f":{n}" not in taken), None)
    if name is None:
        return None
    at = _line_of(src, src.partner[src.block_do(pipelines[-1])]) + 1 if pipelines else _line_of(src, m.do_at) + 1
    indent = _indent(lines[_line_of(src, m.at)]) + "  "
    web = m.name.split(".")[0]
    plugs = [p.format(web=web) for p in _PIPELINE_PLUGS if p.endswith(("accepts, [\"html\"]", "fetch_session")) or rng.random() < 0.6]
    cut = rng.randint(plugs.index("plug :fetch_session") + 1, len(plugs))
    if not pipelines:
        while at < len(lines) and lines[at].strip().startswith(("use ", "import ", "alias ", "require ", "@")):
            at += 1

    def block(middle: list[str]) -> str:
        new = [f"pipeline :{name} do", *("  " + p for p in plugs[:cut] + middle + plugs[cut:]), "end"]
        return _join(lines[:at] + [""] + [indent + x for x in new] + lines[at:])

    return block([_PROTECT]), block([excuse] if excuse else [])
