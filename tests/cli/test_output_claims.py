"""The command line claims its outputs: --force for every command, no FIFO, no two outputs in one file."""

from __future__ import annotations

import os
import pathlib

import matplotlib

matplotlib.use("Agg")

import pandas as pd
import pytest

from ._cli import copy_power_spec, run
from .._no_hang import no_hang

SMALL = ["--set", "design.subjects=6", "--set", "design.items=4", "--nsim", "3", "-q"]


@pytest.fixture
def spec(tmp_path) -> pathlib.Path:
    return copy_power_spec(tmp_path)


@pytest.mark.parametrize("command", ["power", "recover"])
def test_power_and_recover_honour_force(spec, tmp_path, command):
    target = tmp_path / "table.csv"
    target.write_text("keep me\n")
    code, out, err = run(command, spec, *SMALL, "--out", target)
    assert code == 1 and f"glmmsim: error: output file '{target}' exists; pass --force" in err, err
    assert target.read_text() == "keep me\n"
    code, out, err = run(command, spec, *SMALL, "--out", target, "--force")
    assert code == 0, err
    assert f"table -> {target}" in out and len(pd.read_csv(target)) >= 1
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []


def test_an_existing_output_is_refused_before_any_work(spec, tmp_path):
    (tmp_path / "s.csv").write_text("x\n")
    # nsim 10**6 would run for hours: the refusal comes first
    code, out, err = run("power", spec, "--nsim", str(10**6), "-q", "--out", tmp_path / "t.csv",
                         "--simulations", tmp_path / "s.csv")
    assert code == 1 and "output file" in err and "s.csv' exists" in err and out == ""


@pytest.mark.parametrize("second", ["x.csv", "./x.csv", "link.csv"])
def test_two_outputs_of_one_command_may_not_be_one_file(spec, tmp_path, second):
    (tmp_path / "link.csv").symlink_to(tmp_path / "x.csv")  # dangling until x.csv is written
    code, out, err = run("power", spec, "--nsim", str(10**6), "-q", "--out", tmp_path / "x.csv",
                         "--simulations", tmp_path / second)
    assert code == 1 and "glmmsim: error: --out and --simulations are the same file" in err, err
    assert not (tmp_path / "x.csv").exists()


def test_the_spec_and_the_command_line_outputs_are_compared_too(spec, tmp_path):
    spec.write_text(spec.read_text().replace("  seed: 1", "  seed: 1\n  out: x.csv"))  # a spec's path is relative to its folder
    code, out, err = run("power", spec, "--nsim", str(10**6), "-q", "--simulations", tmp_path / "x.csv")
    assert code == 1 and "same file" in err, err


@pytest.mark.parametrize("argv", [
    ("simulate", "{spec}", "--out", "{fifo}.csv"),
    ("simulate", "{spec}", "--out", "{fifo}.csv", "--force"),
    ("power", "{spec}", "--nsim", "3", "-q", "--out", "{fifo}.csv", "--force"),
    ("power", "{spec}", "--nsim", "3", "-q", "--simulations", "{fifo}.csv"),
    ("recover", "{spec}", "--nsim", "3", "-q", "--out", "{fifo}.csv", "--force"),
    ("plot", "{spec}", "--out", "{fifo}.png", "--force"),
])
def test_a_fifo_target_is_refused_not_opened(spec, tmp_path, argv):
    fifo = tmp_path / "pipe"
    name = next(a for a in argv if a.startswith("{fifo}")).format(fifo=fifo)
    os.mkfifo(name)
    with no_hang(60):  # a whole CLI run happens inside
        code, out, err = run(*(a.format(spec=spec, fifo=fifo) for a in argv))
    assert code == 1 and f"glmmsim: error: output '{name}' is a FIFO (named pipe), not a regular file" in err, err


def test_dev_null_is_refused(spec):
    code, out, err = run("simulate", spec, "--out", "/dev/null", "--format", "csv", "--force")
    assert code == 1 and "is a character device, not a regular file" in err, err


def test_simulate_output_goes_through_a_partial_file_and_keeps_its_bytes(spec, tmp_path):
    # the published file is byte for byte what the writer wrote (gzip compression kept by the name)
    target = tmp_path / "d.csv.gz"
    assert run("simulate", spec, "--out", target, "-q")[0] == 0
    assert target.read_bytes()[:2] == b"\x1f\x8b"
    assert pd.read_csv(target).shape[0] > 0 and sorted(os.listdir(tmp_path)) == ["d.csv.gz", "power.yaml"]
