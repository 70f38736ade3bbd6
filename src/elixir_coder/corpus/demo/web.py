"""Phoenix controllers (HTML and JSON API) and views (JSON, HTML components, classic views).

Controllers call a context module (``Shop.Catalog.list_products/0`` and friends) the way the
Phoenix generators lay them out, with drawn differences: which actions exist, a loading
plug, pagination, custom member actions, documented or not. Their tests use the
``ConnCase`` shapes (``get(conn, ~p"/products")``, ``json_response/2``...).
"""

from __future__ import annotations

from elixir_coder.corpus.demo import ops_values
from elixir_coder.corpus.demo.kit import Kit, eq
from elixir_coder.corpus.demo.ex import (
    MAX_LINE,
    Clause,
    Ctx,
    Fn,
    ModSpec,
    Raw,
    Struct,
    Test,
    TestModule,
    lit,
    lit_lines,
)

CONN = "%{conn: conn}"


class Names:
    """Names a controller or view of an entity uses."""

    def __init__(self, c: Ctx):
        e, app = c.entity, c.domain.app
        self.one, self.many = e.singular, e.plural
        self.context = e.context
        self.context_mod = f"{app}.{e.context}"
        self.schema = e.camel
        self.schema_mod = f"{app}.{e.context}.{e.camel}"
        self.web = f"{app}Web"
        scope = c.name.split(".")[1] if c.name.count(".") > 1 else ""
        prefix = {"Admin": "/admin", "Api": "/api"}.get(scope, "")
        self.path = f"{prefix}/{e.plural}"
        self.title = e.human.capitalize()
        self.titles = e.human_plural.capitalize()

    def call(self, fun: str, args: str = "") -> str:
        return f"{self.context}.{fun}({args})"


def _doc(c: Ctx, fn: Fn, text: str, spec: bool = True) -> Fn:
    """Document an action with probability 0.6; documented actions get a spec half the time."""
    if c.rng.random() < 0.6:
        fn.doc = text
        if spec and c.rng.random() < 0.5:
            fn.spec = f"{fn.name}(Plug.Conn.t(), map()) :: Plug.Conn.t()"
    return fn


def _action(name: str, params: str, body: list[str], explain: str, tests: list[Test]) -> Fn:
    return Fn(name, 2, [Clause(f"conn, {params}", body)], explain=explain, tests=tests)


ROUTES = {
    "index": ("GET", ""), "show": ("GET", "/:id"), "new": ("GET", "/new"), "create": ("POST", ""),
    "edit": ("GET", "/:id/edit"), "update": ("PUT", "/:id"), "delete": ("DELETE", "/:id"),
    "export": ("GET", "/export"), "search": ("GET", "/search"), "count": ("GET", "/count"),
}


def _member(load: bool, one: str, with_params: bool) -> str:
    """The params pattern of a member action; with a loading plug the id is not needed."""
    if load:
        return f'%{{"{one}" => {one}_params}}' if with_params else "_params"
    return f'%{{"id" => id, "{one}" => {one}_params}}' if with_params else '%{"id" => id}'


