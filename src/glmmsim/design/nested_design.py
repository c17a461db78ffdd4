"""Nested designs: units nested in units with fixed or drawn cluster sizes (:func:`nested`)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputTypeError, ParameterError, about, did_you_mean, format_names
from ..limits import check_limit, check_rows
from ..randomness.seeds import SeedLike, seed_key
from .covariates import _add_covariates, _check_covariates
from .units import (
    _assign_between,
    _check_choice,
    _check_count,
    _check_name,
    _check_rate,
    _check_size,
    _check_unique_columns,
    _draw_sizes,
    _drop_missing,
    _drop_unused_labels,
    _factor_column,
    _factors,
    FactorSpec,
    _label_keys,
    _partitioned,
    _plan_nested,
    _row_keys,
    SizeSpec,
    unit_labels,
    _unit_range,
)

__all__ = ["nested"]


# ---------------------------------------------------------------------------
# nested designs
# ---------------------------------------------------------------------------


def nested(
    levels: Mapping[str, SizeSpec],
    *,
    within: FactorSpec | None = None,
    between: Mapping[str, FactorSpec] | None = None,
    repetitions: int = 1,
    missing: float = 0.0,
    covariates: Mapping[str, Mapping[str, Any]] | None = None,
    assign: str = "balanced",
    prefixes: Mapping[str, str] | None = None,
    labels: str = "full",
    npartitions: int | str | None = None,
    seed: SeedLike = None,
) -> pd.DataFrame:
    """Units nested in units, e.g. pupils in classes in schools.

    Parameters
    ----------
    levels : mapping
        ``{unit: size}`` from the outermost to the innermost unit.  The first
        size is a count (int; a range of unit numbers gives exactly those units'
        rows of any larger design); every other size is per parent unit and may be
        an int (fixed), a ``(low, high)`` pair (uniform integer, inclusive,
        drawn per parent), ``{"poisson": mean}`` (Poisson with that mean,
        at least 1) or a callable receiving a per-parent Generator and
        returning an int.
    within : mapping, optional
        ``{factor: [levels]}`` observed for every innermost unit (repeated
        measures, e.g. ``{"time": ["pre", "post"]}``).
    between : mapping, optional
        ``{unit: {factor: [levels]}}``: attributes assigned at a unit level,
        e.g. ``{"school": {"treatment": ["control", "program"]}}``.  With
        ``assign="balanced"`` units rotate over the level combinations by their
        number within the parent; ``"random"`` draws per unit.
    repetitions : int
        Observations per innermost unit and ``within`` cell.
    missing : float
        Probability that an observation is missing (dropped).
    covariates : mapping, optional
        As in :func:`crossed`; ``per`` names a unit level or ``"trial"`` (one
        draw per row).
    assign : {"balanced", "random"}
    prefixes : mapping, optional
        Label prefix per unit; default the first letter of the unit name (the
        first three letters if first letters collide).
    labels : {"full", "local"}
        ``full`` labels carry their parents (``s001-c002-p017``), so they are
        unique and ``(1 | class)`` works as well as ``(1 | school/class)``;
        ``local`` labels are numbered within the parent (``c002``).
    npartitions : int or "auto", optional
        Return a lazy Dask DataFrame of this many partitions ("auto": about 1e6 rows each), each a range of
        outermost units generated on the workers (see :mod:`glmmsim.dask.partitions`).
    seed : None, int, SeedSequence or Generator

    Returns
    -------
    pandas.DataFrame
        One column per unit level (outermost first), the ``between`` factors
        after their unit, ``within`` factors, ``rep`` (if repetitions > 1),
        covariates.

    Examples
    --------
    >>> d = nested({"school": 2, "class": 2, "pupil": 3}, seed=1)
    >>> d.shape
    (12, 3)
    >>> d.iloc[0].tolist()
    ['s001', 's001-c001', 's001-c001-p001']
    >>> sizes = nested({"school": 3, "class": (1, 4)}, seed=2).groupby("school", observed=True).size()
    >>> bool(sizes.between(1, 4).all())
    True
    """
    if npartitions is not None:  # Dask: partitions generated on the workers
        return _partitioned().nested(**locals())
    with about("levels"):
        unit_names, sizes = _check_levels(levels)
    with about("within"):
        within_f = _factors(within, "within")
    with about("between"):
        between_f = _check_between(between, unit_names)
    with about("repetitions"):
        reps = _check_count(repetitions, "repetitions")
    with about("missing"):
        rate = _check_rate(missing, "missing")
    with about("assign"):
        assign = _check_choice(assign, ("balanced", "random"), "assign")
    with about("labels"):
        labels = _check_choice(labels, ("full", "local"), "labels")
    with about("prefixes"):
        pref = _check_prefixes(prefixes, unit_names)
    covs = _check_covariates(covariates, unit_names)
    columns = []
    for u in unit_names:
        columns += [u, *between_f.get(u, {})]
    columns += [*within_f, *(["rep"] if reps > 1 else []), *covs]
    _check_unique_columns(columns)
    key = seed_key(seed, "seed")

    # grow the tree level by level; each unit's size depends only on its parent's label
    top = _unit_range(sizes[0], f"levels[{unit_names[0]!r}]")
    n_top = top.stop - top.start  # len() of a range overflows beyond 2**63
    n_cells = math.prod(len(lv) for lv in within_f.values()) * reps
    check_rows(n_top * n_cells, f"nested: {n_top} {unit_names[0]} unit(s) x {n_cells} cell(s)", "levels")
    _plan_nested(unit_names, sizes, n_top, n_cells, len(columns))
    paths = [[lab] for lab in unit_labels(pref[unit_names[0]], n_top, start=top.start)]
    for depth in range(1, len(unit_names)):
        parents = [p[-1] for p in paths]
        counts = _draw_sizes(sizes[depth], key, f"size:{unit_names[depth]}", parents, f"levels[{unit_names[depth]!r}]")
        # the exact total before any label is made (a float sum cannot overflow int64)
        total = int(counts.sum(dtype=np.float64)) if len(counts) else 0
        drawn = f"nested: {total:,} {unit_names[depth]} unit(s) in {len(parents):,} {unit_names[depth - 1]} unit(s)"
        check_rows(total * n_cells, f"{drawn} x {n_cells} cell(s)", "levels")
        # sizes from a callable are known only now: the same unit budget as planned sizes
        check_limit(total, "max_nested_units", drawn, parameter="levels")
        paths = [
            path + [f"{path[-1]}-{lab}"]
            for path, n in zip(paths, counts)
            for lab in unit_labels(pref[unit_names[depth]], int(n))
        ]

    table = pd.DataFrame(paths, columns=unit_names)
    data: dict[str, Any] = {}
    for depth, u in enumerate(unit_names):
        # unit labels as categoricals (categories in label order), factorized once here, on one
        # row per innermost unit: the rows below repeat the codes, not the strings
        codes, uniques = pd.factorize(table[u].to_numpy(dtype=object))
        data[u] = pd.Categorical.from_codes(codes, categories=uniques)
        if u in between_f:
            first = ~table.duplicated(unit_names[: depth + 1]).to_numpy()
            unit_labels_ = table[u].to_numpy()[first].tolist()
            nums = _local_numbers(table, unit_names, depth)[first]
            idx, combos = _assign_between(between_f[u], unit_labels_, nums, key, u, assign)
            row_idx = idx[pd.Index(unit_labels_).get_indexer(table[u].to_numpy())]
            for k, f in enumerate(between_f[u]):
                data[f] = _factor_column(combos, k, between_f[u][f], row_idx)
    base = pd.DataFrame(data)

    cells = list(itertools.product(*within_f.values())) if within_f else [()]
    shape = (len(base), len(cells), reps)
    b_i, c_i, r_i = (a.ravel() for a in np.indices(shape))
    df = base.iloc[b_i].reset_index(drop=True)
    for k, f in enumerate(within_f):
        df[f] = _factor_column(cells, k, within_f[f], c_i)
    if reps > 1:
        df["rep"] = r_i + 1
    inner = unit_names[-1]
    cell_keys = _label_keys(key, "cell", ["|".join(map(str, c)) for c in cells])
    row_keys = _row_keys(
        _label_keys(key, "unit", table[inner].tolist())[b_i], cell_keys[c_i], r_i.astype(np.uint64)
    )
    df, row_keys = _drop_missing(df, row_keys, rate, key, whole=not isinstance(sizes[0], range))
    df = _add_covariates(df, covs, key, row_keys)
    df = _drop_unused_labels(df[columns].reset_index(drop=True), unit_names)
    if labels == "local":  # relabel the categories, not the rows; a unit's rows are contiguous, in label order
        for u in unit_names[1:]:
            local, uniques = pd.factorize(df[u].cat.categories.str.rsplit("-", n=1).str[-1])
            df[u] = pd.Categorical.from_codes(local[df[u].cat.codes], categories=uniques)
    return df


def _local_numbers(table: pd.DataFrame, unit_names: list[str], depth: int) -> np.ndarray:
    """1-based number of each row's unit within its parent (parsed from its label)."""
    return table[unit_names[depth]].str.extract(r"(\d+)$")[0].astype(int).to_numpy()


