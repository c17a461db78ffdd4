"""The fitting API on the default engine: result shape, tests, errors, pickling, prepare()."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import glmmsim
from glmmsim.errors import DataError, GlmmsimError, InputTypeError, ParameterError
from glmmsim.fit import EngineError, FitError, FitResult, TestResult

FORMULA = "rt ~ cond + (1 + cond | subject) + (1 | item)"


@pytest.fixture(scope="module")
def res(rt_data: pd.DataFrame) -> FitResult:
    # the glmm engine's contract (its version, its refusals); the lmm engine's is in test_lmm_engine.py
    return glmmsim.fit(FORMULA, rt_data, engine="glmm")


def test_fit_is_callable_and_a_namespace() -> None:
    import glmmsim.fit.design as design_module

    assert callable(glmmsim.fit)
    assert glmmsim.fit.prepare is glmmsim.fit.prepare  # attributes of the package
    assert design_module.build_design is glmmsim.fit.build_design
    assert "glmm" in glmmsim.fit.available_engines()


def test_register_engine_plugs_in_a_third_party_engine(rt_data: pd.DataFrame) -> None:
    """A minimal engine: numbers in the design's order come back under glmmsim's names."""
    from glmmsim.fit import RawFit, protocol

    class Prepared:
        def __init__(self, design):
            self.design = design

        def fit(self, y, *, reml):
            p = len(self.design.fixed_names)
            return RawFit(beta=np.arange(p, dtype=float), vcov=np.eye(p), df=np.full(p, np.nan), loglik=-1.0,
                          reml=reml, sigma=1.0, covariances=[np.eye(len(t.coefs)) for t in self.design.terms],
                          converged=True, singular=False, warnings=["stub"], engine="stub", engine_version="0",
                          nobs=len(y))

    class Stub:
        name = "stub"

        def available(self):
            return True

        def prepare(self, design):
            return Prepared(design)

    glmmsim.fit.register_engine("stub", Stub)
    try:
        res = glmmsim.fit("rt ~ cond + (1 | subject)", rt_data, engine="stub")
        assert res.engine == "stub" and list(res.fixed["estimate"]) == [0.0, 1.0]
        assert res.random == {"subject": {"sd": {"Intercept": 1.0}, "corr": {}}}
        assert "stub" in glmmsim.fit.available_engines()
    finally:
        protocol._FACTORIES.pop("stub")
        protocol._INSTANCES.pop("stub", None)


def test_result_contract(res: FitResult) -> None:
    assert list(res.fixed.index) == ["Intercept", "cond[T.b]"]
    assert list(res.fixed.columns) == ["estimate", "se", "df", "statistic", "p", "lme4_name"]
    assert list(res.fixed["lme4_name"]) == ["(Intercept)", "condb"]
    assert res.engine == "glmm" and res.engine_version.startswith("glmm 0.6")
    assert res.reml is True and res.nobs == 1200 and res.converged and not res.singular
    assert res.deviance == pytest.approx(-2 * res.loglik)
    assert set(res.random) == {"subject", "item"}
    assert set(res.random["subject"]["sd"]) == {"Intercept", "cond[T.b]"}
    assert list(res.random["subject"]["corr"]) == [("Intercept", "cond[T.b]")]
    assert res.random["item"] == {"sd": {"Intercept": pytest.approx(res.random["item"]["sd"]["Intercept"])}, "corr": {}}
    row = res.fixed.loc["cond[T.b]"]
    assert row["statistic"] == pytest.approx(row["estimate"] / row["se"])
    # lmerTest's p: two-sided t on the Satterthwaite df
    assert row["p"] == pytest.approx(2 * stats.t.sf(abs(row["statistic"]), row["df"]))
    assert 25 < row["df"] < 35  # about subjects - 1 for a within-subject effect with a random slope


def test_tests_name_their_method(res: FitResult) -> None:
    z = res.test("cond[T.b]")
    assert isinstance(z, TestResult) and z.method == "z" and z.statistic_name == "z" and np.isnan(z.df)
    assert z.p == pytest.approx(2 * stats.norm.sf(abs(z.statistic)))
    t = res.test("condb", method="satterthwaite")  # lme4 spelling
    assert (t.method, t.statistic_name, t.df) == ("satterthwaite", "t", res.fixed.loc["cond[T.b]", "df"])
    assert res.test("cond", method="satterthwaite") == t  # a term stands for its coefficients
    both = res.test(["Intercept", "cond"], method="satterthwaite")
    assert both.statistic_name == "F" and both.num_df == 2 and both.coefficients == ("Intercept", "cond[T.b]")
    chi = res.test(["Intercept", "cond"], method="z")
    assert chi.statistic_name == "chi2" and chi.p == pytest.approx(stats.chi2.sf(chi.statistic, 2))


def test_confint_uses_t_on_satterthwaite_df(res: FitResult) -> None:
    ci = res.confint(0.9)
    row = res.fixed.loc["cond[T.b]"]
    half = stats.t.ppf(0.95, row["df"]) * row["se"]
    assert ci.loc["cond[T.b]", "lower"] == pytest.approx(row["estimate"] - half)
    assert ci.loc["cond[T.b]", "upper"] == pytest.approx(row["estimate"] + half)
    with pytest.raises(ParameterError, match="between 0 and 1"):
        res.confint(95)


def test_lrt_is_ml_refit_of_nested_model() -> None:
    rng = np.random.default_rng(5)
    d = pd.DataFrame({"x": rng.normal(size=300), "z": rng.normal(size=300), "g": np.repeat(np.arange(30), 10)})
    d["y"] = 0.5 * d["x"] + 0.2 * d["z"] + rng.normal(size=300) + rng.normal(size=30)[d["g"]]
    res = glmmsim.fit("y ~ x + z + (1 | g)", d)
    lrt = res.test("z", method="lrt")
    full = glmmsim.fit("y ~ x + z + (1 | g)", d, reml=False).loglik
    nested = glmmsim.fit("y ~ x + (1 | g)", d, reml=False).loglik
    assert lrt.method == "lrt" and lrt.statistic == pytest.approx(2 * (full - nested), rel=1e-6)
    assert lrt.p == pytest.approx(stats.chi2.sf(lrt.statistic, 1))


def test_lrt_names_engine_when_nested_model_has_unfittable_slope(res: FitResult) -> None:
    with pytest.raises(EngineError, match=r"likelihood-ratio test of \['cond\[T.b\]'\].*engine='lme4'"):
        res.test("cond", method="lrt")


def test_kr_needs_lme4_and_t_tests_need_gaussian(res: FitResult) -> None:
    with pytest.raises(EngineError, match="engine='lme4'"):
        res.test("cond", method="kr")
    with pytest.raises(ParameterError, match="unknown test method 'wald'.*'z', 'satterthwaite', 'lrt', 'kr'"):
        res.test("cond", method="wald")
    with pytest.raises(ParameterError, match=r"'cnd' is neither.*'Intercept', 'cond\[T.b\]'"):
        res.test("cnd")


def test_test_name_typos_suggest_the_closest_name(res: FitResult) -> None:
    with pytest.raises(ParameterError, match=r"'cnd' is neither.*Did you mean 'cond'\?"):
        res.test("cnd")
    with pytest.raises(ParameterError, match=r"unknown test method 'satterthwait'.*Did you mean 'satterthwaite'\?"):
        res.test("cond", method="satterthwait")


def test_to_model_simulates_from_the_estimates(res: FitResult, rt_data: pd.DataFrame) -> None:
    model = res.to_model(seed=3)
    assert model.fixed == {k: pytest.approx(v) for k, v in res.fixed["estimate"].items()}
    assert model.sigma == res.sigma
    coefs, sd, corr = model.covariance(rt_data)["subject"]
    assert coefs == ("Intercept", "cond[T.b]")
    assert sd[1] == pytest.approx(res.random["subject"]["sd"]["cond[T.b]"])
    assert corr[0, 1] == pytest.approx(res.random["subject"]["corr"][("Intercept", "cond[T.b]")])
    assert model.simulate(rt_data.drop(columns="rt"), seed=1)["rt"].notna().all()


def test_pickles(res: FitResult, rt_data: pd.DataFrame) -> None:
    again = pickle.loads(pickle.dumps(res))
    pd.testing.assert_frame_equal(again.fixed, res.fixed)
    assert again.test("cond", method="satterthwaite") == res.test("cond", method="satterthwaite")
    fitter = pickle.loads(pickle.dumps(glmmsim.fit.prepare(FORMULA, rt_data, engine="glmm")))
    assert fitter.fit(rt_data["rt"].to_numpy()).loglik == pytest.approx(res.loglik, abs=1e-8)


def test_prepare_refits_new_responses(rt_data: pd.DataFrame, res: FitResult) -> None:
    fitter = glmmsim.fit.prepare(FORMULA, rt_data.drop(columns="rt"), engine="glmm")
    again = fitter.fit(rt_data["rt"])
    assert again.loglik == pytest.approx(res.loglik, abs=1e-8)
    shifted = fitter.fit(rt_data["rt"].to_numpy() + 10.0)
    assert shifted.fixed.loc["Intercept", "estimate"] == pytest.approx(res.fixed.loc["Intercept", "estimate"] + 10.0)
    with pytest.raises(DataError, match="one number per row of the design \\(1200\\)"):
        fitter.fit(np.zeros(5))


def test_singular_fit_is_flagged_not_hidden() -> None:
    rng = np.random.default_rng(3)
    d = pd.DataFrame({"x": rng.normal(size=200), "g": np.repeat([f"g{i}" for i in range(20)], 10)})
    d["y"] = 1 + d["x"] + rng.normal(size=200)  # no group variance at all
    res = glmmsim.fit("y ~ x + (1 | g)", d, engine="glmm")
    assert res.singular and res.random["g"]["sd"]["Intercept"] == 0.0
    assert any("near zero" in w for w in res.warnings)


@pytest.mark.parametrize("engine", ["glmm", "lmm"])
def test_failed_fit_is_flagged_not_hidden(engine: str) -> None:
    d = pd.DataFrame({"x": np.arange(40.0), "g": np.repeat(["a", "b", "c", "d"], 10), "y": 5.0})
    res = glmmsim.fit("y ~ x + (1 | g)", d, engine=engine)
    assert not res.converged
    assert any("does not vary" in w for w in res.warnings)
    with pytest.raises(FitError, match="no estimate"):
        res.to_model()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"formula": "rt ~ cnd + (1 | subject)"}, DataError, "column 'cnd'.*Did you mean 'cond'"),
        ({"formula": "rtt ~ cond + (1 | subject)"}, DataError, "response column 'rtt'.*Did you mean 'rt'"),
        ({"formula": "rt ~ cond + (1 | subj)"}, DataError, "column 'subj'"),
        ({"formula": "rt ~ cond"}, ParameterError, "no random-effect term"),
        ({"engine": "lme5"}, EngineError, "unknown engine 'lme5'. Did you mean 'lme4'.*'glmm', 'lme4'"),
        ({"family": "poison"}, ParameterError, "Did you mean 'poisson'"),
        ({"family": "binomial", "link": "log"}, ParameterError, "'logit', 'probit', 'cloglog'"),
        ({"reml": "yes"}, ParameterError, "reml must be None, True or False"),
        ({"family": "poisson", "reml": True}, ParameterError, "reml=True applies to gaussian"),
        ({"trials": 10}, ParameterError, "trials= applies to the binomial family"),
        ({"offset": "nothere"}, DataError, "column 'nothere', used by offset"),
        ({"data": "not a frame"}, InputTypeError, "data must be a pandas DataFrame"),
    ],
)
def test_bad_input_names_the_problem(rt_data, kwargs, error, match) -> None:
    args = {"formula": "rt ~ cond + (1 | subject)", "data": rt_data, **kwargs}
    if kwargs.get("family") == "poisson":
        args["data"] = rt_data.assign(rt=1.0)
    with pytest.raises(error, match=match):
        glmmsim.fit(args.pop("formula"), args.pop("data"), **args)


def test_bad_response_values_name_the_row(rt_data: pd.DataFrame) -> None:
    d = rt_data.assign(k=1.0, n=2)
    d.loc[7, "k"] = 3.0
    with pytest.raises(DataError, match="between 0 and its trials; first offending row 7"):
        glmmsim.fit("k ~ cond + (1 | subject)", d, family="binomial", trials="n")
    d = rt_data.copy()
    d.loc[3, "rt"] = np.nan
    with pytest.raises(DataError, match="missing or infinite; first offending row 3"):
        glmmsim.fit("rt ~ cond + (1 | subject)", d)


def test_bad_response_names_the_row_by_its_index_label(rt_data: pd.DataFrame) -> None:
    d = rt_data.set_axis([f"r{i}" for i in range(len(rt_data))])
    d.loc["r5", "rt"] = np.inf
    with pytest.raises(DataError, match="first offending row 'r5'") as info:
        glmmsim.fit("rt ~ cond + (1 | subject)", d)
    assert info.value.row == "r5"
    fitter = glmmsim.fit.prepare("rt ~ cond + (1 | subject)", d.drop(columns="rt"))
    y = rt_data["rt"].to_numpy(copy=True)
    y[2] = np.nan
    with pytest.raises(DataError, match="first offending row 'r2'"):
        fitter.fit(y)


@pytest.mark.parametrize(
    ("formula", "why"),
    [
        ("y ~ x + (x || g)", "has no intercept and its columns do not span one"),
        ("y ~ x + (0 + x | g)", "has no intercept and its columns do not span one"),
        ("y ~ 1 + (1 + x | g)", "slope 'x' is not also a fixed effect"),
    ],
)
def test_glmm_refuses_what_it_cannot_fit_and_names_lme4(formula: str, why: str) -> None:
    rng = np.random.default_rng(0)
    d = pd.DataFrame({"x": rng.normal(size=100), "g": np.repeat(np.arange(10), 10), "y": rng.normal(size=100)})
    with pytest.raises(EngineError, match=why + r".*Fit it with engine='lme4'"):
        glmmsim.fit(formula, d, engine="glmm")


def test_categorical_slope_without_intercept_is_fitted_exactly() -> None:
    """(0 + cond | g) spans the intercept: glmm fits (1 + cond | g) and the covariance is mapped back."""
    rng = np.random.default_rng(2)
    d = pd.DataFrame({"g": np.repeat(np.arange(40), 10), "cond": np.tile(["a", "b"], 200)})
    d["y"] = rng.normal(size=400) + rng.normal(size=40)[d["g"]] + (d["cond"] == "b") * rng.normal(size=40)[d["g"]]
    cell = glmmsim.fit("y ~ cond + (0 + cond | g)", d, engine="glmm")
    full = glmmsim.fit("y ~ cond + (1 + cond | g)", d, engine="glmm")
    assert cell.loglik == pytest.approx(full.loglik, abs=1e-8)  # the same model in another basis
    sd_full, r = full.random["g"]["sd"], full.random["g"]["corr"][("Intercept", "cond[T.b]")]
    var_b = sd_full["Intercept"] ** 2 + sd_full["cond[T.b]"] ** 2 + 2 * r * sd_full["Intercept"] * sd_full["cond[T.b]"]
    assert cell.random["g"]["sd"]["cond[a]"] == pytest.approx(sd_full["Intercept"], rel=1e-6)
    assert cell.random["g"]["sd"]["cond[b]"] == pytest.approx(np.sqrt(var_b), rel=1e-6)


def test_errors_are_glmmsim_errors() -> None:
    assert issubclass(EngineError, GlmmsimError) and issubclass(FitError, GlmmsimError)


def test_prepare_takes_a_bound_model(rt_data: pd.DataFrame, res: FitResult) -> None:
    class Bound:  # what prepare reads of Model.bind(conditions): its conditions
        conditions = rt_data.drop(columns="rt")

    fitter = glmmsim.fit.prepare(FORMULA, Bound(), engine="glmm")
    assert fitter.fit(rt_data["rt"]).loglik == pytest.approx(res.loglik, abs=1e-8)


@pytest.mark.parametrize(
    ("spelling", "family"),
    [("Gamma", "gamma"), ("nbinom2", "negative_binomial"), ("negative.binomial", "negative_binomial"),
     ("negativebinomial", "negative_binomial"), ("Bernoulli", "binomial"), ("Normal", "gaussian")],
)
def test_fit_reads_every_family_spelling_model_reads(spelling, family) -> None:
    from glmmsim.model.families import resolve_family
    from glmmsim.model.families import family_key

    assert resolve_family(spelling, None)[0] == family_key(spelling) == family


def test_fit_names_the_families_it_fits_for_one_it_cannot() -> None:
    from glmmsim.model.families import resolve_family

    with pytest.raises(ParameterError, match="fitting supports family .*got 'wald'"):
        resolve_family("wald", None)


def test_fit_checks_the_formula_and_trusted_formula_opts_out(rt_data: pd.DataFrame) -> None:
    """A formula is data for fitting too; the caller's own formula may opt out of the whitelist."""
    d = rt_data.assign(x=np.linspace(1.0, 2.0, len(rt_data)))
    with pytest.raises(glmmsim.FormulaError) as info:
        glmmsim.fit("rt ~ np.hypot(x, x) + (1 | subject)", d)
    assert "hypot" in str(info.value) and info.value.term is not None
    res = glmmsim.fit("rt ~ np.hypot(x, x) + (1 | subject)", d, trusted_formula=True)
    assert "np.hypot(x, x)" in res.fixed.index
    fitter = glmmsim.fit.prepare("rt ~ np.hypot(x, x) + (1 | subject)", d, trusted_formula=True)
    assert fitter.fit(d["rt"]).fixed.loc["np.hypot(x, x)", "estimate"] == pytest.approx(
        res.fixed.loc["np.hypot(x, x)", "estimate"], rel=1e-9)
