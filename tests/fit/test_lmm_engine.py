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


def _replicates(d: pd.DataFrame, count: int, seed: int = 7) -> np.ndarray:
    """Responses of the standard crossed model (slope SD small enough that some fits are singular)."""
    rng = np.random.default_rng(seed)
    s = d["subject"].str[1:].astype(int).to_numpy()
    i = d["item"].str[1:].astype(int).to_numpy()
    c = (d["cond"] == "b").to_numpy(dtype=float)
    out = np.empty((len(d), count))
    for r in range(count):
        us = rng.normal(size=(s.max() + 1, 2)) * [0.6, 0.15]
        out[:, r] = 0.3 * c + us[s, 0] + us[s, 1] * c + 0.3 * rng.normal(size=i.max() + 1)[i] + rng.normal(size=len(d))
    return out


@pytest.mark.parametrize("formula, reml, share", [
    (FORMULA, True, 0.9), (FORMULA, False, 0.9), ("y ~ x + (1 + x | subject)", True, 0.9),
    ("y ~ 1 + (1 + cond | subject) + (1 | item)", False, 0.9),
    # BOBYQA stops short more often on these: a ridge (``||`` with a factor) and a 6-element theta
    ("y ~ cond + (1 + cond || subject) + (1 | item)", True, 0.7),
    ("y ~ cond + (1 + cond | subject) + (1 + cond | item)", True, 0.8)])
def test_fit_many_reaches_the_optimum_of_fitting_one_by_one(formula, reml, share):
    """The batched fits reach BOBYQA's optimum where BOBYQA reaches it, and never a lower likelihood.

    BOBYQA (lme4's optimizer, ours in fit()) sometimes stops short: at a boundary point of lower
    likelihood, or just off the boundary (a diagonal theta in [1e-4, 1e-3): not singular by lme4's
    rule where the optimum is singular). Newton converges to the optimum itself.
    """
    d = _crossed(subjects=20, items=10)
    ys = _replicates(d, 40)
    prep = LmmEngine().prepare(glmmsim.fit.build_design(formula, d))
    many = prep.fit_many(ys, reml=reml)
    one = [prep.fit(ys[:, j], reml=reml) for j in range(ys.shape[1])]
    assert sum(o.singular for o in one) >= 2  # the boundary is exercised
    diagonal = prep._lower == 0.0
    agree = flags = 0
    for m, o in zip(many, one):
        assert m.converged and m.reml == reml
        assert m.loglik >= o.loglik - 1e-9 * abs(o.loglik)
        short = np.any((o.native.theta[diagonal] >= 1e-4) & (o.native.theta[diagonal] < 1e-3))
        if m.loglik - o.loglik > 1e-7 * abs(o.loglik) or short:
            continue  # BOBYQA stopped short
        agree += 1
        se = np.sqrt(np.diag(o.vcov))
        # BOBYQA's own stopping error is of this order (the lme4 corpus holds fit_many to lme4's tolerances)
        np.testing.assert_array_less(np.abs(m.beta - o.beta), 1e-3 * se)
        np.testing.assert_allclose(np.sqrt(np.diag(m.vcov)), se, rtol=2e-3)
        # on a ridge of the likelihood (``||`` with a factor is overparameterized) an equally likely point may
        # be singular or not
        flags += m.singular != o.singular
        assert m.sigma == pytest.approx(o.sigma, rel=1e-4)
    assert agree >= share * len(one)
    assert flags <= 0.05 * len(one)


# the second: lme4's ridge, where some responses are refitted alone by BOBYQA (a column of the batch
# then goes to the single-response path, which must not see how the column lay in memory)
@pytest.mark.parametrize("formula", [FORMULA, "y ~ cond + (1 + cond || subject) + (1 | item)"])
@pytest.mark.parametrize("reml", [True, False])
def test_fit_many_result_does_not_depend_on_the_batch(formula, reml):
    """A response's fit is bit for bit the same alone, in a batch, in another batch, in another order."""
    d = _crossed(subjects=20, items=10)
    ys = _replicates(d, 12, seed=3)
    prep = LmmEngine().prepare(glmmsim.fit.build_design(formula, d))
    alone = [prep.fit_many(ys[:, [j]], reml=reml)[0] for j in range(ys.shape[1])]
    batches = {"all": prep.fit_many(ys, reml=reml), "reversed": prep.fit_many(ys[:, ::-1], reml=reml)[::-1],
               "with copies": prep.fit_many(np.column_stack([ys, ys[:, :5]]), reml=reml)[: ys.shape[1]]}
    for name, fits in batches.items():
        for a, b in zip(alone, fits):
            assert a.loglik == b.loglik, name
            np.testing.assert_array_equal(a.beta, b.beta)
            np.testing.assert_array_equal(a.vcov, b.vcov)
            np.testing.assert_array_equal(a.native.theta, b.native.theta)


