"""Pictures of a simulated study (matplotlib).

Every function returns a :class:`matplotlib.figure.Figure` built without
pyplot (so nothing is shown and no global figure piles up); save it with
``fig.savefig("study.png")`` or let Jupyter display it.

* :func:`spaghetti` -- response against a continuous predictor, one line per
  subject (its conditional mean) and the population line (random effects zero);
* :func:`interaction` -- cell means +- 1 SE for categorical conditions;
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
from ..seeding import SeedLike, as_generator

__all__ = ["plot_model", "resolve_kind", "spaghetti", "interaction", "caterpillar", "pairs", "PLOT_KINDS"]

PLOT_KINDS = ("spaghetti", "interaction", "caterpillar", "pairs")


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
    numeric, _ = _predictors(model, data)
    if x is None:
        if not numeric:
            raise ParameterError(
                "a spaghetti plot needs a numeric predictor, and the formula uses none; "
                "use kind='interaction' for categorical conditions"
            )
        x = numeric[0]
    _check_column(data, x, "x")
    factor = _pick_factor(model, factor)
    group_col = model.factor_columns[factor][0]
    at = dict(at or {})
    for col in at:
        _check_column(data, col, "at")

    grid = np.linspace(float(data[x].min()), float(data[x].max()), 50)
    sub_model = _only_factor(model, factor, data)
    units = _sample_levels(pd.unique(data[group_col]), max_lines, rng)
    y, ylabel = _response_values(model, data)

    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    colors = [f"C{i % 10}" for i in range(len(units))]
    for unit, color in zip(units, colors):
        rows = (data[group_col] == unit).to_numpy()
        line_data = _grid_rows(data[rows].iloc[[0]], x, grid, at)
        mean = _scaled_prediction(model, sub_model.predict(line_data, random=True), line_data)
        ax.plot(grid, mean, color=color, lw=1, alpha=0.8)
        if points:
            ax.scatter(data.loc[rows, x], y[rows], s=6, color=color, alpha=0.35, linewidths=0)
    pop_data = _grid_rows(data.iloc[[0]], x, grid, at)
    pop = _scaled_prediction(model, model.predict(pop_data, random=False), pop_data)
    ax.plot(grid, pop, color="black", lw=2.5, label=_population_label(model, data, x, at))
    shown = f"{len(units)} of {data[group_col].nunique()}" if len(units) < data[group_col].nunique() else f"{len(units)}"
    ax.set(xlabel=x, ylabel=ylabel, title=f"{ylabel} by {x}: {shown} {factor} levels")
    ax.legend(loc="best", fontsize="small", frameon=False)
    return fig


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
    seed: SeedLike = 0,
    figsize: tuple[float, float] = (6.0, 4.0),
) -> Figure:
    """Cell means +- 1 standard error of the response for categorical conditions.

    Parameters
    ----------
    model : glmmsim.Model
    data : pandas.DataFrame
        Conditions, with or without the response (simulated with ``seed`` when missing).
    x : str, optional
        Condition on the horizontal axis; default the formula's first categorical column.
    trace : str, optional
        Condition drawn as separate lines; default the second categorical column, if any.
        Pass ``trace=""`` for a single line.

    Notes
    -----
    The SE of a cell is ``sd / sqrt(n)`` over its observations; it ignores the
    clustering of observations in subjects and items, so it shows the spread
    of the data, not the precision of a mixed-model estimate.
    """
    data = _check_data(data)
    data = _with_response(model, data, seed)
    _, categorical = _predictors(model, data)
    if x is None:
        if not categorical:
            raise ParameterError(
                "an interaction plot needs a categorical predictor, and the formula uses none; "
                "use kind='spaghetti' for a numeric predictor"
            )
        x = categorical[0]
    _check_column(data, x, "x")
    if trace is None:
        trace = next((c for c in categorical if c != x), "")
    if trace:
        _check_column(data, trace, "trace")
    y, ylabel = _response_values(model, data)
    frame = pd.DataFrame({"x": data[x].to_numpy(), "y": y})
    frame["trace"] = data[trace].to_numpy() if trace else "all"
    stats = frame.groupby(["trace", "x"], observed=True, sort=True)["y"].agg(["mean", "std", "count"])
    stats["se"] = stats["std"].fillna(0.0) / np.sqrt(stats["count"])

    x_levels = _levels(data[x])
    pos = {lev: i for i, lev in enumerate(x_levels)}
    fig = Figure(figsize=figsize, layout="constrained")
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
    ax.set(xlabel=x, ylabel=f"mean {ylabel} (± 1 SE)", title=f"{ylabel} by {x}" + (f" and {trace}" if trace else ""))
    if trace:
        ax.legend(fontsize="small", frameon=False)
    return fig


def _levels(column: pd.Series) -> list[Any]:
    if isinstance(column.dtype, pd.CategoricalDtype):
        present = set(column.dropna().unique())
        return [c for c in column.cat.categories if c in present]
    return sorted(pd.unique(column.dropna()), key=lambda v: (str(type(v)), v))


#: Caterpillar panels label each level up to this many levels (more would overlap at a readable size).
_MAX_LEVEL_LABELS = 20


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
    fig = Figure(figsize=figsize or (3.2 * ncol, 2.8 * nrow), layout="constrained")
    for row, f in enumerate(factors):
        for col, coef in enumerate(effects[f].columns):
            ax = fig.add_subplot(nrow, ncol, row * ncol + col + 1)
            values = effects[f][coef].sort_values()
            ax.axvline(0.0, color="grey", lw=0.8)
            ax.scatter(values.to_numpy(), np.arange(len(values)), s=8, color="C0")
            if len(values) <= _MAX_LEVEL_LABELS:
                ax.set_yticks(np.arange(len(values)), [str(v) for v in values.index], fontsize=7)
            else:
                ax.set_yticks([])
            ylabel = f"{f} ({len(values)} levels, sorted)" if col == 0 else None
            ax.set(title=f"{f}: {lme4_name(coef, categorical_levels(data))}", xlabel="effect", ylabel=ylabel)
    return fig


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
    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(k, k, squeeze=False)
    for i, ci in enumerate(coefs):
        for j, cj in enumerate(coefs):
            ax = axes[i][j]
            if i == j:
                ax.hist(effects[ci].to_numpy(), bins=min(20, max(5, len(effects) // 3)), color="C0", alpha=0.8)
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


def resolve_kind(model, data: pd.DataFrame, kind: str) -> str:
    """``kind`` checked; ``"auto"`` becomes spaghetti with a numeric predictor, else interaction."""
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
    kind = resolve_kind(model, data, kind)
    plotter = _PLOTTERS[kind]
    valid = [p for p in inspect.signature(plotter).parameters if p not in ("model", "data")]
    unknown = [k for k in kwargs if k not in valid]
    if unknown:
        raise InputTypeError(
            f"a {kind} plot takes no option {unknown[0]!r}.{did_you_mean(unknown[0], valid)} "
            f"Options: {format_names(valid)}"
        )
    return plotter(model, data, **kwargs)
