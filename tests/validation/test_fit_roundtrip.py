"""Simulate from a Model, fit, build the Model of the estimates, simulate and fit again.

200 subjects x 15 observations: tolerances are 4 standard errors. For the fixed
effects the SE is the fit's own; for the variance components it is the large-sample
SE of a variance estimated from J = 200 subject means, Var(s^2) = 2 (tau^2 + v)^2 / (J - 1)
with v the sampling variance of one subject's estimate, mapped to the SD scale by the
delta method; for sigma, sigma / sqrt(2 n); for a correlation, (1 - r^2) / sqrt(J)
inflated by the same noise ratio (taken as 1.5).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import glmmsim

J, M = 200, 15
TRUTH = {
    "fixed": {"Intercept": 1.0, "x": 0.5},
    "random": {"subject": {"sd": {"Intercept": 0.8, "x": 0.4}, "corr": {("Intercept", "x"): 0.3}}},
    "sigma": 1.0,
}
FORMULA = "y ~ x + (1 + x | subject)"


def _sd_se(sd: float, per_subject_var: float) -> float:
    var_se = np.sqrt(2.0 / (J - 1)) * (sd**2 + per_subject_var)
    return var_se / (2.0 * sd)


def _check_near(res: glmmsim.fit.FitResult, fixed: dict, random: dict, sigma: float) -> None:
    for coef, value in fixed.items():
        assert abs(res.fixed.loc[coef, "estimate"] - value) < 4 * res.fixed.loc[coef, "se"], coef
    sd = random["subject"]["sd"]
    got = res.random["subject"]
    # per-subject sampling variances: intercept sigma^2/M, slope sigma^2/(M var(x)) with var(x) = 1
    assert abs(got["sd"]["Intercept"] - sd["Intercept"]) < 4 * _sd_se(sd["Intercept"], sigma**2 / M)
    assert abs(got["sd"]["x"] - sd["x"]) < 4 * _sd_se(sd["x"], sigma**2 / M)
    r = random["subject"]["corr"][("Intercept", "x")]
    assert abs(got["corr"][("Intercept", "x")] - r) < 4 * 1.5 * (1 - r**2) / np.sqrt(J)
    assert abs(res.sigma - sigma) < 4 * sigma / np.sqrt(2 * J * M)


@pytest.fixture(scope="module")
def conditions() -> pd.DataFrame:
    rng = np.random.default_rng(21)
    return pd.DataFrame({"subject": np.repeat([f"s{i:03d}" for i in range(J)], M), "x": rng.normal(size=J * M)})


def test_fit_recovers_truth_and_to_model_round_trips(conditions: pd.DataFrame) -> None:
    truth = glmmsim.Model(FORMULA, **TRUTH, seed=1)
    res = glmmsim.fit(FORMULA, truth.simulate(conditions, seed=2))
    assert res.converged and not res.singular
    _check_near(res, TRUTH["fixed"], TRUTH["random"], TRUTH["sigma"])

    pilot = res.to_model(seed=3)  # the simr workflow: simulate from the fitted model
    assert pilot.fixed == {k: pytest.approx(v) for k, v in res.fixed["estimate"].items()}
    again = glmmsim.fit(FORMULA, pilot.simulate(conditions, seed=4))
    _check_near(again, res.fixed["estimate"].to_dict(), res.random, res.sigma)


def test_binomial_to_model_keeps_trials(conditions: pd.DataFrame) -> None:
    data = conditions.assign(n=np.tile([4, 8, 12], len(conditions) // 3))
    truth = glmmsim.Model("k ~ x + (1 | subject)", fixed={"Intercept": -0.5, "x": 1.0}, random={"subject": 0.6},
                          family="binomial", trials="n", seed=5)
    res = glmmsim.fit("k ~ x + (1 | subject)", truth.simulate(data, seed=6), family="binomial", trials="n")
    for coef, value in truth.fixed.items():
        assert abs(res.fixed.loc[coef, "estimate"] - value) < 4 * res.fixed.loc[coef, "se"]
    assert res.sigma is None and np.isnan(res.fixed["df"]).all()  # z tests for a GLMM
    model = res.to_model(seed=7)
    assert model.trials == "n" and model.family.name == "binomial"
    out = model.simulate(data, seed=8)
    assert ((out["k"] >= 0) & (out["k"] <= out["n"])).all()


@pytest.mark.parametrize(
    ("family", "params", "estimated", "tolerance"),
    [
        # SE of log(theta-hat) for NB2 with mean ~3 and theta 3 on 3000 rows is about 0.06: 4 SE on the log scale
        ("negative_binomial", {"dispersion": {"theta": 3.0}}, ("theta", 3.0), 0.25),
        # SE of the gamma shape from 3000 rows: shape * sqrt(2 / n) roughly, 4 SE relative = 0.1
        ("gamma", {"sigma": 0.5}, ("shape", 4.0), 0.1),
    ],
)
def test_family_parameters_are_estimated_and_round_trip(conditions, family, params, estimated, tolerance) -> None:
    # log link spelt out: Model's Gamma defaults to R's inverse link
    truth = glmmsim.Model("y ~ x + (1 | subject)", fixed={"Intercept": 1.0, "x": 0.5}, random={"subject": 0.5},
                          family=family, link="log", seed=11, **params)
    res = glmmsim.fit("y ~ x + (1 | subject)", truth.simulate(conditions, seed=12), family=family, link="log")
    assert res.converged
    name, value = estimated
    assert abs(np.log(res.family_params[name] / value)) < tolerance, res.family_params
    for coef, beta in truth.fixed.items():
        assert abs(res.fixed.loc[coef, "estimate"] - beta) < 4 * res.fixed.loc[coef, "se"]
    model = res.to_model(seed=13)
    assert model.family.params[name] == pytest.approx(res.family_params[name])
    with pytest.raises(glmmsim.fit.EngineError, match="use engine='glmm'"):
        glmmsim.fit.prepare("y ~ x + (1 | subject)", conditions, family=family, engine="lme4")
