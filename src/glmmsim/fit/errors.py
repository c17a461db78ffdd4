"""Errors of the fitting layer.

:class:`EngineError` means an engine cannot be used for this fit at all (not
installed, R or an R package missing, a term the engine cannot fit): it names
the engine that can. :class:`FitError` means a fit was attempted and failed
(the R process died or timed out, the engine raised): studies turn it into a
row of data, a direct call sees it raised.
"""

from __future__ import annotations

from ..errors import GlmmsimError

__all__ = ["EngineError", "FitError"]


class EngineError(GlmmsimError, RuntimeError):
    """The requested engine cannot fit this model here (missing, or lacking a feature)."""


class FitError(GlmmsimError, RuntimeError):
    """A fit was attempted and failed inside the engine."""
