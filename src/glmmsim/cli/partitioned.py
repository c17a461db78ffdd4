"""``glmmsim simulate SPEC --out DIR.parquet --partitions N``: a partitioned Parquet dataset via Dask.

The design is generated and simulated on Dask workers, partition by partition,
and each partition is written as its own file ``part.00000.parquet``, ... in
``DIR.parquet`` (readable whole by ``pandas.read_parquet(DIR)``,
``dask.dataframe.read_parquet(DIR)`` or ``pyarrow.dataset``). The values are
those of the pandas ``simulate`` of the same spec, whatever the partitioning.
Without ``--scheduler`` a ``LocalCluster`` with one single-threaded worker
process per core runs on this machine; ``--scheduler processes`` uses Dask's
local process pool; any other value is the address of a running scheduler.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import GlmmsimError, ParameterError
from .common import positive_int

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
        "on Dask workers; 'auto': about 1e6 rows each",
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
    dask = _dask()
    out = args.out or study.output["file"]
    if not out or out == "-":
        raise ParameterError("--partitions writes a directory of Parquet files: pass --out DIR.parquet")
    if (args.format or study.output["format"] or "parquet") != "parquet":
        raise ParameterError("--partitions writes Parquet only; use --out DIR.parquet")
    if (args.replicates or study.output["replicates"]) != 1:
        raise ParameterError("--partitions writes one dataset; drop --replicates (or output.replicates)")
    _check_directory(out, study, args.force)
    design = _lazy_design(study, args.partitions or "auto")
    data = study.model.simulate(design, seed=study.seeds["noise"])
    with _scheduler(args.scheduler, dask) as client:
        start = time.perf_counter()  # the write itself, not the cluster's start-up
        rows = write_partitions(data, out, client=client, progress=not args.quiet, stderr=stderr)
        seconds = time.perf_counter() - start
    if not args.quiet:
        print(
            f"simulated {rows} rows in {data.npartitions} partitions -> {out} (parquet dataset) "
            f"in {seconds:.1f} s ({rows / max(seconds, 1e-9) / 1e6:.2f} M rows/s)",
            file=stdout,
        )
    return 0


def _lazy_design(study: Study, npartitions: int | str) -> Any:
    """The spec's design as a Dask DataFrame: generated on the workers, or a read file split."""
    from ..study.spec import DESIGN_TYPES

    if study.design_type in DESIGN_TYPES:
        make = DESIGN_TYPES[study.design_type]
        return make(**study.design_args, seed=study.seeds["design"], npartitions=npartitions)
    import dask.dataframe as dd

    from ..design.partitioned import ROWS_PER_PARTITION

    conditions = study.conditions()  # a design read from a file is in memory already
    k = npartitions if npartitions != "auto" else math.ceil(len(conditions) / ROWS_PER_PARTITION)
    return dd.from_pandas(conditions, npartitions=max(1, min(int(k), len(conditions))), sort=False)


def _check_directory(out: str, study: Study, force: bool) -> None:
    """Never write over an input; replace an earlier dataset only with --force, and nothing else."""
    target = Path(os.path.realpath(out))
    for source in study.input_files():
        if target == Path(os.path.realpath(source)) or target in Path(os.path.realpath(source)).parents:
            raise ParameterError(f"output {out!r} holds an input of the study ({source}); choose another directory")
    if not target.exists():
        return
    if not target.is_dir():
        raise ParameterError(f"output {out!r} exists and is a file; a partitioned dataset is a directory")
    others = [p.name for p in target.iterdir() if not (p.name.startswith("part.") and p.suffix == ".parquet")]
    if others:
        raise ParameterError(
            f"output directory {out!r} holds other files than a dataset's parts (e.g. {others[0]!r}); "
            f"choose another directory"
        )
    if not force:
        raise ParameterError(f"output directory {out!r} exists; pass --force to replace it")


@contextmanager
def _scheduler(address: str | None, dask: Any) -> Iterator[Any]:
    """A distributed Client (None for Dask's local process pool) for the duration of the write."""
    if address == "processes":
        with dask.config.set(scheduler="processes"):
            yield None
        return
    from distributed import Client, LocalCluster

    if address is None:
        workers = os.cpu_count() or 1
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            with Client(cluster) as client:
                yield client
        return
    with Client(address) as client:
        yield client


def write_partitions(
    data: Any, out: str | os.PathLike, *, client: Any = None, progress: bool = True, stderr: TextIO | None = None
) -> int:
    """Write each partition of the Dask DataFrame ``data`` to ``out/part.NNNNN.parquet``; return the rows.

    Files are numbered in partition order (zero-padded, so a name sort is the row order).
    An existing directory ``out`` is replaced (the command line checks first that it holds
    only an earlier dataset's parts and that --force was given).
    """
    from tqdm import tqdm

    dask = _dask()
    path = Path(out)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    parts = data.to_delayed()
    tasks = [dask.delayed(_write_file)(part, str(path / f"part.{i:05d}.parquet")) for i, part in enumerate(parts)]
    bar = tqdm(total=len(tasks), desc="partitions", unit="part", file=stderr, disable=not progress)
    rows = 0
    try:
        if client is not None:
            from distributed import as_completed

            futures = client.compute(tasks)
            try:
                for future in as_completed(futures):
                    rows += future.result()
                    bar.update()
            except BaseException:
                client.cancel(futures)
                raise
        else:
            from dask.callbacks import Callback

            class _Bar(Callback):
                def _posttask(self, key, result, dsk, state, id):
                    if str(key).startswith("_write_file"):
                        bar.update()

            with _Bar():
                rows = sum(dask.compute(*tasks))
    finally:
        bar.close()
    return int(rows)


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
