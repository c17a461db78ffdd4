"""AutoRA-faithful reading of an lmm formula (``semantics="autora"``).

autora-synthetic 2.2.0 reads a small subset of lme4 syntax in its own way.
This module re-implements that reading from its observed behaviour, so that
existing AutoRA studies get the same numbers, and it raises a clear error for
every formula the original would misread or crash on.

The observed rules, which :func:`simulate` follows step by step:

* The response starts at ``fixed_effects["Intercept"]`` (0 if absent), unless
  the right-hand side contains a standalone ``0`` anywhere - also inside a bar
  such as ``(0 + x | g)`` - and ``fixed_effects`` has no key ``"1"``; then the
  fixed intercept and every random intercept are left out.
* Every variable of the formula (fixed part and bar terms) gets the fixed slope
  ``fixed_effects.get(name, 0)``, added in sorted name order.
* Each bar term, in formula order, draws for each of its ``+``-separated parts
  one ``normal(0, sd)`` value per level of the grouping column (levels in order
  of first appearance), ``sd = random_effects[group].get(key, 0.5)``.  A part
  written exactly ``1`` (no spaces) is a random intercept whose SD key is
  ``"Intercept"``; a ``1`` with spaces around it (``(1 + x | g)``) or a ``0``
  is drawn under key ``"1"``/``"0"`` but has no effect; a variable is a random
  slope.  There is never a random intercept the formula does not spell out.
* Gaussian noise ``normal(0, added_noise, n)`` is drawn last, even when
  ``added_noise`` is 0.

Examples
--------
>>> spec = parse_faithful("rt ~ x1 + (1 + x1 | subject)")
>>> spec.response, spec.fixed_variables, spec.groups
('rt', ('x1',), ('subject',))
>>> [(p.kind, p.sd_key) for p in spec.bars[0].parts]
[('inert_one', '1'), ('slope', 'x1')]
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError, ParameterError, did_you_mean, format_names

__all__ = [
    "DEFAULT_SD",
    "BarPart",
    "BarTerm",
    "FaithfulFormula",
    "parse_faithful",
    "check_faithful_parameters",
    "lme4_differences",
    "default_notes",
    "simulate",
]

#: SD autora-synthetic uses for a bar part whose SD is not in ``random_effects``.
DEFAULT_SD = 0.5

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_LME4_HINT = "use semantics='lme4' for the full lme4 syntax"

PartKind = Literal["intercept", "inert_one", "zero", "slope"]


@dataclass(frozen=True)
class BarPart:
    """One ``+``-separated part of a bar term's left side, as autora reads it.

    ``kind`` is ``"intercept"`` for a bare ``1``, ``"inert_one"`` for a ``1``
    written with surrounding spaces (drawn, never applied), ``"zero"`` for
    ``0`` (drawn, never applied) and ``"slope"`` for a variable.
    """

    raw: str
    kind: PartKind
    sd_key: str


@dataclass(frozen=True)
class BarTerm:
    """A ``(parts | group)`` term in formula order."""

    text: str
    group: str
    parts: tuple[BarPart, ...]


@dataclass(frozen=True)
class FaithfulFormula:
    """A formula parsed the way autora-synthetic 2.2.0 reads it."""

    formula: str
    response: str
    fixed_terms: tuple[str, ...]
    bars: tuple[BarTerm, ...]
    has_zero: bool

    @property
    def slope_variables(self) -> tuple[str, ...]:
        """Variables used as random slopes, in order of appearance, without repeats."""
        seen = [p.sd_key for b in self.bars for p in b.parts if p.kind == "slope"]
        return tuple(dict.fromkeys(seen))

    @property
    def fixed_variables(self) -> tuple[str, ...]:
        """Every variable that gets a fixed slope, in autora's (sorted) summation order."""
        return tuple(sorted(set(self.fixed_terms) | set(self.slope_variables)))

    @property
    def groups(self) -> tuple[str, ...]:
        """Grouping columns in sorted order, as autora lists them."""
        return tuple(sorted({b.group for b in self.bars}))

    @property
    def variables(self) -> tuple[str, ...]:
        """Data columns the formula uses: variables sorted, then groups sorted (autora's IV order)."""
        return tuple(dict.fromkeys(self.fixed_variables + self.groups))

    def has_intercept(self, fixed_effects: Mapping[str, Any]) -> bool:
        """autora's rule: a standalone ``0`` anywhere removes all intercepts unless key ``"1"``."""
        return "1" in fixed_effects or not self.has_zero


def _split_plus(text: str) -> list[str]:
    """Split on ``+`` outside parentheses, keeping each piece's whitespace."""
    pieces, depth, start = [], 0, 0
    for pos, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            raise FormulaError(f"unbalanced ')' in formula right-hand side {text!r}")
        if ch == "+" and depth == 0:
            pieces.append(text[start:pos])
            start = pos + 1
    if depth:
        raise FormulaError(f"unbalanced '(' in formula right-hand side {text!r}")
    pieces.append(text[start:])
    return pieces


