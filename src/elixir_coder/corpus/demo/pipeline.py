"""Stream-based data pipelines: parse delimited lines into records lazily, then aggregate.

A pipeline reads two or three columns of an entity, parses them with a ``with`` chain or a
``case`` plus a private helper, filters and transforms them with ``Stream`` functions, and
offers a few sinks (totals, batches, running totals, moving averages, export lines). The
tests feed it literal lines, including a blank and a malformed one, and check the records
that survive.
"""

from __future__ import annotations

from elixir_coder.corpus.demo.ex import Atom, Clause, Ctx, Fn, ModSpec, StrMap, Test, TestModule, lit
from elixir_coder.corpus.demo.kit import delta, eq, to_s


class Columns:
    """The columns a pipeline reads: a key, and a number when the entity has one."""

    def __init__(self, c: Ctx):
        e = c.entity
        self.key = c.pick(e.of("status", "text", "string", "code"))
        nums = e.of("count", "int", "money", "float")
        self.num = c.pick(nums) if nums else None
        self.sep = c.pick([",", ";", "|"])

    @property
    def names(self) -> list[str]:
        return [self.key.name] + ([self.num.name] if self.num else [])

    def line(self, row: dict) -> str:
        return self.sep.join(to_s(row[n]) for n in self.names)

    def record(self, row: dict) -> dict:
        return {n: row[n] for n in self.names}


def _parse_line(c: Ctx, cols: Columns, helpers: list[Fn]) -> Fn:
    k, num = cols.key, cols.num
    status = k.type == "status"
    if status:
        clauses = [Clause(lit(v), [f"{{:ok, :{v}}}"], oneline=True) for v in k.values]
        clauses.append(Clause("other", [f"{{:error, {{:unknown_{k.name}, other}}}}"], oneline=True))
        helpers.append(Fn(f"parse_{k.name}", 1, clauses, public=False))
    parser = None if num is None else ("Float" if num.type == "float" else "Integer")
    fields = ", ".join(f"{n}: {n}" for n in cols.names)
    split = f'String.split(line, "{cols.sep}")'
    raws = [f"{k.name}_raw" if status else k.name] + ([f"{num.name}_raw"] if num else [])
    if c.rng.random() < 0.5 or not num:
        head = [f"with [{', '.join(raws)}] <- {split},"]
        if status:
            head.append(f"     {{:ok, {k.name}}} <- parse_{k.name}({k.name}_raw),")
        if num:
            head.append(f'     {{{num.name}, ""}} <- {parser}.parse({num.name}_raw),')
        head[-1] = head[-1][:-1] + " do"
        if len(head) == 1:  # nothing to check beyond the split: a plain case reads better
            body = [f"case {split} do", f"  [{k.name}] -> {{:ok, %{{{fields}}}}}",
                    "  _ -> {:error, {:invalid_line, line}}", "end"]
        else:
            body = head + [f"  {{:ok, %{{{fields}}}}}", "else", "  _ -> {:error, {:invalid_line, line}}", "end"]
    else:
        body = [f"case {split} do", f"  [{', '.join(raws)}] -> to_record({', '.join(raws)})",
                "  _ -> {:error, {:invalid_line, line}}", "end"]
        inner = [f"case {parser}.parse({num.name}_raw) do"]
        key_expr = k.name
        if status:
            inner = [f"with {{:ok, {k.name}}} <- parse_{k.name}({k.name}_raw),",
                     f'     {{{num.name}, ""}} <- {parser}.parse({num.name}_raw) do',
                     f"  {{:ok, %{{{fields}}}}}", "else", f"  _ -> {{:error, {{:invalid_{num.name}, {num.name}_raw}}}}",
                     "end"]
        else:
            inner += [f'  {{{num.name}, ""}} -> {{:ok, %{{{key_expr}: {key_expr}, {num.name}: {num.name}}}}}',
                      f"  _ -> {{:error, {{:invalid_{num.name}, {num.name}_raw}}}}", "end"]
        helpers.append(Fn.simple("to_record", raws, inner, public=False))
    row = c.samples[0]
    tests = [Test("parses a line", eq(f"{c.short}.parse_line({lit(cols.line(row))})",
                                      (Atom("ok"), cols.record(row)))),
             Test("rejects a line with the wrong number of columns",
                  [f'assert {{:error, _}} = {c.short}.parse_line("oops{cols.sep}1{cols.sep}2")'])]
    if num:
        bad = cols.sep.join([to_s(row[k.name]), "many"])
        tests.append(Test(f"rejects a non-numeric {num.name.replace('_', ' ')}",
                          [f"assert {{:error, _}} = {c.short}.parse_line({lit(bad)})"]))
    what = " and ".join(f"`{n}`" for n in cols.names)
    return Fn.simple(
        "parse_line", ["line"], body,
        doc=f"Parses one `{cols.sep}`-separated line into a map with {what}.\n\n"
        "Returns `{:ok, record}` or `{:error, reason}`; it never raises on bad input.",
        spec="parse_line(String.t()) :: {:ok, map()} | {:error, term()}",
        explain=f"`parse_line/1` splits on `{cols.sep}` and " + (
            f"converts `{num.name}` with `{parser}.parse/1`" if num else "keeps the single column")
        + (f", mapping the `{k.name}` text to an atom through the multi-clause `parse_{k.name}/1`" if status else "")
        + "; any mismatch becomes an error tuple instead of an exception.",
        tests=tests,
    )


