"""Response families: their links, dispersion parameters and response draws.

A :class:`Family` turns a linear predictor ``eta`` into a conditional mean
(:meth:`Family.mean`) and into simulated responses (:meth:`Family.sample`).
Parameterisations follow lme4 / glmmTMB / MASS so that values read off a
fitted model can be carried over unchanged.

=================  ===============  ======================  =========================================
family             links            dispersion parameters   variance of y given its mean ``mu``
=================  ===============  ======================  =========================================
gaussian           identity, log    ``sigma`` >= 0          ``sigma**2``
binomial           logit, probit,   (none)                  ``trials * mu * (1 - mu)`` (``mu`` = p)
                   cloglog, log
poisson            log, identity,   (none)                  ``mu``
                   sqrt
negative_binomial  log              ``theta`` > 0           ``mu + mu**2 / theta``
gamma              inverse, log,    ``shape`` > 0 or        ``mu**2 / shape``
                   identity         ``sigma`` > 0
inverse_gaussian   1/mu^2, log      ``dispersion`` > 0      ``dispersion * mu**3``
lognormal          identity         ``sigma`` >= 0          ``(exp(sigma**2) - 1) * mu**2``
exgaussian         identity         ``sigma`` >= 0,         ``sigma**2 + tau**2``
                                    ``tau`` >= 0
shifted_lognormal  identity         ``sigma`` >= 0,         ``(exp(sigma**2) - 1) * (mu - shift)**2``
                                    ``shift`` real
=================  ===============  ======================  =========================================

For ``lognormal``, ``exgaussian`` and
``shifted_lognormal`` the link maps ``eta`` to the *location* parameter (the
mean of ``log(y)``, the mean of the Gaussian component, the mean of
``log(y - shift)``); :meth:`Family.mean` then returns the mean of ``y`` itself.

The links themselves are ``glmmsim.model.links``. The first link listed is the default, as in R (``Gamma`` defaults to the inverse link,
``inverse.gaussian`` to ``1/mu^2``), so coefficients read off a default-link fit mean
the same model here.

Keyed draws. Every response draw reads the row's own counter-based stream (a
:class:`~glmmsim.randomness.streams.RowStreams`): draw ``j`` of row ``r`` is a uniform ``u_j``
in (0, 1), a pure function of ``(stream, keys[r], j)``; ``z_j = ndtri(u_j)`` is the
matching standard normal. A row's response depends on nothing else, so any subset of
rows gets exactly the numbers of the whole. Rejection samplers make attempt ``a`` of a
row from draws ``2a`` and ``2a + 1``; only rejected rows draw again. "stage s" is an
independent sub-stream of the same rows (``samplers.stage``).

=================  ==========================================================================
family             draws (``mu`` = mean, ``loc`` = location, ``n`` = trials)
=================  ==========================================================================
gaussian           ``loc + sigma * z_0``
binomial           ``n = 1`` or no trials: ``u_0 < p``.  ``p > 1/2`` counts failures with ``1 - p``;
                   ``n * p < 10``: inversion of the CDF at ``u_0``; else BTRS attempts on
                   ``(u_2a, u_2a+1)``
poisson            ``mu < 10``: inversion of the CDF at ``u_0``; else PTRS attempts on ``(u_2a, u_2a+1)``
negative_binomial  gamma(theta, mu / theta) on stage "gamma", then Poisson of that on stage "poisson"
gamma              Marsaglia-Tsang attempts: normal ``z_2a``, uniform ``u_2a+1``; shape < 1 draws
                   shape + 1 and multiplies by ``U**(1/shape)``, ``U`` = ``u_0`` of stage "boost"
inverse_gaussian   Michael-Schucany-Haas: normal ``z_0``, uniform ``u_1`` picks the root
lognormal          ``exp(loc + sigma * z_0)``
exgaussian         ``loc + sigma * z_0 + tau * (-log(u_1))``
shifted_lognormal  ``shift + exp(loc + sigma * z_0)``
=================  ==========================================================================

Examples
--------
>>> import numpy as np
>>> fam = get_family("binomial", link="probit")
>>> fam.describe()
'binomial(link = "probit")'
>>> fam.mean(np.array([0.0])).tolist()
[0.5]
>>> y = fam.sample(np.zeros(5), 1, trials=10)
>>> y.dtype.kind, y.shape
('i', (5,))
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np

from ..errors import DataError, InputTypeError, ParameterError, did_you_mean, format_names, plain
from ..randomness.seeds import SeedLike, seed_key
from ..randomness import samplers as _samplers
from ..randomness.streams import RowStreams, RowStreamsStack
from .links import Link, get_link

__all__ = ["Family", "FAMILY_NAMES", "get_family", "family_key", "FIT_FAMILIES", "resolve_family"]

ArrayLike = Any

#: How many offending rows an error message lists before summarising the rest.
_MAX_ROWS_SHOWN = 5

# Counts are int64: Poisson means stay a margin below 2**63 (about 9.22e18).
_POISSON_MEAN_MAX = 9.0e18

#: Largest number of binomial trials: every count up to 2**53 is exact in float64.
TRIALS_MAX = 2**53


# ------------------------------------------------------------------ family specs


@dataclass(frozen=True)
class _Param:
    """One dispersion parameter: its name, lower bound and what it means."""

    name: str
    minimum: Optional[float]  # None: any finite real
    strict: bool  # True: value must be > minimum, else >= minimum
    meaning: str
    maximum: Optional[float] = None  # largest value whose draws and moments stay finite in float64
    maximum_why: str = ""

    def bound_text(self) -> str:
        if self.minimum is None:
            text = "a finite real number"
        else:
            text = f"a finite number {'>' if self.strict else '>='} {self.minimum:g}"
        if self.maximum is not None:
            text += f" and <= {self.maximum:g}"
        return text


@dataclass(frozen=True)
class _Alias:
    """A parameter that can be given instead of a canonical one (Gamma's sigma for shape)."""

    name: str
    canonical: str
    to_canonical: Callable[[float], float]
    from_canonical: Callable[[float], float]
    param: _Param


@dataclass(frozen=True)
class _Spec:
    """Everything that distinguishes one family from another."""

    name: str
    r_name: str
    links: tuple[str, ...]  # the first is the default
    params: tuple[_Param, ...]
    mean_text: str  # the valid range of the response mean in words, for error messages
    sampler: Callable[..., np.ndarray]
    variance: Callable[..., np.ndarray]
    mean_min: Optional[float] = None  # bounds of the response mean (None: unbounded)
    mean_min_strict: bool = False
    mean_max: Optional[float] = None
    discrete: bool = False
    # location parameter -> response mean; None when the link already gives the mean
    location_to_mean: Optional[Callable[[np.ndarray, Mapping[str, float]], np.ndarray]] = None
    aliases: tuple[_Alias, ...] = ()
    # the sampler is elementwise over one draw a row: it takes a (K, n) stack of locations and a
    # RowStreamsStack, and row k is what it gives for stream k alone
    stacks: bool = False


# Samplers take (loc, params, noise, trials); loc is linkinv(eta), already validated, and
# noise a RowStreams over the same rows. Each reads only its rows' own keyed draws (the
# draw indices are listed in the module docstring), so a row's response never depends
# on the other rows. The kernels live in samplers.py.


def _sample_gaussian(loc, params, noise, trials):
    y = _samplers.normals(noise, 0)
    y *= params["sigma"]
    y += loc
    return y


def _sample_binomial(loc, params, noise, trials):
    if trials is None or (isinstance(trials, int) and trials == 1):
        return _samplers.bernoulli(loc, noise)
    n = np.broadcast_to(np.asarray(trials, dtype=np.int64), loc.shape)
    return _samplers.binomial(n, loc, noise)


def _sample_poisson(loc, params, noise, trials):
    return _samplers.poisson(loc, noise)


def _sample_negbin(loc, params, noise, trials):
    # gamma-Poisson mixture; each stage on its own sub-stream
    theta = params["theta"]
    rate = _samplers.gamma(theta, loc / theta, _samplers.stage(noise, "gamma"))
    too_big = rate > _POISSON_MEAN_MAX
    if too_big.any():
        raise DataError(
            f"negative_binomial with theta = {theta:g}: the gamma-distributed Poisson mean of "
            f"{_count_text(too_big, loc.shape[0])} exceeds {_POISSON_MEAN_MAX:g}, beyond int64 counts; "
            "use a larger theta or a smaller mean."
        )
    return _samplers.poisson(rate, _samplers.stage(noise, "poisson"))


def _sample_gamma(loc, params, noise, trials):
    shape = params["shape"]
    return _samplers.gamma(shape, loc / shape, noise)


def _sample_inverse_gaussian(loc, params, noise, trials):
    # beyond this mean the variance dispersion * mu**3 overflows float64 and the draws collapse to 0
    largest = (np.finfo(float).max / max(params["dispersion"], 1.0)) ** (1.0 / 3.0) / 10.0
    too_big = np.asarray(loc) > largest
    if too_big.any():
        raise DataError(
            f"inverse_gaussian with dispersion = {params['dispersion']:g}: the mean of "
            f"{_count_text(too_big, loc.shape[0])} exceeds {largest:.3g}, where the variance dispersion * mu^3 "
            f"overflows float64; means up to {largest:.3g} can be drawn: lower the linear predictor"
        )
    return _samplers.inverse_gaussian(loc, 1.0 / params["dispersion"], noise)


def _sample_lognormal(loc, params, noise, trials):
    return _samplers.exp(_sample_gaussian(loc, params, noise, trials))


def _sample_exgaussian(loc, params, noise, trials):
    y = _sample_gaussian(loc, params, noise, trials)
    e = _samplers.exponential(noise, 1)
    e *= params["tau"]
    y += e
    return y


def _sample_shifted_lognormal(loc, params, noise, trials):
    y = _sample_lognormal(loc, params, noise, trials)
    y += params["shift"]
    return y


def _var_constant_sigma(mu, params, trials):
    return np.full(np.shape(mu), params["sigma"] ** 2)


def _var_binomial(mu, params, trials):
    n = 1 if trials is None else trials
    return n * mu * (1.0 - mu)


def _var_poisson(mu, params, trials):
    return np.array(mu, dtype=float)


def _var_negbin(mu, params, trials):
    return mu + np.square(mu) / params["theta"]


def _var_gamma(mu, params, trials):
    return np.square(mu) / params["shape"]


def _var_inverse_gaussian(mu, params, trials):
    return params["dispersion"] * mu**3


def _var_lognormal(mu, params, trials):
    return np.expm1(params["sigma"] ** 2) * np.square(mu)


def _var_exgaussian(mu, params, trials):
    return np.full(np.shape(mu), params["sigma"] ** 2 + params["tau"] ** 2)


def _var_shifted_lognormal(mu, params, trials):
    return np.expm1(params["sigma"] ** 2) * np.square(np.asarray(mu) - params["shift"])


def _mean_lognormal(loc, params):
    return np.exp(loc + 0.5 * params["sigma"] ** 2)


def _mean_exgaussian(loc, params):
    return loc + params["tau"]


def _mean_shifted_lognormal(loc, params):
    return params["shift"] + np.exp(loc + 0.5 * params["sigma"] ** 2)


# Upper bounds that keep draws and moments finite: a standard normal drawn from 53-bit
# uniforms is at most 8.3 in size, an exponential at most 37.5, so sigma * z and tau * e
# stay finite up to 1e300; a lognormal's mean exp(mu + sigma**2 / 2) needs sigma**2 finite.
_SCALE_MAX = 1e300
_SCALE_WHY = "larger values overflow float64 in the draws"
_LOG_SIGMA_MAX = 1e150
_LOG_SIGMA_WHY = "larger values overflow the mean exp(mu + sigma**2 / 2)"
_SIGMA = _Param("sigma", 0.0, False, "residual standard deviation", _SCALE_MAX, _SCALE_WHY)
_SIGMA_LOG = _Param("sigma", 0.0, False, "standard deviation of log(y)", _LOG_SIGMA_MAX, _LOG_SIGMA_WHY)
_SIGMA_EXG = _Param(
    "sigma", 0.0, False, "standard deviation of the Gaussian component", _SCALE_MAX, _SCALE_WHY
)
_SIGMA_SLN = _Param("sigma", 0.0, False, "standard deviation of log(y - shift)", _LOG_SIGMA_MAX, _LOG_SIGMA_WHY)
#: Smallest negative-binomial theta: below it the gamma stage underflows and every count is 0.
THETA_MIN = 1e-8
_THETA = _Param("theta", THETA_MIN, False, "size; variance mu + mu^2/theta")
_SHAPE = _Param("shape", 0.0, True, "shape; variance mu^2/shape")


def _shape_from_sigma(sigma: float) -> float:
    try:
        return 1.0 / sigma**2
    except (ZeroDivisionError, OverflowError):  # sigma**2 underflows to 0: shape is beyond float64
        return math.inf


def _sigma_from_shape(shape: float) -> float:
    return 1.0 / math.sqrt(shape)


# module-level functions, not lambdas: a Gamma family must pickle
_GAMMA_SIGMA = _Alias(
    "sigma",
    "shape",
    to_canonical=_shape_from_sigma,
    from_canonical=_sigma_from_shape,
    param=_Param("sigma", 0.0, True, "coefficient of variation 1/sqrt(shape), lme4's sigma()"),
)
_DISPERSION = _Param("dispersion", 0.0, True, "variance dispersion * mu^3")
_TAU = _Param("tau", 0.0, False, "mean of the exponential component", _SCALE_MAX, _SCALE_WHY)
_SHIFT = _Param("shift", None, False, "non-decision time added to the lognormal")

_SPECS: dict[str, _Spec] = {
    spec.name: spec
    for spec in (
        _Spec(
            name="gaussian",
            r_name="gaussian",
            links=("identity", "log"),
            params=(_SIGMA,),
            mean_text="a finite number",
            sampler=_sample_gaussian,
            variance=_var_constant_sigma,
            stacks=True,
        ),
        _Spec(
            name="binomial",
            r_name="binomial",
            links=("logit", "probit", "cloglog", "log"),
            params=(),
            mean_min=0.0,
            mean_max=1.0,
            mean_text="a probability in [0, 1]",
            discrete=True,
            sampler=_sample_binomial,
            variance=_var_binomial,
        ),
        _Spec(
            name="poisson",
            r_name="poisson",
            links=("log", "identity", "sqrt"),
            params=(),
            mean_min=0.0,
            mean_max=_POISSON_MEAN_MAX,
            mean_text="a finite number >= 0",
            discrete=True,
            sampler=_sample_poisson,
            variance=_var_poisson,
        ),
        _Spec(
            name="negative_binomial",
            r_name="negative_binomial",
            links=("log",),
            params=(_THETA,),
            mean_min=0.0,
            mean_max=_POISSON_MEAN_MAX,
            mean_text="a finite number >= 0",
            discrete=True,
            sampler=_sample_negbin,
            variance=_var_negbin,
        ),
        _Spec(
            name="gamma",
            r_name="Gamma",
            links=("inverse", "log", "identity"),  # R's Gamma() default first
            params=(_SHAPE,),
            mean_min=0.0,
            mean_min_strict=True,
            mean_text="a finite number > 0",
            sampler=_sample_gamma,
            variance=_var_gamma,
            aliases=(_GAMMA_SIGMA,),
        ),
        _Spec(
            name="inverse_gaussian",
            r_name="inverse.gaussian",
            links=("1/mu^2", "log"),
            params=(_DISPERSION,),
            mean_min=0.0,
            mean_min_strict=True,
            mean_text="a finite number > 0",
            sampler=_sample_inverse_gaussian,
            variance=_var_inverse_gaussian,
        ),
        _Spec(
            name="lognormal",
            r_name="lognormal",
            links=("identity",),
            params=(_SIGMA_LOG,),
            mean_text="a finite number",
            sampler=_sample_lognormal,
            variance=_var_lognormal,
            location_to_mean=_mean_lognormal,
        ),
        _Spec(
            name="exgaussian",
            r_name="exgaussian",
            links=("identity",),
            params=(_SIGMA_EXG, _TAU),
            mean_text="a finite number",
            sampler=_sample_exgaussian,
            variance=_var_exgaussian,
            location_to_mean=_mean_exgaussian,
        ),
        _Spec(
            name="shifted_lognormal",
            r_name="shifted_lognormal",
            links=("identity",),
            params=(_SIGMA_SLN, _SHIFT),
            mean_text="a finite number",
            sampler=_sample_shifted_lognormal,
            variance=_var_shifted_lognormal,
            location_to_mean=_mean_shifted_lognormal,
        ),
    )
}

#: Canonical family names, in documentation order.
FAMILY_NAMES: tuple[str, ...] = tuple(_SPECS)

# Other spellings (lme4, glmmTMB, MASS, brms) after lower-casing and mapping "." "-" " " to "_".
_FAMILY_ALIASES = {
    "normal": "gaussian",
    "bernoulli": "binomial",
    "negbin": "negative_binomial",
    "negbinomial": "negative_binomial",
    "negative_binomial": "negative_binomial",
    "nbinom2": "negative_binomial",
    "neg_bin": "negative_binomial",
    "nb": "negative_binomial",
    "inverse_gaussian": "inverse_gaussian",
    "inversegaussian": "inverse_gaussian",
    "wald": "inverse_gaussian",
    "log_normal": "lognormal",
    "ex_gaussian": "exgaussian",
    "exgauss": "exgaussian",
    "exponentially_modified_gaussian": "exgaussian",
    "shiftedlognormal": "shifted_lognormal",
    "shifted_log_normal": "shifted_lognormal",
}


def _family_key(name: str) -> str:
    key = name.strip().lower()
    for ch in ".- ":
        key = key.replace(ch, "_")
    return _FAMILY_ALIASES.get(key, key)


# ----------------------------------------------------------------------- Family


class Family:
    """A response distribution with its link and dispersion parameters.

    Build one with :func:`get_family`; a Family is immutable.

    Attributes
    ----------
    name : str
        Canonical family name (one of :data:`FAMILY_NAMES`).
    link : Link
        The link in use.
    params : dict
        Dispersion parameters by name (a copy; Gamma lists both ``shape`` and
        the equivalent ``sigma``).
    param_names : tuple of str
        Names of the dispersion parameters this family accepts.
    default_link : str
        Name of the family's default link.
    discrete : bool
        Whether responses are integer counts.

    Examples
    --------
    >>> fam = get_family("Gamma", sigma=0.5)
    >>> fam.name, fam.link.name, fam.params
    ('gamma', 'inverse', {'shape': 4.0, 'sigma': 0.5})
    >>> fam.param_names
    ('shape', 'sigma')
    """

    __slots__ = ("_spec", "_link", "_params")

    def __init__(self, spec: _Spec, link: Link, params: Mapping[str, float]) -> None:
        # Private: get_family validates `params`; this only stores them.
        self._spec = spec
        self._link = link
        self._params = dict(params)

    # ---- attributes
    @property
    def name(self) -> str:
        return self._spec.name

    @property
    def r_name(self) -> str:
        """The family's name as R prints it (``Gamma``, ``inverse.gaussian``)."""
        return self._spec.r_name

    @property
    def link(self) -> Link:
        return self._link

    @property
    def params(self) -> dict[str, float]:
        out = dict(self._params)
        for alias in self._spec.aliases:
            out[alias.name] = alias.from_canonical(self._params[alias.canonical])
        return out

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self._spec.params) + tuple(a.name for a in self._spec.aliases)

    @property
    def default_link(self) -> str:
        return self._spec.links[0]

    @property
    def links(self) -> tuple[str, ...]:
        """Names of the links this family accepts, default first."""
        return self._spec.links

    @property
    def discrete(self) -> bool:
        return self._spec.discrete

    # ---- dunder
    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Family)
            and other._spec.name == self._spec.name
            and other._link == self._link
            and other._params == self._params
        )

    def __hash__(self) -> int:
        return hash((self._spec.name, self._link.name, tuple(sorted(self._params.items()))))

    def __reduce__(self):
        # rebuilt by name through get_family (pickle and cloudpickle alike): nothing but names
        # and floats travel, and the rebuilt family is validated like a new one
        return (_rebuild_family, (self._spec.name, self._link.name, dict(self._params)))

    def __repr__(self) -> str:
        return f"<Family {self.describe()}>"

    def describe(self) -> str:
        """lme4-style description with the dispersion values.

        Examples
        --------
        >>> get_family("binomial", link="probit").describe()
        'binomial(link = "probit")'
        >>> get_family("negbin", theta=2).describe()
        'negative_binomial(link = "log"), theta = 2'
        >>> get_family("Gamma", shape=4).describe()
        'Gamma(link = "inverse"), shape = 4 (sigma = 0.5)'
        """
        text = f'{self._spec.r_name}(link = "{self._link.name}")'
        if self._params:
            text += ", " + ", ".join(f"{k} = {v:.6g}" for k, v in self._params.items())
        for alias in self._spec.aliases:
            text += f" ({alias.name} = {alias.from_canonical(self._params[alias.canonical]):.6g})"
        return text

    # ---- numbers
    def mean(self, eta: ArrayLike, index: Any = None) -> np.ndarray:
        """Conditional mean of the response given the linear predictor.

        Parameters
        ----------
        eta : array-like, 1-D
            Linear predictor, one value per row.  A pandas Series supplies its
            own index for error messages when ``index`` is not given.
        index : pandas.Index, optional
            Row labels used to name offending rows in error messages.

        Returns
        -------
        numpy.ndarray
            The mean of ``y`` (for binomial: the success probability; the
            expected count is ``trials * mean``).

        Raises
        ------
        DataError
            If the link maps some rows outside the family's valid mean range
            (e.g. a negative Poisson mean under the identity link); the message
            names the first few rows and counts them all.

        Examples
        --------
        >>> import numpy as np
        >>> get_family("exgaussian", sigma=0.05, tau=0.1).mean(np.array([0.4])).round(6).tolist()
        [0.5]
        >>> get_family("poisson", link="identity").mean([2.0, -1.0])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        glmmsim.errors.DataError: poisson(link = "identity") gives an invalid mean at 1 of 2 rows ...
        """
        eta_arr, index = _as_eta(eta, index)
        mean, _ = self._mean_and_location(eta_arr, index)
        if np.may_share_memory(mean, eta_arr):
            mean = mean.copy()  # never hand back an alias of the caller's array
        return mean

    def sample(
        self,
        eta: ArrayLike,
        noise: Union[RowStreams, SeedLike],
        *,
        trials: ArrayLike = None,
        index: Any = None,
    ) -> np.ndarray:
        """Draw one response per row given the linear predictor, from each row's own keyed stream.

        Row ``r``'s response depends only on ``eta[r]``, ``trials[r]``, the family's
        parameters and ``(noise.stream, noise.keys[r])``: any slice, subset or
        permutation of the rows gets exactly the numbers of the whole. Which draws
        each family reads is documented in the module docstring.

        Parameters
        ----------
        eta : array-like, 1-D
            Linear predictor, one value per row.
        noise : RowStreams or int, SeedSequence or Generator
            The rows' keyed random streams (:class:`glmmsim.randomness.streams.RowStreams`,
            one key per row), or a seed: then the rows are keyed by position
            ``0..n-1`` on the stream ``randomness.seeds.seed_key(seed)`` (a Generator is
            used once, to derive that key).
        trials : int or array-like of int, optional
            Binomial only: number of trials, a positive int or one
            non-negative int per row, at most 2**53.  ``None`` means Bernoulli (one trial).
        index : pandas.Index, optional
            Row labels for error messages.

        Returns
        -------
        numpy.ndarray
            int64 counts for binomial (successes), poisson and
            negative_binomial; float64 otherwise.

        Raises
        ------
        DataError
            Invalid means (by row), ``noise`` keyed for another number of rows, or
            draws that overflow float64 (naming the family's parameters).

        Examples
        --------
        >>> import numpy as np
        >>> from glmmsim.randomness.streams import RowStreams
        >>> fam = get_family("poisson")
        >>> eta = np.log([0.5, 3.0, 40.0, 2e4])
        >>> whole = fam.sample(eta, RowStreams(np.arange(4, dtype=np.uint64), stream=9))
        >>> part = fam.sample(eta[2:], RowStreams(np.arange(2, 4, dtype=np.uint64), stream=9))
        >>> bool(np.array_equal(whole[2:], part)), whole.dtype.name
        (True, 'int64')
        >>> bool(np.array_equal(fam.sample(eta, 5), fam.sample(eta, 5)))
        True
        """
        eta_arr, index = _as_eta(eta, index)
        n = eta_arr.shape[0]
        streams = _as_row_streams(noise, n)
        trials_arr = self._check_trials(trials, n, index)
        _, loc = self._mean_and_location(eta_arr, index)
        with np.errstate(over="ignore"):  # overflowed draws are refused below, naming the parameters
            y = self._spec.sampler(loc, self._params, streams, trials_arr)
        if not self._spec.discrete:
            self._check_finite(y, index)
        return y

    def sample_many(self, etas: np.ndarray, noise: RowStreamsStack, *, trials: ArrayLike = None,
                    index: Any = None) -> np.ndarray:
        """:meth:`sample` of several linear predictors of the same rows, one per stream of ``noise``.

        Row ``k`` of the result is ``sample(etas[k], noise[k], trials=trials, index=index)``,
        the same numbers; an identity-link family whose sampler is elementwise (gaussian) draws
        them all in one pass, the others one by one.

        Examples
        --------
        >>> import numpy as np
        >>> from glmmsim.randomness.streams import RowStreamsStack
        >>> fam = get_family("gaussian", sigma=2.0)
        >>> etas = np.array([[0.0, 1.0, 2.0], [5.0, 5.0, 5.0]])
        >>> noise = RowStreamsStack(np.arange(3, dtype=np.uint64), [7, 8])
        >>> y = fam.sample_many(etas, noise)
        >>> y.shape, bool(np.array_equal(y[1], fam.sample(etas[1], noise[1])))
        ((2, 3), True)
        """
        etas = np.asarray(etas, dtype=np.float64)
        if etas.ndim != 2 or etas.shape != (len(noise.streams), len(noise)):
            raise ParameterError(
                f"sample_many needs one linear predictor per stream, each with one value per row: "
                f"shape ({len(noise.streams)}, {len(noise)}); got {etas.shape}",
                parameter="etas",
            )
        if self._spec.stacks and trials is None and self._link.name == "identity":
            with np.errstate(over="ignore"):
                y = self._spec.sampler(etas, self._params, noise, None)
            if np.isfinite(y).all():
                return y
        # a family drawn row by row, or draws to refuse: sample() names the first offending call's rows
        return np.stack([self.sample(eta, noise[k], trials=trials, index=index) for k, eta in enumerate(etas)])

    def variance(self, mu: ArrayLike, trials: ArrayLike = None) -> np.ndarray:
        """Variance of the response at mean ``mu`` (the family's variance function).

        Parameters
        ----------
        mu : array-like
            Mean on the response scale, as returned by :meth:`mean` (for
            binomial: the success probability).
        trials : int or array-like of int, optional
            Binomial only; the variance returned is that of the success count.

        Returns
        -------
        numpy.ndarray

        Examples
        --------
        >>> get_family("negbin", theta=2.0).variance([4.0]).tolist()
        [12.0]
        >>> get_family("binomial").variance([0.5], trials=10).tolist()
        [2.5]
        """
        mu_arr = np.asarray(mu, dtype=float)
        n = mu_arr.shape[0] if mu_arr.ndim == 1 else 1
        trials_arr = self._check_trials(trials, n, None)
        return np.asarray(self._spec.variance(mu_arr, self._params, trials_arr), dtype=float)

    # ---- internals
    def _mean_and_location(self, eta: np.ndarray, index: Any) -> tuple[np.ndarray, np.ndarray]:
        """Validated (response mean, location parameter); the same array when they coincide."""
        link = self._link
        if link.eta_min is not None:
            _check_range(eta, link.eta_min, False, None, lambda bad: self._eta_error(eta, bad, index))
        with np.errstate(all="ignore"):  # invalid values are reported below, by row
            loc = link.linkinv(eta)
            to_mean = self._spec.location_to_mean
            mean = loc if to_mean is None else to_mean(loc, self._params)
        spec = self._spec
        _check_range(
            mean,
            spec.mean_min,
            spec.mean_min_strict,
            spec.mean_max,
            lambda bad: self._mean_error(eta, mean, bad, index),
        )
        return mean, loc

    def _eta_error(self, eta: np.ndarray, bad: np.ndarray, index: Any) -> DataError:
        return DataError(
            f"{self.describe()} needs a linear predictor >= {self._link.eta_min:g}; "
            f"{_rows_text(bad, index, lambda i: f'eta = {eta[i]:.6g}')}. Use another link "
            f"({format_names(l for l in self.links if l != self._link.name)}) or change the "
            "coefficients."
        )

    def _mean_error(self, eta: np.ndarray, mean: np.ndarray, bad: np.ndarray, index: Any) -> DataError:
        others = [l for l in self.links if l != self._link.name]

        def detail(i: int) -> str:
            return f"eta = {eta[i]:.6g}, mean = {mean[i]:.6g}"

        hint = (
            f"Use a link that keeps the mean in range ({format_names(others)}) or change the coefficients."
            if others
            else "Change the coefficients so the linear predictor stays in range."
        )
        return DataError(
            f"{self.describe()} gives an invalid mean at {_count_text(bad, eta.shape[0])} "
            f"(the mean must be {self._spec.mean_text}): {_rows_text(bad, index, detail)}. {hint}"
        )

    def _check_finite(self, y: np.ndarray, index: Any) -> None:
        """Refuse draws that overflowed float64 (huge sigma, tau, shift or predictor), naming the parameters."""
        if y.shape[0] == 0 or (np.isfinite(y.min()) and np.isfinite(y.max())):
            return
        bad = ~np.isfinite(y)
        names = format_names(self.param_names) if self.param_names else "the linear predictor"
        raise DataError(
            f"{self.describe()} draws responses that overflow float64 at {_count_text(bad, y.shape[0])} "
            f"({_rows_text(bad, index, lambda i: f'y = {y[i]:g}')}); lower {names} or the linear predictor."
        )

    def _check_trials(self, trials: ArrayLike, n: int, index: Any) -> Optional[Union[int, np.ndarray]]:
        if trials is None:
            return None
        if self._spec.name != "binomial":
            raise ParameterError(
                f"trials applies only to the binomial family, not to {self.describe()}; leave it as None."
            )
        return _validate_trials(trials, n, index)


