"""Model: public contract, persistence of random effects, and errors on bad input."""

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import glmmsim
from glmmsim import DataError, FormulaError, InputTypeError, Model, ParameterError

FORMULA = "y ~ 1 + x1 + x2 + (1 + x1 | subject) + (1 | item)"
FIXED = {"Intercept": 1.5, "x1": 2.0, "x2": -1.2}
RANDOM = {
    "subject": {"sd": {"Intercept": 0.5, "x1": 0.3}, "corr": {("Intercept", "x1"): 0.2}},
    "item": 0.4,
}


def make_conditions(n=400, n_subjects=20, n_items=10, seed=0, index=None):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "subject": rng.choice([f"s{i:03d}" for i in range(n_subjects)], n),
            "x2": rng.normal(size=n),
            "item": rng.integers(0, n_items, n),
        },
        index=index,
    )


@pytest.fixture
def model():
    return Model(FORMULA, fixed=FIXED, random=RANDOM, sigma=0.1, seed=7)


@pytest.fixture
def data():
    return make_conditions()


def test_simulate_returns_a_copy_with_the_response_appended(model, data):
    data = data.set_index(pd.Index(np.arange(len(data))[::-1] * 3, name="trial"))
    before = data.copy()
    out = model.simulate(data, seed=1)
    assert list(out.columns) == list(data.columns) + ["y"]
    assert out.index.equals(data.index)
    pd.testing.assert_frame_equal(data, before)
    pd.testing.assert_frame_equal(out[list(data.columns)], data)


def test_existing_response_column_is_replaced_in_place(model, data):
    data = data.assign(y=0.0)[["y", "x1", "x2", "subject", "item"]]
    out = model.simulate(data, seed=1)
    assert list(out.columns) == ["y", "x1", "x2", "subject", "item"]
    assert (data["y"] == 0.0).all() and not (out["y"] == 0.0).all()


def test_writing_into_the_output_leaves_the_input_alone(model, data):
    before = data.copy()
    out = model.simulate(data, seed=1)
    out.loc[out.index[0], "x1"] = 999.0
    pd.testing.assert_frame_equal(data, before)


def test_simulate_is_predict_plus_gaussian_noise_from_the_call_seed(model, data):
    # keyed noise: row r's normal is RowStreams(position keys, SeedTree(seed).child("noise").key).normals(0)
    from glmmsim.randomness.streams import RowStreams
    from glmmsim.randomness import SeedTree

    out = model.simulate(data, seed=3)
    noise = out["y"] - model.predict(data)
    streams = RowStreams(np.arange(len(data), dtype=np.uint64), SeedTree(3).child("noise").key)
    np.testing.assert_allclose(noise.to_numpy(), 0.1 * streams.normals(0), atol=1e-12)


def test_predict_is_fixed_part_plus_gathered_random_effects(model, data):
    re = model.random_effects(data)
    s = re["subject"].loc[data["subject"]].to_numpy()
    i = re["item"].loc[data["item"]].to_numpy()[:, 0]
    expected = 1.5 + 2.0 * data.x1 - 1.2 * data.x2 + s[:, 0] + s[:, 1] * data.x1 + i
    np.testing.assert_allclose(model.predict(data).to_numpy(), expected.to_numpy(), rtol=1e-12)
    fixed_only = model.predict(data, random=False)
    np.testing.assert_allclose(fixed_only, 1.5 + 2.0 * data.x1 - 1.2 * data.x2, rtol=1e-12)


def test_same_seeds_same_numbers_and_seed_types(data):
    a = Model(FORMULA, FIXED, RANDOM, 0.1, seed=7).simulate(data, seed=1)
    b = Model(FORMULA, FIXED, RANDOM, 0.1, seed=np.random.SeedSequence(7)).simulate(
        data, seed=np.random.SeedSequence(1)
    )
    pd.testing.assert_frame_equal(a, b)
    # a Generator is used once to derive a key: generators in the same state give the same numbers
    g1 = Model(FORMULA, FIXED, RANDOM, 0.1, seed=7).simulate(data, seed=np.random.default_rng(1))
    g2 = Model(FORMULA, FIXED, RANDOM, 0.1, seed=7).simulate(data, seed=np.random.default_rng(1))
    pd.testing.assert_frame_equal(g1, g2)
    c = Model(FORMULA, FIXED, RANDOM, 0.1, seed=8).simulate(data, seed=1)
    assert not np.allclose(a["y"], c["y"])


