"""A :class:`BoundModel`: a model joined to one conditions frame, materialised once.

:meth:`Model.bind <glmmsim.Model.bind>` reads the formula against the data a
single time (fixed-effect columns and their product with the coefficients,
random-effect columns, grouping codes and level keys, Cholesky factors, trials,
row keys) and keeps the result. Every later call only draws numbers: the
random effects of a population (keyed by level value) and the response noise
(keyed by row). A power study binds once and simulates thousands of times.

Randomness
----------
* Random effects: level ``v`` of factor ``f`` gets, for coefficient ``c``, the
  standard normal keyed by (population key, ``f``, ``c``, ``v``) (see
  :mod:`glmmsim.randomness.streams`), times the term's Cholesky factor.
* Response noise: row ``r`` draws from ``RowStreams(keys, stream)``, with
  ``stream = SeedTree(seed).child("noise").key`` and ``keys[r]`` its row key:
  its position plus ``offset`` (``key=None``), its index value (``key="index"``)
  or the values of the key columns (``key=[...]``). A row's response therefore
  depends only on its own key, so any slice, subset or partition keyed by index
  or columns gets exactly the rows of the whole.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Optional, Union

import numpy as np
import pandas as pd

from ..errors import DataError, InputTypeError, ParameterError, format_names, plain
from ..randomness.seeds import SeedLike, derive_key, seed_key
from ..randomness.streams import RowStreams, RowStreamsStack, level_keys, standard_normals, stream_key
from .model_design import ModelDesign
from .matrices import Columns, Grouping, first_appearance
from .parameters import TermCovariance
from .terms import RandomTerm

if TYPE_CHECKING:  # pragma: no cover
    from .model import Model

__all__ = ["BoundModel", "KeyLike", "noise_stream", "row_keys"]

_COW = int(pd.__version__.split(".")[0]) >= 3
#: Most numbers (replicates x rows) one pass of ``BoundModel.simulate_responses`` draws: its temporaries
#: (predictors, keys, uniforms) stay at a few tens of MB however large the design; more replicates are
#: drawn in several passes (the same numbers).
DRAW_ENTRIES = 4_000_000

KeyLike = Optional[Union[Literal["index"], Sequence[str]]]


@dataclass(frozen=True)
class BoundTerm:
    """One random-effect term materialised for the bound data."""

    term: RandomTerm
    z: Columns
    group: Grouping
    cov: TermCovariance
    factor_l: np.ndarray  # lower Cholesky factor of the term's covariance
    factor_key: str  # name under which the factor's draws are keyed (a:b and b:a alike)
    active: bool  # some SD is non-zero


def noise_stream(seed: SeedLike, argname: str = "seed") -> int:
    """The stream key of the response noise for ``seed``: ``SeedTree(seed).child("noise").key``.

    Examples
    --------
    >>> from glmmsim.randomness import SeedTree
    >>> noise_stream(5) == SeedTree(5).child("noise").key
    True
    """
    return derive_key(seed_key(seed, argname), "noise")


def row_keys(conditions: pd.DataFrame, key: KeyLike = None, offset: int = 0) -> np.ndarray:
    """The uint64 key of every row: its position, index value or key-column values.

    Parameters
    ----------
    conditions : pandas.DataFrame
    key : None, "index" or list of str
        ``None``: position ``offset + r``; ``"index"``: the index values (every level
        of a MultiIndex); a list: the values of those columns. Values are hashed as
        level values are (``1``, ``1.0`` and ``"1"`` are one key).
    offset : int
        Added to the positions when ``key`` is None (the first row of a partition).

    Raises
    ------
    DataError
        For duplicate or missing key values, naming the first duplicate and its rows.

    Examples
    --------
    >>> df = pd.DataFrame({"s": ["a", "a", "b"], "t": [1, 2, 1]})
    >>> row_keys(df, offset=10).tolist()
    [10, 11, 12]
    >>> bool(row_keys(df, ["s", "t"])[2] == row_keys(df.iloc[2:], ["t", "s"])[0])
    True
    """
    n = len(conditions)
    if key is None:
        if isinstance(offset, bool) or not isinstance(offset, numbers.Integral) or offset < 0:
            raise InputTypeError(f"offset must be a non-negative int; got {offset!r}", parameter="offset")
        return np.arange(int(offset), int(offset) + n, dtype=np.uint64)
    if offset != 0:
        raise InputTypeError(
            f"offset={offset!r} applies to position keys only (key=None); with key={key!r} the rows "
            f"are identified by their values",
            parameter="offset",
        )
    names, arrays = _key_arrays(conditions, key)
    for name, column, values in zip(names, _key_columns(key, conditions), arrays):
        missing = pd.isna(values)
        if np.any(missing):
            row = plain(conditions.index[int(np.argmax(missing))])
            raise DataError(
                f"key {name} has missing values, first at row {row!r}; every row needs a key",
                parameter="key",
                column=column,
                row=row,
            )
    order = sorted(range(len(names)), key=lambda i: names[i])  # ["a", "b"] and ["b", "a"] agree
    keys = level_keys([arrays[i] for i in order])
    _check_unique_keys(keys, names, arrays, conditions.index)
    return keys


def _key_columns(key: object, conditions: pd.DataFrame) -> list[str | None]:
    """The column behind each key array (None for index levels), for error attributes."""
    if isinstance(key, str):
        return [None] * conditions.index.nlevels
    return list(key)  # type: ignore[arg-type]


def _key_arrays(conditions: pd.DataFrame, key: object) -> tuple[list[str], list[np.ndarray]]:
    if isinstance(key, str):
        if key != "index":
            raise InputTypeError(
                f"key must be None, 'index' or a list of column names; got {key!r} (to key rows by "
                f"column {key!r}, pass key=[{key!r}])",
                parameter="key",
            )
        index = conditions.index
        levels = range(index.nlevels)
        names = [f"index level {index.names[i]!r}" if index.names[i] is not None else "index" for i in levels]
        return names, [np.asarray(index.get_level_values(i)) for i in levels]
    if not isinstance(key, Sequence) or not key or not all(isinstance(c, str) for c in key):
        raise InputTypeError(
            f"key must be None, 'index' or a non-empty list of column names; got {key!r}", parameter="key"
        )
    if len(set(key)) != len(key):
        raise InputTypeError(f"key names a column more than once: {list(key)!r}", parameter="key")
    for col in key:
        if col not in conditions.columns:
            raise DataError(
                f"key column {col!r} is not in the data. Data columns: {format_names(conditions.columns)}",
                parameter="key",
                column=col,
            )
    return [f"column {c!r}" for c in key], [conditions[c].to_numpy() for c in key]


def _check_unique_keys(keys: np.ndarray, names: Sequence[str], arrays: Sequence[np.ndarray], index: pd.Index) -> None:
    dup = pd.Series(keys).duplicated(keep=False).to_numpy()
    if not dup.any():
        return
    second = int(np.flatnonzero(pd.Series(keys).duplicated(keep="first").to_numpy())[0])
    first = int(np.flatnonzero(keys == keys[second])[0])
    value = tuple(plain(a[first]) for a in arrays)
    shown = value[0] if len(value) == 1 else value
    raise DataError(
        f"rows must have distinct keys, but {' and '.join(names)} = {shown!r} appears at rows "
        f"{plain(index[first])!r} and {plain(index[second])!r} (positions {first} and {second}; "
        f"{int(dup.sum())} rows share a key); key by columns that identify each row",
        parameter="key",
        row=plain(index[second]),
    )


def _check_random_flag(random: object) -> bool:
    if not isinstance(random, (bool, np.bool_)):
        raise InputTypeError(f"random must be True or False; got {type(random).__name__} {random!r}", parameter="random")
    return bool(random)


def _frozen(arr: np.ndarray | None) -> np.ndarray | None:
    if arr is not None and arr.flags.writeable:
        arr = arr.view()
        arr.flags.writeable = False
    return arr


class BoundModel:
    """A :class:`~glmmsim.Model` bound to one conditions frame; immutable.

    Made by :meth:`Model.bind <glmmsim.Model.bind>`. Everything that depends on the
    data is computed once; :meth:`simulate_response` then costs little more than
    drawing the numbers.

    Examples
    --------
    >>> from glmmsim import Model
    >>> data = pd.DataFrame({"x": [0.0, 1.0] * 3, "subject": list("aabbcc")})
    >>> m = Model("y ~ x + (1 | subject)", fixed={"Intercept": 1.0, "x": 0.5},
    ...           random={"subject": 0.5}, sigma=0.2, seed=1)
    >>> bound = m.bind(data)
    >>> len(bound), bound.simulate(seed=3).equals(m.simulate(data, seed=3))
    (6, True)
    >>> y = bound.simulate_response(seed=3, population=99)  # another population, same design
    >>> y.shape
    (6,)
    """

    __slots__ = ("_model", "_conditions", "_design", "_beta", "_terms", "_trials", "_keys", "_fixed_eta", "_cache")

    def __init__(self, model: Model, conditions: pd.DataFrame, *, key: KeyLike = None, offset: int = 0) -> None:
        if not isinstance(conditions, pd.DataFrame):
            raise InputTypeError(
                f"conditions must be a pandas DataFrame with one row per observation; got "
                f"{type(conditions).__name__}"
            )
        # our own copy (free under copy-on-write) so later edits of the caller's frame cannot reach us
        conditions = conditions.copy(deep=not _COW)
        design = model.design(conditions)
        beta, covs = model._parameters(design, conditions)
        trials = design.trials
        keys = row_keys(conditions, key, offset)
        fixed_eta = design.fixed.dot(beta, len(conditions))
        if design.offset is not None:
            fixed_eta += design.offset
        bound_terms = tuple(
            BoundTerm(b.term, b.z, b.group, cov, cov.factor_l, _factor_key(b.term), bool(np.any(cov.sd)))
            for b, cov in zip(design.blocks, covs)
        )
        for name, value in (
            ("_model", model),
            ("_conditions", conditions),
            ("_design", design),
            ("_beta", tuple(beta)),
            ("_terms", bound_terms),
            ("_trials", _frozen(trials) if isinstance(trials, np.ndarray) else trials),
            ("_keys", _frozen(keys)),
            ("_fixed_eta", _frozen(fixed_eta)),
            ("_cache", {}),
        ):
            object.__setattr__(self, name, value)

    # ------------------------------------------------------------------ immutability
    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"BoundModel is immutable; bind again to change {name!r}")

    def __getstate__(self) -> dict[str, object]:
        # the cache is rebuilt on demand; pickles stay small
        return {name: getattr(self, name) for name in self.__slots__ if name != "_cache"}

    def __setstate__(self, state: dict[str, object]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_cache", {})

    # ---------------------------------------------------------------------- properties
    @property
    def model(self):
        """The :class:`~glmmsim.Model` this is bound from."""
        return self._model

    @property
    def conditions(self) -> pd.DataFrame:
        """The bound conditions (a copy)."""
        return self._conditions.copy(deep=not _COW)

    @property
    def design(self) -> ModelDesign:
        """The formula read against the conditions (built once; fits of this design reuse it)."""
        return self._design

    @property
    def row_keys(self) -> np.ndarray:
        """The key of each row's noise stream (read-only)."""
        return self._keys

    def __len__(self) -> int:
        return len(self._conditions)

    def __repr__(self) -> str:
        return f"<BoundModel {self._model!r} on {len(self)} rows>"

    # ------------------------------------------------------------------------ calls
    def simulate(self, seed: SeedLike = None, *, population: SeedLike = None) -> pd.DataFrame:
        """The conditions with a simulated response column.

        Parameters
        ----------
        seed : int, SeedSequence or Generator, optional
            Seeds the response noise. A Generator is used once, to derive a key.
        population : int, SeedSequence or Generator, optional
            Seeds the random effects instead of the model's own seed: a new
            population of levels on the same design.

        Returns
        -------
        pandas.DataFrame
            A copy of the conditions (same index and column order) with the
            response column added (or replaced, in its place).
        """
        return self._frame(self._simulate(noise_stream(seed), population))

    def simulate_response(self, seed: SeedLike = None, *, population: SeedLike = None) -> np.ndarray:
        """Only the simulated response, as an array (the fast path for studies).

        The numbers equal ``simulate(seed, population=population)[response]``.
        """
        return self._simulate(noise_stream(seed), population)

    def simulate_responses(self, seeds: Sequence[SeedLike], *, populations: Sequence[SeedLike] | None = None
                           ) -> np.ndarray:
        """Several simulated responses at once: ``(len(seeds), rows)``.

        Row ``k`` equals ``simulate_response(seeds[k], population=populations[k])``, the same
        numbers: a study's replicates of one design point are drawn together, in a few numpy
        calls instead of a few dozen each. ``populations`` defaults to the model's own.

        Examples
        --------
        >>> from glmmsim import Model
        >>> data = pd.DataFrame({"x": [0.0, 1.0] * 3, "subject": list("aabbcc")})
        >>> m = Model("y ~ x + (1 | subject)", fixed={"Intercept": 1.0, "x": 0.5},
        ...           random={"subject": 0.5}, sigma=0.2, seed=1)
        >>> bound = m.bind(data)
        >>> ys = bound.simulate_responses([3, 4], populations=[10, 11])
        >>> ys.shape, bool(np.array_equal(ys[1], bound.simulate_response(4, population=11)))
        ((2, 6), True)
        """
        seeds = list(seeds)
        populations = [None] * len(seeds) if populations is None else list(populations)
        if len(populations) != len(seeds):
            raise ParameterError(
                f"simulate_responses takes one population per seed: {len(seeds)} seeds, {len(populations)} populations",
                parameter="populations",
            )
        return self._simulate_many([noise_stream(s) for s in seeds], populations)

    def predict(
        self,
        *,
        type: Literal["response", "link"] = "response",
        random: bool = True,
        population: SeedLike = None,
    ) -> pd.Series:
        """Conditional mean of the response (``type="response"``) or linear predictor.

        ``random=False`` sets every random effect to zero (population-level prediction).
        """
        if type not in ("response", "link"):
            raise ParameterError(f"type must be 'response' or 'link'; got {type!r}")
        random = _check_random_flag(random)
        eta = self._eta(population) if random else self._fixed_eta.copy()
        if type == "response":
            eta = self._model.family.mean(eta, index=self._conditions.index)
            if self._trials is not None:
                eta = eta * self._trials
        return pd.Series(eta, index=self._conditions.index, name=self._model.response)

    def random_effects(self, population: SeedLike = None) -> dict[str, pd.DataFrame]:
        """Per grouping factor, the effects of its levels present in the data.

        One row per level in order of first appearance, one column per coefficient.
        """
        key = self._population_key(population)
        out: dict[str, pd.DataFrame] = {}
        for bt in self._terms:
            order = first_appearance(bt.group.codes)
            effects = pd.DataFrame(
                self._effects(bt, key)[order], index=bt.group.labels[order], columns=list(bt.cov.coefs)
            )
            factor = bt.term.factor
            out[factor] = effects if factor not in out else out[factor].join(effects)
        return out

    def to_theta(self) -> np.ndarray:
        """lme4's ``theta`` for these data (see :func:`glmmsim.lme4.to_theta`)."""
        from ..lme4.theta import to_theta  # layering: lme4 sits above model; imported on use

        return to_theta(self)

    # ------------------------------------------------------------------------ internals
    @property
    def terms(self) -> tuple[BoundTerm, ...]:
        """The materialised random-effect terms, in formula order."""
        return self._terms

    def _population_key(self, population: SeedLike) -> int:
        if population is None:
            return self._model._seed_key
        return seed_key(population, "population")

    def _effects(self, bt: BoundTerm, population_key: int) -> np.ndarray:
        """Effects of the term's levels (rows in code order): keyed standard normals times L'."""
        return self._terms_effects([bt], [population_key])[0][0]

    @staticmethod
    def _terms_effects(terms: Sequence[BoundTerm], population_keys: Sequence[int]) -> list[list[np.ndarray]]:
        """``_effects`` of several terms for each of several populations, from one pass over all their keys.

        A level's normal of one coefficient is ``standard_normals(key, stream)``, and the stream
        enters only as ``key ^ stream``: xor-ing each population's and coefficient's stream into
        the levels' keys first gives the same numbers from one call (a few numpy calls for a
        study's batch of replicates instead of ~25 a coefficient and replicate).
        """
        level_keys = [bt.group.keys for bt in terms for _ in bt.cov.coefs]
        if not level_keys:
            return [[] for _ in population_keys]
        streams = np.array([[stream_key(pk, bt.factor_key, c) for bt in terms for c in bt.cov.coefs]
                            for pk in population_keys], dtype=np.uint64)  # (populations, coefficients)
        keyed = np.concatenate([keys[None, :] ^ streams[:, i, None] for i, keys in enumerate(level_keys)], axis=1)
        z = standard_normals(keyed.ravel(), 0).reshape(keyed.shape)
        out = []
        for row in z:
            effects, at = [], 0
            for bt in terms:
                size = len(bt.group.keys) * len(bt.cov.coefs)
                # (levels, coefs) in C order, as the per-term draw always laid it out: the product's rounding stays put
                normals = np.ascontiguousarray(row[at: at + size].reshape(len(bt.cov.coefs), -1).T)
                effects.append(normals @ bt.factor_l.T)
                at += size
            out.append(effects)
        return out

    def _eta(self, population: SeedLike) -> np.ndarray:
        """Linear predictor with the random effects of ``population``; cached for the model's own."""
        if population is None and "eta" in self._cache:
            return self._cache["eta"].copy()
        eta = self._etas([self._population_key(population)])[0]
        if population is None:
            self._cache["eta"] = _frozen(eta.copy())
        return eta

    def _etas(self, population_keys: Sequence[int]) -> np.ndarray:
        """``(populations, rows)``: the linear predictor with each population's random effects."""
        eta = np.repeat(self._fixed_eta[None, :], len(population_keys), axis=0)
        tmp = np.empty_like(eta)
        active = [bt for bt in self._terms if bt.active]
        effects = self._terms_effects(active, population_keys)
        for t, bt in enumerate(active):
            columns = np.stack([np.ascontiguousarray(per_population[t].T) for per_population in effects])
            for j, col in enumerate(bt.z.arrays):
                if not bt.factor_l[j].any():  # a coefficient with SD 0: its effects are all zero
                    continue
                np.take(columns[:, j], bt.group.codes, axis=1, out=tmp)
                if col is not None:
                    tmp *= col
                eta += tmp
        return eta

    def _simulate(self, stream: int, population: SeedLike) -> np.ndarray:
        eta = self._eta(population)
        noise = RowStreams(self._keys, stream)
        return self._model.family.sample(eta, noise, trials=self._trials, index=self._conditions.index)

    def _simulate_many(self, streams: Sequence[int], populations: Sequence[SeedLike]) -> np.ndarray:
        if not streams:
            return np.empty((0, len(self)))
        per_pass = max(1, DRAW_ENTRIES // max(1, len(self)))
        if len(streams) > per_pass:
            parts = [self._simulate_many(streams[lo: lo + per_pass], populations[lo: lo + per_pass])
                     for lo in range(0, len(streams), per_pass)]
            return np.concatenate(parts)
        keys = [self._population_key(p) for p in populations]
        distinct = list(dict.fromkeys(keys))  # a study that keeps one population draws its effects once
        etas = self._etas(distinct)
        if len(distinct) < len(keys):
            where = {key: i for i, key in enumerate(distinct)}
            etas = etas[[where[key] for key in keys]]
        noise = RowStreamsStack(self._keys, streams)
        return self._model.family.sample_many(etas, noise, trials=self._trials, index=self._conditions.index)

    def _frame(self, y: np.ndarray, once: bool = False) -> pd.DataFrame:
        if once:  # a single call: a template would cost what it saves
            out = self._conditions.copy(deep=not _COW)
            out[self._model.response] = y
            return out
        template, loc = self._template()
        out = template.copy(deep=not _COW)
        if loc is None:  # the response name is duplicated among the columns: let pandas decide
            out[self._model.response] = y
        else:
            out.isetitem(loc, y)  # replacing a column is ~3x cheaper than inserting one
        return out

    def _template(self) -> tuple[pd.DataFrame, int | None]:
        """The conditions with the response column already in its place (built once)."""
        if "template" not in self._cache:
            template = self._conditions.copy(deep=not _COW)
            template[self._model.response] = 0.0
            loc = template.columns.get_loc(self._model.response)
            self._cache["template"] = (template, loc if isinstance(loc, int) else None)
        return self._cache["template"]


def _factor_key(term: RandomTerm) -> str:
    """Name under which a factor's draws are keyed; ``a:b`` and ``b:a`` are one factor."""
    return ":".join(sorted(term.columns))
