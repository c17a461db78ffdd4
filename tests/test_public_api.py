"""The public API as a whole: what the top level and the package namespaces export, and the verbs' signatures."""

from __future__ import annotations

import importlib
import inspect

import pytest

import glmmsim

PACKAGES = ["glmmsim", "glmmsim.model", "glmmsim.design", "glmmsim.fit", "glmmsim.analysis", "glmmsim.study",
            "glmmsim.plot", "glmmsim.lme4", "glmmsim.execution", "glmmsim.cli"]


@pytest.mark.parametrize("name", PACKAGES)
def test_a_namespace_exports_each_name_once_and_nothing_private(name):
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(exported) == len(set(exported)), sorted(n for n in exported if exported.count(n) > 1)
    assert not [n for n in exported if n.startswith("_")]
    objects = {}
    for n in exported:
        obj = getattr(module, n)  # every exported name resolves (the top level imports lazily)
        if isinstance(obj, (int, float, str, tuple, frozenset)):
            continue  # constants may share a value
        assert id(obj) not in objects, f"{name}.{n} is {name}.{objects.get(id(obj))} again"
        objects[id(obj)] = n


def test_the_top_level_has_the_verbs_and_the_results_a_user_meets():
    verbs = {"fit": "FitResult", "power": "PowerResult", "power_curve": "PowerCurve", "recovery": "RecoveryResult"}
    for verb, result in verbs.items():
        assert verb in glmmsim.__all__ and result in glmmsim.__all__
    assert glmmsim.PowerResult is importlib.import_module("glmmsim.analysis").PowerResult
    assert glmmsim.FitResult is glmmsim.fit.FitResult and glmmsim.TestResult is glmmsim.fit.TestResult
    assert set(glmmsim.__all__) <= set(dir(glmmsim))
    for internal in ("config", "set_value", "resolve_kind", "with_options"):
        assert internal not in glmmsim.__all__


@pytest.mark.parametrize("verb", [glmmsim.power, glmmsim.power_curve, glmmsim.recovery], ids=lambda f: f.__name__)
def test_the_study_verbs_take_model_and_conditions_by_position_and_the_rest_by_keyword(verb):
    params = list(inspect.signature(verb).parameters.values())
    positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert positional == ["model", "conditions" if verb is not glmmsim.power_curve else "design"]
    assert all(p.kind is p.KEYWORD_ONLY for p in params[2:])
