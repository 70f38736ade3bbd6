"""GenServers and Supervisors.

A GenServer is one of a few archetypes (cache, counter, buffer, rate limiter, stats window,
presence tracker) about an entity, with drawn details: whether clients address a registered
name or pass a pid, intervals, limits, optional periodic work, ETS or map state. Its tests
start it with ``start_supervised!`` and check replies that follow from the callbacks.
"""

from __future__ import annotations

import re

from elixir_coder.corpus.demo.ex import MAX_LINE, Clause, Ctx, Fn, ModSpec, Test, TestModule, arity_of, lit
from elixir_coder.corpus.demo.words import a_an


def upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


class Server:
    """Client API helpers shared by the archetypes: named (``__MODULE__``) or pid style."""

    def __init__(self, c: Ctx):
        self.c = c
        self.pid = c.rng.random() < 0.5
        self.target = "server" if self.pid else "__MODULE__"
        self.fns: list[Fn] = []
        self.callbacks: list[Fn] = []
        self.helpers: list[Fn] = []
        self.attrs: list[str] = []
        self.notes: list[str] = []
        self.header_extra: list[str] = []

    def api(self, name: str, args: list[str], message: str, kind: str, doc: str, spec_args: list[str],
            ret: str, explain: str, tests: list[Test] | None = None, guard: str = "") -> None:
        """A client function that sends ``message`` with GenServer.call or GenServer.cast."""
        all_args = (["server"] if self.pid else []) + args
        spec_all = (["GenServer.server()"] if self.pid else []) + spec_args
        body = [f"GenServer.{kind}({self.target}, {message})"]
        explain = re.sub(rf"^`{name}` ", f"`{name}/{len(all_args)}` ", explain)
        self.fns.append(Fn.simple(name, all_args, body, doc=doc, spec=f"{name}({', '.join(spec_all)}) :: {ret}",
                                  explain=explain, tests=tests or [], guard=guard))

    def callback(self, name: str, clauses: list[Clause]) -> None:
        """Add clauses to callback ``name``; clauses of one function stay together."""
        for fn in self.callbacks:
            if fn.name == name:
                fn.clauses.extend(clauses)
                return
        self.callbacks.append(Fn(name, arity_of(clauses[0].args), list(clauses), impl=True))

    def start(self, **opts) -> str:
        """The test line that starts the server, with ``opts`` passed to ``start_link/1``."""
        mod = self.c.short
        items = ([("name", "nil")] if self.pid else []) + [(k, v) for k, v in opts.items()]
        if not items:
            return f"start_supervised!({mod})"
        arg = "{" + mod + ", " + ", ".join(f"{k}: {v}" for k, v in items) + "}"
        return f"server = start_supervised!({arg})" if self.pid else f"start_supervised!({arg})"

    def call(self, name: str, args: str = "") -> str:
        parts = (["server"] if self.pid else []) + ([args] if args else [])
        return f"{self.c.short}.{name}({', '.join(parts)})"

    def start_link(self, what: str, options: str) -> Fn:
        doc = f"Starts the {what}.\n\n## Options\n\n  * `:name` - registered name (defaults to the module name)"
        if options:
            doc += "\n" + options
        return Fn.simple(
            "start_link", ["opts \\\\ []"],
            ["{name, opts} = Keyword.pop(opts, :name, __MODULE__)",
             "GenServer.start_link(__MODULE__, opts, name: name)"],
            doc=doc, spec="start_link(keyword()) :: GenServer.on_start()",
            explain="`start_link/1` pops `:name` (the module name by default) and passes the "
            "remaining options to `init/1`.",
        )


def _samples_label(c: Ctx) -> list:
    label = c.entity.label.name
    return [r[label] for r in c.samples]