def html_controller(c: Ctx) -> ModSpec:
    n, rng, e = Names(c), c.rng, c.entity
    one, many = n.one, n.many
    load = rng.random() < 0.35  # a plug loads the record for member actions
    fetched = [f"{one} = conn.assigns.{one}"] if load else [f"{one} = {n.call(f'get_{one}!', 'id')}"]
    fixture = f"{one} = {one}_fixture()"
    show_path = f'~p"{n.path}/#{{{one}}}"'
    fns: list[Fn] = []
    paged = rng.random() < 0.3
    if paged:
        fns.append(_action("index", "params", [
            "page = parse_page(params)", f"{many} = {n.call(f'list_{many}', 'page: page')}",
            f"render(conn, :index, {many}: {many}, page: page)"],
            f"`index/2` reads an optional `page` parameter (falling back to 1 on bad input) and renders "
            f"one page of {e.human_plural}.",
            [Test(f"lists {e.human_plural}", [f'conn = get(conn, ~p"{n.path}")', "",
                                             f'assert html_response(conn, 200) =~ "Listing {n.titles}"'], CONN),
             Test("tolerates a bad page number", [f'conn = get(build_conn(), ~p"{n.path}?page=abc")', "",
                                                  "assert html_response(conn, 200)"])]))
    else:
        fns.append(_action("index", "_params", [f"{many} = {n.call(f'list_{many}')}",
                                                f"render(conn, :index, {many}: {many})"],
                           f"`index/2` lists every {e.human} via `{n.context}.list_{many}/0`.",
                           [Test(f"lists all {e.human_plural}", [
                               f'conn = get(conn, ~p"{n.path}")', "",
                               f'assert html_response(conn, 200) =~ "Listing {n.titles}"'], CONN)]))
    fns.append(_action("show", _member(load, one, False), [*fetched, f"render(conn, :show, {one}: {one})"],
                       f"`show/2` renders one {e.human}" + (", loaded by the plug." if load else
                                                           f" fetched with `get_{one}!/1`, so an unknown id "
                                                           "raises and becomes a 404."),
                       [Test(f"shows {e.a}", [fixture, f"conn = get(conn, {show_path})", "",
                                              f'assert html_response(conn, 200) =~ "{n.title}"'], CONN)]))
    if rng.random() < 0.8:
        fns.append(_action("new", "_params", [f"changeset = {n.call(f'change_{one}', f'%{n.schema}{{}}')}",
                                              "render(conn, :new, changeset: changeset)"],
                           f"`new/2` renders an empty form built from `change_{one}/1`.",
                           [Test("renders the form", [f'conn = get(conn, ~p"{n.path}/new")', "",
                                                      f'assert html_response(conn, 200) =~ "New {n.title}"'], CONN)]))
        created = rng.choice(["created successfully.", "created.", "saved."])
        fns.append(_action("create", f'%{{"{one}" => {one}_params}}', [
            f"case {n.call(f'create_{one}', f'{one}_params')} do",
            f"  {{:ok, {one}}} ->", "    conn", f'    |> put_flash(:info, "{n.title} {created}")',
            f"    |> redirect(to: {show_path})", "",
            "  {:error, %Ecto.Changeset{} = changeset} ->", "    render(conn, :new, changeset: changeset)", "end"],
            f"`create/2` inserts through `{n.context}.create_{one}/1`; on success it flashes "
            f"\"{n.title} {created}\" and redirects to the new {e.human}, on a changeset error it "
            "re-renders the form with the errors.",
            [Test("redirects when data is valid", [
                f'conn = post(conn, ~p"{n.path}", {one}: @create_attrs)', "",
                "assert %{id: id} = redirected_params(conn)",
                f'assert redirected_to(conn) == ~p"{n.path}/#{{id}}"'], CONN),
             Test("renders errors when data is invalid", [
                 f'conn = post(conn, ~p"{n.path}", {one}: @invalid_attrs)', "",
                 f'assert html_response(conn, 200) =~ "New {n.title}"'], CONN)]))
    if rng.random() < 0.6:
        fns.append(_action("edit", _member(load, one, False), [
            *fetched, f"changeset = {n.call(f'change_{one}', one)}",
            f"render(conn, :edit, {one}: {one}, changeset: changeset)"],
            f"`edit/2` renders the form for an existing {e.human}.",
            [Test("renders the edit form", [fixture, f'conn = get(conn, ~p"{n.path}/#{{{one}}}/edit")', "",
                                            f'assert html_response(conn, 200) =~ "Edit {n.title}"'], CONN)]))
        fns.append(_action("update", _member(load, one, True), [
            *fetched, "", f"case {n.call(f'update_{one}', f'{one}, {one}_params')} do",
            f"  {{:ok, {one}}} ->", "    conn", f'    |> put_flash(:info, "{n.title} updated.")',
            f"    |> redirect(to: {show_path})", "",
            "  {:error, %Ecto.Changeset{} = changeset} ->",
            f"    render(conn, :edit, {one}: {one}, changeset: changeset)", "end"],
            f"`update/2` applies `{n.context}.update_{one}/2` and either redirects with a flash or "
            "re-renders the edit form.",
            [Test("redirects after an update", [fixture, f"conn = put(conn, {show_path}, {one}: @create_attrs)",
                                                "", f"assert redirected_to(conn) == {show_path}"], CONN)]))
    if rng.random() < 0.6:
        fns.append(_action("delete", _member(load, one, False), [
            *fetched, f"{{:ok, _{one}}} = {n.call(f'delete_{one}', one)}", "", "conn",
            f'|> put_flash(:info, "{n.title} deleted.")', f'|> redirect(to: ~p"{n.path}")'],
            f"`delete/2` deletes the {e.human}, asserting success with a match on `{{:ok, _}}`, and "
            "redirects to the index.",
            [Test(f"deletes the {e.human}", [fixture, f"conn = delete(conn, {show_path})", "",
                                             f'assert redirected_to(conn) == ~p"{n.path}"', "",
                                             "assert_error_sent(404, fn ->",
                                             f"  get(build_conn(), {show_path})", "end)"], CONN)]))
    fns += _custom_actions(c, n, "html")
    for fn in fns:
        _doc(c, fn, _action_doc(fn.name, e))
    helpers = []
    if paged:
        helpers.append(Fn.simple("parse_page", ["params"], [
            'case Integer.parse(Map.get(params, "page", "1")) do', '  {page, ""} when page > 0 -> page',
            "  _ -> 1", "end"], public=False))
    header = [f"use {n.web}, :controller", "", f"alias {n.context_mod}"]
    if any(f"%{n.schema}{{" in line for fn in fns for cl in fn.clauses for line in cl.body):
        header.append(f"alias {n.schema_mod}")
    if load:
        members = [f":{x.name}" for x in fns if x.name in ("show", "edit", "update", "delete")]
        header += ["", f"plug :load_{one} when action in [{', '.join(members)}]"]
        helpers.append(Fn.simple(f"load_{one}", ["conn", "_opts"], [
            f'assign(conn, :{one}, {n.call(f"get_{one}!", "conn.params[" + lit("id") + "]")})'], public=False))
    return _controller_spec(c, n, fns, helpers, header, "html", load, paged)


