"""The glmm engine agrees with the lme4 engine (the reference) on a corpus of models.

Tolerances from the issue: log-likelihood within 1e-4, fixed effects within 1e-3 of
their SE. These tests are what would catch a regression in glmm (beta, one author),
whose version range is pinned in pyproject.toml.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import glmmsim

pytestmark = pytest.mark.r


def _nested_data() -> pd.DataFrame:
    schools, classes, pupils = 15, 4, 8
    d = pd.DataFrame(
        {
            "school": np.repeat([f"sch{i}" for i in range(schools)], classes * pupils),
            "class": np.tile(np.repeat([f"c{j}" for j in range(classes)], pupils), schools),
            "x": np.random.default_rng(7).normal(size=schools * classes * pupils),
        }
    )
    model = glmmsim.Model(
        "y ~ x + (1 | school/class)",
        fixed={"Intercept": 1.0, "x": 0.5},
        random={"school": 0.6, "school:class": 0.4},
        sigma=1.0,
        seed=3,
    )
    return model.simulate(d, seed=4)


def _categorical_data(crossed) -> pd.DataFrame:
    d = crossed(40, 6).drop(columns="cond")
    d["cond"] = np.tile(["a", "b", "c"], len(d) // 3)
    model = glmmsim.Model(
        "y ~ cond + (1 + cond | subject)",
        fixed={"Intercept": 0.0, "cond[T.b]": 0.5, "cond[T.c]": -0.3},
        random={"subject": {"sd": {"Intercept": 1.0, "cond[T.b]": 0.5, "cond[T.c]": 0.4},
                            "corr": {("Intercept", "cond[T.b]"): 0.3}}},
        sigma=1.0,
        seed=5,
    )
    return model.simulate(d, seed=6)


def _binomial_data() -> pd.DataFrame:
    rng = np.random.default_rng(8)
    d = pd.DataFrame({"subject": np.repeat([f"s{i}" for i in range(40)], 10), "x": rng.normal(size=400),
                      "n": rng.integers(5, 16, size=400)})
    model = glmmsim.Model("k ~ x + (1 | subject)", fixed={"Intercept": -0.3, "x": 0.8}, random={"subject": 0.7},
                          family="binomial", trials="n", seed=9)
    return model.simulate(d, seed=10)


def _poisson_offset_data() -> pd.DataFrame:
    # built by hand, so the test does not depend on Model's offset support
    rng = np.random.default_rng(11)
    d = pd.DataFrame({"g": np.repeat(np.arange(30), 20), "x": rng.normal(size=600),
                      "exposure": rng.uniform(0.5, 3.0, size=600)})
    d["log_exposure"] = np.log(d["exposure"])
    eta = 0.5 + 0.3 * d["x"] + d["log_exposure"] + rng.normal(scale=0.5, size=30)[d["g"]]
    d["count"] = rng.poisson(np.exp(eta))
    d["g"] = "g" + d["g"].astype(str)
    return d


CORPUS = {
    "gaussian crossed": ("rt ~ cond + (1 | subject) + (1 | item)", "rt", {}),
    "gaussian crossed, ML": ("rt ~ cond + (1 | subject) + (1 | item)", "rt", {"reml": False}),
    "correlated slopes": ("rt ~ cond + (1 + cond | subject) + (1 | item)", "rt", {}),
    "gaussian nested": ("y ~ x + (1 | school/class)", "nested", {}),
    "categorical slopes": ("y ~ cond + (1 + cond | subject)", "categorical", {}),
    "categorical slopes, no intercept": ("y ~ cond + (0 + cond | subject)", "categorical", {}),
    "binomial with trials": ("k ~ x + (1 | subject)", "binomial", {"family": "binomial", "trials": "n"}),
    "poisson with offset": ("count ~ x + (1 | g)", "poisson", {"family": "poisson", "offset": "log_exposure"}),
}


@pytest.fixture(scope="module")
def datasets(rt_data: pd.DataFrame, crossed) -> dict[str, pd.DataFrame]:
    return {"rt": rt_data, "nested": _nested_data(), "categorical": _categorical_data(crossed),
            "binomial": _binomial_data(), "poisson": _poisson_offset_data()}


@pytest.mark.parametrize("case", list(CORPUS))
def test_glmm_agrees_with_lme4(case: str, datasets: dict[str, pd.DataFrame]) -> None:
    formula, data_name, kwargs = CORPUS[case]
    data = datasets[data_name]
    fast = glmmsim.fit(formula, data, engine="glmm", **kwargs)
    ref = glmmsim.fit(formula, data, engine="lme4", **kwargs)
    assert fast.converged and ref.converged
    assert fast.reml == ref.reml
    assert fast.loglik == pytest.approx(ref.loglik, abs=1e-4)
    diff = (fast.fixed["estimate"] - ref.fixed["estimate"]).abs()
    assert (diff <= 1e-3 * ref.fixed["se"]).all(), diff / ref.fixed["se"]
    # GLMM SEs: glmm takes exact second derivatives, lme4 a finite-difference Hessian (0.4% apart here)
    np.testing.assert_allclose(fast.fixed["se"], ref.fixed["se"], rtol=2e-3 if ref.sigma is not None else 1e-2)
    if ref.fixed["df"].notna().any():  # Satterthwaite df, lmerTest's
        np.testing.assert_allclose(fast.fixed["df"], ref.fixed["df"], rtol=2e-3)
    assert set(fast.random) == set(ref.random)
    for factor, spec in ref.random.items():
        for coef, sd in spec["sd"].items():
            assert fast.random[factor]["sd"][coef] == pytest.approx(sd, rel=5e-3, abs=1e-4), (factor, coef)
        for pair, r in spec["corr"].items():
            assert fast.random[factor]["corr"][pair] == pytest.approx(r, abs=5e-3), (factor, pair)
    if ref.sigma is not None:
        assert fast.sigma == pytest.approx(ref.sigma, rel=1e-4)


def test_lrt_agrees(datasets: dict[str, pd.DataFrame]) -> None:
    data = datasets["nested"]
    fast = glmmsim.fit("y ~ x + (1 | school/class)", data, engine="glmm").test("x", method="lrt")
    ref = glmmsim.fit("y ~ x + (1 | school/class)", data, engine="lme4").test("x", method="lrt")
    assert fast.statistic == pytest.approx(ref.statistic, abs=2e-4)


def test_satterthwaite_contrast_agrees_and_kr_runs(datasets: dict[str, pd.DataFrame]) -> None:
    data = datasets["categorical"]
    fast = glmmsim.fit("y ~ cond + (1 + cond | subject)", data, engine="glmm").test("cond", method="satterthwaite")
    ref_fit = glmmsim.fit("y ~ cond + (1 + cond | subject)", data, engine="lme4")
    ref = ref_fit.test("cond", method="satterthwaite")
    assert (fast.statistic_name, fast.num_df) == ("F", 2)
    assert fast.statistic == pytest.approx(ref.statistic, rel=1e-3)
    assert fast.df == pytest.approx(ref.df, rel=2e-3)
    kr = ref_fit.test("cond", method="kr")
    assert kr.method == "kr" and kr.statistic_name == "F"
    # balanced within-subject design with a full random slope for cond: Kenward-Roger is exact,
    # Hotelling's T^2 test of the S per-subject contrasts, F(q, S - q) with S = 40, q = 2
    subjects = data["subject"].nunique()
    assert kr.df == pytest.approx(subjects - 2, rel=1e-6)
    assert ref_fit.test("cond[T.b]", method="kr").df == pytest.approx(subjects - 1, rel=1e-6)


def test_lme4_fits_what_glmm_refuses(rt_data: pd.DataFrame) -> None:
    """(x || g) is (1 | g) + (0 + x | g): the same fit, and glmmsim's factor names."""
    d = rt_data.assign(x=(rt_data["cond"] == "b").astype(float))
    double = glmmsim.fit("rt ~ x + (x || subject)", d, engine="lme4")
    split = glmmsim.fit("rt ~ x + (1 | subject) + (0 + x | subject)", d, engine="lme4")
    assert double.loglik == pytest.approx(split.loglik, abs=1e-6)
    assert set(double.random) == {"subject"} and set(double.random["subject"]["sd"]) == {"Intercept", "x"}
    assert double.random["subject"]["corr"] == {}
