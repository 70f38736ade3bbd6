"""Contrastive pairs from clean Elixir (spec 4.3.1, 4.3.6): (clean, violating) per Credo check and
(secure, vulnerable) per Sobelow finding, each with a positive view of its anchor.

Candidates come from the injectors (``corpus.rules``), which use none of the detectors' code.
A judge then decides which are kept: with the real Credo and Sobelow (``corpus.lint``), a pair
stays when the tool reports the rule on the violating side, not on the clean side, and the
violating side adds no other finding; without them, the built-in detectors confirm the rule.
Every drop is counted by reason; ``report`` prints per-rule figures, including how often the
built-in detectors agree with the real tools.
"""

from __future__ import annotations

import difflib
import random
import re
from collections import Counter
from dataclasses import dataclass, field

from elixir_coder.corpus.checks import detect_quality, detect_security
from elixir_coder.corpus.lint import Judge
from elixir_coder.corpus.parser import ElixirParser, shared_parser
from elixir_coder.corpus.rules import QUALITY_INJECTORS, SECURITY_INJECTORS, RngLike
from elixir_coder.corpus.rules.text import _main_module, _module_kind, _rng
from elixir_coder.corpus.source import Source
from elixir_coder.corpus.views import positive_view
from elixir_coder.errors import DataError
from elixir_coder.labels import QUALITY_LABELS, SECURITY_CWE, SECURITY_LABELS, quality_tier

__all__ = ["inject", "inject_pair", "validated", "rule_difficulty", "Candidate", "candidates", "judge", "make_pairs",
           "clean_sources", "prepare_pairs", "format_report", "injected_block", "shortcut_probe"]

LABELS = QUALITY_LABELS + SECURITY_LABELS
_DUPLICATED = "Credo.Check.Design.DuplicatedCode"
# Findings that come with a rule's violating form whatever the code around it: Credo's UnsafeExec
# reports every ``:os.cmd``. Kept pairs list them in ``labels`` beside the rule.
COMPANIONS = {"Sobelow.CI.OS": ("Credo.Check.Warning.UnsafeExec",)}


def validated(code: str) -> bool:
    """``code`` parses with the real Elixir parser (``Code.string_to_quoted``; never evaluated)."""
    return shared_parser().parse(code).ok


def _detect(label: str, code: str) -> set[str]:
    return detect_quality(code) if label in QUALITY_INJECTORS else detect_security(code)


def inject_pair(code: str, label: str, rng: RngLike = None, parser: ElixirParser | None = None, attempts: int = 3,
                confirm: bool = True) -> tuple[str, str] | None:
    """``(clean, violating)`` for ``label`` from clean ``code``, or None (the pair is dropped).

    The clean side is ``code`` itself for Credo rules and the secure twin for Sobelow findings
    (the same module with the site in its safe form). Draws again (up to ``attempts`` draws) when
    the output does not parse with the real parser, does not differ, or (``confirm``) the built-in
    detector does not report ``label``; an injector returning None means the input offers nothing
    to work with, so no further draws are made.
    """
    if label not in LABELS:
        raise KeyError(f"no injector for {label!r}; known: {', '.join(LABELS)}")
    rng = _rng(rng)
    parser = parser or shared_parser()
    for _ in range(attempts):
        if label in QUALITY_INJECTORS:
            bad = QUALITY_INJECTORS[label](code, rng)  # the violating code, or a built (clean, violating) twin
            out = None if bad is None else bad if isinstance(bad, tuple) else (code, bad)
        else:
            out = SECURITY_INJECTORS[label](code, rng)
        if out is None:
            return None
        clean, bad = out
        if bad == clean or not parser.parse(bad).ok or (clean != code and not parser.parse(clean).ok):
            continue
        if confirm and (label not in _detect(label, bad) or label in _detect(label, clean)):
            continue
        return clean, bad
    return None


def inject(code: str, label: str, rng: RngLike = None, parser: ElixirParser | None = None, attempts: int = 3) -> str | None:
    """The violating/vulnerable side of :func:`inject_pair`, confirmed by the built-in detectors."""
    out = inject_pair(code, label, rng, parser, attempts)
    return None if out is None else out[1]


def rule_difficulty(label: str) -> int:
    """Spec 4.3.5.2: the curriculum tier of a rule: Credo tiers 1-4 (surface patterns, structure,
    cross-function, corpus-level); Sobelow findings are single-call patterns, tier 1."""
    return 1 if label in SECURITY_CWE else quality_tier(label)


