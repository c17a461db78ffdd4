"""glmmsim power / glmmsim recover, and the power:/recovery: spec sections."""

from __future__ import annotations

import importlib
import io
import pathlib

import matplotlib

matplotlib.use("Agg")

import pandas as pd
import pytest

from glmmsim.cli import main
from glmmsim.study.spec import SpecError, parse_spec
from glmmsim.study.study_sections import power_settings

ROOT = pathlib.Path(__file__).resolve().parents[2]
SPEC = (ROOT / "examples" / "power.yaml").read_text()
SMALL = ["--set", "design.subjects=8", "--set", "design.items=6", "-q"]


def _run(args):
    out, err = io.StringIO(), io.StringIO()
    code = main(args, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_power_command_at_the_spec_design(tmp_path):
    spec = tmp_path / "power.yaml"
    spec.write_text(SPEC)
    code, out, err = _run(["power", str(spec), "--nsim", "6", *SMALL, "--out", str(tmp_path / "t.csv"),
                           "--simulations", str(tmp_path / "s.csv")])
    assert code == 0, err
    assert "Power:" in out and "Clopper-Pearson" in out and "8 subject, 6 item" in out
    table = pd.read_csv(tmp_path / "t.csv")
    assert table.loc[0, "test"] == "cond" and table.loc[0, "nsim"] == 6
    assert len(pd.read_csv(tmp_path / "s.csv")) == 6


def test_power_command_along_a_curve_with_plot(tmp_path):
    spec = tmp_path / "power.yaml"
    spec.write_text(SPEC)
    code, out, err = _run(["power", str(spec), "--nsim", "4", *SMALL, "--along", "design.subjects=6,10",
                           "--test", "condb", "--target", "0.01", "--out", str(tmp_path / "curve.csv"),
                           "--plot", str(tmp_path / "curve.png")])
    assert code == 0, err
    curve = pd.read_csv(tmp_path / "curve.csv")
    assert curve["subjects"].tolist() == [6, 10]
    assert list(curve.columns) == ["subjects", "power", "ci_low", "ci_high", "nsim", "failed", "singular", "warned"]
    assert (tmp_path / "curve.png").stat().st_size > 1000
    assert "smallest design reaching power 0.01: subjects = " in out


def test_recover_command(tmp_path):
    spec = tmp_path / "power.yaml"
    spec.write_text(SPEC)
    code, out, err = _run(["recover", str(spec), "--nsim", "4", *SMALL, "--out", str(tmp_path / "rec.csv")])
    assert code == 0, err
    table = pd.read_csv(tmp_path / "rec.csv", index_col=0)
    assert table.loc["cond[T.b]", "truth"] == 20
    assert {"truth", "mean", "bias", "bias_se", "rmse", "coverage", "coverage_se"} <= set(table.columns)


def test_errors_are_one_line(tmp_path):
    spec = tmp_path / "power.yaml"
    spec.write_text(SPEC.replace("  test: cond ", "  tset: cond "))
    code, out, err = _run(["power", str(spec), "-q"])
    assert code == 1
    assert err.count("\n") == 1 and "power.tset: unknown key 'tset'. Did you mean 'test'?" in err
    assert "line 3" in err
    spec.write_text(SPEC)
    code, out, err = _run(["power", str(spec), "--test", "conditon", "-q", "--nsim", "2"])
    assert code == 1 and "names no coefficient or term" in err and err.count("\n") == 1
    code, out, err = _run(["power", str(spec), "--nsim", "2", "-q", "--plot", str(tmp_path / "x.png")])
    assert code == 1 and "--along" in err
    code, out, err = _run(["power", str(spec), "--nsim", "2", "-q", "--along", "design.subjets=4,6"])
    assert code == 1 and "--along design.subjets=4: design.subjets: unknown key 'subjets'. Did you mean 'subjects'?" in err


def test_a_run_without_a_test_names_what_could_be_tested(tmp_path, monkeypatch):
    study = importlib.import_module("glmmsim.analysis.power")  # the package attribute "power" is the function

    spec = tmp_path / "power.yaml"
    spec.write_text(SPEC.replace("  test: cond ", "  # test: cond "))
    monkeypatch.setattr(study, "run_study", lambda *a, **k: pytest.fail("no replicate may run without a test"))
    code, out, err = _run(["power", str(spec), "-q", "--nsim", "2"])
    assert code == 1 and err.count("\n") == 1, err
    assert "no test: pass --test EFFECT or set power.test in the spec" in err
    assert "coefficients: 'cond[T.b]'; its terms: 'cond'" in err


def test_outputs_are_checked_before_any_simulation(tmp_path, monkeypatch):
    import glmmsim.analysis

    def no_run(*args, **kwargs):
        raise AssertionError("simulated before refusing the output")

    monkeypatch.setattr(glmmsim.analysis, "power", no_run)
    monkeypatch.setattr(glmmsim.analysis, "recovery", no_run)
    spec = tmp_path / "power.yaml"
    spec.write_text(SPEC)
    # a plot without --along: refused up front, not after the simulations
    code, out, err = _run(["power", str(spec), "--nsim", "2", *SMALL, "--plot", str(tmp_path / "x.png")])
    assert code == 1 and "--along" in err
    # the spec itself is never an output
    for command in (["power", str(spec), "--simulations", str(spec)], ["recover", str(spec), "--out", str(spec)]):
        code, out, err = _run([*command, "--nsim", "2", *SMALL])
        assert code == 1 and "is an input of the study" in err, err
    assert spec.read_text() == SPEC
    code, out, err = _run(["recover", str(spec), "--nsim", "2", *SMALL, "--out", str(tmp_path)])
    assert code == 1 and "is a directory" in err
    code, out, err = _run(["recover", str(spec), "--nsim", "2", *SMALL, "--plot", str(tmp_path / "rec.foo")])
    assert code == 1 and "cannot tell the image format" in err


def test_spec_sections_are_parsed_and_checked():
    study = parse_spec(SPEC)
    settings = power_settings(study.sections, study._where)
    assert settings.test == "cond" and settings.nsim == 1000 and settings.target == 0.8
    with pytest.raises(SpecError, match=r"power.nsim: must be a whole number >= 1; got 0"):
        power_settings(parse_spec(SPEC.replace("nsim: 1000", "nsim: 0")).sections)
