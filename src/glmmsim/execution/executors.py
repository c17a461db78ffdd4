"""Executors: run a picklable function over a list of tasks, serially or on a pool, in task order.

A study (power analysis, parameter recovery) cuts its replicates into batches and hands
them to an executor. Whatever runs the batches, every replicate is seeded by its
(design point, replicate) address in the seed tree, so the results are the same on
every executor; the executor only decides where the work happens.

Examples
--------
>>> from operator import neg
>>> with resolve_executor(None) as ex:
...     list(ex.map(neg, [1, 2, 3]))
[-1, -2, -3]
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import multiprocessing
import numbers
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar, runtime_checkable

from ..errors import InputTypeError, ParameterError, WorkerLostError, did_you_mean

__all__ = [
    "Executor",
    "BaseExecutor",
    "SerialExecutor",
    "FuturesExecutor",
    "ProcessExecutor",
    "ExecutorLike",
    "resolve_executor",
    "available_cores",
]

T = TypeVar("T")
R = TypeVar("R")


@runtime_checkable
class Executor(Protocol):
    """What a study needs from an executor.

    ``map(fn, tasks)`` yields ``fn(task)`` for every task **in task order** (whatever
    order they finish in); ``fn`` is a module-level function (or a ``functools.partial``
    of one) and the tasks are picklable. ``workers`` is how many tasks run at once, used
    to size batches. ``close()`` frees what the executor owns (a pool it started); an
    executor the caller passed in is left running.
    """

    workers: int

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]: ...

    def close(self) -> None: ...


class BaseExecutor:
    """Context-manager plumbing shared by the executors of this module."""

    workers: int = 1

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        """Nothing to free by default."""

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SerialExecutor(BaseExecutor):
    """Run every task in this process, one after the other (the default)."""

    workers = 1

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]:
        for task in tasks:
            yield fn(task)

    def __repr__(self) -> str:
        return "SerialExecutor()"


class FuturesExecutor(BaseExecutor):
    """Adapter for any :class:`concurrent.futures.Executor` (thread or process pool).

    Tasks are submitted a few at a time (a window of ``2 * workers + 2``), so results can
    be consumed, and a progress bar moved, while later tasks run, and memory stays
    bounded for long task lists. Results come back in task order. When a task raises,
    the tasks not yet started are cancelled and the exception propagates.

    A process pool whose worker dies (killed, out of memory) is broken: every task not
    finished fails with ``BrokenProcessPool``. A pool this executor owns is then
    started again and the unfinished tasks resubmitted, in order (a task is a pure
    function of its arguments, so its result is the same); a task that was running
    in ``retries + 1`` broken pools, or a pool the caller owns, gives a
    :class:`~glmmsim.errors.WorkerLostError` naming the task (``str(task)``).

    Parameters
    ----------
    executor : concurrent.futures.Executor
        The pool to submit to.
    workers : int, optional
        How many tasks it runs at once (read from the pool when omitted).
    owned : bool, default False
        Shut the pool down on :meth:`close` (true for pools ``resolve_executor`` starts).
    restart : callable, optional
        Makes a new pool to replace a broken one (pools this executor owns).
    retries : int
        How many broken pools a task may be running in before it is reported.
    """

    def __init__(self, executor: cf.Executor, workers: int | None = None, *, owned: bool = False,
                 restart: Callable[[], cf.Executor] | None = None, retries: int = 2) -> None:
        self.executor = executor
        # concurrent.futures keeps the size private; every stdlib pool has this attribute
        self.workers = int(workers or getattr(executor, "_max_workers", None) or available_cores())
        self.owned = owned
        self.restart = restart
        self.retries = retries

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]:
        window = 2 * self.workers + 2
        pending: collections.deque[tuple[T, cf.Future]] = collections.deque()
        attempts: dict[int, int] = collections.defaultdict(int)
        todo = iter(tasks)
        try:
            for task in todo:
                pending.append((task, self.executor.submit(fn, task)))
                if len(pending) >= window:
                    yield self._next(fn, pending, attempts)
            while pending:
                yield self._next(fn, pending, attempts)
        finally:
            # reached on an error, on an early stop by the consumer and at the normal end
            for _, future in pending:
                future.cancel()

    def _next(self, fn: Callable[[T], R], pending: collections.deque, attempts: dict[int, int]) -> R:
        """The first pending task's result; a broken pool is restarted and the unfinished tasks resubmitted."""
        while True:
            task, future = pending[0]
            try:
                result = future.result()
            except cf.process.BrokenProcessPool:
                self._recover(fn, pending, attempts)
                continue
            pending.popleft()
            return result

    def _recover(self, fn: Callable[[T], R], pending: collections.deque, attempts: dict[int, int]) -> None:
        unfinished = [(task, future) for task, future in pending if not _finished_ok(future)]
        for task, future in unfinished:
            attempts[id(task)] += 1
            if self.restart is None or not self.owned or attempts[id(task)] > self.retries:
                tried = attempts[id(task)]
                raise WorkerLostError(
                    f"a worker process died (killed or out of memory) while running {task}"
                    + (f", in {tried} attempts" if self.restart is not None and self.owned
                       else "; the pool is the caller's, so it was not restarted"),
                    batch=str(task), attempts=tried,
                ) from None
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.executor = self.restart()
        resubmitted = {id(task): self.executor.submit(fn, task) for task, _ in unfinished}
        for i, (task, future) in enumerate(pending):
            if id(task) in resubmitted:
                pending[i] = (task, resubmitted[id(task)])

    def close(self) -> None:
        if self.owned:
            self.executor.shutdown(wait=True, cancel_futures=True)

    def __repr__(self) -> str:
        return f"FuturesExecutor({type(self.executor).__name__}, workers={self.workers})"


