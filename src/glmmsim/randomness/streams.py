"""Keyed random streams: uniforms and normals that are pure functions of (seed, key), per level and per row.

Random effects persist: a level's values depend only on (seed, factor, coefficient,
level). Instead of drawing from a sequential stream (where a level's value would depend
on how many levels came before it), each level's standard normal is a pure
function of a 64-bit key. The key mixes the model seed, the grouping factor's
name, the coefficient's name and a hash of the level's value with SplitMix64;
53 bits of the result become a uniform in (0, 1) and the inverse normal CDF
turns it into a standard normal. So subject ``"A"`` gets the same effects in
every call, in every partition of a large job and whatever other subjects are
present. Row noise works the same way, keyed by row (:class:`RowStreams`).

Examples
--------
>>> keys = level_keys([np.array(["A", "B", "C"], dtype=object)])
>>> z1 = standard_normals(keys, stream_key(7, "subject", "Intercept"))
>>> z2 = standard_normals(keys[::-1], stream_key(7, "subject", "Intercept"))
>>> bool(np.all(z1 == z2[::-1]))
True
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.special import ndtri

from .seeds import splitmix64

__all__ = ["RowStreams", "RowStreamsStack", "level_keys", "mix64", "standard_normals", "stream_key", "string_key", "uniforms"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
# pandas' documented default hash key; fixed here so a future default change cannot move draws
_HASH_KEY = "0123456789123456"
#: Rows hashed per block: two uint64 buffers of this length stay in the L2 cache.
_BLOCK = 65_536


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on a uint64 array (wrapping arithmetic; the input is not modified)."""
    z = np.array(x, dtype=np.uint64)  # a copy, also for 0-d input
    splitmix64_inplace(z, np.empty_like(z))
    return z


def splitmix64_inplace(z: np.ndarray, tmp: np.ndarray) -> None:
    """SplitMix64 finaliser of the uint64 array ``z``, in place; ``tmp`` is scratch of its shape.

    In place on one scratch buffer because at millions of rows the temporaries of the
    textbook expression cost more than the arithmetic (the samplers call it on cache-sized
    blocks).
    """
    z += _GOLDEN
    np.right_shift(z, _S30, out=tmp)
    z ^= tmp
    z *= _M1
    np.right_shift(z, _S27, out=tmp)
    z ^= tmp
    z *= _M2
    np.right_shift(z, _S31, out=tmp)
    z ^= tmp


def _hash_strings(values: np.ndarray) -> np.ndarray:
    return pd.util.hash_array(values.astype(object), hash_key=_HASH_KEY, categorize=False)


@functools.lru_cache(maxsize=4096)
def string_key(text: str) -> int:
    """A stable 64-bit key for a name (factor or coefficient); cached: names recur in every call."""
    return int(_hash_strings(np.array([text], dtype=object))[0])


_INT64_SAFE = 2.0**63


def _canonical_labels(values: np.ndarray | pd.Index | pd.Categorical) -> np.ndarray:
    """Level values as strings, so that 1, 1.0, np.int32(1) and "1" name the same level.

    Dates and durations are written at nanosecond resolution, so the population does
    not depend on the unit a pandas version happens to store them in.
    """
    arr = np.asarray(values)
    kind = arr.dtype.kind
    if kind == "M":
        return np.datetime_as_string(arr.astype("datetime64[ns]"), unit="ns").astype(object)
    if kind == "m":
        return (arr.astype("timedelta64[ns]").astype(np.int64).astype(str).astype(object)) + "ns"
    if kind in "iu":
        return arr.astype(str)  # exact for every int64 and uint64 value
    if kind == "f":
        integral = np.isfinite(arr) & (arr == np.round(arr)) & (np.abs(arr) < _INT64_SAFE)
        out = arr.astype(str).astype(object)
        out[integral] = arr[integral].astype(np.int64).astype(str)
        return out
    if kind == "b":
        return arr.astype(str)
    if pd.api.types.infer_dtype(arr, skipna=False) == "string":
        return arr  # labels already; the common case needs no Python-level loop
    return np.array([_label_str(v) for v in arr], dtype=object)


def _label_str(value: object) -> str:
    if isinstance(value, (pd.Timestamp, np.datetime64)) or (
        hasattr(value, "tzinfo") and hasattr(value, "isoformat")
    ):
        stamp = pd.Timestamp(value)
        stamp = stamp.tz_convert(None) if stamp.tzinfo is not None else stamp
        return str(np.datetime_as_string(np.datetime64(stamp.as_unit("ns").value, "ns"), unit="ns"))
    if isinstance(value, (pd.Timedelta, np.timedelta64)):
        return f"{pd.Timedelta(value).value}ns"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer() and abs(value) < _INT64_SAFE:
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)


def level_keys(columns: Sequence[np.ndarray | pd.Index | pd.Categorical]) -> np.ndarray:
    """64-bit keys of levels given as one array per grouping column (same length each).

    Column order must be canonical (the caller sorts by column name) so that
    ``a:b`` and ``b:a`` share levels.
    """
    acc = None
    for values in columns:
        h = _hash_strings(_canonical_labels(values))
        acc = h if acc is None else _splitmix64(acc ^ _splitmix64(h))
    assert acc is not None
    return acc


