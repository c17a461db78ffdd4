"""Tests of glmmsim.plot: every plot renders to PNG and holds the expected artists."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure

import glmmsim
from glmmsim.design import crossed
from glmmsim.errors import DataError, ParameterError
from glmmsim.plot import caterpillar, interaction, pairs, plot_model, spaghetti

FIXED = {"Intercept": 1.0, "x": 0.5, "cond[T.b]": 0.4}


@pytest.fixture(scope="module")
def model():
    return glmmsim.Model(
        "y ~ 1 + x + cond + (1 + x | subject) + (1 | item)",
        fixed=FIXED,
        random={"subject": {"sd": {"Intercept": 1.0, "x": 0.3}, "corr": {("Intercept", "x"): 0.5}}, "item": 0.3},
        sigma=0.5,
        seed=1,
    )


@pytest.fixture(scope="module")
def data(model):
    conds = crossed(20, 6, within={"cond": ["a", "b"]}, covariates={"x": {"per": "trial"}}, seed=2)
    return model.simulate(conds, seed=3)


def save(fig: Figure, tmp_path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    fig.savefig(path, dpi=50)
    assert path.stat().st_size > 1000
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


def scatters(ax):
    return [c for c in ax.collections if isinstance(c, PathCollection)]


def test_spaghetti_lines_and_population(model, data, tmp_path):
    fig = spaghetti(model, data, x="x", max_lines=8, seed=0)
    save(fig, tmp_path, "spaghetti")
    ax = fig.axes[0]
    assert len(ax.lines) == 8 + 1  # 8 sampled subjects + population line
    assert len(scatters(ax)) == 8
    # population line: fixed part at the first row's condition, random effects zero
    pop = ax.lines[-1]
    xs, ys = pop.get_data()
    cond_b = FIXED["cond[T.b]"] if data["cond"].iloc[0] == "b" else 0.0
    assert np.allclose(ys, FIXED["Intercept"] + cond_b + FIXED["x"] * xs)


def test_spaghetti_subject_line_uses_its_own_effects(model, data):
    fig = spaghetti(model, data, x="x", max_lines=None, points=False)
    ax = fig.axes[0]
    assert len(ax.lines) == 20 + 1 and not scatters(ax)
    effects = model.random_effects(data)["subject"]
    xs, ys = ax.lines[0].get_data()  # subjects are drawn in order of appearance: s001 first
    slope = (ys[-1] - ys[0]) / (xs[-1] - xs[0])
    assert slope == pytest.approx(FIXED["x"] + effects.loc["s001", "x"])


def test_spaghetti_simulates_when_response_missing(model, data):
    fig = plot_model(model, data.drop(columns="y"), kind="spaghetti", max_lines=3)
    assert len(fig.axes[0].lines) == 4


def test_interaction_cell_means(model, data, tmp_path):
    fig = interaction(model, data, x="cond")
    save(fig, tmp_path, "interaction")
    ax = fig.axes[0]
    assert len(ax.containers) == 1  # a single line (no second categorical predictor)
    _, ys = ax.lines[0].get_data()
    expected = data.groupby("cond", observed=True)["y"].mean().to_numpy()
    assert np.allclose(ys, expected)


def test_interaction_with_trace(model, data):
    d = data.assign(group=np.where(data["subject"].astype(str) < "s011", "g1", "g2"))
    fig = interaction(model, d, x="cond", trace="group")
    assert len(fig.axes[0].containers) == 2
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["group = g1", "group = g2"]


def test_caterpillar_panels(model, data, tmp_path):
    fig = caterpillar(model, data)
    save(fig, tmp_path, "caterpillar")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["subject: (Intercept)", "subject: x", "item: (Intercept)"]
    counts = [len(scatters(ax)[0].get_offsets()) for ax in fig.axes]
    assert counts == [20, 20, 6]
    values = scatters(fig.axes[0])[0].get_offsets()[:, 0]
    assert np.all(np.diff(values) >= 0)  # sorted
    assert np.allclose(np.sort(model.random_effects(data)["subject"]["Intercept"]), values)


def test_pairs_matrix(model, data, tmp_path):
    fig = pairs(model, data)
    save(fig, tmp_path, "pairs")
    assert len(fig.axes) == 4
    off = fig.axes[1]
    assert len(scatters(off)[0].get_offsets()) == 20
    assert "model 0.50" in off.get_title()
    assert len(fig.axes[0].patches) > 0  # histogram on the diagonal


def test_model_plot_delegates(model, data):
    fig = model.plot("caterpillar", data, factor="item")
    assert len(fig.axes) == 1


def test_plot_errors(model, data):
    with pytest.raises(ParameterError, match="Did you mean 'pairs'"):
        plot_model(model, data, kind="pair")
    with pytest.raises(ParameterError, match="Did you mean 'subject'"):
        caterpillar(model, data, factor="subjct")
    with pytest.raises(DataError, match="x='z' is not a column"):
        spaghetti(model, data, x="z")
    intercept_only = glmmsim.Model("y ~ 1 + (1 | g)", fixed={"Intercept": 0}, random={"g": 1}, sigma=1)
    with pytest.raises(ParameterError, match="2 or more coefficients"):
        pairs(intercept_only, pd.DataFrame({"g": ["a", "b"]}))
    m = glmmsim.Model("y ~ 1 + cond + (1 | g)", fixed={"Intercept": 0, "cond[T.b]": 1}, random={"g": 1}, sigma=1)
    with pytest.raises(ParameterError, match="needs a numeric predictor"):
        spaghetti(m, pd.DataFrame({"cond": ["a", "b"], "g": ["u", "v"]}))


def test_pairs_labels_use_lme4_names(model, data):
    fig = pairs(model, data, factor="subject")
    labels = [ax.get_xlabel() for ax in fig.axes if ax.get_xlabel()]
    assert labels == ["(Intercept)", "x"]


def test_caterpillar_labels_every_level_up_to_20_then_thins_them(model, data):
    fig = caterpillar(model, data, factor=["subject", "item"])
    assert len(fig.axes[0].get_yticklabels()) == 20  # 20 subjects still fit
    assert len(fig.axes[2].get_yticklabels()) == 6
    many = crossed(45, 2, covariates={"x": {"per": "trial"}}, within={"cond": ["a", "b"]}, seed=1)
    fig = caterpillar(model, many, factor="subject")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == 15  # every 3rd of 45: legible, and each still names its level
    ranked = model.random_effects(many)["subject"]["Intercept"].sort_values().index
    assert labels == list(ranked[::3])
    assert list(ax.get_yticks()) == list(range(0, 45, 3))
    assert ax.get_ylabel() == "45 levels, sorted (1 in 3 named)"


def test_spaghetti_population_label_names_held_values(model, data):
    fig = spaghetti(model, data, x="x", factor="subject", max_lines=3)
    label = fig.axes[0].get_legend().get_texts()[0].get_text()
    first = data["cond"].iloc[0]
    assert label == f"population (random effects = 0; cond = {first})"
    fig = spaghetti(model, data, x="x", factor="subject", max_lines=3, at={"cond": "b"})
    assert fig.axes[0].get_legend().get_texts()[0].get_text().endswith("cond = b)")


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_spaghetti_rejects_bad_max_lines(model, data, bad):
    with pytest.raises(ParameterError, match="max_lines must be a whole number >= 1"):
        spaghetti(model, data, x="x", max_lines=bad)


def test_plot_model_names_an_option_the_plot_does_not_take():
    m = glmmsim.Model("y ~ 1 + (1 | g)", fixed={"Intercept": 0}, random={"g": 1}, sigma=1, seed=1)
    data = pd.DataFrame({"g": ["a", "b", "c"]})
    with pytest.raises(glmmsim.InputTypeError, match="no option 'fator'.*Did you mean 'factor'"):
        plot_model(m, data, kind="caterpillar", fator="g")


# ----------------------------------------------------------------- regressions (plots a newcomer tried)


def test_figures_are_drawn_at_print_resolution(model, data):
    from glmmsim.plot.model_plots import DPI

    assert 150 <= DPI <= 200
    for fig in (spaghetti(model, data, x="x"), interaction(model, data), caterpillar(model, data), pairs(model, data)):
        assert fig.dpi == DPI


def test_spaghetti_with_a_categorical_x_says_to_use_interaction(model, data):
    with pytest.raises(ParameterError, match="x='cond' is categorical; use kind='interaction' with x='cond'"):
        spaghetti(model, data, x="cond")
    with pytest.raises(ParameterError, match="x='trial' is not a predictor"):
        spaghetti(model, data, x="trial")


@pytest.fixture(scope="module")
def schools():
    from glmmsim.design import nested

    model = glmmsim.Model(
        "score ~ 1 + ses + (1 | school) + (1 + ses | school:class)",
        fixed={"Intercept": 50, "ses": 4},
        random={"school": 5.0, "school:class": {"Intercept": 3.0, "ses": 2.0}},
        sigma=10, seed=5,
    )
    conds = nested({"school": 6, "class": 3, "pupil": 5}, covariates={"ses": {"per": "pupil"}}, labels="local", seed=1)
    return model, model.simulate(conds, seed=2)


def test_spaghetti_of_an_interaction_factor_draws_its_levels_not_the_first_column(schools):
    model, data = schools
    fig = spaghetti(model, data, x="ses", factor="school:class", max_lines=None, points=False)
    ax = fig.axes[0]
    assert ax.get_title() == "score by ses: 18 school:class levels"  # 6 schools x 3 classes, not 6
    assert len(ax.lines) == 18 + 1
    # labels="local": class c001 exists in every school, so each line must be one school's class
    effects = model.random_effects(data)["school:class"]
    slopes = sorted((ys[-1] - ys[0]) / (xs[-1] - xs[0]) for xs, ys in (line.get_data() for line in ax.lines[:-1]))
    np.testing.assert_allclose(slopes, sorted(4 + effects["ses"]))
    fig = spaghetti(model, data, x="ses", factor="school:class", max_lines=5)
    assert fig.axes[0].get_title() == "score by ses: 5 of 18 school:class levels"


def test_interaction_refuses_an_x_with_many_levels_and_suggests_spaghetti(model, data):
    with pytest.raises(ParameterError, match=r"x='x' \(a numeric column\) has 240 distinct values.*kind='spaghetti'"):
        interaction(model, data, x="x")
    many = data.assign(group=[f"g{i % 11}" for i in range(len(data))])
    with pytest.raises(ParameterError, match=r"trace='group' .* has 11 distinct values \(at most 10\)"):
        interaction(model, many, x="cond", trace="group")


def test_interaction_error_bars_are_ses_of_subject_means(model, data):
    fig = interaction(model, data, x="cond")
    ax = fig.axes[0]
    assert ax.get_ylabel() == "mean y (± 1 SE of subject means)"
    subject_means = data.groupby(["cond", "subject"], observed=True)["y"].mean().unstack("subject")
    expected_se = subject_means.std(axis=1) / np.sqrt(subject_means.shape[1])
    bars = ax.containers[0].lines[2][0].get_segments()
    np.testing.assert_allclose([seg[1, 1] - seg[0, 1] for seg in bars], 2 * expected_se.to_numpy())
    np.testing.assert_allclose(ax.lines[0].get_data()[1], subject_means.mean(axis=1).to_numpy())
    # trial-level SEs are smaller here (trials of one subject are correlated) and labelled as such
    naive = interaction(model, data, x="cond", factor="").axes[0]
    assert naive.get_ylabel() == "mean y (± 1 SE, observations as independent)"
    naive_bars = naive.containers[0].lines[2][0].get_segments()
    assert all((n[1, 1] - n[0, 1]) < (c[1, 1] - c[0, 1]) for n, c in zip(naive_bars, bars))
    by_item = interaction(model, data, x="cond", factor="item").axes[0]
    assert by_item.get_ylabel() == "mean y (± 1 SE of item means)"


def test_pairs_of_a_one_coefficient_factor_says_what_to_use(model, data):
    with pytest.raises(ParameterError, match=r"factor='item' has one coefficient \('Intercept'\); use kind='caterpillar'.*'subject'"):
        pairs(model, data, factor="item")


def test_pairs_histograms_use_automatic_bins_between_5_and_30():
    from glmmsim.plot.model_plots import _hist_bins

    rng = np.random.default_rng(0)
    for n in (8, 30, 300, 100_000):
        bins = _hist_bins(rng.normal(size=n))
        count = bins if isinstance(bins, int) else len(bins) - 1
        assert 5 <= count <= 30
    assert _hist_bins(np.zeros(10)) == 5


def test_panel_titles_use_lme4_names_for_sum_contrasts_of_text_and_logical_columns():
    m = glmmsim.Model(
        "y ~ 1 + (C(cond, Sum) + flag | g)",
        fixed={"Intercept": 0},
        random={"g": {"(Intercept)": 1.0, "cond1": 0.5, "cond2": 0.4, "flagTRUE": 0.3}},
        sigma=1, seed=1,
    )
    data = pd.DataFrame({"cond": list("abc") * 4, "flag": [True, False] * 6, "g": list("uuvvwwxxyyzz")})
    titles = [ax.get_title() for ax in caterpillar(m, data).axes]
    assert titles == ["g: (Intercept)", "g: cond1", "g: cond2", "g: flagTRUE"]
