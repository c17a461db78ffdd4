"""The replicate runner: simulate, fit and record, batch by batch, on any executor.

Replicate ``r`` of every design point is seeded by ``SeedTree(seed).replicate(r)``: the
same population seed and noise seed at 20 subjects as at 40 (common random numbers).
Because random effects are keyed by level and the noise by the rows' identifying
columns, the 20-subject point's subjects and trials are exactly those of the 40-subject
point, so a power curve moves only because the design grows.

A failed fit is a row of data (its message in ``error``), never an exception that ends
the study; only set-up errors (an engine or R missing, a test the model has no
coefficient for) stop it, before or at its first batch.
"""

from __future__ import annotations

import sys
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..limits import check_limit
from ..errors import DataError, format_names
from ..execution import batch_size, batches, resolve_executor, worker_cache
from ._backends import bind, engine_error_types, prepare_fit
from .hypotheses import Hypothesis

__all__ = ["PointJob", "Task", "run_task", "run_study", "identifying_columns", "TEST_COLUMNS"]

TEST_COLUMNS = ["estimate", "se", "df", "statistic", "p"]
_LABEL_KINDS = "OSUbiu"  # object, str, unicode, bool, int, uint: columns that identify rather than measure


def identifying_columns(model: Any, conditions: pd.DataFrame) -> list[str]:
    """The columns that identify a row of the design: the noise key for common random numbers.

    The model's grouping columns and its label-like predictors (conditions, factors)
    come first; when they do not yet make every row unique, other label-like columns
    of the design (``trial``, ``rep``, ...) are added in design order.

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
    grouping = [c for cols in model.factor_columns.values() for c in cols]
    labels = [c for c in model.variables if c in conditions.columns and _is_label(conditions[c])]
    key = list(dict.fromkeys([*grouping, *labels]))
    if not conditions.duplicated(subset=key).any():
        return key
    for col in conditions.columns:
        if col in key or not _is_label(conditions[col]):
            continue
        key.append(col)
        if not conditions.duplicated(subset=key).any():
            return key
    first = conditions.index[conditions.duplicated(subset=key)][0]
    raise DataError(
        f"the design's rows are not identified by their label columns {format_names(key)} (row {first!r} "
        f"repeats another): add a trial or repetition column, or pass key=[columns] naming columns that "
        f"identify every row"
    )


def _is_label(series: pd.Series) -> bool:
    return isinstance(series.dtype, pd.CategoricalDtype) or series.dtype.kind in _LABEL_KINDS or series.dtype == "string"


@dataclass(frozen=True)
class PointJob:
    """Everything a worker needs for one design point (pickled into each of its tasks)."""

    token: str
    point: int
    model: Any
    conditions: pd.DataFrame
    key: tuple[str, ...] | None
    fit_formula: str
    fit_kwargs: dict
    hypotheses: tuple[Hypothesis, ...]
    record: str  # "tests" (power) or "parameters" (recovery)
    tree: Any
    level: float = 0.95


@dataclass(frozen=True)
class Task:
    """One batch: replicates of one design point."""

    job: PointJob
    replicates: range


class _PointState:
    """What a worker builds once per design point: the bound model and the prepared fitter."""

    def __init__(self, job: PointJob) -> None:
        self.bound = bind(job.model, job.conditions, list(job.key) if job.key else None)
        self.fitter = prepare_fit(job.fit_formula, job.conditions, **job.fit_kwargs)

    def close(self) -> None:
        close = getattr(self.fitter, "close", None)
        if callable(close):
            close()


def run_task(task: Task) -> list[dict]:
    """Run one batch; returns one record per replicate (module-level, so it pickles)."""
    job = task.job
    state = worker_cache((job.token, job.point), lambda: _PointState(job))
    return [_replicate(job, state, r) for r in task.replicates]


def _replicate(job: PointJob, state: _PointState, r: int) -> dict:
    seeds = job.tree.replicate(r)
    # a simulation error is a set-up problem (it would hit every replicate): let it stop the study
    y = state.bound.simulate_response(seeds.noise, population=seeds.population)
    record: dict[str, Any] = {"point": job.point, "replicate": r}
    fatal = engine_error_types()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = state.fitter.fit(y)
    except fatal:
        raise
    except Exception as exc:  # noqa: BLE001 - a failed fit is data, whatever the engine raised
        record.update(converged=False, singular=np.nan, warnings="", error=_message(exc))
        return record
    notes = [*map(str, getattr(res, "warnings", []) or []), *(str(w.message) for w in caught)]
    record.update(
        converged=bool(getattr(res, "converged", True)),
        singular=bool(getattr(res, "singular", False)),
        warnings="; ".join(dict.fromkeys(" ".join(n.split()) for n in notes)),
        error="",
        engine=str(getattr(res, "engine", "") or ""),
        engine_version=str(getattr(res, "engine_version", "") or ""),
    )
    if job.record == "tests":
        record["tests"] = [_test(res, h, fatal) for h in job.hypotheses]
        return record
    try:
        record["parameters"] = _parameters(res)
    except fatal:
        raise
    # FitResult builds its tables lazily from the engine's raw output (any registered engine's):
    # a malformed one fails here, and makes this replicate a failed one rather than end the study
    except Exception as exc:  # noqa: BLE001
        record.update(converged=False, error=_message(exc))
    return record


def _test(res: Any, h: Hypothesis, fatal: tuple[type, ...]) -> dict:
    target = h.coefficients[0] if len(h.coefficients) == 1 else list(h.coefficients)
    try:
        t = res.test(target, method=h.method)
    except fatal:
        raise
    except Exception as exc:  # noqa: BLE001 - a test that cannot be computed on this fit is data
        return {**dict.fromkeys(TEST_COLUMNS, np.nan), "error": _message(exc)}
    return {c: _float(getattr(t, c, np.nan)) for c in TEST_COLUMNS} | {"error": ""}


def _parameters(res: Any) -> list[tuple]:
    """Every estimated parameter as ``(kind, factor, names, estimate, se, df)`` (se, df NaN where none)."""
    nan = np.nan
    out: list[tuple] = []
    # the FitResult's arrays, not its .fixed DataFrame (which would double a small fit's time): this
    # runs on every replicate of a recovery study
    estimates, ses, dfs = res._columns[:3]
    for name, est, se, df in zip(res._design.fixed_names, estimates, ses, dfs):
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


def run_study(
    jobs: Sequence[PointJob],
    nsim: int,
    *,
    executor: Any = None,
    progress: bool = True,
    describe: Callable[[list[dict]], str] | None = None,
    min_batch: int | None = None,
) -> list[dict]:
    """Run ``nsim`` replicates at every design point; records in (point, replicate) order."""
    # every replicate leaves a record: their number is budgeted before any is run
    check_limit(int(nsim) * len(jobs), "max_replicates", f"{nsim:,} replicates x {len(jobs)} design point(s)", "nsim")
    ex = resolve_executor(executor)
    try:
        workers = _workers(ex)
        size = batch_size(nsim * len(jobs), workers, **({"minimum": min_batch} if min_batch else {}))
        size = min(size, nsim)
        tasks = [Task(job, rng) for job in jobs for rng in batches(nsim, size)]
        done: list[dict] = []
        with Progress(nsim * len(jobs), progress, describe) as bar:
            for records in ex.map(run_task, tasks):
                done.extend(records)
                bar.update(records, done)
        return done
    finally:
        close = getattr(ex, "close", None)
        if ex is not executor and callable(close):
            close()


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


def check_point(job: PointJob) -> None:
    """Bind the model to the point's design in this process, so that bad input fails before any work."""
    bind(job.model, job.conditions, list(job.key) if job.key else None)
