"""Writing simulated data: CSV written frame by frame, Parquet, the format from the extension.

The file is written under a partial name and appears at its path only when complete
(:mod:`glmmsim.outputs`): an interrupted or failed write leaves no file there.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import pandas as pd

from ..errors import GlmmsimError, ParameterError, format_names
from ..outputs import Discarded, claim

__all__ = ["DATA_FORMATS", "data_format", "write_data"]

#: Output formats and the file extensions that select them.
DATA_FORMATS = {"csv": (".csv", ".csv.gz", ".tsv"), "parquet": (".parquet", ".pq")}



def data_format(path: str, fmt: str | None = None) -> str:
    """The output format for ``path``: ``fmt`` if given, else from the extension.

    Examples
    --------
    >>> data_format("out.parquet"), data_format("out.csv"), data_format("x.dat", "csv")
    ('parquet', 'csv', 'csv')
    """
    lower = str(path).lower()
    by_ext = next((f for f, exts in DATA_FORMATS.items() if lower.endswith(exts)), None)
    if fmt is not None:
        if fmt not in DATA_FORMATS:
            raise ParameterError(f"format must be one of {format_names(DATA_FORMATS)}; got {fmt!r}")
        if by_ext is not None and by_ext != fmt:
            raise ParameterError(f"output file {path!r} has a {by_ext} extension but format {fmt!r} was asked for")
        return fmt
    if by_ext is None:
        exts = [e for group in DATA_FORMATS.values() for e in group]
        raise ParameterError(f"cannot tell the format of output file {path!r}; use an extension of {format_names(exts)}")
    return by_ext


def _require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except Exception as exc:  # a broken install fails with ImportError, AttributeError, ...
        if isinstance(exc, ModuleNotFoundError) and exc.name == "pyarrow":
            raise GlmmsimError(
                'writing Parquet needs pyarrow, which is not installed; install the parquet extra, '
                '`pip install ".[parquet]"` in the glmmsim repository, or write a .csv file'
            ) from None
        # installed but unusable, e.g. a pyarrow built for numpy 2 next to numpy 1: say why
        raise GlmmsimError(
            f"writing Parquet needs pyarrow, which is installed but fails to import "
            f"({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}); "
            f'`pip install ".[parquet]"` installs a pyarrow that fits your numpy'
        ) from None


def _write_parquet(frames: Iterable[pd.DataFrame], path: str) -> None:
    """One row group per frame (replicate), written as it arrives: replicates are never held together."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    try:
        for frame in frames:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            elif table.schema != writer.schema:
                # categorical unit labels: later replicates may hold other categories
                table = table.cast(writer.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def write_data(
    data: pd.DataFrame | Iterable[pd.DataFrame],
    path: str | os.PathLike,
    fmt: str | None = None,
    *,
    force: bool = True,
    option: str | None = None,
    on_discard: Discarded | None = None,
) -> str:
    """Write one data frame (or several, one after the other) as CSV or Parquet; return the format.

    Frames are written as they arrive (CSV appended, Parquet one row group per frame), so an
    iterator of replicates is never held in memory whole. They go to a partial file beside
    ``path`` that is published under ``path`` only when the last frame is written; if a frame
    fails (or Ctrl-C arrives) the partial file is removed and ``path`` is untouched.

    Parameters
    ----------
    data : DataFrame or iterable of DataFrames
        The data; an iterable is consumed frame by frame.
    path : str or path-like
        The file; ``.csv``, ``.csv.gz``, ``.tsv``, ``.parquet`` or ``.pq``.
    fmt : {"csv", "parquet"}, optional
        The format, when the extension does not say it.
    force : bool, default True
        Replace an existing file (atomically). False: an existing file is an
        :class:`~glmmsim.outputs.OutputError`, also when another process creates it meanwhile.
    option, on_discard
        For the command line: the option that named ``path`` (kept in errors), and a function
        told about a partial file removed after a failure (see :func:`glmmsim.outputs.claim`).

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "d.csv")
    >>> write_data(pd.DataFrame({"x": [1, 2]}), path)
    'csv'
    >>> def frames():
    ...     yield pd.DataFrame({"x": [3]})
    ...     raise KeyboardInterrupt  # interrupted after the first frame
    >>> try:
    ...     write_data(frames(), path)
    ... except KeyboardInterrupt:
    ...     pass
    >>> open(path).read()  # the earlier file, whole
    'x\\n1\\n2\\n'
    """
    fmt = data_format(path, fmt)
    frames = [data] if isinstance(data, pd.DataFrame) else data
    if fmt == "parquet":
        _require_pyarrow()
    with claim(path, force=force, option=option, on_discard=on_discard) as partial:
        if fmt == "parquet":
            _write_parquet(frames, partial)
        else:
            sep = "\t" if str(path).lower().endswith(".tsv") else ","
            for i, frame in enumerate(frames):
                frame.to_csv(partial, index=False, sep=sep, mode="w" if i == 0 else "a", header=i == 0)
    return fmt
