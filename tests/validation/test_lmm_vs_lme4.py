"""The lmm engine agrees with lme4 1.1-31 (the lme4 engine) on a corpus of linear mixed models.

Tolerances from issue 19: log-likelihood within 1e-6 relative, fixed effects within
1e-4 of their SE, SEs within 1e-4 relative, likelihood-ratio statistics within 1e-5,
singular flags equal, Satterthwaite df within 1e-3 relative (lmerTest), Kenward-Roger df
within 1e-2 relative (pbkrtest). The corpus covers balanced and unbalanced crossed designs,
nested factors (``/`` and ``:``), correlated and ``||`` terms, ``(0 + x | g)``,
categorical slopes, slopes without their fixed effect, offsets, singular and
boundary fits, REML and ML. All lme4 fits go through one R process.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

import glmmsim

pytestmark = pytest.mark.r

LOGLIK_REL = 1e-6
BETA_IN_SE = 1e-4
SE_REL = 1e-4
LRT_TOL = 1e-5
SATTERTHWAITE_REL = 1e-3
KR_REL = 1e-2


def _crossed(subjects: int = 30, items: int = 20, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    s, i, c = np.meshgrid(np.arange(subjects), np.arange(items), [0, 1], indexing="ij")
    s, i, c = s.ravel(), i.ravel(), c.ravel()
    d = pd.DataFrame({"subject": [f"s{v:03d}" for v in s], "item": [f"i{v:03d}" for v in i],
                      "cond": np.where(c == 1, "b", "a")})
    d["x"] = rng.normal(size=len(d))
    d["xs"] = rng.normal(size=subjects)[s]  # a subject-level covariate
    d["off"] = rng.uniform(-1, 1, size=len(d))
    us = rng.normal(size=(subjects, 3)) * [0.6, 0.3, 0.25]
    ui = rng.normal(size=(items, 2)) * [0.4, 0.2]
    e = rng.normal(size=len(d))
    d["y"] = 0.2 + 0.3 * c + 0.2 * d["x"] + us[s, 0] + us[s, 1] * c + us[s, 2] * d["x"] + ui[i, 0] + ui[i, 1] * c + e
    d["y_noslope"] = 0.2 + 0.3 * c + us[s, 0] + ui[i, 0] + e  # no random slopes: their variances end near 0
    d["y_noitem"] = 0.2 + 0.3 * c + us[s, 0] + e  # no item variance: a boundary fit for (1 | item)
    d["y_off"] = d["y"] + d["off"]
    return d


def _unbalanced() -> pd.DataFrame:
    d = _crossed(seed=2)
    keep = np.random.default_rng(20).uniform(size=len(d)) < np.repeat(np.linspace(0.3, 1.0, 30), 40)
    return d[keep].reset_index(drop=True)


def _nested() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    schools, classes, pupils = 15, 4, 8
    sch = np.repeat(np.arange(schools), classes * pupils)
    cls = np.tile(np.repeat(np.arange(classes), pupils), schools)
    x = rng.normal(size=len(sch))
    us = rng.normal(size=(schools, 2)) * [0.6, 0.3]
    uc = rng.normal(size=(schools, classes)) * 0.4
    y = 1.0 + 0.5 * x + us[sch, 0] + us[sch, 1] * x + uc[sch, cls] + rng.normal(size=len(sch))
    return pd.DataFrame({"school": [f"sch{v}" for v in sch], "class": [f"c{v}" for v in cls], "x": x, "y": y})


def _three_levels() -> pd.DataFrame:
    rng = np.random.default_rng(4)
    subjects, per = 40, 6
    s = np.repeat(np.arange(subjects), per)
    cond = np.tile([0, 1, 2], subjects * per // 3)
    u = rng.normal(size=(subjects, 3)) * [1.0, 0.5, 0.4]
    y = np.array([0.0, 0.5, -0.3])[cond] + u[s, 0] + np.where(cond == 1, u[s, 1], 0) + np.where(cond == 2, u[s, 2], 0)
    y = y + rng.normal(size=len(s))
    return pd.DataFrame({"subject": [f"s{v:02d}" for v in s], "cond3": np.array(["a", "b", "c"])[cond], "y": y})


def _groups(levels: int, per: int, sd: tuple[float, float], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(levels), per)
    x = rng.normal(size=len(g))
    u = rng.normal(size=(levels, 2)) * sd
    y = 1.0 + 0.4 * x + u[g, 0] + u[g, 1] * x + rng.normal(size=len(g))
    return pd.DataFrame({"g": [f"g{v:03d}" for v in g], "x": x, "y": y})


DATA = {
    "crossed": _crossed,
    "unbalanced": _unbalanced,
    "nested": _nested,
    "three": _three_levels,
    "small_null": lambda: _groups(12, 5, (0.0, 0.0), 5),  # no group variance: a singular fit
    "many": lambda: _groups(200, 3, (0.7, 0.3), 6),
}


@functools.lru_cache(maxsize=None)
def data(name: str) -> pd.DataFrame:
    return DATA[name]()


# (id, data, formula, reml, extra fit arguments)
CASES = [
    ("ri_reml", "crossed", "y ~ cond + (1 | subject)", True, {}),
    ("ri_ml", "crossed", "y ~ cond + (1 | subject)", False, {}),
    ("crossed_reml", "crossed", "y ~ cond + (1 + cond | subject) + (1 | item)", True, {}),
    ("crossed_ml", "crossed", "y ~ cond + (1 + cond | subject) + (1 | item)", False, {}),
    ("zerocorr_reml", "crossed", "y ~ cond + (1 + cond || subject) + (1 | item)", True, {}),
    ("zerocorr_ml", "crossed", "y ~ cond + (1 + cond || subject) + (1 | item)", False, {}),
    ("categorical_no_intercept", "crossed", "y ~ cond + (0 + cond | subject) + (1 | item)", True, {}),
    ("slope_without_fixed_reml", "crossed", "y ~ 1 + (1 + cond | subject) + (1 | item)", True, {}),
    ("slope_without_fixed_ml", "crossed", "y ~ 1 + (1 + cond | subject) + (1 | item)", False, {}),
    ("numeric_no_intercept", "crossed", "y ~ x + (0 + x | subject) + (1 | item)", True, {}),
    ("numeric_zerocorr", "crossed", "y ~ x + (x || subject)", True, {}),
    ("numeric_correlated", "crossed", "y ~ x + (1 + x | subject) + (1 | item)", False, {}),
    ("both_correlated", "crossed", "y ~ x * cond + (1 + cond | subject) + (1 + cond | item)", True, {}),
    ("split_by_hand", "crossed", "y ~ x + (1 | subject) + (0 + x | subject) + (1 | item)", True, {}),
    ("three_by_three", "crossed", "y ~ x + cond + (1 + x + cond | subject)", True, {}),
    ("subject_covariate", "crossed", "y ~ xs + cond + (1 | subject) + (1 | item)", False, {}),
    ("no_fixed_intercept", "crossed", "y ~ 0 + cond + (1 | subject)", True, {}),
    ("unbalanced_reml", "unbalanced", "y ~ cond + (1 + cond | subject) + (1 | item)", True, {}),
    ("unbalanced_ml", "unbalanced", "y ~ cond + (1 + cond | subject) + (1 | item)", False, {}),
    ("unbalanced_zerocorr", "unbalanced", "y ~ cond + (1 + cond || subject) + (1 + cond || item)", True, {}),
    ("nested_slash", "nested", "y ~ x + (1 | school/class)", True, {}),
    ("nested_colon_ml", "nested", "y ~ x + (1 | school) + (1 | school:class)", False, {}),
    ("nested_slope", "nested", "y ~ x + (1 + x | school) + (1 | school:class)", True, {}),
    ("three_levels_reml", "three", "y ~ cond3 + (1 + cond3 | subject)", True, {}),
    ("three_levels_ml", "three", "y ~ cond3 + (1 + cond3 | subject)", False, {}),
    ("offset_reml", "crossed", "y_off ~ x + (1 | subject) + (1 | item)", True, {"offset": "off"}),
    ("offset_slope_ml", "crossed", "y_off ~ cond + (1 + cond | subject) + (1 | item)", False, {"offset": "off"}),
    ("singular_intercept", "small_null", "y ~ x + (1 | g)", True, {}),
    ("singular_slopes", "crossed", "y_noslope ~ cond + (1 + cond | subject) + (1 | item)", True, {}),
    ("boundary_item", "crossed", "y_noitem ~ cond + (1 | subject) + (1 | item)", False, {}),
    ("many_levels", "many", "y ~ x + (1 + x | g)", True, {}),
    ("many_levels_ml", "many", "y ~ x + (1 + x | g)", False, {}),
]

# (id, data, formula, coefficients or term tested, extra fit arguments)
LRT_CASES = [
    ("crossed_cond_slope_stays", "crossed", "y ~ cond + (1 + cond | subject) + (1 | item)", "cond", {}),
    ("zerocorr_cond", "crossed", "y ~ cond + (1 + cond || subject) + (1 | item)", "cond", {}),
    ("interaction", "crossed", "y ~ x * cond + (1 + cond | subject) + (1 + cond | item)", "x:cond", {}),
    ("nested_x", "nested", "y ~ x + (1 | school/class)", "x", {}),
    ("three_levels_term", "three", "y ~ cond3 + (1 + cond3 | subject)", "cond3", {}),
    ("offset_x", "crossed", "y_off ~ x + (1 | subject) + (1 | item)", "x", {"offset": "off"}),
    ("singular_x", "small_null", "y ~ x + (1 | g)", "x", {}),
    ("unbalanced_cond", "unbalanced", "y ~ cond + (1 + cond | subject) + (1 | item)", "cond", {}),
]


def _fit_both(dname, formula, reml, kwargs):
    d = data(dname)
    ours = glmmsim.fit(formula, d, engine="lmm", reml=reml, **kwargs)
    ref = glmmsim.fit(formula, d, engine="lme4", reml=reml, **kwargs)
    return ours, ref


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_fit_agrees_with_lme4(case):
    _, dname, formula, reml, kwargs = case
    ours, ref = _fit_both(dname, formula, reml, kwargs)
    assert ours.engine == "lmm" and ref.engine == "lme4"
    assert ours.converged, ours.warnings
    assert abs(ours.loglik - ref.loglik) <= LOGLIK_REL * abs(ref.loglik), (ours.loglik, ref.loglik)
    est, se = ours._columns[0], ours._columns[1]
    ref_est, ref_se = ref._columns[0], ref._columns[1]
    np.testing.assert_array_less(np.abs(est - ref_est), BETA_IN_SE * ref_se)
    np.testing.assert_allclose(se, ref_se, rtol=SE_REL, atol=0)
    assert ours.singular == ref.singular
    assert ours.sigma == pytest.approx(ref.sigma, rel=1e-4)
    assert list(ours.fixed.index) == list(ref.fixed.index)
    # lmerTest's Satterthwaite df (the lme4 engine reports them with every fit)
    np.testing.assert_allclose(ours.fixed["df"], ref.fixed["df"], rtol=SATTERTHWAITE_REL)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_fit_many_agrees_with_lme4(case):
    """The batched fits (fit_many: Newton on stacked replicates, BOBYQA for what it does not settle) hold
    the same tolerances; the response sits between two others in its batch."""
    _, dname, formula, reml, kwargs = case
    d = data(dname)
    ref = glmmsim.fit(formula, d, engine="lme4", reml=reml, **kwargs)
    fitter = glmmsim.fit.prepare(formula, d, engine="lmm", reml=reml, **kwargs)
    y = ref._y
    rng = np.random.default_rng(0)
    ours = fitter.fit_many(np.column_stack([y[rng.permutation(len(y))], y, y[::-1]]))[1]
    assert ours.converged, ours.warnings
    assert abs(ours.loglik - ref.loglik) <= LOGLIK_REL * abs(ref.loglik), (ours.loglik, ref.loglik)
    est, se = ours._columns[0], ours._columns[1]
    np.testing.assert_array_less(np.abs(est - ref._columns[0]), BETA_IN_SE * ref._columns[1])
    np.testing.assert_allclose(se, ref._columns[1], rtol=SE_REL, atol=0)
    assert ours.singular == ref.singular
    assert ours.sigma == pytest.approx(ref.sigma, rel=1e-4)


def test_corpus_covers_the_issue():
    """At least 30 models, both criteria, singular fits among them."""
    assert len(CASES) >= 30
    assert {c[3] for c in CASES} == {True, False}
    assert any("singular" in c[0] for c in CASES) and any("||" in c[2] for c in CASES)


@pytest.mark.parametrize("case", LRT_CASES, ids=[c[0] for c in LRT_CASES])
def test_lrt_agrees_with_lme4(case):
    _, dname, formula, what, kwargs = case
    ours, ref = _fit_both(dname, formula, False, kwargs)
    t_ours = ours.test(what, method="lrt")
    t_ref = ref.test(what, method="lrt")
    assert t_ours.num_df == t_ref.num_df
    assert abs(t_ours.statistic - t_ref.statistic) <= LRT_TOL * max(1.0, t_ref.statistic), (t_ours.statistic, t_ref.statistic)


@pytest.mark.parametrize("case", [c for c in CASES if c[0] in ("crossed_reml", "zerocorr_reml", "singular_slopes")],
                         ids=["crossed_reml", "zerocorr_reml", "singular_slopes"])
def test_random_covariances_agree_with_lme4(case):
    _, dname, formula, reml, kwargs = case
    ours, ref = _fit_both(dname, formula, reml, kwargs)
    for a, b in zip(ours._covariances, ref._covariances):
        np.testing.assert_allclose(a, b, atol=2e-4 * max(1.0, float(np.max(np.abs(b)))))


# (id, data, formula, coefficients or term tested): Kenward-Roger through pbkrtest is slow, so a subset
KR_CASES = [
    ("crossed_cond", "crossed", "y ~ cond + (1 + cond | subject) + (1 | item)", "cond"),
    ("zerocorr_cond", "crossed", "y ~ cond + (1 + cond || subject) + (1 | item)", "cond"),
    ("unbalanced_cond", "unbalanced", "y ~ cond + (1 + cond | subject) + (1 | item)", "cond"),
    ("nested_x", "nested", "y ~ x + (1 | school/class)", "x"),
    ("three_levels_term", "three", "y ~ cond3 + (1 + cond3 | subject)", "cond3"),
    ("many_levels_x", "many", "y ~ x + (1 + x | g)", "x"),
]


@pytest.mark.parametrize("case", KR_CASES, ids=[c[0] for c in KR_CASES])
def test_kenward_roger_and_satterthwaite_contrasts_agree(case):
    _, dname, formula, what = case
    ours, ref = _fit_both(dname, formula, True, {})
    for method, rel in (("kr", KR_REL), ("satterthwaite", SATTERTHWAITE_REL)):
        a, b = ours.test(what, method=method), ref.test(what, method=method)
        assert (a.statistic_name, a.num_df) == (b.statistic_name, b.num_df)
        assert a.df == pytest.approx(b.df, rel=rel), method
        assert a.statistic == pytest.approx(b.statistic, rel=1e-4), method
