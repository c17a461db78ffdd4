"""Benchmark ``Model.simulate`` against a hand-written numpy reference.

The model is ``y ~ 1 + x1 + x2 + (1 + x1 | subject) + (1 | item)`` with N/100
subjects and 200 items. Both contenders start from the same DataFrame and
return a new DataFrame with a ``y`` column:

* glmmsim: ``Model.simulate(conditions, seed=...)`` end to end;
* reference: copy the frame, factorize the grouping columns with pandas, draw
  the random effects with ``rng.standard_normal`` and the Cholesky factor,
  gather them by code, compute ``X @ beta``, add the noise (or draw from the
  binomial / Poisson distribution) and attach the column.

Runs alternate between the two in one process (the order flips each round)
and the medians are compared, so a slow spell on a shared machine hits both.
Peak extra memory of ``Model.simulate`` at the largest size is measured with
:mod:`tracemalloc` (numpy and pandas report their buffers to it).

Usage::

    PYTHONPATH=src python benchmarks/bench_simulate.py                  # 1e5 1e6 1e7
    PYTHONPATH=src python benchmarks/bench_simulate.py --sizes 1e5 1e6  # quicker
    PYTHONPATH=src python benchmarks/bench_simulate.py --families-size 0  # gaussian only
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit

try:
    import glmmsim
except ImportError:  # running from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import glmmsim

FORMULA = "y ~ 1 + x1 + x2 + (1 + x1 | subject) + (1 | item)"
N_ITEMS = 200
ROWS_PER_SUBJECT = 100

# One parameter set per family; the GLMM ones keep eta in a range where the
# response is informative (p not pinned at 0/1, Poisson means of a few counts).
PARAMS = {
    "gaussian": dict(
        fixed={"Intercept": 1.5, "x1": 2.0, "x2": -1.2},
        sd_subject=(0.5, 0.3),
        corr_subject=0.2,
        sd_item=0.4,
        sigma=1.0,
    ),
    "binomial": dict(
        fixed={"Intercept": -0.3, "x1": 0.8, "x2": -0.5},
        sd_subject=(0.5, 0.3),
        corr_subject=0.2,
        sd_item=0.4,
        sigma=None,
    ),
    "poisson": dict(
        fixed={"Intercept": 0.7, "x1": 0.3, "x2": -0.2},
        sd_subject=(0.3, 0.1),
        corr_subject=0.2,
        sd_item=0.2,
        sigma=None,
    ),
}


def make_conditions(n_rows: int, seed: int = 0) -> pd.DataFrame:
    """Crossed design: string subject and item labels plus two normal covariates."""
    rng = np.random.default_rng(seed)
    n_subjects = max(n_rows // ROWS_PER_SUBJECT, 1)
    subject_labels = np.array([f"s{i:06d}" for i in range(n_subjects)], dtype=object)
    item_labels = np.array([f"i{i:03d}" for i in range(N_ITEMS)], dtype=object)
    return pd.DataFrame(
        {
            "subject": subject_labels[np.arange(n_rows) % n_subjects],
            "item": item_labels[rng.integers(0, N_ITEMS, n_rows)],
            "x1": rng.standard_normal(n_rows),
            "x2": rng.standard_normal(n_rows),
        }
    )


def make_model(family: str) -> glmmsim.Model:
    p = PARAMS[family]
    sd_int, sd_x1 = p["sd_subject"]
    return glmmsim.Model(
        FORMULA,
        fixed=p["fixed"],
        random={
            "subject": {"sd": {"Intercept": sd_int, "x1": sd_x1}, "corr": {("Intercept", "x1"): p["corr_subject"]}},
            "item": p["sd_item"],
        },
        sigma=p["sigma"],
        family=family,
        seed=7,
    )


def make_reference(family: str, deep_copy: bool) -> Callable[[pd.DataFrame, int], pd.DataFrame]:
    """The same simulation written directly in numpy/pandas, as a speed yardstick."""
    p = PARAMS[family]
    beta = np.array([p["fixed"]["Intercept"], p["fixed"]["x1"], p["fixed"]["x2"]])
    (s0, s1), r = p["sd_subject"], p["corr_subject"]
    chol_subject = np.linalg.cholesky(np.array([[s0 * s0, r * s0 * s1], [r * s0 * s1, s1 * s1]]))
    sd_item, sigma = p["sd_item"], p["sigma"]

    def simulate(conditions: pd.DataFrame, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        out = conditions.copy(deep=deep_copy)
        subject_codes, subject_levels = pd.factorize(conditions["subject"])
        item_codes, item_levels = pd.factorize(conditions["item"])
        b_subject = rng.standard_normal((len(subject_levels), 2)) @ chol_subject.T
        b_item = sd_item * rng.standard_normal(len(item_levels))
        x1 = conditions["x1"].to_numpy(dtype=np.float64)
        x2 = conditions["x2"].to_numpy(dtype=np.float64)
        # the tightest hand-written form: no design matrix, one pass per coefficient
        eta = beta[0] + beta[1] * x1
        eta += beta[2] * x2
        eta += b_subject[subject_codes, 0]
        eta += b_subject[subject_codes, 1] * x1
        eta += b_item[item_codes]
        if family == "gaussian":
            y = eta + sigma * rng.standard_normal(len(eta))
        elif family == "binomial":
            y = rng.binomial(1, expit(eta))
        else:
            y = rng.poisson(np.exp(eta))
        out["y"] = y
        return out

    return simulate


def model_copies_deep() -> bool:
    """Whether Model.simulate's output shares no memory with the input (a deep copy)."""
    conditions = make_conditions(1000)
    out = make_model("gaussian").simulate(conditions, seed=1)
    return not np.shares_memory(out["x1"].to_numpy(), conditions["x1"].to_numpy())


