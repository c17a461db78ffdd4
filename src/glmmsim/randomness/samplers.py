"""Keyed exact samplers: each row's response is a pure function of its own random stream.

Every function here takes a :class:`~glmmsim.randomness.streams.RowStreams` ``noise`` and
parameter arrays aligned with its rows, and returns one draw per row. Row ``r``
reads only its own uniforms (``noise.uniforms(j, rows)`` for draw index ``j``), and
every arithmetic step is elementwise, so a row's value does not depend on which
other rows are present: a slice, a subset or a partition of the rows gets exactly
the numbers of the whole.

Rejection samplers draw the ``j``-th attempt of a row from draw indices ``2j`` and
``2j + 1``; only rows still rejected draw again. Two-stage samplers (the gamma
boost for shape < 1, the gamma-Poisson mixture) give each stage its own
sub-stream (:func:`stage`), so stages never share a number.

Algorithms (all exact up to floating point):

* normal: inversion, ``ndtri(u)``; exponential: ``-log(u)``.
* Bernoulli: ``u < p``.
* Poisson: inversion by sequential search of the CDF for means below 10,
  PTRS (Hormann 1993, transformed rejection with squeeze) above.
* binomial: Bernoulli for one trial, inversion by search when
  ``trials * min(p, 1 - p) < 10``, BTRS (Hormann 1993) above; ``p > 1/2`` draws the
  failures.
* gamma: Marsaglia and Tsang (2000) for shape >= 1; for shape < 1 a shape + 1
  draw times ``U**(1/shape)``.
* inverse Gaussian: Michael, Schucany and Haas (1976), written without the
  cancellation of the textbook form.

Log-probabilities in the acceptance tests are summed from ``lgamma`` for means and
trial counts below 2**20, and use Loader's saddle-point form (``stirlerr`` and
``bd0``) above, accurate up to 2**53 where ``k * log(lam) - lgamma(k + 1)`` would
lose every digit to cancellation.

Examples
--------
>>> from glmmsim.randomness.streams import RowStreams
>>> whole = RowStreams(np.arange(1000, dtype=np.uint64), stream=5)
>>> part = RowStreams(np.arange(500, 1000, dtype=np.uint64), stream=5)
>>> lam = np.full(1000, 30.0)
>>> bool(np.array_equal(poisson(lam, whole)[500:], poisson(lam[500:], part)))
True
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln, ndtri

from .streams import RowStreams, stream_key

__all__ = [
    "binomial",
    "exp",
    "exponential",
    "gamma",
    "inverse_gaussian",
    "log",
    "normals",
    "poisson",
    "stage",
]

#: Elements per block of exp and log: their temporaries stay in the L2 cache.
_BLOCK = 65_536
#: Rows per block of a sampler (its dozen temporaries stay in cache).
_ROW_BLOCK = 32_768

#: Means / trials * p at or above this use the rejection samplers (numpy uses the same cut).
_SEARCH_LIMIT = 10.0
#: A row that is still rejected after this many attempts means a bug, not bad luck
#: (every sampler here accepts an attempt with probability > 0.5).
_MAX_ATTEMPTS = 200
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


# ------------------------------------------- exp and log the same on every numpy version

# numpy's exp and log are vectorised (SIMD) implementations that changed between numpy
# 1.x and 2.x and differ by CPU, in the last bit of some results. The draws below use
# these two instead: the classic Cody-Waite reduction and minimax polynomials (as in
# fdlibm), built from +, -, *, /, rint, frexp and ldexp only. Each of those is exactly
# rounded by IEEE 754 in every numpy, so the results are the same bits everywhere;
# they are accurate to within 1 ulp.

_LN2_HI = 6.93147180369123816490e-01  # ln 2 with trailing zero bits: k * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00
_EXP_P = (
    1.66666666666666019037e-01,
    -2.77777777770155933842e-03,
    6.61375632143793436117e-05,
    -1.65339022054652515390e-06,
    4.13813679705723846039e-08,
)
_LOG_LG = (
    6.666666666666735130e-01,
    3.999999999940941908e-01,
    2.857142874366239149e-01,
    2.222219843214978396e-01,
    1.818357216161805012e-01,
    1.531383769920937332e-01,
    1.479819860511658591e-01,
)
_EXP_MAX = 7.09782712893383973096e02  # largest x with finite exp(x)
_EXP_MIN = -7.45133219101941108420e02  # below this exp(x) rounds to 0


def exp(x: np.ndarray) -> np.ndarray:
    """``exp(x)``, bit-identical on every numpy version and CPU (within 1 ulp of the true value)."""
    x = np.asarray(x, dtype=float)
    return _elementwise_by_block(_exp_block, x.reshape(-1)).reshape(x.shape)


def log(x: np.ndarray) -> np.ndarray:
    """``log(x)`` for finite x > 0, bit-identical on every numpy version and CPU (within 1 ulp)."""
    x = np.asarray(x, dtype=float)
    return _elementwise_by_block(_log_block, x.reshape(-1)).reshape(x.shape)


def _elementwise_by_block(fn, x: np.ndarray) -> np.ndarray:
    """``fn`` over cache-sized blocks: a dozen temporaries per block instead of per array."""
    if x.shape[0] <= _BLOCK:
        return fn(x)
    out = np.empty_like(x)
    for start in range(0, x.shape[0], _BLOCK):
        out[start : start + _BLOCK] = fn(x[start : start + _BLOCK])
    return out


def _exp_block(x: np.ndarray) -> np.ndarray:
    in_range = x.shape[0] == 0 or (x.min() >= _EXP_MIN and x.max() <= _EXP_MAX)  # False for NaN too
    with np.errstate(over="ignore", invalid="ignore"):  # inf and nan inputs are fixed up below
        k = np.rint(x * _INV_LN2)
        hi = x - k * _LN2_HI
        lo = k * _LN2_LO
        r = hi - lo
        t = r * r
        p1, p2, p3, p4, p5 = _EXP_P
        c = t * p5
        c += p4
        c *= t
        c += p3
        c *= t
        c += p2
        c *= t
        c += p1
        c *= t
        np.subtract(r, c, out=c)  # c = r - t * (p1 + t * (p2 + ...)), evaluated in that order
        y = r * c
        y /= 2.0 - c
        np.subtract(lo, y, out=y)
        y -= hi
        np.subtract(1.0, y, out=y)
        if in_range:
            return np.ldexp(y, k.astype(np.int32), out=y)
        out = np.ldexp(y, np.clip(np.nan_to_num(k), -2000, 2000).astype(np.int32))
    out[x > _EXP_MAX] = np.inf
    out[x < _EXP_MIN] = 0.0
    nan = np.isnan(x)
    if nan.any():
        out[nan] = np.nan
    return out


def _log_block(x: np.ndarray) -> np.ndarray:
    m, e = np.frexp(x)  # x = m * 2**e, 0.5 <= m < 1
    low = m < 0.7071067811865476  # keep 1 + f within [sqrt(2)/2, sqrt(2))
    np.multiply(m, 2.0, out=m, where=low)
    k = e.astype(float)
    k -= low
    f = m
    f -= 1.0  # exact (Sterbenz)
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    g1, g2, g3, g4, g5, g6, g7 = _LOG_LG
    t1 = w * g6
    t1 += g4
    t1 *= w
    t1 += g2
    t1 *= w  # w * (g2 + w * (g4 + w * g6))
    t2 = w * g7
    t2 += g5
    t2 *= w
    t2 += g3
    t2 *= w
    t2 += g1
    t2 *= z  # z * (g1 + w * (g3 + w * (g5 + w * g7)))
    t2 += t1  # R
    hfsq = 0.5 * f
    hfsq *= f
    t2 += hfsq
    t2 *= s  # s * (hfsq + R)
    t1 = k * _LN2_LO
    t2 += t1
    np.subtract(hfsq, t2, out=t2)
    t2 -= f
    k *= _LN2_HI
    k -= t2  # k * ln2_hi - ((hfsq - (s * (hfsq + R) + k * ln2_lo)) - f)
    return k


def normals(noise: RowStreams, draw: int, rows: np.ndarray | None = None) -> np.ndarray:
    """Standard normals by inversion of the keyed uniforms."""
    u = noise.uniforms(draw, rows)
    return ndtri(u, out=u)


def exponential(noise: RowStreams, draw: int, rows: np.ndarray | None = None) -> np.ndarray:
    """Standard exponentials ``-log(u)`` of the keyed uniforms."""
    u = log(noise.uniforms(draw, rows))
    np.negative(u, out=u)
    return u


def stage(noise: RowStreams, name: str) -> RowStreams:
    """The same rows on an independent sub-stream, for one stage of a two-stage sampler."""
    return RowStreams(noise.keys, stream_key(noise.stream, "stage", name))


# ------------------------------------------------------------- log-probabilities


def _stirlerr(n: np.ndarray) -> np.ndarray:
    """``lgamma(n + 1) - (n + 0.5) * log(n) + n - log(sqrt(2 pi))`` for n >= 1, without cancellation."""
    n = np.asarray(n, dtype=float)
    out = np.empty_like(n)
    big = n >= 15.0
    nb = n[big]
    nn = nb * nb
    out[big] = (1.0 / 12 - (1.0 / 360 - (1.0 / 1260 - (1.0 / 1680 - 1.0 / (1188 * nn)) / nn) / nn) / nn) / nb
    ns = n[~big]
    out[~big] = gammaln(ns + 1.0) - (ns + 0.5) * np.log(ns) + ns - _HALF_LOG_2PI
    return out


def _bd0(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Loader's deviance term ``x * log(x / m) + m - x`` (x > 0, m > 0), accurate when x is near m."""
    x = np.asarray(x, dtype=float)
    m = np.asarray(m, dtype=float)
    out = np.empty(np.broadcast(x, m).shape)
    x, m = np.broadcast_to(x, out.shape), np.broadcast_to(m, out.shape)
    d = x - m
    near = np.abs(d) < 0.1 * (x + m)
    xs, ds = x[near], d[near]
    v = ds / (x[near] + m[near])
    total = ds * v
    term = 2.0 * xs * v
    v2 = v * v
    # terms shrink by v**2 < 0.01 each: stop once the largest is below double precision
    largest = float(v2.max()) if v2.shape[0] else 0.0
    for j in range(1, 16):
        if largest**j < 1e-17:
            break
        term *= v2
        total += term / (2 * j + 1)
    out[near] = total
    far = ~near
    xf, mf = x[far], m[far]
    out[far] = xf * np.log(xf / mf) + mf - xf
    return out


