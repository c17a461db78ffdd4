"""One seed for ``glmmsim power`` and ``glmmsim recover``: --seed is the root of the study's seeds."""

from __future__ import annotations

import pathlib

import pandas as pd
import pytest

from ._cli import ROOT, copy_power_spec, run
from glmmsim.cli.seeds import check_seed_overrides
from glmmsim.errors import ParameterError

POWER_SPEC = (ROOT / "examples" / "power.yaml").read_text()
SMALL = ["--set", "design.subjects=6", "--set", "design.items=4", "--nsim", "4", "-q"]


@pytest.fixture
def spec(tmp_path) -> pathlib.Path:
    return copy_power_spec(tmp_path)


def simulations(tmp_path: pathlib.Path, spec: pathlib.Path, *argv: object) -> pd.DataFrame:
    """The replicates' estimates of one power run (written with --simulations)."""
    target = tmp_path / f"sims{len(list(tmp_path.glob('sims*.csv')))}.csv"
    code, out, err = run("power", spec, *SMALL, "--simulations", target, *argv)
    assert code == 0, err
    return pd.read_csv(target)


def test_seed_changes_the_result_and_equals_the_specs_seed(spec, tmp_path):
    default = simulations(tmp_path, spec)
    one = simulations(tmp_path, spec, "--seed", 1)
    five = simulations(tmp_path, spec, "--seed", 5)
    pd.testing.assert_frame_equal(default, one)  # examples/power.yaml says power.seed: 1
    assert not five["estimate"].equals(one["estimate"])
    in_spec = tmp_path / "seed5.yaml"
    in_spec.write_text(POWER_SPEC.replace("  seed: 1", "  seed: 5"))
    pd.testing.assert_frame_equal(simulations(tmp_path, in_spec), five)
    pd.testing.assert_frame_equal(simulations(tmp_path, spec, "--set", "power.seed=5"), five)


def test_seed_sets_the_root_of_a_curve(spec, tmp_path):
    args = ("--along", "design.subjects=6,8")
    a, b = simulations(tmp_path, spec, *args, "--seed", 3), simulations(tmp_path, spec, *args, "--seed", 4)
    assert not a["estimate"].equals(b["estimate"])
    pd.testing.assert_frame_equal(a, simulations(tmp_path, spec, *args, "--seed", 3))


def test_recover_takes_the_same_seed(spec, tmp_path):
    tables = {}
    for seed in (1, 2, 1):
        target = tmp_path / f"rec{len(tables)}.csv"
        code, out, err = run("recover", spec, *SMALL, "--out", target, "--seed", seed)
        assert code == 0, err
        tables[len(tables)] = pd.read_csv(target)
    pd.testing.assert_frame_equal(tables[0], tables[2])
    assert not tables[0]["mean"].equals(tables[1]["mean"])


def test_study_seed_is_a_deprecated_alias(spec, tmp_path):
    five = simulations(tmp_path, spec, "--seed", 5)
    target = tmp_path / "old.csv"
    code, out, err = run("power", spec, *SMALL, "--simulations", target, "--study-seed", 5)
    assert code == 0 and "glmmsim: warning: --study-seed is deprecated; use --seed" in err, err
    pd.testing.assert_frame_equal(pd.read_csv(target), five)
    code, out, err = run("power", spec, *SMALL, "--study-seed", 5, "--seed", 6)
    assert code == 1 and "give --seed only" in err, err


IGNORED = [(("--set", "seeds.population=9"), "seeds.population"), (("--set", "seeds.noise=9"), "seeds.noise"),
           (("--set", "seeds=9"), "seeds")]


@pytest.mark.parametrize("command, argv, name", [
    *(("power", argv, name) for argv, name in IGNORED),
    *(("recover", argv, name) for argv, name in IGNORED),
    ("power", ("--along", "seeds.population=1,2"), "seeds.population"),  # recover has no --along
])
def test_a_seed_a_study_would_ignore_is_an_error(spec, command, argv, name):
    code, out, err = run(command, spec, "--nsim", 10**6, "-q", *argv)  # refused before any work
    assert code == 1 and out == "", err
    assert f"glmmsim: error: {argv[0]} {argv[1]}: glmmsim {command} does not use {name}:" in err
    assert "--seed N" in err


def test_a_seed_along_in_the_spec_is_an_error_too(spec):
    spec.write_text(POWER_SPEC.replace("  seed: 1", "  seed: 1\n  along: {seeds.noise: [1, 2]}"))
    code, out, err = run("power", spec, "--nsim", 10**6, "-q")
    assert code == 1 and "power.along seeds.noise: glmmsim power does not use seeds.noise" in err, err


def test_the_error_carries_the_seed_path():
    with pytest.raises(ParameterError) as info:
        check_seed_overrides("power", [("--set", "seeds.population=9")])
    assert info.value.path == ("seeds", "population") and info.value.key == "population"


RANDOM_DESIGN = """\
model:
  formula: "y ~ x + (1 | subject)"
  fixed: {Intercept: 0, x: 0.5}
  random: {subject: 0.5}
  sigma: 1
design:
  type: crossed
  subjects: 8
  repetitions: 4
  covariates: {x: {per: trial}}
power: {test: x, nsim: 3}
"""


def test_the_design_seed_is_used_and_the_root_draws_a_design_without_one(tmp_path):
    spec = tmp_path / "random.yaml"
    spec.write_text(RANDOM_DESIGN)  # no seeds: section; x is drawn per trial

    def sims(*argv):
        target = tmp_path / "s.csv"
        code, out, err = run("power", spec, "-q", "--simulations", target, "--force", *argv)
        assert code == 0, err
        return pd.read_csv(target)

    # the root alone reproduces the study, design included
    pd.testing.assert_frame_equal(sims("--seed", 5), sims("--seed", 5))
    # seeds.design means what it means in simulate: another design, the same replicates' seeds
    spec.write_text(RANDOM_DESIGN + "seeds: {design: 3}\n")
    three = sims("--seed", 5)
    pd.testing.assert_frame_equal(three, sims("--seed", 5))
    assert not three["estimate"].equals(sims("--seed", 5, "--set", "seeds.design=4")["estimate"])
