"""The lme4 engine per replicate for each test (z, Satterthwaite, Kenward-Roger, LRT), now vs before.

The README's power model, ``rt ~ cond + (1 + cond | subject) + (1 | item)`` at 30
subjects x 20 items x 2 conditions (examples/power.yaml). For every test, one
replicate is: simulate, fit (REML), test. The previous implementation is run in the
same process, rounds interleaved, through the same R server:

* Kenward-Roger before: the test sent the response again and R fitted the model again
  (``contrast`` without the fit's token); now R reuses the fit it kept.
* LRT before: three requests, three ``lmerTest::lmer`` fits from scratch (REML, ML
  full, ML nested); now one request: the kept REML fit refitted by ML from its theta
  and the nested model started at that theta, both with ``lme4::lmer``.
* z and Satterthwaite did not change (one fit): measured for the table.

simr 1.0.8 is not installed here; its per-replicate times from issue 15 (measured side
by side with glmmsim on this model) are printed for comparison: LRT 284 ms.

Usage: ``python benchmarks/bench_lme4_tests.py [--replicates 20] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from glmmsim.analysis.replicates import keyed_conditions, row_key  # noqa: E402
from glmmsim.fit import prepare  # noqa: E402
from glmmsim.randomness import SeedTree  # noqa: E402
from glmmsim.study.spec import load_spec  # noqa: E402

SIMR_MS = {"lrt": 284.0}  # issue 15: simr 1.0.8 on this model, three interleaved rounds


def _setup():
    study = load_spec(str(ROOT / "examples" / "power.yaml"))
    model, design = study.model, study.conditions()
    key, occurrence = row_key(model, design)
    frame, cols = keyed_conditions(design, key, occurrence)
    bound = model.bind(frame, key=cols)
    fitter = prepare(model.formula, design, engine="lme4")
    return bound, fitter


def _responses(bound, n: int) -> list[np.ndarray]:
    tree = SeedTree(1)
    return [bound.simulate_response(tree.replicate(r).noise, population=tree.replicate(r).population)
            for r in range(n)]


def _old_kr(fitter, res, pos):
    L = np.zeros((1, len(fitter.design.fixed_names)))
    L[0, pos] = 1.0
    return fitter._prepare().contrast(res._y, L, reml=res.reml, ddf="Kenward-Roger", native=None)


def _old_lrt(fitter, res, pos):
    key = (pos,)
    fitter._lrt(res, [pos])  # makes sure the nested design is prepared (not timed: done once per study)
    nested = fitter._nested[key]
    full = fitter._prepare().fit(res._y, reml=False).loglik
    return max(0.0, 2.0 * (full - nested.fit(res._y, reml=False).loglik))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicates", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    bound, fitter = _setup()
    pos = fitter.design.fixed_names.index("cond[T.b]")
    ys = _responses(bound, args.replicates)
    contenders = {
        "z": lambda res: res.test("cond[T.b]", method="z"),
        "satterthwaite": lambda res: res.test("cond[T.b]", method="satterthwaite"),
        "kr (before)": lambda res: _old_kr(fitter, res, pos),
        "kr": lambda res: res.test("cond[T.b]", method="kr"),
        "lrt (before)": lambda res: _old_lrt(fitter, res, pos),
        "lrt": lambda res: res.test("cond[T.b]", method="lrt"),
    }
    for name, test in contenders.items():  # warm-up: R packages, nested designs
        test(fitter.fit(ys[0]))
    times: dict[str, list[float]] = {name: [] for name in contenders}
    agree: dict[str, float] = {}
    for rnd in range(args.rounds):
        order = list(contenders) if rnd % 2 == 0 else list(reversed(contenders))
        for name in order:
            start = time.perf_counter()
            for y in ys:
                contenders[name](fitter.fit(y))
            times[name].append(1000 * (time.perf_counter() - start) / len(ys))
    for y in ys[:5]:  # the faster tests give the same statistics
        res = fitter.fit(y)
        agree["kr"] = max(agree.get("kr", 0), abs(res.test("cond[T.b]", method="kr").p - _old_kr(fitter, res, pos)[2]))
        new = res.test("cond[T.b]", method="lrt").statistic
        agree["lrt"] = max(agree.get("lrt", 0), abs(new - _old_lrt(fitter, res, pos)) / max(new, 1e-12))
    print(f"lme4 engine, {args.replicates} replicates x {args.rounds} interleaved rounds, ms per replicate "
          f"(simulate + fit + test; median of rounds)")
    print(f"{'test':<16}{'ms':>9}{'vs before':>11}{'vs simr':>10}")
    for name in contenders:
        ms = statistics.median(times[name])
        base = name.split(" ")[0]
        before = statistics.median(times[f"{base} (before)"]) if f"{base} (before)" in times and "before" not in name else None
        ratio = f"{ms / before:.2f}" if before else ""
        simr = f"{ms / SIMR_MS[base]:.2f}" if base in SIMR_MS else ""
        print(f"{name:<16}{ms:>9.1f}{ratio:>11}{simr:>10}")
    print(f"largest difference from before on 5 replicates: KR p {agree['kr']:.2g}, LRT statistic (relative) "
          f"{agree['lrt']:.2g}")


if __name__ == "__main__":
    main()
