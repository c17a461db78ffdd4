"""The engine protocol and the registry of engines.

An engine turns a :class:`~glmmsim.fit.design.FitDesign` plus a response
vector into a :class:`RawFit`. It is set up once per design (``prepare``) and
then fitted many times: that is where an engine keeps what it can reuse (glmm's
column dictionary, the R process and the design uploaded to it).

A third-party engine is a factory (a zero-argument callable) returning an
object with ``name``, ``available() -> bool`` and
``prepare(design) -> PreparedEngine``; the prepared object has
``fit(y, *, reml) -> RawFit`` and may have ``contrast(y, L, *, reml, ddf)`` for
tests of linear combinations that need the engine (Kenward-Roger) and
``fit_many(Y, *, reml) -> list[RawFit]`` for many responses of the design at once
(:func:`fit_many` calls it, or ``fit`` once per column when an engine has none); an engine
whose ``fit_many`` also takes ``start`` (relative covariances, one per random term) may
start its optimizer there.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import InputTypeError, did_you_mean, format_names
from .design import FitDesign
from .errors import EngineError

__all__ = [
    "RawFit", "Engine", "PreparedEngine", "register_engine", "available_engines", "get_engine", "AUTO_ENGINE",
    "default_engine", "resolve_engine", "fit_many", "is_frozen", "frozen",
]


@dataclass
class RawFit:
    """What an engine returns, in the design's coordinates (columns and terms in design order).

    ``covariances[k]`` is the covariance matrix of term ``k``'s random effects
    in the order of ``design.terms[k].coefs``; ``df`` holds the t-test degrees
    of freedom per coefficient (NaN where the test is z), or ``df_source()`` gives them when
    first needed. ``loglik`` is on R's ``logLik()`` scale: the REML criterion when ``reml`` is True.
    """

    beta: np.ndarray
    vcov: np.ndarray
    df: np.ndarray
    loglik: float
    reml: bool
    sigma: float | None
    covariances: list[np.ndarray]
    converged: bool
    singular: bool
    warnings: list[str]
    engine: str
    engine_version: str
    nobs: int
    family_params: dict[str, float] = field(default_factory=dict)
    # computes ``df`` on first use, for engines whose df cost more than the fit (lmm's Satterthwaite df):
    # a z or likelihood-ratio test never pays for them
    df_source: Callable[[], np.ndarray] | None = None
    # the engine's own result, kept for tests that read it (glmm's Fit.contrast_test; lme4's fit token)
    native: Any = None
    # the fit produced estimates but the engine warned about its convergence (kept, as simr does)
    warned: bool = False


@runtime_checkable
class PreparedEngine(Protocol):
    def fit(self, y: np.ndarray, *, reml: bool) -> RawFit: ...


def is_frozen(ys: np.ndarray) -> bool:
    """Whether nobody can change ``ys``: it is read-only and owns its numbers (not a view of another
    array). An engine may keep such responses (for tests computed later) without copying them."""
    return not ys.flags.writeable and ys.flags.owndata


def frozen(ys: np.ndarray) -> np.ndarray:
    """``ys`` as a float64 array nobody can change (:func:`is_frozen`): itself when it already is, else a copy.

    Examples
    --------
    >>> a = np.ones((3, 2))
    >>> b = frozen(a)
    >>> b is a, is_frozen(b), frozen(b) is b
    (False, True, True)
    """
    if ys.dtype == np.float64 and is_frozen(ys):
        return ys
    out = np.array(ys, dtype=np.float64)
    out.flags.writeable = False
    return out


def fit_many(prepared: PreparedEngine, ys: np.ndarray, *, reml: bool, start: Any = None) -> list[RawFit]:
    """Fit every column of ``ys`` (``(n, K)``) on a prepared engine: its ``fit_many`` if it has one.

    ``start`` (one relative covariance matrix per random term) goes to an engine's
    ``fit_many`` that takes it (lmm); the others start where they always do.

    An engine without its own ``fit_many`` fits the columns one by one with ``fit``; the lmm
    engine fits them together (see :meth:`~glmmsim.fit.engines.lmm_engine.PreparedLmm.fit_many`).
    Either way result ``j`` is that of column ``j`` alone.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from glmmsim.fit.design import build_design
    >>> d = pd.DataFrame({"x": np.tile([0.0, 1.0], 20), "g": np.repeat([f"g{i}" for i in range(10)], 4)})
    >>> prepared = get_engine("glmm").prepare(build_design("y ~ x + (1 | g)", d))
    >>> ys = np.random.default_rng(1).normal(size=(40, 2))
    >>> [raw.engine for raw in fit_many(prepared, ys, reml=True)]
    ['glmm', 'glmm']
    """
    own = getattr(prepared, "fit_many", None)
    if callable(own):
        takes_start = start is not None and "start" in inspect.signature(own).parameters
        return list(own(ys, reml=reml, start=start) if takes_start else own(ys, reml=reml))
    return [prepared.fit(ys[:, j], reml=reml) for j in range(ys.shape[1])]


@runtime_checkable
class Engine(Protocol):
    name: str

    def available(self) -> bool: ...

    def prepare(self, design: FitDesign) -> PreparedEngine: ...


_FACTORIES: dict[str, Callable[[], Engine]] = {}
_INSTANCES: dict[str, Engine] = {}
_LOCK = threading.Lock()


def register_engine(name: str, factory: Callable[[], Engine]) -> None:
    """Register (or replace) an engine under ``name``; ``factory()`` is called once, on first use.

    Examples
    --------
    >>> from glmmsim.fit import protocol
    >>> protocol.register_engine("glmm-copy", protocol._FACTORIES["glmm"])
    >>> "glmm-copy" in protocol.available_engines()
    True
    >>> _ = protocol._FACTORIES.pop("glmm-copy")
    """
    if not isinstance(name, str) or not name:
        raise InputTypeError(f"engine name must be a non-empty string; got {name!r}")
    if not callable(factory):
        raise InputTypeError(f"engine factory for {name!r} must be callable; got {type(factory).__name__}")
    with _LOCK:
        _FACTORIES[name] = factory
        _INSTANCES.pop(name, None)


def available_engines() -> list[str]:
    """Names of the registered engines that can run on this machine (cheap checks, no R start-up).

    Examples
    --------
    >>> import glmmsim
    >>> "glmm" in glmmsim.fit.available_engines()
    True
    """
    out = []
    for name in list(_FACTORIES):
        try:
            if get_engine(name).available():
                out.append(name)
        except EngineError:
            continue
    return out


def get_engine(name: str) -> Engine:
    """The engine registered as ``name`` (one instance per process), or an EngineError naming the valid ones."""
    if not isinstance(name, str):
        raise InputTypeError(f"engine must be a name such as 'glmm' or 'lme4'; got {type(name).__name__}")
    with _LOCK:
        if name not in _INSTANCES:
            if name not in _FACTORIES:
                raise EngineError(
                    f"unknown engine {name!r}.{did_you_mean(name, _FACTORIES)} Registered engines: "
                    f"{format_names(_FACTORIES)}"
                )
            _INSTANCES[name] = _FACTORIES[name]()
        return _INSTANCES[name]


#: The engine name that stands for "the default engine of this model's family".
AUTO_ENGINE = "auto"


def default_engine(family: str, link: str) -> str:
    """The default engine of a family: ``lmm`` for linear mixed models (gaussian, identity link), else ``glmm``.

    Examples
    --------
    >>> default_engine("gaussian", "identity"), default_engine("gaussian", "log"), default_engine("binomial", "logit")
    ('lmm', 'glmm', 'glmm')
    """
    return "lmm" if family == "gaussian" and link == "identity" else "glmm"


def resolve_engine(engine: str, family: str, link: str) -> str:
    """``engine``, with ``"auto"`` replaced by :func:`default_engine` of the family.

    Examples
    --------
    >>> resolve_engine("auto", "poisson", "log"), resolve_engine("lme4", "gaussian", "identity")
    ('glmm', 'lme4')
    """
    if not isinstance(engine, str):
        raise InputTypeError(f"engine must be a name such as 'auto', 'lmm', 'glmm' or 'lme4'; got {type(engine).__name__}")
    return default_engine(family, link) if engine == AUTO_ENGINE else engine
