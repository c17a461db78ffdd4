"""A user's measure= of every replicate's fit: extra columns of the simulations table."""

import importlib
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import pytest

import glmmsim
from glmmsim.analysis.replicates import PointState
from glmmsim.design import crossed
from glmmsim.errors import ParameterError


def _model():
    return glmmsim.Model("y ~ cond + (1 | subject)", fixed={"Intercept": 0, "condb": 0.5}, random={"subject": 0.5},
                         sigma=1, seed=1)


def _design(subjects=10):
    return crossed(subjects=subjects, repetitions=4, within={"cond": ["a", "b"]})


def width(fit):
    """The width of the 95% interval of condb (module level: it pickles for process pools)."""
    ci = fit.confint().loc["cond[T.b]"]
    return float(ci["upper"] - ci["lower"])


def contrast_and_width(fit):
    estimate = fit.fixed_arrays.estimate
    return {"condb_minus_intercept": float(estimate[1] - estimate[0]), "width": width(fit)}


def fails_on_small_estimates(fit):
    if fit.fixed_arrays.estimate[1] < 0.5:
        raise ValueError("too small")
    return {"est": float(fit.fixed_arrays.estimate[1])}


def _power(**kwargs):
    return glmmsim.power(_model(), _design(), test="condb", nsim=kwargs.pop("nsim", 6), seed=3, progress=False,
                         engine="lmm", **kwargs)


def test_an_interval_width_per_replicate_equals_the_confint_of_a_refit():
    res = _power(measure=width)
    sims = res.simulations
    assert list(sims.columns[-2:]) == ["measure", "measure_error"]
    job = res._job
    state = PointState(job)
    for r in (0, 4):
        seeds = job.tree.replicate(r)
        y = state.bound.simulate_response(seeds.noise, population=seeds.population)
        # the runner fits a task's replicates together (fit_many), whose fit of a response is the same in any batch
        expected = width(state.fitter.fit_many(y[:, None])[0])
        np.testing.assert_allclose(sims.loc[sims["replicate"] == r, "measure"].iloc[0], expected, rtol=1e-8)
    assert (sims["measure_error"] == "").all()


def test_a_dict_returning_measure_gives_one_column_per_key():
    sims = _power(measure=contrast_and_width).simulations
    assert list(sims.columns[-3:]) == ["condb_minus_intercept", "width", "measure_error"]
    assert sims["width"].gt(0).all() and sims["condb_minus_intercept"].notna().all()
    # the tests are those of a study without a measure
    plain = _power().simulations
    pd.testing.assert_frame_equal(sims[plain.columns], plain)


def test_a_raising_measure_fails_only_its_columns():
    sims = _power(measure=fails_on_small_estimates, nsim=8).simulations
    failed = sims["measure_error"] != ""
    assert failed.any() and not failed.all()
    assert sims.loc[failed, "measure_error"].str.startswith("ValueError: too small").all()
    assert sims.loc[failed, "est"].isna().all() and sims.loc[~failed, "est"].ge(0.5).all()
    # the replicate and its test stand
    assert (sims["error"] == "").all() and sims["p"].notna().all() and sims["converged"].all()


def test_a_key_that_is_a_column_already_is_a_measure_error():
    sims = _power(measure=_returns_p).simulations
    assert sims["measure_error"].str.contains("'p'").all() and sims["p"].notna().all()


def _returns_p(fit):
    return {"p": 1.0}


def test_a_failed_fit_measures_nan(monkeypatch):
    from glmmsim.fit.prepare import Fitter

    monkeypatch.setattr(Fitter, "fits_in_batches", property(lambda self: False))
    original = Fitter.fit
    calls = []

    def fit_failing_the_second(self, y):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("engine broke")
        return original(self, y)

    monkeypatch.setattr(Fitter, "fit", fit_failing_the_second)
    sims = _power(measure=width, nsim=4, max_failure_rate=None).simulations
    assert sims["error"].ne("").sum() == 1
    assert sims.loc[sims["error"] != "", "measure"].isna().all()
    assert sims.loc[sims["error"] == "", "measure"].gt(0).all()


def test_serial_and_process_pool_give_equal_tables():
    serial = _power(measure=contrast_and_width, nsim=8)
    with ProcessPoolExecutor(2) as pool:
        pooled = _power(measure=contrast_and_width, nsim=8, executor=pool)
    pd.testing.assert_frame_equal(serial.simulations, pooled.simulations)
    assert pooled.simulations["measure_error"].eq("").all() and pooled.simulations["width"].gt(0).all()


def test_a_power_curve_has_the_measure_columns():
    curve = glmmsim.power_curve(_model(), lambda subjects: _design(subjects), along={"subjects": [6, 10]},
                                test="condb", nsim=3, seed=3, progress=False, engine="lmm", measure=width)
    sims = curve.simulations
    assert list(sims.columns[:1]) == ["subjects"] and list(sims.columns[-2:]) == ["measure", "measure_error"]
    # a wider design measures condb more precisely in every replicate (common random numbers)
    small, large = (sims[sims["subjects"] == n]["measure"].to_numpy() for n in (6, 10))
    assert (large < small).all()


@pytest.mark.parametrize("measure", ["width", 3])
def test_a_measure_that_is_not_callable_is_refused_before_any_work(measure, monkeypatch):
    power_module = importlib.import_module("glmmsim.analysis.power")  # the package's power is the function
    monkeypatch.setattr(power_module, "run_study", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(ParameterError) as info:
        _power(measure=measure)
    assert info.value.parameter == "measure"
    with pytest.raises(ParameterError):
        glmmsim.power_curve(_model(), lambda subjects: _design(subjects), along={"subjects": [6]}, test="condb",
                            nsim=2, progress=False, measure=measure)


def test_a_measure_that_does_not_pickle_is_refused_for_a_process_pool():
    with pytest.raises(ParameterError, match="module-level") as info:
        _power(measure=lambda fit: 1.0, executor=2)
    assert info.value.parameter == "measure"


def test_a_checkpoint_refuses_a_rerun_with_another_measure(tmp_path):
    first = _power(measure=width, checkpoint=tmp_path / "cp")
    again = _power(measure=width, checkpoint=tmp_path / "cp")
    pd.testing.assert_frame_equal(first.simulations, again.simulations)
    for other in (contrast_and_width, None):
        with pytest.raises(ParameterError, match="measure") as info:
            _power(measure=other, checkpoint=tmp_path / "cp")
        assert info.value.parameter == "checkpoint"