@dataclass
class Candidate:
    source: str
    rule: str
    clean: str
    bad: str
    positive: str = ""
    verdict: dict = field(default_factory=dict)


def candidates(sources: list[tuple[str, str]], labels=LABELS, seed: int = 0, variants: int = 1, parser=None,
               confirm: bool = True, min_pairs: int | dict[str, int] = 0, max_variants: int = 8,
               reserve: list[tuple[str, str]] = (), memo: dict | None = None) -> tuple[list[Candidate], Counter]:
    """Injected pairs for every anchor and label, up to ``variants`` distinct ones each; rules with
    fewer than ``min_pairs`` get further variants (up to ``max_variants``), then draw from the
    ``reserve`` modules (the corpus beyond the chosen anchors) until they have ``min_pairs``: a rule
    whose site few modules have (a router's CSRF plug, an alias group) is still represented.
    ``min_pairs`` may be given per rule; ``memo`` keeps the draws for a later call. Returns the candidates and the drops counted by ``(rule, reason)``."""
    parser = parser or shared_parser()
    out: list[Candidate] = []
    drops: Counter = Counter()
    seen: set[tuple[str, str]] = set()
    per_rule: Counter = Counter()

    def draw(v: int, label: str, source: str, code: str, counted: bool = True) -> None:
        key = (source, label, v)
        if memo is not None and key in memo:
            got = memo[key]
        else:
            got = inject_pair(code, label, random.Random(f"{seed}:{source}:{label}:{v}"), parser, confirm=confirm)
            if memo is not None:
                memo[key] = got
        if got is None:
            if v == 0 and counted:  # later draws and reserve modules are extras: their absence drops nothing
                drops[(label, "no site or not confirmed")] += 1
        elif (got[1], label) in seen:
            if v < variants and counted:
                drops[(label, "duplicate variant")] += 1
        else:
            seen.add((got[1], label))
            per_rule[label] += 1
            out.append(Candidate(source, label, *got))

    for v in range(variants):
        for source, code in sources:
            for label in labels:
                draw(v, label, source, code)
    want = min_pairs if isinstance(min_pairs, dict) else dict.fromkeys(labels, min_pairs)
    for v in range(variants, max_variants):
        short = [label for label in labels if per_rule[label] < want[label]]
        for source, code in sources:
            for label in short:
                if per_rule[label] < want[label]:
                    draw(v, label, source, code)
    for v in range(max_variants):  # reserve modules: extra anchors, so their absence drops nothing
        short = [label for label in labels if per_rule[label] < want[label]]
        for source, code in reserve:
            for label in short:
                if per_rule[label] < want[label]:
                    draw(v, label, source, code, counted=False)
    return out, drops


def _findings(judge: Judge, codes: list[str], groups: list[str], duplicates: set[str]) -> dict[str, Counter]:
    """Credo and Sobelow findings of every distinct code; DuplicatedCode for ``duplicates`` only."""
    unique: dict[str, str] = {}
    for code, group in zip(codes, groups):
        unique.setdefault(code, group)
    texts = list(unique)
    credo = judge.credo(texts, [unique[t] for t in texts], [t in duplicates for t in texts])
    sobelow = judge.sobelow(texts)
    return {t: c + s for t, c, s in zip(texts, credo, sobelow)}


def judge(cands: list[Candidate], tool: Judge | None) -> dict[str, Counter]:
    """Fill each candidate's ``verdict``: what the tool (or the built-in detectors) and the
    detectors say about the rule on both sides, and the findings the violating side adds.
    Returns the tools' findings per code (empty without tools)."""
    found: dict[str, Counter] = {}
    if tool is not None:
        codes, groups = [], []
        for c in cands:
            codes += [c.clean, c.bad, c.positive]
            groups += [c.source] * 3
        dup = {x for c in cands if c.rule == _DUPLICATED for x in (c.clean, c.bad)}
        found = _findings(tool, codes, groups, dup)
    for c in cands:
        det_bad, det_clean = c.rule in _detect(c.rule, c.bad), c.rule in _detect(c.rule, c.clean)
        if tool is None:
            c.verdict = {"bad": det_bad, "clean": det_clean, "extra": [], "det_bad": det_bad, "det_clean": det_clean,
                         "positive_clean": True}
            continue
        bad, clean, pos = found[c.bad], found[c.clean], found[c.positive]
        extra = sorted(k for k in (bad - clean) if k != c.rule and k not in COMPANIONS.get(c.rule, ()))
        c.verdict = {"bad": bad[c.rule] > 0, "clean": clean[c.rule] > 0, "extra": extra, "det_bad": det_bad,
                     "det_clean": det_clean, "positive_clean": not (pos - clean)}
    return found


