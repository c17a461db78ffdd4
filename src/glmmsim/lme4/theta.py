"""Conversion to and from lme4's ``theta``.

lme4 stores the random-effect covariances as ``theta``: for each term, the
lower triangle (column-major) of the Cholesky factor of ``Sigma / sigma^2``
(linear mixed models) or of ``Sigma`` itself (GLMMs without a scale parameter).
Terms are in ``findbars`` order (``(1|a/b)`` gives ``b:a`` before ``a``), then,
unless the numbers of levels already never increase, sorted by decreasing number
of levels with ties reversed (``rev(order(nl))`` in ``mkReTrms``). The order
therefore depends on the data, which is why both functions take ``conditions``.

Examples
--------
>>> import pandas as pd
>>> data = pd.DataFrame({"x": [0.0, 1.0] * 6, "g": list("aabbccddeeff"), "h": list("ababababcbcb")})
>>> m = Model("y ~ x + (1 + x | g) + (1 | h)", fixed={"Intercept": 0, "x": 1},
...           random={"g": {"sd": {"Intercept": 2.0, "x": 1.0}, "corr": {("Intercept", "x"): 0.5}},
...                   "h": 1.0}, sigma=2.0)
>>> to_theta(m, data).round(4).tolist()
[1.0, 0.25, 0.433, 0.5]
>>> random_from_theta(m.formula, [1.0, 0.25, 0.433, 0.5], data, sigma=2.0)["h"]
{'sd': {'Intercept': 1.0}, 'corr': {}}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import InputTypeError, ParameterError
from ..model.families import Family, get_family
from ..model.formula import parse_formula
from ..model.matrices import grouping, model_columns
from ..model.bound import BoundModel
from ..model.model import Model
from ..model.parameters import TermCovariance
from ..model.terms import RandomTerm, expand_bars

__all__ = ["to_theta", "random_from_theta", "lme4_terms"]


def _lme4_order(terms: Sequence[RandomTerm], nlevels: Sequence[int]) -> list[int]:
    """Indices of ``terms`` in lme4's order, given each term's number of levels."""
    findbars = sorted(range(len(terms)), key=lambda i: terms[i].lme4_rank)
    nl = [nlevels[i] for i in findbars]
    if all(a >= b for a, b in zip(nl, nl[1:])):
        return findbars
    ascending = sorted(range(len(findbars)), key=lambda k: nl[k])  # stable, like R's order()
    return [findbars[k] for k in reversed(ascending)]


def _bound(model: Model | BoundModel, conditions: pd.DataFrame | None) -> BoundModel:
    if isinstance(model, BoundModel):
        if conditions is not None:
            raise InputTypeError("a BoundModel carries its conditions: pass conditions only with a Model")
        return model
    if conditions is None:
        raise InputTypeError("conditions are needed with a Model (they fix lme4's term order); or pass a BoundModel")
    return model.bind(conditions)


def lme4_terms(
    model: Model | BoundModel, conditions: pd.DataFrame | None = None
) -> list[tuple[RandomTerm, TermCovariance]]:
    """The model's random-effect terms with their covariances, in lme4's order for ``conditions``.

    lme4 sorts terms by decreasing number of levels in the data (``mkReTrms``), so
    the order, and with it ``theta`` and lme4's printed summaries, depends on the data.
    ``model`` is a Model with ``conditions``, or a BoundModel (which has its data).
    """
    bound = _bound(model, conditions)
    terms = bound.terms
    order = _lme4_order([bt.term for bt in terms], [len(bt.group.labels) for bt in terms])
    return [(terms[i].term, terms[i].cov) for i in order]


def _scale(family: Family, sigma: float | None) -> float:
    if family.name == "gaussian":
        if sigma is None or sigma <= 0:
            raise ParameterError("theta of a gaussian model is relative to sigma: give sigma > 0")
        return float(sigma)
    if family.param_names:
        raise ParameterError(
            f"theta conversion is defined here for gaussian models and for families without a "
            f"dispersion parameter (binomial, poisson); not for {family.describe()}"
        )
    return 1.0


def to_theta(model: Model | BoundModel, conditions: pd.DataFrame | None = None) -> np.ndarray:
    """lme4's ``theta`` for ``model`` with the grouping levels present in ``conditions``.

    Parameters
    ----------
    model : Model or BoundModel
        A gaussian, binomial or poisson model (a BoundModel brings its own conditions).
    conditions : pandas.DataFrame, optional
        Data that fix the numbers of levels (and so lme4's term order); needed with a Model.

    Returns
    -------
    numpy.ndarray
        The vector to pass as ``newparams = list(theta = ...)`` to lme4.

    Examples
    --------
    >>> import pandas as pd
    >>> from glmmsim import Model
    >>> m = Model("y ~ x + (1 | g)", fixed={"Intercept": 0, "x": 1}, random={"g": 0.5}, sigma=2)
    >>> to_theta(m, pd.DataFrame({"x": [0.0, 1.0, 2.0], "g": ["a", "b", "b"]}))  # SD / sigma
    array([0.25])
    """
    bound = _bound(model, conditions)
    scale = _scale(bound.model.family, bound.model.sigma)
    out = []
    for _, cov in lme4_terms(bound):
        out.extend(_tril_colmajor(cov.factor_l / scale))
    return np.array(out)


def _tril_colmajor(low: np.ndarray) -> list[float]:
    k = low.shape[0]
    return [float(low[i, j]) for j in range(k) for i in range(j, k)]


def random_from_theta(
    formula: str,
    theta: Sequence[float],
    conditions: pd.DataFrame,
    sigma: float | None = None,
    family: str | Family = "gaussian",
    levels: Mapping[str, Sequence[object]] | None = None,
) -> dict[str, dict[str, dict]]:
    """The ``random=`` spec equivalent to lme4's ``theta`` for ``formula`` and ``conditions``.

    Parameters
    ----------
    formula : str
        The model formula, as given to lmer/glmer.
    theta : sequence of float
        ``getME(fit, "theta")``, in lme4's order.
    conditions : pandas.DataFrame
        The data the model was fitted to (the term order depends on the numbers of levels).
    sigma : float, optional
        Residual SD (``sigma(fit)``); required for gaussian models.
    family : str or Family
        ``"gaussian"``, ``"binomial"`` or ``"poisson"``.

    Returns
    -------
    dict
        ``{factor: {"sd": {coef: sd}, "corr": {(c1, c2): r}}}``. A correlation with a
        coefficient whose SD is 0 is undefined; lme4 prints it as NaN, here it is 0, so
        the spec can be given to :class:`~glmmsim.Model` as it is.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"x": [0.0, 1.0, 2.0], "g": ["a", "b", "b"]})
    >>> random_from_theta("y ~ x + (1 | g)", [0.25], d, sigma=2.0)
    {'g': {'sd': {'Intercept': 0.5}, 'corr': {}}}
    """
    fam = family if isinstance(family, Family) else get_family(family, sigma=sigma)
    scale = _scale(fam, sigma)
    terms = expand_bars(parse_formula(formula).bars)
    names = [model_columns(t.expr, conditions, levels, str(t)).names for t in terms]
    try:
        theta = np.atleast_1d(np.asarray(theta, dtype=float))  # one term, one coefficient: a scalar will do
    except (TypeError, ValueError):
        raise ParameterError(f"theta must be a number or a sequence of numbers; got {theta!r}") from None
    if not np.all(np.isfinite(theta)):
        raise ParameterError(f"theta holds NaN or infinite values: {theta.tolist()!r}")
    expected = sum(len(n) * (len(n) + 1) // 2 for n in names)
    if theta.ndim != 1 or theta.size != expected:
        raise ParameterError(
            f"theta has {theta.size} values, but {formula!r} needs {expected} for these data "
            f"(the lower triangles of {len(terms)} term(s))"
        )
    out: dict[str, dict[str, dict]] = {}
    pos = 0
    groups = {t.columns: grouping(conditions, t.columns, str(t)) for t in terms}
    for i in _lme4_order(terms, [len(groups[t.columns].labels) for t in terms]):
        coefs = names[i]
        k = len(coefs)
        low = np.zeros((k, k))
        for j in range(k):
            for r in range(j, k):
                low[r, j] = theta[pos]
                pos += 1
        cov = (low @ low.T) * scale**2
        sd = np.sqrt(np.diag(cov))
        spec = out.setdefault(terms[i].factor, {"sd": {}, "corr": {}})
        for a in range(k):
            spec["sd"][coefs[a]] = float(sd[a])
            for b in range(a):
                denom = sd[a] * sd[b]
                # undefined for a zero SD (lme4: NaN); 0 keeps the spec valid for Model
                spec["corr"][(coefs[b], coefs[a])] = float(cov[a, b] / denom) if denom > 0 else 0.0
    return out

