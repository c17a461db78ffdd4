"""Studies by simulation: power analyses, power curves, parameter recovery, effect sizes.

* :func:`power` and :func:`power_curve` -- power to detect an effect at one design or
  along sample sizes, with exact intervals and failure/singular-fit rates;
* :func:`recovery` -- bias, RMSE and interval coverage of an analysis on known truth;
* :mod:`glmmsim.analysis.effect_sizes` -- ICCs, proportions of variance, Cohen's d and
  odds ratios turned into an ordinary :class:`~glmmsim.Model`.

Every study runs on any executor (``executor=``) with identical results.
"""

from .effect_sizes import (
    coefficient_from_d,
    coefficient_from_odds_ratio,
    sds_from_icc,
    sds_from_proportions,
    standardized_model,
)
from .power import PowerCurve, PowerResult, power, power_curve
from .recovery import RecoveryResult, recovery

__all__ = [
    "power",
    "power_curve",
    "PowerResult",
    "PowerCurve",
    "recovery",
    "RecoveryResult",
    "standardized_model",
    "sds_from_icc",
    "sds_from_proportions",
    "coefficient_from_d",
    "coefficient_from_odds_ratio",
]
