"""Benchmark glmmsim against its peers (MCPower, simr) on issue 19's standard crossed model, in one run.

Model: ``y ~ cond + (1 + cond | subject) + (1 | item)``, 30 subjects x 20 items x 2 conditions
(1,200 rows, ``cond`` a 0/1 column within subjects and items), and its zero-correlation form
``(1 + cond || subject)``. A replicate is a new response, its fit and one test of ``cond``:

* glmmsim, ``lmm`` engine: z, Satterthwaite t, likelihood ratio (ML fits of the full and the
  nested model), Kenward-Roger, and the t test of the ``||`` model, one replicate at a time and
  a round's replicates fitted together from the generating values (what ``glmmsim.power`` does);
  ``glmm`` engine: z and Satterthwaite t (it refuses the others);
* MCPower (in its own virtual environment, ``--mcpower-python``): ``find_power`` on its closest
  scenario (standardized effect, ICCs, a correlated random slope), ``df_method="asymptotic"``
  (z) and ``"between_within"`` (Satterthwaite df for crossed groupings);
* simr ``powerSim`` (R): ``fixed("cond", m)`` with m = ``"z"``, ``"t"`` (lmerTest,
  Satterthwaite), ``"lr"``, ``"kr"`` (pbkrtest), and ``"t"`` on the ``||`` model, once with
  ``cond`` the 0/1 column and once with ``cond`` a two-level factor (``fixed("condb", "t")``),
  where lme4's ``||`` keeps a 2 x 2 covariance beside the intercept (a ridge of equal likelihood).

Rounds alternate the contenders (glmmsim, MCPower, simr, then again); each peer runs in its own
process and times itself, so interpreter and package start-up are excluded. Times are CPU time of
the process doing the work (robust on the shared 2-core machine; BLAS on one thread everywhere),
medians over ``--rounds`` rounds, in ms per replicate; ratios are glmmsim / peer (below 1:
glmmsim is faster). A peer that is not installed is skipped with a line saying so.

Last, the cost of the Satterthwaite df alone on the same fits: one ``DdfCalculator.satterthwaite``
call per replicate against ``satterthwaite_many`` over all of them (stacked arrays).

Usage::

    PYTHONPATH=src python benchmarks/bench_peers.py                          # ~3-6 min on 2 busy cores
    PYTHONPATH=src python benchmarks/bench_peers.py --rounds 1 --simr-reps 3 --simr-kr-reps 1
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
import glmmsim
from glmmsim.fit import EngineError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from standard_model import responses  # noqa: E402 - the model's draws, shared with bench_lmm.py
from bench_lmm import per_replicate_batched  # noqa: E402 - what glmmsim.power does with a batch

FULL = "y ~ cond + (1 + cond | subject) + (1 | item)"
ZEROCORR = "y ~ cond + (1 + cond || subject) + (1 | item)"
# ``||`` with ``cond`` a two-level factor: lme4 then keeps a 2 x 2 covariance of (conda, condb) beside the
# intercept, whose variance it can trade against that matrix (a ridge of equal likelihood)
FACTOR_ZEROCORR = "(1 + cond || subject), cond a factor, t"
TESTS = [  # (label, formula, glmmsim method, reml, simr method, MCPower df_method)
    ("z", FULL, "z", True, "z", "asymptotic"),
    ("Satterthwaite t", FULL, "satterthwaite", True, "t", "between_within"),
    ("likelihood ratio", FULL, "lrt", False, "lr", None),
    ("Kenward-Roger", FULL, "kr", True, "kr", None),
    ("(1 + cond || subject), t", ZEROCORR, "satterthwaite", True, "t", None),
    (FACTOR_ZEROCORR, ZEROCORR, "satterthwaite", True, "t", None),
]
DEFAULT_MCPOWER_PYTHON = "/work/venv-mcpower/bin/python"
HERE = Path(__file__).resolve().parent

MCPOWER_SCRIPT = r"""
import json, sys, time
import mcpower
sims = int(sys.argv[2])
methods = sys.argv[3:]

