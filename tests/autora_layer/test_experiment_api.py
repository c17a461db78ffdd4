"""The SyntheticExperimentCollection contract: params, variables, X, domain, inputs, errors, registry."""

import copy
import warnings

import numpy as np
import pandas as pd
import pytest
from autora.experiment_runner.synthetic.utilities import SyntheticExperimentCollection, retrieve
from autora.variable import IV, VariableCollection

from glmmsim import DataError, FormulaError, GlmmsimWarning, ParameterError
from glmmsim.autora import lmm_experiment

FORMULA = "y ~ x1 + (1+x1|subject)"
FIXED = {"Intercept": 1.0, "x1": 2.0}
RANDOM = {"subject": {"Intercept": 0.5, "x1": 0.3}}


@pytest.fixture(params=["autora", "lme4"])
def semantics(request):
    return request.param


@pytest.fixture
def conditions():
    return pd.DataFrame({"subject": np.repeat(["a", "b", "c"], 2), "x1": np.tile([0.0, 1.0], 3)}, index=list("uvwxyz"))


def quiet(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GlmmsimWarning)
        return lmm_experiment(*args, **kwargs)


def test_returns_autoras_collection_with_every_field(semantics):
    e = quiet(FORMULA, FIXED, RANDOM, random_state=1, name="demo", semantics=semantics)
    assert isinstance(e, SyntheticExperimentCollection)
    assert isinstance(e.variables, VariableCollection)
    assert e.name == "demo" and e.factory_function is lmm_experiment and e.description
    assert all(callable(f) for f in (e.run, e.ground_truth, e.domain, e.plotter))


def test_params_rebuild_an_identical_experiment(semantics, conditions):
    X = [IV(name="x1", allowed_values=[0.0, 1.0])]
    e = quiet(FORMULA, FIXED, RANDOM, X=X, random_state=4, semantics=semantics)
    assert set(e.params) >= {"formula", "fixed_effects", "random_effects", "X", "random_state", "name", "semantics"}
    rebuilt = quiet(**e.params)
    pd.testing.assert_frame_equal(rebuilt.run(conditions, random_state=9), e.run(conditions, random_state=9))
    assert rebuilt.variables == e.variables


def test_unseeded_faithful_experiment_records_its_seed(conditions):
    e = quiet(FORMULA, FIXED, RANDOM)
    twin = quiet(**e.params)
    pd.testing.assert_frame_equal(twin.run(conditions), e.run(conditions))


def test_callers_dicts_are_copied_and_never_mutated(semantics, conditions):
    fixed, random = copy.deepcopy(FIXED), copy.deepcopy(RANDOM)
    frame = conditions.copy()
    e = quiet(FORMULA, fixed, random, random_state=2, semantics=semantics)
    before = e.run(frame, random_state=1)
    fixed["x1"] = 100.0
    random["subject"]["x1"] = 50.0
    pd.testing.assert_frame_equal(e.run(frame, random_state=1), before)
    assert e.params["fixed_effects"] == FIXED
    e.ground_truth(frame)
    pd.testing.assert_frame_equal(frame, conditions)
    assert fixed == {"Intercept": 1.0, "x1": 100.0}


def test_output_keeps_index_and_column_order(semantics, conditions):
    out = quiet(FORMULA, FIXED, RANDOM, random_state=2, semantics=semantics).run(conditions)
    assert list(out.index) == list(conditions.index)
    assert list(out.columns) == ["subject", "x1", "y"]


@pytest.mark.parametrize(
    "formula, random, expected",
    [
        ("y ~ 1 + x1 + (1|subject)", {"subject": {}}, ["x1", "subject"]),
        ("y ~ 0 + x2 + x1 + (0 + x1|g)", {"g": {}}, ["x1", "x2", "g"]),
        ("rt ~ 1", None, []),
    ],
)
def test_faithful_ivs_are_exactly_the_used_columns(formula, random, expected):
    e = quiet(formula, random_effects=random)
    assert [v.name for v in e.variables.independent_variables] == expected


def test_x_describes_a_subset_and_leads_the_order():
    X = [IV(name="subject", allowed_values=["a", "b"])]
    e = quiet(FORMULA, FIXED, RANDOM, X=X)
    ivs = e.variables.independent_variables
    assert [v.name for v in ivs] == ["subject", "x1"]
    assert list(ivs[0].allowed_values) == ["a", "b"] and ivs[1].allowed_values is None


def test_x_with_an_unknown_name_is_an_error(semantics):
    with pytest.raises(ParameterError, match="'x11'.*Did you mean 'x1'"):
        quiet(FORMULA, FIXED, RANDOM, X=[IV(name="x11")], semantics=semantics)


