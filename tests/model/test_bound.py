"""BoundModel: bind once, simulate many; keyed rows; populations; pickling; fast grouping."""

from __future__ import annotations

import pickle

import cloudpickle
import numpy as np
import pandas as pd
import pytest

from glmmsim import DataError, InputTypeError, Model, ParameterError
from glmmsim.design import crossed
from glmmsim.model.bound import BoundModel, row_keys
from glmmsim.model.matrices import _formulaic_columns, grouping, model_columns
from glmmsim.randomness import SeedTree
from glmmsim.randomness.streams import RowStreamsStack

FORMULA = "y ~ cond + x + (1 + cond | subject) + (1 | item)"
RANDOM = {"subject": {"sd": {"Intercept": 0.3, "cond[T.b]": 0.2}, "corr": {("Intercept", "cond[T.b]"): 0.3}},
          "item": 0.2}

# every family, with parameters and a coefficient scale that keep the mean in range
FAMILIES = {
    "gaussian": dict(sigma=0.5),
    "binomial": dict(trials=3),
    "poisson": dict(),
    "negative_binomial": dict(dispersion={"theta": 1.5}),
    "gamma": dict(sigma=0.5, link="log"),
    "inverse_gaussian": dict(link="log", dispersion={"dispersion": 0.4}),
    "lognormal": dict(sigma=0.2),
    "exgaussian": dict(sigma=0.1, dispersion={"tau": 0.2}, fixed={"Intercept": 1.0, "cond[T.b]": 0.2, "x": 0.05}),
    "shifted_lognormal": dict(sigma=0.2, dispersion={"shift": 0.3}),
}


def family_model(name: str, seed: int = 5) -> Model:
    kwargs = dict(FAMILIES[name])
    fixed = kwargs.pop("fixed", {"Intercept": 0.3, "cond[T.b]": 0.4, "x": 0.1})
    return Model(FORMULA, fixed=fixed, random=RANDOM, family=name, seed=seed, **kwargs)


def conditions(n_subjects=12, n_items=6, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [(f"s{s:02d}", f"i{i}", c) for s in range(n_subjects) for i in range(n_items) for c in "ab"]
    df = pd.DataFrame(rows, columns=["subject", "item", "cond"])
    df["x"] = rng.normal(size=len(df))
    # a shuffled, non-default index so that index keys and positions differ
    df.index = pd.Index(rng.permutation(len(df)) * 7 + 3, name="trial")
    return df


def random_parts(n: int, k: int, seed: int) -> list[np.ndarray]:
    """k non-empty subsets of range(n), not contiguous, each in shuffled row order."""
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.arange(k), rng.integers(0, k, n - k)])
    rng.shuffle(labels)
    return [rng.permutation(np.flatnonzero(labels == j)) for j in rng.permutation(k)]


# ------------------------------------------------------------------------- keyed rows
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("k", [1, 3, 7])
def test_slices_keyed_by_index_give_the_rows_of_the_whole(family, k):
    model, data = family_model(family), conditions()
    whole = model.simulate(data, seed=11, key="index")
    parts = [model.simulate(data.iloc[rows], seed=11, key="index") for rows in random_parts(len(data), k, k)]
    joined = pd.concat(parts).loc[whole.index]
    np.testing.assert_array_equal(joined["y"].to_numpy(), whole["y"].to_numpy())


@pytest.mark.parametrize("family", ["gaussian", "poisson", "binomial"])
def test_rows_keyed_by_columns_keep_their_values_in_any_order_or_company(family):
    model, data = family_model(family), conditions()
    key = ["subject", "item", "cond"]
    whole = model.simulate(data, seed=2, key=key)
    shuffled = data.sample(frac=0.5, random_state=1)
    part = model.simulate(shuffled, seed=2, key=list(reversed(key)))  # column order does not matter
    np.testing.assert_array_equal(part["y"].to_numpy(), whole.loc[shuffled.index, "y"].to_numpy())


