"""Experimental designs: data frames of conditions to simulate responses for.

Two generators cover most studies:

* :func:`crossed` -- subjects crossed with items (a reaction-time or accuracy
  experiment), with within- and between-unit factors, repetitions,
  Latin-square counterbalancing, unbalanced trial counts, random missingness
  and continuous covariates;
* :func:`nested` -- units nested in units (pupils in classes in schools) with
  fixed or randomly drawn cluster sizes.

Both return an ordinary :class:`pandas.DataFrame`, one row per observation,
that can be passed straight to ``Model.simulate``.

Stability when a design grows
-----------------------------
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
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Union

import numpy as np
import pandas as pd

from ..randomness.streams import level_keys, mix64, stream_key, string_key, uniforms
from ..errors import GlmmsimWarning, InputTypeError, ParameterError, Where, about, did_you_mean, format_names
from ..limits import check_limit, check_rows, count_text
from ..model.parameters import check_number
from ..randomness.seeds import SeedLike, seed_key

__all__ = ["crossed", "nested", "unit_labels"]

FactorSpec = Mapping[str, Sequence[Any]]
SizeSpec = Union[int, tuple, Mapping[str, float], Callable[[np.random.Generator], int]]

#: Distributions a covariate may be drawn from, with their parameters and defaults.
COVARIATE_DISTRIBUTIONS: dict[str, dict[str, Any]] = {
    "normal": {"mean": 0.0, "sd": 1.0},
    "uniform": {"low": 0.0, "high": 1.0},
    "lognormal": {"meanlog": 0.0, "sdlog": 1.0},
    "integers": {"low": 0, "high": 9},
    "choice": {"levels": None, "p": None},
}



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


def _check_covariates(spec: Mapping | None, units: Sequence[str], argname: str = "covariates") -> dict:
    """Validate ``{name: {"per": unit, "dist": ..., params...}}``; fill defaults."""
    if spec is None:
        return {}
    if not isinstance(spec, Mapping):
        raise InputTypeError(f"{argname} must be a mapping {{name: {{'per': ..., 'dist': ...}}}}")
    valid_per = [*units, "trial"]
    out = {}
    for name, cov in spec.items():
        with about(argname, name):
            out[name] = _check_covariate(name, cov, argname, valid_per)
    return out


def _check_covariate(name: str, cov: object, argname: str, valid_per: list[str]) -> dict:
    """One covariate's spec, checked; errors get the path (argname, name) from the caller."""
    _check_name(name, f"{argname} name")
    where = f"{argname}[{name!r}]"
    if not isinstance(cov, Mapping):
        raise InputTypeError(f"{where} must be a mapping like {{'per': 'subject', 'dist': 'normal'}}")
    cov = dict(cov)
    per = cov.pop("per", "trial")
    if per not in valid_per:
        raise ParameterError(
            f"{where}['per'] must be one of {format_names(valid_per)}; got {per!r}."
            + did_you_mean(str(per), valid_per)
        )
    dist = cov.pop("dist", "normal")
    if dist not in COVARIATE_DISTRIBUTIONS:
        raise ParameterError(
            f"{where}['dist'] must be one of {format_names(COVARIATE_DISTRIBUTIONS)}; got {dist!r}."
            + did_you_mean(str(dist), COVARIATE_DISTRIBUTIONS)
        )
    params = dict(COVARIATE_DISTRIBUTIONS[dist])
    for key, value in cov.items():
        if key not in params:
            raise ParameterError(
                f"{where} has unknown parameter {key!r} for dist {dist!r}; valid: "
                f"'per', 'dist', {format_names(params)}." + did_you_mean(str(key), [*params, "per", "dist"])
            )
        params[key] = value
    _check_dist_params(dist, params, where)
    return {"per": per, "dist": dist, **params}


