"""Rows are identified the way designs are written: grouping, label and numeric columns, then occurrence."""

from __future__ import annotations

import numpy as np
import pandas as pd

import glmmsim
from glmmsim import power, power_curve, recovery
from glmmsim.analysis.power import plan_point
from glmmsim.analysis.replicates import PointState, new_token, row_key
from glmmsim.randomness import SeedTree

from ._study_models import fromscratch, rt_design, rt_model


def test_numeric_columns_identify_rows_and_repeats_are_numbered():
    model, design = fromscratch(float)
    assert row_key(model, design) == (("g", "x"), False)
    assert row_key(model, pd.concat([design, design], ignore_index=True)) == (("g", "x"), True)


def _effect_coded(subjects: int, per_cell: int) -> pd.DataFrame:
    """A within-subject condition coded -0.5/+0.5 and per_cell identical trials per cell, no trial column."""
    return pd.DataFrame({
        "subject": np.repeat([f"s{i:02d}" for i in range(subjects)], 2 * per_cell),
        "c": np.tile(np.repeat([-0.5, 0.5], per_cell), subjects),
    })


def _effect_model() -> glmmsim.Model:
    return glmmsim.Model("y ~ c + (1 + c | subject)", fixed={"Intercept": 0.0, "c": 0.4},
                         random={"subject": {"sd": {"Intercept": 0.5, "c": 0.2}}}, sigma=1.0)


def test_effect_coded_repeated_rows_run_in_power_curve_and_recovery_without_key():
    model = _effect_model()
    curve = power_curve(model, lambda subjects: _effect_coded(subjects, 5), along={"subjects": [6, 10]}, test="c",
                        nsim=10, progress=False)
    assert curve.table["failed"].eq(0).all()
    rec = recovery(model, _effect_coded(8, 5), nsim=5, progress=False)
    assert "c" in rec.table.index
    res = power(model, _effect_coded(8, 5), test="c", nsim=5, progress=False)
    assert "noise keyed by subject, c, occurrence" in res.summary()


def test_occurrence_numbers_keep_common_random_numbers_along_a_curve():
    """The 6-subject design's 5 identical trials per cell draw the same noise as in the 10-subject design."""
    model, tree, token = _effect_model(), SeedTree(3), new_token()
    small, large = (plan_point(model, _effect_coded(n, 5), point=i, token=token, tree=tree, test="c", method="auto",
                               engine="glmm", fit_formula=None, key=None, reml=None) for i, n in enumerate((6, 10)))
    seeds = tree.replicate(0)
    y_small = PointState(small).bound.simulate_response(seeds.noise, population=seeds.population)
    y_large = PointState(large).bound.simulate_response(seeds.noise, population=seeds.population)
    np.testing.assert_array_equal(y_small, y_large[: len(y_small)])


def test_designs_identified_by_labels_keep_their_key_and_numbers():
    """Numeric columns join the key only where labels did not identify rows: seeded results do not move."""
    model, design = rt_model(), rt_design(6, 4)
    assert row_key(model, design) == (("subject", "item", "cond"), False)
    d = glmmsim.design.crossed(subjects=2, items=3, within={"cond": ["a", "b"]}, repetitions=2,
                               covariates={"x": {"per": "trial"}}, seed=1)
    m = glmmsim.Model("y ~ cond + x + (1 | subject)", fixed={"Intercept": 0, "condb": 1, "x": 0.5},
                      random={"subject": 1}, sigma=1)
    assert row_key(m, d) == (("subject", "cond", "item", "rep"), False) or row_key(m, d)[1] is False


def test_an_explicit_key_is_still_honoured():
    model, design = fromscratch(float)
    res = power(model, design.assign(trial=np.arange(30)), test="x", nsim=5, progress=False, key=["trial"])
    assert "noise keyed by trial" in res.summary()