@pytest.mark.parametrize("bad", ["7", 1.5, -1, [1]])
def test_seeds_of_the_wrong_type_are_rejected(bad, data):
    with pytest.raises(InputTypeError, match="seed"):
        Model(FORMULA, FIXED, RANDOM, 0.1, seed=bad)
    with pytest.raises(InputTypeError, match="seed"):
        Model(FORMULA, FIXED, RANDOM, 0.1, seed=1).simulate(data, seed=bad)


def test_a_subject_keeps_its_effects_whatever_else_is_in_the_data(model, data):
    full = model.random_effects(data)["subject"]
    alone = model.random_effects(data[data.subject == "s003"])["subject"]
    pd.testing.assert_series_equal(full.loc["s003"], alone.loc["s003"])
    more = make_conditions(n=2000, n_subjects=200, seed=5)
    pd.testing.assert_series_equal(full.loc["s003"], model.random_effects(more)["subject"].loc["s003"])


def test_level_values_equal_across_types_share_effects():
    m = Model("y ~ (1 | g)", {"Intercept": 0}, {"g": 1.0}, 0.0, seed=1)
    values = [m.predict(pd.DataFrame({"g": [v]})).iloc[0] for v in (3, 3.0, np.int32(3), "3")]
    assert len(set(values)) == 1


def test_uncorrelated_terms_share_draws_with_separate_bars():
    data = make_conditions()
    a = Model("y ~ (x1 || subject)", {"Intercept": 0}, {"subject": {"Intercept": 1, "x1": 0.5}}, 0, seed=4)
    b = Model("y ~ (1 | subject) + (0 + x1 | subject)", {"Intercept": 0}, {"subject": {"Intercept": 1, "x1": 0.5}}, 0, seed=4)
    c = Model("y ~ (1 + x1 | subject)", {"Intercept": 0}, {"subject": {"Intercept": 1, "x1": 0.5}}, 0, seed=4)
    pd.testing.assert_series_equal(a.predict(data), b.predict(data))
    pd.testing.assert_series_equal(a.predict(data), c.predict(data))


def test_adding_a_correlated_slope_keeps_the_intercepts(data):
    a = Model("y ~ (1 | subject)", {"Intercept": 0}, {"subject": 1.0}, 0, seed=4)
    b = Model("y ~ (1 + x1 | subject)", {"Intercept": 0},
              {"subject": {"sd": {"Intercept": 1, "x1": 0.5}, "corr": {("x1", "Intercept"): -0.6}}}, 0, seed=4)
    pd.testing.assert_series_equal(
        a.random_effects(data)["subject"]["Intercept"], b.random_effects(data)["subject"]["Intercept"]
    )


rows = st.lists(
    st.tuples(st.sampled_from(list("ABCDEFG")), st.sampled_from(["i1", "i2", "i3"]),
              st.floats(-3, 3, allow_nan=False)),
    min_size=1, max_size=30,
)


@settings(max_examples=40, deadline=None)
@given(rows=rows, perm_seed=st.integers(0, 2**32 - 1))
def test_prediction_of_a_row_does_not_depend_on_order_or_company(rows, perm_seed):
    m = Model("y ~ x1 + (1 + x1 | subject) + (1 | item)", {"Intercept": 1, "x1": 0.5},
              {"subject": {"Intercept": 1, "x1": 0.5}, "item": 0.3}, 0.2, seed=11)
    df = pd.DataFrame(rows, columns=["subject", "item", "x1"])
    perm = np.random.default_rng(perm_seed).permutation(len(df))
    shuffled = df.iloc[perm]
    pd.testing.assert_series_equal(m.predict(df).loc[shuffled.index], m.predict(shuffled))
    single = pd.concat([m.predict(df.iloc[[k]]) for k in range(len(df))])
    pd.testing.assert_series_equal(m.predict(df), single)


def test_nested_factor_keys_in_either_order():
    data = pd.DataFrame({"school": ["a", "a", "b", "b"], "class": ["1", "2", "1", "2"]})
    a = Model("y ~ (1 | school/class)", {"Intercept": 0}, {"school": 1, "school:class": 0.5}, 0, seed=2)
    b = Model("y ~ (1 | school/class)", {"Intercept": 0}, {"school": 1, "class:school": 0.5}, 0, seed=2)
    pd.testing.assert_series_equal(a.predict(data), b.predict(data))
    re = a.random_effects(data)
    assert len(re["school"]) == 2 and len(re["school:class"]) == 4
    # class "1" in school a and class "1" in school b are different levels
    assert re["school:class"]["Intercept"].nunique() == 4


