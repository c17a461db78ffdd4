"""Check that a formula is data, never code, before formulaic evaluates any of it.

formulaic evaluates the Python pieces of a formula (``I(x**2)``, ``np.log(x)``,
``C(cond, Sum)``) with ``eval``, so a formula read from a spec file could run
anything: ``I(x + 0*__import__('os').system('...'))``.  This module reads every
piece with :mod:`ast` and allows only

* column names (no ``__dunder__`` names) and numeric or string literals;
* arithmetic, comparison and boolean operators (``**`` with a small literal
  exponent, so ``10**10**10`` cannot stall the evaluator);
* calls of the transforms in :data:`TRANSFORMS` (``C``, ``I``, ``log``,
  ``center``, ``poly``, ...), of ``np.<f>`` / ``numpy.<f>`` for ``f`` in
  :data:`NUMPY_FUNCTIONS`, and of the contrasts in :data:`CONTRASTS`
  (``Sum``, ``Treatment(...)``, ``contr.sum``) inside those calls; lists and
  tuples of literals as arguments (``levels=['a', 'b']``).

Everything else -- attribute access outside ``np.<allowed>``, subscripts,
lambdas, comprehensions, f-strings, ``*args``, any other call -- is refused
with a :class:`~glmmsim.errors.FormulaError` naming the offending piece
(``error.term``).  The check runs on every formula of a spec file and of
``--set``, and by default in :class:`glmmsim.Model`; ``Model(...,
trusted_formula=True)`` skips it for a formula the user wrote themselves.

Examples
--------
>>> check_formula("y ~ 1 + C(cond, Sum) + np.log(x) + I(x**2) + (1 + x | subject)")
>>> check_formula("y ~ I(x + 0*__import__('os').system('echo hi'))")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
glmmsim.errors.FormulaError: formula piece "__import__('os').system" is not allowed in ...
"""

from __future__ import annotations

import ast
import re

from ..errors import FormulaError
from .formula import _short, _strip_outer_parens, parse_formula, split_top_level

__all__ = ["check_formula", "TRANSFORMS", "NUMPY_FUNCTIONS", "CONTRASTS", "MAX_POWER"]

#: Functions a formula may call by bare name (formulaic's transforms and common math).
TRANSFORMS = frozenset(
    {
        "C", "I", "Q", "log", "log2", "log10", "log1p", "exp", "expm1", "sqrt", "abs",
        "center", "scale", "standardize", "poly", "bs", "cr", "cs", "cc", "te", "offset",
    }
)  # fmt: skip
#: ``np.<name>`` / ``numpy.<name>`` functions a formula may call.
NUMPY_FUNCTIONS = frozenset(
    {
        "log", "log2", "log10", "log1p", "exp", "expm1", "sqrt", "abs", "absolute", "square",
        "power", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
        "floor", "ceil", "round", "rint", "trunc", "sign", "clip", "maximum", "minimum", "where",
        "logical_and", "logical_or", "logical_not", "isin",
    }
)  # fmt: skip
#: Contrast codings allowed (as names or calls) inside ``C(...)``; also ``contr.<name>``.
CONTRASTS = frozenset({"Sum", "Treatment", "Helmert", "Poly", "Diff", "SAS", "Deviation"})
_CONTR_ATTRIBUTES = frozenset({"sum", "treatment", "helmert", "poly", "diff", "SAS"})
#: Largest literal exponent of ``**`` (and ``^``): a bound on the work a literal can ask for.
MAX_POWER = 64

_BIN_OPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.BitOr, ast.BitXor, ast.BitAnd)
_UNARY_OPS = (ast.UAdd, ast.USub, ast.Not, ast.Invert)
_BACKTICK = re.compile(r"`[^`]*`")


