"""Expansion of bar terms into lme4's random-effect terms."""

import pandas as pd
from formulaic import model_matrix

from glmmsim.model.formula import parse_formula
from glmmsim.model.terms import expand_bars, has_intercept


def test_double_bar_splits_every_term_label():
    # lme4's expandDoubleVerts: one '(0 + t | g)' per term label of the lhs, so x*z gives x, z, x:z
    terms = expand_bars(parse_formula("y ~ (x*z || g)").bars)
    assert [str(t) for t in terms] == ["(1 | g)", "(0 + x | g)", "(0 + z | g)", "(0 + x:z | g)"]


def test_has_intercept_agrees_with_formulaic():
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    for expr in ["0 + x + 1", "-1 + 1 + x", "0 + 1"]:
        assert has_intercept(expr) == ("Intercept" in model_matrix(expr, frame).columns), expr
