"""Regression tests for problems found in review of the AutoRA layer."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from autora.variable import IV  # noqa: E402

from glmmsim import ParameterError  # noqa: E402
from glmmsim.autora import lmm_experiment  # noqa: E402

LME4 = dict(
    formula="y ~ x1 + (1 + x1|subject)",
    fixed_effects={"Intercept": 1.0, "x1": 2.0},
    random_effects={"subject": {"1": 0.5, "x1": 0.3}},
    random_state=5,
    semantics="lme4",
)


@pytest.fixture
def conditions():
    return pd.DataFrame({"x1": [0.0, 1.0, 0.0, 1.0], "subject": [1, 1, 2, 2]})


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


def test_plot_title_shortens_held_floats():
    experiment = lmm_experiment(
        "y ~ x1 + x2",
        {"Intercept": 0.0, "x1": 1.0, "x2": 1.0},
        X=[IV(name="x1", allowed_values=[0.0, 1.0]), IV(name="x2", allowed_values=np.linspace(0, 1, 4))],
        name="demo",
    )
    fig = experiment.plotter()
    assert fig._suptitle.get_text() == "demo (x2=0.3333)"
    plt.close(fig)


def test_faithful_ground_truth_is_run_without_noise_and_accepts_added_noise():
    import warnings

    import numpy as np
    import pandas as pd

    from glmmsim.autora import lmm_experiment

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = lmm_experiment("rt ~ x1 + (1|subject)", {"Intercept": 1.0, "x1": 2.0}, {"subject": {"Intercept": 0.5}})
    conditions = pd.DataFrame({"x1": np.linspace(0, 1, 6), "subject": np.repeat([1, 2], 3)})
    pd.testing.assert_frame_equal(
        exp.ground_truth(conditions, added_noise=0.2, random_state=3),
        exp.run(conditions, added_noise=0.2, random_state=3),
    )
    pd.testing.assert_frame_equal(
        exp.ground_truth(conditions, random_state=3), exp.run(conditions, added_noise=0.0, random_state=3)
    )