def _check_dist_params(dist: str, p: dict, where: str) -> None:
    def number(key: str, minimum: float | None = None) -> float:
        return check_number(p[key], f"{where}[{key!r}]", minimum=minimum)

    def whole(key: str) -> int:
        # integers draws floor(u * (high - low + 1)): a fractional bound would be silently truncated
        value = number(key)
        if not float(value).is_integer():
            raise ParameterError(f"{where}[{key!r}] must be a whole number for dist 'integers'; got {p[key]!r}")
        if abs(value) > 2**53:  # beyond float64's exact integers the draw would wrap to INT64_MIN
            raise ParameterError(f"{where}[{key!r}] must be within +-2**53 for dist 'integers'; got {p[key]!r}")
        return int(value)

    # draws are mean + sd * z with |z| < 9 (z from a 53-bit uniform): refuse parameters whose
    # draws could leave the floats, whatever the seed, rather than let one seed give inf
    def overflow(reason: str) -> ParameterError:
        return ParameterError(f"{where} {reason}; draws overflow to inf or 0 for some seeds: use a smaller scale")

    if dist == "normal":
        mean, sd = number("mean"), number("sd", minimum=0.0)
        if not math.isfinite(abs(mean) + 9 * sd) or abs(mean) + 9 * sd > 1e300:
            raise overflow(f"has |mean| + 9 sd = {abs(mean) + 9 * sd:g}")
    if dist == "lognormal":
        meanlog, sdlog = number("meanlog"), number("sdlog", minimum=0.0)
        if meanlog + 9 * sdlog > 700 or meanlog - 9 * sdlog < -700:
            raise overflow("has meanlog +- 9 sdlog outside [-700, 700] (exp of it is not a float)")
    if dist == "uniform" and number("low") > number("high"):
        raise ParameterError(f"{where}: 'low' ({p['low']}) must not exceed 'high' ({p['high']})")
    if dist == "uniform" and not math.isfinite(number("high") - number("low")):
        raise overflow("has high - low beyond the largest float")
    if dist == "integers" and whole("low") > whole("high"):
        raise ParameterError(f"{where}: 'low' ({p['low']}) must not exceed 'high' ({p['high']})")
    if dist == "choice":
        levels = p["levels"]
        if levels is None or isinstance(levels, (str, bytes)) or not isinstance(levels, Sequence) or not levels:
            raise ParameterError(f"{where}['levels'] must be a non-empty list of levels for dist 'choice'")
        if not all(isinstance(v, Hashable) for v in levels) or len(set(map(str, levels))) != len(levels):
            raise ParameterError(f"{where}['levels'] must be distinct strings or numbers; got {list(levels)!r}")
        if p["p"] is not None:
            probs = p["p"]
            if isinstance(probs, (str, bytes)) or not isinstance(probs, Sequence) or len(probs) != len(levels):
                raise ParameterError(
                    f"{where}['p'] must be a list of {len(levels)} probabilities, one per level; got {probs!r}"
                )
            values = [check_number(v, f"{where}['p'][{i}]", minimum=0.0) for i, v in enumerate(probs)]
            if not np.isclose(sum(values), 1.0):
                raise ParameterError(f"{where}['p'] must sum to 1; got {probs!r} (sum {sum(values):g})")


def _normal(u: np.ndarray, mean: float, sd: float) -> np.ndarray:
    if sd == 0:  # ppf with scale 0 gives NaN; a zero SD means a constant
        return np.full(u.shape, float(mean))
    from scipy.special import ndtri  # imported on first use: scipy costs start-up time

    return mean + sd * ndtri(u)


def _draw_covariate(cov: dict, u: np.ndarray) -> Any:
    """Turn uniforms into covariate values by the inverse CDF of the distribution."""
    dist = cov["dist"]
    if dist == "normal":
        return _normal(u, cov["mean"], cov["sd"])
    if dist == "uniform":
        return cov["low"] + u * (cov["high"] - cov["low"])
    if dist == "lognormal":
        return np.exp(_normal(u, cov["meanlog"], cov["sdlog"]))
    if dist == "integers":
        low, high = int(cov["low"]), int(cov["high"])
        return (low + np.floor(u * (high - low + 1))).astype(np.int64)
    levels = list(cov["levels"])
    probs = np.full(len(levels), 1.0 / len(levels)) if cov["p"] is None else np.asarray(cov["p"], float)
    idx = np.searchsorted(np.cumsum(probs), u, side="right").clip(0, len(levels) - 1)
    return pd.Categorical.from_codes(idx, categories=levels)


