"""Demo modules: the public dataclasses, rendering a ModSpec to mix-format text, and the plan.

``generate_modules`` draws a kind, a domain and an entity for each module, asks the kind's
builder for a :class:`ModSpec`, renders it, and keeps it only if both its name and its text
(with the module name masked) are new, so the corpus has no near-duplicate modules.
"""

from __future__ import annotations

import random
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

from elixir_coder.corpus.demo import otp, pipeline, plain, schemas, web
from elixir_coder.corpus.demo.ex import MAX_LINE, Ctx, Fn, ModSpec, make_samples
from elixir_coder.corpus.demo.tasks import render_test
from elixir_coder.corpus.demo.words import DOMAINS, PIPELINE_SUFFIXES, PLAIN_SUFFIXES, Domain, Entity, underscore

KINDS: tuple[str, ...] = (
    "plain", "genserver", "supervisor", "ecto_schema", "phoenix_controller", "phoenix_view", "pipeline",
)
# Share of each kind in the corpus (plain modules are the most varied, so the most common).
KIND_WEIGHTS: dict[str, float] = {
    "plain": 0.21, "genserver": 0.15, "supervisor": 0.1, "ecto_schema": 0.14,
    "phoenix_controller": 0.13, "phoenix_view": 0.13, "pipeline": 0.14,
}


@dataclass(frozen=True)
class DemoFunction:
    name: str
    arity: int
    doc: str
    head: str  # the ``def name(args) do`` line, indented as in the source
    body: str  # the body lines and the closing ``  end`` line, newline-terminated, as in the source
    public: bool


@dataclass(frozen=True)
class DemoModule:
    name: str
    kind: str
    path: str
    source: str
    functions: tuple[DemoFunction, ...]
    test_source: str


@dataclass(frozen=True)
class Rendered:
    """A module with what records need beyond the public dataclass."""

    module: DemoModule
    spec: ModSpec
    prompts: tuple[tuple[str, str], ...]  # (doc + spec + head, body + end) per documented function


# -- rendering ---------------------------------------------------------------------


def heredoc(attr: str, text: str, indent: int = 2) -> list[str]:
    """``@doc``/``@moduledoc`` lines; one line when the text is one short sentence."""
    pad = " " * indent
    one = f'{pad}{attr} "{text}"'
    if "\n" not in text and '"' not in text and len(one) <= 80:
        return [one]
    lines = [f'{pad}{attr} """']
    for para in text.split("\n\n"):
        if lines[-1] != f'{pad}{attr} """':
            lines.append("")
        for raw in para.split("\n"):
            if raw.startswith(("  *", "#", "    ")):
                lines.append(pad + raw)
            else:
                lines += [pad + x for x in textwrap.wrap(raw, width=MAX_LINE - 6 - indent)]
    lines.append(f'{pad}"""')
    return lines


def spec_lines(spec: str) -> list[str]:
    """``@spec`` as mix format writes it: broken after ``::`` when too long."""
    if not spec:
        return []
    line = f"  @spec {spec}"
    if len(line) <= MAX_LINE:
        return [line]
    left, right = spec.split(" :: ", 1)
    return [f"  @spec {left} ::", f"          {right}"]


def _head(kw: str, name: str, args: str, guard: str) -> str:
    call = f"{name}({args})" if args else name
    return f"  {kw} {call}" + (f" when {guard}" if guard else "")


def render_fn(fn: Fn) -> tuple[list[str], list[DemoFunction], list[tuple[str, str]]]:
    kw = "def" if fn.public else "defp"
    lines: list[str] = []
    doc_lines: list[str] = []
    if fn.doc:
        doc_lines = heredoc("@doc", fn.doc)
    doc_lines += spec_lines(fn.spec)
    if fn.impl:
        doc_lines.insert(0, "  @impl true")
    lines += doc_lines
    demo: list[DemoFunction] = []
    prompts: list[tuple[str, str]] = []
    for i, cl in enumerate(fn.clauses):
        head = _head(kw, fn.name, cl.args, cl.guard)
        if i and not (cl.oneline and fn.clauses[i - 1].oneline):
            lines.append("")
        if cl.oneline:
            lines.append(f"{head}, do: {cl.body[0]}")
            continue
        body = [("    " + b) if b else "" for b in cl.body] + ["  end"]
        lines += [head + " do", *body]
        text = "\n".join(body) + "\n"
        demo.append(DemoFunction(fn.name, fn.arity, fn.doc if i == 0 else "", head + " do", text, fn.public))
        if i == 0 and fn.doc and fn.public:
            prompts.append(("\n".join(doc_lines + [head + " do"]) + "\n", text))
    return lines, demo, prompts


def render(spec: ModSpec) -> tuple[str, tuple[DemoFunction, ...], tuple[tuple[str, str], ...]]:
    lines = [f"defmodule {spec.name} do", *heredoc("@moduledoc", spec.moduledoc)]
    if spec.header:
        lines += [""] + [("  " + h) if h else "" for h in spec.header]
    for block in spec.blocks:
        lines += [""] + [("  " + b) if b else "" for b in block]
    demo: list[DemoFunction] = []
    prompts: list[tuple[str, str]] = []
    for fn in spec.fns:
        fn_lines, fn_demo, fn_prompts = render_fn(fn)
        lines += [""] + fn_lines
        demo += fn_demo
        prompts += fn_prompts
    lines.append("end")
    return "\n".join(lines) + "\n", tuple(demo), tuple(prompts)


def module_path(name: str) -> str:
    return "demo/lib/" + "/".join(underscore(part) for part in name.split(".")) + ".ex"


