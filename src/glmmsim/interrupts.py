"""Ctrl-C and SIGTERM that are never lost, even when they land in a finalizer.

Python raises ``KeyboardInterrupt`` at whatever bytecode runs when the signal arrives. If that
is an object's ``__del__`` or a weakref callback (a progress bar, a pyarrow buffer being freed),
the exception is printed as "Exception ignored" and discarded, and the command would carry on
and publish its output as if nothing had happened. The handlers here also *record* the
signal; :func:`raise_if_interrupted`, called before an output is published, raises it again.

Examples
--------
>>> with catching():
...     raise_if_interrupted()  # nothing received: returns
>>> received() is None
True
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_received: int | None = None


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so partial outputs are removed as after Ctrl-C."""


def received() -> int | None:
    """The signal number recorded since :func:`catching` began, or None."""
    return _received


def raise_if_interrupted() -> None:
    """Raise the recorded interruption again (``Terminated`` or ``KeyboardInterrupt``), if any."""
    if _received == signal.SIGTERM:
        raise Terminated()
    if _received is not None:
        raise KeyboardInterrupt()


def _handler(pid: int):
    def handle(signum: int, frame: object) -> None:
        global _received
        if os.getpid() != pid:  # a forked worker inherited the handler: end as the signal would
            if signum == signal.SIGTERM:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.kill(os.getpid(), signal.SIGTERM)
                return
            raise KeyboardInterrupt()
        _received = signum
        raise_if_interrupted()

    return handle


@contextmanager
def catching() -> Iterator[None]:
    """Record SIGINT and SIGTERM (raised as ``KeyboardInterrupt`` / :class:`Terminated`) in the block.

    Only the main thread can install signal handlers; elsewhere the block changes nothing. A
    signal the process ignores stays ignored. The previous handlers are put back afterwards.
    """
    global _received
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received = None
    handler = _handler(os.getpid())
    # an ignored signal stays ignored (a job started in the background, or under nohup, is not
    # meant to be stopped by the terminal's Ctrl-C), as Python itself leaves it at start-up
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)
                if signal.getsignal(sig) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        _received = None