sys.path.insert(0, sys.argv[1])  # benchmarks/, for the scenario shared with bench_lmm.py and bench_power.py
from mcpower_scenario import find_power


def run(n, df_method):
    return find_power(mcpower, n, df_method=df_method)

out = {"version": getattr(mcpower, "__version__", "?")}
for df_method in methods:
    run(10, df_method)  # warm-up
    t0 = time.process_time()
    run(sims, df_method)
    out[df_method] = (time.process_time() - t0) / sims
print(json.dumps(out))
"""

SIMR_SCRIPT = r"""
suppressPackageStartupMessages({library(lme4); library(simr); library(jsonlite)})
invisible(loadNamespace("lmerTest")); invisible(loadNamespace("pbkrtest"))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
nsim <- as.integer(args[2]); nkr <- as.integer(args[3])
simrOptions(progress = FALSE)
full <- lmer(y ~ cond + (1 + cond | subject) + (1 | item), data = d)
zc <- lmer(y ~ cond + (1 + cond || subject) + (1 | item), data = d)
zcf <- lmer(y ~ cond + (1 + cond || subject) + (1 | item),
            data = transform(d, cond = factor(ifelse(cond == 1, "b", "a"))))
cpu <- function() { p <- proc.time(); p[["user.self"]] + p[["sys.self"]] }
time_it <- function(fit, method, n, coefficient = "cond") {
  t0 <- cpu()
  ps <- suppressMessages(suppressWarnings(powerSim(fit, test = fixed(coefficient, method), nsim = n, seed = 1,
                                                   progress = FALSE)))
  list(cpu = (cpu() - t0) / n, power = mean(ps$pval < 0.05), errors = NROW(ps$errors))
}
invisible(suppressMessages(suppressWarnings(powerSim(full, test = fixed("cond", "t"), nsim = 1, progress = FALSE))))
res <- list(version = as.character(packageVersion("simr")),
            z = time_it(full, "z", nsim), t = time_it(full, "t", nsim), lr = time_it(full, "lr", nsim),
            kr = time_it(full, "kr", nkr), zc = time_it(zc, "t", nsim), zcf = time_it(zcf, "t", nsim, "condb"))
cat(toJSON(res, auto_unbox = TRUE, digits = NA))
"""
SIMR_KEYS = {"z": "z", "t": "Satterthwaite t", "lr": "likelihood ratio", "kr": "Kenward-Roger",
             "zc": "(1 + cond || subject), t", "zcf": FACTOR_ZEROCORR}


def conditions(subjects: int = 30, items: int = 20) -> pd.DataFrame:
    s, i, c = np.meshgrid(np.arange(subjects), np.arange(items), [0, 1], indexing="ij")
    return pd.DataFrame({"subject": [f"s{v:02d}" for v in s.ravel()], "item": [f"i{v:02d}" for v in i.ravel()],
                         "cond": c.ravel().astype(float)})


def glmmsim_per_replicate(engine: str, formula: str, method: str, reml: bool, d: pd.DataFrame,
                          ys: np.ndarray) -> float | None:
    """CPU seconds per replicate (fit + test of ``cond``), or None when the engine refuses the model or test."""
    try:
        fitter = glmmsim.fit.prepare(formula, d, engine=engine, reml=reml)
        fitter.fit(ys[:, 0]).test("cond", method=method)  # warm-up
    except EngineError:
        return None
    t0 = time.process_time()
    for r in range(ys.shape[1]):
        fitter.fit(ys[:, r]).test("cond", method=method)
    return (time.process_time() - t0) / ys.shape[1]


def mcpower_round(python: str, sims: int) -> dict | None:
    """MCPower's CPU seconds per simulation for z and Satterthwaite t, timed in its own interpreter."""
    methods = [m for *_, m in TESTS if m]
    run = subprocess.run([python, "-c", MCPOWER_SCRIPT, str(HERE), str(sims), *methods], capture_output=True, text=True,
                         timeout=900, check=False)
    if run.returncode != 0:
        print(f"MCPower failed: {run.stderr.strip()[-500:]}")
        return None
    out = json.loads(run.stdout.strip().splitlines()[-1])
    return {"version": out["version"], **{label: out.get(m) for label, *_, m in TESTS if m}}


