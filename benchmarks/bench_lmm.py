"""Benchmark the lmm engine against the glmm and lme4 engines (and MCPower when installed), in one run.

Model (issue 19's standard crossed model): ``y ~ cond + (1 + cond | subject) + (1 | item)``,
30 subjects x 20 items x 2 conditions (1,200 rows), and its zero-correlation form
``(1 + cond || subject)``. A replicate is a fit of a new response plus one test of ``cond``:
z, Satterthwaite t, likelihood ratio (ML fits of the full and the nested model), Kenward-Roger,
and the t test of the ``||`` model. Responses are drawn once from the README's reaction-time
model (sigma 120, subject SDs 60 and 30 with correlation 0.2, item SD 30, effect 20 ms) and
every engine fits the same ones.

Times are medians over rounds in which the contenders alternate: CPU time of this process for
the in-process engines (lmm, glmm, MCPower's Rust kernel; robust on a shared machine), wall time
for lme4 (its work happens in the R process); MCPower, when installed, is timed in every round
too. "lmm batched" fits a round's responses in one
``Fitter.fit_many`` call from lme4's start; "lmm batched, generating start" the same from the
values the responses were drawn from (what ``glmmsim.power`` does, same optimum); "lmm" one by one
with ``Fitter.fit``. Then started z and Satterthwaite t against MCPower's own z and t timed just
before and after them, round by round (a ratio the machine's drift does not move). Then
``glmmsim.power``'s whole cost per replicate (draw, fit, test). Then the
lmm engine's cost per replicate at 1,200 and at 100,000 rows (the same levels, more trials per
cell): a deviance evaluation does not depend on the number of rows, only the response's
cross-products do. Then every coefficient's Satterthwaite df on the same fits, one call per
coefficient, one call per replicate and one call for all (what ``fit_many``'s fits share).
Last, a 5-point power curve of 200 replicates a point through ``glmmsim.power_curve`` (serial),
with the runner's batched fits and with them switched off.

Usage::

    PYTHONPATH=src python benchmarks/bench_lmm.py              # ~3 min on 2 busy cores
    PYTHONPATH=src python benchmarks/bench_lmm.py --reps 20 --rounds 3 --lme4-reps 3 --no-r
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mcpower_scenario import CURVE_SUBJECTS, find_power, power_curve  # the peer's scenario, beside this script

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
import glmmsim  # noqa: E402
import standard_model  # noqa: E402 - beside this script; imports glmmsim
from glmmsim.fit import EngineError  # noqa: E402
from standard_model import responses  # noqa: E402

FULL = "y ~ cond + (1 + cond | subject) + (1 | item)"
ZEROCORR = "y ~ cond + (1 + cond || subject) + (1 | item)"
TESTS = [  # (label, formula, method, reml)
    ("z", FULL, "z", True),
    ("Satterthwaite t", FULL, "satterthwaite", True),
    ("likelihood ratio", FULL, "lrt", False),
    ("Kenward-Roger", FULL, "kr", True),
    ("`(1 + cond || subject)`, t", ZEROCORR, "satterthwaite", True),
]
# issue 19's measurements (ms per replicate) for the peers not run here
ISSUE = {"simr 1.0.8": [94, 300, 284, 5200, 163], "MCPower 1.4.1": [1.0, 2.3, None, None, None]}


def conditions(subjects: int = 30, items: int = 20, repetitions: int = 1) -> pd.DataFrame:
    s, i, c, _ = np.meshgrid(np.arange(subjects), np.arange(items), [0, 1], np.arange(repetitions), indexing="ij")
    return pd.DataFrame({"subject": [f"s{v:02d}" for v in s.ravel()], "item": [f"i{v:02d}" for v in i.ravel()],
                         "cond": np.where(c.ravel() == 1, "b", "a")})


def per_replicate(engine: str, formula: str, method: str, reml: bool, d: pd.DataFrame, ys: np.ndarray,
                  clock) -> float | None:
    """Seconds per replicate (fit + test), or None when the engine refuses the model or the test."""
    try:
        fitter = glmmsim.fit.prepare(formula, d, engine=engine, reml=reml)
        fitter.fit(ys[:, 0]).test("cond", method=method)  # warm-up (R: the design upload)
    except EngineError:
        return None
    t0 = clock()
    for r in range(ys.shape[1]):
        fitter.fit(ys[:, r]).test("cond", method=method)
    return (clock() - t0) / ys.shape[1]


def generating_start(fitter) -> list[np.ndarray]:
    """The covariances ``responses`` draws from relative to sigma^2, per random term of the fitter's design
    (what a power study gives ``fit_many``; the ``||`` model's terms get the SDs without the correlation)."""
    sd = np.array(standard_model.SUBJECT_SD)
    cov = {"(1 + cond | subject)": standard_model.subject_cov(), "(1 | subject)": np.array([[sd[0] ** 2]]),
           "(0 + cond | subject)": np.diag(sd**2), "(1 | item)": np.array([[standard_model.ITEM_SD**2]])}
    if any(len(td.coefs) == 1 for td in fitter.design.terms if str(td.term) == "(0 + cond | subject)"):
        cov["(0 + cond | subject)"] = np.array([[sd[1] ** 2]])  # cond a 0/1 column: its slope alone
    return [cov[str(td.term)] / standard_model.SIGMA**2 for td in fitter.design.terms]


def per_replicate_batched(formula: str, method: str, reml: bool, d: pd.DataFrame, ys: np.ndarray,
                          clock, start: bool = False) -> float:
    """Seconds per replicate when all responses are fitted in one ``fit_many`` call, then tested
    (from lme4's start, or with ``start`` from the generating values, as a power study does).

    The responses are passed read-only, as the study runner passes its own (the engine keeps them
    for the lazy df instead of copying them). The warm-up fits the whole batch once, so that the
    timed call starts where a study's later tasks do (the engine's scratch arrays sized for it).
    """
    fitter = glmmsim.fit.prepare(formula, d, engine="lmm", reml=reml)
    given = generating_start(fitter) if start else None
    frozen = np.array(ys)
    frozen.flags.writeable = False
    for res in fitter.fit_many(frozen, start=given):  # warm-up
        res.test("cond", method=method)
    t0 = clock()
    for res in fitter.fit_many(frozen, start=given):
        res.test("cond", method=method)
    return (clock() - t0) / ys.shape[1]


def power_per_replicate(method: str, nsim: int) -> float:
    """CPU seconds per replicate of ``glmmsim.power`` (draw, fit, test), serial, on the standard model."""
    from glmmsim.design import crossed

    model = standard_model.model()
    d = crossed(subjects=30, items=20, within={"cond": ["a", "b"]})
    glmmsim.power(model, d, test="cond", method=method, nsim=10, seed=2, progress=False)  # warm-up
    t0 = time.process_time()
    glmmsim.power(model, d, test="cond", method=method, nsim=nsim, seed=1, progress=False)
    return (time.process_time() - t0) / nsim


def df_per_replicate(ys: np.ndarray, rounds: int = 5) -> dict[str, float]:
    """CPU ms per replicate of every coefficient's Satterthwaite df on the same fits, three ways.

    "per coefficient": one ``satterthwaite`` call a coefficient (the engine's former per-fit df);
    "one call": ``satterthwaite_dfs`` (a fit of ``fit``); "batched": ``satterthwaite_dfs_many``
    over all replicates (the fits of one ``fit_many`` call). Best of ``rounds`` interleaved rounds.
    """
    from glmmsim.fit.engines.lmm_engine import LmmEngine

    prep = LmmEngine().prepare(glmmsim.fit.build_design(TESTS[0][1], conditions()))
    fits = prep.fit_many(ys, reml=True)
    calc = prep._ddf_calculator()
    thetas = np.array([f.native.theta_design(prep._blocks) for f in fits])
    sigmas = np.array([f.sigma for f in fits])
    rows = np.eye(fits[0].beta.size)
    k = ys.shape[1]
    ways = {
        "per coefficient": lambda: [[calc.satterthwaite(ys[:, j], thetas[j], sigmas[j], True, r[None, :])[2]
                                     for r in rows] for j in range(k)],
        "one call": lambda: [calc.satterthwaite_dfs(ys[:, j], thetas[j], sigmas[j], True) for j in range(k)],
        "batched": lambda: calc.satterthwaite_dfs_many(ys, thetas, sigmas, True),
    }
    best = dict.fromkeys(ways, float("inf"))
    for _ in range(rounds):
        for name, way in ways.items():
            t0 = time.process_time()
            way()
            best[name] = min(best[name], (time.process_time() - t0) * 1e3 / k)
    return best


def curve_seconds(nsim: int, batched: bool) -> float:
    """CPU seconds of a 5-point power curve (20-60 subjects, 20 items) with the lmm engine."""
    from glmmsim.design import crossed
    from glmmsim.fit.engines.lmm_engine import PreparedLmm

    model = standard_model.model()
    saved = PreparedLmm.fit_many
    if not batched:  # the runner fits one by one when the engine has no fit_many
        PreparedLmm.fit_many = None
    try:
        t0 = time.process_time()
        glmmsim.power_curve(model, lambda subjects: crossed(subjects=subjects, items=20, within={"cond": ["a", "b"]}),
                            along={"subjects": list(CURVE_SUBJECTS)}, test="cond", nsim=nsim, seed=1, progress=False)
        return time.process_time() - t0
    finally:
        PreparedLmm.fit_many = saved


def mcpower_curve_seconds(nsim: int) -> float | None:
    """CPU seconds of MCPower's 5-point curve on the same points (its closest scenario, its default test)."""
    try:
        import mcpower
    except ImportError:
        return None
    t0 = time.process_time()
    power_curve(mcpower, nsim)
    return time.process_time() - t0


def mcpower_per_sim(nsim: int) -> tuple[float, str] | None:
    """MCPower's LME on its closest scenario (standardized effects and ICCs), CPU seconds per simulation."""
    try:
        import mcpower
    except ImportError:
        return None

    def run(sims: int):
        find_power(mcpower, sims)

    run(20)
    t0 = time.process_time()
    run(nsim)
    version = getattr(mcpower, "__version__", None) or getattr(mcpower, "version", "1.4")
    return (time.process_time() - t0) / nsim, str(version)


def paired_ratios(d: pd.DataFrame, ys: np.ndarray, rounds: int, sims: int = 60) -> dict[str, list[float]] | None:
    """Started z and Satterthwaite t per replicate over MCPower's own z and t, timed back to back.

    MCPower's z uses its asymptotic df, its t its default (between-within) df. The machine's
    speed here drifts within seconds, more than the medians of a few long rounds can hide:
    each round times MCPower's test just before and just after ours and divides ours by their
    mean, so both sides of a ratio see the same machine. ``sims`` simulations a side (about
    0.1 s, as long as ours) keep a round within a fraction of a second; many rounds give the
    median and quartiles. None without MCPower.
    """
    try:
        import mcpower
    except ImportError:
        return None

    def theirs(df_method: str | None) -> float:
        t0 = time.process_time()
        find_power(mcpower, sims, df_method=df_method)
        return (time.process_time() - t0) / sims

    pairs = {"z": (TESTS[0], "asymptotic"), "Satterthwaite t": (TESTS[1], None)}
    for _, df_method in pairs.values():
        find_power(mcpower, 20, df_method=df_method)  # warm-up
    out: dict[str, list[float]] = {label: [] for label in pairs}
    for _ in range(rounds):
        for label, ((_, formula, method, reml), df_method) in pairs.items():
            before = theirs(df_method)
            ours = per_replicate_batched(formula, method, reml, d, ys, time.process_time, start=True)
            after = theirs(df_method)
            out[label].append(ours / ((before + after) / 2))
    return out


def scaling(reps: int) -> list[tuple[int, float, float, float, float]]:
    """lmm at 1,200 and ~100,000 rows: CPU ms per z replicate (one by one, batched), us per deviance
    evaluation, BOBYQA evaluations per fit."""
    out = []
    for repetitions in (1, 84):
        d = conditions(repetitions=repetitions)
        ys = responses(d, reps, seed=2)
        fitter = glmmsim.fit.prepare(FULL, d, engine="lmm")
        per = per_replicate("lmm", FULL, "z", True, d, ys, time.process_time)
        batched = per_replicate_batched(FULL, "z", True, d, ys, time.process_time, start=True)
        prep = fitter._prepare()
        r = prep.response(ys[:, 0])
        theta = prep._start * 0.5
        t0 = time.process_time()
        for _ in range(200):
            prep.structure.deviance(theta, r, True)
        per_eval = (time.process_time() - t0) / 200 * 1e6
        evals = statistics.mean(prep.fit(ys[:, j], reml=True).native.evaluations for j in range(min(10, ys.shape[1])))
        out.append((len(d), per * 1e3, batched * 1e3, per_eval, evals))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=30, help="replicates per round for lmm and glmm")
    ap.add_argument("--lme4-reps", type=int, default=3, help="replicates per round for lme4 (KR: 1)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-r", action="store_true", help="skip the lme4 engine")
    ap.add_argument("--curve-nsim", type=int, default=200, help="replicates a point of the power curve (0: skip)")
    ap.add_argument("--paired-rounds", type=int, default=30,
                    help="rounds of started z and t timed between two MCPower runs of its z and t (0: skip)")
    args = ap.parse_args()
    d = conditions()
    ys = responses(d, max(args.reps, args.lme4_reps))
    engines = ["lmm batched, generating start", "lmm batched", "lmm", "glmm"] + ([] if args.no_r else ["lme4"])
    times: dict[tuple[str, str], list[float | None]] = {}
    mcp_rounds: list[tuple[float, str] | None] = []
    for rnd in range(args.rounds):
        order = engines if rnd % 2 == 0 else engines[::-1]
        for label, formula, method, reml in TESTS:
            for engine in order:
                if engine.startswith("lmm batched"):
                    t = per_replicate_batched(formula, method, reml, d, ys[:, : args.reps], time.process_time,
                                              start=engine.endswith("start"))
                elif engine == "lme4":
                    n = 1 if method == "kr" else args.lme4_reps
                    t = per_replicate(engine, formula, method, reml, d, ys[:, :n], time.perf_counter)
                else:
                    t = per_replicate(engine, formula, method, reml, d, ys[:, : args.reps], time.process_time)
                times.setdefault((engine, label), []).append(t)
        mcp_rounds.append(mcpower_per_sim(200))  # in every round: the machine's speed drifts between rounds
    mcp = None if mcp_rounds[0] is None else (statistics.median(m[0] for m in mcp_rounds), mcp_rounds[0][1])

    def med(engine: str, label: str) -> float | None:
        vals = [v for v in times[(engine, label)] if v is not None]
        return statistics.median(vals) * 1e3 if vals else None

    fmt = lambda v: "refused" if v is None else f"{v:,.1f}" if v >= 10 else f"{v:.2f}"  # noqa: E731
    print(f"ms per replicate (fit + test of cond), medians of {args.rounds} rounds; 1,200 rows\n")
    head = (["test", *engines] + list(ISSUE) + ["one by one / batched", "glmm / batched"]
            + ([] if args.no_r else ["lme4 / batched"])
            + ["simr (issue's figure) / started", "started / MCPower (issue)"])
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for k, (label, *_rest) in enumerate(TESTS):
        row = [label] + [fmt(med(e, label)) for e in engines]
        row += ["–" if ISSUE[p][k] is None else f"{ISSUE[p][k]:,}" for p in ISSUE]
        fast, lmm, glmm = med("lmm batched", label), med("lmm", label), med("glmm", label)
        row.append(f"{lmm / fast:.2f}")
        row.append("–" if glmm is None else f"{glmm / fast:.2f}")
        if not args.no_r:
            row.append(f"{med('lme4', label) / fast:,.0f}")
        started = med("lmm batched, generating start", label)
        row.append(f"{ISSUE['simr 1.0.8'][k] / started:.0f}")
        mcp_issue = ISSUE["MCPower 1.4.1"][k]
        row.append("–" if mcp_issue is None else f"{started / mcp_issue:.2f}")
        print("| " + " | ".join(row) + " |")
    zs = med("lmm batched, generating start", "z")
    if mcp is not None:
        z, zb = med("lmm", "z"), med("lmm batched", "z")
        print(f"\nMCPower {mcp[1]} in the same rounds (its closest scenario, its own test; CPU, median): {mcp[0] * 1e3:.2f} ms per "
              f"simulation; lmm z / MCPower = {z / (mcp[0] * 1e3):.2f}, batched {zb / (mcp[0] * 1e3):.2f}, "
              f"batched from the generating start {zs / (mcp[0] * 1e3):.2f}")
    paired = paired_ratios(d, ys[:, : args.reps], args.paired_rounds) if args.paired_rounds else None
    if paired is not None:
        print(f"\nStarted test / MCPower's same test, timed back to back ({args.paired_rounds} rounds; MCPower's z "
              "with its asymptotic df, its t with its default between-within df): "
              + "; ".join(f"{label} median {statistics.median(r):.2f} (quartiles {statistics.quantiles(r, n=4)[0]:.2f}-"
                          f"{statistics.quantiles(r, n=4)[2]:.2f}, range {min(r):.2f}-{max(r):.2f})"
                          for label, r in paired.items()))
    whole = {m: power_per_replicate(m, 400) * 1e3 for m in ("z", "satterthwaite")}
    print("\nglmmsim.power per replicate (draw + fit + test, serial, 400 replicates; CPU ms): "
          + ", ".join(f"{m} {v:.2f}" for m, v in whole.items())
          + ("" if mcp is None else f"; / MCPower's simulation: z {whole['z'] / (mcp[0] * 1e3):.2f}"))
    print("\nlmm cost by number of rows (z test; CPU)")
    print("| rows | ms per replicate, one by one | batched, generating start | us per deviance evaluation "
          "| BOBYQA evaluations per fit |")
    print("|---|---|---|---|---|")
    for rows, per, batched, dev, evals in scaling(max(10, args.reps)):
        print(f"| {rows:,} | {per:.2f} | {batched:.2f} | {dev:.0f} | {evals:.0f} |")
    dfs = df_per_replicate(ys[:, : args.reps])
    print("\nSatterthwaite df of every coefficient, same fits (CPU ms per replicate, best of 5): "
          + ", ".join(f"{name} {ms:.3f}" for name, ms in dfs.items())
          + f"; per coefficient / batched {dfs['per coefficient'] / dfs['batched']:.1f}x")
    if args.curve_nsim:
        ours, theirs = [], []
        for _ in range(args.rounds):  # interleaved with MCPower's curve: the machine's speed drifts
            ours.append(curve_seconds(args.curve_nsim, True))
            theirs.append(mcpower_curve_seconds(args.curve_nsim))
        fast, slow = statistics.median(ours), curve_seconds(args.curve_nsim, False)
        print(f"\n5-point power curve ({', '.join(map(str, CURVE_SUBJECTS))} subjects x 20 items), "
              f"{args.curve_nsim} replicates a point, Satterthwaite t, serial (CPU s, median of {args.rounds}): "
              f"lmm {fast:.2f}, one by one {slow:.2f} ({slow / fast:.2f}x)", end="")
        if theirs[0] is None:
            print("; MCPower (issue): 0.7-1.2 s")
        else:
            peer = statistics.median(theirs)
            print(f"; MCPower in the same rounds (its default t test) {peer:.2f}: lmm / MCPower {fast / peer:.2f}")

if __name__ == "__main__":
    main()