def _refuse(piece: str, where: str, why: str = "") -> FormulaError:
    reason = f" ({why})" if why else ""
    return FormulaError(
        f"formula piece {piece!r} is not allowed in {where!r}{reason}: a formula may use column "
        f"names, numbers, operators and calls of allowed transforms (C, I, np.log, exp, sqrt, "
        f"center, scale, poly, ...; contrasts Sum, Treatment, ... inside C); pass "
        f"trusted_formula=True to Model for a formula you wrote yourself",
        term=piece,
    )


class _Checker:
    """Walks one piece's syntax tree, refusing anything outside the whitelist.

    The walk is iterative (an explicit stack): ``x1 + x2 + ... + x5000`` is a chain 5,000
    deep in Python's tree, and a formula may well have that many terms.  Each ``visit_*``
    checks one node and returns its children with whether they sit in a call's arguments.
    """

    def __init__(self, where: str) -> None:
        self.where = where

    def refuse(self, node: ast.AST, why: str = "") -> FormulaError:
        return _refuse(_short(_source(node)), _short(self.where), why)

    def check(self, tree: ast.AST) -> None:
        stack: list[tuple[ast.AST, bool]] = [(tree, False)]
        while stack:
            node, in_call = stack.pop()
            visit = getattr(self, f"visit_{type(node).__name__}", None)
            if visit is None:
                raise self.refuse(node)
            stack.extend(visit(node, in_call))

    def visit_Expression(self, node, in_call):
        return [(node.body, in_call)]

    def visit_Name(self, node, in_call):
        if node.id.startswith("__") or node.id.endswith("__"):
            raise self.refuse(node, "names with double underscores are refused")
        return []

    def visit_Constant(self, node, in_call):
        if isinstance(node.value, (bool, int, float, complex)) or node.value is None:
            return []
        if isinstance(node.value, str) and in_call:
            return []  # a level or reference name given to a transform
        raise self.refuse(node, "only numbers may stand outside a call's arguments")

    def visit_BinOp(self, node, in_call):
        if not isinstance(node.op, _BIN_OPS):
            raise self.refuse(node)
        if isinstance(node.op, (ast.Pow, ast.BitXor)):
            self._check_exponent(node)
        for side in (node.left, node.right):
            if isinstance(side, ast.Constant) and isinstance(side.value, str):
                raise self.refuse(node, "arithmetic on strings is refused")
        return [(node.left, False), (node.right, False)]

    def _check_exponent(self, node: ast.BinOp) -> None:
        exponent = node.right
        if isinstance(exponent, ast.UnaryOp) and isinstance(exponent.op, (ast.USub, ast.UAdd)):
            exponent = exponent.operand
        if isinstance(exponent, ast.Constant):
            if isinstance(exponent.value, (int, float)) and abs(exponent.value) <= MAX_POWER:
                return
            raise self.refuse(node, f"a literal exponent must be a number of at most {MAX_POWER}")
        if any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.Pow) for n in ast.walk(exponent)):
            raise self.refuse(node, "powers of powers are refused")

    def visit_UnaryOp(self, node, in_call):
        if not isinstance(node.op, _UNARY_OPS):
            raise self.refuse(node)
        return [(node.operand, False)]

    def visit_BoolOp(self, node, in_call):
        return [(value, False) for value in node.values]

    def visit_Compare(self, node, in_call):
        # strings may be compared with (I(cond == 'b')) but not computed with
        return [(side, True) for side in (node.left, *node.comparators)]

    def visit_List(self, node, in_call):
        if not in_call:
            raise self.refuse(node, "lists may only be arguments of a transform")
        return [(elt, True) for elt in node.elts]

    visit_Tuple = visit_List

    def visit_Attribute(self, node, in_call):
        # reached only outside a call's function position, e.g. a contrast passed as contr.sum
        if isinstance(node.value, ast.Name) and node.value.id == "contr" and node.attr in _CONTR_ATTRIBUTES:
            return []
        raise self.refuse(node, "attribute access is refused")

    def visit_Call(self, node, in_call):
        self._check_function(node.func)
        children = []
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise self.refuse(arg)
            children.append((arg, True))
        for kw in node.keywords:
            if kw.arg is None or kw.arg.startswith("__"):
                raise self.refuse(node, "**keyword arguments are refused")
            children.append((kw.value, True))
        return children

    def _check_function(self, func: ast.AST) -> None:
        if isinstance(func, ast.Name) and (func.id in TRANSFORMS or func.id in CONTRASTS):
            return
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            owner, attr = func.value.id, func.attr
            if owner in ("np", "numpy") and attr in NUMPY_FUNCTIONS:
                return
            if owner == "contr" and attr in _CONTR_ATTRIBUTES:
                return
        raise self.refuse(func, "not an allowed transform")