def _log_poisson_pmf(k: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """log P(K = k) for K ~ Poisson(lam), k >= 1, lam > 0."""
    return -_stirlerr(k) - _bd0(k, lam) - 0.5 * np.log(2.0 * math.pi * k)


def _log_binomial_pmf(k: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """log P(K = k) for K ~ Binomial(n, p), 0 <= k <= n, 0 < p <= 1/2 (Loader's form)."""
    q = 1.0 - p
    out = np.empty(k.shape)
    zero, full = k == 0, k == n
    out[zero] = n[zero] * np.log1p(-p[zero])
    out[full] = n[full] * np.log(p[full])
    mid = ~(zero | full)
    km, nm, pm, qm = k[mid], n[mid], p[mid], q[mid]
    lc = _stirlerr(nm) - _stirlerr(km) - _stirlerr(nm - km) - _bd0(km, nm * pm) - _bd0(nm - km, nm * qm)
    out[mid] = lc - 0.5 * (math.log(2.0 * math.pi) + np.log(km) + np.log1p(-km / nm))
    return out


#: Below this mean / number of trials the log-probabilities are summed directly from
#: lgamma (their terms stay below 2e7, so the sum is good to 4e-9, far inside the
#: acceptance tests' resolution); above it, Loader's form avoids the cancellation.
_DIRECT_LIMIT = 2.0**20


def _log_poisson_ratio(k: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """log P(K = k) for K ~ Poisson(lam), k >= 0 (the PTRS acceptance bound)."""
    far = (lam >= _DIRECT_LIMIT) & (k >= 1)
    if not far.any():
        return k * np.log(lam) - lam - gammaln(k + 1.0)
    out = np.empty(k.shape)
    near = ~far
    kn, ln = k[near], lam[near]
    out[near] = kn * np.log(ln) - ln - gammaln(kn + 1.0)
    out[far] = _log_poisson_pmf(k[far], lam[far])
    return out


def _log_binomial_ratio(k: np.ndarray, mode: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """log P(K = k) - log P(K = mode) for K ~ Binomial(n, p), p <= 1/2 (the BTRS acceptance bound)."""

    def direct(k, mode, n, p):
        return (gammaln(mode + 1.0) + gammaln(n - mode + 1.0) - gammaln(k + 1.0) - gammaln(n - k + 1.0)
                + (k - mode) * np.log(p / (1.0 - p)))

    far = n >= _DIRECT_LIMIT
    if not far.any():
        return direct(k, mode, n, p)
    out = np.empty(k.shape)
    near = ~far
    out[near] = direct(k[near], mode[near], n[near], p[near])
    kf, mf, nf, pf = k[far], mode[far], n[far], p[far]
    out[far] = _log_binomial_pmf(kf, nf, pf) - _log_binomial_pmf(mf, nf, pf)
    return out


# ------------------------------------------------------------------ blocks of rows


class _BlockRows(RowStreams):
    """A block of a RowStreams' rows (a view of its keys) sharing one cache of draw-stream keys."""

    __slots__ = ("_streams",)

    def __init__(self, keys: np.ndarray, stream: int, streams: dict[int, int]) -> None:
        super().__init__(keys, stream)
        self._streams = streams

    def draw_stream(self, draw: int) -> int:
        key = self._streams.get(draw)
        if key is None:
            key = self._streams[draw] = RowStreams.draw_stream(self, draw)
        return key


def _by_block(kernel, noise: RowStreams, dtype, *columns: np.ndarray) -> np.ndarray:
    """Run ``kernel(block_noise, *block_columns)`` on cache-sized blocks of rows.

    Rows are independent, so blocking changes no number; it keeps a sampler's dozen
    temporaries in cache instead of streaming each through memory.
    """
    n = noise.keys.shape[0]
    out = np.empty(n, dtype=dtype)
    streams: dict[int, int] = {}
    for start in range(0, n, _ROW_BLOCK):
        stop = min(start + _ROW_BLOCK, n)
        block = _BlockRows(noise.keys[start:stop], noise.stream, streams)
        out[start:stop] = kernel(block, *(c[start:stop] for c in columns))
    return out


def _rejection(rows: np.ndarray, attempt) -> np.ndarray:
    """Run ``attempt(pending, j) -> (accepted mask, values)`` until every row is accepted.

    ``pending`` are positions into ``rows`` (the noise rows being sampled); attempt ``j``
    reads draw indices ``2j`` and ``2j + 1`` only. Returns the values aligned with ``rows``.
    """
    out = np.empty(rows.shape[0])
    pending = np.arange(rows.shape[0])
    for j in range(_MAX_ATTEMPTS):
        if pending.shape[0] == 0:
            return out
        accepted, values = attempt(pending, j)
        out[pending[accepted]] = values[accepted]
        pending = pending[~accepted]
    raise RuntimeError(f"{pending.shape[0]} rows still rejected after {_MAX_ATTEMPTS} attempts")  # pragma: no cover


def _take(values: np.ndarray, pending: np.ndarray, j: int) -> np.ndarray:
    """``values[pending]``, skipping the copy at the first attempt (where pending is everything)."""
    return values if j == 0 else values[pending]


# -------------------------------------------------------------------------- Poisson


def _cdf_search(u: np.ndarray, pmf: np.ndarray, ratio) -> np.ndarray:
    """Smallest k with CDF(k) >= u, summing the pmf upwards from pmf(0).

    ``ratio(step, rows)`` gives pmf(step) / pmf(step - 1) for the rows at positions
    ``rows`` (None: all). A row stops at the last step that still grew its running
    sum: past it the pmf is lost to rounding (or is 0, past the trials of a binomial),
    and an exact search could only add steps of probability below 1e-16.

    While most rows are still searching, every row takes the step (k counts the steps
    taken); then only the rows left, compressed as they finish.
    """
    cdf = pmf.copy()
    grown = np.empty_like(cdf)
    k = np.zeros(u.shape[0], dtype=np.int64)
    step = 0
    searching = u > cdf
    while 4 * np.count_nonzero(searching) > u.shape[0]:
        step += 1
        pmf *= ratio(step, None)
        np.add(cdf, pmf, out=grown)
        searching &= grown > cdf
        k += searching
        cdf, grown = grown, cdf
        searching &= u > cdf
    idx = np.flatnonzero(searching)
    u, pmf, cdf = u[idx], pmf[idx], cdf[idx]
    while idx.shape[0]:
        step += 1
        pmf *= ratio(step, idx)
        grown = cdf + pmf
        grew = grown > cdf
        more = grew & (u > grown)
        k[idx[grew]] = step
        idx, u, pmf, cdf = idx[more], u[more], pmf[more], grown[more]
    return k


def _poisson_search(lam: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inversion of the Poisson CDF at u (lam < 10): pmf(s) = pmf(s - 1) * lam / s."""

    def ratio(step: int, rows: np.ndarray | None) -> np.ndarray:
        return (lam if rows is None else lam[rows]) / step

    return _cdf_search(u, np.exp(-lam), ratio)


def _attempt_uniforms(noise: RowStreams, j: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Attempt ``j`` of a transformed rejection (PTRS, BTRS): ``u - 1/2`` from draw ``2j``,
    ``v`` from draw ``2j + 1`` and ``us = 1/2 - |u - 1/2|``, at noise positions ``rows``."""
    u = noise.uniforms(2 * j, rows)
    u -= 0.5
    v = noise.uniforms(2 * j + 1, rows)
    return u, v, 0.5 - np.abs(u)


def _ptrs(lam: np.ndarray, rows: np.ndarray, noise: RowStreams) -> np.ndarray:
    """PTRS draws for ``lam`` >= 10 at noise positions ``rows``."""
    slam = np.sqrt(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    inv_alpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2.0)

    def attempt(pending: np.ndarray, j: int):
        lp, ap, bp = _take(lam, pending, j), _take(a, pending, j), _take(b, pending, j)
        u, v, us = _attempt_uniforms(noise, j, _take(rows, pending, j))
        k = np.floor((2.0 * ap / us + bp) * u + lp + 0.43)
        accepted = (us >= 0.07) & (v <= _take(vr, pending, j))
        check = ~accepted & (k >= 0) & ~((us < 0.013) & (v > us))
        if check.any():
            kc, lc, usc = k[check], lp[check], us[check]
            lhs = np.log(v[check] * _take(inv_alpha, pending, j)[check] / (ap[check] / (usc * usc) + bp[check]))
            rhs = _log_poisson_ratio(kc, lc)
            accepted[check] = lhs <= rhs
        return accepted, k

    return _rejection(rows, attempt)


def _poisson_block(noise: RowStreams, lam: np.ndarray) -> np.ndarray:
    out = np.zeros(lam.shape[0], dtype=np.int64)
    small = np.flatnonzero(lam < _SEARCH_LIMIT)
    if small.shape[0] == lam.shape[0]:
        return _poisson_search(lam, noise.uniforms(0))
    if small.shape[0]:
        out[small] = _poisson_search(lam[small], noise.uniforms(0, small))
    large = np.flatnonzero(lam >= _SEARCH_LIMIT)
    out[large] = _ptrs(lam[large], large, noise).astype(np.int64)
    return out


def poisson(lam: np.ndarray, noise: RowStreams) -> np.ndarray:
    """Poisson counts (int64), one per row of ``noise``; ``lam`` finite, >= 0.

    Means below 10 use draw 0 (inversion); the others PTRS attempts ``j`` on draws
    ``2j`` and ``2j + 1``.
    """
    return _by_block(_poisson_block, noise, np.int64, np.asarray(lam, dtype=float))


# ------------------------------------------------------------------------- binomial


def _binomial_search(n: np.ndarray, p: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inversion of the binomial CDF at u (n * p < 10, p <= 1/2): pmf(s) = pmf(s - 1) * (n - s + 1) / s * p / q."""
    odds = p / (1.0 - p)

    def ratio(step: int, rows: np.ndarray | None) -> np.ndarray:
        nr, odr = (n, odds) if rows is None else (n[rows], odds[rows])
        return (nr - (step - 1)) / step * odr  # 0 past the last trial: the sum stops growing

    return _cdf_search(u, np.exp(n * np.log1p(-p)), ratio)


def _btrs(n: np.ndarray, p: np.ndarray, rows: np.ndarray, noise: RowStreams) -> np.ndarray:
    """BTRS draws for n * p >= 10, p <= 1/2, at noise positions ``rows``."""
    q = 1.0 - p
    spq = np.sqrt(n * p * q)
    b = 1.15 + 2.53 * spq
    a = -0.0873 + 0.0248 * b + 0.01 * p
    c = n * p + 0.5
    alpha = (2.83 + 5.1 / b) * spq
    vr = 0.92 - 4.2 / b
    mode = np.floor((n + 1.0) * p)

    def attempt(pending: np.ndarray, j: int):
        ap, bp, np_ = _take(a, pending, j), _take(b, pending, j), _take(n, pending, j)
        u, v, us = _attempt_uniforms(noise, j, _take(rows, pending, j))
        k = np.floor((2.0 * ap / us + bp) * u + _take(c, pending, j))
        inside = (k >= 0) & (k <= np_)
        accepted = inside & (us >= 0.07) & (v <= _take(vr, pending, j))
        check = inside & ~accepted
        if check.any():
            sel = pending[check]
            usc = us[check]
            lhs = np.log(v[check] * alpha[sel] / (ap[check] / (usc * usc) + bp[check]))
            kc, nc, pc, mc = k[check], n[sel], p[sel], mode[sel]
            rhs = _log_binomial_ratio(kc, mc, nc, pc)
            accepted[check] = lhs <= rhs
        return accepted, k

    return _rejection(rows, attempt)


def _binomial_block(noise: RowStreams, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    out = np.zeros(p.shape[0], dtype=np.int64)
    one = np.flatnonzero(n == 1)
    if one.shape[0]:
        out[one] = noise.uniforms(0, one) < p[one]
    flip = p > 0.5
    p_low = np.where(flip, 1.0 - p, p)
    nf = n.astype(float)
    mean = nf * p_low
    several = (n > 1) & (p_low > 0.0)
    small = np.flatnonzero(several & (mean < _SEARCH_LIMIT))
    if small.shape[0]:
        out[small] = _binomial_search(nf[small], p_low[small], noise.uniforms(0, small))
    large = np.flatnonzero(several & (mean >= _SEARCH_LIMIT))
    if large.shape[0]:
        out[large] = _btrs(nf[large], p_low[large], large, noise).astype(np.int64)
    several_flip = np.flatnonzero((n > 1) & flip)
    out[several_flip] = n[several_flip] - out[several_flip]
    return out


def binomial(n: np.ndarray, p: np.ndarray, noise: RowStreams) -> np.ndarray:
    """Binomial counts (int64); ``n`` int64 >= 0 (at most 2**53), ``p`` in [0, 1].

    One trial: draw 0, ``u < p``. Otherwise rows with ``p > 1/2`` draw their failures
    with ``1 - p``; inversion on draw 0 when ``n * p < 10``, else BTRS attempts ``j``
    on draws ``2j`` and ``2j + 1``.
    """
    n = np.ascontiguousarray(np.asarray(n, dtype=np.int64))
    return _by_block(_binomial_block, noise, np.int64, n, np.asarray(p, dtype=float))


def bernoulli(p: np.ndarray, noise: RowStreams) -> np.ndarray:
    """0/1 (int64) with ``P(1) = p``: draw 0, ``u < p``."""
    return (noise.uniforms(0) < p).astype(np.int64)


# ---------------------------------------------------------------------------- gamma


def _marsaglia_tsang_block(noise: RowStreams, d: float, c: float) -> np.ndarray:
    def attempt(pending: np.ndarray, j: int):
        noise_rows = None if j == 0 else pending
        x = normals(noise, 2 * j, noise_rows)
        v = 1.0 + c * x
        positive = v > 0.0
        v = v * v * v
        u = noise.uniforms(2 * j + 1, noise_rows)
        x2 = x * x
        accepted = positive & (u < 1.0 - 0.0331 * x2 * x2)
        check = positive & ~accepted
        if check.any():
            vc = v[check]
            accepted[check] = np.log(u[check]) < 0.5 * x2[check] + d * (1.0 - vc + np.log(vc))
        v *= d
        return accepted, v

    return _rejection(np.arange(noise.keys.shape[0]), attempt)


def gamma(shape: float, scale: np.ndarray, noise: RowStreams) -> np.ndarray:
    """Gamma(shape, scale) draws; ``shape`` > 0 a scalar, ``scale`` > 0 one per row.

    Marsaglia-Tsang attempts ``j`` on draws ``2j`` (normal) and ``2j + 1`` (uniform);
    shape < 1 draws shape + 1 and multiplies by ``U**(1/shape)``, U from sub-stream "boost".
    """
    scale = np.asarray(scale, dtype=float)
    boost = shape < 1.0
    a = shape + 1.0 if boost else shape
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    out = _by_block(lambda block: _marsaglia_tsang_block(block, d, c), noise, np.float64)
    if boost:
        # in logs, so that U**(1/shape) for a tiny shape underflows to 0 cleanly
        log_u = log(stage(noise, "boost").uniforms(0))
        log_u /= shape
        out *= exp(log_u)
    out *= scale
    return out


# ---------------------------------------------------------------- inverse Gaussian


def inverse_gaussian(mu: np.ndarray, lam: float, noise: RowStreams) -> np.ndarray:
    """Inverse Gaussian (Wald) draws with mean ``mu`` and shape ``lam``: normal draw 0, uniform draw 1.

    Michael-Schucany-Haas: the smaller root ``x = mu / (1 + r/2 + sqrt(r + r**2/4))``
    with ``r = mu * z**2 / lam`` (the textbook form subtracts two nearly equal numbers),
    kept with probability ``mu / (mu + x)``, else the larger root ``mu**2 / x``.
    """
    mu = np.asarray(mu, dtype=float)
    z = normals(noise, 0)
    r = z * z
    r *= mu
    with np.errstate(over="ignore"):  # r = inf: the small root is 0, kept with probability 1
        r /= lam
    root = np.sqrt(r) * np.sqrt(1.0 + 0.25 * r)  # sqrt(r + r**2/4) without overflowing r**2
    denom = 1.0 + 0.5 * r + root
    small = mu / denom
    keep = noise.uniforms(1) * (mu + small) <= mu
    return np.where(keep, small, mu * denom)
