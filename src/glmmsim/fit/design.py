"""One fit's design, materialised once: fixed and random model columns, groups, trials, offset.

Every engine receives the same numbers: the fixed-effects columns built by
glmmsim's own formula pipeline (formulaic spelling, ``na_action="raise"``), one
block of random-effect columns and one vector of group codes per random term
after lme4's expansion of ``||`` and ``/``. Engines therefore never parse the
user's formula, so ``C(cond, Sum)``, ``np.log(x)`` or ``I(x**2)`` fit wherever
they simulate, and coefficient names are glmmsim's on every engine.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import pandas as pd

from ..errors import DataError, InputTypeError, ParameterError, did_you_mean, format_names
from ..limits import check_limit, check_rows
from ..model.formula import parse_formula
from ..model.formula_safety import check_formula
from ..model.matrices import check_columns_present, expression_variables, grouping, model_columns
from ..model.names import lme4_name
from ..model.terms import RandomTerm, expand_bars, split_interaction
from ..model.families import resolve_family

__all__ = ["FitDesign", "TermDesign", "build_design"]


@dataclass(frozen=True)
class TermDesign:
    """One random term on the fitted rows.

    Attributes
    ----------
    term : RandomTerm
        The expanded term (``(0 + x | g)``), with the factor name glmmsim uses.
    coefs : tuple of str
        Formulaic names of the term's columns (``Intercept``, ``cond[T.b]``).
    z : tuple of ndarray or None
        The term's columns; None is the intercept (a column of ones).
    codes : ndarray of int
        The group level of each row, 0..nlevels-1.
    nlevels : int
        Number of levels present.
    """

    term: RandomTerm
    coefs: tuple[str, ...]
    z: tuple[np.ndarray | None, ...]
    codes: np.ndarray
    nlevels: int

    @property
    def has_intercept(self) -> bool:
        return bool(self.z) and self.z[0] is None


@dataclass(frozen=True)
class FitDesign:
    """Everything an engine needs except the response: immutable, built once per design."""

    formula: str
    response: str
    family: str
    link: str
    nobs: int
    fixed_names: tuple[str, ...]
    lme4_names: tuple[str, ...]
    x: tuple[np.ndarray | None, ...]
    terms: tuple[TermDesign, ...]
    trials: np.ndarray | None
    trials_spec: int | str | None
    offset: np.ndarray | None
    levels: dict[str, list[object]] = field(default_factory=dict)
    index: pd.Index | None = None  # the rows' labels, to name an offending row as the caller knows it

    @property
    def factors(self) -> tuple[str, ...]:
        """Grouping factors in formula order, as glmmsim names them."""
        return tuple(dict.fromkeys(t.term.factor for t in self.terms))

    @cached_property
    def fixed_terms(self) -> dict[str, tuple[int, ...]]:
        """Fixed-part term label (``cond``, ``x:cond``) -> positions of its columns."""
        out: dict[str, list[int]] = {}
        for pos, name in enumerate(self.fixed_names):
            out.setdefault(term_label(name), []).append(pos)
        return {k: tuple(v) for k, v in out.items()}

    @cached_property
    def coefficient_lookup(self) -> tuple[dict[str, int], dict[tuple[str, ...], tuple[int, ...]]]:
        """What tests look names up in, built once per design (every replicate's tests read it).

        Either spelling of a coefficient, whitespace removed (``1`` for the intercept) ->
        its position; a term's parts, whitespace removed and sorted -> its columns' positions.
        """
        by_name: dict[str, int] = {}
        for pos, (name, lme4) in enumerate(zip(self.fixed_names, self.lme4_names)):
            by_name[squash(name)] = pos
            by_name[squash(lme4)] = pos
        if "Intercept" in self.fixed_names:
            by_name["1"] = self.fixed_names.index("Intercept")
        terms = {unordered_term(label): cols for label, cols in self.fixed_terms.items()}
        return by_name, terms

    def without_fixed(self, drop: Sequence[int]) -> FitDesign:
        """The nested design without the fixed columns at positions ``drop`` (for likelihood-ratio tests)."""
        keep = [i for i in range(len(self.fixed_names)) if i not in set(drop)]
        return replace(
            self,
            fixed_names=tuple(self.fixed_names[i] for i in keep),
            lme4_names=tuple(self.lme4_names[i] for i in keep),
            x=tuple(self.x[i] for i in keep),
        )

    def check_response(self, y: object) -> np.ndarray:
        """The response as a float array, checked against the family, or a DataError naming the row."""
        try:
            arr = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"response {self.response!r} must be numeric") from None
        if arr.ndim != 1 or len(arr) != self.nobs:
            raise DataError(
                f"response {self.response!r} must hold one number per row of the design "
                f"({self.nobs}); got shape {arr.shape}"
            )
        index = self.index
        _check_rows(~np.isfinite(arr), f"response {self.response!r} is missing or infinite", index)
        if self.family == "binomial":
            top = 1.0 if self.trials is None else self.trials
            what = "0 or 1" if self.trials is None else "a whole number of successes between 0 and its trials"
            _check_rows((arr < 0) | (arr > top) | (arr != np.round(arr)), f"response {self.response!r} must be {what}", index)
        elif self.family in ("poisson", "negative_binomial"):
            _check_rows((arr < 0) | (arr != np.round(arr)), f"response {self.response!r} must be a count (0, 1, 2, ...)", index)
        elif self.family == "gamma":
            _check_rows(arr <= 0, f"response {self.response!r} must be positive for the gamma family", index)
        return arr


def _check_rows(bad: np.ndarray, what: str, index: pd.Index | None) -> None:
    """A DataError naming the first row where ``bad`` is true by its index label (its position without one)."""
    if bad.any():
        pos = int(np.argmax(bad))
        row = index[pos] if index is not None else pos
        raise DataError(f"{what}; first offending row {row!r} ({int(bad.sum())} rows in all)", row=row)


_BRACKET = re.compile(r"\[[^\[\]]*\]$")


def squash(text: str) -> str:
    """``text`` without whitespace: how test names are compared."""
    return re.sub(r"\s+", "", text)


def unordered_term(label: str) -> tuple[str, ...]:
    """A term's parts, whitespace removed and sorted: ``x : cond`` and ``cond:x`` are one term."""
    return tuple(sorted(squash(label).split(":")))


def term_label(name: str) -> str:
    """The fixed-part term a formulaic column belongs to: ``x:cond[T.b]`` -> ``x:cond``.

    Examples
    --------
    >>> term_label("cond[T.b]"), term_label("x:C(cond, Sum)[S.a]"), term_label("Intercept")
    ('cond', 'x:C(cond, Sum)', 'Intercept')
    """
    return ":".join(_BRACKET.sub("", p) for p in split_interaction(name))


def _categorical_levels(data: pd.DataFrame, columns: Sequence[str]) -> dict[str, list[object]]:
    """Levels of the non-numeric predictor columns, in the order formulaic codes them."""
    out: dict[str, list[object]] = {}
    for col in columns:
        values = data[col]
        if isinstance(values.dtype, pd.CategoricalDtype):
            out[col] = list(values.cat.categories)
        elif not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            try:
                out[col] = sorted(pd.unique(values.dropna()))
            except TypeError:  # mixed types have no order: formulaic would fail on them too
                continue
    return out


def _row_values(value: object, data: pd.DataFrame, what: str) -> np.ndarray:
    """A column named by ``value``, or an array-like with one entry per row, as finite floats."""
    if isinstance(value, str):
        check_columns_present(data, [value], what)
        arr = data[value].to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (OverflowError, TypeError, ValueError) as exc:  # text, or a number beyond float range
            raise DataError(
                f"{what} must be a column name or finite numbers, one per row ({len(data)}); got {reprlib.repr(value)} "
                f"({type(exc).__name__})"
            ) from None
        if arr.ndim == 0:
            arr = np.full(len(data), float(arr))
    if arr.shape != (len(data),):
        raise DataError(f"{what} must be a column name or one number per row ({len(data)}); got shape {arr.shape}")
    _check_rows(~np.isfinite(arr), f"{what} is missing or infinite", data.index)
    return arr


def _trials(trials: object, family: str, data: pd.DataFrame) -> np.ndarray | None:
    if trials is None:
        return None
    if family != "binomial":
        raise ParameterError(f"trials= applies to the binomial family only; family is {family!r}")
    if isinstance(trials, bool) or not isinstance(trials, (str, int, np.integer)):
        raise InputTypeError(f"trials must be a whole number or a column name; got {trials!r}")
    arr = _row_values(trials, data, "trials" if not isinstance(trials, str) else f"trials column {trials!r}")
    _check_rows((arr < 1) | (arr != np.round(arr)), f"trials {trials!r} must be whole numbers >= 1", data.index)
    return arr


def build_design(
    formula: str,
    data: pd.DataFrame,
    *,
    family: object = "gaussian",
    link: str | None = None,
    trials: int | str | None = None,
    offset: str | Sequence[float] | None = None,
    levels: Mapping[str, Sequence[object]] | None = None,
    trusted_formula: bool = False,
) -> FitDesign:
    """Validate the inputs and materialise the design of ``formula`` on ``data``.

    Examples
    --------
    >>> d = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "g": ["a", "a", "b", "b"]})
    >>> des = build_design("y ~ x + (1 | g)", d)
    >>> des.fixed_names, des.terms[0].nlevels
    (('Intercept', 'x'), 2)
    """
    if not isinstance(formula, str):
        raise InputTypeError(f"formula must be a string such as 'y ~ x + (1 | g)'; got {type(formula).__name__}")
    if not isinstance(data, pd.DataFrame):
        raise InputTypeError(f"data must be a pandas DataFrame; got {type(data).__name__}")
    family, link = resolve_family(family, link)
    if not trusted_formula:  # a formula is data: the whitelist of glmmsim.model.formula_safety
        check_formula(formula)
    parsed = parse_formula(formula)
    terms = expand_bars(parsed.bars)
    if not terms:
        raise ParameterError(
            f"formula {formula!r} has no random-effect term such as '(1 | subject)': fitting is for mixed models"
        )
    declared = {k: list(v) for k, v in (levels or {}).items()}
    x = model_columns(parsed.fixed, data, declared, "the fixed part", trusted=trusted_formula)
    grouping_cols = {c for t in terms for c in t.columns}
    predictors = [
        v
        for expr in [parsed.fixed] + [t.expr for t in terms]
        for v in expression_variables(expr)
        if v not in grouping_cols and v in data.columns
    ]
    found = {**_categorical_levels(data, list(dict.fromkeys(predictors))), **declared}
    term_designs = []
    check_rows(len(data), "the data to fit", parameter="data")
    for term in terms:
        z = model_columns(term.expr, data, declared, str(term), trusted=trusted_formula)
        check_limit(len(z.names), "max_random_columns", f"random-effect columns of {term}", parameter="formula")
        group = grouping(data, term.columns, f"factor {term.factor!r}")
        # one random effect per level and column: a factor with as many levels as rows is no model to fit
        check_limit(len(group.labels) * len(z.names), "max_levels", f"random effects of {term} ({len(group.labels):,} levels)", parameter="data")
        term_designs.append(TermDesign(term, tuple(z.names), tuple(z.arrays), group.codes, len(group.labels)))
    return FitDesign(
        formula=formula,
        response=parsed.response,
        family=family,
        link=link,
        nobs=len(data),
        fixed_names=tuple(x.names),
        lme4_names=tuple(lme4_name(n, found) for n in x.names),
        x=tuple(x.arrays),
        terms=tuple(term_designs),
        trials=_trials(trials, family, data),
        trials_spec=trials,
        offset=None if offset is None else _row_values(offset, data, "offset"),
        levels=found,
        index=data.index,
    )


def response_of(design: FitDesign, data: pd.DataFrame) -> np.ndarray:
    """The response column of ``data``, checked, or a DataError naming it."""
    if design.response not in data.columns:
        raise DataError(
            f"response column {design.response!r} of {design.formula!r} is not in the data."
            f"{did_you_mean(design.response, map(str, data.columns))} Data columns: {format_names(data.columns)}"
        )
    return design.check_response(data[design.response].to_numpy(dtype=np.float64, na_value=np.nan))