def json_controller(c: Ctx) -> ModSpec:
    n, rng, e = Names(c), c.rng, c.entity
    one, many = n.one, n.many
    fixture = f"{one} = {one}_fixture()"
    show_path = f'~p"{n.path}/#{{{one}}}"'
    get_one = f"{one} = {n.call(f'get_{one}!', 'id')}"
    fns = [
        _action("index", "_params", [f"{many} = {n.call(f'list_{many}')}", f"render(conn, :index, {many}: {many})"],
                f"`index/2` renders every {e.human} as JSON through the `:index` view function.",
                [Test(f"lists all {e.human_plural}", [f'conn = get(conn, ~p"{n.path}")', "",
                                                     'assert json_response(conn, 200)["data"] == []'], CONN)]),
        _action("create", f'%{{"{one}" => {one}_params}}', [
            f"with {{:ok, %{n.schema}{{}} = {one}}} <- {n.call(f'create_{one}', f'{one}_params')} do",
            "  conn", "  |> put_status(:created)", f'  |> put_resp_header("location", {show_path})',
            f"  |> render(:show, {one}: {one})", "end"],
            "`create/2` answers 201 with a `location` header on success; errors fall through the "
            "`with` to the fallback controller, which renders them as 422.",
            [Test("renders the record when data is valid", [
                f'conn = post(conn, ~p"{n.path}", {one}: @create_attrs)', "",
                'assert %{"id" => _id} = json_response(conn, 201)["data"]'], CONN),
             Test("renders errors when data is invalid", [
                 f'conn = post(conn, ~p"{n.path}", {one}: @invalid_attrs)', "",
                 'assert json_response(conn, 422)["errors"] != %{}'], CONN)]),
        _action("show", '%{"id" => id}', [get_one, f"render(conn, :show, {one}: {one})"],
                f"`show/2` renders one {e.human}; an unknown id raises `Ecto.NoResultsError`, which "
                "Phoenix turns into a 404.",
                [Test(f"renders {e.a}", [fixture, f"conn = get(conn, {show_path})", "",
                                         f'assert json_response(conn, 200)["data"]["id"] == {one}.id'], CONN)]),
    ]
    if rng.random() < 0.7:
        fns.append(_action("update", f'%{{"id" => id, "{one}" => {one}_params}}', [
            get_one, "", f"with {{:ok, %{n.schema}{{}} = {one}}} <- {n.call(f'update_{one}', f'{one}, {one}_params')} do",
            f"  render(conn, :show, {one}: {one})", "end"],
            "`update/2` updates through the context and renders the result, leaving errors to the fallback.",
            [Test(f"updates {e.a}", [fixture, f"conn = put(conn, {show_path}, {one}: @create_attrs)", "",
                                     f'assert json_response(conn, 200)["data"]["id"] == {one}.id'], CONN)]))
    if rng.random() < 0.7:
        fns.append(_action("delete", '%{"id" => id}', [
            get_one, "", f"with {{:ok, %{n.schema}{{}}}} <- {n.call(f'delete_{one}', one)} do",
            '  send_resp(conn, :no_content, "")', "end"],
            "`delete/2` answers 204 No Content with an empty body.",
            [Test(f"deletes {e.a}", [fixture, f"conn = delete(conn, {show_path})", "",
                                     "assert response(conn, 204)"], CONN)]))
    fns += _custom_actions(c, n, "json")
    too_long = [fn for fn in fns if any(len(line) + 4 > 98 for cl in fn.clauses for line in cl.body)]
    for fn in too_long:  # split a long ``with`` head the way mix format would not need to
        body = fn.clauses[0].body
        for i, line in enumerate(body):
            if line.startswith("with ") and len(line) + 4 > 98:
                call = line.split(" <- ", 1)[1][: -len(" do")]
                body[i:i + 1] = [f"result = {call}", "", f"with {line.split(' <- ')[0][5:]} <- result do"]
                break
    for fn in fns:
        _doc(c, fn, _action_doc(fn.name, e))
    header = [f"use {n.web}, :controller", "", f"alias {n.context_mod}", f"alias {n.schema_mod}", "",
              f"action_fallback {n.web}.FallbackController"]
    return _controller_spec(c, n, fns, [], header, "json", False, False)