def _record(c: Candidate, found: dict[str, Counter]) -> dict:
    """The pair as spec 4.3.1/4.3.6 write it; ``labels``: the rule and the companion findings the
    real tools report on the violating side."""
    labels = [c.rule] + [k for k in COMPANIONS.get(c.rule, ()) if found.get(c.bad, Counter())[k]]
    if c.rule in QUALITY_INJECTORS:
        return {"clean_code": c.clean, "violating_code": c.bad, "positive_code": c.positive, "rule": c.rule,
                "tier": rule_difficulty(c.rule), "labels": labels, "source": c.source}
    return {"secure_code": c.clean, "vulnerable_code": c.bad, "positive_code": c.positive,
            "cwe_id": SECURITY_CWE[c.rule], "sobelow_check": c.rule, "labels": labels, "source": c.source}


def _clean_anchors(sources: list[tuple[str, str]], tool: Judge | None, drops: Counter, kind: str = "anchor") -> dict[str, str]:
    """The ``sources`` neither the built-in detectors nor (with ``tool``) the real tools flag for a
    labelled rule; the others are counted in ``drops`` under ``kind``."""
    anchors = {}
    for source, code in sources:
        if detect_quality(code) or detect_security(code):
            drops[(kind, "built-in detectors report a rule")] += 1
        else:
            anchors[source] = code
    if tool is not None and anchors:  # only code the real tools find clean anchors a pair
        names = list(anchors)
        texts = [anchors[n] for n in names]
        for name, credo, sobelow in zip(names, tool.credo(texts), tool.sobelow(texts)):
            if set(credo + sobelow) & set(LABELS):
                drops[(kind, "Credo/Sobelow report a labelled rule")] += 1
                del anchors[name]
    return anchors


def _verdict_reason(v: dict) -> str | None:
    return ("rule not reported on the violating side" if not v["bad"] else
            "rule reported on the clean side" if v["clean"] else
            "violating side adds other findings" if v["extra"] else None)


def make_pairs(sources: list[tuple[str, str]], seed: int = 0, variants: int = 1, tool: Judge | None = None,
               parser=None, min_pairs: int = 0, labels=LABELS, max_variants: int = 8,
               reserve: list[tuple[str, str]] = ()) -> tuple[list[dict], list[Candidate], Counter]:
    """Pair records kept by the judge (real tools when ``tool`` is given), all candidates with their
    verdicts, and the drops counted by ``(rule or "anchor", reason)``. ``reserve``: further modules
    for rules left under ``min_pairs`` (see :func:`candidates`); those a rule draws from are checked
    like the anchors (counted as ``reserve``). Judged in rounds: a rule the judge leaves under
    ``min_pairs`` draws as many more candidates as it lost, until it has them or has no more."""
    parser = parser or shared_parser()
    drops: Counter = Counter()
    anchors = _clean_anchors(sources, None, drops)
    spare = [(n, c) for n, c in reserve if n not in anchors and n not in dict(sources)]
    random.Random(f"{seed}:reserve").shuffle(spare)  # spread over the corpus, not its first folders
    spare = list(_clean_anchors(spare, None, Counter()).items())
    if tool is not None and anchors:
        anchors = _clean_anchors(list(anchors.items()), tool, drops)
    want = dict.fromkeys(labels, min_pairs)
    judged: dict[tuple[str, str], Candidate] = {}
    checked: dict[str, bool] = dict.fromkeys(anchors, True)  # reserve modules: clean by the tools?
    views: dict[str, str] = {}
    found: dict[str, Counter] = {}
    memo: dict = {}
    while True:
        cands, cand_drops = candidates(list(anchors.items()), labels, seed, variants, parser, confirm=tool is None,
                                       min_pairs=want, max_variants=max_variants, reserve=spare, memo=memo)
        fresh = sorted({c.source for c in cands} - set(checked))
        if fresh:
            ok = _clean_anchors([(n, dict(spare)[n]) for n in fresh], tool, drops, "reserve")
            checked.update((n, n in ok) for n in fresh)
        cands = [judged.get((c.rule, c.bad), c) for c in cands if checked[c.source]]
        new = [c for c in cands if (c.rule, c.bad) not in judged]
        for c in new:
            if c.clean not in views:
                view = positive_view(c.clean, random.Random(f"{seed}:{c.source}:view"))
                views[c.clean] = view if parser.parse(view).ok else c.clean
            c.positive = views[c.clean]
        found.update(judge(new, tool))
        judged.update(((c.rule, c.bad), c) for c in new)
        made, good = Counter(c.rule for c in cands), Counter(c.rule for c in cands if _verdict_reason(c.verdict) is None)
        short = {r: min_pairs - good[r] for r in labels if good[r] < min_pairs and made[r] >= want[r]}
        if not short or not new:
            break
        for r, missing in short.items():
            want[r] += missing
    drops.update(cand_drops)
    kept = []
    for c in cands:
        reason = _verdict_reason(c.verdict)
        if reason:
            drops[(c.rule, reason)] += 1
            continue
        if not c.verdict["positive_clean"]:
            c.positive = c.clean  # a view the tools flag is no positive; the anchor itself stands in
            drops[(c.rule, "positive view replaced (tools flag it)")] += 1
        kept.append(_record(c, found))
    return kept, cands, drops


