"""Model-matrix columns and grouping-factor levels read from a DataFrame."""

import warnings

import numpy as np
import pandas as pd
import pytest

from glmmsim import DataError, Model
from glmmsim.errors import GlmmsimError


def _data():
    return pd.DataFrame({"x": np.arange(1.0, 7.0), "g": list("aabbcc"), "cond": list("abcabc")})


def _intercept_model():
    return Model("y ~ 1 + (1 | g)", fixed={"Intercept": 0}, random={"g": 1.0}, sigma=1, seed=5)


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


def test_caret_inside_I_gets_a_hint():
    m = Model("y ~ I(x^2) + (1 | g)", fixed={"Intercept": 0, "I(x**2)": 1}, random={"g": 1}, sigma=1)
    with pytest.raises(GlmmsimError, match=r"\*\*"):
        m.simulate(_data(), seed=1)


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
