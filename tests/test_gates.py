"""The R gate: collecting the suite starts no R; a test marked ``r`` skips without R, fails when R is required.

Each check runs pytest in a subprocess whose PATH starts with a fake ``Rscript`` that only
records that it ran (a marker file) and exits with an error, as a broken R would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Three of the R server's tests; the gate decides before any of them starts R itself.
R_TESTS = ["tests/fit/test_lme4_server.py", "-m", "r"]


def _fake_r_path(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment whose first ``Rscript`` writes ``ran`` into tmp_path and fails."""
    bin_dir, ran = tmp_path / "bin", tmp_path / "ran"
    bin_dir.mkdir()
    fake = bin_dir / "Rscript"
    fake.write_text(f'#!/bin/sh\necho "$@" >> "{ran}"\nexit 1\n')
    fake.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}, ran


def _pytest(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_collecting_every_test_runs_no_rscript(tmp_path):
    env, ran = _fake_r_path(tmp_path)
    env["GLMMSIM_REQUIRE_R"] = "1"  # even where R is required, collection must not look for it
    done = _pytest(["--collect-only"], env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "error" not in done.stdout.splitlines()[-1], done.stdout.splitlines()[-1]
    assert "test_glmm_agrees_with_lme4" in done.stdout  # the R tests were collected, not dropped
    assert not ran.exists(), f"collection ran Rscript: {ran.read_text()}"


def test_r_tests_skip_with_the_reason_when_r_is_broken(tmp_path):
    env, ran = _fake_r_path(tmp_path)
    env.pop("GLMMSIM_REQUIRE_R", None)
    done = _pytest(R_TESTS, env)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "3 skipped" in done.stdout and "the lme4 engine cannot run" in done.stdout, done.stdout[-3000:]
    assert "GLMMSIM_REQUIRE_R=1 to make this a failure" in done.stdout
    assert ran.read_text().count("\n") == 1  # probed once for the three tests, then cached


def test_r_tests_fail_when_r_is_required_and_broken(tmp_path):
    env, _ = _fake_r_path(tmp_path)
    env["GLMMSIM_REQUIRE_R"] = "1"
    done = _pytest(R_TESTS, env)
    assert done.returncode == 1
    # the gate fails each test in its set-up: pytest counts them as errors
    assert "3 errors" in done.stdout and "GLMMSIM_REQUIRE_R=1 but the lme4 engine cannot run" in done.stdout, (
        done.stdout[-3000:])