def test_interaction_factor_is_the_same_whichever_way_round():
    data = pd.DataFrame({"a": ["u", "u", "v"], "b": ["p", "q", "p"]})
    m1 = Model("y ~ (1 | a:b)", {"Intercept": 0}, {"a:b": 1}, 0, seed=2)
    m2 = Model("y ~ (1 | b:a)", {"Intercept": 0}, {"b:a": 1}, 0, seed=2)
    pd.testing.assert_series_equal(m1.predict(data), m2.predict(data))


def test_lme4_coefficient_names_are_accepted():
    data = pd.DataFrame({"cond": ["a", "b", "c", "a"], "x": [0.0, 1.0, 2.0, 3.0]})
    f = "y ~ cond * x"
    formulaic = Model(f, {"Intercept": 1, "cond[T.b]": 2, "cond[T.c]": 3, "x": 0.5,
                          "x:cond[T.b]": 0.1, "x:cond[T.c]": 0.2}, sigma=0)
    lme4 = Model(f, {"(Intercept)": 1, "condb": 2, "condc": 3, "x": 0.5, "condb:x": 0.1, "x:condc": 0.2}, sigma=0)
    pd.testing.assert_series_equal(formulaic.predict(data), lme4.predict(data))
    np.testing.assert_allclose(lme4.predict(data), [1.0, 1 + 2 + 0.5 + 0.1, 1 + 3 + 1.0 + 0.4, 2.5])


def test_sum_contrasts_by_formulaic_or_lme4_names():
    data = pd.DataFrame({"cond": ["a", "b", "c"]})
    a = Model("y ~ C(cond, Sum)", {"Intercept": 1, "C(cond, Sum)[S.a]": 0.5, "C(cond, Sum)[S.b]": -0.2}, sigma=0)
    b = Model("y ~ C(cond, Sum)", {"(Intercept)": 1, "cond1": 0.5, "cond2": -0.2}, sigma=0)
    np.testing.assert_allclose(a.predict(data), [1.5, 0.8, 1 - 0.3])
    pd.testing.assert_series_equal(a.predict(data), b.predict(data))


def test_declared_levels_fix_the_coefficients_whatever_levels_appear():
    m = Model("y ~ cond", {"Intercept": 1, "cond[T.b]": 2, "cond[T.c]": 3}, sigma=0,
              levels={"cond": ["a", "b", "c"]})
    np.testing.assert_allclose(m.predict(pd.DataFrame({"cond": ["c", "b"]})), [4.0, 3.0])
    with pytest.raises(DataError, match="'d'.*declared levels"):
        m.predict(pd.DataFrame({"cond": ["d"]}))


def test_transforms_and_interactions_in_the_fixed_part():
    data = pd.DataFrame({"x": [1.0, 2.0, 4.0], "z": [1.0, 0.0, 2.0]})
    m = Model("y ~ np.log(x) + I(x**2) + x:z", {"Intercept": 0, "np.log(x)": 1, "I(x**2)": 0.5, "x:z": 2}, sigma=0)
    np.testing.assert_allclose(m.predict(data), np.log(data.x) + 0.5 * data.x**2 + 2 * data.x * data.z)


def test_random_slope_on_a_categorical_predictor(data):
    data = data.assign(cond=np.where(data.x1 > 0, "hi", "lo"))
    m = Model("y ~ (0 + cond | subject)", {"Intercept": 0},
              {"subject": {"sd": {"cond[hi]": 1, "cond[lo]": 1}, "corr": {("cond[hi]", "cond[lo]"): 0.5}}}, 0, seed=1)
    re = m.random_effects(data)["subject"]
    assert list(re.columns) == ["cond[hi]", "cond[lo]"]


def test_sd_zero_switches_a_factor_off(data):
    m = Model(FORMULA, FIXED, {"subject": {"Intercept": 0, "x1": 0}, "item": 0}, 0.1, seed=1)
    np.testing.assert_allclose(m.predict(data), m.predict(data, random=False))


