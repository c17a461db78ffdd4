"""glmmsim: simulate data from (generalized) linear mixed models written in lme4 formula syntax.

The public API on one page:

* :class:`Model` -- an lme4-formula model with its parameters (``glmmsim.model``);
  ``Model.bind(conditions)`` gives a :class:`BoundModel` that simulates the same design many times;
* :class:`SeedTree` -- stateless named child seeds for studies (``glmmsim.randomness``);
* :mod:`glmmsim.design` -- experimental designs (``crossed``, ``nested``);
* :func:`to_theta`, :func:`random_from_theta` -- lme4's covariance parameterisation (``glmmsim.lme4``);
* :mod:`glmmsim.fit` -- fit lme4 formulas (``glmmsim.fit(formula, data)`` gives a :class:`FitResult`,
  whose ``test(...)`` gives a :class:`TestResult`; engines lmm, glmm and lme4);
* :func:`power`, :func:`power_curve`, :func:`recovery` -- studies by simulation (``glmmsim.analysis``),
  giving a :class:`PowerResult`, a :class:`PowerCurve` and a :class:`RecoveryResult`;
* :mod:`glmmsim.limits` -- the size limits in force (``glmmsim.limits.max_rows = 10**8``);
* :mod:`glmmsim.study` -- YAML study specs and data writers; :mod:`glmmsim.plot` -- figures;
* :mod:`glmmsim.outputs` -- output files that appear whole or not at all (``claim``);
* errors: every bad input raises a :class:`GlmmsimError` subclass.

Examples
--------
>>> import pandas as pd, glmmsim
>>> m = glmmsim.Model("y ~ x + (1 | g)", fixed={"Intercept": 0.0, "x": 1.0},
...                   random={"g": 0.5}, sigma=0.1, seed=1)
>>> m.simulate(pd.DataFrame({"x": [0.0, 1.0], "g": ["a", "b"]}), seed=2).shape
(2, 3)
"""

__version__ = "0.2.0"

import warnings
from typing import TYPE_CHECKING, Any

from . import limits
from .errors import (
    DataError,
    FormulaError,
    GlmmsimError,
    GlmmsimWarning,
    InputTypeError,
    ParameterError,
)

# The model, the designs and lme4 pull in pandas, formulaic and scipy (seconds of start-up);
# they are imported on first use, so `glmmsim --version` and `import glmmsim.errors` stay fast.
_LAZY = {
    "Model": ("glmmsim.model", "Model"),
    "BoundModel": ("glmmsim.model", "BoundModel"),
    "SeedTree": ("glmmsim.randomness", "SeedTree"),
    "Family": ("glmmsim.model", "Family"),
    "get_family": ("glmmsim.model", "get_family"),
    "to_theta": ("glmmsim.lme4", "to_theta"),
    "random_from_theta": ("glmmsim.lme4", "random_from_theta"),
    "design": ("glmmsim.design", None),
    "fit": ("glmmsim.fit", None),
    "FitResult": ("glmmsim.fit", "FitResult"),
    "TestResult": ("glmmsim.fit", "TestResult"),
    "power": ("glmmsim.analysis", "power"),
    "power_curve": ("glmmsim.analysis", "power_curve"),
    "recovery": ("glmmsim.analysis", "recovery"),
    "PowerResult": ("glmmsim.analysis", "PowerResult"),
    "PowerCurve": ("glmmsim.analysis", "PowerCurve"),
    "RecoveryResult": ("glmmsim.analysis", "RecoveryResult"),
}

if TYPE_CHECKING:  # pragma: no cover
    from . import design, fit
    from .lme4 import random_from_theta, to_theta
    from .model import BoundModel, Family, Model, get_family
    from .randomness.seeds import SeedTree
    from .analysis import PowerCurve, PowerResult, RecoveryResult, power, power_curve, recovery
    from .fit import FitResult, TestResult


def __getattr__(name: str) -> Any:
    if name == "config":  # the name of glmmsim.limits in glmmsim 0.2, whose README sets glmmsim.config.max_rows
        warnings.warn("glmmsim.config is now glmmsim.limits (glmmsim.limits.max_rows = N, "
                      "glmmsim.limits.override(...)); the name config will be removed", FutureWarning, stacklevel=2)
        return limits._IN_FORCE
    if name not in _LAZY:
        raise AttributeError(f"module 'glmmsim' has no attribute {name!r}")
    import importlib

    module_name, attr = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Model",
    "BoundModel",
    "SeedTree",
    "design",
    "fit",
    "FitResult",
    "TestResult",
    "power",
    "power_curve",
    "recovery",
    "PowerResult",
    "PowerCurve",
    "RecoveryResult",
    "Family",
    "get_family",
    "to_theta",
    "random_from_theta",
    "limits",
    "GlmmsimError",
    "FormulaError",
    "ParameterError",
    "DataError",
    "InputTypeError",
    "GlmmsimWarning",
]