def gs_cache(s: Server) -> tuple[str, str]:
    c = s.c
    one, e = c.one, c.entity
    ttl = c.rng.random() < 0.5
    interval = c.pick([30, 60, 120, 300])
    default_ttl = c.pick([5, 10, 15, 30])
    values = _samples_label(c)
    if ttl:
        s.attrs += [f"@default_ttl :timer.minutes({default_ttl})", f"@sweep_interval :timer.seconds({interval})"]
        s.callback("init", [Clause("opts", [
            "ttl = Keyword.get(opts, :ttl, @default_ttl)", "schedule_sweep()", "{:ok, %{entries: %{}, ttl: ttl}}"])])
        s.callback("handle_call", [Clause("{:get, key}, _from, state", [
            "now = System.monotonic_time(:millisecond)", "", "reply =",
            "  case Map.fetch(state.entries, key) do",
            "    {:ok, {value, expires_at}} when expires_at > now -> {:ok, value}", "    _ -> :error",
            "  end", "", "{:reply, reply, state}"])])
        s.callback("handle_cast", [Clause("{:put, key, value}, state", [
            "expires_at = System.monotonic_time(:millisecond) + state.ttl",
            "{:noreply, put_in(state.entries[key], {value, expires_at})}"])])
        s.callback("handle_info", [Clause(":sweep, state", [
            "now = System.monotonic_time(:millisecond)",
            "entries = Map.filter(state.entries, fn {_key, {_value, expires_at}} -> expires_at > now end)",
            "schedule_sweep()", "{:noreply, %{state | entries: entries}}"])])
        s.helpers.append(Fn.simple("schedule_sweep", [], ["Process.send_after(self(), :sweep, @sweep_interval)"],
                                   public=False))
        s.notes.append(f"Entries expire after a TTL (default {default_ttl} minutes, `:ttl` option in "
                       f"milliseconds); a `:sweep` message scheduled every {interval} seconds with "
                       "`Process.send_after/3` drops expired entries, and `get` ignores them even before "
                       "the sweep runs.")
        options = f"  * `:ttl` - entry lifetime in milliseconds (default {default_ttl} minutes)"
    else:
        s.callback("init", [Clause("_opts", ["{:ok, %{entries: %{}}}"])])
        s.callback("handle_call", [Clause("{:get, key}, _from, state", [
            "{:reply, Map.fetch(state.entries, key), state}"])])
        s.callback("handle_cast", [Clause("{:put, key, value}, state", [
            "{:noreply, put_in(state.entries[key], value)}"])])
        s.notes.append("Entries never expire; they stay until deleted or the process restarts, "
                       "so the cache is empty again after a crash.")
        options = ""
    s.callback("handle_cast", [Clause("{:delete, key}, state", [
        "{:noreply, %{state | entries: Map.delete(state.entries, key)}}"])])
    s.callback("handle_call", [Clause(":size, _from, state", ["{:reply, map_size(state.entries), state}"])])
    v0, v1 = lit(values[0]), lit(values[1])
    s.api("put", ["id", e.label.name], f"{{:put, id, {e.label.name}}}", "cast",
          f"Caches the `{e.label.name}` of the {e.human} with `id`. Asynchronous.",
          ["term()", "term()"], ":ok",
          f"`put/{2 + s.pid}` casts `{{:put, id, value}}`, so it returns `:ok` immediately.",
          [Test("stores a value", [s.start(), "", s.call("put", f"1, {v0}"),
                                   f"assert {s.call('get', '1')} == {{:ok, {v0}}}"])])
    s.api("get", ["id"], "{:get, id}", "call",
          f"Looks up a cached {e.human} `{e.label.name}`; `:error` when missing"
          + (" or expired." if ttl else "."),
          ["term()"], "{:ok, term()} | :error",
          f"`get/{1 + s.pid}` is a synchronous call returning `{{:ok, value}}` or `:error`.",
          [Test("misses unknown keys", [s.start(), "", f"assert {s.call('get', '42')} == :error"])]
          + ([Test("forgets expired entries", [s.start(ttl="0"), "", s.call("put", f"1, {v1}"),
                                               f"assert {s.call('get', '1')} == :error"])] if ttl else []))
    s.api("delete", ["id"], "{:delete, id}", "cast", f"Removes the cached {e.human} with `id`, if any.",
          ["term()"], ":ok", f"`delete/{1 + s.pid}` casts a removal.",
          [Test("removes an entry", [s.start(), "", s.call("put", f"1, {v0}"), s.call("delete", "1"), "",
                                     f"assert {s.call('get', '1')} == :error"])])
    s.api("size", [], ":size", "call", "Number of cached entries" + (", expired ones included until the "
          "next sweep." if ttl else "."), [], "non_neg_integer()", f"`size/{s.pid:d}` returns `map_size/1` of the entries.",
          [Test("counts entries", [s.start(), "", s.call("put", f"1, {v0}"), s.call("put", f"2, {v1}"), "",
                                   f"assert {s.call('size')} == 2"])])
    return f"{e.human} cache", options


def _key_values(c: Ctx) -> tuple[str, list]:
    """A field to count or track by, and its sample values."""
    cands = c.entity.of("status", "string") or [c.entity.label]
    f = c.pick(cands)
    return f.name, [r[f.name] for r in c.samples]


