"""Contrastive pairs: injectors make clean Elixir violate one Credo check / Sobelow finding,
detectors (``corpus.checks``) recognise exactly those violations, positive views stay clean."""

from __future__ import annotations

import random
import shutil

import pytest

from elixir_coder.corpus import checks
from elixir_coder.corpus.checks import detect_quality, detect_security
from elixir_coder.corpus.parser import ParseResult, shared_parser
from elixir_coder.labels import QUALITY_LABELS, SECURITY_LABELS
from elixir_coder.corpus import views
from elixir_coder.corpus.pairs import inject, validated
from elixir_coder.corpus.rules import QUALITY_INJECTORS, SECURITY_INJECTORS
from elixir_coder.corpus.rules.sobelow import inject_csrf
from elixir_coder.corpus.views import positive_view

needs_elixir = pytest.mark.skipif(shutil.which("elixir") is None, reason="install elixir: apt-get install -y elixir")

PLAIN = '''\
defmodule MyApp.TextUtils do
  @moduledoc """
  Helpers that turn user-supplied text into slugs, excerpts and initials.
  """

  @max_slug_length 60

  @doc "Builds a URL-safe slug from a title."
  @spec slugify(String.t()) :: String.t()
  def slugify(title) when is_binary(title) do
    title
    |> String.downcase()
    |> String.replace(~r/[^a-z0-9\\s-]/u, "")
    |> String.split()
    |> Enum.join("-")
    |> String.slice(0, @max_slug_length)
  end

  @doc "Shortens text to at most `limit` characters."
  def truncate(text, limit \\\\ 80) do
    if String.length(text) > limit do
      String.slice(text, 0, limit - 1) <> "..."
    else
      text
    end
  end

  @doc "Summarises a text: word count, reading time and the first sentence."
  def summarize(text, opts \\\\ []) do
    words_per_minute = Keyword.get(opts, :words_per_minute, 200)
    words = String.split(text, ~r/\\s+/, trim: true)
    minutes = div(length(words), words_per_minute) + 1
    first = text |> String.split(".", parts: 2) |> List.first() |> String.trim()
    %{words: length(words), minutes: minutes, first_sentence: first, excerpt: truncate(text, 120)}
  end

  @doc "Returns the upper-case initials of a full name."
  def initials(full_name) do
    full_name
    |> String.split(" ", trim: true)
    |> Enum.map(fn part -> String.first(part) end)
    |> Enum.reject(&is_nil/1)
    |> Enum.map_join("", &String.upcase/1)
  end
end
'''

GENSERVER = '''\
defmodule MyApp.RateLimiter do
  @moduledoc """
  Counts requests per key in fixed windows and refuses them above a limit.
  """

  use GenServer

  alias MyApp.Clock
  alias MyApp.Metrics

  @window_ms 60_000

  def start_link(opts) do
    GenServer.start_link(__MODULE__, opts, name: Keyword.get(opts, :name, __MODULE__))
  end

  @doc "Records a hit for `key` and says whether it is allowed."
  def check_rate(server \\\\ __MODULE__, key, limit) do
    GenServer.call(server, {:check, key, limit})
  end

  @impl true
  def init(opts) do
    state = %{counts: %{}, window_start: Clock.now_ms(), window_ms: Keyword.get(opts, :window_ms, @window_ms)}
    {:ok, state}
  end

  @impl true
  def handle_call({:check, key, limit}, _from, state) do
    state = maybe_reset_window(state)
    count = Map.get(state.counts, key, 0) + 1
    counts = Map.put(state.counts, key, count)
    Metrics.increment(:rate_limiter_hits, %{key: key, count: count})

    if count > limit do
      {:reply, {:error, :rate_limited}, %{state | counts: counts}}
    else
      {:reply, :ok, %{state | counts: counts}}
    end
  end

  defp maybe_reset_window(%{window_start: start, window_ms: window_ms} = state) do
    now = Clock.now_ms()

    case now - start >= window_ms do
      true -> %{state | counts: %{}, window_start: now}
      false -> state
    end
  end
end
'''

SCHEMA = '''\
defmodule MyApp.Accounts.User do
  @moduledoc """
  A registered user account.
  """

  use Ecto.Schema

  import Ecto.Changeset

  alias MyApp.Accounts.Organization
  alias MyApp.Accounts.Role

  @email_format ~r/^[^\\s]+@[^\\s]+$/

  schema "users" do
    field :email, :string
    field :display_name, :string
    field :password, :string, virtual: true
    field :hashed_password, :string
    belongs_to :organization, Organization
    has_many :roles, Role

    timestamps()
  end

  @doc "Changeset for profile updates."
  def changeset(user, attrs) do
    user
    |> cast(attrs, [:email, :display_name, :organization_id])
    |> validate_required([:email])
    |> validate_format(:email, @email_format)
    |> validate_length(:display_name, max: 80)
    |> unique_constraint(:email)
  end

  @doc "Changeset for sign-up: also takes and hashes the password."
  def registration_changeset(user, attrs) do
    user
    |> changeset(attrs)
    |> cast(attrs, [:password])
    |> validate_required([:password])
    |> validate_length(:password, min: 12, max: 72)
    |> put_password_hash()
  end

  defp put_password_hash(changeset) do
    if changeset.valid? do
      password = get_change(changeset, :password)
      put_change(changeset, :hashed_password, Bcrypt.hash_pwd_salt(password))
    else
      changeset
    end
  end
end
'''

