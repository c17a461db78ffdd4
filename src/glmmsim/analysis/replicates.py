"""The replicate runner: simulate, fit and record, batch by batch, on any executor.

Replicate ``r`` of every design point is seeded by ``SeedTree(seed).replicate(r)``: the
same population seed and noise seed at 20 subjects as at 40 (common random numbers).
Because random effects are keyed by level and the noise by the rows' identifying
columns, the 20-subject point's subjects and trials are exactly those of the 40-subject
point, so a power curve moves only because the design grows.

Whatever fails inside a replicate (the simulation, the fit, a test) is a row of data:
its message in ``error``, the exception's type in ``error_type``. Only set-up errors
(an engine or R missing, a test the model has no coefficient for) stop a study before
its replicates run, and a :class:`FailurePolicy` stops it when failures are systematic
(by default, more than half of a design point's replicates, checked every 20).
"""

from __future__ import annotations

import numbers
import sys
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ParameterError, SystematicFailureError
from ..limits import check_limit
from ..execution import batch_size, batches, resolve_executor, worker_cache
from ..fit.design import FitDesign, build_design, fit_design
from ..fit.prepare import Fitter
from ..fit.result import FitResult
from .tested_terms import Hypothesis

__all__ = ["PointJob", "PointState", "Task", "run_task", "run_study", "identifying_columns", "row_key",
           "keyed_conditions", "FailurePolicy", "TEST_COLUMNS", "OCCURRENCE", "TestMeasure", "ParameterMeasure",
           "UserMeasure", "MEASURE_ERROR"]

TEST_COLUMNS = ["estimate", "se", "df", "statistic", "p"]
_LABEL_KINDS = "OSUbiu"  # object, str, unicode, bool, int, uint: columns that identify rather than measure
#: How a key reports the occurrence number of rows that repeat within the key columns.
OCCURRENCE = "occurrence"
# the column that carries it into the bound model (never a user's column: double underscores both ends)
_OCCURRENCE_COLUMN = "__glmmsim_occurrence__"


def identifying_columns(model: Any, conditions: pd.DataFrame) -> list[str]:
    """The columns that identify a row of the design: the noise key for common random numbers.

    The model's grouping columns and its label-like predictors (conditions, factors)
    come first; when they do not yet make every row unique, other label-like columns
    of the design (``trial``, ``rep``, ...) are added in design order, then the model's
    numeric predictors (``x = 1..10``, a condition coded -0.5/+0.5). Rows that still
    repeat are told apart by their occurrence number (see :func:`row_key`).

    Examples
    --------
    >>> import glmmsim
    >>> from glmmsim.design import crossed
    >>> d = crossed(subjects=2, items=3, within={"cond": ["a", "b"]}, repetitions=2)
    >>> m = glmmsim.Model("y ~ cond + (1 | subject) + (1 | item)", fixed={"Intercept": 0, "condb": 1},
    ...                   random={"subject": 1, "item": 1}, sigma=1)
    >>> identifying_columns(m, d)
    ['subject', 'item', 'cond', 'rep']
    """
    return list(row_key(model, conditions)[0])


def row_key(model: Any, conditions: pd.DataFrame) -> tuple[tuple[str, ...], bool]:
    """The key columns of the design's rows, and whether repeats need their occurrence number.

    Designs are written with their grouping, label and numeric columns, and those
    identify a row. Rows that still repeat (20 identical trials of a cell) are numbered
    0..k-1 within their key, in design order: the noise of trial ``j`` of a cell is the
    same in every design that has it, so common random numbers hold along curves.

    A design whose rows its grouping and label columns already identify is keyed as
    before numeric columns were considered, so seeded results of such designs do not move.

    Examples
    --------
    >>> import numpy as np, pandas as pd, glmmsim
    >>> d = pd.DataFrame({"g": np.repeat(list("abc"), 10), "x": np.tile(np.arange(1.0, 11.0), 3)})
    >>> m = glmmsim.Model("y ~ x + (1 | g)", fixed={"Intercept": 2, "x": -0.1}, random={"g": 0.5 ** 0.5}, sigma=1)
    >>> row_key(m, d)
    (('g', 'x'), False)
    >>> row_key(m, pd.concat([d, d]))
    (('g', 'x'), True)
    """
    grouping = [c for cols in model.factor_columns.values() for c in cols]
    labels = [c for c in model.variables if c in conditions.columns and _is_label(conditions[c])]
    key = list(dict.fromkeys([*grouping, *labels]))
    if not conditions.duplicated(subset=key).any():
        return tuple(key), False
    for col in conditions.columns:
        if col in key or not _is_label(conditions[col]):
            continue
        key.append(col)
        if not conditions.duplicated(subset=key).any():
            return tuple(key), False
    # numeric predictors identify rows as much as labels do (simr's x = 1..10 within g)
    key += [c for c in model.variables if c in conditions.columns and c not in key and conditions[c].dtype.kind == "f"]
    return tuple(key), bool(conditions.duplicated(subset=key).any())


