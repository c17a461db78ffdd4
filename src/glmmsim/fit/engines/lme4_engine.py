"""The ``lme4`` engine (work in progress on branch fit)."""

from __future__ import annotations

from ..errors import EngineError


class Lme4Engine:
    name = "lme4"

    def available(self) -> bool:
        return False

    def prepare(self, design):
        raise EngineError("engine 'lme4' is not available yet")