def _process(c: Ctx, cols: Columns) -> tuple[Fn, list[str], list[dict]]:
    """``process/1`` plus the test input lines and the records they should yield."""
    rng = c.rng
    header = rng.random() < 0.3
    comments = rng.random() < 0.4
    dedupe = rng.random() < 0.3
    positive = cols.num is not None and cols.num.type != "int" and rng.random() < 0.3
    body = ["lines"]
    if header:
        body.append("|> Stream.drop(1)")
    body.append("|> Stream.map(&String.trim/1)")
    body.append('|> Stream.reject(&(&1 == "" or String.starts_with?(&1, "#")))' if comments else
                '|> Stream.reject(&(&1 == ""))')
    if rng.random() < 0.5:
        body += ["|> Stream.map(&parse_line/1)", "|> Stream.filter(&match?({:ok, _}, &1))",
                 "|> Stream.map(fn {:ok, record} -> record end)"]
        how = "keeps the `{:ok, record}` results with `Stream.filter/2` and `match?/2`"
    else:
        body += ["|> Stream.flat_map(fn line ->", "  case parse_line(line) do", "    {:ok, record} -> [record]",
                 "    {:error, _reason} -> []", "  end", "end)"]
        how = "turns each parse result into zero or one record with `Stream.flat_map/2`"
    if dedupe:
        body.append(f"|> Stream.uniq_by(& &1.{cols.key.name})")
    if positive:
        body.append(f"|> Stream.filter(&(&1.{cols.num.name} > 0))")
    lines = ([cols.sep.join(cols.names)] if header else []) + [cols.line(r) for r in c.samples[:2]]
    lines += ["", *(["# exported nightly"] if comments else []), cols.line(c.samples[2]),
              cols.sep.join(["oops", "1", "2"])]
    records, seen = [], set()
    for r in c.samples:
        key = r[cols.key.name]
        if (dedupe and key in seen) or (positive and not r[cols.num.name] > 0):
            continue
        seen.add(key)
        records.append(cols.record(r))
    steps = ["trims every line", "drops blank lines" + (" and `#` comments" if comments else "")]
    if header:
        steps.insert(0, "skips the header line")
    if dedupe:
        steps.append(f"keeps only the first record per `{cols.key.name}`")
    if positive:
        steps.append(f"drops records whose `{cols.num.name}` is not positive")
    fn = Fn.simple(
        "process", ["lines"], body,
        doc="Turns an enumerable of raw lines into parsed records, lazily.\n\nInvalid lines are "
        "skipped; nothing is read until the returned stream is consumed.",
        spec="process(Enumerable.t()) :: Enumerable.t()",
        explain="`process/1` builds a lazy `Stream` pipeline that " + ", ".join(steps) + f" and {how}; "
        "malformed lines are silently skipped.",
        tests=[Test("keeps only valid records", [
            *_lines_binding(lines), "", *eq(f"lines |> {c.short}.process() |> Enum.to_list()", records)])],
    )
    return fn, lines, records


def _lines_binding(lines: list[str]) -> list[str]:
    one = "lines = " + lit(lines)
    if len(one) + 6 <= 98:
        return [one]
    return ["lines = ["] + [f"  {lit(x)}," for x in lines[:-1]] + [f"  {lit(lines[-1])}", "]"]


