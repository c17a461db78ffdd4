"""Structured errors: what an error is about travels as attributes, through pickling too."""

import pickle

import pytest

from glmmsim.errors import DataError, FormulaError, GlmmsimError, ParameterError, Where, about


def test_attributes_and_pickling():
    err = ParameterError.at(Where.of("random", "subject"), "has no value for 'x'", coefficient="x")
    assert (err.parameter, err.path, err.coefficient, err.detail) == ("random", ("random", "subject"), "x", "has no value for 'x'")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is ParameterError and str(back) == str(err)
    assert back.attributes() == err.attributes() and back.detail == err.detail
    assert isinstance(back, ValueError)


def test_renamed_rebuilds_the_message_from_the_path_not_the_text():
    err = ParameterError.at(Where.of("fixed"), "names unknown coefficient 'fixed'", coefficient="fixed")
    assert str(err.renamed({"fixed": "fixed_effects"})) == "fixed_effects names unknown coefficient 'fixed'"
    assert ParameterError("fixed must be a mapping").renamed({"fixed": "fixed_effects"}) is None


def test_about_fills_in_only_unknown_paths():
    with pytest.raises(DataError) as info:
        with about("levels"):
            with about("levels", "class"):
                raise DataError("bad")
    assert info.value.path == ("levels", "class")


def test_model_errors_carry_their_argument():
    import glmmsim

    with pytest.raises(ParameterError) as info:
        glmmsim.Model("y ~ x + (1 | g)", fixed={"Intercept": 0, "x": 1}, random={"g": 1}, sigma=None)
    assert info.value.parameter == "sigma"
    with pytest.raises(ParameterError) as info:
        glmmsim.Model("y ~ x + (1 | g)", fixed={"Intercept": 0, "x": 1}, random={}, sigma=1)
    assert info.value.path == ("random",) and info.value.key == "g"
    with pytest.raises(FormulaError) as info:
        glmmsim.Model("y ~ x[0]", sigma=1)
    assert info.value.parameter == "formula" and info.value.term == "x[0]"
    assert issubclass(FormulaError, GlmmsimError)


def test_data_errors_carry_column_and_row():
    import numpy as np
    import pandas as pd

    import glmmsim

    m = glmmsim.Model("y ~ x + (1 | g)", fixed={"Intercept": 0, "x": 1}, random={"g": 1}, sigma=1)
    data = pd.DataFrame({"x": [0.0, np.nan, 1.0], "g": ["a", "b", "c"]}, index=[10, 11, 12])
    with pytest.raises(DataError) as info:
        m.simulate(data, seed=1)
    assert (info.value.column, info.value.row) == ("x", 11)
    with pytest.raises(DataError) as info:
        m.simulate(data.drop(columns="x"), seed=1)
    assert info.value.column == "x"
