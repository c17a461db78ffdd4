"""Power by simulation: :func:`power` at one design, :func:`power_curve` along sample sizes.

Each replicate draws a new population (subjects, items) and new noise from the seed
tree, fits the analysis model and tests the effects. Power is the share of significant
tests **among the fits that succeeded**, with the failure and singular-fit rates beside
it (``failures="nonsignificant"`` counts a failed fit as a miss instead, as simr does).

Examples
--------
>>> import glmmsim
>>> from glmmsim.design import crossed
>>> m = glmmsim.Model("y ~ cond + (1 | subject)", fixed={"Intercept": 0, "condb": 0.5},
...                   random={"subject": 0.5}, sigma=1, seed=1)
>>> res = power(m, crossed(subjects=10, repetitions=4, within={"cond": ["a", "b"]}), test="condb",
...             nsim=20, progress=False)
>>> 0 <= res.power <= 1 and res.ci[0] <= res.power <= res.ci[1]
True
"""

from __future__ import annotations

import inspect
import itertools
import math
import os
import pickle
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import InputTypeError, ParameterError, SystematicFailureError, format_names
from ..limits import check_limit
from ..execution import worker_cache
from ..fit.protocol import resolve_engine
from ..model.model_design import build_model_design
from ..randomness.seeds import SeedLike, SeedTree
from .checkpoint import Checkpoint, describe_study
from ..lme4.summary import describe_design, describe_model
from .tested_terms import Hypothesis, choose_method, resolve_tests, term_of
from .inputs import conditions_frame, percent
from .intervals import clopper_pearson
from .replicates import (MEASURE_ERROR, TEST_COLUMNS, FailurePolicy, PointJob, PointState, TestMeasure, UserMeasure,
                         new_token, row_key, run_study)

__all__ = ["power", "power_curve", "PowerResult", "PowerCurve", "FAILURE_POLICIES"]

FAILURE_POLICIES = ("exclude", "nonsignificant")
Failures = Literal["exclude", "nonsignificant"]
_SIM_COLUMNS = ["replicate", "test", *TEST_COLUMNS, "significant", "converged", "singular", "warned", "warnings",
                "error", "error_type", "engine"]


# --------------------------------------------------------------------------------------
# planning a design point
# --------------------------------------------------------------------------------------


def _check_common(nsim: int, alpha: float, failures: str) -> None:
    if isinstance(nsim, bool) or not isinstance(nsim, (int, np.integer)) or nsim < 1:
        raise ParameterError(f"nsim must be a whole number >= 1; got {nsim!r}")
    check_limit(int(nsim), "max_replicates", "nsim", parameter="nsim")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ParameterError(f"alpha must be a number between 0 and 1; got {alpha!r}")
    if failures not in FAILURE_POLICIES:
        raise ParameterError(f"failures must be one of {format_names(FAILURE_POLICIES)}; got {failures!r}")


def _user_measure(measure: Any, executor: Any, reserved: Sequence[str]) -> UserMeasure | None:
    """``measure=`` checked before any work: a callable, which pickles when a process pool will run it."""
    if measure is None:
        return None
    if not callable(measure):
        raise ParameterError(f"measure must be a function of the FitResult returning a number or a dict of numbers "
                             f"(e.g. an interval width); got {type(measure).__name__}", parameter="measure")
    if _in_processes(executor):
        try:
            pickle.dumps(measure)
        except Exception as exc:  # noqa: BLE001 - any pickling failure means the workers cannot receive it
            raise ParameterError(f"measure {getattr(measure, '__qualname__', measure)!r} cannot be sent to worker "
                                 f"processes ({exc}); define it as a module-level function", parameter="measure") from exc
    return UserMeasure(measure, tuple(reserved))


def _in_processes(executor: Any) -> bool:
    """Whether the executor sends tasks to other processes by pickle (Dask's cloudpickle takes any function)."""
    if isinstance(executor, str):
        return executor == "processes"
    return isinstance(executor, ProcessPoolExecutor) or (isinstance(executor, (int, np.integer))
                                                         and not isinstance(executor, bool))


