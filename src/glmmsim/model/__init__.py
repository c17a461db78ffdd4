"""The model pipeline, one module a stage.

formula (split an lme4 formula) -> terms (expand bar terms as lme4 does) -> matrices
(model columns and group codes) -> names and parameters (coefficients matched to
values, covariance factors) -> model_design (the formula read against a data frame once:
:class:`ModelDesign`) -> links and families (response
distributions) -> model (the :class:`Model` users build) -> bound (a model bound to one
conditions frame, :class:`BoundModel`).
"""

from .bound import BoundModel
from .families import Family, get_family
from .model import Model
from .model_design import ModelDesign

__all__ = ["Model", "BoundModel", "ModelDesign", "Family", "get_family"]
