"""Every example of autora-synthetic's lmm_experiment documentation, against its printed table."""

import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest

from glmmsim import GlmmsimWarning
from glmmsim.autora import lmm_experiment


def table(text):
    return textwrap.dedent(text).strip("\n")


def quiet(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GlmmsimWarning)
        return lmm_experiment(*args, **kwargs)


@pytest.fixture
def line5():
    return pd.DataFrame({"x1": np.linspace(0, 1, 5)})


@pytest.fixture
def two_subjects():
    return pd.concat(
        [
            pd.DataFrame({"x1": np.linspace(0, 1, 3), "subject": np.repeat(1, 3)}),
            pd.DataFrame({"x1": np.linspace(0, 1, 3), "subject": np.repeat(2, 3)}),
        ]
    )


def test_intercept_only(line5):
    experiment = lmm_experiment(formula="rt ~ 1", fixed_effects={"Intercept": 1.5})
    assert repr(experiment.ground_truth(conditions=line5)) == table(
        """
             x1   rt
        0  0.00  1.5
        1  0.25  1.5
        2  0.50  1.5
        3  0.75  1.5
        4  1.00  1.5
        """
    )


def test_fixed_slope(line5):
    experiment = lmm_experiment(formula="rt ~ 1 + x1", fixed_effects={"Intercept": 1.0, "x1": 2.0})
    assert repr(experiment.ground_truth(conditions=line5)) == table(
        """
             x1   rt
        0  0.00  1.0
        1  0.25  1.5
        2  0.50  2.0
        3  0.75  2.5
        4  1.00  3.0
        """
    )


def test_implicit_intercept_equals_explicit_zero_intercept(line5):
    e1 = lmm_experiment(formula="rt ~ 1 + x1", fixed_effects={"Intercept": 0.0, "x1": 2.0})
    e2 = quiet(formula="rt ~ x1", fixed_effects={"x1": 2.0})
    assert repr(e1.ground_truth(conditions=line5) == e2.ground_truth(conditions=line5)) == table(
        """
             x1    rt
        0  True  True
        1  True  True
        2  True  True
        3  True  True
        4  True  True
        """
    )


def test_random_intercept(two_subjects):
    experiment = quiet(
        formula="rt ~ 1 + (1|subject) + x1",
        fixed_effects={"Intercept": 1, "x1": 2},
        random_effects={"subject": {"Intercept": 0.1}},
    )
    assert repr(two_subjects) == table(
        """
            x1  subject
        0  0.0        1
        1  0.5        1
        2  1.0        1
        0  0.0        2
        1  0.5        2
        2  1.0        2
        """
    )
    assert repr(experiment.ground_truth(conditions=two_subjects, random_state=42)) == table(
        """
            x1  subject        rt
        0  0.0        1  1.030472
        1  0.5        1  2.030472
        2  1.0        1  3.030472
        0  0.0        2  0.896002
        1  0.5        2  1.896002
        2  1.0        2  2.896002
        """
    )


def test_random_slope_without_intercept(two_subjects):
    experiment = quiet(formula="rt ~ (x1|subject)", random_effects={"subject": {"x1": 0.1}})
    assert repr(experiment.ground_truth(conditions=two_subjects, random_state=42)) == table(
        """
            x1  subject        rt
        0  0.0        1  0.000000
        1  0.5        1  0.015236
        2  1.0        1  0.030472
        0  0.0        2  0.000000
        1  0.5        2 -0.051999
        2  1.0        2 -0.103998
        """
    )


def test_random_and_fixed_slope(two_subjects):
    experiment = quiet(
        formula="rt ~ (x1|subject) + x1",
        fixed_effects={"x1": 1.0},
        random_effects={"subject": {"x1": 0.01}},
    )
    assert repr(experiment.ground_truth(conditions=two_subjects, random_state=42)) == table(
        """
            x1  subject        rt
        0  0.0        1  0.000000
        1  0.5        1  0.501524
        2  1.0        1  1.003047
        0  0.0        2  0.000000
        1  0.5        2  0.494800
        2  1.0        2  0.989600
        """
    )


@pytest.fixture
def crossed():
    experiment = quiet(
        formula="y ~ x1 + x2 + (1 + x1|subject) + (x2|group)",
        fixed_effects={"Intercept": 1.5, "x1": 2.0, "x2": -1.2},
        random_effects={"subject": {"1": 0.5, "x1": 0.3}, "group": {"x2": 0.4}},
    )
    n_samples = 10
    rng = np.random.default_rng(0)
    conditions = pd.DataFrame(
        {
            "x1": rng.normal(0, 1, n_samples),
            "x2": rng.normal(0, 1, n_samples),
            "subject": rng.choice(["A", "B", "C", "D"], n_samples),
            "group": rng.choice(["E", "F", "G", "H"], n_samples),
        }
    )
    return experiment, conditions


def test_crossed_ground_truth(crossed):
    experiment, conditions = crossed
    assert repr(experiment.ground_truth(conditions=conditions, random_state=42)) == table(
        """
                 x1        x2 subject group         y
        0  0.125730 -0.623274       B     H  2.502995
        1 -0.132105  0.041326       A     F  1.258294
        2  0.640423 -2.325031       A     F  5.490146
        3  0.104900 -0.218792       A     H  1.899763
        4 -0.535669 -1.245911       A     H  2.173576
        5  0.361595 -0.732267       C     H  2.923207
        6  1.304000 -0.544259       C     F  4.320545
        7  0.947081 -0.316300       C     G  3.405867
        8 -0.703735  0.411631       B     H -0.578950
        9 -1.265421  1.042513       C     G -1.794523
        """
    )


def test_crossed_run(crossed):
    experiment, conditions = crossed
    assert repr(experiment.run(conditions=conditions, added_noise=0.1, random_state=42)) == table(
        """
                 x1        x2 subject group         y
        0  0.125730 -0.623274       B     H  2.417691
        1 -0.132105  0.041326       A     F  1.346234
        2  0.640423 -2.325031       A     F  5.567925
        3  0.104900 -0.218792       A     H  1.906366
        4 -0.535669 -1.245911       A     H  2.286300
        5  0.361595 -0.732267       C     H  2.969958
        6  1.304000 -0.544259       C     F  4.234616
        7  0.947081 -0.316300       C     G  3.442742
        8 -0.703735  0.411631       B     H -0.674839
        9 -1.265421  1.042513       C     G -1.706678
        """
    )


def test_documented_formulas_warn_about_their_autora_reading(two_subjects):
    with pytest.warns(GlmmsimWarning, match=r"\(x1\|subject\) has no random intercept"):
        lmm_experiment(formula="rt ~ (x1|subject)", fixed_effects={"Intercept": 0.0},
                       random_effects={"subject": {"x1": 0.1}})
    with pytest.warns(GlmmsimWarning, match=r"the '1' of \(1 \+ x1\|subject\) is written with spaces"):
        lmm_experiment(
            formula="y ~ x1 + x2 + (1 + x1|subject) + (x2|group)",
            fixed_effects={"Intercept": 1.5, "x1": 2.0, "x2": -1.2},
            random_effects={"subject": {"1": 0.5, "x1": 0.3}, "group": {"x2": 0.4}},
        )


def test_no_warning_for_a_formula_read_like_lme4(line5):
    with warnings.catch_warnings():
        warnings.simplefilter("error", GlmmsimWarning)
        experiment = lmm_experiment(formula="rt ~ 1 + x1", fixed_effects={"Intercept": 1.0, "x1": 2.0})
        experiment.ground_truth(line5)
