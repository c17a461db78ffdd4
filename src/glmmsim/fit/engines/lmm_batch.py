"""Many responses of one design at once: lme4's profiled deviance, its gradient and its minimum, batched.

A power analysis refits one design with thousands of responses. One deviance evaluation of
:class:`~.lmm_pls.PlsStructure` is a dozen numpy calls on arrays of a few hundred entries,
so its cost is Python's per-call overhead, not arithmetic. Here every array gets a leading
axis of ``K`` responses and one numpy call serves them all: the deviance and its exact
gradient for ``K`` values of theta (one per response) cost a few times one evaluation.

The split that makes this cheap: the per-level blocks ``B_l = Z1_l' [Zr X y]`` of the
first factor differ between responses only in their last column, so the Schur complement

    U = C - sum_l B_l' E_l B_l,    E_l = Sigma (I + D_l Sigma)^-1

has a response-free part ``C0 - sum_l B0_l' E_l B0_l``, one matrix product of the
``(K, levels Q^2)`` array of ``E_l`` with a ``(levels Q^2, (m-1)^2)`` tensor computed once per
design, and a response column ``c_y - sum_l B0_l' E_l b_l`` (one more product).

:func:`minimize` is Newton's method on those batched evaluations (see its docstring): the
Hessian by forward differences of the exact gradient, made positive definite by its
eigenvalues, a backtracking line search, and per-response convergence. Each response's
iterates depend on that response only, so its result does not depend on the other responses
of the batch (beyond rounding in the batched matrix products). Responses it does not settle
cleanly are reported as such; the engine refits them with BOBYQA (:mod:`.lmm_engine`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .lmm_pls import PlsStructure, lower_inverses, relative_factor
from .scratch import Scratch

__all__ = ["BatchOptimum", "BatchedPls", "minimize", "start_hessian", "supports"]

_LOG_2PI = float(np.log(2.0 * np.pi))

#: Newton iterations before a response is declared unsettled (then refitted by BOBYQA).
MAX_ITER = 60
#: A response is settled when the next quasi-Newton step would move theta by less than this (max-abs).
#: Against 1e-5 (400 started responses of the standard crossed model): 7.44 -> 7.13 evaluations a response,
#: theta within 1.1e-5, the deviance within 3e-8 and the fixed effects within 1e-9 of their SE, and the
#: agreement with lme4 over the validation corpus unchanged (its largest gaps are lme4's own). At 3e-5 a
#: few responses converging slowly onto the bound stop in [BOUNDARY_TOL, NEAR_BOUND), and BOBYQA refits them.
STEP_TOL = 2e-5
#: A diagonal element of theta in (0, NEAR_BOUND) ends near its bound, where where BOBYQA stops
#: (and so lme4's singular rule) depends on its tolerances: such responses are refitted by BOBYQA.
NEAR_BOUND = 1e-3
#: Smallest ratio of the Hessian's eigenvalues at which a response's optimum counts as well determined.
CONDITION = 1e-8
#: lme4's boundary check: a diagonal element below this moves onto 0 where that does not raise the deviance.
BOUNDARY_TOL = 1e-5
_ARMIJO = 1e-4
MAX_STEP = 0.5
#: Multiples of lme4's start among which each response's Newton start is the one of lowest deviance.
START_SCALES = (1.0, 0.6, 0.35, 0.2, 0.12)
#: After a full convex Newton step shorter than this the Hessian is kept (chord iterations).
REUSE_STEP = 1.0
_ROUNDING = 1e-13
#: Most responses one pass of numpy calls evaluates: more amortise Python's per-call cost (a study's task
#: of 100 replicates is one pass); past this many, measured no faster (the (K, m, m) stacks leave the
#: cache; their scratch buffers are this size).
ROW_BLOCK = 128
#: Smaller blocks of rows for the few responses still active in a task's last rounds (see :func:`_rows`).
SMALL_BLOCKS = (16, 32)
_MAX_HALVINGS = 12
#: Responses simulated (from a fixed seed) to average the shared first Hessian of a given start over.
START_DRAWS = 8
START_SEED = 20261206


_SCRATCH = Scratch()


def supports(pls: PlsStructure) -> bool:
    """Whether the batched evaluation applies: the outer-product form, and some dense column besides y."""
    return bool(pls._outer) and pls.m > 1


@dataclass
class BatchOptimum:
    """Per response: theta, deviance, Newton iterations, whether it settled cleanly, and the factor's pieces."""

    theta: np.ndarray  # (K, ntheta)
    deviance: np.ndarray  # (K,)
    iterations: np.ndarray  # (K,) gradient evaluations spent on the response
    settled: np.ndarray  # (K,) bool
    beta: np.ndarray  # (K, p)
    vcov_unscaled: np.ndarray  # (K, p, p): (R_X' R_X)^-1
    pwrss: np.ndarray  # (K,)


