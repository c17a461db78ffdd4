"""A study point binds and designs once per process; replicates measure their fit with a callable."""

import numpy as np
import pandas as pd
import pytest

import glmmsim
from glmmsim.analysis.power import plan_point
from glmmsim.analysis.replicates import PointState, Task, run_task
from glmmsim.design import crossed
from glmmsim.execution import clear_worker_cache
from glmmsim.fit.prepare import Fitter
from glmmsim.model import model_design as design_module
from glmmsim.randomness import SeedTree


def _model(**kwargs):
    return glmmsim.Model("y ~ cond + (1 | subject)", fixed={"Intercept": 0, "condb": 0.5}, random={"subject": 0.5},
                         sigma=1, seed=1, **kwargs)


def _design():
    return crossed(subjects=10, repetitions=4, within={"cond": ["a", "b"]})


def test_a_serial_power_point_builds_its_design_once(monkeypatch):
    built = []
    original = design_module.build_model_design
    monkeypatch.setattr(design_module, "build_model_design", lambda *a, **k: built.append(1) or original(*a, **k))
    import glmmsim.model.model as model_module

    monkeypatch.setattr(model_module, "build_model_design", design_module.build_model_design)
    res = glmmsim.power(_model(), _design(), test="condb", nsim=4, progress=False)
    assert len(built) == 1
    assert res.simulations["error"].eq("").all()


def test_a_power_study_of_a_trusted_formula_runs():
    """trusted_formula=True travels with the model into the fits (np.cbrt is outside the whitelist)."""
    d = _design()
    d["x"] = np.tile(np.arange(1.0, 9.0), len(d) // 8)
    with pytest.raises(glmmsim.errors.FormulaError):
        glmmsim.Model("y ~ cond + np.cbrt(x) + (1 | subject)", fixed={"Intercept": 0, "condb": 0.5, "np.cbrt(x)": 0.1},
                      random={"subject": 0.5}, sigma=1)
    m = glmmsim.Model("y ~ cond + np.cbrt(x) + (1 | subject)", fixed={"Intercept": 0, "condb": 0.5, "np.cbrt(x)": 0.1},
                      random={"subject": 0.5}, sigma=1, seed=1, trusted_formula=True)
    res = glmmsim.power(m, d, test="np.cbrt(x)", nsim=3, progress=False)
    assert res.simulations["error"].eq("").all() and res.simulations["p"].notna().all()


def _job(measure=None, **kwargs):
    return plan_point(_model(), _design(), point=0, token="t-point-design", tree=SeedTree(3), test="condb",
                      method="auto", engine="lmm", fit_formula=None, key=None, reml=None, measure=measure, **kwargs)


def width(fit):
    """A user's measurement: the width of the 95% interval of condb."""
    ci = fit.confint().loc["cond[T.b]"]
    return float(ci["upper"] - ci["lower"])


def test_a_replicate_records_what_its_measure_returns():
    clear_worker_cache()
    job = _job(measure=_named(width, "width"))
    records = run_task(Task(job, (0, 1)))
    state = PointState(job)
    seeds = job.tree.replicate(1)
    y = state.bound.simulate_response(seeds.noise, population=seeds.population)
    # the task's replicates are fitted together (lmm's fit_many, from the generating values): the fit of a response is the same in any
    # batch, its df (computed for the batch in one stacked call) equal to ~1e-13
    assert records[1]["width"] == pytest.approx(width(state.fitter.fit_many(y[:, None], start=state.start)[0]), rel=1e-10)
    assert records[0]["error"] == "" and records[0]["width"] > 0


class _named:
    def __init__(self, fn, name):
        self.fn, self.name = fn, name

    def __call__(self, fit):
        return self.fn(fit)


def test_a_measure_that_raises_fails_only_its_replicate():
    def fails_on_small_estimates(fit):
        if fit.fixed_arrays.estimate[1] < 0.5:
            raise ValueError("too small")
        return 1

    clear_worker_cache()
    records = run_task(Task(_job(measure=_named(fails_on_small_estimates, "m")), tuple(range(6))))
    failed = [r for r in records if r["error"]]
    assert failed and len(failed) < 6
    assert all(r["error_type"] == "ValueError" and not r["converged"] for r in failed)
    assert all(r["m"] == 1 for r in records if not r["error"])


def test_a_batch_that_raises_is_fitted_again_one_by_one(monkeypatch):
    """fit_many is the fast path; a failing batch leaves each replicate its own record."""
    clear_worker_cache()
    job = _job()
    with monkeypatch.context() as one_by_one:
        one_by_one.setattr(Fitter, "fits_in_batches", property(lambda self: False))
        plain = run_task(Task(job, (0, 1, 2)))
    calls = []

    def broken_batch(self, ys, *, start=None):
        calls.append(ys.shape[1])
        raise RuntimeError("batch failed")

    clear_worker_cache()
    monkeypatch.setattr(Fitter, "fits_in_batches", property(lambda self: True))
    monkeypatch.setattr(Fitter, "fit_many", broken_batch)
    again = run_task(Task(job, (0, 1, 2)))
    assert calls == [3, 1, 1, 1]  # then each replicate alone as a batch of one, which fails too: fit()
    assert pd.DataFrame(again).drop(columns="tests").equals(pd.DataFrame(plain).drop(columns="tests"))
    assert [r["tests"] for r in again] == [r["tests"] for r in plain]


def test_a_batch_fit_gives_the_records_of_one_by_one_fits(monkeypatch):
    clear_worker_cache()
    job = _job()
    plain = run_task(Task(job, (0, 1, 2)))
    seen = []
    original = Fitter.fit_many

    def counted(self, ys, *, start=None):
        seen.append(ys.shape[1])
        return original(self, ys, start=start)

    clear_worker_cache()
    monkeypatch.setattr(Fitter, "fits_in_batches", property(lambda self: True))
    monkeypatch.setattr(Fitter, "fit_many", counted)
    batched = run_task(Task(job, (0, 1, 2)))
    assert seen == [3]
    assert [r["tests"] for r in batched] == [r["tests"] for r in plain]
