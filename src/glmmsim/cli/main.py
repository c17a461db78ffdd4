"""The ``glmmsim`` command line: one module per command, dispatched from here.

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
import time
import warnings
from collections.abc import Sequence
from typing import TextIO

from .. import __version__, interrupts
from ..errors import GlmmsimError, GlmmsimWarning
from . import app, describe, plot, power, recover, simulate

__all__ = ["main", "build_parser"]

# each command module has register(subparsers), which sets the command's run function
_COMMANDS = (simulate, describe, plot, power, recover, app)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``glmmsim`` command."""
    parser = argparse.ArgumentParser(
        prog="glmmsim",
        description="Simulate data from (generalized) linear mixed models written in lme4 formula syntax.",
    )
    parser.add_argument("--version", action="version", version=f"glmmsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command in _COMMANDS:
        command.register(sub)
    return parser


def _warning_printer(stderr: TextIO):
    """``warnings.showwarning`` replacement: glmmsim's own warnings as one line, like errors."""
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, GlmmsimWarning):
            print(f"glmmsim: warning: {' '.join(str(message).split())}", file=stderr)
        else:
            default(message, category, filename, lineno, file, line)

    return show


def _process_start() -> float:
    """When this process started (its interpreter start-up and imports count), or now if unknown."""
    try:
        import psutil  # installed with the [dask] extra (a dependency of distributed)

        return psutil.Process().create_time()
    except Exception:  # noqa: BLE001 - psutil missing, or the platform cannot tell
        return time.time()


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (captured in tests)
        pass

def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run the ``glmmsim`` command; return the exit status (0 on success).

    Errors in the spec, the data or the files are printed as one line
    ``glmmsim: error: ...`` on stderr (exit status 1); a usage error exits with 2.
    """
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        with interrupts.catching():
            status = _main(argv, stdout, stderr)
            interrupts.raise_if_interrupted()  # one that landed in a finalizer and was swallowed there
            return status
    except interrupts.Terminated:
        print("glmmsim: terminated", file=stderr)
        return 143
    except KeyboardInterrupt:  # anywhere, including while modules are still being imported
        print("glmmsim: interrupted", file=stderr)
        return 130


def _main(argv: Sequence[str] | None, stdout: TextIO, stderr: TextIO) -> int:
    started = time.time()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return int(exc.code or 0)
    # when the command was run on the command line, its time starts with the process
    args.started = _process_start() if argv is None else started
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_printer(stderr)
            return args.run(args, stdout, stderr)
    except BrokenPipeError:
        # the reader (e.g. `| head`) went away: stop quietly, as Unix tools do
        _silence_stdout()
        return 141
    except (GlmmsimError, OSError) as exc:  # YAML errors arrive as SpecErrors
        message = " ".join(str(exc).split())
        print(f"glmmsim: error: {message}", file=stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