def test_position_keys_with_offset_give_the_rows_of_the_whole():
    model, data = family_model("gaussian"), conditions()
    whole = model.bind(data).simulate_response(seed=4)
    tail = model.bind(data.iloc[100:], offset=100).simulate_response(seed=4)
    np.testing.assert_array_equal(tail, whole[100:])
    # without the offset the rows would take the first positions' noise
    assert not np.array_equal(model.bind(data.iloc[100:]).simulate_response(seed=4), whole[100:])


def test_index_keys_are_not_positions():
    model, data = family_model("gaussian"), conditions()
    a = model.bind(data).simulate_response(seed=4)
    b = model.bind(data, key="index").simulate_response(seed=4)
    assert not np.array_equal(a, b)


def test_multiindex_keys_use_every_level():
    model, data = family_model("gaussian"), conditions()
    multi = data.set_index(["subject", "item", "cond"], drop=False)
    whole = model.bind(multi, key="index").simulate_response(seed=1)
    part = model.bind(multi.iloc[::5], key="index").simulate_response(seed=1)
    np.testing.assert_array_equal(part, whole[::5])


def test_duplicate_index_keys_name_the_first_duplicate():
    model, data = family_model("gaussian"), conditions()
    data = data.set_axis([0, 1, 2, 1] + list(range(10, 10 + len(data) - 4)), axis=0)
    with pytest.raises(DataError, match=r"index = 1 appears at rows 1 and 1 \(positions 1 and 3"):
        model.bind(data, key="index")


def test_duplicate_column_keys_name_the_value_and_rows():
    model, data = family_model("gaussian"), conditions()
    with pytest.raises(DataError, match=r"column 'subject' and column 'item' = \('s00', 'i0'\) appears at rows"):
        model.simulate(data, seed=1, key=["subject", "item"])
    # equal after canonicalisation (1 and 1.0 are one key), like level values
    df = pd.DataFrame({"k": pd.Series([1, 2.0, 1.0], dtype=object)})
    with pytest.raises(DataError, match="column 'k' = 1 appears at rows 0 and 2"):
        row_keys(df, ["k"])


@pytest.mark.parametrize(
    "key, offset, error, match",
    [
        ("subject", 0, InputTypeError, r"key=\['subject'\]"),
        (["nope"], 0, DataError, "key column 'nope'"),
        ([], 0, InputTypeError, "non-empty"),
        (["item", "item"], 0, InputTypeError, "more than once"),
        ("index", 5, InputTypeError, "offset"),
        (None, -1, InputTypeError, "offset"),
        (None, 1.5, InputTypeError, "offset"),
    ],
)
def test_bad_keys_are_named(key, offset, error, match):
    with pytest.raises(error, match=match):
        family_model("gaussian").bind(conditions(), key=key, offset=offset)


def test_missing_key_values_are_an_error():
    data = conditions().assign(k=1.0)
    data.loc[data.index[4], "k"] = np.nan
    with pytest.raises(DataError, match=f"key column 'k' has missing values, first at row {data.index[4]}"):
        family_model("gaussian").bind(data, key=["k"])


# ---------------------------------------------------------------- bind once, simulate many
def test_bind_once_simulate_many_gives_model_simulate_numbers():
    model, data = family_model("gaussian"), conditions()
    bound = model.bind(data)
    for seed in (0, 1, 2**40):
        expected = model.simulate(data, seed=seed)
        pd.testing.assert_frame_equal(bound.simulate(seed=seed), expected)
        np.testing.assert_array_equal(bound.simulate_response(seed=seed), expected["y"].to_numpy())
    pd.testing.assert_series_equal(bound.predict(), model.predict(data))
    pd.testing.assert_series_equal(bound.predict(type="link", random=False), model.predict(data, type="link", random=False))
    for factor, effects in model.random_effects(data).items():
        pd.testing.assert_frame_equal(bound.random_effects()[factor], effects)
    assert len(bound) == len(data) and bound.model is model
    pd.testing.assert_frame_equal(bound.conditions, data)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_bound_and_unbound_agree_for_every_family(family):
    model, data = family_model(family), conditions()
    bound = model.bind(data, key="index")
    np.testing.assert_array_equal(
        bound.simulate_response(seed=3), model.simulate(data, seed=3, key="index")["y"].to_numpy()
    )


