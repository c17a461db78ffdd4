"""Per-thread scratch arrays of the batched passes (glmmsim.fit.engines.scratch)."""

from __future__ import annotations

import threading

import numpy as np

from glmmsim.fit.engines import scratch as scratch_module
from glmmsim.fit.engines.scratch import Scratch


def test_an_array_is_reused_for_a_smaller_batch_and_grown_for_a_larger_one():
    scratch = Scratch()
    a = scratch.get("u", (10, 5, 5))
    assert np.shares_memory(scratch.get("u", (7, 5, 5)), a)
    grown = scratch.get("u", (12, 5, 5))
    assert grown.shape == (12, 5, 5) and not np.shares_memory(grown, a)
    assert scratch.get("u", (12, 4, 5)).shape == (12, 4, 5)  # another shape: a new array
    assert not np.shares_memory(scratch.get("g", (10, 5, 5)), scratch.get("u", (10, 5, 5)))


def test_arrays_above_the_limit_are_not_kept():
    scratch = Scratch()
    columns = scratch_module.SCRATCH_BYTES // 8 + 1
    big = scratch.get("u", (1, columns))
    assert big.shape == (1, columns) and not np.shares_memory(big, scratch.get("u", (1, columns)))
    small = scratch.get("u", (2, 3))
    assert np.shares_memory(small, scratch.get("u", (2, 3)))


def test_each_thread_has_its_own_arrays():
    scratch = Scratch()
    mine = scratch.get("u", (4, 4))
    theirs = []
    thread = threading.Thread(target=lambda: theirs.append(scratch.get("u", (4, 4))))
    thread.start()
    thread.join()
    assert not np.shares_memory(mine, theirs[0])
