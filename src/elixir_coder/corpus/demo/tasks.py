"""Everything said about a module besides its source: its ExUnit test, explanations, and
clarifying questions for ambiguous requests, plus the JSONL records built from them.

All of it is rendered from the same ModSpec as the source, so a test calls functions that
exist with the arity they have, and an explanation names what the code really does.
"""

from __future__ import annotations

import random
import re

from elixir_coder.corpus.demo.ex import MAX_LINE, Fn, ModSpec, Test, string

TEST_BODY = "      "


def _test_lines(t: Test, indent: str) -> list[str]:
    ctx = f", {t.context}" if t.context else ""
    head = f"{indent}test {string(t.name)}{ctx} do"
    body: list[str] = []
    lines = t.lines
    for i, line in enumerate(lines):
        line = (indent + "  " + line) if line else ""
        var, eq, expr = line.partition(" = ")
        if len(line) > MAX_LINE and eq and var.strip().isidentifier():
            # mix format breaks a long binding after "=" and sets the now multi-line
            # expression apart from its neighbours with blank lines
            pad = " " * (len(var) - len(var.lstrip()))
            if body and body[-1]:
                body.append("")
            body += [f"{var} =", f"{pad}  {expr}"]
            if i + 1 < len(lines) and lines[i + 1]:
                body.append("")
        else:
            body.append(line)
    return [head, *body, f"{indent}end"]


def render_test(spec: ModSpec) -> str:
    """The ExUnit module for ``spec``: one ``describe`` per tested function."""
    tm = spec.test
    lines = [f"defmodule {spec.name}Test do", f"  {tm.use}"]
    if tm.aliases:
        lines += [""] + [f"  alias {a}" for a in sorted(tm.aliases)]
    used = "\n".join(line for t in _all_tests(spec) for line in t.lines)
    for block in tm.blocks:
        attr = block[0].strip().split(" ", 1)[0]
        if attr.startswith("@") and attr not in used:
            continue  # a sample attribute no test reads would only draw a compiler warning
        lines += [""] + [b if b.startswith("  ") or not b else "  " + b for b in block]
    for t in tm.extra:
        lines += [""] + _test_lines(t, "  ")
    for fn in spec.fns:
        if not fn.tests:
            continue
        lines += ["", f'  describe "{fn.name}/{fn.arity}" do']
        for i, t in enumerate(fn.tests):
            if i:
                lines.append("")
            lines += _test_lines(t, "    ")
        lines.append("  end")
    lines.append("end")
    return "\n".join(lines) + "\n"


def _all_tests(spec: ModSpec) -> list[Test]:
    return spec.test.extra + [t for fn in spec.fns for t in fn.tests]


def _rng(seed: int, index: int) -> random.Random:
    """A generator per module, so prose choices do not shift when another module changes."""
    return random.Random(seed * 1_000_003 + index)


# -- explanations -----------------------------------------------------------------------

MODULE_ASKS = (
    "Explain what this module does.",
    "What does the following Elixir module do?",
    "Walk me through this module.",
    "Summarize the behaviour of this code.",
    "Can you explain this Elixir code to a new team member?",
)
FUNCTION_ASKS = (
    "Explain what this function does.",
    "What does this function return, and how?",
    "Walk me through this function.",
)

CLOSERS = {
    "plain": "Because the functions are pure, they are easy to unit test with literal data, as the "
             "accompanying tests do.",
    "genserver": "All state lives in the process; callers never touch it directly, which serialises "
                 "access without locks.",
    "supervisor": "The supervisor itself holds no business logic; it only decides what runs and how "
                  "failures are contained.",
    "ecto_schema": "Nothing here talks to the database directly: the changesets only describe and "
                   "validate changes, and a context module or `Repo` applies them.",
    "phoenix_controller": "The actions stay thin: parsing params, calling the context and choosing "
                          "a response.",
    "phoenix_view": "It contains presentation logic only; data is fetched elsewhere and passed in "
                    "as assigns.",
    "pipeline": "Since every stage is lazy, the same functions work on a file stream, a list in a "
                "test, or any other enumerable.",
}


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?", ")")) else text + "."


