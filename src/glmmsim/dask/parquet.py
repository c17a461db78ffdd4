"""Partitioned Parquet datasets from Dask: one file a partition, written on the workers.

:func:`write_partitions` writes each partition of a Dask DataFrame as its own file
``part.00000.parquet``, ... in a folder (readable whole by ``pandas.read_parquet(DIR)``,
``dask.dataframe.read_parquet(DIR)`` or ``pyarrow.dataset``); the partition is made,
simulated and written by one task, so only a count per partition comes back.
:func:`scheduler` gives the Dask scheduler of a run: a ``LocalCluster`` with one
single-threaded worker process per core, Dask's local process pool (``"processes"``) or a
running scheduler's address.

The files are written into a hidden folder beside the target, renamed to the target when
every part is written (``glmmsim.dask.staged_folder``): an interrupted or failed run
leaves nothing that looks like a dataset. ``glmmsim simulate --partitions`` is the
command-line front (``glmmsim.cli.partitioned``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import GlmmsimError
from .staged_folder import staged_folder

if TYPE_CHECKING:  # pandas is imported when a dataset is written
    import pandas as pd

__all__ = ["require_dask", "scheduler", "write_partitions", "write_parts"]


def require_dask():
    """The ``dask`` module, or a GlmmsimError saying to install the ``dask`` extra."""
    try:
        import dask
        import dask.dataframe  # noqa: F401
    except ImportError:
        raise GlmmsimError("--partitions needs Dask: pip install 'glmmsim[dask]'") from None
    return dask


@contextlib.contextmanager
def scheduler(address: str | None) -> Iterator[Any]:
    """A distributed Client (None for Dask's local process pool) for the duration of the write."""
    dask = require_dask()
    if address == "processes":
        with dask.config.set(scheduler="processes"):
            yield None
        return
    from distributed import Client, LocalCluster

    if address is None:
        workers = os.cpu_count() or 1
        # dashboard_address ":0": any free port (another cluster may hold 8787; nobody watches it here)
        options = {"n_workers": workers, "threads_per_worker": 1, "processes": True, "dashboard_address": ":0"}
        with LocalCluster(**options) as cluster:
            with Client(cluster) as client:
                yield client
            _close_workers(cluster)
        return
    with Client(address) as client:
        yield client


#: Seconds a worker process is given to exit on its own at the end of a run. distributed's default
#: (4 s, then the process is killed with a warning) is too short on a busy machine.
_WORKER_EXIT_SECONDS = 60


def _close_workers(cluster: Any) -> None:
    """Stop the LocalCluster's workers, patiently, before its scheduler (a clean end, no warnings)."""
    import asyncio

    async def close_all() -> None:
        await asyncio.gather(*(w.close(timeout=_WORKER_EXIT_SECONDS) for w in list(cluster.workers.values())))

    try:
        cluster.sync(close_all)
    except Exception:  # noqa: BLE001 - the cluster's own close, which follows, still stops them
        pass


def write_partitions(
    data: Any,
    out: str | os.PathLike,
    *,
    client: Any = None,
    progress: bool = True,
    stderr: TextIO | None = None,
    force: bool = False,
) -> int:
    """Write each partition of the Dask DataFrame ``data`` to ``out/part.NNNNN.parquet``; return the rows.

    Files are numbered in partition order (zero-padded, so a name sort is the row order).
    They are written into a hidden folder beside ``out``, renamed to ``out`` when all are
    written; on an error or an interrupt it is removed. An existing ``out`` is replaced only
    with ``force`` and only when it holds nothing but a dataset's parts.
    """
    report = (lambda line: print(line, file=stderr)) if stderr is not None else None
    with staged_folder(out, force=force, report=report) as folder:
        return write_parts(data, folder, client=client, progress=progress, stderr=stderr)


def write_parts(data: Any, folder: Path, *, client: Any, progress: bool, stderr: TextIO | None) -> int:
    """Write the partitions into ``folder`` (one task per partition: make, simulate, write)."""
    import numpy as np
    import pandas as pd
    from tqdm import tqdm

    dask = require_dask()
    counts = data.map_partitions(
        _write_partition, str(folder), meta=pd.Series(np.empty(0, dtype=np.int64)), enforce_metadata=False
    )
    tasks = counts.to_delayed()
    bar = tqdm(total=len(tasks), desc="partitions", unit="part", file=stderr, disable=not progress)
    rows = 0
    try:
        if client is not None:
            from distributed import as_completed

            futures = client.compute(tasks)
            try:
                # each result is a one-row Series; a future is dropped once counted, so neither
                # the client nor the cluster keeps anything per finished partition
                for future in as_completed(futures):
                    rows += int(future.result().iloc[0])
                    future.release()
                    bar.update()
            except BaseException:
                client.cancel(futures)
                raise
        else:
            from dask.callbacks import Callback

            class _Bar(Callback):
                def _posttask(self, key, result, dsk, state, id):
                    if isinstance(result, pd.Series) and key in keys:
                        bar.update()

            keys = {t.key for t in tasks}
            with _Bar():
                rows = int(sum(int(s.iloc[0]) for s in dask.compute(*tasks)))
    finally:
        bar.close()
    return rows


def _write_partition(frame: pd.DataFrame, folder: str, partition_info: Any = None) -> pd.Series:
    import numpy as np
    import pandas as pd

    number = partition_info["number"] if partition_info is not None else 0
    n = _write_file(frame, os.path.join(folder, f"part.{number:05d}.parquet"))
    return pd.Series(np.array([n], dtype=np.int64))


#: Categoricals with more categories than this (unit labels) are written with the labels the
#: file uses only; Parquet would otherwise store the whole category list in every file.
_FULL_DICTIONARY_MAX = 1000


def _write_file(frame: pd.DataFrame, path: str) -> int:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    # a new frame, not the partition changed in place (it may be a persisted partition the caller holds)
    frame = frame.assign(
        **{
            col: frame[col].cat.remove_unused_categories()
            for col, dtype in frame.dtypes.items()
            if isinstance(dtype, pd.CategoricalDtype) and len(dtype.categories) > _FULL_DICTIONARY_MAX
        }
    )
    table = pa.Table.from_pandas(frame, preserve_index=False)
    # one dictionary index type in every file (pandas picks int8/int16/int32 by the number of
    # categories), so readers can unify the files' dictionaries into one categorical
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            wide = pa.dictionary(pa.int32(), field.type.value_type)
            table = table.set_column(i, field.name, table.column(i).cast(wide))
    pq.write_table(table, path)
    return len(frame)