def _unsupported(term: str, formula: str, why: str) -> FormulaError:
    return FormulaError(
        f"term {term.strip()!r} of formula {formula!r} is not supported by "
        f"semantics='autora' ({why}); {_LME4_HINT}"
    )


def _parse_fixed_term(term: str, formula: str) -> str:
    name = term.strip()
    if name in ("0", "1") or _NAME.match(name):
        return name
    if not name:
        raise FormulaError(f"formula {formula!r} has an empty term (a stray '+')")
    if "-" in name:
        why = "autora-synthetic ignored '- 1' and kept the intercept; write '0 + ...'"
    elif any(op in name for op in ":*/^"):
        why = "autora-synthetic read interactions as separate main effects"
    else:
        why = "only plain column names, 1, 0 and (parts | group) terms are understood"
    raise _unsupported(name, formula, why)


def _parse_part(raw: str, term: str, formula: str) -> BarPart:
    name = raw.strip()
    # autora tests the raw text for "1" before stripping: only a bare 1 is an intercept.
    if raw == "1":
        return BarPart(raw, "intercept", "Intercept")
    if name == "1":
        return BarPart(raw, "inert_one", "1")
    if name == "0":
        return BarPart(raw, "zero", "0")
    if _NAME.match(name):
        return BarPart(raw, "slope", name)
    raise _unsupported(term, formula, f"bar part {name!r} is not a column name, 1 or 0")


def _parse_bar(term: str, formula: str) -> BarTerm:
    inner = term.strip()[1:-1]
    if "||" in inner:
        raise _unsupported(term, formula, "autora-synthetic crashed on '||'")
    if inner.count("|") != 1:
        raise _unsupported(term, formula, "a bar term needs exactly one '|'")
    lhs, group = inner.split("|")
    group = group.strip()
    if not _NAME.match(group):
        raise _unsupported(
            term, formula, f"grouping {group!r} must be one column name (no ':' or '/' nesting)"
        )
    parts = tuple(_parse_part(raw, term, formula) for raw in lhs.split("+"))
    return BarTerm(term.strip(), group, parts)


def parse_faithful(formula: str) -> FaithfulFormula:
    """Parse ``formula`` the way autora-synthetic 2.2.0 reads it.

    Parameters
    ----------
    formula : str
        ``response ~ terms``; terms are ``1``, ``0``, column names and
        ``(parts | group)`` with parts ``1``, ``0`` or column names.

    Returns
    -------
    FaithfulFormula

    Raises
    ------
    FormulaError
        For anything outside that subset (interactions, ``- 1``, ``||``,
        nested groups, transformations), naming the term.

    Examples
    --------
    >>> parse_faithful("y ~ 0 + x + (1|g)").has_zero
    True
    >>> parse_faithful("y ~ x1:x2")
    Traceback (most recent call last):
    ...
    glmmsim.errors.FormulaError: term 'x1:x2' of formula 'y ~ x1:x2' is not supported by semantics='autora' (autora-synthetic read interactions as separate main effects); use semantics='lme4' for the full lme4 syntax
    """
    if not isinstance(formula, str):
        raise FormulaError(f"formula must be a string like 'y ~ x + (1|g)'; got {formula!r}")
    if formula.count("~") != 1:
        raise FormulaError(f"formula {formula!r} needs exactly one '~' (response ~ terms)")
    lhs, rhs = formula.split("~")
    response = lhs.strip()
    if not _NAME.match(response):
        raise FormulaError(f"the response {response!r} of formula {formula!r} must be a column name")
    fixed: list[str] = []
    bars: list[BarTerm] = []
    has_zero = False
    for term in _split_plus(rhs):
        stripped = term.strip()
        if stripped.startswith("(") and stripped.endswith(")") and "|" in stripped:
            bar = _parse_bar(stripped, formula)
            has_zero = has_zero or any(p.kind == "zero" for p in bar.parts)
            bars.append(bar)
            continue
        name = _parse_fixed_term(term, formula)
        has_zero = has_zero or name == "0"
        if name not in ("0", "1"):
            fixed.append(name)
    spec = FaithfulFormula(formula, response, tuple(dict.fromkeys(fixed)), tuple(bars), has_zero)
    if response in spec.variables:
        raise FormulaError(f"the response {response!r} also appears on the right of {formula!r}")
    return spec


# --------------------------------------------------------------------------- parameters


def _check_number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ParameterError(f"{what} must be a finite number; got {value!r}")
    return value  # type: ignore[return-value]