def _check_levels(levels: object) -> tuple[list[str], list]:
    if not isinstance(levels, Mapping) or not levels:
        raise InputTypeError(
            "levels must be a non-empty mapping {unit: size}, outermost first, e.g. "
            "{'school': 10, 'class': (2, 4), 'pupil': 25}"
        )
    names = [_check_name(n, "levels unit name") for n in levels]
    sizes = list(levels.values())
    with about("levels", names[0]):
        _unit_range(sizes[0], f"levels[{names[0]!r}]")
    for name, size in zip(names[1:], sizes[1:]):
        with about("levels", name):
            _check_size(size, f"levels[{name!r}]")
    return names, sizes


def _check_between(between: object, unit_names: list[str]) -> dict[str, dict[str, list]]:
    if between is None:
        return {}
    if not isinstance(between, Mapping):
        raise InputTypeError("between must be a mapping {unit: {factor: [levels]}}")
    out = {}
    for unit, factors in between.items():
        if unit not in unit_names:
            raise ParameterError(
                f"between names unit {unit!r}; units are {format_names(unit_names)}."
                + did_you_mean(str(unit), unit_names)
            )
        out[unit] = _factors(factors, f"between[{unit!r}]")
    return out


def _check_prefixes(prefixes: object, unit_names: list[str]) -> dict[str, str]:
    if prefixes is None:
        pref = {u: u[0] for u in unit_names}
        if len(set(pref.values())) < len(pref):
            pref = {u: u[:3] for u in unit_names}
    else:
        if not isinstance(prefixes, Mapping):
            raise InputTypeError("prefixes must be a mapping {unit: prefix}")
        for u in prefixes:
            if u not in unit_names:
                raise ParameterError(
                    f"prefixes names unit {u!r}; units are {format_names(unit_names)}."
                    + did_you_mean(str(u), unit_names)
                )
        pref = {u: _check_name(prefixes.get(u, u[0]), f"prefixes[{u!r}]") for u in unit_names}
    if len(set(pref.values())) < len(pref):
        raise ParameterError(f"unit label prefixes must differ; got {pref!r}; pass prefixes={{unit: prefix}}")
    for p in pref.values():
        if "-" in p or p[-1].isdigit():
            raise ParameterError(f"prefix {p!r} must not contain '-' or end in a digit")
    return pref
