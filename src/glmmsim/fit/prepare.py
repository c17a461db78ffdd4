"""Many refits of one design: the engine is set up once, each refit passes only a response."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, ParameterError
from ..model.model_design import ModelDesign
from .design import FitDesign, build_design, fit_design
from .errors import EngineError
from .protocol import fit_many, frozen, get_engine, resolve_engine
from .result import FitResult

__all__ = ["Fitter", "prepare", "resolve_reml"]


def resolve_reml(reml: bool | None, family: str) -> bool:
    """REML for gaussian models unless told otherwise (as lme4); ML for other families."""
    if reml is None:
        return family == "gaussian"
    if not isinstance(reml, (bool, np.bool_)):
        raise ParameterError(f"reml must be None, True or False; got {reml!r}")
    if reml and family != "gaussian":
        raise ParameterError(f"reml=True applies to gaussian models; family {family!r} is fitted by ML")
    return bool(reml)


class Fitter:
    """One design prepared for an engine; ``fit(y)`` fits a new response on it.

    Pickles by its design and engine name: an unpickled Fitter (in a worker
    process) prepares its engine again on first use, so each worker has its own
    R process.
    """

    def __init__(self, design: FitDesign, engine: str, reml: bool) -> None:
        self._design = design
        self._engine_name = engine
        self._reml = reml
        self._prepared: Any = None
        self._nested: dict[tuple[int, ...], Any] = {}
        self._prepare()  # unsupported terms and missing engines fail here, before any fit

    def _prepare(self) -> Any:
        if self._prepared is None:
            self._prepared = get_engine(self._engine_name).prepare(self._design)
        return self._prepared

    def __getstate__(self) -> dict[str, Any]:
        return {"_design": self._design, "_engine_name": self._engine_name, "_reml": self._reml}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._prepared = None
        self._nested = {}

    @property
    def design(self) -> FitDesign:
        """The materialised design."""
        return self._design

    @property
    def engine(self) -> str:
        return self._engine_name

    @property
    def reml(self) -> bool:
        return self._reml

    @property
    def fits_in_batches(self) -> bool:
        """Whether the engine fits many responses in one call (its prepared object has ``fit_many``)."""
        return callable(getattr(self._prepare(), "fit_many", None))

    @classmethod
    def for_design(cls, design: FitDesign, engine: str = "auto", reml: bool | None = None) -> Fitter:
        """A Fitter of a design already built (a study's point: the bound model's design, viewed for fitting)."""
        return cls(design, resolve_engine(engine, design.family, design.link), resolve_reml(reml, design.family))

    def fit(self, y: Sequence[float] | np.ndarray | pd.Series) -> FitResult:
        """Fit the response ``y`` (one value per row of the design, in its row order)."""
        arr = self._design.check_response(y)
        raw = self._prepare().fit(arr, reml=self._reml)
        return FitResult(self._design, raw, arr, self)

    def fit_many(self, ys: np.ndarray, *, start: Sequence[np.ndarray] | None = None) -> list[FitResult]:
        """Fit every column of ``ys`` (``(n, K)``: one response per column, rows in the design's order).

        Result ``j`` is that of ``fit(ys[:, j])`` alone; engines that can (``lmm``) fit the
        columns together, which is several times faster than one by one. The results keep a
        read-only copy of the responses, so ``ys`` may be reused at once (no copy is made of
        an array that is already read-only and owns its numbers).

        ``start``, optional: one covariance matrix per random term of the design
        (``design.terms`` order, columns as ``design.terms[k].coefs``) relative to the
        residual variance, ``Sigma_k / sigma^2``, such as the values the responses were
        simulated from. The lmm engine starts its optimizer there instead of at lme4's start
        (same optimum, fewer iterations); the other engines ignore it.

        Examples
        --------
        >>> import numpy as np, pandas as pd, glmmsim
        >>> d = pd.DataFrame({"x": np.tile([0.0, 1.0], 20), "g": np.repeat([f"g{i}" for i in range(10)], 4)})
        >>> fitter = glmmsim.fit.prepare("y ~ x + (1 | g)", d)
        >>> rng = np.random.default_rng(1)
        >>> ys = d["x"].to_numpy()[:, None] + rng.normal(size=(40, 3)) + rng.normal(size=(10, 3))[np.repeat(np.arange(10), 4)]
        >>> [res.engine for res in fitter.fit_many(ys)]
        ['lmm', 'lmm', 'lmm']
        """
        arr = np.asarray(ys)
        if arr.ndim != 2 or arr.shape[0] != self._design.nobs:
            raise DataError(
                f"fit_many takes an (n, K) array of responses, one per column, with n = {self._design.nobs} rows "
                f"(the design's); got shape {arr.shape}"
            )
        self._design.check_responses(arr)
        if start is not None:
            start = self._design.check_start(start)
        if not arr.shape[1]:
            return []
        # the fits keep their responses (later tests read them): frozen, so that the caller may reuse its array
        kept = frozen(arr)
        raws = fit_many(self._prepare(), kept, reml=self._reml, start=start)
        return [FitResult(self._design, raw, kept[:, j], self) for j, raw in enumerate(raws)]

    # ----------------------------------------------------------- used by the tests
    def _ml_loglik(self, res: FitResult) -> float:
        if not res.reml:
            return res.loglik
        return self._prepare().fit(res._y, reml=False).loglik

    def _lrt(self, res: FitResult, drop: Sequence[int]) -> float:
        key = tuple(sorted(drop))
        if key not in self._nested:
            nested = self._design.without_fixed(key)
            prepared = self._prepare()
            keep = [i for i in range(len(self._design.fixed_names)) if i not in set(key)]
            try:
                if hasattr(prepared, "nested"):  # the engine derives the nested design from its own structure
                    self._nested[key] = prepared.nested(nested, keep)
                else:
                    self._nested[key] = get_engine(self._engine_name).prepare(nested)
            except EngineError as exc:
                dropped = [self._design.fixed_names[i] for i in key]
                raise EngineError(f"likelihood-ratio test of {dropped}: the nested model cannot be fitted: {exc}") from None
        prepared = self._prepare()
        if hasattr(prepared, "lrt"):  # both ML fits in one engine call, reusing the full fit (lme4)
            full, reduced_loglik = prepared.lrt(res._y, self._nested[key], reml=res.reml, native=res._raw.native)
            return max(0.0, 2.0 * (full - reduced_loglik))
        reduced = self._nested[key].fit(res._y, reml=False)
        return max(0.0, 2.0 * (self._ml_loglik(res) - reduced.loglik))

    def _contrast(self, res: FitResult, pos: Sequence[int], ddf: str) -> tuple[float, float, float]:
        L = np.zeros((len(pos), len(self._design.fixed_names)))
        L[np.arange(len(pos)), pos] = 1.0
        prepared = self._prepare()
        if hasattr(prepared, "contrast"):
            return prepared.contrast(res._y, L, reml=res.reml, ddf=ddf, native=res._raw)
        need = "engine='lme4'" if ddf == "Kenward-Roger" else "an engine with Satterthwaite contrasts (glmm, lme4)"
        raise EngineError(f"the {ddf} test of several coefficients needs {need}; this fit used {self._engine_name!r}")


def prepare(
    formula: str,
    data_template: pd.DataFrame,
    *,
    family: object = "gaussian",
    link: str | None = None,
    trials: int | str | None = None,
    offset: str | Sequence[float] | None = None,
    engine: str = "auto",
    reml: bool | None = None,
    trusted_formula: bool = False,
) -> Fitter:
    """Prepare ``formula`` on the rows of ``data_template`` for many fits of new responses.

    The design (model columns, groups, trials, offset) is built and checked once, and the
    engine is set up once (one R process for ``lme4``, reused by every Fitter of the process).
    The response column need not be in ``data_template``, which may also be a bound model
    (``model.bind(conditions)``): its conditions are used, so ``fitter.fit(bound.simulate_response(r))``
    fits replicate ``r``; for the model's own formula the fits use the columns the bound model
    simulates from (its design is not built again).

    Parameters
    ----------
    formula : str
        lme4 formula (see :func:`glmmsim.fit.fit`).
    data_template : pandas.DataFrame or BoundModel
        The rows every response will be fitted on; the response column may be absent.
    family, link, trials, offset, engine, reml, trusted_formula
        As in :func:`glmmsim.fit.fit`.

    Returns
    -------
    Fitter
        ``fitter.fit(y)`` returns a :class:`FitResult` for the response ``y`` (one value per row).

    Examples
    --------
    >>> import numpy as np, pandas as pd, glmmsim
    >>> d = pd.DataFrame({"x": np.tile([0.0, 1.0], 20), "g": np.repeat([f"g{i}" for i in range(10)], 4)})
    >>> fitter = glmmsim.fit.prepare("y ~ x + (1 | g)", d)
    >>> y = np.random.default_rng(1).normal(size=40) + d["x"]
    >>> res = fitter.fit(y)
    >>> list(res.fixed.index), res.engine
    (['Intercept', 'x'], 'lmm')
    """
    bound_design = getattr(data_template, "design", None)
    if not isinstance(data_template, pd.DataFrame) and isinstance(getattr(data_template, "conditions", None), pd.DataFrame):
        data_template = data_template.conditions  # a BoundModel: fit on the rows it simulates
    if isinstance(bound_design, ModelDesign) and bound_design.formula == formula:
        # the bound model's own formula: fit from the design it simulates from, nothing is read again
        design = fit_design(bound_design, data_template, family=family, link=link, trials=trials, offset=offset)
    else:
        design = build_design(
            formula, data_template, family=family, link=link, trials=trials, offset=offset,
            trusted_formula=trusted_formula,
        )
    return Fitter(design, resolve_engine(engine, design.family, design.link), resolve_reml(reml, design.family))

