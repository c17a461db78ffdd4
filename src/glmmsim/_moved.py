"""Modules that moved when glmmsim grew subpackages: importing an old path names the new one.

``import glmmsim.families`` raises an ImportError that says to import
``glmmsim.model.families`` instead, rather than a bare "No module named".
"""

from __future__ import annotations

import importlib.abc
import sys

__all__ = ["MOVED", "install"]

#: old module path -> new module path
MOVED = {
    "glmmsim.formula": "glmmsim.model.formula",
    "glmmsim.terms": "glmmsim.model.terms",
    "glmmsim.matrices": "glmmsim.model.matrices",
    "glmmsim.names": "glmmsim.model.names",
    "glmmsim.parameters": "glmmsim.model.parameters",
    "glmmsim.draws": "glmmsim.randomness.streams",
    "glmmsim.families": "glmmsim.model.families",
    "glmmsim.theta": "glmmsim.lme4.theta",
    "glmmsim.spec": "glmmsim.study.spec",
}


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname in MOVED:
            raise ImportError(
                f"{fullname} moved to {MOVED[fullname]} in glmmsim 0.2; import it from there",
                name=fullname,
            )
        return None


def install() -> None:
    """Put the finder on ``sys.meta_path`` once."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
