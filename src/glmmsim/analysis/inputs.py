"""Inputs shared by the studies (power, recovery): the conditions frame, and how rates are printed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputTypeError, ParameterError

__all__ = ["conditions_frame", "percent"]


def conditions_frame(conditions: Any, argname: str = "conditions") -> pd.DataFrame:
    """The conditions of a study: a DataFrame, or what a callable returns; never empty."""
    data = conditions() if callable(conditions) and not isinstance(conditions, pd.DataFrame) else conditions
    if not isinstance(data, pd.DataFrame):
        raise InputTypeError(
            f"{argname} must be a DataFrame of conditions or a callable returning one; got {type(data).__name__}"
        )
    if data.empty:
        raise ParameterError(f"{argname} has no rows: nothing to simulate")
    return data


def percent(x: float) -> str:
    """A rate as a percentage with one decimal, or ``n/a``.

    Examples
    --------
    >>> percent(0.1234), percent(float("nan"))
    ('12.3%', 'n/a')
    """
    return "n/a" if not np.isfinite(x) else f"{100 * x:.1f}%"
