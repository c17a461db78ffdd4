"""Design covariates: continuous or categorical columns drawn per unit or per trial, keyed by label.

A covariate ``{"per": unit, "dist": ..., params...}`` is drawn by the inverse CDF of
its distribution (:data:`COVARIATE_DISTRIBUTIONS`) at a uniform keyed by the unit's
label (or the trial's row key), so a unit keeps its value when the design grows.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputTypeError, ParameterError, Where, about, did_you_mean, format_names
from ..model.parameters import check_number
from .units import _check_name, _label_uniforms, _row_uniforms

__all__ = ["COVARIATE_DISTRIBUTIONS"]

#: Distributions a covariate may be drawn from, with their parameters and defaults.
COVARIATE_DISTRIBUTIONS: dict[str, dict[str, Any]] = {
    "normal": {"mean": 0.0, "sd": 1.0},
    "uniform": {"low": 0.0, "high": 1.0},
    "lognormal": {"meanlog": 0.0, "sdlog": 1.0},
    "integers": {"low": 0, "high": 9},
    "choice": {"levels": None, "p": None},
}


def _check_covariates(spec: Mapping | None, units: Sequence[str], argname: str = "covariates") -> dict:
    """Validate ``{name: {"per": unit, "dist": ..., params...}}``; fill defaults."""
    if spec is None:
        return {}
    if not isinstance(spec, Mapping):
        raise InputTypeError(f"{argname} must be a mapping {{name: {{'per': ..., 'dist': ...}}}}")
    valid_per = [*units, "trial"]
    out = {}
    for name, cov in spec.items():
        with about(argname, name):
            out[name] = _check_covariate(name, cov, argname, valid_per)
    return out


def _check_covariate(name: str, cov: object, argname: str, valid_per: list[str]) -> dict:
    """One covariate's spec, checked; errors get the path (argname, name) from the caller."""
    _check_name(name, f"{argname} name")
    where = f"{argname}[{name!r}]"
    if not isinstance(cov, Mapping):
        raise InputTypeError(f"{where} must be a mapping like {{'per': 'subject', 'dist': 'normal'}}")
    cov = dict(cov)
    per = cov.pop("per", "trial")
    if per not in valid_per:
        raise ParameterError(
            f"{where}['per'] must be one of {format_names(valid_per)}; got {per!r}."
            + did_you_mean(str(per), valid_per)
        )
    dist = cov.pop("dist", "normal")
    if dist not in COVARIATE_DISTRIBUTIONS:
        raise ParameterError(
            f"{where}['dist'] must be one of {format_names(COVARIATE_DISTRIBUTIONS)}; got {dist!r}."
            + did_you_mean(str(dist), COVARIATE_DISTRIBUTIONS)
        )
    params = dict(COVARIATE_DISTRIBUTIONS[dist])
    for key, value in cov.items():
        if key not in params:
            raise ParameterError(
                f"{where} has unknown parameter {key!r} for dist {dist!r}; valid: "
                f"'per', 'dist', {format_names(params)}." + did_you_mean(str(key), [*params, "per", "dist"])
            )
        params[key] = value
    _check_dist_params(dist, params, where)
    return {"per": per, "dist": dist, **params}


