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

from ..errors import InputTypeError, ParameterError, did_you_mean

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

    Parameters
    ----------
    executor : concurrent.futures.Executor
        The pool to submit to.
    workers : int, optional
        How many tasks it runs at once (read from the pool when omitted).
    owned : bool, default False
        Shut the pool down on :meth:`close` (true for pools ``resolve_executor`` starts).
    """

    def __init__(self, executor: cf.Executor, workers: int | None = None, *, owned: bool = False) -> None:
        self.executor = executor
        # concurrent.futures keeps the size private; every stdlib pool has this attribute
        self.workers = int(workers or getattr(executor, "_max_workers", None) or available_cores())
        self.owned = owned

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]:
        window = 2 * self.workers + 2
        pending: collections.deque[cf.Future] = collections.deque()
        todo = iter(tasks)
        try:
            for task in todo:
                pending.append(self.executor.submit(fn, task))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            # reached on an error, on an early stop by the consumer and at the normal end
            for future in pending:
                future.cancel()

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
        pool = cf.ProcessPoolExecutor(max_workers=n, mp_context=_start_context())
        super().__init__(pool, n, owned=True)
        # start every worker before anything else (a progress bar's monitor thread) runs
        for future in [pool.submit(os.getpid) for _ in range(n)]:
            future.result()

    def __repr__(self) -> str:
        return f"ProcessExecutor(workers={self.workers})"


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
            from .dask import DaskExecutor
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise InputTypeError(
                f"running on a dask.distributed.Client needs the dask extra (pip install 'glmmsim[dask]'): {exc}"
            ) from None
        return DaskExecutor(executor)
    if isinstance(executor, Executor):
        return executor
    raise InputTypeError(f"executor of type {type(executor).__name__} is not one of: {_CHOICES}")
