"""Tests of glmmsim.study.spec: YAML study specs, validation with line numbers, overrides, output."""

from __future__ import annotations

import pathlib
import sys

import numpy as np
import pandas as pd
import pytest

from glmmsim.errors import GlmmsimError, GlmmsimWarning
from glmmsim.study import SpecError, data_format, load_spec, parse_spec, write_data
from glmmsim.study.spec import _apply_override

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"

SPEC = """\
model:
  formula: "y ~ 1 + x + cond + (1 + x | subject) + (1 | item)"
  fixed: {Intercept: 1.0, x: 0.5, condb: 0.3}
  random:
    subject:
      sd: {Intercept: 0.4, x: 0.2}
      corr: {"Intercept, x": 0.5}
    item: 0.3
  sigma: 1.0
design:
  type: crossed
  subjects: 6
  items: 4
  within: {cond: [a, b]}
  covariates: {x: {per: trial}}
seeds: {population: 1, noise: 2, design: 3}
output: {file: out.csv}
"""


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_valid_spec_simulates_reproducibly():
    study = parse_spec(SPEC)
    a, b = study.simulate(), parse_spec(SPEC).simulate()
    assert list(a.columns) == ["subject", "item", "cond", "trial", "x", "y"]
    assert len(a) == 6 * 4 * 2
    pd.testing.assert_frame_equal(a, b)
    other = parse_spec(SPEC, seed=99).simulate()
    pd.testing.assert_frame_equal(a.drop(columns="y"), other.drop(columns="y"))
    assert not np.allclose(a["y"], other["y"])
    assert study.output == {"file": "out.csv", "format": None, "replicates": 1}


@pytest.mark.parametrize(
    "old, new, needle, match",
    [
        ("  sigma: 1.0", "  sigmaa: 1.0", "sigmaa", r"model\.sigmaa: unknown key 'sigmaa'\. Did you mean 'sigma'\?"),
        ("output:", "outptu:", "outptu", r"outptu: unknown key 'outptu'\. Did you mean 'output'\?"),
        ("  subjects: 6", "  subjetcs: 6", "subjetcs", r"design\.subjetcs: unknown key .*Did you mean 'subjects'\?"),
        ("noise: 2", "nosie: 2", "nosie", r"seeds\.nosie: unknown key .*Did you mean 'noise'\?"),
        ("  item: 0.3", "  item: lots", "item: lots", r"model\.random\.item: must be a number; got str 'lots'"),
        ("x: 0.5, condb", "x: abc, condb", "x: abc", r"model\.fixed\.x: must be a number"),
        ("  type: crossed", "  type: crosed", "type: crosed", r"design\.type: must be one of .*Did you mean 'crossed'\?"),
        ("noise: 2", "noise: -2", "noise: -2", r"seeds\.noise: must be a non-negative whole number"),
        ('corr: {"Intercept, x": 0.5}', 'corr: {"Intercept x": 0.5}', "Intercept x", r"two coefficients separated by a comma"),
    ],
)
def test_errors_name_path_and_line(old, new, needle, match):
    text = SPEC.replace(old, new)
    assert text != SPEC
    with pytest.raises(SpecError, match=match) as info:
        parse_spec(text, source="study.yaml")
    assert str(info.value).startswith(f"study.yaml, line {line_of(text, needle)}: ")


def test_missing_required_keys():
    with pytest.raises(SpecError, match=r"missing required key 'design'"):
        parse_spec("model: {formula: 'y ~ 1'}\n")
    with pytest.raises(SpecError, match=r"line 1: model: missing required key 'formula'"):
        parse_spec(SPEC.replace('  formula: "y ~ 1 + x + cond + (1 + x | subject) + (1 | item)"\n', ""))


def test_duplicate_key_and_invalid_yaml():
    text = SPEC.replace("  sigma: 1.0", "  sigma: 1.0\n  sigma: 2.0")
    with pytest.raises(SpecError, match=r"line 10: model\.sigma: duplicate key 'sigma'"):
        parse_spec(text)
    with pytest.raises(SpecError, match=r"line \d+: invalid YAML"):
        parse_spec("model: {formula: [\n")


