"""power() and power_curve(): the public contract, failures as data, executors (exact power: tests/validation)."""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest

from glmmsim.analysis import power, power_curve, recovery
from glmmsim.analysis.intervals import clopper_pearson
from glmmsim.errors import ParameterError

from ._study_models import rt_design, rt_model

SIM_COLUMNS = ["replicate", "test", "estimate", "se", "df", "statistic", "p", "significant", "converged",
               "singular", "warned", "warnings", "error", "error_type", "engine"]


def test_power_contract(small_rt):
    model, design = small_rt
    res = power(model, design, test="cond", nsim=20, seed=3, progress=False)
    assert list(res.simulations.columns) == SIM_COLUMNS
    assert len(res.simulations) == 20 and res.simulations["replicate"].tolist() == list(range(20))
    k = int(res.simulations["significant"].sum())
    n = int((res.simulations["converged"] & (res.simulations["error"] == "")).sum())
    assert res.power == pytest.approx(k / n)
    assert res.ci == pytest.approx(clopper_pearson(k, n))
    text = str(res)
    for needed in ("Power:", "Clopper-Pearson", "Satterthwaite", "singular fits", "seed 3", "alpha = 0.05",
                   "SD(Intercept) = 50", "12 subject, 8 item"):
        assert needed in text, needed
    # the same seed gives the same table; another seed another one
    again = power(model, design, test="condb", nsim=20, seed=3, progress=False)
    pd.testing.assert_frame_equal(res.simulations.drop(columns="test"), again.simulations.drop(columns="test"))
    other = power(model, design, test="cond", nsim=20, seed=4, progress=False)
    assert not np.allclose(other.simulations["estimate"], res.simulations["estimate"])


def test_several_tests_on_the_same_fits(small_rt):
    model, design = small_rt
    res = power(model, design, test=["cond", "Intercept"], nsim=10, progress=False)
    assert list(res.power.index) == ["cond", "Intercept"]
    sims = res.simulations
    assert len(sims) == 20
    # one fit per replicate: its flags are shared by both tests
    by_rep = sims.groupby("replicate")["singular"].nunique()
    assert (by_rep == 1).all()
    assert res.power["Intercept"] == 1.0


def test_bad_tests_and_methods_fail_before_work(small_rt):
    model, design = small_rt
    with pytest.raises(ParameterError, match="names no coefficient or term.*Coefficients: 'Intercept', 'cond\\[T.b\\]'"):
        power(model, design, test="condition", nsim=5, progress=False)
    with pytest.raises(ParameterError, match="needs engine 'lmm' or 'lme4'.*engine is 'glmm'"):
        power(model, design, test="cond", method="kr", engine="glmm", nsim=5, progress=False)
    with pytest.raises(ParameterError, match="method must be one of"):
        power(model, design, test="cond", method="wald", nsim=5, progress=False)
    with pytest.raises(ParameterError, match="failures must be one of"):
        power(model, design, test="cond", failures="drop", nsim=5, progress=False)
    with pytest.raises(ParameterError, match="nsim"):
        power(model, design, test="cond", nsim=0, progress=False)


def test_test_is_required_and_a_missing_one_names_the_testable_effects(small_rt, monkeypatch):
    module = importlib.import_module("glmmsim.analysis.power")  # the package attribute "power" is the function

    model, design = small_rt
    monkeypatch.setattr(module, "run_study", lambda *a, **k: pytest.fail("no replicate may run without a test"))
    with pytest.raises(ParameterError, match=r"power needs test=.*coefficients: 'cond\[T.b\]'; its terms: 'cond'") as info:
        power(model, design, nsim=5, progress=False)
    assert info.value.parameter == "test"
    with pytest.raises(ParameterError, match=r"power_curve needs test=.*coefficients: 'cond\[T.b\]'"):
        power_curve(model, lambda subjects: design, along={"subjects": [6]}, nsim=5, progress=False)
    with pytest.raises(ParameterError, match="power needs test="):
        power(model, design, test=None, nsim=5, progress=False)


def test_arguments_after_model_and_conditions_are_keyword_only(small_rt):
    model, design = small_rt
    with pytest.raises(TypeError, match="2 positional arguments"):
        power(model, design, "cond", 5)
    with pytest.raises(TypeError, match="2 positional arguments"):
        power_curve(model, lambda subjects: design, {"subjects": [6]}, "cond")
    with pytest.raises(TypeError, match="2 positional arguments"):
        recovery(model, design, 5)


class _Flaky:
    """A registered engine that fails on some responses: failures must become rows."""

    name = "flaky"

    def available(self):
        return True

    def prepare(self, design):
        from glmmsim.fit.protocol import get_engine

        inner = get_engine("glmm").prepare(design)

        class Prepared:
            def fit(self, y, *, reml):
                if np.mean(y) > 600:  # about half the replicates
                    raise RuntimeError("optimizer exploded")
                raw = inner.fit(y, reml=reml)
                if np.mean(y) < 590:
                    raw.converged = False
                return raw

        return Prepared()