def _sinks(c: Ctx, cols: Columns) -> list[Fn]:
    rng, e = c.rng, c.entity
    key, num = cols.key.name, cols.num.name if cols.num else None
    recs = [cols.record(r) for r in c.samples]
    attr = "@records"
    out: list[Fn] = []
    if num and cols.num.type != "float":
        totals: dict = {}
        for r in recs:
            totals[r[key]] = totals.get(r[key], 0) + r[num]
        keyed = StrMap if cols.key.type != "status" else dict
        out.append(Fn.simple("totals", ["records"], [
            "Enum.reduce(records, %{}, fn record, acc ->",
            f"  Map.update(acc, record.{key}, record.{num}, &(&1 + record.{num}))", "end)"],
            doc=f"Sums `{num}` per `{key}`. Consumes the stream.",
            spec="totals(Enumerable.t()) :: map()",
            explain=f"`totals/1` reduces the records into a map from `{key}` to the summed `{num}`.",
            tests=[Test(f"sums {num.replace('_', ' ')} per {key.replace('_', ' ')}",
                        eq(f"{c.short}.totals({attr})", keyed((str(k), v) for k, v in sorted(totals.items()))))]))
    else:
        counts: dict = {}
        for r in recs:
            counts[r[key]] = counts.get(r[key], 0) + 1
        keyed = StrMap if cols.key.type != "status" else dict
        out.append(Fn.simple("count_by_key", ["records"], [f"Enum.frequencies_by(records, & &1.{key})"],
                             doc=f"Counts records per `{key}`.", spec="count_by_key(Enumerable.t()) :: map()",
                             explain=f"`count_by_key/1` counts records per `{key}` with `Enum.frequencies_by/2`.",
                             tests=[Test("counts per key", eq(f"{c.short}.count_by_key({attr})",
                                                              keyed((str(k), v) for k, v in sorted(counts.items()))))]))
    extras = ["batches", "export"] + (["running", "moving"] if num else [])
    for pick in rng.sample(extras, rng.randint(1, 2)):
        if pick == "batches":
            out.append(Fn("batches", 2, [Clause("records, size", [
                "records", "|> Stream.chunk_every(size)", "|> Stream.with_index(1)"], "is_integer(size) and size > 0")],
                doc="Groups records into numbered batches of `size`, e.g. for `Repo.insert_all/2`.",
                spec="batches(Enumerable.t(), pos_integer()) :: Enumerable.t()",
                explain="`batches/2` lazily chunks the records and numbers each chunk from 1 with "
                "`Stream.with_index/2`.",
                tests=[Test("numbers batches", eq(
                    f"{attr} |> {c.short}.batches(2) |> Enum.map(fn {{batch, i}} -> {{length(batch), i}} end)",
                    [(2, 1), (1, 2)]))]))
        elif pick == "export":
            fields = ", ".join(f"record.{n}" for n in cols.names)
            out.append(Fn.simple("to_line", ["record"], [
                f'Enum.map_join([{fields}], "{cols.sep}", &to_string/1) <> "\\n"'],
                doc="Formats a record back into one line of text, newline included.",
                spec="to_line(map()) :: String.t()",
                explain="`to_line/1` is the inverse of `parse_line/1`: it joins the fields with "
                f"`{cols.sep}` and appends a newline.",
                tests=[Test("round-trips a record", eq(f"{c.short}.to_line(hd({attr}))",
                                                       cols.line(c.samples[0]) + "\n"))]))
            out.append(Fn.simple("export", ["records", "path"], [
                "records", "|> Stream.map(&to_line/1)", "|> Stream.into(File.stream!(path))", "|> Stream.run()"],
                doc="Writes records to `path`, one line each, streaming so memory use stays flat.",
                spec="export(Enumerable.t(), Path.t()) :: :ok",
                explain="`export/2` streams formatted lines into `File.stream!/1` with `Stream.into/2` "
                "and forces the stream with `Stream.run/1`."))
        elif pick == "running":
            sums, acc = [], 0
            for r in recs:
                acc += r[num]
                sums.append(acc)
            check = (eq(f"{attr} |> {c.short}.running_total() |> Enum.to_list()", sums)
                     if cols.num.type != "float" else
                     delta(f"{attr} |> {c.short}.running_total() |> Enum.at(-1)", sums[-1]))
            out.append(Fn.simple("running_total", ["records"], [f"Stream.scan(records, 0, &(&1.{num} + &2))"],
                                 doc=f"Running total of `{num}`, one value per record.",
                                 spec="running_total(Enumerable.t()) :: Enumerable.t()",
                                 explain=f"`running_total/1` uses `Stream.scan/3` to emit the cumulative `{num}`.",
                                 tests=[Test("accumulates", check)]))
        else:
            first = (recs[0][num] + recs[1][num]) / 2
            out.append(Fn("moving_average", 2, [Clause("records, window", [
                "records", f"|> Stream.map(& &1.{num})", "|> Stream.chunk_every(window, 1, :discard)",
                "|> Stream.map(&(Enum.sum(&1) / window))"], "is_integer(window) and window > 0")],
                doc=f"Moving average of `{num}` over `window` consecutive records.",
                spec="moving_average(Enumerable.t(), pos_integer()) :: Enumerable.t()",
                explain="`moving_average/2` slides a window with `Stream.chunk_every/4` (step 1, "
                "`:discard` for the incomplete tail) and averages each window.",
                tests=[Test("averages pairs", [
                    f"averages = {attr} |> {c.short}.moving_average(2) |> Enum.to_list()", "",
                    "assert length(averages) == 2", f"assert_in_delta hd(averages), {lit(round(first, 4))}, 0.01"])]))
    return out


