"""What an engine fits from: a view of the :class:`~glmmsim.model.model_design.ModelDesign`, checked for fitting.

Every engine receives the same numbers: the fixed-effects columns built by
glmmsim's own formula pipeline (formulaic spelling, ``na_action="raise"``), one
block of random-effect columns and one vector of group codes per random term
after lme4's expansion of ``||`` and ``/``. Engines therefore never parse the
user's formula, so ``C(cond, Sum)``, ``np.log(x)`` or ``I(x**2)`` fit wherever
they simulate, and coefficient names are glmmsim's on every engine.

A :class:`FitDesign` is built from a ModelDesign without reading the formula again:
:func:`fit_design` views the design a bound model simulates from (a study's point), and
:func:`build_design` builds the ModelDesign of a formula first (``glmmsim.fit``).
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ..errors import DataError, InputTypeError, ParameterError, did_you_mean, format_names
from ..limits import check_limit, check_rows
from ..model.model_design import ModelDesign, build_model_design
from ..model.formula import parse_formula
from ..model.formula_safety import check_formula
from ..model.matrices import check_columns_present, split_offsets
from ..model.names import CoefficientNames
from ..model.terms import RandomTerm, expand_bars
from ..model.families import resolve_family

__all__ = ["FitDesign", "TermDesign", "build_design", "fit_design"]


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
    """Everything an engine needs except the response: immutable, a view of one ``ModelDesign``.

    ``names`` resolves coefficient and term names (either spelling) to positions;
    ``source`` is the ModelDesign the columns come from (shared, not copied).
    """

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
    names: CoefficientNames | None = None
    source: ModelDesign | None = None

    @property
    def factors(self) -> tuple[str, ...]:
        """Grouping factors in formula order, as glmmsim names them."""
        return tuple(dict.fromkeys(t.term.factor for t in self.terms))

    @property
    def fixed_terms(self) -> dict[str, tuple[int, ...]]:
        """Fixed-part term label (``cond``, ``x:cond``) -> positions of its columns."""
        return self.names.terms

    def without_fixed(self, drop: Sequence[int]) -> FitDesign:
        """The nested design without the fixed columns at positions ``drop`` (for likelihood-ratio tests)."""
        keep = [i for i in range(len(self.fixed_names)) if i not in set(drop)]
        names = tuple(self.fixed_names[i] for i in keep)
        return replace(
            self,
            fixed_names=names,
            lme4_names=tuple(self.lme4_names[i] for i in keep),
            x=tuple(self.x[i] for i in keep),
            names=CoefficientNames(names, self.levels),
        )

    def check_start(self, start: object) -> list[np.ndarray]:
        """``start`` (one covariance matrix per random term, in ``terms`` order) as float arrays, or a
        ParameterError naming the term, its columns and what is wrong."""
        if isinstance(start, np.ndarray) or not isinstance(start, Sequence) or len(start) != len(self.terms):
            raise ParameterError(
                f"start must be a list of {len(self.terms)} covariance matrices, one per random term "
                f"({', '.join(str(td.term) for td in self.terms)}); got {type(start).__name__}",
                parameter="start",
            )
        out = []
        for td, cov in zip(self.terms, start):
            q = len(td.coefs)
            problem = _covariance_problem(cov, q)
            if problem:
                raise ParameterError(
                    f"start for the random term {td.term} must be a {q} x {q} covariance matrix (finite, symmetric, "
                    f"positive semi-definite; columns {', '.join(td.coefs)}): {problem}",
                    parameter="start", term=str(td.term),
                )
            out.append(np.asarray(cov, dtype=np.float64))
        return out

    def check_responses(self, ys: np.ndarray) -> None:
        """Check every column of ``ys`` (``(n, K)``) as :meth:`check_response` checks one response.

        A gaussian model's float columns are checked in one pass over the whole array (finite
        values are all it asks); only when that fails, or for other families, column by column,
        so that the error names the first bad row of the first bad column.
        """
        if self.family == "gaussian" and ys.dtype == np.float64 and np.isfinite(ys).all():
            return
        for j in range(ys.shape[1]):
            self.check_response(ys[:, j])

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


def _covariance_problem(cov: object, q: int) -> str:
    """What keeps ``cov`` from being a q x q covariance matrix ("" when nothing does)."""
    try:
        mat = np.asarray(cov, dtype=np.float64)
    except (TypeError, ValueError):
        return f"got {type(cov).__name__}, not numbers"
    if mat.shape != (q, q):
        return f"got shape {mat.shape}"
    if not np.all(np.isfinite(mat)):
        return "it holds missing or infinite values"
    if not np.allclose(mat, mat.T):
        return "it is not symmetric"
    if np.linalg.eigvalsh(mat).min() < -1e-10 * max(1.0, float(np.abs(mat).max())):
        return "it has a negative eigenvalue"
    return ""


def _check_rows(bad: np.ndarray, what: str, index: pd.Index | None) -> None:
    """A DataError naming the first row where ``bad`` is true by its index label (its position without one)."""
    if bad.any():
        pos = int(np.argmax(bad))
        row = index[pos] if index is not None else pos
        raise DataError(f"{what}; first offending row {row!r} ({int(bad.sum())} rows in all)", row=row)


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
    """Validate the inputs, build the ``ModelDesign`` (``glmmsim.model.model_design``) of ``formula`` on ``data`` and view it for fitting.

    The formula's ``offset(...)`` terms are added to ``offset``, as in lme4.

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
    _check_mixed(formula, terms)
    check_rows(len(data), "the data to fit", parameter="data")
    fixed, offsets = split_offsets(parsed.fixed, formula)
    design = build_model_design(
        formula, data, levels=levels, trusted=trusted_formula, parsed=(parsed.response, fixed, offsets, terms)
    )
    return fit_design(design, data, family=family, link=link, trials=trials, offset=offset)