def test_domain_is_the_full_grid_and_run_accepts_it_and_arrays(semantics):
    X = [IV(name="x1", allowed_values=[0.0, 0.5, 1.0]), IV(name="subject", allowed_values=[1, 2])]
    e = quiet(FORMULA, FIXED, RANDOM, X=X, random_state=3, semantics=semantics)
    grid = e.domain()
    assert grid.shape == (6, 2) and list(grid.columns) == ["x1", "subject"]
    assert set(map(tuple, grid.to_numpy().tolist())) == {(x, s) for x in (0.0, 0.5, 1.0) for s in (1, 2)}
    from_frame = e.ground_truth(grid, random_state=5)
    from_array = e.ground_truth(grid.to_numpy(), random_state=5)
    np.testing.assert_array_equal(from_frame["y"].to_numpy(), from_array["y"].to_numpy())


def test_domain_names_the_iv_without_allowed_values():
    e = quiet(FORMULA, FIXED, RANDOM, X=[IV(name="x1", allowed_values=[0, 1])])
    with pytest.raises(ParameterError, match="'subject'"):
        e.domain()


def test_missing_group_column_is_a_data_error_not_a_key_error(semantics, conditions):
    e = quiet(FORMULA, FIXED, RANDOM, random_state=1, semantics=semantics)
    with pytest.raises(DataError, match="'subject'"):
        e.run(conditions.drop(columns="subject"))


def test_missing_random_group_entry_is_a_parameter_error():
    with pytest.raises(ParameterError, match="no entry for grouping column 'subject'"):
        lmm_experiment(FORMULA, FIXED, {})


def test_unknown_keys_are_parameter_errors():
    with pytest.raises(ParameterError, match="'x11'.*Did you mean 'x1'"):
        lmm_experiment(FORMULA, {"Intercept": 1.0, "x11": 1.0}, RANDOM)
    with pytest.raises(ParameterError, match="'subjekt'"):
        lmm_experiment(FORMULA, FIXED, {"subject": {"x1": 1.0}, "subjekt": {"x1": 1.0}})
    with pytest.raises(ParameterError, match="'x3'"):
        lmm_experiment(FORMULA, FIXED, {"subject": {"x3": 1.0}})
    with pytest.raises(ParameterError, match=">= 0"):
        lmm_experiment(FORMULA, FIXED, {"subject": {"x1": -1.0}})


@pytest.mark.parametrize(
    "formula, fragment",
    [
        ("y ~ x1:x2", "interactions"),
        ("y ~ x1 - 1", "'- 1'"),
        ("y ~ x1 + (x1||g)", "'||'"),
        ("y ~ (1|a/b)", "nesting"),
        ("y ~ log(x1)", "column names"),
        ("y ~ x1 ~ x2", "exactly one '~'"),
    ],
)
def test_formulas_the_original_misreads_are_formula_errors(formula, fragment):
    with pytest.raises(FormulaError, match=fragment):
        lmm_experiment(formula)


def test_warnings_are_issued_once_per_experiment(conditions):
    with pytest.warns(GlmmsimWarning) as record:
        e = lmm_experiment("y ~ x1 + (x1|subject)", {"Intercept": 0.0, "x1": 1.0}, {"subject": {}})
        e.run(conditions)
        e.run(conditions)
    messages = [str(w.message) for w in record if issubclass(w.category, GlmmsimWarning)]
    assert len(messages) == 2
    assert "no random intercept" in messages[0]
    assert "default 0.5" in messages[1] and "'x1' for 'subject'" in messages[1]


def test_default_sd_warning_points_at_the_ignored_one_key():
    with pytest.warns(GlmmsimWarning) as record:
        lmm_experiment("y ~ (1|g)", {"Intercept": 0.0}, {"g": {"1": 0.2}})
    assert any("key '1' is read only for a spaced '1'" in str(w.message) for w in record)


def test_zero_noise_still_draws_like_autora(conditions):
    """ground_truth consumes the generator's noise draws, so later unseeded runs match autora's."""
    e = quiet(FORMULA, FIXED, RANDOM, random_state=8)
    e.ground_truth(conditions)
    second = e.run(conditions)
    f = quiet(FORMULA, FIXED, RANDOM, random_state=8)
    f.run(conditions, added_noise=0.7)
    pd.testing.assert_frame_equal(f.run(conditions), second)


def test_bad_noise_and_semantics(conditions):
    with pytest.raises(ParameterError, match="added_noise"):
        quiet(FORMULA, FIXED, RANDOM).run(conditions, added_noise=-1)
    with pytest.raises(ParameterError, match="Did you mean 'lme4'"):
        lmm_experiment(FORMULA, FIXED, RANDOM, semantics="lme")


def test_registered_in_autoras_inventory(conditions):
    e = retrieve("lmm_experiment", formula="y ~ x1", fixed_effects={"Intercept": 0.0, "x1": 1.0}, random_state=1)
    assert e.factory_function is lmm_experiment
    assert e.ground_truth(conditions)["y"].tolist() == conditions["x1"].tolist()
