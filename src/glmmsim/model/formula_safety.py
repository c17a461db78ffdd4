"""Check that a formula is data, never code, reading it exactly as formulaic will.

formulaic evaluates the Python pieces of a formula (``I(x**2)``, ``np.log(x)``,
``C(cond, Sum)``, ``{x + 1}``) with ``eval``, so a formula read from a spec file
could run anything.  This module does not guess where those pieces are: it runs
formulaic's own tokenizer (with its quoting rules for ``'...'``, ``"..."``,
```...```, ``{...}`` and backslash escapes) and its own token sanitising, takes
every token formulaic would evaluate as Python, unquotes backticked names with
formulaic's own function, and reads the result with :mod:`ast`.  Only this is
allowed in those pieces:

* names of data columns (no ``__dunder__`` names), numbers, and strings that
  are data (levels, names given to ``Q``), never code;
* arithmetic, comparison and boolean operators; integer arithmetic is bounded
  (``limits.max_int_bits``) and a literal exponent is at most ``MAX_POWER``;
* calls of the transforms in :data:`TRANSFORMS` (``C``, ``I``, ``Q``, ``log``,
  ``center``, ``poly``, ...), of ``np.<f>`` / ``numpy.<f>`` for ``f`` in
  :data:`NUMPY_FUNCTIONS`, and of the contrasts in :data:`CONTRASTS`
  (``Sum``, ``Treatment('b')``, ``contr.sum``); lists and tuples of those as
  arguments (``levels=['a', 'b']``).

Everything else -- other calls, attributes outside ``np.<allowed>``, subscripts,
lambdas, comprehensions, f-strings, ``*args``, keywords starting with ``_`` --
is refused with a :class:`~glmmsim.errors.FormulaError` naming the offending
piece (``error.term``); so is anything formulaic's tokenizer or Python's parser
cannot read.  The formula's own expansion is counted before formulaic builds it
(``limits.max_formula_terms``), so ``(x1+...+x24)**24`` is refused at once.

``check_expression`` is the one check: glmmsim hands no string to formulaic
without passing it (``glmmsim.model.matrices`` is the only caller of
formulaic's evaluation).  ``check_formula`` applies it to every piece of an
lme4 formula when a model is built, so a bad formula fails before any work.
``trusted_formula=True`` (on :class:`glmmsim.Model` and :func:`glmmsim.fit`)
skips it for a formula the user wrote themselves.

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
import builtins
import functools
from collections.abc import Collection
from dataclasses import dataclass

from formulaic.parser import DefaultFormulaParser
from formulaic.parser.algos.sanitize_tokens import sanitize_tokens
from formulaic.parser.algos.tokenize import tokenize
from formulaic.parser.types import ASTNode, Token
from formulaic.transforms import TRANSFORMS as _FORMULAIC_TRANSFORMS
from formulaic.utils.code import sanitize_variable_names

from ..errors import FormulaError
from .. import limits
from ..limits import LIMITS, count_text, how_to_raise

__all__ = [
    "CONTRASTS",
    "MAX_POWER",
    "NUMPY_FUNCTIONS",
    "TRANSFORMS",
    "check_expression",
    "check_formula",
    "check_names",
]

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
#: ``np.<name>`` constants a formula may read.
NUMPY_CONSTANTS = frozenset({"pi", "e"})
#: Keyword arguments a numpy function may take (``np.isin(kind='table')`` would allocate a range).
NUMPY_KEYWORDS = frozenset({"decimals"})
#: Contrast codings allowed (as names or calls) inside ``C(...)``; also ``contr.<name>``.
CONTRASTS = frozenset({"Sum", "Treatment", "Helmert", "Poly", "Diff", "SAS", "Deviation"})
_CONTR_ATTRIBUTES = frozenset({"sum", "treatment", "helmert", "poly", "diff", "SAS"})
#: Largest literal exponent of ``**`` (and ``^``), in Python pieces and in formulaic's own ``(a + b)**n``.
MAX_POWER = 64
#: Transforms whose numeric arguments set a number of model-matrix columns (``poly(x, 3)``).
_BASIS_TRANSFORMS = frozenset({"poly", "bs", "cr", "cs", "cc", "te"})
#: Most columns a basis transform may ask for.
MAX_BASIS_COLUMNS = 100

#: Names a formula may use that are not data columns.
_ALLOWED_NAMES = TRANSFORMS | CONTRASTS | {"True", "False", "None"}
#: Names that resolve to something in formulaic's evaluation environment when no column has them:
#: a formula may read a column of such a name, never the object itself.
_ENVIRONMENT_NAMES = frozenset(dir(builtins)) | frozenset(_FORMULAIC_TRANSFORMS) | {"numpy", "math"}

_BIN_OPS = (
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.BitOr, ast.BitXor, ast.BitAnd,
)  # fmt: skip
_UNARY_OPS = (ast.UAdd, ast.USub, ast.Not, ast.Invert)


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


_ALLOWED_TEXT = (
    "a formula may use column names, numbers, operators and calls of allowed transforms "
    "(C, I, Q, np.log, np.where, exp, sqrt, center, scale, poly, ...; contrasts Sum, Treatment, ... "
    "inside C); see glmmsim.model.formula_safety"
)


def _refuse(piece: str, where: str, why: str = "") -> FormulaError:
    reason = f" ({why})" if why else ""
    return FormulaError(
        f"formula piece {_short(piece)!r} is not allowed in {_short(where.strip())!r}{reason}: {_ALLOWED_TEXT}; "
        f"pass trusted_formula=True to Model or fit for a formula you wrote yourself",
        term=_short(piece),
    )


def _unreadable(where: str, why: str) -> FormulaError:
    return FormulaError(
        f"cannot read formula {_short(where.strip())!r}: {why}; a formula is terms joined by +, -, *, :, / "
        f"and calls of transforms such as C(x, Sum) or np.log(x), with quotes, backticks and "
        f"brackets balanced",
        term=_short(where),
    )


@dataclass(frozen=True)
class Reading:
    """What :func:`check_expression` found in one expression.

    ``names`` are the bare names its Python pieces read as values (columns, unless
    no column has the name); ``quoted`` the names given to ``Q('...')``.
    """

    names: frozenset[str]
    quoted: frozenset[str]


class _Checker:
    """Walks one Python piece's syntax tree, refusing anything outside the whitelist.

    The walk is iterative (an explicit stack), so a long chain of ``+`` in one piece
    cannot exhaust Python's recursion.  Each ``visit_*`` checks one node and returns its
    children with whether they sit in a call's arguments.
    """

    def __init__(self, where: str) -> None:
        self.where = where
        self.names: set[str] = set()
        self.quoted: set[str] = set()
        self.aliases: dict[str, str] = {}  # identifier formulaic substitutes -> backticked column name

    def refuse(self, node: ast.AST, why: str = "") -> FormulaError:
        return _refuse(_source(node), self.where, why)

    def check(self, tree: ast.AST) -> None:
        stack: list[tuple[ast.AST, bool]] = [(tree, False)]
        while stack:
            node, in_call = stack.pop()
            visit = getattr(self, f"visit_{type(node).__name__}", None)
            if visit is None:
                raise self.refuse(node)
            stack.extend(visit(node, in_call))
        _IntegerBound(self).visit(tree)

    def visit_Expression(self, node, in_call):
        return [(node.body, in_call)]

    def visit_Name(self, node, in_call):
        if "__" in node.id:
            raise self.refuse(node, "names with double underscores are refused")
        if node.id in ("np", "numpy", "contr"):
            raise self.refuse(node, f"{node.id} may only be used as {node.id}.<allowed name>")
        if node.id in self.aliases:
            self.names.add(self.aliases[node.id])  # a backticked name is always a column
        elif node.id not in _ALLOWED_NAMES:
            self.names.add(node.id)
        return []

    def visit_Constant(self, node, in_call):
        if isinstance(node.value, (bool, int, float, complex)) or node.value is None:
            return []
        if isinstance(node.value, str) and in_call:
            return []  # a level, reference or column name given to a transform: data, never code
        raise self.refuse(node, "only numbers may stand outside a call's arguments")

    def visit_BinOp(self, node, in_call):
        if not isinstance(node.op, _BIN_OPS):
            raise self.refuse(node)
        if isinstance(node.op, (ast.Pow, ast.BitXor)):
            self._check_exponent(node)
        for side in (node.left, node.right):
            if isinstance(side, ast.Constant) and isinstance(side.value, (str, bytes)):
                raise self.refuse(node, "arithmetic on strings is refused")
        return [(node.left, False), (node.right, False)]

    def _check_exponent(self, node: ast.BinOp) -> None:
        exponent = node.right
        while isinstance(exponent, ast.UnaryOp) and isinstance(exponent.op, (ast.USub, ast.UAdd)):
            exponent = exponent.operand
        if isinstance(exponent, ast.Constant):
            if isinstance(exponent.value, (int, float)) and abs(exponent.value) <= MAX_POWER:
                return
            raise self.refuse(node, f"a literal exponent must be a number of at most {MAX_POWER}")
        if any(isinstance(n, ast.BinOp) and isinstance(n.op, (ast.Pow, ast.BitXor)) for n in ast.walk(exponent)):
            raise self.refuse(node, "powers of powers are refused")
        if _constant(exponent):
            raise self.refuse(node, f"an exponent computed from numbers must be a single number of at most {MAX_POWER}")

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
        # a call's function is checked in visit_Call; this is an attribute read as a value
        if isinstance(node.value, ast.Name):
            owner, attr = node.value.id, node.attr
            if owner == "contr" and attr in _CONTR_ATTRIBUTES:
                return []
            if owner in ("np", "numpy") and attr in NUMPY_CONSTANTS:
                return []
        raise self.refuse(node, "attribute access is refused")

    def visit_Call(self, node, in_call):
        name = self._check_function(node.func)
        children = []
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise self.refuse(arg, "*arguments are refused")
            children.append((arg, True))
        for kw in node.keywords:
            if kw.arg is None or kw.arg.startswith("_"):
                raise self.refuse(node, "**keywords and keywords starting with '_' are refused")
            if name.startswith("np.") and kw.arg not in NUMPY_KEYWORDS:
                raise self.refuse(node, f"numpy functions take no keyword {kw.arg!r}")
            children.append((kw.value, True))
        if name == "Q":
            self._check_quoted(node)
        if name in _BASIS_TRANSFORMS:
            self._check_basis(node)
        return children

    def _check_function(self, func: ast.AST) -> str:
        if isinstance(func, ast.Name) and (func.id in TRANSFORMS or func.id in CONTRASTS):
            return func.id
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            owner, attr = func.value.id, func.attr
            if owner in ("np", "numpy") and attr in NUMPY_FUNCTIONS:
                return f"np.{attr}"
            if owner == "contr" and attr in _CONTR_ATTRIBUTES:
                return f"contr.{attr}"
        raise self.refuse(func, "not an allowed transform")

    def _check_quoted(self, node: ast.Call) -> None:
        arg = node.args[0] if len(node.args) == 1 and not node.keywords else None
        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)) or "__" in arg.value:
            raise self.refuse(node, "Q takes one column name in quotes, e.g. Q('my col')")
        self.quoted.add(arg.value)

    def _check_basis(self, node: ast.Call) -> None:
        # poly(x, 10**6) would ask for a million columns: numbers here count columns
        for value in [*node.args[1:], *(kw.value for kw in node.keywords)]:
            for sub in ast.walk(value):
                number = sub.value if isinstance(sub, ast.Constant) else None
                if isinstance(number, int) and not isinstance(number, bool) and abs(number) > MAX_BASIS_COLUMNS:
                    raise self.refuse(node, f"a basis of more than {MAX_BASIS_COLUMNS} columns is refused")


def _constant(node: ast.AST) -> bool:
    """Whether ``node`` is built from number literals only (no column)."""
    return all(
        isinstance(n, (ast.Constant, ast.BinOp, ast.UnaryOp, ast.operator, ast.unaryop))
        for n in ast.walk(node)
    )


class _IntegerBound:
    """Bounds the size of the integers a piece's literal arithmetic builds, without building them.

    Python's integers grow without limit (``((9**64)**64)**64`` has 65,000 digits and takes
    seconds; ``9**(64**5)`` hours), so every subtree of literals is bounded in bits before
    formulaic evaluates it: products add bits, powers multiply them.
    """

    def __init__(self, checker: _Checker) -> None:
        self.checker = checker
        self.limit = limits.max_int_bits

    def visit(self, tree: ast.AST) -> None:
        # post-order over the tree with an explicit stack: bits of each literal subtree
        bits: dict[int, int | None] = {}
        stack: list[tuple[ast.AST, bool]] = [(tree, False)]
        while stack:
            node, done = stack.pop()
            children = list(ast.iter_child_nodes(node))
            if not done:
                stack.append((node, True))
                stack.extend((c, False) for c in children)
                continue
            bits[id(node)] = self._bits(node, bits)

    def _bits(self, node: ast.AST, bits: dict[int, int | None]) -> int | None:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int):
                return None  # floats cost the same whatever their size; they overflow, not grow
            return abs(node.value).bit_length()
        if isinstance(node, ast.UnaryOp):
            return bits.get(id(node.operand))
        if not isinstance(node, ast.BinOp):
            return None
        left, right = bits.get(id(node.left)), bits.get(id(node.right))
        if left is None or right is None:
            return None
        if isinstance(node.op, ast.Pow):
            exponent = ast.literal_eval(node.right) if _constant(node.right) else 0
            size = left * max(int(abs(exponent)), 1)
        elif isinstance(node.op, ast.Mult):
            size = left + right
        elif isinstance(node.op, (ast.Add, ast.Sub, ast.BitOr, ast.BitXor, ast.BitAnd)):
            size = max(left, right) + 1
        else:
            size = left
        if size > self.limit:
            raise _refuse(
                _source(node),
                self.checker.where,
                f"it builds an integer of about {count_text(size)} bits; the limit max_int_bits is "
                f"{self.limit:,}; {how_to_raise('max_int_bits')}",
            )
        return size


def _source(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # noqa: BLE001 -- unparse of a partial tree; only for the message
        return type(node).__name__


def _check_python(code: str, where: str, checker: _Checker) -> None:
    """Check one Python token as formulaic's evaluator will read it."""
    # formulaic's evaluator replaces backticked names by identifiers with this very function
    checker.aliases = {}
    unquoted = sanitize_variable_names(code, {}, checker.aliases)
    try:
        tree = ast.parse(unquoted, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise _unreadable(where, f"{_short(code)!r} is not a Python expression ({type(exc).__name__})") from None
    checker.check(tree)


def _formulaic_reason(exc: BaseException) -> str:
    """The first line of formulaic's message, printable, with its token marks."""
    from .formulaic_errors import readable

    text = str(exc).strip()
    return readable(text.splitlines()[0] if text else type(exc).__name__).rstrip(".")


def _tokens(expr: str) -> list[Token]:
    try:
        return list(sanitize_tokens(tokenize(expr)))
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise _unreadable(expr, f"a Python piece is not valid ({type(exc).__name__})") from None
    except Exception as exc:  # noqa: BLE001 -- formulaic's tokenizer errors: unreadable, so refused
        raise _unreadable(expr, _formulaic_reason(exc)) from None


def _check_token(token: Token, expr: str, checker: _Checker) -> None:
    kind = token.kind
    if kind is Token.Kind.PYTHON:
        _check_python(token.token, expr, checker)
    elif kind is Token.Kind.NAME:
        if "__" in token.token:
            raise _refuse(token.token, expr, "names with double underscores are refused")
        if token.token in ("np", "numpy", "contr"):
            raise _refuse(token.token, expr, f"{token.token} is not a column")
        if token.token not in _ALLOWED_NAMES:
            checker.names.add(token.token)
    elif kind is Token.Kind.VALUE:
        try:
            value = ast.literal_eval(token.token)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            raise _unreadable(expr, f"{_short(token.token)!r} is not a number or a quoted string") from None
        if isinstance(value, int) and value.bit_length() > limits.max_int_bits:
            raise _refuse(token.token, expr, f"integers of more than {limits.max_int_bits:,} bits are refused")
    # operator and bracket tokens evaluate nothing; formulaic's parser refuses unknown ones


def _check_expansion(expr: str) -> None:
    """Count the terms (and products formed) formulaic's expansion would make, before it makes them."""
    try:
        tree = DefaultFormulaParser().get_ast(expr)
    except (RecursionError, MemoryError) as exc:
        raise _unreadable(expr, f"it nests too deep ({type(exc).__name__})") from None
    except Exception as exc:  # noqa: BLE001 -- formulaic cannot parse it: unreadable, so refused
        raise _unreadable(expr, _formulaic_reason(exc)) from None
    budget = limits.max_formula_terms
    counts: dict[int, int] = {}
    stack: list[tuple[object, bool]] = [(tree, False)]
    while stack:
        node, done = stack.pop()
        if not isinstance(node, ASTNode):
            counts[id(node)] = 1
            continue
        if not done:
            stack.append((node, True))
            stack.extend((arg, False) for arg in node.args)
            continue
        args = [counts[id(arg)] for arg in node.args]
        count = _expanded(node, args, expr, budget)
        if count > budget:
            raise FormulaError(
                f"formula {_short(expr.strip())!r} expands to more than {budget:,} terms (at its "
                f"{node.operator.symbol!r}); the limit max_formula_terms is {budget:,} "
                f"({LIMITS['max_formula_terms'][1]}); {how_to_raise('max_formula_terms')}",
                term=_short(expr.strip()),
            )
        counts[id(node)] = count


def _expanded(node: ASTNode, args: list[int], expr: str, budget: int) -> int:
    """Upper bound on the terms (and the products formulaic iterates over) of one operator."""
    symbol = node.operator.symbol
    if symbol in ("**", "^") and len(node.args) == 2:
        power = node.args[1]
        text = getattr(power, "token", "")
        if not (isinstance(power, Token) and text.isdigit() and int(text) <= MAX_POWER):
            raise _refuse(str(node), expr, f"the exponent of a term must be a whole number of at most {MAX_POWER}")
        n, base = int(text), args[0]
        # itertools.product over n copies: base**n products, whatever the distinct terms
        return base**n if base < 2 or n * (base.bit_length() - 1) <= budget.bit_length() + 1 else budget + 1
    if symbol == "*" and len(args) == 2:
        return args[0] + args[1] + args[0] * args[1]
    if symbol == ":" and len(args) == 2:
        return args[0] * args[1]
    return sum(args) if args else 1


def _depth(tokens: list[Token], expr: str) -> None:
    depth = deepest = 0
    for token in tokens:
        if token.kind is Token.Kind.CONTEXT:
            depth += 1 if token.token in "([" else -1
            deepest = max(deepest, depth)
        # formulaic merges adjacent operator characters ('~-'); any '~' at the top is a side
        if token.kind is Token.Kind.OPERATOR and "~" in token.token and depth == 0:
            raise _refuse("~", expr, "a formula has one '~', between the response and the terms")
    from .formula import MAX_NESTING

    if deepest > MAX_NESTING:
        raise FormulaError(
            f"formula {_short(expr)!r} nests brackets more than {MAX_NESTING} deep; no model needs that",
            term=_short(expr),
        )


@functools.lru_cache(maxsize=4096)
def _read(expr: str, budgets: tuple[int, int, int], parse: bool) -> Reading:  # budgets: the cache key
    tokens = _tokens(expr)
    _depth(tokens, expr)
    checker = _Checker(expr)
    for token in tokens:
        _check_token(token, expr, checker)
    if parse:
        _check_expansion(expr)
    return Reading(frozenset(checker.names), frozenset(checker.quoted))


def check_expression(expr: str, columns: Collection[str] | None = None, *, parse: bool = True) -> Reading:
    """Refuse ``expr`` (a formulaic expression) unless every piece formulaic evaluates is whitelisted.

    Parameters
    ----------
    expr : str
        What glmmsim hands formulaic: one side of a formula, a bar's left side, ``0 + I(offset)``.
    columns : collection of str, optional
        The data's columns, when known: then a name that is no column but would reach
        something in formulaic's environment (``open``, ``lag``) is refused too, and so
        is a ``Q('name')`` of no column.
    parse : bool, default True
        Also parse ``expr`` with formulaic's parser (refusing what it cannot read) and
        count its expansion; ``False`` checks the tokens only (a whole lme4 right-hand
        side, whose bars are not formulaic's syntax).

    Returns
    -------
    Reading
        The names the expression reads.

    Raises
    ------
    FormulaError
        Naming the offending piece (``error.term``).

    Examples
    --------
    >>> sorted(check_expression("1 + x + np.log(`my col`) + C(g, levels=['a', 'b'])").names)
    ['g', 'my col', 'x']
    >>> check_expression("I(open)", columns=["x"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    glmmsim.errors.FormulaError: formula piece 'open' is not allowed in 'I(open)' (no column has this name...
    """
    if not isinstance(expr, str):
        raise FormulaError(f"a formula must be a str; got {type(expr).__name__}")
    if "\x00" in expr:
        raise FormulaError(
            f"formula {_short(expr)!r} contains a NUL character; a formula is printable text such as 'y ~ x'",
            term=_short(expr),
        )
    if len(expr) > limits.max_formula_chars:
        raise FormulaError(
            f"formula {_short(expr)!r} has {len(expr):,} characters; the limit max_formula_chars is "
            f"{limits.max_formula_chars:,}; {how_to_raise('max_formula_chars')}",
            term=_short(expr),
        )
    reading = _read(expr, (limits.max_int_bits, limits.max_formula_terms, limits.max_formula_chars), parse)
    if columns is not None:
        check_names(reading, columns, expr)
    return reading


def check_names(reading: Reading, columns: Collection[str], expr: str) -> None:
    """Refuse names that are no column but reach formulaic's environment, and ``Q`` of no column."""
    present = set(map(str, columns))
    for name in sorted(reading.names):
        # formulaic's layers: data first, then its transforms, then Python's builtins
        if name not in present and (name in _ENVIRONMENT_NAMES or name.startswith("_")):
            raise _refuse(name, expr, f"no column has this name; columns are {sorted(present)[:20]}")
    for name in sorted(reading.quoted):
        if name not in present:
            raise _refuse(f"Q({name!r})", expr, f"no column has this name; columns are {sorted(present)[:20]}")


def check_formula(formula: str) -> None:
    """Refuse an lme4 formula if any expression glmmsim would hand formulaic fails :func:`check_expression`.

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
    from .formula import parse_formula
    from .matrices import split_offsets
    from .terms import expand_bars

    if isinstance(formula, str) and len(formula) > limits.max_formula_chars:
        check_expression(formula)  # refused for its length before any pass over it
    parsed = parse_formula(formula)  # text only: nothing is evaluated
    # the whole right-hand side through formulaic's tokenizer: a quote or brace glmmsim's own
    # splitter reads differently cannot hide a Python piece
    check_expression(_right_hand_side(formula), parse=False)
    fixed, offsets = split_offsets(parsed.fixed, formula)
    for expr in (fixed, *(offset_expression(o) for o in offsets)):
        check_expression(expr)
    for bar in parsed.bars:
        check_expression(bar.lhs)  # before expand_bars, which parses (and expands) it
    for term in expand_bars(parsed.bars):
        check_expression(term.expr)


def _right_hand_side(formula: str) -> str:
    """The formula after its response (``parse_formula`` has checked it is a plain name)."""
    return formula.partition("~")[2]


def offset_expression(inner: str) -> str:
    """What glmmsim evaluates for ``offset(inner)``: formulaic's ``0 + I(inner)``.

    Examples
    --------
    >>> offset_expression("log(t)")
    '0 + I(log(t))'
    """
    return f"0 + I({inner})"