def gs_counter(s: Server) -> tuple[str, str]:
    c = s.c
    key, values = _key_values(c)
    what = f"{c.entity.human} counter"
    a, b = lit(values[0]), lit(values[1] if values[1] != values[0] else values[2])
    if not s.pid and c.rng.random() < 0.5:
        return _ets_counter(s, key, a, b)
    s.callback("init", [Clause("_opts", ["{:ok, %{}}"])])
    s.callback("handle_cast", [Clause("{:increment, key, by}, counts", [
        "{:noreply, Map.update(counts, key, by, &(&1 + by))}"])])
    s.callback("handle_call", [
        Clause("{:count, key}, _from, counts", ["{:reply, Map.get(counts, key, 0), counts}"]),
        Clause(":counts, _from, counts", ["{:reply, counts, counts}"]),
        Clause(":reset, _from, _counts", ["{:reply, :ok, %{}}"]),
    ])
    if c.rng.random() < 0.5:
        minutes = c.pick([1, 5, 15])
        s.attrs.append(f"@report_interval :timer.minutes({minutes})")
        s.header_extra.append("require Logger")
        s.callbacks[0].clauses[0] = Clause("_opts", ["schedule_report()", "{:ok, %{}}"])
        s.callback("handle_info", [Clause(":report, counts", [
            f'Logger.info("{c.entity.human} counts: #{{inspect(counts)}}")', "schedule_report()",
            "{:noreply, counts}"])])
        s.helpers.append(Fn.simple("schedule_report", [], [
            "Process.send_after(self(), :report, @report_interval)"], public=False))
        s.notes.append(f"Every {minutes} minute{'s' if minutes > 1 else ''} it logs the current counts "
                       "with `Logger.info/1` and schedules the next report.")
    s.api("increment", [f"{key}", "by \\\\ 1"], f"{{:increment, {key}, by}}", "cast",
          f"Adds `by` (default 1) to the count for `{key}`. Asynchronous.", ["term()", "pos_integer()"],
          ":ok", "`increment` is a cast that updates the map with `Map.update/4`.",
          [Test("counts increments", [s.start(), "", s.call("increment", a), s.call("increment", f"{a}, 2"),
                                      "", f"assert {s.call('count', a)} == 3"])],
          guard="is_integer(by) and by > 0")
    s.api("count", [key], f"{{:count, {key}}}", "call", f"Current count for `{key}`, 0 if never seen.",
          ["term()"], "non_neg_integer()", "`count` replies with the stored count or 0.",
          [Test("starts at zero", [s.start(), "", f"assert {s.call('count', b)} == 0"])])
    s.api("counts", [], ":counts", "call", f"All counts as a map from `{key}` to count.", [],
          "%{optional(term()) => pos_integer()}", "`counts` returns the whole map.",
          [Test("returns every count", [s.start(), "", s.call("increment", a), s.call("increment", b), "",
                                        f"assert {s.call('counts')} == %{{{a} => 1, {b} => 1}}"])])
    s.api("reset", [], ":reset", "call", "Forgets all counts.", [], ":ok",
          "`reset` replaces the state with an empty map.",
          [Test("clears counts", [s.start(), "", s.call("increment", a), s.call("reset"), "",
                                  f"assert {s.call('counts')} == %{{}}"])])
    return what, ""


def _ets_counter(s: Server, key: str, a: str, b: str) -> tuple[str, str]:
    c = s.c
    s.attrs.append("@table __MODULE__")
    s.callback("init", [Clause("_opts", [
        "table = :ets.new(@table, [:named_table, :public, :set, write_concurrency: true])",
        "{:ok, table}"])])
    s.fns += [
        Fn.simple("increment", [key, "by \\\\ 1"], [f":ets.update_counter(@table, {key}, by, {{{key}, 0}})"],
                  guard="is_integer(by)",
                  doc=f"Adds `by` (default 1) to the count for `{key}` and returns the new count.",
                  spec="increment(term(), integer()) :: integer()",
                  explain="`increment/2` calls `:ets.update_counter/4` directly from the caller, so "
                  "increments never queue behind the server.",
                  tests=[Test("returns the new count", [s.start(), "", f"assert {s.call('increment', a)} == 1",
                                                        f"assert {s.call('increment', a + ', 4')} == 5"])]),
        Fn.simple("count", [key], [f"case :ets.lookup(@table, {key}) do", f"  [{{^{key}, n}}] -> n", "  [] -> 0",
                                   "end"],
                  doc=f"Current count for `{key}`; 0 when it was never incremented.",
                  spec="count(term()) :: integer()",
                  explain="`count/1` reads the table with `:ets.lookup/2` and pattern-matches the row.",
                  tests=[Test("reads counts", [s.start(), "", s.call("increment", b), "",
                                               f"assert {s.call('count', b)} == 1",
                                               f"assert {s.call('count', lit('missing'))} == 0"])]),
        Fn.simple("counts", [], ["@table", "|> :ets.tab2list()", "|> Map.new()"],
                  doc="All counts as a map.", spec="counts() :: map()",
                  explain="`counts/0` copies the whole table into a map with `:ets.tab2list/1`."),
    ]
    s.notes.append("The GenServer only owns a public, named ETS table created in `init/1` with "
                   "`write_concurrency: true`; reads and writes go straight to ETS, and the table "
                   "disappears if the server dies.")
    return f"{c.entity.human} counter backed by ETS", ""