def _check_mixed(formula: str, terms: Sequence[RandomTerm]) -> None:
    if not terms:
        raise ParameterError(
            f"formula {formula!r} has no random-effect term such as '(1 | subject)': fitting is for mixed models"
        )


def fit_design(
    design: ModelDesign,
    data: pd.DataFrame,
    *,
    family: object = None,
    link: str | None = None,
    trials: int | str | None = None,
    offset: str | Sequence[float] | None = None,
) -> FitDesign:
    """The :class:`FitDesign` view of ``design`` (built on ``data``): no formula is read again.

    ``family`` defaults to the design's own (a model's :class:`~glmmsim.model.families.Family`);
    ``trials`` and ``offset`` are checked as :func:`glmmsim.fit.fit` checks them.

    Examples
    --------
    >>> import glmmsim
    >>> d = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "g": ["a", "a", "b", "b"]})
    >>> m = glmmsim.Model("y ~ x + (1 | g)", fixed={"Intercept": 0, "x": 1}, random={"g": 1}, sigma=1)
    >>> bound = m.bind(d)
    >>> view = fit_design(bound.design, d)
    >>> view.family, view.x[1] is bound.design.fixed.arrays[1]
    ('gaussian', True)
    """
    family, link = resolve_family(design.family if family is None else family, link)
    _check_mixed(design.formula, [b.term for b in design.blocks])
    check_rows(design.nobs, "the data to fit", parameter="data")
    terms = []
    for block in design.blocks:
        # one random effect per level and column: a factor with as many levels as rows is no model to fit
        check_limit(block.nlevels * len(block.z.names), "max_levels",
                    f"random effects of {block.term} ({block.nlevels:,} levels)", parameter="data")
        terms.append(TermDesign(block.term, block.z.names, block.z.arrays, block.group.codes, block.nlevels))
    values = None if offset is None else _row_values(offset, data, "offset")
    if design.offset is not None:  # the formula's offset(...) terms, as lme4 adds them
        values = design.offset if values is None else values + design.offset
    names = design.names
    return FitDesign(
        formula=design.formula,
        response=design.response,
        family=family,
        link=link,
        nobs=design.nobs,
        fixed_names=names.names,
        lme4_names=names.lme4,
        x=design.fixed.arrays,
        terms=tuple(terms),
        trials=_trials(trials, family, data),
        trials_spec=trials,
        offset=values,
        levels=design.levels,
        index=design.index,
        names=names,
        source=design,
    )


def response_of(design: FitDesign, data: pd.DataFrame) -> np.ndarray:
    """The response column of ``data``, checked, or a DataError naming it."""
    if design.response not in data.columns:
        raise DataError(
            f"response column {design.response!r} of {design.formula!r} is not in the data."
            f"{did_you_mean(design.response, map(str, data.columns))} Data columns: {format_names(data.columns)}"
        )
    return design.check_response(data[design.response].to_numpy(dtype=np.float64, na_value=np.nan))
