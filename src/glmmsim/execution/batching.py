"""Cutting a study's replicates into tasks.

A task has a fixed cost (pickling, scheduling: about 4 ms on Dask, less on a local pool)
and a replicate costs a fraction of a millisecond to a few milliseconds of simulation plus
its fit, so a task carries many replicates: at least ``minimum`` (100 by default: the batched
engines draw and fit a task's replicates together, and a power replicate of the standard
crossed model costs ~18% less in tasks of 100 than of 50), and enough tasks per worker that
the workers finish together. When there are few replicates, they are split evenly over
the workers instead, so that every worker has something to do. A task's responses are held
together, so with ``rows`` given a task holds at most ``TASK_ENTRIES`` of them (rows x
replicates). A replicate's numbers do not depend on its task, so none of this changes a result.

Examples
--------
>>> batch_size(1000, workers=2)
100
>>> batch_size(1000, workers=1)
100
>>> batch_size(60, workers=4)
15
>>> batch_size(1000, workers=1, rows=1_000_000)  # a million rows a replicate: 16 a task
16
>>> [len(b) for b in batches(120, 50)]
[50, 50, 20]
"""

from __future__ import annotations

import math

from ..errors import ParameterError

__all__ = ["batch_size", "batches", "DEFAULT_MIN_BATCH", "TASK_ENTRIES"]

#: Fewest replicates in one task: smaller tasks would cost more in scheduling and per-call overhead than in work.
DEFAULT_MIN_BATCH = 100
#: Most response values (rows x replicates) one task holds: 128 MB of float64.
TASK_ENTRIES = 16_000_000
# a few tasks per worker, so a slow task at the end leaves little idle time
_TASKS_PER_WORKER = 8


def batch_size(total: int, workers: int, *, minimum: int = DEFAULT_MIN_BATCH, rows: int | None = None) -> int:
    """Replicates per task for ``total`` replicates on ``workers`` workers (of ``rows`` rows each, if known).

    Serially (one worker) tasks have no cost to spread, so the batch is ``minimum``: the
    progress bar then moves every ``minimum`` replicates.
    """
    if total < 1:
        raise ParameterError(f"the number of replicates must be >= 1; got {total}")
    if workers < 1 or minimum < 1:
        raise ParameterError(f"workers and the minimum batch must be >= 1; got {workers} and {minimum}")
    if workers == 1:
        size = min(total, minimum)
    elif total < minimum * workers:
        size = max(1, math.ceil(total / workers))
    else:
        size = max(minimum, math.ceil(total / (workers * _TASKS_PER_WORKER)))
    if rows:
        size = min(size, max(1, TASK_ENTRIES // rows))
    return size


def batches(total: int, size: int) -> list[range]:
    """The replicate numbers 0 to ``total - 1`` in consecutive ranges of ``size``."""
    if size < 1:
        raise ParameterError(f"batch size must be >= 1; got {size}")
    return [range(start, min(start + size, total)) for start in range(0, total, size)]