def test_model_errors_point_at_the_model_key():
    text = SPEC.replace("condb: 0.3", "condz: 0.3")
    with pytest.raises(SpecError, match=r"line 3: model\.fixed: .*condz"):
        parse_spec(text)


def test_design_must_make_model_columns():
    text = SPEC.replace("  covariates: {x: {per: trial}}\n", "")
    with pytest.raises(SpecError, match=r"design: the model uses column\(s\) 'x'"):
        parse_spec(text)


def test_design_argument_errors_are_spec_errors():
    # the message points at the offending key's own line, not the 'design:' line
    text = SPEC.replace("  items: 4", "  items: 4\n  missing: 2")
    line = text.splitlines().index("  missing: 2") + 1
    with pytest.raises(SpecError, match=rf"<string>, line {line}: design\.missing: missing must be in"):
        parse_spec(text)


def test_design_missing_that_empties_the_design_is_a_spec_error():
    text = SPEC.replace("  subjects: 6", "  subjects: 1").replace("  items: 4", "  items: 1\n  missing: 0.9")
    text = text.replace("  within: {cond: [a, b]}\n", "").replace(" + cond", "").replace(", condb: 0.3", "")
    line = text.splitlines().index("  missing: 0.9") + 1
    # design seed 3 drops the single planned trial
    with pytest.raises(SpecError, match=rf"line {line}: design\.missing: missing=0.9 drops all 1 rows"):
        parse_spec(text)


def test_design_duplicate_counterbalance_is_a_spec_error():
    text = SPEC.replace("  items: 4", "  items: 4\n  counterbalance: [cond, cond]")
    line = text.splitlines().index("  counterbalance: [cond, cond]") + 1
    with pytest.raises(SpecError, match=rf"line {line}: design\.counterbalance: counterbalance names 'cond' more than once"):
        parse_spec(text)


def test_design_warning_points_at_its_key():
    text = SPEC.replace("  items: 4", "  items: 5\n  counterbalance: cond")
    line = text.splitlines().index("  counterbalance: cond") + 1
    with pytest.warns(GlmmsimWarning, match=rf"^<string>, line {line}: design\.counterbalance: .*get 3, 2 items") as record:
        parse_spec(text).conditions()
    assert len([w for w in record if issubclass(w.category, GlmmsimWarning)]) == 1  # once, not per call


def test_nested_design_error_points_at_nested_key():
    text = """
model:
  formula: "y ~ 1 + (1 | school)"
  fixed: {Intercept: 0}
  random: {school: 1}
  sigma: 1
design:
  type: nested
  levels:
    school: 3
    pupil: [0, 4]
"""
    with pytest.raises(SpecError, match=r"<string>, line 11: design\.levels\.pupil: levels\['pupil'\] bound must be >= 1"):
        parse_spec(text)


def test_design_error_from_set_names_the_override():
    with pytest.raises(SpecError, match=r"^--set design\.subjects=0: design\.subjects: subjects must be >= 1"):
        parse_spec(SPEC, overrides=["design.subjects=0"])


def test_model_error_points_at_key_named_in_message():
    text = SPEC.replace("  sigma: 1.0", "  sigma: 1.0\n  family: gausian")
    line = text.splitlines().index("  family: gausian") + 1
    with pytest.raises(SpecError, match=rf"line {line}: model\.family: unknown family 'gausian'"):
        parse_spec(text)