def test_theta_round_trip_and_lme4_order():
    data = make_conditions(n=600, n_subjects=40, n_items=15)
    m = Model("y ~ x1 + (1 | item) + (1 + x1 | subject)", {"Intercept": 0, "x1": 1},
              {"subject": {"sd": {"Intercept": 0.8, "x1": 0.4}, "corr": {("Intercept", "x1"): 0.3}}, "item": 0.5},
              sigma=2.0)
    theta = glmmsim.to_theta(m, data)
    # subject (40 levels) comes before item (15 levels); 2x2 closed form (s1, r s2, s2 sqrt(1-r^2)) / sigma
    np.testing.assert_allclose(theta, [0.4, 0.3 * 0.2, 0.2 * np.sqrt(1 - 0.09), 0.25])
    back = glmmsim.random_from_theta(m.formula, theta, data, sigma=2.0)
    assert back["subject"]["sd"] == pytest.approx({"Intercept": 0.8, "x1": 0.4})
    assert back["subject"]["corr"][("Intercept", "x1")] == pytest.approx(0.3)
    assert back["item"]["sd"]["Intercept"] == pytest.approx(0.5)
    m2 = Model(m.formula, m.fixed, back, sigma=2.0)
    np.testing.assert_allclose(glmmsim.to_theta(m2, data), theta)


def test_theta_tie_rule_of_mkretrms():
    data = pd.DataFrame({"a": np.arange(20) % 10, "b": np.arange(20) // 2, "s": np.arange(20)})
    m = Model("y ~ (1 | a) + (1 | b) + (1 | s)", {"Intercept": 0}, {"a": 1.0, "b": 2.0, "s": 3.0}, sigma=1.0)
    # reordering happens (s has most levels); tied a and b come out reversed
    np.testing.assert_allclose(glmmsim.to_theta(m, data), [3.0, 2.0, 1.0])
    m = Model("y ~ (1 | s) + (1 | a) + (1 | b)", {"Intercept": 0}, {"a": 1.0, "b": 2.0, "s": 3.0}, sigma=1.0)
    np.testing.assert_allclose(glmmsim.to_theta(m, data), [3.0, 1.0, 2.0])


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(fixed={"Intercept": 1, "x1": 2, "x2": 1, "x3": 0}), ParameterError, "unknown coefficient 'x3'"),
        (dict(fixed={"Intercept": 1, "x1": 2}), ParameterError, "no value for coefficient.*'x2'"),
        (dict(fixed={"Intercept": 1, "x1": 2, "x2": "a"}), ParameterError, r"fixed\['x2'\] must be a number"),
        (dict(fixed={"Intercept": 1, "x1": 2, "x2": np.nan}), ParameterError, "must be finite"),
        (dict(random={**RANDOM, "block": 0.3}), ParameterError, "grouping factor 'block'"),
        (dict(random={"subject": RANDOM["subject"]}), ParameterError, "no spec for grouping factor.*'item'"),
        (dict(random={**RANDOM, "item": -0.4}), ParameterError, "must be >= 0"),
        (dict(random={**RANDOM, "item": float("nan")}), ParameterError, "must be finite"),
        (dict(random={**RANDOM, "subject": {"sd": {"Intercept": 0.5, "x1": 0.3}, "corr": {("Intercept", "x1"): 1.2}}}),
         ParameterError, "outside \\[-1, 1\\]"),
        (dict(random={**RANDOM, "subject": {"Intercept": 0.5, "x": 0.3}}), ParameterError, "unknown coefficient 'x'.*'x1'"),
        (dict(random={**RANDOM, "subject": 0.5}), ParameterError, "single SD"),
        (dict(sigma=-1), ParameterError, "sigma"),
        (dict(sigma=None), ParameterError, "sigma"),
        (dict(family="poison"), ParameterError, "Did you mean 'poisson'"),
    ],
)
def test_bad_parameters_are_named(kwargs, error, message, data):
    args = dict(formula=FORMULA, fixed=FIXED, random=RANDOM, sigma=0.1, seed=1) | kwargs
    with pytest.raises(error, match=message):
        Model(**args).simulate(data, seed=1)


