"""Faults while the command line writes: Ctrl-C, SIGTERM, SIGKILL, a full disk, two writers.

Each test causes the fault to a real ``glmmsim`` process and checks what is left at the
output path: the complete file, or nothing (after SIGKILL at most a file named as partial).
"""

from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess
import time

import pandas as pd
import pytest

from glmmsim.outputs import is_partial

from .._children import INTERRUPTIBLE_CLI

ROOT = pathlib.Path(__file__).resolve().parents[2]
STROOP = ROOT / "examples" / "stroop.yaml"
POWER = ROOT / "examples" / "power.yaml"
# a power curve long enough to be interrupted while it fits (the machine is shared: no timing)
LONG_CURVE = ["--nsim", "5000", "--set", "design.subjects=8", "--set", "design.items=6",
              "--along", "design.subjects=8,10"]


def _start(*argv: object, cwd: pathlib.Path) -> subprocess.Popen:
    with open(cwd / "stderr.txt", "w") as err:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([*INTERRUPTIBLE_CLI, *map(str, argv)], cwd=cwd,
                                stdout=subprocess.DEVNULL, stderr=err, env=os.environ.copy())


def _wait_for(condition, proc: subprocess.Popen, what: str, limit: float = 300) -> None:
    """Poll until ``condition()``; the limit only stops a broken test, it measures nothing."""
    end = time.monotonic() + limit
    while not condition():
        assert proc.poll() is None, f"the command ended (status {proc.returncode}) before {what}"
        assert time.monotonic() < end, f"gave up waiting for {what}"
        time.sleep(0.05)


def _partials(folder: pathlib.Path) -> list[pathlib.Path]:
    return [p for p in folder.iterdir() if is_partial(p.name)]


def _writing(folder: pathlib.Path):
    """True once a partial output holds data (the command has started writing)."""
    return lambda: any(p.stat().st_size > 0 for p in _partials(folder) if p.exists())


def _fitting(folder: pathlib.Path):
    """True once the progress bar on stderr counts finished replicates (the study is working)."""
    return lambda: re.search(r"\b[1-9]\d*/\d+", (folder / "stderr.txt").read_text()) is not None


def _stderr(folder: pathlib.Path) -> str:
    return (folder / "stderr.txt").read_text()


# ------------------------------------------------------------------ simulate --replicates
@pytest.mark.parametrize("name", ["data.parquet", "data.csv"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_simulate_leaves_no_file_and_says_what_it_removed(tmp_path, name, sig):
    proc = _start("simulate", STROOP, "--replicates", 400, "--out", name, cwd=tmp_path)
    _wait_for(_writing(tmp_path), proc, "the output was being written")
    proc.send_signal(sig)
    assert proc.wait(timeout=120) == (130 if sig == signal.SIGINT else 143)
    assert not (tmp_path / name).exists()
    assert _partials(tmp_path) == []
    err = _stderr(tmp_path)
    assert re.search(rf"removed the incomplete output '.*\.glmmsim-partial-[^']*-{re.escape(name)}'; "
                     rf"'{re.escape(name)}' was not written", err), err
    assert "Traceback" not in err


def test_killed_simulate_leaves_only_a_file_named_partial(tmp_path):
    proc = _start("simulate", STROOP, "--replicates", 400, "--out", "data.parquet", cwd=tmp_path)
    _wait_for(_writing(tmp_path), proc, "the output was being written")
    proc.kill()
    proc.wait(timeout=60)
    assert not (tmp_path / "data.parquet").exists()
    left = sorted(p.name for p in tmp_path.iterdir() if p.name != "stderr.txt")
    assert len(left) == 1 and is_partial(left[0]) and left[0].endswith("-data.parquet"), left
    # a rerun is not confused by it, and publishes a whole file
    rerun = _start("simulate", STROOP, "--replicates", 2, "--out", "data.parquet", "-q", cwd=tmp_path)
    assert rerun.wait(timeout=300) == 0, _stderr(tmp_path)
    assert f"glmmsim: warning: '{tmp_path / left[0]}' is an incomplete 'data.parquet' left by an interrupted run" \
        in _stderr(tmp_path)
    assert sorted(pd.read_parquet(tmp_path / "data.parquet")["replicate"].unique()) == [1, 2]


def test_interrupted_forced_rewrite_keeps_the_old_file_whole(tmp_path):
    old = pd.DataFrame({"x": [1, 2, 3]})
    old.to_csv(tmp_path / "data.csv", index=False)
    proc = _start("simulate", STROOP, "--replicates", 400, "--out", "data.csv", "--force", cwd=tmp_path)
    _wait_for(_writing(tmp_path), proc, "the output was being written")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "data.csv"), old)
    assert _partials(tmp_path) == []