def explain_module(spec: ModSpec, rng: random.Random) -> str:
    notes = [_sentence(n) for n in spec.notes if n]
    if len(notes) > 7:
        notes = notes[:7]
    paragraphs = [_sentence(spec.summary)]
    if notes:
        paragraphs.append(" ".join(notes))
    paragraphs.append(CLOSERS[spec.kind])
    return "\n\n".join(paragraphs)


_CALL = re.compile(r"\b((?:[A-Z][A-Za-z]*\.)+[a-z_][a-z0-9_]*[?!]?|:[a-z]+\.[a-z_]+)\(")
_PIPED = re.compile(r"\|> ([a-z_][a-z0-9_]*[?!]?)\(")


def explain_function(spec: ModSpec, fn: Fn, body: str) -> str:
    """Several sentences on one function: what it does, how (calls used), and its contract."""
    parts = [_sentence(fn.explain)] if fn.explain else []
    calls = []
    for name in _CALL.findall(body) + _PIPED.findall(body):
        if name not in calls:
            calls.append(name)
    if calls:
        shown = ", ".join(f"`{c}`" for c in calls[:5])
        parts.append(f"Along the way it calls {shown}.")
    clause = fn.clauses[0]
    if clause.guard:
        parts.append(f"The guard `when {clause.guard}` means any other input fails with a "
                     "`FunctionClauseError` instead of producing a wrong result.")
    if "\\\\" in clause.args:
        defaults = [a.strip() for a in clause.args.split(",") if "\\\\" in a]
        parts.append("Default arguments (" + ", ".join(f"`{d}`" for d in defaults) + ") make the shorter "
                     "arities convenient.")
    if fn.spec:
        ret = fn.spec.split(" :: ", 1)[1]
        parts.append(f"According to its `@spec` it returns `{ret}`.")
    parts.append(f"It belongs to `{spec.name}`" + {
        "genserver": ", a GenServer, and runs in the caller's process.",
        "phoenix_controller": ", a Phoenix controller, and receives the `conn` plus request params.",
        "ecto_schema": ", an Ecto schema module.",
    }.get(spec.kind, "."))
    return " ".join(parts)


# -- clarifications ----------------------------------------------------------------------


def _fields(spec: ModSpec, *types: str) -> list[str]:
    return [f.name for f in spec.ctx.entity.fields if not types or f.type in types]


def _public(spec: ModSpec) -> list[Fn]:
    return [fn for fn in spec.fns if fn.public and fn.doc and fn.name != "start_link"]


def _clar_plain(spec: ModSpec, rng: random.Random) -> list[tuple[str, str]]:
    e = spec.ctx.entity
    fns = _public(spec)
    fn = rng.choice(fns)
    fields = _fields(spec)
    f1, f2 = rng.sample(fields, 2) if len(fields) > 1 else (fields[0], fields[0])
    out = [
        (f"Make `{fn.name}` faster.",
         f"How large are the {e.human_plural} lists that reach `{fn.name}/{fn.arity}` in practice, and is "
         "it called once per request or inside a loop? For a few hundred items the cost is probably "
         "elsewhere; for large lists, should the data be pre-indexed (for example a map by `id`), or "
         "should the work move into the database query?"),
        (f"Handle missing {f1.replace('_', ' ')} values in {spec.ctx.short}.",
         f"When a {e.human} has no `{f1}`, should it be skipped, treated as a default (zero or an empty "
         "string), or reported as an error? And should a `nil` value and a missing key be handled the "
         "same way?"),
        (f"Sort the {e.human_plural} properly.",
         f"Sort by which field, `{f1}` or `{f2}`? Ascending or descending, how should ties be broken, "
         "and should text be compared case-insensitively?"),
    ]
    if _fields(spec, "money"):
        out.append((f"Support multiple currencies in the {e.human} amounts.",
                    "Should amounts in different currencies be kept apart (totals per currency) or "
                    "converted to one base currency? If converted, where do the exchange rates come from, "
                    "and at which date should they apply?"))
    return out


