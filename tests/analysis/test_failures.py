"""Failures are data: a replicate that fails anywhere is a row; only systematic failure stops a study."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pandas as pd
import pytest

import glmmsim
from glmmsim import power, power_curve, recovery
from glmmsim.analysis.replicates import FailurePolicy
from glmmsim.errors import ParameterError, SystematicFailureError
from glmmsim.execution import executors

from ._study_models import register_sometimes, rt_design, rt_model

register_sometimes()


def _curve(executor):
    return power_curve(rt_model(), lambda subjects: rt_design(subjects, 6), along={"subjects": [6, 10]}, test="cond",
                       nsim=30, engine="sometimes", seed=11, progress=False, executor=executor)


def test_injected_failures_are_rows_with_message_and_type():
    curve = _curve(None)
    sims = curve.simulations
    fit_failed = sims["error"] == "FitError: injected failure"
    no_df = sims["error"].str.contains("reported no Satterthwaite df", regex=False)
    assert fit_failed.any() and no_df.any()
    assert (sims.loc[fit_failed | no_df, "error_type"] == "FitError").all()
    assert sims.loc[fit_failed | no_df, "p"].isna().all()
    assert (sims.loc[~(fit_failed | no_df), "error"] == "").all()
    # the table counts them: failed is the share of rows with an error, power is among the others
    for (subjects, g), row in zip(sims.groupby("subjects"), curve.table.itertuples()):
        bad = g["error"] != ""
        assert row.failed == pytest.approx(bad.mean())
        assert row.power == pytest.approx(g.loc[~bad, "significant"].mean())


def test_process_pool_gives_the_same_table_and_rows(monkeypatch):
    # the test engine is registered in this process only: pool workers must be forks of it
    monkeypatch.setattr(executors, "_start_context", lambda: multiprocessing.get_context("fork"))
    serial, pooled = _curve(None), _curve(2)
    pd.testing.assert_frame_equal(serial.simulations, pooled.simulations)
    pd.testing.assert_frame_equal(serial.table, pooled.table)


def test_dask_gives_the_same_table_and_rows():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        client.run(register_sometimes)
        on_dask = _curve(client)
    serial = _curve(None)
    pd.testing.assert_frame_equal(serial.simulations, on_dask.simulations)
    pd.testing.assert_frame_equal(serial.table, on_dask.table)


def test_fallback_engine_refits_the_failed_replicates_and_says_so():
    res = power(rt_model(), rt_design(8, 6), test="cond", nsim=30, engine="sometimes", seed=11, progress=False,
                fallback_engine="glmm")
    sims = res.simulations
    plain = power(rt_model(), rt_design(8, 6), test="cond", nsim=30, engine="sometimes", seed=11, progress=False)
    failed = plain.simulations["error"] != ""
    assert failed.any()
    assert (sims["error"] == "").all()
    assert (sims.loc[failed.to_numpy(), "engine"] == "glmm").all()
    assert (sims.loc[~failed.to_numpy(), "engine"] == "sometimes").all()
    assert sims.loc[failed.to_numpy(), "warnings"].str.contains("refitted with glmm").all()
    # the refits are glmm's own fits of the same datasets
    glmm = power(rt_model(), rt_design(8, 6), test="cond", nsim=30, engine="glmm", seed=11, progress=False)
    np.testing.assert_array_equal(sims.loc[failed.to_numpy(), "p"], glmm.simulations.loc[failed.to_numpy(), "p"])


def test_a_failing_family_draw_is_a_row_too(monkeypatch):
    from glmmsim.model.bound import BoundModel

    real = BoundModel.simulate_response
    calls = {"n": 0}

    def sometimes_overflows(self, seed=None, *, population=None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise FloatingPointError("overflow in the family's sampler")
        return real(self, seed, population=population)

    def batch_overflows(self, seeds, *, populations=None):  # a batch that holds replicate 2 fails as a whole
        raise FloatingPointError("overflow in the family's sampler")

    monkeypatch.setattr(BoundModel, "simulate_response", sometimes_overflows)
    monkeypatch.setattr(BoundModel, "simulate_responses", batch_overflows)
    res = power(rt_model(), rt_design(8, 6), test="cond", nsim=10, seed=2, progress=False)
    bad = res.simulations[res.simulations["error"] != ""]
    assert bad["replicate"].tolist() == [2]
    assert bad["error_type"].tolist() == ["FloatingPointError"]
    assert res.simulations["p"].notna().sum() == 9


def test_systematic_failure_stops_naming_point_replicate_seed_and_error_and_keeps_the_rest():
    class Always:
        name = "always"

        def available(self):
            return True

        def prepare(self, design):
            class Prepared:
                def fit(self, y, *, reml):
                    raise ValueError("cannot fit anything")

            return Prepared()

    glmmsim.fit.register_engine("always", Always)
    with pytest.raises(SystematicFailureError) as info:
        power_curve(rt_model(), lambda subjects: rt_design(subjects, 6), along={"subjects": [6, 8]}, test="cond",
                    nsim=100, engine="always", seed=4, progress=False, crn=False)
    err = info.value
    assert err.point == 0 and err.point_label == "subjects=6" and err.replicate == 0
    assert err.seed_path == "SeedTree(4).child('point', 0).replicate(0)"
    assert err.first_error == "ValueError: cannot fit anything"
    assert err.failure_rate == 1.0
    for text in ("subjects=6", "replicate 0", "SeedTree(4).child('point', 0).replicate(0)", "cannot fit anything"):
        assert text in str(err)
    # the finished replicates are kept: the first 20 at least (serially, one batch of 100)
    assert len(err.records) >= 20 and len(err.simulations) == len(err.records)
    assert list(err.simulations.columns[:2]) == ["subjects", "replicate"]


def test_failure_policy_thresholds_are_parameters():
    with pytest.raises(ParameterError, match="max_failure_rate"):
        FailurePolicy(1.5)
    with pytest.raises(ParameterError, match="failure_window"):
        FailurePolicy(0.5, 0)
    # max_failure_rate=None: a study of failures finishes, every row a failure
    res = recovery(rt_model(), rt_design(6, 4), nsim=4, engine="sometimes", seed=1, progress=False,
                   max_failure_rate=None)
    assert len(res.simulations) == 4


def test_fallback_engine_is_checked_before_any_work():
    with pytest.raises(ParameterError, match="fallback_engine"):
        power(rt_model(), rt_design(6, 4), test="cond", nsim=5, progress=False, fallback_engine="lmm")
    with pytest.raises(glmmsim.fit.EngineError, match="unknown engine"):
        power(rt_model(), rt_design(6, 4), test="cond", nsim=5, progress=False, fallback_engine="nope")


@pytest.mark.r
def test_fallback_to_lme4_is_recorded_in_the_engine_column():
    res = power(rt_model(), rt_design(8, 6), test="cond", nsim=12, engine="sometimes", seed=11, progress=False,
                fallback_engine="lme4")
    sims = res.simulations
    refitted = sims["engine"] == "lme4"
    assert refitted.any() and (sims.loc[~refitted, "engine"] == "sometimes").all()
    assert (sims["error"] == "").all() and sims["df"].notna().all()
    assert sims.loc[refitted, "warnings"].str.contains("refitted with lme4").all()
