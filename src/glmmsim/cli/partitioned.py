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
(``glmmsim.dask.staged_folder``): an interrupted or failed run leaves nothing
that looks like a dataset. The writing and the scheduler are ``glmmsim.dask.parquet``;
this module is the command's options, checks and report.
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

from ..dask.parquet import require_dask, scheduler, write_parts
from ..dask.staged_folder import staged_folder
from ..errors import GlmmsimWarning, ParameterError
from .common import positive_int

if TYPE_CHECKING:  # the study layer is imported when the command runs
    from ..study import Study

__all__ = ["add_partition_options", "run_partitioned"]


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


def run_partitioned(args: argparse.Namespace, study: Study, stdout: TextIO, stderr: TextIO) -> int:
    """Simulate the spec on Dask and write one Parquet file per partition."""
    require_dask()
    out = args.out or study.output["file"]
    if not out or out == "-":
        raise ParameterError("--partitions writes a directory of Parquet files: pass --out DIR.parquet")
    if (args.format or study.output["format"] or "parquet") != "parquet":
        raise ParameterError("--partitions writes Parquet only; use --out DIR.parquet")
    if (args.replicates or study.output["replicates"]) != 1:
        raise ParameterError("--partitions writes one dataset; drop --replicates (or output.replicates)")
    _check_not_an_input(out, study)
    started = getattr(args, "started", None) or time.time()  # set by cli.main: the command's start
    from ..dask.partitions import checks_only

    with checks_only():  # sizes and arguments refused before the output is claimed or a cluster starts
        study.partitioned_conditions(args.partitions or "auto")
    def report(line: str) -> None:
        print(line, file=stderr)

    with _terminate_as_exit(), staged_folder(out, force=args.force, report=report) as folder:
        began = time.time()
        with scheduler(args.scheduler) as client:
            cluster_start = time.time() - began
            # made here, under the scheduler: rows dropped at random are counted on the cluster
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", GlmmsimWarning)  # shown by the checks above
                design = study.partitioned_conditions(args.partitions or "auto")
            data = study.model.simulate(design, seed=study.seeds["noise"])
            rows = write_parts(data, folder, client=client, progress=not args.quiet, stderr=stderr)
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
