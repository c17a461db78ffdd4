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
from ._cli import run

ROOT = pathlib.Path(__file__).resolve().parents[2]
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


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_replicates_with_progress_bar_only_on_a_terminal(spec, tmp_path):
    target = tmp_path / "reps.csv"
    code, out, err = run("simulate", spec, "--out", target, "--replicates", "3")
    assert code == 0
    data = pd.read_csv(target)
    assert data.columns[0] == "replicate" and data["replicate"].value_counts().to_dict() == {1: 48, 2: 48, 3: 48}
    assert err == ""  # stderr is not a terminal (a log, a pipe, CI): no bar
    assert "x 3 replicates" in out
    term = _Terminal()
    code = main(["simulate", str(spec), "--out", str(tmp_path / "reps2.csv"), "--replicates", "3"], stdout=io.StringIO(), stderr=term)
    assert code == 0 and "replicates" in term.getvalue() and "3/3" in term.getvalue()


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
    # summary(lmer(...)) prints no family line for a gaussian model with identity link
    assert not any(line.lstrip().startswith("Family:") for line in lines)


def _describe_lines(tmp_path, text: str) -> list[str]:
    path = tmp_path / "describe.yaml"
    path.write_text(text)
    code, out, err = run("describe", path)
    assert code == 0, err
    return out.splitlines()


def _random_rows(lines: list[str]) -> list[list[str]]:
    start = lines.index("Random effects:") + 2  # skip the header
    end = next(i for i, line in enumerate(lines) if line.startswith("Number of obs"))
    return [line.split() for line in lines[start:end]]


def test_describe_orders_terms_as_lme4_by_decreasing_levels(tmp_path):
    # 6 subjects, 8 items: lme4 lists item first although the formula names subject first;
    # the tied item terms of (x || item) come out reversed (rev(order(nl)) in mkReTrms),
    # named item and item.1 as VarCorr names them (checked with lme4 1.1.31)
    lines = _describe_lines(
        tmp_path,
        """\
model:
  formula: "y ~ 1 + x + (1 | subject) + (x || item)"
  fixed: {Intercept: 1.0, x: 0.5}
  random: {subject: 0.4, item: {Intercept: 0.3, x: 0.2}}
  sigma: 1.0
design: {type: crossed, subjects: 6, items: 8, covariates: {x: {per: trial}}}
seeds: {population: 1, noise: 2, design: 3}
""",
    )
    assert _random_rows(lines) == [
        ["item", "x", "0.04", "0.2"],
        ["item.1", "(Intercept)", "0.09", "0.3"],
        ["subject", "(Intercept)", "0.16", "0.4"],
        ["Residual", "1.00", "1.0"],
    ]
    assert "Number of obs: 48, groups:  item, 8; subject, 6" in lines
    # no term has two coefficients: lme4 prints no Corr column
    assert lines[lines.index("Random effects:") + 1].split() == ["Groups", "Name", "Variance", "Std.Dev."]


def test_describe_keeps_formula_order_when_levels_never_increase(spec):
    lines = run("describe", spec)[1].splitlines()
    groups = [row[0] for row in _random_rows(lines) if row[0] in ("subject", "item")]
    assert groups == ["subject", "item"]  # 6 subjects >= 4 items: lme4 does not reorder


def test_describe_names_nested_factor_as_lme4(tmp_path):
    lines = _describe_lines(
        tmp_path,
        """\
model:
  formula: "y ~ 1 + (1 | school/class)"
  fixed: {Intercept: 1.0}
  random: {school: 0.5, "school:class": 0.3}
  family: negative_binomial
  dispersion: {theta: 2.5}
design: {type: nested, levels: {school: 4, class: 3, pupil: 5}}
seeds: {population: 1, noise: 2, design: 3}
""",
    )
    assert [row[0] for row in _random_rows(lines)] == ["class:school", "school"]
    assert "Number of obs: 60, groups:  class:school, 12; school, 4" in lines
    assert " Family: Negative Binomial(2.5)  ( log )" in lines  # glmer.nb's family line


@pytest.mark.parametrize(
    "family, dispersion, expected",
    [
        ("binomial", "", " Family: binomial  ( logit )"),
        ("poisson", "", " Family: poisson  ( log )"),
        ("Gamma", "dispersion: {shape: 4}", " Family: Gamma  ( inverse )"),  # R's default link
    ],
)
def test_describe_prints_lme4_family_line(tmp_path, family, dispersion, expected):
    lines = _describe_lines(
        tmp_path,
        SPEC.replace("  sigma: 1.0\n", f"  family: {family}\n  {dispersion}\n"),
    )
    assert lines[1] == expected
    residual = [row for row in _random_rows(lines) if row[0] == "Residual"]
    # lme4's sigma() of a Gamma GLMM is its CV 1/sqrt(shape) = 0.5; binomial/poisson have none
    assert residual == ([["Residual", "0.25", "0.5"]] if family == "Gamma" else [])


def test_describe_family_line_of_gaussian_with_log_link(spec, tmp_path):
    lines = _describe_lines(tmp_path, spec.read_text().replace("  sigma: 1.0\n", "  sigma: 1.0\n  link: log\n"))
    assert lines[1] == " Family: gaussian  ( log )"


