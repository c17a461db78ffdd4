"""A Dask ``distributed`` executor: study batches as tasks on a cluster, results in task order.

:class:`DaskExecutor` implements the executor protocol of :mod:`glmmsim.execution`
(``.map(fn, tasks)`` yields ``fn(task)`` for every task, in task order; ``workers``;
``close()``) on a ``dask.distributed.Client``; ``resolve_executor(client)`` makes one.
Each task is one batch of replicates (the studies runner batches them: a Dask task
costs a few ms, so a task carries at least ~50 replicates). Results are gathered in
order, so a study gives the same table on a cluster as serially; on an error, an
interrupt or an early stop, the tasks not yet finished are cancelled.

Per-worker state (a bound model, a prepared fitter, one R process per worker) is kept
by :func:`glmmsim.execution.worker_cache`, a module-level cache: a Dask worker process
runs many tasks and builds that state once.

Examples
--------
>>> from distributed import Client, LocalCluster          # doctest: +SKIP
>>> with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, Client(cluster) as client:
...     list(DaskExecutor(client).map(abs, [-1, -2, 3]))   # doctest: +SKIP
[1, 2, 3]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from ..errors import InputTypeError
from ..execution.executors import BaseExecutor

__all__ = ["DaskExecutor", "is_dask_client"]

T = TypeVar("T")
R = TypeVar("R")


def is_dask_client(obj: object) -> bool:
    """Whether ``obj`` is a ``distributed.Client`` (checked without importing distributed)."""
    return any(
        cls.__name__ == "Client" and cls.__module__.split(".")[0] == "distributed" for cls in type(obj).__mro__
    )


class DaskExecutor(BaseExecutor):
    """Run tasks on a ``distributed.Client``, yielding results in task order.

    Parameters
    ----------
    client : distributed.Client
        A connected client (a ``LocalCluster``'s or a remote scheduler's); it is the
        caller's, so :meth:`close` leaves it running.
    """

    def __init__(self, client: Any) -> None:
        if not is_dask_client(client):
            raise InputTypeError(f"DaskExecutor needs a distributed.Client; got {type(client).__name__}")
        self.client = client

    @property
    def workers(self) -> int:
        """Tasks the cluster runs at once (its worker threads), used to size batches."""
        return max(1, sum(self.client.nthreads().values()))

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