def _source(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # noqa: BLE001 -- unparse of a partial tree; only for the message
        return type(node).__name__


def _as_python(expr: str) -> str:
    """A formula expression rewritten so Python's parser reads it with the same pieces.

    formulaic's own operators become Python operators of the same arity (``:`` and
    ``%in%`` -> ``*``, ``||`` -> ``|``), ``{...}`` (formulaic's quoted Python) becomes
    ``I(...)`` and backtick-quoted names a plain name.  No rewrite can turn a call, an
    attribute, a subscript or a dunder name into something else, which is what the
    check is about.
    """
    text = _BACKTICK.sub("_quoted_name", expr)
    text = text.replace("%in%", "*").replace("||", "|")
    text = text.replace("{", "I(").replace("}", ")")
    out, quote = [], None
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == ":":
            ch = "*"
        out.append(ch)
    return "".join(out)


def _atoms(expr: str) -> list[str]:
    """The pieces of ``expr`` between formulaic's top-level operators, outer parentheses removed.

    Top-level operators (``+ - * / : ** ^ | ~``) are formulaic's own and evaluate nothing;
    Python runs only inside the pieces (calls, ``{...}``, names).  Checking piece by piece
    keeps each syntax tree small: a formula with 10,000 terms is 10,000 small trees, not
    one chain 10,000 deep that Python's parser refuses.
    """
    atoms, work = [], [expr.replace("%in%", "/")]
    while work:
        for _, piece in split_top_level(work.pop(), "+-*/:|~^"):
            if not piece:
                continue
            inner = _strip_outer_parens(piece, expr)
            (work if inner is not None else atoms).append(inner if inner is not None else piece)
    return atoms


def check_expression(expr: str, where: str | None = None) -> None:
    """Refuse ``expr`` (one side of a formula, or a bar's part) unless it passes the whitelist."""
    where = where or expr
    if "\x00" in expr:
        raise FormulaError(f"formula {_short(where)!r} contains a NUL character", term=_short(where))
    for atom in _atoms(expr):
        try:
            tree = ast.parse(_as_python(atom).strip() or "1", mode="eval")
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            raise FormulaError(
                f"cannot read {_short(atom)!r} in formula {_short(where)!r}: it is not a formula expression "
                f"(terms joined by +, -, *, :, / and calls of transforms such as C(x, Sum) or np.log(x))",
                term=_short(atom),
            ) from None
        _Checker(where).check(tree)


def check_formula(formula: str) -> None:
    """Refuse a formula whose Python pieces go beyond column names, numbers and whitelisted calls.

    Parameters
    ----------
    formula : str
        An lme4 formula.

    Raises
    ------
    FormulaError
        Naming the offending piece (also as ``error.term``), for any construct outside
        the whitelist described in this module's docstring.

    Examples
    --------
    >>> check_formula("y ~ x + C(cond, Treatment('b')) + (x || g)")
    >>> check_formula("y ~ x.__class__")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    glmmsim.errors.FormulaError: formula piece 'x.__class__' is not allowed in 'x.__class__' ...
    """
    parsed = parse_formula(formula)
    check_expression(parsed.fixed)
    for bar in parsed.bars:
        check_expression(bar.lhs, bar.text)
