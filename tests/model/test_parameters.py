"""Parameters: fixed effects, random-effect specs and dispersion checked before any work."""

import pytest

from glmmsim import Model, ParameterError
from glmmsim.model.parameters import parse_dispersion


def _negbin(dispersion):
    return Model("y ~ 1 + (1 | g)", fixed={"Intercept": 0}, random={"g": 0.5}, family="negative_binomial",
                 dispersion=dispersion)


@pytest.mark.parametrize(
    "dispersion,message",
    [("theta", "must be a mapping.*got str 'theta'"), ([("theta", 2)], "must be a mapping.*got list"),
     (2.0, "must be a mapping.*got float"), ({1: 2.0}, "keys must be parameter names.*got int 1")],
    ids=["str", "pairs", "number", "int key"],
)
def test_dispersion_must_be_a_mapping_of_parameter_names(dispersion, message):
    with pytest.raises(ParameterError, match=message):
        _negbin(dispersion)


def test_dispersion_values_are_checked_by_the_family():
    with pytest.raises(ParameterError, match="'theta'"):
        _negbin({"theta": "2"})
    assert _negbin({"theta": 2}).family.params["theta"] == 2.0


def test_parse_dispersion_copies():
    given = {"theta": 2.0}
    parsed = parse_dispersion(given)
    given["theta"] = 5.0
    assert parsed == {"theta": 2.0} and parse_dispersion(None) == {}


def test_conflicting_correlation_pairs_rejected():
    with pytest.raises(ParameterError, match="twice"):
        Model(
            "y ~ x + (1 + x | g)",
            fixed={"Intercept": 0, "x": 1},
            random={"g": {"sd": {"Intercept": 1, "x": 1}, "corr": {("x", "Intercept"): 0.5, ("Intercept", "x"): -0.5}}},
            sigma=1,
        )


@pytest.mark.parametrize(
    "kwargs,message",
    [(dict(fixed=[("Intercept", 1.0)]), r"fixed must be a mapping of coefficient -> value.*got list \[\('Intercept'"),
     (dict(random="g"), r"random must be a mapping grouping factor -> spec.*got str 'g'"),
     (dict(levels=["a", "b"]), r"levels must be a mapping column -> list of levels; got list \['a', 'b'\]")],
    ids=["fixed", "random", "levels"],
)
def test_non_mapping_arguments_name_the_argument_and_show_the_value(kwargs, message):
    args = dict(fixed={"Intercept": 0}, random={"g": 0.5}, sigma=1.0) | kwargs
    with pytest.raises(ParameterError, match=message):
        Model("y ~ 1 + (1 | g)", **args)
