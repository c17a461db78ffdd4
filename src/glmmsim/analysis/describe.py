"""Plain-text descriptions of a study's model and design, for summaries a reader can paste."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import GlmmsimError

__all__ = ["describe_model", "describe_design"]


def _num(x: float) -> str:
    return f"{x:.4g}"


def describe_model(model: Any, conditions: pd.DataFrame) -> list[str]:
    """The formula, family and every parameter value of ``model``, one item per line."""
    family = model.family
    lines = [f"{model.formula}  [{family.describe()}]"]
    fixed = ", ".join(f"{k} = {_num(v)}" for k, v in model.fixed.items())
    lines.append(f"fixed effects: {fixed}")
    try:
        cov = model.covariance(conditions)
    except GlmmsimError:  # a description must not fail a finished study; a bug still surfaces
        cov = {}
    for factor, (coefs, sd, corr) in cov.items():
        parts = [f"SD({c}) = {_num(s)}" for c, s in zip(coefs, sd)]
        for i in range(len(coefs)):
            for j in range(i):
                if corr[i, j] != 0:
                    parts.append(f"corr({coefs[j]}, {coefs[i]}) = {_num(corr[i, j])}")
        lines.append(f"random effects of {factor}: " + ", ".join(parts))
    return lines  # the family's parameters are part of family.describe() on the first line


def describe_design(model: Any, conditions: pd.DataFrame, key: Sequence[str] | None) -> list[str]:
    """Rows, levels per grouping factor, the other label columns' levels, and the noise key."""
    counts = []
    for factor, cols in model.factor_columns.items():
        n = len(conditions[list(cols)].drop_duplicates())
        counts.append(f"{n} {factor}")
    line = f"{len(conditions)} rows" + (f": {', '.join(counts)}" if counts else "")
    lines = [line]
    grouping = {c for cols in model.factor_columns.values() for c in cols}
    for col in model.variables:
        if col in grouping or col not in conditions:
            continue
        values = conditions[col]
        if isinstance(values.dtype, pd.CategoricalDtype) or values.dtype == object or values.dtype.kind in "OSUb":
            levels = list(pd.unique(values))
            shown = ", ".join(map(str, levels[:6])) + (", ..." if len(levels) > 6 else "")
            lines.append(f"{col}: {len(levels)} levels ({shown})")
        elif np.issubdtype(values.dtype, np.number):
            lines.append(f"{col}: numeric, mean {_num(values.mean())}, SD {_num(values.std())}")
    if key:
        lines.append(f"noise keyed by {', '.join(key)} (common random numbers across designs)")
    return lines
