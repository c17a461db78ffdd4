"""Per-worker state: what a worker sets up once and reuses for every task it runs.

A study's tasks need a bound model and a prepared fitter per design point (for the lme4
engine, a long-lived R process). Building them costs more than a replicate, so each
worker process keeps them in a small module-level cache, keyed by the study's token and
the design point. The cache belongs to one process: after a fork the child starts with
an empty cache rather than sharing the parent's R processes.

Examples
--------
>>> calls = []
>>> worker_cache(("doc", 1), lambda: calls.append(1) or "state")
'state'
>>> worker_cache(("doc", 1), lambda: calls.append(1) or "state")
'state'
>>> len(calls)
1
>>> clear_worker_cache()
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

__all__ = ["worker_cache", "clear_worker_cache", "DEFAULT_CACHE_SIZE"]

T = TypeVar("T")

DEFAULT_CACHE_SIZE = 8
_entries: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()
_owner_pid: int | None = None


def _own_entries() -> collections.OrderedDict[Hashable, Any]:
    global _owner_pid
    if _owner_pid != os.getpid():
        # a forked child inherits the parent's dict: forget it, never close the parent's state
        _entries.clear()
        _owner_pid = os.getpid()
    return _entries


def worker_cache(key: Hashable, factory: Callable[[], T], *, maxsize: int = DEFAULT_CACHE_SIZE) -> T:
    """The value cached under ``key`` in this process, made by ``factory()`` on first use.

    At most ``maxsize`` entries are kept; the least recently used one is dropped first
    (and closed, when it has a ``close`` method).
    """
    entries = _own_entries()
    if key in entries:
        entries.move_to_end(key)
        return entries[key]
    value = factory()
    entries[key] = value
    while len(entries) > maxsize:
        _, old = entries.popitem(last=False)
        _close(old)
    return value


def clear_worker_cache(prefix: Hashable | None = None) -> None:
    """Drop (and close) this process's cached entries; only those whose key starts with ``prefix`` if given."""
    entries = _own_entries()
    for key in list(entries):
        if prefix is None or (isinstance(key, tuple) and key and key[0] == prefix):
            _close(entries.pop(key))


def _close(value: Any) -> None:
    close = getattr(value, "close", None)
    if callable(close):
        try:
            close()
        except Exception:  # noqa: BLE001 - freeing state must not break a study
            pass