def _clar_genserver(spec: ModSpec, rng: random.Random) -> list[tuple[str, str]]:
    e, short = spec.ctx.entity, spec.ctx.short
    return [
        (f"Make the {short} survive restarts.",
         "Which state has to survive: everything, or only part of it? Should it be persisted (DETS, "
         f"the database) or rebuilt in `init/1` from the source of the {e.human_plural}? How much loss "
         "after a crash is acceptable, and does this cover node restarts or only process crashes?"),
        (f"{short} is a bottleneck, fix it.",
         "What exactly is slow: calls waiting in the mailbox, or the work inside a callback? Do you have "
         "numbers such as message queue length or call latency? The fixes differ a lot: moving reads "
         "to ETS, sharding by key across several processes, or turning some calls into casts."),
        (f"Run one {short} per customer.",
         "How are processes looked up: a `Registry` keyed by customer id, or names passed around? "
         "Should they start lazily under a `DynamicSupervisor` on first use, and should idle ones stop "
         "after a timeout? Roughly how many customers are active at once?"),
    ]


def _clar_supervisor(spec: ModSpec, rng: random.Random) -> list[tuple[str, str]]:
    strategy = spec.facts.get("strategy", ":one_for_one")
    return [
        ("Restart the workers less aggressively.",
         "Do you mean allowing fewer restarts before the supervisor gives up (`max_restarts` / "
         "`max_seconds`), or waiting between restarts? Supervisors have no backoff, so a delay would "
         f"have to live in the child. Should one failing child affect its siblings? It uses `{strategy}` "
         "today."),
        (f"Add the new worker to {spec.ctx.short}.",
         "Which module, and where in the child list? Does it need the other children to be running "
         "first (order matters on start-up and with `:rest_for_one`)? Should it be `:permanent`, "
         "`:transient` or `:temporary`, and what arguments does it take?"),
    ]


def _clar_schema(spec: ModSpec, rng: random.Random) -> list[tuple[str, str]]:
    e = spec.ctx.entity
    f = rng.choice(_fields(spec, "text", "string", "code", "email", "money", "count", "int", "float")
                   or _fields(spec))
    return [
        (f"Add validation for the {f.replace('_', ' ')} field.",
         f"What makes a `{f}` valid: a length or numeric range, a format, a fixed set of values? "
         "Should the rule apply on both create and update, and what should happen to existing rows "
         "that break it?"),
        (f"Make {e.human} {f.replace('_', ' ')}s unique.",
         f"Unique across all {e.human_plural}, or per owner/account? Case-insensitive? This needs a "
         "unique index in a migration plus `unique_constraint/3` in the changeset; is adding both fine, "
         "and are there duplicates in the data already?"),
        (f"Add soft delete to {e.human_plural}.",
         f"Should deleted {e.human_plural} disappear from every query by default or only from "
         "listings? Do they need to be restorable, and who may still see them? A `deleted_at` "
         "timestamp or a boolean flag?"),
    ]


def _clar_controller(spec: ModSpec, rng: random.Random) -> list[tuple[str, str]]:
    e = spec.ctx.entity
    fields = _fields(spec)
    f1, f2 = (rng.sample(fields, 2) if len(fields) > 1 else (fields[0], fields[0]))
    path = spec.facts.get("path", f"/{e.plural}")
    return [
        (f"Add pagination to the {e.human_plural} index.",
         "Page numbers with an offset, or cursor-based? What default and maximum page size? Should the "
         "response include the total count, and for HTML do you want numbered links or just "
         "next/previous?"),
        (f"Restrict access to {e.human_plural}.",
         f"Restricted to whom: any signed-in user, admins, or the owner of each {e.human}? Should "
         "unauthorised requests get a 403 or a 404 that hides existence, and is there an existing auth "
         "plug to reuse?"),
        (f"Add filtering to {path}.",
         f"Filter on which fields, for example `{f1}` or `{f2}`? Exact matches, ranges or partial "
         "text? Passed as query parameters, and should invalid values be rejected or ignored?"),
    ]


