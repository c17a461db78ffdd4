"""plotter output, and a real AutoRA closed loop driving the experiment in both modes."""

import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from autora.experimentalist.grid import pool  # noqa: E402
from autora.experimentalist.random import sample  # noqa: E402
from autora.state import Delta, StandardState, estimator_on_state, on_state  # noqa: E402
from autora.variable import IV  # noqa: E402
from sklearn.linear_model import LinearRegression  # noqa: E402

from glmmsim import GlmmsimWarning  # noqa: E402
from glmmsim.autora import lmm_experiment  # noqa: E402
from glmmsim.autora._plot import choose_roles  # noqa: E402


def build(semantics, **kwargs):
    X = [
        IV(name="x1", allowed_values=np.linspace(0, 1, 6)),
        IV(name="x2", allowed_values=[-1.0, 0.0, 1.0]),
        IV(name="cond", allowed_values=["a", "b"]),
        IV(name="subject", allowed_values=list(range(12))),
    ]
    fixed = {"Intercept": 1.0, "x1": 2.0, "x2": -0.5}
    if semantics == "lme4":
        formula = "y ~ x1 + x2 + cond + (1 + x1|subject)"
        fixed["cond[T.b]"] = 0.7
        random = {"subject": {"1": 0.5, "x1": 0.4}}
    else:
        formula, X = "y ~ x1 + x2 + (1+x1|subject)", [x for x in X if x.name != "cond"]
        random = {"subject": {"Intercept": 0.5, "x1": 0.4}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GlmmsimWarning)
        return lmm_experiment(formula, fixed, random, X=X, random_state=3, semantics=semantics, **kwargs)


@pytest.mark.parametrize("semantics", ["autora", "lme4"])
def test_plotter_returns_a_figure_with_lines_per_subject_and_model_overlay(semantics, tmp_path):
    experiment = build(semantics)
    grid = experiment.domain()
    truth = experiment.ground_truth(grid, random_state=0)
    numeric = grid.assign(cond=(grid["cond"] == "b").astype(float)) if "cond" in grid else grid
    fitted = LinearRegression().fit(numeric, truth["y"])

    class OnRaw:  # the plotter hands over raw IV frames; encode the category for the regression
        def predict(self, X):
            return fitted.predict(X.assign(cond=(X["cond"] == "b").astype(float)) if "cond" in X else X)

    fig = experiment.plotter(model=OnRaw())
    axes = fig.get_axes()
    assert len(axes) == (2 if semantics == "lme4" else 1)  # one panel per level of cond
    lines = axes[0].get_lines()
    assert len(lines) == 2 * 8  # 8 of the 12 subjects, truth and model each
    path = tmp_path / f"plot_{semantics}.png"
    fig.savefig(path)
    assert path.stat().st_size > 10_000
    plt.close(fig)


def test_plotter_handles_one_and_zero_ivs():
    one = lmm_experiment("y ~ x", {"Intercept": 0.0, "x": 1.0}, X=[IV(name="x", allowed_values=[0, 1, 2])])
    fig = one.plotter()
    np.testing.assert_array_equal(fig.get_axes()[0].get_lines()[0].get_ydata(), [0.0, 1.0, 2.0])
    plt.close(fig)
    none = lmm_experiment("y ~ 1", {"Intercept": 2.0})
    fig = none.plotter()
    assert fig.get_axes()[0].get_lines()[0].get_ydata().tolist() == [2.0]
    plt.close(fig)


def test_roles_hold_extra_continuous_ivs():
    assert choose_roles(["a", "b", "c", "g"], ["g"], ["g"]) == ("a", "g", None, ["b", "c"])


@pytest.mark.parametrize("semantics", ["autora", "lme4"])
def test_closed_loop_with_autora_state(semantics):
    experiment = build(semantics)
    variables = experiment.variables

    grid_pool = on_state(pool, output=["conditions"])
    random_sample = on_state(sample, output=["conditions"])

    @on_state()
    def run_experiment(conditions, random_state=None):
        data = experiment.run(conditions, added_noise=0.1, random_state=random_state)
        if "cond" in data:  # LinearRegression needs numbers: dummy-code the text IV
            data = data.assign(cond=(data["cond"] == "b").astype(float))
        return Delta(experiment_data=data)

    theorist = estimator_on_state(LinearRegression())
    state = StandardState(variables=variables)
    for cycle in range(4):
        state = grid_pool(state)
        state = random_sample(state, num_samples=40, random_state=cycle)
        state = run_experiment(state, random_state=100 + cycle)
        state = theorist(state)
    assert len(state.experiment_data) == 4 * 40
    assert len(state.models) == 4
    coef = dict(zip([v.name for v in variables.independent_variables], state.models[-1].coef_.ravel()))
    # Residual SD about sqrt(0.5**2 + 0.4**2 * E[x1**2] + 0.1**2) = 0.57 with E[x1**2] = 0.37; the x1
    # slope's SE is sqrt((0.57 / (sd(x1) sqrt(160)))**2 + 0.4**2 / 12) = 0.17 with sd(x1) = 0.34 (the
    # second part: the 12 subjects' mean slope deviation). Allow 3.5 SE. x2 (sd 0.82, no random
    # slope): SE = 0.57 / (0.82 sqrt(160)) = 0.055; allow 5 SE.
    assert abs(coef["x1"] - 2.0) < 3.5 * 0.17
    assert abs(coef["x2"] + 0.5) < 5 * 0.055


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