# -- naming and planning -------------------------------------------------------------

GENSERVER_SUFFIXES = {
    "cache": ("Cache", "Store"), "counter": ("Counter", "Tally"), "buffer": ("Buffer", "Batcher"),
    "limiter": ("RateLimiter", "Throttle"), "stats": ("Monitor", "StatsServer"),
    "presence": ("Tracker", "Presence"),
}
VIEW_SUFFIXES = {"json": "JSON", "html": "HTML", "view": "View", "components": "Components"}


def propose(kind: str, rng: random.Random, d: Domain, e: Entity) -> tuple[str, str]:
    """(module name, variant) for a module of ``kind`` about entity ``e``."""
    if kind == "plain":
        if rng.random() < 0.25:
            return f"{d.app}.{e.camel}", "struct"
        suffix = rng.choice(PLAIN_SUFFIXES)
        return f"{d.app}.{e.camel}{suffix}", suffix
    if kind == "genserver":
        arch = rng.choice(sorted(GENSERVER_SUFFIXES))
        return f"{d.app}.{e.camel}{rng.choice(GENSERVER_SUFFIXES[arch])}", arch
    if kind == "supervisor":
        if rng.random() < 0.5:
            return f"{d.app}.{e.camel}Supervisor", "dynamic"
        return f"{d.app}.{e.context}Supervisor", "static"
    if kind == "ecto_schema":
        if rng.random() < 0.3:
            return f"{d.app}.{e.context}.{e.camel}{rng.choice(('Filter', 'Form', 'Params'))}", "embedded"
        return f"{d.app}.{e.context}.{e.camel}", "table"
    if kind == "phoenix_controller":
        scope = rng.choice(("", "", "Admin.", "Api."))
        return f"{d.app}Web.{scope}{e.camel}Controller", "json" if scope == "Api." else "html"
    if kind == "phoenix_view":
        style = rng.choice(sorted(VIEW_SUFFIXES))
        scope = rng.choice(("", "", "Admin."))
        return f"{d.app}Web.{scope}{e.camel}{VIEW_SUFFIXES[style]}", style
    if kind == "pipeline":
        suffix = rng.choice(PIPELINE_SUFFIXES)
        prefix = rng.choice(("", "", "Pipelines."))
        return f"{d.app}.{prefix}{e.camel}{suffix}", suffix
    raise ValueError(f"unknown kind {kind!r}")


def _builders() -> dict[str, Callable[..., ModSpec]]:
    """kind -> builder(ctx, variant, specs composed so far in the same domain)."""
    return {
        "plain": lambda c, variant, known: plain.build_plain(c, variant == "struct", variant),
        "genserver": lambda c, variant, known: otp.build_genserver(c, variant),
        "supervisor": otp.build_supervisor,
        "ecto_schema": lambda c, variant, known: (
            schemas.build_embedded(c) if variant == "embedded" else schemas.build_schema(c)),
        "phoenix_controller": lambda c, variant, known: web.build_controller(c, variant),
        "phoenix_view": lambda c, variant, known: web.build_view(c, variant),
        "pipeline": lambda c, variant, known: pipeline.build_pipeline(c, variant),
    }


def plan_kinds(rng: random.Random, n: int) -> list[str]:
    """``n`` kinds in proportion to KIND_WEIGHTS (largest remainders round up), shuffled."""
    quotas = {k: n * KIND_WEIGHTS[k] for k in KINDS}
    counts = {k: int(q) for k, q in quotas.items()}
    by_remainder = sorted(KINDS, key=lambda k: (-(quotas[k] - counts[k]), KINDS.index(k)))
    for k in by_remainder[: n - sum(counts.values())]:
        counts[k] += 1
    kinds = [k for k in KINDS for _ in range(counts[k])]
    rng.shuffle(kinds)
    return kinds


def build_all(seed: int = 0, n_modules: int = 320) -> list[Rendered]:
    """Compose ``n_modules`` distinct modules; deterministic in ``seed``."""
    rng = random.Random(seed)
    builders = _builders()
    kinds = plan_kinds(rng, n_modules)
    # supervisors are composed last so they can supervise the servers of their domain
    order = sorted(range(len(kinds)), key=lambda i: kinds[i] == "supervisor")
    out: list[Rendered | None] = [None] * len(kinds)
    names: set[str] = set()
    texts: set[str] = set()
    known: dict[str, list[ModSpec]] = {}  # domain key -> specs composed so far
    for slot in order:
        kind = kinds[slot]
        for _attempt in range(200):
            d = rng.choice(DOMAINS)
            e = rng.choice(d.entities)
            name, variant = propose(kind, rng, d, e)
            if name in names:
                continue
            c = Ctx(rng, d, e, name, make_samples(rng, e))
            spec = builders[kind](c, variant, known.get(d.key, []))
            source, functions, prompts = render(spec)
            masked = source.replace(name, "\0")
            if masked in texts:
                continue
            names.add(name)
            texts.add(masked)
            known.setdefault(d.key, []).append(spec)
            module = DemoModule(name, kind, module_path(name), source, functions, render_test(spec))
            out[slot] = Rendered(module, spec, prompts)
            break
        else:
            raise RuntimeError(f"could not compose a new {kind} module after 200 attempts")
    return [r for r in out if r is not None]


def generate_modules(seed: int = 0, n_modules: int = 320) -> list[DemoModule]:
    """The demo corpus as modules (source, functions, matching ExUnit test)."""
    return [r.module for r in build_all(seed, n_modules)]