def keyed_conditions(conditions: pd.DataFrame, key: Sequence[str], occurrence: bool) -> tuple[pd.DataFrame, list[str]]:
    """The conditions to bind and the key to bind them with (a copy with the occurrence number, if used).

    Examples
    --------
    >>> d = pd.DataFrame({"g": ["a", "a", "b"]})
    >>> frame, key = keyed_conditions(d, ["g"], True)
    >>> frame[key[-1]].tolist(), list(d.columns)
    ([0, 1, 0], ['g'])
    """
    if not occurrence:
        return conditions, list(key)
    frame = conditions.copy()
    frame[_OCCURRENCE_COLUMN] = conditions.groupby(list(key), sort=False, dropna=False, observed=True).cumcount().to_numpy()
    return frame, [*key, _OCCURRENCE_COLUMN]


def _is_label(series: pd.Series) -> bool:
    return isinstance(series.dtype, pd.CategoricalDtype) or series.dtype.kind in _LABEL_KINDS or series.dtype == "string"


# --------------------------------------------------------------------------------------
# what a replicate measures on its fit
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TestMeasure:
    """Power's measurement: each hypothesis tested on the fit, one row of :data:`TEST_COLUMNS` per test.

    A test that cannot be computed on this fit is data (its ``error``), not a failed replicate.
    """

    __test__ = False  # not a pytest test class

    hypotheses: tuple[Hypothesis, ...]
    name: str = "tests"

    def __call__(self, fit: FitResult) -> list[dict]:
        return [_test(fit, h) for h in self.hypotheses]


@dataclass(frozen=True)
class ParameterMeasure:
    """Recovery's measurement: every estimated parameter as ``(kind, factor, names, estimate, se, df)``."""

    name: str = "parameters"

    def __call__(self, fit: FitResult) -> list[tuple]:
        return _parameters(fit)


#: The column of a study's simulations table that holds a user's measure's error ("" when it measured).
MEASURE_ERROR = "measure_error"


@dataclass(frozen=True)
class UserMeasure:
    """A user's own measurement of each replicate's fit, kept apart from the study's tests.

    ``fn`` takes the :class:`~glmmsim.fit.FitResult` and returns a number (column
    ``measure``) or a dict of numbers (one column per key). Whatever it raises, or a value
    that is not a number, is this replicate's :data:`MEASURE_ERROR`: the replicate and its
    tests stand. ``reserved`` are the simulations table's own column names, which a key may not take.

    Examples
    --------
    >>> UserMeasure(lambda fit: {"a": 1, "b": 2.5})(None)
    {'a': 1.0, 'b': 2.5, 'measure_error': ''}
    >>> UserMeasure(lambda fit: 1 / 0)(None)["measure_error"]
    'ZeroDivisionError: division by zero'
    """

    fn: Callable[[FitResult], Any]
    reserved: tuple[str, ...] = ()
    name: str = "measured"

    def __call__(self, fit: FitResult) -> dict[str, Any]:
        try:
            return {**self._columns(self.fn(fit)), MEASURE_ERROR: ""}
        except Exception as exc:  # noqa: BLE001 - a user's measure failing is data, not a failed replicate
            return {MEASURE_ERROR: _message(exc)}

    def _columns(self, value: Any) -> dict[str, float]:
        values = value if isinstance(value, Mapping) else {"measure": value}
        out = {}
        for key, v in values.items():
            if not isinstance(key, str) or key in self.reserved or key == MEASURE_ERROR:
                raise ParameterError(f"measure returned key {key!r}, which is not a string or is a column of the "
                                     f"simulations table already; use another name", parameter="measure")
            if not isinstance(v, numbers.Real):
                raise ParameterError(f"measure must return a number or a dict of numbers; {key!r} is "
                                     f"{type(v).__name__}", parameter="measure")
            out[key] = float(v)
        return out