# ---------------------------------------------------------- validation helpers


def _as_row_streams(noise: Union[RowStreams, SeedLike], n: int) -> RowStreams:
    """The rows' keyed streams: as given, or keyed by position on the seed's stream."""
    if isinstance(noise, RowStreams):
        if len(noise) != n:
            raise DataError(f"noise has keys for {len(noise)} rows but the linear predictor has {n} rows")
        return noise
    return RowStreams(np.arange(n, dtype=np.uint64), seed_key(noise, "noise"))


def _as_eta(eta: ArrayLike, index: Any) -> tuple[np.ndarray, Any]:
    if index is None and hasattr(eta, "index") and hasattr(eta, "to_numpy"):
        index = eta.index
    if hasattr(eta, "to_numpy"):
        eta = eta.to_numpy(dtype=float, na_value=np.nan)
    try:
        arr = np.asarray(eta, dtype=float)
    except (TypeError, ValueError) as exc:
        raise DataError(f"the linear predictor must be numeric; could not convert it: {exc}") from exc
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise DataError(f"the linear predictor must be one-dimensional; got shape {arr.shape}")
    if index is not None and len(index) != arr.shape[0]:
        raise DataError(f"index has {len(index)} labels but the linear predictor has {arr.shape[0]} rows")
    return arr, index


