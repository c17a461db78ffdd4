"""Significance tests on a fitted model: Wald z, Wald t/F with Satterthwaite df, likelihood ratio, Kenward-Roger.

Each test names the method it used in :class:`TestResult`. Satterthwaite and
Kenward-Roger apply to gaussian models (as in lmerTest); the likelihood-ratio
test refits the full and the nested model by maximum likelihood with the same
engine; Kenward-Roger needs the ``lme4`` engine (pbkrtest through lmerTest).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import special, stats

from ..errors import ParameterError, did_you_mean, format_names
from .design import FitDesign
from .errors import FitError

if TYPE_CHECKING:
    from .result import FitResult

__all__ = ["TestResult", "TEST_METHODS", "resolve_coefficients", "run_test"]

#: Method name -> what it computes.
TEST_METHODS = {
    "z": "Wald z (one coefficient) or Wald chi-squared (several)",
    "satterthwaite": "Wald t (one coefficient) or F (several) with Satterthwaite's df",
    "lrt": "likelihood-ratio chi-squared of ML refits of the full and the nested model",
    "kr": "Wald t or F with Kenward-Roger's df and adjusted covariance (lmm and lme4 engines)",
}


@dataclass(frozen=True)
class TestResult:
    """The outcome of one test.

    Attributes
    ----------
    estimate, se : float or tuple of float
        The coefficient's estimate and SE (tuples when several were tested).
    df : float
        Denominator degrees of freedom of a t or F statistic; NaN for z and chi-squared.
    statistic : float
        The test statistic, named by ``statistic_name`` (``z``, ``t``, ``F``, ``chi2``).
    p : float
        Two-sided p-value (one coefficient) or upper-tail p-value (several).
    method : str
        The method used: ``z``, ``satterthwaite``, ``lrt`` or ``kr``.
    coefficients : tuple of str
        The coefficients tested (formulaic spelling).
    num_df : int
        Number of coefficients tested (the numerator df of F and chi-squared).
    statistic_name : str
    """

    __test__ = False  # not a pytest test class

    estimate: float | tuple[float, ...]
    se: float | tuple[float, ...]
    df: float
    statistic: float
    p: float
    method: str
    coefficients: tuple[str, ...]
    num_df: int
    statistic_name: str


def resolve_coefficients(design: FitDesign, what: str | Sequence[str]) -> list[int]:
    """Positions of the coefficients named by ``what``: coefficient names (either spelling) or term labels."""
    items = [what] if isinstance(what, str) else list(what)
    if not items:
        raise ParameterError("test() needs at least one coefficient or term")
    found: list[int] = []
    for item in items:
        if not isinstance(item, str):
            raise ParameterError(f"test() takes coefficient or term names as strings; got {item!r}")
        positions = design.names.find(item)
        if positions is not None:
            found.extend(positions)
        else:
            raise ParameterError(
                f"test(): {item!r} is neither a coefficient nor a fixed term of {design.formula!r}."
                f"{did_you_mean(item, [*design.fixed_names, *design.fixed_terms])} Coefficients: {format_names(design.fixed_names)}; terms: {format_names(design.fixed_terms)}"
            )
    return list(dict.fromkeys(found))


def _wald(beta: np.ndarray, vcov: np.ndarray) -> float:
    return float(beta @ np.linalg.solve(vcov, beta))


def run_test(res: FitResult, what: str | Sequence[str], method: str) -> TestResult:
    """Run test ``method`` of the coefficients ``what`` on a fit (see :meth:`FitResult.test`)."""
    if method not in TEST_METHODS:
        raise ParameterError(
            f"unknown test method {method!r}; valid: {format_names(TEST_METHODS)}.{did_you_mean(str(method), TEST_METHODS)}"
        )
    design = res._design
    pos = resolve_coefficients(design, what)
    names = tuple(design.fixed_names[i] for i in pos)
    # arrays: a test per replicate builds no DataFrame, and only a t test asks for the df
    beta, se = res._beta[pos], res._se[pos]
    k = len(pos)
    one = k == 1
    est = float(beta[0]) if one else tuple(float(b) for b in beta)
    ses = float(se[0]) if one else tuple(float(s) for s in se)

    def result(df: float, stat: float, p: float, stat_name: str) -> TestResult:
        return TestResult(est, ses, float(df), float(stat), float(p), method, names, k, stat_name)

    if method == "z":
        if one:
            z = beta[0] / se[0]
            return result(np.nan, z, 2 * special.ndtr(-abs(z)), "z")
        chi2 = _wald(beta, res._vcov[np.ix_(pos, pos)])
        return result(np.nan, chi2, stats.chi2.sf(chi2, k), "chi2")
    if method == "lrt":
        chi2 = res._fitter._lrt(res, pos)
        return result(np.nan, chi2, stats.chi2.sf(chi2, k), "chi2")
    if design.family != "gaussian":
        raise ParameterError(
            f"method {method!r} gives t/F tests for gaussian models; family is {design.family!r}: "
            f"use method='z' or 'lrt'"
        )
    if method == "satterthwaite" and one:
        df = res._df_values[pos[0]]
        if not np.isfinite(df):
            # a property of this one dataset (glmm's Satterthwaite pass can fail where the fit did not):
            # FitError, so a study records it on the replicate's row rather than stopping
            why = "; ".join(w for w in res.warnings if "Satterthwaite" in w) if res.warnings else ""
            raise FitError(f"engine {res.engine!r} reported no Satterthwaite df for {names[0]!r} on this dataset"
                           + (f" ({why})" if why else "") + "; method='z', or fallback_engine='lme4' in a study")
        t = beta[0] / se[0]
        return result(df, t, 2 * special.stdtr(df, -abs(t)), "t")
    ddf = "Satterthwaite" if method == "satterthwaite" else "Kenward-Roger"
    f_value, den_df, p = res._fitter._contrast(res, pos, ddf)
    if one:
        return result(den_df, np.sign(beta[0]) * np.sqrt(f_value), p, "t")
    return result(den_df, f_value, p, "F")
