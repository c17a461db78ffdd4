"""``Model.simulate`` on a Dask DataFrame: lazy, partition by partition, identical to pandas.

Each partition is simulated by the model bound to that partition
(``model.bind(part, key=..., offset=...)``). Every random number glmmsim draws
is keyed (random effects by level, row noise and family draws by row key), so
the partitioning cannot change a number:

* ``key=None`` keys a row by its global position: the partition lengths are
  counted once (or taken from a partitioned design, which knows them) and
  partition ``p`` is bound with ``offset`` = the rows before it;
* ``key="index"`` or a list of columns keys rows by those values, whatever
  partition they are in.

What could make a partition differ from the whole is refused before any work:
a stateful transform (``center``, ``scale``, ``poly``...), estimated from each
partition's own rows, and a categorical predictor whose levels are not
declared (a partition lacking a level would drop that coefficient and shift
the others). The output ``meta`` is the input's plus the response column, typed
by the family (int64 counts for discrete families, float64 otherwise); the
model never runs on fake rows.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError, InputTypeError
from ..model.formula import parse_formula
from ..model.matrices import check_columns_present, stateful_transforms
from ..randomness.seeds import SeedLike, as_seed_sequence

__all__ = ["simulate", "predict", "output_meta", "check_partitionable", "remember_lengths", "known_lengths"]

_KEY_HELP = 'key must be None (global row position), "index" or a list of column names'


def simulate(model: Any, data: Any, seed: SeedLike = None, *, key: Any = None) -> Any:
    """Simulate ``model`` on the Dask DataFrame ``data``; a lazy Dask DataFrame.

    ``data.compute()`` simulated with pandas (same ``seed`` and ``key``) gives the
    same values bit for bit, whatever the partitioning.

    Parameters
    ----------
    model : glmmsim.Model
    data : dask.dataframe.DataFrame
        One row per observation. Categorical predictors need declared levels
        (``Model(levels=...)``) or known categories (``data.categorize()``).
    seed : int, SeedSequence or Generator, optional
        The noise seed; None or a Generator is turned into one seed here, once,
        so that every partition uses the same.
    key : None, "index" or list of str
        How rows are keyed (see ``Model.bind``). Duplicate keys are found within a
        partition; keys repeated across partitions are not looked for (that would
        need a pass over all keys).

    Returns
    -------
    dask.dataframe.DataFrame
        ``data`` with the response column added (or replaced, in its place).
    """
    meta = data._meta
    check_partitionable(model, meta)
    _check_key(key, meta)
    seed = _fixed_seed(seed)
    offsets = _offsets(data) if key is None else None
    if offsets is not None:
        import dask

        # one array in the graph, which every task depends on; embedded in each task it
        # would make the graph grow with the square of the number of partitions
        offsets = dask.delayed(np.asarray(offsets, dtype=np.int64), pure=True)
    return data.map_partitions(
        _simulate_partition,
        model,
        seed,
        key,
        offsets,
        meta=output_meta(model, meta),
        align_dataframes=False,
        enforce_metadata=False,
    )


def predict(model: Any, data: Any, *, type: str = "response", random: bool = True) -> Any:
    """``model.predict`` on the Dask DataFrame ``data``: a lazy Series, equal to the pandas one.

    Examples
    --------
    >>> import dask.dataframe as dd, glmmsim
    >>> m = glmmsim.Model("y ~ x + (1 | g)", fixed={"Intercept": 1, "x": 2}, random={"g": 1}, sigma=1, seed=1)
    >>> df = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "g": ["a", "b", "a", "c"]})
    >>> lazy = predict(m, dd.from_pandas(df, npartitions=3))
    >>> bool((lazy.compute() == m.predict(df)).all())
    True
    """
    check_partitionable(model, data._meta)
    meta = pd.Series(np.empty(0, dtype=np.float64), index=data._meta.index, name=model.response)
    return data.map_partitions(_predict_partition, model, type, random, meta=meta, enforce_metadata=False)


def _predict_partition(part: pd.DataFrame, model: Any, type: str, random: bool) -> pd.Series:
    if len(part) == 0:
        return pd.Series(np.empty(0), index=part.index, name=model.response)
    return model.predict(part, type=type, random=random)


def output_meta(model: Any, meta: pd.DataFrame) -> pd.DataFrame:
    """The empty output frame: ``meta`` plus the response, typed by the family."""
    out = meta.copy()
    out[model.response] = np.empty(0, dtype=np.int64 if model.family.discrete else np.float64)
    return out


def _simulate_partition(
    part: pd.DataFrame,
    model: Any,
    seed: SeedLike,
    key: Any,
    offsets: np.ndarray | None,
    partition_info: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    if len(part) == 0:
        return output_meta(model, part)
    offset = 0 if offsets is None or partition_info is None else int(offsets[partition_info["number"]])
    return model.bind(part, key=key, offset=offset).simulate(seed)


def _fixed_seed(seed: SeedLike) -> SeedLike:
    # None (fresh entropy) and a Generator are resolved once here; ints and SeedSequences pass unchanged
    if seed is None or isinstance(seed, np.random.Generator):
        return as_seed_sequence(seed, "seed")
    as_seed_sequence(seed, "seed")  # validates
    return seed


# partition lengths of frames whose builder knew them (the partitioned designs), by Dask
# name: simulate() then needs no counting pass over the data
_LENGTHS: dict[str, tuple[int, ...]] = {}
_LENGTHS_KEPT = 256


def remember_lengths(frame: Any, lengths: tuple[int, ...]) -> None:
    """Record the partition lengths of ``frame`` (a builder that knows them calls this)."""
    if len(_LENGTHS) >= _LENGTHS_KEPT:
        _LENGTHS.pop(next(iter(_LENGTHS)))
    _LENGTHS[frame._name] = tuple(lengths)


def known_lengths(frame: Any) -> tuple[int, ...] | None:
    """Partition lengths recorded for ``frame`` (None when they must be counted)."""
    return _LENGTHS.get(getattr(frame, "_name", None))


def _offsets(data: Any) -> tuple[int, ...]:
    """Global position of each partition's first row; lengths counted once (or known)."""
    lengths = known_lengths(data)
    if lengths is None:
        lengths = tuple(int(n) for n in data.map_partitions(len).compute())
    return tuple(int(x) for x in np.concatenate([[0], np.cumsum(lengths)[:-1]]))


