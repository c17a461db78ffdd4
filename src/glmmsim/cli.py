"""The ``glmmsim`` command line: simulate, describe and plot a study spec.

Examples
--------
>>> main(["--version"])  # doctest: +ELLIPSIS
glmmsim ...
0
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import TextIO

import numpy as np
import pandas as pd
import yaml

from . import __version__
from .errors import GlmmsimError, GlmmsimWarning, ParameterError, format_names
from .formula import parse_formula
from .names import categorical_levels, lme4_name
from .spec import Study, load_spec, write_data
from .theta import lme4_terms

__all__ = ["main", "describe_study", "build_parser"]


# ---------------------------------------------------------------------------
# argument parsing
# ---------------------------------------------------------------------------


def _add_spec_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="study spec file (YAML)")
    p.add_argument("--seed", type=int, metavar="N", help="noise seed: a new sample of the same population and design")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a spec value, e.g. --set fixed.x1=0.3 or --set design.subjects=80 (repeatable)",
    )


def _positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (a usage error otherwise, not a traceback later)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1; got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``glmmsim`` command."""
    parser = argparse.ArgumentParser(
        prog="glmmsim",
        description="Simulate data from (generalized) linear mixed models written in lme4 formula syntax.",
    )
    parser.add_argument("--version", action="version", version=f"glmmsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("simulate", help="simulate data from a study spec and write CSV or Parquet")
    _add_spec_options(p)
    p.add_argument("-o", "--out", metavar="FILE", help="output file (.csv, .csv.gz, .tsv, .parquet); '-' for CSV on stdout")
    p.add_argument("--format", choices=["csv", "parquet"], help="output format (default: from the extension)")
    p.add_argument("--replicates", type=_positive_int, metavar="K", help="write K datasets with a 'replicate' column")
    p.add_argument(
        "--fixed-population",
        action="store_true",
        help="replicates share one population (same random effects); default: each draws new subjects/items",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no summary, no progress bar")

    p = sub.add_parser("describe", help="print the model as lme4 prints a fit, with the design's sizes")
    _add_spec_options(p)

    p = sub.add_parser("plot", help="draw the study to an image file")
    _add_spec_options(p)
    p.add_argument("-o", "--out", metavar="PNG", required=True, help="image file (.png, .pdf, .svg)")
    p.add_argument(
        "--kind",
        default="auto",
        choices=["auto", "spaghetti", "interaction", "caterpillar", "pairs"],
        help="auto (default): spaghetti if the formula has a numeric predictor, else interaction",
    )
    p.add_argument("--x", help="predictor on the horizontal axis (spaghetti, interaction)")
    p.add_argument("--trace", help="condition drawn as separate lines (interaction)")
    p.add_argument("--factor", help="grouping factor to draw (spaghetti, caterpillar, pairs)")
    p.add_argument(
        "--max-lines", type=_positive_int, default=12, help="spaghetti: at most this many units (default 12)"
    )
    p.add_argument("--dpi", type=_positive_int, default=100, help="resolution of raster images (default 100)")
    return parser


# ---------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------


def _load(args: argparse.Namespace) -> Study:
    return load_spec(args.spec, overrides=args.overrides, seed=args.seed)


def _cmd_simulate(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    study = _load(args)
    out = args.out or study.output["file"]
    if not out:
        raise ParameterError("no output file: pass --out FILE or set output.file in the spec")
    k = args.replicates if args.replicates is not None else study.output["replicates"]  # both >= 1
    fmt = args.format or study.output["format"]
    frames: Iterator[pd.DataFrame]
    if k == 1:
        frames = iter([study.simulate()])
    else:
        frames = _progress(study.replicates(k, vary_population=not args.fixed_population), k, args.quiet, stderr)
    first: list[pd.DataFrame] = []

    def remember(it: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for frame in it:
            if not first:
                first.append(frame)
            yield frame

    if out == "-":
        if fmt not in (None, "csv"):
            raise ParameterError("only CSV can be written to stdout ('--out -')")
        for i, frame in enumerate(remember(frames)):
            frame.to_csv(stdout, index=False, header=i == 0)
        fmt = "csv"
    else:
        fmt = write_data(remember(frames), out, fmt)
    if not args.quiet:
        print(_summary(study, first[0], k, out, fmt), file=stderr if out == "-" else stdout)
    return 0


def _progress(frames: Iterator[pd.DataFrame], k: int, quiet: bool, stderr: TextIO) -> Iterator[pd.DataFrame]:
    from tqdm import tqdm

    yield from tqdm(frames, total=k, desc="replicates", unit="dataset", file=stderr, disable=quiet)


def _summary(study: Study, data: pd.DataFrame, k: int, out: str, fmt: str) -> str:
    model = study.model
    y = pd.to_numeric(data[model.response], errors="coerce")
    groups = ", ".join(f"{n} {f}" for f, n in _group_counts(study, data).items())
    rows = f"{len(data)} rows" + (f" x {k} replicates" if k > 1 else "")
    where = "stdout" if out == "-" else out
    return (
        f"simulated {rows} ({groups}) -> {where} ({fmt})\n"
        f"response {model.response}: mean {y.mean():.4g}, sd {y.std():.4g}, min {y.min():.4g}, max {y.max():.4g}"
    )


def _group_counts(study: Study, data: pd.DataFrame) -> dict[str, int]:
    model = study.model
    return {f: len(data[list(cols)].drop_duplicates()) for f, cols in model.factor_columns.items()}


def _cmd_describe(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    print(describe_study(_load(args)), file=stdout)
    return 0


def _cmd_plot(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from .plot import plot_model, resolve_kind  # matplotlib is imported only for this command

    study = _load(args)
    _check_image_path(args.out)
    data = study.simulate()
    kind = resolve_kind(study.model, data, args.kind)
    kwargs: dict[str, object] = {}
    if kind in ("spaghetti", "interaction") and args.x:
        kwargs["x"] = args.x
    if kind == "interaction" and args.trace is not None:
        kwargs["trace"] = args.trace
    if kind in ("spaghetti", "caterpillar", "pairs") and args.factor:
        kwargs["factor"] = args.factor
    if kind == "spaghetti":
        kwargs["max_lines"] = args.max_lines
    fig = plot_model(study.model, data, kind=kind, **kwargs)
    fig.savefig(args.out, dpi=args.dpi)
    print(f"wrote {kind} plot of {study.source} -> {args.out}", file=stdout)
    return 0


def _check_image_path(path: str) -> None:
    from matplotlib.figure import Figure

    formats = Figure().canvas.get_supported_filetypes()
    ext = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if ext not in formats:
        raise ParameterError(
            f"cannot tell the image format of {path!r}; use an extension of {format_names(sorted(formats))}"
        )


# ---------------------------------------------------------------------------
# lme4-style description
# ---------------------------------------------------------------------------


def describe_study(study: Study) -> str:
    """The model and design as text, laid out like lme4's summary of a fit.

    Random-effect terms come in lme4's order (decreasing number of levels in the
    design, see :func:`glmmsim.theta.to_theta`) under lme4's factor names
    (``class:school`` for ``(1 | school/class)``); the family line is lme4's,
    absent for a gaussian model with identity link, as in ``summary(lmer(...))``.
    """
    model = study.model
    data = study.conditions()
    levels = categorical_levels(data)
    rows = _random_rows(model, data)
    family = _family_line(model)
    lines = [
        f"Simulation model (glmmsim {__version__}) from {study.source}",
        *([family] if family else []),
        f"Formula: {model.formula}",
        f" Design: {study.design_type}; seeds: " + ", ".join(f"{k} {_seed_text(v)}" for k, v in study.seeds.items()),
        "",
        "Random effects:",
        *_random_table(rows, _residual_sd(model.family), levels),
        f"Number of obs: {len(data)}, groups:  " + "; ".join(f"{f}, {n}" for f, n in _lme4_group_counts(study, data, rows)),
        "",
        "Fixed effects:",
        *_fixed_table(model, levels),
    ]
    return "\n".join(lines)


# families lme4 fits, with the name its family object prints
_LME4_FAMILY_NAMES = {
    "gaussian": "gaussian",
    "binomial": "binomial",
    "poisson": "poisson",
    "gamma": "Gamma",
    "inverse_gaussian": "inverse.gaussian",
}


def _r_number(value: float) -> str:
    """``value`` as R's ``format()`` prints it (7 significant digits, no trailing zeros)."""
    return f"{value:.7g}"


def _family_line(model) -> str | None:
    """lme4's `` Family: binomial  ( logit )`` line; ``None`` where lme4 prints none (``lmer``).

    Families lme4 cannot fit get a line saying what the linear predictor and the
    Residual row of the table mean on their scale.
    """
    fam = model.family
    link = fam.link.name
    if fam.name == "gaussian" and link == "identity":
        return None
    if fam.name in _LME4_FAMILY_NAMES:
        return f" Family: {_LME4_FAMILY_NAMES[fam.name]}  ( {link} )"
    if fam.name == "negative_binomial":  # glmer.nb: MASS names the family with theta rounded to 4 decimals
        return f" Family: Negative Binomial({_r_number(round(fam.params['theta'], 4))})  ( {link} )"
    y = model.response
    if fam.name == "shifted_lognormal":
        scale = f"log({y} - shift)"
        return (
            f" Family: shifted_lognormal (shift = {_r_number(fam.params['shift'])}; {link} link: "
            f"eta = mean of {scale}, Residual = SD of {scale})"
        )
    if fam.name == "lognormal":
        return f" Family: lognormal ({link} link: eta = mean of log({y}), Residual = SD of log({y}))"
    if fam.name == "exgaussian":
        return (
            f" Family: exgaussian (tau = {_r_number(fam.params['tau'])} = mean of the exponential part; "
            f"{link} link: eta = mean of the Gaussian part of {y}, Residual = its SD)"
        )
    return f" Family: {fam.describe()}"


def _residual_sd(family) -> float | None:
    """The Residual row's SD: lme4's ``sigma()`` (the CV of a Gamma, sqrt(dispersion) of an inverse Gaussian)."""
    params = family.params
    if "sigma" in params:  # includes Gamma, whose params list sigma = 1/sqrt(shape)
        return float(params["sigma"])
    if family.name == "inverse_gaussian":
        return float(np.sqrt(params["dispersion"]))
    return None


def _lme4_factor_name(group: str, depth: int) -> str:
    """lme4's name of the ``depth``-th factor of the written group ``a/b/c``: ``a``, ``b:a``, ``c:(b:a)``."""
    parts = group.split("/")
    name = parts[0]
    for j in range(1, depth + 1):
        name = f"{parts[j]}:{name}" if j == 1 else f"{parts[j]}:({name})"
    return name


def _unique_labels(names: Sequence[str]) -> list[str]:
    """R's ``make.unique``: repeated names get ``.1``, ``.2``, ... (lme4's ``g``, ``g.1`` for ``(x || g)``)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        k = seen.get(name, 0)
        out.append(name if k == 0 else f"{name}.{k}")
        seen[name] = k + 1
    return out


def _random_rows(model, data: pd.DataFrame) -> list[tuple[str, str, object]]:
    """Per random-effect term in lme4's order: (lme4 factor name, glmmsim factor, covariance)."""
    bars = parse_formula(model.formula).bars
    out = []
    for term, cov in lme4_terms(model, data):
        bar_no, _, neg_depth = term.lme4_rank
        out.append((_lme4_factor_name(bars[bar_no].group, -neg_depth), term.factor, cov))
    return out


def _lme4_group_counts(study: Study, data: pd.DataFrame, rows: Sequence[tuple]) -> list[tuple[str, int]]:
    counts = _group_counts(study, data)
    out: dict[str, int] = {}
    for name, factor, _ in rows:
        out.setdefault(name, counts[factor])
    return list(out.items())


def _seed_text(seed: object) -> str:
    if seed is None:
        return "none"
    if isinstance(seed, np.random.SeedSequence):
        return f"{seed.entropy}/{'.'.join(map(str, seed.spawn_key))}"
    return str(seed)


def _decimals(value: float, digits: int = 4) -> int:
    """Fewest decimals showing ``value`` to ``digits`` significant digits without trailing zeros."""
    if value == 0.0 or not np.isfinite(value):
        return 0
    full = max(digits - 1 - int(np.floor(np.log10(abs(value)))), 0)
    for d in range(full + 1):
        if round(value, d) == round(value, full):
            return d
    return full


def _column(values: Sequence[float]) -> list[str]:
    """Numbers formatted with one common number of decimals, like R's ``format(x, digits = 4)``."""
    d = max([_decimals(float(v)) for v in values] + [0])
    return [f"{float(v):.{d}f}" for v in values]


def _table(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        out.append(" " + " ".join(cells).rstrip())
    return out


def _random_table(rows: Sequence[tuple], residual: float | None, levels: dict) -> list[str]:
    names: list[tuple[str, str, str]] = []
    sds: list[float] = []
    labels = _unique_labels([name for name, _, _ in rows])
    for label, (_, _, cov) in zip(labels, rows):
        for i, coef in enumerate(cov.coefs):
            corr_text = " ".join(f"{cov.corr[i, j]:5.2f}" for j in range(i)) if i else ""
            names.append((label if i == 0 else "", lme4_name(coef, levels), corr_text))
            sds.append(float(cov.sd[i]))
    if residual is not None:
        names.append(("Residual", "", ""))
        sds.append(residual)
    variances, stds = _column([s**2 for s in sds]), _column(sds)
    rows_out = [["Groups", "Name", "Variance", "Std.Dev.", "Corr"]]
    rows_out += [[g, n, v, s, c] for (g, n, c), v, s in zip(names, variances, stds)]
    if not any(len(cov.coefs) > 1 for _, _, cov in rows):  # lme4 drops the column when no term has one
        rows_out = [r[:4] for r in rows_out]
    return _table(rows_out, right={2, 3})


def _fixed_table(model, levels: dict) -> list[str]:
    values = _column(list(model.fixed.values()))
    rows = [["", "Value"]] + [[lme4_name(c, levels), v] for c, v in zip(model.fixed, values)]
    return _table(rows, right={1})


def _warning_printer(stderr: TextIO):
    """``warnings.showwarning`` replacement: glmmsim's own warnings as one line, like errors."""
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, GlmmsimWarning):
            print(f"glmmsim: warning: {' '.join(str(message).split())}", file=stderr)
        else:
            default(message, category, filename, lineno, file, line)

    return show


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (captured in tests)
        pass


# ---------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------

_COMMANDS = {"simulate": _cmd_simulate, "describe": _cmd_describe, "plot": _cmd_plot}


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run the ``glmmsim`` command; return the exit status (0 on success).

    Errors in the spec, the data or the files are printed as one line
    ``glmmsim: error: ...`` on stderr (exit status 1); a usage error exits with 2.
    """
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return int(exc.code or 0)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_printer(stderr)
            return _COMMANDS[args.command](args, stdout, stderr)
    except BrokenPipeError:
        # the reader (e.g. `| head`) went away: stop quietly, as Unix tools do
        _silence_stdout()
        return 141
    except (GlmmsimError, OSError, yaml.YAMLError) as exc:
        message = " ".join(str(exc).split())
        print(f"glmmsim: error: {message}", file=stderr)
        return 1
    except KeyboardInterrupt:
        print("glmmsim: interrupted", file=stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
