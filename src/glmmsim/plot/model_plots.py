"""Pictures of a simulated study (matplotlib).

Every function returns a :class:`matplotlib.figure.Figure` built without
pyplot (so nothing is shown and no global figure piles up); save it with
``fig.savefig("study.png")`` or let Jupyter display it.

* :func:`spaghetti` -- response against a continuous predictor, one line per
  subject (its conditional mean) and the population line (random effects zero);
* :func:`interaction` -- cell means +- 1 SE (of subject means) for categorical conditions;
* :func:`caterpillar` -- the drawn random effects per factor and coefficient, sorted;
* :func:`pairs` -- scatter matrix of one factor's correlated effects.

:func:`plot_model` (and ``Model.plot``) pick one by name.

Examples
--------
>>> import glmmsim
>>> from glmmsim.design import crossed
>>> m = glmmsim.Model("y ~ 1 + x + (1 + x | subject)", fixed={"Intercept": 1, "x": 0.5},
...                   random={"subject": {"sd": {"Intercept": 1, "x": 0.3}}}, sigma=0.5, seed=1)
>>> data = crossed(8, covariates={"x": {"per": "trial"}}, repetitions=10, seed=2)
>>> fig = plot_model(m, data, kind="spaghetti", seed=3)
>>> len(fig.axes[0].lines)  # 8 subjects + the population line
9
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..model.names import categorical_levels, lme4_name
from ..errors import DataError, InputTypeError, ParameterError, did_you_mean, format_names
from ..randomness.seeds import SeedLike, as_generator

__all__ = ["plot_model", "choose_plot_kind", "spaghetti", "interaction", "caterpillar", "pairs", "PLOT_KINDS"]

#: The plot kinds ``plot_model(kind=...)`` and ``glmmsim plot --kind`` accept.
PLOT_KINDS = ("spaghetti", "interaction", "caterpillar", "pairs")

#: Resolution of every figure (``savefig`` uses it unless given ``dpi=``): sharp in print.
DPI = 150
#: An interaction plot refuses an ``x`` with more levels than this (a numeric column, say).
MAX_INTERACTION_LEVELS = 25
#: ... and a ``trace`` with more levels than this (one line and legend entry per level).
MAX_TRACE_LEVELS = 10


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _check_data(data: object) -> pd.DataFrame:
    if not isinstance(data, pd.DataFrame):
        raise InputTypeError(f"data must be a pandas DataFrame; got {type(data).__name__}")
    if len(data) == 0:
        raise DataError("data has no rows to plot")
    return data


def _with_response(model, data: pd.DataFrame, seed: SeedLike) -> pd.DataFrame:
    """The data with the response: as given, or simulated when the column is missing."""
    if model.response in data.columns:
        return data
    return model.simulate(data, seed=seed)


def _grouping_columns(model) -> set[str]:
    return {c for cols in model.factor_columns.values() for c in cols}


def _predictors(model, data: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The formula's fixed-part columns present in ``data``, split into numeric and categorical."""
    skip = _grouping_columns(model) | {model.response}
    cols = [c for c in model.variables if c not in skip and c in data.columns]
    numeric = [c for c in cols if pd.api.types.is_numeric_dtype(data[c]) and not pd.api.types.is_bool_dtype(data[c])]
    return numeric, [c for c in cols if c not in numeric]


def _check_column(data: pd.DataFrame, col: str, argname: str) -> str:
    if col not in data.columns:
        raise DataError(
            f"{argname}={col!r} is not a column of the data.{did_you_mean(col, data.columns)} "
            f"Columns: {format_names(data.columns)}"
        )
    return col


def _pick_factor(model, factor: str | None, argname: str = "factor", need: int = 1, data=None) -> str:
    factors = list(model.factors)
    if factor is not None:
        if factor not in factors:
            raise ParameterError(
                f"{argname}={factor!r} is not a grouping factor of the model.{did_you_mean(factor, factors)} "
                f"Factors: {format_names(factors)}"
            )
        if need > 1:
            coefs = model.covariance(data)[factor][0]
            if len(coefs) < need:
                richer = [f for f, (c, _, _) in model.covariance(data).items() if len(c) >= need]
                raise ParameterError(
                    f"a pairs plot shows how a factor's coefficients vary together, and {argname}={factor!r} "
                    f"has one coefficient ({format_names(coefs)}); use kind='caterpillar' for its effects"
                    + (f", or a factor with {need} or more: {format_names(richer)}" if richer else "")
                )
        return factor
    n_coefs = {f: len(coefs) for f, (coefs, _, _) in model.covariance(data).items()} if need > 1 else {}
    for f in factors:
        if len(model.factor_columns[f]) == 1 and (need == 1 or n_coefs[f] >= need):
            return f
    raise ParameterError(
        f"the model has no grouping factor with {need} or more coefficients to plot; factors: "
        f"{format_names(factors) or '(none)'}"
    )