def _check_key(key: Any, meta: pd.DataFrame) -> None:
    if key is None or (isinstance(key, str) and key == "index"):
        return
    if isinstance(key, str) or not isinstance(key, Sequence) or not key:
        raise InputTypeError(f"{_KEY_HELP}; got {key!r}")
    check_columns_present(meta, [str(k) for k in key], "key")


# ----------------------------------------------------------------------------- refusals


def check_partitionable(model: Any, meta: pd.DataFrame) -> None:
    """Refuse what would make a partition's numbers differ from the whole's.

    Raises
    ------
    DataError
        A column the model uses is missing, or a categorical predictor has
        neither declared levels nor known categories.
    FormulaError
        The formula uses a stateful transform (``center``, ``scale``, ``poly``...).
    """
    check_columns_present(meta, list(model.variables), "the formula")
    exprs = _expressions(model)
    _refuse_stateful(exprs, model.formula)
    _require_levels(model, meta, exprs)


def _expressions(model: Any) -> list[str]:
    return [parse_formula(model.formula).fixed] + [t.expr for t in model.terms]


_PRECOMPUTE = {
    "center": 'data["{x}_c"] = data["{x}"] - data["{x}"].mean().compute()',
    "scale": 'data["{x}_z"] = (data["{x}"] - data["{x}"].mean().compute()) / data["{x}"].std().compute()',
    "standardize": 'data["{x}_z"] = (data["{x}"] - data["{x}"].mean().compute()) / data["{x}"].std().compute()',
}


def _refuse_stateful(exprs: Sequence[str], formula: str) -> None:
    found = sorted(set().union(*(stateful_transforms(e) for e in exprs)))
    if not found:
        return
    call = _first_call(exprs, found)
    name = call.split("(")[0].strip()
    arg = call[call.find("(") + 1 : -1].split(",")[0].strip() or "x"
    how = _PRECOMPUTE.get(name, "compute its basis columns once from the whole column and add them")
    raise FormulaError(
        f"{formula!r} uses {call}, which formulaic would estimate from each partition's own rows "
        f"(means, SDs, basis knots): partitions would disagree with each other and with the whole. "
        f"Precompute the column once on the whole data, e.g. {how.format(x=arg)}, "
        f"and use the new column in the formula"
    )


def _first_call(exprs: Sequence[str], names: Sequence[str]) -> str:
    for expr in exprs:
        for name in names:
            match = re.search(rf"\b{name}\s*\(", expr)
            if match:
                return _balanced(expr, match.start())
    return f"{names[0]}(...)"


def _balanced(text: str, start: int) -> str:
    depth = 0
    for i in range(text.index("(", start), len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return text[start : i + 1]
    return text[start:]


def _require_levels(model: Any, meta: pd.DataFrame, exprs: Sequence[str]) -> None:
    declared = _declared_levels(model)
    grouping = {c for cols in model.factor_columns.values() for c in cols}
    trials = model.trials if isinstance(model.trials, str) else None
    in_c = set().union(*(_c_arguments(e) for e in exprs))
    for col in model.variables:
        if col in grouping or col == trials or col in declared:
            continue
        series = meta[col]
        if isinstance(series.dtype, pd.CategoricalDtype):
            if _known_categories(series):
                continue
        elif pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
            if col not in in_c:
                continue
        raise DataError(
            f"column {col!r} is a categorical predictor whose levels a partition may lack, which would "
            f"drop its coefficient and shift the others; declare its levels: "
            f"Model(..., levels={{{col!r}: [...]}}), or give the Dask column known categories "
            f"(data.categorize(columns=[{col!r}]) or data[{col!r}].astype(pandas.CategoricalDtype([...])))"
        )


def _declared_levels(model: Any) -> Mapping[str, Sequence[object]]:
    levels = getattr(model, "levels", None)
    if levels is None or callable(levels):
        levels = getattr(model, "_levels", {})  # declared levels have no public accessor yet
    return levels or {}


def _known_categories(series: pd.Series) -> bool:
    return "__UNKNOWN_CATEGORIES__" not in series.cat.categories


def _c_arguments(expr: str) -> set[str]:
    """Columns passed to formulaic's ``C(...)`` (categorical even when numeric)."""
    out = set()
    for match in re.finditer(r"\bC\s*\(", expr):
        call = _balanced(expr, match.start())
        try:
            node = ast.parse(call, mode="eval").body
        except SyntaxError:
            continue
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Name):
            out.add(node.args[0].id)
    return out