def test_non_utf8_spec_file_is_a_spec_error(tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00model")
    with pytest.raises(SpecError, match=r"binary\.yaml: not a UTF-8 text file"):
        load_spec(path)


def test_correlation_forms_agree():
    forms = [
        'corr: {"Intercept, x": 0.5}',
        "corr: [[Intercept, x, 0.5]]",
        "corr: [[1.0, 0.5], [0.5, 1.0]]",
    ]
    covs = []
    for form in forms:
        study = parse_spec(SPEC.replace('corr: {"Intercept, x": 0.5}', form))
        covs.append(study.model.covariance(study.conditions())["subject"])
    for coefs, sd, corr in covs:
        assert coefs == ("Intercept", "x")
        assert np.allclose(sd, [0.4, 0.2]) and corr[0, 1] == pytest.approx(0.5)


def test_correlation_matrix_shape_checked():
    with pytest.raises(SpecError, match="one row per coefficient"):
        parse_spec(SPEC.replace('corr: {"Intercept, x": 0.5}', "corr: [[1.0, 0.5, 0.1], [0.5, 1.0, 0.1]]"))


def test_overrides():
    study = parse_spec(SPEC, overrides=["fixed.x=0.3", "design.subjects=10", "seeds.noise=7"])
    assert study.model.fixed["x"] == 0.3
    assert study.conditions()["subject"].nunique() == 10
    assert study.seeds["noise"] == 7
    with pytest.raises(SpecError, match=r"unknown path 'desgn'\. Did you mean 'design'\?"):
        parse_spec(SPEC, overrides=["desgn.subjects=3"])
    with pytest.raises(SpecError, match=r"--set design\.subjetcs=3: design\.subjetcs: unknown key"):
        parse_spec(SPEC, overrides=["design.subjetcs=3"])
    with pytest.raises(SpecError, match=r"\(--set fixed\.xx=1\): model\.fixed"):
        parse_spec(SPEC, overrides=["fixed.xx=1"])
    with pytest.raises(SpecError, match="expected PATH=VALUE"):
        parse_spec(SPEC, overrides=["fixed.x"])


def test_an_override_parses_yaml_and_does_not_mutate():
    raw = {"model": {"fixed": {"x": 1.0}}, "design": {"within": {"c": ["a", "b"]}}}
    new, path = _apply_override(raw, "design.within={c: [a, b, c]}")
    assert new["design"]["within"] == {"c": ["a", "b", "c"]} and path == ("design", "within")
    assert raw["design"]["within"] == {"c": ["a", "b"]}


def test_scalar_seeds_and_replicates():
    text = SPEC.replace("seeds: {population: 1, noise: 2, design: 3}", "seeds: 42")
    study = parse_spec(text)
    pd.testing.assert_frame_equal(study.simulate(), parse_spec(text).simulate())
    reps = list(study.replicates(3))
    assert [r["replicate"].iloc[0] for r in reps] == [1, 2, 3]
    pd.testing.assert_frame_equal(reps[0].drop(columns="replicate"), study.simulate())
    conds = study.conditions()
    re0 = study.model.random_effects(conds)["subject"]
    re1 = study.make_model(np.random.SeedSequence(0)).random_effects(conds)["subject"]
    assert not np.allclose(re0, re1)
    fixed_pop = list(study.replicates(2, vary_population=False))
    assert not np.allclose(fixed_pop[0]["y"], fixed_pop[1]["y"])


def test_replicates_vary_population_by_default():
    study = parse_spec(SPEC.replace("sigma: 1.0", "sigma: 0.0"))
    # with no residual noise, two replicates differ only through new random effects
    r1, r2 = study.simulate(1), study.simulate(2)
    assert not np.allclose(r1["y"], r2["y"])
    s1, s2 = study.simulate(1, vary_population=False), study.simulate(2, vary_population=False)
    assert np.allclose(s1["y"], s2["y"])


def test_write_data_csv_and_tsv(tmp_path):
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    assert write_data(df, tmp_path / "d.csv") == "csv"
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "d.csv"), df)
    write_data(iter([df, df]), str(tmp_path / "d.tsv"))
    assert len(pd.read_csv(tmp_path / "d.tsv", sep="\t")) == 4


def test_write_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    write_data(df, str(tmp_path / "d.parquet"))
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "d.parquet"), df, check_dtype=False)


