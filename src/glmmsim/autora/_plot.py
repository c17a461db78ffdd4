"""The ``plotter`` of an lmm experiment: ground truth (and a fitted model) for any number of IVs.

Layout: the response against the first continuous IV; one line per level of a
grouping factor (an evenly spaced sample when there are many); one panel per
level of a further categorical IV; every other IV held at a middle value
named in the title. A fitted model's ``predict`` is drawn dashed on top.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["make_plotter", "choose_roles"]


def choose_roles(
    iv_names: Sequence[str], categorical: Sequence[str], grouping: Sequence[str]
) -> tuple[str | None, str | None, str | None, list[str]]:
    """Pick (x axis, line factor, panel factor, held IVs) from the IVs.

    Examples
    --------
    >>> choose_roles(["x1", "x2", "subject", "cond"], ["subject", "cond"], ["subject"])
    ('x1', 'subject', 'cond', ['x2'])
    >>> choose_roles(["subject"], ["subject"], ["subject"])
    ('subject', None, None, [])
    """
    names = list(iv_names)
    continuous = [n for n in names if n not in categorical]
    x = continuous[0] if continuous else (names[0] if names else None)
    cats = [n for n in names if n in categorical and n != x]
    groups_first = sorted(cats, key=lambda n: n not in grouping)  # stable: grouping factors first
    line = groups_first[0] if groups_first else None
    panel = next((n for n in cats if n != line), None)
    held = [n for n in names if n not in (x, line, panel)]
    return x, line, panel, held


def _sample(levels: list[Any], k: int) -> list[Any]:
    if len(levels) <= k:
        return levels
    picks = np.linspace(0, len(levels) - 1, k).round().astype(int)
    return [levels[i] for i in dict.fromkeys(picks.tolist())]


def _middle(values: pd.Series) -> Any:
    uniq = pd.unique(values)
    try:
        ordered = sorted(uniq)
    except TypeError:
        ordered = list(uniq)
    return ordered[(len(ordered) - 1) // 2]


def _label(name: str, value: Any) -> str:
    """``name=value`` with floats shortened (a held 1/3 prints as 0.3333, not 17 digits)."""
    if isinstance(value, (float, np.floating)):
        return f"{name}={float(value):.4g}"
    return f"{name}={value}"


def _interactive_backend() -> bool:
    import matplotlib

    backend = matplotlib.get_backend().lower()
    try:
        from matplotlib.backends import BackendFilter, backend_registry

        return backend in backend_registry.list_builtin(BackendFilter.INTERACTIVE)
    except ImportError:  # matplotlib < 3.9
        from matplotlib import rcsetup

        return backend in [b.lower() for b in rcsetup.interactive_bk]


def _predictions(model: Any, ivs: pd.DataFrame) -> np.ndarray:
    predicted = np.asarray(model.predict(ivs), dtype=float)
    return predicted.reshape(len(ivs), -1)[:, 0]


def _draw_panel(
    ax: Any,
    rows: pd.DataFrame,
    x: str | None,
    line: str | None,
    lines: list[Any],
    response: str,
    with_model: bool,
) -> None:
    """One truth line per level of ``line`` (same colour in every panel), the model's dashed on top."""
    import matplotlib.pyplot as plt

    colours = plt.get_cmap("tab10")
    for i, level in enumerate(lines):
        sub = rows if line is None else rows[rows[line] == level]
        if sub.empty:
            continue
        sub = sub.sort_values(x) if x else sub
        xs = sub[x] if x else np.zeros(len(sub))
        label = "ground truth" if line is None else _label(line, level)
        ax.plot(xs, sub[response], "-o", ms=3, color=colours(i % 10), label=label)
        if with_model:
            ax.plot(xs, sub["__model__"], "--", color=colours(i % 10))
    ax.set_xlabel(x or "")


def make_plotter(
    name: str,
    iv_names: Sequence[str],
    response: str,
    categorical: Sequence[str],
    grouping: Sequence[str],
    ground_truth: Callable[..., pd.DataFrame],
    domain: Callable[[], pd.DataFrame],
) -> Callable[..., Any]:
    """Build the experiment's ``plotter(model=None, conditions=None, ...)``."""
    x, line, panel, held = choose_roles(iv_names, categorical, grouping)

    def plotter(
        model: Any = None,
        conditions: pd.DataFrame | None = None,
        random_state: Any = None,
        max_lines: int = 8,
        max_panels: int = 6,
    ):
        """Plot the ground truth on the domain (or ``conditions``) and optionally ``model``.

        Parameters
        ----------
        model : object with ``predict``, optional
            Called once with the IV columns of the plotted conditions.
        conditions : DataFrame, optional
            Rows to plot instead of ``domain()``.
        random_state : seed, optional
            Passed to ``ground_truth``.
        max_lines, max_panels : int
            Caps on grouping-factor lines and panels (evenly spaced levels are kept).

        Returns
        -------
        matplotlib.figure.Figure
        """
        import matplotlib.pyplot as plt

        data = domain() if conditions is None else conditions
        truth = ground_truth(data, random_state=random_state)
        predicted = None if model is None else _predictions(model, truth[list(iv_names)])
        frame = truth.reset_index(drop=True)
        if predicted is not None:
            frame["__model__"] = predicted
        kept = {h: _middle(frame[h]) for h in held}
        for h, value in kept.items():
            frame = frame[frame[h] == value]
        panels = _sample(list(pd.unique(frame[panel])), max_panels) if panel else [None]
        lines = _sample(list(pd.unique(frame[line])), max_lines) if line else [None]

        fig, axes = plt.subplots(
            1, len(panels), figsize=(4.5 * len(panels) + 1.5, 4), sharey=True, squeeze=False
        )
        for ax, panel_level in zip(axes[0], panels):
            rows = frame if panel is None else frame[frame[panel] == panel_level]
            _draw_panel(ax, rows, x, line, lines, response, with_model=predicted is not None)
            if panel is not None:
                ax.set_title(_label(panel, panel_level))
        axes[0][0].set_ylabel(response)
        handles, labels = axes[0][0].get_legend_handles_labels()
        if predicted is not None:
            handles.append(plt.Line2D([], [], color="grey", linestyle="--"))
            labels.append("fitted model")
        if handles:
            fig.legend(handles, labels, loc="center right", fontsize="small")
        subtitle = ", ".join(_label(h, v) for h, v in kept.items())
        fig.suptitle(name + (f" ({subtitle})" if subtitle else ""))
        fig.tight_layout(rect=(0, 0, 1 - 1.5 / fig.get_figwidth(), 1))
        if _interactive_backend():
            plt.show()
        return fig

    return plotter
