"""Pictures of simulation studies: power curves and parameter recovery (matplotlib, no pyplot state).

Examples
--------
>>> import pandas as pd
>>> t = pd.DataFrame({"subjects": [10, 20], "power": [0.4, 0.7], "ci_low": [0.35, 0.65], "ci_high": [0.45, 0.75]})
>>> ax = plot_power_curve(t, along=["subjects"])
>>> ax.get_xlabel()
'subjects'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..errors import ParameterError, did_you_mean, format_names

__all__ = ["plot_power_curve", "plot_recovery"]


def _new_axes(figsize: tuple[float, float] = (6.0, 4.0)):
    fig = Figure(figsize=figsize, layout="constrained")
    return fig.add_subplot()


def plot_power_curve(
    table: pd.DataFrame,
    along: Sequence[str],
    *,
    x: str | None = None,
    target: float | None = 0.8,
    ax: Any = None,
    title: str | None = None,
):
    """Power against the first (or ``x``) along name, with its 95% band; one line per other along value.

    Returns the matplotlib Axes.
    """
    along = list(along)
    x = x or along[0]
    if x not in along:
        raise ParameterError(f"x={x!r} is not one of the along names {format_names(along)}")
    others = [a for a in along if a != x]
    ax = ax if ax is not None else _new_axes()
    groups = table.groupby(others, sort=False) if others else [((), table)]
    for key, g in groups:
        g = g.sort_values(x)
        label = ", ".join(f"{n} = {v}" for n, v in zip(others, key if isinstance(key, tuple) else (key,))) or None
        xs = g[x].to_numpy()
        (line,) = ax.plot(xs, g["power"], marker="o", label=label)
        ax.fill_between(xs, g["ci_low"], g["ci_high"], color=line.get_color(), alpha=0.2, linewidth=0)
    if target is not None:
        ax.axhline(target, color="0.3", linestyle="--", linewidth=1)
        ax.annotate(f"target {target:g}", xy=(0.01, target), xycoords=("axes fraction", "data"),
                    xytext=(0, 3), textcoords="offset points", fontsize=8, color="0.3")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(x)
    ax.set_ylabel("power (95% CI band)")
    if title:
        ax.set_title(title)
    if others:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def plot_recovery(
    estimates: pd.DataFrame,
    table: pd.DataFrame,
    *,
    parameters: Sequence[str] | None = None,
    ncols: int = 3,
):
    """One panel per parameter: the replicates' estimates (histogram), the truth and the mean.

    Returns the matplotlib Figure.
    """
    names = list(parameters) if parameters is not None else list(table.index)
    unknown = [p for p in names if p not in table.index]
    if unknown:
        raise ParameterError(
            f"unknown parameter(s) {format_names(unknown)}.{did_you_mean(str(unknown[0]), table.index)} "
            f"Parameters: {format_names(table.index)}"
        )
    if not names:
        raise ParameterError("no parameters to plot (did every fit fail?)")
    ncols = min(ncols, len(names))
    nrows = math.ceil(len(names) / ncols)
    fig = Figure(figsize=(3.3 * ncols, 2.5 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, name in zip(axes, names):
        values = estimates.loc[estimates["parameter"] == name, "estimate"].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        row = table.loc[name]
        ax.hist(values, bins=30, color="#8fb3d9", edgecolor="white", linewidth=0.3)
        ax.axvline(row["truth"], color="#c0392b", linewidth=1.8, label="truth")
        ax.axvline(row["mean"], color="0.15", linestyle="--", linewidth=1.2, label="mean estimate")
        cover = "" if not np.isfinite(row["coverage"]) else f", cover {row['coverage']:.2f}"
        ax.set_title(f"{name}\nbias {row['bias']:.3g} (SE {row['bias_se']:.2g}){cover}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_yticks([])
    for ax in axes[len(names):]:
        ax.set_visible(False)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside upper right", fontsize=8, ncols=2)
    fig.suptitle("Parameter recovery: each replicate's estimate against the truth", fontsize=10)
    return fig