def test_correlation_matrix_that_is_not_psd_is_rejected(data):
    corr = {("Intercept", "x1"): 0.9, ("Intercept", "x2"): 0.9, ("x1", "x2"): -0.9}
    m = Model("y ~ (1 + x1 + x2 | subject)", {"Intercept": 0},
              {"subject": {"sd": {"Intercept": 1, "x1": 1, "x2": 1}, "corr": corr}}, 1)
    with pytest.raises(ParameterError, match="positive semi-definite"):
        m.simulate(data)


def test_full_correlation_matrix_in_sd_order(data):
    spec = {"sd": {"x1": 0.3, "Intercept": 0.5}, "corr": [[1, 0.2], [0.2, 1]]}
    pairs = {"sd": {"Intercept": 0.5, "x1": 0.3}, "corr": {("Intercept", "x1"): 0.2}}
    a = Model("y ~ (x1 | subject)", {"Intercept": 0}, {"subject": spec}, 0, seed=1)
    b = Model("y ~ (x1 | subject)", {"Intercept": 0}, {"subject": pairs}, 0, seed=1)
    pd.testing.assert_series_equal(a.predict(data), b.predict(data))


def test_correlation_across_uncorrelated_terms_is_an_error(data):
    m = Model("y ~ (x1 || subject)", {"Intercept": 0},
              {"subject": {"sd": {"Intercept": 1, "x1": 1}, "corr": {("Intercept", "x1"): 0.3}}}, 1)
    with pytest.raises(ParameterError, match="different terms"):
        m.simulate(data)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.drop(columns="x2"), "column 'x2'.*not in the data"),
        (lambda d: d.drop(columns="item"), "column 'item'.*not in the data"),
        (lambda d: d.assign(x1=d.x1.where(d.index != 5)), "column 'x1'.*missing values, first at row 5"),
        (lambda d: d.assign(x2=d.x2.where(d.index != 7, np.inf)), "column 'x2'.*infinite values, first at row 7"),
        (lambda d: d.assign(subject=d.subject.where(d.index != 3)), "grouping column 'subject'.*row 3"),
    ],
)
def test_bad_data_is_named(model, data, mutate, message):
    with pytest.raises(DataError, match=message):
        model.simulate(mutate(data))


def test_data_must_be_a_dataframe(model, data):
    with pytest.raises(InputTypeError, match="DataFrame"):
        model.simulate(data.to_numpy())


def test_non_numeric_predictor_gets_a_hint(data):
    m = Model("y ~ x1", {"Intercept": 0, "x1": 1}, sigma=1)
    with pytest.raises(ParameterError, match="categorical column"):
        m.simulate(data.assign(x1=np.where(data.x1 > 0, "hi", "lo")))


def test_response_used_as_grouping_factor_is_an_error():
    with pytest.raises(FormulaError, match="response"):
        Model("g ~ (1 | g)", {"Intercept": 0}, {"g": 1}, 1)


def test_errors_share_one_base_class():
    for cls in (FormulaError, ParameterError, DataError, InputTypeError):
        assert issubclass(cls, glmmsim.GlmmsimError)


def test_replace_keeps_the_population(model, data):
    other = model.replace(sigma=0.0)
    np.testing.assert_allclose(other.simulate(data)["y"], model.predict(data))
    with pytest.raises(InputTypeError, match="unknown argument"):
        model.replace(sgima=1)


def _small_data():
    return pd.DataFrame(
        {
            "x": np.arange(1.0, 7.0),
            "g": list("aabbcc"),
            "cond": list("abcabc"),
        }
    )


def _intercept_model(seed=5, **kw):
    return Model("y ~ 1 + (1 | g)", fixed={"Intercept": 0}, random={"g": 1.0}, sigma=1, seed=seed, **kw)


def test_replace_with_seed_uses_new_population():
    data = _small_data()
    new = _intercept_model(seed=5).replace(seed=2)
    expected = _intercept_model(seed=2).random_effects(data)["g"]
    pd.testing.assert_frame_equal(new.random_effects(data)["g"], expected)


def test_replace_ignores_later_mutation_of_random():
    spec = {"g": 1.0}
    m = Model("y ~ 1 + (1 | g)", fixed={"Intercept": 0}, random=spec, sigma=1, seed=1)
    before = m.random_effects(_small_data())["g"]
    spec["g"] = 100.0
    pd.testing.assert_frame_equal(m.replace(sigma=2.0).random_effects(_small_data())["g"], before)