class BatchedPls:
    """:class:`~.lmm_pls.PlsStructure`'s deviance for many responses of its design at once.

    Parameters
    ----------
    pls : PlsStructure
        The design's structure (its outer-product form must apply: :func:`supports`).

    Examples
    --------
    >>> from glmmsim.fit.engines.lmm_pls import TermBlock
    >>> rng = np.random.default_rng(0)
    >>> codes = np.repeat(np.arange(10), 4)
    >>> pls = PlsStructure(np.ones((40, 1)), [TermBlock(0, "g", np.ones((40, 1)), codes, 10, slice(0, 1))])
    >>> ys = rng.normal(size=(40, 3)) + rng.normal(size=(10, 3))[codes]
    >>> batch = BatchedPls(pls)
    >>> dev, grad, _ = batch.evaluate(np.full((3, 1), 0.5), batch.responses(ys), reml=True)
    >>> r = pls.response(ys[:, 1])
    >>> bool(np.isclose(dev[1], pls.deviance(np.array([0.5]), r, True), rtol=1e-12))
    True
    """

    def __init__(self, pls: PlsStructure) -> None:
        if not supports(pls):
            raise ValueError("the batched evaluation needs the outer-product form of the structure")
        self.pls = pls
        n1, q1, m = pls.n1, pls.q1, pls.m
        self.n1, self.q1, self.m, self.qr, self.p, self.nt = n1, q1, m, pls.qr, pls.p, pls.ntheta
        f = m - 1  # response-free dense columns: other random effects and X
        self.f = f
        self.d1 = pls.d1
        self.b0 = np.ascontiguousarray(pls.b[:, :, :f])  # (n1, q1, f)
        self.b0r = self.b0.reshape(n1 * q1, f)
        # E_l is symmetric: per level its pairs a <= b (diagonal first), and of every f x f matrix its lower
        # triangle. K0[l pair, tril ij] = (B0_la B0_lb' + B0_lb B0_la')_ij (the sum once for a == b), so
        # sum_l B0_l' E_l B0_l = E_pairs @ K0 on the lower triangle
        lo, hi = pls._pairs
        self.pair_lo, self.pair_hi = lo, hi
        self.npairs = len(lo)
        self.tri = np.tril_indices(f)
        outer = self.b0[:, lo, :, None] * self.b0[:, hi, None, :]  # (n1, npairs, f, f)
        outer[:, q1:] += outer[:, q1:].transpose(0, 1, 3, 2)
        self.k0 = np.ascontiguousarray(outer[:, :, self.tri[0], self.tri[1]].reshape(n1 * self.npairs, -1))
        # M_l = B0_l H B0_l' on the pairs from the doubled lower triangle of H (halved for a < b)
        self.k0t = np.ascontiguousarray(self.k0.T)
        self.pair_half = np.where(np.arange(self.npairs) < q1, 1.0, 0.5)
        self.tri_double = np.where(self.tri[0] == self.tri[1], 1.0, 2.0)
        if q1 == 2:
            # the 2 x 2 first factor works on per-level arrays, (K, component, level): its products take the
            # level terms component by component (pairs, then columns), each component's levels in a row
            self.k0_2x2 = np.ascontiguousarray(self.k0.reshape(n1, self.npairs, -1).transpose(1, 0, 2).reshape(n1 * self.npairs, -1))
            self.k0t_2x2 = np.ascontiguousarray(self.k0_2x2.T)
            self.b0r_2x2 = np.ascontiguousarray(self.b0.transpose(1, 0, 2).reshape(q1 * n1, f))
            self.b0rt_2x2 = np.ascontiguousarray(self.b0r_2x2.T)
            self.d_2x2 = (pls._d00, pls._d01, pls._d11)
        self.c0 = pls.c[:f, :f].copy()
        self.c0_tri = self.c0[self.tri]
        self.eye1 = np.eye(q1)
        self.ones_levels = np.ones((1, n1))
        # T1 = [theta, 0][t1_gather]; its gradient gathers back through this indicator
        self.t1_gather = pls._t1_gather
        self.t1_ind = _indicator(self.t1_gather, self.nt)
        # the rest terms' factor Lambda_r (block diagonal, per level), on the dense block's columns
        self.scalar_rest = pls._scalar_rest
        self.scale_index = pls._scale_index  # into [theta, 1] (scalar rest terms only)
        if self.scalar_rest:
            self.rest_ind = _indicator(self.scale_index[: self.qr], self.nt)
        else:
            gather = np.full((m, m), self.nt, dtype=np.int64)  # into [theta, 0, 1]
            gather[np.arange(self.qr, m), np.arange(self.qr, m)] = self.nt + 1
            for b, off in zip(pls.rest, pls.rest_offsets):
                rows, cols = b.tril
                ids = np.arange(b.theta.start, b.theta.stop)
                for lev in range(b.nlevels):
                    base = off + lev * b.q
                    gather[base + rows, base + cols] = ids  # Lambda_r = blockdiag(T_b), one block per level
            self.lam_gather = gather
            self.lam_ind = _indicator(gather, self.nt)
        self.penalty = np.arange(self.qr)
        # [Z1 Zr X]' by columns (CSC): a product runs over the rows of ys once, each row's terms added to
        # its few outputs in turn, instead of reading ys once per output row (CSR); every output still
        # sums its terms in row order, so the numbers are the same
        self._cross_t = sp.vstack([pls._z1t, pls._zrt, sp.csr_matrix(pls.x.T)]).tocsc()
        self._cross_t.sort_indices()
        self.columns = column_groups(pls)
        self.weights = {r: pls._logdet_weights[r] for r in (False, True)}

    # ------------------------------------------------------------------ responses
    def responses(self, ys: np.ndarray) -> dict[str, np.ndarray]:
        """The cross-products of the columns of ``ys`` (``(n, K)``, offset already removed)."""
        ys = np.ascontiguousarray(ys, dtype=np.float64)  # scipy copies any other layout once per product
        k = ys.shape[1]
        # sparse products of all columns at once: scipy adds each column's terms in the same order whatever
        # the number of columns (from two on; one column goes down another path, so it is doubled), so a
        # response's cross-products do not depend on its batch (BLAS's dense products may: none here)
        wide = ys if k > 1 else np.repeat(ys, 2, axis=1)
        cross = np.asarray(self._cross_t @ wide)[:, :k].T  # (K, n1 q1 + f): [Z1'y, Zr'y, X'y]
        width = self.n1 * self.q1
        b = cross[:, :width].reshape(k, self.n1, self.q1)
        c = np.ascontiguousarray(cross[:, width:])
        # each column's squares summed in row order, as the sparse products sum (the same bits), without an
        # (n, K) temporary: at 100,000 rows a fresh array of that size costs more in page faults than the sum
        yty = np.einsum("nk,nk->k", wide, wide)[:k]
        if self.q1 == 2:
            return {"b": np.ascontiguousarray(b.transpose(0, 2, 1)), "c": c, "yty": yty}  # (K, 2, levels)
        return {"b": b, "c": c, "yty": yty}

    @staticmethod
    def subset(resp: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
        return {key: val[idx] for key, val in resp.items()}

    # ------------------------------------------------------------------ evaluation
    def _first(self, theta: np.ndarray):
        """T1, N_l^-1, E_l and sum_l log det N_l per response, and where every N_l is positive definite."""
        k = theta.shape[0]
        ext = np.concatenate([theta, np.zeros((k, 1))], axis=1)
        t1 = ext[:, self.t1_gather]  # (K, q1, q1)
        sigma = t1 @ t1.transpose(0, 2, 1)
        d = self.d1
        if self.q1 == 2:
            return (t1, *self._first_2x2(sigma))
        if self.q1 == 1:
            nmat = _mm(d[None], sigma[:, None])
            nmat[..., 0, 0] += 1.0
            ninv, det = _inv(nmat)
        else:
            nmat = self.eye1 + d[None] @ sigma[:, None]
            sign, logdet = np.linalg.slogdet(nmat)
            det = np.where(sign > 0, np.exp(logdet), -1.0)
            ninv = np.linalg.inv(nmat)
        ok = np.all(det > 0.0, axis=1)
        logdet1 = np.log(np.where(det > 0.0, det, 1.0)).sum(axis=1)
        e = _mm(np.broadcast_to(sigma[:, None], ninv.shape), ninv)  # (K, n1, q1, q1), symmetric
        return t1, ninv, e, logdet1, ok

    def _first_2x2(self, sigma: np.ndarray):
        """:meth:`_first` for a first factor of two columns, in closed form from one product per response;
        ``N_l^-1`` and ``E_l`` as per-level arrays ``(K, 4, levels)`` and ``(K, 3, levels)`` (see below).

        With ``N = I + D Sigma``: ``det N = 1 + tr(D Sigma) + det D det Sigma``, ``Sigma adj(N) =
        Sigma + det Sigma [[d11, -d01], [-d01, d00]]`` and ``adj(N) = (1 + tr(D Sigma)) I - D Sigma``
        are linear in ``[1, d00, d01, d11, det D]`` (:class:`~.lmm_pls.PlsStructure`'s per-level
        columns), so every level's determinant, ``E_l det N_l`` and ``adj N_l`` come from one
        ``(8, 5) @ (5, levels)`` product per response.
        """
        k = sigma.shape[0]
        s00, s01, s11 = sigma[:, 0, 0], sigma[:, 0, 1], sigma[:, 1, 1]
        ds = s00 * s11 - s01 * s01
        values = np.empty((k, 11))  # [0, 1, s00, s01, s11, det Sigma, their negatives, 2 s01], filled in place
        values[:, 0], values[:, 1] = 0.0, 1.0
        values[:, 2], values[:, 3], values[:, 4], values[:, 5] = s00, s01, s11, ds
        np.negative(values[:, 2:6], out=values[:, 6:10])
        np.multiply(s01, 2.0, out=values[:, 10])
        coef = values[:, _COEF_2X2.T]  # (K, 8, 5)
        out = np.matmul(coef, self.pls._d2x2.T)  # (K, 8, levels)
        det = out[:, 0]
        ok = det.min(axis=1) > 0.0  # NaN fails too
        with np.errstate(divide="ignore", invalid="ignore"):
            r = 1.0 / det
        e = out[:, 1:4] * r[:, None]  # E_l's pairs (0, 0), (1, 1), (0, 1)
        ninv = out[:, 4:] * r[:, None]  # N_l^-1 at (0, 0), (0, 1), (1, 0), (1, 1)
        logdet1 = np.log(np.where(det > 0.0, det, 1.0)).sum(axis=1)
        return ninv, e, logdet1, ok

    def evaluate(self, theta: np.ndarray, resp: dict[str, np.ndarray], *, reml: bool, gradient: bool = True,
                 factor: bool = False):
        """Deviance (REML criterion or ML deviance) and its gradient at each response's theta.

        Returns ``(dev, grad, extra)``: ``dev`` is inf where the system is not positive definite;
        ``extra`` holds the dense factor ``L`` when ``factor``.
        """
        k = theta.shape[0]
        if k > ROW_BLOCK:
            parts = [self.evaluate(theta[lo : lo + ROW_BLOCK], self.subset(resp, slice(lo, lo + ROW_BLOCK)), reml=reml,
                                   gradient=gradient, factor=factor) for lo in range(0, k, ROW_BLOCK)]
            return (np.concatenate([q[0] for q in parts]), None if not gradient else np.concatenate([q[1] for q in parts]),
                    {key: np.concatenate([q[2][key] for q in parts]) for key in parts[0][2]})
        if k == 1:
            # numpy lays out and reduces some arrays of one response differently (rounding differs in the last
            # bits): evaluate one response as two, so that its numbers are those it has in any batch
            dev, grad, extra = self.evaluate(np.repeat(theta, 2, axis=0), {key: np.repeat(v, 2, axis=0) for key, v in resp.items()},
                                             reml=reml, gradient=gradient, factor=factor)
            return dev[:1], None if grad is None else grad[:1], {key: v[:1] for key, v in extra.items()}
        m, f, qr, p, q1 = self.m, self.f, self.qr, self.p, self.q1
        t1, ninv, e, logdet1, ok = self._first(theta)
        b, c_y, yty = resp["b"], resp["c"], resp["yty"]
        scratch = _SCRATCH
        u = scratch.get("u", (k, m, m))
        low, ebb0, beb = self._first_terms(e, b)
        low = self.c0_tri - low
        u[:, self.tri[0], self.tri[1]] = low
        u[:, self.tri[1], self.tri[0]] = low
        ufy = c_y - ebb0
        u[:, :f, f] = ufy
        u[:, f, :f] = ufy
        u[:, f, f] = yty - beb
        if self.scalar_rest:
            scale = np.concatenate([theta, np.ones((k, 1))], axis=1)[:, self.scale_index]  # (K, m)
            s = np.multiply(u, scale[:, :, None], out=scratch.get("s", (k, m, m)))
            s *= scale[:, None, :]
            lam = None
        else:
            lam = np.concatenate([theta, np.zeros((k, 1)), np.ones((k, 1))], axis=1)[:, self.lam_gather]
            s = lam.transpose(0, 2, 1) @ u @ lam
        s[:, self.penalty, self.penalty] += 1.0
        if not ok.all():
            s[~ok] = np.eye(m)  # placeholder, reported as inf below
        chol, good = _cholesky(s)
        ok &= good
        diag = np.diagonal(chol, axis1=1, axis2=2)
        with np.errstate(divide="ignore", invalid="ignore"):
            logd = np.log(diag)
            pwrss = diag[:, -1] ** 2
            df = self.pls.n - p if reml else self.pls.n
            dev = logdet1 + 2.0 * _rows(logd, self.weights[reml][:, None])[:, 0] + df * (1.0 + _LOG_2PI + np.log(pwrss / df))
        ok &= np.isfinite(dev) & (pwrss > 0.0)
        dev = np.where(ok, dev, np.inf)
        extra = {"L": chol} if factor else {}
        if not gradient:
            return dev, None, extra
        grad = np.zeros((k, self.nt))
        if not ok.any():
            return dev, grad, extra
        # G = d dev / dS: the leading block's inverse and (df / pwrss) v v' with v = [-S_ff^-1 s_fy, 1]
        linv = lower_inverses(chol[:, :f, :f], out=scratch.get("lower_inverse", (k, f, f)))  # inverts the leading block
        lead = f if reml else qr
        g = scratch.get("g", (k, m, m))
        g.fill(0.0)
        li = linv[:, :lead, :lead]
        g[:, :lead, :lead] = li.transpose(0, 2, 1) @ li
        w = np.matmul(chol[:, f, None, :f], linv)[:, 0, :]
        v = np.concatenate([-w, np.ones((k, 1))], axis=1)
        outer = np.multiply(v[:, :, None], v[:, None, :], out=scratch.get("outer", (k, m, m)))
        with np.errstate(divide="ignore", invalid="ignore"):
            outer *= (df / pwrss)[:, None, None]
        g += outer
        # the rest terms: 2 <U Lambda G, dLambda>; H = Lambda G Lambda'
        if self.scalar_rest:
            jd = np.multiply(u[:, :qr, :], scale[:, None, :], out=scratch.get("jd", (k, qr, m)))
            jd *= g[:, :qr, :]
            jd = jd.sum(axis=2)  # diag(U diag(s) G), G symmetric
            grad += 2.0 * _rows(jd, self.rest_ind)
            h = np.multiply(g, scale[:, :, None], out=scratch.get("h", (k, m, m)))
            h *= scale[:, None, :]
        else:
            jm = u @ lam @ g
            grad += 2.0 * _rows(jm.reshape(k, m * m), self.lam_ind)
            h = lam @ g @ lam.transpose(0, 2, 1)
        both = self._gamma_both(h, ninv, b)
        dt = _mm(both, t1)
        grad += _rows(dt.reshape(k, q1 * q1), self.t1_ind)
        if not ok.all():
            grad[~ok] = 0.0
        return dev, grad, extra

    def _first_terms(self, e: np.ndarray, b: np.ndarray):
        """The first factor's terms of ``U``: ``sum_l B0_l' E_l B0_l`` (lower triangle), ``sum_l B0_l' E_l b_l``
        and ``sum_l b_l' E_l b_l``, per response."""
        k, n1 = len(e), self.n1
        if self.q1 == 2:  # per-level arrays: E (K, 3, levels), b (K, 2, levels)
            b0, b1 = b[:, 0], b[:, 1]
            eb = np.empty((k, 2, n1))
            np.multiply(e[:, 0], b0, out=eb[:, 0])
            eb[:, 0] += e[:, 2] * b1
            np.multiply(e[:, 2], b0, out=eb[:, 1])
            eb[:, 1] += e[:, 1] * b1
            low = _rows(e.reshape(k, 3 * n1), self.k0_2x2)
            return low, _rows(eb.reshape(k, 2 * n1), self.b0r_2x2), (eb * b).reshape(k, -1).sum(axis=1)
        e_pairs = e[:, :, self.pair_lo, self.pair_hi].reshape(k, n1 * self.npairs)
        eb = _mv(e, b)  # (K, n1, q1)
        return (_rows(e_pairs, self.k0), _rows(eb.reshape(k, n1 * self.q1), self.b0r),
                (eb * b).reshape(k, -1).sum(axis=1))

    def _gamma_both(self, h: np.ndarray, ninv: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``Gamma + Gamma'``, ``Gamma = sum_l N_l^-1 D_l - N_l^-1 M_l N_l^-T`` with ``M_l = B_l H B_l'``: the
        deviance's derivative by the first factor's ``T1`` is ``(Gamma + Gamma') T1``
        (``(I - E_l D_l) = (I + Sigma D_l)^-1 = N_l^-T``)."""
        k, n1, q1, f = len(h), self.n1, self.q1, self.f
        hw = h[:, self.tri[0], self.tri[1]] * self.tri_double
        hyy = h[:, f, f][:, None]
        if q1 == 2:
            return self._gamma_both_2x2(hw, h[:, :f, f], hyy, ninv, b)
        mp = _rows(hw, self.k0t).reshape(k, n1, self.npairs) * self.pair_half
        mm = np.empty((k, n1, q1, q1))
        mm[:, :, self.pair_lo, self.pair_hi] = mp
        mm[:, :, self.pair_hi, self.pair_lo] = mp
        gv = _rows(h[:, :f, f], self.b0r.T).reshape(k, n1, q1)
        hyy = hyy[:, :, None, None]
        mm += gv[..., :, None] * b[..., None, :] + b[..., :, None] * gv[..., None, :] + hyy * (b[..., :, None] * b[..., None, :])
        per_level = (_mm(ninv, self.d1[None]) - _mm(_mm(ninv, mm), np.swapaxes(ninv, -1, -2))).reshape(k, n1, q1 * q1)
        # summed over levels by a product: numpy's sum over a middle axis adds in an order that changes when
        # there is one response only
        gamma = np.matmul(self.ones_levels, per_level)[:, 0, :].reshape(k, q1, q1)
        return gamma + gamma.transpose(0, 2, 1)

    def _gamma_both_2x2(self, hw, hfy, hyy, ninv, b) -> np.ndarray:
        """:meth:`_gamma_both` for a first factor of two columns, written out on per-level arrays:
        ``M_l`` and ``N_l^-1`` by their entries, ``(N^-1 M N^-T)_ij = sum_ab N^-1_ia M_ab N^-1_jb``."""
        k, n1 = len(hw), self.n1
        mp = _rows(hw, self.k0t_2x2).reshape(k, 3, n1)  # M_l's pairs (0, 0), (1, 1), 2 x (0, 1) from H_ff
        gv = _rows(hfy, self.b0rt_2x2).reshape(k, 2, n1)
        b0, b1, g0, g1 = b[:, 0], b[:, 1], gv[:, 0], gv[:, 1]
        hb0, hb1 = hyy * b0, hyy * b1
        m00 = mp[:, 0] + b0 * (2.0 * g0 + hb0)
        m11 = mp[:, 1] + b1 * (2.0 * g1 + hb1)
        m01 = 0.5 * mp[:, 2] + g0 * b1 + b0 * g1 + hb0 * b1
        a, c = ninv[:, 0], ninv[:, 2]  # N_l^-1 = [[a, bb], [c, d]]
        bb, d = ninv[:, 1], ninv[:, 3]
        d00, d01, d11 = self.d_2x2
        terms = np.empty((k, 3, n1))  # per level: (Gamma + Gamma') at (0, 0), (1, 1), (0, 1)
        terms[:, 0] = 2.0 * (a * d00 + bb * d01 - (a * a * m00 + 2.0 * a * bb * m01 + bb * bb * m11))
        terms[:, 1] = 2.0 * (c * d01 + d * d11 - (c * c * m00 + 2.0 * c * d * m01 + d * d * m11))
        terms[:, 2] = (a * d01 + bb * d11 + c * d00 + d * d01
                       - 2.0 * (a * c * m00 + (a * d + bb * c) * m01 + bb * d * m11))
        sums = terms.sum(axis=2)
        out = np.empty((k, 2, 2))
        out[:, 0, 0], out[:, 1, 1] = sums[:, 0], sums[:, 1]
        out[:, 0, 1] = out[:, 1, 0] = sums[:, 2]
        return out

    def estimates(self, theta: np.ndarray, resp: dict[str, np.ndarray], *, reml: bool):
        """Deviance, beta, ``(R_X' R_X)^-1`` and the penalized RSS at each response's theta."""
        dev, _, extra = self.evaluate(theta, resp, reml=reml, gradient=False, factor=True)
        return (dev, *self.from_factor(extra["L"]))

    def from_factor(self, chol: np.ndarray):
        """Beta, ``(R_X' R_X)^-1`` and the penalized RSS from :meth:`evaluate`'s factors ``L``."""
        qr, p, f = self.qr, self.p, self.f
        rx = np.tril(chol[:, qr : qr + p, qr : qr + p])
        cb = chol[:, f, qr : qr + p]
        pwrss = chol[:, f, f] ** 2
        if p:
            rx_inv = np.linalg.inv(rx)
            beta = np.matmul(cb[:, None, :], rx_inv)[:, 0, :]  # R_X beta = c_beta, R_X = rx'
            vcov = rx_inv.transpose(0, 2, 1) @ rx_inv
        else:
            beta, vcov = np.zeros((len(chol), 0)), np.zeros((len(chol), 0, 0))
        return beta, vcov, pwrss


#: :meth:`BatchedPls._first_2x2`'s coefficients as positions in ``[0, 1, s00, s01, s11, det Sigma, -s00, -s01,
#: -s11, -det Sigma, 2 s01]``. Rows: 1, d00, d01, d11, det D; columns: det N, E det N at (0, 0), (1, 1),
#: (0, 1), adj N at (0, 0), (0, 1), (1, 0), (1, 1).
_COEF_2X2 = np.array([
    [1, 2, 4, 3, 1, 0, 0, 1],
    [2, 0, 5, 0, 0, 7, 0, 2],
    [10, 0, 0, 9, 3, 8, 6, 3],
    [4, 5, 0, 0, 4, 0, 7, 0],
    [5, 0, 0, 0, 0, 0, 0, 0],
])


def _rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for at most ``ROW_BLOCK`` rows, as one BLAS product of a fixed number of rows.

    BLAS may sum a row's products in an order that depends on how many rows there are (the
    edge kernels of a partial block of rows, small-matrix paths); ``a`` is copied into a
    zero-padded block of ``ROW_BLOCK`` rows, so every call takes the same path and a
    response's numbers are bit for bit the same whichever responses share its batch. A few
    rows (a task's last rounds) go into a block of ``SMALL_BLOCKS`` rows instead, a fifth to a
    third of the cost, where this machine's BLAS gives every row of such a block the bits it has in a block
    of ``ROW_BLOCK`` rows (:func:`_block_agrees`, checked once per shape). (One BLAS call per row
    would be as reproducible, and 3-4x slower at 64 rows.)
    """
    k, width = a.shape
    if k > ROW_BLOCK:
        raise ValueError(f"at most ROW_BLOCK = {ROW_BLOCK} rows a product, not {k}")
    order = "C" if b.flags.c_contiguous else "F" if b.flags.f_contiguous else ""
    rows = next((r for r in SMALL_BLOCKS if k <= r and _block_agrees(r, b.shape, order)), ROW_BLOCK)
    padded = _SCRATCH.get(f"{rows} rows of {width}", (rows, width))
    padded[:k] = a
    padded[k:] = 0.0
    return (padded @ b)[:k]


@functools.lru_cache(maxsize=None)
def _block_agrees(rows: int, shape: tuple[int, int], order: str) -> bool:
    """Whether BLAS gives each row of a product of ``rows`` rows by a matrix of ``shape`` (stored in
    ``order``, "C" or "F") the bits it has in a product of ``ROW_BLOCK`` rows.

    True of OpenBLAS's Haswell kernels for every block size tried (8 to 128 rows), but a property
    of the BLAS and the processor, so it is checked, on random numbers, rather than assumed.
    """
    if not order or ROW_BLOCK % rows:
        return False
    rng = np.random.default_rng(0)
    a = rng.normal(size=(ROW_BLOCK, shape[0]))
    b = rng.normal(size=shape)
    b = np.asfortranarray(b) if order == "F" else b
    whole = a @ b
    return all(np.array_equal(a[lo : lo + rows] @ b, whole[lo : lo + rows]) for lo in range(0, ROW_BLOCK, rows))


def _mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Products of stacks of small square matrices; written out for 1 x 1 and 2 x 2 (numpy's matmul
    loops over the stack, which costs more than the arithmetic at these sizes)."""
    q = a.shape[-1]
    if q == 1:
        return a * b
    if q == 2:
        a00, a01, a10, a11 = a[..., 0, 0], a[..., 0, 1], a[..., 1, 0], a[..., 1, 1]
        b00, b01, b10, b11 = b[..., 0, 0], b[..., 0, 1], b[..., 1, 0], b[..., 1, 1]
        first = a00 * b00 + a01 * b10
        out = np.empty(first.shape + (2, 2))  # (np.broadcast_shapes costs more than a product here)
        out[..., 0, 0] = first
        out[..., 0, 1] = a00 * b01 + a01 * b11
        out[..., 1, 0] = a10 * b00 + a11 * b10
        out[..., 1, 1] = a10 * b01 + a11 * b11
        return out
    return a @ b


def _mv(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``a @ x`` for stacks of small matrices and vectors (written out for 1 and 2 columns)."""
    q = a.shape[-1]
    if q == 1:
        return a[..., 0] * x
    if q == 2:
        return np.stack([a[..., 0, 0] * x[..., 0] + a[..., 0, 1] * x[..., 1],
                         a[..., 1, 0] * x[..., 0] + a[..., 1, 1] * x[..., 1]], axis=-1)
    return (a @ x[..., None])[..., 0]


def _inv(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverses and determinants of stacks of 1 x 1 or 2 x 2 matrices (NaN-free: a zero determinant gives inf)."""
    if a.shape[-1] == 1:
        det = a[..., 0, 0]
        with np.errstate(divide="ignore"):
            return 1.0 / a, det
    a00, a01, a10, a11 = a[..., 0, 0], a[..., 0, 1], a[..., 1, 0], a[..., 1, 1]
    det = a00 * a11 - a01 * a10
    out = np.empty(a.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = 1.0 / det
    out[..., 0, 0] = a11 * r
    out[..., 0, 1] = -a01 * r
    out[..., 1, 0] = -a10 * r
    out[..., 1, 1] = a00 * r
    return out, det


def _indicator(gather: np.ndarray, nt: int) -> np.ndarray:
    """``(gather.size, nt)``: 1 where an entry of the gathered matrix is theta element ``t``."""
    flat = gather.ravel()
    out = np.zeros((flat.size, nt))
    hit = flat < nt
    out[np.flatnonzero(hit), flat[hit]] = 1.0
    return out


def _cholesky(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched lower Cholesky factors; responses whose matrix is not positive definite get ``ok`` False."""
    try:
        return np.linalg.cholesky(s), np.ones(len(s), dtype=bool)
    except np.linalg.LinAlgError:
        out = np.zeros_like(s)
        ok = np.ones(len(s), dtype=bool)
        for i in range(len(s)):
            try:
                out[i] = np.linalg.cholesky(s[i])
            except np.linalg.LinAlgError:
                ok[i] = False
                out[i] = np.eye(s.shape[1])
        return out, ok


def _hessian(batch: BatchedPls, theta: np.ndarray, grad: np.ndarray, resp, reml: bool) -> np.ndarray:
    """Forward differences of the exact gradient, symmetrised: ``(K, nt, nt)``, one batched evaluation."""
    nt = theta.shape[1]
    points, hs = _hessian_points(theta)
    _, g2, _ = batch.evaluate(points, {key: np.concatenate([v] * nt) for key, v in resp.items()}, reml=reml)
    return _hessian_from(g2, grad, hs)


def _hessian_points(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``nt * K`` points :func:`_hessian` evaluates (element j of every theta moved, for j = 0, 1, ...)
    and the steps."""
    k, nt = theta.shape
    hs = 1e-6 * np.maximum(1.0, np.abs(theta))
    stack = np.repeat(theta[None], nt, axis=0)  # (nt, K, nt)
    idx = np.arange(nt)
    stack[idx, :, idx] += hs.T
    return stack.reshape(nt * k, nt), hs


def _hessian_from(g2: np.ndarray, grad: np.ndarray, hs: np.ndarray) -> np.ndarray:
    """:func:`_hessian` from the gradients at :func:`_hessian_points`."""
    k, nt = grad.shape
    hess = (g2.reshape(nt, k, nt) - grad[None]) / hs.T[:, :, None]  # [j, k, i] = d g_i / d theta_j
    hess = hess.transpose(1, 0, 2)
    return 0.5 * (hess + hess.transpose(0, 2, 1))


def _positive_inverse(hess: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of each Hessian with its eigenvalues replaced by their absolute values (floored),
    and whether it was positive definite and well conditioned already (``convex``).

    Near the optimum every Hessian is convex, and its inverse is the plain one: a batched Cholesky
    factorization proves it positive definite, and ``1 / tr(H^-1) <= min eig`` and ``max eig <=
    tr(H)`` prove it well conditioned, for a third of the cost of the eigendecompositions, which
    are left for the rest.
    """
    inv = np.zeros_like(hess)
    convex = _cholesky(hess)[1]  # positive definite (each matrix on its own, whatever the batch)
    fast = np.flatnonzero(convex)
    if fast.size:
        h = hess[fast] if fast.size < len(hess) else hess
        try:
            hi = np.linalg.inv(h)
        except np.linalg.LinAlgError:  # one numerically singular after all: each on its own (NaN: not sure)
            hi = np.array([_inverse_or_nan(x) for x in h])
        with np.errstate(divide="ignore", invalid="ignore"):
            sure = 1.0 / np.trace(hi, axis1=1, axis2=2) > CONDITION * np.trace(h, axis1=1, axis2=2)
        inv[fast] = hi
        convex[fast] = sure & np.isfinite(hi).all(axis=(1, 2))
    rest = np.flatnonzero(~convex)
    if rest.size:
        inv[rest], convex[rest] = _eigen_inverse(hess[rest])
    return inv, convex


def _inverse_or_nan(a: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.inv(a)
    except np.linalg.LinAlgError:
        return np.full_like(a, np.nan)


def _eigen_inverse(hess: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_positive_inverse` by eigendecompositions (any symmetric matrices)."""
    vals, vecs = np.linalg.eigh(hess)
    # convex, and well determined: on a ridge of the likelihood (an overparameterized covariance) the
    # optimum is not unique and where an optimizer stops on it is lme4's BOBYQA's business
    convex = vals.min(axis=1) > CONDITION * np.abs(vals).max(axis=1)
    top = np.maximum(np.abs(vals).max(axis=1, keepdims=True), 1e-12)
    vals = np.maximum(np.abs(vals), 1e-8 * top)
    vals = np.where(np.isfinite(vals), vals, 1.0)
    vecs = np.where(np.isfinite(vecs), vecs, 0.0)
    return np.matmul(vecs / vals[:, None, :], vecs.transpose(0, 2, 1)), convex


def _scaled_start(batch: BatchedPls, resp, reml: bool, start: np.ndarray) -> np.ndarray:
    """Per response, the best of ``c * start`` over START_SCALES (deviance only, one batched call).

    lme4's start (diagonal 1) is usually far above the optimum's scale, where the deviance is not
    convex and Newton steps are cut; a scale of it closer to the optimum saves several iterations.
    Each response's choice depends on its own deviances only.
    """
    k, nt = next(iter(resp.values())).shape[0], batch.nt
    scales = np.asarray(START_SCALES)
    trial = (scales[:, None, None] * start[None, None, :]).repeat(k, axis=1).reshape(-1, nt)
    dev, _, _ = batch.evaluate(trial, {key: np.concatenate([v] * len(scales)) for key, v in resp.items()},
                               reml=reml, gradient=False)
    best = np.argmin(dev.reshape(len(scales), k), axis=0)  # ties: the larger scale (listed first)
    return scales[best][:, None] * start[None, :]


def column_groups(pls: PlsStructure) -> list[tuple[int, np.ndarray]]:
    """Per column of every term's relative factor: its diagonal theta element and all its theta elements.

    Negating a column of ``T`` leaves ``T T'`` unchanged, so the deviance is the same there.
    """
    out = []
    for b in pls.blocks:
        rows, cols = b.tril
        ids = np.arange(b.theta.start, b.theta.stop)
        for j in range(b.q):
            out.append((int(ids[(rows == j) & (cols == j)][0]), ids[cols == j]))
    return out


def minimize(batch: BatchedPls, resp: dict[str, np.ndarray], *, reml: bool, start: np.ndarray,
             scan: bool = True, hessian: np.ndarray | None = None) -> BatchOptimum:
    """Newton's method from (a multiple of) ``start`` for every response at once.

    ``start`` is one theta for all responses (``(ntheta,)``) or one per response
    (``(K, ntheta)``). With ``scan`` (lme4's start) each response starts at the multiple of it
    in ``START_SCALES`` of lowest deviance; without, at ``start`` itself (generating values, or
    a response's REML estimate for its ML refit: close to the optimum, so fewer iterations).
    ``hessian``, when given, is every response's first Hessian (BFGS updates it from there;
    see :func:`start_hessian`) instead of one by differences per response.

    The deviance depends on theta through ``T T'`` only, so it is defined, smooth and
    unchanged when a column of a term's ``T`` is negated: the minimum over lme4's box
    (diagonal elements >= 0) is the unconstrained minimum with every column turned to a
    non-negative diagonal. Newton runs unconstrained: the Hessian by forward differences of the
    exact gradient, its eigenvalues made positive where it is not convex, steps capped at
    ``MAX_STEP`` and cut by half until the deviance falls (Armijo), the Hessian kept once the
    steps are short (chord iterations). The responses advance in rounds of one batched
    evaluation, of each one's next point (a step, a halved step or a Hessian's points). A
    response is done when a step of a convex model is shorter than ``STEP_TOL`` (the steps
    shrink superlinearly there: theta is then within a small fraction of it); that
    step is taken without evaluating the deviance and gradient there, since the estimates need a
    factorization of the final theta anyway, and :func:`_finish` undoes it if it fails Armijo's test.
    A response whose path took the diagonal element of a column with elements below it
    negative is not settled: it went round lme4's bound, where BOBYQA may stop on the bound at
    a (lower) boundary optimum, and lme4's answer is that one.
    Then columns are turned, lme4's boundary check moves diagonal elements below ``1e-5`` onto 0
    where that does not raise the deviance, and a response is settled unless it did not
    converge or a diagonal element ends in ``[1e-5, NEAR_BOUND)``.

    Examples
    --------
    >>> from glmmsim.fit.engines.lmm_pls import TermBlock
    >>> rng = np.random.default_rng(0)
    >>> codes = np.repeat(np.arange(10), 4)
    >>> pls = PlsStructure(np.ones((40, 1)), [TermBlock(0, "g", np.ones((40, 1)), codes, 10, slice(0, 1))])
    >>> ys = rng.normal(size=(40, 2)) + rng.normal(size=(10, 2))[codes]
    >>> batch = BatchedPls(pls)
    >>> opt = minimize(batch, batch.responses(ys), reml=True, start=np.ones(1))
    >>> opt.settled.tolist(), opt.theta.shape
    ([True, True], (2, 1))
    """
    k, nt = next(iter(resp.values())).shape[0], batch.nt
    start = np.asarray(start, dtype=np.float64)
    if scan:
        theta = _scaled_start(batch, resp, reml, start)
    else:
        theta = np.array(np.broadcast_to(start, (k, nt)))
    dev, grad, _ = batch.evaluate(theta, resp, reml=reml)
    evals = np.full(k, 1 + (len(START_SCALES) if scan else 0), dtype=np.int64)
    settled = np.zeros(k, dtype=bool)
    active = np.isfinite(dev)
    hess_all = np.zeros((k, nt, nt))
    # a diagonal element of a column with elements below it that turns negative: the unconstrained path went
    # round lme4's bound (to the mirror image of the other side), where BOBYQA may stop at the bound instead
    multi = np.array([d for d, col in batch.columns if len(col) > 1], dtype=np.int64)
    crossed = np.zeros(k, dtype=bool)
    # the last, untried step of a settled response: theta before it, the deviance there, the descent it promised
    untried = np.zeros(k, dtype=bool)
    before, before_dev, descent = np.zeros((k, nt)), np.zeros(k), np.zeros(k)
    reuse = np.zeros(k, dtype=bool)  # the last step went well: update the Hessian by BFGS instead of differences
    if hessian is not None:
        hess_all[:] = hessian
        reuse[:] = True
    # each response's line search under way: its Newton step, the fraction tried, the descent the step
    # promises, whether its Hessian was convex, and the halvings so far; and the steps begun
    searching = np.zeros(k, dtype=bool)
    step, alpha, slope = np.zeros((k, nt)), np.ones(k), np.zeros(k)
    convex, halvings, begun = np.zeros(k, dtype=bool), np.zeros(k, dtype=np.int64), np.zeros(k, dtype=np.int64)

    def begin(rows: np.ndarray) -> None:
        """Each row's next Newton step from its Hessian; a step this short is its last (see above)."""
        over = begun[rows] >= MAX_ITER
        active[rows[over]] = False
        rows = rows[~over]
        if not rows.size:
            return
        begun[rows] += 1
        th, g0 = theta[rows], grad[rows]
        hinv, cvx = _positive_inverse(hess_all[rows])
        st = -np.matmul(hinv, g0[:, :, None])[:, :, 0]
        # far from the optimum the (modified) Newton step can be long: at most MAX_STEP, or half of theta's size
        cap = np.maximum(MAX_STEP, 0.5 * np.max(np.abs(th), axis=1))
        size = np.max(np.abs(st), axis=1)
        st *= np.minimum(1.0, cap / np.maximum(size, 1e-300))[:, None]
        # a full Newton step (convex model) this short leaves theta within a fraction of it of the optimum (the
        # steps shrink superlinearly): it is taken untried (no gradient is needed there), and _finish, which
        # factors the final theta anyway, checks that it lowered the deviance
        last = cvx & (size < STEP_TOL)
        step[rows], slope[rows], convex[rows] = st, (g0 * st).sum(axis=1), cvx
        alpha[rows], halvings[rows] = 1.0, 0
        done = rows[last]
        untried[done] = settled[done] = True
        before[done], before_dev[done], descent[done] = theta[done], dev[done], slope[done]
        theta[done] += step[done]
        crossed[done] |= np.any(theta[np.ix_(done, multi)] < 0.0, axis=1)
        active[done] = False
        searching[rows[~last]] = True

    begin(np.flatnonzero(active & reuse))
    # One evaluation a round for all responses: the points of their line searches (a halved step is tried
    # in the next round, with the others' next steps) and the points of the Hessians taken by differences.
    # Each response's evaluations are those it would have on its own, so its numbers do not depend on the
    # others; the rounds' calls, each with a fixed cost, are fewer.
    while active.any():
        idx = np.flatnonzero(active)
        active[idx[~searching[idx] & (begun[idx] >= MAX_ITER)]] = False  # no Hessian for a step never begun
        idx = np.flatnonzero(active)
        if not idx.size:
            break
        search, fresh = idx[searching[idx]], idx[~searching[idx]]
        hpoints, hs = _hessian_points(theta[fresh])
        points = np.concatenate([theta[search] + alpha[search, None] * step[search], hpoints])
        owners = np.concatenate([search, np.tile(fresh, nt)])
        ft, gt, _ = batch.evaluate(points, BatchedPls.subset(resp, owners), reml=reml)
        evals[search] += 1
        evals[fresh] += nt
        if fresh.size:
            hess_all[fresh] = _hessian_from(gt[search.size:], grad[fresh], hs)
        ft, gt = ft[: search.size], gt[: search.size]
        # Armijo's sufficient decrease, up to rounding in the deviance (near the optimum the decrease a step
        # promises falls below the deviance's last digits)
        f0 = dev[search]
        accept = np.isfinite(ft) & (ft <= f0 + _ARMIJO * alpha[search] * slope[search] + _ROUNDING * np.abs(f0))
        rejected = search[~accept]
        alpha[rejected] *= 0.5
        halvings[rejected] += 1
        active[rejected[halvings[rejected] >= _MAX_HALVINGS]] = False  # no step lowers the deviance
        acc = search[accept]
        th, g0 = theta[acc], grad[acc]  # copies (fancy indexing), kept for BFGS below
        theta[acc], dev[acc], grad[acc] = points[: search.size][accept], ft[accept], gt[accept]
        searching[acc] = False
        crossed[acc] |= np.any(theta[np.ix_(acc, multi)] < 0.0, axis=1)
        # BFGS's update of the Hessian by the step and the change of the gradient, after full steps
        hess = hess_all[acc]
        s_k, y_k = theta[acc] - th, grad[acc] - g0
        bs = np.matmul(hess, s_k[:, :, None])[:, :, 0]
        sy, sbs = (s_k * y_k).sum(axis=1), (s_k * bs).sum(axis=1)
        ok = (sy > 0.0) & (sbs > 0.0) & (alpha[acc] == 1.0) & convex[acc]
        upd = hess + y_k[:, :, None] * y_k[:, None, :] / np.where(ok, sy, 1.0)[:, None, None] \
            - bs[:, :, None] * bs[:, None, :] / np.where(ok, sbs, 1.0)[:, None, None]
        hess_all[acc] = np.where(ok[:, None, None], upd, hess)
        reuse[acc] = ok & (np.max(np.abs(step[acc]), axis=1) < REUSE_STEP)
        # a response that went round the bound is refitted by BOBYQA whatever Newton does next: stop here
        active[acc[crossed[acc]]] = False
        go_on = acc[~crossed[acc]]
        begin(np.concatenate([fresh, go_on[reuse[go_on]]]))
    return _finish(batch, theta, dev, evals, settled & ~crossed, resp, reml,
                   untried=(untried, before, before_dev, descent))


def start_hessian(batch: BatchedPls, theta: np.ndarray, *, reml: bool, blocks, draws: int = START_DRAWS) -> np.ndarray:
    """The Hessian of the deviance at ``theta`` averaged over ``draws`` responses simulated at ``theta``.

    A shared first Hessian for responses that all start at ``theta`` (a study's generating
    values): it depends on the design and ``theta`` only (the draws come from a fixed seed, with
    sigma 1 and no fixed effects, which the profiled deviance does not see), so a response's fit
    still depends on that response alone. ``blocks`` are the engine's
    :class:`~.lmm_pls.TermBlock` objects (their columns, group codes and theta slices).

    Examples
    --------
    >>> from glmmsim.fit.engines.lmm_pls import TermBlock
    >>> codes = np.repeat(np.arange(10), 4)
    >>> blocks = [TermBlock(0, "g", np.ones((40, 1)), codes, 10, slice(0, 1))]
    >>> batch = BatchedPls(PlsStructure(np.ones((40, 1)), blocks))
    >>> hess = start_hessian(batch, np.array([0.5]), reml=True, blocks=blocks)
    >>> hess.shape, bool(hess[0, 0] > 0)
    ((1, 1), True)
    """
    rng = np.random.default_rng(START_SEED)
    ys = rng.normal(size=(batch.pls.n, draws))
    for b in blocks:
        effects = rng.normal(size=(draws, b.nlevels, b.q)) @ relative_factor(b, theta).T  # (draws, levels, q)
        ys += np.einsum("nq,dnq->nd", b.z, effects[:, b.codes, :])
    resp = batch.responses(ys)
    thetas = np.repeat(theta[None], draws, axis=0)
    _, grad, _ = batch.evaluate(thetas, resp, reml=reml)
    return _hessian(batch, thetas, grad, resp, reml).mean(axis=0)


def _finish(batch: BatchedPls, theta, dev, evals, settled, resp, reml, untried) -> BatchOptimum:
    """Columns turned to non-negative diagonals, the untried last steps checked, lme4's boundary check,
    the near-bound rule, the estimates.

    ``untried`` is :func:`minimize`'s record of each settled response's last step (taken without
    evaluating it): whether it was, theta before it, the deviance there and the descent it
    promised. A step that did not lower the deviance (Armijo's test, as in the line search) is
    undone. The factor of every settled response's final theta gives its estimates.
    """
    k = len(theta)
    stepped, before, before_dev, descent = untried
    theta[stepped] = np.where(settled[stepped, None], theta[stepped], before[stepped])
    dev[stepped] = before_dev[stepped]
    rows = np.flatnonzero(settled)
    diags = np.array([d for d, _ in batch.columns])
    _turn_columns(batch, theta)
    # one evaluation for the final thetas and, where a diagonal element is within BOUNDARY_TOL of 0, for the
    # theta with it on 0 (lme4's boundary check, decided below)
    near, moved = _onto_bound(theta[rows], diags)
    dev_rows, chol, dm, chol_m = _factor_with_moves(batch, theta, rows, near, moved, resp, reml)
    rise = stepped[rows] & ~(dev_rows <= before_dev[rows] + _ARMIJO * descent[rows]
                             + _ROUNDING * np.abs(before_dev[rows]))
    if rise.any():  # rare: the step is undone, and the boundary check made again from theta before it
        back = rows[rise]
        theta[back] = before[back]
        _turn_columns(batch, theta, back)
        kept = ~rise[near]
        near_back, moved_back = _onto_bound(theta[back], diags)
        dev_back, chol_back, dm_back, chol_m_back = _factor_with_moves(batch, theta, back, near_back, moved_back,
                                                                       resp, reml)
        dev_rows[rise], chol[rise] = dev_back, chol_back
        near = np.concatenate([near[kept], np.flatnonzero(rise)[near_back]])
        moved = np.concatenate([moved[kept], moved_back])
        dm = np.concatenate([dm[kept], dm_back])
        chol_m = np.concatenate([chol_m[kept], chol_m_back])
    dev[rows] = dev_rows
    take = dm <= dev_rows[near] + 1e-10 * np.abs(dev_rows[near])
    theta[rows[near[take]]] = moved[take]
    dev[rows[near[take]]] = dm[take]
    chol[near[take]] = chol_m[take]
    td = theta[:, diags]
    near_bound = np.any((td >= BOUNDARY_TOL) & (td < NEAR_BOUND), axis=1)
    settled = settled & ~near_bound & np.isfinite(dev)
    beta = np.full((k, batch.p), np.nan)
    vcov = np.full((k, batch.p, batch.p), np.nan)
    pwrss = np.full(k, np.nan)
    keep = settled[rows]
    if keep.any():
        ok = rows[keep]
        beta[ok], vcov[ok], pwrss[ok] = batch.from_factor(chol[keep])
    return BatchOptimum(theta, dev, evals, settled, beta, vcov, pwrss)


def _turn_columns(batch: BatchedPls, theta: np.ndarray, rows: np.ndarray | None = None) -> None:
    """Negate every column of a term's ``T`` whose diagonal element is negative (in place; ``T T'`` is unchanged)."""
    rows = np.arange(len(theta)) if rows is None else rows
    for diag, col in batch.columns:
        flip = rows[theta[rows, diag] < 0.0]
        theta[np.ix_(flip, col)] *= -1.0


def _onto_bound(theta: np.ndarray, diags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``theta`` with a diagonal element in (0, BOUNDARY_TOL), and those rows with them on 0."""
    td = theta[:, diags]
    tiny = (td > 0.0) & (td < BOUNDARY_TOL)
    near = np.flatnonzero(tiny.any(axis=1))
    moved = theta[near].copy()
    moved[:, diags] = np.where(tiny[near], 0.0, moved[:, diags])
    return near, moved


def _factor_with_moves(batch: BatchedPls, theta: np.ndarray, rows: np.ndarray, near: np.ndarray, moved: np.ndarray,
                       resp, reml: bool):
    """Deviance and factor ``L`` of the responses ``rows`` at their theta and of ``rows[near]`` at ``moved``
    (no gradient), from one evaluation."""
    m = batch.m
    if not rows.size:
        return np.zeros(0), np.zeros((0, m, m)), np.zeros(0), np.zeros((0, m, m))
    points = np.concatenate([theta[rows], moved])
    dev, _, extra = batch.evaluate(points, BatchedPls.subset(resp, np.concatenate([rows, rows[near]])), reml=reml,
                                   gradient=False, factor=True)
    chol = extra["L"]
    return dev[: rows.size], chol[: rows.size], dev[rows.size:], chol[rows.size:]