def gs_buffer(s: Server) -> tuple[str, str]:
    c = s.c
    size, secs = c.pick([50, 100, 500]), c.pick([1, 5, 10])
    values = _samples_label(c)
    a, b = lit(values[0]), lit(values[1])
    s.attrs += [f"@default_max {size}", f"@flush_interval :timer.seconds({secs})"]
    s.callback("init", [Clause("opts", [
        "max = Keyword.get(opts, :max, @default_max)", "on_flush = Keyword.get(opts, :on_flush, fn _batch -> :ok end)",
        "schedule_flush()", "{:ok, %{items: [], count: 0, max: max, on_flush: on_flush}}"])])
    s.callback("handle_cast", [Clause("{:push, item}, state", [
        "state = %{state | items: [item | state.items], count: state.count + 1}", "",
        "if state.count >= state.max do", "  {:noreply, drain(state)}", "else", "  {:noreply, state}", "end"])])
    s.callback("handle_call", [
        Clause(":flush, _from, state", ["{:reply, Enum.reverse(state.items), drain(state)}"]),
        Clause(":size, _from, state", ["{:reply, state.count, state}"]),
    ])
    s.callback("handle_info", [Clause(":flush, state", ["schedule_flush()", "{:noreply, drain(state)}"])])
    s.helpers += [
        Fn("drain", 1, [Clause("%{count: 0} = state", ["state"], oneline=True),
                        Clause("state", ["state.on_flush.(Enum.reverse(state.items))", "%{state | items: [], count: 0}"])],
           public=False),
        Fn.simple("schedule_flush", [], ["Process.send_after(self(), :flush, @flush_interval)"], public=False),
    ]
    s.api("push", ["item"], "{:push, item}", "cast", f"Adds {c.entity.a} to the buffer. Asynchronous.",
          ["term()"], ":ok", "`push` casts the item; the server prepends it and drains once `:max` is reached.",
          [Test("flushes when full", ["test_pid = self()", "on_flush = &send(test_pid, {:flushed, &1})",
                                      s.start(max="2", on_flush="on_flush"), "",
                                      s.call("push", a), s.call("push", b), "",
                                      f"assert_receive {{:flushed, [{a}, {b}]}}"])])
    s.api("flush", [], ":flush", "call", "Drains the buffer now and returns the items in arrival order.",
          [], "[term()]", "`flush` replies with the buffered items, oldest first, and empties the buffer.",
          [Test("returns items in order", [s.start(), "", s.call("push", a), s.call("push", b), "",
                                           f"assert {s.call('flush')} == [{a}, {b}]",
                                           f"assert {s.call('size')} == 0"])])
    s.api("size", [], ":size", "call", "Number of buffered items.", [], "non_neg_integer()",
          "`size` replies with the item count kept in the state.")
    s.notes.append(f"Items are kept newest-first and reversed on flush. The buffer drains when it "
                   f"holds `:max` items (default {size}) and every {secs} second{'s' if secs > 1 else ''} "
                   "on a `:flush` timer; the private multi-clause `drain/1` skips the `:on_flush` "
                   "callback when the buffer is empty.")
    return f"buffer of {c.entity.human_plural}", (
        f"  * `:max` - flush when this many items are buffered (default {size})\n"
        "  * `:on_flush` - one-argument function given each batch")