def test_parquet_without_pyarrow(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` fail
    with pytest.raises(GlmmsimError, match="needs pyarrow"):
        write_data(pd.DataFrame({"a": [1]}), str(tmp_path / "d.parquet"))


def test_data_format_errors():
    with pytest.raises(GlmmsimError, match="cannot tell the format"):
        data_format("out.xlsx")
    with pytest.raises(GlmmsimError, match="csv extension but format 'parquet'"):
        data_format("out.csv", "parquet")


def test_load_spec_missing_file(tmp_path):
    with pytest.raises(OSError):
        load_spec(tmp_path / "none.yaml")


# --------------------------------------------------------------------------- examples


def test_stroop_example():
    study = load_spec(EXAMPLES / "stroop.yaml")
    data = study.simulate()
    assert data["subject"].nunique() == 40 and data["item"].nunique() == 30
    assert (data["rt"] > 250).all()  # shifted lognormal: never below the shift
    # 3% missing of 2400 planned trials; 4 binomial SEs
    assert abs(len(data) - 0.97 * 2400) < 4 * np.sqrt(2400 * 0.03 * 0.97)


def test_accuracy_example():
    data = load_spec(EXAMPLES / "accuracy.yaml").simulate()
    assert set(data["correct"].unique()) <= {0, 1}
    assert data.groupby(["subject", "item"], observed=True).size().eq(1).all()  # Latin square: each word once
    assert len(data) == 60 * 48


def test_school_example():
    data = load_spec(EXAMPLES / "school.yaml").simulate()
    assert data["school"].nunique() == 30
    assert data.groupby("school", observed=True)["class"].nunique().between(2, 4).all()
    assert data.groupby("school", observed=True)["treatment"].nunique().eq(1).all()


# ---------------------------------------------------------------- a spec file is data: bounded YAML
def _laughs(levels: int = 9) -> str:
    text = "model: &a [x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, levels):
        prev, cur = chr(96 + i), chr(97 + i)
        text = text.replace("&a", "&a", 1)
        text += f"k{cur}: &{cur} [" + ", ".join([f"*{prev if i > 1 else 'a'}"] * 9) + "]\n"
    return text


def test_yaml_alias_bombs_are_refused_before_anything_is_built():
    with pytest.raises(SpecError, match=r"expands to more than \d+ values"):
        parse_spec(_laughs())


def test_yaml_nesting_is_capped():
    with pytest.raises(SpecError, match="nests deeper than"):
        parse_spec("model: " + "[" * 5000 + "]" * 5000)


def test_load_spec_refuses_devices_and_non_paths(tmp_path):
    with pytest.raises(SpecError, match="must be a regular file"):
        load_spec("/dev/zero")
    with pytest.raises(SpecError, match="must be a regular file"):
        load_spec(tmp_path)
    with pytest.raises(GlmmsimError, match="must be a str or os.PathLike"):
        load_spec(2)  # an int is a file descriptor: it closed stderr once


def test_formula_code_in_a_spec_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "ran"
    bad = SPEC.replace('"y ~ 1 + x + cond', f"\"y ~ 1 + I(x + 0*__import__('pathlib').Path('{marker}').touch()) + cond")
    with pytest.raises(SpecError, match=r"model\.formula: formula piece .* is not allowed"):
        parse_spec(bad)
    with pytest.raises(SpecError, match="is not allowed"):
        parse_spec(SPEC, overrides=["model.formula=y ~ x + eval('1') + (1 | subject)"])
    assert not marker.exists()


def test_spec_errors_are_located_from_error_attributes_not_text():
    from glmmsim.study.spec import _argument_path

    err = ParameterErrorLike = GlmmsimError("words that name no key at all", path=("covariates", "x"))
    assert _argument_path(err, ["covariates", "subjects"]) == ("covariates", "x")
    assert _argument_path(GlmmsimError("about 'covariates' in text only"), ["covariates"]) == ()
    del ParameterErrorLike
    bad = SPEC.replace("covariates: {x: {per: trial}}", "covariates: {x: {per: trial, dist: normal, mean: 1.0e+308, sd: 1.0e+308}}")
    with pytest.raises(SpecError, match=rf"line {line_of(SPEC, 'covariates')}: design\.covariates\.x: .*overflow"):
        parse_spec(bad)


def test_replicate_must_be_a_whole_number_from_zero():
    study = parse_spec(SPEC)
    for bad in (-1, 1.5, True):
        with pytest.raises(GlmmsimError, match="replicate must be a whole number >= 0"):
            study.simulate(replicate=bad)


def test_replicates_are_checked_against_the_total_row_budget():
    study = parse_spec(SPEC)
    with pytest.raises(GlmmsimError, match=r"would write 4\.8e\+24 rows.*GLMMSIM_MAX_TOTAL_ROWS"):
        next(study.replicates(10**23))


# ---------------------------------------------------------------- design from a trial list
TRIALS_SPEC = SPEC.split("design:")[0] + "design: {type: file, path: trials/list.csv}\nseeds: {population: 1, noise: 2}\n"


def _trial_list(tmp_path):
    from glmmsim import design

    d = design.crossed(6, 4, within={"cond": ["a", "b"]}, covariates={"x": {"per": "trial"}}, seed=3)
    (tmp_path / "trials").mkdir()
    d.to_csv(tmp_path / "trials" / "list.csv", index=False)
    return d


def test_design_from_a_trial_list_relative_to_the_spec_file(tmp_path, monkeypatch):
    d = _trial_list(tmp_path)
    spec = tmp_path / "study.yaml"
    spec.write_text(TRIALS_SPEC)
    monkeypatch.chdir("/")  # the path is read relative to the spec file, not the working directory
    study = load_spec(spec)
    out = study.simulate()
    assert len(out) == len(d) and list(out.columns) == [*d.columns, "y"]
    assert str(tmp_path / "trials" / "list.csv") in study.input_files()


def test_trial_list_is_bounded(tmp_path):
    import glmmsim

    _trial_list(tmp_path)
    spec = tmp_path / "study.yaml"
    spec.write_text(TRIALS_SPEC)
    with glmmsim.limits.override(max_rows=10):
        with pytest.raises(SpecError, match=r"design\.path: .*trial list .* rows.*glmmsim\.limits\.max_rows"):
            load_spec(spec)
    spec.write_text(TRIALS_SPEC.replace("trials/list.csv", "missing.csv"))
    with pytest.raises(SpecError, match="design.path: cannot read trial list"):
        load_spec(spec)


def test_parquet_replicates_are_streamed_one_row_group_each(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    study = parse_spec(SPEC)
    target = tmp_path / "reps.parquet"
    write_data(study.replicates(3), str(target))
    assert pq.ParquetFile(target).num_row_groups == 3
    data = pd.read_parquet(target)
    assert data["replicate"].tolist() == [1] * 48 + [2] * 48 + [3] * 48


def test_describe_names_the_trial_list(tmp_path):
    from glmmsim.lme4.summary import describe_study

    _trial_list(tmp_path)
    spec = tmp_path / "study.yaml"
    spec.write_text(TRIALS_SPEC)
    assert f"Design: file {tmp_path / 'trials' / 'list.csv'};" in describe_study(load_spec(spec))


def test_study_where_names_the_line_of_a_key(tmp_path):
    from glmmsim.study.spec import load_spec

    path = tmp_path / "study.yaml"
    path.write_text(SPEC)
    study = load_spec(str(path))
    assert study.where(("model", "sigma")) == f"{path}, line {line_of(SPEC, 'sigma:')}"
    assert study.where(("design", "subjects")) == f"{path}, line {line_of(SPEC, 'subjects:')}"


def test_a_bad_family_parameter_names_its_own_key():
    with pytest.raises(SpecError, match=r"model\.sigma: shifted_lognormal parameter 'sigma'"):
        load_spec(EXAMPLES / "stroop.yaml", overrides=["model.sigma=-1"])
