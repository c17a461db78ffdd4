"""``glmmsim recover``: parameter recovery of a study spec (bias, RMSE, coverage per parameter)."""

from __future__ import annotations

import argparse
from typing import TextIO

from ..outputs import OutputClaims
from .common import add_spec_options, check_outputs, discard_reporter, image_format, load_study
from .power import add_study_options
from .seeds import check_seed_overrides, root_seed, seeded

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``recover`` command to the parser."""
    p = sub.add_parser("recover", help="simulate, refit and compare estimates with the truth")
    add_spec_options(p, noise_seed=False)
    add_study_options(p, "recovery")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from ..analysis import recovery
    from ..study.study_sections import override_settings, recovery_settings

    check_seed_overrides("recover", [("--set", t) for t in args.overrides])
    root = root_seed(args)
    study = load_study(args)
    settings = recovery_settings(study.sections, study.where, study.spec_path)
    settings = override_settings(settings, {
        "nsim": args.nsim, "engine": args.engine, "fit_formula": args.fit_formula, "seed": root,
        "executor": args.executor, "out": args.out, "plot": args.plot,
    })
    check_outputs(study, {"out": settings.out, "plot": settings.plot}, force=args.force, images=("plot",))
    study = seeded(study, settings.seed)
    rec = recovery(study.model, study.conditions(), nsim=settings.nsim, engine=settings.engine, seed=settings.seed,
                   executor=settings.executor, progress=not args.quiet, fit_formula=settings.fit_formula)
    print(rec.summary(), file=stdout)
    written = []
    with OutputClaims(force=args.force, on_discard=discard_reporter(stderr)) as outs:  # all whole, or none
        if settings.out:
            rec.table.to_csv(outs.add(settings.out, option="out"))
            written.append(f"table -> {settings.out}")
        if settings.plot:
            rec.plot().savefig(outs.add(settings.plot, option="plot"), dpi=120, format=image_format(settings.plot))
            written.append(f"plot -> {settings.plot}")
    for line in written:
        print(line, file=stdout)
    return 0
