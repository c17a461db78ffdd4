"""lme4's penalized least squares for one design: the profiled deviance as a function of theta.

The model is ``y = X beta + Z Lambda(theta) u + e`` with ``u ~ N(0, sigma^2 I)`` and
``e ~ N(0, sigma^2 I)`` (Bates, Maechler, Bolker & Walker 2015, J. Stat. Softw. 67(1)).
For a given ``theta`` the system matrix of the penalized least-squares problem,
augmented by the response as its last column,

    [Lambda' Z'Z Lambda + I    Lambda' Z'X    Lambda' Z'y]
    [X'Z Lambda                X'X            X'y        ]
    [y'Z Lambda                y'X            y'y        ]

has a lower Cholesky factor whose diagonal gives every piece of the profiled
deviance: ``log|L_Z|^2``, ``log|R_X|^2`` and, squared in its last entry, the
penalized residual sum of squares. As in MixedModels.jl the factor is blocked:
the random effects of the grouping factor with the most levels come first, and
their block is block diagonal (one small ``Q x Q`` block per level), so it is
factored level by level and eliminated by a Schur complement; the remaining
columns (the other factors' effects, X and y) form one dense block.

Every cross-product that does not involve ``y`` is computed once per design
(:class:`PlsStructure`); a response adds ``Z'y``, ``X'y`` and ``y'y``
(:meth:`PlsStructure.response`), after which a deviance evaluation costs the
same whatever the number of rows.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

_potrf = lapack.dpotrf  # LAPACK's Cholesky: a tenth of numpy's call overhead on small matrices
_trtri = lapack.dtrtri
_trtrs = lapack.dtrtrs

__all__ = ["PlsStructure", "Response", "Solution", "TermBlock", "term_order"]

_LOG_2PI = float(np.log(2.0 * np.pi))
#: Largest per-response tensor (entries) of the outer-product form of the Schur complement (32 MB).
OUTER_LIMIT = 4_000_000


@dataclass(frozen=True)
class TermBlock:
    """One random term as the deviance sees it: its raw columns, group codes, and theta slot.

    ``z`` is ``(n, q)`` (ones for an intercept); ``design_index`` is the term's position
    in ``FitDesign.terms``; ``theta`` the slice of lme4's theta vector it owns.
    """

    design_index: int
    factor: str
    z: np.ndarray
    codes: np.ndarray
    nlevels: int
    theta: slice

    @property
    def q(self) -> int:
        return self.z.shape[1]

    @functools.cached_property
    def tril(self) -> tuple[np.ndarray, np.ndarray]:
        """Row and column of each theta element in the term's relative factor (column-major lower triangle).

        Cached: every fit reads it (cached_property writes the instance's dict, which a frozen dataclass allows).
        """
        rows, cols = np.tril_indices(self.q)
        order = np.lexsort((rows, cols))
        return rows[order], cols[order]


def term_order(nlevels: Sequence[int]) -> list[int]:
    """lme4's order of random terms: by decreasing number of levels, ties in formula order.

    Examples
    --------
    >>> term_order([20, 30, 30, 5])
    [1, 2, 0, 3]
    """
    return sorted(range(len(nlevels)), key=lambda k: -nlevels[k])


def lower_inverses(low: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Inverses of a stack of lower-triangular matrices, into ``out`` when given.

    LAPACK's ``trtri`` on each, in a Python loop: at a batch's sizes 3-15x cheaper than forward
    substitution over the stack and half the cost of numpy's stacked LU inverses, and each inverse
    is its matrix's alone, whatever the batch.

    Examples
    --------
    >>> low = np.array([[[2.0, 0.0], [1.0, 4.0]]])
    >>> bool(np.allclose(lower_inverses(low)[0] @ low[0], np.eye(2)))
    True
    """
    out = np.empty_like(low) if out is None else out
    for i in range(low.shape[0]):
        out[i], info = _trtri(low[i], lower=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"singular triangular factor (trtri info {info})")
    return out


def relative_factor(block: TermBlock, theta: np.ndarray) -> np.ndarray:
    """The term's lower-triangular relative covariance factor ``T`` from its theta elements."""
    t = np.zeros((block.q, block.q))
    rows, cols = block.tril
    t[rows, cols] = theta[block.theta]
    return t


_ZERO_ONE = np.array([0.0, 1.0])


def _logdet_weights(qr: int, p: int) -> dict[bool, np.ndarray]:
    """Weights on the log-diagonal of the dense factor: ``log|L_rest|`` (ML), plus ``log|R_X|`` (REML)."""
    ml = np.zeros(qr + p + 1)
    ml[:qr] = 1.0
    reml = ml.copy()
    reml[qr : qr + p] = 1.0
    return {False: ml, True: reml}


def _kron_gathers(q: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices into ``[vec_r(Sigma), 0, 1]`` that gather ``[vec_r(I); I kron Sigma]`` and ``Sigma kron I``.

    Examples
    --------
    >>> s = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> coef, back = _kron_gathers(2)
    >>> ext = np.concatenate([s.ravel(), [0.0, 1.0]])
    >>> bool(np.array_equal(ext[coef][1:], np.kron(np.eye(2), s)))
    True
    >>> bool(np.array_equal(ext[back], np.kron(s, np.eye(2))))
    True
    """
    zero, one = q * q, q * q + 1
    sigma_index = np.arange(q * q).reshape(q, q)
    eye_zero = np.where(np.eye(q, dtype=bool), 0, 1)  # 0 on the diagonal: selects the entry, else the zero slot
    coef = np.empty((q * q + 1, q * q), dtype=np.int64)
    coef[0] = np.where(np.eye(q, dtype=bool).ravel(), one, zero)
    # I kron Sigma: block (i, j) is Sigma when i == j
    coef[1:] = np.where(np.kron(1 - eye_zero, np.ones((q, q), dtype=np.int64)) == 1,
                        np.tile(sigma_index, (q, q)), zero)
    # Sigma kron I: entry (a q + i, b q + j) is Sigma[a, b] when i == j
    back = np.where(np.kron(np.ones((q, q), dtype=np.int64), 1 - eye_zero) == 1,
                    np.repeat(np.repeat(sigma_index, q, axis=0), q, axis=1), zero)
    return coef, back


def _adjugate_index() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Index arrays into row-major ``vec(N)`` of a 3 x 3 ``N`` with ``vec(adj N) = N[a] * N[b] - N[c] * N[d]``.

    ``adj(N)[i, j]`` is the cofactor of ``N[j, i]``: the 2 x 2 (or 1 x 1) minor with row ``j``
    and column ``i`` deleted, signed. Written as one difference of two products so that every
    level's adjugate is four gathers and three array operations.

    Examples
    --------
    >>> n = np.array([[2.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 4.0]])
    >>> a, b, c, d = _adjugate_index()
    >>> v = n.ravel()
    >>> bool(np.allclose((v[a] * v[b] - v[c] * v[d]).reshape(3, 3), np.linalg.inv(n) * np.linalg.det(n)))
    True
    """
    idx = np.empty((4, 9), dtype=np.int64)
    for i in range(3):
        for j in range(3):
            rows = [r for r in range(3) if r != j]
            cols = [c for c in range(3) if c != i]
            (r0, r1), (c0, c1) = rows, cols
            first, second = (r0 * 3 + c0, r1 * 3 + c1), (r0 * 3 + c1, r1 * 3 + c0)
            if (i + j) % 2:
                first, second = second, first
            idx[:, i * 3 + j] = [first[0], first[1], second[0], second[1]]
    return idx[0], idx[1], idx[2], idx[3]


def _scatter_z(block: TermBlock, offset: int, ncols_total: int) -> sp.csc_matrix:
    """The term's columns of Z in lme4's layout (level-major: column ``offset + level * q + j``)."""
    n, q = block.z.shape
    rows = np.repeat(np.arange(n), q)
    cols = offset + (block.codes[:, None] * q + np.arange(q)[None, :]).ravel()
    return sp.csc_matrix((block.z.ravel(), (rows, cols)), shape=(n, ncols_total))


@dataclass
class Response:
    """What one response adds: the last column of the blocked system (``Z1'y`` per level, the rest, ``y'y``)."""

    b_y: np.ndarray  # (n1, Q1): Z1'y per level of the first factor
    c_y: np.ndarray  # (m - 1,): [Zr'y, X'y]
    yty: float
    # the outer-product form (see PlsStructure._factor_outer): C with the response, and per level and
    # pair a <= b of first-factor columns (diagonal pairs first) the symmetrised outer product of rows a
    # and b of Z1'[Zr X y]
    # (E_l is symmetric, so the pairs (a, b) and (b, a) share one row)
    c_full: np.ndarray | None = None
    k: np.ndarray | None = None
    b_full: np.ndarray | None = None


@dataclass
class Solution:
    """The profiled deviance at one theta, with what the fitted model is read from."""

    deviance: float
    pwrss: float
    beta: np.ndarray
    rx: np.ndarray  # lower factor of X'V^-1 X / sigma^2 (R_X' in lme4's notation)
    logdet_l: float
    logdet_rx: float


class PlsStructure:
    """The y-independent part of lme4's penalized least squares for one design.

    Parameters
    ----------
    x : ndarray, shape (n, p)
        Fixed-effects columns.
    blocks : sequence of TermBlock
        The random terms in lme4's theta order.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> codes = np.repeat(np.arange(10), 4)
    >>> blk = TermBlock(0, "g", np.ones((40, 1)), codes, 10, slice(0, 1))
    >>> pls = PlsStructure(np.ones((40, 1)), [blk])
    >>> r = pls.response(rng.normal(size=40) + rng.normal(size=10)[codes])
    >>> sol = pls.solve(np.array([1.0]), r, reml=True)
    >>> bool(np.isfinite(sol.deviance))
    True
    """

    def __init__(self, x: np.ndarray, blocks: Sequence[TermBlock]) -> None:
        self.x = np.ascontiguousarray(x, dtype=np.float64)
        self.n, self.p = self.x.shape
        self.blocks = list(blocks)
        self.ntheta = sum(b.theta.stop - b.theta.start for b in self.blocks)
        first_factor = self.blocks[0].factor
        first_codes = self.blocks[0].codes
        # every term of the factor with the most levels goes to the block-diagonal part
        self.first = [b for b in self.blocks if b.factor == first_factor and np.array_equal(b.codes, first_codes)]
        self.rest = [b for b in self.blocks if not any(b is f for f in self.first)]
        self.n1 = self.blocks[0].nlevels
        self.q1 = sum(b.q for b in self.first)
        self.qr = sum(b.q * b.nlevels for b in self.rest)
        self.m = self.qr + self.p + 1  # the dense block: other random effects, X, y
        self._build()

    # ---------------------------------------------------------------- set-up (once per design)
    def _build(self) -> None:
        n, n1, q1 = self.n, self.n1, self.q1
        z1 = np.column_stack([b.z for b in self.first])
        codes = self.first[0].codes
        # Z1 in level-major layout: one sparse matrix serves both Z1'Z1 blocks and Z1'(anything)
        z1_cols = (codes[:, None] * q1 + np.arange(q1)[None, :]).ravel()
        self._z1 = sp.csr_matrix((z1.ravel(), (np.repeat(np.arange(n), q1), z1_cols)), shape=(n, n1 * q1))
        self._z1t = self._z1.T.tocsr()
        indicator = sp.csr_matrix((np.ones(n), (codes, np.arange(n))), shape=(n1, n))
        outer = (z1[:, :, None] * z1[:, None, :]).reshape(n, q1 * q1)
        self.d1 = np.asarray(indicator @ outer).reshape(n1, q1, q1)
        # the rest of the random effects, level-major per term, then X
        self.rest_offsets = []
        parts = []
        off = 0
        for b in self.rest:
            self.rest_offsets.append(off)
            parts.append(_scatter_z(b, 0, b.q * b.nlevels))
            off += b.q * b.nlevels
        zr = sp.hstack(parts, format="csr") if parts else sp.csr_matrix((n, 0))
        self._zrt = zr.T.tocsr()
        f = sp.hstack([zr, sp.csr_matrix(self.x)], format="csr")
        self.b = np.zeros((n1, q1, self.m))
        self.b[:, :, :-1] = np.asarray((self._z1t @ f).todense()).reshape(n1, q1, self.m - 1)
        self.c = np.zeros((self.m, self.m))
        self.c[:-1, :-1] = np.asarray((f.T @ f).todense())
        # positions in the dense block whose diagonal gets the identity of the penalty
        self._penalty = np.arange(self.qr)
        self._first_tril = [(b, *b.tril) for b in self.first]
        # fast paths: a first factor of one 2x2 term (intercept + slope), and rest terms of one column each
        self._first_tril_only = len(self.first) == 1
        self._d00, self._d01, self._d11 = (self.d1[:, 0, 0].copy(), self.d1[:, 0, 1].copy(), self.d1[:, 1, 1].copy()) if q1 == 2 else (None,) * 3
        self._scalar_rest = all(b.q == 1 for b in self.rest)
        index = [b.theta.start for b in self.rest for _ in range(b.nlevels)] if self._scalar_rest else []
        # the outer-product form evaluates the Schur complement as one matrix-vector product; its
        # tensor has n1 * Q1^2 * m^2 entries per response, so it is used while that stays small
        self._outer = n1 * q1 * q1 * self.m * self.m <= OUTER_LIMIT
        self._dext = np.column_stack([np.ones(n1), self.d1.reshape(n1, q1 * q1)])
        if q1 == 2:  # [1, d00, d01, d11, det D] per level (see _first_inverse)
            d = self.d1
            self._d2x2 = np.column_stack([np.ones(n1), d[:, 0, 0], d[:, 0, 1], d[:, 1, 1],
                                          d[:, 0, 0] * d[:, 1, 1] - d[:, 0, 1] * d[:, 1, 0]])
        self._vec_eye = np.eye(q1).ravel()
        self._scale_index = np.array(index + [self.ntheta] * (self.p + 1), dtype=np.int64)
        self._q1_offsets = np.cumsum([0] + [b.q for b in self.first])[:-1]
        # T1 gathered from [theta, 0]: each first-factor term's lower triangle in its diagonal block
        self._t1_gather = np.full((q1, q1), self.ntheta, dtype=np.int64)
        for (b, rows, cols), off in zip(self._first_tril, self._q1_offsets):
            self._t1_gather[off + rows, off + cols] = np.arange(b.theta.start, b.theta.stop)
        # pairs a <= b of first-factor columns: the diagonal ones first, then a < b row-major;
        # and their row-major positions in a Q1 x Q1 matrix
        upper = np.triu_indices(q1, 1)
        self._pairs = (np.concatenate([np.arange(q1), upper[0]]), np.concatenate([np.arange(q1), upper[1]]))
        self._pair_columns = self._pairs[0] * q1 + self._pairs[1]
        self._penalty_matrix = np.zeros((self.m, self.m))
        self._penalty_matrix[self._penalty, self._penalty] = 1.0
        self._logdet_weights = _logdet_weights(self.qr, self.p)
        if q1 >= 3:
            self._coef_gather, back = _kron_gathers(q1)
            self._back_gather = back[:, self._pair_columns]  # E_l's pair columns only
        if q1 == 3:
            self._adjugate_gather = np.concatenate(_adjugate_index())
            self._adjugate_first_column = np.arange(q1) * q1  # adj[:, 0], row-major

    def response(self, y: np.ndarray) -> Response:
        """The cross-products of one response (an offset is subtracted by the caller)."""
        # contiguous: BLAS and einsum sum a strided vector (a column of a batch) in another order, and the
        # numbers of a response fitted alone would depend on the batch it came from
        y = np.ascontiguousarray(y, dtype=np.float64)
        b_y = (self._z1t @ y).reshape(self.n1, self.q1)
        c_y = np.concatenate([self._zrt @ y, self.x.T @ y])
        # not y @ y: BLAS's ddot goes multithreaded on long vectors, 100x slower on a busy machine
        r = Response(b_y, c_y, float(np.einsum("i,i->", y, y)))
        if self._outer:
            b = self.b.copy()
            b[:, :, -1] = b_y
            c = self.c.copy()
            c[-1, :-1] = c_y
            c[:-1, -1] = c_y
            c[-1, -1] = r.yty
            r.c_full = c
            r.b_full = b
            lo, hi = self._pairs
            k = b[:, lo, :, None] * b[:, hi, None, :]
            off = k[:, self.q1 :]  # the pairs a < b (after the q1 diagonal ones): add (b, a)
            off += off.transpose(0, 1, 3, 2)
            r.k = k.reshape(self.n1 * len(lo), self.m * self.m)
        return r

    def without_fixed(self, keep: Sequence[int]) -> PlsStructure:
        """The same structure for the nested design that keeps fixed columns ``keep`` (no recomputation)."""
        out = object.__new__(PlsStructure)
        out.__dict__.update(self.__dict__)
        keep = np.asarray(keep, dtype=int)
        out.x = self.x[:, keep]
        out.p = len(keep)
        cols = np.concatenate([np.arange(self.qr), self.qr + keep, [self.m - 1]])
        out.m = len(cols)
        out.b = self.b[:, :, cols]
        out.c = self.c[np.ix_(cols, cols)]
        out._outer = self._outer  # fewer columns: the tensor only shrinks
        out._penalty_matrix = self._penalty_matrix[np.ix_(cols, cols)]
        out._logdet_weights = _logdet_weights(self.qr, out.p)
        out._scale_index = np.concatenate([self._scale_index[: self.qr], np.full(len(keep) + 1, self.ntheta)])
        return out

    # ---------------------------------------------------------------- one evaluation
    def _first_covariance(self, theta: np.ndarray) -> np.ndarray:
        """``Sigma = T1 T1'``, the first factor's relative covariance (closed form for the common shapes)."""
        if self._first_tril_only and self.q1 <= 2:
            if self.q1 == 1:
                t = theta[self.first[0].theta.start]
                return np.array([[t * t]])
            t0, t1, t2 = theta[self.first[0].theta].tolist()
            return np.array([[t0 * t0, t0 * t1], [t0 * t1, t1 * t1 + t2 * t2]])
        t1m = self._first_factor(theta)
        return t1m @ t1m.T

    def _first_factor(self, theta: np.ndarray) -> np.ndarray:
        """The first factor's relative factor ``T1`` (its terms' blocks on the diagonal), by one gather."""
        return np.concatenate([theta, _ZERO_ONE[:1]])[self._t1_gather]

    def _rest_scale(self, theta: np.ndarray) -> np.ndarray:
        """Per column of the dense block, the theta of its one-column rest term (1 for X and y).

        A fresh array each call: one prepared design may be fitted from several threads.
        """
        ext = np.empty(self.ntheta + 1)
        ext[:-1] = theta
        ext[-1] = 1.0
        return ext[self._scale_index]

    def _scale_rest(self, mat: np.ndarray, theta: np.ndarray, transpose: bool = False) -> np.ndarray:
        """``mat @ blockdiag(Lambda_rest, I)`` (``Lambda_rest'`` with ``transpose``), on the last axis, in place."""
        for b, off in zip(self.rest, self.rest_offsets):
            width = b.q * b.nlevels
            if b.q == 1:
                mat[..., off : off + width] *= theta[b.theta.start]
            else:
                t = relative_factor(b, theta)
                t = t.T if transpose else t
                view = mat[..., off : off + width]
                shape = view.shape
                mat[..., off : off + width] = (view.reshape(*shape[:-1], b.nlevels, b.q) @ t).reshape(shape)
        return mat

    def factor(self, theta: np.ndarray, r: Response) -> tuple[float, np.ndarray] | None:
        """``log|L_1|^2`` of the first factor's blocks and the lower factor of the dense Schur complement.

        None where a factor is not positive definite.
        """
        if r.k is not None:
            return self._factor_outer(theta, r)
        return self._factor_w(theta, r)

    def _factor_outer(self, theta: np.ndarray, r: Response) -> tuple[float, np.ndarray] | None:
        """The Schur complement as ``C - sum_l sum_ab E_l[a, b] (B_la outer B_lb)``, one matrix-vector product.

        With ``Sigma = T1 T1'`` the first factor's relative covariance,
        ``E_l = T1 (T1' D_l T1 + I)^-1 T1' = Sigma (I + D_l Sigma)^-1`` (push-through identity), and
        ``det(T1' D_l T1 + I) = det(I + D_l Sigma)``; ``I + D_l Sigma`` is linear in ``D_l``, so all
        levels' matrices come from one product ``[1, vec D_l] @ [vec I; I kron Sigma]``.
        """
        first = self._first_inverse(theta)
        if first is None:
            return None
        logdet1, e = first
        u = r.c_full - (e.reshape(-1) @ r.k).reshape(self.m, self.m)
        if self._scalar_rest:
            scale = self._rest_scale(theta)
            u *= np.multiply.outer(scale, scale)
        else:
            u = self._scale_rest(self._scale_rest(u, theta).T.copy(), theta)
        u += self._penalty_matrix
        l2, info = _potrf(u, lower=1, clean=0, overwrite_a=1)
        if info != 0:
            return None
        return logdet1, l2

    def _first_inverse(self, theta: np.ndarray) -> tuple[float, np.ndarray] | None:
        """``sum_l log det N_l`` and ``E_l = Sigma N_l^-1``, ``N_l = I + D_l Sigma``.

        ``E_l`` is symmetric; it is returned as its pairs ``a <= b`` (``self._pairs``: diagonal first,
        then ``a < b`` row-major), one row per level.

        Up to three columns in closed form, by the adjugate (``N^-1 = adj(N) / det N``, every level in a few array
        operations: a batched LAPACK call costs more than the arithmetic at these sizes); above
        that by batched LU. None where some ``N_l`` is not positive definite (``det <= 0``).
        """
        q1 = self.q1
        sigma = self._first_covariance(theta)
        if q1 == 1:
            s00 = sigma[0, 0]
            nmat = 1.0 + s00 * self._dext[:, 1]
            return float(np.log(nmat).sum()), (s00 / nmat)
        if q1 == 2:
            # For 2 x 2: det(I + D Sigma) = 1 + tr(D Sigma) + det D det Sigma and
            # Sigma adj(I + D Sigma) = Sigma + det Sigma [[d11, -d01], [-d01, d00]]: both linear in
            # [1, d00, d01, d11, det D], so one product gives every level's determinant and E_l * det.
            s00, s01, s11 = sigma[0, 0], sigma[0, 1], sigma[1, 1]
            ds = s00 * s11 - s01 * s01
            coef = np.array([[1.0, s00, s11, s01], [s00, 0.0, ds, 0.0], [2.0 * s01, 0.0, 0.0, -ds],
                             [s11, ds, 0.0, 0.0], [ds, 0.0, 0.0, 0.0]])
            out = self._d2x2 @ coef  # per level: det N_l, then E_l det N_l at (0, 0), (1, 1), (0, 1)
            det = out[:, 0]
            if not det.min() > 0.0:  # also catches NaN
                return None
            return float(np.log(det).sum()), out[:, 1:] / det[:, None]
        # [vec I; I kron Sigma] and (Sigma kron I)' by one gather each (np.kron costs ~50 us a call)
        ext = np.concatenate([sigma.ravel(), _ZERO_ONE])
        coef = ext[self._coef_gather]
        if q1 > 3:
            nmat = (self._dext @ coef).reshape(self.n1, q1, q1)
            sign, logdets = np.linalg.slogdet(nmat)
            if np.any(sign <= 0):
                return None
            # E_l = Sigma N_l^-1, i.e. E_l' = N_l^-T Sigma
            e = np.linalg.solve(np.swapaxes(nmat, 1, 2), np.broadcast_to(sigma, nmat.shape)).transpose(0, 2, 1)
            return float(np.sum(logdets)), e.reshape(self.n1, q1 * q1)[:, self._pair_columns]
        nmat = self._dext @ coef  # row-major vec(I + D_l Sigma) per level
        g = nmat[:, self._adjugate_gather].reshape(self.n1, 4, q1 * q1)
        adj = g[:, 0] * g[:, 1] - g[:, 2] * g[:, 3]  # row-major vec(adj N_l)
        det = (nmat[:, :q1] * adj[:, self._adjugate_first_column]).sum(axis=1)
        if not det.min() > 0.0:  # also catches NaN
            return None
        # vec_r(Sigma adj) = vec_r(adj) @ (Sigma kron I)' (Sigma symmetric)
        e = (adj @ ext[self._back_gather]) / det[:, None]
        return float(np.log(det).sum()), e

    def _factor_w(self, theta: np.ndarray, r: Response) -> tuple[float, np.ndarray] | None:
        """The Schur complement through ``W = L_1^-1 T1' B`` level by level (any size)."""
        b = self.b.copy()
        b[:, :, -1] = r.b_y
        if self._scalar_rest:
            scale = self._rest_scale(theta)
        q1 = self.q1
        if q1 == 1:
            t = theta[self.first[0].theta.start]
            l1 = np.sqrt(t * t * self.d1[:, 0, 0] + 1.0)
            w = b[:, 0, :] * (t / l1)[:, None]
        elif q1 == 2 and self._first_tril_only:
            t0, t1, t2 = theta[self.first[0].theta]
            d00, d01, d11 = self._d00, self._d01, self._d11
            # A = T' D T + I with T = [[t0, 0], [t1, t2]], factored in closed form per level
            e0 = d00 * t0 + d01 * t1
            e1 = d01 * t0 + d11 * t1
            a = np.sqrt(t0 * e0 + t1 * e1 + 1.0)
            lb = (e1 * t2) / a
            c = np.sqrt((t2 * t2) * d11 + 1.0 - lb * lb)  # positive in exact arithmetic (A is PD)
            b0, b1 = b[:, 0, :], b[:, 1, :]
            w0 = (t0 * b0 + t1 * b1) / a[:, None]
            w1 = (t2 * b1 - lb[:, None] * w0) / c[:, None]
            l1 = np.concatenate([a, c])
            w = np.concatenate([w0, w1])
        else:
            t1m = self._first_factor(theta)
            a1 = t1m.T @ self.d1 @ t1m
            a1[:, np.arange(q1), np.arange(q1)] += 1.0
            try:
                l1b = np.linalg.cholesky(a1)
            except np.linalg.LinAlgError:
                return None
            l1 = np.diagonal(l1b, axis1=-2, axis2=-1)
            w = np.linalg.solve(l1b, t1m.T @ b).reshape(self.n1 * q1, self.m)
        c = self.c.copy()
        c[-1, :-1] = r.c_y
        c[:-1, -1] = r.c_y
        c[-1, -1] = r.yty
        if self._scalar_rest:
            w = w * scale
            c *= scale
            c *= scale[:, None]
        else:
            w = self._scale_rest(w, theta)
            c = self._scale_rest(self._scale_rest(c, theta).T.copy(), theta)
        c -= w.T @ w
        c[self._penalty, self._penalty] += 1.0
        l2, info = _potrf(c, lower=1, clean=0, overwrite_a=1)
        if info != 0:
            return None
        return 2.0 * float(np.sum(np.log(l1))), l2

    @property
    def has_gradient(self) -> bool:
        """Whether :meth:`deviance_gradient` applies (the outer-product form is in use)."""
        return self._outer

    def deviance_gradient(self, theta: np.ndarray, r: Response, reml: bool) -> tuple[float, np.ndarray]:
        """The profiled deviance and its exact gradient in theta (outer-product form only).

        With ``G = d dev / dS`` (from ``S``'s leading inverse and the penalized RSS's
        ``v v'``), the rest terms' derivative is ``2 U Lambda G`` read on their blocks, and the first
        factor's is ``(Gamma + Gamma') T1`` with
        ``Gamma = sum_l N_l^-1 D_l - N_l^-1 M_l (I - E_l D_l)``, ``M_l = B_l H B_l'``,
        ``H = Lambda G Lambda'`` (one more matrix-vector product with the per-level tensor).
        """
        q1, m, qr, p = self.q1, self.m, self.qr, self.p
        grad = np.zeros(self.ntheta)
        t1 = self._first_factor(theta)
        sigma = t1 @ t1.T
        nmat = np.eye(q1) + self.d1 @ sigma
        sign, logdets = np.linalg.slogdet(nmat)
        if np.any(sign <= 0):
            return np.inf, grad
        ninv = np.linalg.inv(nmat)
        e = sigma @ ninv
        u = r.c_full - (e.reshape(self.n1, -1)[:, self._pair_columns].reshape(-1) @ r.k).reshape(m, m)
        if self._scalar_rest:
            scale = self._rest_scale(theta)
            s_mat = u * scale * scale[:, None]
        else:
            s_mat = self._scale_rest(self._scale_rest(u.copy(), theta).T.copy(), theta)
        s_mat[self._penalty, self._penalty] += 1.0
        l2, info = _potrf(s_mat, lower=1, clean=1, overwrite_a=0)
        if info != 0:
            return np.inf, grad
        dev, pwrss, _, _ = self._deviance(float(logdets.sum()), l2, reml=reml)
        if not np.isfinite(dev):
            return np.inf, grad
        # G = d dev / dS
        lead = m - 1 if reml else qr
        g = np.zeros((m, m))
        if lead:
            # S_lead^-1 = L^-T L^-1 (LAPACK's potri multithreads even 20 x 20 matrices: 100x slower)
            linv = _trtri(l2[:lead, :lead], lower=1)[0]
            g[:lead, :lead] = linv.T @ linv
        w = _trtrs(l2[:-1, :-1], l2[-1, :-1], lower=1, trans=1)[0]
        v = np.append(-w, 1.0)
        g += ((self.n - p if reml else self.n) / pwrss) * np.outer(v, v)
        # the rest terms: 2 (U Lambda G) on their blocks
        if self._scalar_rest:
            j_diag = np.einsum("cj,j,jc->c", u, scale, g)
            np.add.at(grad, self._scale_index[:qr], 2.0 * j_diag[:qr])
            h = g * scale * scale[:, None]
        else:
            jm = self._scale_rest(u.copy(), theta) @ g
            for b, off in zip(self.rest, self.rest_offsets):
                blocks = jm[off : off + b.q * b.nlevels, off : off + b.q * b.nlevels]
                per = blocks.reshape(b.nlevels, b.q, b.nlevels, b.q)[np.arange(b.nlevels), :, np.arange(b.nlevels), :]
                rows, cols = b.tril
                grad[b.theta] += 2.0 * per.sum(axis=0)[rows, cols]
            h = self._scale_rest(self._scale_rest(g.copy(), theta, transpose=True).T.copy(), theta, transpose=True)
        # the first factor: Gamma, then (Gamma + Gamma') T1 on its terms' elements
        mm = np.einsum("lai,ij,lbj->lab", r.b_full, h, r.b_full)  # M_l = B_l H B_l'

        eye = np.eye(q1)
        gamma = (ninv @ self.d1 - ninv @ mm @ (eye - e @ self.d1)).sum(axis=0)
        dt = (gamma + gamma.T) @ t1
        for (b, rows, cols), off in zip(self._first_tril, self._q1_offsets):
            grad[b.theta] += dt[off + rows, off + cols]
        return dev, grad

    def deviance(self, theta: np.ndarray, r: Response, reml: bool) -> float:
        """lme4's profiled deviance (ML) or REML criterion at ``theta``; inf where the factor fails."""
        f = self.factor(theta, r)
        if f is None:
            return np.inf
        logdet1, l2 = f
        # the optimizer's hot path: one log and one dot product over the factor's diagonal
        logd = np.log(l2.diagonal())
        pwrss = float(l2[-1, -1]) ** 2
        logdet = logdet1 + 2.0 * float(logd @ self._logdet_weights[reml])
        if not (pwrss > 0.0 and np.isfinite(logdet)):
            return np.inf
        df = self.n - self.p if reml else self.n
        return logdet + df * (1.0 + _LOG_2PI + np.log(pwrss / df))

    def _deviance(self, logdet1: float, l2: np.ndarray, *, reml: bool) -> tuple[float, float, float, float]:
        qr, p = self.qr, self.p
        logd = np.log(l2.diagonal())
        pwrss = float(np.exp(2.0 * logd[-1]))
        logdet_l = logdet1 + 2.0 * float(logd[:qr].sum())
        logdet_rx = 2.0 * float(logd[qr : qr + p].sum())
        if not (pwrss > 0.0 and np.isfinite(logdet_l)):
            return np.inf, pwrss, logdet_l, logdet_rx
        if reml:
            df = self.n - p
            dev = logdet_l + logdet_rx + df * (1.0 + _LOG_2PI + np.log(pwrss / df))
        else:
            dev = logdet_l + self.n * (1.0 + _LOG_2PI + np.log(pwrss / self.n))
        return float(dev), pwrss, logdet_l, logdet_rx

    def solve(self, theta: np.ndarray, r: Response, *, reml: bool) -> Solution:
        """Deviance, fixed effects and the factor of their precision at ``theta``."""
        f = self.factor(theta, r)
        if f is None:
            raise np.linalg.LinAlgError("the penalized least-squares system is not positive definite")
        dev, pwrss, logdet_l, logdet_rx = self._deviance(*f, reml=reml)
        l2 = f[1]
        qr, p = self.qr, self.p
        rx = np.tril(l2[qr : qr + p, qr : qr + p])  # LAPACK leaves the upper triangle as it was
        cb = l2[-1, qr : qr + p]
        # the last row of the augmented factor holds R_X^-T c: beta solves R_X beta = c_beta
        beta = np.linalg.solve(rx.T, cb) if p else np.zeros(0)
        return Solution(dev, pwrss, beta, rx, logdet_l, logdet_rx)
