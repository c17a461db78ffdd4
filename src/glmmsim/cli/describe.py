"""``glmmsim describe``: print a study's model as lme4 prints a fit."""

from __future__ import annotations

import argparse
from typing import TextIO

from .common import add_spec_options, load_study

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``describe`` command to the parser."""
    p = sub.add_parser("describe", help="print the model as lme4 prints a fit, with the design's sizes")
    add_spec_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from ..lme4.summary import describe_study

    print(describe_study(load_study(args)), file=stdout)
    return 0
