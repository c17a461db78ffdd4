"""Benchmark ``Model.simulate`` against a hand-written numpy reference and the keyed
response samplers against numpy's ``Generator`` samplers.

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

Keyed draws (each row's response a pure function of its own key) against the
sequential ``Generator`` draws glmmsim used before (kept here only, as the
reference, in ``RNG_SAMPLERS``):

* end to end: ``Model.simulate`` against ``predict(type="link")`` + the old
  ``Generator`` sampler + the same copy, for gaussian/binomial/poisson at 1e6 and
  1e7 rows (target: ratio <= 1.3);
* per family: ``Family.sample`` on 1e6 rows against the ``Generator`` call for
  the same distribution, for all nine families (several regimes each).
Peak extra memory of ``Model.simulate`` at the largest size is measured with
:mod:`tracemalloc` (numpy and pandas report their buffers to it).

Usage::

    PYTHONPATH=src python benchmarks/bench_simulate.py                  # 1e5 1e6 1e7
    PYTHONPATH=src python benchmarks/bench_simulate.py --sizes 1e5 1e6  # quicker
    PYTHONPATH=src python benchmarks/bench_simulate.py --families-size 0  # gaussian only
    PYTHONPATH=src python benchmarks/bench_simulate.py --only keyed       # keyed vs Generator only
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
from glmmsim.randomness.streams import RowStreams
from glmmsim.model.families import get_family

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


# ------------------------------------------------------------ keyed vs Generator

# The sequential Generator samplers glmmsim 0.2 used (loc = linkinv(eta)); the reference only.
RNG_SAMPLERS: dict[str, Callable] = {
    "gaussian": lambda loc, p, rng, n: loc + p["sigma"] * rng.standard_normal(loc.shape[0]),
    "binomial": lambda loc, p, rng, n: rng.binomial(1 if n is None else n, loc),
    "poisson": lambda loc, p, rng, n: rng.poisson(loc),
    "negative_binomial": lambda loc, p, rng, n: rng.negative_binomial(p["theta"], p["theta"] / (p["theta"] + loc)),
    "gamma": lambda loc, p, rng, n: rng.gamma(p["shape"], loc / p["shape"]),
    "inverse_gaussian": lambda loc, p, rng, n: rng.wald(loc, 1.0 / p["dispersion"]),
    "lognormal": lambda loc, p, rng, n: np.exp(loc + p["sigma"] * rng.standard_normal(loc.shape[0])),
    "exgaussian": lambda loc, p, rng, n: (
        loc + p["sigma"] * rng.standard_normal(loc.shape[0]) + p["tau"] * rng.standard_exponential(loc.shape[0])
    ),
    "shifted_lognormal": lambda loc, p, rng, n: (
        p["shift"] + np.exp(loc + p["sigma"] * rng.standard_normal(loc.shape[0]))
    ),
}


def make_rng_simulate(model: glmmsim.Model, deep_copy: bool) -> Callable[[pd.DataFrame, int], pd.DataFrame]:
    """Model.simulate as it was with a sequential Generator: same eta, old sampler, same copy."""
    family = model.family
    sampler = RNG_SAMPLERS[family.name]

    def simulate(conditions: pd.DataFrame, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        eta = model.predict(conditions, type="link").to_numpy()
        loc = family.link.linkinv(eta)
        out = conditions.copy(deep=deep_copy)
        out[model.response] = sampler(loc, family.params, rng, None)
        return out

    return simulate


def compare_keyed_end_to_end(n_rows: int, family: str, repeats: int, deep_copy: bool) -> tuple[float, float]:
    """Median seconds (keyed Model.simulate, Generator-based simulate) over alternating runs."""
    conditions = make_conditions(n_rows)
    model = make_model(family)
    old = make_rng_simulate(model, deep_copy)
    model.simulate(conditions, seed=0)
    old(conditions, 0)
    ours, theirs = [], []
    for i in range(repeats):
        run_ours = lambda: model.simulate(conditions, seed=i + 1)  # noqa: E731
        run_old = lambda: old(conditions, i + 1)  # noqa: E731
        first, second = (run_ours, run_old) if i % 2 == 0 else (run_old, run_ours)
        t1, t2 = _timed(first), _timed(second)
        ours.append(t1 if i % 2 == 0 else t2)
        theirs.append(t2 if i % 2 == 0 else t1)
    return statistics.median(ours), statistics.median(theirs)


# (label, family, link, params, eta, trials): one regime per sampler branch
SAMPLER_CASES = [
    ("gaussian", "gaussian", None, {"sigma": 1.0}, 0.0, None),
    ("binomial, Bernoulli", "binomial", None, {}, -0.3, None),
    ("binomial, 10 trials (search)", "binomial", None, {}, -0.3, 10),
    ("binomial, 100 trials (BTRS)", "binomial", None, {}, -0.3, 100),
    ("poisson, mean 2 (search)", "poisson", None, {}, float(np.log(2.0)), None),
    ("poisson, mean 50 (PTRS)", "poisson", None, {}, float(np.log(50.0)), None),
    ("negative_binomial, mean 5, theta 2", "negative_binomial", None, {"theta": 2.0}, float(np.log(5.0)), None),
    ("gamma, shape 2", "gamma", "log", {"shape": 2.0}, 0.0, None),
    ("gamma, shape 0.5 (boost)", "gamma", "log", {"shape": 0.5}, 0.0, None),
    ("inverse_gaussian", "inverse_gaussian", "log", {"dispersion": 0.5}, 0.0, None),
    ("lognormal", "lognormal", None, {"sigma": 0.5}, 0.0, None),
    ("exgaussian", "exgaussian", None, {"sigma": 0.05, "tau": 0.2}, 0.5, None),
    ("shifted_lognormal", "shifted_lognormal", None, {"sigma": 0.4, "shift": 0.2}, -1.0, None),
]


def compare_sampler(n_rows: int, case: tuple, repeats: int) -> tuple[float, float]:
    """Median seconds (keyed Family.sample, Generator sampler) on n_rows rows of one predictor."""
    _, name, link, params, eta_value, trials = case
    fam = get_family(name, link=link, **params)
    eta = np.full(n_rows, eta_value)
    noise = RowStreams(np.arange(n_rows, dtype=np.uint64), stream=12345)
    sampler = RNG_SAMPLERS[name]
    fam_params = fam.params

    def run_old():
        loc = fam.link.linkinv(eta)
        return sampler(loc, fam_params, np.random.default_rng(1), trials)

    def run_ours():
        return fam.sample(eta, noise, trials=trials)

    run_ours()
    run_old()
    ours, theirs = [], []
    for i in range(repeats):
        if i % 2 == 0:
            ours.append(_timed(run_ours))
            theirs.append(_timed(run_old))
        else:
            theirs.append(_timed(run_old))
            ours.append(_timed(run_ours))
    return statistics.median(ours), statistics.median(theirs)


def keyed_report(sizes: list[int], sampler_size: int, repeats: int, deep_copy: bool) -> None:
    print()
    print("Keyed draws vs the sequential numpy Generator, end to end (Model.simulate):")
    print("| rows | family | keyed (s) | Generator (s) | ratio | rounds |")
    print("|-----:|--------|----------:|--------------:|------:|-------:|")
    for n_rows in sizes:
        for family in ("gaussian", "binomial", "poisson"):
            rounds = min(repeats, 3) if n_rows >= 10**7 else repeats
            ours, theirs = compare_keyed_end_to_end(n_rows, family, rounds, deep_copy)
            print(f"| {n_rows:.0e} | {family} | {ours:.3f} | {theirs:.3f} | {ours / theirs:.2f} | {rounds} |",
                  flush=True)
    if not sampler_size:
        return
    print()
    print(f"Keyed Family.sample vs the numpy Generator sampler, {sampler_size:.0e} rows (response draws only):")
    print("| family, regime | keyed (ms) | Generator (ms) | ratio |")
    print("|----------------|-----------:|---------------:|------:|")
    for case in SAMPLER_CASES:
        ours, theirs = compare_sampler(sampler_size, case, repeats)
        print(f"| {case[0]} | {ours * 1e3:.1f} | {theirs * 1e3:.1f} | {ours / theirs:.2f} |", flush=True)


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
    parser.add_argument("--keyed-sizes", nargs="+", type=_size, default=[10**6, 10**7],
                        help="row counts for keyed vs Generator end to end (default: 1e6 1e7)")
    parser.add_argument("--sampler-size", type=float, default=1e6,
                        help="row count for the per-family sampler ratios; 0 skips them (default: 1e6)")
    parser.add_argument("--only", choices=["reference", "keyed"],
                        help="run only the numpy-reference part or only the keyed-vs-Generator part")
    args = parser.parse_args(argv)

    deep = model_copies_deep()
    print(f"glmmsim {getattr(glmmsim, '__version__', '?')}, numpy {np.__version__}, pandas {pd.__version__}, "
          f"python {platform.python_version()}, {platform.machine()}")
    print(f"model: {FORMULA}; N/{ROWS_PER_SUBJECT} subjects, {N_ITEMS} items")
    print(f"Model.simulate output is a {'deep' if deep else 'shallow'} copy; the reference copies the same way")
    if args.only == "keyed":
        keyed_report(args.keyed_sizes, int(args.sampler_size), args.repeats, deep)
        return 0

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
    if args.only != "reference":
        keyed_report(args.keyed_sizes, int(args.sampler_size), args.repeats, deep)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
