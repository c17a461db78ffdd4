"""Benchmark the cost of the formula checker (issue 16) against the work it guards.

Measured in one run, alternating contenders, medians of rounds:

* ``check_formula`` of a typical formula, uncached (a fresh formula each call) and cached;
* ``Model(...)`` construction with the check (default) vs ``trusted_formula=True``;
* ``Model.simulate`` on 1,200 rows with the evaluation-time check vs trusted;
* refusing the issue's expansion bomb ``x1*...*x24`` and ``(x1+...+x24)**24``.

The machine is shared: compare ratios, not absolute times.

Usage::

    python benchmarks/bench_formula_check.py --rounds 7
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd

import glmmsim
from glmmsim.model import formula_safety
from glmmsim.model.formula_safety import check_formula

FORMULA = "rt ~ 1 + cond * np.log(x) + C(item_type, Sum) + I(x**2) + (1 + cond | subject) + (1 | item)"


def _median(fn, calls: int, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    n = 1200
    data = pd.DataFrame(
        {
            "subject": np.repeat([f"s{i}" for i in range(30)], 40),
            "item": np.tile([f"i{i}" for i in range(20)], 60),
            "cond": np.tile(["a", "b"], n // 2),
            "item_type": np.tile(["p", "q", "r"], n // 3),
            "x": rng.uniform(1, 2, n),
        }
    )
    fixed = {name: 0.1 for name in ["Intercept", "cond[T.b]", "np.log(x)", "C(item_type, Sum)[S.p]",
                                    "C(item_type, Sum)[S.q]", "I(x ** 2)", "cond[T.b]:np.log(x)"]}
    kwargs = {"fixed": fixed, "random": {"subject": {"Intercept": 0.3, "cond[T.b]": 0.1}, "item": 0.2}, "sigma": 1.0, "seed": 1}
    counter = iter(range(10**9))

    def fresh_check():
        check_formula(FORMULA + f" + I(x + {next(counter)})")

    checked_model = glmmsim.Model(FORMULA, **kwargs)
    trusted_model = glmmsim.Model(FORMULA, trusted_formula=True, **kwargs)
    results = {
        "check_formula, uncached": _median(fresh_check, args.calls, args.rounds),
        "check_formula, cached": _median(lambda: check_formula(FORMULA), args.calls, args.rounds),
        "Model(), checked": _median(lambda: glmmsim.Model(FORMULA, **kwargs), args.calls, args.rounds),
        "Model(), trusted": _median(lambda: glmmsim.Model(FORMULA, trusted_formula=True, **kwargs), args.calls, args.rounds),
        "simulate 1,200 rows, checked": _median(lambda: checked_model.simulate(data, seed=2), args.calls, args.rounds),
        "simulate 1,200 rows, trusted": _median(lambda: trusted_model.simulate(data, seed=2), args.calls, args.rounds),
    }
    for name, seconds in results.items():
        print(f"{name:32s} {seconds * 1e3:8.3f} ms")
    print(f"Model() checked / trusted:  {results['Model(), checked'] / results['Model(), trusted']:.2f}")
    print(f"simulate checked / trusted: {results['simulate 1,200 rows, checked'] / results['simulate 1,200 rows, trusted']:.2f}")
    for bomb in ["y ~ " + "*".join(f"x{i}" for i in range(24)), "y ~ (" + "+".join(f"x{i}" for i in range(24)) + ")**24"]:
        formula_safety._read.cache_clear()
        start = time.perf_counter()
        try:
            check_formula(bomb)
        except glmmsim.FormulaError:
            pass
        print(f"refusing {bomb[:24]}...: {(time.perf_counter() - start) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
