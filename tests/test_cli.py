"""Tests of the glmmsim command line."""

from __future__ import annotations

import io
import os
import pathlib
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import pandas as pd
import pytest

from glmmsim.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

SPEC = """\
model:
  formula: "y ~ 1 + x + cond + (1 + x | subject) + (1 | item)"
  fixed: {Intercept: 1.0, x: 0.5, condb: 0.3}
  random:
    subject:
      sd: {Intercept: 0.4, x: 0.2}
      corr: [[Intercept, x, 0.5]]
    item: 0.3
  sigma: 1.0
design:
  type: crossed
  subjects: 6
  items: 4
  within: {cond: [a, b]}
  covariates: {x: {per: trial}}
seeds: {population: 1, noise: 2, design: 3}
"""


@pytest.fixture
def spec(tmp_path) -> pathlib.Path:
    path = tmp_path / "study.yaml"
    path.write_text(SPEC)
    return path


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main([str(a) for a in argv], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_simulate_writes_csv_and_summary(spec, tmp_path):
    target = tmp_path / "out.csv"
    code, out, err = run("simulate", spec, "--out", target)
    assert code == 0, err
    data = pd.read_csv(target)
    assert len(data) == 48 and list(data.columns) == ["subject", "item", "cond", "trial", "x", "y"]
    assert "simulated 48 rows (6 subject, 4 item)" in out and "response y: mean" in out


def test_simulate_to_stdout(spec):
    code, out, err = run("simulate", spec, "--out", "-")
    assert code == 0
    assert len(pd.read_csv(io.StringIO(out))) == 48
    assert "simulated 48 rows" in err  # the summary goes to stderr when data go to stdout


def test_seed_and_set_override(spec, tmp_path):
    base, seeded, changed = (tmp_path / n for n in ("a.csv", "b.csv", "c.csv"))
    assert run("simulate", spec, "--out", base)[0] == 0
    assert run("simulate", spec, "--out", seeded, "--seed", "5")[0] == 0
    assert run("simulate", spec, "--out", changed, "--set", "design.subjects=8", "--set", "fixed.x=2")[0] == 0
    a, b, c = (pd.read_csv(p) for p in (base, seeded, changed))
    assert a[["subject", "item", "x"]].equals(b[["subject", "item", "x"]]) and not a["y"].equals(b["y"])
    assert c["subject"].nunique() == 8


def test_replicates_with_progress_bar(spec, tmp_path):
    target = tmp_path / "reps.csv"
    code, out, err = run("simulate", spec, "--out", target, "--replicates", "3")
    assert code == 0
    data = pd.read_csv(target)
    assert data.columns[0] == "replicate" and data["replicate"].value_counts().to_dict() == {1: 48, 2: 48, 3: 48}
    assert "replicates" in err and "3/3" in err
    assert "x 3 replicates" in out


def test_spec_output_file_used(spec, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec.write_text(SPEC + "output: {file: from_spec.csv}\n")
    assert run("simulate", spec)[0] == 0
    assert (tmp_path / "from_spec.csv").exists()


def test_describe_prints_lme4_style_tables(spec):
    code, out, _ = run("describe", spec)
    assert code == 0
    lines = out.splitlines()
    assert "Random effects:" in lines and "Fixed effects:" in lines
    header = next(line for line in lines if "Groups" in line)
    assert header.split() == ["Groups", "Name", "Variance", "Std.Dev.", "Corr"]
    assert any(line.split() == ["subject", "(Intercept)", "0.16", "0.4"] for line in lines)
    assert any(line.split() == ["x", "0.04", "0.2", "0.50"] for line in lines)
    assert any(line.split() == ["Residual", "1.00", "1.0"] for line in lines)
    assert "Number of obs: 48, groups:  subject, 6; item, 4" in lines
    assert any(line.split() == ["condb", "0.3"] for line in lines)
    assert "gaussian" in out


@pytest.mark.parametrize("kind", ["spaghetti", "interaction", "caterpillar", "pairs"])
def test_plot_kinds(spec, tmp_path, kind):
    target = tmp_path / f"{kind}.png"
    code, out, err = run("plot", spec, "--kind", kind, "--out", target)
    assert code == 0, err
    assert target.stat().st_size > 1000


@pytest.mark.parametrize(
    "argv, message",
    [
        (["simulate", "{spec}", "--out", "x.csv", "--set", "desgn.subjects=3"], "Did you mean 'design'?"),
        (["simulate", "{spec}", "--out", "x.xlsx"], "cannot tell the format"),
        (["simulate", "{spec}"], "no output file"),
        (["simulate", "{missing}", "--out", "x.csv"], "No such file"),
        (["describe", "{spec}", "--set", "fixed.x=abc"], "model.fixed.x: must be a number"),
        (["plot", "{spec}", "--out", "x.png", "--kind", "spaghetti", "--x", "zz"], "x='zz' is not a column"),
        (["plot", "{spec}", "--out", "x.unknown"], "image format"),
    ],
)
def test_errors_are_one_line(spec, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    argv = [a.format(spec=spec, missing=tmp_path / "none.yaml") for a in argv]
    code, out, err = run(*argv)
    assert code == 1
    assert err.startswith("glmmsim: error: ") and err.count("\n") == 1
    assert message in err


def test_usage_error_exit_code(capsys):
    assert main(["simulate"]) == 2
    assert "usage:" in capsys.readouterr().err


def test_real_process_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SPEC.replace("sigma:", "sigmaa:"))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-m", "glmmsim.cli", "describe", str(bad)], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        f"glmmsim: error: {bad}, line 9: model.sigmaa: unknown key 'sigmaa'. Did you mean 'sigma'? "
        "Valid keys: 'formula', 'fixed', 'random', 'sigma', 'family', 'link', 'dispersion', 'trials', 'levels'"
    )


def test_stroop_main_job(tmp_path):
    target = tmp_path / "stroop.csv"
    code, out, err = run("simulate", EXAMPLES / "stroop.yaml", "--out", target)
    assert code == 0, err
    data = pd.read_csv(target)
    assert {"subject", "item", "condition", "rt"} <= set(data.columns)
    # the incongruent condition is slower on average (effect 0.15 on the log scale)
    means = data.groupby("condition")["rt"].mean()
    assert means["incongruent"] > means["congruent"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["plot", "{spec}", "--out", "x.png", "--max-lines", "0"], "argument --max-lines: expected a whole number >= 1"),
        (["plot", "{spec}", "--out", "x.png", "--dpi", "-1"], "argument --dpi: expected a whole number >= 1"),
        (["simulate", "{spec}", "--out", "x.csv", "--replicates", "0"], "argument --replicates: expected"),
    ],
)
def test_nonpositive_counts_are_usage_errors(spec, tmp_path, monkeypatch, capsys, argv, message):
    # these used to reach matplotlib and end in a traceback (--max-lines -1, --dpi 0)
    monkeypatch.chdir(tmp_path)
    assert main([a.format(spec=spec) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


def test_design_error_names_key_line(spec, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(spec.read_text().replace("  subjects: 6", "  subjects: 0"))
    line = bad.read_text().splitlines().index("  subjects: 0") + 1
    code, out, err = run("describe", bad)
    assert code == 1
    assert f"bad.yaml, line {line}: design.subjects: subjects must be >= 1" in err
