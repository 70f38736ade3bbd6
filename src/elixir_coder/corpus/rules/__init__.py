"""Rule injectors: for each Credo check and Sobelow finding of ``labels.py``, a function that turns
clean Elixir into code the real tool reports for that rule (``corpus.pairs`` makes pairs of them).
"""

from __future__ import annotations

from elixir_coder.corpus.rules.credo import (
    inject_alias_order,
    inject_function_names,
    inject_io_inspect,
    inject_long_lines,
    inject_module_doc,
    inject_module_names,
)
from elixir_coder.corpus.rules.credo_structure import (
    inject_alias_usage,
    inject_complexity,
    inject_cond_statements,
    inject_duplicated_code,
    inject_nesting,
    inject_space_around_operators,
    inject_tabs_or_spaces,
)
from elixir_coder.corpus.rules.sobelow import inject_csrf, twin_injector
from elixir_coder.corpus.rules.text import Injector, RngLike
from elixir_coder.labels import QUALITY_LABELS, SECURITY_LABELS

__all__ = ["QUALITY_INJECTORS", "SECURITY_INJECTORS", "Injector", "RngLike"]

QUALITY_INJECTORS: dict[str, Injector] = {
    "Credo.Check.Readability.FunctionNames": inject_function_names,
    "Credo.Check.Readability.ModuleNames": inject_module_names,
    "Credo.Check.Warning.IoInspect": inject_io_inspect,
    "Credo.Check.Readability.ModuleDoc": inject_module_doc,
    "Credo.Check.Readability.AliasOrder": inject_alias_order,
    "Credo.Check.Readability.MaxLineLength": inject_long_lines,
    "Credo.Check.Refactor.Nesting": inject_nesting,
    "Credo.Check.Refactor.CyclomaticComplexity": inject_complexity,
    "Credo.Check.Refactor.CondStatements": inject_cond_statements,
    "Credo.Check.Design.DuplicatedCode": inject_duplicated_code,
    "Credo.Check.Design.AliasUsage": inject_alias_usage,
    "Credo.Check.Consistency.SpaceAroundOperators": inject_space_around_operators,
    "Credo.Check.Consistency.TabsOrSpaces": inject_tabs_or_spaces,
}
assert set(QUALITY_INJECTORS) == set(QUALITY_LABELS)

SECURITY_INJECTORS: dict[str, Injector] = {
    label: inject_csrf if label == "Sobelow.Config.CSRF" else twin_injector(label) for label in SECURITY_LABELS
}
assert set(SECURITY_INJECTORS) == set(SECURITY_LABELS)