def _custom_actions(c: Ctx, n: Names, style: str) -> list[Fn]:
    e, rng, out = c.entity, c.rng, []
    one, many = n.one, n.many
    if style == "json":
        if rng.random() < 0.5:
            out.append(_action("count", "_params", [f"json(conn, %{{count: {n.call(f'count_{many}')}}})"],
                               "`count/2` returns `{\"count\": n}` built with `json/2`, no view involved.",
                               [Test(f"counts {e.human_plural}", [f'conn = get(conn, ~p"{n.path}/count")', "",
                                                                  'assert json_response(conn, 200) == %{"count" => 0}'],
                                     CONN)]))
        return out
    pick = rng.random()
    if pick < 0.35:
        out.append(_action("export", "_params", [
            f"csv = {n.call(f'export_{many}_csv')}", "",
            f'send_download(conn, {{:binary, csv}}, filename: "{many}.csv", content_type: "text/csv")'],
            f"`export/2` sends every {e.human} as a `{many}.csv` download with `send_download/3`.",
            [Test("sends a CSV download", [f'conn = get(conn, ~p"{n.path}/export")', "",
                                          "assert response(conn, 200)",
                                          '[disposition] = get_resp_header(conn, "content-disposition")',
                                          f'assert disposition =~ "{many}.csv"'], CONN)]))
    elif pick < 0.7:
        out.append(_action("search", '%{"q" => query}', [
            f"{many} = {n.call(f'search_{many}', 'String.trim(query)')}", f"render(conn, :index, {many}: {many})"],
            f"`search/2` trims the `q` parameter, asks `{n.context}.search_{many}/1` and reuses the index "
            "template.",
            [Test("renders matches", [f'conn = get(conn, ~p"{n.path}/search?q=x")', "",
                                      f'assert html_response(conn, 200) =~ "Listing {n.titles}"'], CONN)]))
    return out


