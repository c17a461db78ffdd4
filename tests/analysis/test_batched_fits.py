"""The study runner fits a task's replicates in one engine call (lmm's fit_many), one by one as a fallback."""

from __future__ import annotations

import numpy as np
import pandas as pd

from glmmsim.analysis import power
from glmmsim.fit.engines.lmm_engine import PreparedLmm
from glmmsim.fit.protocol import is_frozen

from ._study_models import rt_design, rt_model


def _calls(monkeypatch) -> dict[str, int]:
    """Count the batched calls and the one-by-one fits the runner makes."""
    counts = {"fit_many": 0, "fit": 0, "kept": 0}
    many, one = PreparedLmm.fit_many, PreparedLmm.fit

    def fit_many(self, ys, *, reml):
        counts["fit_many"] += 1
        counts["kept"] += is_frozen(ys)  # nobody else can change it: kept, not copied
        return many(self, ys, reml=reml)

    def fit(self, y, *, reml, start=None):
        counts["fit"] += 1
        return one(self, y, reml=reml, start=start)

    monkeypatch.setattr(PreparedLmm, "fit_many", fit_many)
    monkeypatch.setattr(PreparedLmm, "fit", fit)
    return counts


def test_a_task_fits_its_replicates_in_one_call_and_matches_fitting_one_by_one(monkeypatch):
    model, design = rt_model(), rt_design(12, 8)
    counts = _calls(monkeypatch)
    batched = power(model, design, test="cond", nsim=20, seed=3, method="z", progress=False)
    assert counts["fit_many"] == 1 and counts["kept"] == 1  # one serial task of 20 replicates
    monkeypatch.setattr(PreparedLmm, "fit_many", None)  # an engine without fit_many: one by one
    single = power(model, design, test="cond", nsim=20, seed=3, method="z", progress=False)
    a, b = batched.simulations, single.simulations
    assert (a["error"] == "").all() and list(a["replicate"]) == list(b["replicate"])
    # Newton's optimum and BOBYQA's agree to BOBYQA's stopping error
    np.testing.assert_allclose(a["estimate"], b["estimate"], atol=1e-3 * b["se"].median())
    np.testing.assert_allclose(a["se"], b["se"], rtol=5e-3)
    assert (a["significant"] == b["significant"]).mean() >= 0.95


def test_a_failing_batch_call_falls_back_to_one_by_one_fits(monkeypatch):
    model, design = rt_model(), rt_design(12, 8)
    monkeypatch.setattr(PreparedLmm, "fit_many", None)
    single = power(model, design, test="cond", nsim=10, seed=4, method="z", progress=False).simulations

    def broken(self, ys, *, reml):
        raise MemoryError("no room for the batch")

    monkeypatch.setattr(PreparedLmm, "fit_many", broken)
    fallback = power(model, design, test="cond", nsim=10, seed=4, method="z", progress=False).simulations
    pd.testing.assert_frame_equal(fallback, single)  # exactly the one-by-one fits, no error rows
    assert (fallback["error"] == "").all()


def test_a_task_draws_its_replicates_together_with_the_numbers_of_drawing_them_one_by_one(monkeypatch):
    from glmmsim.model.bound import BoundModel

    model, design = rt_model(), rt_design(12, 8)
    drawn = {"together": 0, "alone": 0}
    together, alone = BoundModel.simulate_responses, BoundModel.simulate_response

    def count_together(self, seeds, *, populations=None):
        drawn["together"] += 1
        return together(self, seeds, populations=populations)

    def count_alone(self, seed=None, *, population=None):
        drawn["alone"] += 1
        return alone(self, seed, population=population)

    monkeypatch.setattr(BoundModel, "simulate_responses", count_together)
    monkeypatch.setattr(BoundModel, "simulate_response", count_alone)
    batched = power(model, design, test="cond", nsim=12, seed=6, method="z", progress=False).simulations
    assert drawn == {"together": 1, "alone": 0}

    def unavailable(self, seeds, *, populations=None):
        raise MemoryError("no room for the batch")

    monkeypatch.setattr(BoundModel, "simulate_responses", unavailable)
    single = power(model, design, test="cond", nsim=12, seed=6, method="z", progress=False).simulations
    assert drawn["alone"] == 12
    pd.testing.assert_frame_equal(batched, single)


