"""Partitioned designs: a Dask DataFrame whose partitions are generated on the workers.

``crossed(..., npartitions=k)`` and ``nested(..., npartitions=k)`` split the
subjects (or the outermost units) into ``k`` contiguous ranges; partition ``p``
is the pandas design of its range of units, which the pandas generators give
exactly (every design draw is keyed by unit label, never by a sequential
stream). Only the arguments and the unit ranges travel to the workers: nothing
proportional to the design (rows, unit labels, category lists) is built in the
client or embedded in the task graph, so a 1e9-row design costs the client a
few MB.

Sizes are checked per partition: ``glmmsim.limits.max_rows`` bounds the
largest partition (what one worker holds) and ``limits.max_total_rows`` the
whole (:func:`glmmsim.limits.check_partitioned_rows`); the client's limits
travel with the tasks, so workers apply the same ones.

Every partition has the global row index of the pandas design (``0 .. n-1``),
and the grouping columns are categoricals. Their categories are known (the
same in every partition, all units in label order) when the unit count can be
told without generating the rows and is at most :data:`KNOWN_CATEGORIES_MAX`;
otherwise each partition carries its own labels and the Dask column has
unknown categories. Workers rebuild a known category list from a short recipe
(prefix and count, or the upper levels of a nested tree), once per process.

Partition lengths are known without generating anything when no rows are
dropped at random (no ``missing``, no ``trials_per_subject``, fixed cluster
sizes); otherwise the rows of each partition are counted in one pass, run by
the current Dask scheduler (create the ``distributed.Client`` first to count on
the cluster), before the frame is returned, so that the index is global.

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

import contextlib
import contextvars
import math
import numbers
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import GlmmsimWarning, InputTypeError, ParameterError
from .. import limits
from ..limits import check_partitioned_rows, count_text
from .frames import remember_lengths
from ..randomness.seeds import as_seed_sequence
from ..design import crossed_design, nested_design
from ..design import units as design_units

__all__ = ["crossed", "nested", "checks_only", "KNOWN_CATEGORIES_MAX", "ROWS_PER_PARTITION"]

#: Grouping columns with more units than this get per-partition (unknown) categories: a list
#: of every unit would be built in the client (for the frame's ``meta``) and in every worker.
KNOWN_CATEGORIES_MAX = 100_000


#: The pandas generator a partition is made by, by name (a task carries the name, not the function).
_GENERATORS = {"crossed": crossed_design.crossed, "nested": nested_design.nested}

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
        target = min(ROWS_PER_PARTITION, limits.max_rows)
        npartitions = max(1, math.ceil(units * max(rows_per_unit, 1) / target))
    if isinstance(npartitions, bool) or not isinstance(npartitions, numbers.Integral) or npartitions < 1:
        raise ParameterError(f"npartitions must be an int >= 1 or 'auto'; got {npartitions!r}", parameter="npartitions")
    # a partition is at least one unit: more partitions than units would be empty
    return min(int(npartitions), units)


def _unit_ranges(units: int, k: int) -> list[range]:
    """``k`` contiguous ranges of unit numbers 1..units, sizes differing by at most one."""
    edges = np.linspace(1, units + 1, k + 1).round().astype(int)
    return [range(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


# ------------------------------------------------------------------------ category lists


@dataclass(frozen=True)
class _UnitLabels:
    """Recipe for the labels ``prefix001 .. prefix<n>`` (a crossed design's subjects or items)."""

    prefix: str
    n: int

    @property
    def cache_key(self) -> tuple:
        return ("units", self.prefix, self.n)

    def build(self) -> list[str]:
        return design_units.unit_labels(self.prefix, self.n)


@dataclass(frozen=True, eq=False)
class _TreeLabels:
    """Recipe for a nested level's labels: the unit tree down to that level, without rows."""

    upper: tuple[tuple[str, Any], ...]  # (level, size) from the outermost down to this one
    prefixes: Any
    labels: str
    seed: np.random.SeedSequence

    @property
    def cache_key(self) -> tuple:
        prefixes = tuple(sorted(self.prefixes.items())) if isinstance(self.prefixes, Mapping) else self.prefixes
        return ("tree", self.upper, prefixes, self.labels, self.seed.entropy, self.seed.spawn_key)

    def build(self) -> list[str]:
        tree = nested_design.nested(levels=dict(self.upper), prefixes=self.prefixes, labels=self.labels, seed=self.seed)
        return list(pd.unique(tree[self.upper[-1][0]].to_numpy(dtype=object)))


#: Category dtypes built in this process, by recipe (a worker builds each list once, not per task).
_DTYPES: dict[tuple, pd.CategoricalDtype] = {}
_DTYPES_KEPT = 8  # a few lists of at most KNOWN_CATEGORIES_MAX labels: a few tens of MB at most


def _dtype(recipe: Any) -> pd.CategoricalDtype:
    key = recipe.cache_key
    if key not in _DTYPES:
        if len(_DTYPES) >= _DTYPES_KEPT:
            _DTYPES.pop(next(iter(_DTYPES)))
        _DTYPES[key] = pd.CategoricalDtype(recipe.build())
    return _DTYPES[key]


# ------------------------------------------------------------------------ partitions


@dataclass(frozen=True)
class _Part:
    """Builds one partition on a worker: the pandas design of a range of units, reindexed.

    Holds the generator's arguments, category recipes and the client's row limit only
    (a few hundred bytes), never a list proportional to the design.
    """

    generator: str  # "crossed" or "nested"
    kwargs: Mapping[str, Any]
    range_arg: str  # the argument (or levels entry) that takes the unit range
    categories: Mapping[str, Any]  # column -> _UnitLabels/_TreeLabels, or None: the partition's own labels
    max_rows: int  # the client's glmmsim.limits.max_rows, applied on the worker too

    def rows(self, units: range, count_only: bool = False) -> pd.DataFrame:
        kwargs = dict(self.kwargs)
        if count_only:
            # which rows exist depends on row identities only, not on their order or covariates:
            # the count skips the shuffle (the costliest step of a design) and the covariate draws
            kwargs["covariates"] = None
            if "order" in kwargs:
                kwargs["order"] = "fixed"
        if self.generator == "crossed":
            kwargs["subjects"] = units
        else:
            levels = dict(kwargs["levels"])
            levels[self.range_arg] = units
            kwargs["levels"] = levels
        with warnings.catch_warnings(), limits.override(max_rows=self.max_rows):
            # warnings about the design were shown once, on the client
            warnings.simplefilter("ignore", GlmmsimWarning)
            return _GENERATORS[self.generator](**kwargs)

    def __call__(self, task: tuple[range, int]) -> pd.DataFrame:
        units, start = task
        df = self.rows(units)
        df.index = pd.RangeIndex(start, start + len(df))
        return _as_categories(df, self.categories)


def _count(part: _Part, units: range) -> int:
    return len(part.rows(units, count_only=True))


def _as_categories(df: pd.DataFrame, categories: Mapping[str, Any]) -> pd.DataFrame:
    for col, recipe in categories.items():
        # codes from a factorization (fast on Arrow-backed strings), mapped to the categories once per level
        codes, uniques = pd.factorize(df[col], sort=False)
        if recipe is None:  # too many units to list: this partition's own labels, in order of appearance
            df[col] = pd.Categorical.from_codes(codes, categories=uniques)
        else:
            dtype = _dtype(recipe)
            df[col] = pd.Categorical.from_codes(dtype.categories.get_indexer(uniques)[codes], dtype=dtype)
    return df


def _meta(sample: pd.DataFrame, categories: Mapping[str, Any]) -> pd.DataFrame:
    dd = _dd()
    meta = sample.iloc[:0].copy()
    for col, recipe in categories.items():
        # the client's copy of a known list (at most KNOWN_CATEGORIES_MAX labels), not cached here
        meta[col] = pd.Categorical([], categories=recipe.build() if recipe is not None else [])
    meta.index = pd.RangeIndex(0)
    unknown = [c for c, v in categories.items() if v is None]
    if unknown:
        meta = dd.utils.clear_known_categories(meta, cols=unknown)
    return meta


_CHECKS_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar("glmmsim_partitioned_checks_only", default=False)


@contextlib.contextmanager
def checks_only() -> Iterator[None]:
    """Inside this block ``crossed/nested(..., npartitions=)`` check their arguments and sizes, then return None.

    What a command runs before it claims its output or starts a cluster: every refusal
    that needs no rows comes first. Rows dropped at random are not counted.

    Examples
    --------
    >>> from glmmsim.design import crossed
    >>> with checks_only():
    ...     print(crossed(10, 4, missing=0.1, npartitions=2))
    None
    """
    token = _CHECKS_ONLY.set(True)
    try:
        yield
    finally:
        _CHECKS_ONLY.reset(token)


def _build(part: _Part, ranges: list[range], sample: pd.DataFrame, lengths: list[int] | None, what: str):
    if _CHECKS_ONLY.get():
        if lengths is not None:
            check_partitioned_rows(max(lengths), sum(lengths), len(ranges), what)
        return None
    dd = _dd()
    if lengths is None:  # rows dropped at random: counted by the current scheduler (the cluster's, if any)
        import dask

        lengths = list(dask.compute(*[dask.delayed(_count, pure=True)(part, r) for r in ranges]))
    check_partitioned_rows(max(lengths), sum(lengths), len(ranges), what)
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
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


def _check_planned(per_unit: int, ranges: list[range], what: str) -> None:
    """Refuse partitions whose planned rows (before random drops) exceed the limits, before any work."""
    largest = max(len(r) for r in ranges) * per_unit
    total = sum(len(r) for r in ranges) * per_unit
    check_partitioned_rows(largest, total, len(ranges), what)


def crossed(*, npartitions: int, subjects: int = 20, **kwargs: Any):
    """:func:`glmmsim.design.crossed` as a Dask DataFrame of ranges of subjects.

    Called by ``crossed(..., npartitions=k)``; see the module docstring.
    """
    kwargs["seed"] = _fixed_seed(kwargs.get("seed"))
    units = design_units._unit_range(subjects, "subjects")
    total = units.stop - units.start
    # the first subject alone: validates every argument, shows warnings once, gives the columns
    sample = crossed_design.crossed(subjects=range(1, 2), **kwargs)
    random_trials = kwargs.get("trials_per_subject") is not None
    # rows planned per subject before missing trials are dropped (one subject's grid, again)
    planned = len(sample) if not kwargs.get("missing") else len(crossed_design.crossed(subjects=range(1, 2), **{**kwargs, "missing": 0}))
    k = _check_npartitions(npartitions, total, planned)
    ranges = _unit_ranges(total, k)
    items = kwargs.get("items")
    what = f"crossed(subjects={count_text(total)}, items={count_text(int(items)) if items is not None else None})"
    if not random_trials:
        _check_planned(planned, ranges, what)
    categories: dict[str, Any] = {kwargs.get("subject", "subject"): _listed(kwargs.get("subject_prefix", "s"), total)}
    if items is not None:
        categories[kwargs.get("item", "item")] = _listed(kwargs.get("item_prefix", "i"), int(items))
    part = _Part("crossed", kwargs, "subjects", categories, limits.max_rows)
    fixed_size = not kwargs.get("missing") and not random_trials
    lengths = [len(r) * len(sample) for r in ranges] if fixed_size else None
    return _build(part, ranges, sample, lengths, what)


def _listed(prefix: str, n: int) -> _UnitLabels | None:
    return _UnitLabels(prefix, n) if n <= KNOWN_CATEGORIES_MAX else None


def nested(*, npartitions: int, levels: Mapping[str, Any], **kwargs: Any):
    """:func:`glmmsim.design.nested` as a Dask DataFrame of ranges of outermost units.

    Called by ``nested(..., npartitions=k)``; see the module docstring.
    """
    kwargs["seed"] = _fixed_seed(kwargs.get("seed"))
    if not isinstance(levels, Mapping) or not levels:
        nested_design.nested(levels=levels, **kwargs)  # raises the generator's own error
    names = list(levels)
    units = design_units._unit_range(levels[names[0]], f"levels[{names[0]!r}]")
    total = units.stop - units.start
    sample = nested_design.nested(levels={**levels, names[0]: range(1, 2)}, **kwargs)
    fixed = all(isinstance(s, numbers.Integral) for s in list(levels.values())[1:])
    planned = len(sample)
    if fixed and kwargs.get("missing"):
        planned = len(nested_design.nested(levels={**levels, names[0]: range(1, 2)}, **{**kwargs, "missing": 0}))
    k = _check_npartitions(npartitions, total, planned)
    ranges = _unit_ranges(total, k)
    what = f"nested({names[0]}={count_text(total)}, ...)"
    if fixed:
        _check_planned(planned, ranges, what)
    categories = _nested_categories(levels, names, total, kwargs)
    part = _Part("nested", {**kwargs, "levels": dict(levels)}, names[0], categories, limits.max_rows)
    # with fixed sizes every outermost unit has the same rows
    lengths = [len(r) * planned for r in ranges] if fixed and not kwargs.get("missing") else None
    return _build(part, ranges, sample, lengths, what)


def _nested_categories(levels: Mapping[str, Any], names: list[str], total: int, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Category recipes for each unit level whose units can be listed cheaply (fixed sizes, few units)."""
    out: dict[str, Any] = {}
    count: int | None = total
    for depth, name in enumerate(names):
        if depth > 0:
            size = levels[name]
            count = count * int(size) if isinstance(size, numbers.Integral) and count is not None else None
        if count is None or count > KNOWN_CATEGORIES_MAX:
            out[name] = None
            continue
        # the unit tree down to this level alone (no rows below it) gives its labels, in order
        upper = tuple((n, levels[n]) for n in names[: depth + 1])
        out[name] = _TreeLabels(upper, kwargs.get("prefixes"), kwargs.get("labels", "full"), kwargs["seed"])
    return out