def simr_round(rscript: str, csv: Path, reps: int, kr_reps: int) -> dict | None:
    """simr's CPU seconds per powerSim simulation for every test, timed inside R."""
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as handle:
        handle.write(SIMR_SCRIPT)
    try:
        run = subprocess.run([rscript, "--vanilla", handle.name, str(csv), str(reps), str(kr_reps)],
                             capture_output=True, text=True, timeout=3600, check=False,
                             env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    finally:
        os.unlink(handle.name)
    if run.returncode != 0:
        print(f"simr failed: {run.stderr.strip()[-800:]}")
        return None
    out = json.loads(run.stdout.strip().splitlines()[-1])
    return {"version": out["version"], **{label: out[key]["cpu"] for key, label in SIMR_KEYS.items()},
            "power": {label: out[key]["power"] for key, label in SIMR_KEYS.items()}}


def peer_status(mcpower_python: str) -> tuple[str | None, str | None]:
    """(MCPower interpreter, Rscript) when installed, printing a line for each peer that is skipped."""
    python = mcpower_python if Path(mcpower_python).exists() else None
    if python is not None:
        probe = subprocess.run([python, "-c", "import mcpower"], capture_output=True, timeout=120, check=False)
        python = python if probe.returncode == 0 else None
    if python is None:
        print(f"MCPower: skipped (no interpreter with mcpower at {mcpower_python}; "
              "python3 -m venv /work/venv-mcpower && /work/venv-mcpower/bin/pip install MCPower==1.4.1)")
    rscript = shutil.which("Rscript")
    if rscript is not None:
        probe = subprocess.run([rscript, "--vanilla", "-e", "library(simr); library(jsonlite)"], capture_output=True,
                               timeout=300, check=False)
        rscript = rscript if probe.returncode == 0 else None
    if rscript is None:
        print("simr: skipped (Rscript with the R packages simr and jsonlite not found)")
    return python, rscript


def batched_df(d: pd.DataFrame, ys: np.ndarray) -> tuple[float, float, float]:
    """Satterthwaite df of ``cond`` on lmm's fits: CPU s per replicate one call each, batched; largest rel. diff."""
    from glmmsim.fit.engines.lmm_engine import term_blocks

    prep = glmmsim.fit.prepare(FULL, d, engine="lmm")._prepare()
    calc = prep._ddf_calculator()
    fits = [prep.fit(ys[:, r], reml=True) for r in range(ys.shape[1])]
    blocks = term_blocks(prep.design)
    thetas = np.array([f.native.theta_design(blocks) for f in fits])
    sigmas = np.array([f.sigma for f in fits])
    L = np.array([0.0, 1.0])
    one, many = [], []
    for _ in range(3):
        t0 = time.process_time()
        single = [calc.satterthwaite(ys[:, r], thetas[r], sigmas[r], True, L)[2] for r in range(ys.shape[1])]
        one.append((time.process_time() - t0) / ys.shape[1])
        t0 = time.process_time()
        batched = calc.satterthwaite_many(ys, thetas, sigmas, True, L)[2]
        many.append((time.process_time() - t0) / ys.shape[1])
    return min(one), min(many), float(np.max(np.abs(batched / np.array(single) - 1)))


def fmt(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1e3:,.2f}"


def ratio(a: float | None, b: float | None) -> str:
    return "–" if a is None or b is None else f"{a / b:.3g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=20, help="glmmsim replicates per test and round")
    ap.add_argument("--mcpower-sims", type=int, default=200, help="MCPower simulations per test and round")
    ap.add_argument("--simr-reps", type=int, default=10, help="simr simulations per test and round")
    ap.add_argument("--simr-kr-reps", type=int, default=2, help="simr Kenward-Roger simulations per round")
    ap.add_argument("--mcpower-python", default=DEFAULT_MCPOWER_PYTHON)
    args = ap.parse_args()

    d = conditions()
    factor_cond = d.assign(cond=np.where(d["cond"] == 1, "b", "a"))
    ys = responses(d, args.reps * args.rounds + 1)
    python, rscript = peer_status(args.mcpower_python)
    tmp = Path(tempfile.mkdtemp(prefix="bench_peers_"))
    csv = tmp / "data.csv"
    d.assign(y=ys[:, 0]).to_csv(csv, index=False)  # simr simulates from its fit of this response

    times: dict[tuple[str, str], list[float]] = {}
    versions: dict[str, str] = {}
    simr_power: dict[str, list[float]] = {}
    started = time.perf_counter()
    for rnd in range(args.rounds):
        block = ys[:, 1 + rnd * args.reps: 1 + (rnd + 1) * args.reps]
        for label, formula, method, reml, *_ in TESTS:
            data = factor_cond if label == FACTOR_ZEROCORR else d
            for engine in ("lmm", "glmm"):
                value = glmmsim_per_replicate(engine, formula, method, reml, data, block)
                if value is not None:
                    times.setdefault((f"glmmsim {engine}", label), []).append(value)
            value = per_replicate_batched(formula, method, reml, data, block, time.process_time, start=True)
            times.setdefault(("glmmsim lmm started", label), []).append(value)
        if python is not None:
            out = mcpower_round(python, args.mcpower_sims)
            if out is not None:
                versions["MCPower"] = out.pop("version")
                for label, value in out.items():
                    if value is not None:
                        times.setdefault(("MCPower", label), []).append(value)
        if rscript is not None:
            out = simr_round(rscript, csv, args.simr_reps, args.simr_kr_reps)
            if out is not None:
                versions["simr"] = out.pop("version")
                for label, value in out.pop("power").items():
                    simr_power.setdefault(label, []).append(value)
                for label, value in out.items():
                    times.setdefault(("simr", label), []).append(value)
        print(f"round {rnd + 1}/{args.rounds} done after {time.perf_counter() - started:.0f} s", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)

    def med(who: str, label: str) -> float | None:
        values = times.get((who, label))
        return statistics.median(values) if values else None

    mcp = f"MCPower {versions.get('MCPower', '(skipped)')}"
    simr = f"simr {versions.get('simr', '(skipped)')}"
    print(f"\nCPU ms per replicate (fit + test of cond), medians of {args.rounds} interleaved rounds; glmmsim "
          f"{args.reps} replicates a round, MCPower {args.mcpower_sims}, simr {args.simr_reps} "
          f"(Kenward-Roger {args.simr_kr_reps}); ratios glmmsim / peer")
    print("(lmm started: the round's replicates fitted together from the generating values, as glmmsim.power "
          "fits a batch; lmm: one replicate at a time)")
    print(f"| test | glmmsim lmm started | glmmsim lmm | glmmsim glmm | {mcp} | {simr} | started / MCPower "
          "| lmm / MCPower | glmm / MCPower | simr / started | lmm / simr |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, *_ in TESTS:
        st, lmm, glmm, m, s = (med(w, label) for w in ("glmmsim lmm started", "glmmsim lmm", "glmmsim glmm",
                                                        "MCPower", "simr"))
        print(f"| {label} | {fmt(st)} | {fmt(lmm)} | {fmt(glmm)} | {fmt(m)} | {fmt(s)} | {ratio(st, m)} "
              f"| {ratio(lmm, m)} | {ratio(glmm, m)} | {ratio(s, st)} | {ratio(lmm, s)} |")
    if simr_power:
        print("simr power (for reference, few simulations): "
              + ", ".join(f"{k} {statistics.mean(v):.2f}" for k, v in simr_power.items()))

    one, many, diff = batched_df(d, ys[:, : max(args.reps, 24)])
    print(f"\nSatterthwaite df of cond on lmm's fits ({max(args.reps, 24)} replicates): one call per replicate "
          f"{one * 1e3:.3f} ms, satterthwaite_many {many * 1e3:.3f} ms per replicate ({one / many:.1f}x); "
          f"largest relative difference {diff:.1e}")


if __name__ == "__main__":
    main()
