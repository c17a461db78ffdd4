"""Fit (generalized) linear mixed models written in lme4 syntax, with fast and reference engines.

``glmmsim.fit`` is this subpackage *and* a function: calling it fits one
dataset, its attributes are the rest of the API. (The module object's class is
made callable, so ``import glmmsim.fit.design`` and ``from glmmsim.fit import
prepare`` work as for any package.)

* ``glmmsim.fit(formula, data, *, family, link, trials, offset, engine, reml) -> FitResult``
* ``glmmsim.fit.prepare(formula, data_template, ...) -> Fitter`` for many refits of one design
* ``glmmsim.fit.register_engine(name, factory)``, ``glmmsim.fit.available_engines()``
* :class:`FitResult`, :class:`TestResult`, :class:`EngineError`, :class:`FitError`

Engines: ``"lmm"`` (the default for linear mixed models: lme4's penalized least squares in
numpy), ``"glmm"`` (the default for other families; the Rust kernel of the PyPI package glmm)
and ``"lme4"`` (lme4 + lmerTest + pbkrtest in one long-lived R process). ``engine="auto"``
picks the family's default.

Examples
--------
>>> import numpy as np, pandas as pd, glmmsim
>>> d = pd.DataFrame({"x": np.tile([0.0, 1.0], 30), "g": np.repeat([f"g{i}" for i in range(15)], 4)})
>>> d["y"] = 2.0 * d["x"] + np.random.default_rng(0).normal(size=60)
>>> res = glmmsim.fit("y ~ x + (1 | g)", d)
>>> round(float(res.fixed.loc["x", "estimate"]), 1), res.reml
(2.4, True)
"""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence

import pandas as pd

from .design import FitDesign, build_design, response_of
from .engines.glmm_engine import GlmmEngine
from .errors import EngineError, FitError
from .significance import TEST_METHODS, TestResult
from .prepare import Fitter, resolve_reml, prepare
from .protocol import Engine, RawFit, available_engines, default_engine, register_engine, resolve_engine
from .result import FitResult

__all__ = [
    "fit",
    "prepare",
    "Fitter",
    "FitResult",
    "TestResult",
    "TEST_METHODS",
    "EngineError",
    "FitError",
    "Engine",
    "RawFit",
    "FitDesign",
    "register_engine",
    "available_engines",
    "default_engine",
]


def fit(
    formula: str,
    data: pd.DataFrame,
    *,
    family: object = "gaussian",
    link: str | None = None,
    trials: int | str | None = None,
    offset: str | Sequence[float] | None = None,
    engine: str = "auto",
    reml: bool | None = None,
    trusted_formula: bool = False,
) -> FitResult:
    """Fit ``formula`` to ``data`` and return a :class:`FitResult`.

    Parameters
    ----------
    formula : str
        lme4 formula, read as :class:`glmmsim.Model` reads it (formulaic fixed part, lme4 bars).
    data : pandas.DataFrame
        One row per observation with the response and every column the formula uses; a
        missing value is an error (no row is dropped silently).
    family : {"gaussian", "binomial", "poisson", "negative_binomial", "gamma"}
        The last two on the glmm engine only.
    link : str, optional
        The family's default link when omitted (binomial: logit, probit, cloglog).
    trials : int or str, optional
        Binomial trials: a number or a column; the response counts successes, fitted as lme4
        fits ``cbind(y, trials - y)``. Omitted: a 0/1 response.
    offset : str or array-like, optional
        A column (or one number per row) added to the linear predictor, e.g. ``log(exposure)``;
        the formula's own ``offset(...)`` terms are added too, as in lme4 and ``Model``.
    engine : str, default "auto"
        ``"auto"`` (``"lmm"`` for gaussian identity-link models, ``"glmm"`` otherwise),
        ``"lmm"`` (exact LMMs, numpy), ``"glmm"`` (fast GLMMs, Rust), ``"lme4"`` (R reference)
        or a registered engine.
    reml : bool, optional
        REML (the default for gaussian models, as in lme4) or ML; other families use ML.
    trusted_formula : bool, default False
        Skip the check that the formula's Python pieces are only column names, numbers,
        operators and whitelisted transforms (as for :class:`glmmsim.Model`); for a
        formula you wrote yourself, never for one read from a file or a user.

    Raises
    ------
    EngineError
        Unknown engine, engine missing here, or a term the engine cannot fit (names the one that can).
    FitError
        The engine failed. A fit that merely did not converge or is singular is returned with
        ``converged``/``singular`` and ``warnings`` set.

    Examples
    --------
    >>> import numpy as np, pandas as pd, glmmsim
    >>> d = pd.DataFrame({"x": np.tile([0.0, 1.0], 40), "g": np.repeat([f"g{i}" for i in range(20)], 4)})
    >>> d["y"] = 1.0 + 0.5 * d["x"] + np.random.default_rng(1).normal(size=80)
    >>> res = glmmsim.fit("y ~ x + (1 | g)", d, reml=False)
    >>> res.test("x", method="lrt").method, res.reml
    ('lrt', False)
    """
    design = build_design(
        formula, data, family=family, link=link, trials=trials, offset=offset, trusted_formula=trusted_formula
    )
    y = response_of(design, data)
    fitter = Fitter(design, resolve_engine(engine, design.family, design.link), resolve_reml(reml, design.family))
    return fitter.fit(y)


def _lme4_factory():
    from .engines.lme4_engine import Lme4Engine

    return Lme4Engine()


def _lmm_factory():
    from .engines.lmm_engine import LmmEngine

    return LmmEngine()


register_engine("glmm", GlmmEngine)
register_engine("lme4", _lme4_factory)
register_engine("lmm", _lmm_factory)


class _CallableModule(types.ModuleType):
    """``glmmsim.fit(...)`` calls :func:`fit`; attribute access works as for any module."""

    def __call__(self, *args, **kwargs) -> FitResult:
        return fit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