def effect_names(model: Any, conditions: pd.DataFrame, fit_formula: str | None = None) -> tuple[list[str], list[str]]:
    """The coefficients and terms of the analysis model that a power study can test.

    Examples
    --------
    >>> import glmmsim, pandas as pd
    >>> m = glmmsim.Model("y ~ cond * x + (1 | g)", fixed={"Intercept": 0}, random={"g": 1}, sigma=1)
    >>> effect_names(m, pd.DataFrame({"cond": ["a", "b"], "x": [0.0, 1.0], "g": ["u", "v"]}))
    (['cond[T.b]', 'x', 'cond[T.b]:x'], ['cond', 'x', 'cond:x'])
    """
    if fit_formula is None or fit_formula == model.formula:
        names = model.design(conditions).names
    else:
        names = build_model_design(fit_formula, conditions, family=model.family,
                                   levels=getattr(model, "levels", None) or None).names
    coefficients = [n for n in names.names if n != "Intercept"]
    return coefficients, list(dict.fromkeys(term_of(n) for n in coefficients))


def _require_test(test: Any, model: Any, conditions: pd.DataFrame, fit_formula: str | None, verb: str) -> None:
    """Refuse a missing ``test``, naming what the analysis model can test (before any replicate runs)."""
    if test is not None:
        return
    coefficients, terms = effect_names(model, conditions, fit_formula) if hasattr(model, "formula") else ([], [])
    raise ParameterError(
        f"{verb} needs test=, the coefficient or term whose effect is tested (a list tests several on the "
        f"same fits); the analysis model's coefficients: {format_names(coefficients)}; its terms: "
        f"{format_names(terms)}",
        parameter="test",
    )


def plan_point(
    model: Any,
    conditions: pd.DataFrame,
    *,
    point: int,
    token: str,
    tree: Any,
    test: Any,
    method: str,
    engine: str,
    fit_formula: str | None,
    key: Sequence[str] | None,
    reml: bool | None,
    measure: Callable[[Any], Any] | None = None,
    user_measure: UserMeasure | None = None,
    fallback: str | None = None,
    label: str = "",
    seed_path: str = "",
) -> PointJob:
    """Validate one design point and describe its work for the workers.

    The model is bound to the point's rows here, once (bad input fails before any work);
    this process's workers reuse that binding and its design. ``measure`` is what each
    replicate records of its fit: power's tests (``None``, from ``test`` and ``method``) or
    another callable of the :class:`~glmmsim.fit.FitResult` (recovery's parameters).
    ``user_measure`` is power's ``measure=``, recorded beside the tests.
    """
    if not hasattr(model, "formula") or not hasattr(model, "family"):
        raise InputTypeError(f"model must be a glmmsim.Model (the assumed truth); got {type(model).__name__}")
    formula = fit_formula or model.formula
    family = model.family
    engine = resolve_engine(engine, family.name, family.link.name)
    occurrence = False
    if key is None:
        key_cols, occurrence = row_key(model, conditions)
    else:
        key_cols = tuple(key) if not isinstance(key, str) else (key,)
        missing = [c for c in key_cols if c not in conditions.columns]
        if missing:
            raise ParameterError(f"key names column(s) {format_names(missing)} not in the design; columns: "
                                 f"{format_names(conditions.columns)}")
    fit_kwargs = {"family": family.name, "link": family.link.name, "trials": model.trials, "engine": engine,
                  "reml": reml}
    job = PointJob(token, point, model, conditions, key_cols, formula, fit_kwargs, (), measure or TestMeasure(()),
                   tree, occurrence=occurrence, fallback=fallback, label=label, seed_path=seed_path,
                   user_measure=user_measure)
    state = PointState(job)  # the point's one binding and design in this process
    if measure is None:
        hypotheses = tuple(
            Hypothesis(h.label, h.coefficients, choose_method(method, len(h.coefficients), family=family.name,
                                                              link=family.link.name, engine=engine))
            for h in resolve_tests(test, state.design.names)
        )
        job = replace(job, hypotheses=hypotheses, measure=TestMeasure(hypotheses))
    _check_fallback(fallback, engine)
    worker_cache((token, point), lambda: state)  # a serial run's worker is this process: it binds no more
    return job


def _check_fallback(fallback: str | None, engine: str) -> None:
    if fallback is None:
        return
    from ..fit.protocol import get_engine  # the fit layer loads its engines on first use

    if not isinstance(fallback, str) or fallback == engine:
        raise ParameterError(f"fallback_engine must name an engine other than {engine!r} (e.g. 'lme4'); got {fallback!r}")
    if not get_engine(fallback).available():
        raise ParameterError(f"fallback_engine {fallback!r} is not available here (for 'lme4': R with lme4, "
                             f"lmerTest and pbkrtest)")