def _alone(raw):
    """``raw`` without its fit_many batch: its tests then run the per-fit df calculator."""
    import dataclasses

    return dataclasses.replace(raw, native=dataclasses.replace(raw.native, batch=None, batch_index=-1), df_source=None)


@pytest.mark.parametrize("formula, reml, offset", [
    (FORMULA, True, False), (FORMULA, False, False), ("y ~ cond * x + (1 + cond | subject) + (1 | item)", True, True)])
def test_fit_many_df_equal_per_fit_df_in_any_batch(formula, reml, offset):
    """The batch's df (one stacked call) are each fit's own df to 1e-10, whichever fits share the batch."""
    d = _crossed(subjects=20, items=10)
    if offset:
        d["off"] = np.linspace(-1.0, 1.0, len(d))
    ys = _replicates(d, 10, seed=8)
    prep = LmmEngine().prepare(glmmsim.fit.build_design(formula, d, offset="off" if offset else None))
    fits = prep.fit_many(ys, reml=reml)
    p = fits[0].beta.size
    terms = np.eye(p)[1:]  # the F test of every coefficient but the intercept
    calc = prep._ddf_calculator()
    dfs = np.array([raw.df_source() for raw in fits])
    for j, raw in enumerate(fits):
        assert raw.native.batch is not None
        np.testing.assert_allclose(dfs[j], prep._satterthwaite_dfs(ys[:, j], raw.native, reml), rtol=1e-10)
        for ddf in ("Satterthwaite", "Kenward-Roger"):
            got = prep.contrast(ys[:, j], terms, reml=reml, ddf=ddf, native=raw)
            want = prep.contrast(ys[:, j], terms, reml=reml, ddf=ddf, native=_alone(raw))
            np.testing.assert_allclose(got, want, rtol=1e-10)
    assert calc is prep._ddf_calculator()
    # another batch: a subset in another order, with copies of other responses
    pick = [7, 2, 9]
    other = prep.fit_many(np.column_stack([ys[:, pick], ys[:, :4]]), reml=reml)[:3]
    for j, raw in zip(pick, other):
        np.testing.assert_allclose(raw.df_source(), dfs[j], rtol=1e-12)
        np.testing.assert_allclose(prep.contrast(ys[:, j], terms, reml=reml, ddf="Satterthwaite", native=raw),
                                   prep.contrast(ys[:, j], terms, reml=reml, ddf="Satterthwaite", native=fits[j]),
                                   rtol=1e-12)


@pytest.mark.parametrize("formula", ["y ~ cond + (1 | item) + (1 + cond | subject)",
                                     "y ~ x + (1 | subject/item) + (0 + x | item)"])
def test_the_batchs_theta_in_design_order_is_each_fits_own(formula):
    d = _crossed()
    prep = LmmEngine().prepare(glmmsim.fit.build_design(formula, d))
    assert [b.design_index for b in prep._blocks] != sorted(b.design_index for b in prep._blocks)  # lme4 reorders
    fits = prep.fit_many(_replicates(d, 3, seed=9), reml=True)
    group = fits[0].native.batch
    for i, raw in enumerate(fits):
        assert raw.native.batch is group and raw.native.batch_index == i
        np.testing.assert_array_equal(group._thetas[i], raw.native.theta_design(prep._blocks))


