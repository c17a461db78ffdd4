"""Coefficient names: formulaic's spelling and lme4's, and matching user keys to columns.

formulaic names a model-matrix column ``Intercept``, ``cond[T.b]`` or
``C(cond, Sum)[S.a]``; lme4 calls the same columns ``(Intercept)``, ``condb`` and
``cond1``. A logical column ``x`` is numeric 0/1 to formulaic (coefficient
``x``) and a factor to R (``xTRUE``). Users copy parameters from either, so both
are accepted wherever a coefficient is named.

Examples
--------
>>> lme4_name("Intercept"), lme4_name("cond[T.b]"), lme4_name("x1:cond[T.b]")
('(Intercept)', 'condb', 'x1:condb')
>>> lme4_name("x:cond[T.b]", {"x": [False, True]})
'xTRUE:condb'
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import pandas as pd

from ..errors import ParameterError, did_you_mean, format_names
from .terms import split_interaction

__all__ = [
    "lme4_name", "aliases", "match_keys", "categorical_levels", "logical_levels", "find_levels", "term_label",
    "CoefficientNames",
]

_CONTRAST = re.compile(r"^(?P<expr>.+)\[((?P<kind>[A-Za-z]+)\.)?(?P<level>.*)\]$")
_C_CALL = re.compile(r"^C\(\s*(?P<name>[A-Za-z_.][A-Za-z0-9_.]*)\s*(,.*)?\)$")
_INTERCEPT_SPELLINGS = ("Intercept", "(Intercept)", "1")


_LOGICAL = [False, True]


def _is_logical(variable: str, levels: Mapping[str, Sequence[object]]) -> bool:
    values = levels.get(variable)
    return values is not None and list(values) == _LOGICAL and all(isinstance(v, bool) for v in values)


def _lme4_factor(part: str, levels: Mapping[str, Sequence[object]]) -> str:
    m = _CONTRAST.match(part)
    if not m:
        # R codes a logical predictor as a factor whose one coefficient is TRUE vs FALSE
        return f"{part}TRUE" if _is_logical(part, levels) else part
    expr, kind, level = m.group("expr"), m.group("kind"), m.group("level")
    c_call = _C_CALL.match(expr)
    variable = c_call.group("name") if c_call else expr
    if _is_logical(variable, levels) and level in ("True", "False"):
        level = level.upper()  # R prints logicals as TRUE / FALSE
    if kind in ("T", None):  # treatment contrast, or full dummy coding of '0 + cond'
        return f"{variable}{level}"
    if kind == "S" and variable in levels:
        # lme4's contr.sum numbers the kept levels 1..k-1
        labels = [str(v) for v in levels[variable]]
        if level in labels:
            return f"{variable}{labels.index(level) + 1}"
    return part


def lme4_name(name: str, levels: Mapping[str, Sequence[object]] | None = None) -> str:
    """lme4's name for the formulaic model-matrix column ``name``.

    ``levels`` (column -> ordered levels) is needed only for sum contrasts.
    """
    if name == "Intercept":
        return "(Intercept)"
    return ":".join(_lme4_factor(p, levels or {}) for p in split_interaction(name))


def logical_levels(data: pd.DataFrame) -> dict[str, list[object]]:
    """``[False, True]`` for each logical column (numpy, nullable or Arrow booleans).

    Only dtypes are read, so this costs nothing per row.

    Examples
    --------
    >>> logical_levels(pd.DataFrame({"x": [True, False], "z": [1.0, 2.0]}))
    {'x': [False, True]}
    """
    return {c: list(_LOGICAL) for c in data.columns if pd.api.types.is_bool_dtype(data[c].dtype)}


def categorical_levels(data: pd.DataFrame) -> dict[str, list[object]]:
    """Levels of the data's categorical and logical columns, the ``levels`` :func:`lme4_name` needs.

    Text columns are read as formulaic reads them: their sorted distinct values.

    Examples
    --------
    >>> df = pd.DataFrame({"cond": ["b", "a", "b"], "flag": [True, False, True]})
    >>> categorical_levels(df)
    {'cond': ['a', 'b'], 'flag': [False, True]}
    >>> lme4_name("C(cond, Sum)[S.a]", categorical_levels(df)), lme4_name("flag", categorical_levels(df))
    ('cond1', 'flagTRUE')
    """
    levels: dict[str, list[object]] = logical_levels(data)
    for col in data.columns:
        dtype = data[col].dtype
        if isinstance(dtype, pd.CategoricalDtype):
            levels[col] = list(data[col].cat.categories)
        elif col not in levels and (pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)):
            try:
                levels[col] = sorted(pd.unique(data[col].dropna()))
            except TypeError:  # mixed types have no order; lme4 names are then unavailable
                continue
    return {c: levels[c] for c in data.columns if c in levels}


def find_levels(
    data: pd.DataFrame, columns: Sequence[str], declared: Mapping[str, Sequence[object]] | None = None
) -> dict[str, list[object]]:
    """Levels of the categorical predictors ``columns``, as formulaic codes them; ``declared`` levels win.

    The one place glmmsim finds levels in data (for lme4's spellings of coefficients and for
    a fit's :meth:`~glmmsim.fit.FitResult.to_model`): a categorical column's categories, a
    logical column's ``[False, True]`` (lme4's ``xTRUE``), a text column's sorted distinct
    values. Numeric columns have no levels.

    Examples
    --------
    >>> df = pd.DataFrame({"cond": ["b", "a", "b"], "flag": [True, True, True], "x": [1.0, 2.0, 3.0]})
    >>> find_levels(df, ["cond", "flag", "x"])
    {'cond': ['a', 'b'], 'flag': [False, True]}
    >>> find_levels(df, ["cond"], {"cond": ["b", "a"]})
    {'cond': ['b', 'a']}
    """
    found: dict[str, list[object]] = {}
    for col in dict.fromkeys(columns):
        if col not in data.columns:
            continue
        values = data[col]
        if isinstance(values.dtype, pd.CategoricalDtype):
            found[col] = list(values.cat.categories)
        elif pd.api.types.is_bool_dtype(values.dtype):
            found[col] = list(_LOGICAL)
        elif not pd.api.types.is_numeric_dtype(values.dtype):
            try:
                found[col] = sorted(pd.unique(values.dropna()))
            except TypeError:  # mixed types have no order: formulaic would fail on them too
                continue
    return {**found, **{k: list(v) for k, v in (declared or {}).items()}}


def _squash(name: str) -> str:
    return re.sub(r"\s+", "", name)


def _unordered(name: str) -> str:
    """Interaction parts sorted: R orders ``x1:cond`` by first appearance, formulaic as written."""
    return ":".join(sorted(split_interaction(_squash(name))))


def aliases(name: str, levels: Mapping[str, Sequence[object]] | None = None) -> set[str]:
    """Every spelling under which a user may name the column ``name``."""
    lme4 = lme4_name(name, levels)
    spellings = {name, _squash(name), lme4, _squash(lme4), _unordered(name), _unordered(lme4)}
    if name == "Intercept":
        spellings.update(_INTERCEPT_SPELLINGS)
    return spellings


def match_keys(
    given: Mapping[str, object],
    columns: Sequence[str],
    what: str,
    levels: Mapping[str, Sequence[object]] | None = None,
    hint: str = "",
) -> dict[str, object]:
    """Map user keys onto model-matrix column names; every column exactly once.

    Parameters
    ----------
    given : mapping
        User's coefficient -> value mapping, keys in either spelling.
    columns : sequence of str
        formulaic column names the model needs.
    what : str
        Where these coefficients belong, for messages (``"fixed"``, ``"random['subject']"``).

    Raises
    ------
    ParameterError
        Naming unknown keys (with the closest valid name), keys that name one
        column twice, and columns with no value (no silent defaults).

    Examples
    --------
    >>> match_keys({"(Intercept)": 1.0, "condb": 2.0}, ["Intercept", "cond[T.b]"], "fixed")
    {'Intercept': 1.0, 'cond[T.b]': 2.0}
    """
    lookup: dict[str, str] = {}
    ambiguous: set[str] = set()
    for col in columns:
        for alias in aliases(col, levels):
            if alias in lookup and lookup[alias] != col:
                ambiguous.add(alias)
            lookup.setdefault(alias, col)
    for alias in ambiguous:
        lookup.pop(alias)
    # exact column names always win over aliases
    lookup.update({c: c for c in columns})

    out: dict[str, object] = {}
    source: dict[str, str] = {}
    for key, value in given.items():
        key_s = str(key)
        col = lookup.get(key_s, lookup.get(_squash(key_s), lookup.get(_unordered(key_s))))
        if col is None:
            valid = list(columns) + [lme4_name(c, levels) for c in columns if lme4_name(c, levels) != c]
            raise ParameterError.at(
                what,
                f"names unknown coefficient {key_s!r}.{did_you_mean(key_s, valid)} "
                f"Valid coefficients: {format_names(columns)}"
                + (f" (lme4 spelling: {format_names(lme4_name(c, levels) for c in columns)})" if valid != list(columns) else "")
                + hint,
                coefficient=key_s,
            )
        if col in out:
            raise ParameterError.at(
                what, f"gives coefficient {col!r} twice, as {source[col]!r} and {key_s!r}", coefficient=col
            )
        out[col] = value
        source[col] = key_s
    missing = [c for c in columns if c not in out]
    if missing:
        raise ParameterError.at(
            what,
            f"has no value for coefficient(s) {format_names(missing)}; every coefficient "
            f"needs one (use 0 to switch a term off){hint}",
            coefficient=missing[0],
        )
    return {c: out[c] for c in columns}


_BRACKET = re.compile(r"\[[^\[\]]*\]$")


def term_label(name: str) -> str:
    """The fixed-part term a formulaic column belongs to: ``x:cond[T.b]`` -> ``x:cond``.

    Examples
    --------
    >>> term_label("cond[T.b]"), term_label("x:C(cond, Sum)[S.a]"), term_label("Intercept")
    ('cond', 'x:C(cond, Sum)', 'Intercept')
    """
    return ":".join(_BRACKET.sub("", p) for p in split_interaction(name))


def _variable(part: str) -> str:
    """A term part without its contrast call: ``C(cond, Sum)`` -> ``cond``."""
    call = _C_CALL.match(_BRACKET.sub("", part.strip()))
    return call.group("name") if call else _BRACKET.sub("", part.strip())


def _term_keys(label: str) -> set[tuple[str, ...]]:
    """The keys a term is found under: its parts sorted, as written and without ``C()``."""
    parts = [_squash(p) for p in split_interaction(label)]
    return {tuple(sorted(parts)), tuple(sorted(_variable(p) for p in parts))}


#: At most this many of :meth:`CoefficientNames.find`'s answers are remembered.
_FOUND_LIMIT = 256


class CoefficientNames:
    """The one resolver of coefficient and term names of a fixed-effects matrix.

    A user names a coefficient in formulaic's spelling (``cond[T.b]``, ``Intercept``) or
    lme4's (``condb``, ``(Intercept)``, ``1``), with any spacing and interaction order; a
    term (``cond``, ``cond:x``, ``C(cond, Sum)``) stands for all its coefficients. Fits,
    tests and studies all look names up here.

    Parameters
    ----------
    names : sequence of str
        The columns' formulaic names, in matrix order.
    levels : mapping, optional
        Levels of the categorical predictors (see :func:`find_levels`), for lme4's spellings.

    Examples
    --------
    >>> names = CoefficientNames(["Intercept", "C(cond, Sum)[S.a]", "x"], {"cond": ["a", "b"]})
    >>> names.lme4
    ('(Intercept)', 'cond1', 'x')
    >>> names.find("cond1"), names.find("cond"), names.find("C(cond,Sum)"), names.find("nope")
    ((1,), (1,), (1,), None)
    """

    def __init__(self, names: Sequence[str], levels: Mapping[str, Sequence[object]] | None = None) -> None:
        self.names = tuple(names)
        self.levels = dict(levels or {})
        self.lme4 = tuple(lme4_name(n, self.levels) for n in self.names)
        self._by_alias: dict[str, int] = {}
        for pos, name in enumerate(self.names):
            for alias in aliases(name, self.levels):
                self._by_alias.setdefault(alias, pos)
        self._by_alias.update({n: pos for pos, n in enumerate(self.names)})  # exact names win
        terms: dict[str, list[int]] = {}
        for pos, name in enumerate(self.names):
            terms.setdefault(term_label(name), []).append(pos)
        #: Fixed-part term label (``cond``, ``x:cond``) -> positions of its columns.
        self.terms = {k: tuple(v) for k, v in terms.items()}
        self._found: dict[str, tuple[int, ...] | None] = {}
        self._by_term: dict[tuple[str, ...], list[int]] = {}
        for label, cols in self.terms.items():
            if label == "Intercept":
                continue
            for key in _term_keys(label):
                self._by_term.setdefault(key, [])
                self._by_term[key].extend(c for c in cols if c not in self._by_term[key])

    def coefficient(self, spec: str) -> int | None:
        """Position of the coefficient ``spec`` names (either spelling), or None."""
        text = spec.strip()
        for form in (text, _squash(text), _unordered(text)):
            if form in self._by_alias:
                return self._by_alias[form]
        return None

    def term(self, spec: str) -> tuple[int, ...] | None:
        """Positions of the coefficients of the term ``spec`` names (with or without ``C()``), or None."""
        for key in _term_keys(spec.strip()):
            if key in self._by_term:
                return tuple(sorted(self._by_term[key]))
        return None

    def find(self, spec: str) -> tuple[int, ...] | None:
        """A coefficient first, else a term: the positions ``spec`` names, or None."""
        if spec in self._found:  # a study looks the same name up once a replicate
            return self._found[spec]
        pos = self.coefficient(spec)
        out = (pos,) if pos is not None else self.term(spec)
        if len(self._found) < _FOUND_LIMIT:
            self._found[spec] = out
        return out