CONTROLLER = '''\
defmodule MyAppWeb.PostController do
  use MyAppWeb, :controller

  alias MyApp.Blog
  alias MyApp.Blog.Post

  action_fallback MyAppWeb.FallbackController

  def index(conn, params) do
    page = Map.get(params, "page", "1")
    posts = Blog.list_published_posts(page: String.to_integer(page))
    render(conn, :index, posts: posts)
  end

  def show(conn, %{"id" => id}) do
    post = Blog.get_post!(id)
    render(conn, :show, post: post)
  end

  def create(conn, %{"post" => post_params}) do
    with {:ok, %Post{} = post} <- Blog.create_post(post_params) do
      conn
      |> put_status(:created)
      |> put_resp_header("location", ~p"/api/posts/#{post}")
      |> render(:show, post: post)
    end
  end

  def delete(conn, %{"id" => id}) do
    post = Blog.get_post!(id)

    if post.locked do
      conn
      |> put_status(:forbidden)
      |> json(%{error: "post is locked"})
    else
      {:ok, _post} = Blog.delete_post(post)
      send_resp(conn, :no_content, "")
    end
  end
end
'''

VIEW = '''\
defmodule MyAppWeb.PostView do
  use MyAppWeb, :view

  alias MyApp.Blog.Post
  alias MyAppWeb.DateHelpers

  def render("index.json", %{posts: posts}) do
    %{data: Enum.map(posts, &post_json/1)}
  end

  def render("show.json", %{post: post}) do
    %{data: post_json(post)}
  end

  def status_label(%Post{published_at: nil}), do: "Draft"
  def status_label(%Post{}), do: "Published"

  def excerpt(%Post{body: body}, length \\\\ 140) do
    if String.length(body) > length do
      String.slice(body, 0, length) <> "..."
    else
      body
    end
  end

  defp post_json(post) do
    %{
      id: post.id,
      title: post.title,
      excerpt: excerpt(post),
      status: status_label(post),
      published_on: DateHelpers.format_date(post.published_at),
      author: %{id: post.author_id, name: post.author_name}
    }
  end
end
'''

ROUTER = '''\
defmodule MyAppWeb.Router do
  use MyAppWeb, :router

  pipeline :browser do
    plug :accepts, ["html"]
    plug :fetch_session
    plug :fetch_live_flash
    plug :put_root_layout, html: {MyAppWeb.Layouts, :root}
    plug :protect_from_forgery
    plug :put_secure_browser_headers
    plug :assign_locale
  end

  pipeline :api do
    plug :accepts, ["json"]
  end

  scope "/", MyAppWeb do
    pipe_through :browser

    get "/", PageController, :home
    resources "/posts", PostController, only: [:index, :show]
  end

  scope "/api", MyAppWeb do
    pipe_through :api

    resources "/posts", PostController, except: [:new, :edit]
  end

  defp assign_locale(conn, _opts) do
    locale = get_session(conn, :locale) || "en"

    if locale in ["en", "de", "fr"] do
      assign(conn, :locale, locale)
    else
      assign(conn, :locale, "en")
    end
  end
end
'''

CONTEXT = '''\
defmodule MyApp.Blog do
  @moduledoc """
  The Blog context: posts and their publication.
  """

  import Ecto.Query, warn: false

  alias MyApp.Blog.Post
  alias MyApp.Repo

  @doc "Lists published posts, newest first."
  def list_published_posts(opts \\\\ []) do
    page = Keyword.get(opts, :page, 1)
    per_page = Keyword.get(opts, :per_page, 20)

    Post
    |> where([p], not is_nil(p.published_at))
    |> order_by([p], desc: p.published_at)
    |> limit(^per_page)
    |> offset(^((page - 1) * per_page))
    |> Repo.all()
  end

  def get_post!(id), do: Repo.get!(Post, id)

  def create_post(attrs \\\\ %{}) do
    %Post{}
    |> Post.changeset(attrs)
    |> Repo.insert()
  end

  def update_post(%Post{} = post, attrs) do
    post
    |> Post.changeset(attrs)
    |> Repo.update()
  end

  def delete_post(%Post{} = post), do: Repo.delete(post)

  @doc "Publishes a draft; already published posts are left alone."
  def publish_post(%Post{} = post) do
    if post.published_at do
      {:ok, post}
    else
      post
      |> Post.changeset(%{published_at: DateTime.utc_now()})
      |> Repo.update()
    end
  end
end
'''

