"""Helpers of the command-line tests."""

from __future__ import annotations

import io
import pathlib

from glmmsim.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[2]


def run(*argv: object) -> tuple[int, str, str]:
    """``glmmsim ARGV`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = main([str(a) for a in argv], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def copy_power_spec(folder: pathlib.Path) -> pathlib.Path:
    """examples/power.yaml copied into ``folder`` (a spec's outputs stay in its folder)."""
    path = folder / "power.yaml"
    path.write_text((ROOT / "examples" / "power.yaml").read_text())
    return path
