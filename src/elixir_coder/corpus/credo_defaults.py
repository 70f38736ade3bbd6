"""Credo 1.7's shipped default configuration for the checks in ``labels.QUALITY_LABELS``.

These are the values of Credo's own ``.credo.exs`` (what ``mix credo`` uses when a project has
none, and what ``mix credo gen.config`` writes), not the check modules' ``param_defaults``,
which can differ (``Design.AliasUsage``: ``if_nested_deeper_than`` is 0 in the module, 2 in the
shipped config). Detectors and injectors both read them here; neither reads the other's code.
``Design.DuplicatedCode`` is not enabled by default: the judge (``corpus.lint``) runs it on its own
with ``CREDO_DUPLICATES_CONFIG``.
"""

from __future__ import annotations

import re

MAX_LINE_LENGTH = 120  # Readability.MaxLineLength max_length
MAX_NESTING = 2  # Refactor.Nesting max_nesting
MAX_COMPLEXITY = 9  # Refactor.CyclomaticComplexity max_complexity
DUPLICATE_MASS = 40  # Design.DuplicatedCode mass_threshold
ALIAS_NESTED_DEEPER_THAN = 2  # Design.AliasUsage if_nested_deeper_than (shipped config; param_defaults say 0)
# Credo MaxLineLength's ``ignore_urls`` pattern, applied to the line with strings removed.
URL_RE = re.compile(r"[-a-zA-Z0-9@:%._\+~#=]{2,256}\.[a-z]{2,6}\b([-a-zA-Z0-9@:%_\+.~#?&//=]*)", re.ASCII)
MODULEDOC_IGNORED_NAMES = re.compile(
    r"(\.\w+Controller|\.Endpoint|\.\w+Live(\.\w+)?|\.Repo|\.Router|\.\w+Socket|\.\w+View|\.\w+HTML|\.\w+JSON"
    r"|\.Telemetry|\.Layouts|\.Mailer)$"
)
MODULEDOC_IGNORED_USES = ("Credo.Check", "Ecto.Schema", "Phoenix.LiveView")
ALIAS_EXCLUDED_NAMESPACES = {"File", "IO", "Inspect", "Kernel", "Macro", "Supervisor", "Task", "Version"}
ALIAS_EXCLUDED_LASTNAMES = set(
    "Access Agent Application Atom Base Behaviour Bitwise Code Date DateTime Dict Enum Exception File Float "
    "GenEvent GenServer HashDict HashSet Integer IO Kernel Keyword List Macro Map MapSet Module NaiveDateTime "
    "Node OptionParser Path Port Process Protocol Range Record Regex Registry Set Stream String StringIO "
    "Supervisor System Task Time Tuple URI Version".split()
)

# The judge's Credo configs: the shipped default checks (a config named "default" keeps them; only
# the files are set), and DuplicatedCode alone, which the shipped config lists under ``disabled``.
CREDO_CONFIG = """\
%{configs: [%{name: "default", files: %{included: ["lib/"], excluded: []}}]}
"""
CREDO_DUPLICATES_CONFIG = """\
%{
  configs: [
    %{
      name: "default",
      files: %{included: ["lib/"], excluded: []},
      checks: %{enabled: [{Credo.Check.Design.DuplicatedCode, []}]}
    }
  ]
}
"""