CALCULATOR = '''\
defmodule MyApp.Billing.InvoiceCalculator do
  @moduledoc """
  Computes invoice totals from line items, discounts and tax rates.
  """

  alias MyApp.Billing.Discount
  alias MyApp.Billing.TaxRate

  @doc "Totals an invoice: subtotal, discount, tax and grand total in cents."
  def totals(line_items, discount, tax_rate) do
    subtotal = Enum.reduce(line_items, 0, fn item, acc -> acc + item.quantity * item.unit_price end)
    discount_amount = Discount.amount(discount, subtotal)
    taxable = max(subtotal - discount_amount, 0)
    tax = TaxRate.apply(tax_rate, taxable)
    %{subtotal: subtotal, discount: discount_amount, tax: tax, total: taxable + tax}
  end

  @doc "Picks the rounding mode for a currency."
  def rounding_mode(currency) do
    case currency do
      "JPY" -> :none
      "CHF" -> :nearest_five
      _other -> :half_up
    end
  end

  def overdue?(invoice, today) do
    if invoice.paid_at do
      false
    else
      Date.compare(invoice.due_on, today) == :lt
    end
  end
end
'''

SAMPLES = {
    "plain": PLAIN,
    "genserver": GENSERVER,
    "schema": SCHEMA,
    "controller": CONTROLLER,
    "view": VIEW,
    "router": ROUTER,
    "context": CONTEXT,
    "calculator": CALCULATOR,
}

LABELS = QUALITY_LABELS + SECURITY_LABELS
INJECTORS = {**QUALITY_INJECTORS, **SECURITY_INJECTORS}
SEEDS = (0, 1, 2)

# (sample, label) pairs whose input gives the injector nothing to work with, and why.
NOT_APPLICABLE = {
    ("plain", "Credo.Check.Readability.FunctionNames"): "one-word names only",
    ("controller", "Credo.Check.Readability.FunctionNames"): "only routed actions",
    ("schema", "Credo.Check.Readability.ModuleDoc"): "uses Ecto.Schema: ignored by ignore_modules_using",
    ("controller", "Credo.Check.Readability.ModuleDoc"): "*Controller: ignored by ignore_names",
    ("view", "Credo.Check.Readability.ModuleDoc"): "*View: ignored by ignore_names",
    ("router", "Credo.Check.Readability.ModuleDoc"): ".Router: ignored by ignore_names",
    ("plain", "Credo.Check.Readability.AliasOrder"): "no aliases",
    ("router", "Credo.Check.Readability.AliasOrder"): "no aliases",
    ("router", "Credo.Check.Refactor.Nesting"): "its only function has no usable parameter",
    ("router", "Credo.Check.Refactor.CyclomaticComplexity"): "its only function has no usable parameter",
    ("genserver", "Credo.Check.Design.DuplicatedCode"): "the only large body is a callback",
    ("schema", "Credo.Check.Design.DuplicatedCode"): "no body reaches mass 40",
    ("controller", "Credo.Check.Design.DuplicatedCode"): "no body reaches mass 40",
    ("view", "Credo.Check.Design.DuplicatedCode"): "no body reaches mass 40",
    ("router", "Credo.Check.Design.DuplicatedCode"): "no body reaches mass 40",
    ("plain", "Credo.Check.Design.AliasUsage"): "no aliases",
    ("router", "Credo.Check.Design.AliasUsage"): "no aliases",
    ("genserver", "Credo.Check.Design.AliasUsage"): "only two-part aliases (shipped config: if_nested_deeper_than: 2)",
    ("controller", "Credo.Check.Design.AliasUsage"): "no alias of more than two parts is called",
    ("view", "Credo.Check.Design.AliasUsage"): "no alias of more than two parts is called",
    ("schema", "Credo.Check.Consistency.SpaceAroundOperators"): "a single binary operator",
    ("controller", "Sobelow.XSS.Raw"): "Sobelow follows controllers' templates, not raw/1 calls",
    **{("router", label): "routers hold no such code" for label in SECURITY_LABELS if label != "Sobelow.Config.CSRF"},
    **{(name, "Sobelow.Config.CSRF"): "not a router" for name in SAMPLES if name != "router"},
}
APPLICABLE = [(name, label) for label in LABELS for name in SAMPLES if (name, label) not in NOT_APPLICABLE]


def _detect(label: str, code: str) -> set[str]:
    return detect_quality(code) if label in QUALITY_INJECTORS else detect_security(code)


