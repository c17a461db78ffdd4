"""semantics='lme4': glmmsim.Model underneath, a persistent population, noise from run's seed."""

import numpy as np
import pandas as pd
import pytest
from autora.variable import IV

import glmmsim
from glmmsim import ParameterError
from glmmsim.autora import lmm_experiment

FORMULA = "y ~ x1 + (x1|subject)"
FIXED = {"Intercept": 1.0, "x1": 2.0}
RANDOM = {"subject": {"1": 0.5, "x1": 0.3}}


@pytest.fixture
def conditions():
    return pd.DataFrame({"x1": np.tile([0.0, 0.5, 1.0], 4), "subject": np.repeat([1, 2, 3, 4], 3)})


def make(**kwargs):
    args = dict(formula=FORMULA, fixed_effects=FIXED, random_effects=RANDOM, random_state=11, semantics="lme4")
    args.update(kwargs)
    return lmm_experiment(**args)


def test_ground_truth_is_the_models_conditional_mean(conditions):
    model = glmmsim.Model(FORMULA, fixed=FIXED, random={"subject": {"Intercept": 0.5, "x1": 0.3}}, sigma=1.0, seed=11)
    truth = make().ground_truth(conditions)
    np.testing.assert_array_equal(truth["y"].to_numpy(), model.predict(conditions).to_numpy())
    assert list(truth.columns) == ["x1", "subject", "y"]


def test_subjects_persist_across_calls_and_seeded_runs_repeat(conditions):
    experiment = make()
    first = experiment.ground_truth(conditions)
    experiment.run(conditions)  # unseeded runs must not disturb the population
    pd.testing.assert_frame_equal(experiment.ground_truth(conditions, random_state=5), first)
    a = experiment.run(conditions, added_noise=0.2, random_state=3)
    b = experiment.run(conditions, added_noise=0.2, random_state=3)
    c = experiment.run(conditions, added_noise=0.2, random_state=4)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["y"], c["y"])
    # a subject's effect does not depend on which other rows are present
    alone = experiment.ground_truth(conditions[conditions["subject"] == 3])
    np.testing.assert_array_equal(alone["y"].to_numpy(), first.loc[alone.index, "y"].to_numpy())


def test_same_factory_seed_same_population_other_seed_other_population(conditions):
    np.testing.assert_array_equal(make().ground_truth(conditions)["y"], make().ground_truth(conditions)["y"])
    assert not np.allclose(make().ground_truth(conditions)["y"], make(random_state=12).ground_truth(conditions)["y"])


def test_added_noise_is_the_residual_sigma(conditions):
    experiment = make(fixed_effects={"Intercept": 0.0, "x1": 0.0}, random_effects={"subject": {"1": 0.0, "x1": 0.0}})
    big = pd.concat([conditions] * 500, ignore_index=True)
    y = experiment.run(big, added_noise=2.0, random_state=1)["y"]
    # sample SD of n normal draws: standard error about sigma / sqrt(2 (n - 1)); allow 4 SE
    n = len(big)
    assert abs(y.std() - 2.0) < 4 * 2.0 / np.sqrt(2 * (n - 1))
    pd.testing.assert_frame_equal(experiment.run(conditions, added_noise=0.0), experiment.ground_truth(conditions))


def test_unseeded_population_is_fixed_for_the_experiments_lifetime(conditions):
    experiment = make(random_state=None)
    assert isinstance(experiment.params["random_state"], int)
    pd.testing.assert_frame_equal(experiment.ground_truth(conditions), experiment.ground_truth(conditions))
    rebuilt = experiment.factory_function(**experiment.params)
    pd.testing.assert_frame_equal(rebuilt.ground_truth(conditions), experiment.ground_truth(conditions))


def test_correlated_sd_corr_form_with_one_key(conditions):
    random = {"subject": {"sd": {"1": 0.5, "x1": 0.3}, "corr": {("1", "x1"): 0.4}}}
    experiment = make(random_effects=random)
    spec = glmmsim.Model(
        FORMULA, fixed=FIXED, random={"subject": {"sd": {"Intercept": 0.5, "x1": 0.3}, "corr": {("Intercept", "x1"): 0.4}}},
        sigma=1.0, seed=11,
    )
    np.testing.assert_array_equal(experiment.ground_truth(conditions)["y"], spec.predict(conditions))


def test_variables_come_from_the_model():
    experiment = lmm_experiment(
        "rt ~ 1 + x1 * cond + (1 + x1 | subject) + (1 | item)",
        fixed_effects={"Intercept": 1.0, "x1": 1.0, "cond[T.b]": 0.5, "x1:cond[T.b]": 0.1},
        random_effects={"subject": {"1": 0.5, "x1": 0.2}, "item": 0.3},
        random_state=1, semantics="lme4",
    )
    assert [v.name for v in experiment.variables.independent_variables] == ["x1", "cond", "subject", "item"]
    assert [v.name for v in experiment.variables.dependent_variables] == ["rt"]