@pytest.mark.parametrize("family", list(FAMILIES))
def test_responses_drawn_together_are_those_drawn_one_by_one(family):
    """Several seeds and populations (repeated, the model's own) in one call: the numbers of one call each."""
    model, data = family_model(family), conditions()
    bound = model.bind(data, key="index")
    seeds, populations = [3, 4, 2**40, 4], [10, None, 11, 10]
    together = bound.simulate_responses(seeds, populations=populations)
    assert together.shape == (len(seeds), len(data))
    for row, seed, population in zip(together, seeds, populations):
        np.testing.assert_array_equal(row, bound.simulate_response(seed, population=population))
    own = bound.simulate_responses([5, 6])
    np.testing.assert_array_equal(own[1], bound.simulate_response(6))


def test_responses_drawn_together_in_passes_are_those_of_one_pass(monkeypatch):
    """A design too large for one pass of all seeds is drawn in several: the same numbers, every family."""
    from glmmsim.model import bound as bound_module

    for family in ("gaussian", "poisson"):
        bound = family_model(family).bind(conditions())
        whole = bound.simulate_responses(range(7), populations=range(20, 27))
        monkeypatch.setattr(bound_module, "DRAW_ENTRIES", 2 * len(bound))  # two replicates a pass
        passes = []
        etas = BoundModel._etas
        monkeypatch.setattr(BoundModel, "_etas", lambda self, keys: passes.append(len(keys)) or etas(self, keys))
        np.testing.assert_array_equal(bound.simulate_responses(range(7), populations=range(20, 27)), whole)
        assert passes == [2, 2, 2, 1]
        monkeypatch.undo()


def test_responses_drawn_together_with_zero_sd_slopes_and_numeric_slopes():
    model = Model("y ~ x + (1 + x | subject) + (1 + cond | item)", fixed={"Intercept": 1.0, "x": 0.5},
                  random={"subject": {"sd": {"Intercept": 0.4, "x": 0.0}}, "item": {"sd": {"Intercept": 0.3, "cond[T.b]": 0.2}}},
                  sigma=0.7, seed=2)
    bound = model.bind(conditions())
    together = bound.simulate_responses(range(5), populations=range(100, 105))
    for k in range(5):
        np.testing.assert_array_equal(together[k], bound.simulate_response(k, population=100 + k))


def test_responses_drawn_together_check_their_input_and_their_draws():
    model, data = family_model("gaussian"), conditions()
    bound = model.bind(data)
    assert bound.simulate_responses([]).shape == (0, len(data))
    with pytest.raises(ParameterError, match="2 seeds, 1 populations") as bad:
        bound.simulate_responses([1, 2], populations=[3])
    assert bad.value.parameter == "populations"
    with pytest.raises(ParameterError, match=r"shape \(2, 144\)") as bad:
        model.family.sample_many(np.zeros((3, len(data))), RowStreamsStack(bound.row_keys, [1, 2]))
    assert bad.value.parameter == "etas"
    huge = model.replace(sigma=1e300, fixed={"Intercept": np.finfo(float).max, "cond[T.b]": 0.0, "x": 0.0}).bind(data)
    # draws that overflow: the same error as one by one
    with pytest.raises(DataError) as one:
        huge.simulate_response(1)
    with pytest.raises(DataError) as together:
        huge.simulate_responses([1, 2])
    assert str(together.value) == str(one.value)


