"""The lmm engine's own contract (no R needed; agreement with lme4 is in tests/validation/test_lmm_vs_lme4.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import glmmsim
from glmmsim.fit import EngineError
from glmmsim.fit.engines.lmm_engine import LmmEngine


def _crossed(seed: int = 1, subjects: int = 12, items: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    s, i, c = np.meshgrid(np.arange(subjects), np.arange(items), [0, 1], indexing="ij")
    s, i, c = s.ravel(), i.ravel(), c.ravel()
    d = pd.DataFrame({"subject": [f"s{v:02d}" for v in s], "item": [f"i{v:02d}" for v in i],
                      "cond": np.where(c == 1, "b", "a"), "x": rng.normal(size=len(s))})
    us = rng.normal(size=(subjects, 2)) * [0.7, 0.4]
    d["y"] = 0.5 * c + us[s, 0] + us[s, 1] * c + 0.5 * rng.normal(size=items)[i] + rng.normal(size=len(s))
    return d


FORMULA = "y ~ cond + (1 + cond | subject) + (1 | item)"


def test_default_engine_is_lmm_for_linear_mixed_models_only():
    d = _crossed()
    assert glmmsim.fit(FORMULA, d).engine == "lmm"
    assert glmmsim.fit.default_engine("gaussian", "identity") == "lmm"
    assert glmmsim.fit.default_engine("gaussian", "log") == "glmm"
    d["k"] = (d["y"] > 0).astype(int)
    assert glmmsim.fit("k ~ cond + (1 | subject)", d, family="binomial").engine == "glmm"


def test_result_contract_with_satterthwaite_df():
    res = glmmsim.fit(FORMULA, _crossed())
    assert res.engine == "lmm" and res.engine_version.startswith("lmm") and res.reml and res.converged
    row = res.fixed.loc["cond[T.b]"]
    assert 5 < row["df"] < 15  # about subjects - 1 for a within-subject effect with a random slope
    assert row["p"] == pytest.approx(2 * stats.t.sf(abs(row["statistic"]), row["df"]))
    t = res.test("cond", method="satterthwaite")
    assert (t.statistic_name, t.df) == ("t", row["df"])
    assert res.test("cond", method="kr").df > 0
    assert set(res.random) == {"subject", "item"}


def test_refuses_other_families_and_names_the_engines_that_fit_them():
    d = _crossed()
    d["k"] = (d["y"] > 0).astype(int)
    with pytest.raises(EngineError, match="engine 'lmm' fits linear mixed models.*binomial.*engine='glmm'"):
        glmmsim.fit("k ~ cond + (1 | subject)", d, family="binomial", engine="lmm")


def test_rank_deficient_fixed_part_names_the_column():
    d = _crossed()
    d["x2"] = 2.0 * d["x"]
    with pytest.raises(EngineError, match="'x2'.*linear combination"):
        glmmsim.fit("y ~ x + x2 + (1 | subject)", d, engine="lmm")


def test_fits_what_glmm_refuses():
    d = _crossed()
    for formula in ("y ~ x + (x || subject)", "y ~ x + (0 + x | subject)", "y ~ 1 + (1 + cond | subject)"):
        res = glmmsim.fit(formula, d, engine="lmm")
        assert res.converged and np.isfinite(res.loglik), formula
    # the likelihood-ratio test of a fixed effect whose random slope stays in the model
    lrt = glmmsim.fit(FORMULA, d, reml=False).test("cond", method="lrt")
    full = glmmsim.fit(FORMULA, d, reml=False).loglik
    nested = glmmsim.fit("y ~ 1 + (1 + cond | subject) + (1 | item)", d, reml=False).loglik
    assert lrt.statistic == pytest.approx(2 * (full - nested), rel=1e-6)


def test_singular_fit_follows_lme4s_rule():
    rng = np.random.default_rng(3)
    d = pd.DataFrame({"x": rng.normal(size=200), "g": np.repeat([f"g{i}" for i in range(20)], 10)})
    d["y"] = 1 + d["x"] + rng.normal(size=200)  # no group variance at all
    res = glmmsim.fit("y ~ x + (1 | g)", d, engine="lmm")
    assert res.singular and res.random["g"]["sd"]["Intercept"] < 1e-4 * res.sigma
    assert any("singular" in w for w in res.warnings)


def test_offset_is_subtracted():
    d = _crossed()
    d["off"] = np.linspace(-1, 1, len(d))
    shifted = d.assign(y=d["y"] + 3.0 * d["off"])
    a = glmmsim.fit("y ~ cond + (1 | subject)", d, engine="lmm")
    b = glmmsim.fit("y ~ cond + (1 | subject)", shifted, offset=3.0 * shifted["off"].to_numpy(), engine="lmm")
    np.testing.assert_allclose(a._beta, b._beta, rtol=1e-10)
    assert a.loglik == pytest.approx(b.loglik, rel=1e-12)


def test_nested_fit_for_lrt_reuses_the_prepared_structure():
    d = _crossed()
    fitter = glmmsim.fit.prepare(FORMULA, d, reml=False)
    res = fitter.fit(d["y"])
    res.test("cond", method="lrt")
    (nested,) = fitter._nested.values()
    full = fitter._prepare().structure
    assert nested.structure._z1t is full._z1t and nested.structure.d1 is full.d1  # shared, not rebuilt
    assert nested.structure.p == full.p - 1


def test_fit_many_equals_one_by_one():
    d = _crossed()
    prep = LmmEngine().prepare(glmmsim.fit.build_design(FORMULA, d))
    ys = np.column_stack([d["y"].to_numpy(), d["y"].to_numpy()[::-1]])
    many = prep.fit_many(ys, reml=True)
    for j, raw in enumerate(many):
        one = prep.fit(ys[:, j], reml=True)
        np.testing.assert_array_equal(raw.beta, one.beta)
        assert raw.loglik == one.loglik


@pytest.mark.parametrize("formula", [FORMULA, "y ~ cond + (1 + cond || subject) + (1 + cond | item)",
                                     "y ~ x + (1 | subject) + (0 + x | subject)", "y ~ x + (1 | subject/item)",
                                     # first factors of 3 (closed-form adjugate) and 4 columns (batched LU)
                                     "y ~ cond + (1 + cond || subject) + (1 | item)",
                                     "y ~ x + cond + (1 + x + cond | subject) + (1 | item)",
                                     "y ~ x + cond + (1 + x + cond || subject) + (1 | item)"])
def test_outer_product_and_levelwise_schur_complements_agree(formula, monkeypatch):
    """The two evaluations of the deviance (per-level outer products, per-level triangular solves) are one function."""
    d = _crossed()
    prep = LmmEngine().prepare(glmmsim.fit.build_design(formula, d))
    pls = prep.structure
    r_outer = prep.response(d["y"].to_numpy())
    assert r_outer.k is not None
    r_levels = prep.response(d["y"].to_numpy())
    r_levels.k = None
    rng = np.random.default_rng(0)
    for _ in range(5):
        theta = np.where(prep._lower == 0, np.abs(rng.normal(size=len(prep._lower))) + 0.05, rng.normal(size=len(prep._lower)))
        for reml in (True, False):
            assert pls.deviance(theta, r_outer, reml) == pytest.approx(pls.deviance(theta, r_levels, reml), rel=1e-11)


def test_deviance_work_does_not_grow_with_rows():
    """Replicating every row 5 times leaves every array a deviance evaluation reads the same size."""
    d = _crossed()
    big = pd.concat([d] * 5, ignore_index=True)
    small_pls = LmmEngine().prepare(glmmsim.fit.build_design(FORMULA, d)).structure
    big_pls = LmmEngine().prepare(glmmsim.fit.build_design(FORMULA, big)).structure
    for name in ("d1", "b", "c"):
        assert getattr(small_pls, name).shape == getattr(big_pls, name).shape
    np.testing.assert_allclose(5 * small_pls.c, big_pls.c, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("formula", [FORMULA, "y ~ cond + (1 + cond || subject) + (1 + cond | item)",
                                     "y ~ x + (1 | subject/item)"])
def test_analytic_gradient_matches_central_differences(formula):
    d = _crossed()
    prep = LmmEngine().prepare(glmmsim.fit.build_design(formula, d))
    pls = prep.structure
    assert pls.has_gradient
    r = prep.response(d["y"].to_numpy())
    theta = np.where(prep._lower == 0, 0.6, 0.2)
    for reml in (True, False):
        dev, grad = pls.deviance_gradient(theta, r, reml)
        assert dev == pytest.approx(pls.deviance(theta, r, reml), rel=1e-12)
        h = 1e-5
        numeric = [(pls.deviance(theta + h * e, r, reml) - pls.deviance(theta - h * e, r, reml)) / (2 * h)
                   for e in np.eye(len(theta))]
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-5)


def test_one_prepared_design_fits_from_several_threads():
    """No scratch state is shared between fits: threads get the serial results."""
    from concurrent.futures import ThreadPoolExecutor

    d = _crossed()
    prep = LmmEngine().prepare(glmmsim.fit.build_design(FORMULA, d))
    rng = np.random.default_rng(5)
    ys = [d["y"].to_numpy() + rng.normal(size=len(d)) for _ in range(8)]
    serial = [prep.fit(y, reml=True).loglik for y in ys]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda y: prep.fit(y, reml=True).loglik, ys))
    assert threaded == serial


def test_satterthwaite_df_from_several_threads():
    from concurrent.futures import ThreadPoolExecutor

    d = _crossed()
    fitter = glmmsim.fit.prepare(FORMULA, d)
    rng = np.random.default_rng(6)
    ys = [d["y"].to_numpy() + rng.normal(size=len(d)) for _ in range(6)]
    serial = [fitter.fit(y).test("cond", method="satterthwaite").df for y in ys]
    with ThreadPoolExecutor(3) as pool:
        threaded = list(pool.map(lambda y: fitter.fit(y).test("cond", method="satterthwaite").df, ys))
    assert threaded == serial