def _valid_sd_keys(spec: FaithfulFormula, group: str) -> set[str]:
    keys: set[str] = set()
    for bar in spec.bars:
        if bar.group != group:
            continue
        for part in bar.parts:
            keys.add(part.sd_key)
            if part.kind in ("intercept", "inert_one"):
                keys.update(("1", "Intercept"))
    return keys


def check_faithful_parameters(
    spec: FaithfulFormula, fixed_effects: Mapping[str, Any], random_effects: Mapping[str, Any]
) -> None:
    """Validate the two parameter dicts against ``spec``; raise ParameterError naming the key.

    Examples
    --------
    >>> spec = parse_faithful("y ~ x + (1|g)")
    >>> check_faithful_parameters(spec, {"Intercept": 1, "z": 2}, {"g": {"Intercept": 1}})
    Traceback (most recent call last):
    ...
    glmmsim.errors.ParameterError: fixed_effects key 'z' is not a coefficient of 'y ~ x + (1|g)'; valid keys: 'Intercept', '1', 'x'.
    """
    if not isinstance(fixed_effects, Mapping):
        raise ParameterError(f"fixed_effects must be a dict of coefficients; got {fixed_effects!r}")
    if not isinstance(random_effects, Mapping):
        raise ParameterError(
            f"random_effects must be a dict {{group: {{part: SD}}}}; got {random_effects!r}"
        )
    valid_fixed = ("Intercept", "1") + spec.fixed_variables
    for key, value in fixed_effects.items():
        if key not in valid_fixed:
            raise ParameterError(
                f"fixed_effects key {key!r} is not a coefficient of {spec.formula!r}; valid keys: "
                f"{format_names(valid_fixed)}.{did_you_mean(key, valid_fixed)}"
            )
        _check_number(value, f"fixed_effects[{key!r}]")
    for group in random_effects:
        if group not in spec.groups:
            raise ParameterError(
                f"random_effects key {group!r} is not a grouping column of {spec.formula!r}; "
                f"grouping columns: {format_names(spec.groups) or 'none'}."
                f"{did_you_mean(group, spec.groups)}"
            )
    for group in spec.groups:
        _check_group_sds(spec, group, random_effects)


def _check_group_sds(spec: FaithfulFormula, group: str, random_effects: Mapping[str, Any]) -> None:
    valid = sorted(_valid_sd_keys(spec, group))
    if group not in random_effects:
        example = {k: 0.1 for k in valid if k not in ("0", "1")}
        raise ParameterError(
            f"random_effects has no entry for grouping column {group!r} of {spec.formula!r} "
            f"(autora-synthetic raised KeyError here); give its SDs, e.g. {{{group!r}: {example}}}"
        )
    sds = random_effects[group]
    if not isinstance(sds, Mapping):
        raise ParameterError(
            f"random_effects[{group!r}] must be a dict of SDs keyed by {format_names(valid)} "
            f"under semantics='autora'; got {sds!r}"
        )
    for key, value in sds.items():
        if key not in valid:
            raise ParameterError(
                f"random_effects[{group!r}] key {key!r} is not a part of a ({'...'}|{group}) term "
                f"of {spec.formula!r}; valid keys: {format_names(valid)}.{did_you_mean(key, valid)}"
            )
        if _check_number(value, f"random_effects[{group!r}][{key!r}]") < 0:
            raise ParameterError(f"random_effects[{group!r}][{key!r}] is an SD and must be >= 0; got {value}")


# --------------------------------------------------------------------------- warnings


def _effective(part: BarPart, has_intercept: bool) -> bool:
    return part.kind == "slope" or (part.kind == "intercept" and has_intercept)


def lme4_differences(
    spec: FaithfulFormula, fixed_effects: Mapping[str, Any]
) -> list[str]:
    """Sentences describing where this formula's autora reading departs from lme4.

    Examples
    --------
    >>> for line in lme4_differences(parse_faithful("y ~ (x|g)"), {}):
    ...     print(line)
    (x|g) has no random intercept (lme4 adds a correlated one)
    random effects are redrawn on every run/ground_truth call (lme4 keeps one population of levels)
    """
    has_intercept = spec.has_intercept(fixed_effects)
    notes: list[str] = []
    for bar in spec.bars:
        kinds = [p.kind for p in bar.parts]
        if not {"intercept", "inert_one", "zero"} & set(kinds):
            notes.append(f"{bar.text} has no random intercept (lme4 adds a correlated one)")
        if "inert_one" in kinds:
            notes.append(
                f"the '1' of {bar.text} is written with spaces, so it is drawn (consuming random "
                "numbers, SD key '1') but never added (lme4: random intercept); write '(1+...' "
                "without spaces for an applied intercept"
            )
        if sum(_effective(p, has_intercept) for p in bar.parts) > 1:
            notes.append(f"the effects of {bar.text} are independent (lme4 estimates correlations)")
    if spec.has_zero and "1" not in fixed_effects:
        notes.append(
            "a standalone 0 in the formula removes the fixed intercept and every random intercept "
            "(they are still drawn) - lme4 only drops the intercept of the term holding the 0"
        )
    if spec.has_zero and any(p.kind == "zero" for b in spec.bars for p in b.parts):
        notes.append("a 0 inside a bar term is drawn like a part (consuming random numbers)")
    if "1" in fixed_effects:
        notes.append(
            "fixed_effects key '1' only switches the intercept on; its value is ignored "
            "(the value comes from 'Intercept')"
        )
    slope_only = [v for v in spec.slope_variables if v not in spec.fixed_terms and v in fixed_effects]
    if slope_only:
        notes.append(
            f"{format_names(slope_only)} appear only inside bar terms but get the fixed slope "
            "from fixed_effects (lme4: no fixed effect)"
        )
    if spec.bars:
        notes.append(
            "random effects are redrawn on every run/ground_truth call "
            "(lme4 keeps one population of levels)"
        )
    return notes


