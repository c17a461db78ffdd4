"""Exact denominator degrees of freedom of linear mixed models: Satterthwaite and Kenward-Roger.

:class:`DdfCalculator` is built once per design (fixed-effects matrix and random-effects
blocks) and then, for a fitted replicate (response, theta, sigma and, for Kenward-Roger,
beta), returns the Wald F statistic of a contrast matrix with its numerator and
denominator degrees of freedom:

* :meth:`DdfCalculator.satterthwaite` follows lmerTest (Kuznetsova, Brockhoff & Christensen
  2017): the variance parameters are ``(theta, sigma)``, their covariance is twice the
  pseudo-inverse of the Hessian of the profiled (REML or ML) deviance ``-2 log L`` and the
  Jacobian of ``vcov(beta)`` is taken with respect to them.  lmerTest differentiates
  numerically; here the Hessian and the Jacobian are closed-form.
* :meth:`DdfCalculator.kenward_roger` follows pbkrtest (Halekoh & Hojsgaard 2014): the
  covariance parameters are the entries of each term's covariance matrix and the residual
  variance, with REML expected information; it returns the scaled F of ``KRmodcomp``.

Everything is computed in the space of the ``q`` random effects: the cross-products
``[Z X]'[Z X]`` are formed once per design and a call adds only ``[Z X]'y`` and ``y'y``,
so its cost does not grow with the number of rows beyond that.

Cost: flat in the number of rows, but dense in the number of random effects ``q``: O(q^3)
time and O(q^2) memory per replicate (1 ms at q = 80, ~0.1 s at q = 620).  Designs with
thousands of levels would need the block-diagonal first term kept structured (the matrix
``Z'V^-1 Z`` is then block-diagonal plus low rank); that is not done here.

Many replicates of one design (``*_many`` methods: :meth:`DdfCalculator.satterthwaite_many`,
:meth:`DdfCalculator.satterthwaite_dfs_many`, :meth:`DdfCalculator.kenward_roger_many`,
:meth:`DdfCalculator.kenward_roger_vcov_many`) run the same algebra on stacked arrays, with
the factor of ``Lambda'Z'Z Lambda + I`` blocked as in MixedModels.jl (the terms on the factor
with the most levels first, block diagonal; the rest one dense Schur complement), in chunks that
stay in cache.

Notation: ``V = I + Z Lambda Lambda' Z'`` is the marginal covariance relative to
``sigma^2``, ``A = X'V^-1 X``, ``P = V^-1 - V^-1 X A^-1 X'V^-1`` and, for a random
effects block ``t`` with ``k`` coefficients and ``G`` levels, a ``k x k`` matrix ``S``
acts on the block's coefficients as ``I_G (x) S``.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> g = np.repeat(np.arange(10), 6)
>>> X = np.column_stack([np.ones(60), rng.normal(size=60)])
>>> y = X @ [1.0, 0.5] + rng.normal(size=10)[g] + rng.normal(size=60)
>>> calc = DdfCalculator(X, [(np.ones((60, 1)), g, 10)])
>>> F, ndf, ddf = calc.satterthwaite(y, theta=[0.9], sigma=1.0, reml=True, L=[0.0, 1.0])
>>> ndf, bool(ddf > 0), bool(F > 0)
(1, True, True)
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from ...errors import ParameterError
from .lmm_pls import lower_inverses
from .scratch import Scratch

__all__ = ["DdfCalculator"]

# lmerTest keeps the Hessian's eigenvalues above this (absolute) tolerance when inverting it
_HESSIAN_TOL = 1e-8
# lmerTest (contestMD) drops eigen-directions of L C L' below sqrt(machine eps) x the largest
_CONTRAST_EPS = float(np.sqrt(np.finfo(float).eps))
# pbkrtest inverts the expected information only when its smallest |eigenvalue| exceeds this
_KR_CONDITION = 1e-10
# entries of the stacked (K, q + p + 1, q + p + 1) system of one batched pass (1.6 MB: 29 replicates of the
# standard model, 9 at 60 subjects). With the temporaries in scratch memory (no page faults), a df per
# replicate at 20 / 30 / 40 subjects took 0.18 / 0.26 / 0.35 ms in passes of 50,000 entries and 0.13 / 0.19 /
# 0.27 ms in passes of 200,000 (the same at 60 subjects); 300,000 was slower again (out of cache)
_BATCH_ENTRIES = 200_000
_MIN_BATCH = 8  # fewer replicates a pass cost more in Python than they save in cache
_SCRATCH = Scratch()  # the batched passes' large temporaries (see :mod:`.scratch`)


@functools.lru_cache(maxsize=1)
def _blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries (numpy's and scipy's), or None without it."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # optional: without it calls run with the process's BLAS threads
        return None
    return ThreadpoolController()


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """Run the block with one BLAS thread.

    The matrices here are q x q with q in the tens to hundreds: BLAS threads cannot speed
    them up, and on a busy machine their synchronisation made a call 30-100x slower
    (measured: Satterthwaite 40 ms instead of 1 ms with 2 OpenBLAS threads on a loaded 2-core
    machine).  Parallelism belongs to the replicates.  The limit costs ~40 us and is lifted on exit.
    """
    controller = _blas_controller()
    if controller is None:
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield


@dataclass(frozen=True)
class _Block:
    """One random-effects term: its columns ``offset .. offset + levels * k`` of Z."""

    k: int
    levels: int
    offset: int
    theta_start: int

    @property
    def rows(self) -> slice:
        return slice(self.offset, self.offset + self.levels * self.k)

    @property
    def ntheta(self) -> int:
        return self.k * (self.k + 1) // 2


@dataclass
class _Fit:
    """Per-replicate quantities shared by the t, F and Kenward-Roger computations (relative scale)."""

    lams: list[np.ndarray]  # Lambda_t (k x k lower triangular) per block
    chol: np.ndarray  # lower Cholesky factor of Lambda'Z'Z Lambda + I
    solved: np.ndarray  # chol^-1 Lambda' [Z X y]'[Z X y] (Z rows), so gram = [Z X y]'[Z X y] - solved'solved
    gram: np.ndarray  # [Z X y]' V^-1 [Z X y]
    a_inv: np.ndarray  # (X'V^-1X)^-1
    beta: np.ndarray  # GLS estimate given theta
    sigma: float
    parts: dict = field(default_factory=dict)  # Satterthwaite (cov, jac) per reml flag


@dataclass
class _BatchLayout:
    """Z's columns reordered for the batched path: the block-diagonal factor first, then the other terms.

    The diagonal group is every term on the grouping factor with the most levels (``(1 | g) +
    (0 + x | g)`` from ``||`` are two terms on one factor), interleaved level by level, so that
    its block of ``Lambda'Z'Z Lambda + I`` is block diagonal with one ``k_total``-square block
    per level; the other terms follow, each contiguous.
    """

    blocks: list[_Block]  # the calculator's blocks (same order); offsets in the new order for the other terms
    group: list[int]  # the terms of the diagonal group
    width: int  # its columns: levels x k_total
    sel: list  # per term, its columns in the new order: a slice, or an index array (interleaved group)
    cross: np.ndarray  # [Z X]'[Z X] in the new order
    # [Z X]' with Z's rows in the new order, by columns: one product reads the responses once, and sums each
    # output in the same row order whatever the number of responses (dense BLAS products may not)
    zx_t: sp.csc_matrix
    diag: list[np.ndarray]  # per term, (levels, k) column indices of each level
    rest: list[int]  # the terms not in the group
    first_diag: np.ndarray  # the group's (levels, k_total, k_total) diagonal blocks of cross
    first_other: np.ndarray  # the group's rows of cross beyond its own columns, (levels, k_total, q + p - width)


class _BlockedFactor:
    """Lower Cholesky factor of K stacked ``Lambda'Z'Z Lambda + I`` (q x q), blocked as in MixedModels.jl.

    The first ``levels * k`` columns (the diagonal group, level-major) form a block-diagonal block, factored
    level by level; the rest is one dense Schur complement. Only inverses of the small diagonal
    factors and of the Schur complement's factor are formed, so a forward solve is matrix products.

    Parameters: ``c11`` (K, levels, k, k) the diagonal blocks, ``c21`` (K, r, levels * k) and
    ``c22`` (K, r, r) the rest's rows (r = q - levels * k, possibly 0).
    """

    def __init__(self, c11: np.ndarray, c21: np.ndarray, c22: np.ndarray) -> None:
        K, self.levels, self.k = c11.shape[:3]
        self.width = self.levels * self.k
        self.l11_inv = _small_cholesky_inverse(c11)
        r = c22.shape[1]
        if r == 0:
            self.l21 = self.l21_levels = self.l22_inv = None
            return
        c21 = c21.reshape(K, r, self.levels, self.k).transpose(0, 2, 1, 3)
        self.l21_levels = c21 @ self.l11_inv.transpose(0, 1, 3, 2)  # (K, levels, r, k)
        self.l21 = self.l21_levels.transpose(0, 2, 1, 3).reshape(K, r, self.width)
        schur = c22 - self.l21 @ self.l21.transpose(0, 2, 1)
        self.l22_inv = lower_inverses(np.linalg.cholesky(schur))

    def forward(self, rhs: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``L^-1 rhs`` for rhs (K, q, c), into ``out`` when given."""
        K, c = rhs.shape[0], rhs.shape[2]
        out = np.empty((K, rhs.shape[1], c)) if out is None else out
        f1 = out[:, : self.width]
        np.matmul(self.l11_inv, rhs[:, : self.width].reshape(K, self.levels, self.k, c),
                  out=f1.reshape(K, self.levels, self.k, c))
        if self.l21 is not None:
            np.matmul(self.l22_inv, rhs[:, self.width:] - self.l21 @ f1, out=out[:, self.width:])
        return out

    def forward_blocked(self, diag: np.ndarray, top: np.ndarray, rest: np.ndarray) -> _Solved:
        """``L^-1 rhs`` for a rhs (K, q, width + m) whose first ``width`` rows are block diagonal in its first
        ``width`` columns, given by its parts: ``diag`` (K, levels, k, k) those blocks, ``top``
        (K, levels, k, m) the first rows' other columns and ``rest`` (K, r, width + m) the other rows
        (overwritten). The solution has the same pattern; its zeros are never formed (at 30 subjects
        x 20 items, half the products and half the memory of a dense forward solve).
        """
        diag, top = self.l11_inv @ diag, self.l11_inv @ top
        if self.l21 is not None:
            K, r = rest.shape[:2]
            rest[:, :, : self.width] -= (self.l21_levels @ diag).transpose(0, 2, 1, 3).reshape(K, r, self.width)
            rest[:, :, self.width:] -= self.l21 @ top.reshape(K, self.width, -1)
            rest = self.l22_inv @ rest
        return _Solved(diag, top, rest)

    def gram(self, solved: _Solved, out: np.ndarray | None = None) -> np.ndarray:
        """``F'F`` (K, width + m, width + m) for ``F = forward_blocked(...)``, into ``out`` when given."""
        K = solved.diag.shape[0]
        width = self.width
        top = solved.top.reshape(K, width, -1)
        out = np.matmul(solved.rest.transpose(0, 2, 1), solved.rest, out=out)
        _diagonal_blocks(out[:, :width, :width], self.k)[...] += solved.diag.transpose(0, 1, 3, 2) @ solved.diag
        across = (solved.diag.transpose(0, 1, 3, 2) @ solved.top).reshape(K, width, -1)
        out[:, :width, width:] += across
        out[:, width:, :width] += across.transpose(0, 2, 1)
        out[:, width:, width:] += top.transpose(0, 2, 1) @ top
        return out