def _per_trial(model, values: np.ndarray, rows: pd.DataFrame) -> np.ndarray:
    """Binomial counts out of several trials as proportions; other responses unchanged."""
    trials = model.trials
    if model.family.name != "binomial" or trials is None:
        return values
    n = rows[trials].to_numpy(dtype=float) if isinstance(trials, str) else float(trials)
    return values / n


def _response_values(model, data: pd.DataFrame) -> tuple[np.ndarray, str]:
    """Response values to plot, as proportions for binomial counts out of several trials."""
    y = _per_trial(model, data[model.response].to_numpy(dtype=float), data)
    proportion = model.family.name == "binomial" and model.trials is not None
    return y, f"{model.response} (proportion)" if proportion else model.response


def _only_factor(model, keep: str, data: pd.DataFrame):
    """The model with every grouping factor but ``keep`` switched off (same population)."""
    random: dict[str, Any] = {}
    for f, (coefs, sd, corr) in model.covariance(data).items():
        if f == keep:
            pairs = {
                (coefs[i], coefs[j]): float(corr[i, j])
                for i in range(len(coefs))
                for j in range(i)
                if corr[i, j] != 0.0
            }
            random[f] = {"sd": dict(zip(coefs, map(float, sd))), "corr": pairs}
        else:
            random[f] = dict.fromkeys(coefs, 0.0)
    return model.replace(random=random)