def _id(pair: tuple[str, str]) -> str:
    return f"{pair[0]}-{pair[1].rsplit('.', 1)[-1]}"


def _twin(label: str, code: str, rng) -> tuple[str, str] | None:
    """(clean, violating): Credo injectors return the violating code, Sobelow ones both twins."""
    out = INJECTORS[label](code, rng)
    return (code, out) if isinstance(out, str) else out


@pytest.fixture(scope="module")
def injected() -> dict[tuple[str, str, int], tuple[str, str] | None]:
    """Every injector on every sample for a few seeds, computed once."""
    return {
        (name, label, seed): _twin(label, SAMPLES[name], seed)
        for name in SAMPLES
        for label in LABELS
        for seed in SEEDS
    }


def test_registries_cover_every_label():
    assert set(QUALITY_INJECTORS) == set(QUALITY_LABELS)
    assert set(SECURITY_INJECTORS) == set(SECURITY_LABELS)
    assert set(checks.QUALITY_RULES) == set(QUALITY_LABELS)


@pytest.mark.parametrize("name", SAMPLES)
def test_samples_are_clean(name):
    assert detect_quality(SAMPLES[name]) == set()
    assert detect_security(SAMPLES[name]) == set()


@pytest.mark.elixir
@needs_elixir
def test_samples_parse():
    assert all(validated(code) for code in SAMPLES.values())


@pytest.mark.parametrize("label", LABELS)
def test_injector_applicability(label, injected):
    for name in SAMPLES:
        out = injected[(name, label, 0)]
        if (name, label) in NOT_APPLICABLE:
            assert out is None, f"{name}: expected None ({NOT_APPLICABLE[(name, label)]})"
        else:
            assert out is not None, f"{name}: injector found nothing to change"


@pytest.mark.parametrize("pair", APPLICABLE, ids=_id)
def test_injected_code_differs_and_is_detected(pair, injected):
    name, label = pair
    assert label not in _detect(label, SAMPLES[name])
    for seed in SEEDS:
        assert injected[(name, label, seed)] is not None
        clean, out = injected[(name, label, seed)]
        assert out != clean and label not in _detect(label, clean)
        assert label in _detect(label, out), f"seed {seed}:\n{out}"


@pytest.mark.parametrize("pair", APPLICABLE, ids=_id)
def test_injection_changes_only_its_label(pair, injected):
    name, label = pair
    for seed in SEEDS:
        clean, out = injected[(name, label, seed)]
        assert detect_quality(clean) | detect_security(clean) == set(), f"seed {seed}:\n{clean}"
        assert detect_quality(out) | detect_security(out) == {label}, f"seed {seed}:\n{out}"


@pytest.mark.elixir
@needs_elixir
def test_injected_code_parses(injected):
    outputs = [(key, side) for key, out in injected.items() if out is not None for side in out]
    results = shared_parser().parse_many([out for _, out in outputs])
    failures = [(key, r.line, r.message) for (key, _), r in zip(outputs, results) if not r.ok]
    assert not failures


@pytest.mark.parametrize("pair", APPLICABLE, ids=_id)
def test_injectors_are_deterministic(pair, injected):
    name, label = pair
    for seed in SEEDS:
        assert _twin(label, SAMPLES[name], random.Random(seed)) == injected[(name, label, seed)]


# -- positive views ---------------------------------------------------------------


@pytest.fixture(scope="module")
def positives() -> dict[tuple[str, int], str]:
    return {(name, seed): positive_view(SAMPLES[name], seed) for name in SAMPLES for seed in range(4)}


def test_positive_views_differ_and_stay_clean(positives):
    for (name, seed), out in positives.items():
        assert out != SAMPLES[name], (name, seed)
        assert detect_quality(out) == set() and detect_security(out) == set(), f"{name} seed {seed}:\n{out}"


def test_positive_views_are_deterministic(positives):
    for (name, seed), out in positives.items():
        assert positive_view(SAMPLES[name], seed) == out
        assert positive_view(SAMPLES[name], random.Random(seed)) == out


def test_positive_views_vary_with_the_seed(positives):
    for name in SAMPLES:
        assert len({positives[(name, seed)] for seed in range(4)}) > 1, name


@pytest.mark.elixir
@needs_elixir
def test_positive_views_parse(positives):
    keys = list(positives)
    results = shared_parser().parse_many([positives[k] for k in keys])
    assert [k for k, r in zip(keys, results) if not r.ok] == []


def test_variable_rename_is_consistent_within_a_clause():
    code = "defmodule A do\n  @moduledoc false\n\n  def total(items) do\n    Enum.sum(items)\n  end\nend\n"
    src = checks.Source(code)
    out = views._rename_variable(code, src, random.Random(0))
    assert out == code.replace("items", "items_value")


