"""The model pipeline, one module a stage.

formula (split an lme4 formula) -> terms (expand bar terms as lme4 does) -> matrices
(model columns and group codes) -> names and parameters (coefficients matched to
values, covariance factors) -> links and families (response
distributions) -> model (the :class:`Model` users build) -> bound (a model bound to one
conditions frame, :class:`BoundModel`).
"""

from .bound import BoundModel
from .families import Family, get_family
from .model import Model

__all__ = ["Model", "BoundModel", "Family", "get_family"]
