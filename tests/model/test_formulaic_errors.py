"""formulaic's parse and evaluation failures reach the user as glmmsim errors naming the piece."""

import inspect
import re

import numpy as np
import pandas as pd
import pytest

from glmmsim import DataError, FormulaError, Model
from glmmsim.model.formulaic_errors import parse_terms, readable


def _data():
    return pd.DataFrame({"x": np.linspace(1.0, 2.0, 6), "cond": list("abcabc"), "g": list("aabbcc")})


# formulas here are the test's own: skip the spec-file whitelist where Model has one, so that
# formulaic itself meets the bad piece
TRUSTED = {"trusted_formula": True} if "trusted_formula" in inspect.signature(Model).parameters else {}


def _model(formula, fixed=None):
    random = {"g": 0.5} if "| g)" in formula else None
    return Model(formula, fixed=fixed or {}, random=random, sigma=1.0, seed=1, **TRUSTED)


@pytest.mark.parametrize(
    "formula,piece",
    [
        ("y ~ . + (1 | g)", r"'\.' \(every other column\) is not supported"),
        ("y ~ ^2", r"'\^"),
        ("y ~ x + ^2", r"in '\^2'"),
        ("y ~ x\x00 + (1 | g)", r"'\\x00'"),
        ("y ~ I(x + ) + (1 | g)", r"'I\(x \+ \)': not valid Python"),
        ("y ~ x + (x\x00 | g)", r"'\\x00'"),
    ],
    ids=["dot", "caret", "caret after term", "NUL", "broken I()", "NUL in bar"],
)
def test_formulaic_parse_errors_are_formula_errors_naming_the_piece(formula, piece):
    with pytest.raises(FormulaError, match=piece) as info:
        _model(formula)
    assert "\x1b[" not in str(info.value) and "\x00" not in str(info.value)  # no colour codes, NUL escaped


@pytest.mark.parametrize(
    "term", ["foo(x)", "np.foo(x)", "I(x + cond)"], ids=["function", "numpy", "text arithmetic"]
)
def test_terms_that_cannot_be_evaluated_are_formula_errors_naming_the_term(term):
    model = _model(f"y ~ 1 + {term} + (1 | g)")
    with pytest.raises(FormulaError, match=f"term {re.escape(repr(term))} of the fixed part .*cannot be evaluated"):
        model.simulate(_data(), seed=1)


@pytest.mark.filterwarnings("ignore:invalid value encountered in log:RuntimeWarning")
def test_a_transform_giving_missing_values_is_a_data_error_naming_the_term():
    model = _model("y ~ np.log(x - 1.5) + (1 | g)", fixed={"Intercept": 0, "np.log(x - 1.5)": 1})
    with pytest.raises(DataError, match=r"term 'np.log\(x - 1.5\)' of the fixed part .* missing values"):
        model.simulate(_data(), seed=1)


@pytest.mark.parametrize("text", ["", "a"])
def test_a_term_giving_text_is_a_data_error_naming_the_term(text):
    # formulaic passes I('...') through as a column of strings; found by tests/model/test_formula_fuzz.py
    model = _model(f"y ~ I({text!r}) + (1 | g)", fixed={"Intercept": 0})
    with pytest.raises(DataError, match=r"column \"I\('.*'\)\" of the fixed part is not numeric") as info:
        model.simulate(_data(), seed=1)
    assert info.value.term == f"I({text!r})"


def test_parse_terms_names_where_the_expression_came_from():
    assert [str(t) for t in parse_terms("1 + x:z", "the fixed part")] == ["1", "x:z"]
    with pytest.raises(FormulaError, match=r"cannot parse the left side of '\(x \+\* z \| g\)'"):
        parse_terms("x +* z", "the left side of '(x +* z | g)'")


def test_readable_strips_colour_and_escapes_control_characters():
    assert readable("\x1b[1;31mx\x00\x1b[0m") == "x\\x00"


def test_evaluation_error_classifies_formulaic_errors_by_type_not_name():
    from formulaic.errors import FactorEncodingError, FormulaSyntaxError

    from glmmsim.model.formulaic_errors import evaluation_error

    encoding = evaluation_error(FactorEncodingError("cannot encode"), "x", "the fixed part")
    syntax = evaluation_error(FormulaSyntaxError("bad token"), "x +", "the fixed part")
    assert isinstance(encoding, DataError) and encoding.term == "x"
    assert isinstance(syntax, FormulaError) and syntax.term == "x +"
