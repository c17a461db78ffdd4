"""Pieces every spec-reading command shares: the spec options, argument types, loading."""

from __future__ import annotations

import argparse

from ..study.spec import Study, load_spec

__all__ = ["add_spec_options", "positive_int", "load_study"]


def add_spec_options(p: argparse.ArgumentParser) -> None:
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


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (a usage error otherwise, not a traceback later)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1; got {value}")
    return value


def load_study(args: argparse.Namespace) -> Study:
    return load_spec(args.spec, overrides=args.overrides, seed=args.seed)