@dataclass(frozen=True)
class PointJob:
    """Everything a worker needs for one design point (pickled into each of its tasks).

    ``measure`` is called with each replicate's :class:`~glmmsim.fit.FitResult`; its value is
    the record's ``measure.name`` entry (``tests`` for power, ``parameters`` for recovery;
    ``measure`` for a callable without a name).
    Whatever it raises makes that replicate a failed one. It must pickle (a module-level
    function or a frozen dataclass) to run on a process pool or Dask. ``user_measure`` (a
    :class:`UserMeasure`), when given, also measures each fit; its value is the record's
    ``user_measure.name`` entry and its failures fail only that entry.
    """

    token: str
    point: int
    model: Any
    conditions: pd.DataFrame
    key: tuple[str, ...] | None
    fit_formula: str
    fit_kwargs: dict
    hypotheses: tuple[Hypothesis, ...]
    measure: Callable[[FitResult], Any]
    tree: Any
    level: float = 0.95
    occurrence: bool = False  # repeats within the key are told apart by their occurrence number
    fallback: str | None = None  # engine that refits a replicate the main engine failed on
    label: str = ""  # the point as a reader names it ("subjects=120"), for messages
    seed_path: str = ""  # how the point's seed tree is reached from the root, for messages
    user_measure: UserMeasure | None = None  # the user's own measure (power's measure=), beside the tests

    @property
    def measure_name(self) -> str:
        """The record entry the measurement fills: its ``name`` (``tests``, ``parameters``), else ``measure``."""
        return str(getattr(self.measure, "name", "measure"))

    @property
    def key_names(self) -> list[str]:
        """The key as a reader names it: its columns, then ``occurrence`` when repeats are numbered."""
        return [*(self.key or ()), *([OCCURRENCE] if self.occurrence else [])]

    def seed_of(self, replicate: int) -> str:
        """The seed path of one replicate, e.g. ``SeedTree(1).replicate(150)``."""
        return f"{self.seed_path}.replicate({replicate})"


@dataclass(frozen=True)
class Task:
    """One batch: replicates of one design point."""

    job: PointJob
    replicates: Sequence[int]

    def __str__(self) -> str:
        reps = list(self.replicates)
        where = f"design point {self.job.point}" + (f" ({self.job.label})" if self.job.label else "")
        return f"batch of {where}, replicates {reps[0]}-{reps[-1]}" if reps else f"empty batch of {where}"


class PointState:
    """What one process builds once per design point: the bound model, its fit design, the fitter(s).

    The model is bound to the point's rows once (one :class:`~glmmsim.model.model_design.ModelDesign`);
    the fit design is a view of it when the analysis formula is the model's (else the analysis
    formula's own design); the fitter is prepared on first use, so the process that plans a
    study never starts an engine it does not fit with.
    """

    def __init__(self, job: PointJob) -> None:
        frame, key = keyed_conditions(job.conditions, job.key or (), job.occurrence)
        self.bound = job.model.bind(frame, key=key if job.key else None)
        self.design = _fit_design(job, self.bound, frame)
        self._job = job
        self._fitter: Fitter | None = None
        self._fallback: Fitter | None = None

    @property
    def fitter(self) -> Fitter:
        """The point's fitter, prepared on first use (a missing engine fails here, before any replicate)."""
        if self._fitter is None:
            self._fitter = Fitter.for_design(self.design, self._job.fit_kwargs["engine"], self._job.fit_kwargs["reml"])
        return self._fitter

    @property
    def fallback(self) -> Fitter | None:
        """The fallback engine's fitter, prepared on first use (an R process starts only if needed)."""
        if self._fallback is None and self._job.fallback:
            self._fallback = Fitter.for_design(self.design, self._job.fallback, self._job.fit_kwargs["reml"])
        return self._fallback

    @property
    def start(self) -> list[np.ndarray] | None:
        """The generating covariances relative to sigma^2, one per random term, where the analysis
        model is the generating gaussian model: the fits' optimizer may start there (same optimum)."""
        model = self._job.model
        sigma = getattr(model, "sigma", None)
        if self._job.fit_formula != model.formula or model.family.name != "gaussian" or not sigma:
            return None
        return [bt.cov.cov / sigma**2 for bt in self.bound.terms]

    def close(self) -> None:
        for fitter in (self._fitter, self._fallback):
            close = getattr(fitter, "close", None)
            if callable(close):
                close()


