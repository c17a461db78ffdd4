"""Executors: run independent tasks serially or in parallel, results in task order.

Placeholder of the dask branch until the studies branch's protocol lands (that
version replaces this file): ``resolve_executor(None)`` runs tasks serially,
``resolve_executor(client)`` wraps a ``dask.distributed.Client`` in
:class:`glmmsim.execution.dask.DaskExecutor`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["resolve_executor"]


class _Serial:
    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        return map(fn, tasks)


def resolve_executor(executor: Any = None) -> Any:
    """An object with ``.map(fn, tasks)`` yielding results in task order."""
    from .dask import DaskExecutor, is_dask_client

    if executor is None or executor == "serial":
        return _Serial()
    if is_dask_client(executor):
        return DaskExecutor(executor)
    if hasattr(executor, "map"):
        return executor
    from ..errors import InputTypeError

    raise InputTypeError(f"executor must be None, 'serial' or a dask.distributed.Client; got {executor!r}")