def default_notes(
    spec: FaithfulFormula, fixed_effects: Mapping[str, Any], random_effects: Mapping[str, Any]
) -> list[str]:
    """Sentences naming the applied parameters that fall back to autora's defaults.

    Examples
    --------
    >>> default_notes(parse_faithful("y ~ x + (x|g)"), {"x": 1}, {"g": {}})
    ["the SD of 'x' for 'g' is not given: autora's default 0.5 is used", "fixed coefficient 'Intercept' is not given: 0 is used"]
    """
    has_intercept = spec.has_intercept(fixed_effects)
    notes = []
    for bar in spec.bars:
        sds = random_effects.get(bar.group, {})
        for part in bar.parts:
            if _effective(part, has_intercept) and part.sd_key not in sds:
                hint = ""
                if part.kind == "intercept" and "1" in sds:
                    hint = f" (key '1' is read only for a spaced '1'; {bar.text} reads 'Intercept')"
                notes.append(
                    f"the SD of {part.sd_key!r} for {bar.group!r} is not given: autora's default "
                    f"{DEFAULT_SD} is used{hint}"
                )
    wanted = (["Intercept"] if has_intercept else []) + list(spec.fixed_terms)
    missing = [k for k in wanted if k not in fixed_effects]
    if missing:
        s = "s" if len(missing) > 1 else ""
        notes.append(f"fixed coefficient{s} {format_names(missing)} {'are' if s else 'is'} not given: 0 is used")
    return notes


# --------------------------------------------------------------------------- simulation


def _numeric(data: pd.DataFrame, column: str) -> np.ndarray:
    values = data[column]
    if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)):
        raise DataError(
            f"column {column!r} is used as a numeric predictor but has dtype {values.dtype}"
        )
    return values.to_numpy(dtype=float)


def simulate(
    spec: FaithfulFormula,
    fixed_effects: Mapping[str, Any],
    random_effects: Mapping[str, Any],
    data: pd.DataFrame,
    rng: np.random.Generator,
    added_noise: float,
) -> np.ndarray:
    """Response values for ``data`` drawn exactly as autora-synthetic 2.2.0 draws them.

    ``data`` must hold every column in ``spec.variables`` without missing
    values; ``rng`` is advanced by one draw per level per bar part, then by
    ``len(data)`` noise draws.

    Examples
    --------
    >>> spec = parse_faithful("y ~ x + (1|g)")
    >>> data = pd.DataFrame({"x": [0.0, 1.0], "g": ["a", "b"]})
    >>> rng = np.random.default_rng(42)
    >>> simulate(spec, {"Intercept": 1, "x": 2}, {"g": {"Intercept": 0.1}}, data, rng, 0.0)
    array([1.03047171, 2.89600159])
    """
    has_intercept = spec.has_intercept(fixed_effects)
    # Sums in autora's order (intercept, sorted fixed slopes, bar parts) so floats match bit for bit.
    y = np.full(len(data), fixed_effects.get("Intercept", 0) if has_intercept else 0, dtype=float)
    for name in spec.fixed_variables:
        y = y + fixed_effects.get(name, 0) * _numeric(data, name)
    for bar in spec.bars:
        codes, levels = pd.factorize(data[bar.group], sort=False)
        for part in bar.parts:
            sd = random_effects[bar.group].get(part.sd_key, DEFAULT_SD)
            per_level = rng.normal(0, sd, size=len(levels))[codes]
            if part.kind == "intercept" and has_intercept:
                y = y + per_level
            elif part.kind == "slope":
                y = y + per_level * _numeric(data, part.sd_key)
    return y + rng.normal(0, added_noise, len(data))
