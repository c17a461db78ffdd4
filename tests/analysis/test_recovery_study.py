"""recovery(): the table's contract, failures, the plot (bias and coverage: tests/validation)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from glmmsim.analysis import recovery
from glmmsim.errors import ParameterError

TABLE_COLUMNS = ["truth", "mean", "bias", "bias_se", "rmse", "coverage", "coverage_se"]


def test_recovery_contract(small_rt, tmp_path):
    model, design = small_rt
    rec = recovery(model, design, nsim=12, seed=2, progress=False)
    table = rec.table
    assert list(table.columns[:7]) == TABLE_COLUMNS
    assert {"failed", "singular", "n"} <= set(table.columns)
    assert list(table.index) == ["Intercept", "cond[T.b]", "sd(subject: Intercept)", "sd(subject: cond[T.b])",
                                 "corr(subject: Intercept, cond[T.b])", "sd(item: Intercept)", "sigma"]
    assert table.loc["cond[T.b]", "truth"] == 20 and table.loc["sigma", "truth"] == 80
    assert table.loc["corr(subject: Intercept, cond[T.b])", "truth"] == pytest.approx(0.2)
    est = rec.estimates[rec.estimates["parameter"] == "cond[T.b]"]["estimate"]
    assert table.loc["cond[T.b]", "mean"] == pytest.approx(est.mean())
    assert table.loc["cond[T.b]", "bias_se"] == pytest.approx(est.std(ddof=1) / math.sqrt(len(est)))
    assert table.loc["cond[T.b]", "rmse"] == pytest.approx(math.sqrt(((est - 20) ** 2).mean()))
    assert np.isnan(table.loc["sigma", "coverage"])  # no SE for variance parameters: no Wald interval
    fig = rec.plot()
    assert len([a for a in fig.axes if a.get_visible()]) == len(table)
    fig.savefig(tmp_path / "recovery.png")
    assert "sd(item: Intercept)" in str(rec)
    with pytest.raises(ParameterError, match="nsim"):
        recovery(model, design, nsim=1, progress=False)


@pytest.mark.parametrize("level", ["0.95", None, 1.5])
def test_recovery_level_that_is_not_a_fraction_is_named(small_rt, level):
    model, design = small_rt
    with pytest.raises(ParameterError, match="level must be a number between 0 and 1"):
        recovery(model, design, nsim=2, level=level, progress=False)


def test_recovery_plot_of_a_misspelt_parameter_suggests_the_right_one(small_rt):
    model, design = small_rt
    rec = recovery(model, design, nsim=2, seed=2, progress=False)
    with pytest.raises(ParameterError, match=r"unknown parameter\(s\) 'sigm'\. Did you mean 'sigma'\?"):
        rec.plot(parameters=["sigm"])
