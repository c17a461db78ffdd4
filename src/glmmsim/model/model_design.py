"""The design of one point: a formula read against one data frame, once, for simulating and fitting.

:class:`ModelDesign` holds what the formula makes of the rows, and nothing that depends
on parameter values: the fixed-effects columns and their names in formulaic's and lme4's
spelling, the columns of every fixed term, one block per random-effect term (its
columns, the group code of each row and the persistent key of each level), offsets,
trials, the family and whether the formula is trusted. A
:class:`~glmmsim.model.bound.BoundModel` simulates from it, every fitting engine fits
from it (through :func:`glmmsim.fit.design.fit_design`) and tests look names up in its
:attr:`ModelDesign.names`, so a study builds the design of a point once per process.

Examples
--------
>>> import pandas as pd
>>> d = pd.DataFrame({"cond": ["a", "b", "a", "b"], "g": ["s1", "s1", "s2", "s2"]})
>>> des = build_model_design("y ~ cond + (1 | g)", d)
>>> des.names.names, des.names.lme4, des.blocks[0].nlevels
(('Intercept', 'cond[T.b]'), ('(Intercept)', 'condb'), 2)
>>> des.names.find("cond")
(1,)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from ..limits import check_limit
from .families import Family
from .formula import parse_formula
from .formula_safety import check_formula
from .matrices import Columns, Grouping, check_columns_present, expression_variables, grouping, model_columns, offset_values, split_offsets
from .names import CoefficientNames, find_levels
from .terms import RandomTerm, expand_bars

__all__ = ["ModelDesign", "RandomBlock", "build_model_design"]


@dataclass(frozen=True)
class RandomBlock:
    """One random-effect term on the design's rows.

    Attributes
    ----------
    term : RandomTerm
        The expanded term (``(0 + x | g)``), with the factor name glmmsim uses.
    z : Columns
        The term's columns (formulaic names; ``None`` is the intercept).
    group : Grouping
        Group code of each row, persistent key and label of each level present.
    """

    term: RandomTerm
    z: Columns
    group: Grouping

    @property
    def nlevels(self) -> int:
        """Number of levels present in the rows."""
        return len(self.group.labels)


@dataclass(frozen=True, eq=False)
class ModelDesign:
    """A formula materialised on one data frame: frozen, built once, shared by simulation and fits.

    Attributes
    ----------
    formula, response : str
        The formula as given and its response column.
    family : Family or None
        The model's family; None for a design built only to fit a family given by name.
    trusted : bool
        Whether the formula skipped :mod:`glmmsim.model.formula_safety` (``trusted_formula=True``).
    fixed : Columns
        The fixed-effects columns, offsets excluded.
    blocks : tuple of RandomBlock
        One per random-effect term after lme4's expansion of ``||`` and ``/``, in formula order.
    offset : ndarray or None
        The sum of the formula's ``offset(...)`` terms, per row.
    trials : int, ndarray or None
        Binomial trials: the model's number or its column's values.
    levels : dict
        Levels of the categorical predictors, declared ones first (see ``glmmsim.model.names.find_levels``).
    index : pandas.Index
        The rows' labels, to name an offending row as the caller knows it.

    Examples
    --------
    >>> import pandas as pd, glmmsim
    >>> data = pd.DataFrame({"cond": ["a", "b"] * 4, "subject": ["s1"] * 4 + ["s2"] * 4})
    >>> m = glmmsim.Model("y ~ cond + (1 | subject)", fixed={"Intercept": 0, "condb": 0.5},
    ...                   random={"subject": 1}, sigma=1)
    >>> design = m.design(data)
    >>> design.names.names, design.names.lme4
    (('Intercept', 'cond[T.b]'), ('(Intercept)', 'condb'))
    >>> design.names.find("cond"), design.blocks[0].nlevels
    ((1,), 2)
    """

    formula: str
    response: str
    family: Family | None
    trusted: bool
    fixed: Columns
    blocks: tuple[RandomBlock, ...]
    offset: np.ndarray | None
    trials: int | np.ndarray | None
    levels: dict[str, list[object]]
    index: pd.Index

    @property
    def nobs(self) -> int:
        return len(self.index)

    @property
    def factors(self) -> tuple[str, ...]:
        """Grouping factors in formula order."""
        return tuple(dict.fromkeys(b.term.factor for b in self.blocks))

    @cached_property
    def names(self) -> CoefficientNames:
        """The fixed coefficients' names in both spellings, and the resolver of user spellings."""
        return CoefficientNames(self.fixed.names, self.levels)

    @property
    def term_columns(self) -> dict[str, tuple[int, ...]]:
        """Fixed-part term label (``cond``, ``x:cond``) -> positions of its columns."""
        return self.names.terms


