"""lme4's conventions: theta (the relative covariance factor) and its summary layout."""

from .theta import lme4_terms, random_from_theta, to_theta

__all__ = ["to_theta", "random_from_theta", "lme4_terms"]
