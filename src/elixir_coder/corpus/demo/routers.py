"""Phoenix routers for the demo corpus: one per web namespace, routing to its controllers.

Routers carry the browser pipeline whose ``plug :protect_from_forgery`` Sobelow's Config.CSRF
check looks for, so the security pairs cover that finding too.
"""

from __future__ import annotations

import re

from elixir_coder.corpus.demo.modules import DemoModule

_ACTIONS = ("index", "show", "new", "create", "edit", "update", "delete")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def routers(modules: list[DemoModule]) -> list[dict]:
    """Whole-module code_generation records of a router per ``XWeb`` namespace."""
    by_web: dict[str, list[DemoModule]] = {}
    for m in modules:
        if m.kind == "phoenix_controller":
            by_web.setdefault(m.name.split(".")[0], []).append(m)
    records = []
    for web, controllers in sorted(by_web.items()):
        routes = []
        for c in sorted(controllers, key=lambda m: m.name):
            short = c.name[len(web) + 1 :]
            resource = _snake(short.rsplit(".", 1)[-1].removesuffix("Controller"))
            actions = [a for a in _ACTIONS if f"def {a}(" in c.source]
            only = ", ".join(f":{a}" for a in actions)
            routes.append(f'    resources "/{resource}s", {short}, only: [{only}]')
        source = "\n".join([
            f"defmodule {web}.Router do",
            f'  @moduledoc "Routes for {web}: browser pages and the JSON API."',
            "",
            f"  use {web}, :router",
            "",
            "  pipeline :browser do",
            "    plug :accepts, [\"html\"]",
            "    plug :fetch_session",
            "    plug :fetch_live_flash",
            "    plug :protect_from_forgery",
            "    plug :put_secure_browser_headers",
            "  end",
            "",
            "  pipeline :api do",
            "    plug :accepts, [\"json\"]",
            "  end",
            "",
            f"  scope \"/\", {web} do",
            "    pipe_through :browser",
            "",
            *routes,
            "  end",
            "end",
            "",
        ])
        path = f"demo/lib/{_snake(web)}/router.ex"
        records.append({"task": "code_generation", "prompt": "", "completion": source, "source": path})
    return records