def build_model_design(
    formula: str,
    data: pd.DataFrame,
    *,
    family: Family | None = None,
    levels: Mapping[str, Sequence[object]] | None = None,
    trials: int | str | None = None,
    trusted: bool = False,
    parsed: tuple[str, str, tuple[str, ...], Sequence[RandomTerm]] | None = None,
    limit_parameter: str = "formula",
) -> ModelDesign:
    """Read ``formula`` against ``data`` once: every column, group code, offset and trials value.

    Parameters
    ----------
    formula : str
        lme4 formula; checked by :func:`~glmmsim.model.formula_safety.check_formula` unless ``trusted``.
    data : pandas.DataFrame
    family : Family, optional
    levels : mapping, optional
        Declared levels of categorical predictors (fix the reference level and the coefficients).
    trials : int or str, optional
        A number, or the column holding each row's trials.
    trusted : bool
    parsed : (response, fixed expression, offset expressions, random terms), optional
        The formula already parsed (a :class:`~glmmsim.model.Model` parses once, at construction).
    limit_parameter : str
        The argument a too-large random term is blamed on (``formula`` for a fit, ``random`` for a model).
    """
    if parsed is None:
        if not trusted:  # a formula is data: the whitelist of glmmsim.model.formula_safety
            check_formula(formula)
        p = parse_formula(formula)
        response = p.response
        fixed_expr, offsets = split_offsets(p.fixed, formula)
        terms: Sequence[RandomTerm] = expand_bars(p.bars)
    else:
        response, fixed_expr, offsets, terms = parsed
    declared = {k: list(v) for k, v in (levels or {}).items()}
    x = model_columns(fixed_expr, data, declared, "the fixed part", trusted=trusted)
    offset = None
    for expr in offsets:
        values = offset_values(expr, data, "offset", trusted=trusted)
        offset = values if offset is None else offset + values
    z_cols = []
    for term in terms:
        z = model_columns(term.expr, data, declared, str(term), trusted=trusted)
        # a term's covariance is columns x columns: (0 + cond | g) of a 10,000-level cond is 10**8
        check_limit(len(z.names), "max_random_columns", f"random-effect columns of {term}", parameter=limit_parameter)
        z_cols.append(z)
    groups: dict[str, Grouping] = {}
    for term in terms:
        if term.factor not in groups:
            groups[term.factor] = grouping(data, term.columns, f"factor {term.factor!r}")
    grouping_cols = {c for t in terms for c in t.columns}
    predictors = [
        v for expr in [fixed_expr, *(t.expr for t in terms)] for v in expression_variables(expr) if v not in grouping_cols
    ]
    trial_values: int | np.ndarray | None = trials if not isinstance(trials, str) else _column(data, trials)
    return ModelDesign(
        formula=formula,
        response=response,
        family=family,
        trusted=bool(trusted),
        fixed=x,
        blocks=tuple(RandomBlock(t, z, groups[t.factor]) for t, z in zip(terms, z_cols)),
        offset=offset,
        trials=trial_values,
        levels=find_levels(data, predictors, declared),
        index=data.index,
    )


def _column(data: pd.DataFrame, name: str) -> np.ndarray:
    check_columns_present(data, [name], "trials")
    return data[name].to_numpy()