def test_swapping_functions_keeps_docs_attached():
    code = (
        "defmodule A do\n  @moduledoc false\n\n  @doc \"One.\"\n  def one, do: 1\n\n"
        "  @doc \"Two.\"\n  @spec two() :: integer()\n  def two, do: 2\nend\n"
    )
    out = views._swap_functions(code, checks.Source(code), random.Random(0))
    assert out.index('@doc "Two."') < out.index("def two") < out.index('@doc "One."') < out.index("def one")


# -- inject(): validation and dropping ---------------------------------------------------


class _RejectingParser:
    """A parser double that rejects everything, to exercise re-draws without Elixir."""

    def __init__(self):
        self.calls = 0

    def parse(self, code):
        self.calls += 1
        return ParseResult(False, 1, "rejected")


class _AcceptingParser:
    def parse(self, code):
        return ParseResult(True)


def test_inject_drops_output_that_does_not_parse():
    parser = _RejectingParser()
    assert inject(SAMPLES["plain"], "Credo.Check.Warning.IoInspect", 0, parser=parser, attempts=3) is None
    assert parser.calls == 3


def test_inject_returns_confirmed_output_and_none_when_nothing_applies():
    out = inject(SAMPLES["context"], "Sobelow.SQL.Query", 5, parser=_AcceptingParser())
    assert out is not None and "Sobelow.SQL.Query" in detect_security(out)
    assert inject(SAMPLES["plain"], "Sobelow.Config.CSRF", 5, parser=_AcceptingParser()) is None
    assert inject(SAMPLES["calculator"], "Credo.Check.Refactor.Nesting", 5, parser=_AcceptingParser()) == inject(
        SAMPLES["calculator"], "Credo.Check.Refactor.Nesting", 5, parser=_AcceptingParser()
    )
    with pytest.raises(KeyError):
        inject(SAMPLES["plain"], "Credo.Check.Unknown", 0, parser=_AcceptingParser())


@pytest.mark.elixir
@needs_elixir
def test_inject_with_the_real_parser():
    for label in LABELS:
        out = inject(SAMPLES["context"] if label != "Sobelow.Config.CSRF" else SAMPLES["router"], label, 3)
        assert out is None or (validated(out) and label in _detect(label, out)), label
    assert validated(SAMPLES["plain"])
    assert not validated("defmodule A do\n  def f(x) do\n    x + 1\n  end\n")


def test_injectors_survive_odd_input():
    odd = ["", "x = 1\n", "defmodule A do\n  def f(x) do\n", "IO.puts(\"#{\"\n", '"""\nunterminated\n', "end end end\n"]
    for code in odd:
        for label, injector in INJECTORS.items():
            out = injector(code, 0)
            assert out is None or isinstance(out, (str, tuple)), label
        assert isinstance(positive_view(code, 0), str)
        detect_quality(code)
        detect_security(code)


def test_csrf_adds_a_browser_pipeline_to_an_api_only_router():
    api = (
        'defmodule ShopWeb.Router do\n  use ShopWeb, :router\n\n  pipeline :api do\n    plug :accepts, ["json"]\n  end\n\n'
        '  scope "/api", ShopWeb do\n    pipe_through :api\n    get "/items", ItemController, :index\n  end\nend\n'
    )
    assert detect_security(api) == set()
    secure, out = inject_csrf(api, 0)
    assert "plug :fetch_session" in out and "plug :protect_from_forgery" not in out
    assert "plug :protect_from_forgery" in secure
    assert detect_security(out) == {"Sobelow.Config.CSRF"} and detect_security(secure) == set()


# -- detectors: hand-written positives and negatives per rule ----------------------------


def _module(body: str, name: str = "Demo.Sample", doc: str = '  @moduledoc "Sample."\n\n') -> str:
    return f"defmodule {name} do\n{doc}{body}end\n"


def _fn(body: str, head: str = "def run(x)") -> str:
    indented = "".join(f"    {line}\n" if line else "\n" for line in body.split("\n"))
    return _module(f"  {head} do\n{indented}  end\n")


def _quality(code: str) -> set[str]:
    return detect_quality(code)


MAX_LINE = "Credo.Check.Readability.MaxLineLength"


