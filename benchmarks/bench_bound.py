"""Benchmark the bound model (bind once, simulate many) and grouping-column types.

Part 1, at 1,200 rows (30 subjects x 20 items x 2 conditions,
``y ~ cond + (1 + cond | subject) + (1 | item)``), per call:

* ``bound.simulate_response(seed)``: the studies' fast path (y only);
* ``bound.simulate(seed)``: the same plus the output DataFrame;
* ``Model.simulate(conditions, seed)`` of this checkout, which binds on every call;
* ``Model.simulate`` of the code before the bound model (commit ``62e7b1a``, or
  ``--before REV``), run in a subprocess from a ``git archive`` of that ``src/`` in
  the same run, when git and the commit are available (``--no-before`` skips it).

Part 2, at 1e6 rows: coding the grouping columns, and ``bind``, with subject/item
columns as ``str``, ``category`` and ``int``; and the columns of a categorical fixed
effect built from level codes vs formulaic's dense matrix (time and peak memory).

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

# a subprocess running the before-bind code: times one round per line it reads, so its
# rounds interleave with ours
_BEFORE_SNIPPET = """
import json, sys, time
import numpy as np, pandas as pd
import glmmsim
spec = json.loads(sys.argv[1])
rows = [(f"s{s:02d}", f"i{i:02d}", c) for s in range(30) for i in range(20) for c in "ab"]
data = pd.DataFrame(rows, columns=["subject", "item", "cond"])
m = glmmsim.Model(spec["formula"], fixed=spec["fixed"], random=spec["random"], sigma=1.0, seed=1)
m.simulate(data, seed=0)
print("ready", flush=True)
for line in sys.stdin:
    t = time.perf_counter()
    for k in range(spec["calls"]):
        m.simulate(data, seed=k)
    print((time.perf_counter() - t) / spec["calls"], flush=True)
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


BEFORE_BIND = "62e7b1a"  # the last commit before Model.bind


class BeforeBind:
    """Model.simulate of the code at ``rev`` (a git archive of its src/), timed in a subprocess."""

    def __init__(self, rev: str, calls: int, tmp: str) -> None:
        archive = Path(tmp) / "before.tar"
        subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), rev, "src"],
                       check=True, capture_output=True)
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        spec = json.dumps({"formula": FORMULA, "fixed": FIXED, "random": _jsonable(RANDOM), "calls": calls})
        env = dict(os.environ, PYTHONPATH=str(Path(tmp) / "src"))
        self.proc = subprocess.Popen([sys.executable, "-c", _BEFORE_SNIPPET, spec], env=env, cwd=tmp, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the code at {rev} did not start")

    def round(self) -> float:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def _jsonable(random: dict) -> dict:
    out = {}
    for factor, spec in random.items():
        if isinstance(spec, dict) and "corr" in spec:
            out[factor] = {"sd": spec["sd"], "corr": {}}
        else:
            out[factor] = spec
    return out


def bench_bound(calls: int, rounds: int, before: str | None) -> None:
    data = small_design()
    # the before-bind reference gets a JSON-able spec (no correlation); so do we, for a like comparison
    model = glmmsim.Model(FORMULA, fixed=FIXED, random=_jsonable(RANDOM), sigma=1.0, seed=1)
    bound = model.bind(data)
    bound.simulate(seed=0)
    model.simulate(data, seed=0)
    contenders = {
        "bound.simulate_response": lambda: per_call(lambda k: bound.simulate_response(seed=k), calls),
        "bound.simulate_response(population=)": lambda: per_call(
            lambda k: bound.simulate_response(seed=k, population=k), calls),
        "bound.simulate": lambda: per_call(lambda k: bound.simulate(seed=k), calls),
        "Model.simulate (binds each call)": lambda: per_call(lambda k: model.simulate(data, seed=k), calls // 4),
    }
    ref_name = f"Model.simulate before bind ({before})"
    with tempfile.TemporaryDirectory() as tmp:
        reference = None
        if before:
            try:
                reference = BeforeBind(before, calls // 4, tmp)
                contenders[ref_name] = reference.round
            except (OSError, subprocess.CalledProcessError, RuntimeError) as exc:
                print(f"not measuring the code before bind: {exc}")
        med = alternate(contenders, rounds)
        if reference is not None:
            reference.close()
    print(f"1,200 rows, {FORMULA}: median per call over {rounds} rounds")
    for name, t in med.items():
        print(f"  {name:44s} {t * 1e6:9.1f} us")
    for ref in ("Model.simulate (binds each call)", ref_name):
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


def bench_categorical_columns(n: int, rounds: int) -> None:
    """A categorical fixed effect: indicator columns from level codes vs formulaic's dense matrix."""
    import tracemalloc

    from glmmsim.model.matrices import _formulaic_columns, model_columns

    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"cond": pd.Series(np.array(["a", "b", "c"])[rng.integers(0, 3, n)], dtype="str")})
    med = alternate({
        "from codes": lambda: per_call(lambda k: model_columns("1 + cond", frame), 1),
        "formulaic": lambda: per_call(lambda k: _formulaic_columns("1 + cond", frame, {}, "bench"), 1),
    }, rounds)
    peaks = {}
    for name, fn in (("from codes", lambda: model_columns("1 + cond", frame)),
                     ("formulaic", lambda: _formulaic_columns("1 + cond", frame, {}, "bench"))):
        gc.collect()
        tracemalloc.start()
        fn()
        peaks[name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    print(f"\n{n:,.0f} rows, fixed part '1 + cond' (3 levels, str column): median of {rounds}")
    for name in med:
        print(f"  {name:12s} {med[name] * 1e3:8.1f} ms   peak {peaks[name] / 2**20:7.1f} MiB")
    print(f"  formulaic / from codes: {med['formulaic'] / med['from codes']:.1f}x time, "
          f"{peaks['formulaic'] / peaks['from codes']:.1f}x peak memory")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400, help="calls per timed round (bound); a quarter unbound")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--big", type=float, default=1e6, help="rows for the grouping benchmark (0 skips)")
    parser.add_argument("--before", default=BEFORE_BIND, help="git revision of the code before bind")
    parser.add_argument("--no-before", action="store_true", help="do not measure the code before bind")
    args = parser.parse_args()
    print(f"glmmsim {glmmsim.__version__}, numpy {np.__version__}, pandas {pd.__version__}")
    bench_bound(args.calls, args.rounds, None if args.no_before else args.before)
    if args.big:
        bench_grouping(int(args.big), args.rounds)
        bench_categorical_columns(int(args.big), args.rounds)


if __name__ == "__main__":
    main()
