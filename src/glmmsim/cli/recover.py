"""``glmmsim recover``: parameter recovery of a study spec (bias, RMSE, coverage per parameter)."""

from __future__ import annotations

import argparse
from typing import TextIO

from .common import add_spec_options, load_study
from .power import add_study_options, check_outputs

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``recover`` command to the parser."""
    p = sub.add_parser("recover", help="simulate, refit and compare estimates with the truth")
    add_spec_options(p)
    add_study_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from ..analysis import recovery
    from ..study.study_sections import recovery_settings, with_options

    study = load_study(args)
    settings = recovery_settings(study.sections, study.where, study.spec_path)
    settings = with_options(settings, {
        "nsim": args.nsim, "engine": args.engine, "fit_formula": args.fit_formula, "seed": args.study_seed,
        "executor": args.executor, "out": args.out, "plot": args.plot,
    })
    check_outputs(study, settings.out, plot=settings.plot)
    rec = recovery(study.model, study.conditions(), nsim=settings.nsim, engine=settings.engine, seed=settings.seed,
                   executor=settings.executor, progress=not args.quiet, fit_formula=settings.fit_formula)
    print(rec.summary(), file=stdout)
    if settings.out:
        rec.table.to_csv(settings.out)
        print(f"table -> {settings.out}", file=stdout)
    if settings.plot:
        rec.plot().savefig(settings.plot, dpi=120)
        print(f"plot -> {settings.plot}", file=stdout)
    return 0
