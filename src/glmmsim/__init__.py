"""glmmsim: simulate data from (generalized) linear mixed models written in lme4 formula syntax.

The public API on one page:

* :class:`Model` -- an lme4-formula model with its parameters (``glmmsim.model``);
  ``Model.bind(conditions)`` gives a :class:`BoundModel` that simulates the same design many times;
* :class:`SeedTree` -- stateless named child seeds for studies (``glmmsim.seeding``);
* :mod:`glmmsim.design` -- experimental designs (``crossed``, ``nested``);
* :func:`to_theta`, :func:`random_from_theta` -- lme4's covariance parameterisation (``glmmsim.lme4``);
* :mod:`glmmsim.fit` -- fit lme4 formulas (``glmmsim.fit(formula, data)``; engines glmm and lme4);
* :mod:`glmmsim.study` -- YAML study specs and data writers; :mod:`glmmsim.plot` -- figures;
* :func:`power`, :func:`power_curve`, :func:`recovery` -- studies by simulation (``glmmsim.analysis``);
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

from . import _moved, design, fit
from .errors import (
    DataError,
    FormulaError,
    GlmmsimError,
    GlmmsimWarning,
    InputTypeError,
    ParameterError,
)
from .lme4 import random_from_theta, to_theta
from .model import BoundModel, Family, Model, get_family
from .seeding import SeedTree
from .analysis import power, power_curve, recovery

_moved.install()

__all__ = [
    "Model",
    "BoundModel",
    "SeedTree",
    "design",
    "fit",
    "power",
    "power_curve",
    "recovery",
    "Family",
    "get_family",
    "to_theta",
    "random_from_theta",
    "GlmmsimError",
    "FormulaError",
    "ParameterError",
    "DataError",
    "InputTypeError",
    "GlmmsimWarning",
]
