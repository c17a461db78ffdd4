"""A spec file and its command-line overrides are data from strangers (issue 16).

Every input here once crashed (RecursionError, OverflowError, ArrowInvalid, EOFError), ran
unbounded, or wrote outside the spec's folder; each must now be a GlmmsimError that names
the value and what would be valid.
"""

from __future__ import annotations

import gzip
import io
import os
import pathlib

import numpy as np
import pandas as pd
import pytest

import glmmsim
from glmmsim.cli import main
from glmmsim.errors import GlmmsimError
from glmmsim.study import load_spec
from glmmsim.study.safe_yaml import load_value
from glmmsim.study.spec import SpecError, parse_spec
from glmmsim.study.trials import read_trials

ROOT = pathlib.Path(__file__).resolve().parents[2]
SPEC = (ROOT / "examples" / "power.yaml").read_text()
DESIGN = "design:\n  type: crossed\n  subjects: 30\n  items: 20\n  within: {cond: [a, b]}"
SMALL = ["--set", "design.subjects=4", "--set", "design.items=4"]


def _run(*argv) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main([str(a) for a in argv], stdout=out, stderr=err)
    return code, err.getvalue()


@pytest.fixture
def spec(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "study" / "spec.yaml"
    path.parent.mkdir()
    path.write_text(SPEC)
    return path


# ---------------------------------------------------------------- YAML budgets, for files and --set alike
def test_a_recursive_alias_in_a_file_is_refused(spec):
    spec.write_text(SPEC.replace("power:\n", "extra: &a [*a]\npower:\n"))
    with pytest.raises(SpecError, match=r"recursive YAML alias \*a"):
        load_spec(spec)


@pytest.mark.parametrize(
    "value, match",
    [
        ("&a [*a]", "recursive YAML alias"),
        ("[" * 3000, "nests deeper than 32"),
        ("[" + ",".join(["&a0 [x,x,x,x,x,x,x,x,x]"] + [f"&a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)])
         + "]", "more than 20000 values"),
        ("x" * 1_000_001, "longer than 1,000,000 bytes"),
        ("{a: [1, 2}", "not valid YAML"),
    ],
    ids=["recursive", "deep", "billion laughs", "long", "invalid"],
)
def test_set_values_have_the_budgets_of_a_spec_file(spec, value, match):
    with pytest.raises(SpecError, match=match):
        load_spec(spec, overrides=[f"model.sigma={value}"])
    with pytest.raises(SpecError, match=match):
        load_value(value, "--along design.subjects")


def test_along_values_are_parsed_within_the_budgets(spec):
    code, err = _run("power", spec, *SMALL, "--nsim", "2", "-q", "--along", "design.subjects=&a [*a],4")
    assert code == 1 and "recursive YAML alias" in err


def test_set_with_an_empty_path_says_what_is_valid(spec):
    with pytest.raises(SpecError, match=r"write PATH=VALUE .* e\.g\. fixed\.x1=0\.3"):
        load_spec(spec, overrides=["=3"])


@pytest.mark.parametrize(
    "setting",
    ["model.sigma=" + "9" * 400, "model.fixed.condb=" + "9" * 400,
     "model.random.subject.corr=[[Intercept, condb, " + "9" * 400 + "]]"],
    ids=["sigma", "fixed", "corr triple"],
)
def test_a_400_digit_integer_is_refused_naming_the_key(spec, setting):
    with pytest.raises(SpecError, match=r"finite number .* about 40[01] digits") as info:
        load_spec(spec, overrides=[setting])
    assert setting.split("=")[0].split(".")[-1] in str(info.value)


def test_replicates_must_be_at_least_one_when_asked_for(spec):
    study = load_spec(spec, overrides=["design.subjects=4", "design.items=4"])
    for k in (0, -1, 1.5, True):
        with pytest.raises(GlmmsimError, match="whole number >= 1"):
            study.replicates(k)  # refused at the call, not at the first next()


# ---------------------------------------------------------------- paths in a spec stay with the spec
@pytest.mark.parametrize("value", ["/tmp/elsewhere.csv", "../up.csv", "a/../../up.csv", "~/home.csv"])
def test_output_file_may_not_leave_the_spec_folder(spec, value):
    spec.write_text(SPEC + f"output: {{file: '{value}'}}\n")
    with pytest.raises(SpecError, match=r"output\.file: must be a path inside the spec's folder"):
        load_spec(spec)


def test_output_file_resolves_in_the_spec_folder_not_the_working_directory(spec, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec.write_text(SPEC + "output: {file: out/data.csv}\n")
    (spec.parent / "out").mkdir()
    code, err = _run("simulate", spec, *SMALL, "-q")
    assert code == 0, err
    assert (spec.parent / "out" / "data.csv").exists() and not (tmp_path / "out").exists()


def test_a_symbolic_link_out_of_the_folder_is_refused(spec, tmp_path):
    os.symlink(tmp_path, spec.parent / "escape")
    spec.write_text(SPEC + "output: {file: escape/x.csv}\n")
    with pytest.raises(SpecError, match="leads outside the spec's folder"):
        load_spec(spec)


def test_trial_list_and_power_outputs_stay_with_the_spec(spec):
    spec.write_text(SPEC.replace(DESIGN, "design: {type: file, path: ../trials.csv}"))
    with pytest.raises(SpecError, match=r"design\.path: must be a path inside"):
        load_spec(spec)
    spec.write_text(SPEC.replace("  test: cond ", "  out: /tmp/x.csv\n  test: cond "))
    code, err = _run("power", spec, *SMALL, "--nsim", "2", "-q")
    assert code == 1 and "power.out: must be a path inside the spec's folder" in err


def test_the_command_line_may_name_any_path(spec, tmp_path):
    out = tmp_path / "elsewhere.csv"
    code, err = _run("simulate", spec, *SMALL, "-q", "--out", out)
    assert code == 0 and out.exists(), err
    code, err = _run("simulate", spec, *SMALL, "-q", "--set", f"output.file={tmp_path / 'set.csv'}")
    assert code == 0 and (tmp_path / "set.csv").exists(), err


def test_a_spec_given_as_text_resolves_nothing_but_still_refuses_climbing_out():
    study = parse_spec(SPEC + "output: {file: out.csv}\n")
    assert study.output["file"] == "out.csv"
    with pytest.raises(SpecError):
        parse_spec(SPEC + "output: {file: ../out.csv}\n")


# ---------------------------------------------------------------- trial lists from strangers
def _trial_frame(n: int = 100) -> pd.DataFrame:
    return pd.DataFrame({"subject": [f"s{i % 10}" for i in range(n)], "x": np.arange(n, dtype=float)})


def test_damaged_trial_lists_are_data_errors(tmp_path):
    pytest.importorskip("pyarrow")
    (tmp_path / "random.parquet").write_bytes(np.random.default_rng(1).bytes(1000))
    (tmp_path / "short.parquet").write_bytes(b"PAR1" + b"\0" * 68 + b"PAR1")
    raw = gzip.compress(_trial_frame(2000).to_csv(index=False).encode())
    (tmp_path / "cut.csv.gz").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "notgz.csv.gz").write_bytes(b"subject,x\ns1,1\n")
    for name in ("random.parquet", "short.parquet", "cut.csv.gz", "notgz.csv.gz"):
        with pytest.raises(glmmsim.DataError, match="cannot read trial list .* complete and undamaged"):
            read_trials(str(tmp_path / name))


def test_a_header_line_longer_than_the_budget_is_refused_unread(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text("a" * 5000 + "\n1\n")
    with glmmsim.limits.override(max_header_bytes=1000):
        with pytest.raises(glmmsim.DataError, match="max_header_bytes is 1,000"):
            read_trials(str(path))


def test_trial_list_cells_and_bytes_are_budgeted(tmp_path):
    path = tmp_path / "t.csv"
    _trial_frame(1000).to_csv(path, index=False)
    with glmmsim.limits.override(max_cells=500):
        with pytest.raises(glmmsim.DataError, match="max_cells"):
            read_trials(str(path))
    gz = tmp_path / "t.csv.gz"
    gz.write_bytes(gzip.compress(b"subject,x\n" + b"s1,1\n" * 100_000))
    with glmmsim.limits.override(max_file_bytes=100_000):
        with pytest.raises(glmmsim.DataError, match="decompresses to more bytes .* max_file_bytes"):
            read_trials(str(gz))
    assert read_trials(str(path)).shape == (1000, 2)


def test_a_parquet_file_that_decodes_past_the_budget_is_refused_from_its_batches(tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "bomb.parquet"
    # one long string repeated: tiny on disk (dictionary encoded), large once decoded
    pd.DataFrame({"s": ["x" * 1000] * 20_000}).to_parquet(path)
    assert path.stat().st_size < 100_000
    with glmmsim.limits.override(max_file_bytes=5_000_000):
        with pytest.raises(glmmsim.DataError, match="decodes to more bytes .* max_file_bytes"):
            read_trials(str(path))
    with glmmsim.limits.override(max_cells=1000):
        with pytest.raises(glmmsim.DataError, match="max_cells"):
            read_trials(str(path))
