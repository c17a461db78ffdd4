"""A power run in the background: point by point, batch by batch, cancellable, reported as it goes.

The run is the command line's: the spec is written to a file and read back with
:func:`glmmsim.study.load_spec`, each point of the curve is the spec with its ``--along``
values set, and :func:`glmmsim.power` runs it with the spec's seed. Common random
numbers make every point's replicates those :func:`glmmsim.power_curve` (and so
``glmmsim power SPEC``) draws, so the table is the command's, number for number.

The replicates run in worker processes (a forkserver pool), so the page's process only
waits: the page stays responsive, and two runs (two tabs) proceed side by side. The
executor hands batches to the pool one window at a time and reports every batch to a
:class:`RunState` (the running estimate, the finished points); :meth:`RunState.cancel`
stops handing out batches and drops the queued ones.

Examples
--------
>>> state = RunState(total=10)
>>> state.snapshot()["status"]
'starting'
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import math
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..analysis import power
from ..errors import GlmmsimError
from ..execution import BaseExecutor

__all__ = ["RunState", "RunCancelled", "RunOutcome", "run_power", "curve_points", "along_columns", "start_pool"]

TABLE_COLUMNS = ["power", "ci_low", "ci_high", "nsim", "failed", "singular", "warned"]


class RunCancelled(Exception):
    """The user pressed Cancel: the run stops between batches."""


@dataclass
class RunOutcome:
    """A finished (or cancelled) run: the command's table, simulations and per-point results."""

    table: pd.DataFrame
    simulations: pd.DataFrame
    along: list[str]
    tests: list[str]
    results: list[Any]  # PowerResult per point
    target: float
    cancelled: bool = False

    def smallest(self, test: str | None = None) -> pd.Series | None:
        """The first point whose power reaches the target (as :meth:`PowerCurve.smallest`)."""
        rows = self.table if "test" not in self.table else self.table[self.table["test"] == (test or self.tests[0])]
        hit = rows[rows["power"] >= self.target]
        return None if hit.empty or not self.along else hit.astype(object).iloc[0]


@dataclass
class RunState:
    """What the page shows of a run, written by the worker thread, read by the page (under a lock)."""

    total: int
    done: int = 0
    status: str = "starting"  # starting, running, done, cancelled, error
    message: str = ""
    estimate: str = ""
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    rows: list[dict] = field(default_factory=list)
    outcome: RunOutcome | None = None
    error: GlmmsimError | None = None
    version: int = 0
    _cancel: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _point_records: list[dict] = field(default_factory=list)

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def update(self, **changes: Any) -> None:
        with self._lock:
            for k, v in changes.items():
                setattr(self, k, v)
            self.version += 1

    def batch_done(self, records: list[dict], point_label: str, alpha: float) -> None:
        """A batch came back: count it and refresh the running estimate of the current point."""
        with self._lock:
            self.done += len(records)
            self._point_records.extend(records)
            ok = [r["tests"][0]["p"] for r in self._point_records
                  if r.get("tests") and r.get("converged") and not r.get("error") and np.isfinite(r["tests"][0]["p"])]
            if ok:
                share = sum(p < alpha for p in ok) / len(ok)
                self.estimate = f"{point_label}: power so far {share:.3f} ({len(ok)} fits)"
            self.status = "running"
            self.version += 1

    def point_done(self, rows: list[dict]) -> None:
        with self._lock:
            self.rows = [*self.rows, *rows]
            self._point_records = []
            self.version += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            end = self.finished if self.finished is not None else time.monotonic()
            return {"total": self.total, "done": self.done, "status": self.status, "message": self.message,
                    "estimate": self.estimate, "rows": list(self.rows), "outcome": self.outcome,
                    "error": self.error, "elapsed": end - self.started, "version": self.version}


class _WatchedExecutor(BaseExecutor):
    """Hands batches to a process pool a window at a time, reports each, and stops on cancel."""

    def __init__(self, pool: cf.Executor, workers: int, on_batch: Callable[[list[dict]], None],
                 cancelled: Callable[[], bool]) -> None:
        self.pool = pool
        self.workers = workers
        self.on_batch = on_batch
        self.cancelled = cancelled

    def map(self, fn: Callable, tasks: Iterable) -> Iterator:
        window = self.workers + 1
        pending: collections.deque[cf.Future] = collections.deque()
        todo = iter(tasks)
        try:
            for task in todo:
                self._check()
                pending.append(self.pool.submit(fn, task))
                if len(pending) >= window:
                    yield self._result(pending.popleft())
            while pending:
                yield self._result(pending.popleft())
        finally:
            for future in pending:
                future.cancel()

    def _check(self) -> None:
        if self.cancelled():
            raise RunCancelled()

    def _result(self, future: cf.Future) -> Any:
        while True:  # wait in short steps, so that a cancel is seen within a tenth of a second
            self._check()
            try:
                records = future.result(timeout=0.1)
            except cf.TimeoutError:
                continue
            self.on_batch(records)
            return records

    def close(self) -> None:
        """The pool belongs to the run, which shuts it down."""


