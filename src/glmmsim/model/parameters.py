"""Parameters: fixed effects and random-effect covariances, validated and normalised.

A ``random`` spec is keyed by grouping factor. Its value is

* a number: the SD of a factor with a single coefficient (``{"item": 0.4}``);
* a mapping coefficient -> SD: uncorrelated effects;
* ``{"sd": {...}, "corr": {(c1, c2): r, ...}}`` or ``{"sd": {...}, "corr": matrix}``
  with the matrix in ``sd`` order.

Each term's covariance is ``Sigma = diag(sd) R diag(sd)``; its lower-triangular
factor ``L`` (``Sigma = L L'``) turns persistent standard normals into effects.
"""

from __future__ import annotations

import math
import numbers
import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError, Where, did_you_mean, format_names
from .names import match_keys

__all__ = [
    "FactorSpec",
    "TermCovariance",
    "check_number",
    "require_mapping",
    "parse_fixed",
    "parse_dispersion",
    "parse_random",
    "factor_covariance",
    "lower_factor",
]


def to_float(value: numbers.Real) -> float:
    """``float(value)``, with an integer too large for a float as ``inf`` (not an OverflowError).

    Examples
    --------
    >>> to_float(10**400), to_float(-(10**400)), to_float(3)
    (inf, -inf, 3.0)
    """
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf  # type: ignore[operator]


def number_text(value: object) -> str:
    """``value`` for a message; a huge integer as its number of digits, not thousands of them.

    Examples
    --------
    >>> number_text(10**400)
    'an integer of about 401 digits'
    >>> number_text(2.5)
    '2.5'
    """
    if isinstance(value, numbers.Integral) and abs(int(value)).bit_length() > 64:
        return f"an integer of about {int(abs(int(value)).bit_length() * math.log10(2)) + 1} digits"
    return repr(value)


def check_number(value: object, what: str, *, minimum: float | None = None) -> float:
    """A finite real number (``>= minimum`` when given), or a ParameterError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError.at(what, f"must be a number; got {type(value).__name__} {value!r}")
    number = to_float(value)
    if not math.isfinite(number):
        raise ParameterError.at(what, f"must be finite (a number with |x| < 1.8e308); got {number_text(value)}")
    if minimum is not None and number < minimum:
        raise ParameterError.at(what, f"must be >= {minimum:g}; got {number:g}")
    return number


def require_mapping(value: object, what: str, shape: str) -> Mapping:
    """``value`` itself if it is a mapping; else a ParameterError "<what> must be a mapping <shape>; got ..."."""
    if not isinstance(value, Mapping):
        raise ParameterError(f"{what} must be a mapping {shape}; got {type(value).__name__} {reprlib.repr(value)}")
    return value


def parse_fixed(fixed: Mapping[str, object] | None) -> dict[str, float]:
    """Check that every fixed effect is a finite number; keys are matched to columns later."""
    if fixed is None:
        return {}
    fixed = require_mapping(fixed, "fixed", "of coefficient -> value, e.g. {'Intercept': 1.0, 'x': 0.5}")
    return {str(k): check_number(v, Where.of("fixed", k)) for k, v in fixed.items()}


def parse_dispersion(dispersion: Mapping[str, object] | None) -> dict[str, object]:
    """A copy of the ``dispersion`` mapping, its keys checked to be parameter names.

    The values are checked by the family, which knows each parameter's range.

    Examples
    --------
    >>> parse_dispersion({"theta": 2})
    {'theta': 2}
    >>> parse_dispersion("theta")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    glmmsim.errors.ParameterError: dispersion must be a mapping parameter -> value, e.g. {'theta': 2.0}; got str 'theta'
    """
    if dispersion is None:
        return {}
    require_mapping(dispersion, "dispersion", "parameter -> value, e.g. {'theta': 2.0}")
    for key in dispersion:
        if not isinstance(key, str):
            raise ParameterError(
                f"dispersion keys must be parameter names such as 'theta' or 'shape'; got "
                f"{type(key).__name__} {key!r}"
            )
    return dict(dispersion)


@dataclass(frozen=True)
class FactorSpec:
    """A user's random-effect spec for one grouping factor, before coefficient names are known."""

    factor: str
    scalar_sd: float | None
    sd: dict[str, float]
    corr_pairs: dict[tuple[str, str], float]
    corr_matrix: np.ndarray | None


