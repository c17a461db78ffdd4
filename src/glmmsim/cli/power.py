"""``glmmsim power``: power of a study spec by simulation, at its design or along sample sizes."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import ParameterError, format_names
from ..outputs import OutputClaims
from .common import add_output_options, add_spec_options, check_outputs, discard_reporter, image_format, load_study, positive_int
from .seeds import add_root_seed_options, check_seed_overrides, root_seed, seeded

if TYPE_CHECKING:  # the study layer (pandas, formulaic) is imported when a command runs
    import pandas as pd

    from ..study.spec import Study

__all__ = ["register"]


def _executor(text: str) -> Any:
    if text in ("serial", "processes"):
        return text
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected 'serial', 'processes' or a number of processes; got {text!r}") from None


def add_study_options(p: argparse.ArgumentParser, section: str) -> None:
    """Options power and recover share (``section``: their spec section, power or recovery)."""
    add_root_seed_options(p, section)
    p.add_argument("--nsim", type=positive_int, metavar="N", help="replicates per design point")
    p.add_argument("--engine", metavar="NAME", help="fitting engine: auto (default: lmm for linear mixed models, glmm otherwise), lmm, glmm or lme4")
    p.add_argument("--fit-formula", metavar="FORMULA", help="analysis model, when it differs from the spec's model")
    p.add_argument("--executor", type=_executor, metavar="WHERE", help="serial (default), processes, or N processes")
    p.add_argument("--out", metavar="FILE", help="write the table as CSV")
    p.add_argument("--plot", metavar="FILE", help="save the figure (PNG, PDF, SVG)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_output_options(p)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``power`` command to the parser."""
    p = sub.add_parser("power", help="power to detect an effect, by simulating and refitting")
    add_spec_options(p, noise_seed=False)
    p.add_argument("--test", action="append", metavar="EFFECT", help="coefficient or term to test (repeatable; required here or as power.test in the spec)")
    p.add_argument("--along", action="append", default=[], metavar="PATH=V1,V2,...",
                   help="vary a spec value, e.g. design.subjects=10,20,30,40 (repeatable: a grid)")
    p.add_argument("--method", choices=["auto", "z", "satterthwaite", "lrt", "kr"], help="test (default auto)")
    p.add_argument("--alpha", type=float, metavar="A", help="significance level (default 0.05)")
    p.add_argument("--target", type=float, metavar="P", help="target power for the smallest design (default 0.8)")
    p.add_argument("--failures", choices=["exclude", "nonsignificant"], help="failed fits: excluded (default) or misses")
    p.add_argument("--simulations", metavar="FILE", help="write every replicate's test as CSV")
    p.add_argument("--checkpoint", metavar="DIR",
                   help="keep finished replicates in DIR as they complete; rerunning the same command continues "
                        "where it stopped, with identical results")
    add_study_options(p, "power")
    p.set_defaults(run=run)


def _column_names(paths: list[str]) -> dict[str, str]:
    """``design.subjects`` -> ``subjects`` (the full path where last parts would clash)."""
    last = [p.split(".")[-1] for p in paths]
    return {p: (name if last.count(name) == 1 else p) for p, name in zip(paths, last)}


def _point_studies(args: argparse.Namespace, columns: dict[str, str], root: int):
    """A loader of the spec with the along values of one point set (cached per point)."""
    from ..study.spec import load_spec

    cache: dict[tuple, Study] = {}
    path_of = {c: p for p, c in columns.items()}

    def study(**values: Any) -> Study:
        key = tuple(sorted((k, repr(v)) for k, v in values.items()))
        if key not in cache:
            sets = [("--along", f"{path_of[name]}={value}") for name, value in values.items()]
            cache[key] = seeded(load_spec(args.spec, overrides=[*args.overrides, *sets]), root)
        return cache[key]

    return study