def _action_doc(name: str, e) -> str:
    return {
        "index": f"Lists {e.human_plural}.",
        "show": f"Shows a single {e.human}.",
        "new": f"Renders the form for a new {e.human}.",
        "create": f"Creates {e.a} from the submitted params.",
        "edit": f"Renders the form for editing {e.a}.",
        "update": f"Updates {e.a} from the submitted params.",
        "delete": f"Deletes {e.a}.",
        "export": f"Sends all {e.human_plural} as a CSV file.",
        "search": f"Searches {e.human_plural} by the `q` parameter.",
        "count": f"Returns the number of {e.human_plural} as JSON.",
    }[name]


def _controller_spec(c: Ctx, n: Names, fns: list[Fn], helpers: list[Fn], header: list[str], style: str,
                     load: bool, paged: bool) -> ModSpec:
    e, row = c.entity, c.samples[0]
    routes = []
    for fn in fns:
        verb, suffix = ROUTES[fn.name]
        routes.append(f"`{verb} {n.path}{suffix}` ({fn.name})")
    kind = "a JSON API" if style == "json" else "browser"
    doc = (f"{'JSON API' if style == 'json' else 'Browser'} endpoints for {e.human_plural}.\n\n"
           f"Data access goes through the `{n.context_mod}` context.")
    summary = (f"`{c.name}` is a Phoenix controller serving {kind} requests for {e.human_plural} under "
               f"`{n.path}`. It handles " + ", ".join(routes) + f", and delegates all data access to the "
               f"`{n.context_mod}` context instead of calling the repo directly.")
    notes = [fn.explain for fn in fns]
    if load:
        notes.append(f"A function plug, `load_{n.one}/2`, fetches the {e.human} once for the member "
                     "actions and stores it in `conn.assigns`, so those actions ignore the id param.")
    if style == "json":
        notes.append(f"`action_fallback {n.web}.FallbackController` handles any non-`conn` return, such "
                     "as `{:error, changeset}` from a failed `with`.")
    fields = [f for f in e.fields if f.type not in ("datetime",)]
    create = {f.name: (row[f.name] if f.type != "date" else row[f.name].isoformat()) for f in fields}
    invalid = {f.name: None for f in fields}
    blocks = [lit_lines(create, 2, "@create_attrs "), lit_lines(invalid, 2, "@invalid_attrs ")]
    if any("_fixture()" in line for fn in fns for t in fn.tests for line in t.lines):
        blocks.insert(0, [f"import {n.context_mod}Fixtures"])
    test = TestModule(aliases=[], blocks=blocks, use=f"use {n.web}.ConnCase, async: true")
    return ModSpec(c.name, "phoenix_controller", doc, header, [], fns + helpers, test, summary, notes=notes, ctx=c,
                   facts={"path": n.path})


# -- views ---------------------------------------------------------------------------


def _json_value(f, one: str, value):
    """(Elixir expression, Python value it yields) for one field in a JSON view."""
    if f.type == "date":
        return f"Date.to_iso8601({one}.{f.name})", value.isoformat()
    if f.type == "datetime":
        return f"DateTime.to_iso8601({one}.{f.name})", value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{one}.{f.name}", value


