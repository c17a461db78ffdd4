"""Statistical validation of the core engine: simulate, then recover the parameters.

Two kinds of checks:

* moment checks on the drawn random effects (``Model.random_effects``) and on the simulated
  response, where the sampling error is known in closed form;
* refits with statsmodels (MixedLM, GLM, BinomialBayesMixedGLM), whose estimates must land
  within K standard errors of the values the data were simulated from.

Standard errors used (m = number of levels or observations the statistic is computed from):

* sample SD of m iid normals with SD s: SE = s / sqrt(2 (m - 1));
* sample variance of m iid normals with variance v: SE = v sqrt(2 / (m - 1));
* Pearson correlation r from m pairs: SE = (1 - r^2) / sqrt(m - 3) (delta method on Fisher's z);
* sample mean of n iid values with SD s: SE = s / sqrt(n);
* refits: the SE the fitting routine reports (fixed effects), or the large-sample formula
  written next to the check (variance components).

K = 5 throughout: a two-sided 5-SE excursion of a normal statistic has probability 5.7e-7,
so with the ~70 checks here a correct engine fails at a given seed with probability below
1e-4. Many checks are paired with a power check: the same tolerance rejects a plausible
wrong answer (a swapped SD, a sign error, a missing term), so passing is informative.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import glmmsim

K = 5.0


# ----------------------------------------------------------------------------- helpers
def se_sd(sd: float, m: int) -> float:
    """SE of the sample SD of m iid normals with SD ``sd``."""
    return sd / np.sqrt(2.0 * (m - 1))


def se_var(var: float, m: int) -> float:
    """SE of the unbiased sample variance of m iid normals with variance ``var``."""
    return var * np.sqrt(2.0 / (m - 1))


def se_corr(r: float, m: int) -> float:
    """SE of a Pearson correlation from m bivariate-normal pairs with correlation ``r``."""
    return (1.0 - r**2) / np.sqrt(m - 3)


def assert_within(estimate: float, target: float, se: float, what: str) -> None:
    assert abs(estimate - target) < K * se, (
        f"{what}: estimate {estimate:.5g}, target {target:.5g}, |diff| = "
        f"{abs(estimate - target):.3g} >= {K:g} SE = {K * se:.3g}"
    )


def rejects(estimate: float, wrong: float, se: float) -> bool:
    """True when the K-SE tolerance would reject ``wrong`` as the target (power check)."""
    return abs(estimate - wrong) >= K * se


# ----------------------------------------------------------------------------- a. MixedLM refit
N_SUBJ, N_OBS = 300, 20
TRUE_A = dict(b0=1.0, b1=0.5, sd0=0.8, sd1=0.4, r=0.5, sigma=0.5)


@pytest.fixture(scope="module")
def mixedlm_fit():
    smf = pytest.importorskip("statsmodels.formula.api")
    t = TRUE_A
    rng = np.random.default_rng(101)
    data = pd.DataFrame(
        {"subject": np.repeat([f"s{i}" for i in range(N_SUBJ)], N_OBS), "x": rng.standard_normal(N_SUBJ * N_OBS)}
    )
    model = glmmsim.Model(
        "y ~ 1 + x + (1 + x | subject)",
        fixed={"(Intercept)": t["b0"], "x": t["b1"]},
        random={"subject": {"sd": {"(Intercept)": t["sd0"], "x": t["sd1"]}, "corr": {("x", "(Intercept)"): t["r"]}}},
        sigma=t["sigma"],
        seed=11,
    )
    out = model.simulate(data, seed=12)
    fit = smf.mixedlm("y ~ x", out, groups="subject", re_formula="~x").fit(reml=True)
    assert fit.converged
    return fit, data


def test_mixedlm_fixed_effects(mixedlm_fit) -> None:
    fit, _ = mixedlm_fit
    for name, true in (("Intercept", TRUE_A["b0"]), ("x", TRUE_A["b1"])):
        assert_within(fit.fe_params[name], true, fit.bse_fe[name], f"fixed {name}")
        assert rejects(fit.fe_params[name], -true, fit.bse_fe[name])  # a sign error is caught


def _re_sds_and_corr(fit) -> tuple[float, float, float]:
    cov = np.asarray(fit.cov_re)
    sd = np.sqrt(np.diag(cov))
    return float(sd[0]), float(sd[1]), float(cov[0, 1] / (sd[0] * sd[1]))


def test_mixedlm_variance_components(mixedlm_fit) -> None:
    fit, data = mixedlm_fit
    t = TRUE_A
    sd0, sd1, r = _re_sds_and_corr(fit)
    # A subject's own intercept / slope estimate has sampling variance sigma^2 / n and
    # sigma^2 / (n var(x)); the between-subject variance estimate thus has
    # SE(var) ~ sqrt(2 / (m - 1)) (tau^2 + that), and SE(sd) = SE(var) / (2 tau).
    var_x = float(data["x"].var())
    noise0 = t["sigma"] ** 2 / N_OBS
    noise1 = t["sigma"] ** 2 / (N_OBS * var_x)
    se0 = se_var(t["sd0"] ** 2 + noise0, N_SUBJ) / (2 * t["sd0"])
    se1 = se_var(t["sd1"] ** 2 + noise1, N_SUBJ) / (2 * t["sd1"])
    assert_within(sd0, t["sd0"], se0, "SD of random intercepts")
    assert_within(sd1, t["sd1"], se1, "SD of random slopes")
    assert rejects(sd0, t["sd1"], se0) and rejects(sd1, t["sd0"], se1)  # swapped SDs are caught
    # correlation: Fisher SE from m subjects, inflated by the per-subject estimation noise that
    # attenuates it (variance ratio (tau^2 + noise) / tau^2 for each coefficient)
    inflation = np.sqrt((1 + noise0 / t["sd0"] ** 2) * (1 + noise1 / t["sd1"] ** 2))
    se_r = se_corr(t["r"], N_SUBJ) * inflation
    assert_within(r, t["r"], se_r, "intercept-slope correlation")
    assert rejects(r, 0.0, se_r) and rejects(r, -t["r"], se_r)
    # residual SD from N - 2m degrees of freedom (each subject spends 2 on its own line)
    n = N_SUBJ * N_OBS
    sigma_hat = float(np.sqrt(fit.scale))
    se_sigma = se_sd(t["sigma"], n - 2 * N_SUBJ)
    assert_within(sigma_hat, t["sigma"], se_sigma, "residual SD")
    assert rejects(sigma_hat, 1.1 * t["sigma"], se_sigma)


# ----------------------------------------------------------------------------- b. moments: crossed
M_LEVELS = 4000
SPEC_B = dict(sd0=0.5, sd1=0.3, r=0.2, sd_item=0.4)


@pytest.fixture(scope="module")
def crossed_effects():
    s = SPEC_B
    rng = np.random.default_rng(202)
    data = pd.DataFrame(
        {
            "x": rng.standard_normal(M_LEVELS),
            # both factors use the labels 0..m-1: subject k and item k have the same level key,
            # so only the factor's stream keeps their effects apart
            "subject": np.arange(M_LEVELS),
            "item": rng.permutation(M_LEVELS),
        }
    )
    model = glmmsim.Model(
        "y ~ 1 + x + (1 + x | subject) + (1 | item)",
        fixed={"Intercept": 0.0, "x": 0.0},
        random={
            "subject": {"sd": {"Intercept": s["sd0"], "x": s["sd1"]}, "corr": {("Intercept", "x"): s["r"]}},
            "item": s["sd_item"],
        },
        sigma=1.0,
        seed=5,
    )
    return model.random_effects(data)


def test_crossed_effects_shape(crossed_effects) -> None:
    assert set(crossed_effects) == {"subject", "item"}
    assert crossed_effects["subject"].shape == (M_LEVELS, 2)
    assert list(crossed_effects["subject"].columns) == ["Intercept", "x"]
    assert crossed_effects["item"].shape == (M_LEVELS, 1)


def test_crossed_effect_sds_and_corr(crossed_effects) -> None:
    s, m = SPEC_B, M_LEVELS
    subj = crossed_effects["subject"]
    item = crossed_effects["item"]["Intercept"]
    assert_within(subj["Intercept"].std(), s["sd0"], se_sd(s["sd0"], m), "subject intercept SD")
    assert_within(subj["x"].std(), s["sd1"], se_sd(s["sd1"], m), "subject slope SD")
    assert_within(item.std(), s["sd_item"], se_sd(s["sd_item"], m), "item SD")
    assert_within(subj["Intercept"].mean(), 0.0, s["sd0"] / np.sqrt(m), "subject intercept mean")
    assert_within(item.mean(), 0.0, s["sd_item"] / np.sqrt(m), "item mean")
    r = subj["Intercept"].corr(subj["x"])
    assert_within(r, s["r"], se_corr(s["r"], m), "subject intercept-slope corr")
    assert rejects(r, 0.0, se_corr(0.0, m))  # power: the 0.2 correlation is really there


def test_crossed_factors_are_independent(crossed_effects) -> None:
    # subject k and item k share a label but nothing else: match them by label
    m = M_LEVELS
    subj = crossed_effects["subject"].sort_index()
    item = crossed_effects["item"]["Intercept"].sort_index()
    assert subj.index.equals(item.index)
    for col in ("Intercept", "x"):
        assert_within(np.corrcoef(subj[col], item)[0, 1], 0.0, se_corr(0.0, m), f"subject {col} vs item")


def test_three_coefficients_with_corr_matrix_in_sd_order() -> None:
    # the matrix is given in the order of the 'sd' mapping, which differs from the formula's
    m = M_LEVELS
    sd = {"x2": 0.2, "Intercept": 0.5, "x1": 0.3}
    corr = np.array([[1.0, 0.5, -0.3], [0.5, 1.0, 0.1], [-0.3, 0.1, 1.0]])  # rows: x2, Intercept, x1
    model = glmmsim.Model(
        "y ~ 1 + (1 + x1 + x2 | g)",
        fixed={"Intercept": 0.0},
        random={"g": {"sd": sd, "corr": corr}},
        sigma=1.0,
        seed=9,
    )
    data = pd.DataFrame({"x1": np.zeros(m), "x2": np.zeros(m), "g": np.arange(m)})
    eff = model.random_effects(data)["g"]
    assert list(eff.columns) == ["Intercept", "x1", "x2"]
    for name, value in sd.items():
        assert_within(eff[name].std(), value, se_sd(value, m), f"SD {name}")
    order = list(sd)
    for i in range(3):
        for j in range(i):
            a, b, r = order[i], order[j], corr[i, j]
            est = eff[a].corr(eff[b])
            assert_within(est, r, se_corr(r, m), f"corr({a}, {b})")
            # power: every other pair's correlation differs by >= 0.2 > 5 SE (~0.08)
            for other in {0.5, -0.3, 0.1} - {r}:
                assert rejects(est, other, se_corr(other, m))
    # covariance() reports the spec in formula order
    coefs, sds, cmat = model.covariance()["g"]
    assert coefs == ("Intercept", "x1", "x2")
    np.testing.assert_allclose(sds, [0.5, 0.3, 0.2])
    np.testing.assert_allclose(cmat, [[1.0, 0.1, 0.5], [0.1, 1.0, -0.3], [0.5, -0.3, 1.0]])


# ----------------------------------------------------------------------------- b. moments: nested
N_SCHOOL, N_CLASS = 1000, 5
SD_SCHOOL, SD_CLASS = 1.0, 0.5


def _nested_data() -> pd.DataFrame:
    # class labels 1..5 are reused in every school, as lme4's (1 | school/class) expects
    return pd.DataFrame(
        {"school": np.repeat(np.arange(N_SCHOOL), N_CLASS), "class": np.tile(np.arange(1, N_CLASS + 1), N_SCHOOL)}
    )


def _nested_model(formula: str = "y ~ 1 + (1 | school/class)", key: str = "school:class") -> glmmsim.Model:
    return glmmsim.Model(
        formula, fixed={"Intercept": 0.0}, random={"school": SD_SCHOOL, key: SD_CLASS}, sigma=1.0, seed=21
    )


def test_nested_effect_moments() -> None:
    data = _nested_data()
    eff = _nested_model().random_effects(data)
    assert set(eff) == {"school", "school:class"}
    school = eff["school"]["Intercept"]
    klass = eff["school:class"]["Intercept"]
    n_cls = N_SCHOOL * N_CLASS
    assert len(school) == N_SCHOOL and len(klass) == n_cls
    assert_within(school.std(), SD_SCHOOL, se_sd(SD_SCHOOL, N_SCHOOL), "school SD")
    assert_within(klass.std(), SD_CLASS, se_sd(SD_CLASS, n_cls), "class-within-school SD")
    assert rejects(klass.std(), SD_SCHOOL, se_sd(SD_CLASS, n_cls))
    # class effects do not echo their school's effect
    school_of_class = school.reindex(klass.index.get_level_values("school")).to_numpy()
    assert_within(np.corrcoef(klass.to_numpy(), school_of_class)[0, 1], 0.0, se_corr(0.0, n_cls), "class vs school")
    # class 1 of school A is not class 1 of school B: over schools, the effect of one class
    # label has the full class SD and is uncorrelated with another label's
    wide = klass.unstack("class")
    assert_within(wide[1].std(), SD_CLASS, se_sd(SD_CLASS, N_SCHOOL), "SD of class 1 across schools")
    assert_within(wide[1].corr(wide[2]), 0.0, se_corr(0.0, N_SCHOOL), "class 1 vs class 2")


def test_nested_equals_explicit_interaction() -> None:
    # lme4: (1 | school/class) is (1 | school) + (1 | school:class); the factor may be keyed either way
    data = _nested_data().iloc[:200]
    a = _nested_model()
    b = _nested_model("y ~ 1 + (1 | school) + (1 | school:class)")
    c = _nested_model(key="class:school")
    for other in (b, c):
        for factor in ("school", "school:class"):
            pd.testing.assert_frame_equal(a.random_effects(data)[factor], other.random_effects(data)[factor])
        pd.testing.assert_frame_equal(a.simulate(data, seed=3), other.simulate(data, seed=3))


# ----------------------------------------------------------------------------- b. crossed variance decomposition
N_S, N_I = 200, 200
SD_S, SD_I, SIGMA_V = 0.6, 0.4, 1.0


@pytest.fixture(scope="module")
def crossed_y() -> np.ndarray:
    data = pd.DataFrame({"subject": np.repeat(np.arange(N_S), N_I), "item": np.tile(np.arange(N_I), N_S)})
    model = glmmsim.Model(
        "y ~ 1 + (1 | subject) + (1 | item)",
        fixed={"Intercept": 2.0},
        random={"subject": SD_S, "item": SD_I},
        sigma=SIGMA_V,
        seed=33,
    )
    out = model.simulate(data, seed=34)
    return out["y"].to_numpy().reshape(N_S, N_I)  # rows: subjects, columns: items


def test_crossed_total_variance(crossed_y: np.ndarray) -> None:
    n = N_S * N_I
    y = crossed_y.ravel()
    # E[s^2] over a balanced crossed design: each factor loses its own degree of freedom
    expected = (SD_S**2 * N_I * (N_S - 1) + SD_I**2 * N_S * (N_I - 1)) / (n - 1) + SIGMA_V**2
    # the three independent sources contribute their own sample-variance variances
    se = np.sqrt(se_var(SD_S**2, N_S) ** 2 + se_var(SD_I**2, N_I) ** 2 + se_var(SIGMA_V**2, n) ** 2)
    assert_within(y.var(ddof=1), expected, se, "Var(y)")
    assert_within(y.mean(), 2.0, np.sqrt(SD_S**2 / N_S + SD_I**2 / N_I + SIGMA_V**2 / n), "mean(y)")


def test_crossed_anova_components(crossed_y: np.ndarray) -> None:
    y = crossed_y
    subj_means = y.mean(axis=1)
    item_means = y.mean(axis=0)
    # a subject's mean over all items: its effect + noise of I residuals (item effects average
    # to the same constant for every subject)
    v_subj = SD_S**2 + SIGMA_V**2 / N_I
    v_item = SD_I**2 + SIGMA_V**2 / N_S
    se_subj, se_item = se_var(v_subj, N_S), se_var(v_item, N_I)
    assert_within(subj_means.var(ddof=1), v_subj, se_subj, "variance of subject means")
    assert_within(item_means.var(ddof=1), v_item, se_item, "variance of item means")
    # power: without item effects the item-mean variance would be sigma^2 / S only
    assert rejects(item_means.var(ddof=1), SIGMA_V**2 / N_S, se_item)
    # double-centred residuals: sum of squares / ((S-1)(I-1)) estimates sigma^2 exactly
    resid = y - subj_means[:, None] - item_means[None, :] + y.mean()
    df = (N_S - 1) * (N_I - 1)
    s2 = float((resid**2).sum() / df)
    assert_within(s2, SIGMA_V**2, se_var(SIGMA_V**2, df + 1), "residual variance")
    # power: a subject-by-item effect of SD 0.25 (extra variance 0.0625 > 5 SE = 0.036) is caught
    assert rejects(s2, SIGMA_V**2 + 0.25**2, se_var(SIGMA_V**2, df + 1))


# ----------------------------------------------------------------------------- c. correlation structures
M_C = 5000


def _slope_data(m: int = M_C) -> pd.DataFrame:
    rng = np.random.default_rng(303)
    return pd.DataFrame({"x": rng.standard_normal(m), "g": np.arange(m)})


def _slope_model(formula: str, random_g: object) -> glmmsim.Model:
    return glmmsim.Model(formula, fixed={"Intercept": 1.0, "x": 0.5}, random={"g": random_g}, sigma=0.3, seed=44)


def test_double_bar_gives_uncorrelated_effects() -> None:
    m = M_C
    model = _slope_model("y ~ 1 + x + (x || g)", {"Intercept": 0.7, "x": 0.4})
    eff = model.random_effects(_slope_data())["g"]
    assert list(eff.columns) == ["Intercept", "x"]
    assert_within(eff["Intercept"].corr(eff["x"]), 0.0, se_corr(0.0, m), "corr under ||")
    assert_within(eff["Intercept"].std(), 0.7, se_sd(0.7, m), "intercept SD under ||")
    assert_within(eff["x"].std(), 0.4, se_sd(0.4, m), "slope SD under ||")
    coefs, _, corr = model.covariance()["g"]
    assert coefs == ("Intercept", "x")
    np.testing.assert_array_equal(corr, np.eye(2))


def test_double_bar_rejects_a_correlation() -> None:
    # lme4 cannot correlate effects split by '||'; a correlation must not be silently dropped
    with pytest.raises(glmmsim.errors.ParameterError, match="different terms"):
        _slope_model(
            "y ~ 1 + x + (x || g)", {"sd": {"Intercept": 0.7, "x": 0.4}, "corr": {("Intercept", "x"): 0.3}}
        ).random_effects(_slope_data(10))


def test_double_bar_equals_separate_bars_exactly() -> None:
    data = _slope_data(500)
    spec = {"Intercept": 0.7, "x": 0.4}
    a = _slope_model("y ~ 1 + x + (x || g)", spec)
    b = _slope_model("y ~ 1 + x + (1 | g) + (0 + x | g)", spec)
    pd.testing.assert_frame_equal(a.random_effects(data)["g"], b.random_effects(data)["g"])
    pd.testing.assert_frame_equal(a.simulate(data, seed=5), b.simulate(data, seed=5))
    np.testing.assert_array_equal(a.predict(data).to_numpy(), b.predict(data).to_numpy())


@pytest.mark.parametrize("r", [0.6, -0.4])
def test_correlated_slope_has_requested_corr(r: float) -> None:
    m = M_C
    model = _slope_model("y ~ 1 + x + (x | g)", {"sd": {"Intercept": 0.7, "x": 0.4}, "corr": {("Intercept", "x"): r}})
    eff = model.random_effects(_slope_data())["g"]
    est = eff["Intercept"].corr(eff["x"])
    assert_within(est, r, se_corr(r, m), f"corr {r}")
    assert rejects(est, 0.0, se_corr(r, m)) and rejects(est, -r, se_corr(r, m))
    assert_within(eff["Intercept"].std(), 0.7, se_sd(0.7, m), "intercept SD")
    assert_within(eff["x"].std(), 0.4, se_sd(0.4, m), "slope SD")


@pytest.mark.parametrize("r", [1.0, -1.0])
def test_perfect_correlation(r: float) -> None:
    data = _slope_data(2000)
    model = _slope_model("y ~ 1 + x + (x | g)", {"sd": {"Intercept": 0.7, "x": 0.4}, "corr": {("Intercept", "x"): r}})
    eff = model.random_effects(data)["g"]
    # a degenerate (singular) covariance: the slope is an exact multiple of the intercept
    np.testing.assert_allclose(eff["x"].to_numpy(), r * 0.4 / 0.7 * eff["Intercept"].to_numpy(), rtol=0, atol=1e-12)
    assert_within(eff["x"].std(), 0.4, se_sd(0.4, len(data)), "slope SD at |corr| = 1")
    y = model.simulate(data, seed=1)["y"]
    assert np.all(np.isfinite(y))


def test_perfect_correlation_in_three_coefficients() -> None:
    # x1 duplicates the intercept (corr 1); x2 then needs equal correlations with both
    m = M_C
    model = glmmsim.Model(
        "y ~ 1 + (1 + x1 + x2 | g)",
        fixed={"Intercept": 0.0},
        random={
            "g": {
                "sd": {"Intercept": 0.5, "x1": 0.3, "x2": 0.2},
                "corr": {("Intercept", "x1"): 1.0, ("Intercept", "x2"): 0.4, ("x1", "x2"): 0.4},
            }
        },
        sigma=1.0,
        seed=8,
    )
    data = pd.DataFrame({"x1": np.zeros(m), "x2": np.zeros(m), "g": np.arange(m)})
    eff = model.random_effects(data)["g"]
    np.testing.assert_allclose(eff["x1"].to_numpy(), 0.6 * eff["Intercept"].to_numpy(), rtol=0, atol=1e-12)
    assert_within(eff["x2"].std(), 0.2, se_sd(0.2, m), "SD of x2 after a zero pivot")
    assert_within(eff["x2"].corr(eff["Intercept"]), 0.4, se_corr(0.4, m), "corr(x2, Intercept)")


# ----------------------------------------------------------------------------- d. categorical predictors
N_CELL = 20_000
SIGMA_D = 1.0
CELL_SE = SIGMA_D / np.sqrt(N_CELL)


def _cells(levels: tuple[str, ...] = ("a", "b", "c")) -> pd.DataFrame:
    rng = np.random.default_rng(404)
    return pd.DataFrame({"cond": rng.permutation(np.repeat(levels, N_CELL))})


def _cell_means(model: glmmsim.Model, data: pd.DataFrame, seed: int = 1) -> pd.Series:
    out = model.simulate(data, seed=seed)
    return out.groupby("cond")["y"].mean()


TREATMENT_LME4 = {"(Intercept)": 1.0, "condb": 0.5, "condc": -1.0}
TREATMENT_FORMULAIC = {"Intercept": 1.0, "cond[T.b]": 0.5, "cond[T.c]": -1.0}


@pytest.mark.parametrize("fixed", [TREATMENT_LME4, TREATMENT_FORMULAIC], ids=["lme4-names", "formulaic-names"])
def test_treatment_contrast_cell_means(fixed: dict) -> None:
    data = _cells()
    model = glmmsim.Model("y ~ cond", fixed=fixed, sigma=SIGMA_D, seed=1)
    means = _cell_means(model, data)
    expected = {"a": 1.0, "b": 1.5, "c": 0.0}
    for level, mu in expected.items():
        assert_within(means[level], mu, CELL_SE, f"cell mean {level}")
    # power: reading a coefficient as a cell mean instead of a difference (b: 0.5) is caught
    assert rejects(means["b"], 0.5, CELL_SE)


def test_lme4_and_formulaic_names_give_identical_simulations() -> None:
    data = _cells()
    a = glmmsim.Model("y ~ cond", fixed=TREATMENT_LME4, sigma=SIGMA_D, seed=1).simulate(data, seed=9)
    b = glmmsim.Model("y ~ cond", fixed=TREATMENT_FORMULAIC, sigma=SIGMA_D, seed=1).simulate(data, seed=9)
    pd.testing.assert_frame_equal(a, b)


def test_treatment_contrast_with_declared_reference_level() -> None:
    # levels= puts "b" first, so it is the reference and the coefficients are conda, condc
    data = _cells()
    model = glmmsim.Model(
        "y ~ cond", fixed={"(Intercept)": 2.0, "conda": -1.0, "condc": 1.0}, sigma=SIGMA_D,
        levels={"cond": ["b", "a", "c"]}, seed=1,
    )
    means = _cell_means(model, data)
    for level, mu in {"a": 1.0, "b": 2.0, "c": 3.0}.items():
        assert_within(means[level], mu, CELL_SE, f"cell mean {level}")


@pytest.mark.parametrize(
    "fixed, levels",
    [
        ({"Intercept": 1.0, "C(cond, Sum)[S.a]": 0.5, "C(cond, Sum)[S.b]": -0.2}, None),
        ({"(Intercept)": 1.0, "cond1": 0.5, "cond2": -0.2}, {"cond": ["a", "b", "c"]}),
    ],
    ids=["formulaic-names", "lme4-names"],
)
def test_sum_contrast_cell_means(fixed: dict, levels: dict | None) -> None:
    # sum-to-zero coding: the intercept is the grand mean of the cell means; the last level's
    # deviation is minus the sum of the others
    data = _cells()
    model = glmmsim.Model("y ~ C(cond, Sum)", fixed=fixed, sigma=SIGMA_D, levels=levels, seed=1)
    means = _cell_means(model, data)
    expected = {"a": 1.5, "b": 0.8, "c": 1.0 - 0.5 + 0.2}
    for level, mu in expected.items():
        assert_within(means[level], mu, CELL_SE, f"cell mean {level}")
    # grand mean of cells = intercept; SE of an average of 3 independent cell means
    assert_within(means.mean(), 1.0, CELL_SE / np.sqrt(3), "grand mean")
    # power: treatment-coding the same numbers would put c at 1.0
    assert rejects(means["c"], 1.0, CELL_SE)


def test_cell_means_coding_without_intercept() -> None:
    # "0 + cond" codes every level with its own indicator: the coefficients are the cell means
    data = _cells()
    model = glmmsim.Model("y ~ 0 + cond", fixed={"cond[a]": 1.0, "cond[b]": 1.5, "cond[c]": 0.0}, sigma=SIGMA_D, seed=1)
    means = _cell_means(model, data)
    for level, mu in {"a": 1.0, "b": 1.5, "c": 0.0}.items():
        assert_within(means[level], mu, CELL_SE, f"cell mean {level}")


def test_cell_means_coding_accepts_lme4_names() -> None:
    data = _cells()
    model = glmmsim.Model("y ~ 0 + cond", fixed={"conda": 1.0, "condb": 1.5, "condc": 0.0}, sigma=SIGMA_D, seed=1)
    means = _cell_means(model, data)
    for level, mu in {"a": 1.0, "b": 1.5, "c": 0.0}.items():
        assert_within(means[level], mu, CELL_SE, f"cell mean {level}")


def test_random_cell_means_slope_accepts_lme4_names() -> None:
    # lme4's (0 + cond | g): one random effect per level, named conda, condb, condc
    data = pd.DataFrame({"cond": ["a", "b", "c"] * 2, "g": [1, 1, 1, 2, 2, 2]})
    model = glmmsim.Model(
        "y ~ 1 + (0 + cond | g)", fixed={"Intercept": 0.0},
        random={"g": {"conda": 1.0, "condb": 0.5, "condc": 0.2}}, sigma=1.0, seed=1,
    )
    assert list(model.random_effects(data)["g"].columns) == ["cond[a]", "cond[b]", "cond[c]"]


def test_categorical_random_slope_applies_to_its_level_only() -> None:
    # (cond | g): a group's condb effect shifts only its rows with cond == "b"
    data = pd.DataFrame({"cond": ["a", "b", "c"] * 3, "g": np.repeat([1, 2, 3], 3)})
    model = glmmsim.Model(
        "y ~ 1 + (cond | g)", fixed={"(Intercept)": 0.0},
        random={"g": {"(Intercept)": 1.0, "condb": 0.5, "condc": 0.2}}, sigma=1.0, seed=1,
    )
    eff = model.random_effects(data)["g"]
    assert list(eff.columns) == ["Intercept", "cond[T.b]", "cond[T.c]"]
    rows = eff.loc[data["g"]].to_numpy()
    expected = rows[:, 0] + rows[:, 1] * (data["cond"] == "b") + rows[:, 2] * (data["cond"] == "c")
    np.testing.assert_allclose(model.predict(data).to_numpy(), expected, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- e. families
def _with_x(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.uniform(-1.0, 1.0, n)})


def test_poisson_fixed_only_glm_recovery() -> None:
    sm = pytest.importorskip("statsmodels.api")
    smf = pytest.importorskip("statsmodels.formula.api")
    data = _with_x(20_000, 505)
    model = glmmsim.Model("y ~ 1 + x", fixed={"Intercept": 0.5, "x": 0.8}, family="poisson", seed=1)
    out = model.simulate(data, seed=2)
    assert np.issubdtype(out["y"].dtype, np.integer) and (out["y"] >= 0).all()
    fit = smf.glm("y ~ x", out, family=sm.families.Poisson()).fit()
    for name, true in (("Intercept", 0.5), ("x", 0.8)):
        assert_within(fit.params[name], true, fit.bse[name], f"poisson {name}")
    # power: an identity link (the mean 0.5 + 0.8 x on the count scale) would be rejected
    assert rejects(fit.params["Intercept"], np.log(0.5), fit.bse["Intercept"])
    # the Poisson dispersion (Pearson chi^2 / df) is 1 with SE sqrt(2 / df) (~ chi^2_df / df)
    assert_within(fit.pearson_chi2 / fit.df_resid, 1.0, np.sqrt(2.0 / fit.df_resid), "poisson dispersion")


def test_binomial_fixed_only_glm_recovery_with_trials() -> None:
    sm = pytest.importorskip("statsmodels.api")
    data = _with_x(10_000, 606)
    data["n"] = np.random.default_rng(7).integers(1, 8, len(data))
    model = glmmsim.Model(
        "y ~ 1 + x", fixed={"(Intercept)": -0.3, "x": 1.2}, family="binomial", trials="n", seed=1
    )
    out = model.simulate(data, seed=3)
    assert ((out["y"] >= 0) & (out["y"] <= out["n"])).all()
    endog = np.column_stack([out["y"], out["n"] - out["y"]])
    fit = sm.GLM(endog, sm.add_constant(out[["x"]]), family=sm.families.Binomial()).fit()
    for name, true in (("const", -0.3), ("x", 1.2)):
        assert_within(fit.params[name], true, fit.bse[name], f"binomial {name}")
    assert rejects(fit.params["x"], 1.0, fit.bse["x"])


@pytest.mark.slow
def test_binomial_mixed_model_vb_recovery() -> None:
    """Random-intercept logistic model refitted by variational Bayes.

    fit_vb's posterior SDs are too small (mean-field VB ignores the posterior correlation
    between the intercept and the random effects), so they are not used as the tolerance.
    Instead the SEs come from the design (a documented large-sample approximation):

    * x varies within groups: SE(b_x) = 1 / sqrt(sum_i w_i (x_i - xbar_g)^2), the conditional
      Fisher information with w = mu (1 - mu) at the true linear predictor;
    * the intercept is dominated by the G group effects: SE(b_0)^2 = (sd_g^2 + 1 / (n_g w)) / G;
    * the group SD: SE(var) = sqrt(2 / (G - 1)) (sd_g^2 + 1 / (n_g w)), SE(sd) = SE(var) / (2 sd_g);
      VB's variance components are biased (shrunk), so the SD gets a 10% relative allowance on
      top (documented looseness; half the true SD, or no random intercept, is still rejected).
    """
    sm_mixed = pytest.importorskip("statsmodels.genmod.bayes_mixed_glm")
    n_groups, n_per = 300, 20
    b0, b1, sd_g = -0.4, 1.0, 0.7
    data = _with_x(n_groups * n_per, 707)
    data["g"] = np.repeat(np.arange(n_groups), n_per)
    model = glmmsim.Model(
        "y ~ 1 + x + (1 | g)", fixed={"Intercept": b0, "x": b1}, random={"g": sd_g}, family="binomial", seed=4
    )
    out = model.simulate(data, seed=5)
    fit = sm_mixed.BinomialBayesMixedGLM.from_formula("y ~ x", {"g": "0 + C(g)"}, out).fit_vb()
    fe = dict(zip(fit.model.exog_names, fit.fe_mean))

    eta = model.predict(data, type="link").to_numpy()
    mu = 1.0 / (1.0 + np.exp(-eta))
    w = mu * (1.0 - mu)
    x_within = data["x"] - data.groupby("g")["x"].transform("mean")
    se_b1 = 1.0 / np.sqrt(np.sum(w * x_within**2))
    noise = 1.0 / (n_per * w.mean())
    se_b0 = np.sqrt((sd_g**2 + noise) / n_groups)
    assert_within(fe["Intercept"], b0, se_b0, "binomial GLMM intercept")
    assert_within(fe["x"], b1, se_b1, "binomial GLMM slope")
    assert rejects(fe["x"], 0.0, se_b1)

    sd_hat = float(np.exp(fit.vcp_mean[0]))  # vcp_mean is the posterior mean of log SD
    se_sdg = se_var(sd_g**2 + noise, n_groups) / (2 * sd_g)
    tol = K * se_sdg + 0.1 * sd_g
    assert abs(sd_hat - sd_g) < tol, f"group SD {sd_hat:.3f} vs {sd_g} (tol {tol:.3f})"
    assert abs(sd_hat - sd_g / 2) > tol and abs(sd_hat - 0.0) > tol  # power


@pytest.mark.slow
def test_poisson_mixed_model_vb_recovery() -> None:
    """Random-intercept Poisson model refitted by variational Bayes (PoissonBayesMixedGLM).

    The SEs are derived as for the binomial model above, with the Poisson Fisher weight
    w = mu at the true linear predictor; the group SD gets the same 10% VB allowance.
    """
    sm_mixed = pytest.importorskip("statsmodels.genmod.bayes_mixed_glm")
    n_groups, n_per = 300, 20
    b0, b1, sd_g = 0.5, 0.4, 0.5
    data = _with_x(n_groups * n_per, 808)
    data["g"] = np.repeat(np.arange(n_groups), n_per)
    model = glmmsim.Model(
        "y ~ 1 + x + (1 | g)", fixed={"Intercept": b0, "x": b1}, random={"g": sd_g}, family="poisson", seed=6
    )
    out = model.simulate(data, seed=7)
    fit = sm_mixed.PoissonBayesMixedGLM.from_formula("y ~ x", {"g": "0 + C(g)"}, out).fit_vb()
    fe = dict(zip(fit.model.exog_names, fit.fe_mean))

    w = model.predict(data).to_numpy()  # Poisson: Fisher weight = mean
    x_within = data["x"] - data.groupby("g")["x"].transform("mean")
    se_b1 = 1.0 / np.sqrt(np.sum(w * x_within**2))
    noise = 1.0 / (n_per * w.mean())
    se_b0 = np.sqrt((sd_g**2 + noise) / n_groups)
    assert_within(fe["Intercept"], b0, se_b0, "poisson GLMM intercept")
    assert_within(fe["x"], b1, se_b1, "poisson GLMM slope")
    assert rejects(fe["x"], 0.0, se_b1)

    sd_hat = float(np.exp(fit.vcp_mean[0]))
    se_sdg = se_var(sd_g**2 + noise, n_groups) / (2 * sd_g)
    tol = K * se_sdg + 0.1 * sd_g
    assert abs(sd_hat - sd_g) < tol, f"group SD {sd_hat:.3f} vs {sd_g} (tol {tol:.3f})"
    assert abs(sd_hat - sd_g / 2) > tol and abs(sd_hat - 0.0) > tol  # power