def test_family_passes_through(conditions):
    experiment = make(
        formula="y ~ x1 + (1|subject)", fixed_effects={"Intercept": 0.5, "x1": 1.0},
        random_effects={"subject": 0.5}, family="poisson",
    )
    counts = experiment.run(conditions, random_state=2)["y"]
    assert (counts >= 0).all() and (counts == counts.round()).all()
    assert (experiment.ground_truth(conditions)["y"] > 0).all()


def test_missing_parameters_raise_parameter_error(conditions):
    with pytest.raises(ParameterError, match="subject"):
        make(random_effects={})
    with pytest.raises(ParameterError, match="x1"):
        make(fixed_effects={"Intercept": 1.0}).run(conditions)
    with pytest.raises(ParameterError, match="twice"):
        make(fixed_effects={"1": 1.0, "Intercept": 1.0, "x1": 2.0})


def test_family_needs_lme4_semantics():
    with pytest.raises(ParameterError, match="semantics='lme4'"):
        lmm_experiment("y ~ x1", {"Intercept": 0, "x1": 1}, family="poisson")


def test_lme4_mode_reads_x_given_slope_with_an_intercept(conditions):
    """(x1|subject) has a random intercept under lme4: subjects differ at x1 = 0."""
    truth = make(random_effects={"subject": {"1": 1.0, "x1": 0.0}}).ground_truth(conditions)
    at_zero = truth[truth["x1"] == 0.0]["y"]
    assert at_zero.nunique() == 4


LME4 = dict(
    formula="y ~ x1 + (1 + x1|subject)",
    fixed_effects={"Intercept": 1.0, "x1": 2.0},
    random_effects={"subject": {"1": 0.5, "x1": 0.3}},
    random_state=5,
    semantics="lme4",
)


def test_family_missing_another_parameter_names_it_not_sigma():
    """added_noise supplies sigma; exgaussian without tau must ask for tau."""
    with pytest.raises(ParameterError, match="'tau'"):
        lmm_experiment(**LME4, family="exgaussian")


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"random_effects": {}}, r"^random_effects has no spec .*random_effects=\{"),
        ({"random_effects": {"subject": {"1": 0.5, "x1": 0.3}, "item": 0.2}}, r"^random_effects names .*'item'"),
    ],
)
def test_lme4_build_errors_use_the_experiments_argument_names(change, fragment):
    with pytest.raises(ParameterError, match=fragment):
        lmm_experiment(**{**LME4, **change})


def test_lme4_run_errors_use_the_experiments_argument_names(conditions):
    experiment = lmm_experiment(**{**LME4, "fixed_effects": {"Intercept": 1.0}})
    with pytest.raises(ParameterError, match=r"^fixed_effects has no value for .*'x1'"):
        experiment.run(conditions)
    with pytest.raises(ParameterError, match=r"^fixed_effects has no value"):
        experiment.ground_truth(conditions)
    no_slope_sd = lmm_experiment(**{**LME4, "random_effects": {"subject": {"1": 0.5}}})
    with pytest.raises(ParameterError, match=r"^random_effects\['subject'\] has no value for .*'x1'"):
        no_slope_sd.run(conditions)


def _with_condition(order):
    return lmm_experiment(
        "y ~ cond + (1|subject)",
        fixed_effects={"Intercept": 1.0, "cond[T.b]": 2.0},
        random_effects={"subject": 0.5},
        X=[IV(name="cond", allowed_values=order), IV(name="subject", allowed_values=[1, 2])],
        random_state=3,
        semantics="lme4",
    )


@pytest.mark.parametrize("order", [["a", "b"], ["b", "a"]])
def test_text_levels_from_x_fix_the_coefficients_of_any_batch(order):
    """A sampled batch holding only one level of cond used to lose the cond[T.b] coefficient."""
    experiment = _with_condition(order)
    grid = experiment.domain()
    full = experiment.ground_truth(grid)
    only_b = experiment.ground_truth(grid[grid["cond"] == "b"])
    np.testing.assert_array_equal(only_b["y"].to_numpy(), full.loc[only_b.index, "y"].to_numpy())
    # the reference level is the sorted first one, as without X: b lies 2.0 above a
    a_rows, b_rows = full[full["cond"] == "a"], full[full["cond"] == "b"]
    np.testing.assert_allclose(b_rows["y"].to_numpy() - a_rows["y"].to_numpy(), 2.0)
