"""Fixtures of the validation tests: the fitting tests' datasets, shared rather than copied."""

from ..fit.conftest import crossed, rt_data  # noqa: F401  (pytest finds fixtures by name in a conftest)
