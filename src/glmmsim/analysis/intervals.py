"""Monte Carlo summaries: exact binomial intervals and standard errors of simulation estimates.

Examples
--------
>>> lo, hi = clopper_pearson(80, 100)
>>> round(lo, 3), round(hi, 3)
(0.708, 0.873)
>>> clopper_pearson(0, 10)[0], clopper_pearson(10, 10)[1]
(0.0, 1.0)
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

__all__ = ["clopper_pearson", "proportion_se"]


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval for a binomial proportion ``k / n``; NaNs when ``n`` is 0."""
    if n <= 0:
        return (math.nan, math.nan)
    tail = (1.0 - level) / 2.0
    low = 0.0 if k <= 0 else float(stats.beta.ppf(tail, k, n - k + 1))
    high = 1.0 if k >= n else float(stats.beta.ppf(1.0 - tail, k + 1, n - k))
    return (low, high)


def proportion_se(p: float, n: int) -> float:
    """Monte Carlo standard error of a proportion estimated from ``n`` replicates."""
    return float(np.sqrt(p * (1.0 - p) / n)) if n > 0 else math.nan
