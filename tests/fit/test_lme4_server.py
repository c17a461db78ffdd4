"""The R process behind the lme4 engine: one per process, restarts, timeouts, clean shutdown, clear errors."""

from __future__ import annotations

import os
import stat

import numpy as np
import pandas as pd
import pytest

import glmmsim
from glmmsim.fit import EngineError, FitError
from glmmsim.fit.engines import lme4_engine
from glmmsim.fit.engines.lme4_engine import RServer, r_server


def _fake_rscript(tmp_path, body: str) -> str:
    path = tmp_path / "Rscript"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_missing_rscript_names_what_to_install(monkeypatch) -> None:
    server = RServer()
    server._rscript = None
    with pytest.raises(EngineError, match="Rscript is not on PATH.*r-cran-lme4.*engine='glmm'"):
        server.ensure()


def test_missing_r_package_is_named(tmp_path) -> None:
    server = RServer(_fake_rscript(tmp_path, 'printf "@@MISSING\\tpbkrtest\\n"'))
    with pytest.raises(EngineError, match="needs the R package\\(s\\) pbkrtest"):
        server.ensure()
    assert server.pid is None


def test_r_that_dies_reports_its_stderr(tmp_path) -> None:
    server = RServer(_fake_rscript(tmp_path, 'echo "Error: cannot open lme4" >&2; exit 1'))
    with pytest.raises(EngineError, match="cannot open lme4"):
        server.ensure()


@pytest.mark.r
def test_one_process_serves_many_fits(rt_data: pd.DataFrame) -> None:
    fitter = glmmsim.fit.prepare("rt ~ cond + (1 | subject)", rt_data, engine="lme4")
    pid = r_server().pid
    first = fitter.fit(rt_data["rt"])
    # a permutation, not a reversal: the balanced design maps reversed rows onto itself
    shuffled = np.random.default_rng(0).permutation(rt_data["rt"].to_numpy())
    second = fitter.fit(shuffled)
    assert r_server().pid == pid  # no new process per fit or per design
    assert first.loglik != second.loglik
    assert first.engine == "lme4" and "lme4 1." in first.engine_version


@pytest.mark.r
def test_timeout_stops_r_and_the_next_fit_restarts_it(rt_data: pd.DataFrame, monkeypatch) -> None:
    fitter = glmmsim.fit.prepare("rt ~ cond + (1 + cond | subject) + (1 | item)", rt_data, engine="lme4")
    server = r_server()
    old = server._proc
    monkeypatch.setenv("GLMMSIM_R_TIMEOUT", "0.001")
    with pytest.raises(FitError, match="longer than 0.001 s fitting; the R process was stopped"):
        fitter.fit(rt_data["rt"])
    assert old.poll() is not None  # killed and reaped: no zombie
    monkeypatch.delenv("GLMMSIM_R_TIMEOUT")
    assert fitter.fit(rt_data["rt"]).converged  # design uploaded again to the new process
    assert server._proc is not old


@pytest.mark.r
def test_r_error_is_a_fit_error_and_the_server_survives(rt_data: pd.DataFrame) -> None:
    rng = np.random.default_rng(3)
    d = pd.DataFrame({"x": rng.normal(size=200), "g": np.repeat([f"g{i}" for i in range(20)], 10), "y": 5.0})
    with pytest.raises(FitError, match="engine 'lme4' failed fitting"):
        glmmsim.fit("y ~ x + (1 | g)", d, engine="lme4")
    assert glmmsim.fit("rt ~ cond + (1 | subject)", rt_data, engine="lme4").converged


def test_close_leaves_no_process(tmp_path) -> None:
    # a stand-in server that answers READY and waits for QUIT, as the R script does
    fake = _fake_rscript(tmp_path, 'printf "@@READY\\tfake 1\\n"; while read line; do [ "$line" = QUIT ] && exit 0; done')
    server = RServer(fake)
    server.ensure()
    assert server.version == "fake 1"
    proc = server._proc
    server.close()
    assert proc.poll() is not None and server.pid is None
    server.close()  # idempotent


def test_worker_processes_get_their_own_server(monkeypatch) -> None:
    mine = r_server()
    monkeypatch.setattr(os, "getpid", lambda: -12345)
    try:
        assert r_server() is not mine
    finally:
        lme4_engine._SERVERS.pop(-12345, None)