# ------------------------------------------------------------------ power --along
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_power_curve_writes_nothing(tmp_path, sig):
    proc = _start("power", POWER, *LONG_CURVE, "--out", "curve.csv", "--simulations", "sims.csv",
                  "--plot", "curve.png", cwd=tmp_path)
    _wait_for(_fitting(tmp_path), proc, "replicates were fitted")
    proc.send_signal(sig)
    status = proc.wait(timeout=120)
    assert status == (130 if sig == signal.SIGINT else -signal.SIGKILL)
    for name in ("curve.csv", "sims.csv", "curve.png"):
        assert not (tmp_path / name).exists()
    assert _partials(tmp_path) == []  # the outputs are claimed once the curve is complete
    if sig == signal.SIGINT:
        assert "glmmsim: interrupted" in _stderr(tmp_path) and "Traceback" not in _stderr(tmp_path)


# ------------------------------------------------------------------ a full disk
@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB tmpfs (needs root to mount)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def _fill(folder: pathlib.Path) -> None:
    """Fill the disk to the last block: any output with data fails to be written."""
    with open(folder / "filler", "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == 28


@pytest.mark.parametrize("name", ["data.csv", "data.parquet", "data.csv.gz"])
def test_full_disk_simulate_leaves_no_file_and_a_clear_error(tmp_path, small_disk, name):
    proc = _start("simulate", STROOP, "--replicates", 40, "--out", small_disk / name, cwd=tmp_path)
    assert proc.wait(timeout=300) == 1
    err = _stderr(tmp_path)
    assert "Traceback" not in err
    assert re.search(rf"glmmsim: error: could not write '.*{re.escape(name)}': .*No space left on device.*; "
                     rf"removed the partial file '.*\.glmmsim-partial-.*'; nothing was written", err), err
    assert os.listdir(small_disk) == []


def test_full_disk_power_writes_none_of_its_outputs(tmp_path, small_disk):
    _fill(small_disk)
    out, sims = small_disk / "t.csv", small_disk / "s.csv"
    proc = _start("power", POWER, "--nsim", "3", "--set", "design.subjects=6", "--set", "design.items=4", "-q",
                  "--out", out, "--simulations", sims, cwd=tmp_path)
    assert proc.wait(timeout=300) == 1
    err = _stderr(tmp_path)
    assert "Traceback" not in err and "No space left on device" in err and "nothing was written" in err, err
    assert os.listdir(small_disk) == ["filler"]


# ------------------------------------------------------------------ two writers
def test_two_writers_on_one_out_exactly_one_wins(tmp_path):
    target = tmp_path / "data.csv"
    procs = {}
    for seed in (11, 12):  # each runs in its own folder (its own stderr.txt); both write `target`
        (tmp_path / str(seed)).mkdir()
        procs[seed] = _start("simulate", STROOP, "--seed", seed, "--replicates", 30, "--out", target, "-q",
                             cwd=tmp_path / str(seed))
    codes = {seed: proc.wait(timeout=600) for seed, proc in procs.items()}
    assert sorted(codes.values()) == [0, 1], codes
    winner, loser = sorted(codes, key=codes.get)
    err = _stderr(tmp_path / str(loser))
    assert f"glmmsim: error: output file '{target}' exists; pass --force" in err and "Traceback" not in err, err
    # the file is the winner's run, whole: equal to the same run written alone
    alone = tmp_path / "alone.csv"
    assert _start("simulate", STROOP, "--seed", winner, "--replicates", 30, "--out", alone, "-q",
                  cwd=tmp_path / str(winner)).wait(timeout=600) == 0
    assert target.read_bytes() == alone.read_bytes()
    assert [p.name for p in tmp_path.iterdir() if is_partial(p.name)] == []