def start_pool(workers: int) -> cf.ProcessPoolExecutor:
    """Worker processes from a fork server that imported glmmsim's studies once.

    Forking the page's process itself would copy a process with running threads (the web
    server's); a fork server is a clean, single-threaded parent. The workers run at a lower
    priority (nice 10) than the page.
    """
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if "forkserver" in methods:
        ctx.set_forkserver_preload(["glmmsim.analysis", "glmmsim.fit"])
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_yield_to_the_page)


def _yield_to_the_page() -> None:
    """Workers run at a lower priority, so that on a busy core the page's clicks are served first."""
    try:
        os.nice(10)
    except (AttributeError, OSError):  # pragma: no cover - a platform without nice
        pass


def along_columns(paths: Sequence[str]) -> dict[str, str]:
    """``design.subjects`` -> ``subjects``: the table's column names, as ``glmmsim power`` names them."""
    last = [p.split(".")[-1] for p in paths]
    return {p: (name if last.count(name) == 1 else p) for p, name in zip(paths, last)}


def curve_points(along: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every point of the grid, the first path varying slowest (as ``glmmsim power`` orders them)."""
    points: list[dict[str, Any]] = [{}]
    for path, values in along.items():
        points = [{**p, path: v} for p in points for v in values]
    return points


def run_power(spec_path: str, settings: Mapping[str, Any], state: RunState, *, workers: int = 1,
              pool: cf.Executor | None = None) -> RunOutcome:
    """Run the spec's power analysis point by point, reporting to ``state``; return the outcome.

    ``settings`` is the spec's ``power:`` section. A cancelled run returns the points
    finished so far (``cancelled=True``).
    """
    from ..study.spec import load_spec

    along: dict[str, list] = dict(settings.get("along") or {})
    points = curve_points(along)
    columns = along_columns(list(along))
    own_pool = pool is None
    pool = pool if pool is not None else start_pool(workers)
    results: list[Any] = []
    sims: list[pd.DataFrame] = []
    rows: list[dict] = []
    cancelled = False
    try:
        for values in points:
            label = ", ".join(f"{columns[p]} = {v}" for p, v in values.items()) or "power"
            study = load_spec(spec_path, overrides=[("--along", f"{p}={v}") for p, v in values.items()])
            alpha = float(settings.get("alpha", 0.05))
            executor = _WatchedExecutor(pool, workers, lambda recs, label=label: state.batch_done(recs, label, alpha),
                                        lambda: state.cancelled)
            res = power(study.model, study.conditions(), test=settings["test"], nsim=int(settings["nsim"]),
                        alpha=alpha, method=settings.get("method", "auto"), engine=settings.get("engine", "auto"),
                        fit_formula=settings.get("fit_formula"), seed=int(settings.get("seed", 1)),
                        executor=executor, progress=False, failures=settings.get("failures", "exclude"))
            results.append(res)
            point_rows = _rows(res, {columns[p]: v for p, v in values.items()})
            rows += point_rows
            state.point_done(point_rows)
            sim = res.simulations.copy()
            for i, (name, value) in enumerate({columns[p]: v for p, v in values.items()}.items()):
                sim.insert(i, name, value)
            sims.append(sim)
    except RunCancelled:
        cancelled = True
    finally:
        if own_pool:
            pool.shutdown(wait=False, cancel_futures=True)
    tests = results[0].tests if results else []
    table = _table(rows, list(columns.values()), len(tests) > 1)
    simulations = pd.concat(sims, ignore_index=True) if sims else pd.DataFrame()
    return RunOutcome(table, simulations, list(columns.values()), tests, results,
                      float(settings.get("target", 0.8)), cancelled)


def _rows(res: Any, values: Mapping[str, Any]) -> list[dict]:
    table = res.table.reset_index()
    if not values:  # one design: the command writes PowerResult.table as it is
        return table.to_dict("records")
    several = len(res.tests) > 1
    return [{**values, **({"test": r["test"]} if several else {}), **{c: r[c] for c in TABLE_COLUMNS}}
            for r in table.to_dict("records")]


def _table(rows: list[dict], along: list[str], several: bool) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame(columns=[*along, *(["test"] if several else []), *TABLE_COLUMNS])
    table = pd.DataFrame(rows)
    if along:  # as PowerCurve.table; one design keeps PowerResult.table as the command writes it
        table = table[[*along, *(["test"] if several else []), *TABLE_COLUMNS]]
        table["nsim"] = table["nsim"].astype(int)
    return table


def eta(state: Mapping[str, Any]) -> str:
    """Time left, from the pace so far (empty before the first batch)."""
    done, total, elapsed = state["done"], state["total"], state["elapsed"]
    if not done or done >= total:
        return ""
    left = elapsed / done * (total - done)
    return f"about {math.ceil(left)} s left"


def warm_up() -> None:
    """Start the fork server (it imports glmmsim's studies once), so the first run starts at once."""
    try:
        pool = start_pool(1)
        pool.submit(os.getpid).result()
        pool.shutdown()
    except Exception:  # noqa: BLE001 - only an optimisation: the first run starts it otherwise
        pass
