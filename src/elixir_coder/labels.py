"""Task names and label vocabularies shared by data preparation, models and losses.

Quality labels are Credo check names and security labels are Sobelow finding names, spelled
exactly as the real tools spell them, so a prediction can be compared with a real tool's report.
"""

from __future__ import annotations

TASKS: tuple[str, ...] = (
    "code_generation",
    "quality",
    "security",
    "test_generation",
    "clarification",
    "explanation",
)
GENERATION_TASKS: tuple[str, ...] = ("code_generation", "test_generation", "clarification", "explanation")
CLASSIFICATION_TASKS: tuple[str, ...] = ("quality", "security")

# Credo checks by difficulty tier (spec 4.3.5.1): surface patterns, structure, cross-function,
# corpus-level. Order inside a tier is fixed so label ids are stable across runs.
QUALITY_TIERS: dict[int, tuple[str, ...]] = {
    1: (
        "Credo.Check.Readability.FunctionNames",
        "Credo.Check.Readability.ModuleNames",
        "Credo.Check.Warning.IoInspect",
    ),
    2: (
        "Credo.Check.Readability.ModuleDoc",
        "Credo.Check.Readability.AliasOrder",
        "Credo.Check.Readability.MaxLineLength",
    ),
    3: (
        "Credo.Check.Refactor.Nesting",
        "Credo.Check.Refactor.CyclomaticComplexity",
        "Credo.Check.Refactor.CondStatements",
    ),
    4: (
        "Credo.Check.Design.DuplicatedCode",
        "Credo.Check.Design.AliasUsage",
        "Credo.Check.Consistency.SpaceAroundOperators",
        "Credo.Check.Consistency.TabsOrSpaces",
    ),
}
QUALITY_LABELS: tuple[str, ...] = tuple(label for tier in sorted(QUALITY_TIERS) for label in QUALITY_TIERS[tier])

# Sobelow findings and the CWE each one reports.
SECURITY_CWE: dict[str, str] = {
    "Sobelow.SQL.Query": "CWE-89",
    "Sobelow.XSS.Raw": "CWE-79",
    "Sobelow.XSS.SendResp": "CWE-79",
    "Sobelow.Traversal.FileModule": "CWE-22",
    "Sobelow.Traversal.SendFile": "CWE-22",
    "Sobelow.CI.System": "CWE-78",
    "Sobelow.CI.OS": "CWE-78",
    "Sobelow.DOS.StringToAtom": "CWE-400",
    "Sobelow.Misc.BinToTerm": "CWE-502",
    "Sobelow.RCE.CodeModule": "CWE-94",
    "Sobelow.Config.CSRF": "CWE-352",
}
SECURITY_LABELS: tuple[str, ...] = tuple(SECURITY_CWE)


def quality_tier(label: str) -> int:
    """The curriculum tier (1-4) of a Credo check name."""
    for tier, labels in QUALITY_TIERS.items():
        if label in labels:
            return tier
    raise KeyError(f"unknown Credo check {label!r}; known: {', '.join(QUALITY_LABELS)}")
