"""Standardized inputs map to an ordinary Model with the stated variance split."""

from __future__ import annotations

import math

import numpy as np
import pytest

from glmmsim.analysis import (
    coefficient_from_d,
    coefficient_from_odds_ratio,
    sds_from_icc,
    sds_from_proportions,
    standardized_model,
)
from glmmsim.analysis.effect_sizes import LOGISTIC_VARIANCE
from glmmsim.errors import ParameterError

from ._study_models import rt_design


def test_proportions_give_variances_that_add_up():
    out = sds_from_proportions({"subject": {"Intercept": 0.2, "condb": 0.05}, "item": 0.1, "residual": 0.65},
                               total_sd=100)
    variances = [out["random"]["subject"]["Intercept"] ** 2, out["random"]["subject"]["condb"] ** 2,
                 out["random"]["item"] ** 2, out["sigma"] ** 2]
    assert sum(variances) == pytest.approx(100**2)
    assert out["random"]["item"] ** 2 / 100**2 == pytest.approx(0.1)
    with pytest.raises(ParameterError, match="sum to 1"):
        sds_from_proportions({"subject": 0.5, "residual": 0.6})
    with pytest.raises(ParameterError, match="between 0 and 1"):
        sds_from_proportions({"subject": 1.5, "residual": 0.6})


def test_icc_on_both_scales():
    out = sds_from_icc({"school": 0.2, "class": 0.1}, sigma=2.0)
    total = out["random"]["school"] ** 2 + out["random"]["class"] ** 2 + 4.0
    assert out["random"]["school"] ** 2 / total == pytest.approx(0.2)
    logit = sds_from_icc({"subject": 0.25}, family="binomial")
    assert logit["sigma"] is None
    assert logit["random"]["subject"] ** 2 / (logit["random"]["subject"] ** 2 + LOGISTIC_VARIANCE) == pytest.approx(0.25)
    with pytest.raises(ParameterError, match="exactly one"):
        sds_from_icc({"school": 0.2})


def test_effects_and_a_model_that_simulates_the_stated_split():
    assert coefficient_from_d(0.25, 80) == 20
    assert coefficient_from_odds_ratio(math.e) == pytest.approx(1.0)
    model = standardized_model(
        "rt ~ cond + (1 | subject) + (1 | item)", intercept=600, d={"condb": 0.5}, total_sd=100,
        variance={"subject": 0.3, "item": 0.2, "residual": 0.5}, seed=1,
    )
    assert model.fixed == {"Intercept": 600.0, "condb": 50.0}
    # the simulated variance within one condition is close to total_sd^2 over many subjects and items
    data = model.simulate(rt_design(200, 200), seed=2)
    within = data[data["cond"] == "a"]["rt"]
    assert within.var() == pytest.approx(100**2, rel=0.1)
    binom = standardized_model("y ~ cond + (1 | subject)", intercept=0.0, odds_ratio={"condb": 2.0},
                               variance={"subject": 0.2}, family="binomial", seed=1)
    assert binom.fixed["condb"] == pytest.approx(np.log(2.0))


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: coefficient_from_d("large", 1.0), "d"),
        (lambda: coefficient_from_d(0.5, float("nan")), "total_sd"),
        (lambda: coefficient_from_d(0.5, -1.0), "total_sd"),
        (lambda: coefficient_from_odds_ratio("2"), "odds_ratio"),
        (lambda: coefficient_from_odds_ratio(0.0), "odds_ratio"),
    ],
)
def test_effect_size_helpers_name_a_bad_argument(call, name):
    with pytest.raises(ParameterError, match=name) as info:
        call()
    assert info.value.parameter == name


def test_standardized_model_names_the_bad_effect():
    with pytest.raises(ParameterError, match=r"odds_ratio\['condb'\] must be a positive odds ratio") as info:
        standardized_model("y ~ cond + (1 | subject)", variance={"subject": 0.2}, odds_ratio={"condb": -1.0},
                           family="binomial")
    assert info.value.path == ("odds_ratio", "condb")
    with pytest.raises(ParameterError, match=r"d\['condb'\] must be a number") as info:
        standardized_model("y ~ cond + (1 | subject)", variance={"subject": 0.2, "residual": 0.8}, d={"condb": "big"})
    assert info.value.path == ("d", "condb")