def test_max_line_length():
    code_line = "value = " + " + ".join(["x"] * 40)
    assert len("    " + code_line) > 120
    assert MAX_LINE in _quality(_fn(code_line))
    head = "def run(" + ", ".join(f"arg{i}" for i in range(20)) + ")"
    assert len("  " + head + " do") > 120
    assert MAX_LINE not in _quality(_module(f"  {head} do\n    :ok\n  end\n"))  # ignore_definitions
    assert MAX_LINE not in _quality(_fn('text = "' + "word " * 30 + '"'))  # ignore_strings
    assert MAX_LINE not in _quality(_fn('text = """\n' + "word " * 30 + '\n"""'))  # heredoc
    assert MAX_LINE not in _quality(_fn("pattern = ~r/" + "a|" * 60 + "b/"))  # ignore_sigils
    assert MAX_LINE in _quality(_fn("# " + "word " * 30))  # comments count
    assert MAX_LINE not in _quality(_fn("# see https://example.com/" + "a" * 120))  # ignore_urls
    assert MAX_LINE not in _quality(_fn("x = 1 " + " " * 100 + "+ Repo.all(y)"))  # url-like ``Repo.all``
    spec = "  @spec run(" + ", ".join(["String.t()"] * 12) + ") :: :ok\n"
    assert MAX_LINE in _quality(_module(spec + "  def run(a), do: a\n"))  # ignore_specs: false
    assert MAX_LINE not in _quality(_fn("x" * 100))


NESTING = "Credo.Check.Refactor.Nesting"


def test_nesting():
    two = "if x do\n  case x do\n    1 -> :one\n    _ -> :other\n  end\nend"
    three = "if x do\n  case x do\n    1 -> Enum.map(x, fn y -> y end)\n    _ -> :other\n  end\nend"
    assert NESTING not in _quality(_fn(two))
    assert NESTING in _quality(_fn(three))
    assert NESTING in _quality(_fn("for a <- x do\n  if a do\n    unless a, do: 1\n  end\nend"))
    # nesting is per function: two functions at depth 2 each are fine
    assert NESTING not in _quality(_fn(two) + _fn(two).replace("Demo.Sample", "Demo.Other"))


COMPLEXITY = "Credo.Check.Refactor.CyclomaticComplexity"


def test_cyclomatic_complexity():
    def cases(n: int) -> str:
        return "case x do\n" + "".join(f"  {i} -> :v{i}\n" for i in range(n - 1)) + "  _ -> :other\nend"

    assert COMPLEXITY not in _quality(_fn(cases(8)))  # 1 + 8 = 9
    assert COMPLEXITY in _quality(_fn(cases(9)))  # 1 + 9 = 10
    boolean = "if a && b || c and d or e do\n  1\nelse\n  unless f, do: 2\nend"  # 1 + if + && + || + and + or + unless
    assert COMPLEXITY not in _quality(_fn(boolean, head="def run(a, b, c, d, e, f)"))
    assert COMPLEXITY in _quality(_fn(boolean + "\n" + cases(3), head="def run(a, b, c, d, e, f)"))
    big_using = _module("  defmacro __using__(x) do\n" + "".join(f"    if x, do: {i}\n" for i in range(12)) + "  end\n")
    assert COMPLEXITY not in _quality(big_using)


COND = "Credo.Check.Refactor.CondStatements"


def test_cond_statements():
    assert COND in _quality(_fn("cond do\n  x > 1 -> :big\n  true -> :small\nend"))
    assert COND in _quality(_fn("cond do\n  x > 1 -> :big\n  _ -> :small\nend"))
    assert COND not in _quality(_fn("cond do\n  x > 1 -> :big\n  x < 0 -> :negative\n  true -> :small\nend"))
    assert COND not in _quality(_fn("cond do\n  x > 1 -> :big\n  x < 0 -> :negative\nend"))


def test_function_and_module_names():
    names = "Credo.Check.Readability.FunctionNames"
    assert names in _quality(_module("  def fetchUser(id), do: id\n"))
    assert names in _quality(_module("  defp credo_SampleFunction(x) when x > 0, do: x\n"))
    assert names not in _quality(_module("  def fetch_user!(id), do: id\n  def valid?(x), do: x\n"))
    assert names not in _quality(_module("  def sigil_O(input, _opts), do: input\n  def left +++ right, do: [left, right]\n"))
    modules = "Credo.Check.Readability.ModuleNames"
    assert modules in _quality(_module("", name="MyApp.Web_searchController"))
    assert modules not in _quality(_module("", name="MyApp.WebSearchController"))


def test_io_inspect():
    inspect = "Credo.Check.Warning.IoInspect"
    assert inspect in _quality(_fn("x |> IO.inspect(label: \"x\")"))
    assert inspect in _quality(_fn("Enum.each(x, &IO.inspect/1)"))
    assert inspect not in _quality(_fn("IO.puts(\"IO.inspect\")\n# IO.inspect(x)"))


MODULE_DOC = "Credo.Check.Readability.ModuleDoc"