def _fit_design(job: PointJob, bound: Any, frame: pd.DataFrame) -> FitDesign:
    """The design the point's replicates are fitted on: the bound model's own unless the analysis differs."""
    model, trials = job.model, job.fit_kwargs.get("trials")
    if job.fit_formula == model.formula:  # the truth's design, viewed for fitting: nothing is read again
        return fit_design(bound.design, frame, trials=trials)
    # a different analysis model is read once here; a formula other than the model's own is always checked
    return build_design(job.fit_formula, job.conditions, family=model.family, trials=trials,
                        levels=getattr(model, "levels", None) or None)


def point_state(job: PointJob) -> PointState:
    """This process's state of the job's point, built on first use and kept in the worker cache."""
    return worker_cache((job.token, job.point), lambda: PointState(job))


def run_task(task: Task) -> list[dict]:
    """Run one batch; returns one record per replicate (module-level, so it pickles)."""
    job = task.job
    state = point_state(job)
    fitter = state.fitter  # set-up errors (an engine or R missing) stop the study here, not per replicate
    if not fitter.fits_in_batches:  # one response in memory at a time
        out = []
        for r in task.replicates:
            y = _simulate(job, state, r)
            out.append(y if isinstance(y, dict) else _replicate(job, state, y, _base(job, r), None))
        return out
    drawn = _simulate_together(job, state, task.replicates)
    ys = {r: y for r, y in drawn.items() if not isinstance(y, dict)}
    fits = dict(zip(ys, _fit_batch(fitter, list(ys.values()), state.start) or [None] * len(ys)))
    return [y if isinstance(y, dict) else _replicate(job, state, y, _base(job, r), fits[r]) for r, y in drawn.items()]


def _base(job: PointJob, r: int) -> dict:
    return {"point": job.point, "replicate": r}


def _simulate(job: PointJob, state: PointState, r: int) -> np.ndarray | dict:
    """Replicate ``r``'s response, or its failed record when the family cannot draw it."""
    try:
        seeds = job.tree.replicate(r)
        return state.bound.simulate_response(seeds.noise, population=seeds.population)
    except Exception as exc:  # noqa: BLE001 - a family that cannot draw this replicate: data, not the end
        return _failed(_base(job, r), exc, "")


def _simulate_together(job: PointJob, state: PointState, replicates: Sequence[int]) -> dict[int, np.ndarray | dict]:
    """The replicates' responses drawn in one call (the numbers of drawing them one by one).

    Where that call fails, they are drawn one by one, so that a replicate the family cannot
    draw gets its own failed record and the others their responses.
    """
    try:
        seeds = [job.tree.replicate(r) for r in replicates]
        ys = state.bound.simulate_responses([s.noise for s in seeds], populations=[s.population for s in seeds])
    except Exception:  # noqa: BLE001 - the failing replicate is found, and recorded, one by one
        return {r: _simulate(job, state, r) for r in replicates}
    return dict(zip(replicates, ys))


def _fit_batch(fitter: Fitter, ys: list[np.ndarray], start: list[np.ndarray] | None) -> list[FitResult] | None:
    """All responses fitted in one engine call (``Fitter.fit_many``); None means fit them one by one.

    One by one is how each replicate keeps its own error and warnings: a batch that raises
    or warns is dropped and fitted again replicate by replicate. A task of one replicate is a
    batch too: its fit and df are then those it gets in any other batch (the tasks are cut
    differently for other executors and when a checkpoint resumes).
    """
    if not ys:
        return None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            stacked = np.column_stack(ys)
            stacked.flags.writeable = False  # ours alone, now frozen (protocol.is_frozen): kept without a copy
            fits = fitter.fit_many(stacked, start=start)
    except Exception:  # noqa: BLE001 - the failing replicate is found, and recorded, one by one
        return None
    return None if caught or len(fits) != len(ys) else fits


