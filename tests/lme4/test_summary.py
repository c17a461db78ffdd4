"""The plain-text descriptions of a model (glmmsim.lme4.summary)."""

import pytest

import glmmsim
from glmmsim.lme4.summary import describe_model
from glmmsim.design import crossed
from glmmsim.errors import ParameterError


def _model():
    return glmmsim.Model("y ~ cond + (1 | subject)", fixed={"Intercept": 0, "condb": 1},
                         random={"subject": 0.5}, sigma=1)


def test_describe_model_lists_random_effects():
    lines = describe_model(_model(), crossed(subjects=2, items=2, within={"cond": ["a", "b"]}))
    assert lines[-1] == "random effects of subject: SD(Intercept) = 0.5"


def test_describe_model_leaves_out_a_covariance_it_cannot_state(monkeypatch):
    model = _model()

    def refuse(conditions):
        raise ParameterError("no levels known")

    monkeypatch.setattr(model, "covariance", refuse)
    lines = describe_model(model, crossed(subjects=2, items=2, within={"cond": ["a", "b"]}))
    assert not any(line.startswith("random effects") for line in lines)


def test_describe_model_does_not_hide_a_bug(monkeypatch):
    model = _model()

    def broken(conditions):
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(model, "covariance", broken)
    with pytest.raises(ZeroDivisionError):
        describe_model(model, crossed(subjects=2, items=2, within={"cond": ["a", "b"]}))
