"""Regenerate the power and recovery numbers the documentation shows for examples/power.yaml.

Prints the outputs of the three commands shown in docs/tutorials/01-power-crossed-design.md,
docs/howto/power-options.md and docs/explanation/validation.md (tests/test_docs.py checks them),
and the common-random-numbers table of docs/explanation/keyed-randomness.md (MC SE of the
power differences between neighbouring points, with common and with independent seeds). Run it after a change to the draws and paste.

    python benchmarks/power_readme_numbers.py            # ~2-4 min of CPU
"""

from __future__ import annotations

import io
import pathlib
import tempfile

import numpy as np

import glmmsim
from glmmsim.cli import main
from glmmsim.design import crossed
from glmmsim.study import load_spec

ROOT = pathlib.Path(__file__).resolve().parents[1]
SPEC = str(ROOT / "examples" / "power.yaml")
POINTS = [20, 30, 40, 50, 60]


def cli(args: list[str]) -> str:
    out = io.StringIO()
    assert main(args, stdout=out, stderr=io.StringIO()) == 0
    return out.getvalue()


def crn_table() -> None:
    model = load_spec(SPEC).model
    design = lambda subjects: crossed(subjects=subjects, items=20, within={"cond": ["a", "b"]})  # noqa: E731
    curves = {crn: glmmsim.power_curve(model, design, along={"subjects": POINTS}, test="cond", nsim=1000, seed=1,
                                       crn=crn, progress=False) for crn in (True, False)}
    print("| step | power gain | MC SE, common seeds | MC SE, independent seeds | replicates changing verdict (common / independent) |")
    print("|---|---:|---:|---:|---:|")
    wide = {crn: c.simulations.pivot(index="replicate", columns="subjects", values="significant").astype(int)
            for crn, c in curves.items()}
    est = curves[True].simulations.pivot(index="replicate", columns="subjects", values="estimate")
    for a, b in zip(POINTS, POINTS[1:]):
        d = {crn: w[b] - w[a] for crn, w in wide.items()}
        se = {crn: x.std(ddof=1) / np.sqrt(len(x)) for crn, x in d.items()}
        print(f"| {a} -> {b} | {d[True].mean():.2f} | {se[True]:.3f} | {se[False]:.3f} | "
              f"{int((d[True] != 0).sum())} / {int((d[False] != 0).sum())} |")
    corr = [est[a].corr(est[b]) for a, b in zip(POINTS, POINTS[1:])]
    print(f"\ncorrelation of neighbouring points' estimates (common seeds): {min(corr):.2f}-{max(corr):.2f}")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        print(cli(["power", SPEC, "-q"]))
        along = ",".join(map(str, POINTS))
        print(cli(["power", SPEC, "-q", "--along", f"design.subjects={along}", "--out", f"{tmp}/curve.csv",
                   "--plot", f"{tmp}/curve.png"]).replace(f"{tmp}/", ""))
        print(cli(["recover", SPEC, "-q", "--out", f"{tmp}/recovery.csv", "--plot", f"{tmp}/recovery.png"])
              .replace(f"{tmp}/", ""))
    crn_table()