def test_describe_family_line_of_family_lme4_lacks():
    code, out, err = run("describe", EXAMPLES / "stroop.yaml")
    assert code == 0, err
    family = out.splitlines()[1]
    assert family.startswith(" Family: shifted_lognormal (shift = 250; identity link")
    assert "mean of log(rt - shift)" in family and "Residual = SD of log(rt - shift)" in family


@pytest.mark.parametrize("kind", ["spaghetti", "interaction", "caterpillar", "pairs"])
def test_plot_kinds(spec, tmp_path, kind):
    target = tmp_path / f"{kind}.png"
    code, out, err = run("plot", spec, "--kind", kind, "--out", target)
    assert code == 0, err
    assert target.stat().st_size > 1000


def test_plot_default_resolution_is_fit_for_print(tmp_path):
    target = tmp_path / "stroop.png"
    code, out, err = run("plot", EXAMPLES / "stroop.yaml", "--kind", "interaction", "--out", target)
    assert code == 0, err
    with open(target, "rb") as fh:
        header = fh.read(24)
    width, height = int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
    assert (width, height) == (900, 600)  # a 6 x 4 inch figure at 150 dpi


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


def test_design_warning_printed_as_one_line(spec, tmp_path):
    bad = tmp_path / "unequal.yaml"
    bad.write_text(spec.read_text().replace("  items: 4", "  items: 5\n  counterbalance: cond"))
    line = bad.read_text().splitlines().index("  counterbalance: cond") + 1
    code, out, err = run("describe", bad)
    assert code == 0 and "Random effects:" in out
    assert err.splitlines() == [
        f"glmmsim: warning: {bad}, line {line}: design.counterbalance: counterbalance 'cond': 5 items over 2 "
        "lists give unequal cells: the 2 cells of each list get 3, 2 items; use a multiple of 2 items for equal cells"
    ]


def test_design_error_names_key_line(spec, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(spec.read_text().replace("  subjects: 6", "  subjects: 0"))
    line = bad.read_text().splitlines().index("  subjects: 0") + 1
    code, out, err = run("describe", bad)
    assert code == 1
    assert f"bad.yaml, line {line}: design.subjects: subjects must be >= 1" in err


@pytest.mark.parametrize(
    "family, dispersion, expected",
    [
        ("lognormal", {}, " Family: lognormal (identity link: eta = mean of log(rt), Residual = SD of log(rt))"),
        (
            "exgaussian",
            {"tau": 0.1},
            " Family: exgaussian (tau = 0.1 = mean of the exponential part; identity link: "
            "eta = mean of the Gaussian part of rt, Residual = its SD)",
        ),
    ],
)
def test_family_line_of_other_families_lme4_lacks(family, dispersion, expected):
    from glmmsim import Model
    from glmmsim.lme4.summary import _family_line

    model = Model("rt ~ 1 + (1 | subject)", fixed={"Intercept": 0.5}, random={"subject": 0.1},
                  sigma=0.2, family=family, dispersion=dispersion)
    assert _family_line(model) == expected


# ---------------------------------------------------------------- output is never an input; --force
def test_existing_output_needs_force_and_inputs_are_never_overwritten(spec, tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("keep me\n")
    code, out, err = run("simulate", spec, "--out", target)
    assert code == 1 and "exists; pass --force" in err and target.read_text() == "keep me\n"
    assert run("simulate", spec, "--out", target, "--force")[0] == 0
    assert len(pd.read_csv(target)) == 48
    before = spec.read_text()
    for argv in (("simulate", spec, "--out", spec, "--force"), ("plot", spec, "--out", str(spec) + ".png")):
        code, out, err = run(*argv)
        if argv[0] == "simulate":
            assert code == 1 and "is an input of the study" in err
    assert spec.read_text() == before


def test_huge_replicate_counts_are_refused_before_work(spec, tmp_path):
    code, out, err = run("simulate", spec, "--out", tmp_path / "r.csv", "--replicates", str(10**23))
    assert code == 1 and "would write 4.8e+24 rows" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r.csv").exists()


def test_version_does_not_import_the_model_layer():
    code = "import sys; from glmmsim.cli import main; main(['--version']); print('pandas' in sys.modules, 'formulaic' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split()[-2:] == ["False", "False"]


def test_ctrl_c_prints_one_line(spec, monkeypatch):
    import importlib

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module("glmmsim.cli.main"), "build_parser", interrupted)
    err = io.StringIO()
    assert main(["simulate", str(spec)], stdout=io.StringIO(), stderr=err) == 130
    assert err.getvalue() == "glmmsim: interrupted\n"


def test_one_letter_typos_get_a_suggestion(spec):
    code, out, err = run("describe", spec, "--set", "fixed.x2=0.5")
    assert code == 1 and "Did you mean 'x'?" in err  # one letter added
    code, out, err = run("describe", spec, "--set", "fixed.condc=0.5")
    assert code == 1 and "Did you mean 'condb'?" in err
    code, out, err = run("describe", spec, "--set", "desing.subjects=3")
    assert code == 1 and "Did you mean 'design'?" in err


def test_describe_shows_derived_seeds_readably(spec):
    spec.write_text(SPEC.replace("seeds: {population: 1, noise: 2, design: 3}", "seeds: 42"))
    code, out, err = run("describe", spec)
    assert code == 0, err
    assert "seeds: 42 (population, noise, design = SeedSequence(42).spawn(3))" in out
    code, out, err = run("describe", spec, "--seed", "5")
    assert "seeds: population child 0 of 42, noise 5, design child 2 of 42" in out
