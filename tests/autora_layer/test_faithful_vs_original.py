"""semantics='autora' against the installed autora-synthetic 2.2.0, on many random formulas.

Each case builds both experiments with the same seed and compares, bit for bit,
a seeded ground_truth, then two runs drawing from the experiments' own
generators (so the generator streams must also be consumed identically).
Cases where the original crashes, or where its variable parser mangles a name
(its ``"1 + "`` removal turns ``(x1 + x2|g)`` into ``xx2``), are skipped.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from autora.experiment_runner.synthetic.abstract.lmm import lmm_experiment as original

from glmmsim import GlmmsimWarning
from glmmsim.autora import lmm_experiment
from glmmsim.autora._faithful import parse_faithful

VARIABLES = ["x1", "x2", "x3"]
GROUPS = ["g1", "g2"]


def _join(parts, rng):
    return "".join(p + (rng.choice([" + ", "+", " +"]) if i < len(parts) - 1 else "") for i, p in enumerate(parts))


def random_formula(rng):
    fixed = list(rng.choice(["1", "0"] + VARIABLES, size=rng.integers(0, 4), replace=False))
    if rng.random() < 0.7 and "0" in fixed:
        fixed.remove("0")  # keep most formulas with an intercept
    bars = []
    for _ in range(rng.integers(0, 4)):
        pool = ["1", "1", "0"] + VARIABLES
        parts = list(rng.choice(pool, size=rng.integers(1, 4), replace=False))
        lhs = _join(parts, rng)
        if rng.random() < 0.3:
            lhs = lhs.replace("1", " 1 ", 1) if parts[0] == "1" else lhs
        bars.append(f"({lhs}{rng.choice(['|', ' | ', '| '])}{rng.choice(GROUPS)})")
    terms = fixed + bars
    if not terms:
        terms = ["1"]
    order = rng.permutation(len(terms))
    return "y ~ " + _join([terms[i] for i in order], rng)


def random_parameters(spec, rng):
    keys = ["Intercept"] + list(spec.fixed_variables)
    fixed = {k: float(rng.normal(0, 2)) for k in keys if rng.random() < 0.8}
    if rng.random() < 0.15:
        fixed["1"] = 1.0
    random = {}
    for group in spec.groups:
        valid = {p.sd_key for b in spec.bars if b.group == group for p in b.parts}
        valid |= {"1", "Intercept"} if valid & {"1", "Intercept"} else set()
        random[group] = {k: float(rng.uniform(0, 1.5)) for k in sorted(valid) if rng.random() < 0.8}
    return fixed, random


def random_conditions(rng):
    n = int(rng.integers(1, 25))
    frame = pd.DataFrame({v: rng.normal(0, 1, n) for v in VARIABLES})
    frame["g1"] = rng.integers(0, rng.integers(1, 6), n)
    frame["g2"] = rng.choice(list("abcdefg"), n)
    frame.index = rng.permutation(n) + 100  # the caller's index must survive
    return frame


def _original_ok(spec, experiment):
    names = {iv.name for iv in experiment.variables.independent_variables} - {"0", "1"}
    return names == set(spec.variables)


CASES = 300


def test_random_formulas_match_the_original_draw_for_draw():
    master = np.random.default_rng(20240601)
    compared = 0
    for _ in range(CASES):
        formula = random_formula(master)
        spec = parse_faithful(formula)
        fixed, random = random_parameters(spec, master)
        conditions = random_conditions(master)
        seed = int(master.integers(0, 2**31))
        noise_seed = int(master.integers(0, 2**31))
        try:
            theirs = original(formula, fixed_effects=dict(fixed), random_effects=dict(random), random_state=seed)
            their_out = [
                theirs.ground_truth(conditions, random_state=noise_seed),
                theirs.run(conditions, added_noise=0.3),
                theirs.run(conditions),
            ]
        except Exception:
            continue
        if not _original_ok(spec, theirs):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GlmmsimWarning)
            ours = lmm_experiment(formula, fixed_effects=fixed, random_effects=random, random_state=seed)
        our_out = [
            ours.ground_truth(conditions, random_state=noise_seed),
            ours.run(conditions, added_noise=0.3),
            ours.run(conditions),
        ]
        for mine, expected in zip(our_out, their_out):
            pd.testing.assert_frame_equal(mine, expected, check_exact=True, obj=formula)
        compared += 1
    # The generator above keeps most cases inside what the original handles.
    assert compared > CASES // 2


@pytest.mark.parametrize(
    "formula, fixed, random",
    [
        ("rt ~ (1|subject)", {}, {"subject": {"Intercept": 1}}),
        ("rt ~ (1 |subject)", {}, {"subject": {"1": 1}}),
        ("rt ~ (1+x1|subject)", {}, {"subject": {"Intercept": 1, "x1": 1}}),
        ("rt ~ (1 + x1|subject)", {}, {"subject": {"1": 1, "x1": 1}}),
        ("rt ~ (0 + x1|subject)", {"Intercept": 5}, {"subject": {"x1": 1}}),
        ("rt ~ (0 + x1|subject)", {"Intercept": 5, "1": 3}, {"subject": {"x1": 1}}),
        ("rt ~ 0 + x1 + (1|subject)", {"Intercept": 5, "x1": 1}, {"subject": {"Intercept": 1}}),
        ("rt ~ (x1|subject)", {"x1": 1}, {"subject": {"x1": 0}}),
        ("rt ~ (x1|subject)", {}, {"subject": {}}),
        ("rt ~ (1|subject)", {}, {"subject": {"1": 0.2}}),
        ("rt ~ x1 + (x1|subject) + (1|subject)", {"x1": 2}, {"subject": {"x1": 0.3, "Intercept": 2}}),
    ],
)
def test_probed_readings_match_the_original(formula, fixed, random):
    conditions = pd.DataFrame({"x1": [0.0, 0.5, 1.0] * 2, "subject": [1, 1, 1, 2, 2, 2]})
    expected = original(formula, fixed_effects=fixed, random_effects=random).ground_truth(conditions, random_state=42)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GlmmsimWarning)
        ours = lmm_experiment(formula, fixed_effects=fixed, random_effects=random)
    pd.testing.assert_frame_equal(ours.ground_truth(conditions, random_state=42), expected, check_exact=True)


def test_array_conditions_match_the_original_when_it_has_no_spurious_ivs():
    formula = "y ~ x1 + x2 + (x1|g)"
    fixed, random = {"Intercept": 1.0, "x1": 2.0, "x2": -1.0}, {"g": {"x1": 0.5}}
    theirs = original(formula, fixed_effects=fixed, random_effects=random)
    with pytest.warns(GlmmsimWarning, match="no random intercept"):
        ours = lmm_experiment(formula, fixed_effects=fixed, random_effects=random)
    assert [v.name for v in ours.variables.independent_variables] == [
        v.name for v in theirs.variables.independent_variables
    ]
    array = np.array([[0.0, 1.0, 1], [1.0, 0.0, 2], [2.0, 2.0, 1]])
    pd.testing.assert_frame_equal(
        ours.ground_truth(array, random_state=3), theirs.ground_truth(array, random_state=3), check_exact=True
    )


def test_faithful_ground_truth_is_run_without_noise_and_accepts_added_noise():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = lmm_experiment("rt ~ x1 + (1|subject)", {"Intercept": 1.0, "x1": 2.0}, {"subject": {"Intercept": 0.5}})
    conditions = pd.DataFrame({"x1": np.linspace(0, 1, 6), "subject": np.repeat([1, 2], 3)})
    pd.testing.assert_frame_equal(
        exp.ground_truth(conditions, added_noise=0.2, random_state=3),
        exp.run(conditions, added_noise=0.2, random_state=3),
    )
    pd.testing.assert_frame_equal(
        exp.ground_truth(conditions, random_state=3), exp.run(conditions, added_noise=0.0, random_state=3)
    )