def test_duplicate_grouping_column_is_data_error():
    data = pd.concat([_small_data(), _small_data()[["g"]]], axis=1)
    with pytest.raises(DataError, match="'g'"):
        _intercept_model().simulate(data, seed=1)


def test_response_used_as_predictor_is_formula_error():
    with pytest.raises(FormulaError, match="'x'"):
        Model("x ~ x + (1 | g)", fixed={"Intercept": 0, "x": 1}, random={"g": 1}, sigma=1)


def test_trials_column_equal_to_response_is_error():
    with pytest.raises(glmmsim.GlmmsimError, match="'n'"):
        Model("n ~ x + (1 | g)", fixed={"Intercept": 0, "x": 0.1}, random={"g": 1}, family="binomial", trials="n")


def test_levels_for_unused_column_rejected():
    # a typo in levels= silently leaves the reference level unchanged
    with pytest.raises(ParameterError, match="Cond"):
        Model(
            "y ~ cond + (1 | g)",
            fixed={"Intercept": 0, "conda": 1, "condb": 1},
            random={"g": 1},
            sigma=1,
            levels={"Cond": ["c", "a", "b"]},
        )


def test_unhashable_declared_levels_are_parameter_error():
    with pytest.raises(ParameterError, match="levels"):
        _intercept_model(levels={"cond": [["a"], ["b"]]})


def test_stateful_transforms_are_partition_invariant_or_warned():
    data = _small_data()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = Model("y ~ center(x) + (1 | g)", fixed={"Intercept": 0, "center(x)": 1}, random={"g": 0.0}, sigma=0)
        full = m.predict(data).iloc[:3].to_numpy()
        part = m.predict(data.iloc[:3]).to_numpy()
    warned = any(issubclass(w.category, glmmsim.GlmmsimWarning) for w in caught)
    assert warned or np.allclose(full, part)


def test_categories_of_a_categorical_column_act_as_declared_levels():
    # unlike lme4, which drops unused levels, a pandas Categorical's categories fix the
    # coefficient set (as levels= does), so subsets of the data keep the same coefficients
    data = _small_data()
    cat = data.assign(cond=pd.Categorical(data["cond"], categories=["z", "a", "b", "c"]))
    m = Model("y ~ cond + (1 | g)", fixed={"Intercept": 0, "condb": 1, "condc": 2}, random={"g": 1}, sigma=1)
    with pytest.raises(ParameterError, match="cond\\[T.a\\]"):
        m.predict(cat)
    declared = m.replace(levels={"cond": ["a", "b", "c"]})
    pd.testing.assert_series_equal(declared.predict(data), m.predict(data))


def test_covariance_without_conditions_says_data_needed():
    m = Model("y ~ (cond | g)", fixed={"Intercept": 0}, random={"g": {"Intercept": 1, "condb": 1, "condc": 1}}, sigma=1)
    with pytest.raises(ParameterError, match="conditions"):
        m.covariance()


def test_model_properties(model):
    assert model.response == "y"
    assert model.variables == ("x1", "x2", "subject", "item")
    assert model.factors == ("subject", "item")
    assert model.factor_columns == {"subject": ("subject",), "item": ("item",)}
    coefs, sd, corr = model.covariance()["subject"]
    assert coefs == ("Intercept", "x1") and sd.tolist() == [0.5, 0.3] and corr[0, 1] == 0.2


def test_columns_inside_transforms_are_found_and_required():
    with pytest.warns(glmmsim.GlmmsimWarning, match="center"):
        m = Model("y ~ center(x3) + np.log(x2) + C(cond, Sum) + (1 | g)", sigma=1, random={"g": 1})
    assert m.variables == ("x3", "x2", "cond", "g")
    with pytest.raises(DataError, match="column 'x3'.*not in the data"):
        m.simulate(pd.DataFrame({"x2": [1.0], "cond": ["a"], "g": [1]}))


