"""power() and recovery() against exact theory and nominal rates, within Monte Carlo error.

* Satterthwaite power of a balanced paired design equals the noncentral t probability (issue 10);
* power of simr's "fromscratch" vignette design equals its exact sampling distributions;
* recovery() of the README's example: unbiased fixed effects, 95% Wald intervals covering 95% (issue 9).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import glmmsim
from glmmsim.analysis import power, power_curve, recovery

from ..analysis._study_models import fromscratch, paired_design, rt_design, rt_model


def _noncentral_power(effect: float, subjects: int, slope_sd: float, sigma: float, per_cell: int, alpha: float):
    """Power of the paired t test on per-subject differences: noncentral t with S - 1 df."""
    sd_diff = math.sqrt(slope_sd**2 + 2 * sigma**2 / per_cell)
    ncp = effect * math.sqrt(subjects) / sd_diff
    df = subjects - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    return stats.nct.sf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp)


@pytest.mark.slow
def test_satterthwaite_power_is_the_noncentral_t_probability():
    """Balanced within-subject design, random intercepts and slopes, centred predictor (issue 10)."""
    subjects, per_cell, slope_sd, sigma, nsim = 20, 10, 0.5, 1.0, 600
    model = lambda effect: glmmsim.Model(  # noqa: E731
        "y ~ xc + (1 + xc | subject)",
        fixed={"Intercept": 0.0, "xc": effect},
        random={"subject": {"sd": {"Intercept": 1.0, "xc": slope_sd}}},
        sigma=sigma,
        seed=1,
    )
    curve = power_curve(model, paired_design(subjects, per_cell), along={"effect": [0.0, 0.35]}, test="xc",
                        nsim=nsim, seed=11, progress=False)
    table = curve.table.set_index("effect")
    for effect in (0.0, 0.35):
        expected = _noncentral_power(effect, subjects, slope_sd, sigma, per_cell, 0.05)
        got = table.loc[effect, "power"]
        se = math.sqrt(expected * (1 - expected) / nsim)
        assert abs(got - expected) < 3.5 * se, (effect, got, expected, se)
    # the df of a balanced paired design is S - 1 for the non-singular fits
    sims = curve.simulations
    regular = sims[~sims["singular"].astype(bool)]
    assert np.median(regular["df"]) == pytest.approx(subjects - 1, rel=1e-3)


def fromscratch_theory(draws: int = 400_000, seed: int = 0) -> float:
    """Power of the t test of x in the fromscratch design, from the exact sampling distributions.

    With x the same 1..10 in every group, the slope's estimate is the within-group one,
    N(-0.1, 1 / 247.5), independent of the within-group residual SS ~ chi2(26) and the
    between-group SS ~ (1 + 10 * 0.5) chi2(2). REML's variances are the ANOVA ones: when
    the between mean square is below the within one the group variance is 0 and the
    test pools both sums of squares (28 df); otherwise it uses the within ones (26 df).
    The expectation over those three independent variables is taken by Monte Carlo
    (400,000 draws: SE 0.0007).
    """
    rng = np.random.default_rng(seed)
    beta = rng.normal(-0.1, math.sqrt(1 / 247.5), draws)
    ssw, ssb = rng.chisquare(26, draws), 6.0 * rng.chisquare(2, draws)
    regular = ssb / 2 >= ssw / 26
    s2 = np.where(regular, ssw / 26, (ssw + ssb) / 28)
    p = 2 * stats.t.sf(np.abs(beta / np.sqrt(s2 / 247.5)), np.where(regular, 26, 28))
    return float((p < 0.05).mean())


@pytest.mark.parametrize("x_dtype", [float, int])
def test_simr_fromscratch_runs_without_key_and_gives_the_theoretical_power(x_dtype):
    model, design = fromscratch(x_dtype)
    nsim = 1000
    res = power(model, design, test="x", nsim=nsim, seed=2024, progress=False)
    reference = fromscratch_theory()  # 0.331
    # the estimate is a binomial proportion of nsim: 3.5 SEs (two-sided 0.05%) plus the reference's own MC error
    tolerance = 3.5 * math.sqrt(reference * (1 - reference) / nsim) + 3 * 0.0007
    assert abs(res.power - reference) < tolerance, (res.power, reference, tolerance)
    assert res.failed == 0


@pytest.mark.slow
def test_recovery_of_the_readme_example_is_unbiased_with_nominal_coverage():
    """Fixed effects: bias within 3 MC SE, 95% Wald coverage within 3 MC SE of 0.95 (issue 9)."""
    nsim = 300
    rec = recovery(rt_model(), rt_design(30, 20), nsim=nsim, seed=9, progress=False)
    fixed = rec.table[rec.table["kind"] == "fixed"]
    assert len(fixed) == 2
    for name, row in fixed.iterrows():
        assert abs(row["bias"]) < 3 * row["bias_se"], (name, row["bias"], row["bias_se"])
        se = math.sqrt(0.95 * 0.05 / row["n"])
        assert abs(row["coverage"] - 0.95) < 3 * se, (name, row["coverage"])
    # sigma is estimated from 1200 rows: close to the truth
    assert abs(rec.table.loc["sigma", "bias"]) < 3 * rec.table.loc["sigma", "bias_se"]
