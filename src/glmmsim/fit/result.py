"""FitResult: one fitted mixed model, in glmmsim's names, from any engine."""

from __future__ import annotations

import warnings

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd
from functools import cached_property

from scipy import special

from ..errors import ParameterError, PilotFitWarning
from ..randomness.seeds import SeedLike
from .design import FitDesign
from .errors import FitError
from .significance import TestResult, run_test
from .protocol import RawFit

if TYPE_CHECKING:
    from ..model import Model
    from .prepare import Fitter

__all__ = ["FitResult"]

_FIXED_COLUMNS = ["estimate", "se", "df", "statistic", "p", "lme4_name"]


def _p_values(stat: np.ndarray, df: np.ndarray) -> np.ndarray:
    """Two-sided p of t (where df is finite) or z; scipy.special directly, as this runs once per fit."""
    with np.errstate(invalid="ignore"):
        t = 2.0 * special.stdtr(np.where(np.isfinite(df), df, 1.0), -np.abs(stat))
        z = 2.0 * special.ndtr(-np.abs(stat))
    return np.where(np.isfinite(df), t, z)


def _random_spec(design: FitDesign, covariances: list[np.ndarray]) -> dict[str, dict[str, dict]]:
    """Per factor ``{"sd": {coef: sd}, "corr": {(c1, c2): r}}``; undefined correlations (an SD of 0) are left out."""
    out: dict[str, dict[str, dict]] = {}
    for td, cov in zip(design.terms, covariances):
        entry = out.setdefault(td.term.factor, {"sd": {}, "corr": {}})
        sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        for coef, s in zip(td.coefs, sd):
            entry["sd"][coef] = float(s)
        for i in range(len(td.coefs)):
            for j in range(i):
                if sd[i] > 0 and sd[j] > 0:
                    r = float(np.clip(cov[i, j] / (sd[i] * sd[j]), -1.0, 1.0))
                    entry["corr"][(td.coefs[j], td.coefs[i])] = r
    return out


class FixedArrays(NamedTuple):
    """The fixed-effects table as read-only arrays, one entry per coefficient (what a study reads per replicate)."""

    names: tuple[str, ...]
    estimate: np.ndarray
    se: np.ndarray
    df: np.ndarray
    statistic: np.ndarray
    p: np.ndarray


def _read_only(arr: np.ndarray) -> np.ndarray:
    view = np.asarray(arr).view()
    view.flags.writeable = False
    return view


