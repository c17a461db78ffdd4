"""Column kinds a model reads: text in every pandas/Arrow spelling, and the kinds refused up front."""

import numpy as np
import pandas as pd
import pytest

from glmmsim import DataError, Model
from glmmsim.model.columns import is_text, usable_columns

pa = pytest.importorskip("pyarrow")

TEXT_DTYPES = {
    "string": "string",
    "string[pyarrow]": "string[pyarrow]",
    "arrow string": pd.ArrowDtype(pa.string()),
    "arrow large_string": pd.ArrowDtype(pa.large_string()),
    "arrow dictionary": pd.ArrowDtype(pa.dictionary(pa.int32(), pa.string())),
}


def _data():
    return pd.DataFrame(
        {
            "cond": ["a", "b", "c"] * 4,
            "g": [f"g{i}" for i in range(6)] * 2,
            "x": np.linspace(0.0, 1.0, 12),
        }
    )


def _model(formula="y ~ 1 + cond + (1 | g)", fixed=None, random=None, **kw):
    fixed = {"Intercept": 1.0, "condb": 0.5, "condc": -0.5} if fixed is None else fixed
    return Model(formula, fixed=fixed, random=random or {"g": 0.7}, sigma=1.0, seed=3, **kw)


@pytest.mark.parametrize("dtype", list(TEXT_DTYPES.values()), ids=list(TEXT_DTYPES))
def test_text_columns_in_any_dtype_are_categorical_with_the_same_numbers(dtype):
    data = _data()
    expected = _model().simulate(data, seed=1)["y"]
    typed = data.astype({"cond": dtype})
    np.testing.assert_array_equal(_model().simulate(typed, seed=1)["y"], expected)


def test_convert_dtypes_output_simulates_like_the_original():
    data = _data()
    converted = data.convert_dtypes()
    assert is_text(converted["cond"].dtype)  # the dtype formulaic does not take as categorical
    np.testing.assert_array_equal(
        _model().simulate(converted, seed=1)["y"], _model().simulate(data, seed=1)["y"]
    )


@pytest.mark.parametrize("dtype", ["string[pyarrow]", pd.ArrowDtype(pa.string())], ids=["string[pyarrow]", "arrow"])
def test_text_slopes_interactions_and_sum_contrasts_work(dtype):
    data = _data()
    typed = data.astype({"cond": dtype})
    slope = _model(
        "y ~ 1 + x:cond + (0 + cond | g)",
        fixed={"Intercept": 0, "x:conda": 1, "x:condb": 2, "x:condc": 3},
        random={"g": {"conda": 0.5, "condb": 0.4, "condc": 0.3}},
    )
    np.testing.assert_array_equal(slope.predict(typed), slope.predict(data))
    summed = _model("y ~ C(cond, Sum) + (1 | g)", fixed={"Intercept": 0, "cond1": 1, "cond2": -1})
    np.testing.assert_array_equal(summed.predict(typed), summed.predict(data))


def test_missing_text_is_a_data_error_naming_the_column():
    data = _data().astype({"cond": "string[pyarrow]"})
    data.loc[4, "cond"] = pd.NA
    with pytest.raises(DataError, match="'cond'.*missing"):
        _model().simulate(data, seed=1)


def test_text_columns_are_converted_without_touching_the_input():
    data = _data().astype({"cond": "string[pyarrow]"})
    before = data.copy()
    out = usable_columns(data, ["cond", "x"], "the fixed part")
    assert out["cond"].dtype == object and data["cond"].dtype == "string"
    pd.testing.assert_frame_equal(data, before)
    plain = _data()
    assert usable_columns(plain, ["cond", "x"], "the fixed part") is plain  # nothing to convert: no copy


REFUSED = {
    "datetime": (pd.date_range("2024-01-01", periods=12), r"dates.*\.dt\.days.*astype\(str\)"),
    "datetime tz": (pd.date_range("2024-01-01", periods=12, tz="UTC"), "dates"),
    "period": (pd.period_range("2024-01", periods=12, freq="M"), "dates"),
    "arrow timestamp": (pd.array(pd.date_range("2024-01-01", periods=12)).astype(pd.ArrowDtype(pa.timestamp("s"))), "dates"),
    "timedelta": (pd.to_timedelta(np.arange(12), unit="s"), r"time spans.*total_seconds"),
    "arrow duration": (pd.array(pd.to_timedelta(np.arange(12), unit="s")).astype(pd.ArrowDtype(pa.duration("s"))), "time spans"),
    "complex": (np.arange(12) + 1j, r"complex.*np\.real"),
}


@pytest.mark.parametrize("values,message", list(REFUSED.values()), ids=list(REFUSED))
def test_predictors_without_one_numeric_meaning_are_refused_naming_the_column(values, message):
    model = _model("y ~ 1 + x + (1 | g)", fixed={"Intercept": 0, "x": 1})
    data = _data().assign(x=values)
    for call in (model.simulate, model.predict, model.random_effects):
        with pytest.raises(DataError, match=f"column 'x' \\(used by the fixed part\\) .*{message}"):
            call(data)


def test_refused_kinds_in_a_column_the_model_does_not_use_are_fine():
    data = _data().assign(when=pd.date_range("2024-01-01", periods=12), lag=pd.to_timedelta(np.arange(12), unit="s"))
    assert len(_model().simulate(data, seed=1)) == 12


def test_datetime_grouping_levels_are_allowed():
    data = _data().assign(g=pd.date_range("2024-01-01", periods=6).repeat(2))
    assert len(_model().random_effects(data)["g"]) == 6


@pytest.mark.parametrize(
    "bad,kind", [(["b"], "list"), ({"k": 1}, "dict"), ({1, 2}, "set")], ids=["list", "dict", "set"]
)
def test_unhashable_values_in_a_grouping_column_are_a_data_error_naming_the_row(bad, kind):
    data = _data().set_index(pd.Index(range(100, 112)))
    data["g"] = data["g"].astype(object)
    data.at[105, "g"] = bad
    with pytest.raises(DataError, match=f"grouping column 'g' .* holds an? {kind} at row 105"):
        _model().simulate(data, seed=1)
