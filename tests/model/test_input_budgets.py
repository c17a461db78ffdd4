"""Inputs that once crashed, were accepted silently, or asked for unbounded work (issue 16)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import glmmsim
from glmmsim.errors import DataError, FormulaError, GlmmsimError, ParameterError


@pytest.fixture
def data() -> pd.DataFrame:
    return pd.DataFrame({"x": np.linspace(-1, 1, 20), "g": list("abcd") * 5, "trial": range(20)})


def _model(formula="y ~ x + (1 | g)", **kw):
    args = {"fixed": {"Intercept": 0, "x": 1}, "random": {"g": 1}, "sigma": 1, **kw}
    return glmmsim.Model(formula, **args)


def test_a_400_digit_fixed_effect_is_refused_not_an_overflow():
    with pytest.raises(ParameterError, match=r"fixed\['Intercept'\] must be finite .* digits"):
        _model(fixed={"Intercept": 10**400, "x": 0})
    with pytest.raises(ParameterError, match="theta"):
        _model(family="negative_binomial", sigma=None, dispersion={"theta": 10**400})


def test_text_trials_are_refused_not_parsed(data):
    m = _model(family="binomial", sigma=None, trials="n")
    with pytest.raises(DataError, match="trials must be whole numbers .* pd.to_numeric"):
        m.simulate(data.assign(n=["3"] * 20), seed=1)
    assert m.simulate(data.assign(n=3), seed=1)["y"].between(0, 3).all()


def test_negative_binomial_theta_below_the_float_range_is_refused():
    with pytest.raises(ParameterError, match=r"'theta' must be a finite number >= 1e-08; got 1e-300"):
        _model(family="negative_binomial", sigma=None, dispersion={"theta": 1e-300})


def test_inverse_gaussian_means_whose_variance_overflows_are_refused(data):
    m = _model(family="inverse_gaussian", link="log", sigma=None, dispersion={"dispersion": 1.0},
               fixed={"Intercept": float(np.log(1e304)), "x": 0.0}, random={"g": 0.0})
    with pytest.raises(DataError, match="means up to .* can be drawn"):
        m.simulate(data, seed=1)


def test_levels_are_budgeted_without_reading_an_endless_generator():
    import itertools

    with glmmsim.limits.override(max_levels=1000):
        with pytest.raises(ParameterError, match="max_levels is 1,000") as info:
            _model("y ~ cond + (1 | g)", fixed={"Intercept": 0}, levels={"cond": (f"l{i}" for i in itertools.count())})
    assert info.value.path == ("levels", "cond")


def test_random_effect_columns_are_budgeted(data):
    d = data.assign(c=[f"c{i}" for i in range(20)])
    fixed = {"Intercept": 0}
    m = glmmsim.Model("y ~ 1 + (0 + c | g)", fixed=fixed, random={"g": 1}, sigma=1)
    with glmmsim.limits.override(max_random_columns=10):
        with pytest.raises(ParameterError, match="max_random_columns is 10"):
            m.simulate(d, seed=1)


def test_nsim_is_budgeted_before_any_batch_is_built(data):
    with pytest.raises(ParameterError, match="max_replicates"):
        glmmsim.power(_model(), data, test="x", nsim=10**9, progress=False, key=["trial"])
    with pytest.raises(ParameterError, match="max_replicates"):
        glmmsim.recovery(_model(), data, nsim=10**9, progress=False, key=["trial"])


def test_fitting_as_many_levels_as_rows_is_refused(data):
    d = data.assign(y=np.arange(20.0), unit=[f"u{i}" for i in range(20)])
    with glmmsim.limits.override(max_levels=10):
        with pytest.raises(ParameterError, match="max_levels"):
            glmmsim.fit("y ~ x + (1 | unit)", d)


@pytest.mark.parametrize(
    "formula, allowed",
    [("y ~ x + (1 | g | h)", "e.g. '(1 + x | subject)'"), ("y ~ x + (1 | g:g)", "e.g. '(1 | a:b)'")],
)
def test_formula_messages_say_what_is_valid(formula, allowed):
    with pytest.raises(FormulaError) as info:
        _model(formula, random={"g": 1})
    assert allowed in str(info.value)


def test_text_from_a_transform_says_where_categories_belong(data):
    m = _model("y ~ I(np.where(x > 0, 'a', 'c')) + (1 | g)", fixed={"Intercept": 0})
    with pytest.raises(GlmmsimError, match="belongs in a column of the data"):
        m.simulate(data, seed=1)


@pytest.mark.parametrize("offset", [10**400, ["a"] * 20])
def test_a_fit_offset_beyond_float_range_or_of_text_is_a_data_error(data, offset):
    d = data.assign(y=np.arange(20.0))
    with pytest.raises(DataError, match="offset must be a column name or finite numbers"):
        glmmsim.fit("y ~ x + (1 | g)", d, offset=offset)
