"""Design units: labels, keyed per-unit draws and the checks every design generator shares.

Labels use a fixed scheme: a prefix and a 1-based number zero-padded to at
least three digits (``s001`` ... ``s999``, ``s1000``), so ``s017`` names the
same subject in a 40- and an 80-subject version of a study.  Every random
draw that belongs to a unit (its covariate values, a random between-subject
assignment, its number of trials, which of its trials are missing, the size
of a cluster) is derived by hashing ``(seed, purpose, label)`` rather than
taken from a sequential random stream, so adding subjects or schools never
changes what was drawn for the existing ones.  Adding items keeps each
existing item's draws (covariates, assignment, missingness), but ``trial``
numbers a subject's whole sequence, and with ``trials_per_subject`` the kept
subset is chosen among all of the subject's trials, so those can change.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Union

import numpy as np
import pandas as pd

from ..randomness.streams import level_keys, mix64, stream_key, string_key, uniforms
from ..errors import InputTypeError, ParameterError, did_you_mean, format_names
from ..limits import check_limit, check_rows, count_text
from ..model.parameters import check_number

__all__ = ["unit_labels"]

FactorSpec = Mapping[str, Sequence[Any]]
SizeSpec = Union[int, tuple, Mapping[str, float], Callable[[np.random.Generator], int]]


# ---------------------------------------------------------------------------
# labels and hashing
# ---------------------------------------------------------------------------


def unit_labels(prefix: str, n: int, start: int = 1) -> list[str]:
    """Labels ``prefix`` + number, zero-padded to at least three digits.

    The width never depends on ``n``, so a label names the same unit in a
    small and a large version of a design.

    Examples
    --------
    >>> unit_labels("s", 3)
    ['s001', 's002', 's003']
    >>> unit_labels("s", 2, start=999)
    ['s999', 's1000']
    """
    return [f"{prefix}{k:03d}" for k in range(start, start + n)]


def _label_keys(key: int, purpose: str, labels: Sequence[object]) -> np.ndarray:
    """One 64-bit key per label, depending only on (seed, purpose, label)."""
    hashed = level_keys([np.asarray(list(labels), dtype=object)])
    return mix64(hashed ^ np.uint64(stream_key(key, "design", purpose)))


def _label_uniforms(key: int, purpose: str, labels: Sequence[str]) -> np.ndarray:
    """One uniform per label, depending only on (seed, purpose, label)."""
    return uniforms(_label_keys(key, purpose, labels), 0)


def _row_uniforms(key: int, purpose: str, row_keys: np.ndarray) -> np.ndarray:
    """One uniform per row from its identity key, for a given purpose."""
    return uniforms(row_keys, stream_key(key, "design", purpose))


def _unit_generator(key: int, purpose: str, label: str) -> np.random.Generator:
    """A generator of the unit's own, for user callables that draw a cluster size."""
    return np.random.default_rng([key, string_key(purpose), string_key(str(label))])


# ---------------------------------------------------------------------------
# argument validation
# ---------------------------------------------------------------------------