def test_a_batch_that_warns_is_refitted_replicate_by_replicate_with_the_batchs_numbers(monkeypatch):
    """The replicates of a dropped batch are refitted as batches of one: the numbers they have in any
    batch, and each with its own warnings (not the batch's: only the batch of several warned)."""
    import warnings

    model, design = rt_model(), rt_design(12, 8)
    plain = power(model, design, test="cond", nsim=6, seed=9, method="satterthwaite", progress=False).simulations
    many = PreparedLmm.fit_many
    sizes = []

    def warns_in_company(self, ys, *, reml, start=None):
        sizes.append(ys.shape[1])
        if ys.shape[1] > 1:
            warnings.warn("a note about the whole batch")
        return many(self, ys, reml=reml, start=start)

    monkeypatch.setattr(PreparedLmm, "fit_many", warns_in_company)
    refitted = power(model, design, test="cond", nsim=6, seed=9, method="satterthwaite", progress=False).simulations
    assert sizes == [6, 1, 1, 1, 1, 1, 1]
    pd.testing.assert_frame_equal(refitted, plain, check_exact=True)  # warnings column included
    assert not refitted["warnings"].str.contains("whole batch").any()


def test_replicates_do_not_depend_on_how_a_study_is_split():
    """Batches of 24 (serial) and of 12 (two processes) give bit-identical rows."""
    model, design = rt_model(), rt_design(12, 8)
    whole = power(model, design, test="cond", nsim=24, seed=5, method="z", progress=False)
    split = power(model, design, test="cond", nsim=24, seed=5, method="z", progress=False, executor=2)
    pd.testing.assert_frame_equal(whole.simulations, split.simulations)


def test_a_task_of_one_replicate_gives_the_numbers_it_has_in_a_larger_task(monkeypatch):
    """Tasks of 3, 3 and 1 replicates (as another executor or a resumed checkpoint may cut them)
    give the rows of one task of 7, bit for bit: fits, Satterthwaite df and p."""
    from glmmsim.analysis import replicates

    model, design = rt_model(), rt_design(12, 8)
    whole = power(model, design, test="cond", nsim=7, seed=8, method="satterthwaite", progress=False).simulations
    monkeypatch.setattr(replicates, "batch_size", lambda total, workers, **_: 3)
    sizes = []
    many = PreparedLmm.fit_many

    def fit_many(self, ys, *, reml, start=None):
        sizes.append(ys.shape[1])
        return many(self, ys, reml=reml, start=start)

    monkeypatch.setattr(PreparedLmm, "fit_many", fit_many)
    cut = power(model, design, test="cond", nsim=7, seed=8, method="satterthwaite", progress=False).simulations
    assert sizes == [3, 3, 1]  # the task of one is fitted as a batch too
    pd.testing.assert_frame_equal(whole, cut, check_exact=True)


def _starts(monkeypatch) -> list:
    """Record the start the runner gives each batched call."""
    seen = []
    many = PreparedLmm.fit_many

    def fit_many(self, ys, *, reml, start=None):
        seen.append(start)
        return many(self, ys, reml=reml, start=start)

    monkeypatch.setattr(PreparedLmm, "fit_many", fit_many)
    return seen


def test_the_batched_fits_start_at_the_generating_covariances(monkeypatch):
    model, design = rt_model(), rt_design(12, 8)
    seen = _starts(monkeypatch)
    power(model, design, test="cond", nsim=6, seed=3, method="z", progress=False)
    (start,) = seen
    subject = np.array([[50.0**2, 0.2 * 50 * 20], [0.2 * 50 * 20, 20.0**2]])
    np.testing.assert_allclose(start[0], subject / 80.0**2)  # the design's terms: subject, then item
    np.testing.assert_allclose(start[1], [[30.0**2 / 80.0**2]])


def test_an_analysis_model_other_than_the_truth_starts_where_lme4_does(monkeypatch):
    model, design = rt_model(), rt_design(12, 8)
    seen = _starts(monkeypatch)
    power(model, design, test="cond", nsim=6, seed=3, method="z", progress=False,
          fit_formula="rt ~ cond + (1 | subject) + (1 | item)")
    assert seen == [None]
