"""The ``lmm`` engine: exact linear mixed models (gaussian, identity link) by lme4's method, in numpy.

The profiled REML/ML deviance of lme4 (:mod:`.lmm_pls`) is minimised over lme4's
theta (per term, the column-major lower triangle of the relative covariance
factor; diagonal elements bounded below by 0) with the optimizer lme4 uses by
default, NLopt's BOBYQA with lme4's tolerances (``xtol_abs = ftol_abs = 1e-8``),
from lme4's start (theta diagonal 1, off-diagonal 0). lme4's two boundary
safeguards follow: a restart when a theta element ends exactly on its bound
while the deviance falls off it, and the check that moves an element within
``1e-5`` of the bound onto it when that lowers the deviance. A fit is singular
when a diagonal theta element is below ``1e-4`` (lme4's ``isSingular``).

Everything that does not depend on the response is computed once in
``prepare``; the likelihood-ratio test's nested fits reuse it (:meth:`nested`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import GlmmsimError
from ...model.parameters import lower_factor
from ..design import FitDesign
from ..errors import EngineError, FitError
from ..protocol import RawFit, is_frozen
from .lmm_pls import PlsStructure, Response, TermBlock, term_order

__all__ = ["LmmEngine", "LmmOptimum", "PreparedLmm"]

#: lme4's defaults: nloptwrap's tolerances, optimizeLmer's boundary check, isSingular's tolerance.
XTOL_ABS = 1e-8
FTOL_ABS = 1e-8
MAXEVAL = 100_000
BOUNDARY_TOL = 1e-5
SINGULAR_TOL = 1e-4
_RESTART_STEP = 1e-5
#: Responses fitted together by fit_many (bounds its arrays; results do not depend on it).
BATCH_CHUNK = 128
#: Largest stack of dense systems (entries) one batched evaluation builds (32 MB an array).
BATCH_ENTRIES = 4_000_000
#: Smallest diagonal theta element of a given Newton start (see PreparedLmm.start_theta).
START_FLOOR = 0.05

_SUPPORTED_NLOPT = ">=2.7"


def _nlopt():
    try:
        import nlopt
    except ImportError as exc:
        raise EngineError(
            f"engine 'lmm' needs the package nlopt{_SUPPORTED_NLOPT} (pip install 'nlopt{_SUPPORTED_NLOPT}'; "
            f"lme4's optimizer, BOBYQA): {exc}"
        ) from None
    return nlopt


#: Largest dense block (rows) at which BLAS runs on one thread: multithreaded BLAS only slows small
#: matrices down, by 30x on a busy machine (threads contend with the other processes for the cores).
SMALL_BLAS = 400
_CONTROLLER: list = []


def _one_blas_thread(size: int):
    """A context limiting BLAS to one thread while ``size`` is small (a no-op without threadpoolctl)."""
    if size > SMALL_BLAS:
        return contextlib.nullcontext()
    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _CONTROLLER.append(None)
        else:
            _CONTROLLER.append(ThreadpoolController())
    controller = _CONTROLLER[0]
    return contextlib.nullcontext() if controller is None else controller.limit(limits=1, user_api="blas")


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


class LmmEngine:
    """Factory product registered as ``"lmm"``: gaussian identity-link models only."""

    name = "lmm"

    def available(self) -> bool:
        try:
            _nlopt()
        except EngineError:
            return False
        return True

    @property
    def version(self) -> str:
        from ... import __version__

        return f"lmm (glmmsim {__version__}, nlopt {_dist_version('nlopt')})"

    def prepare(self, design: FitDesign) -> PreparedLmm:
        if design.family != "gaussian" or design.link != "identity":
            raise EngineError(
                f"engine 'lmm' fits linear mixed models (gaussian family, identity link); this model is "
                f"{design.family} ({design.link}): use engine='glmm' or engine='lme4'"
            )
        _nlopt()
        return PreparedLmm(design, self.version)


def term_blocks(design: FitDesign) -> list[TermBlock]:
    """The design's random terms in lme4's theta order, with their theta slices."""
    order = term_order([td.nlevels for td in design.terms])
    out, start = [], 0
    for k in order:
        td = design.terms[k]
        z = np.column_stack([np.ones(design.nobs) if c is None else np.asarray(c, dtype=np.float64) for c in td.z])
        q = z.shape[1]
        size = q * (q + 1) // 2
        out.append(TermBlock(k, td.term.factor, z, np.asarray(td.codes, dtype=np.int64), td.nlevels, slice(start, start + size)))
        start += size
    return out


def fixed_matrix(design: FitDesign) -> np.ndarray:
    """The fixed-effects columns as one ``(n, p)`` array (None is the intercept)."""
    if not design.x:
        return np.zeros((design.nobs, 0))
    return np.column_stack([np.ones(design.nobs) if c is None else np.asarray(c, dtype=np.float64) for c in design.x])


def _check_rank(x: np.ndarray, design: FitDesign) -> None:
    """A rank-deficient fixed part is an error naming the first dependent column (lme4 drops it silently)."""
    if x.shape[1] == 0:
        return
    rank = np.linalg.matrix_rank(x)
    if rank == x.shape[1]:
        return
    for j in range(1, x.shape[1] + 1):
        if np.linalg.matrix_rank(x[:, :j]) < j:
            name = design.fixed_names[j - 1]
            raise EngineError(
                f"engine 'lmm': the fixed-effect column {name!r} of {design.formula!r} is a linear combination of "
                f"the columns before it (the fixed part has rank {rank} < {x.shape[1]}); drop it from the formula "
                f"(engine='lme4' drops such columns itself)"
            )


@dataclass(frozen=True)
class LmmOptimum:
    """An optimizer run: theta at the optimum, its deviance, evaluations and whether it converged."""

    theta: np.ndarray
    deviance: float
    evaluations: int
    converged: bool
    message: str


class PreparedLmm:
    """One design's penalized least-squares structure, ready for many responses.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from glmmsim.fit.design import build_design
    >>> d = pd.DataFrame({"x": np.tile([0.0, 1.0], 20), "g": np.repeat([f"g{i}" for i in range(10)], 4)})
    >>> prep = LmmEngine().prepare(build_design("y ~ x + (1 | g)", d))
    >>> y = np.random.default_rng(1).normal(size=40) + d["x"].to_numpy()
    >>> raw = prep.fit(y, reml=True)
    >>> raw.beta.shape, raw.converged
    ((2,), True)
    """

    def __init__(self, design: FitDesign, version: str, *, pls: PlsStructure | None = None,
                 blocks: Sequence[TermBlock] | None = None) -> None:
        self._design = design
        self._version = version
        self._blocks = list(blocks) if blocks is not None else term_blocks(design)
        if pls is None:
            x = fixed_matrix(design)
            _check_rank(x, design)
            pls = PlsStructure(x, self._blocks)
        self._pls = pls
        self._lower = np.concatenate([np.where(r == c, 0.0, -np.inf) for b in self._blocks for r, c in [b.tril]])
        self._start = np.where(np.concatenate([r == c for b in self._blocks for r, c in [b.tril]]), 1.0, 0.0)
        self._diagonal = np.flatnonzero(self._lower == 0.0)  # theta's diagonal elements (lme4's singular rule)
        self._design_order = design_order(self._blocks)  # for many fits' theta at once
        self._ddf = threading.local()  # the df calculator caches per replicate: one per thread
        self._batched = None  # lmm_batch.BatchedPls, built by the first fit_many
        self._start_hessians: dict[tuple[bool, bytes], np.ndarray] = {}  # per (reml, start): see _start_hessian

    @property
    def design(self) -> FitDesign:
        return self._design

    @property
    def structure(self) -> PlsStructure:
        """The y-independent penalized least-squares structure (shared with nested designs)."""
        return self._pls

    def nested(self, design: FitDesign, keep: Sequence[int]) -> PreparedLmm:
        """The prepared engine of ``design`` = this design keeping fixed columns ``keep``, reusing every cross-product."""
        return PreparedLmm(design, self._version, pls=self._pls.without_fixed(keep), blocks=self._blocks)

    # ---------------------------------------------------------------- fitting
    def _centred(self, y: np.ndarray) -> np.ndarray:
        offset = self._design.offset
        return y if offset is None else y - offset

    def response(self, y: np.ndarray) -> Response:
        """The response's cross-products (offset removed)."""
        return self._pls.response(self._centred(np.asarray(y, dtype=np.float64)))

    def optimize(self, r: Response, *, reml: bool, start: np.ndarray | None = None) -> LmmOptimum:
        """Minimise the profiled deviance over theta as lme4's ``optimizeLmer`` does (BOBYQA, restart, boundary check)."""
        x0 = self._start if start is None else np.maximum(np.asarray(start, dtype=np.float64), self._lower)
        opt = self._bobyqa(r, reml, x0)
        theta, dev, evals, ok, msg = opt.theta, opt.deviance, opt.evaluations, opt.converged, opt.message
        lower = self._lower
        on_bound = np.flatnonzero(theta == lower)
        if on_bound.size:
            # lme4's restart_edge: the one-sided derivative off the bound; negative means a better interior point
            slopes = []
            for i in on_bound:
                t = theta.copy()
                t[i] = lower[i] + _RESTART_STEP
                slopes.append((self._pls.deviance(t, r, reml) - dev) / _RESTART_STEP)
            if min(slopes) < 0:
                again = self._bobyqa(r, reml, theta)
                theta, dev, ok, msg = again.theta, again.deviance, again.converged, again.message
                evals += again.evaluations
        theta, dev = self._onto_boundary(theta, dev, r, reml)
        if self._is_singular(theta):
            # On a boundary or a ridge of the likelihood BOBYQA may stop before the optimum, and
            # where it stops then depends on rounding in the deviance; one more BOBYQA run from
            # there (deterministic, from this response only) reaches the optimum. Only singular
            # fits pay for it.
            again = self._bobyqa(r, reml, theta)
            evals += again.evaluations
            if again.deviance < dev:
                theta, dev = self._onto_boundary(again.theta, again.deviance, r, reml)
                ok, msg = again.converged, again.message
        return LmmOptimum(theta, dev, evals, ok, msg)

    def _is_singular(self, theta: np.ndarray) -> bool:
        """lme4's ``isSingular()``: a diagonal element of theta below ``SINGULAR_TOL``."""
        return bool((theta[self._diagonal] < SINGULAR_TOL).any())

    def _onto_boundary(self, theta: np.ndarray, dev: float, r: Response, reml: bool) -> tuple[np.ndarray, float]:
        """lme4's boundary check: an element within ``BOUNDARY_TOL`` of its bound moves onto it if that lowers the deviance."""
        lower = self._lower
        gap = theta - lower
        near = np.flatnonzero((gap > 0) & (gap < BOUNDARY_TOL))
        if not near.size:
            return theta, dev
        moved = theta.copy()
        for i in near:
            t = moved.copy()
            t[i] = lower[i]
            if self._pls.deviance(t, r, reml) < dev:
                moved[i] = lower[i]
        return moved, self._pls.deviance(moved, r, reml)

    def _bobyqa(self, r: Response, reml: bool, x0: np.ndarray) -> LmmOptimum:
        nlopt = _nlopt()
        k = len(x0)
        pls = self._pls
        best = [np.inf, x0.copy()]
        count = [0]

        def objective(theta, grad):
            count[0] += 1
            value = pls.deviance(theta, r, reml)
            if value < best[0]:
                best[0], best[1] = value, theta.copy()
            return value

        opt = nlopt.opt(nlopt.LN_BOBYQA, k)
        opt.set_lower_bounds(self._lower)
        opt.set_upper_bounds(np.full(k, np.inf))
        opt.set_xtol_abs(XTOL_ABS)
        opt.set_ftol_abs(FTOL_ABS)
        opt.set_maxeval(MAXEVAL)
        opt.set_min_objective(objective)
        message, converged = "", True
        try:
            theta = np.asarray(opt.optimize(x0), dtype=np.float64)
            value = opt.last_optimum_value()
            status = opt.last_optimize_result()
            if status == nlopt.MAXEVAL_REACHED:
                converged, message = False, f"BOBYQA stopped after {MAXEVAL} deviance evaluations"
        except nlopt.RoundoffLimited:
            theta, value = best[1], best[0]
            message = "BOBYQA stopped by roundoff (the deviance is flat to machine precision)"
        except (RuntimeError, ValueError) as exc:
            theta, value, converged = best[1], best[0], False
            message = f"BOBYQA failed: {exc}"
        if best[0] < value:  # nlopt returns its best point; keep ours if it was better
            theta, value = best[1], best[0]
        if not np.isfinite(value):
            raise FitError(f"engine 'lmm' found no theta where the model of {self._design.formula!r} can be fitted")
        return LmmOptimum(theta, float(value), count[0], converged, message)

    def fit(self, y: np.ndarray, *, reml: bool, start: np.ndarray | None = None) -> RawFit:
        """Fit one response (REML or ML) and return lme4's estimates in the design's order."""
        centred = self._centred(np.asarray(y, dtype=np.float64))
        if np.ptp(centred) == 0.0:
            return self._no_fit(reml, "the response does not vary (after the offset): no variance can be estimated")
        r = self.response(y)
        opt = self.optimize(r, reml=reml, start=start)
        return self._raw(opt, r, reml, y)

    def fit_many(self, ys: np.ndarray, *, reml: bool, start: Sequence[np.ndarray] | None = None) -> list[RawFit]:
        """Fit each column of ``ys`` (shape ``(n, K)``): all at once, each as if alone.

        The responses are fitted together by the batched projected Newton method of
        :mod:`.lmm_batch` (deviance and exact gradient of all of them in one array pass), from
        lme4's start, or from ``start``: one covariance matrix per random term of the design
        (``FitDesign.terms`` order) relative to the residual variance, such as the values a
        simulation was drawn from (:meth:`start_theta`). The optimum is the same; a start near
        it saves Newton iterations. Where the optimum need not be unique (:attr:`unique_optimum`)
        ``start`` is not used: lme4's answer then depends on its path from its own start. A
        response it does not settle cleanly (no convergence, a non-positive-definite
        Hessian, or a diagonal theta element ending in ``(0, 1e-3)``, where BOBYQA's stopping point
        decides lme4's singular flag) is refitted alone by :meth:`fit`. A response's result does
        not depend on the other columns. The fits share their Satterthwaite df and their
        Satterthwaite/Kenward-Roger contrast tests, computed for all of them on the first request
        (:class:`_BatchDf`).

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> from glmmsim.fit.design import build_design
        >>> d = pd.DataFrame({"x": np.tile([0.0, 1.0], 20), "g": np.repeat([f"g{i}" for i in range(10)], 4)})
        >>> prep = LmmEngine().prepare(build_design("y ~ x + (1 | g)", d))
        >>> rng = np.random.default_rng(1)
        >>> ys = rng.normal(size=(40, 3)) + rng.normal(size=(10, 3))[np.repeat(np.arange(10), 4)]
        >>> fits = prep.fit_many(ys, reml=True)
        >>> len(fits), bool(abs(fits[1].loglik - prep.fit(ys[:, 1], reml=True).loglik) < 1e-6)
        (3, True)
        """
        ys = np.asarray(ys, dtype=np.float64)
        if ys.ndim != 2 or ys.shape[0] != self._design.nobs:
            raise FitError(f"fit_many takes an (n, replicates) array with n = {self._design.nobs}; got shape {ys.shape}")
        theta = hessian = None
        if start is not None:
            theta = self.start_theta(start)  # checked even where it is not used
            if self.unique_optimum and self._batch() is not None:
                hessian = self._start_hessian(theta, reml)
                theta = np.broadcast_to(theta, (ys.shape[1], self._pls.ntheta))
            else:
                theta = None
        fits = self._fit_many(ys, reml, theta, hessian)
        self._share_df(ys, fits, reml)
        return fits

    def start_theta(self, covariances: Sequence[np.ndarray]) -> np.ndarray:
        """Theta (this engine's order) of relative covariances, one per design term, as a Newton start.

        A diagonal element below ``START_FLOOR`` is raised to it: the deviance is even in each
        column of a term's factor, so its gradient vanishes on the bound and Newton would stay there.

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> from glmmsim.fit.design import build_design
        >>> d = pd.DataFrame({"x": np.tile([0.0, 1.0], 20), "g": np.repeat([f"g{i}" for i in range(10)], 4)})
        >>> prep = LmmEngine().prepare(build_design("y ~ x + (1 + x | g)", d))
        >>> prep.start_theta([np.array([[0.25, 0.0], [0.0, 0.0]])]).tolist()
        [0.5, 0.0, 0.05]
        """
        covariances = self._design.check_start(covariances)
        theta = np.empty(self._pls.ntheta)
        for b in self._blocks:
            cov = covariances[b.design_index]
            rows, cols = b.tril
            theta[b.theta] = lower_factor(0.5 * (cov + cov.T))[rows, cols]
        return self.floored(theta)

    @functools.cached_property
    def unique_optimum(self) -> bool:
        """Whether distinct theta give distinct models: no grouping factor's terms have linearly
        dependent columns (``(1 | g) + (0 + f | g)`` with a factor ``f`` does: its covariance has
        a ridge of equal likelihood, and where an optimizer stops on it depends on its path)."""
        for factor in dict.fromkeys(b.factor for b in self._blocks):
            z = np.column_stack([b.z for b in self._blocks if b.factor == factor])
            if np.linalg.matrix_rank(z) < z.shape[1]:
                return False
        return True

    def floored(self, thetas: np.ndarray) -> np.ndarray:
        """``thetas`` (engine order, one per row or one) with diagonal elements raised to ``START_FLOOR``."""
        return np.where(self._lower == 0.0, np.maximum(thetas, START_FLOOR), thetas)

    def _start_hessian(self, theta: np.ndarray, reml: bool) -> np.ndarray:
        """The shared first Hessian of responses starting at ``theta`` (:func:`.lmm_batch.start_hessian`), kept per start."""
        from .lmm_batch import start_hessian

        key = (reml, theta.tobytes())
        if key not in self._start_hessians:
            with _one_blas_thread(0):
                self._start_hessians[key] = start_hessian(self._batch(), theta, reml=reml, blocks=self._blocks)
        return self._start_hessians[key]

    def _fit_many(self, ys: np.ndarray, reml: bool, thetas: np.ndarray | None,
                  hessian: np.ndarray | None = None) -> list[RawFit]:
        """:meth:`fit_many` without the shared df: from lme4's start, or response ``j`` from ``thetas[j]``
        (with ``hessian`` as every response's first Hessian, when given)."""
        out: list[RawFit | None] = [None] * ys.shape[1]
        batch = self._batch()
        if batch is not None:
            # the Hessian's differences stack ntheta copies of a chunk's (m x m) systems: bound their size
            pls = self._pls
            chunk = int(max(1, min(BATCH_CHUNK, BATCH_ENTRIES // (max(1, pls.ntheta) * pls.m * pls.m))))
            for lo in range(0, ys.shape[1], chunk):
                self._fit_chunk(batch, ys[:, lo : lo + chunk], lo, reml, out,
                                None if thetas is None else thetas[lo : lo + chunk], hessian)
        return [raw if raw is not None else self.fit(ys[:, j], reml=reml) for j, raw in enumerate(out)]

    def _share_df(self, ys: np.ndarray, fits: list[RawFit], reml: bool) -> None:
        """Point the fits' df (and df tests) at one :class:`_BatchDf` of all of them.

        Only fits with finite estimates take part (the df calculator's input); the others keep
        their own per-fit df. Nothing is computed here: a z or likelihood-ratio study never pays.
        The df are computed later from the responses, so they are copied, unless nobody can
        change ``ys`` (:func:`~glmmsim.fit.protocol.is_frozen`: as ``Fitter.fit_many`` and the
        study runner pass them), which saves a copy of n x K numbers.
        """
        if self._pls.p == 0:
            return
        lmm = [isinstance(raw.native, LmmNative) for raw in fits]
        nt = len(self._lower)
        thetas = np.array([raw.native.theta if ok else np.full(nt, np.nan) for raw, ok in zip(fits, lmm)]).reshape(-1, nt)
        sigmas = np.array([raw.sigma for raw in fits], dtype=np.float64)
        betas = np.array([raw.beta for raw in fits], dtype=np.float64).reshape(len(fits), -1)
        with np.errstate(invalid="ignore"):
            usable = (np.array(lmm) & np.isfinite(sigmas) & (sigmas > 0) & np.isfinite(thetas).all(axis=1)
                      & np.isfinite(betas).all(axis=1))
        members = np.flatnonzero(usable)
        if not members.size:
            return
        every = len(members) == ys.shape[1]
        own = ys if every and is_frozen(ys) else ys.copy() if every else ys[:, members]
        group = _BatchDf(self, own, thetas[members][:, self._design_order], sigmas[members], betas[members], reml,
                         np.array([fits[j].loglik for j in members]), thetas[members])
        for i, j in enumerate(members):
            raw = fits[j]
            raw.native = dataclasses.replace(raw.native, batch=group, batch_index=i)
            raw.df_source = functools.partial(group.dfs, i)

    def _batch(self):
        """The batched evaluator of this design (None where it does not apply), built on first use."""
        if self._batched is None:
            from .lmm_batch import BatchedPls, supports

            self._batched = BatchedPls(self._pls) if supports(self._pls) else False
        return self._batched or None

    def _fit_chunk(self, batch, ys: np.ndarray, first: int, reml: bool, out: list, thetas: np.ndarray | None,
                   hessian: np.ndarray | None = None) -> None:
        """Fit columns ``first, first + 1, ...`` together (from ``thetas`` when given); None where BOBYQA must refit."""
        from .lmm_batch import minimize

        offset = self._design.offset
        centred = ys if offset is None else ys - np.asarray(offset, dtype=np.float64)[:, None]
        cols = np.flatnonzero(_varies(centred))
        if not cols.size:
            return
        with _one_blas_thread(0):
            resp = batch.responses(centred if cols.size == centred.shape[1] else centred[:, cols])
            finite = np.isfinite(resp["yty"])  # a missing or infinite value: fit() alone says what it gives
            if not finite.all():
                cols, resp = cols[finite], batch.subset(resp, finite)
                if not cols.size:
                    return
            if thetas is None:
                opt = minimize(batch, resp, reml=reml, start=self._start)
            else:
                opt = minimize(batch, resp, reml=reml, start=thetas[cols], scan=False, hessian=hessian)
        n, p = self._pls.n, self._pls.p
        settled = np.flatnonzero(opt.settled)
        sigma2 = opt.pwrss[settled] / (n - p if reml else n)
        # the covariances and singular flags of all settled fits in a few array operations, not per fit
        covs = [c * sigma2[:, None, None] for c in self._relative_covariances(opt.theta[settled])]
        singular = (opt.theta[settled][:, self._diagonal] < SINGULAR_TOL).any(axis=1)
        for a, i in enumerate(settled):
            j = cols[i]
            lmm_opt = LmmOptimum(opt.theta[i].copy(), float(opt.deviance[i]), int(opt.iterations[i]), True, "")
            out[first + j] = self._assemble(lmm_opt, opt.beta[i].copy(), sigma2[a] * opt.vcov_unscaled[i],
                                            float(sigma2[a]), reml, ys[:, j], "newton",
                                            covariances=[c[a] for c in covs], singular=bool(singular[a]))

    def _relative_covariances(self, thetas: np.ndarray) -> list[np.ndarray]:
        """Each design term's covariance relative to the residual variance, ``T T'``, for every row of
        ``thetas`` (engine order): a ``(K, q, q)`` array per term, in design order."""
        out: list[np.ndarray] = [np.empty((len(thetas), 0, 0))] * len(self._design.terms)
        for b in self._blocks:
            t = np.zeros((len(thetas), b.q, b.q))
            rows, cols = b.tril
            t[:, rows, cols] = thetas[:, b.theta]
            out[b.design_index] = t @ t.transpose(0, 2, 1)
        return out

    def _raw(self, opt: LmmOptimum, r: Response, reml: bool, y: np.ndarray) -> RawFit:
        pls = self._pls
        sol = pls.solve(opt.theta, r, reml=reml)
        n, p = pls.n, pls.p
        sigma2 = sol.pwrss / (n - p if reml else n)
        rx_inv = np.linalg.solve(sol.rx, np.eye(p)) if p else np.zeros((0, 0))
        vcov = sigma2 * (rx_inv.T @ rx_inv)
        return self._assemble(opt, sol.beta, vcov, sigma2, reml, y)

    def _assemble(self, opt: LmmOptimum, beta: np.ndarray, vcov: np.ndarray, sigma2: float, reml: bool,
                  y: np.ndarray, optimizer: str = "bobyqa", covariances: list[np.ndarray] | None = None,
                  singular: bool | None = None) -> RawFit:
        """The RawFit of an optimum: random-effect covariances, lme4's singular rule, warnings (the
        covariances and the singular flag computed here unless given)."""
        n, p = self._pls.n, self._pls.p
        if covariances is None:
            covariances = [sigma2 * c[0] for c in self._relative_covariances(opt.theta[None])]
        if singular is None:
            singular = self._is_singular(opt.theta)
        warnings = []
        if not opt.converged:
            warnings.append(f"convergence: {opt.message}")
        if singular:
            warnings.append("boundary (singular) fit: see help('isSingular')")
        native = LmmNative(opt.theta.copy(), float(np.sqrt(sigma2)), opt.evaluations, optimizer, float(opt.deviance))
        return RawFit(
            beta=beta,
            vcov=vcov,
            df=np.full(p, np.nan),
            loglik=-0.5 * opt.deviance,
            reml=reml,
            sigma=float(np.sqrt(sigma2)),
            covariances=covariances,
            converged=opt.converged,
            singular=singular,
            warnings=warnings,
            engine="lmm",
            engine_version=self._version,
            nobs=n,
            native=native,
            df_source=lambda: self._satterthwaite_dfs(y, native, reml),
        )

    def _no_fit(self, reml: bool, why: str) -> RawFit:
        """A failed fit, reported as data: every estimate NaN, not converged, the reason as a warning."""
        p = self._pls.p
        return RawFit(
            beta=np.full(p, np.nan),
            vcov=np.full((p, p), np.nan),
            df=np.full(p, np.nan),
            loglik=np.nan,
            reml=reml,
            sigma=np.nan,
            covariances=[np.full((len(td.coefs),) * 2, np.nan) for td in self._design.terms],
            converged=False,
            singular=False,
            warnings=[why],
            engine="lmm",
            engine_version=self._version,
            nobs=self._pls.n,
        )

    def _satterthwaite_dfs(self, y: np.ndarray, native: LmmNative, reml: bool) -> np.ndarray:
        """Satterthwaite's df of each coefficient's t test (NaN for all when no df calculator is installed)."""
        p = self._pls.p
        if p == 0:
            return np.zeros(0)
        try:
            calc = self._ddf_calculator()
        except EngineError:
            return np.full(p, np.nan)
        yc = self._centred(np.asarray(y, dtype=np.float64))
        theta = native.theta_design(self._blocks)
        with _one_blas_thread(self._ddf_size):
            return calc.satterthwaite_dfs(yc, theta, native.sigma, reml)

    # ---------------------------------------------------------------- likelihood ratio
    def lrt(self, y: np.ndarray, nested: PreparedLmm, *, reml: bool, native=None) -> tuple[float, float]:
        """ML log-likelihoods of this design's model and of ``nested`` (fewer fixed effects) for response ``y``.

        For a fit of a ``fit_many`` call (``native`` its :class:`LmmNative`) both come from ML fits
        of every response of that call, made together on the first request (``fit_many`` of
        ``nested``, and of this design where the fits were REML); otherwise from this fit (ML) or
        an ML refit, and an ML fit of ``nested``, one by one.
        """
        if isinstance(native, LmmNative) and native.batch is not None:
            both = native.batch.lrt(native.batch_index, nested)
            if both is not None:
                return both
        if isinstance(native, LmmNative) and not reml:
            full = -0.5 * native.deviance
        else:
            full = self.fit(y, reml=False).loglik
        return full, nested.fit(y, reml=False).loglik

    # ---------------------------------------------------------------- tests with df
    def contrast(self, y: np.ndarray, L: np.ndarray, *, reml: bool, ddf: str, native=None) -> tuple[float, float, float]:
        """F test of ``L @ beta = 0`` with Satterthwaite's or Kenward-Roger's df (lmerTest's / pbkrtest's definitions)."""
        with _one_blas_thread(self._ddf_size):
            return self._contrast(y, L, reml=reml, ddf=ddf, native=native)

    @property
    def _ddf_size(self) -> int:
        """The df calculator works on dense matrices of the random effects and fixed effects."""
        return self._pls.n1 * self._pls.q1 + self._pls.m

    def _contrast(self, y: np.ndarray, L: np.ndarray, *, reml: bool, ddf: str, native=None) -> tuple[float, float, float]:
        from scipy import stats

        raw = native if native is not None and isinstance(getattr(native, "native", None), LmmNative) else self.fit(y, reml=reml)
        state = raw.native
        if state.batch is not None and (ddf == "Satterthwaite" or (ddf == "Kenward-Roger" and raw.reml)):
            # a fit of a fit_many batch: the test of the whole batch in one stacked call, on the first request
            f_value, ndf, den = state.batch.contrast(state.batch_index, np.asarray(L, dtype=np.float64), ddf)
            return float(f_value), float(den), float(stats.f.sf(f_value, ndf, den))
        calc = self._ddf_calculator()
        yc = self._centred(np.asarray(y, dtype=np.float64))
        if ddf == "Satterthwaite":
            f_value, ndf, den = calc.satterthwaite(yc, state.theta_design(self._blocks), state.sigma, reml, L)
        elif ddf == "Kenward-Roger":
            if not reml:  # pbkrtest evaluates Kenward-Roger at the REML estimates, refitting an ML model
                raw = self.fit(y, reml=True)
                state = raw.native
            f_value, ndf, den = calc.kenward_roger(yc, raw.beta, state.theta_design(self._blocks), state.sigma, True, L)
        else:
            raise EngineError(f"engine 'lmm' has no {ddf!r} test; valid: 'Satterthwaite', 'Kenward-Roger'")
        return float(f_value), float(den), float(stats.f.sf(f_value, ndf, den))

    def _ddf_calculator(self):
        calc = getattr(self._ddf, "calc", None)
        if calc is None:
            try:
                from .lmm_ddf import DdfCalculator
            except ImportError:
                raise EngineError(
                    "engine 'lmm' has no Satterthwaite/Kenward-Roger calculator in this build; use method='z' or "
                    "'lrt', or engine='lme4'"
                ) from None
            design = self._design
            blocks = [
                (np.column_stack([np.ones(design.nobs) if c is None else c for c in td.z]), td.codes, td.nlevels)
                for td in design.terms
            ]
            calc = self._ddf.calc = DdfCalculator(self._pls.x, blocks)
        return calc


@dataclass(frozen=True)
class LmmNative:
    """The lmm engine's own result: theta (lme4's order), sigma, deviance evaluations and the optimizer.

    ``optimizer`` is ``"bobyqa"`` (lme4's, :meth:`PreparedLmm.fit`) or ``"newton"`` (the batched
    solve of :meth:`PreparedLmm.fit_many`; its evaluations count deviance-and-gradient evaluations).
    """

    theta: np.ndarray
    sigma: float
    evaluations: int
    optimizer: str = "bobyqa"
    #: the deviance at the optimum (REML criterion or ML deviance): the fit's log-likelihood is -deviance / 2
    deviance: float = float("nan")
    #: the fit_many batch whose df this fit shares (:class:`_BatchDf`) and the fit's row in it
    batch: Any = dataclasses.field(default=None, repr=False, compare=False)
    batch_index: int = -1

    def theta_design(self, blocks: Sequence[TermBlock]) -> np.ndarray:
        """Theta with the terms in ``FitDesign.terms`` order (what the df calculator takes)."""
        return self.theta[design_order(blocks)]


def design_order(blocks: Sequence[TermBlock]) -> np.ndarray:
    """Positions of theta's elements (the engine's term order) with the terms in ``FitDesign.terms`` order."""
    ordered = sorted(blocks, key=lambda b: b.design_index)
    return np.concatenate([np.arange(b.theta.start, b.theta.stop) for b in ordered] or [np.zeros(0, dtype=np.int64)])


#: What a stacked df call may raise on a numerically hopeless fit (then each fit is computed on its own,
#: so the error stays that fit's).
_BATCH_FAILURES = (np.linalg.LinAlgError, ValueError, FloatingPointError, ArithmeticError)


def _varies(ys: np.ndarray) -> np.ndarray:
    """Whether each column of ``ys`` holds two different values (``np.ptp(ys, axis=0) > 0`` for finite columns).

    Decided on the first ``_HEAD_ROWS`` rows where a column already differs there (a simulated
    response does by its second row); only the other columns are scanned whole. ``ptp`` over
    all rows would read the (n, K) numbers twice: at 100,000 rows that costs more than a fit.

    Examples
    --------
    >>> _varies(np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 4.0]] + [[1.0, 5.0, 3.0]] * 40)).tolist()
    [False, True, True]
    """
    head = ys[:_HEAD_ROWS]
    varies = (head != head[:1]).any(axis=0)
    undecided = np.flatnonzero(~varies)
    if undecided.size:
        varies[undecided] = np.ptp(ys[:, undecided], axis=0) > 0.0
    return varies


_HEAD_ROWS = 32


class _BatchDf:
    """The df tests of the fits of one ``fit_many`` call, computed for all of them on the first request.

    A study runs the same test on every replicate, so the first fit that asks for its
    Satterthwaite df (or a Satterthwaite or Kenward-Roger contrast) gets those of every fit of
    the batch from one stacked call of the df calculator (``DdfCalculator.*_many``, about 3.5x
    cheaper a replicate than one call each); the answers are kept, keyed by the contrast. Each
    fit's numbers equal its own per-fit calculation to rounding (1e-10 relative), whichever
    fits share the batch.

    Parameters
    ----------
    prepared : PreparedLmm
        The engine that fitted them (its df calculator).
    ys : ndarray, shape (n, K)
        The responses (with the offset, if any).
    thetas, sigmas, betas : ndarray
        Per fit: theta in the design's term order ``(K, ntheta)``, sigma ``(K,)``, beta ``(K, p)``.
    reml : bool
        Whether the fits are REML fits.
    logliks : ndarray, shape (K,)
        The fits' log-likelihoods (REML criterion for REML fits).
    starts : ndarray, shape (K, ntheta)
        The fits' theta in the engine's order: the likelihood-ratio test's ML refits start there.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from glmmsim.fit.design import build_design
    >>> d = pd.DataFrame({"x": np.tile([0.0, 1.0], 20), "g": np.repeat([f"g{i}" for i in range(10)], 4)})
    >>> prep = LmmEngine().prepare(build_design("y ~ x + (1 | g)", d))
    >>> rng = np.random.default_rng(1)
    >>> ys = rng.normal(size=(40, 3)) + rng.normal(size=(10, 3))[np.repeat(np.arange(10), 4)]
    >>> fits = prep.fit_many(ys, reml=True)
    >>> batched = fits[2].df_source()  # the first request computes the df of all three fits
    >>> bool(np.allclose(batched, prep._satterthwaite_dfs(ys[:, 2], fits[2].native, True), rtol=1e-10))
    True
    """

    def __init__(self, prepared: PreparedLmm, ys: np.ndarray, thetas: np.ndarray, sigmas: np.ndarray,
                 betas: np.ndarray, reml: bool, logliks: np.ndarray, starts: np.ndarray) -> None:
        self._prepared = prepared
        self._starts = prepared.floored(starts) if prepared.unique_optimum else None
        self._raw_ys, self._thetas, self._sigmas, self._betas, self._reml = ys, thetas, sigmas, betas, reml
        self._logliks = logliks
        self._lrts: dict[int, tuple[PreparedLmm, np.ndarray, np.ndarray]] = {}
        self._lrt_failed = False
        self._dfs: np.ndarray | None = None
        self._tests: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._failed = False  # the stacked call raised: every fit computes its own (and raises its own error)
        self._lock = threading.Lock()

    @functools.cached_property
    def _ys(self) -> np.ndarray:
        """The responses with the offset removed (what the df calculator takes)."""
        offset = self._prepared.design.offset
        return self._raw_ys if offset is None else self._raw_ys - np.asarray(offset, dtype=np.float64)[:, None]

    def lrt(self, i: int, nested: PreparedLmm) -> tuple[float, float] | None:
        """ML log-likelihoods of fit ``i``'s model and of ``nested``, or None where the batch's fits failed.

        The first request fits every response of the batch by ML on ``nested`` (and on the full
        design where the fits are REML) in ``fit_many`` calls; the answers are kept per nested design.
        """
        with self._lock:
            key = id(nested)
            if key not in self._lrts and not self._lrt_failed:
                try:
                    # each response's ML fits start at its REML estimate (the same random terms): near their optimum
                    reduced = np.array([r.loglik for r in nested._fit_many(self._raw_ys, False, self._starts)])
                    full = (np.array([r.loglik for r in self._prepared._fit_many(self._raw_ys, False, self._starts)])
                            if self._reml else self._logliks)
                    self._lrts[key] = (nested, full, reduced)  # the design kept: its id stays its own
                except (GlmmsimError, *_BATCH_FAILURES):
                    self._lrt_failed = True
            found = self._lrts.get(key)
        return None if found is None else (float(found[1][i]), float(found[2][i]))

    def dfs(self, i: int) -> np.ndarray:
        """Satterthwaite's df of every coefficient of fit ``i`` (the ``fixed`` table's column)."""
        prep = self._prepared
        try:
            calc = prep._ddf_calculator()
        except EngineError:
            return np.full(self._betas.shape[1], np.nan)
        with self._lock:
            if self._dfs is None and not self._failed:
                try:
                    with _one_blas_thread(prep._ddf_size):
                        self._dfs = calc.satterthwaite_dfs_many(self._ys, self._thetas, self._sigmas, self._reml)
                except _BATCH_FAILURES:
                    self._failed = True  # numerically hopeless somewhere in the batch: each fit on its own
            if self._dfs is not None:
                return self._dfs[i].copy()
        with _one_blas_thread(prep._ddf_size):
            return calc.satterthwaite_dfs(self._ys[:, i], self._thetas[i], self._sigmas[i], self._reml)

    def contrast(self, i: int, L: np.ndarray, ddf: str) -> tuple[float, int, float]:
        """``(F, ndf, ddf)`` of the test of ``L beta = 0`` on fit ``i`` (Kenward-Roger: REML fits only)."""
        L = np.atleast_2d(L)
        key = (ddf, L.shape, L.tobytes())
        prep = self._prepared
        calc = prep._ddf_calculator()
        satterthwaite = ddf == "Satterthwaite"
        with self._lock:
            if key not in self._tests and not self._failed:
                try:
                    with _one_blas_thread(prep._ddf_size):
                        if satterthwaite:
                            self._tests[key] = calc.satterthwaite_many(self._ys, self._thetas, self._sigmas,
                                                                       self._reml, L)
                        else:
                            self._tests[key] = calc.kenward_roger_many(self._ys, self._betas, self._thetas,
                                                                       self._sigmas, L)
                except _BATCH_FAILURES:
                    self._failed = True
            found = self._tests.get(key)
        if found is not None:
            f_value, ndf, den = found
            return float(f_value[i]), int(ndf[i]), float(den[i])
        y, theta, sigma = self._ys[:, i], self._thetas[i], self._sigmas[i]
        with _one_blas_thread(prep._ddf_size):
            if satterthwaite:
                return calc.satterthwaite(y, theta, sigma, self._reml, L)
            return calc.kenward_roger(y, self._betas[i], theta, sigma, True, L)