def _timed(fn: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def compare(
    n_rows: int, family: str, repeats: int, deep_copy: bool
) -> tuple[float, float]:
    """Median seconds (glmmsim, reference) over alternating runs on one data frame."""
    conditions = make_conditions(n_rows)
    model = make_model(family)
    reference = make_reference(family, deep_copy)
    # untimed warm-up: first-call caches, page faults of the fresh frame
    model.simulate(conditions, seed=0)
    reference(conditions, 0)
    ours, theirs = [], []
    for i in range(repeats):
        run_ours = lambda: model.simulate(conditions, seed=i + 1)  # noqa: E731
        run_ref = lambda: reference(conditions, i + 1)  # noqa: E731
        if i % 2 == 0:
            ours.append(_timed(run_ours))
            theirs.append(_timed(run_ref))
        else:
            theirs.append(_timed(run_ref))
            ours.append(_timed(run_ours))
    return statistics.median(ours), statistics.median(theirs)


def peak_memory(n_rows: int, run: Callable[[pd.DataFrame], pd.DataFrame]) -> tuple[int, int, int]:
    """(peak bytes allocated during ``run``, bytes of the y column, shallow bytes of the output frame)."""
    conditions = make_conditions(n_rows)
    gc.collect()
    tracemalloc.start()
    try:
        out = run(conditions)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    y_bytes = out["y"].to_numpy().nbytes
    frame_bytes = int(out.memory_usage(index=True, deep=False).sum())
    return peak, y_bytes, frame_bytes


def _size(text: str) -> int:
    value = float(text)
    if value < 1 or value != int(value):
        raise argparse.ArgumentTypeError(f"size must be a positive whole number of rows, got {text!r}")
    return int(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=_size, default=[10**5, 10**6, 10**7],
                        help="row counts for the gaussian comparison (default: 1e5 1e6 1e7)")
    parser.add_argument("--families-size", type=float, default=1e6,
                        help="row count for the binomial/poisson comparison; 0 skips it (default: 1e6)")
    parser.add_argument("--repeats", type=int, default=5, help="alternating rounds per size (default: 5)")
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc peak-memory run")
    args = parser.parse_args(argv)

    deep = model_copies_deep()
    print(f"glmmsim {getattr(glmmsim, '__version__', '?')}, numpy {np.__version__}, pandas {pd.__version__}, "
          f"python {platform.python_version()}, {platform.machine()}")
    print(f"model: {FORMULA}; N/{ROWS_PER_SUBJECT} subjects, {N_ITEMS} items")
    print(f"Model.simulate output is a {'deep' if deep else 'shallow'} copy; the reference copies the same way")

    rows = []
    cases = [(n, "gaussian") for n in args.sizes]
    if args.families_size:
        cases += [(_size(str(args.families_size)), fam) for fam in ("binomial", "poisson")]
    for n_rows, family in cases:
        # the largest frames take seconds per run; three rounds keep the default run short
        repeats = min(args.repeats, 3) if n_rows >= 10**7 else args.repeats
        ours, theirs = compare(n_rows, family, repeats, deep)
        rows.append((n_rows, family, ours, theirs, repeats))
        print(f"  {family:8s} n={n_rows:>10,d}: glmmsim {ours:8.3f} s  numpy {theirs:8.3f} s  "
              f"ratio {ours / theirs:5.2f}", flush=True)

    print()
    print("| rows | family | glmmsim (s) | numpy reference (s) | ratio | rounds |")
    print("|-----:|--------|------------:|--------------------:|------:|-------:|")
    for n_rows, family, ours, theirs, repeats in rows:
        print(f"| {n_rows:.0e} | {family} | {ours:.3f} | {theirs:.3f} | {ours / theirs:.2f} | {repeats} |")

    if not args.no_memory:
        n_rows = max(args.sizes)
        model = make_model("gaussian")
        ours = peak_memory(n_rows, lambda df: model.simulate(df, seed=1))
        reference = make_reference("gaussian", deep)
        theirs = peak_memory(n_rows, lambda df: reference(df, 1))
        print()
        print(f"Peak memory allocated during one call at {n_rows:.0e} rows (tracemalloc):")
        print("| code | peak (MB) | peak / y column | peak / output frame |")
        print("|------|----------:|----------------:|--------------------:|")
        for name, (peak, y_bytes, frame_bytes) in (("glmmsim", ours), ("numpy reference", theirs)):
            print(f"| {name} | {peak / 2**20:.0f} | {peak / y_bytes:.1f} | {peak / frame_bytes:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
