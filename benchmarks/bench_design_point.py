"""One design per study point: design builds, set-up time and per-replicate overhead, before and after.

Issue 18 item 1-2: a power point used to build its design four times (the test names in
``plan_point``, a validation bind thrown away, the worker's bind, the Fitter's ``build_design``);
now the point binds once and its fits view the bound model's :class:`~glmmsim.model.model_design.ModelDesign`.

The script measures two source trees in one run, each in its own subprocess (same machine, same
moment): ``--before`` (a ``src/`` folder, or a git revision whose ``src/`` is taken by ``git
archive``; default cca9c68, the commit before the change) and ``--after`` (this checkout's ``src``).
For each it prints

1. design builds per power point (serial run): calls that materialise the fixed part of a formula
   (``model_columns`` of the fixed part or of the analysis formula), the random terms' columns and
   the grouping factors' level codes;
2. set-up time of a power point (planning, binding, the worker's design and prepared ``glmm``
   fitter) at 1,200 and 100,000 rows, CPU seconds, median of repeats;
3. per-replicate cost of ``glmmsim.power(engine="glmm")`` over the bare ``glmm.fit`` on the same
   prepared columns and the same responses (CPU time, contenders alternating; the ratio must not grow).

Usage::

    python3 benchmarks/bench_design_point.py                 # about 2 minutes on a shared 2-core VM
    python3 benchmarks/bench_design_point.py --nsim 20 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
FORMULA = "y ~ cond + (1 + cond | subject) + (1 | item)"


# ------------------------------------------------------------------------------ child: one tree
def _model():
    import glmmsim

    return glmmsim.Model(
        FORMULA, fixed={"Intercept": 600.0, "condb": 20.0},
        random={"subject": {"sd": {"Intercept": 60.0, "condb": 30.0}, "corr": {("Intercept", "condb"): 0.2}},
                "item": 30.0},
        sigma=120.0, seed=1,
    )


def _design(subjects: int, items: int):
    from glmmsim.design import crossed

    return crossed(subjects=subjects, items=items, within={"cond": ["a", "b"]})


def count_builds() -> dict[str, int]:
    """Fixed-part materialisations and formulaic calls during one serial power point (nsim=2)."""
    import glmmsim
    import glmmsim.model.matrices as matrices

    original, original_grouping = matrices.model_columns, matrices.grouping
    counts = {"fixed_part_builds": 0, "random_term_builds": 0, "groupings": 0}

    def model_columns(expr, data, levels=None, where="the formula", **kwargs):
        if where in ("the fixed part", "the analysis formula"):
            counts["fixed_part_builds"] += 1
        elif str(where).startswith("("):  # a random term, named as written: (1 + cond | subject)
            counts["random_term_builds"] += 1
        return original(expr, data, levels, where, **kwargs)

    def grouping(*args, **kwargs):
        counts["groupings"] += 1
        return original_grouping(*args, **kwargs)

    swaps = {"model_columns": (original, model_columns), "grouping": (original_grouping, grouping)}
    patched = []
    for name, module in list(sys.modules.items()):  # every module that imported the functions by name
        for attr, (old, new) in swaps.items():
            if name.startswith("glmmsim") and getattr(module, attr, None) is old:
                setattr(module, attr, new)
                patched.append((module, attr, old))
    try:
        glmmsim.power(_model(), _design(30, 20), test="cond", nsim=2, engine="glmm", progress=False)
    finally:
        for module, attr, old in patched:
            setattr(module, attr, old)
    return dict(counts)


def _seed_tree():
    """SeedTree from whichever tree is measured (glmmsim.seeding before the move, glmmsim.randomness after)."""
    try:
        from glmmsim.randomness import SeedTree
    except ImportError:
        from glmmsim.seeding import SeedTree
    return SeedTree


def setup_seconds(subjects: int, items: int, repeats: int) -> float:
    """CPU seconds to plan a power point and build its worker state (bound model, design, prepared fitter)."""
    from glmmsim.analysis import replicates
    from glmmsim.analysis.power import plan_point
    from glmmsim.execution import clear_worker_cache
    SeedTree = _seed_tree()

    model, data = _model(), _design(subjects, items)
    if hasattr(replicates, "point_state"):  # after: the worker reuses the planning process's state
        def worker(job):
            return replicates.point_state(job).fitter
    else:  # before: the worker binds and builds its fitter's design again
        def worker(job):
            return replicates._PointState(job).fitter
    times = []
    for _ in range(repeats):
        clear_worker_cache()
        t0 = time.process_time()
        job = plan_point(model, data, point=0, token=replicates.new_token(), tree=SeedTree(1), test="cond",
                         method="auto", engine="glmm", fit_formula=None, key=None, reml=None)
        worker(job)
        times.append(time.process_time() - t0)
    clear_worker_cache()
    return statistics.median(times)


def per_replicate(nsim: int, rounds: int) -> dict[str, float]:
    """CPU seconds per replicate: power(engine="glmm") end to end, and glmm.fit alone on the same responses."""
    import glmm
    import glmmsim
    from glmmsim.analysis.replicates import keyed_conditions, row_key
    SeedTree = _seed_tree()

    model, data = _model(), _design(30, 20)
    key, occurrence = row_key(model, data)
    frame, key = keyed_conditions(data, key, occurrence)
    bound = model.bind(frame, key=key)
    tree = SeedTree(1)
    ys = [bound.simulate_response(s.noise, population=s.population) for s in (tree.replicate(r) for r in range(nsim))]
    prepared = glmmsim.fit.prepare(FORMULA, data, engine="glmm")._prepare()
    columns, formula = dict(prepared._columns), prepared._formula

    def bare():
        for y in ys:
            glmm.fit({**columns, "Y": y}, formula, "gaussian", reml=True)

    def study():
        glmmsim.power(model, data, test="cond", nsim=nsim, seed=1, engine="glmm", progress=False)

    study(), bare()  # warm-up
    out: dict[str, list[float]] = {"power": [], "glmm.fit": []}
    for i in range(rounds):
        order = [("power", study), ("glmm.fit", bare)]
        for name, fn in order if i % 2 == 0 else order[::-1]:  # alternate: load hits both alike
            t0 = time.process_time()
            fn()
            out[name].append((time.process_time() - t0) / nsim)
    return {k: statistics.median(v) for k, v in out.items()}


def child(args: argparse.Namespace) -> None:
    warnings.simplefilter("ignore")  # glmm's diagnostics of some replicates are data here
    result = {"builds": count_builds()}
    result["setup_1200"] = setup_seconds(30, 20, args.repeats)
    result["setup_100000"] = setup_seconds(250, 200, max(1, args.repeats // 2))
    result["replicate"] = per_replicate(args.nsim, args.rounds)
    print(json.dumps(result))


# ------------------------------------------------------------------------------ parent: both trees
def run_tree(src: str, args: argparse.Namespace) -> dict:
    env = {**os.environ, "PYTHONPATH": src}
    cmd = [sys.executable, __file__, "--child", "--nsim", str(args.nsim), "--rounds", str(args.rounds),
           "--repeats", str(args.repeats)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="cca9c68", help="a src/ folder or a git revision")
    parser.add_argument("--after", default=str(HERE / "src"))
    parser.add_argument("--nsim", type=int, default=30, help="replicates per timed power() call")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="set-up repeats (half at 100,000 rows)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        before = args.before
        if not Path(before).is_dir():  # a revision: its src/ unpacked from git
            archive = subprocess.run(["git", "-C", str(HERE), "archive", before, "src"], check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
            before = str(Path(tmp) / "src")
        trees = {"before": run_tree(before, args), "after": run_tree(args.after, args)}
    b, a = trees["before"], trees["after"]
    print(f"{FORMULA}; engine glmm; load average {os.getloadavg()[0]:.1f}")
    print(f"{'':46}{'before':>12}{'after':>12}{'after/before':>14}")

    def row(label: str, before: float, after: float, fmt: str) -> None:
        print(f"{label:46}{format(before, fmt):>12}{format(after, fmt):>12}{after / before if before else float('nan'):>14.2f}")

    row("fixed-part builds per power point (serial)", b["builds"]["fixed_part_builds"], a["builds"]["fixed_part_builds"], "d")
    row("random-term column builds per power point", b["builds"]["random_term_builds"],
        a["builds"]["random_term_builds"], "d")
    row("grouping-factor codings per power point", b["builds"]["groupings"], a["builds"]["groupings"], "d")
    row("set-up of a power point, 1,200 rows (s)", b["setup_1200"], a["setup_1200"], ".3f")
    row("set-up of a power point, 100,000 rows (s)", b["setup_100000"], a["setup_100000"], ".3f")
    row("power() per replicate (ms)", 1e3 * b["replicate"]["power"], 1e3 * a["replicate"]["power"], ".2f")
    row("bare glmm.fit per replicate (ms)", 1e3 * b["replicate"]["glmm.fit"], 1e3 * a["replicate"]["glmm.fit"], ".2f")
    ratio_b = b["replicate"]["power"] / b["replicate"]["glmm.fit"]
    ratio_a = a["replicate"]["power"] / a["replicate"]["glmm.fit"]
    row("power() / bare glmm.fit per replicate", ratio_b, ratio_a, ".2f")


if __name__ == "__main__":
    main()
