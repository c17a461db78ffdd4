"""``glmmsim app``: start the power planner in the browser (needs the ``app`` extra)."""

from __future__ import annotations

import argparse
from typing import TextIO

from ..errors import ParameterError

__all__ = ["register"]


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number 1-65535; got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 1-65535; got {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``app`` command to the parser."""
    p = sub.add_parser("app", help="power planner in the browser (needs glmmsim[app])")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_port, default=8000, help="port (default 8000)")
    p.add_argument("--no-browser", dest="browser", action="store_false", help="do not open the default browser")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    try:
        import shiny  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ParameterError(f"glmmsim app needs the app extra: pip install 'glmmsim[app]' ({exc})") from None
    # layering: the planner sits beside the command line; this command only starts it
    from ..app import serve

    serve(args.host, args.port, open_browser=args.browser)
    return 0