def test_module_doc():
    assert MODULE_DOC in _quality(_module("  def run, do: :ok\n", doc=""))
    assert MODULE_DOC in _quality(_module("", doc='  @moduledoc ""\n'))
    assert MODULE_DOC not in _quality(_module("", doc="  @moduledoc false\n"))
    assert MODULE_DOC not in _quality(_module("", name="MyAppWeb.PageController", doc=""))
    assert MODULE_DOC not in _quality(_module("  use Ecto.Schema\n", name="MyApp.Item", doc=""))
    assert MODULE_DOC not in _quality(_module("  defexception [:message]\n", name="MyApp.Error", doc=""))
    nested = _module("  defmodule Inner do\n    def run, do: :ok\n  end\n")
    assert MODULE_DOC in _quality(nested)


ALIAS_ORDER = "Credo.Check.Readability.AliasOrder"


def test_alias_order():
    assert ALIAS_ORDER in _quality(_module("  alias MyApp.Repo\n  alias MyApp.Accounts\n"))
    assert ALIAS_ORDER not in _quality(_module("  alias MyApp.Accounts\n  alias MyApp.Repo\n"))
    assert ALIAS_ORDER not in _quality(_module("  alias MyApp.Repo\n\n  alias MyApp.Accounts\n"))  # separate groups
    assert ALIAS_ORDER in _quality(_module("  alias MyApp.{Repo, Accounts}\n"))
    assert ALIAS_ORDER not in _quality(_module("  alias MyApp.{Accounts, Repo}\n"))


ALIAS_USAGE = "Credo.Check.Design.AliasUsage"


def test_alias_usage():
    assert ALIAS_USAGE in _quality(_fn("MyApp.Accounts.User.get!(x)"))
    assert ALIAS_USAGE in _quality(_fn("Ecto.Adapters.SQL.query(x)"))
    # the shipped .credo.exs: if_nested_deeper_than: 2, so two-part names pass
    assert ALIAS_USAGE not in _quality(_fn("MyApp.Accounts.get_user!(x)"))
    assert ALIAS_USAGE not in _quality(_fn("Ecto.Changeset.change(x)"))
    assert ALIAS_USAGE not in _quality(_module("  alias MyApp.Accounts.User\n\n  def run(x), do: User.get!(x)\n"))
    assert ALIAS_USAGE not in _quality(_fn("IO.ANSI.red() <> File.Stat.a() <> Enum.Foo.String.x()"))  # excluded
    assert ALIAS_USAGE not in _quality(_module("  @spec run(MyApp.User.t()) :: :ok\n  def run(_user), do: :ok\n"))
    clash = _module("  alias Other.User\n\n  def run(x), do: {User.name(x), MyApp.Accounts.User.name(x)}\n")
    assert ALIAS_USAGE not in _quality(clash)  # aliasing would clash with Other.User
    assert ALIAS_USAGE not in _quality(_fn("%MyApp.Accounts.User{name: x}"))  # not a call


DUPLICATED = "Credo.Check.Design.DuplicatedCode"


def test_duplicated_code():
    body = (
        "    user = Accounts.get_user!(id)\n"
        "    posts = Blog.list_posts(author_id: user.id, limit: 10)\n"
        "    comments = Enum.flat_map(posts, fn post -> Blog.list_comments(post_id: post.id) end)\n"
        "    %{user: user, posts: posts, comments: Enum.take(comments, 5), count: length(comments)}\n"
    )
    one = f"  def one(id) do\n{body}  end\n"
    two = f"  def two(id) do\n{body}  end\n"
    assert DUPLICATED in _quality(_module(one + "\n" + two))
    assert DUPLICATED not in _quality(_module(one))
    small = _module("  def one(x), do: Enum.map(x, & &1.id)\n  def two(x), do: Enum.map(x, & &1.id)\n")
    assert DUPLICATED not in _quality(small)


SPACES = "Credo.Check.Consistency.SpaceAroundOperators"


def test_space_around_operators():
    assert SPACES in _quality(_fn("a = x + 1\nb = a * 2\nc = a<>b\nd = c == a"))
    assert SPACES not in _quality(_fn("a = x + 1\nb = a * 2\nc = a <> b"))
    assert SPACES not in _quality(_fn("a=x+1\nb=a*2\nc=a<>b"))  # consistently without spaces
    assert SPACES not in _quality(_fn("a = -1\nb = [x, -2]\nc = Enum.map(x, &div(&1, 2))\nd = &Kernel.+/2"))
    assert SPACES not in _quality(_fn("[head|tail] = x\ny = head + 1"))  # ``|`` is ignored by default


def test_tabs_or_spaces():
    tabs = "Credo.Check.Consistency.TabsOrSpaces"
    spaces_only = _fn("x + 1")
    assert tabs not in _quality(spaces_only)
    assert tabs in _quality(spaces_only.replace("    x + 1", "\t\tx + 1"))
    assert tabs not in _quality(spaces_only.replace("  ", "\t"))


