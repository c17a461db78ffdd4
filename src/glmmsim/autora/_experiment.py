"""The ``lmm_experiment`` factory: autora-synthetic's synthetic LMM experiment, two readings."""

from __future__ import annotations

import copy
import functools
import numbers
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from autora.experiment_runner.synthetic.utilities import SyntheticExperimentCollection
from autora.variable import Variable

from ..errors import GlmmsimWarning, ParameterError, did_you_mean
from ..model import Model
from ..randomness.seeds import SeedLike, as_generator
from . import _faithful, _lme4
from ._plot import make_plotter
from ._variables import as_conditions, categorical_ivs, domain_frame, make_variables, merge_ivs, text_levels

__all__ = ["lmm_experiment"]

SEMANTICS = ("autora", "lme4")
_LME4_ONLY = ("family", "link", "dispersion", "trials", "levels")


def lmm_experiment(
    formula: str,
    fixed_effects: Mapping[str, float] | None = None,
    random_effects: Mapping[str, Any] | None = None,
    X: Sequence[Variable] | None = None,
    random_state: SeedLike = None,
    name: str = "Template Experiment",
    *,
    semantics: str = "autora",
    family: Any = None,
    link: str | None = None,
    dispersion: Mapping[str, float] | None = None,
    trials: int | str | None = None,
    levels: Mapping[str, Sequence[Any]] | None = None,
) -> SyntheticExperimentCollection:
    """A synthetic linear mixed model experiment for AutoRA (drop-in for autora-synthetic's).

    Parameters
    ----------
    formula : str
        lme4-style formula, e.g. ``"y ~ x1 + (1 + x1|subject)"``.
    fixed_effects : dict, optional
        Coefficient -> value (``"Intercept"`` and variable names).
    random_effects : dict, optional
        Grouping column -> ``{part: SD}``; with ``semantics="lme4"`` also a
        scalar SD or ``{"sd": {...}, "corr": {(a, b): r}}``. Key ``"1"`` is
        the intercept (see the module notes for autora's reading of it).
    X : list of autora IV, optional
        Descriptions (allowed values, ranges) of any subset of the IVs.
    random_state : int, SeedSequence or Generator, optional
        ``"autora"``: seeds the experiment's generator used by ``run`` calls
        without their own ``random_state``. ``"lme4"``: fixes the population
        of random effects. None draws fresh entropy once; the seed actually
        used is stored in ``params``.
    name : str
        Name of the experiment.
    semantics : {"autora", "lme4"}
        ``"autora"`` reproduces autora-synthetic 2.2.0 draw for draw;
        ``"lme4"`` runs on :class:`glmmsim.Model` with lme4's meaning and
        persistent random effects.
    family, link, dispersion, trials, levels
        Passed to :class:`glmmsim.Model` (``semantics="lme4"`` only).

    Returns
    -------
    SyntheticExperimentCollection
        ``run(conditions, added_noise=0.01, random_state=None)``,
        ``ground_truth(conditions, random_state=None)``, ``domain()``,
        ``plotter(model=None)``, ``variables``, ``params`` and
        ``factory_function``.
    """
    if semantics not in SEMANTICS:
        raise ParameterError(
            f"semantics must be 'autora' or 'lme4'; got {semantics!r}.{did_you_mean(str(semantics), SEMANTICS)}"
        )
    options = dict(family=family, link=link, dispersion=dispersion, trials=trials, levels=levels)
    seed = _resolve_seed(random_state, keep_generator=semantics == "autora")
    params = copy.deepcopy(
        dict(formula=formula, fixed_effects=fixed_effects, random_effects=random_effects, X=X,
             random_state=seed, name=name, semantics=semantics, **options)
    )
    # The experiment works on its own copies: later edits of the caller's dicts change nothing.
    own = copy.deepcopy(params)
    if isinstance(seed, np.random.Generator):
        own["random_state"] = seed  # autora shares the caller's generator
    build = _build_faithful if semantics == "autora" else _build_lme4
    parts = build(own)
    return SyntheticExperimentCollection(
        name=name,
        description=lmm_experiment.__doc__,
        params=params,
        factory_function=lmm_experiment,
        **parts,
    )


def _resolve_seed(random_state: SeedLike, keep_generator: bool) -> Any:
    """The seed to store in params so that ``factory_function(**params)`` rebuilds the same."""
    as_generator(random_state, "random_state")  # type check only
    if random_state is None:
        return int(np.random.SeedSequence().entropy)
    if isinstance(random_state, np.random.Generator) and not keep_generator:
        return int(random_state.integers(2**63))
    if isinstance(random_state, numbers.Integral):
        return int(random_state)
    return random_state


def _check_noise(added_noise: object) -> float:
    if isinstance(added_noise, bool) or not isinstance(added_noise, numbers.Real) or not (
        np.isfinite(added_noise) and added_noise >= 0
    ):
        raise ParameterError(f"added_noise is a noise SD and must be a finite number >= 0; got {added_noise!r}")
    return float(added_noise)


def _warn(lines: list[str], header: str) -> None:
    if lines:
        bullets = "".join(f"\n  - {line}" for line in lines)
        warnings.warn(header + bullets, GlmmsimWarning, stacklevel=4)


def _with_response(frame: pd.DataFrame, response: str, values: Any) -> pd.DataFrame:
    out = frame.copy()
    out[response] = np.asarray(values)
    return out