def gs_limiter(s: Server) -> tuple[str, str]:
    c = s.c
    limit, secs = c.pick([3, 5, 10, 60]), c.pick([1, 10, 60])
    cands = c.entity.of("email", "code") or [c.entity.label]
    key = c.pick(cands).name
    values = [r[key] for r in c.samples]
    a, b = lit(values[0]), lit(values[1])
    s.attrs += [f"@default_limit {limit}", f"@window :timer.seconds({secs})"]
    s.callback("init", [Clause("opts", [
        "limit = Keyword.get(opts, :limit, @default_limit)", "schedule_reset()",
        "{:ok, %{limit: limit, hits: %{}}}"])])
    s.callback("handle_call", [
        Clause(f"{{:hit, {key}}}, _from, state", [
            f"count = Map.get(state.hits, {key}, 0)", "", "if count < state.limit do",
            f"  {{:reply, :ok, put_in(state.hits[{key}], count + 1)}}", "else",
            "  {:reply, {:error, :rate_limited}, state}", "end"]),
        Clause(f"{{:reset, {key}}}, _from, state", [f"{{:reply, :ok, %{{state | hits: Map.delete(state.hits, {key})}}}}"]),
    ])
    s.callback("handle_info", [Clause(":reset_window, state", ["schedule_reset()", "{:noreply, %{state | hits: %{}}}"])])
    s.helpers.append(Fn.simple("schedule_reset", [], ["Process.send_after(self(), :reset_window, @window)"],
                               public=False))
    s.api("check", [key], f"{{:hit, {key}}}", "call",
          f"Records a hit for `{key}` and tells whether it is still within the limit.",
          ["term()"], ":ok | {:error, :rate_limited}",
          "`check` is a call, so concurrent hits for the same key are serialised and counted exactly.",
          [Test("allows up to the limit", [s.start(limit="2"), "", f"assert {s.call('check', a)} == :ok",
                                           f"assert {s.call('check', a)} == :ok",
                                           f"assert {s.call('check', a)} == {{:error, :rate_limited}}"]),
           Test("counts keys separately", [s.start(limit="1"), "", f"assert {s.call('check', a)} == :ok",
                                           f"assert {s.call('check', b)} == :ok"])])
    s.api("reset", [key], f"{{:reset, {key}}}", "call", f"Clears the hits recorded for `{key}`.",
          ["term()"], ":ok", "`reset` deletes one key's hits.",
          [Test("lets a key start over", [s.start(limit="1"), "", s.call("check", a), s.call("reset", a), "",
                                          f"assert {s.call('check', a)} == :ok"])])
    s.notes.append(f"It is a fixed-window limiter: each `{key}` gets `:limit` hits (default {limit}) "
                   f"per window, and a `:reset_window` message every {secs} second{'s' if secs > 1 else ''} "
                   "clears all counters at once, so a burst can straddle two windows.")
    return f"rate limiter for {c.entity.human} requests keyed by `{key}`", (
        f"  * `:limit` - hits allowed per window (default {limit})")


def gs_stats(s: Server) -> tuple[str, str] | None:
    c = s.c
    nums = c.entity.of("money", "count", "int", "float")
    if not nums:
        return None
    f = c.pick(nums)
    window = c.pick([50, 100, 1000])
    values = [r[f.name] for r in c.samples]
    s.attrs.append(f"@window_size {window}")
    s.callback("init", [Clause("_opts", ["{:ok, []}"])])
    s.callback("handle_cast", [Clause("{:record, value}, values", [
        "{:noreply, Enum.take([value | values], @window_size)}"])])
    s.callback("handle_call", [
        Clause(":stats, _from, values", ["{:reply, summarize(values), values}"]),
        Clause(":reset, _from, _values", ["{:reply, :ok, []}"]),
    ])
    s.helpers.append(Fn("summarize", 1, [
        Clause("[]", ["%{count: 0, min: nil, max: nil, mean: nil}"], oneline=True),
        Clause("values", ["count = length(values)", "",
                          "%{count: count, min: Enum.min(values), max: Enum.max(values), mean: Enum.sum(values) / count}"]),
    ], public=False))
    record_lines = [s.call("record", lit(v)) for v in values]
    s.api("record", ["value"], "{:record, value}", "cast", f"Records one `{f.name}` sample. Asynchronous.",
          ["number()"], ":ok", "`record` casts the sample; the server keeps only the newest "
          f"{window} values.", guard="is_number(value)",
          tests=[Test("rejects non-numbers", [s.start(), "",
                                              f"assert_raise FunctionClauseError, fn -> {s.call('record', lit('x'))} end"])])
    mean = sum(values) / len(values)
    s.api("stats", [], ":stats", "call", f"Count, min, max and mean of the recorded `{f.name}` values.",
          [], "map()", "`stats` summarises the window; the mean is `nil` when nothing was recorded.",
          [Test("summarises samples", [s.start(), "", *record_lines, f"stats = {s.call('stats')}", "",
                                       "assert stats.count == 3", f"assert stats.min == {lit(min(values))}",
                                       f"assert stats.max == {lit(max(values))}",
                                       f"assert_in_delta stats.mean, {lit(round(mean, 4))}, 0.01"]),
           Test("is empty at start", [s.start(), "", f"assert {s.call('stats')}.count == 0"])])
    s.api("reset", [], ":reset", "call", "Drops all samples.", [], ":ok", "`reset` empties the window.")
    s.notes.append(f"The state is just a list of the latest samples, newest first, capped at "
                   f"`@window_size` ({window}) with `Enum.take/2`; `summarize/1` has a separate clause "
                   "for the empty list so the mean never divides by zero.")
    return f"sliding window of `{f.name}` samples for {c.entity.human_plural}", ""