def _check_range(
    values: np.ndarray,
    lower: Optional[float],
    lower_strict: bool,
    upper: Optional[float],
    make_error: Callable[[np.ndarray], Exception],
) -> None:
    """Raise ``make_error(bad_mask)`` if any value is non-finite or out of bounds.

    The common case (everything valid) costs one or two reductions and no
    temporary array; the row-by-row mask is only built when something is wrong.
    """
    if values.shape[0] == 0:
        return
    lo = values.min()  # NaN propagates, so a NaN anywhere fails every test below
    hi = values.max()
    ok = bool(np.isfinite(lo) and np.isfinite(hi))
    if ok and lower is not None:
        ok = lo > lower if lower_strict else lo >= lower
    if ok and upper is not None:
        ok = hi <= upper
    if ok:
        return
    bad = ~np.isfinite(values)
    if lower is not None:
        bad |= (values <= lower) if lower_strict else (values < lower)
    if upper is not None:
        bad |= values > upper
    raise make_error(bad)


def _count_text(bad: np.ndarray, n: int) -> str:
    count = int(np.count_nonzero(bad))
    return f"{count} of {n} row{'s' if n != 1 else ''}"


def _label(pos: int, index: Any) -> str:
    return repr(plain(index[pos])) if index is not None else str(pos)