def test_population_gives_new_effects_on_the_same_design():
    model, data = family_model("gaussian"), conditions()
    bound = model.bind(data)
    other = model.replace(seed=99)
    np.testing.assert_array_equal(bound.simulate_response(seed=1, population=99),
                                  other.simulate(data, seed=1)["y"].to_numpy())
    pd.testing.assert_frame_equal(bound.random_effects(population=99)["subject"], other.random_effects(data)["subject"])
    pd.testing.assert_series_equal(bound.predict(population=99), other.predict(data))
    # a new population moves the effects, not the noise: the residuals are the same
    res_own = bound.simulate_response(seed=1) - bound.predict().to_numpy()
    res_new = bound.simulate_response(seed=1, population=99) - bound.predict(population=99).to_numpy()
    np.testing.assert_allclose(res_own, res_new, atol=1e-12)
    assert not np.allclose(bound.predict(), bound.predict(population=99))
    # the own population is still the model's after another was asked for
    pd.testing.assert_series_equal(bound.predict(), model.predict(data))


def test_common_random_numbers_across_design_sizes():
    """The 20-subject design's subjects are the first 20 of the 40-subject design, same effects and noise."""
    model = Model("y ~ cond + (1 + cond | subject) + (1 | item)", fixed={"Intercept": 0, "cond[T.b]": 0.3},
                  random=RANDOM, sigma=1.0)
    small = crossed(subjects=20, items=10, within={"cond": ["a", "b"]})
    large = crossed(subjects=40, items=10, within={"cond": ["a", "b"]})
    rep = SeedTree(8).replicate(3)
    key = ["subject", "item", "cond"]
    ys = model.bind(small, key=key).simulate(seed=rep.noise, population=rep.population)
    yl = model.bind(large, key=key).simulate(seed=rep.noise, population=rep.population)
    assert set(small["subject"]) < set(large["subject"])
    merged = ys.merge(yl, on=key, suffixes=("_small", "_large"))
    assert len(merged) == len(small)
    np.testing.assert_array_equal(merged["y_small"], merged["y_large"])
    re_small = model.bind(small).random_effects(population=rep.population)["subject"]
    re_large = model.bind(large).random_effects(population=rep.population)["subject"]
    pd.testing.assert_frame_equal(re_small, re_large.loc[re_small.index])


# ----------------------------------------------------------------------------- pickling
@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_model_and_bound_model_round_trip_through_pickle(family, dumps):
    model, data = family_model(family), conditions()
    bound = model.bind(data, key="index")
    expected = bound.simulate_response(seed=7)
    model2 = pickle.loads(dumps(model))
    np.testing.assert_array_equal(model2.simulate(data, seed=7, key="index")["y"].to_numpy(), expected)
    bound2 = pickle.loads(dumps(bound))
    assert isinstance(bound2, BoundModel)
    np.testing.assert_array_equal(bound2.simulate_response(seed=7), expected)
    np.testing.assert_array_equal(bound2.simulate_response(seed=7, population=3), bound.simulate_response(seed=7, population=3))


# ------------------------------------------------------------------- inputs and outputs
def test_bound_model_is_immutable_and_ignores_later_edits_of_the_data():
    model, data = family_model("gaussian"), conditions()
    before = data.copy()
    bound = model.bind(data)
    expected = bound.simulate_response(seed=1)
    with pytest.raises(AttributeError, match="immutable"):
        bound._conditions = None
    data.loc[data.index[0], "x"] = 1000.0
    data.loc[data.index[1], "subject"] = "zz"
    np.testing.assert_array_equal(bound.simulate_response(seed=1), expected)
    out = bound.conditions
    out.loc[out.index[0], "x"] = -5.0
    np.testing.assert_array_equal(bound.simulate_response(seed=1), expected)
    pd.testing.assert_frame_equal(bound.conditions, before)
    with pytest.raises(ValueError):
        bound.row_keys[0] = 1


def test_output_keeps_index_and_column_order_and_input_is_untouched():
    model, data = family_model("gaussian"), conditions()
    data = data.assign(y=0.0)[["x", "y", "cond", "item", "subject"]]
    before = data.copy()
    out = model.bind(data, key="index").simulate(seed=1)
    assert list(out.columns) == list(data.columns)
    assert out.index.equals(data.index)
    pd.testing.assert_frame_equal(data, before)
    pd.testing.assert_frame_equal(out.drop(columns="y"), data.drop(columns="y"))


