"""The ``glmmsim`` command line (``glmmsim simulate|describe|plot``); see :func:`main`."""

from .main import build_parser, main

__all__ = ["main", "build_parser"]
