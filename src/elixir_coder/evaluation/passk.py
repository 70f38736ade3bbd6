"""pass@k: the chance that at least one of k samples passes, estimated without bias from n >= k
samples of which c passed (Chen et al. 2021, "Evaluating Large Language Models Trained on Code"):

    pass@k = E[1 - C(n - c, k) / C(n, k)]  over problems

Computed with exact integer binomials, so small hand-made cases give exact values.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from math import comb


def pass_at_k(n: int, c: int, k: int) -> Fraction:
    """The unbiased estimate for one problem: n samples, c of them correct."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    return Fraction(1) - Fraction(comb(n - c, k), comb(n, k))


def mean_pass_at_k(results: Sequence[tuple[int, int]], k: int) -> float | None:
    """Mean over problems of pass@k from (n, c) pairs; None when no problem has k samples."""
    usable = [pass_at_k(n, c, k) for n, c in results if n >= k]
    return float(sum(usable) / len(usable)) if usable else None