def test_model_inputs_are_copied_not_referenced():
    corr = np.array([[1.0, 0.3], [0.3, 1.0]])
    random = {"subject": {"sd": {"Intercept": 0.3, "cond[T.b]": 0.2}, "corr": corr}, "item": 0.2}
    fixed = {"Intercept": 0.3, "cond[T.b]": 0.4, "x": 0.1}
    model = Model(FORMULA, fixed=fixed, random=random, sigma=0.5, seed=1)
    data = conditions()
    expected = model.predict(data)
    corr[0, 1] = corr[1, 0] = -0.9
    random["subject"]["sd"]["Intercept"] = 5.0
    fixed["x"] = 7.0
    pd.testing.assert_series_equal(model.predict(data), expected)
    assert corr[0, 1] == -0.9 and fixed["x"] == 7.0  # and nothing of ours was written back


def test_predict_random_must_be_a_bool():
    model, data = family_model("gaussian"), conditions()
    with pytest.raises(InputTypeError, match="random must be True or False"):
        model.predict(data, random="no")
    with pytest.raises(InputTypeError, match="random must be True or False"):
        model.bind(data).predict(random=0)


def test_to_theta_works_on_model_and_bound_model():
    from glmmsim.lme4.theta import to_theta

    model, data = family_model("gaussian"), conditions()
    np.testing.assert_array_equal(model.bind(data).to_theta(), to_theta(model, data))
    with pytest.raises(InputTypeError):
        to_theta(model)
    with pytest.raises(InputTypeError):
        to_theta(model.bind(data), data)


# --------------------------------------------------------------------- fast grouping
def _as(data: pd.DataFrame, kind: str, cols=("subject", "item")) -> pd.DataFrame:
    out = data.copy()
    for col in cols:
        labels = out[col].str[1:].astype(int)
        if kind == "int":
            out[col] = labels
        elif kind == "categorical":
            cats = sorted(set(out[col]), reverse=True) + ["unused"]
            out[col] = pd.Categorical(out[col], categories=cats)
        elif kind == "object":
            out[col] = out[col].astype(object)
    return out


@pytest.mark.parametrize("kind", ["categorical", "object"])
def test_grouping_columns_of_any_type_give_the_same_numbers(kind):
    model, data = family_model("gaussian"), conditions()
    expected = model.bind(data).simulate_response(seed=1)
    np.testing.assert_array_equal(model.bind(_as(data, kind)).simulate_response(seed=1), expected)
    re = model.bind(_as(data, kind)).random_effects()["subject"]
    pd.testing.assert_frame_equal(re, model.random_effects(data)["subject"], check_index_type=False)


def test_int_grouping_by_offset_equals_hashing_and_string_spelling():
    model = Model("y ~ (1 | g)", fixed={"Intercept": 0}, random={"g": 1.0}, sigma=0.0, seed=3)
    g = np.array([1_000_003, 1_000_001, 1_000_003, 1_000_010])
    ints = model.predict(pd.DataFrame({"g": g}))
    strs = model.predict(pd.DataFrame({"g": g.astype(str)}))
    wide = model.predict(pd.DataFrame({"g": np.append(g, -2**62)})).iloc[:4]  # too wide a range: hashed
    np.testing.assert_array_equal(ints, strs)
    np.testing.assert_array_equal(ints, wide)
    assert list(model.random_effects(pd.DataFrame({"g": g}))["g"].index) == [1_000_003, 1_000_001, 1_000_010]


def test_unused_categories_are_not_levels():
    df = pd.DataFrame({"g": pd.Categorical(["b", "a", "b"], categories=["z", "a", "b", "c"])})
    group = grouping(df, ["g"], "(1 | g)")
    assert sorted(group.labels) == ["a", "b"] and group.codes.max() == 1
    assert group.labels[group.codes].tolist() == ["b", "a", "b"]


