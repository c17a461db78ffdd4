"""Partitioned designs: a Dask DataFrame whose partitions are generated on the workers.

``crossed(..., npartitions=k)`` and ``nested(..., npartitions=k)`` split the
subjects (or the outermost units) into ``k`` contiguous ranges; partition ``p``
is the pandas design of its range of units, which the pandas generators give
exactly (every design draw is keyed by unit label, never by a sequential
stream). Only the arguments travel to the workers, so a 1e9-row design never
exists in the client's memory.

Every partition has the global row index of the pandas design (``0 .. n-1``),
and the grouping columns are categoricals. Their categories are known (the
same in every partition, all units in label order) when the unit count can be
told without generating the rows and is at most :data:`KNOWN_CATEGORIES_MAX`;
otherwise each partition carries its own labels and the Dask column has
unknown categories.

Partition lengths are known without generating anything when no rows are
dropped at random (no ``missing``, no ``trials_per_subject``, fixed cluster
sizes); otherwise the rows of each partition are counted in one pass on the
workers before the frame is returned, so that the index is global.

Examples
--------
>>> from glmmsim.design import crossed
>>> lazy = crossed(6, 4, within={"cond": ["a", "b"]}, npartitions=3, seed=1)
>>> lazy.npartitions, lazy.divisions
(3, (0, 16, 32, 47))
>>> whole = crossed(6, 4, within={"cond": ["a", "b"]}, seed=1)
>>> bool((lazy.compute()["subject"].astype(str) == whole["subject"]).all())
True
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import GlmmsimWarning, InputTypeError, ParameterError
from ..model.dask_frames import remember_lengths
from ..seeding import as_seed_sequence
from . import generators

__all__ = ["crossed", "nested", "KNOWN_CATEGORIES_MAX"]

#: Grouping columns with more units than this get per-partition (unknown) categories:
#: a categories list of every unit would be rebuilt in every partition and every file.
KNOWN_CATEGORIES_MAX = 1_000_000


def _dd():
    try:
        import dask.dataframe as dd
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise InputTypeError(
            "npartitions= needs Dask: pip install 'glmmsim[dask]' (dask[dataframe] and distributed)"
        ) from None
    return dd


#: Rows per partition chosen by ``npartitions="auto"``: a call's fixed cost is a few ms, so
#: partitions of about a million rows keep it negligible while a worker's memory stays small.
ROWS_PER_PARTITION = 1_000_000


def _check_npartitions(npartitions: object, units: int, rows_per_unit: int) -> int:
    if npartitions == "auto":
        npartitions = max(1, math.ceil(units * rows_per_unit / ROWS_PER_PARTITION))
    if isinstance(npartitions, bool) or not isinstance(npartitions, numbers.Integral) or npartitions < 1:
        raise ParameterError(f"npartitions must be an int >= 1 or 'auto'; got {npartitions!r}")
    # a partition is at least one unit: more partitions than units would be empty
    return min(int(npartitions), units)


def _unit_ranges(units: int, k: int) -> list[range]:
    """``k`` contiguous ranges of unit numbers 1..units, sizes differing by at most one."""
    edges = np.linspace(1, units + 1, k + 1).round().astype(int)
    return [range(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


@dataclass(frozen=True)
class _Part:
    """Builds one partition on a worker: the pandas design of a range of units, reindexed."""

    generator: str  # "crossed" or "nested"
    kwargs: Mapping[str, Any]
    range_arg: str  # the argument (or levels entry) that takes the unit range
    categories: Mapping[str, Sequence[str] | None]

    def rows(self, units: range) -> pd.DataFrame:
        kwargs = dict(self.kwargs)
        if self.generator == "crossed":
            kwargs["subjects"] = units
        else:
            levels = dict(kwargs["levels"])
            levels[self.range_arg] = units
            kwargs["levels"] = levels
        with warnings.catch_warnings():
            # warnings about the design were shown once, on the client
            warnings.simplefilter("ignore", GlmmsimWarning)
            return getattr(generators, self.generator)(**kwargs)

    def __call__(self, task: tuple[range, int]) -> pd.DataFrame:
        units, start = task
        df = self.rows(units)
        df.index = pd.RangeIndex(start, start + len(df))
        return _as_categories(df, self.categories)


def _count(part: _Part, units: range) -> int:
    return len(part.rows(units))


def _as_categories(df: pd.DataFrame, categories: Mapping[str, Sequence[str] | None]) -> pd.DataFrame:
    for col, cats in categories.items():
        # codes from a factorization (fast on Arrow-backed strings), mapped to the categories once per level
        codes, uniques = pd.factorize(df[col], sort=False)
        if cats is None:  # too many units to list: this partition's own labels, in order of appearance
            df[col] = pd.Categorical.from_codes(codes, categories=uniques)
        else:
            dtype = _dtype(tuple(cats))  # a tuple already (from crossed/nested): no copy
            df[col] = pd.Categorical.from_codes(dtype.categories.get_indexer(uniques)[codes], dtype=dtype)
    return df


_DTYPES: dict[tuple[str, ...], pd.CategoricalDtype] = {}


def _dtype(cats: tuple[str, ...]) -> pd.CategoricalDtype:
    """One CategoricalDtype per category list and worker process (its hash table is built once)."""
    if cats not in _DTYPES:
        if len(_DTYPES) > 64:
            _DTYPES.clear()
        _DTYPES[cats] = pd.CategoricalDtype(list(cats))
    return _DTYPES[cats]


def _meta(sample: pd.DataFrame, categories: Mapping[str, Sequence[str] | None]) -> pd.DataFrame:
    dd = _dd()
    meta = _as_categories(sample.iloc[:0].copy(), {c: (v if v is not None else []) for c, v in categories.items()})
    meta.index = pd.RangeIndex(0)
    unknown = [c for c, v in categories.items() if v is None]
    if unknown:
        meta = dd.utils.clear_known_categories(meta, cols=unknown)
    return meta


def _build(part: _Part, ranges: list[range], sample: pd.DataFrame, lengths: list[int] | None):
    dd = _dd()
    if lengths is None:
        import dask

        lengths = list(dask.compute(*[dask.delayed(_count)(part, r) for r in ranges]))
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(int)
    if all(n > 0 for n in lengths):
        divisions = tuple(int(s) for s in starts[:-1]) + (int(starts[-1]) - 1,)
    else:  # an empty partition has no first row to divide at
        divisions = None
    tasks = [(r, int(s)) for r, s in zip(ranges, starts[:-1])]
    frame = dd.from_map(
        part,
        tasks,
        meta=_meta(sample, part.categories),
        divisions=divisions,
        label=f"glmmsim-{part.generator}",
        enforce_metadata=False,
    )
    remember_lengths(frame, tuple(int(n) for n in lengths))
    return frame


def _fixed_seed(seed: Any) -> np.random.SeedSequence:
    # every partition must use the same design key: None (fresh entropy) is resolved here, once
    return as_seed_sequence(seed, "seed")


def crossed(*, npartitions: int, subjects: int = 20, **kwargs: Any):
    """:func:`glmmsim.design.crossed` as a Dask DataFrame of ranges of subjects.

    Called by ``crossed(..., npartitions=k)``; see the module docstring.
    """
    kwargs["seed"] = _fixed_seed(kwargs.get("seed"))
    units = generators._unit_range(subjects, "subjects")
    total = units.stop - units.start
    # the first subject alone: validates every argument, shows warnings once, gives the columns
    sample = generators.crossed(subjects=range(1, 2), **kwargs)
    k = _check_npartitions(npartitions, total, len(sample))
    categories: dict[str, Sequence[str] | None] = {
        kwargs.get("subject", "subject"): _listed(kwargs.get("subject_prefix", "s"), total)
    }
    if kwargs.get("items") is not None:
        categories[kwargs.get("item", "item")] = _listed(kwargs.get("item_prefix", "i"), int(kwargs["items"]))
    part = _Part("crossed", kwargs, "subjects", categories)
    ranges = _unit_ranges(total, k)
    fixed_size = not kwargs.get("missing") and kwargs.get("trials_per_subject") is None
    lengths = [len(r) * len(sample) for r in ranges] if fixed_size else None
    return _build(part, ranges, sample, lengths)


def _listed(prefix: str, n: int) -> tuple[str, ...] | None:
    return tuple(generators.unit_labels(prefix, n)) if n <= KNOWN_CATEGORIES_MAX else None


def nested(*, npartitions: int, levels: Mapping[str, Any], **kwargs: Any):
    """:func:`glmmsim.design.nested` as a Dask DataFrame of ranges of outermost units.

    Called by ``nested(..., npartitions=k)``; see the module docstring.
    """
    kwargs["seed"] = _fixed_seed(kwargs.get("seed"))
    if not isinstance(levels, Mapping) or not levels:
        generators.nested(levels=levels, **kwargs)  # raises the generator's own error
    names = list(levels)
    units = generators._unit_range(levels[names[0]], f"levels[{names[0]!r}]")
    total = units.stop - units.start
    sample = generators.nested(levels={**levels, names[0]: range(1, 2)}, **kwargs)
    k = _check_npartitions(npartitions, total, len(sample))
    categories = _nested_categories(levels, names, total, kwargs)
    part = _Part("nested", {**kwargs, "levels": dict(levels)}, names[0], categories)
    ranges = _unit_ranges(total, k)
    fixed = all(isinstance(s, numbers.Integral) for s in list(levels.values())[1:])
    rows_per_top = len(sample)  # with fixed sizes every outermost unit has the same rows
    lengths = [len(r) * rows_per_top for r in ranges] if fixed and not kwargs.get("missing") else None
    return _build(part, ranges, sample, lengths)


def _nested_categories(
    levels: Mapping[str, Any], names: list[str], total: int, kwargs: Mapping[str, Any]
) -> dict[str, Sequence[str] | None]:
    """Known categories for each unit level whose units can be listed cheaply (fixed sizes, few units)."""
    out: dict[str, Sequence[str] | None] = {}
    count = total
    for depth, name in enumerate(names):
        if depth > 0:
            size = levels[name]
            count = count * int(size) if isinstance(size, numbers.Integral) and count is not None else None
        if count is None or count > KNOWN_CATEGORIES_MAX:
            out[name] = None
            continue
        # the unit tree down to this level alone (no rows below it): its labels, in order
        upper = {n: levels[n] for n in names[: depth + 1]}
        tree = generators.nested(
            levels=upper,
            prefixes=kwargs.get("prefixes"),
            labels=kwargs.get("labels", "full"),
            seed=kwargs["seed"],
        )
        out[name] = tuple(pd.unique(tree[name].to_numpy(dtype=object)))
    return out