def _replicate(job: PointJob, state: PointState, y: np.ndarray, base: dict, fitted: FitResult | None) -> dict:
    main = _fit_and_record(job, state.fitter, y, base, fitted, start=state.start)
    if not _has_error(main) or not job.fallback:
        return main
    try:
        alt = _fit_and_record(job, state.fallback, y, base)
    except Exception as exc:  # noqa: BLE001 - the fallback engine cannot be set up here: keep the main row
        main["warnings"] = _join([main["warnings"], f"fallback engine {job.fallback!r} unavailable: {_message(exc)}"])
        return main
    if _has_error(alt):
        return main  # the main engine's failure is the one the user asked about
    # the row says which engine answered and why the first one did not
    alt["warnings"] = _join([f"{main['engine'] or job.fit_kwargs['engine']} failed ({_first_error(main)}); "
                             f"refitted with {job.fallback}", alt["warnings"]])
    return alt


def _fit_and_record(job: PointJob, fitter: Any, y: np.ndarray, base: dict, fitted: FitResult | None = None,
                    start: list[np.ndarray] | None = None) -> dict:
    record = dict(base)
    record["engine"] = str(getattr(fitter, "engine", "") or job.fit_kwargs.get("engine", ""))
    caught: list = []
    if fitted is None:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                fitted = _fit_alone(fitter, y, start)
        except Exception as exc:  # noqa: BLE001 - a failed fit is data, whatever the engine raised
            return _failed(record, exc, record["engine"])
    res = fitted
    notes = [*map(str, res.warnings or []), *(str(w.message) for w in caught)]
    record.update(
        converged=bool(res.converged),
        singular=bool(res.singular),
        warned=bool(res.warned),
        warnings=_join(notes),
        error="",
        error_type="",
        engine=record["engine"] or str(res.engine or ""),  # the engine the study asked for
        engine_version=str(res.engine_version or ""),
    )
    try:
        record[job.measure_name] = job.measure(res)
    # FitResult builds its tables lazily from the engine's raw output (any registered engine's):
    # a malformed one (or a user's measure) fails here, and makes this replicate a failed one
    except Exception as exc:  # noqa: BLE001
        record.update(converged=False, error=_message(exc), error_type=type(exc).__name__)
        return record
    if job.user_measure is not None:  # it records its own failures: the fit and its tests stand
        record[job.user_measure.name] = job.user_measure(res)
    return record


def _fit_alone(fitter: Any, y: np.ndarray, start: list[np.ndarray] | None) -> FitResult:
    """One replicate's fit, outside a batch: a batch of one where the engine fits in batches, so that its
    numbers are those it has in any batch (a batch that raised or warned is refitted so); ``fit`` where
    that is not possible or raises."""
    if getattr(fitter, "fits_in_batches", False):
        try:
            return fitter.fit_many(y[:, None], start=start)[0]
        except Exception:  # noqa: BLE001 - fit() below fails the same way, or fits without the batched solver
            pass
    return fitter.fit(y)


def _failed(record: dict, exc: BaseException, engine: str) -> dict:
    return {**record, "converged": False, "singular": np.nan, "warned": False, "warnings": "",
            "error": _message(exc), "error_type": type(exc).__name__, "engine": engine, "engine_version": ""}


def _has_error(record: dict) -> bool:
    return bool(record["error"]) or any(t["error"] for t in record.get("tests") or [])


def _first_error(record: dict) -> str:
    return record["error"] or next(t["error"] for t in record["tests"] if t["error"])


def _join(notes: Sequence[str]) -> str:
    return "; ".join(dict.fromkeys(" ".join(n.split()) for n in notes if n and n.strip()))


def _test(res: Any, h: Hypothesis) -> dict:
    target = h.coefficients[0] if len(h.coefficients) == 1 else list(h.coefficients)
    try:
        t = res.test(target, method=h.method)
    except Exception as exc:  # noqa: BLE001 - a test that cannot be computed on this fit is data
        return {**dict.fromkeys(TEST_COLUMNS, np.nan), "error": _message(exc), "error_type": type(exc).__name__}
    return {c: _float(getattr(t, c, np.nan)) for c in TEST_COLUMNS} | {"error": "", "error_type": ""}


