"""Regression tests from a review of the core engine: one test per finding, each fixed.

Edge cases of lme4 semantics, level keys (dates, durations, huge numbers), replace(),
input validation and error messages.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from formulaic import model_matrix

from glmmsim import DataError, FormulaError, Model, ParameterError
from glmmsim.errors import GlmmsimError, GlmmsimWarning
from glmmsim.model.formula import parse_formula
from glmmsim.model.terms import expand_bars, has_intercept


def _data():
    return pd.DataFrame(
        {
            "x": np.arange(1.0, 7.0),
            "z": np.arange(6.0) ** 2,
            "g": list("aabbcc"),
            "cond": list("abcabc"),
            "n": [3, 2, 5, 1, 0, 4],
        }
    )


def _intercept_model(seed=5, **kw):
    return Model("y ~ 1 + (1 | g)", fixed={"Intercept": 0}, random={"g": 1.0}, sigma=1, seed=seed, **kw)


# ----------------------------------------------------------------- high


def test_replace_with_seed_uses_new_population():
    data = _data()
    new = _intercept_model(seed=5).replace(seed=2)
    expected = _intercept_model(seed=2).random_effects(data)["g"]
    pd.testing.assert_frame_equal(new.random_effects(data)["g"], expected)


def test_missing_column_with_declared_levels_is_data_error():
    m = Model(
        "y ~ cond + (1 | g)",
        fixed={"Intercept": 0, "condb": 1, "condc": 1},
        random={"g": 1},
        sigma=1,
        levels={"cond": ["a", "b", "c"]},
    )
    with pytest.raises(DataError, match="'cond'"):
        m.simulate(_data().drop(columns="cond"), seed=1)


def test_double_bar_splits_every_term_label():
    # lme4's expandDoubleVerts: one '(0 + t | g)' per term label of the lhs, so x*z gives x, z, x:z
    terms = expand_bars(parse_formula("y ~ (x*z || g)").bars)
    assert [str(t) for t in terms] == ["(1 | g)", "(0 + x | g)", "(0 + z | g)", "(0 + x:z | g)"]


def test_duplicate_grouping_column_is_data_error():
    data = pd.concat([_data(), _data()[["g"]]], axis=1)
    with pytest.raises(DataError, match="'g'"):
        _intercept_model().simulate(data, seed=1)


# ----------------------------------------------------------------- medium


def test_sum_contrast_lme4_names_accepted_in_random():
    m = Model(
        "y ~ (C(cond, Sum) | g)",
        fixed={"Intercept": 0},
        random={"g": {"(Intercept)": 1.0, "cond1": 0.5, "cond2": 0.5}},
        sigma=1,
    )
    assert m.simulate(_data(), seed=1).shape == (6, 6)


def test_datetime_levels_independent_of_resolution():
    # pandas 2 parses to datetime64[ns], pandas 3 to datetime64[us]: same dates must be the same levels
    dates = pd.to_datetime(["2020-01-01", "2020-01-02"])
    m = _intercept_model()
    ns = m.random_effects(pd.DataFrame({"g": dates.as_unit("ns")}))["g"]["Intercept"].to_numpy()
    us = m.random_effects(pd.DataFrame({"g": dates.as_unit("us")}))["g"]["Intercept"].to_numpy()
    np.testing.assert_array_equal(ns, us)


def test_timedelta_grouping_column():
    data = pd.DataFrame({"g": pd.to_timedelta([1, 2, 3], unit="D")})
    assert len(_intercept_model().random_effects(data)["g"]) == 3


def test_large_float_levels_have_distinct_effects():
    data = pd.DataFrame({"g": [1e20, 2e20, 3e19]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        effects = _intercept_model().random_effects(data)["g"]["Intercept"]
    assert effects.nunique() == 3


def test_response_used_as_predictor_is_formula_error():
    with pytest.raises(FormulaError, match="'x'"):
        Model("x ~ x + (1 | g)", fixed={"Intercept": 0, "x": 1}, random={"g": 1}, sigma=1)


def test_trials_column_equal_to_response_is_error():
    with pytest.raises(GlmmsimError, match="'n'"):
        Model("n ~ x + (1 | g)", fixed={"Intercept": 0, "x": 0.1}, random={"g": 1}, family="binomial", trials="n")


def test_replace_ignores_later_mutation_of_random():
    spec = {"g": 1.0}
    m = Model("y ~ 1 + (1 | g)", fixed={"Intercept": 0}, random=spec, sigma=1, seed=1)
    before = m.random_effects(_data())["g"]
    spec["g"] = 100.0
    pd.testing.assert_frame_equal(m.replace(sigma=2.0).random_effects(_data())["g"], before)


def test_conflicting_correlation_pairs_rejected():
    with pytest.raises(ParameterError, match="twice"):
        Model(
            "y ~ x + (1 + x | g)",
            fixed={"Intercept": 0, "x": 1},
            random={"g": {"sd": {"Intercept": 1, "x": 1}, "corr": {("x", "Intercept"): 0.5, ("Intercept", "x"): -0.5}}},
            sigma=1,
        )


def test_levels_for_unused_column_rejected():
    # a typo in levels= silently leaves the reference level unchanged
    with pytest.raises(ParameterError, match="Cond"):
        Model(
            "y ~ cond + (1 | g)",
            fixed={"Intercept": 0, "conda": 1, "condb": 1},
            random={"g": 1},
            sigma=1,
            levels={"Cond": ["c", "a", "b"]},
        )


def test_stateful_transforms_are_partition_invariant_or_warned():
    data = _data()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = Model("y ~ center(x) + (1 | g)", fixed={"Intercept": 0, "center(x)": 1}, random={"g": 0.0}, sigma=0)
        full = m.predict(data).iloc[:3].to_numpy()
        part = m.predict(data.iloc[:3]).to_numpy()
    warned = any(issubclass(w.category, GlmmsimWarning) for w in caught)
    assert warned or np.allclose(full, part)


def test_categories_of_a_categorical_column_act_as_declared_levels():
    # unlike lme4, which drops unused levels, a pandas Categorical's categories fix the
    # coefficient set (as levels= does), so subsets of the data keep the same coefficients
    data = _data()
    cat = data.assign(cond=pd.Categorical(data["cond"], categories=["z", "a", "b", "c"]))
    m = Model("y ~ cond + (1 | g)", fixed={"Intercept": 0, "condb": 1, "condc": 2}, random={"g": 1}, sigma=1)
    with pytest.raises(ParameterError, match="cond\\[T.a\\]"):
        m.predict(cat)
    declared = m.replace(levels={"cond": ["a", "b", "c"]})
    pd.testing.assert_series_equal(declared.predict(data), m.predict(data))


# ----------------------------------------------------------------- low


def test_covariance_without_conditions_says_data_needed():
    m = Model("y ~ (cond | g)", fixed={"Intercept": 0}, random={"g": {"Intercept": 1, "condb": 1, "condc": 1}}, sigma=1)
    with pytest.raises(ParameterError, match="conditions"):
        m.covariance()


def test_has_intercept_agrees_with_formulaic():
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    for expr in ["0 + x + 1", "-1 + 1 + x", "0 + 1"]:
        assert has_intercept(expr) == ("Intercept" in model_matrix(expr, frame).columns), expr


def test_unhashable_levels_are_parameter_error():
    with pytest.raises(ParameterError, match="levels"):
        _intercept_model(levels={"cond": [["a"], ["b"]]})


def test_caret_inside_I_gets_a_hint():
    m = Model("y ~ I(x^2) + (1 | g)", fixed={"Intercept": 0, "I(x**2)": 1}, random={"g": 1}, sigma=1)
    with pytest.raises(GlmmsimError, match=r"\*\*"):
        m.simulate(_data(), seed=1)