def _add_covariates(
    df: pd.DataFrame, covs: dict, key: int, row_keys: np.ndarray
) -> pd.DataFrame:
    for name, cov in covs.items():
        if cov["per"] == "trial":
            u = _row_uniforms(key, f"covariate:{name}", row_keys)
            df[name] = _check_finite(_draw_covariate(cov, u), name, cov)
        else:
            labels = pd.unique(df[cov["per"]].to_numpy())
            values = _draw_covariate(cov, _label_uniforms(key, f"covariate:{name}", list(labels)))
            codes = pd.Index(labels).get_indexer(df[cov["per"]].to_numpy())
            df[name] = _check_finite(values, name, cov)[codes]
    return df


def _check_finite(values: Any, name: str, cov: dict) -> Any:
    """Refuse covariate parameters so extreme that draws overflow to inf (never inf in a design)."""
    if isinstance(values, pd.Categorical):
        return values
    arr = np.asarray(values, dtype=float)
    if arr.size and not np.isfinite(arr).all():
        params = {k: v for k, v in cov.items() if k not in ("per", "dist")}
        raise ParameterError.at(
            Where.of("covariates", name),
            f"with dist {cov['dist']!r} and {params} overflows: draws reach {arr[~np.isfinite(arr)][0]}; "
            f"use parameters on a scale a float can hold",
        )
    return values


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
    tree grows), so units are budgeted by ``config.max_nested_units`` as well as rows.
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


# ---------------------------------------------------------------------------
# crossed designs
# ---------------------------------------------------------------------------


