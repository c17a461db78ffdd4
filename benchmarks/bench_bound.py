"""Benchmark the bound model (bind once, simulate many) and grouping-column types.

Part 1, at 1,200 rows (30 subjects x 20 items x 2 conditions,
``y ~ cond + (1 + cond | subject) + (1 | item)``), per call:

* ``bound.simulate_response(seed)``: the studies' fast path (y only);
* ``bound.simulate(seed)``: the same plus the output DataFrame;
* ``Model.simulate(conditions, seed)`` of this checkout, which binds on every call;
* ``Model.simulate`` of the ``main`` branch (the code before the bound model), run
  in a subprocess from a ``git archive`` of main's ``src/`` in the same run, when
  git and the branch are available (``--no-main`` skips it).

Part 2, at 1e6 rows: ``bind`` (which codes the grouping columns) with subject/item
columns as ``str``, ``category`` and ``int``.

Timings alternate between contenders (order flipping each round) and report
medians; the ratios are the result. The machine is shared: compare ratios, not
absolute times.

Usage::

    python benchmarks/bench_bound.py
    python benchmarks/bench_bound.py --calls 200 --rounds 7 --big 1e6
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
try:
    import glmmsim
except ImportError:  # running from a checkout without installing
    sys.path.insert(0, str(ROOT / "src"))
    import glmmsim

FORMULA = "y ~ cond + (1 + cond | subject) + (1 | item)"
FIXED = {"Intercept": 0.5, "cond[T.b]": 0.3}
RANDOM = {"subject": {"sd": {"Intercept": 0.5, "cond[T.b]": 0.3}, "corr": {("Intercept", "cond[T.b]"): 0.2}},
          "item": 0.4}

# run by the subprocess measuring main's Model.simulate on the same design
_MAIN_SNIPPET = """
import json, sys, time, statistics
import numpy as np, pandas as pd
import glmmsim
spec = json.loads(sys.argv[1])
rows = [(f"s{s:02d}", f"i{i:02d}", c) for s in range(30) for i in range(20) for c in "ab"]
data = pd.DataFrame(rows, columns=["subject", "item", "cond"])
m = glmmsim.Model(spec["formula"], fixed=spec["fixed"], random=spec["random"], sigma=1.0, seed=1)
m.simulate(data, seed=0)
out = []
for r in range(spec["rounds"]):
    t = time.perf_counter()
    for k in range(spec["calls"]):
        m.simulate(data, seed=k)
    out.append((time.perf_counter() - t) / spec["calls"])
print(json.dumps(out))
"""


def small_design() -> pd.DataFrame:
    rows = [(f"s{s:02d}", f"i{i:02d}", c) for s in range(30) for i in range(20) for c in "ab"]
    return pd.DataFrame(rows, columns=["subject", "item", "cond"])


def per_call(fn: Callable[[int], object], calls: int) -> float:
    gc.collect()
    start = time.perf_counter()
    for k in range(calls):
        fn(k)
    return (time.perf_counter() - start) / calls


def alternate(contenders: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            times[name].append(contenders[name]())
    return {name: statistics.median(v) for name, v in times.items()}


def main_branch_times(calls: int, rounds: int) -> list[float] | None:
    """Per-call times of main's Model.simulate, from a git archive of main's src/ (None if unavailable)."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "main.tar"
        try:
            subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), "main", "src"],
                           check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError):
            return None
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        spec = json.dumps({"formula": FORMULA, "fixed": FIXED, "random": _jsonable(RANDOM),
                           "calls": calls, "rounds": rounds})
        env = dict(os.environ, PYTHONPATH=str(Path(tmp) / "src"))
        run = subprocess.run([sys.executable, "-c", _MAIN_SNIPPET, spec], env=env, capture_output=True, text=True,
                             cwd=tmp)
        if run.returncode != 0:
            print("main-branch run failed:", run.stderr.strip().splitlines()[-1:])
            return None
        return json.loads(run.stdout)


def _jsonable(random: dict) -> dict:
    out = {}
    for factor, spec in random.items():
        if isinstance(spec, dict) and "corr" in spec:
            out[factor] = {"sd": spec["sd"], "corr": {}}
        else:
            out[factor] = spec
    return out