class ProcessExecutor(FuturesExecutor):
    """A process pool of ``workers`` processes, started now and shut down on :meth:`close`.

    Workers are forked where the platform allows it and this process runs a single
    thread (a fork copies the already-imported modules, so workers start in
    milliseconds); otherwise they come from a fork server that imports glmmsim once.
    """

    def __init__(self, workers: int | None = None) -> None:
        n = int(workers) if workers is not None else available_cores()
        context = _start_context()
        super().__init__(_started_pool(n, context), n, owned=True, restart=lambda: _started_pool(n, context))

    def __repr__(self) -> str:
        return f"ProcessExecutor(workers={self.workers})"


def _finished_ok(future: cf.Future) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


def _started_pool(n: int, context: multiprocessing.context.BaseContext) -> cf.ProcessPoolExecutor:
    pool = cf.ProcessPoolExecutor(max_workers=n, mp_context=context)
    # start every worker before anything else (a progress bar's monitor thread) runs
    for future in [pool.submit(os.getpid) for _ in range(n)]:
        future.result()
    return pool


def _start_context() -> multiprocessing.context.BaseContext:
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["glmmsim.analysis"])
        return ctx
    return multiprocessing.get_context("spawn")


def available_cores() -> int:
    """Cores this process may run on (the CPU affinity where the platform reports it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


ExecutorLike = Any  # None | str | int | concurrent.futures.Executor | Executor | dask.distributed.Client

_CHOICES = (
    "None or 'serial' (this process), 'processes' (a process pool on every core), an int n (a pool of "
    "n processes), a concurrent.futures.Executor, or a dask.distributed.Client"
)


def _is_dask_client(obj: object) -> bool:
    # checked by name so that dask is imported only when a Client is passed
    return any(
        cls.__name__ == "Client" and cls.__module__.split(".")[0] == "distributed" for cls in type(obj).__mro__
    )


def resolve_executor(executor: ExecutorLike = None) -> BaseExecutor | Executor:
    """The executor a study runs its batches on.

    Parameters
    ----------
    executor : None, str, int, concurrent.futures.Executor, Executor or dask.distributed.Client
        ``None`` or ``"serial"``: this process. ``"processes"``: a pool of one process per
        available core; an int ``n``: a pool of ``n`` processes (pools started here are
        shut down when the returned executor is closed). A
        :class:`concurrent.futures.Executor` is used as it is (and left running), as is an
        object with ``map`` and ``workers`` (the :class:`Executor` protocol). A
        ``dask.distributed.Client`` runs the batches on its cluster.

    Returns
    -------
    Executor
        Use it as a context manager (``with resolve_executor(x) as ex: ...``) so that a
        pool it started is shut down.

    Examples
    --------
    >>> resolve_executor("serial")
    SerialExecutor()
    >>> resolve_executor("threads")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    glmmsim.errors.InputTypeError: executor 'threads' is not one of: None or 'serial' ...
    """
    if executor is None or (isinstance(executor, str) and executor == "serial"):
        return SerialExecutor()
    if isinstance(executor, str):
        if executor == "processes":
            return ProcessExecutor()
        raise InputTypeError(
            f"executor {executor!r} is not one of: {_CHOICES}.{did_you_mean(executor, ('serial', 'processes'))}"
        )
    if isinstance(executor, numbers.Integral) and not isinstance(executor, bool):
        if int(executor) < 1:
            raise ParameterError(f"executor={int(executor)}: a process pool needs at least 1 worker")
        return ProcessExecutor(int(executor))
    if isinstance(executor, cf.Executor):
        return FuturesExecutor(executor)
    if _is_dask_client(executor):
        try:
            # layering: the Dask executor sits in the Dask package above execution; imported for a Client only
            from ..dask.executor import DaskExecutor
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise InputTypeError(
                f"running on a dask.distributed.Client needs the dask extra (pip install 'glmmsim[dask]'): {exc}"
            ) from None
        return DaskExecutor(executor)
    if isinstance(executor, Executor):
        return executor
    raise InputTypeError(f"executor of type {type(executor).__name__} is not one of: {_CHOICES}")
