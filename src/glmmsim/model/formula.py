"""Split an lme4 formula into its response, fixed part and random-effect bar terms.

This is the first layer of the pipeline (formula -> terms -> design -> parameters
-> draws -> response). It only reads the formula text: it knows nothing about
data. The fixed part is handed to formulaic unchanged; bar terms ``(lhs | g)``
and ``(lhs || g)`` are cut out here, because no Python formula parser handles
``||`` and nesting the way lme4 does.

Examples
--------
>>> p = parse_formula("y ~ 1 + x + (1 + x | subject) + (1 | item)")
>>> p.response, p.fixed
('y', '1 + x')
>>> [(b.lhs, b.group, b.double) for b in p.bars]
[('1 + x', 'subject', False), ('1', 'item', False)]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import FormulaError

__all__ = ["Bar", "ParsedFormula", "parse_formula", "split_top_level"]

_OPEN = "([{"
_CLOSE = ")]}"
_NAME = re.compile(r"^[^\W\d][\w.]*$")  # a Python-style name; any alphabet


@dataclass(frozen=True)
class Bar:
    """One random-effect term as written: ``(lhs | group)`` or ``(lhs || group)``."""

    lhs: str
    group: str
    double: bool
    text: str


@dataclass(frozen=True)
class ParsedFormula:
    """A formula cut into response, fixed-effects expression and bar terms."""

    formula: str
    response: str
    fixed: str
    bars: tuple[Bar, ...]


#: Deepest bracket nesting a formula may have.
MAX_NESTING = 100


def _short(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters for a message."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _depths(text: str, formula: str) -> list[int]:
    """Nesting depth before each character; quotes are opaque. Raises on unbalanced brackets."""
    depths = []
    stack: list[tuple[str, int]] = []
    quote = None
    for pos, ch in enumerate(text):
        depths.append(len(stack) + (quote is not None))
        if quote:
            if ch == quote:
                quote = None
            continue
        if ch in "'\"`":
            quote = ch
        elif ch in _OPEN:
            stack.append((ch, pos))
            if len(stack) > MAX_NESTING:
                # bounds the work of every later pass (and formulaic's recursive parser)
                raise FormulaError(
                    f"formula {_short(formula)!r} nests brackets more than {MAX_NESTING} deep "
                    f"(at position {pos}); no model needs that",
                    term=_short(formula),
                )
        elif ch in _CLOSE:
            if not stack or _OPEN.index(stack[-1][0]) != _CLOSE.index(ch):
                raise FormulaError(
                    f"unbalanced parentheses in formula {formula!r}: unexpected {ch!r} at "
                    f"position {pos}"
                )
            stack.pop()
    if quote:
        raise FormulaError(f"unterminated quote {quote} in formula {formula!r}")
    if stack:
        raise FormulaError(
            f"unbalanced parentheses in formula {formula!r}: {stack[-1][0]!r} at position "
            f"{stack[-1][1]} is never closed"
        )
    return depths


def split_top_level(text: str, seps: str, formula: str | None = None) -> list[tuple[str, str]]:
    """Split ``text`` at the characters in ``seps`` that lie outside brackets and quotes.

    Returns ``(separator, piece)`` pairs; the first separator is ``""``.

    Examples
    --------
    >>> split_top_level("a + (b + c) - 1", "+-")
    [('', 'a'), ('+', '(b + c)'), ('-', '1')]
    """
    depths = _depths(text, formula or text)
    pieces, sep, start = [], "", 0
    for pos, ch in enumerate(text):
        if depths[pos] == 0 and ch in seps:
            # '**' and exponents like 1e-3 are not separators of terms
            if ch == "-" and re.search(r"\d[eE]$", text[start:pos].rstrip()):
                continue
            pieces.append((sep, text[start:pos].strip()))
            sep, start = ch, pos + 1
    pieces.append((sep, text[start:].strip()))
    return pieces


def _strip_outer_parens(text: str, formula: str) -> str | None:
    """Return the inside of ``(...)`` when the parentheses enclose the whole text, else None."""
    text = text.strip()
    if not (text.startswith("(") and text.endswith(")")):
        return None
    depths = _depths(text, formula)
    # the opening parenthesis must close at the very end
    if any(d == 0 for d in depths[1:]):
        return None
    return text[1:-1].strip()


def _top_level_bar(text: str, formula: str) -> tuple[int, bool] | None:
    """Position of a top-level ``|`` or ``||`` in ``text`` and whether it is double."""
    depths = _depths(text, formula)
    for pos, ch in enumerate(text):
        if depths[pos] == 0 and ch == "|":
            return pos, text[pos + 1 : pos + 2] == "|"
    return None


def _parse_bar(inner: str, piece: str, formula: str) -> Bar:
    pos, double = _top_level_bar(inner, formula)  # type: ignore[misc]
    lhs = inner[:pos].strip()
    group = inner[pos + (2 if double else 1) :].strip()
    if not lhs:
        raise FormulaError(
            f"random-effect term {piece!r} has nothing left of the bar; write e.g. "
            f"'(1 | {group or 'g'})' for a random intercept"
        )
    if not group:
        raise FormulaError(
            f"random-effect term {piece!r} has no grouping factor right of the bar; write e.g. "
            f"'({lhs} | subject)'"
        )
    if "|" in group:
        raise FormulaError(
            f"random-effect term {piece!r} has more than one bar; a random-effect term is "
            f"(terms | grouping factor), e.g. '(1 + x | subject)', with factors joined by ':' or '/' "
            f"('(1 | school/class)'), and one term per factor",
            term=piece,
        )
    _check_group(group, piece)
    _check_expression(lhs, piece, formula)
    return Bar(lhs=lhs, group=re.sub(r"\s+", "", group), double=double, text=piece)


def _check_group(group: str, piece: str) -> None:
    names = re.split(r"\s*[/:]\s*", group.strip())
    for name in names:
        if not _NAME.match(name):
            raise FormulaError(
                f"grouping factor {group!r} in {piece!r} is not valid: grouping factors are column "
                f"names joined by ':' (interaction) or '/' (nesting), e.g. 'subject', 'a:b', "
                f"'school/class'"
            )


def _check_expression(expr: str, where: str, formula: str) -> None:
    """Reject empty pieces that a dangling '+', '-', '*' or ':' leaves behind."""
    # '**' is one operator (a power), not two products
    for sep, piece in split_top_level(expr.replace("**", "^^"), "+*:", formula):
        if not piece and not (sep == "" and expr.strip().startswith("-")):
            raise FormulaError(
                f"dangling operator in {where!r} of formula {formula!r}: every '+', '*' and ':' "
                f"needs a term on both sides"
            )
    if expr.rstrip().endswith(("-", "/", "~", "**", "^")):
        raise FormulaError(
            f"dangling operator at the end of {where!r} in formula {formula!r}"
        )


def parse_formula(formula: str) -> ParsedFormula:
    """Cut an lme4 formula into response, fixed part and bar terms.

    Parameters
    ----------
    formula : str
        A two-sided formula such as ``"y ~ x + (1 + x | subject)"``.

    Returns
    -------
    ParsedFormula
        ``fixed`` is the fixed-effects expression for formulaic (``"1"`` when the
        right-hand side has only bar terms, as in lme4); ``bars`` the bar terms
        in order of appearance, not yet expanded.

    Raises
    ------
    FormulaError
        For a missing ``~`` or response, unbalanced parentheses, an empty side of
        a bar, a bar outside parentheses, or a dangling operator.

    Examples
    --------
    >>> parse_formula("rt ~ (x || subject)").bars[0].double
    True
    >>> parse_formula("rt ~ (x || subject)").fixed
    '1'
    """
    if not isinstance(formula, str):
        from ..errors import InputTypeError

        raise InputTypeError(f"formula must be a str such as 'y ~ x + (1 | g)'; got {type(formula).__name__}")
    _depths(formula, formula)
    sides = split_top_level(formula, "~", formula)
    if len(sides) != 2:
        raise FormulaError(
            f"formula {formula!r} must have exactly one '~' with the response on its left, "
            f"e.g. 'y ~ x + (1 | subject)'"
        )
    response, rhs = sides[0][1], sides[1][1]
    if not response:
        raise FormulaError(
            f"formula {formula!r} has no response: name the simulated column left of '~', "
            f"e.g. 'y ~ {rhs or '1'}'"
        )
    if not _NAME.match(response):
        raise FormulaError(
            f"response {response!r} of formula {formula!r} must be a plain column name"
        )
    if not rhs:
        raise FormulaError(f"formula {formula!r} has nothing right of '~'; write e.g. '{response} ~ 1'")

    fixed_parts: list[str] = []
    bars: list[Bar] = []
    pieces = split_top_level(rhs, "+-", formula)
    for pos, (sep, piece) in enumerate(pieces):
        if not piece:
            if sep == "" and rhs.startswith("-"):
                continue
            if sep == "+" and pos + 1 < len(pieces) and pieces[pos + 1][0] == "-":
                continue  # R's 'x + -1' is 'x - 1'
            raise FormulaError(
                f"dangling operator in formula {formula!r}: every '+' and '-' needs a term on "
                f"both sides"
            )
        inner = _strip_outer_parens(piece, formula)
        while inner is not None and _strip_outer_parens(inner, formula) is not None:
            inner = _strip_outer_parens(inner, formula)
        if inner is not None and _top_level_bar(inner, formula) is not None:
            if sep == "-":
                raise FormulaError(f"random-effect term {piece!r} cannot be subtracted")
            bars.append(_parse_bar(inner, piece, formula))
            continue
        if _top_level_bar(piece, formula) is not None:
            raise FormulaError(
                f"bar outside parentheses in {piece!r} of formula {formula!r}: random-effect "
                f"terms must be written in parentheses, e.g. '(1 + x | subject)'"
            )
        if "|" in piece:
            raise FormulaError(
                f"random-effect term inside {piece!r} of formula {formula!r}: bar terms must be "
                f"separate '+' terms of the formula, e.g. 'y ~ x + (1 | subject)'"
            )
        _check_expression(piece, piece, formula)
        fixed_parts.append(f"{sep} {piece}" if fixed_parts or sep == "-" else piece)

    fixed = " ".join(fixed_parts).strip() or "1"
    if fixed.startswith("-"):
        fixed = "1 " + fixed
    return ParsedFormula(formula=formula, response=response, fixed=fixed, bars=tuple(bars))