def seed_path(seed: Any, point: int | None = None) -> str:
    """How a point's seed tree is reached from the root, e.g. ``SeedTree(1).child('point', 3)``."""
    root = f"SeedTree({seed!r})" if isinstance(seed, (int, np.integer)) else f"SeedTree({type(seed).__name__})"
    return root if point is None else f"{root}.child('point', {point})"


def _stopped(exc: Any, jobs: Sequence[PointJob], alpha: float, frame: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    """Attach the finished replicates, as a simulations table, to a study that stopped."""
    if exc.records:
        sims = _test_rows(exc.records, jobs, alpha)
        exc.simulations = frame(sims[["point", *_sim_columns(sims)]])


# --------------------------------------------------------------------------------------
# summarising
# --------------------------------------------------------------------------------------


def _test_rows(records: list[dict], jobs: Sequence[PointJob], alpha: float) -> pd.DataFrame:
    rows = []
    for rec in records:
        job = jobs[rec["point"]]
        for h, t in zip(job.hypotheses, rec.get("tests") or [None] * len(job.hypotheses)):
            row = {"point": rec["point"], "replicate": rec["replicate"], "test": h.label}
            row.update({c: (t or {}).get(c, np.nan) for c in TEST_COLUMNS})
            row.update(converged=rec["converged"], singular=rec["singular"], warned=rec.get("warned", False),
                       warnings=rec["warnings"])
            if rec["error"]:
                row.update(error=rec["error"], error_type=rec.get("error_type", ""))
            else:
                row.update(error=(t or {}).get("error", ""), error_type=(t or {}).get("error_type", ""))
            row["engine"] = rec.get("engine", "")
            if job.user_measure is not None:
                row.update(rec.get(job.user_measure.name) or {MEASURE_ERROR: ""})  # a failed fit measured nothing
            rows.append(row)
    out = pd.DataFrame(rows)
    ok = _usable(out)
    out.insert(out.columns.get_loc("converged"), "significant", ok & (out["p"] < alpha))
    return out


def _sim_columns(sims: pd.DataFrame) -> list[str]:
    """The simulations table's columns: the study's own, then a user's measure's, then its error."""
    measured = [c for c in sims.columns if c not in _SIM_COLUMNS and c not in ("point", MEASURE_ERROR)]
    return [*_SIM_COLUMNS, *measured, *([MEASURE_ERROR] if MEASURE_ERROR in sims else [])]


def _usable(sims: pd.DataFrame) -> pd.Series:
    """A replicate's test counts when the fit converged, raised nothing and gave a p-value."""
    return sims["converged"].astype(bool) & (sims["error"] == "") & sims["p"].notna()


def _summarise(sims: pd.DataFrame, failures: str, level: float = 0.95) -> dict[str, float]:
    ok = _usable(sims)
    k = int((sims["significant"] & ok).sum())
    n = int(ok.sum()) if failures == "exclude" else len(sims)
    low, high = clopper_pearson(k, n, level)
    singular = sims["singular"].astype("float")
    nonsingular = ok & (singular == 0)
    return {
        "power": k / n if n else math.nan,
        "ci_low": low,
        "ci_high": high,
        "nsim": len(sims),
        "failed": float((~ok).mean()),
        "singular": float(np.nanmean(singular)) if singular.notna().any() else math.nan,
        "warned": float(sims.loc[ok, "warned"].astype(bool).mean()) if ok.any() else math.nan,
        "successes": k,
        "used": n,
        "power_failures_as_misses": k / len(sims),
        "power_nonsingular": float(sims.loc[nonsingular, "significant"].mean()) if nonsingular.any() else math.nan,
    }


def _running(labels: Sequence[str], alpha: float, points: Sequence[str] = ()) -> Callable[[list[dict]], str]:
    """Progress-bar text: the running power (at ``alpha``) of the first test at the latest point."""

    def describe(done: list[dict]) -> str:
        point = done[-1]["point"]
        recs = [r for r in done if r["point"] == point and r.get("tests")]
        ok = [r["tests"][0] for r in recs if r["converged"] and not r["error"] and np.isfinite(r["tests"][0]["p"])]
        if not ok:
            return ""
        est = sum(t["p"] < alpha for t in ok) / len(ok)
        where = f"{points[point]}: " if points else ""
        return f"{where}{labels[0]} power {est:.3f} ({len(ok)} fits)"

    return describe


# --------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------


class PowerResult:
    """The result of :func:`power`.

    Attributes
    ----------
    power : float or pandas.Series
        Estimated power (a Series indexed by test when several effects were tested).
    ci : tuple of float or pandas.DataFrame
        Exact (Clopper-Pearson) 95% interval of ``power`` (a DataFrame ``ci_low``,
        ``ci_high`` by test for several tests).
    simulations : pandas.DataFrame
        One row per replicate (and test): ``replicate``, ``test``, ``estimate``, ``se``,
        ``df``, ``statistic``, ``p``, ``significant``, ``converged``, ``singular``,
        ``warned``, ``warnings``, ``error``, ``error_type`` and ``engine`` (the engine that
        produced the row). Failed fits are rows too, their message in ``error``. With
        ``measure=``, its column(s) and ``measure_error`` follow (NaN where the fit failed).
    table : pandas.DataFrame
        Per test: ``power``, ``ci_low``, ``ci_high``, ``nsim``, ``failed``,
        ``singular`` and ``warned`` (rates), and power under the other failure policy and among
        non-singular fits.
    """

    def __init__(self, *, job: PointJob, simulations: pd.DataFrame, table: pd.DataFrame, alpha: float, failures: str,
                 seed: Any, engine_info: str) -> None:
        self._job = job
        self.simulations = simulations
        self.table = table
        self.alpha = alpha
        self.failures = failures
        self.seed = seed
        self.engine_info = engine_info
        self.tests = [h.label for h in job.hypotheses]

    @property
    def model(self) -> Any:
        return self._job.model

    @property
    def nsim(self) -> int:
        return int(self.table["nsim"].iloc[0])

    @property
    def power(self) -> float | pd.Series:
        return float(self.table["power"].iloc[0]) if len(self.tests) == 1 else self.table["power"]

    @property
    def ci(self) -> tuple[float, float] | pd.DataFrame:
        if len(self.tests) == 1:
            return (float(self.table["ci_low"].iloc[0]), float(self.table["ci_high"].iloc[0]))
        return self.table[["ci_low", "ci_high"]]

    @property
    def failed(self) -> float:
        """Share of replicates whose fit (or test) failed."""
        return float(self.table["failed"].iloc[0])

    @property
    def singular(self) -> float:
        """Share of replicates with a singular fit."""
        return float(self.table["singular"].iloc[0])

    @property
    def warned(self) -> float:
        """Share of successful fits kept with a convergence warning."""
        return float(self.table["warned"].iloc[0])

    def summary(self) -> str:
        """A summary a reader can paste into a preregistration (also ``str(result)``)."""
        job = self._job
        policy = ("among the fits that succeeded" if self.failures == "exclude"
                  else "counting failed fits as non-significant")
        lines = [f"Power analysis by simulation (glmmsim {__version__}; {self.engine_info})"]
        lines += _indent("Assumed model", describe_model(job.model, job.conditions))
        lines += _indent("Design", describe_design(job.model, job.conditions, job.key_names))
        analysis = job.fit_formula + ("" if job.fit_formula == job.model.formula else "  (differs from the truth)")
        lines += _indent("Analysis", [f"{analysis}, fitted with engine {job.fit_kwargs['engine']!r}"])
        tests = [f"{h.description}; two-sided, alpha = {self.alpha:g}" for h in job.hypotheses]
        lines += _indent("Tests", tests)
        lines += _indent("Replicates", [f"{self.nsim} (seed {self.seed!r}); each draws new levels of every grouping "
                                        f"factor and new noise"])
        for label, row in self.table.iterrows():
            head = f"Power of {label}" if len(self.tests) > 1 else "Power"
            body = [
                f"{row['power']:.3f} (95% CI {row['ci_low']:.3f} to {row['ci_high']:.3f}, Clopper-Pearson), "
                f"{policy}: {int(row['successes'])} of {int(row['used'])} significant",
                f"fits failed: {percent(row['failed'])}; singular fits: {percent(row['singular'])}; "
                f"fits with convergence warnings (kept): {percent(row['warned'])}",
                f"counting failed fits as non-significant: {row['power_failures_as_misses']:.3f}; "
                f"among non-singular fits only: {row['power_nonsingular']:.3f}",
            ]
            lines += _indent(head, body)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        if len(self.tests) == 1:
            return f"<PowerResult {self.tests[0]}: power {self.power:.3f} [{self.ci[0]:.3f}, {self.ci[1]:.3f}], nsim {self.nsim}>"
        return f"<PowerResult of {len(self.tests)} tests, nsim {self.nsim}>"


def _indent(head: str, body: Sequence[str]) -> list[str]:
    width = max(15, len(head) + 2)
    out = []
    for i, line in enumerate(body):
        out.append(f"{(head + ':') if i == 0 else '':<{width}}{line}")
    return out


def _engine_info(records: list[dict]) -> str:
    for rec in records:
        if rec.get("engine"):
            version = rec.get("engine_version", "")
            return f"engine {version if version.startswith(rec['engine']) else (rec['engine'] + ' ' + version).strip()}"
    return "engine"


class PowerCurve:
    """The result of :func:`power_curve`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per design point (and test): the ``along`` values, ``power``,
        ``ci_low``, ``ci_high``, ``nsim``, ``failed``, ``singular`` and ``warned`` (rates:
        failed fits, singular fits, and fits kept with a convergence warning).
    simulations : pandas.DataFrame
        Every replicate at every point, with the ``along`` columns in front.
    along : list of str
        The names varied.
    """

    def __init__(self, *, table: pd.DataFrame, simulations: pd.DataFrame, along: list[str], tests: list[str],
                 alpha: float, failures: str, crn: bool, jobs: Sequence[PointJob]) -> None:
        self.table = table
        self.simulations = simulations
        self.along = along
        self.tests = tests
        self.alpha = alpha
        self.failures = failures
        self.crn = crn
        self._jobs = jobs

    def smallest(self, target: float = 0.8, *, test: str | None = None, conservative: bool = False) -> pd.Series | None:
        """The first point (in ``along`` order) whose power reaches ``target``, with its interval.

        ``conservative=True`` asks for the lower end of the 95% interval to reach it.
        Returns ``None`` when no point does.
        """
        rows = self._rows(test)
        column = "ci_low" if conservative else "power"
        hit = rows[rows[column] >= target]
        # object dtype keeps whole-number along values ints (a float row would read 50.0 subjects)
        return None if hit.empty else hit.astype(object).iloc[0]

    def _rows(self, test: str | None) -> pd.DataFrame:
        if "test" not in self.table:
            return self.table
        name = test or self.tests[0]
        if name not in self.tests:
            raise ParameterError(f"test {name!r} is not one of this curve's tests {format_names(self.tests)}")
        return self.table[self.table["test"] == name]

    def plot(self, target: float | None = 0.8, *, test: str | None = None, ax: Any = None, x: str | None = None):
        """The power curve with its 95% band and the target line (a matplotlib Axes)."""
        from ..plot.study_plots import plot_power_curve

        return plot_power_curve(self._rows(test), along=self.along, x=x, target=target, ax=ax,
                                title=f"Power of {test or self.tests[0]} (alpha = {self.alpha:g})")

    def __str__(self) -> str:
        shown = self.table.copy()
        for c in ("power", "ci_low", "ci_high"):
            shown[c] = shown[c].map(lambda v: f"{v:.3f}")
        for c in ("failed", "singular", "warned"):
            shown[c] = shown[c].map(percent)
        return shown.to_string(index=False)

    def __repr__(self) -> str:
        return f"<PowerCurve along {', '.join(self.along)}: {len(self.table)} points>"


# --------------------------------------------------------------------------------------
# public entry points
# --------------------------------------------------------------------------------------


def power(
    model: Any,
    conditions: pd.DataFrame | Callable[[], pd.DataFrame],
    *,
    test: str | Sequence[str] | None = None,
    nsim: int = 1000,
    alpha: float = 0.05,
    method: str = "auto",
    engine: str = "auto",
    fit_formula: str | None = None,
    seed: SeedLike = 1,
    executor: Any = None,
    progress: bool = True,
    failures: Failures = "exclude",
    key: Sequence[str] | None = None,
    reml: bool | None = None,
    fallback_engine: str | None = None,
    max_failure_rate: float | None = 0.5,
    failure_window: int = 20,
    checkpoint: str | os.PathLike | None = None,
    measure: Callable[[Any], Any] | None = None,
) -> PowerResult:
    """Power to detect ``test`` by simulating from ``model`` on ``conditions`` and refitting.

    Every argument after ``conditions`` is keyword-only; ``test`` is required.

    Parameters
    ----------
    model : glmmsim.Model
        The assumed truth; its own population seed is replaced by a new population in
        every replicate.
    conditions : DataFrame or callable
        The design (one row per observation), or a callable returning it.
    test : str or list of str
        Required. A coefficient (``"cond[T.b]"`` or lme4's ``"condb"``), a term (``"cond"``: all
        its coefficients, tested jointly) or a list of them, tested on the same fits. Without it
        the error lists the analysis model's coefficients and terms.
    nsim : int
        Replicates.
    alpha : float
        Significance level of the two-sided tests.
    method : {"auto", "z", "satterthwaite", "lrt", "kr"}
        ``auto``: Satterthwaite t for linear mixed models, Wald z for GLMMs, likelihood
        ratio for a term of several coefficients. ``kr`` (Kenward-Roger) needs engine ``lmm`` or ``lme4``.
    engine : str
        Fitting engine: ``"auto"`` (``"lmm"`` for linear mixed models, ``"glmm"`` otherwise),
        ``"lmm"``, ``"glmm"``, ``"lme4"`` or a registered one.
    fit_formula : str, optional
        The analysis model when it differs from the truth (misspecification).
    seed : int, SeedSequence or Generator
        Root of the seed tree; replicate ``r`` uses ``SeedTree(seed).replicate(r)``.
    executor : None, "processes", int, concurrent.futures.Executor or dask.distributed.Client
        Where the batches run (see :func:`glmmsim.execution.resolve_executor`); results
        are identical on every executor.
    progress : bool
        Show a progress bar with the running estimate.
    failures : {"exclude", "nonsignificant"}
        ``exclude`` (default): power among the fits that succeeded, failure rate beside
        it. ``nonsignificant``: a failed fit counts as a non-significant test.
    key : list of str, optional
        Columns identifying a row, which key the noise. By default the design's grouping,
        label and numeric columns identify it (see ``glmmsim.analysis.replicates.row_key``),
        and rows that still repeat are numbered 0..k-1 within it.
    reml : bool, optional
        Passed to the engine (default: REML for linear mixed models).
    fallback_engine : str, optional
        An engine (e.g. ``"lme4"``) that refits a replicate on which ``engine`` failed to
        fit or to test (glmm giving no Satterthwaite df for one dataset); the row's
        ``engine`` column says which engine answered, ``warnings`` why. Default: none,
        the replicate is a failed one.
    max_failure_rate : float or None
        The study stops with a :class:`~glmmsim.errors.SystematicFailureError` when more
        than this share of a design point's replicates fail, checked in replicate order
        every ``failure_window`` replicates (default 0.5; ``None`` never stops). The
        error names the point, the first failed replicate, its seed path and its error,
        and carries every finished replicate (``.simulations``).
    failure_window : int
        Replicates between those checks (default 20).
    checkpoint : str or path-like, optional
        A folder that keeps finished replicates as they complete; rerunning the same
        study with it continues where it stopped, with identical results (see
        ``glmmsim.analysis.checkpoint``).
    measure : callable, optional
        Your own measurement of every replicate's fit: a function of the
        :class:`~glmmsim.fit.FitResult` returning a number (column ``measure`` of
        ``.simulations``) or a dict of numbers (one column per key), e.g. an interval width or
        a derived contrast. A failed fit gives NaN; whatever the function raises is that
        replicate's ``measure_error`` (its columns NaN), and the replicate and its tests
        stand. On a process pool it must pickle: define it at module level. A checkpoint
        records its qualified name and refuses a rerun with another.

    Returns
    -------
    PowerResult
        ``.power``, ``.ci``, ``.simulations``, ``.table``; ``print()`` gives a summary.

    Examples
    --------
    >>> import glmmsim
    >>> from glmmsim.design import crossed
    >>> m = glmmsim.Model("y ~ cond + (1 | subject)", fixed={"Intercept": 0, "condb": 0.5},
    ...                   random={"subject": 0.5}, sigma=1, seed=1)
    >>> d = crossed(subjects=8, repetitions=4, within={"cond": ["a", "b"]})
    >>> res = glmmsim.power(m, d, test="condb", nsim=10, progress=False)
    >>> res.ci[0] <= res.power <= res.ci[1]
    True
    """
    _check_common(nsim, alpha, failures)
    policy = FailurePolicy(max_failure_rate, failure_window)
    data = conditions_frame(conditions)
    user_measure = _user_measure(measure, executor, ["point", *_SIM_COLUMNS])
    _require_test(test, model, data, fit_formula, "power")
    tree = SeedTree(seed)
    job = plan_point(model, data, point=0, token=new_token(), tree=tree, test=test, method=method, engine=engine,
                     fit_formula=fit_formula, key=key, reml=reml, fallback=fallback_engine, seed_path=seed_path(seed),
                     user_measure=user_measure)
    store = Checkpoint(checkpoint, describe_study("power", [job])) if checkpoint is not None else None
    describe = _running([h.label for h in job.hypotheses], alpha)
    try:
        records = run_study([job], nsim, executor=executor, progress=progress, describe=describe, policy=policy,
                            store=store)
    except SystematicFailureError as exc:
        _stopped(exc, [job], alpha, lambda sims: sims.drop(columns=["point"]))
        raise
    sims = _test_rows(records, [job], alpha)
    table = pd.DataFrame({label: _summarise(g, failures) for label, g in sims.groupby("test", sort=False)}).T
    table.index.name = "test"
    sims = sims[_sim_columns(sims)]
    return PowerResult(job=job, simulations=sims, table=table, alpha=alpha, failures=failures,
                       seed=seed if isinstance(seed, (int, np.integer)) else type(seed).__name__,
                       engine_info=_engine_info(records))


def _grid(along: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    if not isinstance(along, Mapping) or not along:
        raise ParameterError("along must be a non-empty mapping name -> list of values, e.g. {'subjects': [10, 20, 30]}")
    for name, values in along.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
            raise ParameterError(f"along[{name!r}] must be a non-empty list of values; got {values!r}")
    names = list(along)
    return [dict(zip(names, combo)) for combo in itertools.product(*(along[n] for n in names))]


def _accepts(fn: Any) -> set[str] | None:
    """Keyword names a callable takes (None: it takes any via **kwargs)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _call_with(fn: Any, values: Mapping[str, Any], names: set[str] | None) -> Any:
    return fn(**({k: v for k, v in values.items() if names is None or k in names}))


def power_curve(
    model: Any,
    design: Callable[..., pd.DataFrame] | pd.DataFrame,
    *,
    along: Mapping[str, Sequence[Any]],
    test: str | Sequence[str] | None = None,
    nsim: int = 1000,
    alpha: float = 0.05,
    method: str = "auto",
    engine: str = "auto",
    fit_formula: str | None = None,
    seed: SeedLike = 1,
    executor: Any = None,
    progress: bool = True,
    failures: Failures = "exclude",
    key: Sequence[str] | None = None,
    reml: bool | None = None,
    crn: bool = True,
    fallback_engine: str | None = None,
    max_failure_rate: float | None = 0.5,
    failure_window: int = 20,
    checkpoint: str | os.PathLike | None = None,
    measure: Callable[[Any], Any] | None = None,
) -> PowerCurve:
    """Power at every point of a grid of designs (and, optionally, models).

    ``design`` is a callable taking the ``along`` names it needs as keyword arguments
    (``lambda subjects: crossed(subjects, 20, within={"cond": ["a", "b"]})``); ``model``
    may be a callable too (``lambda effect: m.replace(fixed={...})``), for a curve along
    an effect size. Several ``along`` names make a grid. With ``crn=True`` (default)
    every point uses the same replicate seeds (common random numbers), so neighbouring
    points differ only by the design; ``crn=False`` gives every point its own seeds.
    The other arguments are those of :func:`power`; every argument after ``design`` is
    keyword-only, and ``along`` and ``test`` are required.

    Parameters
    ----------
    model : glmmsim.Model or callable
        The truth, or a callable taking ``along`` names and returning one.
    design : DataFrame or callable
        The conditions, or a callable taking ``along`` names and returning them.
    along : mapping of str to sequence
        Names and the values they take; several names make a grid of points.
    crn : bool
        Common random numbers: the same replicate seeds at every point.
    test, nsim, alpha, method, engine, fit_formula, seed, executor, progress, failures, key, reml
        As in :func:`power`.
    fallback_engine, max_failure_rate, failure_window, checkpoint, measure
        As in :func:`power`; a measure's columns follow the ``along`` columns' rows in ``.simulations``.

    Returns
    -------
    PowerCurve
        ``.table`` (one row per point), ``.simulations``, ``.smallest(power)``, ``.plot()``.

    Examples
    --------
    >>> import glmmsim
    >>> from glmmsim.design import crossed
    >>> m = glmmsim.Model("y ~ cond + (1 | subject)", fixed={"Intercept": 0, "condb": 0.5},
    ...                   random={"subject": 0.5}, sigma=1, seed=1)
    >>> curve = power_curve(m, lambda subjects: crossed(subjects, repetitions=4, within={"cond": ["a", "b"]}),
    ...                     along={"subjects": [6, 12]}, test="condb", nsim=10, progress=False)
    >>> list(curve.table.columns)
    ['subjects', 'power', 'ci_low', 'ci_high', 'nsim', 'failed', 'singular', 'warned']
    """
    _check_common(nsim, alpha, failures)
    grid = _grid(along)
    user_measure = _user_measure(measure, executor, ["point", *_SIM_COLUMNS, *map(str, along)])
    design_names = _accepts(design) if callable(design) and not isinstance(design, pd.DataFrame) else set()
    model_names = _accepts(model) if callable(model) and not hasattr(model, "formula") else set()
    unused = [n for n in along if design_names is not None and model_names is not None
              and n not in design_names and n not in model_names]
    if unused:
        raise ParameterError(
            f"along names {format_names(unused)} are arguments of neither the design nor the model callable "
            f"(design takes {format_names(sorted(design_names or []))}; model takes "
            f"{format_names(sorted(model_names or []))})"
        )
    token = new_token()
    root = SeedTree(seed)
    jobs = []
    for i, values in enumerate(grid):
        data = conditions_frame(_call_with(design, values, design_names) if design_names != set() else design, "design")
        point_model = _call_with(model, values, model_names) if model_names != set() else model
        _require_test(test, point_model, data, fit_formula, "power_curve")
        tree = root if crn else root.child("point", i)
        jobs.append(plan_point(point_model, data, point=i, token=token, tree=tree, test=test, method=method,
                               engine=engine, fit_formula=fit_formula, key=key, reml=reml, fallback=fallback_engine,
                               label=", ".join(f"{k}={v}" for k, v in values.items()), user_measure=user_measure,
                               seed_path=seed_path(seed, None if crn else i)))
    store = Checkpoint(checkpoint, describe_study("power_curve", jobs, grid)) if checkpoint is not None else None
    labels = [h.label for h in jobs[0].hypotheses]
    describe = _running(labels, alpha, [job.label for job in jobs])
    names = list(along)
    point_values = pd.DataFrame(grid)

    def with_along(sims: pd.DataFrame) -> pd.DataFrame:
        along_cols = point_values.loc[sims["point"].to_numpy()].reset_index(drop=True)
        return pd.concat([along_cols, sims.drop(columns=["point"]).reset_index(drop=True)], axis=1)

    try:
        records = run_study(jobs, nsim, executor=executor, progress=progress, describe=describe,
                            policy=FailurePolicy(max_failure_rate, failure_window), store=store)
    except SystematicFailureError as exc:
        _stopped(exc, jobs, alpha, with_along)
        raise
    sims = _test_rows(records, jobs, alpha)
    rows = []
    for (point, label), g in sims.groupby(["point", "test"], sort=False):
        rows.append({**grid[point], **({"test": label} if len(labels) > 1 else {}), **_summarise(g, failures)})
    columns = [*names, *(["test"] if len(labels) > 1 else []), "power", "ci_low", "ci_high", "nsim", "failed",
               "singular", "warned"]
    table = pd.DataFrame(rows)[columns]
    table["nsim"] = table["nsim"].astype(int)
    sims = with_along(sims)
    return PowerCurve(table=table, simulations=sims, along=names, tests=labels, alpha=alpha, failures=failures,
                      crn=crn, jobs=jobs)
