"""Benchmark exact Satterthwaite and Kenward-Roger df (``DdfCalculator``) against lmerTest and pbkrtest.

Model: the standard crossed design of issue 19, ``rt ~ cond + (1 + cond | subject) + (1 | item)``,
30 subjects x 20 items x 2 conditions (1,200 rows). ``--replicates`` datasets are simulated
with glmmsim and fitted by lme4 (REML) in one R process, which then times, per fit and
inside R (``proc.time`` around the call only, the fit excluded):

* lmerTest: ``as_lmerModLmerTest(fit)`` (its numerical Hessian and Jacobian) plus
  ``contest1D(model, L)`` for ``L = condb``: what a Satterthwaite t-test costs;
* pbkrtest: ``KRmodcomp(fit, L)`` (``vcovAdj`` and the adjustment): a Kenward-Roger test.

glmmsim builds one ``DdfCalculator`` for the design (its time is printed separately) and
times, per replicate, ``satterthwaite`` and ``kenward_roger`` at lme4's estimates (the first
call on a new response; a second contrast on the same replicate reuses the factorisation,
printed as "same replicate"). Medians over replicates (each timed ``--rounds`` times, the
minimum kept). Both answers are checked to agree (df 1e-3 / 1e-6 relative).

OpenBLAS uses one thread here (``OPENBLAS_NUM_THREADS=1`` unless set): the matrices are
80 x 80, where BLAS threads only add contention (on a loaded 2-core machine 10x slower).

Usage::

    PYTHONPATH=src python benchmarks/bench_lmm_ddf.py                 # 10 replicates
    PYTHONPATH=src python benchmarks/bench_lmm_ddf.py --replicates 5 --no-r
    PYTHONPATH=src python benchmarks/bench_lmm_ddf.py --no-scaling

Then all replicates in one call each of ``satterthwaite_many``, ``satterthwaite_dfs_many`` and
``kenward_roger_many`` (stacked arrays), per replicate, against one call per replicate.

Then, without R, the same calls on the same 600 cells with 1, 10 and 84 trials per cell
(1,200 to 100,800 rows): the cost per call should stay flat (only ``Z'y`` and ``X'y`` grow).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
import glmmsim  # noqa: E402
from glmmsim.fit.engines.lmm_ddf import DdfCalculator  # noqa: E402

FORMULA = "rt ~ cond + (1 + cond | subject) + (1 | item)"

R_SCRIPT = r"""
suppressPackageStartupMessages({library(jsonlite); library(lme4); library(lmerTest); library(pbkrtest)})
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], stringsAsFactors = TRUE)
reps <- as.integer(args[2]); do_time <- args[4] == "1"
res <- vector("list", reps)
for (r in seq_len(reps)) {
  d$rt <- d[[paste0("y", r)]]
  fit <- lme4::lmer(rt ~ cond + (1 + cond | subject) + (1 | item), data = d, REML = TRUE)
  L <- matrix(c(0, 1), nrow = 1)
  t_sat <- t_kr <- NA
  if (do_time) {
    t0 <- proc.time()[["elapsed"]]
    m <- lmerTest::as_lmerModLmerTest(fit)
    sat <- lmerTest::contest1D(m, c(0, 1))
    t_sat <- proc.time()[["elapsed"]] - t0
    t0 <- proc.time()[["elapsed"]]
    kr <- pbkrtest::KRmodcomp(fit, L)
    t_kr <- proc.time()[["elapsed"]] - t0
  } else {
    sat <- lmerTest::contest1D(lmerTest::as_lmerModLmerTest(fit), c(0, 1))
    kr <- pbkrtest::KRmodcomp(fit, L)
  }
  res[[r]] <- list(theta = unname(getME(fit, "theta")), sigma = sigma(fit), beta = unname(fixef(fit)),
                   sat_df = sat$df, sat_t = sat[["t value"]], kr_ddf = kr$test["Ftest", "ddf"],
                   kr_F = kr$test["Ftest", "stat"], t_sat = t_sat, t_kr = t_kr)
}
writeLines(toJSON(res, auto_unbox = TRUE, digits = NA), args[3])
"""


def conditions() -> pd.DataFrame:
    s, i, c = np.meshgrid(np.arange(30), np.arange(20), [0, 1], indexing="ij")
    return pd.DataFrame({
        "subject": [f"s{v:03d}" for v in s.ravel()],
        "item": [f"i{v:03d}" for v in i.ravel()],
        "cond": np.where(c.ravel() == 1, "b", "a"),
    })


def design(data: pd.DataFrame) -> tuple[np.ndarray, list]:
    """X and lme4's blocks (subject: 30 levels, intercept + condb; item: 20 levels) from the data."""
    n = len(data)
    condb = (data["cond"] == "b").to_numpy(dtype=float)
    X = np.column_stack([np.ones(n), condb])
    subject = pd.factorize(data["subject"], sort=True)[0]
    item = pd.factorize(data["item"], sort=True)[0]
    return X, [(np.column_stack([np.ones(n), condb]), subject, 30), (np.ones((n, 1)), item, 20)]