# ------------------------------------------------------------ inputs lme4 accepts (issue 12)
def test_offset_is_added_to_the_linear_predictor_with_coefficient_one():
    data = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "t": [1.0, 2.0, 4.0, 8.0], "g": list("aabb")})
    m = Model("y ~ x + offset(log(t)) + (1 | g)", fixed={"Intercept": 0.5, "x": 0.2}, random={"g": 0.3},
              family="poisson", seed=1)
    plain = Model("y ~ x + (1 | g)", fixed={"Intercept": 0.5, "x": 0.2}, random={"g": 0.3}, family="poisson", seed=1)
    assert m.variables == ("x", "t", "g")
    np.testing.assert_allclose(m.predict(data, type="link"), plain.predict(data, type="link") + np.log(data.t))
    np.testing.assert_allclose(m.predict(data, type="link", random=False), 0.5 + 0.2 * data.x + np.log(data.t))
    both = Model("y ~ offset(t) + x + offset(np.sqrt(t)) - 1", fixed={"x": 1.0}, sigma=0.0)
    np.testing.assert_allclose(both.simulate(data, seed=1)["y"], data.t + data.x + np.sqrt(data.t))
    with pytest.raises(DataError, match="column 't', used by offset"):
        m.simulate(data.drop(columns="t"), seed=1)
    with pytest.raises(FormulaError, match="term of its own"):
        Model("y ~ x:offset(t)", fixed={"Intercept": 0}, sigma=1)
    with pytest.raises(FormulaError, match="cannot be subtracted"):
        Model("y ~ x - offset(t)", fixed={"Intercept": 0}, sigma=1)


def test_plus_minus_one_removes_the_intercept_as_in_r():
    data = pd.DataFrame({"x": [1.0, 2.0]})
    m = Model("y ~ x + -1", fixed={"x": 2.0}, sigma=0.0)
    np.testing.assert_allclose(m.predict(data), [2.0, 4.0])
    with pytest.raises(FormulaError, match="dangling"):
        Model("y ~ x + + z", fixed={"x": 2.0}, sigma=0.0)


def test_a_column_named_intercept_is_an_error_not_silently_ignored():
    with pytest.raises(FormulaError, match="column named 'Intercept'"):
        Model("y ~ Intercept + x", fixed={"Intercept": 1, "x": 1}, sigma=1)
    with pytest.raises(FormulaError, match="column named 'Intercept'"):
        Model("y ~ x + (0 + Intercept | g)", fixed={"Intercept": 1, "x": 1}, random={"g": 1}, sigma=1)


def test_covariance_uses_declared_levels_and_lme4_sum_contrast_names():
    m = Model("y ~ C(cond, Sum) + (1 + C(cond, Sum) | g)", fixed={"Intercept": 0, "cond1": 1},
              random={"g": {"sd": {"(Intercept)": 1.0, "cond1": 0.5}, "corr": {("(Intercept)", "cond1"): 0.4}}},
              sigma=1, levels={"cond": ["a", "b"]})
    coefs, sd, corr = m.covariance()["g"]
    assert coefs == ("Intercept", "C(cond, Sum)[S.a]")
    np.testing.assert_array_equal(sd, [1.0, 0.5])
    assert corr[0, 1] == 0.4
    data = pd.DataFrame({"cond": ["a", "b"] * 2, "g": list("aabb")})
    assert m.covariance(data)["g"][0] == coefs
    undeclared = Model("y ~ (0 + cond | g)", fixed={"Intercept": 0}, random={"g": {"cond[a]": 1, "cond[b]": 1}}, sigma=1)
    with pytest.raises(ParameterError, match="pass conditions or levels"):
        undeclared.covariance()


def test_levels_property_is_a_copy_of_the_declared_levels():
    m = Model("y ~ cond + (1 | g)", fixed={"Intercept": 0, "cond[T.b]": 1}, random={"g": 1}, sigma=1,
              levels={"cond": ["a", "b", "c"]})
    levels = m.levels
    assert levels == {"cond": ["a", "b", "c"]}
    levels["cond"].append("d")
    assert m.levels == {"cond": ["a", "b", "c"]}
    assert Model("y ~ x + (1 | g)", fixed={"Intercept": 0, "x": 1}, random={"g": 1}, sigma=1).levels == {}


@pytest.mark.parametrize(
    "kwargs, path",
    [
        (dict(family="negative_binomial", dispersion={"theta": -2}), ("dispersion", "theta")),
        (dict(family="gaussian", sigma=-1), ("sigma",)),
    ],
)
def test_bad_family_parameters_are_about_the_argument_they_came_from(kwargs, path):
    with pytest.raises(ParameterError) as info:
        Model("y ~ 1 + (1 | g)", fixed={"Intercept": 0}, random={"g": 1}, **kwargs)
    assert info.value.path == path and info.value.parameter == path[0]
