"""Reading an existing trial list (``design: {type: file, path: trials.csv}``), within the size budget.

A trial list is a CSV (``.csv``, ``.csv.gz``, ``.tsv``) or Parquet (``.parquet``, ``.pq``) file with
one row per observation; its columns are the conditions the model simulates a response for. It must
be a regular file of at most :data:`MAX_TRIAL_BYTES` bytes with at most ``glmmsim.config.max_rows``
rows; both are checked before the file is parsed whole.
"""

from __future__ import annotations

import os
import stat

import pandas as pd

from ..errors import DataError, ParameterError
from ..limits import check_rows, config
from .writers import data_format

__all__ = ["read_trials", "MAX_TRIAL_BYTES"]

#: Largest trial-list file read (bytes); rows are bounded by ``glmmsim.config.max_rows``.
MAX_TRIAL_BYTES = 2 * 2**30


def _check_file(path: str) -> None:
    try:
        info = os.stat(path)
    except OSError as exc:
        raise DataError(f"cannot read trial list {path!r}: {exc.strerror or exc}", path=("path",)) from None
    if not stat.S_ISREG(info.st_mode):
        raise DataError(f"trial list {path!r} must be a regular file, not a device, pipe or directory", path=("path",))
    if info.st_size > MAX_TRIAL_BYTES:
        raise DataError(f"trial list {path!r} has {info.st_size:,} bytes; at most {MAX_TRIAL_BYTES:,} are read", path=("path",))


def read_trials(path: str) -> pd.DataFrame:
    """The trial list at ``path`` as a DataFrame, refused beyond the byte and row budgets.

    Examples
    --------
    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     f = os.path.join(d, "trials.csv")
    ...     _ = open(f, "w").write("subject,x\\ns1,0.5\\ns2,1.5\\n")
    ...     read_trials(f).shape
    (2, 2)
    """
    try:
        fmt = data_format(path)
    except ParameterError as exc:  # an extension glmmsim cannot read
        raise DataError(f"trial list {path!r}: {exc}", path=("path",)) from None
    _check_file(path)
    if fmt == "parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise DataError(f"reading Parquet trial lists needs pyarrow ({exc}); install glmmsim[parquet]") from None
        rows = pq.ParquetFile(path).metadata.num_rows
        check_rows(rows, f"trial list {path!r}", parameter="path")
        return pd.read_parquet(path)
    sep = "\t" if path.lower().endswith(".tsv") else ","
    try:
        frame = pd.read_csv(path, sep=sep, nrows=config.max_rows + 1)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read trial list {path!r}: {' '.join(str(exc).split())}", path=("path",)) from None
    if len(frame) > config.max_rows:
        check_rows(len(frame), f"reading trial list {path!r}", parameter="path")
    if frame.empty:
        raise DataError(f"trial list {path!r} has no rows", path=("path",))
    return frame