def _rows_text(bad: np.ndarray, index: Any, detail: Callable[[int], str]) -> str:
    """``"rows 'a' (detail); 'b' (detail); and 3 more"`` for the first few flagged rows."""
    positions = np.flatnonzero(bad)
    parts = [f"{_label(int(pos), index)} ({detail(int(pos))})" for pos in positions[:_MAX_ROWS_SHOWN]]
    text = ("rows " if index is not None else "row positions ") + "; ".join(parts)
    if positions.shape[0] > _MAX_ROWS_SHOWN:
        text += f"; and {positions.shape[0] - _MAX_ROWS_SHOWN} more"
    return text


def _validate_trials(trials: ArrayLike, n: int, index: Any) -> Union[int, np.ndarray]:
    """A positive int, or an int64 array of non-negative counts, one per row."""
    if isinstance(trials, (bool, np.bool_)):
        raise ParameterError(f"trials must be a positive integer or one integer per row; got {trials!r}")
    if isinstance(trials, numbers.Number):
        try:
            value = float(trials) if isinstance(trials, numbers.Real) else math.nan
        except OverflowError:  # larger than any float: refused as too large below
            value = math.inf
        if not (math.isfinite(value) and value >= 1 and value == int(value)):
            raise ParameterError(f"trials must be a positive integer; got {trials!r}")
        if isinstance(trials, numbers.Integral) and int(trials) > TRIALS_MAX or value > TRIALS_MAX:
            raise ParameterError(
                f"trials must be at most 2**53 = {TRIALS_MAX} (counts stay exact in float64); got {trials!r}"
            )
        return int(value)
    if isinstance(trials, str):
        raise ParameterError(
            f"trials must be a positive integer or one integer per row; got the string {trials!r}"
            " (a column name is resolved by Model, not by the family)"
        )
    if index is None and hasattr(trials, "index") and hasattr(trials, "to_numpy"):
        index = trials.index
    try:
        if hasattr(trials, "to_numpy"):
            if getattr(trials, "dtype", None) is not None and trials.dtype == bool:
                raise TypeError("boolean values")
            if getattr(trials, "dtype", None) is not None and trials.dtype.kind not in "iuf":
                # text such as "3" is data someone typed: counts must be numbers, not parsed from text
                raise TypeError(f"a column of {trials.dtype} values, not numbers")
            trials = trials.to_numpy(dtype=float, na_value=np.nan)
        raw = np.asarray(trials)
        if raw.dtype == bool:
            raise TypeError("boolean values")
        if raw.dtype.kind not in "iuf":
            raise TypeError(f"values of type {raw.dtype}, not numbers")
        arr = np.asarray(raw, dtype=float)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"trials must be whole numbers (an integer or float column), one per row; got {exc}; convert a text "
            f"column with pd.to_numeric"
        ) from exc
    if arr.ndim != 1 or arr.shape[0] != n:
        raise DataError(
            f"trials must be a single integer or hold one value per row ({n}); got shape {arr.shape}"
        )
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(arr) | (arr < 0) | (arr != np.floor(arr))
    if bad.any():
        shown = _rows_text(bad, index, lambda i: f"{arr[i]:g}")
        raise DataError(f"trials must be finite non-negative integers; {_count_text(bad, n)} are not: {shown}")
    # integer input is checked as integers: float64 would round 2**53 + 1 down into range
    huge = (raw > TRIALS_MAX) if raw.dtype.kind in "iu" else (arr > TRIALS_MAX)
    if huge.any():
        shown = _rows_text(huge, index, lambda i: f"{raw[i]}")
        raise DataError(
            f"trials must be at most 2**53 = {TRIALS_MAX} (counts stay exact in float64); "
            f"{_count_text(huge, n)} are larger: {shown}"
        )
    return raw.astype(np.int64) if raw.dtype.kind in "iu" else arr.astype(np.int64)