def test_fit_many_computes_the_batchs_df_once_and_only_when_asked(monkeypatch):
    from glmmsim.fit.engines.lmm_ddf import DdfCalculator

    calls = {"many": 0, "one": 0}
    many, one = DdfCalculator.satterthwaite_dfs_many, DdfCalculator.satterthwaite_dfs

    def count(name, f):
        def wrapped(*args, **kwargs):
            calls[name] += 1
            return f(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(DdfCalculator, "satterthwaite_dfs_many", count("many", many))
    monkeypatch.setattr(DdfCalculator, "satterthwaite_dfs", count("one", one))
    d = _crossed()
    fitter = glmmsim.fit.prepare(FORMULA, d)
    results = fitter.fit_many(_replicates(d, 6, seed=9))
    z = [res.test("cond", method="z") for res in results]
    assert calls == {"many": 0, "one": 0} and all(np.isnan(t.df) for t in z)  # a z study never pays
    t = [res.test("cond", method="satterthwaite") for res in results]
    table = results[3].fixed
    assert calls == {"many": 1, "one": 0}
    assert table.loc["cond[T.b]", "df"] == t[3].df and all(np.isfinite(x.df) and x.df > 0 for x in t)


def test_fit_many_in_threads_at_once_gives_the_serial_results():
    """The batched evaluation reuses scratch arrays: one set per thread, so concurrent fits do not mix."""
    import threading

    d = _crossed()
    prep = LmmEngine().prepare(glmmsim.fit.build_design(FORMULA, d))
    batches = [_replicates(d, 70, seed=20 + t) for t in range(3)]  # 70 > 64 responses: two passes each call
    serial = [[(f.loglik, f.beta.tolist()) for f in prep.fit_many(ys, reml=True)] for ys in batches]
    results: list = [None] * len(batches)
    barrier = threading.Barrier(len(batches))

    def fit(t):
        barrier.wait()
        results[t] = [[(f.loglik, f.beta.tolist()) for f in prep.fit_many(batches[t], reml=True)] for _ in range(2)]

    threads = [threading.Thread(target=fit, args=(t,)) for t in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for t, runs in enumerate(results):
        assert runs[0] == serial[t] and runs[1] == serial[t]


def test_fit_many_df_use_the_responses_as_they_were_fitted():
    """A writable array is copied for the lazy df (the caller may change it); a read-only array
    that owns its numbers (what the study runner passes) is kept as it is."""
    d = _crossed()
    ys = _replicates(d, 5, seed=11)
    prep = LmmEngine().prepare(glmmsim.fit.build_design(FORMULA, d))
    fits = prep.fit_many(ys, reml=True)
    expected = [prep._satterthwaite_dfs(ys[:, j].copy(), fit.native, True) for j, fit in enumerate(fits)]
    ys[:] = 0.0  # the caller reuses its array before asking for the df
    for fit, want in zip(fits, expected):
        np.testing.assert_allclose(fit.df_source(), want, rtol=1e-10)
    frozen = _replicates(d, 5, seed=11)
    frozen.flags.writeable = False
    kept = prep.fit_many(frozen, reml=True)
    assert kept[0].native.batch._raw_ys is frozen
    view = _replicates(d, 5, seed=11)[:, :5]  # read-only but a view: its base may still change
    view.flags.writeable = False
    assert prep.fit_many(view, reml=True)[0].native.batch._raw_ys is not view


def test_fit_many_tells_constant_columns_as_ptp_does():
    from glmmsim.fit.engines.lmm_engine import _HEAD_ROWS, _varies

    rng = np.random.default_rng(4)
    ys = rng.normal(size=(200, 6))
    ys[:, 1] = 3.0  # constant
    ys[:, 2] = 1.0
    ys[_HEAD_ROWS + 50, 2] = 1.5  # constant over the first rows only
    ys[:, 3] = np.r_[np.full(100, 2.0), np.full(100, -2.0)]
    np.testing.assert_array_equal(_varies(ys), np.ptp(ys, axis=0) > 0)
    d = _crossed()
    y = _replicates(d, 3, seed=12)
    y[:, 1] = 7.0
    fits = LmmEngine().prepare(glmmsim.fit.build_design(FORMULA, d)).fit_many(y, reml=True)
    assert np.isnan(fits[1].loglik) and not fits[1].converged and "does not vary" in fits[1].warnings[0]
    assert np.isfinite(fits[0].loglik) and np.isfinite(fits[2].loglik)


def test_a_failing_batch_df_call_leaves_each_fit_its_own_df(monkeypatch):
    """Should the stacked call fail (a numerically hopeless fit), each fit computes, and fails, on its own."""
    from glmmsim.fit.engines.lmm_ddf import DdfCalculator

    def fail(*args, **kwargs):
        raise np.linalg.LinAlgError("Matrix is not positive definite")

    d = _crossed()
    ys = _replicates(d, 4, seed=10)
    prep = LmmEngine().prepare(glmmsim.fit.build_design(FORMULA, d))
    fits = prep.fit_many(ys, reml=True)
    monkeypatch.setattr(DdfCalculator, "satterthwaite_dfs_many", fail)
    monkeypatch.setattr(DdfCalculator, "kenward_roger_many", fail)
    L = np.array([[0.0, 1.0]])
    for j, raw in enumerate(fits):
        np.testing.assert_array_equal(raw.df_source(), prep._satterthwaite_dfs(ys[:, j], raw.native, True))
        assert prep.contrast(ys[:, j], L, reml=True, ddf="Kenward-Roger", native=raw) == \
            prep.contrast(ys[:, j], L, reml=True, ddf="Kenward-Roger", native=_alone(raw))


@pytest.mark.parametrize("reml", [True, False])
def test_fit_many_likelihood_ratio_tests_fit_the_batchs_nested_models_together(reml, monkeypatch):
    """The first LRT of a batch fits every response's ML models in fit_many calls; the same in any batch."""
    from glmmsim.fit.engines.lmm_engine import PreparedLmm

    d = _crossed(subjects=20, items=10)
    ys = _replicates(d, 8, seed=11)
    fitter = glmmsim.fit.prepare(FORMULA, d, engine="lmm", reml=reml)
    calls = {"fit_many": 0}
    many = PreparedLmm._fit_many

    def counted(self, ys, reml, thetas):
        calls["fit_many"] += 1
        return many(self, ys, reml, thetas)

    results = fitter.fit_many(ys)
    monkeypatch.setattr(PreparedLmm, "_fit_many", counted)
    stats_ = [res.test("cond", method="lrt").statistic for res in results]
    assert calls["fit_many"] == (2 if reml else 1)  # the nested ML fits (and the full ML refits of REML fits)
    monkeypatch.setattr(PreparedLmm, "_fit_many", many)
    nested = fitter._nested[(1,)]
    prep = fitter._prepare()
    for j, stat in enumerate(stats_):
        start = prep.floored(results[j]._raw.native.theta)[None, :]  # the ML fits start at the fit's estimate
        full = prep._fit_many(ys[:, [j]], False, start)[0].loglik if reml else results[j].loglik
        reduced = nested._fit_many(ys[:, [j]], False, start)[0].loglik
        assert stat == max(0.0, 2.0 * (full - reduced))  # bit for bit the response's own batched fits
        one = fitter.fit(ys[:, j]).test("cond", method="lrt").statistic  # one by one (BOBYQA)
        assert stat == pytest.approx(one, rel=1e-4, abs=1e-6)
    other = fitter.fit_many(ys[:, [5, 1]])
    assert [res.test("cond", method="lrt").statistic for res in other] == [stats_[5], stats_[1]]


def _generating_start(fitter) -> list[np.ndarray]:
    """The relative covariances ``_replicates`` draws from, one per term of the fitter's design."""
    by_factor = {"subject": np.diag([0.6, 0.15]) ** 2, "item": np.array([[0.09]])}
    return [by_factor[td.term.factor] for td in fitter.design.terms]


@pytest.mark.parametrize("reml", [True, False])
def test_fit_many_from_a_start_reaches_the_same_optimum_in_fewer_evaluations(reml):
    d = _crossed(subjects=20, items=10)
    ys = _replicates(d, 40, seed=12)
    fitter = glmmsim.fit.prepare(FORMULA, d, engine="lmm", reml=reml)
    assert fitter._prepare().unique_optimum
    plain, started = fitter.fit_many(ys), fitter.fit_many(ys, start=_generating_start(fitter))
    assert sum(r.singular for r in plain) >= 2  # the boundary is exercised
    for a, b in zip(plain, started):
        assert b.loglik == pytest.approx(a.loglik, rel=1e-9)
        assert a.singular == b.singular
        fa, fb = a.fixed_arrays, b.fixed_arrays
        np.testing.assert_array_less(np.abs(fb.estimate - fa.estimate), 1e-5 * fa.se)
        np.testing.assert_allclose(fb.se, fa.se, rtol=1e-4)
    cost = [np.mean([r._raw.native.evaluations for r in fits]) for fits in (plain, started)]
    assert cost[1] < 0.85 * cost[0]


def test_fits_from_a_start_do_not_depend_on_the_batch():
    """The shared first Hessian of a start comes from the design and the start, not from the batch's responses."""
    d = _crossed(subjects=20, items=10)
    ys = _replicates(d, 8, seed=15)
    fitter = glmmsim.fit.prepare(FORMULA, d, engine="lmm")
    start = _generating_start(fitter)
    whole = fitter.fit_many(ys, start=start)
    alone = [fitter.fit_many(ys[:, [j]], start=start)[0] for j in range(ys.shape[1])]
    fresh = glmmsim.fit.prepare(FORMULA, d, engine="lmm").fit_many(ys[:, ::-1], start=start)[::-1]
    for a, b, c in zip(whole, alone, fresh):
        assert a.loglik == b.loglik == c.loglik
        np.testing.assert_array_equal(a._raw.native.theta, b._raw.native.theta)
        np.testing.assert_array_equal(a._raw.vcov, c._raw.vcov)


def test_a_start_is_not_used_where_the_optimum_is_not_unique():
    """``(1 + cond || subject)`` with a factor ``cond`` spans the intercept twice: lme4's answer follows its path."""
    d = _crossed()
    ys = _replicates(d, 6, seed=13)
    fitter = glmmsim.fit.prepare("y ~ cond + (1 + cond || subject) + (1 | item)", d, engine="lmm")
    assert not fitter._prepare().unique_optimum
    start = [np.array([[0.3]]), np.eye(2) * 0.1, np.array([[0.09]])]
    for a, b in zip(fitter.fit_many(ys), fitter.fit_many(ys, start=start)):
        assert a.loglik == b.loglik
        np.testing.assert_array_equal(a._raw.native.theta, b._raw.native.theta)


def test_fitter_fit_many_checks_the_start_before_fitting():
    from glmmsim.errors import ParameterError

    d = _crossed()
    ys = _replicates(d, 2, seed=14)
    fitter = glmmsim.fit.prepare(FORMULA, d, engine="lmm")
    with pytest.raises(ParameterError, match=r"list of 2 covariance matrices.*\(1 \+ cond \| subject\)") as err:
        fitter.fit_many(ys, start=[np.eye(2)])
    assert err.value.parameter == "start"
    with pytest.raises(ParameterError, match=r"term \(1 \| item\) must be a 1 x 1 covariance.*Intercept.*shape \(2, 2\)") as err:
        fitter.fit_many(ys, start=[np.eye(2), np.eye(2)])
    assert err.value.term == "(1 | item)"
    with pytest.raises(ParameterError, match="not symmetric"):
        fitter.fit_many(ys, start=[np.array([[1.0, 0.5], [0.0, 1.0]]), np.eye(1)])
    with pytest.raises(ParameterError, match="negative eigenvalue"):
        fitter.fit_many(ys, start=[np.array([[1.0, 2.0], [2.0, 1.0]]), np.eye(1)])
    with pytest.raises(ParameterError, match="not numbers"):
        fitter.fit_many(ys, start=[np.eye(2), "big"])
    glmm = glmmsim.fit.prepare(FORMULA, d, engine="glmm")  # an engine that starts where it always does
    plain = glmm.fit_many(ys)
    assert [r.loglik for r in glmm.fit_many(ys, start=_generating_start(glmm))] == [r.loglik for r in plain]
    with pytest.raises(ParameterError):
        glmm.fit_many(ys, start=[np.eye(3)])


def test_fit_many_refits_what_it_does_not_settle_with_bobyqa(monkeypatch):
    """With the batched solve made to settle nothing, every response is fitted exactly as by fit()."""
    from glmmsim.fit.engines import lmm_batch

    d = _crossed()
    ys = _replicates(d, 4, seed=5)
    prep = LmmEngine().prepare(glmmsim.fit.build_design(FORMULA, d))
    monkeypatch.setattr(lmm_batch, "MAX_ITER", 0)
    for raw, j in zip(prep.fit_many(ys, reml=True), range(4)):
        one = prep.fit(ys[:, j], reml=True)
        np.testing.assert_array_equal(raw.beta, one.beta)
        assert raw.loglik == one.loglik and raw.native.evaluations == one.native.evaluations


def test_newtons_untried_last_step_is_undone_where_it_raises_the_deviance():
    """Newton takes its last (short) step without evaluating it; the final factorization keeps it only
    where it passes Armijo's test, and otherwise returns to theta before it."""
    from glmmsim.fit.engines import lmm_batch

    d = _crossed()
    ys = _replicates(d, 2, seed=5)
    batch = LmmEngine().prepare(glmmsim.fit.build_design(FORMULA, d))._batch()
    resp = batch.responses(ys)
    best = lmm_batch.minimize(batch, resp, reml=True, start=np.ones(batch.nt))
    assert best.settled.all()
    off = best.theta + 0.3  # a "step" that raises the deviance (response 0) or lowers it (response 1)
    dev_off, _, _ = batch.evaluate(off, resp, reml=True, gradient=False)
    assert (dev_off > best.deviance).all()
    stepped = np.array([True, True])
    before = np.array([best.theta[0], off[1]])
    before_dev = np.array([best.deviance[0], dev_off[1]])
    descent = np.array([-1e-3, best.deviance[1] - dev_off[1]])
    theta = np.array([off[0], best.theta[1]])
    out = lmm_batch._finish(batch, theta, before_dev.copy(), np.zeros(2, dtype=np.int64), np.ones(2, dtype=bool),
                            resp, True, untried=(stepped, before, before_dev, descent))
    np.testing.assert_array_equal(out.theta, best.theta)  # response 0 undone, response 1 kept
    np.testing.assert_array_equal(out.deviance, best.deviance)
    np.testing.assert_array_equal(out.beta, best.beta)
    np.testing.assert_array_equal(out.vcov_unscaled, best.vcov_unscaled)


def test_the_boundary_check_after_an_undone_step_starts_from_theta_before_it():
    """lme4's check (a diagonal element below BOUNDARY_TOL onto 0 where the deviance does not rise) is made
    on the theta a response ends at: after an undone step, on theta before the step."""
    from glmmsim.fit.engines import lmm_batch

    d = _crossed()
    ys = _replicates(d, 2, seed=5)
    batch = LmmEngine().prepare(glmmsim.fit.build_design(FORMULA, d))._batch()
    resp = batch.responses(ys)
    best = lmm_batch.minimize(batch, resp, reml=True, start=np.ones(batch.nt))
    slope_diag = batch.columns[1][0]  # the subject slope's own element: its column has nothing below it
    before = best.theta.copy()
    before[:, slope_diag] = 5e-6  # within BOUNDARY_TOL of the bound
    before_dev, _, _ = batch.evaluate(before, resp, reml=True, gradient=False)
    stepped = before.copy()
    stepped[0] += 0.3  # response 0's step raises the deviance and is undone; response 1's keeps theta
    out = lmm_batch._finish(batch, stepped, before_dev.copy(), np.zeros(2, dtype=np.int64), np.ones(2, dtype=bool),
                            resp, True, untried=(np.array([True, False]), before, before_dev, np.array([-1e-3, 0.0])))
    on_bound = before.copy()
    on_bound[:, slope_diag] = 0.0
    dev_bound, _, _ = batch.evaluate(on_bound, resp, reml=True, gradient=False)
    moves = dev_bound <= before_dev + 1e-10 * np.abs(before_dev)
    np.testing.assert_array_equal(out.theta, np.where(moves[:, None], on_bound, before))
    np.testing.assert_array_equal(out.deviance, np.where(moves, dev_bound, before_dev))
    assert np.isfinite(out.beta).all()


def test_fit_many_without_the_outer_product_form_fits_one_by_one(monkeypatch):
    """A design too large for the batched evaluation's tensors is fitted response by response."""
    from glmmsim.fit.engines import lmm_pls

    monkeypatch.setattr(lmm_pls, "OUTER_LIMIT", 0)
    d = _crossed()
    ys = _replicates(d, 3, seed=2)
    prep = LmmEngine().prepare(glmmsim.fit.build_design(FORMULA, d))
    assert prep._batch() is None
    for j, raw in enumerate(prep.fit_many(ys, reml=False)):
        one = prep.fit(ys[:, j], reml=False)
        assert raw.loglik == one.loglik and raw.native.optimizer == "bobyqa"


def test_fit_many_in_small_chunks_gives_the_same_fits(monkeypatch):
    from glmmsim.fit.engines import lmm_engine

    d = _crossed()
    ys = _replicates(d, 5, seed=4)
    prep = LmmEngine().prepare(glmmsim.fit.build_design(FORMULA, d))
    whole = prep.fit_many(ys, reml=True)
    monkeypatch.setattr(lmm_engine, "BATCH_ENTRIES", 1)  # one response a chunk
    for a, b in zip(whole, prep.fit_many(ys, reml=True)):
        assert a.loglik == b.loglik
        np.testing.assert_array_equal(a.vcov, b.vcov)


def test_fit_many_reports_a_constant_response_and_fits_the_others():
    d = _crossed()
    ys = _replicates(d, 3, seed=6)
    ys[:, 1] = 2.0
    prep = LmmEngine().prepare(glmmsim.fit.build_design(FORMULA, d))
    fits = prep.fit_many(ys, reml=True)
    assert not fits[1].converged and np.isnan(fits[1].beta).all() and "does not vary" in fits[1].warnings[0]
    assert fits[0].converged and fits[2].converged
    assert fits[2].loglik == pytest.approx(prep.fit(ys[:, 2], reml=True).loglik, rel=1e-8)


def test_fitter_fit_many_results_do_not_change_with_the_callers_array():
    """The fits keep their responses (df and likelihood-ratio refits read them later): a caller
    reusing its array changes nothing; a read-only array that owns its numbers is not copied."""
    d = _crossed()
    fitter = glmmsim.fit.prepare(FORMULA, d)
    ys = _replicates(d, 3, seed=13)

    def tests(fits):
        return [(t.df, t.statistic) for t in (fits[j].test("cond", method=m) for j in range(3)
                                              for m in ("satterthwaite", "lrt"))]

    expected = tests(fitter.fit_many(ys.copy()))
    fits = fitter.fit_many(ys)
    ys[:] = 0.0  # before any test has read the responses
    np.testing.assert_array_equal(tests(fits), expected)
    frozen = _replicates(d, 3, seed=13)
    frozen.flags.writeable = False
    assert all(np.shares_memory(res._y, frozen) for res in fitter.fit_many(frozen))


def test_fitter_fit_many_checks_its_input_and_keeps_column_order():
    from glmmsim.errors import DataError

    d = _crossed()
    fitter = glmmsim.fit.prepare(FORMULA, d)
    ys = _replicates(d, 3, seed=8)
    with pytest.raises(DataError, match=r"\(n, K\) array.*192 rows"):
        fitter.fit_many(ys[:-1])
    bad = ys.copy()
    bad[4, 2] = np.nan
    with pytest.raises(DataError, match="missing or infinite; first offending row 4"):
        fitter.fit_many(bad)
    res = fitter.fit_many(ys)
    assert [r.engine for r in res] == ["lmm"] * 3
    for j, r in enumerate(res):
        assert r.loglik == pytest.approx(fitter.fit(ys[:, j]).loglik, rel=1e-8)
        assert r.test("cond", method="z").p == pytest.approx(fitter.fit(ys[:, j]).test("cond", method="z").p, abs=1e-6)


def test_engines_without_fit_many_fit_one_by_one():
    from glmmsim.fit.protocol import fit_many

    d = _crossed()
    ys = _replicates(d, 2, seed=9)

    class OneByOne:
        calls = 0

        def fit(self, y, *, reml):
            OneByOne.calls += 1
            return float(y.sum())

    assert fit_many(OneByOne(), ys, reml=True) == [float(ys[:, 0].sum()), float(ys[:, 1].sum())]
    assert OneByOne.calls == 2


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


def test_newton_step_inverse_takes_the_eigendecomposition_only_where_needed():
    """Positive definite, indefinite and ill-conditioned Hessians: the inverse and the convex flag of the
    eigendecompositions for every one, and each one's the same alone as in the batch."""
    from glmmsim.fit.engines import lmm_batch

    rng = np.random.default_rng(11)
    a = rng.normal(size=(12, 4, 4))
    hess = a @ a.transpose(0, 2, 1) + 0.1 * np.eye(4)
    hess[3] = -hess[3]  # negative definite
    hess[5] = np.diag([1.0, -2.0, 3.0, 4.0])  # indefinite
    hess[7] = np.diag([1e-10, 1.0, 2.0, 3.0])  # positive definite, badly conditioned: not convex
    hess[9] = np.diag([1e-7, 1.0, 2.0, 3.0])  # convex, though the trace bound cannot tell
    inv, convex = lmm_batch._positive_inverse(hess)
    ref, ref_convex = lmm_batch._eigen_inverse(hess)
    np.testing.assert_array_equal(convex, ref_convex)
    assert convex.tolist() == [i not in (3, 5, 7) for i in range(12)]
    np.testing.assert_allclose(inv, ref, rtol=1e-9, atol=1e-12 * np.abs(ref).max())
    for i in range(12):  # each matrix's own numbers, whichever matrices share its batch
        alone, flag = lmm_batch._positive_inverse(hess[[i, i]])
        np.testing.assert_array_equal(alone[0], inv[i])
        assert flag[0] == convex[i]


def test_newton_step_inverse_when_one_lu_fails_inverts_each_matrix_alone(monkeypatch):
    """A batched inverse that raises for one matrix falls back to one call a matrix: the same bits for the
    others, and the failing one decided by its eigendecomposition."""
    from glmmsim.fit.engines import lmm_batch

    rng = np.random.default_rng(12)
    a = rng.normal(size=(5, 3, 3))
    hess = a @ a.transpose(0, 2, 1) + np.eye(3)
    expected, flags = lmm_batch._positive_inverse(hess)
    real = np.linalg.inv

    def inv(x):
        if x.ndim == 3 or np.array_equal(x, hess[2]):
            raise np.linalg.LinAlgError("Singular matrix")
        return real(x)

    monkeypatch.setattr(lmm_batch.np.linalg, "inv", inv)
    got, got_flags = lmm_batch._positive_inverse(hess)
    for i in (0, 1, 3, 4):
        np.testing.assert_array_equal(got[i], expected[i])
    np.testing.assert_allclose(got[2], expected[2], rtol=1e-10)  # by its eigendecomposition
    np.testing.assert_array_equal(got_flags, flags)


@pytest.mark.parametrize("shape, order", [((90, 253), "C"), ((253, 90), "C"), ((22, 60), "F")])
def test_row_products_give_a_row_the_same_bits_in_any_batch(shape, order):
    """The batched evaluation's products with the design's fixed matrices: a row's result is the same bit for
    bit whether it comes with 1, 5, 20 or 128 rows (a block of 16 or 32 rows where this machine's BLAS allows,
    else of ROW_BLOCK), and equals the plain product."""
    from glmmsim.fit.engines import lmm_batch

    rng = np.random.default_rng(13)
    b = rng.normal(size=shape)
    b = np.asfortranarray(b) if order == "F" else b
    a = rng.normal(size=(lmm_batch.ROW_BLOCK, shape[0]))
    whole = lmm_batch._rows(a, b)
    np.testing.assert_allclose(whole, a @ b, rtol=1e-12, atol=1e-12 * np.abs(whole).max())
    for k in (1, 5, 20):
        rows = np.sort(rng.choice(len(a), k, replace=False))
        np.testing.assert_array_equal(lmm_batch._rows(a[rows], b), whole[rows])


def test_row_products_keep_the_full_block_where_a_small_one_would_change_the_bits(monkeypatch):
    """Where the check says a small block's rows differ from a full block's, every product takes the full block."""
    from glmmsim.fit.engines import lmm_batch

    used = []
    monkeypatch.setattr(lmm_batch, "_block_agrees", lambda rows, shape, order: False)
    monkeypatch.setattr(lmm_batch._SCRATCH, "get", lambda name, shape: used.append(shape) or np.empty(shape))
    lmm_batch._rows(np.ones((3, 4)), np.ones((4, 2)))
    assert used == [(lmm_batch.ROW_BLOCK, 4)]


def test_small_row_block_check_runs_once_per_shape_and_says_no_to_any_difference(monkeypatch):
    """The check compares a small block's rows with a full block's on this machine's BLAS, once per shape; a
    strided matrix, a block that does not divide ROW_BLOCK, or any row that differs keeps the full block."""
    from glmmsim.fit.engines import lmm_batch

    assert lmm_batch._block_agrees(16, (7, 5), "") is False
    assert lmm_batch._block_agrees(48, (7, 5), "C") is False
    before = lmm_batch._block_agrees.cache_info()
    first = lmm_batch._block_agrees(16, (11, 6), "C")
    assert lmm_batch._block_agrees(16, (11, 6), "C") == first
    after = lmm_batch._block_agrees.cache_info()
    assert (after.misses, after.hits) == (before.misses + 1, before.hits + 1)
    calls = []
    monkeypatch.setattr(lmm_batch.np, "array_equal", lambda x, y: calls.append(1) or len(calls) < 3)
    assert lmm_batch._block_agrees.__wrapped__(16, (11, 6), "C") is False  # the third block of rows differs
