"""formulaic's exceptions as glmmsim errors that name the offending piece of the formula.

formulaic's parse and evaluation errors share the base ``FormulaicError``;
Python's ``SyntaxError`` reaches us for a broken ``I(...)`` and ``ValueError``
for missing values under ``na_action="raise"``. Their messages are coloured by
ANSI escapes. Every parse and evaluation of a formula expression goes through
:func:`parse_terms` or :func:`evaluation_error`, so a user always gets a
:class:`~glmmsim.errors.FormulaError` (or a ``DataError`` when the data, not the
formula, are at fault) naming the term, never a formulaic traceback.

Examples
--------
>>> parse_terms("x + ^2", "the fixed part")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
glmmsim.errors.FormulaError: cannot parse the fixed part 'x + ^2': ...'^2'...
"""

from __future__ import annotations

import functools
import re

from formulaic import Formula
from formulaic.errors import (
    FormulaicError,
    FormulaMaterializationError,
    FormulaMaterializerInvalidError,
    FormulaMaterializerNotFoundError,
)

from ..errors import DataError, FormulaError, GlmmsimError
from .formula import split_top_level

__all__ = ["PARSE_ERRORS", "parse_terms", "evaluation_error", "readable"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# The patterns below read formulaic's (third-party) messages: its exceptions carry no
# attribute naming the offending token or factor, so the message is the only source.
# formulaic marks the offending token of a syntax error as ⧛token⧚
_MARKED = re.compile("\u29db(.*?)\u29da", re.S)
_FACTOR = re.compile(r"factor `(?P<factor>.+?)`")
_NULLS = re.compile(r"checking for nulls in `(?P<factor>.+?)`")


def readable(text: str) -> str:
    """``text`` without colour codes and with control characters escaped (``'\\x00'``).

    Examples
    --------
    >>> readable("x\\x00y")
    'x\\\\x00y'
    """
    text = _ANSI.sub("", text)
    return "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in text)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"not valid Python ({exc.msg})"
    text = _ANSI.sub("", str(exc)).strip()
    if "`.` operator" in text:
        return "'.' (every other column) is not supported: name the predictors"
    first = text.splitlines()[0] if text else type(exc).__name__
    return readable(first).rstrip(".")


#: what formulaic's parser raises
PARSE_ERRORS = (FormulaicError, SyntaxError)


#: formulaic errors raised while building a matrix rather than parsing: the data, not the formula, are at fault
_MATERIALIZER_ERRORS = (FormulaMaterializationError, FormulaMaterializerInvalidError, FormulaMaterializerNotFoundError)


def _parse_error(exc: BaseException) -> bool:
    return isinstance(exc, PARSE_ERRORS)


def _failing_piece(expr: str) -> str | None:
    """The first top-level term of ``expr`` that formulaic cannot parse on its own."""
    try:
        pieces = [piece for _, piece in split_top_level(expr, "+-*:/")]
    except FormulaError:  # unbalanced brackets: no pieces to blame
        return None
    for piece in pieces:
        if not piece:
            continue
        try:
            Formula(piece)
        except PARSE_ERRORS:
            return piece
    return None


@functools.lru_cache(maxsize=512)
def _parsed(expr: str) -> tuple:
    """formulaic's terms of ``expr``, parsed once per expression (parsing costs ~1 ms)."""
    return tuple(Formula(expr))


def parse_terms(expr: str, where: str) -> list:
    """formulaic's terms of ``expr``, or a FormulaError naming the piece that breaks it.

    Parameters
    ----------
    expr : str
        A formulaic right-hand side such as ``"1 + x + C(cond, Sum)"``.
    where : str
        What ``expr`` is, for the message (``"the fixed part"``, ``"(1 + x | g)"``).

    Examples
    --------
    >>> [str(t) for t in parse_terms("x + z:w", "the fixed part")]
    ['1', 'x', 'z:w']
    """
    try:
        return list(_parsed(expr))
    except PARSE_ERRORS as exc:
        piece = _failing_piece(expr)
        marked = _MARKED.search(_ANSI.sub("", str(exc)))
        at = piece if piece is not None and piece != expr.strip() else (marked.group(1) if marked else None)
        where_piece = f" in {at!r}" if at else ""
        raise FormulaError(f"cannot parse {where} {expr!r}: {_reason(exc)}{where_piece}", term=at or expr) from None


def evaluation_error(exc: Exception, expr: str, where: str, hint: str = "") -> GlmmsimError:
    """The glmmsim error for formulaic failing to build the model matrix of ``expr``.

    A factor that cannot be evaluated (an unknown function or contrast, text in
    arithmetic) is a :class:`FormulaError` naming that factor; values the data
    cannot supply (missing after a transform, an unusable column type) a
    :class:`DataError`.
    """
    if isinstance(exc, GlmmsimError):
        return exc
    text = _ANSI.sub("", str(exc))
    factor = _FACTOR.search(text)
    if factor is not None:
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        return FormulaError(
            f"term {factor.group('factor')!r} of {where} {expr!r} cannot be evaluated: "
            f"{type(cause).__name__}: {readable(str(cause)).splitlines()[0] if str(cause) else ''}{hint}",
            term=factor.group("factor"),
        )
    nulls = _NULLS.search(text)
    if nulls is not None:
        return DataError(
            f"term {nulls.group('factor')!r} of {where} {expr!r} gives missing values for some rows "
            f"(a column with missing values, or a transform such as np.log of 0 or of a negative "
            f"number)",
            term=nulls.group("factor"),
        )
    if _parse_error(exc) and not isinstance(exc, _MATERIALIZER_ERRORS):
        return FormulaError(f"cannot parse {where} {expr!r}: {_reason(exc)}", term=expr)
    return DataError(
        f"cannot build the model matrix of {where} {expr!r}: {_reason(exc)}{hint}; every term must give "
        f"numbers (a transform of the formula) or name a column of categories: text made by a transform, such as "
        f"np.where(x > 0, 'a', 'c'), belongs in a column of the data",
        term=expr,
    )