def _security(body: str, head: str = "def run(conn, params)", name: str = "MyAppWeb.ItemController") -> set[str]:
    return detect_security(_fn(body, head).replace("Demo.Sample", name))


@pytest.mark.parametrize(
    ("label", "vulnerable", "safe"),
    [
        ("Sobelow.SQL.Query", "Repo.query(\"SELECT * FROM t WHERE a = '#{params[\"a\"]}'\")", 'Repo.query("SELECT 1")'),
        ("Sobelow.SQL.Query", "Ecto.Adapters.SQL.query(Repo, sql, [])", 'SQL.query(Repo, "SELECT * FROM t WHERE a = $1", [a])'),
        ("Sobelow.SQL.Query", 'sql |> Repo.query()', 'Repo.query(@count_sql)'),
        ("Sobelow.XSS.SendResp", 'send_resp(conn, 200, "<p>#{params["q"]}</p>")', 'send_resp(conn, 200, "<p>ok</p>")'),
        ("Sobelow.XSS.SendResp", 'conn |> put_resp_content_type("text/html") |> send_resp(200, body)', 'send_resp(conn, :no_content, "")'),
        ("Sobelow.Traversal.FileModule", 'File.read!(params["path"])', 'File.read!("priv/static/robots.txt")'),
        ("Sobelow.Traversal.FileModule", 'File.cp!("priv/template.txt", target)', 'File.exists?(path)'),
        ("Sobelow.Traversal.SendFile", 'send_file(conn, 200, params["file"])', 'send_file(conn, 200, "priv/static/logo.png")'),
        ("Sobelow.CI.System", 'System.cmd(params["cmd"], [])', 'System.cmd("convert", [params["file"]])'),
        ("Sobelow.CI.OS", ":os.cmd(String.to_charlist(cmd))", ":os.cmd('uptime')"),
        ("Sobelow.DOS.StringToAtom", 'String.to_atom(params["sort"])', 'String.to_existing_atom(params["sort"])'),
        ("Sobelow.DOS.StringToAtom", 'Enum.map(keys, &String.to_atom/1)', 'String.to_atom("fixed")'),
        ("Sobelow.Misc.BinToTerm", ":erlang.binary_to_term(params[\"blob\"])", ":erlang.term_to_binary(params)"),
        ("Sobelow.RCE.CodeModule", 'Code.eval_string(params["expr"])', 'Code.eval_string("1 + 1")'),
        ("Sobelow.RCE.CodeModule", "Code.eval_file(path)", "Code.ensure_loaded(path)"),
    ],
)
def test_security_sinks(label, vulnerable, safe):
    assert label in _security(vulnerable)
    assert label not in _security(safe)


def test_send_resp_with_a_non_html_content_type_is_not_xss():
    body = 'conn\n|> put_resp_content_type("application/json")\n|> send_resp(200, payload)'
    assert "Sobelow.XSS.SendResp" not in _security(body)


def test_bin_to_term_safe_option_is_still_reported():
    # Sobelow.Misc.BinToTerm: "Even with the :safe option, binary_to_term will deserialize functions,
    # and shouldn't be considered safe to use with untrusted input." It only checks argument 0.
    assert "Sobelow.Misc.BinToTerm" in _security(':erlang.binary_to_term(bin, [:safe])', head="def run(bin)")
    assert "Sobelow.Misc.BinToTerm" not in _security(":erlang.binary_to_term(@fixture, [:safe])")


def test_raw_is_reported_outside_controllers_only():
    body = "raw(params[\"bio\"])"
    assert "Sobelow.XSS.Raw" in _security(body, name="MyAppWeb.ItemView")
    assert "Sobelow.XSS.Raw" in _security("Phoenix.HTML.raw(bio)", head="def run(bio)", name="MyApp.Format")
    assert "Sobelow.XSS.Raw" not in _security(body, name="MyAppWeb.ItemController")
    assert "Sobelow.XSS.Raw" not in _security('raw("<br>")', name="MyAppWeb.ItemView")


def test_sinks_outside_functions_are_not_reported():
    code = _module('  @atom String.to_atom("x")\n  File.read!(System.get_env("CONFIG"))\n')
    assert detect_security(code) == set()


def test_csrf():
    router = (
        "defmodule MyAppWeb.Router do\n  use MyAppWeb, :router\n\n  pipeline :browser do\n"
        '    plug :accepts, ["html"]\n    plug :fetch_session\n{protect}  end\n\n'
        '  pipeline :api do\n    plug :accepts, ["json"]\n  end\nend\n'
    )
    assert detect_security(router.format(protect="    plug :protect_from_forgery\n")) == set()
    assert detect_security(router.format(protect="    plug :protect_from_forgery, with: :clear_session\n")) == set()
    assert detect_security(router.format(protect="")) == {"Sobelow.Config.CSRF"}
