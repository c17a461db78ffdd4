"""Pieces every spec-reading command shares: the spec options, argument types, loading."""

from __future__ import annotations

import argparse
import os

from typing import TYPE_CHECKING, TextIO

from ..errors import ParameterError, format_names
from ..outputs import check_distinct, check_target

if TYPE_CHECKING:  # the study layer (pandas, formulaic) is imported when a command runs
    from ..study.spec import Study

__all__ = [
    "add_spec_options", "add_output_options", "positive_int", "load_study", "check_output_path", "check_outputs",
    "check_image_path", "image_format", "discard_reporter",
]


def add_spec_options(p: argparse.ArgumentParser, *, noise_seed: bool = True) -> None:
    """The spec and ``--set``; ``--seed`` replaces seeds.noise unless ``noise_seed`` is false (power
    and recover add their own ``--seed``, the root of the study's seeds: cli/seeds.py)."""
    p.add_argument("spec", help="study spec file (YAML)")
    if noise_seed:
        p.add_argument("--seed", type=int, metavar="N", help="noise seed: a new sample of the same population and design")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a spec value, e.g. --set fixed.x1=0.3 or --set design.subjects=80 (repeatable)",
    )


def add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true", help="overwrite an existing output file (never the spec or an input)")


def check_output_path(out: str, study: Study, force: bool, *, option: str = "out") -> None:
    """Before any work: refuse to write over the spec or an input file (ever), an existing file
    (without --force), or anything that is not a regular file (a FIFO, a device: never opened).

    ``out`` is taken relative to the working directory, as any command-line path. This check
    only fails early; the output is claimed atomically when it is written (glmmsim.outputs).
    """
    if out == "-":
        return
    target = os.path.realpath(out)
    for source in study.input_files():
        same = os.path.realpath(source) == target
        if not same and os.path.exists(out):
            try:
                same = os.path.samefile(source, out)  # hard links
            except OSError:
                same = False
        if same:
            raise ParameterError(f"output file {out!r} is an input of the study ({source}); choose another file", path=(option,))
    check_target(out, force=force, option=option)


def check_outputs(study: Study, outputs: dict[str, str | None], *, force: bool, images: tuple[str, ...] = ()) -> None:
    """Before any work: every output of a command (option -> path) can be written, none is
    the same file as another, and the image outputs (``images``: their options) have an image
    extension."""
    check_distinct(outputs)
    for option, path in outputs.items():
        if path:
            if option in images:
                check_image_path(path)
            check_output_path(path, study, force, option=option)


def discard_reporter(stderr: TextIO):
    """Tell the user which partial output was removed after an error or Ctrl-C (and that the
    target was not written)."""

    def report(target: str, partial: str) -> None:
        print(f"glmmsim: removed the incomplete output {partial!r}; {target!r} was not written", file=stderr)

    return report


def check_image_path(path: str) -> None:
    """Refuse an image file name whose extension matplotlib cannot save (before anything is drawn)."""
    from matplotlib.figure import Figure

    formats = Figure().canvas.get_supported_filetypes()
    ext = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if ext not in formats:
        raise ParameterError(
            f"cannot tell the image format of {path!r}; use an extension of {format_names(sorted(formats))}"
        )


def image_format(path: str) -> str:
    """The image format of ``path`` from its extension (passed to savefig explicitly, since the
    file written first is a partial file).

    >>> image_format("curve.PNG")
    'png'
    """
    return path.rsplit(".", 1)[-1].lower()


def positive_int(text: str, *, expected: str = "a whole number >= 1") -> int:
    """argparse type: a whole number >= 1 (a usage error otherwise, not a traceback later).

    ``expected`` words the error, for a type that accepts more (e.g. also ``auto``).
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected {expected}; got {value}")
    return value


def load_study(args: argparse.Namespace) -> Study:
    from ..study.spec import load_spec

    # a run in partitions (simulate --partitions/--scheduler) never builds the whole design here
    partitioned = bool(getattr(args, "partitions", None) or getattr(args, "scheduler", None))
    return load_spec(args.spec, overrides=args.overrides, seed=args.seed, partitioned=partitioned)