def gs_presence(s: Server) -> tuple[str, str]:
    c = s.c
    values = _samples_label(c)
    a, b = lit(values[0]), lit(values[1])
    s.callback("init", [Clause("_opts", ["{:ok, %{}}"])])
    s.callback("handle_call", [
        Clause("{:track, name}, {pid, _tag}, refs", ["ref = Process.monitor(pid)", "{:reply, :ok, Map.put(refs, ref, name)}"]),
        Clause("{:untrack, name}, _from, refs", [
            "{gone, kept} = Enum.split_with(refs, fn {_ref, tracked} -> tracked == name end)",
            "Enum.each(gone, fn {ref, _name} -> Process.demonitor(ref, [:flush]) end)",
            "{:reply, :ok, Map.new(kept)}"]),
        Clause(":online, _from, refs", ["{:reply, refs |> Map.values() |> Enum.uniq() |> Enum.sort(), refs}"]),
    ])
    s.callback("handle_info", [Clause("{:DOWN, ref, :process, _pid, _reason}, refs", [
        "{:noreply, Map.delete(refs, ref)}"])])
    s.api("track", ["name"], "{:track, name}", "call",
          "Marks `name` as online for as long as the calling process lives.", ["String.t()"], ":ok",
          "`track` monitors the caller's pid, taken from the `from` tuple in `handle_call/3`.",
          [Test("lists tracked names", [s.start(), "", s.call("track", b), s.call("track", a), "",
                                        f"assert {s.call('online')} == {lit(sorted([values[0], values[1]]))}"])])
    s.api("untrack", ["name"], "{:untrack, name}", "call", "Stops tracking `name` and drops its monitors.",
          ["String.t()"], ":ok", "`untrack` demonitors every entry for the name with `[:flush]`.",
          [Test("forgets untracked names", [s.start(), "", s.call("track", a), s.call("untrack", a), "",
                                            f"assert {s.call('online')} == []"])])
    s.api("online", [], ":online", "call", "Sorted list of distinct names currently online.", [],
          "[String.t()]", "`online` returns the distinct tracked names, sorted.")
    s.notes.append("Entries are keyed by monitor reference, so when a tracked process exits the "
                   "`:DOWN` message in `handle_info/2` removes it without any explicit untrack.")
    return f"presence tracker for {c.entity.human_plural}", ""


ARCHETYPES = {"cache": gs_cache, "counter": gs_counter, "buffer": gs_buffer, "limiter": gs_limiter,
              "stats": gs_stats, "presence": gs_presence}


def build_genserver(c: Ctx, arch: str) -> ModSpec:
    s = Server(c)
    made = ARCHETYPES[arch](s)
    if made is None:  # the entity has nothing to measure
        s = Server(c)
        made = gs_counter(s)
    what, options = made
    fns = [s.start_link(what, options), *s.fns, *s.callbacks, *s.helpers]
    header = ["use GenServer", *s.header_extra]
    style = ("Every client function takes the server as its first argument, so several "
             "instances can run side by side." if s.pid else
             "Client functions talk to the process registered under the module name.")
    doc = f"{upper_first(a_an(what))} in {c.domain.blurb}, kept in a GenServer.\n\n{style}"
    summary = (f"`{c.name}` is a GenServer implementing {a_an(what)} in {c.domain.blurb}. "
               f"{style} It is started with `start_link/1`, typically from a supervisor.")
    notes = [fn.explain for fn in s.fns] + s.notes
    test = TestModule(aliases=[c.name])
    return ModSpec(c.name, "genserver", doc, header, [s.attrs] if s.attrs else [], fns, test, summary,
                   notes=notes, ctx=c)


STRATEGIES = {
    ":one_for_one": "if a child crashes, only that child is restarted",
    ":rest_for_one": "a crash restarts the failed child and every child listed after it, so later "
                     "children may rely on earlier ones",
    ":one_for_all": "a crash in any child restarts all of them, which suits children that share state",
}


def pid_style(spec: ModSpec) -> bool:
    """Whether a GenServer's client API takes the server as first argument."""
    return any(fn.clauses[0].args.startswith("server") for fn in spec.fns if fn.doc)