def run(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from ..analysis import power, power_curve
    from ..study.study_sections import override_settings, parse_along, power_settings

    check_seed_overrides("power", [("--set", t) for t in args.overrides] + [("--along", t) for t in args.along])
    root = root_seed(args)
    study = load_study(args)
    settings = power_settings(study.sections, study.where, study.spec_path)
    settings = override_settings(settings, {
        "test": args.test, "nsim": args.nsim, "alpha": args.alpha, "method": args.method, "engine": args.engine,
        "fit_formula": args.fit_formula, "seed": root, "failures": args.failures, "target": args.target,
        "executor": args.executor, "out": args.out, "plot": args.plot, "simulations": args.simulations,
        "along": parse_along(args.along) or None,
    })
    check_seed_overrides("power", [("power.along", path) for path in settings.along])
    if not settings.test:
        _no_test(study, settings.fit_formula)
    if settings.plot and not settings.along:  # said before the simulations, not after them
        raise ParameterError("--plot draws a power curve: give --along (or power.along in the spec)")
    check_outputs(study, {"out": settings.out, "simulations": settings.simulations, "plot": settings.plot},
                  force=args.force, images=("plot",))
    study = seeded(study, settings.seed)
    common = dict(test=settings.test, nsim=settings.nsim, alpha=settings.alpha, method=settings.method,
                  engine=settings.engine, fit_formula=settings.fit_formula, seed=settings.seed,
                  executor=settings.executor, progress=not args.quiet, failures=settings.failures,
                  checkpoint=args.checkpoint)
    if not settings.along:
        res = power(study.model, study.conditions(), **common)
        print(res.summary(), file=stdout)
        table = res.table.reset_index()
        _write(settings, table, res.simulations, None, args, stdout, stderr)
        return 0
    columns = _column_names(list(settings.along))
    point = _point_studies(args, columns, settings.seed)
    along = {columns[p]: v for p, v in settings.along.items()}
    curve = power_curve(lambda **v: point(**v).model, lambda **v: point(**v).conditions(), along=along, **common)
    print(curve, file=stdout)
    best = curve.smallest(settings.target)
    where = ", ".join(f"{n} = {best[n]}" for n in curve.along) if best is not None else None
    if best is None:
        print(f"no point reaches power {settings.target:g}", file=stdout)
    else:
        print(f"smallest design reaching power {settings.target:g}: {where} "
              f"(power {best['power']:.3f}, 95% CI {best['ci_low']:.3f} to {best['ci_high']:.3f})", file=stdout)
    _write(settings, curve.table, curve.simulations, curve, args, stdout, stderr)
    return 0


def _no_test(study, fit_formula: str | None) -> None:
    """Refuse a run without a test, naming the coefficients and terms it could test."""
    from ..analysis.power import effect_names

    coefficients, terms = effect_names(study.model, study.conditions(), fit_formula)
    raise ParameterError(f"no test: pass --test EFFECT or set power.test in the spec; the analysis model's "
                         f"coefficients: {format_names(coefficients)}; its terms: {format_names(terms)}",
                         parameter="test")


def _write(settings, table: pd.DataFrame, simulations: pd.DataFrame, curve, args: argparse.Namespace,
           stdout: TextIO, stderr: TextIO) -> None:
    """Write the outputs together: each appears whole at its path when all are written, or none does."""
    written = []
    with OutputClaims(force=args.force, on_discard=discard_reporter(stderr)) as outs:
        if settings.out:
            table.to_csv(outs.add(settings.out, option="out"), index=False)
            written.append(f"table -> {settings.out}")
        if settings.simulations:
            simulations.to_csv(outs.add(settings.simulations, option="simulations"), index=False)
            written.append(f"simulations -> {settings.simulations}")
        if settings.plot:
            ax = curve.plot(settings.target)
            ax.figure.savefig(outs.add(settings.plot, option="plot"), dpi=120, format=image_format(settings.plot))
            written.append(f"plot -> {settings.plot}")
    for line in written:  # said once the files are there
        print(line, file=stdout)