def json_view(c: Ctx) -> ModSpec:
    n, rng, e = Names(c), c.rng, c.entity
    one, many, row = n.one, n.many, c.samples[0]
    fields = [f for f in e.fields if rng.random() < 0.75] or [e.label]
    data = {"id": Raw(f"{one}.id")}
    expected = {"id": row["id"]}
    for f in fields:
        expr, value = _json_value(f, one, row[f.name])
        data[f.name] = Raw(expr)
        expected[f.name] = value
    body = [line[4:] for line in lit_lines(data, 4)]
    meta = rng.random() < 0.35
    sample = Struct(n.schema, {k: v for k, v in row.items()})
    attr = f"@{one}"
    if meta:
        index = _view_fn("index", f"%{{{many}: {many}, page: page}}", [
            "%{", f"  data: Enum.map({many}, &data/1),", f"  meta: %{{page: page, count: length({many})}}", "}"],
            f"Renders a page of {e.human_plural} with paging metadata.",
            f"`index/1` maps every {e.human} through the private `data/1` and adds `meta` with the page "
            "number and the count on this page.",
            [Test("adds paging metadata", eq_lines(f"{c.short}.index(%{{{many}: [{attr}], page: 2}})",
                                                    {"data": [expected], "meta": {"page": 2, "count": 1}}))])
    else:
        index = _view_fn("index", f"%{{{many}: {many}}}", [f"%{{data: for({one} <- {many}, do: data({one}))}}"],
                         f"Renders a list of {e.human_plural}.",
                         f"`index/1` renders `%{{data: [...]}}` with one entry per {e.human}.",
                         [Test(f"renders a list of {e.human_plural}",
                               eq_lines(f"{c.short}.index(%{{{many}: [{attr}]}})", {"data": [expected]}))])
    show = _view_fn("show", f"%{{{one}: {one}}}", [f"%{{data: data({one})}}"], f"Renders a single {e.human}.",
                    f"`show/1` wraps one {e.human} in `%{{data: ...}}`.",
                    [Test(f"renders {e.a}", eq_lines(f"{c.short}.show(%{{{one}: {attr}}})", {"data": expected}))])
    data_fn = Fn("data", 1, [Clause(f"%{n.schema}{{}} = {one}", body)], public=False)
    shown = ", ".join(f"`{k}`" for k in data)
    converted = [f.name for f in fields if f.type in ("date", "datetime")]
    doc = f"Renders {e.human_plural} as JSON for the API.\n\nOnly {shown} are exposed."
    summary = (f"`{c.name}` is a Phoenix 1.7 JSON view module: controllers call `render(conn, :index, ...)` "
               f"or `render(conn, :show, ...)` and Phoenix calls the function of that name with the "
               f"assigns. The private `data/1` matches a `%{n.schema}{{}}` struct and exposes {shown}"
               + (f", converting {', '.join(converted)} to ISO 8601 strings." if converted else "."))
    test = TestModule(aliases=[c.name, n.schema_mod], blocks=[lit_lines(sample, 2, attr + " ")])
    return ModSpec(c.name, "phoenix_view", doc, [f"alias {n.schema_mod}"], [], [index, show, data_fn], test,
                   summary, notes=[index.explain, show.explain], ctx=c)


def eq_lines(call: str, expected) -> list[str]:
    return eq(call, expected)


def _view_fn(name: str, args: str, body: list[str], doc: str, explain: str, tests: list[Test]) -> Fn:
    return Fn(name, 1, [Clause(args, body)], doc=doc, explain=explain, tests=tests)


def render_lines(c: Ctx, fun: str, args: str) -> list[str]:
    """``html = render_component(&Module.fun/1, args)``, via a bound capture when too long."""
    line = f"html = render_component(&{c.short}.{fun}/1, {args})"
    if len(line) + 8 <= MAX_LINE:
        return [line]
    return [f"component = &{c.short}.{fun}/1", f"html = render_component(component, {args})"]


