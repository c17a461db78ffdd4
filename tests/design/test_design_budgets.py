"""Design budgets of issue 16: nested designs planned before drawing, covariate cells."""

from __future__ import annotations

import pytest

import glmmsim
from glmmsim.errors import ParameterError


def test_nested_designs_are_planned_from_their_size_quantiles_before_drawing():
    with pytest.raises(ParameterError, match=r"expected 19,000,000.*(max_rows|max_nested_units)"):
        glmmsim.design.nested({"school": 1_000_000, "pupil": {"poisson": 19}}, seed=1)
    with pytest.raises(ParameterError, match=r"expected 10,000,000"):
        glmmsim.design.nested({"school": 1, "pupil": {"poisson": 1e7}}, seed=1)
    with glmmsim.limits.override(max_nested_units=1000):
        with pytest.raises(ParameterError, match="at most"):
            glmmsim.design.nested({"school": 30, "class": (1, 10), "pupil": (20, 40)}, seed=1)
    assert len(glmmsim.design.nested({"school": 30, "pupil": {"poisson": 20}}, seed=1)) > 300


def test_covariate_cells_are_budgeted_before_drawing():
    covariates = {f"c{i}": {"per": "trial"} for i in range(300)}
    with pytest.raises(ParameterError, match="max_cells"):
        glmmsim.design.crossed(2000, 1000, covariates=covariates)


def test_nested_sizes_from_a_callable_are_budgeted_once_drawn():
    with glmmsim.limits.override(max_nested_units=500):
        with pytest.raises(ParameterError, match="max_nested_units is 500"):
            glmmsim.design.nested({"school": 20, "pupil": lambda rng: 50}, seed=1)