def _check_dist_params(dist: str, p: dict, where: str) -> None:
    def number(key: str, minimum: float | None = None) -> float:
        return check_number(p[key], f"{where}[{key!r}]", minimum=minimum)

    def whole(key: str) -> int:
        # integers draws floor(u * (high - low + 1)): a fractional bound would be silently truncated
        value = number(key)
        if not float(value).is_integer():
            raise ParameterError(f"{where}[{key!r}] must be a whole number for dist 'integers'; got {p[key]!r}")
        if abs(value) > 2**53:  # beyond float64's exact integers the draw would wrap to INT64_MIN
            raise ParameterError(f"{where}[{key!r}] must be within +-2**53 for dist 'integers'; got {p[key]!r}")
        return int(value)

    # draws are mean + sd * z with |z| < 9 (z from a 53-bit uniform): refuse parameters whose
    # draws could leave the floats, whatever the seed, rather than let one seed give inf
    def overflow(reason: str) -> ParameterError:
        return ParameterError(f"{where} {reason}; draws overflow to inf or 0 for some seeds: use a smaller scale")

    if dist == "normal":
        mean, sd = number("mean"), number("sd", minimum=0.0)
        if not math.isfinite(abs(mean) + 9 * sd) or abs(mean) + 9 * sd > 1e300:
            raise overflow(f"has |mean| + 9 sd = {abs(mean) + 9 * sd:g}")
    if dist == "lognormal":
        meanlog, sdlog = number("meanlog"), number("sdlog", minimum=0.0)
        if meanlog + 9 * sdlog > 700 or meanlog - 9 * sdlog < -700:
            raise overflow("has meanlog +- 9 sdlog outside [-700, 700] (exp of it is not a float)")
    if dist == "uniform" and number("low") > number("high"):
        raise ParameterError(f"{where}: 'low' ({p['low']}) must not exceed 'high' ({p['high']})")
    if dist == "uniform" and not math.isfinite(number("high") - number("low")):
        raise overflow("has high - low beyond the largest float")
    if dist == "integers" and whole("low") > whole("high"):
        raise ParameterError(f"{where}: 'low' ({p['low']}) must not exceed 'high' ({p['high']})")
    if dist == "choice":
        levels = p["levels"]
        if levels is None or isinstance(levels, (str, bytes)) or not isinstance(levels, Sequence) or not levels:
            raise ParameterError(f"{where}['levels'] must be a non-empty list of levels for dist 'choice'")
        if not all(isinstance(v, Hashable) for v in levels) or len(set(map(str, levels))) != len(levels):
            raise ParameterError(f"{where}['levels'] must be distinct strings or numbers; got {list(levels)!r}")
        if p["p"] is not None:
            probs = p["p"]
            if isinstance(probs, (str, bytes)) or not isinstance(probs, Sequence) or len(probs) != len(levels):
                raise ParameterError(
                    f"{where}['p'] must be a list of {len(levels)} probabilities, one per level; got {probs!r}"
                )
            values = [check_number(v, f"{where}['p'][{i}]", minimum=0.0) for i, v in enumerate(probs)]
            if not np.isclose(sum(values), 1.0):
                raise ParameterError(f"{where}['p'] must sum to 1; got {probs!r} (sum {sum(values):g})")


def _normal(u: np.ndarray, mean: float, sd: float) -> np.ndarray:
    if sd == 0:  # ppf with scale 0 gives NaN; a zero SD means a constant
        return np.full(u.shape, float(mean))
    from scipy.special import ndtri  # imported on first use: scipy costs start-up time

    return mean + sd * ndtri(u)


def _draw_covariate(cov: dict, u: np.ndarray) -> Any:
    """Turn uniforms into covariate values by the inverse CDF of the distribution."""
    dist = cov["dist"]
    if dist == "normal":
        return _normal(u, cov["mean"], cov["sd"])
    if dist == "uniform":
        return cov["low"] + u * (cov["high"] - cov["low"])
    if dist == "lognormal":
        return np.exp(_normal(u, cov["meanlog"], cov["sdlog"]))
    if dist == "integers":
        low, high = int(cov["low"]), int(cov["high"])
        return (low + np.floor(u * (high - low + 1))).astype(np.int64)
    levels = list(cov["levels"])
    probs = np.full(len(levels), 1.0 / len(levels)) if cov["p"] is None else np.asarray(cov["p"], float)
    idx = np.searchsorted(np.cumsum(probs), u, side="right").clip(0, len(levels) - 1)
    return pd.Categorical.from_codes(idx, categories=levels)


def _add_covariates(
    df: pd.DataFrame, covs: dict, key: int, row_keys: np.ndarray
) -> pd.DataFrame:
    for name, cov in covs.items():
        if cov["per"] == "trial":
            u = _row_uniforms(key, f"covariate:{name}", row_keys)
            df[name] = _check_finite(_draw_covariate(cov, u), name, cov)
        else:
            labels = pd.unique(df[cov["per"]].to_numpy())
            values = _draw_covariate(cov, _label_uniforms(key, f"covariate:{name}", list(labels)))
            codes = pd.Index(labels).get_indexer(df[cov["per"]].to_numpy())
            df[name] = _check_finite(values, name, cov)[codes]
    return df


def _check_finite(values: Any, name: str, cov: dict) -> Any:
    """Refuse covariate parameters so extreme that draws overflow to inf (never inf in a design)."""
    if isinstance(values, pd.Categorical):
        return values
    arr = np.asarray(values, dtype=float)
    if arr.size and not np.isfinite(arr).all():
        params = {k: v for k, v in cov.items() if k not in ("per", "dist")}
        raise ParameterError.at(
            Where.of("covariates", name),
            f"with dist {cov['dist']!r} and {params} overflows: draws reach {arr[~np.isfinite(arr)][0]}; "
            f"use parameters on a scale a float can hold",
        )
    return values
