"""A pilot fit on the boundary (singular, correlation at +-1) warns when it becomes a simulation model."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

import glmmsim
from glmmsim.errors import GlmmsimWarning, PilotFitWarning


def _pilot(slope_sd: float, seed: int) -> pd.DataFrame:
    d = glmmsim.design.crossed(subjects=12, repetitions=6, within={"cond": ["a", "b"]})
    m = glmmsim.Model("y ~ cond + (1 + cond | subject)", fixed={"Intercept": 0, "condb": 0.3},
                      random={"subject": {"sd": {"Intercept": 0.8, "condb": slope_sd}}}, sigma=1, seed=seed)
    return m.simulate(d, seed=seed)


def _first_boundary_fit():
    """The first seeded pilot whose by-subject slope variance is estimated on the boundary."""
    for seed in range(1, 40):
        res = glmmsim.fit.fit("y ~ cond + (1 + cond | subject)", _pilot(0.0, seed))
        corr = next(iter(res.random["subject"]["corr"].values()))
        if res.singular or abs(corr) > 1 - 1e-4:
            return res
    pytest.fail("no boundary fit among the seeds")


def test_a_singular_pilot_warns_naming_the_correlation_and_the_advice():
    res = _first_boundary_fit()
    with pytest.warns(PilotFitWarning) as caught:
        model = res.to_model(seed=1)
    message = str(caught[0].message)
    assert "singular" in message or "boundary" in message
    assert "from theory" in message and "biased upward" in message
    assert issubclass(PilotFitWarning, GlmmsimWarning)
    assert isinstance(model, glmmsim.Model)


def test_a_regular_pilot_does_not_warn():
    data = _pilot(0.5, 3)
    res = glmmsim.fit.fit("y ~ cond + (1 | subject)", data)
    assert not res.singular
    with warnings.catch_warnings():
        warnings.simplefilter("error", PilotFitWarning)
        res.to_model(seed=1)