def _check_count(value: object, argname: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputTypeError(f"{argname} must be an int >= {minimum}; got {type(value).__name__} {value!r}")
    if int(value) < minimum:
        raise ParameterError(f"{argname} must be >= {minimum}; got {value}")
    return int(value)


def _unit_range(value: object, argname: str) -> range:
    """Unit numbers 1..n for a count n, or the given range of numbers (a partition of units)."""
    if isinstance(value, range):
        if value.step != 1 or value.start < 1 or value.stop <= value.start:
            raise ParameterError(f"{argname} as a range must be non-empty, step 1, from >= 1; got {value!r}")
        return value
    return range(1, _check_count(value, argname) + 1)


def _partitioned():
    # layering: design hands npartitions= to the Dask package above it; imported on use (Dask is an extra)
    from ..dask import partitions

    return partitions


def _check_name(value: object, argname: str) -> str:
    if not isinstance(value, str) or not value:
        raise InputTypeError(f"{argname} must be a non-empty string; got {value!r}")
    return value


def _factors(spec: FactorSpec | None, argname: str) -> dict[str, list[Any]]:
    """Validate ``{factor: [level, ...]}`` and return a plain dict of lists."""
    if spec is None:
        return {}
    if not isinstance(spec, Mapping):
        raise InputTypeError(
            f"{argname} must be a mapping {{factor: [levels...]}}, e.g. "
            f"{{'condition': ['congruent', 'incongruent']}}; got {type(spec).__name__}"
        )
    out: dict[str, list[Any]] = {}
    for name, levels in spec.items():
        _check_name(name, f"{argname} factor name")
        if isinstance(levels, (str, bytes)) or not isinstance(levels, Sequence):
            raise InputTypeError(
                f"{argname}[{name!r}] must be a list of levels, e.g. ['a', 'b']; got {levels!r}"
            )
        levels = list(levels)
        unhashable = [v for v in levels if not isinstance(v, Hashable)]
        if unhashable:
            raise InputTypeError(
                f"{argname}[{name!r}] levels must be strings or numbers; got {unhashable[0]!r}"
            )
        if len(levels) < 1:
            raise ParameterError(f"{argname}[{name!r}] needs at least one level")
        if len({str(v) for v in levels}) != len(levels):
            raise ParameterError(f"{argname}[{name!r}] has repeated levels: {levels!r}")
        out[name] = levels
    return out


def _check_rate(value: object, argname: str) -> float:
    rate = check_number(value, argname, minimum=0.0)
    if rate >= 1.0:
        raise ParameterError(f"{argname} must be in [0, 1) (1 would drop every row); got {value}")
    return rate


def _check_unique_columns(columns: Sequence[str]) -> None:
    seen: set[str] = set()
    for col in columns:
        if col in seen:
            raise ParameterError(
                f"column name {col!r} is used twice in the design; give factors, covariates "
                "and unit columns distinct names"
            )
        seen.add(col)


# ---------------------------------------------------------------------------
# sizes (trial counts, cluster sizes)
# ---------------------------------------------------------------------------


def _check_size(spec: object, argname: str) -> None:
    if callable(spec):
        return
    # one unit larger than the row budget can never fit: refuse before drawing anything
    if isinstance(spec, numbers.Integral) and not isinstance(spec, bool):
        check_rows(_check_count(spec, argname), f"{argname}={spec}", parameter=argname)
        return
    if isinstance(spec, (tuple, list)) and len(spec) == 2:
        low, high = (_check_count(v, f"{argname} bound") for v in spec)
        if low > high:
            raise ParameterError(f"{argname}: low ({low}) must not exceed high ({high})")
        check_rows(high, f"{argname}={tuple(spec)!r}", parameter=argname)
        return
    if isinstance(spec, Mapping) and set(spec) == {"poisson"}:
        mean = check_number(spec["poisson"], f"{argname}['poisson']")
        if mean <= 0:
            raise ParameterError(f"{argname}['poisson'] must be a positive mean; got {spec['poisson']!r}")
        check_rows(int(min(mean, 1e300)), f"{argname}={{'poisson': {spec['poisson']:g}}} (one unit of that mean)", parameter=argname)
        return
    raise InputTypeError(
        f"{argname} must be an int, a (low, high) pair, {{'poisson': mean}} or a callable "
        f"rng -> int; got {spec!r}"
    )


#: Probability that a nested design's drawn size exceeds the planned maximum.
_PLAN_TAIL = 1e-9


def _total_quantile(spec: SizeSpec, parents: float) -> tuple[float, float] | None:
    """Expected total and a (1 - 1e-9) quantile of the units ``parents`` units of size ``spec`` draw.

    The total of ``n`` Poisson(m) sizes is Poisson(n m), so its quantile is exact; a
    (low, high) range uses the normal approximation plus six SDs, capped at ``n * high``.
    ``None`` for a callable, whose sizes are known only once drawn (and checked then).
    """
    if isinstance(spec, numbers.Integral):
        return parents * int(spec), parents * int(spec)
    if isinstance(spec, (tuple, list)):
        low, high = int(spec[0]), int(spec[1])
        mean, var = (low + high) / 2, ((high - low + 1) ** 2 - 1) / 12
        return parents * mean, min(parents * high, parents * mean + 6 * math.sqrt(parents * var))
    if isinstance(spec, Mapping):
        from scipy import stats

        mean = parents * float(spec["poisson"])
        top = float(stats.poisson.isf(_PLAN_TAIL, mean)) if mean < 1e15 else mean + 7 * math.sqrt(mean)
        return mean + parents * math.exp(-float(spec["poisson"])), top + parents  # sizes of 0 become 1
    return None


def _plan_nested(unit_names: Sequence[str], sizes: Sequence[SizeSpec], n_top: int, n_cells: int, n_columns: int) -> None:
    """Refuse a nested design whose expected or (1 - 1e-9)-quantile size is over budget, before drawing.

    Each unit of a nested design is built as a row of labels (about half a kilobyte while the
    tree grows), so units are budgeted by ``glmmsim.limits.max_nested_units`` as well as rows.
    """
    expected = most = float(n_top)
    for depth in range(1, len(unit_names)):
        by_mean, by_most = _total_quantile(sizes[depth], expected), _total_quantile(sizes[depth], most)
        if by_mean is None or by_most is None:
            return  # a callable: its sizes are checked once drawn
        expected, most = by_mean[0], by_most[1]
        what = (
            f"nested: {unit_names[depth]} units (expected {count_text(int(expected))}, at most "
            f"{count_text(int(most))} with probability 1 - {_PLAN_TAIL:g})"
        )
        check_rows(int(most) * n_cells, f"{what} x {n_cells} cell(s)", "levels")
        check_limit(int(most), "max_nested_units", what, parameter="levels")
        check_limit(int(most) * n_cells * n_columns, "max_cells", f"{what} x {n_cells} cell(s) x {n_columns} columns", "covariates")


def _draw_sizes(spec: SizeSpec, key: int, purpose: str, labels: Sequence[str], argname: str) -> np.ndarray:
    """One size per unit label, each depending only on (seed, purpose, label)."""
    if isinstance(spec, numbers.Integral):
        return np.full(len(labels), int(spec), dtype=np.int64)
    if isinstance(spec, (tuple, list)):
        low, high = int(spec[0]), int(spec[1])
        u = _label_uniforms(key, purpose, labels)
        return (low + np.floor(u * (high - low + 1))).astype(np.int64)
    if isinstance(spec, Mapping):
        u = _label_uniforms(key, purpose, labels)
        from scipy import stats  # imported on first use: scipy.stats costs a second of start-up

        return np.maximum(1, stats.poisson.ppf(u, spec["poisson"])).astype(np.int64)
    sizes = []
    for lab in labels:
        n = spec(_unit_generator(key, purpose, lab))
        sizes.append(_check_count(n, f"{argname} (value returned for {lab!r})"))
    return np.asarray(sizes, dtype=np.int64)


# ---------------------------------------------------------------------------
# shared row-level steps
# ---------------------------------------------------------------------------


def _assign_between(
    factors: dict[str, list], labels: list[str], numbers_: np.ndarray, key: int, unit: str, assign: str
) -> tuple[np.ndarray, list[tuple]]:
    """Index into the combinations of between-unit factors for each unit."""
    combos = list(itertools.product(*factors.values())) if factors else [()]
    if assign == "balanced":
        idx = (numbers_ - 1) % len(combos)
    else:
        u = _label_uniforms(key, f"between:{unit}", labels)
        idx = np.floor(u * len(combos)).astype(np.int64)
    return idx, combos


def _row_keys(*id_columns: np.ndarray) -> np.ndarray:
    """Combine per-row uint64 identity keys (unit label hashes, cell ids) into one key per row."""
    acc = np.zeros(len(id_columns[0]), dtype=np.uint64)
    for col in id_columns:
        acc = mix64(acc ^ col.astype(np.uint64))
    return acc


def _factor_column(combos: Sequence[tuple], position: int, levels: list[Any], combo_of_row: np.ndarray) -> pd.Categorical:
    """Categorical column of factor ``position`` of ``combos``, given each row's combination."""
    code_of_combo = np.array([levels.index(combo[position]) for combo in combos], dtype=np.int64)
    return pd.Categorical.from_codes(code_of_combo[combo_of_row], categories=levels)


def _check_choice(value: object, valid: Sequence[str], argname: str) -> str:
    if value not in valid:
        raise ParameterError(
            f"{argname} must be one of {format_names(valid)}; got {value!r}." + did_you_mean(str(value), valid)
        )
    return str(value)


def _drop_unused_labels(df: pd.DataFrame, units: Sequence[str]) -> pd.DataFrame:
    """Unit columns keep only the labels left after subsetting and missingness, in label order."""
    for unit in units:
        if isinstance(df[unit].dtype, pd.CategoricalDtype):
            df[unit] = df[unit].cat.remove_unused_categories()
    return df


def _drop_missing(df, row_keys, rate, key, whole=True):
    if rate == 0.0:
        return df, row_keys
    keep = _row_uniforms(key, "missing", row_keys) >= rate
    if whole and len(df) and not keep.any():  # a range of units (a partition) may lose all its rows
        raise ParameterError(
            f"missing={rate:g} drops all {len(df)} rows of the design, leaving no data; "
            f"use a lower missing rate or a larger design",
            parameter="missing",
        )
    return df[keep].reset_index(drop=True), row_keys[keep]