_DEF_LINE = re.compile(r"^(\s*)(def|defp|defmacro|defmacrop|pipeline)\b")


def injected_block(clean: str, bad: str) -> str:
    """What carries the finding on the violating side: its changed lines widened to the enclosing
    definition (``def``/``pipeline`` line to its ``end``), without indentation. A rule whose blocks
    repeat across pairs is taught by a handful of snippets rather than by the rule."""
    a, b = clean.split("\n"), bad.split("\n")
    changed = [(j1, j2) for tag, _, _, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
               if tag != "equal"]
    if not changed:
        return ""
    lo, hi = changed[0][0], max(changed[-1][1], changed[0][0] + 1)
    start = next((i for i in range(min(lo, len(b) - 1), -1, -1) if _DEF_LINE.match(b[i])), None)
    if start is not None:
        indent = _DEF_LINE.match(b[start]).group(1)
        end = next((i for i in range(start, len(b)) if b[i] == indent + "end"), None)
        one_liner = ", do:" in b[start]
        if one_liner and start + 1 >= lo:
            lo, hi = start, max(hi, start + 1)
        elif end is not None and end + 1 >= hi:
            lo, hi = start, end + 1
    return "\n".join(line.strip() for line in b[lo:hi])


def shortcut_probe(pairs: list[tuple[str, str, str]]) -> dict[str, tuple[int, float, float]]:
    """rule -> (pairs, accuracy of "the longer side is violating" (ties count half), share of
    distinct injected blocks) over ``(rule, clean, violating)`` triples."""
    by_rule: dict[str, list[tuple[str, str]]] = {}
    for rule, clean, bad in pairs:
        by_rule.setdefault(rule, []).append((clean, bad))
    out = {}
    for rule, items in by_rule.items():
        longer = sum(1.0 if len(bad) > len(clean) else 0.5 if len(bad) == len(clean) else 0.0 for clean, bad in items)
        out[rule] = (len(items), longer / len(items), len({injected_block(c, b) for c, b in items}) / len(items))
    return out


def _pct(n: int, d: int) -> str:
    return f"{100 * n / d:5.1f}%" if d else "    -"


def format_report(cands: list[Candidate], kept: list[dict], drops: Counter, judged_by_tools: bool) -> str:
    """Per rule: candidates, the judge's agreement (rule on violating and not on clean), clean
    violating sides (no unlabelled finding added), positives clean, built-in detector agreement with
    the real tools (both sides), pairs kept, and the shortcut probe on them (longer side is the
    violating one; distinct injected blocks); then every drop by reason."""
    judge_name = "Credo/Sobelow" if judged_by_tools else "built-in detectors (no real tools found)"
    rows = [f"judge: {judge_name}",
            f"{'rule':48} {'cands':>5} {'judge ok':>8} {'no extra':>8} {'pos ok':>7} {'det=tool':>8} {'kept':>5} "
            f"{'longer':>6} {'distinct':>8}"]
    probe = shortcut_probe([(c.rule, c.clean, c.bad) for c in cands if c.verdict["bad"] and not c.verdict["clean"]
                            and not c.verdict["extra"]])
    kept_by = Counter(r.get("rule") or r.get("sobelow_check") for r in kept)
    for label in LABELS:
        mine = [c for c in cands if c.rule == label]
        n = len(mine)
        ok = sum(c.verdict["bad"] and not c.verdict["clean"] for c in mine)
        no_extra = sum(not c.verdict["extra"] for c in mine)
        pos = sum(c.verdict["positive_clean"] for c in mine)
        agree = sum((c.verdict["det_bad"] == c.verdict["bad"]) + (c.verdict["det_clean"] == c.verdict["clean"]) for c in mine)
        _, longer, distinct = probe.get(label, (0, 0.0, 0.0))
        rows.append(f"{label:48} {n:5} {_pct(ok, n):>8} {_pct(no_extra, n):>8} {_pct(pos, n):>7} "
                    f"{_pct(agree, 2 * n):>8} {kept_by[label]:5} {_pct(round(1000 * longer), 1000):>6} "
                    f"{_pct(round(1000 * distinct), 1000):>8}")
    extras = Counter(k for c in cands for k in c.verdict.get("extra", []))
    if extras:
        rows.append("findings added by violating sides: " + ", ".join(f"{k} x{n}" for k, n in extras.most_common()))
    rows.append("dropped: " + (", ".join(f"{rule.rsplit('.', 1)[-1]}: {why} x{n}" for (rule, why), n in sorted(drops.items()))
                               or "nothing"))
    return "\n".join(rows)


