"""Tests of glmmsim.design: crossed and nested designs."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from glmmsim.design import crossed, nested, unit_labels
from glmmsim.errors import GlmmsimWarning, InputTypeError, ParameterError

COND = {"condition": ["congruent", "incongruent"]}


# --------------------------------------------------------------------------- labels


def test_labels_have_fixed_width_independent_of_count():
    assert unit_labels("s", 40)[16] == "s017"
    assert unit_labels("s", 5000)[16] == "s017"
    assert unit_labels("s", 1000)[-1] == "s1000"


def test_crossed_full_grid_shape_and_columns():
    d = crossed(3, 4, within=COND, repetitions=2)
    assert d.shape == (3 * 4 * 2 * 2, 5)
    assert list(d.columns) == ["subject", "item", "condition", "rep", "trial"]
    assert d.groupby(["subject", "item", "condition"], observed=True).size().eq(2).all()
    assert list(d["condition"].cat.categories) == ["congruent", "incongruent"]
    assert d["trial"].max() == 16


def test_crossed_without_items():
    d = crossed(5, within=COND, repetitions=3)
    assert list(d.columns) == ["subject", "condition", "rep", "trial"]
    assert len(d) == 5 * 2 * 3


def test_custom_column_names_and_prefixes():
    d = crossed(2, 2, subject="participant", item="word", subject_prefix="p", item_prefix="w")
    assert list(d.columns[:2]) == ["participant", "word"]
    assert d["participant"].iloc[0] == "p001" and d["word"].iloc[0] == "w001"


# --------------------------------------------------------------------------- seeds


def test_same_seed_same_design_and_seed_types():
    kw = dict(within=COND, missing=0.2, covariates={"x": {"per": "trial"}}, order="random")
    a = crossed(10, 8, seed=3, **kw)
    pd.testing.assert_frame_equal(a, crossed(10, 8, seed=3, **kw))
    pd.testing.assert_frame_equal(
        crossed(10, 8, seed=np.random.SeedSequence(3), **kw), crossed(10, 8, seed=np.random.SeedSequence(3), **kw)
    )
    g1 = crossed(10, 8, seed=np.random.default_rng(5), **kw)
    g2 = crossed(10, 8, seed=np.random.default_rng(5), **kw)
    pd.testing.assert_frame_equal(g1, g2)
    b = crossed(10, 8, seed=4, **kw)
    assert not np.allclose(a["x"].iloc[:50], b["x"].iloc[:50])


def test_bad_seed_type():
    with pytest.raises(InputTypeError, match="seed"):
        crossed(2, 2, seed="abc")


# --------------------------------------------------------------------------- stability when growing


def _by(df, col, unit="subject"):
    # unit labels are categoricals whose categories are the design's units: compare labels
    return df.drop_duplicates(unit).set_index(df.drop_duplicates(unit)[unit].astype(str))[col]


def test_subject_and_item_draws_stable_when_design_grows():
    kw = dict(
        within=COND,
        between_subjects={"group": ["control", "treatment"]},
        covariates={
            "age": {"per": "subject", "dist": "normal", "mean": 30, "sd": 8},
            "freq": {"per": "item", "dist": "lognormal"},
        },
        assign="random",
        seed=11,
    )
    small, big = crossed(40, 30, **kw), crossed(80, 60, **kw)
    for col in ("age", "group"):
        s, b = _by(small, col), _by(big, col)
        assert s.astype(str).equals(b.loc[s.index].astype(str))
    s_item = _by(small, "freq", "item")
    assert np.array_equal(s_item.to_numpy(), _by(big, "freq", "item").loc[s_item.index].to_numpy())
    assert _by(small, "age").loc["s017"] == _by(big, "age").loc["s017"]


def test_missingness_and_trial_counts_stable_when_subjects_added():
    kw = dict(within=COND, missing=0.25, seed=5)
    small, big = crossed(40, 30, **kw), crossed(80, 30, **kw)
    keys = ["subject", "item", "condition"]
    big_old = big[big["subject"].isin(small["subject"].unique())].reset_index(drop=True)
    pd.testing.assert_frame_equal(small[keys].astype(str), big_old[keys].astype(str))

    kw = dict(within=COND, trials_per_subject=(20, 50), seed=5)
    n_small = crossed(40, 30, **kw).groupby("subject", observed=True).size().rename(index=str)
    n_big = crossed(80, 30, **kw).groupby("subject", observed=True).size().rename(index=str)
    n_small.index, n_big.index = n_small.index.astype(str), n_big.index.astype(str)
    assert n_small.equals(n_big.loc[n_small.index])


def test_missingness_of_existing_trials_stable_when_items_added():
    small = crossed(10, 20, within=COND, missing=0.3, seed=2)
    big = crossed(10, 40, within=COND, missing=0.3, seed=2)
    old = big[big["item"].isin([f"i{k:03d}" for k in range(1, 21)])]
    kept_small = set(map(tuple, small[["subject", "item", "condition"]].astype(str).to_numpy()))
    kept_big = set(map(tuple, old[["subject", "item", "condition"]].astype(str).to_numpy()))
    assert kept_small == kept_big


def test_nested_sizes_stable_when_schools_added():
    kw = dict(covariates={"ses": {"per": "pupil"}}, seed=9)
    lv_small = {"school": 5, "class": (2, 5), "pupil": {"poisson": 20}}
    lv_big = {**lv_small, "school": 12}
    small, big = nested(lv_small, **kw), nested(lv_big, **kw)
    big_old = _drop_unused(big[big["school"].isin(small["school"].unique())].reset_index(drop=True))
    pd.testing.assert_frame_equal(small, big_old)


def _drop_unused(df):
    """A part of a larger design, its unit categories cut to the units it has."""
    return df.apply(lambda c: c.cat.remove_unused_categories() if isinstance(c.dtype, pd.CategoricalDtype) else c)


# --------------------------------------------------------------------------- counterbalancing


def test_latin_square_counterbalancing():
    within = {"condition": ["a", "b", "c"]}
    d = crossed(12, 18, within=within, counterbalance="condition", seed=1)
    # each subject sees every item exactly once
    assert d.groupby(["subject", "item"], observed=True).size().eq(1).all()
    assert len(d) == 12 * 18
    # within a subject, conditions are balanced: 18 items / 3 conditions
    assert d.groupby("subject", observed=True)["condition"].value_counts().eq(6).all()
    # across subjects, each item appears in each condition equally often (12 subjects / 3 lists)
    assert d.groupby("item", observed=True)["condition"].value_counts().eq(4).all()


def test_counterbalancing_not_confounded_with_groups_or_item_factors():
    d = crossed(
        8,
        8,
        within=COND,
        between_subjects={"group": ["g1", "g2"]},
        between_items={"freq": ["hi", "lo"]},
        counterbalance="condition",
    )
    # every group x condition x freq cell holds trials
    cells = d.groupby(["group", "condition", "freq"], observed=True).size()
    assert len(cells) == 8 and cells.nunique() == 1
    # every subject sees both conditions within each frequency level
    assert d.groupby(["subject", "freq"], observed=True)["condition"].nunique().eq(2).all()


def test_counterbalance_partial_keeps_free_factor_crossed():
    d = crossed(4, 4, within={"condition": ["a", "b"], "block": ["1", "2"]}, counterbalance=["condition"])
    assert d.groupby(["subject", "item"], observed=True).size().eq(2).all()
    assert d.groupby(["subject", "item"], observed=True)["block"].nunique().eq(2).all()


def test_counterbalance_unequal_cells_warns_with_counts():
    # 7 items over 3 lists: in every list the cells hold 3, 2 and 2 items
    with pytest.warns(GlmmsimWarning, match=r"7 items over 3 lists .* get 3, 2, 2 items; use a multiple of 3 items"):
        d = crossed(3, 7, within={"condition": ["a", "b", "c"]}, counterbalance="condition", seed=1)
    per_subject = d.groupby("subject", observed=True)["condition"].value_counts()
    assert all(sorted(per_subject[s].tolist()) == [2, 2, 3] for s in d["subject"].unique())


def test_counterbalance_unequal_cells_with_item_factor_warns():
    # 6 items in blocks of 2 (hi, lo) over 2 lists: blocks 0, 1, 2 fall in cells 0, 1, 0
    with pytest.warns(GlmmsimWarning, match=r"6 items over 2 lists .* get 4, 2 items; use a multiple of 4 items"):
        d = crossed(2, 6, within=COND, between_items={"freq": ["hi", "lo"]}, counterbalance="condition")
    assert sorted(d[d["subject"] == "s001"]["condition"].value_counts().tolist()) == [2, 4]


def test_counterbalance_equal_cells_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = crossed(4, 8, within=COND, between_items={"freq": ["hi", "lo"]}, counterbalance="condition")
    assert d.groupby(["subject", "condition"], observed=True).size().eq(4).all()


# --------------------------------------------------------------------------- between factors


def test_between_subjects_balanced_rotation():
    d = crossed(6, 2, between_subjects={"group": ["a", "b", "c"]})
    g = _by(d, "group").astype(str)
    assert g.tolist() == ["a", "b", "c", "a", "b", "c"]


def test_random_assignment_frequencies():
    n = 2000
    d = crossed(n, 1, between_subjects={"group": ["a", "b"]}, assign="random", seed=3)
    share = (_by(d, "group") == "a").mean()
    se = math.sqrt(0.25 / n)  # binomial SE of a proportion of 0.5
    assert abs(share - 0.5) < 4 * se


# --------------------------------------------------------------------------- unbalanced designs


def test_missing_rate_matches():
    rate, n_planned = 0.2, 100 * 50 * 2
    d = crossed(100, 50, within=COND, missing=rate, seed=8)
    observed = 1 - len(d) / n_planned
    se = math.sqrt(rate * (1 - rate) / n_planned)
    assert abs(observed - rate) < 4 * se
    assert d["trial"].max() == 100  # trial numbers keep the planned positions


def test_trials_per_subject_forms():
    d = crossed(30, 20, trials_per_subject=(5, 15), seed=1)
    n = d.groupby("subject", observed=True).size()
    assert n.between(5, 15).all() and n.nunique() > 1
    assert crossed(5, 20, trials_per_subject=7).groupby("subject", observed=True).size().eq(7).all()
    d = crossed(5, 20, trials_per_subject=lambda rng: int(rng.integers(3, 6)), seed=2)
    assert d.groupby("subject", observed=True).size().between(3, 5).all()


def test_trials_per_subject_too_many():
    with pytest.raises(ParameterError, match="plans only 20"):
        crossed(3, 20, trials_per_subject=25)


# --------------------------------------------------------------------------- covariates


def test_trial_covariate_distribution():
    n = 100 * 40
    d = crossed(100, 40, covariates={"x": {"per": "trial", "dist": "normal", "mean": 2.0, "sd": 3.0}}, seed=4)
    assert abs(d["x"].mean() - 2.0) < 4 * 3.0 / math.sqrt(n)
    # SE of a sample SD is about sd / sqrt(2 n)
    assert abs(d["x"].std() - 3.0) < 4 * 3.0 / math.sqrt(2 * n)


def test_covariate_kinds():
    d = crossed(
        50,
        10,
        covariates={
            "u": {"per": "item", "dist": "uniform", "low": 1, "high": 2},
            "k": {"per": "subject", "dist": "integers", "low": 1, "high": 3},
            "hand": {"per": "subject", "dist": "choice", "levels": ["L", "R"], "p": [0.1, 0.9]},
        },
        seed=1,
    )
    assert d["u"].between(1, 2).all()
    assert set(d["k"].unique()) == {1, 2, 3}
    assert d.groupby("item", observed=True)["u"].nunique().eq(1).all()
    assert d.groupby("subject", observed=True)["hand"].nunique().eq(1).all()
    assert list(d["hand"].cat.categories) == ["L", "R"]


# --------------------------------------------------------------------------- nested


def test_nested_fixed_sizes_and_labels():
    d = nested({"school": 3, "class": 2, "pupil": 4}, within={"time": ["pre", "post"]}, repetitions=2)
    assert len(d) == 3 * 2 * 4 * 2 * 2
    assert d["class"].nunique() == 6 and d["pupil"].nunique() == 24
    assert d["pupil"].iloc[-1] == "s003-c002-p004"
    local = nested({"school": 2, "class": 2}, labels="local")
    assert local["class"].tolist() == ["c001", "c002", "c001", "c002"]


def test_nested_unit_labels_are_categoricals_of_the_labels_left():
    # full and local labels: categories are the labels the rows use, in order of appearance
    for labels in ("full", "local"):
        d = nested({"school": 5, "class": (1, 4), "pupil": (2, 6)}, labels=labels, missing=0.6, seed=2)
        for u in ("school", "class", "pupil"):
            assert list(d[u].cat.categories) == list(pd.unique(d[u].astype(object)))
    local = nested({"school": 3, "class": (1, 4)}, labels="local", missing=0.5, seed=3)
    full = nested({"school": 3, "class": (1, 4)}, missing=0.5, seed=3)
    assert local["class"].tolist() == full["class"].str.rsplit("-", n=1).str[-1].tolist()


def test_nested_drawn_sizes():
    d = nested({"school": 40, "class": (2, 4)}, seed=1)
    per = d.groupby("school", observed=True).size()
    assert per.between(2, 4).all() and set(per) == {2, 3, 4}
    mean, n = 20.0, 400
    d = nested({"school": n, "pupil": {"poisson": mean}}, seed=2)
    sizes = d.groupby("school", observed=True).size()
    assert abs(sizes.mean() - mean) < 4 * math.sqrt(mean / n)  # Poisson SE of a mean
    d = nested({"school": 3, "pupil": lambda rng: 5}, seed=2)
    assert len(d) == 15


def test_nested_between_assignment():
    d = nested({"school": 4, "class": 2}, between={"school": {"trt": ["control", "program"]}})
    per_school = d.drop_duplicates("school")["trt"].astype(str).tolist()
    assert per_school == ["control", "program", "control", "program"]
    assert d.groupby("school", observed=True)["trt"].nunique().eq(1).all()


def test_nested_prefix_collision_uses_longer_prefix():
    d = nested({"school": 1, "student": 1})
    assert d.iloc[0].tolist() == ["sch001", "sch001-stu001"]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(subjects=0), ParameterError, "subjects must be >= 1"),
        (dict(subjects=2.5), InputTypeError, "subjects must be an int"),
        (dict(within=["a", "b"]), InputTypeError, "within must be a mapping"),
        (dict(within={"c": "ab"}), InputTypeError, "list of levels"),
        (dict(within={"c": ["a", "a"]}), ParameterError, "repeated levels"),
        (dict(within=COND, counterbalance="conditon"), ParameterError, "Did you mean 'condition'"),
        (dict(within=COND, counterbalance=["condition", "condition"]), ParameterError,
         "counterbalance names 'condition' more than once"),
        (dict(missing=1.5), ParameterError, "missing must be in"),
        (dict(assign="balance"), ParameterError, "Did you mean 'balanced'"),
        (dict(covariates={"x": {"per": "subjct"}}), ParameterError, "Did you mean 'subject'"),
        (dict(covariates={"x": {"dist": "normal", "sigma": 1}}), ParameterError, "unknown parameter 'sigma'"),
        (dict(covariates={"x": {"dist": "gamma"}}), ParameterError, "dist"),
        (dict(within={"subject": ["a", "b"]}), ParameterError, "used twice"),
        (dict(trials_per_subject="many"), InputTypeError, "trials_per_subject"),
    ],
)
def test_crossed_errors(kwargs, exc, match):
    args = {"subjects": 2, "items": 2, **kwargs}
    with pytest.raises(exc, match=match):
        crossed(**args)


def test_nested_errors():
    with pytest.raises(InputTypeError, match="levels must be"):
        nested([("school", 3)])
    with pytest.raises(ParameterError, match="Did you mean 'school'"):
        nested({"school": 2, "class": 2}, between={"schol": {"t": ["a", "b"]}})
    with pytest.raises(ParameterError, match=r"low \(5\) must not exceed high \(2\)"):
        nested({"school": 2, "class": (5, 2)})
    with pytest.raises(InputTypeError, match=r"levels\['school'\]"):
        nested({"school": (2, 3)})


def test_inputs_not_mutated():
    within = {"condition": ["a", "b"]}
    covs = {"x": {"per": "subject", "dist": "normal"}}
    crossed(2, 2, within=within, covariates=covs)
    assert within == {"condition": ["a", "b"]} and covs == {"x": {"per": "subject", "dist": "normal"}}


@pytest.mark.parametrize(
    "cov, exc, match",
    [
        ({"dist": "choice", "levels": ["a", "b"], "p": [0.5, "x"]}, ParameterError, r"\['p'\]\[1\] must be a number"),
        ({"dist": "choice", "levels": ["a", "b"], "p": "ab"}, ParameterError, r"list of 2 probabilities"),
        ({"dist": "choice", "levels": ["a", "b"], "p": [0.5, 0.6]}, ParameterError, r"must sum to 1"),
        ({"dist": "integers", "low": 0.5, "high": 3}, ParameterError, r"\['low'\] must be a whole number"),
        ({"dist": "normal", "mean": float("nan")}, ParameterError, r"\['mean'\] must be finite"),
        ({"dist": "lognormal", "sdlog": -1}, ParameterError, r"\['sdlog'\] must be >= 0"),
    ],
)
def test_covariate_parameter_errors(cov, exc, match):
    # used to be a raw ValueError from numpy (p) or a silent truncation (integers bounds)
    with pytest.raises(exc, match=match):
        crossed(2, 2, covariates={"x": cov})


def test_integers_with_whole_float_bounds_cover_both_ends():
    d = crossed(50, 4, covariates={"x": {"dist": "integers", "low": 1.0, "high": 3.0}}, seed=1)
    assert set(d["x"]) == {1, 2, 3}


def test_unhashable_levels_are_input_type_errors():
    with pytest.raises(InputTypeError, match=r"within\['c'\] levels must be strings or numbers"):
        crossed(2, 2, within={"c": [[1], [2]]})


def test_missing_rate_type_and_range():
    with pytest.raises(ParameterError, match="missing must be a number"):
        crossed(2, 2, missing="lots")
    with pytest.raises(ParameterError, match=r"missing must be in \[0, 1\)"):
        crossed(2, 2, missing=1.0)
    assert len(crossed(3, 3, missing=0.0)) == 9


def test_growing_items_keeps_existing_items_draws():
    kw = dict(within={"c": ["a", "b"]}, missing=0.2, covariates={"x": {"per": "trial"}, "b": {"per": "item"}}, seed=5)
    small, large = crossed(5, 4, **kw), crossed(5, 8, **kw)
    kept = _drop_unused(large[large["item"].isin(small["item"])].reset_index(drop=True))
    # trial numbers count the whole sequence, so only they may differ
    pd.testing.assert_frame_equal(small.drop(columns="trial"), kept.drop(columns="trial"))


def test_missing_that_drops_every_row_is_an_error():
    # a rate of 1 - 1e-12 keeps a trial with probability 1e-12: every row goes, whatever the seed
    with pytest.raises(ParameterError, match=r"missing=1 drops all 1 rows of the design"):
        crossed(1, 1, missing=1 - 1e-12, seed=1)
    with pytest.raises(ParameterError, match=r"missing=1 drops all 2 rows of the design"):
        nested({"school": 1, "pupil": 2}, missing=1 - 1e-12, seed=0)
    # 200 pupils at rate 0.8 keep none with probability 0.8**200 ~ 4e-20
    assert len(nested({"school": 1, "pupil": 200}, missing=0.8, seed=3)) >= 1


# --------------------------------------------------------------------------- size budget
import glmmsim  # noqa: E402


@pytest.mark.parametrize(
    "call, size",
    [
        (lambda: crossed(100_000, 10_000), r"1,000,000,000 rows \(about 59\.6 GiB\)"),
        (lambda: crossed(10**30), r"1e\+30 rows"),
        (lambda: nested({"a": 10, "b": {"poisson": 1e12}}), r"1,000,000,000,000 rows"),
        (lambda: nested({"a": 10, "b": {"poisson": 1e300}}), r"1e\+300 rows"),
        (lambda: nested({"a": 1000, "b": 1000, "c": 1000}), r"1,000,000,000 rows"),
        (lambda: crossed(10, trials_per_subject=(1, 10**12)), r"1,000,000,000,000 rows"),
    ],
)
def test_designs_beyond_the_row_budget_are_refused_before_allocation(call, size):
    with pytest.raises(ParameterError, match=size + r".*glmmsim\.limits\.max_rows.*GLMMSIM_MAX_ROWS.*Dask"):
        call()


def test_row_budget_can_be_raised():
    with glmmsim.limits.override(max_rows=10):
        with pytest.raises(ParameterError, match="the limit is 10 rows") as info:
            crossed(4, 4)
        assert info.value.parameter == "subjects"
    assert len(crossed(4, 4)) == 16


def test_unit_labels_are_categoricals_in_label_order():
    d = crossed(12, 3, missing=0.2, seed=1)
    for col, prefix in (("subject", "s"), ("item", "i")):
        assert isinstance(d[col].dtype, pd.CategoricalDtype)
        cats = list(d[col].cat.categories)
        assert cats == sorted(cats) and cats[0] == f"{prefix}001"
        assert set(cats) == set(d[col].astype(str))  # no unused labels
    n = nested({"school": 2, "class": 2, "pupil": 2}, labels="local")
    assert all(isinstance(n[c].dtype, pd.CategoricalDtype) for c in n.columns)
    assert list(n["class"].cat.categories) == ["c001", "c002"]


@pytest.mark.parametrize(
    "cov, match",
    [
        ({"dist": "integers", "low": -(2**62), "high": 2**62}, r"within \+-2\*\*53"),
        ({"dist": "choice", "levels": ["a", "a", "b"]}, "must be distinct"),
        ({"dist": "normal", "mean": 1e308, "sd": 1e308}, "overflow"),
        ({"dist": "uniform", "low": -1e308, "high": 1e308}, "overflow"),
        ({"dist": "lognormal", "meanlog": 0, "sdlog": 1e200}, "overflow"),
    ],
)
def test_covariates_that_would_overflow_or_repeat_levels_are_refused(cov, match):
    with pytest.raises(ParameterError, match=match) as info:
        crossed(3, covariates={"x": {"per": "subject", **cov}})
    assert info.value.path[:2] == ("covariates", "x")
