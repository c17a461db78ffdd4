"""Crossed designs: subjects crossed with items, with within- and between-unit factors (:func:`crossed`)."""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import GlmmsimWarning, InputTypeError, ParameterError, about, did_you_mean, format_names
from ..limits import check_limit, check_rows, count_text
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
    _row_keys,
    _row_uniforms,
    SizeSpec,
    unit_labels,
    _unit_range,
)

__all__ = ["crossed"]


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


