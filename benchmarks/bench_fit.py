"""Benchmark the fitting layer, side by side in one run (ratios against references timed in the same run).

Design: the README's reaction-time study, 30 subjects x 20 items x 2 conditions
(1,200 rows), ``rt ~ cond + (1 + cond | subject) + (1 | item)``; a binomial
``acc ~ cond + (1 | subject) + (1 | item)`` on the same rows.

1. Wrapper overhead: ``fitter.fit(y)`` (glmmsim, prepared once) against calling
   ``glmm.fit`` directly, (a) on the same prepared numeric columns (the tightest
   reference: the same kernel work, no glmmsim) and (b) on the DataFrame with the
   user's formula, as a glmm user would write it. Target: ratio to (a) <= 1.10.
2. Per-fit time of the glmm engine against the lme4 engine (one long-lived R
   process, design uploaded once, response sent per fit; lmerTest's Satterthwaite
   df included), gaussian and binomial.
3. A simulate-and-fit replicate (``BoundModel.simulate_response`` when the bound
   model is available, else ``Model.simulate``) against the fit alone. Target <= 2x.

Contenders alternate within each round (the order flips every round); medians over rounds.
Sections 1 and 3 are timed in CPU time of this process (robust on a shared machine), section 2
in wall time (the R process's work is not this process's CPU time).

Usage::

    PYTHONPATH=src python benchmarks/bench_fit.py
    PYTHONPATH=src python benchmarks/bench_fit.py --rounds 7 --fits 200 --lme4-fits 10
    PYTHONPATH=src python benchmarks/bench_fit.py --no-r
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
import glmm  # noqa: E402

import glmmsim  # noqa: E402

FORMULA = "rt ~ cond + (1 + cond | subject) + (1 | item)"
BINOMIAL = "acc ~ cond + (1 | subject) + (1 | item)"


def conditions(subjects: int = 30, items: int = 20) -> pd.DataFrame:
    s, i, c = np.meshgrid(np.arange(subjects), np.arange(items), [0, 1], indexing="ij")
    return pd.DataFrame({"subject": [f"s{v:02d}" for v in s.ravel()], "item": [f"i{v:02d}" for v in i.ravel()],
                         "cond": np.where(c.ravel() == 1, "b", "a")})


def models() -> tuple[glmmsim.Model, glmmsim.Model]:
    rt = glmmsim.Model(
        FORMULA,
        fixed={"Intercept": 600.0, "cond[T.b]": 20.0},
        random={"subject": {"sd": {"Intercept": 50.0, "cond[T.b]": 20.0}, "corr": {("Intercept", "cond[T.b]"): 0.3}},
                "item": 30.0},
        sigma=80.0,
        seed=1,
    )
    acc = glmmsim.Model(BINOMIAL, fixed={"Intercept": 1.0, "cond[T.b]": -0.4}, random={"subject": 0.5, "item": 0.4},
                        family="binomial", seed=2)
    return rt, acc


def per_call(fn: Callable[[], object], n: int, clock: Callable[[], float]) -> float:
    gc.collect()
    start = clock()
    for _ in range(n):
        fn()
    return (clock() - start) / n


def race(
    contenders: dict[str, tuple[Callable[[], object], int]], rounds: int, clock: Callable[[], float] = time.process_time
) -> dict[str, float]:
    """Median seconds per call of each contender; order flips each round, one warm-up each.

    In-process contenders are timed in CPU time of this process (the machine is shared: wall time
    would charge other users' work to whoever ran at that moment); the lme4 engine works in
    another process, so engines are compared in wall time.
    """
    for fn, _ in contenders.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            fn, n = contenders[name]
            times[name].append(per_call(fn, n, clock))
    return {name: statistics.median(ts) for name, ts in times.items()}


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--fits", type=int, default=50, help="glmm fits per round")
    parser.add_argument("--lme4-fits", type=int, default=5, help="lme4 fits per round")
    parser.add_argument("--no-r", action="store_true", help="skip the lme4 engine")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # glmm's diagnostics (singular fits of some replicates) are data here

    cond = conditions()
    rt_model, acc_model = models()
    data = rt_model.simulate(cond, seed=3)
    y = data["rt"].to_numpy()
    fitter = glmmsim.fit.prepare(FORMULA, cond)
    prepared = fitter._prepare()
    columns = dict(prepared._columns, Y=y)
    glmm_formula = prepared._formula

    def direct_tight():
        res = glmm.fit(columns, glmm_formula, "gaussian", reml=True)
        return res.beta, res.se

    def direct_user():
        res = glmm.fit(data, FORMULA, "gaussian")
        return res.beta, res.se

    from importlib.metadata import version

    print(f"glmmsim {glmmsim.__version__}, glmm {version('glmm')}, numpy {np.__version__}, pandas {pd.__version__}")
    print(f"design: 30 subjects x 20 items x 2 conditions = {len(cond)} rows; {FORMULA}")
    print(f"rounds: {args.rounds} (median), glmm fits per round: {args.fits}, lme4 fits per round: {args.lme4_fits}\n")

    t = race(
        {
            "glmm.fit, prepared columns": (direct_tight, args.fits),
            "glmm.fit, DataFrame + formula": (direct_user, args.fits),
            "glmmsim fitter.fit(y)": (lambda: fitter.fit(y), args.fits),
            "glmmsim fitter.fit(y).fixed": (lambda: fitter.fit(y).fixed, args.fits),
        },
        args.rounds,
    )
    ref = t["glmm.fit, prepared columns"]
    print("1. wrapper overhead (gaussian LMM, REML, Satterthwaite df; CPU time per fit)")
    for name, sec in t.items():
        print(f"   {name:34s} {ms(sec)}   ratio {sec / ref:5.2f}")
    print(f"   -> overhead of fitter.fit(y) over glmm directly: {t['glmmsim fitter.fit(y)'] / ref:.3f} (target <= 1.10)")
    # the same overhead without the noise of two races: glmmsim's own steps timed alone
    native = glmm.fit(columns, glmm_formula, "gaussian", reml=True)
    own = race(
        {"own": (lambda: glmmsim.fit.FitResult(fitter.design, prepared._raw(native, True),
                                               fitter.design.check_response(y), fitter), 20 * args.fits)},
        args.rounds,
    )["own"]
    print(f"   -> glmmsim's own work per fit (checks, unpacking, result): {own * 1e6:.0f} us = "
          f"{own / ref:.1%} of the glmm fit\n")

    acc = acc_model.simulate(cond, seed=4)["acc"].to_numpy()
    bin_fitter = glmmsim.fit.prepare(BINOMIAL, cond, family="binomial")
    contenders = {
        "glmm engine, gaussian": (lambda: fitter.fit(y), args.fits),
        "glmm engine, binomial": (lambda: bin_fitter.fit(acc), max(args.fits // 4, 1)),
    }
    if not args.no_r and shutil.which("Rscript"):
        try:
            lme4_fitter = glmmsim.fit.prepare(FORMULA, cond, engine="lme4")
            lme4_bin = glmmsim.fit.prepare(BINOMIAL, cond, family="binomial", engine="lme4")
            contenders["lme4 engine, gaussian"] = (lambda: lme4_fitter.fit(y), args.lme4_fits)
            contenders["lme4 engine, binomial"] = (lambda: lme4_bin.fit(acc), args.lme4_fits)
        except glmmsim.fit.EngineError as exc:
            print(f"   (lme4 engine unavailable: {exc})")
    t = race(contenders, args.rounds, time.perf_counter)
    print("2. per-fit wall time by engine (one R process for lme4, started before timing)")
    for name, sec in t.items():
        print(f"   {name:34s} {ms(sec)}")
    for fam in ("gaussian", "binomial"):
        if f"lme4 engine, {fam}" in t:
            print(f"   -> lme4 / glmm, {fam}: {t[f'lme4 engine, {fam}'] / t[f'glmm engine, {fam}']:.1f}x")
    print()

    if hasattr(rt_model, "bind"):
        bound = rt_model.bind(cond)
        simulate, how = (lambda seed: bound.simulate_response(seed)), "BoundModel.simulate_response"
    else:
        simulate, how = (lambda seed: rt_model.simulate(cond, seed=seed)["rt"].to_numpy()), "Model.simulate"
    seeds = iter(range(10**9))
    t = race(
        {
            "fit alone": (lambda: fitter.fit(y), args.fits),
            f"simulate ({how}) + fit": (lambda: fitter.fit(simulate(next(seeds))), args.fits),
            "simulate alone": (lambda: simulate(next(seeds)), args.fits),
        },
        args.rounds,
    )
    print("3. simulate-and-fit replicate vs fit alone (CPU time)")
    for name, sec in t.items():
        print(f"   {name:45s} {ms(sec)}")
    both = t[f"simulate ({how}) + fit"]
    print(f"   -> replicate / fit alone: {both / t['fit alone']:.2f} (target <= 2)")


if __name__ == "__main__":
    main()
