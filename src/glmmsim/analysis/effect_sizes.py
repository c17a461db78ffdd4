"""Effect sizes without pilot data: standardized inputs turned into an ordinary Model.

Planning a study often starts from numbers like "the subject ICC is 0.2" or "the effect
is d = 0.4", not from SDs in milliseconds. These helpers translate:

* a split of the variance into shares (``sds_from_proportions``) or intraclass
  correlations (``sds_from_icc``) -> random-effect SDs and sigma;
* Cohen's d -> a coefficient (``d`` times the total SD, the SD of one observation
  around the grand mean: all variance components together, as Westfall, Kenny and
  Judd define d for crossed designs);
* an odds ratio -> a log-odds coefficient;
* all of it at once -> a :class:`~glmmsim.Model` (``standardized_model``).

For logistic models the shares are on the latent scale, whose residual variance is
that of the standard logistic distribution, pi^2/3.

Examples
--------
>>> sds = sds_from_proportions({"subject": 0.2, "item": 0.1, "residual": 0.7}, total_sd=100)
>>> round(sds["random"]["subject"], 2), round(sds["sigma"], 2)
(44.72, 83.67)
>>> round(coefficient_from_odds_ratio(2.0), 4)
0.6931
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..errors import ParameterError, Where
from ..model.model import Model
from ..model.parameters import check_number

__all__ = [
    "LOGISTIC_VARIANCE",
    "sds_from_proportions",
    "sds_from_icc",
    "coefficient_from_d",
    "coefficient_from_odds_ratio",
    "standardized_model",
]

LOGISTIC_VARIANCE = math.pi**2 / 3
_RESIDUAL = ("residual", "sigma")


def _share(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ParameterError(f"{where} must be a share of the variance between 0 and 1; got {value!r}")
    return float(value)


def _latent(family: str) -> bool:
    if family in ("gaussian",):
        return False
    if family in ("binomial", "bernoulli"):
        return True
    raise ParameterError(f"standardized variances are defined for the gaussian and binomial (logit) families; got {family!r}")


def sds_from_proportions(
    proportions: Mapping[str, float | Mapping[str, float]], total_sd: float = 1.0, *, family: str = "gaussian"
) -> dict[str, Any]:
    """Random-effect SDs and sigma from shares of the total variance.

    Parameters
    ----------
    proportions : mapping
        Grouping factor -> share (its intercept) or mapping coefficient -> share, and
        ``"residual"`` -> share. Gaussian: the shares sum to 1 and ``total_sd`` is the SD
        of one observation. Binomial: the residual is the logistic pi^2/3, so the shares
        fix the total (``"residual"`` may be left out; ``total_sd`` is ignored).

    Returns
    -------
    dict
        ``{"random": {factor: sd or {coef: sd}}, "sigma": sd or None}``, ready for
        ``Model(random=..., sigma=...)``.
    """
    latent = _latent(family)
    shares: dict[str, Any] = {}
    total_share = 0.0
    residual = None
    for key, value in proportions.items():
        if key in _RESIDUAL:
            residual = _share(value, f"proportions[{key!r}]")
            continue
        if isinstance(value, Mapping):
            shares[key] = {c: _share(v, f"proportions[{key!r}][{c!r}]") for c, v in value.items()}
            total_share += sum(shares[key].values())
        else:
            shares[key] = _share(value, f"proportions[{key!r}]")
            total_share += shares[key]
    if latent:
        residual = 1.0 - total_share if residual is None else residual
        if residual <= 0 or abs(total_share + residual - 1) > 1e-9:
            raise ParameterError(f"the shares must sum to 1 with a positive residual; they sum to {total_share:g} + residual")
        total_var = LOGISTIC_VARIANCE / residual
        sigma = None
    else:
        if total_sd is None or not total_sd > 0:
            raise ParameterError(f"total_sd must be positive; got {total_sd!r}")
        if residual is None:
            raise ParameterError("proportions needs a 'residual' share for the gaussian family")
        if abs(total_share + residual - 1) > 1e-9:
            raise ParameterError(f"the shares must sum to 1; they sum to {total_share + residual:g}")
        total_var = float(total_sd) ** 2
        sigma = math.sqrt(residual * total_var)

    def sd(share: float) -> float:
        return math.sqrt(share * total_var)

    random = {f: ({c: sd(s) for c, s in v.items()} if isinstance(v, dict) else sd(v)) for f, v in shares.items()}
    return {"random": random, "sigma": sigma}


def sds_from_icc(
    icc: Mapping[str, float], *, total_sd: float | None = None, sigma: float | None = None, family: str = "gaussian"
) -> dict[str, Any]:
    """Random-intercept SDs from intraclass correlations ``var_f / (sum of variances + residual)``.

    Give the scale by ``total_sd`` (SD of one observation) or by ``sigma`` (the residual
    SD); for the binomial family the residual is the logistic pi^2/3 and neither is needed.

    Examples
    --------
    >>> out = sds_from_icc({"school": 0.2}, sigma=1.0)
    >>> round(out["random"]["school"], 4), out["sigma"]
    (0.5, 1.0)
    """
    shares = {f: _share(v, f"icc[{f!r}]") for f, v in icc.items()}
    rest = 1.0 - sum(shares.values())
    if rest <= 0:
        raise ParameterError(f"the ICCs sum to {1 - rest:g}; they must leave a positive residual share")
    if _latent(family):
        return sds_from_proportions({**shares, "residual": rest}, family=family)
    if (total_sd is None) == (sigma is None):
        raise ParameterError("give the scale by exactly one of total_sd= or sigma=")
    if sigma is not None:
        total_sd = float(sigma) / math.sqrt(rest)
    return sds_from_proportions({**shares, "residual": rest}, total_sd=total_sd)


def coefficient_from_d(d: float, total_sd: float) -> float:
    """A difference of ``d`` total SDs as a coefficient: ``d * total_sd``.

    Parameters
    ----------
    d : float
        Cohen's d: the difference in units of the total SD.
    total_sd : float
        The SD of one observation around the grand mean (all variance components), >= 0.

    Examples
    --------
    >>> coefficient_from_d(0.25, 80.0)
    20.0
    """
    return _from_d(d, total_sd, Where.of("d"))


def _from_d(d: object, total_sd: object, where: Where) -> float:
    return check_number(d, where) * check_number(total_sd, Where.of("total_sd"), minimum=0.0)


def coefficient_from_odds_ratio(odds_ratio: float) -> float:
    """The log-odds coefficient of an odds ratio.

    Parameters
    ----------
    odds_ratio : float
        A positive, finite odds ratio.

    Examples
    --------
    >>> round(coefficient_from_odds_ratio(0.5), 4)
    -0.6931
    """
    return _from_odds_ratio(odds_ratio, Where.of("odds_ratio"))


def _from_odds_ratio(odds_ratio: object, where: Where) -> float:
    value = check_number(odds_ratio, where)
    if not value > 0:
        raise ParameterError.at(where, f"must be a positive odds ratio; got {odds_ratio!r}")
    return math.log(value)


def standardized_model(
    formula: str,
    *,
    variance: Mapping[str, float | Mapping[str, float]],
    intercept: float = 0.0,
    d: Mapping[str, float] | None = None,
    odds_ratio: Mapping[str, float] | None = None,
    fixed: Mapping[str, float] | None = None,
    total_sd: float = 1.0,
    corr: Mapping[str, Mapping[tuple[str, str], float]] | None = None,
    family: str = "gaussian",
    **model_kwargs: Any,
) -> Model:
    """A :class:`~glmmsim.Model` from standardized inputs.

    Parameters
    ----------
    formula : str
        The lme4 formula.
    variance : mapping
        Shares of the variance, as in :func:`sds_from_proportions`.
    intercept : float
        The intercept, on the response scale (gaussian) or in log-odds (binomial).
    d, odds_ratio : mapping coefficient -> value, optional
        Effects as Cohen's d (gaussian: ``d * total_sd``) or as odds ratios (binomial).
    fixed : mapping, optional
        Other coefficients on the model's own scale.
    total_sd : float
        SD of one observation (gaussian).
    corr : mapping factor -> {(a, b): r}, optional
        Random-effect correlations.
    model_kwargs
        Passed to :class:`~glmmsim.Model` (``levels``, ``seed``, ``trials``, ...).

    Examples
    --------
    >>> m = standardized_model("rt ~ cond + (1 + cond | subject) + (1 | item)", intercept=600, total_sd=100,
    ...     d={"condb": 0.2}, variance={"subject": {"Intercept": 0.2, "condb": 0.02}, "item": 0.08, "residual": 0.7})
    >>> m.fixed
    {'Intercept': 600.0, 'condb': 20.0}
    >>> round(m.sigma, 2)
    83.67
    """
    sds = sds_from_proportions(variance, total_sd, family=family)
    coefs: dict[str, float] = {"Intercept": check_number(intercept, Where.of("intercept"))}
    for name, value in (d or {}).items():
        coefs[name] = _from_d(value, total_sd, Where.of("d", name))
    for name, value in (odds_ratio or {}).items():
        coefs[name] = _from_odds_ratio(value, Where.of("odds_ratio", name))
    coefs.update({k: check_number(v, Where.of("fixed", k)) for k, v in (fixed or {}).items()})
    random: dict[str, Any] = dict(sds["random"])
    for factor, pairs in (corr or {}).items():
        if factor not in random or not isinstance(random[factor], dict):
            raise ParameterError(f"corr[{factor!r}]: the variance split gives {factor!r} no per-coefficient shares")
        random[factor] = {"sd": random[factor], "corr": dict(pairs)}
    return Model(formula, fixed=coefs, random=random, sigma=sds["sigma"], family=family, **model_kwargs)
