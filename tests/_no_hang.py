"""A guard for tests that would block forever on a regression (opening a FIFO waits for a writer)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def no_hang(seconds: int = 30) -> Iterator[None]:
    """Fail the test instead of blocking when the block takes more than ``seconds`` (SIGALRM)."""

    def expired(signum, frame):
        raise AssertionError("blocked: a FIFO was opened")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
