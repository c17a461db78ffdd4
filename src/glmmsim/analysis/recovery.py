"""Parameter recovery: simulate from known truth, refit, and compare estimates with the truth.

For every parameter (fixed effects, random-effect SDs and correlations, sigma, family
parameters) :func:`recovery` reports the mean estimate, the bias with its Monte Carlo
SE, the RMSE and, for fixed effects, the coverage of 95% Wald intervals with its MC SE.
Failed and singular fits are counted; a failed fit is a row of data, never an
exception that ends the study.

REML variance components of small designs are biased downwards (a known property, not
a bug): read the SD rows of a 30-subject study with that in mind.

Examples
--------
>>> import glmmsim
>>> from glmmsim.design import crossed
>>> m = glmmsim.Model("y ~ x + (1 | subject)", fixed={"Intercept": 1, "x": 0.5},
...                   random={"subject": 0.5}, sigma=1, seed=1)
>>> d = crossed(subjects=10, repetitions=5, covariates={"x": {"per": "trial"}}, seed=2)
>>> rec = recovery(m, d, nsim=10, progress=False)
>>> list(rec.table.columns[:7])
['truth', 'mean', 'bias', 'bias_se', 'rmse', 'coverage', 'coverage_se']
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .. import __version__
from ..limits import check_limit
from ..errors import ParameterError
from ..model.names import lme4_name, match_keys
from ..randomness.seeds import SeedLike, SeedTree
from ..lme4.summary import describe_design, describe_model
from .inputs import conditions_frame, percent
from .power import plan_point, seed_path
from .replicates import FailurePolicy, ParameterMeasure, PointState, new_token, point_state, run_study

__all__ = ["recovery", "RecoveryResult", "parameter_name"]

# random-effect SDs and correlations stay grouped by factor, in the engine's order
_KIND_ORDER = {"fixed": 0, "sd": 1, "corr": 1, "sigma": 3, "family": 4}


def parameter_name(kind: str, factor: str, names: tuple[str, ...]) -> str:
    """Row label of a parameter: ``cond[T.b]``, ``sd(subject: Intercept)``, ``corr(subject: Intercept, x)``, ``sigma``."""
    if kind == "sd":
        return f"sd({factor}: {names[0]})"
    if kind == "corr":
        return f"corr({factor}: {names[0]}, {names[1]})"
    return names[0]


def _canonical(kind: str, factor: str, names: tuple[str, ...], levels: dict) -> tuple:
    """A spelling-free identity of a parameter, to match the engine's names to the model's."""
    spelled = tuple(lme4_name(n, levels) for n in names)
    if kind == "corr":
        spelled = tuple(sorted(spelled))
    return (kind, factor, spelled)


def _truth(model: Any, state: PointState) -> dict[tuple, float]:
    """Every parameter's true value, keyed spelling-free, from the point's designs (nothing is read again)."""
    levels = state.design.levels
    out: dict[tuple, float] = {}
    true_names = state.bound.design.fixed.names
    fixed = match_keys(model.fixed, true_names, "fixed", levels)
    for name in state.design.fixed_names:
        # a coefficient the truth lacks is truly zero (an analysis model that over-fits)
        out[_canonical("fixed", "", (name,), levels)] = float(fixed.get(name, 0.0))
    for factor, (coefs, sd, corr) in _covariances(state.bound.terms).items():
        for c, s in zip(coefs, sd):
            out[_canonical("sd", factor, (c,), levels)] = float(s)
        for i in range(len(coefs)):
            for j in range(i):
                out[_canonical("corr", factor, (coefs[j], coefs[i]), levels)] = float(corr[i, j])
    family = model.family
    for name, value in family.params.items():
        kind = "sigma" if name == "sigma" else "family"
        out[_canonical(kind, "", (name,), levels)] = float(value)
    return out


def _covariances(terms: Any) -> dict[str, tuple[list[str], np.ndarray, np.ndarray]]:
    """Per factor: coefficients, SDs and correlations of its terms together (0 between terms)."""
    per_factor: dict[str, list[Any]] = {}
    for bt in terms:
        per_factor.setdefault(bt.term.factor, []).append(bt.cov)
    out = {}
    for factor, covs in per_factor.items():
        coefs = [c for cov in covs for c in cov.coefs]
        corr = np.zeros((len(coefs), len(coefs)))
        start = 0
        for cov in covs:
            k = len(cov.coefs)
            corr[start:start + k, start:start + k] = cov.corr
            start += k
        out[factor] = (coefs, np.concatenate([cov.sd for cov in covs]), corr)
    return out


class RecoveryResult:
    """The result of :func:`recovery`.

    Attributes
    ----------
    table : pandas.DataFrame
        Indexed by parameter: ``truth``, ``mean``, ``bias``, ``bias_se``, ``rmse``,
        ``coverage``, ``coverage_se`` (coverage of 95% Wald intervals, fixed effects only),
        ``n`` (fits used), ``failed`` and ``singular`` (rates over all replicates), ``kind``.
    estimates : pandas.DataFrame
        One row per replicate and parameter: ``replicate``, ``parameter``, ``estimate``,
        ``se``, ``truth``, ``covered``.
    simulations : pandas.DataFrame
        One row per replicate: ``converged``, ``singular``, ``warnings``, ``error``.
    """

    def __init__(self, table: pd.DataFrame, estimates: pd.DataFrame, simulations: pd.DataFrame, job: Any,
                 level: float) -> None:
        self.table = table
        self.estimates = estimates
        self.simulations = simulations
        self.level = level
        self._job = job

    @property
    def nsim(self) -> int:
        return len(self.simulations)

    def plot(self, *, parameters: list[str] | None = None, ax: Any = None):
        """Estimates against the truth, one panel per parameter (a matplotlib Figure)."""
        from ..plot.study_plots import plot_recovery

        return plot_recovery(self.estimates, self.table, parameters=parameters)

    def summary(self) -> str:
        job = self._job
        lines = [f"Parameter recovery by simulation (glmmsim {__version__}), {self.nsim} replicates"]
        lines += ["Assumed model: " + describe_model(job.model, job.conditions)[0]]
        lines += ["Design: " + "; ".join(describe_design(job.model, job.conditions, None))]
        failed = 1.0 - self.simulations["ok"].mean() if len(self.simulations) else math.nan
        singular = self.simulations["singular"].astype(float).mean()
        lines += [f"Fits failed: {percent(failed)}; singular fits: {percent(singular)}", ""]
        shown = self.table[["truth", "mean", "bias", "bias_se", "rmse", "coverage", "coverage_se"]]
        lines.append(shown.to_string(float_format=lambda v: f"{v:.4g}"))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return f"<RecoveryResult: {len(self.table)} parameters, nsim {self.nsim}>"


def recovery(
    model: Any,
    conditions: pd.DataFrame | Callable[[], pd.DataFrame],
    *,
    nsim: int = 500,
    engine: str = "auto",
    seed: SeedLike = 1,
    executor: Any = None,
    progress: bool = True,
    fit_formula: str | None = None,
    key: list[str] | None = None,
    reml: bool | None = None,
    level: float = 0.95,
    fallback_engine: str | None = None,
    max_failure_rate: float | None = 0.5,
    failure_window: int = 20,
) -> RecoveryResult:
    """Simulate ``nsim`` datasets from ``model`` (a new population each), fit each, compare with the truth.

    Every argument after ``conditions`` is keyword-only.

    Parameters
    ----------
    model : glmmsim.Model
        The truth.
    conditions : DataFrame or callable
        The design.
    nsim : int
        Replicates.
    engine : str
        Fitting engine: ``"auto"`` (``"lmm"`` for linear mixed models, ``"glmm"`` otherwise),
        ``"lmm"``, ``"glmm"``, ``"lme4"``, ...
    seed : int, SeedSequence or Generator
        Root of the seed tree (replicate ``r`` uses ``SeedTree(seed).replicate(r)``).
    executor, progress
        As in :func:`glmmsim.power`.
    fit_formula : str, optional
        The analysis model, when it differs from the truth; parameters it has and the
        truth lacks have truth 0 (fixed) or NaN.
    key, reml
        As in :func:`glmmsim.power`.
    level : float
        Confidence level of the Wald intervals whose coverage is reported (t with the
        engine's df where it gives them, z otherwise).
    fallback_engine, max_failure_rate, failure_window
        As in :func:`glmmsim.power`: failed replicates are rows of data; a study stops
        only when they are systematic.

    Returns
    -------
    RecoveryResult
        ``.table`` indexed by parameter, ``.estimates``, ``.simulations``, ``.plot()``.

    Examples
    --------
    >>> import glmmsim
    >>> from glmmsim.design import crossed
    >>> m = glmmsim.Model("y ~ cond + (1 | subject)", fixed={"Intercept": 0, "condb": 0.5},
    ...                   random={"subject": 0.5}, sigma=1, seed=1)
    >>> d = crossed(subjects=8, repetitions=4, within={"cond": ["a", "b"]})
    >>> rec = glmmsim.recovery(m, d, nsim=10, progress=False)
    >>> list(rec.table.index)
    ['Intercept', 'cond[T.b]', 'sd(subject: Intercept)', 'sigma']
    """
    if isinstance(nsim, bool) or not isinstance(nsim, (int, np.integer)) or nsim < 2:
        raise ParameterError(f"nsim must be a whole number >= 2 (a bias needs a spread); got {nsim!r}")
    check_limit(int(nsim), "max_replicates", "nsim", parameter="nsim")
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ParameterError(f"level must be a number between 0 and 1; got {level!r}")
    data = conditions_frame(conditions)
    policy = FailurePolicy(max_failure_rate, failure_window)
    job = plan_point(model, data, point=0, token=new_token(), tree=SeedTree(seed), test=None, method="auto",
                     engine=engine, fit_formula=fit_formula, key=key, reml=reml, measure=ParameterMeasure(),
                     fallback=fallback_engine, seed_path=seed_path(seed))
    records = run_study([job], nsim, executor=executor, progress=progress, policy=policy)
    return _summarise(records, job, level)


def _summarise(records: list[dict], job: Any, level: float) -> RecoveryResult:
    state = point_state(job)
    levels = state.design.levels
    truth = _truth(job.model, state)
    sims = pd.DataFrame(
        [{k: r.get(k, "") for k in ("replicate", "converged", "singular", "warned", "warnings", "error", "error_type",
                                     "engine")} for r in records]
    )
    sims["ok"] = sims["converged"].astype(bool) & (sims["error"] == "")
    rows = []
    for rec in records:
        if not (rec["converged"] and not rec["error"]):
            continue
        for kind, factor, names, est, se, df in rec["parameters"]:
            canon = _canonical(kind, factor, names, levels)
            rows.append({
                "replicate": rec["replicate"], "parameter": parameter_name(kind, factor, names), "kind": kind,
                "estimate": est, "se": se, "df": df, "truth": truth.get(canon, math.nan),
            })
    est = pd.DataFrame(rows, columns=["replicate", "parameter", "kind", "estimate", "se", "df", "truth"])
    crit = np.where(np.isfinite(est["df"]) & (est["df"] > 0),
                    stats.t.ppf(0.5 + level / 2, est["df"].where(est["df"] > 0, 1.0)),
                    stats.norm.ppf(0.5 + level / 2))
    covered = (est["estimate"] - est["truth"]).abs() <= crit * est["se"]
    est["covered"] = covered.where(est["se"].notna() & est["truth"].notna())
    failed = float(1.0 - sims["ok"].mean()) if len(sims) else math.nan
    singular = float(sims["singular"].astype(float).mean()) if len(sims) else math.nan
    table_rows = {}
    for name, g in est.groupby("parameter", sort=False):
        x = g["estimate"].to_numpy(dtype=float)
        x = x[np.isfinite(x)]
        t = float(g["truth"].iloc[0])
        n = len(x)
        mean = float(x.mean()) if n else math.nan
        cov = g["covered"].dropna().astype(float)
        c = float(cov.mean()) if len(cov) else math.nan
        table_rows[name] = {
            "truth": t,
            "mean": mean,
            "bias": mean - t,
            "bias_se": float(x.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
            "rmse": float(np.sqrt(np.mean((x - t) ** 2))) if n else math.nan,
            "coverage": c,
            "coverage_se": math.sqrt(c * (1 - c) / len(cov)) if len(cov) else math.nan,
            "n": n,
            "failed": failed,
            "singular": singular,
            "kind": g["kind"].iloc[0],
        }
    table = pd.DataFrame.from_dict(table_rows, orient="index")
    if not table.empty:
        table = table.iloc[np.argsort([_KIND_ORDER.get(k, 9) for k in table["kind"]], kind="stable")]
    table.index.name = "parameter"
    est = est.drop(columns=["kind", "df"])
    return RecoveryResult(table, est, sims, job, level)