class FitResult:
    """A fitted (generalized) linear mixed model.

    Attributes
    ----------
    fixed : pandas.DataFrame
        One row per coefficient (formulaic spelling: ``Intercept``, ``cond[T.b]``) with columns
        ``estimate``, ``se``, ``df`` (Satterthwaite on gaussian models, NaN for z tests),
        ``statistic`` (t or z), ``p`` and ``lme4_name`` (``(Intercept)``, ``condb``).
    fixed_arrays : tuple
        The same numbers without a DataFrame (cheaper, for code that reads thousands of fits):
        ``names``, ``estimate``, ``se``, ``df``, ``statistic``, ``p`` as read-only arrays.
    loglik : float
        Log-likelihood on R's ``logLik()`` scale, constants included; the REML criterion of a
        REML fit, as ``logLik()`` reports it.
    deviance : float
        ``-2 * loglik`` (lme4's ``REMLcrit`` for a REML fit).
    reml : bool
    sigma : float or None
        Residual SD (gaussian); lme4's ``sigma()`` = 1/sqrt(shape) for gamma; None for binomial,
        Poisson and negative binomial.
    random : dict
        ``{factor: {"sd": {coef: sd}, "corr": {(c1, c2): r}}}`` with glmmsim's factor names
        (``subject``, ``school:class``): the shape ``Model(random=...)`` takes.
    family_params : dict
        Other estimated family parameters: ``shape`` (gamma), ``theta`` (negative binomial).
    converged, singular : bool
        The engine's flags: a failed or boundary fit is reported, not hidden. ``converged``
        is True when the fit produced estimates (lme4's too: a fit lme4 warns about is
        kept, as simr keeps it, with ``warned`` set).
    warned : bool
        The fit produced estimates but the engine warned about its convergence (lme4's
        "failed to converge" gradient checks, glmm's search-limit diagnostics); the
        messages are in ``warnings``.
    warnings : list of str
        Every warning of the engine, as text.
    engine, engine_version : str
    nobs : int
    vcov : pandas.DataFrame
        Covariance matrix of the fixed-effect estimates.
    """

    def __init__(self, design: FitDesign, raw: RawFit, y: np.ndarray, fitter: Fitter) -> None:
        self._design = design
        self._raw = raw
        self._y = y
        self._fitter = fitter
        # only references here: tables are built on first access (a DataFrame costs a fifth of a glmm fit)
        self._beta, self._vcov, self._df, self._covariances = raw.beta, raw.vcov, raw.df, raw.covariances
        self.loglik = raw.loglik
        self.deviance = -2.0 * raw.loglik
        self.reml = raw.reml
        self.sigma = raw.sigma
        self.family_params = dict(raw.family_params)
        self.converged = raw.converged
        self.singular = raw.singular
        self.warned = bool(getattr(raw, "warned", False))
        self.warnings = list(raw.warnings)
        self.engine = raw.engine
        self.engine_version = raw.engine_version
        self.nobs = raw.nobs

    @cached_property
    def _se(self) -> np.ndarray:
        """Standard errors of the fixed effects (what z and likelihood-ratio tests read)."""
        with np.errstate(invalid="ignore"):
            return np.sqrt(np.diag(self._vcov))

    @cached_property
    def _df_values(self) -> np.ndarray:
        """The t tests' df per coefficient, computed on first use when the engine defers them."""
        source = self._raw.df_source
        return self._df if source is None else np.asarray(source(), dtype=np.float64)

    @cached_property
    def _columns(self) -> tuple[np.ndarray, ...]:
        """estimate, se, df, statistic, p as arrays (what tests read, without a DataFrame)."""
        se, df = self._se, self._df_values
        with np.errstate(invalid="ignore", divide="ignore"):
            stat = self._beta / se
        return self._beta, se, df, stat, _p_values(stat, df)

    @cached_property
    def fixed_arrays(self) -> FixedArrays:
        """``names, estimate, se, df, statistic, p`` of the fixed effects, as read-only arrays.

        Examples
        --------
        >>> import numpy as np, pandas as pd, glmmsim
        >>> d = pd.DataFrame({"x": np.tile([0.0, 1.0], 20), "g": np.repeat(np.arange(10), 4)})
        >>> d["y"] = np.random.default_rng(3).normal(size=40) + d["x"]
        >>> arrays = glmmsim.fit("y ~ x + (1 | g)", d).fixed_arrays
        >>> arrays.names, bool(np.isclose(arrays.p[1], glmmsim.fit("y ~ x + (1 | g)", d).fixed.loc["x", "p"]))
        (('Intercept', 'x'), True)
        """
        return FixedArrays(self._design.fixed_names, *map(_read_only, self._columns))

    @cached_property
    def random(self) -> dict[str, dict[str, dict]]:
        """Per factor ``{"sd": {coef: sd}, "corr": {(c1, c2): r}}`` (see the class docstring)."""
        return _random_spec(self._design, self._covariances)

    @cached_property
    def fixed(self) -> pd.DataFrame:
        """The fixed-effects table (see the class docstring)."""
        columns = dict(zip(_FIXED_COLUMNS, self._columns))
        columns["lme4_name"] = list(self._design.lme4_names)
        return pd.DataFrame(columns, index=pd.Index(self._design.fixed_names, name="coefficient"), copy=False)

    @cached_property
    def vcov(self) -> pd.DataFrame:
        """Covariance matrix of the fixed-effect estimates."""
        names = list(self._design.fixed_names)
        return pd.DataFrame(self._vcov, index=names, columns=names)

    @property
    def formula(self) -> str:
        return self._design.formula

    @property
    def family(self) -> str:
        return self._design.family

    @property
    def link(self) -> str:
        return self._design.link

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_raw"] = None  # the engine's native object may not pickle; everything read from it is copied
        return state

    def test(self, coefs_or_term: str | Sequence[str], method: str = "z") -> TestResult:
        """Test that one coefficient, several, or all coefficients of a fixed term are zero.

        Parameters
        ----------
        coefs_or_term : str or sequence of str
            Coefficient names (``cond[T.b]`` or lme4's ``condb``) or fixed-term labels
            (``cond``, ``x:cond``): a term stands for all its coefficients.
        method : {"z", "satterthwaite", "lrt", "kr"}
            Wald z (chi-squared for several); Wald t (F for several) with Satterthwaite's df
            (gaussian); likelihood ratio of ML refits of this model and the model without the
            tested coefficients, with the same engine; Kenward-Roger (gaussian, engine "lme4").

        Returns
        -------
        TestResult
            ``estimate, se, df, statistic, p, method, coefficients, num_df, statistic_name``.

        Examples
        --------
        >>> import numpy as np, pandas as pd, glmmsim
        >>> d = pd.DataFrame({"cond": np.tile(["a", "b", "c"], 40), "g": np.repeat(np.arange(12), 10)})
        >>> d["y"] = np.random.default_rng(2).normal(size=120)
        >>> t = glmmsim.fit("y ~ cond + (1 | g)", d).test("cond", method="satterthwaite")
        >>> t.coefficients, t.statistic_name, t.num_df
        (('cond[T.b]', 'cond[T.c]'), 'F', 2)
        """
        return run_test(self, coefs_or_term, method)

    def confint(self, level: float = 0.95) -> pd.DataFrame:
        """Wald intervals of the fixed effects: t on the ``df`` column where it is finite, z otherwise.

        Returns a DataFrame indexed like ``fixed`` with columns ``lower`` and ``upper``.
        """
        if not 0.0 < float(level) < 1.0:
            raise ParameterError(f"level must be between 0 and 1; got {level!r}")
        beta, se, df, _, _ = self._columns
        tail = (1.0 + float(level)) / 2.0
        with np.errstate(invalid="ignore"):
            q = np.where(np.isfinite(df), special.stdtrit(np.where(np.isfinite(df), df, 1.0), tail), special.ndtri(tail))
        return pd.DataFrame(
            {"lower": beta - q * se, "upper": beta + q * se},
            index=pd.Index(self._design.fixed_names, name="coefficient"),
        )

    def to_model(self, seed: SeedLike = None) -> Model:
        """The :class:`glmmsim.Model` that simulates from these estimates (fit a pilot, then simulate).

        Fixed effects, SDs, correlations and sigma are the estimates; categorical columns keep the
        levels of the fitted data (``levels=``), and ``trials`` is the fit's. ``seed`` is the new
        model's population seed.

        A singular fit, or one with a correlation at +-1, gives a :class:`~glmmsim.errors.PilotFitWarning`:
        its random effects are on the boundary, and a study simulated from them inherits that.
        A pilot's effect estimate is biased upward when pilots are followed up because their
        effect looked promising: set the effect a power analysis tests from theory or the
        smallest effect of interest (``model.replace(fixed={...})``), not from the pilot.
        """
        from ..model import Model

        _warn_if_boundary(self)

        fixed = self.fixed["estimate"]
        missing = [name for name, value in fixed.items() if not np.isfinite(value)]
        if missing:
            raise FitError(
                f"cannot build a Model: coefficient(s) {missing} have no estimate "
                f"(aliased or failed fit: converged={self.converged})"
            )
        design = self._design
        return Model(
            design.formula,
            fixed={k: float(v) for k, v in fixed.items()},
            random=self.random,
            sigma=self.sigma,
            family=design.family,
            dispersion={k: v for k, v in self.family_params.items() if k == "theta"} or None,
            link=design.link,
            trials=design.trials_spec,
            levels=design.levels or None,
            seed=seed,
        )

    def __repr__(self) -> str:
        flags = "" if self.converged and not self.singular else (
            " [not converged]" if not self.converged else " [singular]"
        )
        return (
            f"<FitResult {self._design.formula!r} ({self.family}, {self.engine}): "
            f"loglik={self.loglik:.4f}, nobs={self.nobs}{flags}>"
        )


def _warn_if_boundary(res: FitResult) -> None:
    """Warn when a fit about to become a simulation model has random effects on the boundary."""
    at_one = [(factor, pair, r) for factor, spec in (res.random or {}).items()
              for pair, r in spec.get("corr", {}).items() if np.isfinite(r) and abs(r) > 1 - 1e-4]
    if not res.singular and not at_one:
        return
    where = "; ".join(f"corr({factor}: {a}, {b}) = {r:+.3f}" for factor, (a, b), r in at_one)
    warnings.warn(
        PilotFitWarning(
            f"the fit is {'singular' if res.singular else 'on the boundary'}"
            + (f" ({where})" if where else "")
            + ": a model simulated from it assumes random effects on that boundary. Set the variance "
              "components and correlations from theory or larger studies (model.replace(random=...)), and "
              "the tested effect from theory, not from the pilot's estimate (biased upward by selection)",
            factor=at_one[0][0] if at_one else None,
        ),
        stacklevel=3,
    )
