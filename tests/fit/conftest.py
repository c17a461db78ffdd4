"""Fixtures of the fitting tests (tests marked ``r`` are gated in tests/conftest.py)."""

from __future__ import annotations

import pandas as pd
import pytest

import glmmsim

from ._conditions import crossed_conditions


@pytest.fixture(scope="session")
def crossed():
    """The function building crossed conditions."""
    return crossed_conditions


@pytest.fixture(scope="session")
def rt_data() -> pd.DataFrame:
    """The 30 x 20 x 2 reaction-time study of the README (gaussian, correlated subject slopes)."""
    model = glmmsim.Model(
        "rt ~ cond + (1 + cond | subject) + (1 | item)",
        fixed={"Intercept": 600.0, "cond[T.b]": 20.0},
        random={
            "subject": {"sd": {"Intercept": 50.0, "cond[T.b]": 20.0}, "corr": {("Intercept", "cond[T.b]"): 0.3}},
            "item": 30.0,
        },
        sigma=80.0,
        seed=11,
    )
    return model.simulate(crossed_conditions(), seed=12)