def crossed(
    subjects: int | range = 20,
    items: int | None = None,
    *,
    within: FactorSpec | None = None,
    between_subjects: FactorSpec | None = None,
    between_items: FactorSpec | None = None,
    counterbalance: Sequence[str] | str | None = None,
    repetitions: int = 1,
    trials_per_subject: SizeSpec | None = None,
    missing: float = 0.0,
    covariates: Mapping[str, Mapping[str, Any]] | None = None,
    assign: str = "balanced",
    order: str = "fixed",
    subject: str = "subject",
    item: str = "item",
    subject_prefix: str = "s",
    item_prefix: str = "i",
    npartitions: int | str | None = None,
    seed: SeedLike = None,
) -> pd.DataFrame:
    """Subjects crossed with items: one row per trial.

    Factor vocabulary: a factor *within subjects and items* (``within``) is
    seen by every subject with every item; a factor *within subjects but
    between items* is a property of the item (``between_items``, e.g. word
    frequency); a factor *within items but between subjects* is a property of
    the subject (``between_subjects``, e.g. group).

    Parameters
    ----------
    subjects : int or range
        Number of subjects, labelled ``s001``, ``s002``, ... (``subject_prefix``);
        a range of subject numbers gives exactly those subjects' rows of any larger design.
    items : int or None
        Number of items, labelled ``i001``, ...; ``None`` for a design without
        items (each subject sees each ``within`` cell ``repetitions`` times).
    within : mapping, optional
        ``{factor: [levels]}`` crossed with every subject and item (unless
        counterbalanced).  Levels become categories in the given order, so
        the first level is the reference level of treatment coding.
    between_subjects, between_items : mapping, optional
        ``{factor: [levels]}`` attributes of subjects / items.  With several
        factors their level combinations are assigned.
    counterbalance : str or list of str, optional
        ``within`` factors to counterbalance with Latin-square lists: every
        subject sees each item once, in one cell of these factors; with ``K``
        cells there are ``K`` lists, item ``j`` is shown in cell
        ``(floor((j-1)/M) + l) mod K`` in list ``l`` (``M`` = number of
        between-item combinations), and subjects rotate over the lists.
    repetitions : int
        Repetitions of every cell (column ``rep`` is added when > 1).
    trials_per_subject : int, (low, high), {"poisson": mean} or callable, optional
        Unbalanced designs: each subject keeps this many of its planned trials
        (a random subset).  A pair draws the count uniformly from ``low`` to
        ``high`` inclusive per subject; a callable receives a per-subject
        Generator and returns the count.  Counts larger than the planned
        number of trials are an error.
    missing : float
        Probability that any trial is missing (dropped), independently per trial.
    covariates : mapping, optional
        ``{name: {"per": "subject"|"item"|"trial", "dist": ..., params}}``; see
        :data:`COVARIATE_DISTRIBUTIONS` for the distributions and their
        parameters (``normal`` mean/sd, ``uniform`` low/high, ``lognormal``
        meanlog/sdlog, ``integers`` low/high inclusive, ``choice``
        levels/p).  ``per`` takes the subject/item column name.
    assign : {"balanced", "random"}
        Between-subject and between-item assignment: ``balanced`` rotates
        through the level combinations by unit number (``s001`` -> first
        combination, ``s002`` -> second, ...), ``random`` draws each unit's
        combination from the seed and its label.
    order : {"fixed", "random"}
        Trial order within subject: design order, or shuffled per subject.
    subject, item : str
        Column names for the subject and item labels.
    subject_prefix, item_prefix : str
        Label prefixes.
    npartitions : int or "auto", optional
        Return a lazy Dask DataFrame of this many partitions ("auto": about 1e6 rows each), each a range of
        subjects generated on the workers (see :mod:`glmmsim.dask.partitions`).
    seed : None, int, SeedSequence or Generator
        Seed of every random draw of the design.

    Returns
    -------
    pandas.DataFrame
        Columns: subject, between-subject factors, item, between-item factors,
        within factors, ``rep`` (if repetitions > 1), ``trial`` (1-based
        position in the subject's planned sequence; dropped trials leave
        gaps), covariates.  Rows are ordered by subject, then trial.

    Examples
    --------
    >>> d = crossed(4, 6, within={"condition": ["congruent", "incongruent"]},
    ...             counterbalance="condition", seed=1)
    >>> d.shape
    (24, 4)
    >>> d.groupby("subject", observed=True)["condition"].value_counts().unique().tolist()
    [3]
    >>> crossed(2, 2).iloc[:2].to_dict("list")
    {'subject': ['s001', 's001'], 'item': ['i001', 'i002'], 'trial': [1, 2]}
    """
    if npartitions is not None:  # Dask: partitions generated on the workers
        return _partitioned().crossed(**locals())
    with about("subjects"):
        subj_range = _unit_range(subjects, "subjects")
        n_subj = subj_range.stop - subj_range.start  # len() of a range overflows beyond 2**63
    with about("items"):
        n_item = None if items is None else _check_count(items, "items")
    with about("within"):
        within_f = _factors(within, "within")
    with about("between_subjects"):
        bsub_f = _factors(between_subjects, "between_subjects")
    with about("between_items"):
        bitem_f = _factors(between_items, "between_items")
    subject = _check_name(subject, "subject")
    item = _check_name(item, "item")
    _check_name(subject_prefix, "subject_prefix")
    _check_name(item_prefix, "item_prefix")
    if n_item is None and bitem_f:
        raise ParameterError("between_items needs items; pass items=<number of items>")
    with about("counterbalance"):
        cb = _check_counterbalance(counterbalance, within_f, n_item)
    with about("repetitions"):
        reps = _check_count(repetitions, "repetitions")
    with about("missing"):
        rate = _check_rate(missing, "missing")
    with about("assign"):
        assign = _check_choice(assign, ("balanced", "random"), "assign")
    with about("order"):
        order = _check_choice(order, ("fixed", "random"), "order")
    if trials_per_subject is not None:
        with about("trials_per_subject"):
            _check_size(trials_per_subject, "trials_per_subject")
    units = [subject] if n_item is None else [subject, item]
    covs = _check_covariates(covariates, units)
    columns = [subject, *bsub_f, *([item, *bitem_f] if n_item is not None else []), *within_f]
    columns += (["rep"] if reps > 1 else []) + ["trial", *covs]
    _check_unique_columns(columns)
    free_n = math.prod(len(lv) for f, lv in within_f.items() if f not in cb)
    planned = n_subj * (n_item or 1) * free_n * reps  # exact: Python ints do not overflow
    check_rows(planned, f"crossed(subjects={count_text(n_subj)}, items={count_text(n_item or 1)}, {free_n} within cell(s), {reps} repetition(s))", "subjects")
    check_limit(planned * len(columns), "max_cells", f"crossed: {count_text(planned)} rows x {len(columns)} columns", "covariates")
    key = seed_key(seed, "seed")

    subj_labels = unit_labels(subject_prefix, n_subj, start=subj_range.start)
    subj_num = np.arange(subj_range.start, subj_range.stop)
    bsub_idx, bsub_combos = _assign_between(bsub_f, subj_labels, subj_num, key, "subject", assign)
    if n_item is not None:
        item_labels = unit_labels(item_prefix, n_item)
        item_num = np.arange(1, n_item + 1)
        bitem_idx, bitem_combos = _assign_between(bitem_f, item_labels, item_num, key, "item", assign)
    else:
        item_labels, item_num = [""], np.array([1])
        bitem_idx, bitem_combos = np.array([0]), [()]

    free = {f: lv for f, lv in within_f.items() if f not in cb}
    cb_f = {f: within_f[f] for f in cb}
    free_cells = list(itertools.product(*free.values())) if free else [()]
    cb_cells = list(itertools.product(*cb_f.values())) if cb_f else [()]

    # the full planned grid: subject x item x free within cell x repetition
    shape = (n_subj, len(item_labels), len(free_cells), reps)
    s_i, it_i, c_i, r_i = (a.ravel() for a in np.indices(shape))
    n_lists = len(cb_cells)
    # lists rotate slower than between-subject combinations so lists and groups are not confounded
    subj_list = ((subj_num - 1) // len(bsub_combos)) % n_lists
    item_block = (item_num - 1) // len(bitem_combos)
    cb_i = (item_block[it_i] + subj_list[s_i]) % n_lists
    if cb:
        _warn_unequal_cells(item_block, n_lists, cb, len(bitem_combos))

    # unit labels as categoricals (categories in label order): the model uses their codes directly
    data: dict[str, Any] = {subject: pd.Categorical.from_codes(s_i, categories=subj_labels)}
    for k, f in enumerate(bsub_f):
        data[f] = _factor_column(bsub_combos, k, bsub_f[f], bsub_idx[s_i])
    if n_item is not None:
        data[item] = pd.Categorical.from_codes(it_i, categories=item_labels)
        for k, f in enumerate(bitem_f):
            data[f] = _factor_column(bitem_combos, k, bitem_f[f], bitem_idx[it_i])
    for f in within_f:
        if f in cb_f:
            k = list(cb_f).index(f)
            data[f] = _factor_column(cb_cells, k, within_f[f], cb_i)
        else:
            k = list(free).index(f)
            data[f] = _factor_column(free_cells, k, within_f[f], c_i)
    if reps > 1:
        data["rep"] = r_i + 1
    df = pd.DataFrame(data)

    # identity of a planned trial: (subject label, item label, within cell, repetition)
    cell_keys = _label_keys(key, "cell", ["|".join(map(str, c)) for c in free_cells])
    row_keys = _row_keys(
        _label_keys(key, "subject", subj_labels)[s_i],
        _label_keys(key, "item", item_labels)[it_i],
        cell_keys[c_i],
        r_i.astype(np.uint64),
    )
    df, row_keys = _order_trials(df, row_keys, subject, key, order)
    df, row_keys = _subset_trials(df, row_keys, subject, subj_labels, trials_per_subject, key)
    df, row_keys = _drop_missing(df, row_keys, rate, key, whole=not isinstance(subjects, range))
    df = _add_covariates(df, covs, key, row_keys)
    return _drop_unused_labels(df[columns].reset_index(drop=True), units)


def _drop_unused_labels(df: pd.DataFrame, units: Sequence[str]) -> pd.DataFrame:
    """Unit columns keep only the labels left after subsetting and missingness, in label order."""
    for unit in units:
        if isinstance(df[unit].dtype, pd.CategoricalDtype):
            df[unit] = df[unit].cat.remove_unused_categories()
    return df


def _check_counterbalance(counterbalance: object, within_f: dict, n_item: int | None) -> list[str]:
    if counterbalance is None:
        return []
    cb = [counterbalance] if isinstance(counterbalance, str) else counterbalance
    if not isinstance(cb, Sequence):
        raise InputTypeError(f"counterbalance must be a factor name or a list of names; got {counterbalance!r}")
    cb = list(cb)
    repeated = sorted({str(f) for f in cb if cb.count(f) > 1})
    if repeated:
        raise ParameterError(
            f"counterbalance names {format_names(repeated)} more than once: {counterbalance!r}; "
            f"list each within factor once"
        )
    if n_item is None and cb:
        raise ParameterError("counterbalance needs items: items are rotated over the conditions")
    for f in cb:
        if f not in within_f:
            raise ParameterError(
                f"counterbalance names {f!r}, which is not a within factor; within factors: "
                f"{format_names(within_f) or '(none)'}." + did_you_mean(str(f), within_f)
            )
    return cb


def _warn_unequal_cells(item_block: np.ndarray, n_lists: int, cb: list[str], n_combos: int) -> None:
    """Warn when the Latin square gives a subject's cells different numbers of items."""
    per_cell = np.bincount(item_block % n_lists, minlength=n_lists)
    if per_cell.min() == per_cell.max():
        return
    counts = ", ".join(str(c) for c in per_cell)
    warnings.warn(
        GlmmsimWarning(
            f"counterbalance {format_names(cb)}: {len(item_block)} items over {n_lists} lists give "
            f"unequal cells: the {n_lists} cells of each list get {counts} items; use a multiple of "
            f"{n_lists * n_combos} items for equal cells",
            parameter="counterbalance",
        ),
        stacklevel=3,
    )


def _order_trials(df: pd.DataFrame, row_keys: np.ndarray, unit: str, key: int, order: str):
    if order == "random":
        u = _row_uniforms(key, "order", row_keys)
        # stable sort by (unit number, random key) keeps subjects together, shuffled within
        unit_codes = pd.factorize(df[unit])[0]
        perm = np.lexsort((u, unit_codes))
        df, row_keys = df.iloc[perm].reset_index(drop=True), row_keys[perm]
    df["trial"] = df.groupby(unit, sort=False, observed=True).cumcount().to_numpy() + 1
    return df, row_keys


def _subset_trials(df, row_keys, unit, labels, spec, key):
    if spec is None:
        return df, row_keys
    planned = df.groupby(unit, sort=False, observed=True).size()
    counts = _draw_sizes(spec, key, "trials_per_subject", labels, "trials_per_subject")
    too_many = [(lab, n) for lab, n in zip(labels, counts) if n > planned[lab]]
    if too_many:
        lab, n = too_many[0]
        raise ParameterError(
            f"trials_per_subject asks for {n} trials of {lab!r}, but the design plans only "
            f"{planned[lab]} per subject"
        )
    u = _row_uniforms(key, "keep", row_keys)
    # rank each trial within its subject by a random key; keep the lowest n
    rank = pd.Series(u).groupby(df[unit].to_numpy(), sort=False).rank(method="first").to_numpy()
    limit = pd.Series(counts, index=labels).reindex(df[unit].to_numpy()).to_numpy()
    keep = rank <= limit
    return df[keep].reset_index(drop=True), row_keys[keep]


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
