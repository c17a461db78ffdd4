"""The parameter inputs a model asks for: one per fixed coefficient, random SD and correlation.

The names come from glmmsim itself, never from a list in the app: the formula is read
by the fitting layer's design builder on a small stand-in frame (categorical columns
with the design's declared levels, numbers elsewhere), which gives the fixed
coefficients in lme4's spelling and each random term's coefficients; the family's
parameters (``sigma``, ``theta``, ``shift``, ...) are those :func:`glmmsim.model.get_family`
asks for.

Examples
--------
>>> slots = model_slots("rt ~ cond + (1 + cond | subject) + (1 | item)", "gaussian", None,
...                     {"cond": ["a", "b"]})
>>> [s.label for s in slots]
['(Intercept)', 'condb', 'SD subject (Intercept)', 'SD subject condb', 'corr subject (Intercept), condb', 'SD item (Intercept)', 'sigma']
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import GlmmsimError, ParameterError
from ..fit.design import build_design
from ..model import get_family
from ..model.names import aliases, lme4_name

__all__ = ["Slot", "model_slots", "family_parameters", "family_links", "slot_for_error"]

_STAND_IN_ROWS = 6  # enough rows for every declared level and for transforms that need distinct values


@dataclass(frozen=True)
class Slot:
    """One parameter input.

    Attributes
    ----------
    kind : {"fixed", "sd", "corr", "family"}
        What the value is.
    factor : str
        The grouping factor (``sd``, ``corr``), else ``""``.
    names : tuple of str
        The coefficient(s) in lme4's spelling (two for a correlation); the family
        parameter's name for ``family``.
    formulaic : tuple of str
        The same coefficients in formulaic's spelling (``cond[T.b]``), for matching errors.
    meaning : str
        What a family parameter means (empty otherwise).
    """

    kind: str
    factor: str
    names: tuple[str, ...]
    formulaic: tuple[str, ...] = ()
    meaning: str = ""

    @property
    def key(self) -> str:
        """A stable text key of the slot (also the basis of its input id)."""
        return "|".join((self.kind, self.factor, *self.names))

    @property
    def input_id(self) -> str:
        """A Shiny input id that stays the same while the formula changes around it."""
        return "par_" + hashlib.sha1(self.key.encode("utf-8")).hexdigest()[:10]

    @property
    def label(self) -> str:
        if self.kind == "fixed":
            return self.names[0]
        if self.kind == "sd":
            return f"SD {self.factor} {self.names[0]}"
        if self.kind == "corr":
            return f"corr {self.factor} {', '.join(self.names)}"
        return self.names[0]

    def matches(self, coefficient: str) -> bool:
        """Whether an error's coefficient (either spelling) is this slot's."""
        spelled = {*self.names, *self.formulaic}
        return any(coefficient == s or coefficient in aliases(s) for s in spelled)


def family_parameters(family: str) -> list[tuple[str, str]]:
    """The family's parameters as ``(name, meaning)``, asked of glmmsim one at a time.

    ``get_family`` names the first parameter it misses in the error's ``parameter``
    attribute; giving it a placeholder and asking again lists them all.

    Examples
    --------
    >>> [n for n, _ in family_parameters("exgaussian")]
    ['sigma', 'tau']
    >>> family_parameters("binomial")
    []
    """
    given: dict[str, float] = {}
    for _ in range(8):  # families have at most a few parameters
        try:
            fam = get_family(family, **given)
        except ParameterError as exc:
            if exc.parameter is None or exc.parameter in given or exc.parameter == "family":
                raise
            given[exc.parameter] = 1.0
            continue
        meanings = {p.name: p.meaning for p in getattr(fam, "params", ()) if hasattr(p, "name")}
        return [(name, meanings.get(name, "")) for name in fam.param_names]
    raise ParameterError(f"family {family!r}: could not list its parameters", parameter="family")


def family_links(family: str) -> tuple[str, ...]:
    """The links the family takes, its default first."""
    given = dict.fromkeys((n for n, _ in family_parameters(family)), 1.0)
    return tuple(get_family(family, **given).links)


def _stand_in(columns: Sequence[str], grouping: set[str], levels: Mapping[str, Sequence[object]]) -> pd.DataFrame:
    """A few rows with every column the formula reads: declared levels, group labels, numbers."""
    n = max([_STAND_IN_ROWS, *(len(v) for v in levels.values())])
    frame: dict[str, object] = {}
    for col in columns:
        if col in levels and col not in grouping:
            lv = list(levels[col])
            frame[col] = pd.Categorical([lv[i % len(lv)] for i in range(n)], categories=lv)
        elif col in grouping:
            frame[col] = [f"g{i % 3}" for i in range(n)]
        else:  # a covariate: positive and distinct, so log() and poly() work
            frame[col] = np.arange(1.0, n + 1.0)
    return pd.DataFrame(frame)


def model_slots(
    formula: str,
    family: str,
    link: str | None,
    levels: Mapping[str, Sequence[object]],
    trials: object = None,
) -> list[Slot]:
    """Every parameter input of ``formula`` with the family's, in the order lme4 prints them.

    Raises the GlmmsimError glmmsim raises for the formula (``FormulaError`` with
    ``path=('formula',)``) or the family.
    """
    from ..model.formula import parse_formula
    from ..model.matrices import expression_variables
    from ..model.terms import expand_bars

    try:
        parsed = parse_formula(formula) if isinstance(formula, str) else None
    except GlmmsimError as exc:
        if exc.path is None:
            exc.path, exc.parameter = ("formula",), "formula"
        raise
    if parsed is None:
        raise ParameterError("formula must be text such as 'y ~ x + (1 | g)'", parameter="formula")
    terms = expand_bars(parsed.bars)
    grouping = {c for t in terms for c in t.columns}
    columns = [v for expr in [parsed.fixed, *(t.expr for t in terms)] for v in expression_variables(expr)]
    columns = list(dict.fromkeys([*columns, *grouping, *([trials] if isinstance(trials, str) else [])]))
    data = _stand_in(columns, grouping, levels)
    try:
        design = build_design(formula, data, family=family, link=link or None, trials=trials,
                              levels={k: list(v) for k, v in levels.items() if k in data and k not in grouping})
    except GlmmsimError as exc:
        if exc.path is None:
            exc.path, exc.parameter = ("formula",), "formula"
        raise
    found = design.levels
    slots = [Slot("fixed", "", (lme4,), (name,)) for name, lme4 in zip(design.fixed_names, design.lme4_names)]
    for term in design.terms:
        factor = term.term.factor
        names = [lme4_name(c, found) for c in term.coefs]
        slots += [Slot("sd", factor, (n,), (c,)) for n, c in zip(names, term.coefs)]
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                slots.append(Slot("corr", factor, (names[i], names[j]), (term.coefs[i], term.coefs[j])))
    slots += [Slot("family", "", (name,), meaning=meaning) for name, meaning in family_parameters(family)]
    return slots


def slot_for_error(exc: GlmmsimError, slots: Sequence[Slot]) -> Slot | None:
    """The parameter input an error from ``glmmsim.Model`` is about, read from its attributes.

    Examples
    --------
    >>> slots = model_slots("y ~ x + (1 | g)", "gaussian", None, {})
    >>> slot_for_error(ParameterError("no value", path=("fixed",), coefficient="x"), slots).label
    'x'
    """
    path = tuple(exc.path or ())
    coefficient = getattr(exc, "coefficient", None)
    if not path:
        return None
    head = path[0]
    if head == "fixed":
        return next((s for s in slots if s.kind == "fixed" and coefficient and s.matches(str(coefficient))), None)
    if head in ("sigma", "dispersion"):
        name = head if head == "sigma" else (path[1] if len(path) > 1 else exc.parameter)
        return next((s for s in slots if s.kind == "family" and s.names[0] == name), None)
    factor_key = path[1] if len(path) > 1 else getattr(exc, "key", None)  # "no spec for factor 'g'" names it in key
    if head == "random" and factor_key is not None:
        factor = str(factor_key)
        kind = "corr" if "corr" in path[2:] else "sd"
        candidates = [s for s in slots if s.factor == factor and s.kind in ("sd", "corr")]
        if coefficient:
            hit = [s for s in candidates if s.kind == kind and s.matches(str(coefficient))]
            if hit:
                return hit[0]
        return candidates[0] if candidates else None
    return None
