"""``glmmsim power --checkpoint``: a run killed mid-study and rerun gives the uninterrupted run's files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmmsim
from glmmsim import power, power_curve
from glmmsim.errors import ParameterError

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "examples" / "power.yaml"


def _command(tmp: Path, name: str, checkpoint: Path | None) -> list[str]:
    cmd = [sys.executable, "-c", "from glmmsim.cli import main; raise SystemExit(main())", "power", str(SPEC),
           "--along", "design.subjects=10,14", "--nsim", "300", "-q",
           "--out", str(tmp / f"{name}.csv"), "--simulations", str(tmp / f"{name}-sims.csv")]
    return cmd + (["--checkpoint", str(checkpoint)] if checkpoint else [])


def test_sigkill_mid_run_then_rerun_equals_the_uninterrupted_run_byte_for_byte(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run(_command(tmp_path, "whole", None), check=True, env=env, capture_output=True)
    checkpoint = tmp_path / "cp"
    proc = subprocess.Popen(_command(tmp_path, "resumed", checkpoint), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while len(list(checkpoint.glob("batch-*.parquet"))) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = len(list(checkpoint.glob("batch-*.parquet")))
    assert 2 <= kept < 6  # 2 points x 300 replicates in batches of 100: killed mid-study
    assert not (tmp_path / "resumed.csv").exists()
    done = subprocess.run(_command(tmp_path, "resumed", checkpoint), check=True, env=env, capture_output=True, text=True)
    assert len(list(checkpoint.glob("batch-*.parquet"))) == 6
    for suffix in (".csv", "-sims.csv"):
        assert (tmp_path / f"resumed{suffix}").read_bytes() == (tmp_path / f"whole{suffix}").read_bytes()
    assert "smallest design" in done.stdout or "no point reaches" in done.stdout


def _model():
    return glmmsim.Model("y ~ cond + (1 | subject)", fixed={"Intercept": 0, "condb": 0.5}, random={"subject": 0.5},
                         sigma=1)


def _design(subjects=8):
    return glmmsim.design.crossed(subjects=subjects, repetitions=4, within={"cond": ["a", "b"]})


def test_a_checkpoint_made_by_another_study_is_refused_naming_the_difference(tmp_path):
    power(_model(), _design(), test="condb", nsim=4, progress=False, checkpoint=tmp_path / "cp")
    with pytest.raises(ParameterError, match=r"seed is .* there, .* here") as info:
        power(_model(), _design(), test="condb", nsim=4, progress=False, seed=2, checkpoint=tmp_path / "cp")
    assert info.value.parameter == "checkpoint"
    with pytest.raises(ParameterError, match=r"fixed\.\S+ is \"0\.5\" there, \"0\.6\" here"):
        power(_model().replace(fixed={"Intercept": 0, "condb": 0.6}), _design(), test="condb", nsim=4, progress=False,
              checkpoint=tmp_path / "cp")
    with pytest.raises(ParameterError, match=r"design\.rows is 64 there, 80 here"):
        power(_model(), _design(10), test="condb", nsim=4, progress=False, checkpoint=tmp_path / "cp")


def test_a_checkpoint_resumes_and_extends_with_identical_results(tmp_path):
    whole = power_curve(_model(), lambda subjects: _design(subjects), along={"subjects": [6, 8]}, test="condb",
                        nsim=30, progress=False)
    cp = tmp_path / "cp"
    power_curve(_model(), lambda subjects: _design(subjects), along={"subjects": [6, 8]}, test="condb", nsim=12,
                progress=False, checkpoint=cp)
    resumed = power_curve(_model(), lambda subjects: _design(subjects), along={"subjects": [6, 8]}, test="condb",
                          nsim=30, progress=False, checkpoint=cp, executor=2)
    pd.testing.assert_frame_equal(whole.simulations, resumed.simulations)
    pd.testing.assert_frame_equal(whole.table, resumed.table)
    # a smaller nsim reads the first replicates of the checkpoint
    fewer = power_curve(_model(), lambda subjects: _design(subjects), along={"subjects": [6, 8]}, test="condb",
                        nsim=12, progress=False, checkpoint=cp)
    assert np.array_equal(fewer.simulations["p"], whole.simulations.groupby("subjects").head(12)["p"])
