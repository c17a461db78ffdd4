"""Translate autora-style parameter dicts into :class:`glmmsim.Model` arguments.

AutoRA users key the intercept as ``"1"`` (``{"subject": {"1": 0.5}}``);
glmmsim's Model spells it ``"Intercept"``.

Examples
--------
>>> translate_random({"subject": {"1": 0.5, "x1": 0.3}, "item": 0.2})
{'subject': {'Intercept': 0.5, 'x1': 0.3}, 'item': 0.2}
>>> translate_random({"s": {"sd": {"1": 0.5, "x": 0.3}, "corr": {("1", "x"): 0.2}}})
{'s': {'sd': {'Intercept': 0.5, 'x': 0.3}, 'corr': {('Intercept', 'x'): 0.2}}}
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ..errors import ParameterError

__all__ = ["translate_fixed", "translate_random", "has_sigma", "in_autora_names"]

_ONE = "1"
_INTERCEPT = "Intercept"


def _rename(key: Any) -> Any:
    return _INTERCEPT if key == _ONE else key


def _rename_keys(mapping: Mapping[Any, Any], where: str) -> dict[Any, Any]:
    if _ONE in mapping and _INTERCEPT in mapping:
        raise ParameterError(
            f"{where} gives the intercept twice, as '1' and as 'Intercept'; keep one of them"
        )
    return {_rename(k): v for k, v in mapping.items()}


def translate_fixed(fixed_effects: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``fixed_effects`` with key ``"1"`` renamed ``"Intercept"`` (None stays None)."""
    if fixed_effects is None:
        return None
    if not isinstance(fixed_effects, Mapping):
        raise ParameterError(f"fixed_effects must be a dict of coefficients; got {fixed_effects!r}")
    return _rename_keys(fixed_effects, "fixed_effects")


def _translate_corr(corr: Any, where: str) -> Any:
    if not isinstance(corr, Mapping):
        return corr  # a correlation matrix: order follows "sd", nothing to rename
    out = {}
    for pair, r in corr.items():
        out[tuple(_rename(k) for k in pair) if isinstance(pair, tuple) else pair] = r
    return out


def translate_random(random_effects: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Per grouping factor, rename ``"1"`` to ``"Intercept"`` in flat SD dicts and in the
    ``{"sd": ..., "corr": ...}`` form; scalars pass through."""
    if random_effects is None:
        return None
    if not isinstance(random_effects, Mapping):
        raise ParameterError(f"random_effects must be a dict keyed by grouping factor; got {random_effects!r}")
    out: dict[str, Any] = {}
    for factor, spec in random_effects.items():
        where = f"random_effects[{factor!r}]"
        if isinstance(spec, Mapping) and "sd" in spec:
            sd = spec["sd"]
            new = dict(spec)
            new["sd"] = _rename_keys(sd, where + "['sd']") if isinstance(sd, Mapping) else sd
            if "corr" in spec:
                new["corr"] = _translate_corr(spec["corr"], where + "['corr']")
            out[factor] = new
        elif isinstance(spec, Mapping):
            out[factor] = _rename_keys(spec, where)
        else:
            out[factor] = spec
    return out


def has_sigma(family: Any, link: Any, dispersion: Mapping[str, Any] | None) -> bool:
    """Whether ``family`` (None = gaussian, a name or a glmmsim Family) has a residual sigma.

    Raises the family's own error when it is invalid for a reason other than
    sigma (an unknown name, a missing ``tau``), so the user is not told about
    a sigma that ``added_noise`` supplies.

    Examples
    --------
    >>> has_sigma(None, None, None), has_sigma("poisson", None, None)
    (True, False)
    >>> has_sigma("exgaussian", None, {"tau": 0.2}), has_sigma("gamma", None, {"shape": 2})
    (True, False)
    """
    from ..model.families import get_family

    name = "gaussian" if family is None else family
    extra = dict(dispersion or {})
    try:
        get_family(name, link, sigma=1.0, **extra)
    except (ParameterError, TypeError) as with_sigma:
        try:
            get_family(name, link, **extra)
        except (ParameterError, TypeError):
            raise with_sigma from None
        return False
    return True


#: glmmsim.Model's argument names and lmm_experiment's names for them.
_AUTORA_NAMES = {"fixed": "fixed_effects", "random": "random_effects"}


@contextmanager
def in_autora_names() -> Iterator[None]:
    """Re-raise glmmsim.Model's ParameterErrors with lmm_experiment's argument names.

    The user passed ``fixed_effects``/``random_effects``; a message about
    ``fixed``/``random`` would name arguments they never saw.  The error's
    ``path`` says which argument it is about (see :meth:`GlmmsimError.renamed`);
    the message text is never read.

    Examples
    --------
    >>> from glmmsim.errors import Where
    >>> with in_autora_names():
    ...     raise ParameterError.at(Where.of("random"), "has no spec for grouping factor(s) 'g'")
    Traceback (most recent call last):
    ...
    glmmsim.errors.ParameterError: random_effects has no spec for grouping factor(s) 'g'
    """
    try:
        yield
    except ParameterError as exc:
        renamed = exc.renamed(_AUTORA_NAMES)
        if renamed is None:
            raise
        raise renamed from exc
