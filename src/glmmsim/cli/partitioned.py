"""``glmmsim simulate SPEC --out DIR.parquet --partitions N``: a partitioned Parquet dataset via Dask.

The design is generated and simulated on Dask workers, partition by partition,
and each partition is written as its own file ``part.00000.parquet``, ... in
``DIR.parquet`` (readable whole by ``pandas.read_parquet(DIR)``,
``dask.dataframe.read_parquet(DIR)`` or ``pyarrow.dataset``). The values are
those of the pandas ``simulate`` of the same spec, whatever the partitioning.
Without ``--scheduler`` a ``LocalCluster`` with one single-threaded worker
process per core runs on this machine; ``--scheduler processes`` uses Dask's
local process pool; any other value is the address of a running scheduler.

Memory: the client (this process) holds the spec, the model, one subject's
design (to check the model against it) and a small task per partition; a
worker holds about one partition at a time. The files are written into a hidden
folder beside the target, renamed to the target when every part is written
(:mod:`glmmsim.cli.staged_folder`): an interrupted or failed run leaves nothing
that looks like a dataset.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import GlmmsimError, GlmmsimWarning, ParameterError
from .common import positive_int
from .staged_folder import staged_folder

if TYPE_CHECKING:  # pandas and the study layer are imported when the command runs
    import pandas as pd

    from ..study import Study

__all__ = ["add_partition_options", "run_partitioned", "write_partitions"]


def partitions_arg(text: str) -> int | str:
    """argparse type: a whole number >= 1 or ``auto`` (about 1e6 rows per partition)."""
    if text == "auto":
        return text
    return positive_int(text, expected="a whole number >= 1 or 'auto'")


def add_partition_options(p: argparse.ArgumentParser) -> None:
    """The Dask options of ``glmmsim simulate``."""
    g = p.add_argument_group("scale-out with Dask (pip install 'glmmsim[dask]')")
    g.add_argument(
        "--partitions",
        type=partitions_arg,
        metavar="N",
        help="write a partitioned Parquet dataset (a directory) of N partitions, generated and simulated "
        "on Dask workers; 'auto': about 1e6 rows each. The row limit (GLMMSIM_MAX_ROWS) applies to one "
        "partition, GLMMSIM_MAX_TOTAL_ROWS to the whole",
    )
    g.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="Dask scheduler address, or 'processes' for a local process pool "
        "(default: a LocalCluster, one worker per core); implies --partitions auto",
    )


def _dask():
    try:
        import dask
        import dask.dataframe  # noqa: F401
    except ImportError:
        raise GlmmsimError("--partitions needs Dask: pip install 'glmmsim[dask]'") from None
    return dask


def run_partitioned(args: argparse.Namespace, study: Study, stdout: TextIO, stderr: TextIO) -> int:
    """Simulate the spec on Dask and write one Parquet file per partition."""
    _dask()
    out = args.out or study.output["file"]
    if not out or out == "-":
        raise ParameterError("--partitions writes a directory of Parquet files: pass --out DIR.parquet")
    if (args.format or study.output["format"] or "parquet") != "parquet":
        raise ParameterError("--partitions writes Parquet only; use --out DIR.parquet")
    if (args.replicates or study.output["replicates"]) != 1:
        raise ParameterError("--partitions writes one dataset; drop --replicates (or output.replicates)")
    _check_not_an_input(out, study)
    started = getattr(args, "started", None) or time.time()  # set by cli.main: the command's start
    from ..design.partitioned import checks_only

    with checks_only():  # sizes and arguments refused before the output is claimed or a cluster starts
        study.partitioned_conditions(args.partitions or "auto")
    def report(line: str) -> None:
        print(line, file=stderr)

    with _terminate_as_exit(), staged_folder(out, force=args.force, report=report) as folder:
        began = time.time()
        with _scheduler(args.scheduler) as client:
            cluster_start = time.time() - began
            # made here, under the scheduler: rows dropped at random are counted on the cluster
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", GlmmsimWarning)  # shown by the checks above
                design = study.partitioned_conditions(args.partitions or "auto")
            data = study.model.simulate(design, seed=study.seeds["noise"])
            rows = _write_parts(data, folder, client=client, progress=not args.quiet, stderr=stderr)
            written = time.time()
        shutdown = time.time() - written
    if not args.quiet:
        total, startup = time.time() - started, began - started
        print(
            f"simulated {rows:,} rows in {data.npartitions} partitions -> {out} (parquet dataset) in {total:.1f} s "
            f"end to end: {rows / max(total, 1e-9) / 1e6:.2f} M rows/s (start-up {startup:.1f} s, cluster start "
            f"{cluster_start:.1f} s, simulate and write {written - began - cluster_start:.1f} s, "
            f"shutdown {shutdown:.1f} s)",
            file=stdout,
        )
    return 0


@contextlib.contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """SIGTERM (a batch system's stop) unwinds like Ctrl-C, so the partial dataset is removed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _check_not_an_input(out: str, study: Study) -> None:
    """Never write over an input of the study (the spec, a trial list)."""
    target = Path(os.path.realpath(out))
    for source in study.input_files():
        if target == Path(os.path.realpath(source)) or target in Path(os.path.realpath(source)).parents:
            raise ParameterError(f"output {out!r} holds an input of the study ({source}); choose another directory")


@contextlib.contextmanager
def _scheduler(address: str | None) -> Iterator[Any]:
    """A distributed Client (None for Dask's local process pool) for the duration of the write."""
    dask = _dask()
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
        return _write_parts(data, folder, client=client, progress=progress, stderr=stderr)


def _write_parts(data: Any, folder: Path, *, client: Any, progress: bool, stderr: TextIO | None) -> int:
    """Write the partitions into ``folder`` (one task per partition: make, simulate, write)."""
    import numpy as np
    import pandas as pd
    from tqdm import tqdm

    dask = _dask()
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