def build_supervisor(c: Ctx, variant: str, known: list[ModSpec]) -> ModSpec:
    servers = [k for k in known if k.kind == "genserver"]
    if variant == "dynamic":
        return _dynamic_supervisor(c, [k for k in servers if pid_style(k)])
    return _static_supervisor(c, servers)


def _static_supervisor(c: Ctx, servers: list[ModSpec]) -> ModSpec:
    rng, app, e = c.rng, c.domain.app, c.entity
    picked = rng.sample(servers, min(len(servers), rng.randint(1, 3))) if servers else []
    aliases = sorted(k.name for k in picked)
    children: list[str] = []
    described: list[str] = []
    stdlib = [
        (f"{{Registry, keys: :unique, name: {app}.{e.camel}Registry}}", f"a unique-key `Registry` named `{app}.{e.camel}Registry`"),
        (f"{{Task.Supervisor, name: {app}.{e.context}TaskSupervisor}}", "a `Task.Supervisor` for fire-and-forget work"),
        (f"{{DynamicSupervisor, name: {app}.{e.camel}Workers, strategy: :one_for_one}}",
         f"a `DynamicSupervisor` named `{app}.{e.camel}Workers` for per-{e.human} processes"),
    ]
    for child, text in rng.sample(stdlib, rng.randint(0 if picked else 1, 2)):
        children.append(child)
        described.append(text)
    for k in picked:
        short = k.name.rsplit(".", 1)[-1]
        tags = rng.sample(["primary", "secondary", "hot", "cold", "eu", "us"], 2)
        specs = [f"Supervisor.child_spec({{{short}, name: :{t}_{e.singular}}}, id: :{t}_{e.singular})"
                 for t in tags]
        if pid_style(k) and rng.random() < 0.5 and all(len(x) + 7 <= MAX_LINE for x in specs):
            children += specs
            described.append(f"two `{short}` instances registered under different names, each with "
                             "its own child id")
        else:
            children.append(short)
            described.append(f"`{short}`")
    if rng.random() < 0.3:
        rng.shuffle(children)
    strategy = rng.choice(sorted(STRATEGIES))
    opts = f"strategy: {strategy}"
    if rng.random() < 0.5:
        restarts, secs = rng.choice([3, 5, 10]), rng.choice([5, 10, 30])
        opts += f", max_restarts: {restarts}, max_seconds: {secs}"
        limit = (f" More than {restarts} restarts within {secs} seconds make the supervisor itself "
                 "exit, escalating to its parent.")
    else:
        limit = " The default restart intensity applies (3 restarts in 5 seconds)."
    body = ["children = ["] + [f"  {ch}," for ch in children[:-1]] + [f"  {children[-1]}", "]", "",
                                                                       f"Supervisor.init(children, {opts})"]
    init = Fn("init", 1, [Clause("_opts", body)], impl=True, tests=[Test(
        f"supervises {len(children)} children", [
            f"assert {{:ok, {{flags, children}}}} = {c.short}.init([])", "",
            f"assert flags.strategy == {strategy}", f"assert length(children) == {len(children)}"])])
    start = Fn.simple("start_link", ["opts \\\\ []"],
                      ["Supervisor.start_link(__MODULE__, opts, name: Keyword.get(opts, :name, __MODULE__))"],
                      doc="Starts the supervisor and its children; `:name` defaults to the module name.",
                      spec="start_link(keyword()) :: Supervisor.on_start()",
                      explain="`start_link/1` starts the supervisor under the module name unless `:name` is given.")
    fns = [start]
    if rng.random() < 0.5:
        fns.append(Fn.simple("restart", ["child_id"], [
            "with :ok <- Supervisor.terminate_child(__MODULE__, child_id) do",
            "  Supervisor.restart_child(__MODULE__, child_id)", "end"],
            doc="Restarts one child by id, e.g. after changing its configuration.",
            spec="restart(term()) :: {:ok, pid()} | {:error, term()}",
            explain="`restart/1` terminates a child and restarts it in a `with`, returning the first "
            "error such as `{:error, :not_found}`."))
    fns.append(init)
    header = ["use Supervisor"] + ([""] + [f"alias {a}" for a in aliases] if aliases else [])
    doc = (f"Supervises the long-running processes behind {e.context} in {c.domain.blurb}.\n\n"
           f"Uses the `{strategy}` strategy: {STRATEGIES[strategy]}.")
    summary = (f"`{c.name}` is a Supervisor for {c.domain.blurb}. Its `init/1` starts "
               + ", ".join(described) + f" and uses the `{strategy}` strategy: {STRATEGIES[strategy]}.{limit}")
    notes = [fn.explain for fn in fns if fn.explain]
    return ModSpec(c.name, "supervisor", doc, header, [], fns, TestModule(aliases=[c.name]), summary,
                   notes=notes, ctx=c, facts={"strategy": strategy})


