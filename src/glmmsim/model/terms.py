"""Expand bar terms into lme4's random-effect terms.

``(x || g)`` becomes ``(1 | g) + (0 + x | g)``; ``(1 | a/b)`` becomes
``(1 | a) + (1 | a:b)``. Each resulting :class:`RandomTerm` has one model-matrix
expression and one grouping factor, which is what the design layer materialises.

Examples
--------
>>> from glmmsim.model.formula import parse_formula
>>> [str(t) for t in expand_bars(parse_formula("y ~ (x || g) + (1 | school/class)").bars)]
['(1 | g)', '(0 + x | g)', '(1 | school)', '(1 | school:class)']
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import FormulaError
from .formula import Bar
from .formulaic_errors import parse_terms

__all__ = ["RandomTerm", "expand_bars", "factor_name", "has_intercept", "split_interaction"]


def split_interaction(name: str) -> list[str]:
    """The factors of an interaction term or coefficient name: its ``:`` outside brackets.

    Only brackets nest (no quote handling): a contrast level may hold any character,
    an apostrophe included (``name[T.O'Brien]``).

    Examples
    --------
    >>> split_interaction("x:C(cond, levels=['a:b'])[T.a:b]")
    ['x', "C(cond, levels=['a:b'])[T.a:b]"]
    """
    parts, depth, start = [], 0, 0
    for pos, ch in enumerate(name):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == ":" and depth == 0:
            parts.append(name[start:pos])
            start = pos + 1
    parts.append(name[start:])
    return parts


@dataclass(frozen=True)
class RandomTerm:
    """One random-effect term: a model-matrix expression grouped by one factor.

    Attributes
    ----------
    expr : str
        Expression for the term's model matrix (``"1 + x"``, ``"0 + x"``).
    factor : str
        Grouping factor name as keyed in ``random`` (``"subject"``, ``"school:class"``).
    columns : tuple of str
        The data columns whose combinations define the factor's levels.
    source : str
        The bar term as written in the formula, for error messages.
    lme4_rank : tuple of int
        Position of the term in lme4's ``findbars`` order, which lists a nested
        factor's innermost level first (``(1|a/b)`` -> ``(1|b:a) + (1|a)``).
    """

    expr: str
    factor: str
    columns: tuple[str, ...]
    source: str
    lme4_rank: tuple[int, int, int] = (0, 0, 0)

    def __str__(self) -> str:
        return f"({self.expr} | {self.factor})"


def _term_labels(expr: str, where: str) -> list[str]:
    """formulaic's terms of ``expr`` (``"1"`` for the intercept), as R's ``terms()`` lists them."""
    return [str(t) for t in parse_terms(expr, f"the left side of {where!r}")]


def has_intercept(expr: str) -> bool:
    """Whether ``expr`` has an intercept: implicit unless removed by ``0`` or ``-1``, as in R.

    Examples
    --------
    >>> has_intercept("x"), has_intercept("0 + x"), has_intercept("x - 1"), has_intercept("0 + x + 1")
    (True, False, False, True)
    """
    return "1" in _term_labels(expr, expr)


def factor_name(columns: Iterable[str]) -> str:
    """Name of the grouping factor formed by ``columns`` (``a:b`` for an interaction)."""
    return ":".join(columns)


def _nested_factors(group: str) -> list[tuple[str, ...]]:
    """``a/b/c`` -> ``[(a,), (a, b), (a, b, c)]``; ``a:b`` -> ``[(a, b)]``."""
    levels = group.split("/")
    out, prefix = [], []
    for level in levels:
        prefix = prefix + level.split(":")
        out.append(tuple(prefix))
    return out


def _uncorrelated_pieces(bar: Bar) -> list[str]:
    """Expressions of the separate terms of ``(lhs || g)``: one per term label, as lme4 expands it.

    ``(x * z || g)`` becomes ``(1 | g) + (0 + x | g) + (0 + z | g) + (0 + x:z | g)``; a
    categorical ``x`` stays one term with correlated level effects, as in lme4.
    """
    labels = _term_labels(bar.lhs, bar.text)
    return ["1" if label == "1" else f"0 + {label}" for label in labels]


def expand_bars(bars: Iterable[Bar]) -> list[RandomTerm]:
    """Expand written bar terms into lme4's random-effect terms, in formula order.

    Raises
    ------
    FormulaError
        When a bar's left side has no coefficient at all (``(0 | g)``), or a
        column repeats inside one grouping factor (``(1 | a:a)``).
    """
    terms: list[RandomTerm] = []
    for bar_no, bar in enumerate(bars):
        exprs = _uncorrelated_pieces(bar) if bar.double else [bar.lhs]
        if not exprs:
            raise FormulaError(
                f"random-effect term {bar.text!r} has no coefficient: its left side removes the "
                f"intercept and adds nothing; write e.g. '(1 | {bar.group})'"
            )
        for depth, columns in enumerate(_nested_factors(bar.group)):
            if len(set(columns)) != len(columns):
                raise FormulaError(
                    f"grouping factor {bar.group!r} in {bar.text!r} repeats a column; an interaction of "
                    f"grouping columns names each column once, e.g. '(1 | a:b)', or one column, '(1 | a)'",
                    term=bar.text,
                )
            for expr_no, expr in enumerate(exprs):
                if not _term_labels(expr, bar.text):
                    raise FormulaError(
                        f"random-effect term {bar.text!r} has no coefficient: its left side removes "
                        f"the intercept and adds nothing; write e.g. '(1 | {bar.group})'"
                    )
                terms.append(
                    RandomTerm(
                        expr=re.sub(r"\s+", " ", expr).strip(),
                        factor=factor_name(columns),
                        columns=columns,
                        source=bar.text,
                        lme4_rank=(bar_no, expr_no, -depth),
                    )
                )
    return terms