@pytest.mark.parametrize("kinds", [("categorical", "int"), ("int", "int"), ("object", "categorical")])
def test_interaction_factors_agree_across_column_types(kinds):
    data = conditions()
    model = Model("y ~ (1 | subject:item)", fixed={"Intercept": 0}, random={"subject:item": 1.0}, sigma=0.0, seed=3)
    mixed = _as(_as(data, kinds[0], ["subject"]), kinds[1], ["item"])
    hashed_frame = mixed.astype({"subject": object, "item": object})  # factorized: the reference path
    np.testing.assert_array_equal(model.predict(mixed).to_numpy(), model.predict(hashed_frame).to_numpy())
    group = grouping(mixed, ["subject", "item"], "f")
    hashed = grouping(hashed_frame, ["subject", "item"], "f")
    assert len(group.labels) == len(hashed.labels) == 72
    by_label = dict(zip(map(tuple, hashed.labels.to_frame().astype(str).to_numpy()), hashed.keys))
    assert all(by_label[tuple(map(str, lab))] == k for lab, k in zip(group.labels, group.keys))


FIXED_DATA = pd.DataFrame({
    "s": ["b", "a", "c", "a", "b", "c"],
    "c": pd.Categorical(["y", "x", "y", "x", "y", "y"], categories=["y", "x", "w"]),
    "x": [0.5, 1.0, -1.0, 2.0, 0.0, 3.0],
})


@pytest.mark.parametrize("expr", ["1 + s", "0 + s", "1 + c", "0 + c", "0 + s + c", "0 + x + s",
                                  "1 + x + c + s", "c + 1", "1 + s + x:c"])
@pytest.mark.parametrize("levels", [{}, {"s": ["c", "b", "a"]}])
def test_categorical_columns_from_codes_equal_formulaic(expr, levels):
    fast = model_columns(expr, FIXED_DATA, levels)
    slow = _formulaic_columns(expr, FIXED_DATA, levels, "test")
    assert fast.names == slow.names
    for a, b in zip(fast.arrays, slow.arrays):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a, b)


def test_categorical_fast_path_errors_name_column_and_row():
    df = FIXED_DATA.assign(s=["b", "a", None, "a", "b", "c"])
    with pytest.raises(DataError, match="'s'.*missing.*row 2"):
        model_columns("1 + s", df)
    with pytest.raises(DataError, match="value 'c'.*row 2.*declared levels"):
        model_columns("1 + s", FIXED_DATA, {"s": ["a", "b"]})


@pytest.mark.parametrize("values", [
    np.array([-128, 127, 0, 127], dtype=np.int8),
    np.array([2**64 - 1, 2**64 - 3, 2**64 - 1], dtype=np.uint64),
    np.array([5, 3, 5], dtype=np.uint16),
])
def test_int_grouping_by_offset_handles_every_width(values):
    group = grouping(pd.DataFrame({"g": values}), ["g"], "(1 | g)")
    np.testing.assert_array_equal(group.labels[group.codes].to_numpy(), values)
    hashed = grouping(pd.DataFrame({"g": values.astype(object)}), ["g"], "(1 | g)")
    assert dict(zip(group.labels, group.keys)) == dict(zip(hashed.labels, hashed.keys))


def test_key_errors_carry_what_they_are_about():
    data = conditions().assign(k=1.0)
    data.loc[data.index[4], "k"] = np.nan
    with pytest.raises(DataError) as missing:
        family_model("gaussian").bind(data, key=["k"])
    assert (missing.value.parameter, missing.value.column, missing.value.row) == ("key", "k", data.index[4])
    with pytest.raises(DataError) as dup:
        row_keys(pd.DataFrame({"k": [1, 2, 1]}, index=[10, 11, 12]), ["k"])
    assert (dup.value.parameter, dup.value.row) == ("key", 12)
    with pytest.raises(InputTypeError) as bad:
        row_keys(data, "k")
    assert bad.value.parameter == "key"