def _dynamic_supervisor(c: Ctx, servers: list[ModSpec]) -> ModSpec:
    rng, e = c.rng, c.entity
    max_children = rng.choice([2, 3, 100, 1000])
    if servers:
        worker = rng.choice(servers)
        short = worker.name.rsplit(".", 1)[-1]
        header = ["use DynamicSupervisor", "", f"alias {worker.name}"]
        body = [f"spec = {{{short}, Keyword.put(opts, :name, nil)}}", "DynamicSupervisor.start_child(__MODULE__, spec)"]
        args, spec_args, call_arg = ["opts \\\\ []"], "keyword()", ""
        what, arg_doc = f"`{short}` process", "`opts` are passed to its `start_link/1`; the name is forced to `nil`"
    else:
        header = ["use DynamicSupervisor"]
        body = ["DynamicSupervisor.start_child(__MODULE__, {Agent, fn -> initial end})"]
        args, spec_args, call_arg = ["initial"], "term()", lit(c.samples[0][e.label.name])
        what, arg_doc = "`Agent`", f"the agent holds one {e.human}'s state, starting with `initial`"
    extra = []
    if max_children <= 3:
        extra = [Test("refuses children beyond the limit", [
            f"start_supervised!({c.short})", "",
            *[f"{{:ok, _}} = {c.short}.start_child({call_arg})" for _ in range(max_children)], "",
            f"assert {c.short}.start_child({call_arg}) == {{:error, :max_children}}"])]
    fns = [
        Fn.simple("start_link", ["init_arg \\\\ []"],
                  ["DynamicSupervisor.start_link(__MODULE__, init_arg, name: __MODULE__)"],
                  doc="Starts the supervisor, registered under the module name.",
                  spec="start_link(term()) :: Supervisor.on_start()",
                  explain="`start_link/1` registers the supervisor under its module name."),
        Fn.simple("start_child", args, body,
                  doc=f"Starts a new {what} under this supervisor.\n\n{arg_doc[0].upper() + arg_doc[1:]}.",
                  spec=f"start_child({spec_args}) :: DynamicSupervisor.on_start_child()",
                  explain=f"`start_child/1` starts a {what} on demand; {arg_doc}.",
                  tests=[Test("starts a child", [f"start_supervised!({c.short})", "",
                                                 f"assert {{:ok, pid}} = {c.short}.start_child({call_arg})",
                                                 "assert is_pid(pid)", f"assert {c.short}.count() == 1"])] + extra),
        Fn.simple("stop_child", ["pid"], ["DynamicSupervisor.terminate_child(__MODULE__, pid)"], guard="is_pid(pid)",
                  doc="Stops a child started with `start_child/1`.",
                  spec="stop_child(pid()) :: :ok | {:error, :not_found}",
                  explain="`stop_child/1` terminates one child by pid.",
                  tests=[Test("stops a child", [f"start_supervised!({c.short})",
                                                f"{{:ok, pid}} = {c.short}.start_child({call_arg})", "",
                                                f"assert {c.short}.stop_child(pid) == :ok",
                                                f"assert {c.short}.count() == 0"])]),
        Fn.simple("count", [], ["DynamicSupervisor.count_children(__MODULE__).active"],
                  doc="Number of running children.", spec="count() :: non_neg_integer()",
                  explain="`count/0` reads `:active` from `DynamicSupervisor.count_children/1`."),
        Fn("init", 1, [Clause("_init_arg", [f"DynamicSupervisor.init(strategy: :one_for_one, max_children: {max_children})"])],
           impl=True),
    ]
    doc = (f"Starts one {what} per {e.human} on demand.\n\nAt most {max_children} children run at once; "
           "each is restarted on its own if it crashes.")
    summary = (f"`{c.name}` is a DynamicSupervisor that starts a {what} per {e.human} at runtime "
               f"instead of at boot. It allows at most {max_children} children (`max_children`), so "
               "`start_child/1` returns `{:error, :max_children}` beyond that, and uses `:one_for_one` "
               "restarts.")
    return ModSpec(c.name, "supervisor", doc, header, [], fns, TestModule(aliases=[c.name]), summary,
                   notes=[fn.explain for fn in fns if fn.explain], ctx=c)
