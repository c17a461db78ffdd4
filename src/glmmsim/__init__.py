"""glmmsim: simulate data from (generalized) linear mixed models written in lme4 formula syntax.

Examples
--------
>>> import pandas as pd, glmmsim
>>> m = glmmsim.Model("y ~ x + (1 | g)", fixed={"Intercept": 0.0, "x": 1.0},
...                   random={"g": 0.5}, sigma=0.1, seed=1)
>>> m.simulate(pd.DataFrame({"x": [0.0, 1.0], "g": ["a", "b"]}), seed=2).shape
(2, 3)
"""

from . import design
from .errors import (
    DataError,
    FormulaError,
    GlmmsimError,
    GlmmsimWarning,
    InputTypeError,
    ParameterError,
)
from .families import Family, get_family
from .model import Model
from .theta import random_from_theta, to_theta

__all__ = [
    "Model",
    "design",
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

__version__ = "0.1.0"
