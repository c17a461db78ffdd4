"""Size budgets: how much work one call may ask for before glmmsim refuses it.

A design, a trial list or a run of replicates is checked against these limits
*before* anything is allocated, so ``crossed(100_000, 10_000)`` (a billion rows)
or ``--replicates 10**23`` is refused in microseconds with the computed size,
instead of exhausting memory or disk.

This module holds the limits in force as its attributes (``glmmsim.limits.max_rows``,
one per entry of :data:`LIMITS`); they may be raised for a session
(``glmmsim.limits.max_rows = 10**8``, checked where it is set), temporarily
(``with glmmsim.limits.override(max_rows=10**8): ...``) or from the environment
(``GLMMSIM_MAX_ROWS``, ``GLMMSIM_MAX_CELLS``, ..., read at import).  A spec file
cannot raise them: it is data.  Designs larger than memory belong on the Dask
path (simulate partition by partition), not under a raised limit: there
``max_rows`` bounds one partition and ``max_total_rows`` the whole dataset
(:func:`check_partitioned_rows`).

Examples
--------
>>> import glmmsim
>>> from glmmsim.limits import check_rows
>>> glmmsim.limits.max_rows
20000000
>>> check_rows(1_000, "crossed(10, 100)")
>>> with glmmsim.limits.override(max_rows=100):
...     check_rows(1_000, "crossed(10, 100)")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
glmmsim.errors.ParameterError: crossed(10, 100) would make 1,000 rows; the limit is 100 rows; ...
"""

from __future__ import annotations

import numbers
import os
import sys
import types
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from .errors import ParameterError

__all__ = ["LIMITS", "Limits", "check_limit", "check_partitioned_rows", "check_rows", "check_total_rows",
           "count_text", "how_to_raise", "override"]

#: Bytes a design row takes in memory, roughly (categorical labels, a few numeric columns).
_BYTES_PER_ROW = 64


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = int(float(text))
    except ValueError:
        raise ParameterError(f"environment variable {name}={text!r} must be a whole number") from None
    if value < 1:
        raise ParameterError(f"environment variable {name}={text!r} must be >= 1")
    return value


def _limit_value(name: str, value: object) -> int:
    """A limit as an int >= 1 (a whole float such as ``1e8`` is accepted, as in the environment)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value).is_integer() or value < 1:
        raise ParameterError(f"glmmsim.limits.{name} must be a whole number >= 1, such as 10**8; got {value!r}")
    return int(value)


#: Every limit: name -> (default, environment variable, what it bounds).
LIMITS: dict[str, tuple[int, str]] = {
    "max_rows": (20_000_000, "rows one design, trial list or simulated dataset may have"),
    "max_total_rows": (1_000_000_000, "rows a run of replicates may write in total"),
    "max_cells": (100_000_000, "rows x columns of one dataset (trial-list covariates included)"),
    "max_nested_units": (2_000_000, "units a nested design draws at one level (each costs ~0.5 KB while built)"),
    "max_levels": (1_000_000, "levels one column may list in levels= (or have when fitting)"),
    "max_random_columns": (100, "columns of one random-effect term (its covariance is that squared)"),
    "max_replicates": (1_000_000, "replicates (nsim) of one power or recovery run, or points of one curve"),
    "max_file_bytes": (2**30, "bytes of a trial-list file, on disk and after decompression"),
    "max_header_bytes": (1_000_000, "bytes of a CSV trial list's header line"),
    "max_formula_chars": (100_000, "characters of one formula"),
    "max_formula_terms": (10_000, "terms a formula's expansion (**, *, /, :) may form"),
    "max_int_bits": (4_096, "bits of an integer that arithmetic inside a formula may build"),
}


def env_name(limit: str) -> str:
    """The environment variable that sets ``limit`` at import (``GLMMSIM_MAX_ROWS``)."""
    return "GLMMSIM_" + limit.upper()


def how_to_raise(limit: str) -> str:
    """The sentence every limit message ends with: how to raise ``limit``.

    Examples
    --------
    >>> how_to_raise("max_cells")
    'raise it with glmmsim.limits.max_cells = N (or the environment variable GLMMSIM_MAX_CELLS)'
    """
    return f"raise it with glmmsim.limits.{limit} = N (or the environment variable {env_name(limit)})"


class Limits:
    """A set of size budgets; the one in force is read and set through :mod:`glmmsim.limits`.

    Every attribute is a whole number >= 1; :data:`LIMITS` lists them with their
    defaults and what they bound.  Each may be set from the environment variable
    ``GLMMSIM_<NAME>`` (``GLMMSIM_MAX_ROWS``), read at import.

    Attributes
    ----------
    max_rows : int
        Most rows one design, trial list or simulated dataset may have in memory (default
        20 million, about 1-2 GiB of design); on the Dask path, most rows of one partition.
    max_total_rows : int
        Most rows a run of replicates, or a partitioned dataset, may have in total (default
        1 billion).
    max_cells, max_nested_units, max_levels, max_random_columns, max_replicates, max_file_bytes, max_header_bytes, \