def bench_bound(calls: int, rounds: int, with_main: bool) -> None:
    data = small_design()
    # the main-branch reference uses the JSON-able spec (no correlation); so do we, for a like comparison
    model = glmmsim.Model(FORMULA, fixed=FIXED, random=_jsonable(RANDOM), sigma=1.0, seed=1)
    bound = model.bind(data)
    bound.simulate(seed=0)
    model.simulate(data, seed=0)
    med = alternate(
        {
            "bound.simulate_response": lambda: per_call(lambda k: bound.simulate_response(seed=k), calls),
            "bound.simulate_response(population=)": lambda: per_call(
                lambda k: bound.simulate_response(seed=k, population=k), calls),
            "bound.simulate": lambda: per_call(lambda k: bound.simulate(seed=k), calls),
            "Model.simulate (binds each call)": lambda: per_call(lambda k: model.simulate(data, seed=k), calls // 4),
        },
        rounds,
    )
    if with_main:
        main = main_branch_times(calls // 4, rounds)
        if main is not None:
            med["Model.simulate on main (before bind)"] = statistics.median(main)
    print(f"1,200 rows, {FORMULA}: median per call over {rounds} rounds")
    for name, t in med.items():
        print(f"  {name:42s} {t * 1e6:9.1f} us")
    for ref in ("Model.simulate (binds each call)", "Model.simulate on main (before bind)"):
        if ref in med:
            for fast in ("bound.simulate_response", "bound.simulate", "bound.simulate_response(population=)"):
                print(f"  ratio {ref} / {fast}: {med[ref] / med[fast]:.1f}x")


def big_design(n: int, kind: str) -> pd.DataFrame:
    n_subjects, n_items = n // 1000, 500
    rng = np.random.default_rng(0)
    subj = rng.integers(0, n_subjects, n)
    item = rng.integers(0, n_items, n)
    df = pd.DataFrame({"cond": np.where(rng.random(n) < 0.5, "a", "b")})
    if kind == "int":
        df["subject"], df["item"] = subj, item
    else:
        s_labels = np.array([f"s{i:05d}" for i in range(n_subjects)], dtype=object)
        i_labels = np.array([f"i{i:04d}" for i in range(n_items)], dtype=object)
        df["subject"], df["item"] = s_labels[subj], i_labels[item]
        df = df.astype({"subject": "str", "item": "str"})
        if kind == "category":
            df = df.astype({"subject": "category", "item": "category"})
    return df


def bench_grouping(n: int, rounds: int) -> None:
    from glmmsim.model.matrices import grouping

    frames = {kind: big_design(n, kind) for kind in ("str", "category", "int")}
    model = glmmsim.Model(FORMULA, fixed=FIXED, random=RANDOM, sigma=1.0, seed=1)
    grp = alternate({kind: (lambda f=f: per_call(lambda k: [grouping(f, [c], c) for c in ("subject", "item")], 1))
                     for kind, f in frames.items()}, rounds)
    bind = alternate({kind: (lambda f=f: per_call(lambda k: model.bind(f), 1)) for kind, f in frames.items()}, rounds)
    print(f"\n{n:,.0f} rows, grouping columns subject ({n // 1000:,}) and item (500) by dtype: median of {rounds}")
    print(f"  {'dtype':10s} {'coding both (ms)':>17s} {'ns/row/col':>11s} {'bind (ms)':>10s}")
    for kind in frames:
        print(f"  {kind:10s} {grp[kind] * 1e3:17.1f} {grp[kind] / n / 2 * 1e9:11.1f} {bind[kind] * 1e3:10.1f}")
    for kind in ("category", "int"):
        print(f"  speed-up of coding, str / {kind}: {grp['str'] / grp[kind]:.1f}x; of bind: {bind['str'] / bind[kind]:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400, help="calls per timed round (bound); a quarter unbound")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--big", type=float, default=1e6, help="rows for the grouping benchmark (0 skips)")
    parser.add_argument("--no-main", action="store_true", help="do not measure main's Model.simulate")
    args = parser.parse_args()
    print(f"glmmsim {glmmsim.__version__}, numpy {np.__version__}, pandas {pd.__version__}")
    bench_bound(args.calls, args.rounds, not args.no_main)
    if args.big:
        bench_grouping(int(args.big), args.rounds)


if __name__ == "__main__":
    main()
