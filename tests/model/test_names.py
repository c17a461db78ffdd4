"""Coefficient names: lme4's spellings (treatment, sum contrasts, logical predictors) next to formulaic's."""

import numpy as np
import pandas as pd
import pytest

from glmmsim import Model, ParameterError
from glmmsim.model.names import categorical_levels, lme4_name, logical_levels


def _data(flag=None):
    flag = [True, False, True, False, False, True] if flag is None else flag
    return pd.DataFrame({"x": np.arange(1.0, 7.0), "flag": flag, "cond": list("abcabc"), "g": list("aabbcc")})


@pytest.mark.parametrize("dtype", [bool, "boolean", "bool[pyarrow]"], ids=["numpy", "nullable", "arrow"])
def test_a_logical_predictor_takes_lme4s_name_xTRUE(dtype):
    if dtype == "bool[pyarrow]":
        pytest.importorskip("pyarrow")
    data = _data().astype({"flag": dtype})
    lme4 = Model("y ~ flag + (flag | g)", fixed={"(Intercept)": 1, "flagTRUE": 2},
                 random={"g": {"(Intercept)": 0.5, "flagTRUE": 0.3}}, sigma=1, seed=2)
    formulaic = Model("y ~ flag + (flag | g)", fixed={"Intercept": 1, "flag": 2},
                      random={"g": {"Intercept": 0.5, "flag": 0.3}}, sigma=1, seed=2)
    np.testing.assert_array_equal(lme4.predict(data), formulaic.predict(data))
    # TRUE rows get the coefficient: the same numbers as lme4's treatment coding of a logical
    pop = lme4.predict(data, random=False).to_numpy()
    np.testing.assert_array_equal(pop, np.where(data["flag"].to_numpy(dtype=bool), 3.0, 1.0))


def test_xTRUE_is_listed_in_the_unknown_coefficient_message():
    model = Model("y ~ flag + (1 | g)", fixed={"Intercept": 1, "flg": 2}, random={"g": 0.5}, sigma=1)
    with pytest.raises(ParameterError, match="'flagTRUE'"):
        model.simulate(_data(), seed=1)


def test_a_numeric_column_has_no_TRUE_spelling():
    model = Model("y ~ x + (1 | g)", fixed={"Intercept": 1, "xTRUE": 2}, random={"g": 0.5}, sigma=1)
    with pytest.raises(ParameterError, match="unknown coefficient 'xTRUE'"):
        model.simulate(_data(), seed=1)


def test_lme4_names_of_logical_and_sum_coded_columns():
    levels = {"flag": [False, True], "cond": ["a", "b", "c"]}
    assert lme4_name("flag", levels) == "flagTRUE"
    assert lme4_name("x:flag", levels) == "x:flagTRUE"
    assert lme4_name("C(flag)[T.True]", levels) == "flagTRUE"
    assert lme4_name("C(cond, Sum)[S.b]", levels) == "cond2"
    assert lme4_name("flag") == "flag"  # without levels nothing says it is logical


def test_categorical_levels_reads_text_logical_and_categorical_columns_as_formulaic_does():
    data = _data().assign(cat=pd.Categorical(list("zyzyzy"), categories=["z", "y", "w"]))
    levels = categorical_levels(data)
    assert levels == {"flag": [False, True], "cond": ["a", "b", "c"], "g": ["a", "b", "c"], "cat": ["z", "y", "w"]}
    assert logical_levels(data) == {"flag": [False, True]}


def test_sum_contrast_lme4_names_accepted_in_random():
    m = Model(
        "y ~ (C(cond, Sum) | g)",
        fixed={"Intercept": 0},
        random={"g": {"(Intercept)": 1.0, "cond1": 0.5, "cond2": 0.5}},
        sigma=1,
    )
    assert m.simulate(_data(), seed=1).shape == (6, 5)


def test_find_remembers_its_answers_up_to_a_limit():
    from glmmsim.model import names as names_module

    names = names_module.CoefficientNames(["Intercept", "cond[T.b]", "x"], {"cond": ["a", "b"]})
    first = [names.find(s) for s in ("condb", "cond", "x", "nope")]
    assert first == [(1,), (1,), (2,), None]
    assert [names.find(s) for s in ("condb", "cond", "x", "nope")] == first
    for i in range(2 * names_module._FOUND_LIMIT):
        assert names.find(f"unknown{i}") is None
    assert len(names._found) == names_module._FOUND_LIMIT
    assert names.find("cond[T.b]") == (1,)  # past the limit, answered without being remembered
