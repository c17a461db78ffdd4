"""The executor protocol: every executor yields results in task order; batches cover every replicate once."""

from __future__ import annotations

import concurrent.futures as cf
import os
import time

import pytest

from glmmsim.errors import InputTypeError, ParameterError
from glmmsim.execution import (
    FuturesExecutor,
    ProcessExecutor,
    SerialExecutor,
    TASK_ENTRIES,
    batch_size,
    batches,
    clear_worker_cache,
    resolve_executor,
    worker_cache,
)


def _slow_square(x: int) -> int:
    # later tasks finish first: order must come from the task list, not from completion
    time.sleep(0.02 * (5 - x % 5))
    return x * x


def _fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("task 3 failed")
    return x


def _pid(_: int) -> int:
    return os.getpid()


def test_resolve_executor_choices():
    assert isinstance(resolve_executor(None), SerialExecutor)
    assert isinstance(resolve_executor("serial"), SerialExecutor)
    with resolve_executor(2) as ex:
        assert isinstance(ex, ProcessExecutor) and ex.workers == 2
    with cf.ThreadPoolExecutor(3) as pool:
        ex = resolve_executor(pool)
        assert isinstance(ex, FuturesExecutor) and ex.workers == 3
        ex.close()  # a pool the caller passed stays usable
        assert pool.submit(abs, -1).result() == 1
    for bad, err in [("threads", InputTypeError), (0, ParameterError), (True, InputTypeError), (1.5, InputTypeError)]:
        with pytest.raises(err):
            resolve_executor(bad)


def test_a_misspelt_executor_name_suggests_the_right_one():
    with pytest.raises(InputTypeError, match="Did you mean 'processes'\\?"):
        resolve_executor("process")


@pytest.mark.parametrize("executor", [None, 2, "threads"])
def test_map_yields_in_task_order(executor):
    tasks = list(range(12))
    if executor == "threads":
        with cf.ThreadPoolExecutor(4) as pool:
            out = list(resolve_executor(pool).map(_slow_square, tasks))
    else:
        with resolve_executor(executor) as ex:
            out = list(ex.map(_slow_square, tasks))
    assert out == [x * x for x in tasks]


def test_process_pool_uses_several_processes_and_reraises():
    with resolve_executor(2) as ex:
        pids = set(ex.map(_pid, range(8)))
        assert os.getpid() not in pids and len(pids) >= 1
        with pytest.raises(ValueError, match="task 3 failed"):
            list(ex.map(_fail_on_three, range(6)))


@pytest.mark.parametrize(
    "total, workers, expected",
    [(1000, 1, 100), (1000, 2, 100), (10_000, 2, 625), (60, 4, 15), (7, 2, 4), (1, 8, 1), (100, 2, 50),
     (300, 2, 100)],
)
def test_batch_size(total, workers, expected):
    assert batch_size(total, workers) == expected


@pytest.mark.parametrize("rows, expected", [(1_200, 625), (100_800, 158), (16_000_001, 1)])
def test_a_task_holds_at_most_task_entries_response_values(rows, expected):
    assert batch_size(10_000, 2, rows=rows) == expected
    assert expected * rows <= TASK_ENTRIES or expected == 1


def test_batches_cover_every_replicate_once():
    for total, size in [(1000, 63), (7, 4), (50, 50), (1, 1)]:
        covered = [r for b in batches(total, size) for r in b]
        assert covered == list(range(total))
        assert all(len(b) <= size for b in batches(total, size))
    with pytest.raises(ParameterError):
        batch_size(0, 2)


def test_worker_cache_builds_once_and_evicts_oldest():
    clear_worker_cache()
    built = []
    for _ in range(3):
        worker_cache(("study", 0), lambda: built.append(0) or object())
    assert built == [0]

    class Closable:
        closed = False

        def close(self):
            self.closed = True

    first = worker_cache(("study", 1), Closable, maxsize=2)
    worker_cache(("study", 2), Closable, maxsize=2)
    worker_cache(("study", 3), Closable, maxsize=2)
    assert first.closed  # least recently used, dropped and closed
    clear_worker_cache("study")