def _components(c: Ctx, n: Names) -> tuple[list[Fn], list[str]]:
    """Function components about the entity, with render_component tests and notes."""
    e, rng, row = c.entity, c.rng, c.samples[0]
    one, many = n.one, n.many
    fns: list[Fn] = []
    notes: list[str] = []
    status = e.of("status")
    if status:
        f = status[0]
        classes = rng.choice([("badge-gray", "badge-blue", "badge-green"), ("muted", "info", "success"),
                              ("bg-zinc-100", "bg-amber-100", "bg-emerald-100")])
        fns.append(Fn.simple(f"{f.name}_badge", ["assigns"], [
            '~H"""', f'<span class={{["badge", {f.name}_class(@{f.name})]}}><%= @{f.name} %></span>', '"""'],
            doc=f"Badge showing {e.a}'s `{f.name}`.",
            explain=f"`{f.name}_badge/1` renders the `{f.name}` atom in a span whose CSS class comes from "
            f"the multi-clause private `{f.name}_class/1`.",
            tests=[Test(f"shows the {f.name}", [
                *render_lines(c, f"{f.name}_badge", f"{f.name}: {lit(row[f.name])}"), "",
                f'assert html =~ "{row[f.name]}"',
                f'assert html =~ "{classes[f.values.index(str(row[f.name])) % 3]}"'])]))
        clauses = [Clause(f":{v}", [lit(classes[i % 3])], oneline=True) for i, v in enumerate(f.values)]
        fns.append(Fn(f"{f.name}_class", 1, clauses, public=False))
        notes.append(f"Each `{f.name}` value maps to its own CSS class by pattern matching.")
    flags = e.of("flag")
    if flags and rng.random() < 0.7:
        f = rng.choice(flags)
        word = f.name.replace("_", " ").capitalize()
        fns.append(Fn.simple(f"{f.name}_indicator", ["assigns"], [
            '~H"""', f'<span :if={{@{f.name}}} class="indicator on">{word}</span>',
            f'<span :if={{!@{f.name}}} class="indicator off">Not {word.lower()}</span>', '"""'],
            doc=f"Shows whether {e.a} is {f.name.replace('_', ' ')}.",
            explain=f"`{f.name}_indicator/1` uses two `:if` attributes so exactly one span renders.",
            tests=[Test(f"shows {f.name.replace('_', ' ')} state", [
                *render_lines(c, f"{f.name}_indicator", f"{f.name}: false"), "",
                f'assert html =~ "Not {word.lower()}"'])]))
    money = e.of("money")
    if money and rng.random() < 0.7:
        f = money[0]
        fns.append(Fn.simple(f.name, ["assigns"], [
            f"assigns = assign(assigns, :formatted, format_cents(assigns.{f.name}))", "", '~H"""',
            '<span class="amount"><%= @formatted %></span>', '"""'],
            doc=f"Renders an amount in cents, such as {e.a}'s `{f.name}`, with two decimals.",
            explain=f"`{f.name}/1` computes the formatted amount with `assign/3` before the template, "
            "keeping logic out of the markup.",
            tests=[Test("formats cents", [
                *render_lines(c, f.name, f"{f.name}: {lit(row[f.name])}"), "",
                f'assert html =~ "{row[f.name] // 100}.{row[f.name] % 100:02d}"'])]))
        fns.append(ops_values.money_helper())
    others = [f for f in e.fields if f.type in ("string", "code", "email", "count", "int") and f.name != e.label.name]
    if others and rng.random() < 0.6:
        f = rng.choice(others)
        item = {"id": row["id"], e.label.name: row[e.label.name], f.name: row[f.name]}
        fns.append(Fn.simple(f"{one}_card", ["assigns"], [
            '~H"""', f'<article class="card" id={{"{one}-#{{@{one}.id}}"}}>', f"  <h3><%= @{one}.{e.label.name} %></h3>",
            f"  <p><%= @{one}.{f.name} %></p>", "</article>", '"""'],
            doc=f"Card showing {e.a}'s `{e.label.name}` and `{f.name}`.",
            explain=f"`{one}_card/1` expects the {e.human} under `@{one}` and renders its `{e.label.name}` "
            f"as a heading with `{f.name}` below.",
            tests=[Test("shows the card", [*lit_lines(item, 0, f"{one} = "),
                                           *render_lines(c, f"{one}_card", f"{one}: {one}"), "",
                                           f"assert html =~ {lit(str(row[e.label.name]))}",
                                           f"assert html =~ {lit(str(row[f.name]))}"])]))
    label = e.label.name
    fns.append(Fn.simple(f"{one}_list", ["assigns"], [
        '~H"""', f'<ul class="{many.replace("_", "-")}">', f'  <li :for={{{one} <- @{many}}} id={{"{one}-#{{{one}.id}}"}}>',
        f"    <%= {one}.{label} %>", "  </li>", "</ul>", '"""'],
        doc=f"Lists {e.human_plural} by `{label}`, one `<li>` each with a DOM id.",
        explain=f"`{one}_list/1` loops with `:for` and gives every item an id like `{one}-42`, handy "
        "for tests and LiveView updates.",
        tests=[Test(f"lists {e.human_plural}", [
            *render_lines(c, f"{one}_list", f"{many}: @{many}"), "",
            *[f"assert html =~ {lit(str(r[label]))}" for r in c.samples[:2]]])]))
    return fns, notes