SUFFIX_DOC = {
    "Import": "Imports {many} from delimited text",
    "Ingest": "Ingests {one} lines from files or other streams",
    "Loader": "Loads {many} from delimited text",
    "Export": "Parses and re-exports {many} as delimited text",
    "Aggregator": "Aggregates {one} records from delimited lines",
    "Pipeline": "A lazy processing pipeline for {one} lines",
    "Feed": "Processes a feed of {one} lines",
    "Sync": "Parses {one} lines received from a partner system",
}


def build_pipeline(c: Ctx, suffix: str) -> ModSpec:
    e = c.entity
    cols = Columns(c)
    helpers: list[Fn] = []
    parse = _parse_line(c, cols, helpers)
    process, _lines, _records = _process(c, cols)
    fns = []
    if suffix in ("Import", "Ingest", "Loader") or c.rng.random() < 0.3:
        fns.append(Fn.simple("run", ["path"], ["path", "|> File.stream!()", "|> process()", "|> Enum.to_list()"],
                             doc=f"Reads `path` line by line and returns the valid {e.human_plural}.",
                             spec="run(Path.t()) :: [map()]",
                             explain="`run/1` opens the file with `File.stream!/1`, so lines are read lazily "
                             "and only the parsed records are held in memory."))
    sinks = _sinks(c, cols)
    if suffix == "Export" and not any(f.name == "export" for f in sinks):
        sinks = [f for f in _sinks_export(c, cols)] + sinks
    fns += [process, parse] + sinks + helpers
    lead = SUFFIX_DOC[suffix].format(one=e.human, many=e.human_plural)
    cols_doc = ", ".join(f"`{n}`" for n in cols.names)
    doc = (f"{lead}.\n\nEach line holds {cols_doc}, separated by `{cols.sep}`. Everything is built on "
           "`Stream`, so large inputs are processed in constant memory.")
    summary = (f"`{c.name}` is a data pipeline for {e.human_plural} in {c.domain.blurb}. It reads lines of "
               f"{cols_doc} separated by `{cols.sep}`, parses them into maps, and composes lazy `Stream` "
               "stages, so nothing is computed until a consumer such as `Enum.to_list/1` pulls the data.")
    recs = [cols.record(r) for r in c.samples]
    from elixir_coder.corpus.demo.ex import lit_lines

    test = TestModule(aliases=[c.name], blocks=[lit_lines(recs, 2, "@records ")])
    return ModSpec(c.name, "pipeline", doc, [], [], fns, test, summary,
                   notes=[fn.explain for fn in fns if fn.explain], ctx=c, facts={"sep": cols.sep})


def _sinks_export(c: Ctx, cols: Columns) -> list[Fn]:
    """The export sink alone, for modules whose name promises one."""
    state = c.rng.getstate()
    for _ in range(20):
        fns = _sinks(c, cols)
        if any(f.name == "export" for f in fns):
            return [f for f in fns if f.name in ("to_line", "export")]
    c.rng.setstate(state)
    return []
