"""Reading an existing trial list (``design: {type: file, path: trials.csv}``), within the size budget.

A trial list is a CSV (``.csv``, ``.csv.gz``, ``.tsv``) or Parquet (``.parquet``, ``.pq``) file with
one row per observation; its columns are the conditions the model simulates a response for. A
trial list comes from whoever wrote the spec, so every size is checked before the data are read:

* the file is a regular file of at most ``glmmsim.limits.max_file_bytes`` bytes, and so is what a
  ``.csv.gz`` decompresses to (counted by streaming, never held);
* a CSV's header line has at most ``glmmsim.limits.max_header_bytes`` bytes;
* a Parquet file's metadata (rows, columns, uncompressed bytes) are read and checked before its data;
* at most ``glmmsim.limits.max_rows`` rows and ``glmmsim.limits.max_cells`` rows x columns are read.

A file that is not what its extension says (random bytes named ``.parquet``, a truncated
``.csv.gz``) is a :class:`~glmmsim.errors.DataError` naming it.
"""

from __future__ import annotations

import gzip
import os
import stat
import zlib

import pandas as pd

from ..errors import DataError, ParameterError
from .. import limits
from ..limits import LIMITS, check_rows, how_to_raise
from .writers import data_format

__all__ = ["read_trials"]

_KINDS = "a trial list is a CSV (.csv, .csv.gz, .tsv) or Parquet (.parquet, .pq) file"
#: What a damaged file raises while being read (pyarrow's errors derive from these too).
_READ_ERRORS = (ValueError, UnicodeDecodeError, EOFError, OSError, zlib.error, pd.errors.ParserError)


def _too_big(path: str, what: str, size: int, limit: str) -> DataError:
    bound = getattr(limits, limit)
    return DataError(
        f"trial list {path!r} {what} {size:,}; the limit {limit} is {bound:,} ({LIMITS[limit][1]}); "
        f"{how_to_raise(limit)}",
        path=("path",),
    )


def _check_file(path: str) -> None:
    try:
        info = os.stat(path)
    except OSError as exc:
        raise DataError(f"cannot read trial list {path!r}: {exc.strerror or exc}", path=("path",)) from None
    if not stat.S_ISREG(info.st_mode):
        raise DataError(f"trial list {path!r} must be a regular file, not a device, pipe or directory", path=("path",))
    if info.st_size > limits.max_file_bytes:
        raise _too_big(path, "has bytes:", info.st_size, "max_file_bytes")


def _damaged(path: str, exc: BaseException) -> DataError:
    reason = " ".join(str(exc).split())[:200] or type(exc).__name__
    return DataError(f"cannot read trial list {path!r}: {reason}; {_KINDS}, complete and undamaged", path=("path",))


def _read_parquet(path: str) -> pd.DataFrame:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise DataError(f"reading Parquet trial lists needs pyarrow ({exc}); install glmmsim[parquet]") from None
    try:
        meta = pq.ParquetFile(path).metadata
    except _READ_ERRORS as exc:  # not Parquet: no magic bytes, or a footer that does not parse
        raise _damaged(path, exc) from None
    check_rows(meta.num_rows, f"trial list {path!r}", parameter="path")
    if meta.num_rows * meta.num_columns > limits.max_cells:
        raise _too_big(path, "has rows x columns:", meta.num_rows * meta.num_columns, "max_cells")
    # what the data take once decoded: a dictionary-encoded column of one long string is a few
    # bytes on disk and gigabytes in memory, so the batches are decoded and counted one at a time
    # (and dropped) before the file is read whole
    expanded = 0
    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1 << 16):
            expanded += batch.nbytes
            if expanded > limits.max_file_bytes:
                raise _too_big(path, "decodes to more bytes than", expanded, "max_file_bytes")
        return pd.read_parquet(path)
    except (*_READ_ERRORS, MemoryError) as exc:
        raise _damaged(path, exc) from None


def _check_gzip(path: str) -> None:
    """Stream ``path`` through gzip, refusing it once it expands past the byte budget."""
    total = 0
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(1 << 20):
                total += len(chunk)
                if total > limits.max_file_bytes:
                    raise _too_big(path, "decompresses to more bytes than", total, "max_file_bytes")
    except _READ_ERRORS as exc:
        raise _damaged(path, exc) from None


def _header_columns(path: str, sep: str) -> int:
    """Columns of the header line, refusing a header longer than ``limits.max_header_bytes``."""
    limit = limits.max_header_bytes
    opener = gzip.open if path.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as stream:
            line = stream.readline(limit + 1)
    except _READ_ERRORS as exc:
        raise _damaged(path, exc) from None
    if len(line) > limit:
        raise _too_big(path, "has a header line of more bytes than", limit, "max_header_bytes")
    return max(line.count(sep.encode()) + 1, 1)


def read_trials(path: str) -> pd.DataFrame:
    """The trial list at ``path`` as a DataFrame, refused beyond the byte, row and cell budgets.

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
        return _read_parquet(path)
    sep = "\t" if path.lower().endswith(".tsv") else ","
    if path.lower().endswith(".gz"):
        _check_gzip(path)
    columns = _header_columns(path, sep)
    # rows are read up to whichever budget binds first: rows, or cells for this many columns
    rows = min(limits.max_rows, limits.max_cells // columns)
    try:
        frame = pd.read_csv(path, sep=sep, nrows=rows + 1)
    except (*_READ_ERRORS, MemoryError) as exc:
        raise _damaged(path, exc) from None
    if len(frame) > limits.max_rows:
        check_rows(len(frame), f"reading trial list {path!r}", parameter="path")
    if len(frame) > rows:
        raise _too_big(path, "has rows x columns of more than", rows * columns, "max_cells")
    if frame.empty:
        raise DataError(f"trial list {path!r} has no rows", path=("path",))
    return frame
