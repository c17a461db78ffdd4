"""Power analysis speed: glmmsim's replicate cost against the fit alone, serial against a process pool,
and the comparison table of issue 10 (MCPower measured in the same run when it is installed).

Scenario (issue 10): ``y ~ cond + (1 + cond | subject) + (1 | item)``, 30 subjects x 20 items x 2
conditions (1,200 rows), Satterthwaite t test of ``cond``, the ``glmm`` engine (``bench_lmm.py`` times ``lmm``,
the default for gaussian models).

    python benchmarks/bench_power.py            # ~3 min on a shared 2-core VM
    python benchmarks/bench_power.py --quick    # fewer replicates

Every number is a median over alternating repeats in one process, and every comparison is a ratio
of two things measured in the same run. Per-replicate costs are CPU time of this process
(``time.process_time``): the machine is shared, and wall-clock time there measures the other
users' load as much as this code. The pool comparison is wall-clock (that is what a pool buys) and
prints the load average beside it.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time

import pandas as pd

from mcpower_scenario import find_power  # the peer's scenario, beside this script

import glmmsim
from glmmsim.analysis import power, power_curve
from glmmsim.design import crossed
from glmmsim.randomness import SeedTree

FORMULA = "y ~ cond + (1 + cond | subject) + (1 | item)"
ENGINE = "glmm"  # the engine this script documents; bench_lmm.py measures lmm


def scenario_model() -> glmmsim.Model:
    return glmmsim.Model(
        FORMULA,
        fixed={"Intercept": 600.0, "condb": 20.0},
        random={"subject": {"sd": {"Intercept": 60.0, "condb": 30.0}, "corr": {("Intercept", "condb"): 0.2}},
                "item": 30.0},
        sigma=120.0,
        seed=1,
    )


def design(subjects: int = 30) -> pd.DataFrame:
    return crossed(subjects=subjects, items=20, within={"cond": ["a", "b"]})


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def per_replicate(nsim: int, repeats: int) -> dict[str, float]:
    """Seconds per replicate: power() end to end, the prepared fit alone, simulation alone, the test alone."""
    model, data = scenario_model(), design()
    bound = model.bind(data, key=["subject", "item", "cond"])
    tree = SeedTree(1)
    seeds = [tree.replicate(r) for r in range(nsim)]
    ys = [bound.simulate_response(s.noise, population=s.population) for s in seeds]
    fitter = glmmsim.fit.prepare(FORMULA, data, engine=ENGINE)
    fits = [fitter.fit(y) for y in ys[:5]]  # warm-up

    out = {"power": [], "fit": [], "simulate": [], "test": []}
    clock = time.process_time
    for _ in range(repeats):  # alternate, so that machine load hits every measurement alike
        t0 = clock()
        power(model, data, test="cond", engine=ENGINE, nsim=nsim, seed=1, progress=False)
        out["power"].append((clock() - t0) / nsim)
        t0 = clock()
        fits = [fitter.fit(y) for y in ys]
        out["fit"].append((clock() - t0) / nsim)
        t0 = clock()
        for s in seeds:
            bound.simulate_response(s.noise, population=s.population)
        out["simulate"].append((clock() - t0) / nsim)
        t0 = clock()
        for f in fits:
            f.test("cond[T.b]", method="satterthwaite")
        out["test"].append((clock() - t0) / nsim)
    return {k: statistics.median(v) for k, v in out.items()}


def serial_vs_pool(nsim: int) -> dict[str, float]:
    model, data = scenario_model(), design()
    power(model, data, test="cond", engine=ENGINE, nsim=20, progress=False)  # warm-up (imports, first fits)
    load = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    serial = power(model, data, test="cond", engine=ENGINE, nsim=nsim, seed=3, progress=False)
    t_serial, c_serial = time.perf_counter() - t0, time.process_time() - c0
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0, c0 = time.perf_counter(), time.process_time()
    pooled = power(model, data, test="cond", engine=ENGINE, nsim=nsim, seed=3, progress=False, executor=2)
    t_pool, c_parent = time.perf_counter() - t0, time.process_time() - c0
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # the pool's workers, reaped at its shutdown
    c_workers = (children1.ru_utime - children0.ru_utime) + (children1.ru_stime - children0.ru_stime)
    identical = serial.simulations.equals(pooled.simulations)
    return {"serial": t_serial, "pool": t_pool, "speedup": t_serial / t_pool, "identical": identical,
            "power": serial.power, "cpu_serial": c_serial / nsim, "cpu_pool": (c_parent + c_workers) / nsim,
            "load": (load + os.getloadavg()[0]) / 2}


def curve_time(nsim: int) -> tuple[float, pd.DataFrame]:
    model = scenario_model()
    t0 = time.process_time()
    curve = power_curve(model, design, along={"subjects": [10, 20, 30, 40]}, test="cond", engine=ENGINE, nsim=nsim, seed=1,
                        progress=False)
    return time.process_time() - t0, curve.table


def mcpower_times(nsim: int) -> dict[str, float] | None:
    """MCPower's LME on the closest scenario its API states (standardized effects, ICCs)."""
    try:
        import mcpower
    except ImportError:
        return None

    def run(n_rows: int, sims: int):
        return find_power(mcpower, sims, rows=n_rows)

    run(1200, 20)  # warm-up
    # CPU time of this process: MCPower's Rust kernel runs in this process (threads included)
    t0 = time.process_time()
    out = run(1200, nsim)
    per_sim = (time.process_time() - t0) / nsim
    t0 = time.process_time()
    for subjects in (10, 20, 30, 40):
        run(subjects * 40, nsim)
    return {"per_sim": per_sim, "curve": time.process_time() - t0, "power": out["power_uncorrected"][0][0],
            "version": mcpower.version if isinstance(getattr(mcpower, "version", None), str) else "1.4"}