def _unit_codes(data: pd.DataFrame, columns: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Per row, the number of its level of the factor formed by ``columns`` (``school:class``
    has one level per school and class), and each level's label, in order of appearance."""
    codes = data.groupby(list(columns), sort=False, observed=True, dropna=False).ngroup().to_numpy()
    _, first = np.unique(codes, return_index=True)
    labels = [":".join(str(data[c].iloc[i]) for c in columns) for i in first]
    return codes, labels


def _check_max_lines(max_lines: object) -> int | None:
    if max_lines is None:
        return None
    if isinstance(max_lines, bool) or not isinstance(max_lines, numbers.Integral) or max_lines < 1:
        raise ParameterError(f"max_lines must be a whole number >= 1 or None (all units); got {max_lines!r}")
    return int(max_lines)


def _sample_levels(labels: Sequence[Any], max_n: int | None, seed: SeedLike) -> list[Any]:
    labels = list(labels)
    if max_n is None or len(labels) <= max_n:
        return labels
    rng = as_generator(seed, "seed")
    keep = set(rng.choice(len(labels), size=max_n, replace=False).tolist())
    return [lab for i, lab in enumerate(labels) if i in keep]


# ---------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------


def spaghetti(
    model,
    data: pd.DataFrame,
    x: str | None = None,
    factor: str | None = None,
    max_lines: int | None = 12,
    points: bool = True,
    at: Mapping[str, Any] | None = None,
    seed: SeedLike = 0,
    figsize: tuple[float, float] = (6.0, 4.0),
) -> Figure:
    """Response against a continuous predictor, one line per level of ``factor``.

    Each thin line is a unit's conditional mean (its own random effects, other
    factors' effects at zero); the thick black line is the population line
    (every random effect zero).  Other predictors are held at the values of
    the unit's first row (the data's first row for the population line)
    unless ``at`` fixes them.

    Parameters
    ----------
    model : glmmsim.Model
    data : pandas.DataFrame
        Conditions, with or without the response (simulated with ``seed`` when missing).
    x : str, optional
        Continuous predictor; default the formula's first numeric column.
    factor : str, optional
        Grouping factor drawn as lines; default the first single-column factor.
    max_lines : int or None
        Draw at most this many units (a random sample, drawn with ``seed``).
    points : bool
        Also draw the responses of the drawn units.
    at : mapping, optional
        Values for the other predictors, e.g. ``{"condition": "incongruent"}``.
    seed : None, int, SeedSequence or Generator
        Seeds the response simulation (if needed) and the unit sample.
    """
    data = _check_data(data)
    max_lines = _check_max_lines(max_lines)
    rng = as_generator(seed, "seed")
    data = _with_response(model, data, rng)
    numeric, categorical = _predictors(model, data)
    if x is None:
        if not numeric:
            raise ParameterError(
                "a spaghetti plot needs a numeric predictor, and the formula uses none; "
                "use kind='interaction' for categorical conditions"
            )
        x = numeric[0]
    _check_column(data, x, "x")
    _check_numeric_x(x, numeric, categorical)
    factor = _pick_factor(model, factor)
    codes, labels = _unit_codes(data, model.factor_columns[factor])
    at = dict(at or {})
    for col in at:
        _check_column(data, col, "at")

    grid = np.linspace(float(data[x].min()), float(data[x].max()), 50)
    sub_model = _only_factor(model, factor, data)
    units = _sample_levels(range(len(labels)), max_lines, rng)
    y, ylabel = _response_values(model, data)

    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    colors = [f"C{i % 10}" for i in range(len(units))]
    for unit, color in zip(units, colors):
        rows = codes == unit
        line_data = _grid_rows(data[rows].iloc[[0]], x, grid, at)
        mean = _scaled_prediction(model, sub_model.predict(line_data, random=True), line_data)
        ax.plot(grid, mean, color=color, lw=1, alpha=0.8)
        if points:
            ax.scatter(data.loc[rows, x], y[rows], s=6, color=color, alpha=0.35, linewidths=0)
    pop_data = _grid_rows(data.iloc[[0]], x, grid, at)
    pop = _scaled_prediction(model, model.predict(pop_data, random=False), pop_data)
    ax.plot(grid, pop, color="black", lw=2.5, label=_population_label(model, data, x, at))
    shown = f"{len(units)} of {len(labels)}" if len(units) < len(labels) else f"{len(units)}"
    ax.set(xlabel=x, ylabel=ylabel, title=f"{ylabel} by {x}: {shown} {factor} levels")
    ax.legend(loc="best", fontsize="small", frameon=False)
    return fig


def _check_numeric_x(x: str, numeric: Sequence[str], categorical: Sequence[str]) -> None:
    if x in numeric:
        return
    if x in categorical:
        raise ParameterError(
            f"a spaghetti plot draws lines against a numeric x, and x={x!r} is categorical; use "
            f"kind='interaction' with x={x!r}"
            + (f", or a numeric x: {format_names(numeric)}" if numeric else "")
        )
    valid = format_names(numeric) or "none (use kind='interaction')"
    raise ParameterError(f"x={x!r} is not a predictor of the formula; numeric predictors: {valid}")


def _population_label(model, data: pd.DataFrame, x: str, at: Mapping[str, Any]) -> str:
    """Legend text of the population line, naming the values other predictors are held at."""
    numeric, categorical = _predictors(model, data)
    held = [c for c in (*numeric, *categorical) if c != x]
    values = {c: (at[c] if c in at else data[c].iloc[0]) for c in held}
    text = ", ".join(f"{c} = {v:.3g}" if isinstance(v, (float, np.floating)) else f"{c} = {v}" for c, v in values.items())
    return "population (random effects = 0" + (f"; {text})" if text else ")")


def _grid_rows(row: pd.DataFrame, x: str, grid: np.ndarray, at: Mapping[str, Any]) -> pd.DataFrame:
    out = row.loc[row.index.repeat(len(grid))].reset_index(drop=True)
    out[x] = grid
    for col, value in at.items():
        out[col] = pd.Categorical([value] * len(out), categories=row[col].cat.categories) if isinstance(
            row[col].dtype, pd.CategoricalDtype
        ) else value
    return out


def _scaled_prediction(model, mean: pd.Series, rows: pd.DataFrame) -> np.ndarray:
    """Predictions on the scale the response is plotted on (proportions for binomial counts)."""
    return _per_trial(model, mean.to_numpy(dtype=float), rows)


def interaction(
    model,
    data: pd.DataFrame,
    x: str | None = None,
    trace: str | None = None,
    factor: str | None = None,
    seed: SeedLike = 0,
    figsize: tuple[float, float] = (6.0, 4.0),
) -> Figure:
    """Cell means +- 1 standard error of the response for categorical conditions.

    Observations of one subject are not independent, so the error bars come
    from the units of ``factor``: each unit's mean in the cell, then the mean
    and standard error (``sd / sqrt(units)``) of those unit means. The axis
    label says which units.

    Parameters
    ----------
    model : glmmsim.Model
    data : pandas.DataFrame
        Conditions, with or without the response (simulated with ``seed`` when missing).
    x : str, optional
        Condition on the horizontal axis; default the formula's first categorical column.
        At most :data:`MAX_INTERACTION_LEVELS` levels (a numeric ``x`` belongs in a spaghetti plot).
    trace : str, optional
        Condition drawn as separate lines; default the second categorical column, if any.
        Pass ``trace=""`` for a single line.
    factor : str, optional
        Grouping factor whose unit means give the SEs; default the first
        single-column factor. ``""`` treats every observation as independent
        (the bars then show the spread of the data, not the precision of a
        mixed-model estimate; the label says so).

    Notes
    -----
    With crossed subjects and items, SEs of subject means leave out the item
    variance, as a by-subject analysis (F1) does.
    """
    data = _check_data(data)
    data = _with_response(model, data, seed)
    numeric, categorical = _predictors(model, data)
    if x is None:
        if not categorical:
            raise ParameterError(
                "an interaction plot needs a categorical predictor, and the formula uses none; "
                "use kind='spaghetti' for a numeric predictor"
            )
        x = categorical[0]
    _check_column(data, x, "x")
    _check_level_count(data[x], "x", MAX_INTERACTION_LEVELS, x in numeric)
    if trace is None:
        trace = next((c for c in categorical if c != x), "")
    if trace:
        _check_column(data, trace, "trace")
        _check_level_count(data[trace], "trace", MAX_TRACE_LEVELS, trace in numeric)
    unit_columns = _cluster_columns(model, factor)
    y, ylabel = _response_values(model, data)
    stats = _cell_stats(data, y, x, trace, unit_columns)

    x_levels = _levels(data[x])
    pos = {lev: i for i, lev in enumerate(x_levels)}
    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    traces = _levels(data[trace]) if trace else ["all"]
    width = 0.08 * (len(traces) - 1)
    for k, lev in enumerate(traces):
        if lev not in stats.index.get_level_values(0):
            continue
        cell = stats.loc[lev]
        offset = (k / max(len(traces) - 1, 1) - 0.5) * width if len(traces) > 1 else 0.0
        xs = np.array([pos[v] for v in cell.index]) + offset
        ax.errorbar(
            xs,
            cell["mean"].to_numpy(dtype=float),
            yerr=cell["se"].to_numpy(dtype=float),
            marker="o",
            capsize=3,
            label=f"{trace} = {lev}" if trace else None,
        )
    ax.set_xticks(range(len(x_levels)), [str(v) for v in x_levels])
    ax.set_xlim(-0.5, len(x_levels) - 0.5)
    if unit_columns:
        unit = ":".join(unit_columns)
        ax.set(ylabel=f"mean {ylabel} (± 1 SE of {unit} means)")
    else:
        ax.set(ylabel=f"mean {ylabel} (± 1 SE, observations as independent)")
    ax.set(xlabel=x, title=f"{ylabel} by {x}" + (f" and {trace}" if trace else ""))
    if trace:
        ax.legend(fontsize="small", frameon=False)
    return fig


def _check_level_count(column: pd.Series, argname: str, limit: int, numeric: bool) -> None:
    count = column.nunique()
    if count > limit:
        kind = "a numeric column" if numeric else "a column"
        raise ParameterError(
            f"an interaction plot draws one point per level of {argname}, and {argname}={column.name!r} "
            f"({kind}) has {count} distinct values (at most {limit}); use kind='spaghetti' for a "
            f"numeric predictor, or bin it into a few categories first"
        )


def _cluster_columns(model, factor: str | None) -> tuple[str, ...]:
    """Columns of the factor whose unit means give the interaction plot's SEs; () for none."""
    if factor == "":
        return ()
    if factor is None:
        if not model.factors:
            return ()
        single = [f for f in model.factors if len(model.factor_columns[f]) == 1]
        factor = (single or list(model.factors))[0]
    return tuple(model.factor_columns[_pick_factor(model, factor)])


def _cell_stats(
    data: pd.DataFrame, y: np.ndarray, x: str, trace: str, units: Sequence[str]
) -> pd.DataFrame:
    """Per (trace, x) cell: mean and SE, over unit means when ``units`` are given."""
    frame = pd.DataFrame({"x": data[x].to_numpy(), "y": y})
    frame["trace"] = data[trace].to_numpy() if trace else "all"
    cell = ["trace", "x"]
    if units:
        for i, col in enumerate(units):
            frame[f"unit{i}"] = data[col].to_numpy()
        unit_keys = [f"unit{i}" for i in range(len(units))]
        # one value per unit and cell: the unit's mean there
        frame = frame.groupby(cell + unit_keys, observed=True, sort=False, dropna=False)["y"].mean().reset_index()
    stats = frame.groupby(cell, observed=True, sort=True)["y"].agg(["mean", "std", "count"])
    stats["se"] = stats["std"].fillna(0.0) / np.sqrt(stats["count"])
    return stats


def _levels(column: pd.Series) -> list[Any]:
    if isinstance(column.dtype, pd.CategoricalDtype):
        present = set(column.dropna().unique())
        return [c for c in column.cat.categories if c in present]
    return sorted(pd.unique(column.dropna()), key=lambda v: (str(type(v)), v))


#: Caterpillar panels label at most this many levels (more would overlap at a readable size);
#: past it every k-th level in sorted order is labelled.
_MAX_LEVEL_LABELS = 20


def _thinned_labels(n: int, limit: int = _MAX_LEVEL_LABELS) -> np.ndarray:
    """Positions of the labelled levels: all up to ``limit``, else every k-th, at most ``limit``.

    Examples
    --------
    >>> _thinned_labels(5).tolist(), _thinned_labels(45).tolist()[:4], len(_thinned_labels(45))
    ([0, 1, 2, 3, 4], [0, 3, 6, 9], 15)
    """
    step = max(1, -(-n // limit))
    return np.arange(0, n, step)


def caterpillar(
    model,
    data: pd.DataFrame,
    factor: str | Sequence[str] | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """The drawn random effects, sorted, one panel per factor and coefficient.

    Parameters
    ----------
    model : glmmsim.Model
    data : pandas.DataFrame
        Any data holding the levels to show (conditions are enough).
    factor : str or list of str, optional
        Factors to show; default all.
    """
    data = _check_data(data)
    factors = list(model.factors) if factor is None else [factor] if isinstance(factor, str) else list(factor)
    for f in factors:
        _pick_factor(model, f)
    effects = model.random_effects(data)
    ncol = max(len(effects[f].columns) for f in factors)
    nrow = len(factors)
    fig = Figure(figsize=figsize or (3.2 * ncol, 2.8 * nrow), dpi=DPI, layout="constrained")
    for row, f in enumerate(factors):
        for col, coef in enumerate(effects[f].columns):
            ax = fig.add_subplot(nrow, ncol, row * ncol + col + 1)
            values = effects[f][coef].sort_values()
            ax.axvline(0.0, color="grey", lw=0.8)
            ax.scatter(values.to_numpy(), np.arange(len(values)), s=8, color="C0")
            shown = _thinned_labels(len(values))
            labels = [_level_label(values.index[i]) for i in shown]
            ax.set_yticks(shown, labels, fontsize=7 if len(shown) == len(values) else 6)
            every = "" if len(shown) == len(values) else f" (1 in {shown[1] - shown[0]} named)"
            if col == 0:
                ax.set_ylabel(f"{len(values)} levels, sorted{every}", fontsize="small")
            ax.set(title=f"{f}: {lme4_name(coef, categorical_levels(data))}", xlabel="effect")
    return fig


def _level_label(level: object) -> str:
    """A level as text; an interaction level (a tuple) as ``a:b`` as lme4 writes it."""
    return ":".join(map(str, level)) if isinstance(level, tuple) else str(level)


def _hist_bins(values: np.ndarray) -> np.ndarray | int:
    """numpy's automatic bin edges (Sturges / Freedman-Diaconis), kept between 5 and 30 bins."""
    if len(values) < 2 or np.ptp(values) == 0:
        return 5
    edges = np.histogram_bin_edges(values, bins="auto")
    if 5 <= len(edges) - 1 <= 30:
        return edges
    return int(np.clip(len(edges) - 1, 5, 30))


def pairs(
    model,
    data: pd.DataFrame,
    factor: str | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Scatter matrix of one factor's random effects (histograms on the diagonal).

    Each off-diagonal panel is titled with the correlation of the drawn effects
    and the correlation the model specifies.

    Parameters
    ----------
    model : glmmsim.Model
    data : pandas.DataFrame
        Any data holding the levels to show.
    factor : str, optional
        Default: the first factor with at least two coefficients.
    """
    data = _check_data(data)
    factor = _pick_factor(model, factor, need=2, data=data)
    coefs, _, corr = model.covariance(data)[factor]
    effects = model.random_effects(data)[factor]
    k = len(coefs)
    names = [lme4_name(c, categorical_levels(data)) for c in coefs]
    size = figsize or (2.2 * k + 0.6, 2.2 * k + 0.4)
    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    axes = fig.subplots(k, k, squeeze=False)
    for i, ci in enumerate(coefs):
        for j, cj in enumerate(coefs):
            ax = axes[i][j]
            if i == j:
                values = effects[ci].to_numpy()
                ax.hist(values, bins=_hist_bins(values), color="C0", alpha=0.8, edgecolor="white", linewidth=0.5)
            else:
                ax.scatter(effects[cj].to_numpy(), effects[ci].to_numpy(), s=8, color="C0", alpha=0.7)
                r = np.corrcoef(effects[cj], effects[ci])[0, 1] if len(effects) > 2 else float("nan")
                ax.set_title(f"r = {r:.2f} (model {corr[i, j]:.2f})", fontsize=7)
            if i == k - 1:
                ax.set_xlabel(names[j], fontsize=8)
            if j == 0:
                ax.set_ylabel(names[i], fontsize=8)
            ax.tick_params(labelsize=6)
    fig.suptitle(f"random effects of {factor} ({len(effects)} levels)", fontsize=9)
    return fig


_PLOTTERS = {"spaghetti": spaghetti, "interaction": interaction, "caterpillar": caterpillar, "pairs": pairs}


def choose_plot_kind(model, data: pd.DataFrame, kind: str = "auto") -> str:
    """The kind of plot :func:`plot_model` draws when asked for ``kind``.

    ``"auto"`` is spaghetti when the model has a numeric predictor, interaction otherwise;
    any other kind is checked and returned as it is.

    Examples
    --------
    >>> import glmmsim, pandas as pd
    >>> m = glmmsim.Model("y ~ x + (1 | g)", fixed={"Intercept": 0, "x": 1}, random={"g": 1}, sigma=1)
    >>> choose_plot_kind(m, pd.DataFrame({"x": [0.0, 1.0], "g": ["a", "b"]}))
    'spaghetti'
    """
    if kind == "auto":
        numeric, _ = _predictors(model, data)
        return "spaghetti" if numeric else "interaction"
    if kind not in _PLOTTERS:
        valid = [*PLOT_KINDS, "auto"]
        raise ParameterError(f"kind must be one of {format_names(valid)}; got {kind!r}.{did_you_mean(str(kind), valid)}")
    return kind


def plot_model(model, data: pd.DataFrame, kind: str = "spaghetti", **kwargs: Any) -> Figure:
    """Draw a study: ``kind`` is ``spaghetti``, ``interaction``, ``caterpillar``, ``pairs`` or ``auto``.

    Keyword arguments go to the plot function of that name (:func:`spaghetti`, ...).
    """
    kind = choose_plot_kind(model, data, kind)
    plotter = _PLOTTERS[kind]
    valid = [p for p in inspect.signature(plotter).parameters if p not in ("model", "data")]
    unknown = [k for k in kwargs if k not in valid]
    if unknown:
        raise InputTypeError(
            f"a {kind} plot takes no option {unknown[0]!r}.{did_you_mean(unknown[0], valid)} "
            f"Options: {format_names(valid)}"
        )
    return plotter(model, data, **kwargs)