def _parse_sd_mapping(sd: object, what: str) -> tuple[float | None, dict[str, float]]:
    if isinstance(sd, numbers.Real) and not isinstance(sd, bool):
        return check_number(sd, f"{what} SD", minimum=0.0), {}
    if isinstance(sd, Mapping):
        return None, {str(k): check_number(v, f"{what}[{k!r}] SD", minimum=0.0) for k, v in sd.items()}
    raise ParameterError(
        f"{what} must be an SD (number), a mapping coefficient -> SD, or "
        f"{{'sd': {{...}}, 'corr': {{(c1, c2): r}}}}; got {type(sd).__name__} {sd!r}"
    )


def _parse_corr(corr: object, what: str) -> tuple[dict[tuple[str, str], float], np.ndarray | None]:
    if corr is None:
        return {}, None
    if isinstance(corr, Mapping):
        pairs: dict[tuple[str, str], float] = {}
        for key, value in corr.items():
            if isinstance(key, str) or not isinstance(key, (tuple, list, frozenset)) or len(key) != 2:
                raise ParameterError(
                    f"{what} 'corr' keys must be pairs of coefficient names such as "
                    f"('Intercept', 'x'); got {key!r}"
                )
            a, b = (str(k) for k in key)
            if a == b:
                raise ParameterError(f"{what} 'corr' pairs {a!r} with itself")
            if (b, a) in pairs or (a, b) in pairs:
                raise ParameterError(f"{what} 'corr' gives the pair ({a!r}, {b!r}) twice; give it once")
            r = check_number(value, f"{what} corr{(a, b)!r}")
            if not -1.0 <= r <= 1.0:
                raise ParameterError(f"{what} corr{(a, b)!r} = {r:g} is outside [-1, 1]")
            pairs[(a, b)] = r
        return pairs, None
    try:
        matrix = np.asarray(corr, dtype=float)
    except (TypeError, ValueError):
        raise ParameterError(
            f"{what} 'corr' must be a mapping {{(c1, c2): r}} or a square matrix; got {corr!r}"
        ) from None
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ParameterError(f"{what} correlation matrix must be square; got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ParameterError(f"{what} correlation matrix holds NaN or infinite values")
    if not np.allclose(matrix, matrix.T) or not np.allclose(np.diag(matrix), 1.0):
        raise ParameterError(f"{what} correlation matrix must be symmetric with ones on the diagonal")
    if np.any(np.abs(matrix) > 1.0):
        raise ParameterError(f"{what} correlation matrix has entries outside [-1, 1]")
    return {}, matrix


def _match_factor(key: str, factors: Sequence[str]) -> str | None:
    """Factor named by ``key``; ``class:school`` also names ``school:class`` (lme4's spelling)."""
    if key in factors:
        return key
    parts = sorted(key.replace(" ", "").split(":"))
    hits = [f for f in factors if sorted(f.split(":")) == parts]
    return hits[0] if len(hits) == 1 else None


def parse_random(random: Mapping[str, object] | None, factors: Sequence[str]) -> dict[str, FactorSpec]:
    """Validate a ``random`` spec against the formula's grouping factors.

    Raises
    ------
    ParameterError
        For a factor the formula does not have, a factor with no spec, negative
        or NaN SDs, correlations outside [-1, 1] and malformed values.
    """
    random = {} if random is None else require_mapping(random, "random", "grouping factor -> spec, e.g. {'subject': 0.5}")
    specs: dict[str, FactorSpec] = {}
    for key, value in random.items():
        factor = _match_factor(str(key), factors)
        if factor is None:
            raise ParameterError.at(
                Where.of("random"),
                f"names grouping factor {key!r}, which the formula does not have."
                f"{did_you_mean(str(key), factors)} Grouping factors: {format_names(factors) or 'none'}",
                key=str(key),
            )
        if factor in specs:
            raise ParameterError.at(Where.of("random"), f"gives factor {factor!r} twice (as {key!r})", key=str(key))
        what = Where.of("random", factor)
        if isinstance(value, Mapping) and "sd" in value:
            extra = set(value) - {"sd", "corr"}
            if extra:
                raise ParameterError(
                    f"{what} has unknown key(s) {format_names(extra)}; a spec with 'sd' may only "
                    f"add 'corr'"
                )
            scalar, sd = _parse_sd_mapping(value["sd"], what)
            pairs, matrix = _parse_corr(value.get("corr"), what)
        else:
            scalar, sd = _parse_sd_mapping(value, what)
            pairs, matrix = {}, None
        specs[factor] = FactorSpec(factor, scalar, sd, pairs, matrix)
    missing = [f for f in factors if f not in specs]
    if missing:
        raise ParameterError.at(
            Where.of("random"),
            f"has no spec for grouping factor(s) {format_names(missing)}; give an SD for "
            f"each (0 switches a factor off), e.g. {{parameter}}={{{missing[0]!r}: 0.5}}",
            key=missing[0],
        )
    return specs


@dataclass(frozen=True)
class TermCovariance:
    """Covariance of one random-effect term: coefficient names, SDs, correlations and factor."""

    coefs: tuple[str, ...]
    sd: np.ndarray
    corr: np.ndarray

    @property
    def cov(self) -> np.ndarray:
        return self.sd[:, None] * self.corr * self.sd[None, :]

    @property
    def factor_l(self) -> np.ndarray:
        """Lower-triangular ``L`` with ``L L' = cov``."""
        return self.sd[:, None] * lower_factor(self.corr)


def lower_factor(matrix: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    """Cholesky factor of a positive semi-definite matrix, tolerating exact singularity.

    numpy's cholesky rejects a correlation of exactly 1; this keeps the lower
    triangle (so the first coefficient's effects do not depend on the others)
    and sets the columns of zero pivots to zero.

    Examples
    --------
    >>> lower_factor(np.array([[1.0, 1.0], [1.0, 1.0]]))
    array([[1., 0.],
           [1., 0.]])
    """
    k = matrix.shape[0]
    low = np.zeros_like(matrix, dtype=float)
    for j in range(k):
        pivot = matrix[j, j] - low[j, :j] @ low[j, :j]
        low[j, j] = math.sqrt(max(pivot, 0.0))
        for i in range(j + 1, k):
            rest = matrix[i, j] - low[i, :j] @ low[j, :j]
            low[i, j] = rest / low[j, j] if low[j, j] > tol else 0.0
    return low


def _check_psd(corr: np.ndarray, coefs: Sequence[str], what: str) -> None:
    smallest = float(np.linalg.eigvalsh(corr).min())
    if smallest < -1e-8:
        raise ParameterError(
            f"{what}: the correlations among {format_names(coefs)} do not form a valid "
            f"(positive semi-definite) correlation matrix (smallest eigenvalue {smallest:.3g}); "
            f"choose correlations that can hold together"
        )


def factor_covariance(
    spec: FactorSpec,
    terms: Sequence[Sequence[str]],
    levels: Mapping[str, Sequence[object]] | None = None,
) -> list[TermCovariance]:
    """Per-term covariances of one factor, its terms' coefficient names in hand.

    Parameters
    ----------
    spec : FactorSpec
        The user's spec for this factor.
    terms : sequence of sequences of str
        Coefficient names (formulaic spelling) of each term on this factor.
    levels : mapping, optional
        Levels of categorical columns, to accept lme4's sum-contrast names (``cond1``).
    """
    what = Where.of("random", spec.factor)
    all_coefs = [c for t in terms for c in t]
    if len(set(all_coefs)) != len(all_coefs):
        dup = sorted({c for c in all_coefs if all_coefs.count(c) > 1})
        raise ParameterError(
            f"coefficient(s) {format_names(dup)} appear in more than one term on factor "
            f"{spec.factor!r}; give each coefficient one term"
        )
    if spec.scalar_sd is not None:
        if len(all_coefs) != 1:
            raise ParameterError(
                f"{what} is a single SD, but factor {spec.factor!r} has coefficients "
                f"{format_names(all_coefs)}; give a mapping coefficient -> SD"
            )
        sds = {all_coefs[0]: spec.scalar_sd}
    else:
        sds = match_keys(spec.sd, all_coefs, what, levels)  # type: ignore[assignment]
    corr_of = _correlations(spec, terms, all_coefs, what, levels)
    out = []
    for coefs in terms:
        k = len(coefs)
        corr = np.eye(k)
        for i in range(k):
            for j in range(i):
                r = corr_of.get((coefs[i], coefs[j]), 0.0)
                corr[i, j] = corr[j, i] = r
        _check_psd(corr, coefs, what)
        out.append(TermCovariance(tuple(coefs), np.array([sds[c] for c in coefs], dtype=float), corr))
    return out


def _correlations(
    spec: FactorSpec,
    terms: Sequence[Sequence[str]],
    all_coefs: Sequence[str],
    what: str,
    levels: Mapping[str, Sequence[object]] | None,
) -> dict[tuple[str, str], float]:
    """Correlations keyed by both orders of each coefficient pair."""
    term_of = {c: t for t, coefs in enumerate(terms) for c in coefs}
    out: dict[tuple[str, str], float] = {}
    if spec.corr_matrix is not None:
        if len(terms) != 1 or spec.corr_matrix.shape[0] != len(all_coefs):
            raise ParameterError(
                f"{what} correlation matrix is {spec.corr_matrix.shape[0]}x"
                f"{spec.corr_matrix.shape[0]}, but the factor has {len(all_coefs)} coefficients "
                f"{format_names(all_coefs)} in {len(terms)} term(s); a matrix needs one term and "
                f"one row per coefficient in 'sd' order"
            )
        sd_order = _matched_order(spec.sd, all_coefs, what, levels)
        for i, a in enumerate(sd_order):
            for j, b in enumerate(sd_order):
                if i != j:
                    out[(a, b)] = float(spec.corr_matrix[i, j])
        return out
    for (a, b), r in spec.corr_pairs.items():
        ca, cb = (_one_coef(x, all_coefs, what, levels) for x in (a, b))
        if term_of[ca] != term_of[cb]:
            raise ParameterError(
                f"{what} correlates {a!r} with {b!r}, but they are in different terms of factor "
                f"{spec.factor!r} (written with '||' or as separate bars), which lme4 models as "
                f"uncorrelated; put them in one term, e.g. '(1 + x | {spec.factor})', or drop the "
                f"correlation"
            )
        out[(ca, cb)] = out[(cb, ca)] = r
    return out


def _one_coef(
    name: str, coefs: Sequence[str], what: str, levels: Mapping[str, Sequence[object]] | None
) -> str:
    for c in coefs:
        try:
            match_keys({name: None}, [c], what, levels)
            return c
        except ParameterError:
            continue
    raise ParameterError(
        f"{what} 'corr' names unknown coefficient {name!r}.{did_you_mean(name, coefs)} "
        f"Valid coefficients: {format_names(coefs)}"
    )


def _matched_order(
    sd: Mapping[str, float], coefs: Sequence[str], what: str, levels: Mapping[str, Sequence[object]] | None
) -> list[str]:
    if not sd:
        return list(coefs)
    return [_one_coef(k, coefs, what, levels) for k in sd]
