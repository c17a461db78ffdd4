"""Where a study's batches run: serially, on a process pool or on a Dask cluster.

:func:`resolve_executor` turns what a user passes as ``executor=`` into an object with
``map(fn, tasks)`` (results in task order) and ``workers``; :func:`batch_size` and
:func:`batches` cut replicates into tasks; :func:`worker_cache` keeps per-worker state
(bound models, prepared fitters, R processes) across the tasks a worker runs. The Dask
executor lives in the Dask package (:mod:`glmmsim.dask`) and is imported only when a
``dask.distributed.Client`` is passed.
"""

from .batching import DEFAULT_MIN_BATCH, TASK_ENTRIES, batch_size, batches
from .cache import clear_worker_cache, worker_cache
from .executors import (
    BaseExecutor,
    Executor,
    FuturesExecutor,
    ProcessExecutor,
    SerialExecutor,
    available_cores,
    resolve_executor,
)

__all__ = [
    "Executor",
    "BaseExecutor",
    "SerialExecutor",
    "FuturesExecutor",
    "ProcessExecutor",
    "resolve_executor",
    "available_cores",
    "batch_size",
    "batches",
    "DEFAULT_MIN_BATCH",
    "TASK_ENTRIES",
    "worker_cache",
    "clear_worker_cache",
]