max_formula_chars, max_formula_terms, max_int_bits : int
        See :data:`LIMITS`.
    """

    def __init__(self) -> None:
        for name, (default, _) in LIMITS.items():
            setattr(self, name, _env_int(env_name(name), default))

    def __setattr__(self, name: str, value: object) -> None:
        # checked here, so a bad value fails where it is set, not in the next size check
        if name not in LIMITS:
            raise ParameterError(f"unknown limit {name!r}; limits are {sorted(LIMITS)}")
        super().__setattr__(name, _limit_value(name, value))

    @contextmanager
    def override(self, **limits: int) -> Iterator[Limits]:
        """Change limits inside a ``with`` block (``glmmsim.limits.override(max_rows=10**8)``)."""
        unknown = [k for k in limits if k not in LIMITS]
        if unknown:
            raise ParameterError(f"unknown limit(s) {unknown}; limits are {sorted(LIMITS)}")
        new = {name: _limit_value(name, value) for name, value in limits.items()}
        old = dict(vars(self))
        try:
            vars(self).update(new)
            yield self
        finally:
            vars(self).update(old)

    def __repr__(self) -> str:
        return "Limits(" + ", ".join(f"{k}={getattr(self, k):,}" for k in LIMITS) + ")"


#: The limits in force, read and set as attributes of this module (``glmmsim.limits.max_rows``).
_IN_FORCE = Limits()


def override(**limits: int) -> AbstractContextManager[Limits]:
    """Change the limits in force inside a ``with`` block, restoring them after it.

    Examples
    --------
    >>> import glmmsim
    >>> with glmmsim.limits.override(max_rows=10**8):
    ...     glmmsim.limits.max_rows
    100000000
    """
    return _IN_FORCE.override(**limits)


def count_text(n: int) -> str:
    """A count for a message: ``1,000,000`` or, past a quadrillion, ``1e+30``."""
    return f"{n:,}" if n < 10**15 else f"{float(n):.3g}"


def _size_text(rows: int) -> str:
    gib = rows * _BYTES_PER_ROW / 2**30
    return f"{count_text(rows)} rows (about {gib:,.1f} GiB)" if 0.1 <= gib < 1e9 else f"{count_text(rows)} rows"


def check_rows(rows: int, what: str, parameter: str | None = None) -> None:
    """Refuse ``rows`` (an exact Python int, never an overflowed one) above ``glmmsim.limits.max_rows``."""
    if rows > _IN_FORCE.max_rows:
        raise ParameterError(
            f"{what} would make {_size_text(rows)}; the limit is {_IN_FORCE.max_rows:,} rows; raise it with "
            f"glmmsim.limits.max_rows = N (or the environment variable GLMMSIM_MAX_ROWS) if the memory is "
            f"there, or simulate a design this large in partitions on the Dask path",
            parameter=parameter,
        )


def check_total_rows(rows_per_replicate: int, replicates: int, what: str = "replicates") -> None:
    """Refuse a run of replicates whose total rows exceed ``glmmsim.limits.max_total_rows``."""
    total = int(rows_per_replicate) * int(replicates)
    if total > _IN_FORCE.max_total_rows:
        raise ParameterError(
            f"{count_text(replicates)} replicates of {count_text(rows_per_replicate)} rows would write "
            f"{count_text(total)} rows; the limit "
            f"is {_IN_FORCE.max_total_rows:,}; raise it with glmmsim.limits.max_total_rows = N (or the "
            f"environment variable GLMMSIM_MAX_TOTAL_ROWS)",
            parameter=what,
        )


def check_limit(value: int, limit: str, what: str, parameter: str | None = None) -> None:
    """Refuse ``value`` above ``glmmsim.limits.<limit>``, naming the limit and how to raise it.

    Examples
    --------
    >>> with override(max_levels=3):
    ...     check_limit(5, "max_levels", "levels of 'cond'")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    glmmsim.errors.ParameterError: levels of 'cond' would be 5; the limit max_levels is 3 ...
    """
    bound = getattr(_IN_FORCE, limit)
    if value > bound:
        raise ParameterError(
            f"{what} would be {count_text(int(value))}; the limit {limit} is {bound:,} "
            f"({LIMITS[limit][1]}); {how_to_raise(limit)}",
            parameter=parameter,
        )


def check_partitioned_rows(largest: int, total: int, npartitions: int, what: str) -> None:
    """Refuse a partitioned dataset whose largest partition or whose total is over budget.

    On the Dask path one partition is what a worker holds in memory, so ``glmmsim.limits.max_rows``
    bounds the largest partition; ``glmmsim.limits.max_total_rows`` bounds the rows of all
    partitions together (what is written).

    Examples
    --------
    >>> check_partitioned_rows(1_000_000, 50_000_000, 50, "crossed(...)")
    >>> with override(max_rows=20_000_000):
    ...     check_partitioned_rows(25_000_000, 50_000_000, 2, "crossed(...)")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    glmmsim.errors.ParameterError: crossed(...) in 2 partitions would make partitions of up to 25,000,000 rows ...
    """
    if largest > _IN_FORCE.max_rows:
        need = -(-int(total) // _IN_FORCE.max_rows)  # ceil: partitions of at most max_rows rows
        raise ParameterError(
            f"{what} in {npartitions:,} partitions would make partitions of up to {_size_text(largest)}; a "
            f"partition (what one worker holds in memory) may have at most {_IN_FORCE.max_rows:,} rows "
            f"(glmmsim.limits.max_rows, GLMMSIM_MAX_ROWS); use at least {count_text(need)} partitions, "
            f"or 'auto' (about 1e6 rows each)",
            parameter="npartitions",
        )
    if total > _IN_FORCE.max_total_rows:
        raise ParameterError(
            f"{what} would make {count_text(total)} rows in all; the limit is {_IN_FORCE.max_total_rows:,} rows; "
            f"raise it with glmmsim.limits.max_total_rows = N (or the environment variable "
            f"GLMMSIM_MAX_TOTAL_ROWS) if the disk and time are there",
            parameter="npartitions",
        )


class _LimitsModule(types.ModuleType):
    """This module: its limit attributes read and set the limits in force, checked when set.

    A module rather than an object named ``limits`` in it, so ``glmmsim.limits`` is one thing
    whether it is reached as an attribute or imported.
    """

    def __getattr__(self, name: str) -> int:  # called only for names the module does not define
        if name in LIMITS:
            return getattr(_IN_FORCE, name)
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")

    def __setattr__(self, name: str, value: object) -> None:
        # a misspelt limit (max_row) is refused, not kept as a new module attribute that no check reads
        if name in LIMITS or name.startswith("max_"):
            setattr(_IN_FORCE, name, value)
        else:
            super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *LIMITS})

    def __repr__(self) -> str:
        return f"<module 'glmmsim.limits': {repr(_IN_FORCE)[len('Limits('):-1]}>"


sys.modules[__name__].__class__ = _LimitsModule
