"""The ``glmm`` engine: the Rust mixed-model kernel of the PyPI package ``glmm`` (LGPL-3.0-or-later).

glmmsim hands glmm the materialised design as plain numeric columns (``X1``,
``X2``, ...) and one categorical column per random term (``G0``, ...), so glmm
never reads the user's formula and coefficient names stay glmmsim's. glmm 0.6
refuses random terms without an intercept (``(0 + x | g)``, and so the
uncorrelated pieces of ``(x || g)``) and random slopes that are not also fixed
effects (``y ~ 1 + (1 + x | g)``). Where the term's columns span the constant
column (``(0 + cond | g)`` with categorical ``cond``: the level indicators sum to
one) the term is refitted exactly in an intercept basis and its covariance
mapped back; otherwise an EngineError names ``lme4`` as the engine that fits it.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..design import FitDesign, TermDesign
from ..errors import EngineError, FitError
from ..protocol import RawFit

__all__ = ["GlmmEngine", "term_basis"]

_SUPPORTED = ">=0.6.2,<0.7"
_GLMM_FAMILY = {"negative_binomial": "negativebinomial"}
# glmm's diagnostics (by their stable "kind") that say a fit with estimates may not have reached its optimum
_CONVERGENCE_KINDS = frozenset({"search_limit", "pirls_exhausted", "precision_limited", "ill_conditioned",
                                "gradient_search_fallback", "nb_shape_unsettled"})


@dataclass(frozen=True)
class _Basis:
    """How a term is handed to glmm: its slopes as fixed columns, and the way back.

    ``slopes`` are positions of fixed-effect columns equal to the term's columns
    after its intercept (glmm takes a random slope only when the same column is a
    fixed effect); ``back`` maps glmm's effects ``b'`` (intercept first) to the
    term's own ``b = back @ b'``, None when the term has an intercept.
    """

    slopes: tuple[int, ...]
    back: np.ndarray | None


def _fixed_match(col: np.ndarray, design: FitDesign) -> int | None:
    for i, x in enumerate(design.x):
        if x is not None and np.array_equal(x, col):
            return i
    return None


def term_basis(td: TermDesign, design: FitDesign) -> tuple[_Basis | None, str]:
    """The basis in which glmm fits a random term exactly, or None and the reason it cannot.

    A term without an intercept is exactly a term with one when the constant
    column lies in the span of its columns: then ``Z = Z' M`` for the basis
    ``Z' = [1, Z without column j]`` and an invertible ``M``; the unstructured
    covariance of ``b' = M b`` covers the same models, and ``Sigma = M^-1 Sigma' M^-T``.
    """
    if td.has_intercept:
        slopes = [_fixed_match(c, design) for c in td.z[1:]]
        if None in slopes:
            bad = td.coefs[1 + slopes.index(None)]
            return None, f"its slope {bad!r} is not also a fixed effect (glmm needs every random slope in the fixed part)"
        return _Basis(tuple(slopes), None), ""
    z = np.column_stack([np.ones(design.nobs) if c is None else c for c in td.z])
    coef, *_ = np.linalg.lstsq(z, np.ones(design.nobs), rcond=None)
    if not np.allclose(z @ coef, 1.0, rtol=0, atol=1e-9):
        return None, "it has no intercept and its columns do not span one (glmm needs an intercept in every random term)"
    q = z.shape[1]
    for j in np.argsort(-np.abs(coef)):
        if abs(coef[j]) < 1e-9:
            break
        others = [i for i in range(q) if i != j]
        slopes = [_fixed_match(z[:, i], design) for i in others]
        if None in slopes:
            continue
        # Z' = [1, Z_others]: Z_i = Z'_(1+pos) for i != j, and Z_j = (1 - sum_i c_i Z_i) / c_j
        m = np.zeros((q, q))
        m[0, j] = 1.0 / coef[j]
        for pos, i in enumerate(others):
            m[1 + pos, i] = 1.0
            m[1 + pos, j] = -coef[i] / coef[j]
        return _Basis(tuple(slopes), np.linalg.inv(m)), ""  # b' = M b, so b = M^-1 b'
    return None, "its columns, rewritten with an intercept, are not all fixed effects (glmm needs every random slope in the fixed part)"


def _module():
    try:
        import glmm
    except ImportError as exc:  # a core dependency, so this means a broken install
        raise EngineError(f"engine 'glmm' needs the package glmm{_SUPPORTED} (pip install 'glmm{_SUPPORTED}'): {exc}") from None
    return glmm


class GlmmEngine:
    """Factory product registered as ``"glmm"``."""

    name = "glmm"

    def available(self) -> bool:
        try:
            _module()
        except EngineError:
            return False
        return True

    @property
    def version(self) -> str:
        return f"glmm {_dist_version()}"

    def prepare(self, design: FitDesign) -> _PreparedGlmm:
        return _PreparedGlmm(design, _module())


def _dist_version() -> str:
    from importlib.metadata import version

    return version("glmm")


class _PreparedGlmm:
    """One design, ready for many responses: columns and formula built once."""

    def __init__(self, design: FitDesign, glmm_module) -> None:
        self._glmm = glmm_module
        self._design = design
        self._version = f"glmm {_dist_version()}"
        self._bases = []
        for td in design.terms:
            basis, why = term_basis(td, design)
            if basis is None:
                raise EngineError(
                    f"engine 'glmm' ({_dist_version()}) cannot fit random term {str(td.term)!r} "
                    f"(from {td.term.source!r}): {why}. Fit it with engine='lme4'"
                )
            self._bases.append(basis)
        self._columns: dict[str, object] = {}
        fixed = []
        for i, col in enumerate(design.x):
            if col is None:
                continue
            self._columns[f"X{i}"] = col
            fixed.append(f"X{i}")
        has_intercept = bool(design.x) and design.x[0] is None
        rhs = ["1" if has_intercept else "0"] + fixed
        self._names = {"(Intercept)": 0} if has_intercept else {}
        self._names.update({f"X{i}": i for i in range(len(design.x))})
        for k, (td, basis) in enumerate(zip(design.terms, self._bases)):
            slopes = [f"X{i}" for i in basis.slopes]
            self._columns[f"G{k}"] = pd.Categorical.from_codes(td.codes, categories=np.arange(td.nlevels))
            rhs.append(f"({' + '.join(['1'] + slopes)} | G{k})")
        binomial_counts = design.family == "binomial" and design.trials is not None
        lhs = "cbind(Y, F)" if binomial_counts else "Y"
        self._formula = f"{lhs} ~ {' + '.join(rhs)}"
        self._renames = _renamer(design, self._bases)

    def fit(self, y: np.ndarray, *, reml: bool) -> RawFit:
        design = self._design
        data = dict(self._columns)
        data["Y"] = y
        if design.family == "binomial" and design.trials is not None:
            data["F"] = design.trials - y
        try:
            with warnings.catch_warnings():
                # glmm reports every diagnostic in Fit.warnings too: keep them as data, not as noise
                warnings.simplefilter("ignore", self._glmm.DiagnosticWarning)
                res = self._glmm.fit(
                    data,
                    self._formula,
                    _GLMM_FAMILY.get(design.family, design.family),
                    link=design.link,
                    offset=design.offset,
                    reml=reml if design.family == "gaussian" else None,
                )
        except (ValueError, RuntimeError, NotImplementedError) as exc:
            raise FitError(f"engine 'glmm' failed on {design.formula!r}: {self._renames(str(exc))}") from None
        return self._raw(res, reml)

    def contrast(self, y: np.ndarray, L: np.ndarray, *, reml: bool, ddf: str, native=None) -> tuple[float, float, float]:
        """F test of ``L @ beta = 0`` with Satterthwaite's df (glmm's ``Fit.contrast_test``)."""
        if ddf != "Satterthwaite":
            raise EngineError(f"engine 'glmm' has no {ddf} test; use engine='lme4' (pbkrtest) for it")
        fit = native.native if native is not None and native.native is not None else self.fit(y, reml=reml).native
        order = [self._names[n] for n in fit.names]
        table = fit.contrast_test(L[:, order])
        return float(table["F value"][0]), float(table["DenDF"][0]), float(table["Pr(>F)"][0])

    def _layout(self, res) -> tuple[np.ndarray | None, list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]]:
        """Where glmm's numbers go, worked out once per design (glmm's output order is fixed by the formula).

        Returns the fixed-effect order (None when it is the design's) and per grouping
        ``(term, vech rows, vech cols, positions)`` to unpack its vech-packed covariance.
        """
        key = (tuple(res.names), tuple((g, tuple(c)) for g, c in res.re_groups))
        if getattr(self, "_layout_key", None) == key:
            return self._layout_value
        order = np.array([self._names[n] for n in res.names], dtype=int)
        fixed_order = None if np.array_equal(order, np.arange(len(self._design.x))) else order
        groups = []
        for name, coef_names in res.re_groups:
            k = int(name[1:])
            slot = {f"X{i}": 1 + j for j, i in enumerate(self._bases[k].slopes)}
            pos = np.array([0 if c == "(Intercept)" else slot[c] for c in coef_names])
            rows, cols = np.tril_indices(len(pos))
            # vech is column-major lower-triangular: sort (row, col) pairs by column, then row
            by_col = np.lexsort((rows, cols))
            groups.append((k, rows[by_col], cols[by_col], pos))
        self._layout_key, self._layout_value = key, (fixed_order, groups)
        return fixed_order, groups

    def _raw(self, res, reml: bool) -> RawFit:
        design = self._design
        p = len(design.x)
        order, groups = self._layout(res)
        beta, vcov, df = np.asarray(res.beta, float), np.asarray(res.vcov, float), np.asarray(res.coef_df, float)
        if order is not None:
            beta, df, vcov_in = np.full(p, np.nan), np.full(p, np.nan), vcov
            beta[order], df[order] = res.beta, res.coef_df
            vcov = np.full((p, p), np.nan)
            vcov[np.ix_(order, order)] = vcov_in
        covs = [np.full((len(td.coefs), len(td.coefs)), np.nan) for td in design.terms]
        for g, (k, rows, cols, pos) in enumerate(groups):
            if g >= len(res.varcorr):  # a failed fit (converged False) reports no variances
                break
            vech = np.asarray(res.varcorr[g], dtype=float)
            cov = np.empty((len(pos), len(pos)))
            cov[pos[rows], pos[cols]] = vech
            cov[pos[cols], pos[rows]] = vech
            back = self._bases[k].back
            covs[k] = cov if back is None else back @ cov @ back.T
        gaussian = design.family == "gaussian"
        # glmm's dispersion: sigma^2 (gaussian), phi (gamma; lme4's sigma = sqrt(phi) = 1/sqrt(shape)), theta (NB)
        sigma = float(np.sqrt(res.dispersion)) if design.family in ("gaussian", "gamma") else None
        params = {}
        if design.family == "gamma":
            params = {"shape": 1.0 / float(res.dispersion)}
        elif design.family == "negative_binomial":
            params = {"theta": float(res.dispersion)}
        return RawFit(
            beta=beta,
            vcov=vcov,
            df=df if gaussian else np.full(p, np.nan),
            loglik=float(res.loglik),
            reml=bool(res.reml),
            sigma=sigma,
            family_params=params,
            covariances=covs,
            converged=bool(res.converged),
            singular=bool(res.singular),
            warned=bool(res.converged) and any(w.get("kind") in _CONVERGENCE_KINDS for w in res.warnings or []),
            warnings=[self._renames(f"{w['title']}: {w['message']}") for w in res.warnings] if res.warnings else [],
            engine="glmm",
            engine_version=self._version,
            nobs=int(res.nobs),
            native=res,
        )


def _renamer(design: FitDesign, bases):
    """Translate glmm's messages from the internal column names back to the user's.

    glmm (third-party) names the columns it was given (``X0``, ``G1``) only inside its
    message text, with no structured field, so the text is rewritten.
    """
    names = {f"X{i}": n for i, n in enumerate(design.fixed_names)}
    for k, td in enumerate(design.terms):
        names[f"G{k}"] = td.term.factor
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(names, key=len, reverse=True))) + r")\b") if names else None

    def rename(text: str) -> str:
        return pattern.sub(lambda m: names[m.group(1)], text) if pattern else text

    return rename
