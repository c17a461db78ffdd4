"""The three services a study needs from the rest of glmmsim, in one place.

* ``bind(model, conditions, key)`` -> an object with ``simulate_response(seed, population=)``
  (``Model.bind`` of the core);
* ``seed_tree(seed)`` -> an object with ``replicate(r)`` and ``child(...)`` (``glmmsim.seeding.SeedTree``);
* ``prepare_fit(formula, data, ...)`` -> an object with ``fit(y) -> FitResult`` (``glmmsim.fit.prepare``).

# TEMP until core and fit merge: where those are missing, small private stand-ins below
# give the same behaviour on the current Model API (gaussian/binomial keyed noise, the
# `glmm` engine). Delete the fallbacks once `Model.bind`, `SeedTree` and `glmmsim.fit` exist.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..model.draws import RowStreams, level_keys, stream_key
from ..seeding import seed_key

__all__ = ["bind", "seed_tree", "prepare_fit", "engine_error_types"]


def bind(model: Any, conditions: pd.DataFrame, key: list[str] | None) -> Any:
    if hasattr(model, "bind"):
        return model.bind(conditions, key=key)
    return _TempBound(model, conditions, key)  # TEMP until core merges


def seed_tree(seed: Any) -> Any:
    try:
        from ..seeding import SeedTree  # type: ignore[attr-defined]
    except ImportError:
        return _TempSeedTree(seed_key(seed) if not isinstance(seed, _TempSeedTree) else seed.key)  # TEMP
    return SeedTree(seed)


def prepare_fit(formula: str, data: pd.DataFrame, **kwargs: Any) -> Any:
    try:
        from ..fit import prepare  # type: ignore[attr-defined]
    except ImportError:
        return _TempFitter(formula, data, **kwargs)  # TEMP until fit merges
    return prepare(formula, data, **kwargs)


def engine_error_types() -> tuple[type, ...]:
    """Errors that mean the study is set up wrongly (engine or R missing), not that one fit failed."""
    try:
        from ..errors import EngineError  # type: ignore[attr-defined]
    except ImportError:
        try:
            from ..fit import EngineError  # type: ignore[attr-defined,no-redef]
        except ImportError:
            return (_TempEngineError,)
    return (EngineError,)


# --------------------------------------------------------------------------------------
# TEMP until core merges: bound model and seed tree over the current Model API
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TempReplicateSeeds:
    population: int
    noise: int
    design: int


class _TempSeedTree:
    def __init__(self, key: int) -> None:
        self.key = int(key)

    def child(self, *path: object) -> "_TempSeedTree":
        k = self.key
        for part in path:
            k = stream_key(k, "child", str(part))
        return _TempSeedTree(k)

    def replicate(self, r: int) -> _TempReplicateSeeds:
        node = self.child("replicate", int(r))
        return _TempReplicateSeeds(*(node.child(p).key >> 1 for p in ("population", "noise", "design")))


class _TempBound:
    def __init__(self, model: Any, conditions: pd.DataFrame, key: list[str] | None) -> None:
        self.model = model
        self.conditions = conditions
        cols = [conditions[c].to_numpy() for c in sorted(key)] if key else [np.arange(len(conditions))]
        self._keys = level_keys(cols)
        self._design = model._design(conditions)  # validated once, like the real bind

    def simulate_response(self, seed: Any = None, *, population: Any = None) -> np.ndarray:
        import copy

        model = self.model
        if population is not None:
            model = copy.copy(model)
            model._seed_key = seed_key(population)
        eta = model._eta(self._design, random=True)
        streams = RowStreams(self._keys, stream_key(seed_key(seed), "noise", ""))
        family = model.family
        if family.name == "gaussian" and family.link.name == "identity":
            return eta + family.params["sigma"] * streams.normals(0)
        if family.name == "binomial" and model.trials is None:
            return (streams.uniforms(0) < family.mean(eta)).astype(np.int64)
        return family.sample(eta, np.random.default_rng(seed_key(seed)))


# --------------------------------------------------------------------------------------
# TEMP until fit merges: the `glmm` engine, single-coefficient z / Satterthwaite and LRT
# --------------------------------------------------------------------------------------


class _TempEngineError(Exception):
    pass


@dataclass
class _TempTest:
    estimate: float
    se: float
    df: float
    statistic: float
    p: float
    method: str
    coefficients: tuple


class _TempFitResult:
    def __init__(self, fit: Any, names: list[str], fitter: "_TempFitter", y: np.ndarray, warns: list[str]) -> None:
        self._fit = fit
        self._fitter = fitter
        self._y = y
        lme4 = list(fit.names)
        order = [lme4.index(fitter.lme4_names[n]) for n in names]
        self.fixed = pd.DataFrame(
            {
                "estimate": np.asarray(fit.beta)[order],
                "se": np.asarray(fit.se)[order],
                "df": np.asarray(fit.coef_df, dtype=float)[order] if fit.coef_df is not None else np.nan,
            },
            index=pd.Index(names),
        )
        self.fixed["statistic"] = self.fixed["estimate"] / self.fixed["se"]
        self.fixed["p"] = np.asarray(fit.coef_p)[order]
        self.converged = bool(fit.converged)
        self.singular = bool(fit.singular)
        self.warnings = warns + [str(w) for w in (fit.warnings or [])]
        self.sigma = float(np.sqrt(fit.dispersion)) if fit.family == "gaussian" else None
        self.random = {}
        inv = {v: k for k, v in fitter.lme4_names.items()}
        for (group, terms), vc in zip(fit.re_groups, fit.varcorr):
            vc = np.asarray(vc, dtype=float)
            k = len(terms)
            cov = np.zeros((k, k))
            cov[np.tril_indices(k)] = vc
            cov = cov + np.tril(cov, -1).T
            sd = np.sqrt(np.clip(np.diag(cov), 0, None))
            coefs = [inv.get(t, t) for t in terms]
            corr = {}
            for i in range(k):
                for j in range(i):
                    corr[(coefs[j], coefs[i])] = cov[i, j] / (sd[i] * sd[j]) if sd[i] * sd[j] > 0 else np.nan
            self.random[group] = {"sd": dict(zip(coefs, sd)), "corr": corr}

    def test(self, coefs: Any, method: str = "z") -> _TempTest:
        from scipy import stats

        coefs = [coefs] if isinstance(coefs, str) else list(coefs)
        if method == "lrt":
            full = self._fitter._glmm(self._y, reml=False)
            reduced = self._fitter.reduced(coefs)._glmm(self._y, reml=False)
            stat = 2 * (full.loglik - reduced.loglik)
            row = self.fixed.loc[coefs[0]] if len(coefs) == 1 else None
            est = float(row["estimate"]) if row is not None else np.nan
            return _TempTest(est, np.nan, float(len(coefs)), stat, float(stats.chi2.sf(stat, len(coefs))), "lrt", tuple(coefs))
        if len(coefs) != 1:
            raise _TempEngineError("TEMP shim: several coefficients need method='lrt'")
        row = self.fixed.loc[coefs[0]]
        if method == "z":
            p = 2 * stats.norm.sf(abs(row["statistic"]))
            return _TempTest(row["estimate"], row["se"], np.nan, row["statistic"], float(p), "z", tuple(coefs))
        if method == "satterthwaite":
            return _TempTest(row["estimate"], row["se"], row["df"], row["statistic"], row["p"], method, tuple(coefs))
        raise _TempEngineError(f"TEMP shim: method {method!r} needs the fit branch")


class _TempFitter:
    def __init__(self, formula: str, data: pd.DataFrame, *, family: str = "gaussian", link: Any = None,
                 trials: Any = None, engine: str = "glmm", reml: Any = None) -> None:
        from ..model.formula import parse_formula
        from ..model.matrices import model_columns
        from ..model.names import categorical_levels, lme4_name

        if engine != "glmm":
            raise _TempEngineError(f"TEMP shim: engine {engine!r} needs the fit branch")
        self.formula, self.family, self.link, self.reml = formula, family, link, reml
        self.data = data.copy()
        self.response = parse_formula(formula).response
        names = model_columns(parse_formula(formula).fixed, data).names
        levels = categorical_levels(data)
        self.names = list(names)
        self.lme4_names = {n: lme4_name(n, levels) for n in names}
        self._reduced: dict = {}

    def _glmm(self, y: np.ndarray, reml: Any = None, formula: str | None = None):
        import glmm

        data = self.data
        data[self.response] = y
        fam = {"negative_binomial": "negativebinomial"}.get(self.family, self.family)
        return glmm.fit(data, formula or self.formula, family=fam, link=self.link,
                        reml=self.reml if reml is None else reml)

    def reduced(self, coefs: list[str]) -> "_TempFitter":
        key = tuple(coefs)
        if key not in self._reduced:
            from ..model.formula import parse_formula

            parsed = parse_formula(self.formula)
            # the reduced model drops the columns by a numeric recoding: only for simple terms
            fixed = [n for n in self.names if n not in coefs and n != "Intercept"]
            bars = " + ".join(f"({b})" for b in _bar_texts(self.formula))
            dummy = self.data.copy()
            cols = []
            for n in fixed:
                col = "_x" + str(len(cols))
                from ..model.matrices import model_columns

                arr = model_columns(parsed.fixed, self.data).arrays[self.names.index(n)]
                dummy[col] = arr if arr is not None else 1.0
                cols.append(col)
            rhs = " + ".join(["1" if "Intercept" in self.names and "Intercept" not in coefs else "0", *cols])
            f = _TempFitter.__new__(_TempFitter)
            f.__dict__.update(self.__dict__)
            f.data = dummy
            f.formula = f"{self.response} ~ {rhs} + {bars}"
            f._reduced = {}
            self._reduced[key] = f
        return self._reduced[key]

    def fit(self, y: np.ndarray) -> _TempFitResult:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit = self._glmm(np.asarray(y, dtype=float))
        return _TempFitResult(fit, self.names, self, np.asarray(y), [str(w.message) for w in caught])


def _bar_texts(formula: str) -> list[str]:
    import re

    return re.findall(r"\(([^()]*\|[^()]*)\)", formula)