@dataclass
class _Solved:
    """``L^-1 rhs`` of :meth:`_BlockedFactor.forward_blocked` by parts: the first rows' diagonal blocks
    (K, levels, k, k) and other columns (K, levels, k, m), the other rows (K, r, width + m)."""

    diag: np.ndarray
    top: np.ndarray
    rest: np.ndarray

    def dense(self) -> np.ndarray:
        """The whole (K, width + r, width + m) array, zeros included."""
        K, levels, k, m = self.top.shape
        width = levels * k
        out = np.zeros((K, width + self.rest.shape[1], width + m))
        _diagonal_blocks(out[:, :width, :width], k)[...] = self.diag
        out[:, :width, width:] = self.top.reshape(K, width, m)
        out[:, width:] = self.rest
        return out


def _diagonal_blocks(a: np.ndarray, k: int) -> np.ndarray:
    """A writable (K, n / k, k, k) view of the k x k diagonal blocks of each (n, n) matrix of ``a`` (K, n, n).

    Examples
    --------
    >>> a = np.arange(16.0).reshape(1, 4, 4)
    >>> _diagonal_blocks(a, 2)[0, 1].tolist()
    [[10.0, 11.0], [14.0, 15.0]]
    """
    K, n = a.shape[:2]
    rows, cols = a.strides[1:]
    return np.lib.stride_tricks.as_strided(a, shape=(K, n // k, k, k),
                                           strides=(a.strides[0], k * (rows + cols), rows, cols))


def _small_cholesky_inverse(c: np.ndarray) -> np.ndarray:
    """Inverse of the lower Cholesky factor of each k x k matrix of ``c`` (..., k, k), k small.

    Written out over the k columns on the stacked arrays: thousands of 2 x 2 blocks cost a few
    array operations instead of one LAPACK call each.

    Examples
    --------
    >>> c = np.array([[[4.0, 2.0], [2.0, 5.0]]])
    >>> bool(np.allclose(_small_cholesky_inverse(c)[0], np.linalg.inv(np.linalg.cholesky(c[0]))))
    True
    """
    k = c.shape[-1]
    if k > 4:  # larger terms are rare; the stacked LAPACK calls are then worth their overhead
        return np.linalg.inv(np.linalg.cholesky(c))
    low = np.zeros_like(c)
    for j in range(k):
        d = c[..., j, j] - np.sum(low[..., j, :j] ** 2, axis=-1)
        low[..., j, j] = np.sqrt(d)
        for i in range(j + 1, k):
            low[..., i, j] = (c[..., i, j] - np.sum(low[..., i, :j] * low[..., j, :j], axis=-1)) / low[..., j, j]
    inv = np.zeros_like(c)
    for j in range(k):  # forward substitution, column j of the inverse
        inv[..., j, j] = 1.0 / low[..., j, j]
        for i in range(j + 1, k):
            inv[..., i, j] = -np.sum(low[..., i, j:i] * inv[..., j:i, j], axis=-1) / low[..., i, i]
    return inv


@dataclass
class _BatchFit:
    """``_Fit`` for K replicates, stacked on the first axis (batch layout)."""

    lams: list[np.ndarray]  # per block (K, k, k)
    factor: _BlockedFactor
    parts: _Solved  # chol^-1 Lambda' [Z X y]'[Z X y] (Z rows), by parts
    gram: np.ndarray  # (K, q + p + 1, q + p + 1)
    a_inv: np.ndarray  # (K, p, p)
    beta: np.ndarray  # (K, p)
    sigma: np.ndarray  # (K,)


def _batch_level_gram(rows: np.ndarray, block: _Block) -> np.ndarray:
    """``_level_gram`` for K replicates: rows (K, G * k, c) -> (K, k * k, c * c)."""
    K, c = rows.shape[0], rows.shape[2]
    flat = rows.reshape(K, block.levels, block.k * c)
    gram = (flat.transpose(0, 2, 1) @ flat).reshape(K, block.k, c, block.k, c).transpose(0, 1, 3, 2, 4)
    return gram.reshape(K, block.k * block.k, c * c)


def _lower_pairs(k: int) -> list[tuple[int, int]]:
    """Lower-triangle positions (row, col) in column-major order, lme4's theta order."""
    return [(r, c) for c in range(k) for r in range(c, k)]


def _kron_apply(S: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """``(I_G (x) S) @ rows`` for ``rows`` of shape ``(G * k, c)``."""
    c = rows.shape[1]
    return (S @ rows.reshape(-1, k, c)).reshape(-1, c)


class DdfCalculator:
    """Satterthwaite and Kenward-Roger F tests of one linear mixed model design.

    Parameters
    ----------
    X : ndarray, shape (n, p)
        Fixed-effects model matrix (full column rank).
    blocks : sequence of (Zraw, codes, nlevels)
        One per random-effects term in lme4's order (after expanding ``||`` and ``/``):
        ``Zraw`` (n, k) the term's raw columns, ``codes`` (n,) integer levels in
        ``0 .. nlevels - 1``.  The term's effects of a level are ``N(0, sigma^2 L L')``
        with ``L`` lower triangular, filled column-major from the term's slice of theta.

    Notes
    -----
    The interface is used by the ``lmm`` engine: ``satterthwaite(y, theta, sigma, reml, L)``
    and ``kenward_roger(y, beta, theta, sigma, reml, L)`` both return ``(F, ndf, ddf)``;
    for one contrast row Satterthwaite's ``F`` is ``t^2``.  ``satterthwaite_dfs(y, theta,
    sigma, reml)`` gives every coefficient's t-test df in one call.  The last replicate's
    factorization (and Satterthwaite's Hessian and Jacobian) is cached, so further contrasts
    on the same ``(y, theta, sigma)`` cost little.  Kenward-Roger needs REML
    estimates (pbkrtest refits an ML model with REML): ``reml=False`` is refused.
    The cache makes an instance unsafe to share between threads: use one per thread
    (processes each build their own).  A single zero row gives ``(nan, 1, nan)`` (lmerTest's NaN t); several rows whose
    ``L C L'`` has rank 0 give ``(nan, 0, nan)`` (lmerTest's empty table).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(2)
    >>> s, i = np.repeat(np.arange(8), 10), np.tile(np.arange(10), 8)
    >>> x = rng.normal(size=80)
    >>> X = np.column_stack([np.ones(80), x])
    >>> y = 1 + 0.3 * x + rng.normal(size=8)[s] + 0.5 * rng.normal(size=10)[i] + rng.normal(size=80)
    >>> calc = DdfCalculator(X, [(np.ones((80, 1)), s, 8), (np.ones((80, 1)), i, 10)])
    >>> F, ndf, ddf = calc.kenward_roger(y, beta=[1.0, 0.3], theta=[1.0, 0.5], sigma=1.0,
    ...                                  reml=True, L=[[0.0, 1.0]])
    >>> ndf, bool(ddf > 1)
    (1, True)
    """

    def __init__(self, X: np.ndarray, blocks: Sequence[tuple[np.ndarray, np.ndarray, int]]) -> None:
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
            raise ParameterError(f"X must be a non-empty 2-D array (n rows, p columns), got shape {X.shape}",
                                 parameter="X")
        if not np.all(np.isfinite(X)):
            raise ParameterError("X has non-finite values; every entry must be finite", parameter="X")
        n, p = X.shape
        self.n, self.p = n, p
        z, specs = self._z_matrix(blocks, n)
        self.blocks: list[_Block] = specs
        self.q = z.shape[1]
        self.ntheta = sum(b.ntheta for b in specs)
        self._z_t = z.T.tocsr()
        self._x = X.copy()
        zx = sp.hstack([z, sp.csr_matrix(X)]).tocsr()
        self._cross = np.asarray((zx.T @ zx).todense())  # [Z X]'[Z X], fixed per design
        self._check_rank()
        # per block, flattened k x k matrices: pbkrtest's G basis and d^2(L L')/dtheta_i dtheta_j
        self._kr_basis = [self._covariance_basis(b.k).reshape(b.ntheta, -1) for b in specs]
        self._second = [self._theta_second_derivatives(b.k) for b in specs]
        self._last: tuple[tuple, _Fit] | None = None
        self._codes = [np.array(block[1]) for block in blocks]  # (copies) which terms share a grouping factor

    # ------------------------------------------------------------------ design
    @staticmethod
    def _z_matrix(blocks, n: int) -> tuple[sp.csc_matrix, list[_Block]]:
        """The random-effects model matrix Z (levels major, coefficients minor within a term)."""
        if len(blocks) == 0:
            raise ParameterError("blocks is empty; a mixed model needs at least one random-effects term",
                                 parameter="blocks")
        mats, specs, offset, theta_start = [], [], 0, 0
        for index, block in enumerate(blocks):
            try:
                zraw, codes, levels = block
            except (TypeError, ValueError):
                raise ParameterError(f"blocks[{index}] must be a (Zraw, codes, nlevels) triple",
                                     path=("blocks", index)) from None
            zraw = np.asarray(zraw, dtype=float)
            zraw = zraw[:, None] if zraw.ndim == 1 else zraw
            codes = np.asarray(codes)
            levels = int(levels)
            if zraw.ndim != 2 or zraw.shape[0] != n or zraw.shape[1] == 0:
                raise ParameterError(f"blocks[{index}] Zraw must have shape ({n}, k>=1), got {zraw.shape}",
                                     path=("blocks", index))
            if not np.all(np.isfinite(zraw)):
                raise ParameterError(f"blocks[{index}] Zraw has non-finite values", path=("blocks", index))
            if codes.shape != (n,) or not np.issubdtype(codes.dtype, np.integer):
                raise ParameterError(f"blocks[{index}] codes must be {n} integers", path=("blocks", index))
            if levels < 1 or codes.min() < 0 or codes.max() >= levels:
                raise ParameterError(f"blocks[{index}] codes must lie in 0..{levels - 1} (nlevels={levels})",
                                     path=("blocks", index))
            k = zraw.shape[1]
            cols = (codes[:, None] * k + np.arange(k)[None, :]).ravel()
            rows = np.repeat(np.arange(n), k)
            mats.append(sp.csc_matrix((zraw.ravel(), (rows, cols)), shape=(n, levels * k)))
            specs.append(_Block(k=k, levels=levels, offset=offset, theta_start=theta_start))
            offset += levels * k
            theta_start += k * (k + 1) // 2
        return sp.hstack(mats).tocsc(), specs

    def _check_rank(self) -> None:
        xx = self._cross[self.q:, self.q:]
        if np.linalg.matrix_rank(xx) < self.p:
            raise ParameterError("X is column rank deficient; drop aliased columns as lme4 does", parameter="X")

    @staticmethod
    def _covariance_basis(k: int) -> np.ndarray:
        """pbkrtest's G matrices of one term: E_ii, or E_ij + E_ji, per covariance entry."""
        pairs = _lower_pairs(k)
        basis = np.zeros((len(pairs), k, k))
        for m, (r, c) in enumerate(pairs):
            basis[m, r, c] = 1.0
            basis[m, c, r] = 1.0
        return basis

    @staticmethod
    def _theta_second_derivatives(k: int) -> np.ndarray:
        """d^2 (L L') / d theta_i d theta_j of one term, shape (ntheta, ntheta, k * k).

        L L' is quadratic in theta, so these are constant and the first derivatives are
        linear: d (L L') / d theta_i = sum_j theta_j * (this)[i, j].  The entry is
        E_ac + E_ca for theta_i = L[a, b], theta_j = L[c, d] in the same column (b == d).
        """
        pairs = _lower_pairs(k)
        out = np.zeros((len(pairs), len(pairs), k, k))
        for i, (a, b) in enumerate(pairs):
            for j, (c, d) in enumerate(pairs):
                if b == d:
                    out[i, j, a, c] += 1.0
                    out[i, j, c, a] += 1.0
        return out.reshape(len(pairs), len(pairs), k * k)

    # ------------------------------------------------------------------ inputs
    def _theta(self, theta) -> np.ndarray:
        theta = np.asarray(theta, dtype=float).ravel()
        if theta.shape != (self.ntheta,) or not np.all(np.isfinite(theta)):
            raise ParameterError(f"theta must be {self.ntheta} finite numbers (lme4's order), got {theta.shape[0]}",
                                 parameter="theta")
        return theta

    def _y(self, y) -> np.ndarray:
        y = np.asarray(y, dtype=float).ravel()
        if y.shape != (self.n,) or not np.all(np.isfinite(y)):
            raise ParameterError(f"y must be {self.n} finite numbers, got {y.shape[0]}", parameter="y")
        return y

    @staticmethod
    def _sigma(sigma) -> float:
        sigma = float(sigma)
        if not np.isfinite(sigma) or sigma <= 0:
            raise ParameterError(f"sigma must be a positive finite number, got {sigma}", parameter="sigma")
        return sigma

    def _contrast(self, L) -> np.ndarray:
        L = np.asarray(L, dtype=float)
        L = L[None, :] if L.ndim == 1 else L
        if L.ndim != 2 or L.shape[1] != self.p or L.shape[0] == 0 or not np.all(np.isfinite(L)):
            raise ParameterError(f"L must be finite with {self.p} columns (one per fixed effect) and >= 1 row, "
                                 f"got shape {np.shape(L)}", parameter="L")
        return L

    def _lambdas(self, theta: np.ndarray) -> list[np.ndarray]:
        lams = []
        for block in self.blocks:
            lam = np.zeros((block.k, block.k))
            rr, cc = zip(*_lower_pairs(block.k))
            lam[rr, cc] = theta[block.theta_start: block.theta_start + block.ntheta]
            lams.append(lam)
        return lams

    # ------------------------------------------------------------------ shared algebra
    def _lam_t(self, lams: list[np.ndarray], rows: np.ndarray) -> np.ndarray:
        """Lambda' @ rows for rows indexed like the columns of Z."""
        out = np.empty_like(rows)
        for block, lam in zip(self.blocks, lams):
            out[block.rows] = _kron_apply(lam.T, rows[block.rows], block.k)
        return out

    def _cached(self, y: np.ndarray, theta: np.ndarray, sigma: float) -> tuple[tuple, _Fit | None]:
        """The replicate's key (everything the tests depend on) and its cached fit, if it is the last one."""
        zxy = np.concatenate([self._z_t @ y, self._x.T @ y])
        key = (theta.tobytes(), sigma, zxy.tobytes(), float(y @ y))
        if self._last is not None and self._last[0] == key:
            return key, self._last[1]
        return key, None

    def _blas_scope(self, y: np.ndarray, theta: np.ndarray, sigma: float, reml: bool | None):
        """One BLAS thread unless the replicate's factorization (and Satterthwaite parts) are cached."""
        _, fit = self._cached(y, theta, sigma)
        if fit is not None and (reml is None or reml in fit.parts):
            return contextlib.nullcontext()
        return _one_blas_thread()

    def _fit(self, y: np.ndarray, theta: np.ndarray, sigma: float) -> _Fit:
        """Cholesky of the penalized system and [Z X y]'V^-1[Z X y] (cached for the last replicate)."""
        key, fit = self._cached(y, theta, sigma)
        if fit is not None:
            return fit
        zxy = np.frombuffer(key[2])
        q, p = self.q, self.p
        full = np.empty((q + p + 1, q + p + 1))
        full[: q + p, : q + p] = self._cross
        full[: q + p, -1] = full[-1, : q + p] = zxy
        full[-1, -1] = key[3]
        lams = self._lambdas(theta)
        lam_t_k = self._lam_t(lams, full[:q])
        c = self._lam_t(lams, np.ascontiguousarray(lam_t_k[:, :q].T))
        c[np.diag_indices(q)] += 1.0
        chol = sla.cholesky(c, lower=True, check_finite=False)
        f = sla.solve_triangular(chol, lam_t_k, lower=True, check_finite=False)
        gram = full - f.T @ f
        a = gram[q: q + p, q: q + p]
        a_inv = sla.cho_solve(sla.cho_factor(a, lower=True, check_finite=False), np.eye(p), check_finite=False)
        a_inv = (a_inv + a_inv.T) / 2
        beta = a_inv @ gram[q: q + p, -1]
        fit = _Fit(lams=lams, chol=chol, solved=f, gram=gram, a_inv=a_inv, beta=beta, sigma=sigma)
        self._last = (key, fit)
        return fit

    def _pair_traces(self, mat: np.ndarray, stacks: list[np.ndarray]) -> np.ndarray:
        """tr((I (x) S_i) mat (I (x) S_j) mat) for all S_i, S_j (``stacks``: per block (n_t, k * k)).

        With mat's (t, s) block viewed as X[g, b, h, c] (levels g, h; coefficients b, c), the
        trace is sum S_i[a, b] S_j[c, d] Y[a, b, c, d] with Y[a, b, c, d] = sum_gh X[g, b, h, c]
        X[g, a, h, d]: one (k_t k_s)^2 Gram matrix per pair of blocks, whatever the levels.
        """
        sizes = [st.shape[0] for st in stacks]
        starts = np.concatenate([[0], np.cumsum(sizes)])
        out = np.empty((starts[-1], starts[-1]))
        for t, bt in enumerate(self.blocks):
            for s in range(t, len(self.blocks)):
                bs = self.blocks[s]
                x = mat[bt.rows, bs.rows].reshape(bt.levels, bt.k, bs.levels, bs.k)
                xr = x.transpose(1, 3, 0, 2).reshape(bt.k * bs.k, -1)
                y4 = (xr @ xr.T).reshape(bt.k, bs.k, bt.k, bs.k).transpose(2, 0, 1, 3)
                tr = stacks[t] @ y4.reshape(bt.k * bt.k, bs.k * bs.k) @ stacks[s].T
                out[starts[t]: starts[t + 1], starts[s]: starts[s + 1]] = tr
                out[starts[s]: starts[s + 1], starts[t]: starts[t + 1]] = tr.T
        return out

    @staticmethod
    def _block_diag_sum(mat: np.ndarray, block: _Block) -> np.ndarray:
        """sum over levels g of the (g, g) k x k diagonal blocks of ``mat`` in ``block``, flattened."""
        x = mat[block.rows, block.rows].reshape(block.levels, block.k, block.levels, block.k)
        return np.einsum("gagb->ab", x).ravel()

    @staticmethod
    def _level_gram(rows: np.ndarray, block: _Block) -> np.ndarray:
        """sum_g R_g' (x) R_g over levels as a (k * k, c * c) matrix, R_g the (k, c) rows of level g.

        ``stack @ this`` gives R'(I (x) S_i)R for every S_i of a stack, flattened (c * c).
        """
        c = rows.shape[1]
        flat = rows.reshape(block.levels, block.k * c)
        gram = (flat.T @ flat).reshape(block.k, c, block.k, c).transpose(0, 2, 1, 3)
        return gram.reshape(block.k * block.k, c * c)

    @staticmethod
    def _applied(stack: np.ndarray, rows: np.ndarray, block: _Block) -> np.ndarray:
        """(I (x) S_i) rows for every S_i of ``stack``: shape (G * k, n_i * c), S_i's columns together."""
        c = rows.shape[1]
        k = block.k
        out = np.einsum("iab,gbc->gaic", stack.reshape(-1, k, k), rows.reshape(block.levels, k, c))
        return out.reshape(block.levels * k, -1)

    # ------------------------------------------------------------------ Satterthwaite
    def _satterthwaite_parts(self, fit: _Fit, theta: np.ndarray, reml: bool) -> tuple[np.ndarray, np.ndarray]:
        """(vcov of (theta, sigma) = 2 H^+, Jacobian of vcov(beta): (ntheta + 1, p, p)), cached per fit.

        H is the Hessian of the profiled deviance, with V_i = Z (I (x) S_i) Z' = dV/dtheta_i:
        d^2/dtheta_i dtheta_j = tr(W V_ij) - tr(W V_i W V_j) + (2 y'P V_i P V_j P y - y'P V_ij P y) / sigma^2
        with W = P (REML) or V^-1 (ML), d^2/dtheta_i dsigma = 2 y'P V_i P y / sigma^3 and
        d^2/dsigma^2 = 6 y'Py / sigma^4 - 2 (n - p [REML]) / sigma^2.
        """
        cached = fit.parts.get(reml)
        if cached is not None:
            return cached
        q, p, sigma = self.q, self.p, fit.sigma
        gram, a_inv = fit.gram, fit.a_inv
        nz = gram[:q, q: q + p]
        u = gram[:q, -1] - nz @ fit.beta  # Z'P y
        pwrss = gram[-1, -1] - gram[q: q + p, -1] @ fit.beta
        n_ai = nz @ a_inv
        mp = gram[:q, :q] - n_ai @ nz.T  # Z'P Z
        w = mp if reml else gram[:q, :q]
        nt = self.ntheta
        jac = np.empty((nt + 1, p, p))
        hess = np.zeros((nt + 1, nt + 1))
        du = np.zeros((q, nt))
        udu = np.empty(nt)
        stacks = []
        for block, second in zip(self.blocks, self._second):
            th = slice(block.theta_start, block.theta_start + block.ntheta)
            stack = (theta[th] @ second.reshape(block.ntheta, -1)).reshape(block.ntheta, -1)  # dLL'/dtheta_i
            stacks.append(stack)
            # d vcov(beta) / d theta_i = sigma^2 A^-1 N'(I (x) S_i) N A^-1
            jac[th] = sigma**2 * (stack @ self._level_gram(n_ai[block.rows], block)).reshape(-1, p, p)
            uu = self._level_gram(u[block.rows, None], block)[:, 0]
            udu[th] = stack @ uu
            du[block.rows, th] = self._applied(stack, u[block.rows, None], block)
            hess[th, th] += (second.reshape(-1, block.k**2) @ (self._block_diag_sum(w, block) - uu / sigma**2)
                             ).reshape(block.ntheta, block.ntheta)
        jac[nt] = 2 * sigma * a_inv
        hess[:nt, :nt] += 2 * (du.T @ mp @ du) / sigma**2 - self._pair_traces(w, stacks)
        hess[:nt, nt] = hess[nt, :nt] = 2 * udu / sigma**3
        hess[nt, nt] = 6 * pwrss / sigma**4 - 2 * (self.n - (p if reml else 0)) / sigma**2
        vals, vecs = np.linalg.eigh((hess + hess.T) / 2)
        keep = vals > _HESSIAN_TOL
        cov = 2 * (vecs[:, keep] / vals[keep]) @ vecs[:, keep].T
        fit.parts[reml] = (cov, jac)
        return cov, jac

    def satterthwaite(self, y, theta, sigma, reml: bool, L) -> tuple[float, int, float]:
        """Wald F of ``L beta = 0`` with lmerTest's Satterthwaite denominator df.

        Parameters
        ----------
        y : array_like, shape (n,)
            Response of the replicate.
        theta, sigma : array_like, float
            The fit's relative Cholesky parameters (lme4's order) and residual SD.
        reml : bool
            Whether the fit maximised the REML criterion (else ML).
        L : array_like, shape (m, p) or (p,)
            Contrast rows.

        Returns
        -------
        (F, ndf, ddf) : tuple of float, int, float
            For one row ``F = t^2``; for several, lmerTest's eigen-decomposition F and df.

        Examples
        --------
        >>> import numpy as np
        >>> g = np.repeat(np.arange(6), 4)
        >>> X = np.column_stack([np.ones(24), np.tile([0.0, 1.0], 12)])
        >>> y = np.sin(np.arange(24.0)) + g
        >>> calc = DdfCalculator(X, [(np.ones(24), g, 6)])
        >>> F, ndf, ddf = calc.satterthwaite(y, [1.5], 1.0, True, np.eye(2))
        >>> ndf
        2
        """
        y, theta, sigma = self._y(y), self._theta(theta), self._sigma(sigma)
        L = self._contrast(L)
        with self._blas_scope(y, theta, sigma, bool(reml)):
            return self._satterthwaite(y, theta, sigma, bool(reml), L)

    def _satterthwaite(self, y, theta, sigma, reml, L) -> tuple[float, int, float]:
        fit = self._fit(y, theta, sigma)
        cov, jac = self._satterthwaite_parts(fit, theta, reml)
        F, ndf, ddf = _satterthwaite_test(L, (sigma**2 * fit.a_inv)[None], fit.beta[None], cov[None], jac[None])
        return float(F[0]), int(ndf[0]), float(ddf[0])

    def satterthwaite_dfs(self, y, theta, sigma, reml: bool) -> np.ndarray:
        """Satterthwaite df of every coefficient's t test at once (lmerTest's ``summary`` column).

        Equal to ``satterthwaite(y, theta, sigma, reml, e_j)[2]`` for each unit row ``e_j``,
        without a Python call per coefficient.

        Examples
        --------
        >>> import numpy as np
        >>> g = np.repeat(np.arange(6), 4)
        >>> X = np.column_stack([np.ones(24), np.tile([0.0, 1.0], 12)])
        >>> y = np.sin(np.arange(24.0)) + g
        >>> calc = DdfCalculator(X, [(np.ones(24), g, 6)])
        >>> dfs = calc.satterthwaite_dfs(y, [1.5], 1.0, True)
        >>> bool(np.isclose(dfs[1], calc.satterthwaite(y, [1.5], 1.0, True, [0, 1])[2]))
        True
        """
        y, theta, sigma = self._y(y), self._theta(theta), self._sigma(sigma)
        with self._blas_scope(y, theta, sigma, bool(reml)):
            fit = self._fit(y, theta, sigma)
            cov, jac = self._satterthwaite_parts(fit, theta, bool(reml))
        var = sigma**2 * np.diag(fit.a_inv)
        grads = np.diagonal(jac, axis1=1, axis2=2)  # (nvarpar, p): d var_j / d varpar_i
        with np.errstate(divide="ignore", invalid="ignore"):
            return 2 * var**2 / np.einsum("ij,ik,kj->j", grads, cov, grads)

    # ------------------------------------------------------------------ Kenward-Roger
    def _kr_pieces(self, fit: _Fit) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """pbkrtest's P_i (npar, p, p), Q_ij (npar, npar, p, p) and tr(Sigma^-1 G_i Sigma^-1 G_j)."""
        q, p, sigma = self.q, self.p, fit.sigma
        gram, chol = fit.gram, fit.chol
        x = slice(q, q + p)
        # V^-2 and V^-3 cross-products: V^-1 = I - Z T Z', T = Lambda C^-1 Lambda'
        f = fit.solved
        h = sla.solve_triangular(chol, self._lam_t(fit.lams, gram[:q]), lower=True, check_finite=False)
        gram2 = gram - h.T @ f
        gram2 = (gram2 + gram2.T) / 2
        h2 = sla.solve_triangular(chol, self._lam_t(fit.lams, gram2[:q, x]), lower=True, check_finite=False)
        a3 = gram2[x, x] - h2.T @ f[:, x]
        # tr(T Kzz) = q - tr(C^-1); tr(T M) = tr(B M B'), B = C^-1/2 Lambda'
        b = sla.solve_triangular(chol, self._lam_t(fit.lams, np.eye(q)), lower=True, check_finite=False)
        tr_tk = float(np.sum(b * f[:, :q]))
        tr_tm = float(np.sum(b * h[:, :q]))
        tr_v2 = self.n - tr_tk - tr_tm
        m, nz, m2, n2, a2 = gram[:q, :q], gram[:q, x], gram2[:q, :q], gram2[:q, x], gram2[x, x]
        basis = self._kr_basis
        nr = sum(len(bs) for bs in basis)
        npar = nr + 1
        s4, s6 = sigma**4, sigma**6
        en = np.zeros((q, nr * p))  # columns (I (x) E_i) N, block by block
        P = np.empty((npar, p, p))
        start = 0
        for block, stack in zip(self.blocks, basis):
            cols = slice(start * p, (start + len(stack)) * p)
            en[block.rows, cols] = self._applied(stack, nz[block.rows], block)
            P[start: start + len(stack)] = -(stack @ self._level_gram(nz[block.rows], block)).reshape(-1, p, p) / s4
            start += len(stack)
        P[nr] = -a2 / s4
        Q = np.empty((npar, npar, p, p))
        Q[:nr, :nr] = (en.T @ m @ en).reshape(nr, p, nr, p).transpose(0, 2, 1, 3) / s6
        qr_ = (en.T @ n2).reshape(nr, p, p) / s6
        Q[:nr, nr] = qr_
        Q[nr, :nr] = qr_.transpose(0, 2, 1)
        Q[nr, nr] = a3 / s6
        K = np.empty((npar, npar))
        K[:nr, :nr] = self._pair_traces(m, basis) / s4
        K[:nr, nr] = K[nr, :nr] = np.concatenate(
            [stack @ self._block_diag_sum(m2, block) for block, stack in zip(self.blocks, basis)]
        ) / s4
        K[nr, nr] = tr_v2 / s4
        return P, Q, K

    def kenward_roger(self, y, beta, theta, sigma, reml: bool, L) -> tuple[float, int, float]:
        """Kenward-Roger F of ``L beta = 0`` as pbkrtest's ``KRmodcomp`` (scaled F, ndf, ddf).

        Parameters
        ----------
        y : array_like, shape (n,)
            Response of the replicate (used only to check the design; KR depends on the estimates).
        beta, theta, sigma : array_like, float
            REML estimates of the fit.
        reml : bool
            Must be True: pbkrtest evaluates Kenward-Roger at the REML estimates.
        L : array_like, shape (m, p) or (p,)
            Contrast rows (a rank-deficient L is replaced by an orthonormal basis of its row space).

        Returns
        -------
        (F, ndf, ddf) : tuple of float, int, float

        Examples
        --------
        >>> import numpy as np
        >>> g = np.repeat(np.arange(6), 4)
        >>> X = np.column_stack([np.ones(24), np.tile([0.0, 1.0], 12)])
        >>> calc = DdfCalculator(X, [(np.ones(24), g, 6)])
        >>> F, ndf, ddf = calc.kenward_roger(np.zeros(24), [0.0, 0.1], [1.0], 1.0, True, [0, 1])
        >>> ndf, round(ddf, 6)
        (1, 17.0)
        """
        y, theta, sigma = self._y(y), self._theta(theta), self._sigma(sigma)
        L = self._contrast(L)
        beta = np.asarray(beta, dtype=float).ravel()
        if beta.shape != (self.p,) or not np.all(np.isfinite(beta)):
            raise ParameterError(f"beta must be {self.p} finite numbers, got {beta.shape[0]}", parameter="beta")
        if not reml:
            raise ParameterError("Kenward-Roger needs REML estimates (reml=True); refit the model with REML "
                                 "as pbkrtest does", parameter="reml")
        with _one_blas_thread():
            return self._kenward_roger(y, beta, theta, sigma, L)

    def _kenward_roger(self, y, beta, theta, sigma, L) -> tuple[float, int, float]:
        fit = self._fit(y, theta, sigma)
        phi = (sigma**2 * fit.a_inv)[None]
        P, Q, traces = (piece[None] for piece in self._kr_pieces(fit))
        phi_a, W = _kr_adjusted_covariance(phi, P, Q, traces)
        L = _full_rank_rows(L)
        F, ddf = _kr_test(L, phi, phi_a, P, W, beta[None])
        return float(F[0]), L.shape[0], float(ddf[0])

    # ------------------------------------------------------------------ many replicates at once
    def _batch_inputs(self, Y, thetas, sigmas) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Checked stacked inputs: ``[Z'y, X'y]`` per replicate (K, q + p), ``y'y`` (K,), thetas, sigmas."""
        Y = np.asarray(Y, dtype=float)
        Y = Y[:, None] if Y.ndim == 1 else Y
        if Y.ndim != 2 or Y.shape[0] != self.n or Y.shape[1] == 0 or not np.all(np.isfinite(Y)):
            raise ParameterError(f"Y must be a finite ({self.n}, K) array, one response per column, got shape "
                                 f"{np.shape(Y)}", parameter="Y")
        K = Y.shape[1]
        thetas = np.asarray(thetas, dtype=float)
        thetas = thetas.reshape(K, -1) if thetas.size == K * self.ntheta else thetas
        if thetas.shape != (K, self.ntheta) or not np.all(np.isfinite(thetas)):
            raise ParameterError(f"thetas must be a finite ({K}, {self.ntheta}) array (one row of lme4's theta per "
                                 f"column of Y), got shape {np.shape(thetas)}", parameter="thetas")
        sigmas = np.asarray(sigmas, dtype=float).ravel()
        if sigmas.shape != (K,) or not np.all(np.isfinite(sigmas)) or np.any(sigmas <= 0):
            raise ParameterError(f"sigmas must be {K} positive finite numbers (one per column of Y)",
                                 parameter="sigmas")
        # one response goes down other paths in scipy's product and einsum's sum (other last bits): doubled,
        # so that a replicate's inputs are those it has in any batch
        wide = np.ascontiguousarray(Y if K > 1 else np.repeat(Y, 2, axis=1))
        zxy = np.asarray(self._layout.zx_t @ wide)[:, :K].T
        yty = np.einsum("nk,nk->k", wide, wide)[:K]
        return zxy, yty, thetas, sigmas

    @functools.cached_property
    def _layout(self) -> _BatchLayout:
        """Z's columns with the factor of most levels first: its block of Lambda'Z'Z Lambda + I is block diagonal."""
        blocks = self.blocks
        first = max(range(len(blocks)), key=lambda t: (blocks[t].levels, -t))
        group = [t for t in range(len(blocks)) if blocks[t].levels == blocks[first].levels
                 and np.array_equal(self._codes[t], self._codes[first])]
        levels, k_total = blocks[first].levels, sum(blocks[t].k for t in group)
        new_to_old = np.empty(self.q, dtype=np.int64)
        moved, sel, diag, within = [None] * len(blocks), [None] * len(blocks), [None] * len(blocks), 0
        for t in group:  # level g, column a of term t -> g * k_total + (columns of earlier terms) + a
            b = blocks[t]
            index = np.arange(levels)[:, None] * k_total + within + np.arange(b.k)[None, :]
            new_to_old[index.ravel()] = np.arange(b.rows.start, b.rows.stop)
            moved[t] = _Block(k=b.k, levels=b.levels, offset=0, theta_start=b.theta_start)
            sel[t] = slice(0, levels * b.k) if len(group) == 1 else index.ravel()
            diag[t] = index
            within += b.k
        offset = levels * k_total
        for t in range(len(blocks)):
            if t in group:
                continue
            b = blocks[t]
            moved[t] = _Block(k=b.k, levels=b.levels, offset=offset, theta_start=b.theta_start)
            new_to_old[moved[t].rows] = np.arange(b.rows.start, b.rows.stop)
            sel[t] = moved[t].rows
            diag[t] = offset + np.arange(b.levels * b.k).reshape(b.levels, b.k)
            offset += b.levels * b.k
        cols = np.concatenate([new_to_old, np.arange(self.q, self.q + self.p)])
        cross = self._cross[np.ix_(cols, cols)]
        width = levels * k_total
        first = cross[:width].reshape(levels, k_total, -1)
        return _BatchLayout(blocks=moved, group=group, width=width, sel=sel, cross=cross,
                            zx_t=sp.vstack([self._z_t[new_to_old], sp.csr_matrix(self._x.T)]).tocsc(), diag=diag,
                            rest=[t for t in range(len(blocks)) if t not in group],
                            first_diag=_diagonal_blocks(cross[None, :width, :width], k_total)[0].copy(),
                            first_other=np.ascontiguousarray(first[:, :, width:]))

    def _batch_lam_t(self, lams: list[np.ndarray], rows: np.ndarray, blocks: Sequence[int] | None = None) -> np.ndarray:
        """Lambda' @ rows for every replicate, rows (K, q, c) in the batch layout (or only ``blocks``' rows)."""
        layout = self._layout
        K, c = rows.shape[0], rows.shape[2]
        chosen = range(len(self.blocks)) if blocks is None else blocks
        out = np.empty((K, sum(layout.blocks[t].levels * layout.blocks[t].k for t in chosen), c))
        at = 0
        for t in chosen:
            block, lam = layout.blocks[t], lams[t]
            size = block.levels * block.k
            # all rows: the layout's positions; some blocks: theirs, one after the other
            where = layout.sel[t] if blocks is None else slice(at, at + size)
            part = rows[:, where]
            if block.k == 1:
                out[:, where] = part * lam[:, :, :1]
            else:
                piece = lam.transpose(0, 2, 1)[:, None] @ part.reshape(K, block.levels, block.k, c)
                out[:, where] = piece.reshape(K, -1, c)
            at += size
        return out

    def _batch_lam_t_rest(self, lams: list[np.ndarray], out: np.ndarray) -> None:
        """Lambda' [Z'Z Z'X] of the terms outside the diagonal group, for every replicate, into ``out`` (K, r, q + p).

        The cross-products are the same for every replicate, so each term's ``(K k, k)`` stack of
        Lambda' multiplies its ``(k, levels (q + p))`` rows in one BLAS call.
        """
        layout = self._layout
        K, width = lams[0].shape[0], self.q + self.p
        for t in layout.rest:
            block, lam = layout.blocks[t], lams[t]
            rows = layout.cross[block.rows]
            where = slice(block.offset - layout.width, block.offset - layout.width + block.levels * block.k)
            if block.k == 1:
                np.multiply(lam[:, 0, :1, None], rows[None], out=out[:, where])
                continue
            grouped = rows.reshape(block.levels, block.k, width).transpose(1, 0, 2).reshape(block.k, -1)
            product = np.matmul(lam.transpose(0, 2, 1).reshape(K * block.k, block.k), grouped,
                                out=_SCRATCH.get("lam_t_product", (K * block.k, grouped.shape[1])))
            out[:, where] = product.reshape(K, block.k, block.levels, width).transpose(0, 2, 1, 3).reshape(
                K, -1, width)

    def _batch_lambdas(self, thetas: np.ndarray) -> list[np.ndarray]:
        lams = []
        for block in self.blocks:
            lam = np.zeros((thetas.shape[0], block.k, block.k))
            rr, cc = zip(*_lower_pairs(block.k))
            lam[:, rr, cc] = thetas[:, block.theta_start: block.theta_start + block.ntheta]
            lams.append(lam)
        return lams

    def _batch_fit(self, zxy: np.ndarray, yty: np.ndarray, thetas: np.ndarray, sigmas: np.ndarray) -> _BatchFit:
        """``_fit`` for K replicates: a blocked Cholesky (block-diagonal first factor, dense rest) in stacked arrays.

        Its ``parts`` and ``gram`` are scratch memory (:mod:`.scratch`): valid until this thread's next call.
        """
        layout = self._layout
        K, q, p = len(sigmas), self.q, self.p
        width, levels, k = layout.width, layout.first_diag.shape[0], layout.first_diag.shape[1]
        lams = self._batch_lambdas(thetas)
        lam_group = np.zeros((K, k, k))
        at = 0
        for t in layout.group:
            size = layout.blocks[t].k
            lam_group[:, at: at + size, at: at + size] = lams[t]
            at += size
        # Lambda' [Z'Z Z'X Z'y] by parts: the group's rows (block diagonal in its own columns), the other rows
        lam_group_t = lam_group.transpose(0, 2, 1)[:, None]
        diag = lam_group_t @ layout.first_diag
        top = np.empty((K, levels, k, q + p + 1 - width))
        np.matmul(lam_group_t, layout.first_other, out=top[..., :-1])
        np.matmul(lam_group_t, zxy[:, :width].reshape(K, levels, k, 1), out=top[..., -1:])
        rest = _SCRATCH.get("rest_rows", (K, q - width, q + p + 1))
        self._batch_lam_t_rest(lams, rest[..., :-1])
        rest[..., -1:] = self._batch_lam_t(lams, zxy[:, width:q, None], layout.rest)
        # C = Lambda'Z'Z Lambda + I by the same parts
        c11 = diag @ lam_group[:, None]
        c11 += np.eye(k)
        c21 = (rest[:, :, :width].reshape(K, -1, levels, k) @ lam_group[:, None]).reshape(K, -1, width)
        c22 = self._batch_lam_t(lams, np.ascontiguousarray(rest[:, :, width:q].transpose(0, 2, 1)), layout.rest)
        c22 += np.eye(q - width)
        factor = _BlockedFactor(c11, c21, c22)
        solved = factor.forward_blocked(diag, top, rest)
        # gram = [Z X y]'[Z X y] - F'F, built in the product's array (the pass is bound by memory traffic)
        gram = factor.gram(solved, out=_SCRATCH.get("gram", (K, q + p + 1, q + p + 1)))
        np.negative(gram, out=gram)
        gram[:, : q + p, : q + p] += layout.cross
        gram[:, : q + p, -1] += zxy
        gram[:, -1, : q + p] += zxy
        gram[:, -1, -1] += yty
        a_inv = np.linalg.inv(gram[:, q: q + p, q: q + p])
        a_inv = (a_inv + a_inv.transpose(0, 2, 1)) / 2
        beta = (a_inv @ gram[:, q: q + p, -1:])[..., 0]
        return _BatchFit(lams=lams, factor=factor, parts=solved, gram=gram, a_inv=a_inv, beta=beta, sigma=sigmas)

    def _batch_satterthwaite_parts(self, fit: _BatchFit, thetas: np.ndarray, reml: bool) -> tuple[np.ndarray, np.ndarray]:
        """``_satterthwaite_parts`` for K replicates: (cov (K, v, v), jac (K, v, p, p)), v = ntheta + 1."""
        layout = self._layout
        K, q, p, nt = len(fit.sigma), self.q, self.p, self.ntheta
        sigma = fit.sigma
        s2 = sigma**2
        gram, a_inv = fit.gram, fit.a_inv
        nz = gram[:, :q, q: q + p]
        u = gram[:, :q, -1] - (nz @ fit.beta[..., None])[..., 0]  # Z'P y
        pwrss = gram[:, -1, -1] - np.einsum("ka,ka->k", gram[:, q: q + p, -1], fit.beta)
        n_ai = nz @ a_inv
        mp = np.matmul(n_ai, nz.transpose(0, 2, 1), out=_SCRATCH.get("z_p_z", (K, q, q)))
        np.subtract(gram[:, :q, :q], mp, out=mp)  # Z'P Z
        w = mp if reml else gram[:, :q, :q]
        jac = np.empty((K, nt + 1, p, p))
        hess = np.zeros((K, nt + 1, nt + 1))
        du = np.zeros((K, q, nt))
        udu = np.empty((K, nt))
        stacks = []
        for block, second, diag, sel in zip(layout.blocks, self._second, layout.diag, layout.sel):
            th = slice(block.theta_start, block.theta_start + block.ntheta)
            k2 = block.k**2
            stack = (thetas[:, th] @ second.reshape(block.ntheta, -1)).reshape(K, block.ntheta, k2)
            stacks.append(stack)
            jac[:, th] = s2[:, None, None, None] * (stack @ _batch_level_gram(n_ai[:, sel], block)
                                                    ).reshape(K, -1, p, p)
            uu = _batch_level_gram(u[:, sel, None], block)[..., 0]
            udu[:, th] = (stack @ uu[..., None])[..., 0]
            du[:, sel, th] = np.einsum("kiab,kgb->kgai", stack.reshape(K, -1, block.k, block.k),
                                       u[:, sel].reshape(K, block.levels, block.k)).reshape(K, -1, block.ntheta)
            diag_sum = w[:, diag[:, :, None], diag[:, None, :]].sum(axis=1).reshape(K, k2)
            hess[:, th, th] += ((diag_sum - uu / s2[:, None]) @ second.reshape(-1, k2).T
                                ).reshape(K, block.ntheta, block.ntheta)
        jac[:, nt] = 2 * sigma[:, None, None] * a_inv
        hess[:, :nt, :nt] += (2 * (du.transpose(0, 2, 1) @ mp @ du) / s2[:, None, None]
                              - self._batch_pair_traces(w, stacks))
        hess[:, :nt, nt] = hess[:, nt, :nt] = 2 * udu / sigma[:, None] ** 3
        hess[:, nt, nt] = 6 * pwrss / sigma**4 - 2 * (self.n - (p if reml else 0)) / s2
        vals, vecs = np.linalg.eigh((hess + hess.transpose(0, 2, 1)) / 2)
        keep = vals > _HESSIAN_TOL  # lmerTest's pseudo-inverse: directions at or below the tolerance are dropped
        scale = np.divide(1.0, vals, out=np.zeros_like(vals), where=keep)
        cov = 2 * (vecs * scale[:, None, :]) @ vecs.transpose(0, 2, 1)
        return cov, jac

    def _batch_pair_traces(self, mat: np.ndarray, stacks: list[np.ndarray]) -> np.ndarray:
        """``_pair_traces`` for K replicates: mat (K, q, q), stacks per block (K, n_t, k_t * k_t)."""
        blocks, sel = self._layout.blocks, self._layout.sel
        K = mat.shape[0]
        starts = np.concatenate([[0], np.cumsum([st.shape[1] for st in stacks])])
        out = np.empty((K, starts[-1], starts[-1]))
        for t, bt in enumerate(blocks):
            for s in range(t, len(blocks)):
                bs = blocks[s]
                x = mat[:, sel[t]][:, :, sel[s]].reshape(K, bt.levels, bt.k, bs.levels, bs.k)
                xr = x.transpose(0, 2, 4, 1, 3).reshape(K, bt.k * bs.k, -1)
                y4 = (xr @ xr.transpose(0, 2, 1)).reshape(K, bt.k, bs.k, bt.k, bs.k).transpose(0, 3, 1, 2, 4)
                tr = stacks[t] @ y4.reshape(K, bt.k * bt.k, bs.k * bs.k) @ stacks[s].transpose(0, 2, 1)
                out[:, starts[t]: starts[t + 1], starts[s]: starts[s + 1]] = tr
                out[:, starts[s]: starts[s + 1], starts[t]: starts[t + 1]] = tr.transpose(0, 2, 1)
        return out

    def _batches(self, K: int) -> Iterator[np.ndarray]:
        """Replicates in passes whose stacked (K, q + p + 1, q + p + 1) systems stay below ``_BATCH_ENTRIES``.

        A pass of one replicate holds it twice: numpy lays out and reduces some stacks of one
        matrix differently (their last bits differ), and a replicate's numbers must not depend on
        which replicates share its batch (a study's tasks are cut differently for other executors).
        """
        size = max(_MIN_BATCH, _BATCH_ENTRIES // (self.q + self.p + 1) ** 2)
        for start in range(0, K, size):
            part = np.arange(start, min(K, start + size))
            yield np.repeat(part, 2) if part.size == 1 else part

    def satterthwaite_many(self, Y, thetas, sigmas, reml: bool, L) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`satterthwaite` for K replicates of the design at once (stacked arrays, no per-replicate call).

        Parameters
        ----------
        Y : array_like, shape (n, K)
            One response per column.
        thetas : array_like, shape (K, ntheta)
            Each replicate's fitted theta (lme4's relative Cholesky parameters, the calculator's block order).
        sigmas : array_like, shape (K,)
            Each replicate's residual SD.
        reml : bool
            Whether the fits maximised the REML criterion (else ML).
        L : array_like, shape (m, p) or (p,)
            Contrast rows, the same for every replicate.

        Returns
        -------
        (F, ndf, ddf) : ndarray (K,), ndarray of int (K,), ndarray (K,)
            Equal to ``satterthwaite(Y[:, k], thetas[k], sigmas[k], reml, L)`` for each k (to rounding).

        Examples
        --------
        >>> import numpy as np
        >>> rng = np.random.default_rng(3)
        >>> g = np.repeat(np.arange(8), 5)
        >>> X = np.column_stack([np.ones(40), rng.normal(size=40)])
        >>> Y = rng.normal(size=(8, 3))[g] + rng.normal(size=(40, 3))
        >>> calc = DdfCalculator(X, [(np.ones(40), g, 8)])
        >>> F, ndf, ddf = calc.satterthwaite_many(Y, [[0.9], [1.1], [0.7]], [1.0, 0.9, 1.1], True, [0, 1])
        >>> bool(np.isclose(ddf[1], calc.satterthwaite(Y[:, 1], [1.1], 0.9, True, [0, 1])[2], rtol=1e-10))
        True
        """
        zxy, yty, thetas, sigmas = self._batch_inputs(Y, thetas, sigmas)
        L = self._contrast(L)
        K = len(sigmas)
        F, ndf, ddf = np.empty(K), np.empty(K, dtype=int), np.empty(K)
        with _one_blas_thread():
            for part in self._batches(K):
                fit = self._batch_fit(zxy[part], yty[part], thetas[part], sigmas[part])
                cov, jac = self._batch_satterthwaite_parts(fit, thetas[part], bool(reml))
                vcov = fit.sigma[:, None, None] ** 2 * fit.a_inv
                F[part], ndf[part], ddf[part] = _satterthwaite_test(L, vcov, fit.beta, cov, jac)
        return F, ndf, ddf

    def satterthwaite_dfs_many(self, Y, thetas, sigmas, reml: bool) -> np.ndarray:
        """Every coefficient's Satterthwaite df for K replicates at once: shape (K, p).

        Row k equals ``satterthwaite_dfs(Y[:, k], thetas[k], sigmas[k], reml)`` (to rounding).

        Examples
        --------
        >>> import numpy as np
        >>> g = np.repeat(np.arange(6), 4)
        >>> X = np.column_stack([np.ones(24), np.tile([0.0, 1.0], 12)])
        >>> Y = np.column_stack([np.sin(np.arange(24.0)) + g, np.cos(np.arange(24.0)) + g])
        >>> calc = DdfCalculator(X, [(np.ones(24), g, 6)])
        >>> dfs = calc.satterthwaite_dfs_many(Y, [[1.5], [1.2]], [1.0, 0.8], True)
        >>> dfs.shape, bool(np.allclose(dfs[1], calc.satterthwaite_dfs(Y[:, 1], [1.2], 0.8, True), rtol=1e-10))
        ((2, 2), True)
        """
        zxy, yty, thetas, sigmas = self._batch_inputs(Y, thetas, sigmas)
        out = np.empty((len(sigmas), self.p))
        with _one_blas_thread():
            for part in self._batches(len(sigmas)):
                fit = self._batch_fit(zxy[part], yty[part], thetas[part], sigmas[part])
                cov, jac = self._batch_satterthwaite_parts(fit, thetas[part], bool(reml))
                var = fit.sigma[:, None] ** 2 * np.diagonal(fit.a_inv, axis1=1, axis2=2)
                grads = np.diagonal(jac, axis1=2, axis2=3)  # (K, v, p): d var_j / d varpar_i
                with np.errstate(divide="ignore", invalid="ignore"):
                    out[part] = 2 * var**2 / np.einsum("kij,kil,klj->kj", grads, cov, grads)
        return out

    def _batch_kr_pieces(self, fit: _BatchFit) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``_kr_pieces`` for K replicates: P (K, r, p, p), Q (K, r, r, p, p), the traces (K, r, r)."""
        layout = self._layout
        K, q, p, n = len(fit.sigma), self.q, self.p, self.n
        x = slice(q, q + p)
        gram, f, factor, lams = fit.gram, fit.parts.dense(), fit.factor, fit.lams
        h = factor.forward(self._batch_lam_t(lams, gram[:, :q]))
        gram2 = gram - h.transpose(0, 2, 1) @ f
        gram2 = (gram2 + gram2.transpose(0, 2, 1)) / 2
        h2 = factor.forward(self._batch_lam_t(lams, np.ascontiguousarray(gram2[:, :q, x])))
        a3 = gram2[:, x, x] - h2.transpose(0, 2, 1) @ f[:, :, x]
        b = factor.forward(self._batch_lam_t(lams, np.broadcast_to(np.eye(q), (K, q, q))))
        tr_v2 = n - np.einsum("kij,kij->k", b, f[:, :, :q]) - np.einsum("kij,kij->k", b, h[:, :, :q])
        m, nz, m2, n2, a2 = gram[:, :q, :q], gram[:, :q, x], gram2[:, :q, :q], gram2[:, :q, x], gram2[:, x, x]
        basis = self._kr_basis
        nr = sum(len(bs) for bs in basis)
        s4 = (fit.sigma**4)[:, None, None]
        s6 = (fit.sigma**6)[:, None, None]
        en = np.zeros((K, q, nr * p))  # columns (I (x) E_i) N, block by block
        P = np.empty((K, nr + 1, p, p))
        start = 0
        for block, stack, sel in zip(layout.blocks, basis, layout.sel):
            size = len(stack)
            rows = nz[:, sel]
            en[:, sel, start * p: (start + size) * p] = np.einsum(
                "iab,kgbc->kgaic", stack.reshape(-1, block.k, block.k), rows.reshape(K, block.levels, block.k, p)
            ).reshape(K, -1, size * p)
            P[:, start: start + size] = -(stack @ _batch_level_gram(rows, block)).reshape(K, size, p, p) / s4[..., None]
            start += size
        P[:, nr] = -a2 / s4
        Q = np.empty((K, nr + 1, nr + 1, p, p))
        en_t = en.transpose(0, 2, 1)
        Q[:, :nr, :nr] = (en_t @ m @ en).reshape(K, nr, p, nr, p).transpose(0, 1, 3, 2, 4) / s6[..., None, None]
        qr_ = (en_t @ n2).reshape(K, nr, p, p) / s6[..., None]
        Q[:, :nr, nr] = qr_
        Q[:, nr, :nr] = qr_.transpose(0, 1, 3, 2)
        Q[:, nr, nr] = a3 / s6
        traces = np.empty((K, nr + 1, nr + 1))
        traces[:, :nr, :nr] = self._batch_pair_traces(m, [np.broadcast_to(bs, (K,) + bs.shape) for bs in basis]) / s4
        traces[:, :nr, nr] = traces[:, nr, :nr] = np.concatenate(
            [m2[:, d[:, :, None], d[:, None, :]].sum(axis=1).reshape(K, -1) @ bs.T
             for d, bs in zip(layout.diag, basis)], axis=1) / s4[:, 0]
        traces[:, nr, nr] = tr_v2 / s4[:, 0, 0]
        return P, Q, traces

    def _batch_kenward_roger_parts(self, fit: _BatchFit) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(Phi, Phi_A, P, W) of pbkrtest's ``vcovAdj`` for K replicates."""
        phi = (fit.sigma**2)[:, None, None] * fit.a_inv
        P, Q, traces = self._batch_kr_pieces(fit)
        phi_a, W = _kr_adjusted_covariance(phi, P, Q, traces)
        return phi, phi_a, P, W

    def kenward_roger_many(self, Y, betas, thetas, sigmas, L) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`kenward_roger` for K replicates at once (REML estimates; stacked arrays).

        Parameters
        ----------
        Y : array_like, shape (n, K)
            One response per column.
        betas, thetas : array_like, shapes (K, p) and (K, ntheta)
            Each replicate's REML fixed effects and theta (the calculator's block order).
        sigmas : array_like, shape (K,)
            Each replicate's REML residual SD.
        L : array_like, shape (m, p) or (p,)
            Contrast rows, the same for every replicate.

        Returns
        -------
        (F, ndf, ddf) : ndarray (K,), ndarray of int (K,), ndarray (K,)
            Equal to ``kenward_roger(Y[:, k], betas[k], thetas[k], sigmas[k], True, L)`` (to rounding).

        Examples
        --------
        >>> import numpy as np
        >>> g = np.repeat(np.arange(6), 4)
        >>> X = np.column_stack([np.ones(24), np.tile([0.0, 1.0], 12)])
        >>> calc = DdfCalculator(X, [(np.ones(24), g, 6)])
        >>> F, ndf, ddf = calc.kenward_roger_many(np.zeros((24, 2)), [[0, 0.1], [0, 0.2]], [[1.0], [0.5]],
        ...                                       [1.0, 1.2], [0, 1])
        >>> bool(np.isclose(ddf[1], calc.kenward_roger(np.zeros(24), [0, 0.2], [0.5], 1.2, True, [0, 1])[2]))
        True
        """
        zxy, yty, thetas, sigmas = self._batch_inputs(Y, thetas, sigmas)
        betas = self._batch_betas(betas, len(sigmas))
        L = _full_rank_rows(self._contrast(L))
        K = len(sigmas)
        F, ddf = np.empty(K), np.empty(K)
        with _one_blas_thread():
            for part in self._batches(K):
                fit = self._batch_fit(zxy[part], yty[part], thetas[part], sigmas[part])
                phi, phi_a, P, W = self._batch_kenward_roger_parts(fit)
                F[part], ddf[part] = _kr_test(L, phi, phi_a, P, W, betas[part])
        return F, np.full(K, L.shape[0], dtype=int), ddf

    def kenward_roger_vcov_many(self, Y, thetas, sigmas) -> np.ndarray:
        """pbkrtest's adjusted covariance of beta (``vcovAdj``) for K replicates: shape (K, p, p).

        Examples
        --------
        >>> import numpy as np
        >>> g = np.repeat(np.arange(6), 4)
        >>> X = np.column_stack([np.ones(24), np.tile([0.0, 1.0], 12)])
        >>> calc = DdfCalculator(X, [(np.ones(24), g, 6)])
        >>> calc.kenward_roger_vcov_many(np.zeros((24, 3)), [[1.0], [0.5], [0.2]], [1.0, 1.2, 0.9]).shape
        (3, 2, 2)
        """
        zxy, yty, thetas, sigmas = self._batch_inputs(Y, thetas, sigmas)
        out = np.empty((len(sigmas), self.p, self.p))
        with _one_blas_thread():
            for part in self._batches(len(sigmas)):
                fit = self._batch_fit(zxy[part], yty[part], thetas[part], sigmas[part])
                out[part] = self._batch_kenward_roger_parts(fit)[1]
        return out

    def _batch_betas(self, betas, K: int) -> np.ndarray:
        betas = np.asarray(betas, dtype=float)
        if betas.shape != (K, self.p) or not np.all(np.isfinite(betas)):
            raise ParameterError(f"betas must be a finite ({K}, {self.p}) array (one row of fixed effects per column "
                                 f"of Y), got shape {np.shape(betas)}", parameter="betas")
        return betas


def _full_rank_rows(L: np.ndarray) -> np.ndarray:
    """L itself if of full row rank, else an orthonormal basis of its row space (as pbkrtest)."""
    rank = np.linalg.matrix_rank(L)
    if rank == L.shape[0]:
        return L
    # the KR statistic and df depend on L only through its row space: any basis of it will do
    return np.linalg.svd(L)[2][:rank]


def _satterthwaite_test(L, vcov, beta, cov, jac) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """lmerTest's F (t^2 for one row), ndf and ddf of ``L beta = 0`` for K replicates, from their ``vcov``
    (K, p, p), ``beta`` (K, p) and the covariance ``cov`` and Jacobian ``jac`` of the variance parameters."""
    K = len(beta)
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero row gives NaN, as in lmerTest
        if L.shape[0] == 1:
            l = L[0]
            var = np.einsum("a,kab,b->k", l, vcov, l)
            grad = np.einsum("a,kiab,b->ki", l, jac, l)
            ddf = 2 * var**2 / np.einsum("ki,kij,kj->k", grad, cov, grad)
            return (beta @ l) ** 2 / var, np.ones(K, dtype=int), ddf
        vals, vecs = np.linalg.eigh(L @ vcov @ L.T)
        vals, vecs = vals[:, ::-1], vecs[:, :, ::-1]  # descending, as lmerTest orders them
        keep = vals > np.maximum(_CONTRAST_EPS * vals[:, :1], 0.0)
        rank = keep.sum(axis=1)
        rows = vecs.transpose(0, 2, 1) @ L  # (K, m, p): the rotated contrasts, kept ones first
        safe = np.where(keep, vals, 1.0)
        fstat = np.sum(np.where(keep, (rows @ beta[..., None])[..., 0] ** 2 / safe, 0.0), axis=1) / rank
        grads = np.einsum("kma,kiab,kmb->kmi", rows, jac, rows)
        nus = 2 * safe**2 / np.einsum("kmi,kij,kmj->km", grads, cov, grads)
    return np.where(rank > 0, fstat, np.nan), rank, _f_ddf(nus, keep, rank)


def _f_ddf(nus: np.ndarray, keep: np.ndarray, rank: np.ndarray, tol: float = 1e-8) -> np.ndarray:
    """lmerTest's denominator df of the F from the per-direction t dfs (Fai & Cornelius), per replicate:
    nus (K, m) whose first ``rank`` entries (``keep``) are the kept directions."""
    pairs = keep[:, 1:]  # both ends kept (kept directions are a prefix)
    with np.errstate(divide="ignore", invalid="ignore"):
        equal = np.all(np.where(pairs, np.abs(np.diff(nus, axis=1)) < tol, True), axis=1)
        mean = np.sum(np.where(keep, nus, 0.0), axis=1) / rank
        low = np.any(keep & (nus <= 2), axis=1)
        e = np.sum(np.where(keep, nus / (nus - 2), 0.0), axis=1)
        fai = 2 * e / (e - rank)
    out = np.where(equal, mean, np.where(low, 2.0, fai))
    out = np.where(rank == 1, nus[:, 0], out)
    return np.where(rank == 0, np.nan, out)


def _kr_adjusted_covariance(phi, P, Q, traces) -> tuple[np.ndarray, np.ndarray]:
    """Phi_A and W of pbkrtest's ``vcovAdj`` for K replicates, from Phi (K, p, p) and the pieces P, Q and
    the traces of :meth:`DdfCalculator._kr_pieces` (stacked)."""
    phi_p = phi[:, None] @ P
    info = traces - 2 * np.einsum("kab,kijba->kij", phi, Q) + np.einsum("kiab,kjba->kij", phi_p, phi_p)
    info = (info + info.transpose(0, 2, 1)) / 2
    regular = np.min(np.abs(np.linalg.eigvalsh(info)), axis=1) > _KR_CONDITION
    W = np.empty_like(info)
    if np.any(regular):
        W[regular] = 2 * np.linalg.inv(info[regular])
    for k in np.flatnonzero(~regular):  # pbkrtest's generalized inverse, rare (boundary fits)
        W[k] = 2 * np.linalg.pinv(info[k], rcond=_CONTRAST_EPS, hermitian=True)
    W = (W + W.transpose(0, 2, 1)) / 2
    uu = np.einsum("kij,kijab->kab", W, Q) - np.einsum("kij,kiab,kjbc->kac", W, P, phi_p)
    return phi + 2 * phi @ uu @ phi, W


def _kr_test(L, phi, phi_a, P, W, betas) -> tuple[np.ndarray, np.ndarray]:
    """The Kenward-Roger scaled F and ddf of ``L beta = 0`` (L of full row rank) for K replicates
    (Kenward & Roger 1997, section 4; pbkrtest's formulas)."""
    q = L.shape[0]
    K = phi.shape[0]
    lb_rows = np.broadcast_to(L, (K,) + L.shape)
    theta = L.T @ np.linalg.solve(L @ phi @ L.T, lb_rows)  # (K, p, p)
    u = (theta @ phi)[:, None] @ P @ phi[:, None]  # (K, r, p, p)
    traces = np.einsum("kiaa->ki", u)
    a1 = np.einsum("ki,kij,kj->k", traces, W, traces)
    a2 = np.einsum("kij,kiab,kjba->k", W, u, u)
    b = (a1 + 6 * a2) / (2 * q)
    g = ((q + 1) * a1 - (q + 4) * a2) / ((q + 2) * a2)
    denom = 3 * q + 2 * (1 - g)
    c1, c2, c3 = g / denom, (q - g) / denom, (q + 2 - g) / denom
    v0 = 1 + c1 * b
    v1 = 1 - c2 * b
    v2 = 1 - c3 * b
    v0 = np.where(np.abs(v0) < 1e-10, 0.0, v0)
    num = 1 - a2 / q
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((np.abs(num) < 1e-14) & (np.abs(v1) < 1e-14), 1.0, num / v1)
        rho = ratio**2 * v0 / (q * v2)
        ddf = 4 + (q + 2) / (q * rho - 1)
        scale = np.where(np.abs(ddf - 2) < 0.01, 1.0, ddf * (1 - a2 / q) / (ddf - 2))
    lb = betas @ L.T  # (K, q)
    wald = np.einsum("kq,kq->k", lb, np.linalg.solve(L @ phi_a @ L.T, lb[..., None])[..., 0])
    return scale * wald / q, ddf
