"""Cutting a study's replicates into tasks.

A task has a fixed cost (pickling, scheduling: about 4 ms on Dask, less on a local pool)
and a replicate costs a few milliseconds of simulation plus its fit, so a task carries
many replicates: at least ``minimum`` (50 by default), and enough tasks per worker that
the workers finish together. When there are few replicates, they are split evenly over
the workers instead, so that every worker has something to do.

Examples
--------
>>> batch_size(1000, workers=2)
63
>>> batch_size(1000, workers=1)
50
>>> batch_size(60, workers=4)
15
>>> [len(b) for b in batches(120, 50)]
[50, 50, 20]
"""

from __future__ import annotations

import math

from ..errors import ParameterError

__all__ = ["batch_size", "batches", "DEFAULT_MIN_BATCH"]

#: Fewest replicates in one task: smaller tasks would cost more in scheduling than in work.
DEFAULT_MIN_BATCH = 50
# a few tasks per worker, so a slow task at the end leaves little idle time
_TASKS_PER_WORKER = 8


def batch_size(total: int, workers: int, *, minimum: int = DEFAULT_MIN_BATCH) -> int:
    """Replicates per task for ``total`` replicates on ``workers`` workers.

    Serially (one worker) tasks have no cost to spread, so the batch is ``minimum``: the
    progress bar then moves every ``minimum`` replicates.
    """
    if total < 1:
        raise ParameterError(f"the number of replicates must be >= 1; got {total}")
    if workers < 1 or minimum < 1:
        raise ParameterError(f"workers and the minimum batch must be >= 1; got {workers} and {minimum}")
    if workers == 1:
        return min(total, minimum)
    if total < minimum * workers:
        return max(1, math.ceil(total / workers))
    return max(minimum, math.ceil(total / (workers * _TASKS_PER_WORKER)))


def batches(total: int, size: int) -> list[range]:
    """The replicate numbers 0 to ``total - 1`` in consecutive ranges of ``size``."""
    if size < 1:
        raise ParameterError(f"batch size must be >= 1; got {size}")
    return [range(start, min(start + size, total)) for start in range(0, total, size)]
