"""Fixtures of the fitting tests.

Tests marked ``r`` need Rscript with lme4, lmerTest and pbkrtest. Without them
they skip, unless the environment sets ``GLMMSIM_REQUIRE_R=1`` (CI installs R),
in which case they fail: a CI run must never pass by skipping the lme4 checks.
"""

from __future__ import annotations

import functools
import os

import pandas as pd
import pytest

import glmmsim
from ._conditions import crossed_conditions


@functools.lru_cache(maxsize=1)
def _r_problem() -> str | None:
    """None when the lme4 engine's R server starts here, else why not."""
    from glmmsim.fit.engines.lme4_engine import r_server

    try:
        r_server().ensure()
    except glmmsim.fit.EngineError as exc:
        return str(exc)
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("r") is None:
        return
    problem = _r_problem()
    if problem is None:
        return
    if os.environ.get("GLMMSIM_REQUIRE_R") == "1":
        pytest.fail(f"GLMMSIM_REQUIRE_R=1 but the lme4 engine cannot run: {problem}")
    pytest.skip(f"lme4 engine unavailable: {problem}")


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
