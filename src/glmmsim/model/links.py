"""Link functions: the maps between a family's mean and the linear predictor, by their R names.

A :class:`Link` pairs ``eta = linkfun(mu)`` with its inverse ``mu = linkinv(eta)``;
:func:`get_link` looks one up by its lme4 / R name (``"logit"``, ``"1/mu^2"``, ...) or an
alias. Which links a family accepts, and its default, are :mod:`glmmsim.model.families`'.
The log link's inverse is :func:`glmmsim.randomness.samplers.exp`, so draws through it are
the same bits on every numpy version.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np
from scipy import special

from ..errors import InputTypeError, ParameterError, did_you_mean, format_names
from ..randomness import samplers as _samplers

__all__ = ["Link", "LINK_NAMES", "get_link"]


@dataclass(frozen=True, eq=False)
class Link:
    """A link function ``eta = linkfun(mu)`` with its inverse ``mu = linkinv(eta)``.

    Parameters
    ----------
    name : str
        The lme4 / R name of the link (``"logit"``, ``"1/mu^2"``, ...).
    linkfun : callable
        Maps a mean (or location parameter) to the linear-predictor scale.
    linkinv : callable
        Maps a linear predictor to the mean scale.
    eta_min : float or None
        Smallest linear predictor the link accepts (``0`` for ``sqrt``, whose
        inverse ``eta**2`` would otherwise fold negative predictors back).

    Examples
    --------
    >>> import numpy as np
    >>> link = get_link("logit")
    >>> link.name
    'logit'
    >>> float(link.linkinv(np.array(0.0)))
    0.5
    >>> round(float(link.linkfun(link.linkinv(np.array(1.25)))), 12)
    1.25
    """

    name: str
    linkfun: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    linkinv: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    eta_min: Optional[float] = None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Link) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("Link", self.name))

    def __reduce__(self):
        # rebuilt by name: the functions are looked up again, so pickles stay small and portable
        return (get_link, (self.name,))


def _identity(x: np.ndarray) -> np.ndarray:
    return x


def _cloglog_inv(eta: np.ndarray) -> np.ndarray:
    # 1 - exp(-exp(eta)) written with expm1 to keep precision for small eta
    return -np.expm1(-np.exp(eta))


def _cloglog(mu: np.ndarray) -> np.ndarray:
    return np.log(-np.log1p(-mu))


def _inverse(x: np.ndarray) -> np.ndarray:
    return 1.0 / x


def _inv_sqrt(eta: np.ndarray) -> np.ndarray:
    return 1.0 / np.sqrt(eta)


def _inv_square(mu: np.ndarray) -> np.ndarray:
    return 1.0 / np.square(mu)


_LINKS: dict[str, Link] = {
    link.name: link
    for link in (
        Link("identity", _identity, _identity),
        # the same bits on every numpy version (numpy's own exp differs in the last bit between versions)
        Link("log", np.log, _samplers.exp),
        Link("logit", special.logit, special.expit),
        Link("probit", special.ndtri, special.ndtr),
        Link("cloglog", _cloglog, _cloglog_inv),
        Link("sqrt", np.sqrt, np.square, eta_min=0.0),
        Link("inverse", _inverse, _inverse),
        Link("1/mu^2", _inv_square, _inv_sqrt),
    )
}

#: Names of every link glmmsim knows (not every family accepts every link).
LINK_NAMES: tuple[str, ...] = tuple(_LINKS)

_LINK_ALIASES = {
    "inverse_squared": "1/mu^2",
    "inverse_square": "1/mu^2",
    "mu^-2": "1/mu^2",
    "1/mu2": "1/mu^2",
    "reciprocal": "inverse",
}


def get_link(name: Union[str, Link]) -> Link:
    """Look up a link by its lme4 name (case-insensitive).

    Parameters
    ----------
    name : str or Link
        ``"identity"``, ``"log"``, ``"logit"``, ``"probit"``, ``"cloglog"``,
        ``"sqrt"``, ``"inverse"`` or ``"1/mu^2"``; a :class:`Link` is returned as is.

    Returns
    -------
    Link

    Raises
    ------
    ParameterError
        If the name is not a known link.

    Examples
    --------
    >>> get_link("Probit").name
    'probit'
    >>> get_link("inverse_squared").name
    '1/mu^2'
    """
    if isinstance(name, Link):
        return name
    if not isinstance(name, str):
        raise InputTypeError(f"link must be a string or a Link; got {type(name).__name__} {name!r}")
    key = name.strip().lower().replace(".", "_")
    key = _LINK_ALIASES.get(key, key)
    if key not in _LINKS:
        raise ParameterError(
            f"unknown link {name!r}; valid links are {format_names(LINK_NAMES)}."
            + did_you_mean(name.lower(), LINK_NAMES)
        )
    return _LINKS[key]