# --------------------------------------------------------------------------- faithful


def _build_faithful(p: dict[str, Any]) -> dict[str, Any]:
    given = [k for k in _LME4_ONLY if p[k] is not None]
    if given:
        raise ParameterError(
            f"{', '.join(given)} {'needs' if len(given) == 1 else 'need'} semantics='lme4'; semantics='autora' simulates a Gaussian LMM only"
        )
    spec = _faithful.parse_faithful(p["formula"])
    fixed = p["fixed_effects"] or {}
    random = p["random_effects"] or {}
    _faithful.check_faithful_parameters(spec, fixed, random)
    _warn(
        _faithful.lme4_differences(spec, fixed),
        f"semantics='autora' reads {spec.formula!r} as autora-synthetic 2.2.0 does, not as lme4 "
        "(pass semantics='lme4' for lme4's meaning):",
    )
    _warn(_faithful.default_notes(spec, fixed, random), f"defaults used for {spec.formula!r}:")
    variables = make_variables(merge_ivs(spec.variables, p["X"], spec.formula), spec.response)
    iv_names = [iv.name for iv in variables.independent_variables]
    rng = as_generator(p["random_state"], "random_state")

    def run(conditions: Any, added_noise: float = 0.01, random_state: SeedLike = None) -> pd.DataFrame:
        """Simulate noisy observations; random effects are drawn afresh on every call."""
        noise = _check_noise(added_noise)
        data = as_conditions(conditions, iv_names, spec.fixed_variables)
        draw = rng if random_state is None else as_generator(random_state, "random_state")
        y = _faithful.simulate(spec, fixed, random, data, draw, noise)
        return _with_response(data, spec.response, y)

    # a partial, as in autora, so ground_truth(..., added_noise=x) keeps working for drop-in users;
    # random effects and the zero-noise draws still use the generator
    ground_truth = functools.partial(run, added_noise=0.0)

    return _common(variables, spec.groups, spec.response, run, ground_truth, p["name"])


def _common(variables, grouping, response, run, ground_truth, name) -> dict[str, Any]:
    iv_names = [iv.name for iv in variables.independent_variables]

    def domain() -> pd.DataFrame:
        """Every combination of the IVs' allowed values, one column per IV."""
        return domain_frame(variables)

    plotter = make_plotter(
        name, iv_names, response, categorical_ivs(variables, grouping), grouping, ground_truth, domain
    )
    return dict(variables=variables, run=run, ground_truth=ground_truth, domain=domain, plotter=plotter)


# --------------------------------------------------------------------------- lme4


def _build_lme4(p: dict[str, Any]) -> dict[str, Any]:
    dispersion = p["dispersion"]
    if dispersion is not None and "sigma" in dispersion:
        raise ParameterError("give the residual SD as run(..., added_noise=...), not in dispersion")
    with_sigma = _lme4.has_sigma(p["family"], p["link"], dispersion)
    model = _lme4_model(p, with_sigma)
    variables = make_variables(merge_ivs(model.variables, p["X"], model.formula), model.response)
    iv_names = [iv.name for iv in variables.independent_variables]
    grouping = tuple(dict.fromkeys(c for cols in model.factor_columns.values() for c in cols))
    numeric = [n for n in iv_names if n not in grouping]
    # Text IVs described in X keep their levels (and reference level) in every batch of conditions.
    implied = {k: v for k, v in text_levels(variables, skip=grouping).items() if k not in (p["levels"] or {})}
    if implied:
        with _lme4.in_autora_names():
            model = model.replace(levels={**implied, **(p["levels"] or {})})

    def run(conditions: Any, added_noise: float = 0.01, random_state: SeedLike = None) -> pd.DataFrame:
        """Simulate observations of the persistent population; ``random_state`` drives the noise.

        ``added_noise`` is the residual SD (ignored by families without one).
        """
        noise = _check_noise(added_noise)
        data = as_conditions(conditions, iv_names, numeric)
        if with_sigma and noise == 0:
            return ground_truth(data)
        with _lme4.in_autora_names():
            noisy = model.replace(sigma=noise) if with_sigma else model
            return noisy.simulate(data, seed=random_state)

    def ground_truth(conditions: Any, random_state: SeedLike = None) -> pd.DataFrame:
        """Conditional mean of the response (random effects included, no noise).

        ``random_state`` is accepted for autora compatibility and not used.
        """
        data = as_conditions(conditions, iv_names, numeric)
        with _lme4.in_autora_names():
            mean = model.predict(data).to_numpy()
        return _with_response(data, model.response, mean)

    return _common(variables, grouping, model.response, run, ground_truth, p["name"])


def _lme4_model(p: dict[str, Any], with_sigma: bool) -> Any:
    """The glmmsim.Model behind an lme4-mode experiment (residual SD replaced per run)."""
    with _lme4.in_autora_names():
        return Model(
            p["formula"],
            fixed=_lme4.translate_fixed(p["fixed_effects"]),
            random=_lme4.translate_random(p["random_effects"]),
            sigma=0.01 if with_sigma else None,
            family="gaussian" if p["family"] is None else p["family"],
            link=p["link"],
            dispersion=p["dispersion"],
            trials=p["trials"],
            levels=p["levels"],
            seed=p["random_state"],
        )
