"""The one design object: built once per data frame, shared by simulation, fits and tests."""

import numpy as np
import pandas as pd
import pytest

import glmmsim
from glmmsim.fit.design import build_design, fit_design
from glmmsim.model.names import CoefficientNames, find_levels


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "cond": np.tile(["a", "b", "c"], 16),
        "x": rng.normal(size=48),
        "t": rng.uniform(1, 3, size=48),
        "g": np.repeat([f"s{i}" for i in range(8)], 6),
    })


def test_a_bound_model_simulates_from_the_design_and_a_fit_views_it_without_copies(data):
    m = glmmsim.Model("y ~ C(cond, Sum) + x + (1 + x | g)", fixed={"Intercept": 1, "cond1": 0.2, "cond2": -0.1, "x": 0.3},
                      random={"g": {"sd": {"Intercept": 0.5, "x": 0.2}}}, sigma=1, seed=2)
    bound = m.bind(data)
    des = bound.design
    assert des.family is m.family and des.trusted is False
    assert des.names.names == ("Intercept", "C(cond, Sum)[S.a]", "C(cond, Sum)[S.b]", "x")
    assert des.names.lme4 == ("(Intercept)", "cond1", "cond2", "x")
    view = fit_design(des, data)
    assert view.source is des and view.names is des.names
    assert all(a is b for a, b in zip(view.x, des.fixed.arrays))
    assert view.terms[0].codes is des.blocks[0].group.codes
    # the view holds exactly what building the fit design from the formula gives
    built = build_design(m.formula, data)
    assert built.fixed_names == view.fixed_names and built.lme4_names == view.lme4_names
    for a, b in zip(built.x, view.x):
        assert (a is None and b is None) or np.array_equal(a, b)
    np.testing.assert_array_equal(built.terms[0].codes, view.terms[0].codes)


def test_one_resolver_finds_a_term_with_or_without_its_contrast_call(data):
    res = glmmsim.fit("y ~ C(cond, Sum) + x + (1 | g)", data.assign(y=np.random.default_rng(1).normal(size=48)))
    by_call = res.test("C(cond, Sum)", method="z")
    by_name = res.test("cond", method="z")  # the study spelling; fit.test used to reject it
    assert by_call.coefficients == by_name.coefficients == ("C(cond, Sum)[S.a]", "C(cond, Sum)[S.b]")
    assert by_call.p == by_name.p
    names = CoefficientNames(["Intercept", "x:cond[T.b]"], {"cond": ["a", "b"]})
    assert names.find("condb:x") == names.find("x : cond[T.b]") == (1,)
    assert names.find("(Intercept)") == names.find("1") == (0,)
    assert names.find("z") is None


def test_the_one_level_finder_reads_categories_logicals_and_text_and_lets_declared_levels_win():
    d = pd.DataFrame({"c": pd.Categorical(["b", "a"], categories=["b", "a"]), "f": [True, True],
                      "s": ["y", "x"], "n": [1.0, 2.0]})
    assert find_levels(d, ["c", "f", "s", "n"]) == {"c": ["b", "a"], "f": [False, True], "s": ["x", "y"]}
    assert find_levels(d, ["s"], {"s": ["y", "x"]}) == {"s": ["y", "x"]}


def test_a_formula_offset_reaches_the_fit(data):
    """offset(...) in the formula: simulated with coefficient 1, fitted as lme4 fits it (it used to fail at fit time)."""
    m = glmmsim.Model("y ~ x + offset(np.log(t)) + (1 | g)", fixed={"Intercept": 0.5, "x": 0.3}, random={"g": 0.3},
                      family="poisson", seed=1)
    sim = m.simulate(data, seed=4)
    with_offset = glmmsim.fit(m.formula, sim, family="poisson", engine="glmm")
    explicit = glmmsim.fit("y ~ x + (1 | g)", sim, family="poisson", engine="glmm", offset=np.log(data["t"]))
    np.testing.assert_allclose(with_offset.fixed["estimate"], explicit.fixed["estimate"], rtol=1e-8)


def test_prepare_on_a_bound_model_fits_from_the_design_it_simulates_from(data):
    m = glmmsim.Model("y ~ x + (1 | g)", fixed={"Intercept": 1, "x": 0.5}, random={"g": 0.5}, sigma=1, seed=3)
    bound = m.bind(data)
    fitter = glmmsim.fit.prepare(m.formula, bound)
    assert fitter.design.source is bound.design
    y = bound.simulate_response(seed=2)
    rebuilt = glmmsim.fit.prepare(m.formula, data)
    assert fitter.design.source is not rebuilt.design.source
    assert fitter.fit(y).loglik == rebuilt.fit(y).loglik