def _kind(code: str) -> str:
    src = Source(code)
    m = _main_module(src) if src.balanced else None
    return _module_kind(src, m) if m is not None else "other"


def clean_sources(records: list[dict], limit: int | None = None) -> list[tuple[str, str]]:
    """Whole-module code_generation records (prompt ""), one per source file; with ``limit``,
    that many spread evenly over the corpus, with at least one module of every kind the corpus
    has (router, controller, view, live, other) so every rule finds a site."""
    seen, out = set(), []
    for r in records:
        if r["task"] == "code_generation" and not r.get("prompt") and "defmodule" in r["completion"]:
            source = r.get("source") or f"record-{len(out)}"
            if source not in seen:
                seen.add(source)
                out.append((source, r["completion"]))
    if limit and len(out) > limit:
        picked = [i * len(out) // limit for i in range(limit)]
        kinds = [_kind(code) for _, code in out]
        for kind in dict.fromkeys(kinds):
            if kind not in {kinds[i] for i in picked}:
                common = max(set(kinds[i] for i in picked), key=lambda k: sum(kinds[i] == k for i in picked))
                slot = max(j for j, i in enumerate(picked) if kinds[i] == common)
                picked[slot] = kinds.index(kind)
        out = [out[i] for i in sorted(picked)]
    return out


def prepare_pairs(records: list[dict], quality_path, security_path, seed: int = 0, variants: int = 1,
                  max_anchors: int | None = None, judge: str = "auto", credo: str | None = None,
                  sobelow: str | None = None, min_pairs: int = 0, report: bool = False,
                  log=print, max_variants: int = 8) -> tuple[list[dict], list[dict]]:
    """Write both pair files from the corpus's clean modules (``elixir-data pairs``). ``judge``:
    ``auto`` (the real tools when both are found, else the built-in detectors), ``tools`` (require
    them) or ``builtin``. Rules short of ``min_pairs`` draw from the modules beyond ``max_anchors``."""
    from elixir_coder.corpus.records import write_jsonl

    every = clean_sources(records)
    sources = clean_sources(records, max_anchors)
    if not sources:
        raise DataError("no contrastive pairs: the corpus has no whole-module code_generation records "
                        '(prompt "" and a defmodule in the completion) to use as clean anchors')
    if judge not in ("auto", "tools", "builtin"):
        raise DataError(f"contrastive.judge={judge!r}: use auto, tools or builtin")
    tool = None if judge == "builtin" else Judge.find(credo, sobelow, required=judge == "tools")
    log(f"Generating contrastive pairs from {len(sources)} clean modules into {quality_path} and {security_path} "
        f"(judge: {'Credo/Sobelow' if tool else 'built-in detectors'}) ...")
    kept, cands, drops = make_pairs(sources, seed, variants, tool, min_pairs=min_pairs, max_variants=max_variants,
                                    reserve=every)
    quality = [r for r in kept if "rule" in r]
    security = [r for r in kept if "sobelow_check" in r]
    write_jsonl(quality_path, quality)
    write_jsonl(security_path, security)
    if report:
        log(format_report(cands, kept, drops, tool is not None))
    else:
        dropped = sum(n for (rule, _), n in drops.items() if rule != "anchor")
        log(f"{len(kept)} pairs kept, {dropped} candidates dropped, {drops.get(('anchor', 'Credo/Sobelow report a labelled rule'), 0)} "
            "anchors not clean by the tools (contrastive.report=true for the per-rule figures)")
    return quality, security