def stream_key(seed_key: int, factor: str, coefficient: str) -> int:
    """Key of the stream of standard normals for one coefficient of one grouping factor."""
    # scalar SplitMix64 in Python ints: the same bits as the array version, without numpy's per-call cost
    acc = int(seed_key) & 0xFFFFFFFFFFFFFFFF
    for part in (factor, coefficient):
        acc = splitmix64(acc ^ string_key(part))
    return acc


def mix64(keys: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser of a uint64 array: scrambles keys into uniform-looking bits."""
    return _splitmix64(np.asarray(keys, dtype=np.uint64))


def uniforms(keys: np.ndarray, stream: int) -> np.ndarray:
    """One uniform strictly inside (0, 1) per key, a pure function of (key, stream).

    The SplitMix64 steps run in place on cache-sized blocks (one pass over memory instead
    of about twenty): the row noise of every call comes through here.
    """
    keys = np.asarray(keys, dtype=np.uint64)
    stream = np.uint64(stream)
    n = keys.shape[0]
    out = np.empty(n)
    size = min(n, _BLOCK)
    z = np.empty(size, dtype=np.uint64)
    tmp = np.empty(size, dtype=np.uint64)
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        zb, tb, ob = z[: stop - start], tmp[: stop - start], out[start:stop]
        np.bitwise_xor(keys[start:stop], stream, out=zb)
        splitmix64_inplace(zb, tb)
        splitmix64_inplace(zb, tb)
        # top 53 bits, centred in their interval: never exactly 0 or 1, so inverse CDFs stay finite
        zb >>= _S11
        ob[...] = zb  # exactly representable
        ob += 0.5
        ob *= 2.0**-53
    return out


def standard_normals(keys: np.ndarray, stream: int) -> np.ndarray:
    """One standard normal per level key, a pure function of (key, stream)."""
    return ndtri(uniforms(keys, stream))


class RowStreams:
    """Keyed random numbers for the rows of one call: row ``r``'s j-th uniform is a pure
    function of ``(stream, keys[r], j)``.

    ``keys`` identify the rows (their position in the conditions, their index values or
    their key columns, hashed); ``stream`` identifies the call's purpose and seed (the
    response noise of one replicate). Because nothing depends on the other rows, any
    slice, subset or partition of the rows gets exactly the numbers of the whole.

    Examples
    --------
    >>> whole = RowStreams(np.arange(6, dtype=np.uint64), stream=11)
    >>> part = RowStreams(np.arange(3, 6, dtype=np.uint64), stream=11)
    >>> bool(np.array_equal(whole.uniforms(0)[3:], part.uniforms(0)))
    True
    >>> bool(np.array_equal(whole.uniforms(0), whole.uniforms(1)))
    False
    """

    __slots__ = ("keys", "stream")

    def __init__(self, keys: np.ndarray, stream: int) -> None:
        self.keys = np.asarray(keys, dtype=np.uint64)
        self.stream = int(stream)

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    def draw_stream(self, draw: int) -> int:
        """The 64-bit stream key of the ``draw``-th number of every row."""
        return stream_key(self.stream, "draw", str(int(draw)))

    def uniforms(self, draw: int = 0, rows: np.ndarray | None = None) -> np.ndarray:
        """The ``draw``-th uniform in (0, 1) of every row (or of ``rows``, positions)."""
        keys = self.keys if rows is None else self.keys[rows]
        return uniforms(keys, self.draw_stream(draw))

    def normals(self, draw: int = 0, rows: np.ndarray | None = None) -> np.ndarray:
        """The ``draw``-th standard normal of every row (inverse CDF of :meth:`uniforms`)."""
        return ndtri(self.uniforms(draw, rows))

    def __getstate__(self):
        return (self.keys, self.stream)

    def __setstate__(self, state) -> None:
        self.keys, self.stream = state


class RowStreamsStack:
    """The row streams of several calls on the same rows (one stream each), drawn together.

    Row ``k`` of every draw equals what ``RowStreams(keys, streams[k])`` draws: the stream
    enters the hash only as ``key ^ draw_stream``, so the keys of all calls are xor-ed first
    and hashed in one pass (a study's replicates of one design point, without a numpy call
    per replicate and draw).

    Examples
    --------
    >>> keys = np.arange(4, dtype=np.uint64)
    >>> stack = RowStreamsStack(keys, [11, 12])
    >>> u = stack.uniforms(0)
    >>> u.shape, bool(np.array_equal(u[1], RowStreams(keys, 12).uniforms(0)))
    ((2, 4), True)
    """

    __slots__ = ("keys", "streams")

    def __init__(self, keys: np.ndarray, streams: Sequence[int]) -> None:
        self.keys = np.asarray(keys, dtype=np.uint64)
        self.streams = tuple(int(s) for s in streams)

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    def uniforms(self, draw: int = 0, rows: np.ndarray | None = None) -> np.ndarray:
        """``(len(streams), rows)``: the ``draw``-th uniform of every row of every stream."""
        keys = self.keys if rows is None else self.keys[rows]
        draws = np.array([self[k].draw_stream(draw) for k in range(len(self.streams))], dtype=np.uint64)
        return uniforms((draws[:, None] ^ keys[None, :]).ravel(), 0).reshape(len(draws), keys.shape[0])

    def normals(self, draw: int = 0, rows: np.ndarray | None = None) -> np.ndarray:
        """``(len(streams), rows)``: the ``draw``-th standard normal of every row of every stream."""
        return ndtri(self.uniforms(draw, rows))

    def __getitem__(self, k: int) -> RowStreams:
        """Stream ``k`` alone."""
        return RowStreams(self.keys, self.streams[k])
