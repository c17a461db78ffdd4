"""Inputs shared by the studies (power, recovery): conditions, declared levels, coefficient names."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputTypeError, ParameterError
from ..model.formula import parse_formula
from ..model.matrices import model_columns

__all__ = ["conditions_frame", "model_levels", "coefficient_names", "percent"]


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


def model_levels(model: Any) -> dict:
    """The declared levels of the model's categorical predictors (empty when none)."""
    return dict(getattr(model, "levels", None) or {})


def coefficient_names(formula: str, conditions: pd.DataFrame, model: Any) -> tuple[str, ...]:
    """Fixed-effect coefficient names of ``formula`` on ``conditions`` (formulaic spelling)."""
    # the model's own formula keeps the model's trust; any other analysis formula is checked
    trusted = formula == getattr(model, "formula", None) and bool(getattr(model, "trusted_formula", False))
    fixed = parse_formula(formula).fixed
    return model_columns(fixed, conditions, model_levels(model), "the analysis formula", trusted=trusted).names


def percent(x: float) -> str:
    """A rate as a percentage with one decimal, or ``n/a``.

    Examples
    --------
    >>> percent(0.1234), percent(float("nan"))
    ('12.3%', 'n/a')
    """
    return "n/a" if not np.isfinite(x) else f"{100 * x:.1f}%"