def simulate(replicates: int, seed: int = 11) -> tuple[pd.DataFrame, np.ndarray]:
    model = glmmsim.Model(
        FORMULA,
        fixed={"Intercept": 600.0, "cond[T.b]": 20.0},
        random={"subject": {"sd": {"Intercept": 50.0, "cond[T.b]": 20.0}, "corr": {("Intercept", "cond[T.b]"): 0.3}},
                "item": 30.0},
        sigma=80.0,
        seed=seed,
    )
    data = conditions()
    ys = np.column_stack([model.simulate(data, seed=seed + r)["rt"].to_numpy() for r in range(replicates)])
    return data, ys


def best_of(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def rows_scaling(rounds: int, trials: tuple[int, ...] = (1, 10, 84)) -> None:
    """Cost per call as the design grows in rows only (trials per subject x item x cond cell)."""
    theta = np.array([50 / 80, 0.3 * 20 / 80, np.sqrt(1 - 0.09) * 20 / 80, 30 / 80])
    L = np.array([[0.0, 1.0]])
    print("cost per call vs rows (same 30 x 20 x 2 cells, more trials per cell; generating parameters)")
    print(f"  {'rows':>9s} {'design (ms)':>12s} {'Satterthwaite (ms)':>19s} {'Kenward-Roger (ms)':>19s}")
    for reps in trials:
        data = pd.concat([conditions()] * reps, ignore_index=True)
        X, blocks = design(data)
        t0 = time.perf_counter()
        calc = DdfCalculator(X, blocks)
        t_init = time.perf_counter() - t0
        y = np.random.default_rng(reps).normal(600, 100, size=len(data))

        def sat():
            calc._last = None
            calc.satterthwaite(y, theta, 80.0, True, L)

        def kr():
            calc._last = None
            calc.kenward_roger(y, [600.0, 20.0], theta, 80.0, True, L)

        print(f"  {len(data):9,d} {1e3 * t_init:12.1f} {1e3 * best_of(sat, rounds):19.3f} "
              f"{1e3 * best_of(kr, rounds):19.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicates", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5, help="timings per replicate (minimum kept)")
    parser.add_argument("--no-scaling", action="store_true", help="skip the 1,200 -> 100,800 rows scaling")
    parser.add_argument("--no-r", action="store_true",
                        help="skip R: time at the generating parameters and compare nothing")
    args = parser.parse_args()

    data, ys = simulate(args.replicates)
    X, blocks = design(data)
    t0 = time.perf_counter()
    calc = DdfCalculator(X, blocks)
    t_init = time.perf_counter() - t0
    L = np.array([[0.0, 1.0]])

    rscript = shutil.which("Rscript")
    if args.no_r or rscript is None:
        print("R not used: timing at the generating parameters, no comparison")
        theta = np.array([50 / 80, 0.3 * 20 / 80, np.sqrt(1 - 0.09) * 20 / 80, 30 / 80])
        fits = [{"theta": theta, "sigma": 80.0, "beta": [600.0, 20.0]} for _ in range(args.replicates)]
    else:
        with tempfile.TemporaryDirectory() as tmp:
            frame = data.copy()
            for r in range(args.replicates):
                frame[f"y{r + 1}"] = ys[:, r]
            frame.to_csv(Path(tmp, "d.csv"), index=False)
            Path(tmp, "b.R").write_text(R_SCRIPT)
            subprocess.run([rscript, "--vanilla", str(Path(tmp, "b.R")), str(Path(tmp, "d.csv")),
                            str(args.replicates), str(Path(tmp, "o.json")), "1"], check=True)
            fits = json.loads(Path(tmp, "o.json").read_text())

    sat_ms, sat_same_ms, kr_ms, worst_sat, worst_kr = [], [], [], 0.0, 0.0
    for r, fit in enumerate(fits):
        y, theta, sigma, beta = ys[:, r], np.asarray(fit["theta"]), float(fit["sigma"]), fit["beta"]

        def fresh_sat(y=y, theta=theta, sigma=sigma):
            calc._last = None  # a new replicate: nothing cached
            return calc.satterthwaite(y, theta, sigma, True, L)

        def fresh_kr(y=y, theta=theta, sigma=sigma, beta=beta):
            calc._last = None
            return calc.kenward_roger(y, beta, theta, sigma, True, L)

        sat_ms.append(1e3 * best_of(fresh_sat, args.rounds))
        sat_same_ms.append(1e3 * best_of(lambda: calc.satterthwaite(y, theta, sigma, True, L), args.rounds))
        kr_ms.append(1e3 * best_of(fresh_kr, args.rounds))
        if "sat_df" in fit:
            F, _, ddf = fresh_sat()
            worst_sat = max(worst_sat, abs(ddf / fit["sat_df"] - 1), abs(F / fit["sat_t"] ** 2 - 1))
            F, _, ddf = fresh_kr()
            worst_kr = max(worst_kr, abs(ddf / fit["kr_ddf"] - 1), abs(F / fit["kr_F"] - 1))

    print(f"standard crossed model, 1,200 rows, {args.replicates} replicates (median ms per call)")
    print(f"  DdfCalculator(X, blocks), once per design: {1e3 * t_init:.2f} ms")
    rows = [("Satterthwaite t (new replicate)", statistics.median(sat_ms), "t_sat"),
            ("Satterthwaite t (same replicate, next contrast)", statistics.median(sat_same_ms), None),
            ("Kenward-Roger F (new replicate)", statistics.median(kr_ms), "t_kr")]
    print(f"  {'test':50s} {'glmmsim':>10s} {'R':>10s} {'R / glmmsim':>12s}")
    for label, ours, key in rows:
        if key and "sat_df" in fits[0]:
            theirs = 1e3 * statistics.median(f[key] for f in fits)
            print(f"  {label:50s} {ours:10.3f} {theirs:10.1f} {theirs / ours:12.0f}")
        else:
            print(f"  {label:50s} {ours:10.3f} {'':>10s} {'':>12s}")
    if "sat_df" in fits[0]:
        print("  R: lmerTest as_lmerModLmerTest + contest1D; pbkrtest KRmodcomp (timed inside R)")
        print(f"  largest relative difference: Satterthwaite {worst_sat:.1e}, Kenward-Roger {worst_kr:.1e}")
        assert worst_sat < 1e-3 and worst_kr < 1e-2
    batched(calc, ys, fits, L, args.rounds)
    if not args.no_scaling:
        rows_scaling(args.rounds)


def batched(calc: DdfCalculator, ys: np.ndarray, fits: list, L: np.ndarray, rounds: int) -> None:
    """All replicates in one call (stacked arrays) against one call each, same fits, CPU time, rounds alternating.

    CPU time of this process (not wall): on the shared machine the wall time of both varies 3x with the load.
    """
    K = len(fits)
    Y = ys[:, :K]
    thetas = np.array([f["theta"] for f in fits], dtype=float)
    sigmas = np.array([f["sigma"] for f in fits], dtype=float)
    betas = np.array([f["beta"] for f in fits], dtype=float)

    def each(method):
        def run():
            for k in range(K):
                calc._last = None  # a new replicate: nothing cached
                if method == "kr":
                    calc.kenward_roger(Y[:, k], betas[k], thetas[k], sigmas[k], True, L)
                elif method == "dfs":
                    calc.satterthwaite_dfs(Y[:, k], thetas[k], sigmas[k], True)
                else:
                    calc.satterthwaite(Y[:, k], thetas[k], sigmas[k], True, L)
        return run

    contenders = {
        ("Satterthwaite t", "one"): each("sat"),
        ("Satterthwaite t", "many"): lambda: calc.satterthwaite_many(Y, thetas, sigmas, True, L),
        ("every coefficient's df", "one"): each("dfs"),
        ("every coefficient's df", "many"): lambda: calc.satterthwaite_dfs_many(Y, thetas, sigmas, True),
        ("Kenward-Roger F", "one"): each("kr"),
        ("Kenward-Roger F", "many"): lambda: calc.kenward_roger_many(Y, betas, thetas, sigmas, L),
    }
    best = dict.fromkeys(contenders, np.inf)
    for _ in range(rounds):
        for key, fn in contenders.items():
            t0 = time.process_time()
            fn()
            best[key] = min(best[key], (time.process_time() - t0) / K)
    many = calc.satterthwaite_many(Y, thetas, sigmas, True, L)[2], calc.kenward_roger_many(Y, betas, thetas, sigmas, L)[2]
    one = (np.array([calc.satterthwaite(Y[:, k], thetas[k], sigmas[k], True, L)[2] for k in range(K)]),
           np.array([calc.kenward_roger(Y[:, k], betas[k], thetas[k], sigmas[k], True, L)[2] for k in range(K)]))
    worst = max(float(np.max(np.abs(a / b - 1))) for a, b in zip(many, one))
    print(f"{K} replicates: one call each vs all in one call (satterthwaite_many, satterthwaite_dfs_many, "
          f"kenward_roger_many), CPU ms per replicate, best of {rounds}")
    print(f"  {'test':30s} {'one call each':>14s} {'batched':>10s} {'ratio':>8s}")
    for label in ("Satterthwaite t", "every coefficient's df", "Kenward-Roger F"):
        one_ms, many_ms = 1e3 * best[(label, "one")], 1e3 * best[(label, "many")]
        print(f"  {label:30s} {one_ms:14.3f} {many_ms:10.3f} {one_ms / many_ms:7.1f}x")
    print(f"  largest relative difference batched / one call each: {worst:.1e}")
    assert worst < 1e-10

if __name__ == "__main__":
    main()