def _parameters(res: FitResult) -> list[tuple]:
    """Every estimated parameter as ``(kind, factor, names, estimate, se, df)`` (se, df NaN where none)."""
    nan = np.nan
    out: list[tuple] = []
    # the FitResult's arrays, not its .fixed DataFrame (which would double a small fit's time): this
    # runs on every replicate of a recovery study
    arrays = res.fixed_arrays
    for name, est, se, df in zip(arrays.names, arrays.estimate, arrays.se, arrays.df):
        out.append(("fixed", "", (str(name),), _float(est), _float(se), _float(df)))
    for factor, spec in (getattr(res, "random", None) or {}).items():
        for coef, sd in spec.get("sd", {}).items():
            out.append(("sd", str(factor), (str(coef),), _float(sd), nan, nan))
        for pair, r in spec.get("corr", {}).items():
            out.append(("corr", str(factor), tuple(map(str, pair)), _float(r), nan, nan))
    sigma = getattr(res, "sigma", None)
    if sigma is not None and np.isfinite(_float(sigma)):
        out.append(("sigma", "", ("sigma",), _float(sigma), nan, nan))
    for name, value in (getattr(res, "family_params", None) or {}).items():
        if name != "sigma":
            out.append(("family", "", (str(name),), _float(value), nan, nan))
    return out


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _message(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "(no message)"
    return f"{type(exc).__name__}: {text}"


# --------------------------------------------------------------------------------------
# running a study
# --------------------------------------------------------------------------------------


@dataclass
class Progress:
    """A tqdm bar over all replicates, showing the running estimate a study reports."""

    total: int
    enabled: bool
    describe: Callable[[list[dict]], str] | None = None
    bar: Any = field(default=None, init=False)

    def __enter__(self) -> Progress:
        if self.enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, unit="sim", file=sys.stderr, dynamic_ncols=True, mininterval=0.5)
        return self

    def update(self, records: list[dict], done: list[dict]) -> None:
        if self.bar is None:
            return
        self.bar.update(len(records))
        if self.describe is not None:
            self.bar.set_postfix_str(self.describe(done), refresh=False)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


@dataclass(frozen=True)
class FailurePolicy:
    """When failed replicates mean the study itself is wrong, and it stops.

    A replicate fails when it produced no estimate or its test could not be computed
    (see ``error``). At every design point, after each ``window`` replicates in
    replicate order (20, 40, ...) and after its last one, the share of failed
    replicates so far is compared with ``max_rate``; above it, the study stops with a
    :class:`~glmmsim.errors.SystematicFailureError`. The checks read replicates in
    order, so a study stops at the same place on every executor.

    Parameters
    ----------
    max_rate : float or None
        Largest acceptable share of failed replicates (default 0.5); ``None`` never stops.
    window : int
        How many replicates between checks (default 20): with ``max_rate < 1``, a point
        whose first ``window`` replicates all fail stops the study there.

    Examples
    --------
    >>> FailurePolicy().checks(45)
    [20, 40, 45]
    """

    max_rate: float | None = 0.5
    window: int = 20

    def __post_init__(self) -> None:
        rate = self.max_rate
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1):
            raise ParameterError(f"max_failure_rate must be a number in [0, 1) or None (never stop); got {rate!r}")
        if isinstance(self.window, bool) or not isinstance(self.window, (int, np.integer)) or self.window < 1:
            raise ParameterError(f"failure_window must be a whole number >= 1; got {self.window!r}")

    def checks(self, nsim: int) -> list[int]:
        """The replicate counts at which a point's failure share is checked."""
        return sorted({*range(self.window, nsim + 1, self.window), nsim})


