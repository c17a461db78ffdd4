"""Benchmark glmmsim against lme4's ``simulate()`` for the same model and data.

Model ``y ~ 1 + x1 + x2 + (1 + x1 | subject) + (1 | item)`` (N/100 subjects,
200 items, same parameters as ``bench_simulate.py``). For each size the data
is written to CSV, loaded by ``Rscript``, and lme4's formula-based simulate
(``simulate(~ ..., newdata = d, newparams = list(beta, theta, sigma))``) is
timed *inside R* with ``system.time`` around the simulate call only, so R's
start-up and CSV parsing are excluded. glmmsim is timed end to end
(``Model.simulate``: DataFrame in, DataFrame out) on the same frame. Both report
the median over ``--repeats`` runs.

Skips (exit status 0, with a message) when ``Rscript`` or lme4 is missing.

Usage::

    PYTHONPATH=src python benchmarks/bench_lme4.py                      # 1e4 1e5 1e6
    PYTHONPATH=src python benchmarks/bench_lme4.py --sizes 1e4 1e5 --family poisson
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_simulate import FORMULA, PARAMS, _size, make_conditions, make_model  # noqa: E402

R_SCRIPT = r"""
suppressMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], colClasses = c("character", "character", "numeric", "numeric"))
d$subject <- factor(d$subject); d$item <- factor(d$item)
repeats <- as.integer(args[2])
fam <- get(args[3])()
params <- list(beta = c(`(Intercept)` = {b0}, x1 = {b1}, x2 = {b2}),
               theta = c(`subject.(Intercept)` = {t1}, `subject.x1.(Intercept)` = {t2},
                         `subject.x1` = {t3}, `item.(Intercept)` = {t4}))
if ({has_sigma}) params$sigma <- {sigma}
f <- ~ 1 + x1 + x2 + (1 + x1 | subject) + (1 | item)
times <- numeric(repeats)
for (i in seq_len(repeats)) {
  times[i] <- system.time(y <- suppressMessages(simulate(f, newdata = d, newparams = params,
                                                         family = fam, seed = i)))[["elapsed"]]
}
cat("TIMES", times, "\n")
cat("MEAN", mean(y[[1]]), "\n")
"""


def lme4_theta(family: str) -> list[float]:
    """theta in lme4's scaling: Cholesky factor of Sigma (relative to sigma for gaussian)."""
    p = PARAMS[family]
    (s0, s1), r = p["sd_subject"], p["corr_subject"]
    scale = p["sigma"] if family == "gaussian" else 1.0
    return [s0 / scale, r * s1 / scale, s1 * np.sqrt(1 - r * r) / scale, p["sd_item"] / scale]


def r_script(family: str) -> str:
    p = PARAMS[family]
    t1, t2, t3, t4 = lme4_theta(family)
    fixed = p["fixed"]
    values = dict(b0=fixed["Intercept"], b1=fixed["x1"], b2=fixed["x2"], t1=t1, t2=t2, t3=t3, t4=t4,
                  has_sigma="TRUE" if family == "gaussian" else "FALSE", sigma=p["sigma"] or 0)
    text = R_SCRIPT
    for key, value in values.items():
        text = text.replace("{" + key + "}", value if isinstance(value, str) else repr(float(value)))
    return text


def lme4_available() -> str | None:
    """None when Rscript with lme4 works, else the reason it does not."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        return "Rscript not found on PATH"
    probe = subprocess.run([rscript, "-e", "suppressMessages(library(lme4))"], capture_output=True, text=True)
    if probe.returncode != 0:
        return "R package lme4 is not installed (install.packages('lme4') or apt-get install r-cran-lme4)"
    return None


def time_lme4(csv: Path, script: Path, repeats: int, family: str) -> float:
    proc = subprocess.run(["Rscript", str(script), str(csv), str(repeats), family],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"Rscript failed:\n{proc.stderr}")
    times = next(line for line in proc.stdout.splitlines() if line.startswith("TIMES")).split()[1:]
    return statistics.median(float(t) for t in times)


def time_glmmsim(conditions, family: str, repeats: int) -> float:
    model = make_model(family)
    model.simulate(conditions, seed=0)  # warm-up
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        model.simulate(conditions, seed=i + 1)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=_size, default=[10**4, 10**5, 10**6],
                        help="row counts (default: 1e4 1e5 1e6)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per size and tool (default: 3)")
    parser.add_argument("--family", choices=sorted(PARAMS), default="gaussian")
    args = parser.parse_args(argv)

    reason = lme4_available()
    if reason is not None:
        print(f"skipping the lme4 comparison: {reason}")
        return 0
    version = subprocess.run(["Rscript", "-e", "cat(R.version.string, '| lme4', format(packageVersion('lme4')))"],
                             capture_output=True, text=True).stdout.strip()
    print(f"{version}; model {FORMULA}, family {args.family}")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "sim.R"
        script.write_text(r_script(args.family))
        for n_rows in args.sizes:
            conditions = make_conditions(n_rows)
            csv = Path(tmp) / f"conditions_{n_rows}.csv"
            conditions.to_csv(csv, index=False)
            r_time = time_lme4(csv, script, args.repeats, args.family)
            py_time = time_glmmsim(conditions, args.family, args.repeats)
            rows.append((n_rows, r_time, py_time))
            print(f"  n={n_rows:>9,d}: lme4 {r_time:8.3f} s  glmmsim {py_time:8.3f} s  "
                  f"lme4/glmmsim {r_time / py_time:6.1f}", flush=True)

    print()
    print("| rows | lme4 simulate (s) | glmmsim (s) | lme4 / glmmsim |")
    print("|-----:|------------------:|------------:|---------------:|")
    for n_rows, r_time, py_time in rows:
        print(f"| {n_rows:.0e} | {r_time:.3f} | {py_time:.3f} | {r_time / py_time:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
