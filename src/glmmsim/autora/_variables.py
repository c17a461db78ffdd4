"""AutoRA variable metadata for an lmm experiment: IVs, DV, domain and condition input.

Examples
--------
>>> from autora.variable import IV
>>> ivs = merge_ivs(("x", "g"), [IV(name="g", allowed_values=[1, 2])], "y ~ x + (1|g)")
>>> [(iv.name, iv.allowed_values) for iv in ivs]
[('g', [1, 2]), ('x', None)]
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd
from autora.variable import DV, IV, ValueType, Variable, VariableCollection

from ..errors import DataError, InputTypeError, ParameterError, did_you_mean, format_names

__all__ = ["merge_ivs", "make_variables", "domain_frame", "as_conditions", "categorical_ivs", "text_levels"]


def merge_ivs(names: Sequence[str], X: Sequence[Variable] | None, formula: str) -> list[Variable]:
    """IV objects for ``names``: those described in ``X`` first (in X's order), then the rest.

    With a complete ``X`` the order is X's, as in autora-synthetic; names in
    ``X`` that the formula does not use raise ParameterError.
    """
    if X is None:
        return [IV(name=n) for n in names]
    if isinstance(X, (str, Variable)) or not isinstance(X, Sequence):
        raise InputTypeError(f"X must be a list of autora IV objects; got {type(X).__name__}")
    given: dict[str, Variable] = {}
    for iv in X:
        if not isinstance(iv, Variable):
            raise InputTypeError(f"X must hold autora IV objects; got {type(iv).__name__} {iv!r}")
        if iv.name not in names:
            raise ParameterError(
                f"X describes {iv.name!r}, which formula {formula!r} does not use; its variables "
                f"are {format_names(names)}.{did_you_mean(iv.name, names)}"
            )
        if iv.name in given:
            raise ParameterError(f"X describes {iv.name!r} twice")
        given[iv.name] = iv
    return list(given.values()) + [IV(name=n) for n in names if n not in given]


def make_variables(ivs: Sequence[Variable], response: str) -> VariableCollection:
    """An autora VariableCollection of the IVs and a single DV named ``response``."""
    return VariableCollection(independent_variables=list(ivs), dependent_variables=[DV(name=response)])


def domain_frame(variables: VariableCollection) -> pd.DataFrame:
    """Every combination of the IVs' allowed values, first IV varying slowest.

    Examples
    --------
    >>> v = make_variables([IV(name="a", allowed_values=[0, 1]), IV(name="b", allowed_values=["u", "v"])], "y")
    >>> domain_frame(v)
       a  b
    0  0  u
    1  0  v
    2  1  u
    3  1  v
    """
    ivs = variables.independent_variables
    lacking = [iv.name for iv in ivs if iv.allowed_values is None or len(iv.allowed_values) == 0]
    if lacking:
        raise ParameterError(
            f"domain() needs allowed values for every IV; {format_names(lacking)} "
            f"{'has' if len(lacking) == 1 else 'have'} none - pass X=[IV(name=..., allowed_values=[...])]"
        )
    rows = list(itertools.product(*(list(iv.allowed_values) for iv in ivs)))
    return pd.DataFrame(rows, columns=[iv.name for iv in ivs])


def as_conditions(
    conditions: object, iv_names: Sequence[str], numeric: Sequence[str]
) -> pd.DataFrame:
    """Conditions as a DataFrame holding every IV; arrays are read in IV order.

    The result is the caller's DataFrame itself (never modified here) or a new
    one built from an array; ``numeric`` columns coming from an array of
    strings/objects are converted to numbers where possible.

    Examples
    --------
    >>> frame = as_conditions(np.array([["1.5", "a"], ["2", "b"]]), ["x", "g"], ["x"])
    >>> frame["x"].tolist(), frame["g"].tolist()
    ([1.5, 2.0], ['a', 'b'])
    """
    if isinstance(conditions, pd.DataFrame):
        frame = conditions
    else:
        frame = _frame_from_array(conditions, iv_names, numeric)
    missing = [n for n in iv_names if n not in frame.columns]
    if missing:
        present = [str(c) for c in frame.columns]
        raise DataError(
            f"conditions lack column{'s' if len(missing) > 1 else ''} {format_names(missing)}; "
            f"columns present: {format_names(present) or 'none'}.{did_you_mean(missing[0], present)}"
        )
    holes = [n for n in iv_names if frame[n].isna().any()]
    if holes:
        raise DataError(f"conditions have missing values in {format_names(holes)}")
    return frame


def _frame_from_array(conditions: object, iv_names: Sequence[str], numeric: Sequence[str]) -> pd.DataFrame:
    try:
        array = np.asarray(conditions)
    except Exception as exc:  # ragged lists and the like
        raise InputTypeError(f"conditions must be a DataFrame or a 2-D array; got {type(conditions).__name__}") from exc
    if array.ndim == 1 and len(iv_names) == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2 or array.shape[1] != len(iv_names):
        raise DataError(
            f"an array of conditions needs one column per IV in order {format_names(iv_names)}; "
            f"got shape {array.shape}"
        )
    frame = pd.DataFrame(array, columns=list(iv_names)).infer_objects()
    for name in numeric:
        if not pd.api.types.is_numeric_dtype(frame[name]):
            try:
                frame[name] = pd.to_numeric(frame[name])
            except (ValueError, TypeError):
                pass  # a categorical predictor; the simulator reports it if it must be numeric
    return frame


def _is_textual(iv: Variable) -> bool:
    values = iv.allowed_values
    return values is not None and len(values) > 0 and not all(
        isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in values
    )


def categorical_ivs(variables: VariableCollection, grouping: Sequence[str]) -> list[str]:
    """Names of IVs to treat as categories when plotting: grouping columns, CLASS or text IVs."""
    return [
        iv.name
        for iv in variables.independent_variables
        if iv.name in grouping or iv.type == ValueType.CLASS or _is_textual(iv)
    ]


def text_levels(variables: VariableCollection, skip: Sequence[str]) -> dict[str, list]:
    """``{name: sorted allowed values}`` of the IVs with non-numeric allowed values, except ``skip``.

    Fixing these levels keeps a categorical predictor's coefficients the same
    whichever of its levels a batch of conditions holds. They are sorted as
    formulaic sorts levels found in data, so the reference level is the one a
    batch holding every level would give.

    Examples
    --------
    >>> v = make_variables([IV(name="cond", allowed_values=["b", "a"]), IV(name="x", allowed_values=[0, 1])], "y")
    >>> text_levels(v, skip=[])
    {'cond': ['a', 'b']}
    """
    return {
        iv.name: _sorted(np.asarray(iv.allowed_values, dtype=object).tolist())
        for iv in variables.independent_variables
        if iv.name not in skip and _is_textual(iv)
    }


def _sorted(values: list) -> list:
    try:
        return sorted(values)
    except TypeError:  # mixed types: no natural order, keep the given one
        return values
