"""A Dask ``distributed`` executor: study batches as tasks on a cluster, results in task order.

:class:`DaskExecutor` implements the executor protocol of :mod:`glmmsim.execution`
(``.map(fn, tasks)`` yields ``fn(task)`` for every task, in task order) on a
``dask.distributed.Client``. Each task is one batch of replicates (the studies
runner batches them: a Dask task costs a few ms, so a task should carry at
least ~50 replicates). Results are gathered in order, so a study gives the
same table on a cluster as serially; on an error or an interrupt, the tasks
not yet finished are cancelled.

Per-worker state (a fitting engine set up once, e.g. one R process per worker)
lives in :func:`worker_local`, a module-level cache: every task a worker runs
sees the same object, built the first time a task asks for it.

Examples
--------
>>> from distributed import Client, LocalCluster          # doctest: +SKIP
>>> with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, Client(cluster) as client:
...     list(DaskExecutor(client).map(abs, [-1, -2, 3]))   # doctest: +SKIP
[1, 2, 3]
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any, TypeVar

__all__ = ["DaskExecutor", "is_dask_client", "worker_local"]

T = TypeVar("T")
R = TypeVar("R")

_LOCAL: dict[Hashable, Any] = {}
_LOCAL_LOCK = threading.Lock()


def worker_local(key: Hashable, factory: Callable[[], T]) -> T:
    """The object cached under ``key`` in this process, built by ``factory()`` on first use.

    A worker process keeps it for its lifetime: expensive state (an R session, a
    prepared fitter) is started once per worker, not once per task.

    Examples
    --------
    >>> worker_local("answer", lambda: 42), worker_local("answer", lambda: 0)
    (42, 42)
    """
    with _LOCAL_LOCK:  # threads of one worker must not build two copies
        if key not in _LOCAL:
            _LOCAL[key] = factory()
        return _LOCAL[key]


def is_dask_client(obj: object) -> bool:
    """Whether ``obj`` is a ``distributed.Client`` (checked without importing distributed)."""
    return type(obj).__name__ == "Client" and type(obj).__module__.split(".")[0] == "distributed"


class DaskExecutor:
    """Run tasks on a ``distributed.Client``, yielding results in task order.

    Parameters
    ----------
    client : distributed.Client
        A connected client (a ``LocalCluster``'s or a remote scheduler's).
    """

    def __init__(self, client: Any) -> None:
        if not is_dask_client(client):
            from ..errors import InputTypeError

            raise InputTypeError(f"DaskExecutor needs a distributed.Client; got {type(client).__name__}")
        self.client = client

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]:
        """Submit ``fn(task)`` for every task; yield the results in task order.

        ``fn`` and the tasks must be picklable (a module-level function, a
        ``functools.partial`` of one). An exception in a task is raised here, for
        the first failing task in order; the unfinished tasks are then cancelled,
        as they are when the caller stops early or is interrupted.
        """
        futures = self.client.map(fn, list(tasks), pure=False)
        return self._gather(futures)

    def _gather(self, futures: list) -> Iterator[Any]:
        done = 0
        try:
            for future in futures:
                yield future.result()
                future.release()  # results are handed over one by one: do not keep them on the cluster
                done += 1
        finally:  # error, KeyboardInterrupt or the caller closing the generator early
            pending = futures[done:]
            if pending:
                self.client.cancel(pending)

    def __repr__(self) -> str:
        return f"DaskExecutor({self.client!r})"