class _FailureWatch:
    """Counts failures per point in replicate order; raises when the policy says the study must stop."""

    def __init__(self, jobs: Sequence[PointJob], nsim: int, policy: FailurePolicy) -> None:
        self.jobs = {job.point: job for job in jobs}
        self.policy = policy
        self.todo = {job.point: policy.checks(nsim) for job in jobs}
        self.seen: dict[int, dict[int, bool]] = {job.point: {} for job in jobs}
        self.upto = dict.fromkeys(self.jobs, 0)  # replicates 0..upto-1 of the point are in
        self.failures = dict.fromkeys(self.jobs, 0)  # ... and this many of them failed
        self.first: dict[int, dict] = {}

    def add(self, records: list[dict], done: list[dict]) -> None:
        for rec in records:
            point = rec["point"]
            failed = _has_error(rec) or not rec["converged"]
            self.seen[point][rec["replicate"]] = failed
            if failed and (point not in self.first or rec["replicate"] < self.first[point]["replicate"]):
                self.first[point] = rec
        for point, checks in self.todo.items():
            seen = self.seen[point]
            while self.upto[point] in seen:  # extend the in-order prefix, checking as it passes each check
                self.failures[point] += seen.pop(self.upto[point])
                self.upto[point] += 1
                if checks and self.upto[point] == checks[0]:
                    n = checks.pop(0)
                    share = self.failures[point] / n
                    if self.policy.max_rate is not None and share > self.policy.max_rate:
                        self._stop(point, n, share, done)

    def _stop(self, point: int, n: int, share: float, done: list[dict]) -> None:
        job, first = self.jobs[point], self.first[point]
        where = f"design point {point}" + (f" ({job.label})" if job.label else "")
        raise SystematicFailureError(
            f"the study stopped: {share:.0%} of the first {n} replicates at {where} failed (more than "
            f"max_failure_rate={self.policy.max_rate:g}); the first failure is replicate {first['replicate']} "
            f"(seed {job.seed_of(first['replicate'])}): {_first_error(first)}. The {len(done)} finished "
            f"replicates are in this error's .records (and .simulations where a study attached them)",
            point=point, point_label=job.label, replicate=first["replicate"], seed_path=job.seed_of(first["replicate"]),
            first_error=_first_error(first), failure_rate=share, records=list(done),
        )


def run_study(
    jobs: Sequence[PointJob],
    nsim: int,
    *,
    executor: Any = None,
    progress: bool = True,
    describe: Callable[[list[dict]], str] | None = None,
    min_batch: int | None = None,
    policy: FailurePolicy | None = None,
    store: Any = None,
) -> list[dict]:
    """Run ``nsim`` replicates at every design point; records in (point, replicate) order.

    ``store`` (a :class:`~glmmsim.analysis.checkpoint.Checkpoint`) supplies the replicates
    a previous run finished and keeps every batch as it completes.
    """
    # every replicate leaves a record: their number is budgeted before any is run
    check_limit(int(nsim) * len(jobs), "max_replicates", f"{nsim:,} replicates x {len(jobs)} design point(s)", "nsim")
    policy = policy or FailurePolicy()
    earlier = store.load() if store is not None else {}
    ex = resolve_executor(executor)
    try:
        workers = _workers(ex)
        rows = max(len(job.conditions) for job in jobs)
        size = batch_size(nsim * len(jobs), workers, rows=rows, **({"minimum": min_batch} if min_batch else {}))
        size = min(size, nsim)
        tasks = [Task(job, part) for job in jobs for part in _remaining(job.point, nsim, size, earlier)]
        done: list[dict] = [rec for key, rec in sorted(earlier.items()) if key[1] < nsim]
        watch = _FailureWatch(jobs, nsim, policy)
        watch.add(done, done)
        with Progress(nsim * len(jobs), progress, describe) as bar:
            if done:  # replicates a checkpoint already holds
                bar.update(done, done)
            for records in ex.map(run_task, tasks):
                if store is not None:
                    store.save(records)
                done.extend(records)
                bar.update(records, done)
                watch.add(records, done)
        return sorted(done, key=lambda rec: (rec["point"], rec["replicate"]))
    finally:
        close = getattr(ex, "close", None)
        if ex is not executor and callable(close):
            close()


def _remaining(point: int, nsim: int, size: int, earlier: dict) -> list[tuple[int, ...]]:
    """The replicates of ``point`` not yet run, in batches of at most ``size`` consecutive ones."""
    todo = [r for r in range(nsim) if (point, r) not in earlier]
    if not earlier:
        return [tuple(b) for b in batches(nsim, size)]
    out: list[tuple[int, ...]] = []
    for r in todo:
        if out and len(out[-1]) < size and out[-1][-1] == r - 1:
            out[-1] = (*out[-1], r)
        else:
            out.append((r,))
    return out


def _workers(ex: Any) -> int:
    """How many tasks run at once: the executor's ``workers``, or a Dask client's thread count."""
    n = getattr(ex, "workers", None)
    if n is None and hasattr(ex, "client"):
        try:
            n = sum(ex.client.nthreads().values())
        except Exception:  # noqa: BLE001 - a Dask call that only sizes batches: fall back to 1 worker
            n = None
    return max(1, int(n or 1))


def new_token() -> str:
    """A study's identity in the workers' caches."""
    return uuid.uuid4().hex