def test_failures_are_rows_and_the_policy_is_explicit(small_rt):
    from glmmsim.fit import register_engine

    register_engine("flaky", _Flaky)
    model, design = small_rt
    res = power(model, design, test="cond", nsim=40, engine="flaky", progress=False, max_failure_rate=None)
    sims = res.simulations
    errors = sims["error"].str.startswith("RuntimeError: optimizer exploded")
    assert errors.any() and (~errors).any()
    assert sims.loc[errors, "p"].isna().all() and not sims.loc[errors, "significant"].any()
    unconverged = ~sims["converged"] & ~errors
    usable = sims["converged"] & ~errors
    assert res.failed == pytest.approx((~usable).mean())
    assert res.power == pytest.approx(sims.loc[usable, "significant"].mean())
    miss = power(model, design, test="cond", nsim=40, engine="flaky", progress=False, failures="nonsignificant",
                 max_failure_rate=None)
    assert miss.power == pytest.approx(sims["significant"].sum() / 40)
    assert unconverged.any() or errors.sum() < 40
    assert "fits failed" in str(res)


def test_serial_and_process_pool_give_identical_replicates(small_rt):
    model, design = small_rt
    serial = power(model, design, test="cond", nsim=24, seed=5, progress=False)
    pooled = power(model, design, test="cond", nsim=24, seed=5, progress=False, executor=2)
    pd.testing.assert_frame_equal(serial.simulations, pooled.simulations)
    assert serial.power == pooled.power


def test_common_random_numbers_along_a_curve():
    """The 10-subject point's subjects and trials are the first 10 of the 20-subject point's."""
    from glmmsim.analysis.power import plan_point
    from glmmsim.analysis.replicates import PointState, new_token
    from glmmsim.randomness import SeedTree

    model, tree, token = rt_model(), SeedTree(7), new_token()
    small, large = (
        plan_point(model, rt_design(n, 6), point=i, token=token, tree=tree, test="cond", method="auto",
                             engine="glmm", fit_formula=None, key=None, reml=None)
        for i, n in enumerate((10, 20))
    )
    seeds = tree.replicate(3)
    ys = [PointState(j).bound.simulate_response(seeds.noise, population=seeds.population) for j in (small, large)]
    a = small.conditions.assign(rt=ys[0])
    b = large.conditions.assign(rt=ys[1])
    merged = a.merge(b, on=["subject", "item", "cond"], suffixes=("_small", "_large"))
    assert len(merged) == len(a)
    np.testing.assert_array_equal(merged["rt_small"], merged["rt_large"])
    # and the curve is smooth: replicate estimates at neighbouring points move together
    curve = power_curve(model, lambda subjects: rt_design(subjects, 6), along={"subjects": [16, 20]}, test="cond",
                        nsim=60, seed=2, progress=False)
    indep = power_curve(model, lambda subjects: rt_design(subjects, 6), along={"subjects": [16, 20]}, test="cond",
                        nsim=60, seed=2, progress=False, crn=False)

    def corr(c):
        wide = c.simulations.pivot(index="replicate", columns="subjects", values="estimate")
        return wide.corr().iloc[0, 1]

    assert corr(curve) > 0.7
    assert abs(corr(indep)) < 0.4


def test_power_curve_table_plot_and_smallest(tmp_path):
    model = rt_model(effect=30)
    curve = power_curve(model, lambda subjects: rt_design(subjects, 6), along={"subjects": [6, 12, 24]}, test="condb",
                        nsim=20, progress=False)
    assert list(curve.table.columns) == ["subjects", "power", "ci_low", "ci_high", "nsim", "failed", "singular", "warned"]
    assert curve.table["subjects"].tolist() == [6, 12, 24]
    assert (curve.table["nsim"] == 20).all()
    best = curve.smallest(0.0)
    assert best["subjects"] == 6 and best["ci_low"] <= best["power"] <= best["ci_high"]
    assert curve.smallest(1.01) is None
    ax = curve.plot(0.8)
    assert ax.get_xlabel() == "subjects" and len(ax.lines) >= 2
    ax.figure.savefig(tmp_path / "curve.png")
    with pytest.raises(ParameterError, match="along names 'items'"):
        power_curve(model, lambda subjects: rt_design(subjects, 6), along={"items": [5]}, test="cond", nsim=2,
                    progress=False)


def test_misspecified_analysis_model(small_rt):
    model, design = small_rt
    res = power(model, design, test="cond", nsim=10, fit_formula="rt ~ cond + (1 | subject) + (1 | item)",
                progress=False)
    assert "differs from the truth" in str(res)
    assert res.simulations["df"].median() > 50  # no slope variance: the df become the residual df

