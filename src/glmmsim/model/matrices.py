"""The design layer: model-matrix columns and grouping-factor codes for one DataFrame.

Model matrices come from formulaic (always with ``na_action="raise"`` so no row
silently disappears). For the common case of plain numeric columns and their
products, the columns are taken straight from the DataFrame without
materialising a matrix: at 10 million rows this saves a copy of every column and
most of formulaic's overhead, and gives the same numbers.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from formulaic import model_matrix
from formulaic.errors import FormulaicError
from formulaic.transforms import TRANSFORMS

from .columns import unhashable_levels, usable_columns
from ..randomness.streams import level_keys
from .formula import split_top_level
from .formula_safety import check_expression, offset_expression
from .formulaic_errors import evaluation_error, parse_terms
from ..errors import DataError, FormulaError, did_you_mean, format_names, plain

__all__ = [
    "Columns",
    "Grouping",
    "model_columns",
    "grouping",
    "first_appearance",
    "check_columns_present",
    "expression_variables",
    "offset_values",
    "split_offsets",
    "stateful_transforms",
]


# names formulaic itself provides to formula expressions (contrasts such as Sum, modules such as np)
_FORMULAIC_NAMES = frozenset(TRANSFORMS) | {"numpy", "math"}


def _python_names(code: str) -> list[str]:
    """Names a Python expression reads as data, skipping called functions and modules (``np.log``)."""
    try:
        tree = ast.parse(code, mode="eval")
    except SyntaxError:
        return []
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            skip.add(id(node.func))
        elif isinstance(node, ast.Attribute):
            skip.add(id(node.value))
    names = [
        (node.lineno, node.col_offset, node.id)
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and id(node) not in skip and node.id not in _FORMULAIC_NAMES
    ]
    return [name for *_, name in sorted(names)]


# transforms whose output depends on all rows of the call (means, SDs, knots)
STATEFUL_TRANSFORMS = frozenset({"center", "scale", "standardize", "poly", "bs", "cr", "cs", "cc"})


def _called_names(code: str) -> set[str]:
    try:
        tree = ast.parse(code, mode="eval")
    except SyntaxError:
        return set()
    return {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


def stateful_transforms(expr: str) -> set[str]:
    """Names of the data-dependent transforms (``center``, ``poly``, ...) ``expr`` calls.

    Examples
    --------
    >>> sorted(stateful_transforms("np.log(x) + center(z) + poly(w, 2):g"))
    ['center', 'poly']
    """
    return {
        name
        for term in parse_terms(expr, "the formula")
        for factor in term.factors
        if factor.eval_method.value == "python"
        for name in _called_names(factor.expr)
        if name in STATEFUL_TRANSFORMS
    }


def expression_variables(expr: str) -> list[str]:
    """Data columns a formulaic expression reads, in order of appearance.

    formulaic's own ``required_variables`` misses columns inside stateful
    transforms such as ``center(x)``, so Python factors are read with ``ast``.

    Examples
    --------
    >>> expression_variables("1 + center(x3) + np.log(x2):cond")
    ['x3', 'x2', 'cond']
    """
    found: list[str] = []
    for term in parse_terms(expr, "the formula"):
        for factor in term.factors:
            kind = factor.eval_method.value
            if kind == "lookup":
                found.append(factor.expr)
            elif kind == "python":
                found.extend(_python_names(factor.expr))
    return list(dict.fromkeys(found))


@dataclass(frozen=True)
class Columns:
    """A model matrix as named columns; ``None`` stands for a column of ones."""

    names: tuple[str, ...]
    arrays: tuple[np.ndarray | None, ...]

    def dot(self, beta: Sequence[float], n: int) -> np.ndarray:
        """``X @ beta`` without forming ``X``."""
        out = np.zeros(n)
        tmp = np.empty(n)
        for b, col in zip(beta, self.arrays):
            if b == 0.0:
                continue
            if col is None:
                out += b
            else:
                np.multiply(col, b, out=tmp)
                out += tmp
        return out


@dataclass(frozen=True)
class Grouping:
    """Levels of one grouping factor present in the data.

    Attributes
    ----------
    codes : ndarray of intp
        Level number of each row.
    keys : ndarray of uint64
        Persistent key of each level (see :mod:`glmmsim.randomness.streams`).
    labels : pandas.Index
        Level values in code order (a MultiIndex for an interaction factor ``a:b``);
        only levels some row has.
    """

    codes: np.ndarray
    keys: np.ndarray
    labels: pd.Index


def _first_bad_row(mask: np.ndarray, index: pd.Index) -> object:
    return plain(index[int(np.argmax(mask))])


def _caret_hint(expr: str) -> str:
    if "^" in expr:
        return " (write powers as x**2: in formulaic, as in Python, '^' is exclusive or, not a power)"
    return ""


def check_columns_present(data: pd.DataFrame, columns: Sequence[str], where: str) -> None:
    """DataError naming the first column of ``columns`` that ``data`` lacks."""
    for col in columns:
        if col not in data.columns:
            raise DataError(
                f"column {col!r}, used by {where}, is not in the data.{did_you_mean(col, map(str, data.columns))} "
                f"Data columns: {format_names(data.columns)}",
                column=col,
            )


def _numeric_array(data: pd.DataFrame, col: str, where: str) -> np.ndarray:
    series = data[col]
    arr = series.to_numpy(dtype=np.float64, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        kind = "missing" if np.isnan(arr[bad]).any() else "infinite"
        raise DataError(
            f"column {col!r} (used by {where}) has {kind} values, first at row "
            f"{_first_bad_row(bad, data.index)!r}; remove or impute them before simulating",
            column=col,
            row=_first_bad_row(bad, data.index),
        )
    return arr


def _is_plain_numeric(series: pd.Series) -> bool:
    return (
        pd.api.types.is_numeric_dtype(series)
        and not pd.api.types.is_bool_dtype(series)
        and not pd.api.types.is_complex_dtype(series)  # refused by usable_columns on the formulaic path
    )


def _fast_columns(
    expr: str, data: pd.DataFrame, levels: Mapping[str, Sequence[object]], where: str
) -> Columns | None:
    """Columns of ``expr`` read directly from ``data``, or None when formulaic is needed.

    Handled here: the intercept, plain numeric columns and their products, and a
    categorical column standing alone as a term (built from its level codes, with
    formulaic's names and coding). Everything else goes to formulaic.
    """
    terms = parse_terms(expr, where)
    # formulaic lists the intercept first; a categorical term after it (or after another
    # categorical term) is coded with one column fewer than it has levels
    spanned = any(_is_intercept(term) for term in terms)
    plan: list[tuple[str, tuple[str, ...]] | tuple[str, str, bool]] = []
    for term in terms:
        factors = term.factors
        if _is_intercept(term):
            plan.append(("Intercept", ()))
            continue
        if not all(f.eval_method.value == "lookup" for f in factors):
            return None
        cols = tuple(f.expr for f in factors)
        if any(col not in data.columns for col in cols):
            return None
        if len(cols) == 1 and _is_text_categorical(data[cols[0]], levels.get(cols[0])):
            plan.append(("categorical", cols[0], spanned))
            spanned = True
            continue
        for col in cols:
            if col in levels or not _is_plain_numeric(data[col]):
                return None
        plan.append((str(term), cols))
    names: list[str] = []
    arrays: list[np.ndarray | None] = []
    for step in plan:
        if step[0] == "categorical":
            _, col, reduced = step
            cat_names, cat_arrays = _categorical_columns(data, col, levels.get(col), bool(reduced), where)
            names.extend(cat_names)
            arrays.extend(cat_arrays)
            continue
        name, cols = step  # type: ignore[misc]
        names.append(name)
        if not cols:
            arrays.append(None)
            continue
        arr = _numeric_array(data, cols[0], where)
        for col in cols[1:]:
            arr = arr * _numeric_array(data, col, where)
        arrays.append(arr)
    return Columns(tuple(names), tuple(arrays))


def _is_intercept(term: object) -> bool:
    factors = term.factors  # type: ignore[attr-defined]
    return len(factors) == 1 and factors[0].eval_method.value == "literal" and factors[0].expr == "1"


def _all_str(values: Sequence[object]) -> bool:
    return all(isinstance(v, str) for v in values)


def _is_text_categorical(series: pd.Series, declared: Sequence[object] | None) -> bool:
    """Whether formulaic would code ``series`` as a categorical whose levels are all strings.

    Other level types (numbers, booleans, mixed) are left to formulaic, whose names for
    them are not re-derived here.
    """
    if declared is not None:
        return _all_str(declared)
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return _all_str(dtype.categories)
    if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_numeric_dtype(dtype):
        return dtype != object or pd.api.types.infer_dtype(series, skipna=True) == "string"
    return False


def _categorical_codes(series: pd.Series, declared: Sequence[object] | None) -> tuple[np.ndarray, list[str]]:
    """Level codes (-1 for missing or undeclared values) and the levels formulaic would use.

    formulaic uses declared levels or a categorical's categories (used or not) in their
    order, and the sorted distinct values of a text column.
    """
    dtype = series.dtype
    if declared is None and isinstance(dtype, pd.CategoricalDtype):
        return series.cat.codes.to_numpy(), list(dtype.categories)
    if declared is None:
        codes, uniques = pd.factorize(series, sort=True, use_na_sentinel=True)
        return codes, list(uniques)
    levels = list(declared)
    if isinstance(dtype, pd.CategoricalDtype):
        # recode the categories, not the rows
        per_category = pd.Index(levels, dtype=object).get_indexer(pd.Index(dtype.categories, dtype=object))
        codes = series.cat.codes.to_numpy()
        return np.where(codes < 0, -1, per_category[codes]), levels
    codes, uniques = pd.factorize(series, sort=False, use_na_sentinel=True)
    per_unique = pd.Index(levels, dtype=object).get_indexer(pd.Index(np.asarray(uniques, dtype=object)))
    return np.where(codes < 0, -1, per_unique[codes]), levels


def _categorical_columns(
    data: pd.DataFrame, col: str, declared: Sequence[object] | None, reduced: bool, where: str
) -> tuple[list[str], list[np.ndarray]]:
    """Indicator columns of a categorical term from its level codes, named as formulaic names them.

    Treatment coding against the first level when ``reduced`` (``c[T.b]``), one column
    per level otherwise (``c[a]``); rows are 1.0 in their level's column.
    """
    series = data[col]
    codes, levels = _categorical_codes(series, declared)
    unknown = codes < 0
    if unknown.any():
        row = _first_bad_row(unknown, data.index)
        value = plain(series.to_numpy()[np.argmax(unknown)])
        if pd.isna(value):
            raise DataError(
                f"column {col!r} (used by {where}) has missing values, first at row {row!r}; remove "
                f"or impute them before simulating",
                column=col,
                row=row,
            )
        raise DataError(
            f"column {col!r} has value {value!r} (row {row!r}) that is not among its declared "
            f"levels {list(levels)!r}",
            column=col,
            row=row,
        )
    first = 1 if reduced else 0
    prefix = "T." if reduced else ""
    names = [f"{col}[{prefix}{level}]" for level in levels[first:]]
    arrays = [(codes == j).astype(np.float64) for j in range(first, len(levels))]
    return names, arrays


def _with_levels(
    data: pd.DataFrame, used: Sequence[str], levels: Mapping[str, Sequence[object]]
) -> pd.DataFrame:
    """A view of ``data`` whose declared-level columns are categoricals with those levels."""
    declared = [c for c in used if c in levels]
    if not declared:
        return data
    frame = data.copy(deep=False)
    for col in declared:
        values = data[col]
        unknown = ~values.isin(list(levels[col])).to_numpy() & values.notna().to_numpy()
        if unknown.any():
            bad = plain(values.to_numpy()[np.argmax(unknown)])
            raise DataError(
                f"column {col!r} has value {bad!r} (row {_first_bad_row(unknown, data.index)!r}) "
                f"that is not among its declared levels {list(levels[col])!r}",
                column=col,
                row=_first_bad_row(unknown, data.index),
                path=("levels", col),
            )
        frame[col] = pd.Categorical(values, categories=list(levels[col]))
    return frame


def _materialize(expr: str, frame: pd.DataFrame, context: Mapping[str, object], trusted: bool) -> pd.DataFrame:
    """formulaic's model matrix of ``expr``: the one place glmmsim lets formulaic evaluate a formula.

    An untrusted expression passes :func:`~glmmsim.model.formula_safety.check_expression`
    with the frame's columns first.  The context is given explicitly, so formulaic never
    captures this module's namespace (``pd``, ``model_matrix``) as names a formula could read.
    """
    if not trusted:
        check_expression(expr, columns=list(frame.columns))
    return model_matrix(expr, frame, context=dict(context), na_action="raise", output="pandas")


def _formulaic_columns(
    expr: str, data: pd.DataFrame, levels: Mapping[str, Sequence[object]], where: str, trusted: bool = False
) -> Columns:
    variables = expression_variables(expr)
    check_columns_present(data, variables, where)
    frame = usable_columns(_with_levels(data, variables, levels), variables, where)
    try:
        matrix = _materialize(expr, frame, {}, trusted)
    except (FormulaicError, ValueError, TypeError, ArithmeticError) as exc:  # evaluation errors; ValueError: na_action="raise"
        if isinstance(exc, FormulaError):
            raise
        raise evaluation_error(exc, expr, where, _caret_hint(expr)) from None
    names, arrays = [], []
    for name in matrix.columns:
        try:
            arr = matrix[name].to_numpy(dtype=np.float64)
        except (ValueError, TypeError):  # formulaic passes I('text') through as a column of text
            raise DataError(
                f"model-matrix column {name!r} of {where} is not numeric: a term must give numbers "
                f"(a numeric column, a factor, or a transform of them), not text",
                term=expr,
            ) from None
        bad = ~np.isfinite(arr)
        if bad.any():
            raise DataError(
                f"model-matrix column {name!r} of {where} is not finite at row "
                f"{_first_bad_row(bad, data.index)!r} (a transform such as np.log of 0?)",
                term=expr,
                row=_first_bad_row(bad, data.index),
            )
        names.append(str(name))
        arrays.append(None if name == "Intercept" else arr)
    return Columns(tuple(names), tuple(arrays))


def model_columns(
    expr: str,
    data: pd.DataFrame,
    levels: Mapping[str, Sequence[object]] | None = None,
    where: str = "the formula",
    *,
    trusted: bool = False,
) -> Columns:
    """Model-matrix columns of ``expr`` for ``data``.

    ``expr`` passes :func:`~glmmsim.model.formula_safety.check_expression` unless
    ``trusted`` (a formula the user wrote, ``trusted_formula=True``).

    Examples
    --------
    >>> df = pd.DataFrame({"x": [0.0, 1.0], "g": ["a", "b"]})
    >>> model_columns("1 + x", df).names
    ('Intercept', 'x')
    >>> model_columns("x + g", df).names
    ('Intercept', 'x', 'g[T.b]')
    """
    if not trusted:
        check_expression(expr)  # before anything reads it
    levels = levels or {}
    fast = _fast_columns(expr, data, levels, where)
    return fast if fast is not None else _formulaic_columns(expr, data, levels, where, trusted)


def _missing_levels_error(col: str, where: str, mask: np.ndarray, index: pd.Index) -> DataError:
    row = _first_bad_row(mask, index)
    return DataError(
        f"grouping column {col!r} (used by {where}) has missing values, first at row "
        f"{row!r}; every row needs a level",
        column=col,
        row=row,
    )


# integer grouping columns spanning at most this many values (or the number of rows, if more)
# are coded by offset from their minimum instead of by hashing
_SMALL_INT_RANGE = 1 << 16


def _present_only(codes: np.ndarray, labels: pd.Index) -> tuple[np.ndarray, pd.Index]:
    """Drop the levels no row has (a categorical's unused categories, gaps in an int range)."""
    present = np.bincount(codes, minlength=len(labels)) > 0
    if present.all():
        return codes, labels
    renumber = np.cumsum(present) - 1
    return renumber[codes], labels[present]


# R's names for the functions an lme4 offset usually applies (offset(log(exposure)))
_OFFSET_FUNCTIONS = {"log": np.log, "exp": np.exp, "sqrt": np.sqrt, "log2": np.log2, "log10": np.log10}
_OFFSET_TERM = re.compile(r"^offset\s*\((.*)\)$", re.S)


def split_offsets(fixed: str, formula: str) -> tuple[str, tuple[str, ...]]:
    """The fixed part without its ``offset(...)`` terms, and the offsets' inner expressions.

    As in lme4, an offset is added to the linear predictor with coefficient 1.

    Examples
    --------
    >>> split_offsets("1 + x + offset(log(t))", "y ~ x + offset(log(t))")
    ('1 + x', ('log(t)',))
    >>> split_offsets("offset(t) - 1", "y ~ offset(t) - 1")
    ('0', ('t',))
    """
    kept: list[str] = []
    offsets: list[str] = []
    for sep, piece in split_top_level(fixed, "+-", formula):
        match = _OFFSET_TERM.match(piece)
        if match and _balanced(match.group(1)):
            if sep == "-":
                raise FormulaError(f"offset term {piece!r} of formula {formula!r} cannot be subtracted", term=piece)
            offsets.append(match.group(1).strip())
            continue
        if piece or sep:
            kept.append(f"{sep} {piece}" if kept or sep == "-" else piece)
    rest = " ".join(kept).strip()
    if re.search(r"\boffset\s*\(", rest):
        raise FormulaError(
            f"offset(...) in formula {formula!r} must be a term of its own, e.g. 'y ~ x + offset(log(t))'"
        )
    if not rest:
        rest = "1"
    elif rest.startswith("-"):
        rest = "1 " + rest
    if rest in ("1 - 1", "1 -1"):
        rest = "0"
    return rest, tuple(offsets)


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return False
    return depth == 0


def offset_values(expr: str, data: pd.DataFrame, where: str, *, trusted: bool = False) -> np.ndarray:
    """Values of an offset expression (a column, ``np.log(t)``, R's ``log(t)``) for ``data``.

    Examples
    --------
    >>> offset_values("log(t)", pd.DataFrame({"t": [1.0, np.e]}), "offset").round(6).tolist()
    [0.0, 1.0]
    """
    full = offset_expression(expr)
    if not trusted:
        check_expression(full)  # before anything reads it
    variables = expression_variables(full)
    check_columns_present(data, variables, where)
    frame = usable_columns(data, variables, where)
    try:
        matrix = _materialize(full, frame, _OFFSET_FUNCTIONS, trusted)
    except (FormulaicError, ValueError, TypeError, ArithmeticError) as exc:  # evaluation errors; ValueError: na_action="raise"
        if isinstance(exc, FormulaError):
            raise
        raise evaluation_error(exc, expr, where) from None
    values = matrix.iloc[:, 0].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row = _first_bad_row(bad, data.index)
        raise DataError(f"{where} {expr!r} is not finite at row {row!r}", row=row, term=f"offset({expr})")
    return values


def _level_codes(data: pd.DataFrame, col: str, where: str) -> tuple[np.ndarray, pd.Index]:
    """Level number of each row and the levels, numbered as cheaply as the column allows.

    A categorical's codes are used as they are; an integer column with a small range
    is coded by offset from its minimum; anything else is factorized (levels in order
    of first appearance).
    """
    series = data[col]
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        cat_codes = series.cat.codes.to_numpy()
        if (cat_codes < 0).any():
            raise _missing_levels_error(col, where, cat_codes < 0, data.index)
        categories = pd.Index(dtype.categories, name=col)
        return _present_only(cat_codes.astype(np.intp), categories)
    if isinstance(dtype, np.dtype) and dtype.kind in "iu" and len(series):
        values = series.to_numpy()
        low, high = int(values.min()), int(values.max())
        if high - low < max(_SMALL_INT_RANGE, len(values)):
            # in 64 bits: int8 values -128..127 differ by 255, which int8 cannot hold
            wide = np.uint64 if dtype.kind == "u" else np.int64
            codes = (values.astype(wide, copy=False) - wide(low)).astype(np.intp)
            span = np.arange(high - low + 1, dtype=wide) + wide(low)
            labels = pd.Index(span.astype(dtype), name=col)
            return _present_only(codes, labels)
    try:
        codes, uniques = pd.factorize(series, sort=False, use_na_sentinel=True)
    except TypeError:  # lists, dicts or sets as levels
        raise unhashable_levels(series, col, where) from None
    if (codes < 0).any():
        raise _missing_levels_error(col, where, codes < 0, data.index)
    return codes, pd.Index(uniques, name=col)


def grouping(data: pd.DataFrame, columns: Sequence[str], where: str) -> Grouping:
    """Codes, persistent keys and labels of the factor formed by ``columns``.

    Only levels present in ``data`` are kept. Their numbering (``codes``, the order of
    ``labels``) is whatever is cheapest for the column types; :func:`first_appearance`
    gives the order in which the rows meet them.

    Examples
    --------
    >>> g = grouping(pd.DataFrame({"s": ["b", "a", "b"]}), ["s"], "(1 | s)")
    >>> g.codes.tolist(), list(g.labels)
    ([0, 1, 0], ['b', 'a'])
    >>> list(grouping(pd.DataFrame({"s": [12, 10, 12]}), ["s"], "(1 | s)").labels)
    [10, 12]
    """
    check_columns_present(data, columns, where)
    parts = [_level_codes(data, col, where) for col in columns]
    if len(parts) == 1:
        codes, labels = parts[0]
        return Grouping(codes, level_keys([labels.to_numpy()]), labels)
    sizes = [len(uniques) for _, uniques in parts]
    if math.prod(sizes) <= max(_SMALL_INT_RANGE, len(data)):
        codes, per_column = _combine_small(parts, sizes)
    else:
        codes, per_column = _combine_by_hashing(parts, len(data))
    # key columns in sorted-name order so that a:b and b:a name the same levels
    order = sorted(range(len(columns)), key=lambda i: columns[i])
    keys = level_keys([per_column[i] for i in order])
    labels = pd.MultiIndex.from_arrays(per_column, names=list(columns))
    return Grouping(codes, keys, labels)


def _combine_small(
    parts: Sequence[tuple[np.ndarray, pd.Index]], sizes: Sequence[int]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Combined codes by mixed-radix arithmetic, when all combinations fit in a small table."""
    combined = np.zeros(len(parts[0][0]), dtype=np.intp)
    for (codes, _), size in zip(parts, sizes):
        combined *= size
        combined += codes
    present = np.flatnonzero(np.bincount(combined, minlength=math.prod(sizes)))
    renumber = np.zeros(math.prod(sizes), dtype=np.intp)
    renumber[present] = np.arange(len(present))
    per_code = np.unravel_index(present, tuple(sizes))
    per_column = [uniques.to_numpy()[idx] for (_, uniques), idx in zip(parts, per_code)]
    return renumber[combined], per_column


def _combine_by_hashing(
    parts: Sequence[tuple[np.ndarray, pd.Index]], n: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    combined = np.zeros(n, dtype=np.int64)
    for codes, uniques in parts:
        # re-number after each column so the combined code never exceeds the number of rows
        combined, _ = pd.factorize(combined * len(uniques) + codes, sort=False)
    codes, first = _codes_and_first_rows(combined)
    per_column = [uniques.to_numpy()[col_codes[first]] for col_codes, uniques in parts]
    return codes, per_column


def first_appearance(codes: np.ndarray) -> np.ndarray:
    """Level codes in the order in which the rows first meet them.

    Examples
    --------
    >>> first_appearance(np.array([2, 0, 2, 1])).tolist()
    [2, 0, 1]
    """
    return pd.unique(np.asarray(codes))


def _codes_and_first_rows(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes, _ = pd.factorize(values, sort=False)
    # unsorted factorize numbers levels by first appearance, so a row starts a new level
    # exactly where its code exceeds every code before it
    running_max = np.maximum.accumulate(codes)
    new_level = np.empty(len(codes), dtype=bool)
    new_level[:1] = True
    new_level[1:] = codes[1:] > running_max[:-1]
    return codes, np.flatnonzero(new_level)
