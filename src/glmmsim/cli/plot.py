"""``glmmsim plot``: draw a study to an image file."""

from __future__ import annotations

import argparse
from typing import TextIO

from ..outputs import claim
from .common import (
    add_output_options, add_spec_options, check_image_path, check_output_path, discard_reporter, image_format, load_study,
    positive_int,
)

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``plot`` command to the parser."""
    p = sub.add_parser("plot", help="draw the study to an image file")
    add_spec_options(p)
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
        "--max-lines", type=positive_int, default=12, help="spaghetti: at most this many units (default 12)"
    )
    p.add_argument("--dpi", type=positive_int, default=150, help="resolution of raster images (default 150, fit for print)")
    add_output_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from ..plot import choose_plot_kind, plot_model  # matplotlib is imported only for this command

    study = load_study(args)
    check_image_path(args.out)
    check_output_path(args.out, study, args.force)
    data = study.simulate()
    kind = choose_plot_kind(study.model, data, args.kind)
    kwargs: dict[str, object] = {}
    if kind in ("spaghetti", "interaction") and args.x:
        kwargs["x"] = args.x
    if kind == "interaction" and args.trace is not None:
        kwargs["trace"] = args.trace
    if kind in ("spaghetti", "interaction", "caterpillar", "pairs") and args.factor:
        kwargs["factor"] = args.factor
    if kind == "spaghetti":
        kwargs["max_lines"] = args.max_lines
    fig = plot_model(study.model, data, kind=kind, **kwargs)
    with claim(args.out, force=args.force, option="out", on_discard=discard_reporter(stderr)) as partial:
        fig.savefig(partial, dpi=args.dpi, format=image_format(args.out))
    print(f"wrote {kind} plot of {study.source} -> {args.out}", file=stdout)
    return 0