def _param_value(family: str, name: str, value: Any, param: _Param) -> float:
    """Check one dispersion value and return it as a float."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ParameterError(
            f"{family} parameter {name!r} must be {param.bound_text()}; got {type(value).__name__} {value!r}",
            parameter=name,
        )
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float range: not finite, so refused below
        number, value = math.inf, f"an integer of about {int(abs(int(value)).bit_length() * 0.30103) + 1} digits"
    ok = math.isfinite(number)
    if ok and param.minimum is not None:
        ok = number > param.minimum if param.strict else number >= param.minimum
    if ok and param.maximum is not None and number > param.maximum:
        raise ParameterError(
            f"{family} parameter {name!r} must be {param.bound_text()} ({param.maximum_why}); got {value!r}",
            parameter=name,
        )
    if not ok:
        raise ParameterError(f"{family} parameter {name!r} must be {param.bound_text()}; got {value!r}", parameter=name)
    return number


def _validate_params(spec: _Spec, given: Mapping[str, Any]) -> dict[str, float]:
    """Return the canonical parameter dict, or raise naming the bad/missing/extra parameter."""
    valid = [p.name for p in spec.params] + [a.name for a in spec.aliases]
    for name in given:
        if name not in valid:
            if name == "trials" and spec.name == "binomial":
                raise ParameterError(
                    "trials is not a family parameter; pass it to Family.sample() or to Model(trials=...)."
                )
            expected = (
                f"its parameters are {format_names(valid)}" if valid else "it takes no dispersion parameters"
            )
            raise ParameterError(
                f"{spec.name} family does not take a parameter {name!r}; {expected}."
                + did_you_mean(name, valid),
                parameter=name,
            )
    out: dict[str, float] = {}
    for param in spec.params:
        alias = next((a for a in spec.aliases if a.canonical == param.name), None)
        if alias is not None and alias.name in given:
            if param.name in given:
                raise ParameterError(
                    f"{spec.name} family: give either {param.name!r} or {alias.name!r}, not both "
                    f"({alias.name} = 1/sqrt({param.name})).",
                    parameter=alias.name,
                )
            value = _param_value(spec.name, alias.name, given[alias.name], alias.param)
            canonical = alias.to_canonical(value)
            if not (math.isfinite(canonical) and canonical > 0):
                raise ParameterError(
                    f"{spec.name} parameter {alias.name!r} = {value!r} gives {param.name} = {canonical!r}, "
                    f"which is not {param.bound_text()}; give {param.name!r} directly."
                )
            out[param.name] = canonical
            continue
        if param.name not in given:
            either = f" (or {alias.name!r})" if alias is not None else ""
            raise ParameterError(
                f"{spec.name} family needs the parameter {param.name!r}{either}: the {param.meaning}.",
                parameter=param.name,
            )
        out[param.name] = _param_value(spec.name, param.name, given[param.name], param)
    return out


def family_key(name: str) -> str:
    """The canonical family name of a spelling :func:`get_family` accepts (``"Gamma"``, ``"nbinom2"``).

    Case, ``.``/``-``/space, other packages' aliases and missing underscores are forgiven;
    a name that is no family comes back normalised (lower case, ``_`` separators), so the
    caller can say which families it supports.

    Examples
    --------
    >>> family_key("Gamma"), family_key("negativebinomial"), family_key("inverse.gaussian"), family_key("Tweedie")
    ('gamma', 'negative_binomial', 'inverse_gaussian', 'tweedie')
    """
    key = _family_key(name)
    if key in _SPECS:
        return key
    compact = key.replace("_", "")
    return next((n for n in FAMILY_NAMES if n.replace("_", "") == compact), key)


def _resolve_spec(family: str) -> _Spec:
    key = family_key(family)
    if key not in _SPECS:
        raise ParameterError(
            f"unknown family {family!r}; valid families are {format_names(FAMILY_NAMES)}."
            + did_you_mean(key, list(FAMILY_NAMES) + list(_FAMILY_ALIASES))
        )
    return _SPECS[key]


def _resolve_link(spec: _Spec, link: Union[None, str, Link]) -> Link:
    if link is None:
        return get_link(spec.links[0])
    try:
        found = get_link(link)
    except ParameterError:
        found = None
    if found is None or found.name not in spec.links:
        shown = link.name if isinstance(link, Link) else link
        raise ParameterError(
            f"link {shown!r} is not available for the {spec.name} family; valid links are "
            f"{format_names(spec.links)} (default {spec.links[0]!r})."
            + did_you_mean(str(shown).lower(), spec.links)
        )
    return found


def _rebuild_family(name: str, link: str, params: dict[str, float]) -> Family:
    """Unpickle a Family from its name, link name and canonical parameters."""
    return get_family(name, link, **params)


def get_family(
    family: Union[str, Family],
    link: Union[None, str, Link] = None,
    **params: Any,
) -> Family:
    """Build a validated :class:`Family`.

    Parameters
    ----------
    family : str or Family
        A name from :data:`FAMILY_NAMES` or an lme4 / glmmTMB spelling
        (``"Gamma"``, ``"inverse.gaussian"``, ``"negbin"``, ``"nbinom2"``;
        case-insensitive).  A Family passes through, with ``link`` and
        ``params`` overriding its own.
    link : str or Link, optional
        Link name; ``None`` keeps the family's default (or the given Family's link).
    **params
        Dispersion parameters (see the module table).  A value of ``None``
        counts as not given, so callers can forward optional arguments.

    Returns
    -------
    Family

    Raises
    ------
    ParameterError
        Unknown family or link, a missing, unexpected or out-of-range parameter.

    Examples
    --------
    >>> get_family("gaussian", sigma=0.1).describe()
    'gaussian(link = "identity"), sigma = 0.1'
    >>> fam = get_family("inverse.gaussian", dispersion=0.5)
    >>> fam.name, fam.link.name
    ('inverse_gaussian', '1/mu^2')
    >>> get_family(get_family("gaussian", sigma=1.0), sigma=2.0).params
    {'sigma': 2.0}
    >>> get_family("poison")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    glmmsim.errors.ParameterError: unknown family 'poison'; ... Did you mean 'poisson'?
    """
    given = {k: v for k, v in params.items() if v is not None}
    if isinstance(family, Family):
        spec = family._spec
        base = dict(family._params)
        for alias in spec.aliases:
            if alias.name in given or alias.canonical in given:
                base.pop(alias.canonical, None)
        merged = {**base, **given}
        resolved_link = family.link if link is None else _resolve_link(spec, link)
        return Family(spec, resolved_link, _validate_params(spec, merged))
    if not isinstance(family, str):
        raise InputTypeError(
            f"family must be a name ({format_names(FAMILY_NAMES)}) or a Family; "
            f"got {type(family).__name__} {family!r}"
        )
    spec = _resolve_spec(family)
    resolved_link = _resolve_link(spec, link)
    return Family(spec, resolved_link, _validate_params(spec, given))


# ------------------------------------------------------- the families fitting supports


#: Family -> accepted links (default first). The lme4 engine fits the first three (see its module).
FIT_FAMILIES: dict[str, tuple[str, ...]] = {
    "gaussian": ("identity",),
    "binomial": ("logit", "probit", "cloglog"),
    "poisson": ("log",),
    "negative_binomial": ("log",),
    "gamma": ("inverse", "log"),  # inverse first: R's Gamma() default, as in Model
}


def resolve_family(family: object, link: str | None) -> tuple[str, str]:
    """Canonical ``(family, link)``, or a ParameterError naming what is valid.

    Examples
    --------
    >>> resolve_family("Binomial", None)
    ('binomial', 'logit')
    """
    name = getattr(family, "name", family)  # a glmmsim Family object is accepted too
    if link is None and hasattr(family, "link"):
        link = family.link.name
    if not isinstance(name, str):
        raise ParameterError(f"family must be a name such as 'gaussian'; got {type(name).__name__}")
    key = family_key(name)  # the spellings Model accepts
    if key not in FIT_FAMILIES:
        raise ParameterError(
            f"fitting supports family {format_names(FIT_FAMILIES)}; got {name!r}.{did_you_mean(key, FIT_FAMILIES)}"
        )
    links = FIT_FAMILIES[key]
    link = links[0] if link is None else str(link).strip().lower()
    if link not in links:
        raise ParameterError(f"family {key!r} is fitted with link {format_names(links)}; got {link!r}")
    return key, link