def html_view(c: Ctx, style: str) -> ModSpec:
    n, e = Names(c), c.entity
    fns, notes = _components(c, n)
    if style == "html":
        header = [f"use {n.web}, :html", "", f'embed_templates "{n.one}_html/*"']
        doc = (f"HTML rendering for {e.human_plural}: the templates in `{n.one}_html/` plus small "
               "function components they share.")
        lead = (f"`{c.name}` is a Phoenix 1.7 HTML module: `embed_templates` compiles every template in "
                f"`{n.one}_html/` into a function, and the module adds function components for "
                f"{e.human_plural} written with the `~H` sigil.")
    else:
        header = ["use Phoenix.Component"]
        doc = f"Reusable function components for {e.human_plural}."
        lead = (f"`{c.name}` is a module of Phoenix function components for {e.human_plural}; each "
                "takes `assigns` and returns a `~H` template, so they can be called as "
                f"`<.{n.one}_list {n.many}={{@{n.many}}} />` from any template that imports it.")
    summary = lead + " " + " ".join(fn.explain for fn in fns if fn.explain)
    labels = [{"id": r["id"], e.label.name: r[e.label.name]} for r in c.samples]
    test = TestModule(aliases=[c.name], blocks=[["import Phoenix.LiveViewTest"], lit_lines(labels, 2, f"@{n.many} ")])
    return ModSpec(c.name, "phoenix_view", doc, header, [], fns, test, summary, notes=notes, ctx=c)


VIEW_OPS = (ops_values.op_format, ops_values.op_label, ops_values.op_classify, ops_values.op_row,
            ops_values.op_money, ops_values.op_normalize, ops_values.op_until, ops_values.op_validate)


def classic_view(c: Ctx) -> ModSpec:
    n, e = Names(c), c.entity
    kit = Kit(c)
    titles = [("index", f"All {e.human_plural}"), ("show", f"{e.human.capitalize()} details"),
              ("new", f"New {e.human}"), ("edit", f"Edit {e.human}")]
    chosen = [t for t in titles if c.rng.random() < 0.7] or titles[:1]
    fallback = e.human_plural.capitalize()
    clauses = [Clause(f":{a}", [lit(t)], oneline=True) for a, t in chosen] + [
        Clause("_action", [lit(fallback)], oneline=True)]
    kit.add(Fn("page_title", 1, clauses, doc="Title for the page rendered by `action`.",
               spec="page_title(atom()) :: String.t()",
               explain=f"`page_title/1` pattern-matches the action atom, e.g. `:{chosen[0][0]}` gives "
               f"\"{chosen[0][1]}\", and falls back to \"{fallback}\".",
               tests=[Test("titles known actions", eq(f"{c.short}.page_title(:{chosen[0][0]})", chosen[0][1])),
                      Test("falls back", eq(f"{c.short}.page_title(:other)", fallback))]))
    ops = list(VIEW_OPS)
    c.rng.shuffle(ops)
    for op in ops:
        if len(kit.fns) >= c.rng.randint(3, 4):
            break
        op(kit)
    fns = kit.fns + list(kit.helpers.values())
    blocks = [list(kit.attrs)] if kit.attrs else []
    doc = f"Helpers for the {e.human} templates."
    summary = (f"`{c.name}` is a classic Phoenix view (`use {n.web}, :view`): besides rendering the "
               f"{e.human} templates it holds presentation helpers the templates call, all of them pure "
               "functions.")
    test = TestModule(aliases=[c.name], blocks=[lit_lines(c.samples, 2, f"{c.attr} ")])
    return ModSpec(c.name, "phoenix_view", doc, [f"use {n.web}, :view"], blocks, fns, test, summary,
                   notes=[fn.explain for fn in kit.fns], ctx=c)


def build_view(c: Ctx, style: str) -> ModSpec:
    if style == "json":
        return json_view(c)
    if style == "view":
        return classic_view(c)
    return html_view(c, style)


def build_controller(c: Ctx, style: str) -> ModSpec:
    return json_controller(c) if style == "json" else html_controller(c)
