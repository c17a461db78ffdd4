"""The lme4 engine and the default engine give the same power on the same replicates (issue 10)."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from glmmsim.analysis import power

from ..analysis._study_models import rt_design, rt_model


@pytest.mark.slow
@pytest.mark.r
def test_lme4_and_glmm_engines_give_the_same_power():
    """Satterthwaite power from each engine on the same replicates; z verdicts from the same fits."""
    model, design = rt_model(effect=15), rt_design(30, 20)
    nsim = 30
    fast = power(model, design, test="cond", nsim=nsim, seed=4, progress=False)
    ref = power(model, design, test="cond", nsim=nsim, seed=4, engine="lme4", progress=False)
    a, b = fast.simulations, ref.simulations
    # the same datasets: estimates agree to the engines' tolerance, verdicts nearly always
    assert (a["estimate"] - b["estimate"]).abs().max() < 1e-3 * a["se"].median()
    rel = ((a["se"] - b["se"]) / b["se"]).abs()
    assert rel.median() < 1e-3 and rel.max() < 0.02  # singular fits' optima differ a little between engines
    assert (a["significant"] == b["significant"]).mean() >= 0.95
    se = math.sqrt(max(fast.power * (1 - fast.power), 0.05) / nsim)
    assert abs(fast.power - ref.power) <= 2 * se
    # Wald z tests of the same fits
    z_sig = [2 * stats.norm.sf(abs(s["statistic"])) < 0.05 for s in (a, b)]
    assert (z_sig[0] == z_sig[1]).mean() >= 0.95
