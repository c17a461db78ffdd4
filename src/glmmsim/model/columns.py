"""Which kinds of data column a model can read, checked before any work.

A predictor is numeric (floats, integers, pandas' nullable and Arrow numbers,
booleans) or categorical (text, ``Categorical``). pandas and Arrow spell text in
several dtypes (``object``, ``str``, ``string``, ``string[pyarrow]``, Arrow
``string``, ``large_string`` and dictionary columns); formulaic treats only the
first two as categorical, so the others are read as ``object`` here and give the
same coefficients and numbers as a plain text column.

Kinds with no single numeric meaning are refused with a
:class:`~glmmsim.errors.DataError` that says how to convert them: dates and
times (seconds? days? since when?), time spans (their numbers depend on the
unit pandas stores) and complex numbers. A grouping column may hold any hashable
values; lists, dicts or sets are refused by :func:`unhashable_levels`.

Examples
--------
>>> import pandas as pd
>>> df = pd.DataFrame({"cond": pd.array(["a", "b"], dtype="string"), "x": [1.0, 2.0]})
>>> usable_columns(df, ["cond", "x"], "the fixed part").dtypes.tolist()
[dtype('O'), dtype('float64')]
>>> dates = pd.to_datetime(["2024-01-01", "2024-01-02"])
>>> usable_columns(df.assign(x=dates), ["x"], "the fixed part")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
glmmsim.errors.DataError: column 'x' (used by the fixed part) holds dates/times (datetime64[...]), which have no single numeric meaning; convert it first: a number, e.g. (df['x'] - df['x'].min()).dt.days for days since the first, or a category, e.g. df['x'].astype(str)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import DataError, plain

__all__ = ["usable_columns", "unhashable_levels", "is_text"]


def _arrow_type(dtype: object):
    return getattr(dtype, "pyarrow_dtype", None) if isinstance(dtype, pd.ArrowDtype) else None


def is_text(dtype: object) -> bool:
    """Whether ``dtype`` holds text that formulaic would not take as categorical by itself.

    Examples
    --------
    >>> is_text(pd.StringDtype()), is_text(pd.Series(["a"], dtype=object).dtype)
    (True, False)
    """
    if isinstance(dtype, pd.StringDtype):
        # pandas 3's default ``str`` (NaN as missing) is categorical to formulaic already
        return not (dtype == "str")
    arrow = _arrow_type(dtype)
    if arrow is None:
        return False
    import pyarrow as pa  # present whenever an ArrowDtype exists

    if pa.types.is_dictionary(arrow):
        arrow = arrow.value_type
    return bool(pa.types.is_string(arrow) or pa.types.is_large_string(arrow) or getattr(pa.types, "is_string_view", lambda t: False)(arrow))


def _kind_problem(dtype: object, col: str) -> str | None:
    """Why a column of ``dtype`` cannot be a predictor, with how to convert it; None if it can."""
    arrow = _arrow_type(dtype)
    if arrow is not None:
        import pyarrow as pa

        if pa.types.is_timestamp(arrow) or pa.types.is_date(arrow) or pa.types.is_time(arrow):
            return _dates(dtype, col)
        if pa.types.is_duration(arrow):
            return _spans(dtype, col)
        if pa.types.is_nested(arrow):
            return f"holds nested values ({dtype}); a predictor needs one number or category per row"
        return None
    if pd.api.types.is_datetime64_any_dtype(dtype) or isinstance(dtype, pd.PeriodDtype):
        return _dates(dtype, col)
    if pd.api.types.is_timedelta64_dtype(dtype):
        return _spans(dtype, col)
    if pd.api.types.is_complex_dtype(dtype):
        return (
            f"holds complex numbers ({dtype}); a predictor is real: use np.real(df[{col!r}]), "
            f"np.abs(...) or split the parts into two columns"
        )
    return None


def _dates(dtype: object, col: str) -> str:
    return (
        f"holds dates/times ({dtype}), which have no single numeric meaning; convert it first: a "
        f"number, e.g. (df[{col!r}] - df[{col!r}].min()).dt.days for days since the first, or a "
        f"category, e.g. df[{col!r}].astype(str)"
    )


def _spans(dtype: object, col: str) -> str:
    return (
        f"holds time spans ({dtype}), whose numbers depend on the unit pandas stores; convert it to "
        f"numbers in the unit you mean, e.g. df[{col!r}].dt.total_seconds()"
    )


def usable_columns(data: pd.DataFrame, columns: Sequence[str], where: str) -> pd.DataFrame:
    """``data`` with the ``columns`` a formula reads checked, text columns as ``object``.

    Only the dtypes are inspected (no pass over the values), and ``data`` is
    returned unchanged, not copied, when no column needs converting.

    Raises
    ------
    DataError
        For a date/time, time-span or complex column, saying how to convert it.
    """
    convert = []
    for col in columns:
        if col not in data.columns:
            continue  # the caller reports missing columns
        dtype = data[col].dtype
        problem = _kind_problem(dtype, col)
        if problem is not None:
            raise DataError(f"column {col!r} (used by {where}) {problem}")
        if is_text(dtype):
            convert.append(col)
    if not convert:
        return data
    frame = data.copy(deep=False)
    for col in convert:
        values = data[col]
        # missing text stays missing (NaN), which formulaic's na_action="raise" reports
        frame[col] = values.astype(object).where(values.notna(), np.nan)
    return frame


def unhashable_levels(values: pd.Series, col: str, where: str) -> DataError:
    """The error for a grouping column holding values that cannot be levels (lists, dicts, sets).

    Examples
    --------
    >>> str(unhashable_levels(pd.Series(["a", ["b"]]), "g", "factor 'g'"))
    "grouping column 'g' (used by factor 'g') holds a list at row 1 (['b']); levels must be single values such as strings or numbers: convert the column, e.g. df['g'].astype(str)"
    """
    for pos, value in enumerate(values.to_numpy()):
        try:
            hash(value)
        except TypeError:
            kind = type(value).__name__
            article = "an" if kind[0] in "aeiou" else "a"
            shown = repr(value)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            return DataError(
                f"grouping column {col!r} (used by {where}) holds {article} {kind} at row "
                f"{plain(values.index[pos])!r} ({shown}); levels must be single values such as "
                f"strings or numbers: convert the column, e.g. df[{col!r}].astype(str)"
            )
    return DataError(f"grouping column {col!r} (used by {where}) has values that cannot be levels")
