"""``glmmsim simulate``: simulate a study spec to CSV or Parquet."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import TYPE_CHECKING, TextIO

from ..errors import ParameterError
from .common import add_output_options, add_spec_options, check_output_path, discard_reporter, load_study, positive_int
from .partitioned import add_partition_options, run_partitioned

if TYPE_CHECKING:  # pandas and the study layer are imported when the command runs
    import pandas as pd

    from ..study import Study

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``simulate`` command to the parser."""
    p = sub.add_parser("simulate", help="simulate data from a study spec and write CSV or Parquet")
    add_spec_options(p)
    p.add_argument("-o", "--out", metavar="FILE", help="output file (.csv, .csv.gz, .tsv, .parquet); '-' for CSV on stdout")
    p.add_argument("--format", choices=["csv", "parquet"], help="output format (default: from the extension)")
    p.add_argument("--replicates", type=positive_int, metavar="K", help="write K datasets with a 'replicate' column")
    p.add_argument(
        "--fixed-population",
        action="store_true",
        help="replicates share one population (same random effects); default: each draws new subjects/items",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no summary, no progress bar")
    add_output_options(p)
    add_partition_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from ..study import write_data

    study = load_study(args)
    if args.partitions or args.scheduler:  # Dask: a partitioned Parquet dataset (cli/partitioned.py)
        return run_partitioned(args, study, stdout, stderr)
    out = args.out or study.output["file"]
    if not out:
        raise ParameterError("no output file: pass --out FILE or set output.file in the spec")
    check_output_path(out, study, args.force)
    k = args.replicates if args.replicates is not None else study.output["replicates"]  # both >= 1
    study.check_replicates(k)
    fmt = args.format or study.output["format"]
    frames: Iterator[pd.DataFrame]
    if k == 1:
        frames = iter([study.simulate()])
    else:
        frames = _progress(study.replicates(k, vary_population=not args.fixed_population), k, args.quiet, stderr)
    first: list[pd.DataFrame] = []

    def remember(it: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for frame in it:
            if not first:
                first.append(frame)
            yield frame

    if out == "-":
        if fmt not in (None, "csv"):
            raise ParameterError("only CSV can be written to stdout ('--out -')")
        for i, frame in enumerate(remember(frames)):
            frame.to_csv(stdout, index=False, header=i == 0)
        fmt = "csv"
    else:
        # written under a partial name, published whole: an interrupted run leaves no file at `out`
        fmt = write_data(remember(frames), out, fmt, force=args.force, option="out", on_discard=discard_reporter(stderr))
    if not args.quiet:
        print(_summary(study, first[0], k, out, fmt), file=stderr if out == "-" else stdout)
    return 0


def _progress(frames: Iterator[pd.DataFrame], k: int, quiet: bool, stderr: TextIO) -> Iterator[pd.DataFrame]:
    # a bar only for a person watching: not in logs, pipes or CI
    if quiet or not _is_terminal(stderr):
        yield from frames
        return
    from tqdm import tqdm

    yield from tqdm(frames, total=k, desc="replicates", unit="dataset", file=stderr)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


def _summary(study: Study, data: pd.DataFrame, k: int, out: str, fmt: str) -> str:
    import pandas as pd

    from ..lme4.summary import group_counts

    model = study.model
    y = pd.to_numeric(data[model.response], errors="coerce")
    groups = ", ".join(f"{n} {f}" for f, n in group_counts(study, data).items())
    rows = f"{len(data)} rows" + (f" x {k} replicates" if k > 1 else "")
    where = "stdout" if out == "-" else out
    return (
        f"simulated {rows} ({groups}) -> {where} ({fmt})\n"
        f"response {model.response}: mean {y.mean():.4g}, sd {y.std():.4g}, min {y.min():.4g}, max {y.max():.4g}"
    )
