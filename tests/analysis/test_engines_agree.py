"""The lme4 engine and the default engine give the same power on the same replicates (issue 10)."""

from __future__ import annotations

import math
import os

import pytest

from glmmsim.analysis import power

from _study_models import rt_design, rt_model


def _lme4_available() -> bool:
    try:
        from glmmsim.fit import available_engines
    except ImportError:
        return False
    return "lme4" in available_engines()


requires_r = pytest.mark.skipif(
    not _lme4_available() and os.environ.get("GLMMSIM_REQUIRE_R") != "1",
    reason="the lme4 engine needs Rscript with lme4 and lmerTest (set GLMMSIM_REQUIRE_R=1 to make this a failure)",
)


@pytest.mark.slow
@requires_r
@pytest.mark.parametrize("method", ["satterthwaite", "z"])
def test_lme4_and_glmm_engines_give_the_same_power(method):
    model, design = rt_model(effect=15), rt_design(30, 20)
    nsim = 40
    fast = power(model, design, test="cond", nsim=nsim, method=method, seed=4, progress=False)
    ref = power(model, design, test="cond", nsim=nsim, method=method, seed=4, engine="lme4", progress=False)
    a, b = fast.simulations, ref.simulations
    # the same datasets: estimates agree to the engines' tolerance, verdicts nearly always
    assert (a["estimate"] - b["estimate"]).abs().max() < 1e-3 * a["se"].median()
    assert (a["significant"] == b["significant"]).mean() >= 0.95
    se = math.sqrt(max(fast.power * (1 - fast.power), 0.05) / nsim)
    assert abs(fast.power - ref.power) <= 2 * se