def _clar_view(spec: ModSpec, rng: random.Random) -> list[tuple[str, str]]:
    e = spec.ctx.entity
    return [
        ("Show the dates nicely.",
         "In which format and time zone: the user's or UTC? Relative (\"3 days ago\") or absolute, and "
         "should JSON keep ISO 8601 while only the HTML changes?"),
        (f"Hide internal fields of {e.human_plural}.",
         f"Which fields count as internal? Is it only this view or every place {e.human_plural} are "
         "rendered, and do existing clients depend on them (does the change need a new API version)?"),
        (f"Make the {e.human} output friendlier.",
         "Friendlier for whom, end users or admins? Do you mean wording and labels, number and date "
         "formats, or layout? Does it need translations?"),
    ]


def _clar_pipeline(spec: ModSpec, rng: random.Random) -> list[tuple[str, str]]:
    e = spec.ctx.entity
    sep = spec.facts.get("sep", ",")
    return [
        (f"Handle bad rows in the {e.human} import.",
         "Right now malformed lines are dropped silently. Should they be logged, collected into a "
         "report with line numbers, or abort the whole import? Is there a threshold, such as failing "
         "when more than 1% of the lines are bad?"),
        (f"Speed up the {e.human} import.",
         "How large are the files, and where does the time go: reading, parsing or writing? Would "
         "parallel parsing with `Task.async_stream/3` be acceptable if output order may change? Are "
         "the database inserts batched?"),
        ("Support header rows in the input files.",
         "Will every file start with a header, or only some? Should columns be matched by header name, "
         f"allowing them in any order, or is the header just skipped? Is the separator always `{sep}`?"),
    ]


CLARIFIERS = {
    "plain": _clar_plain, "genserver": _clar_genserver, "supervisor": _clar_supervisor,
    "ecto_schema": _clar_schema, "phoenix_controller": _clar_controller, "phoenix_view": _clar_view,
    "pipeline": _clar_pipeline,
}


def clarifications(spec: ModSpec, rng: random.Random) -> list[tuple[str, str]]:
    options = CLARIFIERS[spec.kind](spec, rng)
    return rng.sample(options, 2 if rng.random() < 0.4 else 1)


# -- records ---------------------------------------------------------------------------------


def module_records(rendered, rng: random.Random) -> list[dict]:
    """Every generation record of one module; all share the module's path as ``source``."""
    m, spec = rendered.module, rendered.spec
    src = m.path
    out = [{"task": "code_generation", "prompt": "", "completion": m.source, "source": src}]
    for prompt, completion in rendered.prompts:
        out.append({"task": "code_generation", "prompt": prompt, "completion": completion, "source": src})
    out.append({"task": "test_generation", "prompt": m.source, "completion": m.test_source, "source": src})
    ask = rng.choice(MODULE_ASKS)
    out.append({"task": "explanation", "prompt": f"{ask}\n\n{m.source}",
                "completion": explain_module(spec, rng), "source": src})
    documented = [fn for fn in spec.fns if fn.public and fn.doc and fn.explain and not fn.clauses[0].oneline]
    by_name = {prompt.rstrip("\n").rsplit("\n", 1)[-1]: (prompt, body) for prompt, body in rendered.prompts}
    if documented and rng.random() < 0.35:
        fn = rng.choice(documented)
        head = next((h for h in by_name if f" {fn.name}(" in h or h.endswith(f" {fn.name} do")), None)
        if head is not None:
            prompt, body = by_name[head]
            out.append({"task": "explanation", "prompt": f"{rng.choice(FUNCTION_ASKS)}\n\n{prompt}{body}",
                        "completion": explain_function(spec, fn, body), "source": src})
    for request, question in clarifications(spec, rng):
        out.append({"task": "clarification", "prompt": request, "completion": question, "source": src})
    return out


def generate_records(seed: int = 0, n_modules: int = 320) -> list[dict]:
    """JSONL-schema generation records for the demo corpus: code, tests, explanations, clarifications."""
    from elixir_coder.corpus.demo.modules import build_all

    records: list[dict] = []
    for i, rendered in enumerate(build_all(seed, n_modules)):
        records += module_records(rendered, _rng(seed, i))
    return records