# issue 10's measurements on this machine type (50 simulations; 4-point curve x 200 simulations)
ISSUE = [
    ("simr, Satterthwaite t (lmerTest) (issue)", "143 ms", "84 s"),
    ("simr, z tests (issue)", "79 ms", ""),
    ("simr, Kenward-Roger (issue)", "7-10 s", ""),
    ("faux + lmerTest loop (issue)", "200-560 ms", ""),
    ("statsmodels mixedlm loop (issue)", "32 ms", "37 s"),
    ("mixedpower (issue)", "", "45 s"),
    ("MCPower (issue)", "1 ms (0.43 ms on 2 threads)", "0.6 s"),
    ("glmmsim prototype (issue)", "6.5 ms", "4.1 s"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    nsim, repeats, pool_n, curve_n = (100, 3, 400, 100) if args.quick else (200, 3, 1000, 200)

    rep = per_replicate(nsim, repeats)
    print(f"## Per replicate ({nsim} replicates x {repeats} alternating repeats, serial)\n")
    print("| part | ms per replicate |\n|---|---:|")
    for k, label in [("simulate", "simulate (bound model, new population + noise)"),
                     ("fit", "fit alone (prepared glmm fitter)"), ("test", "Satterthwaite test of cond"),
                     ("power", "power() end to end")]:
        print(f"| {label} | {rep[k] * 1e3:.2f} |")
    print(f"\npower() per replicate / fit alone: **{rep['power'] / rep['fit']:.2f}x** (target <= 2)\n")

    pool = serial_vs_pool(pool_n)
    print(f"## Serial vs process pool ({pool_n} replicates, batched)\n")
    print(f"wall clock: serial {pool['serial']:.1f} s, 2 processes {pool['pool']:.1f} s: speed-up "
          f"**{pool['speedup']:.2f}x** (load average {pool['load']:.1f} on {os.cpu_count()} cores)")
    print(f"CPU per replicate: serial {pool['cpu_serial'] * 1e3:.2f} ms, pool (parent + workers) "
          f"{pool['cpu_pool'] * 1e3:.2f} ms: the pool's own cost is {pool['cpu_pool'] / pool['cpu_serial']:.2f}x")
    print(f"identical per-replicate results: {pool['identical']}; power {pool['power']:.3f}\n")

    t_curve, table = curve_time(curve_n)
    print(f"## 4-point power curve (10, 20, 30, 40 subjects) x {curve_n} simulations: {t_curve:.1f} s CPU, serial\n")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))

    mcp = mcpower_times(nsim)
    print("\n## Comparison (time per simulation of the scenario; 4-point curve x 200)\n")
    print("Rows marked 'issue' are issue 10's measurements (wall clock, 50 simulations), not re-run here.\n")
    print("| tool | per simulation | 4-point curve x 200 |\n|---|---:|---:|")
    for tool, per, curve in ISSUE:
        print(f"| {tool} | {per} | {curve} |")
    if mcp is not None:
        print(f"| MCPower {mcp['version']}, this run (CPU; its closest scenario: standardized effects, ICCs) | {mcp['per_sim'] * 1e3:.2f} ms | "
              f"{mcp['curve'] * curve_n / nsim:.1f} s |")
    print(f"| **glmmsim + glmm, this run (CPU)** | **{rep['power'] * 1e3:.2f} ms** | **{t_curve * 200 / curve_n:.1f} s** |")
    print(f"\nsimr Satterthwaite (issue's 143 ms) / glmmsim: {143 / (rep['power'] * 1e3):.0f}x")
    if mcp is not None:
        print(f"glmmsim / MCPower (same run): {rep['power'] / mcp['per_sim']:.2f}x")


if __name__ == "__main__":
    main()
