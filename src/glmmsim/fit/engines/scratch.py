"""Scratch arrays: per-thread buffers reused for the large temporaries of batched numpy passes.

A batched pass over many responses makes temporaries of a few hundred KB to a few MB. Whether
glibc serves such an array from its heap or from fresh ``mmap`` pages (zeroed, one page fault
per 4 KB) depends on what the process freed before, so the same call can cost twice as much
from one run to the next: a batched deviance evaluation of 64 responses of the standard crossed
model took ~450 faults and 5.7 ms, 2.6 ms with its temporaries kept. A :class:`Scratch` keeps
one array per name and thread and hands out views of it; the caller uses it only for
temporaries that do not outlive the pass.
"""

from __future__ import annotations

import math
import threading

import numpy as np

__all__ = ["SCRATCH_BYTES", "Scratch"]

#: Largest array (bytes) a thread keeps between calls: larger ones are made anew each time (their
#: arithmetic outweighs the page faults), so a thread holds a few MB at most after a large design.
SCRATCH_BYTES = 2 << 20


class Scratch(threading.local):
    """Named float arrays reused by every call of this thread (threads working at once do not share).

    Examples
    --------
    >>> scratch = Scratch()
    >>> a = scratch.get("u", (10, 5, 5))
    >>> b = scratch.get("u", (7, 5, 5))  # a smaller batch: the same memory
    >>> bool(np.shares_memory(a, b)), b.shape
    (True, (7, 5, 5))
    """

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A C-contiguous float array of ``shape``, contents undefined: the same memory on every call
        of this thread when it is at most ``SCRATCH_BYTES``, else a new array."""
        if 8 * math.prod(shape) > SCRATCH_BYTES:  # math.prod: np.prod of a tuple costs more than the lookup
            return np.empty(shape)
        buf = self.__dict__.get(name)
        if buf is None or buf.shape[1:] != shape[1:] or buf.shape[0] < shape[0]:
            buf = np.empty(shape)
            self.__dict__[name] = buf
        return buf[: shape[0]]
