"""The services a study needs from the rest of glmmsim, in one place.

* ``bind(model, conditions, key)`` -> :class:`~glmmsim.model.bound.BoundModel`
  (``simulate_response(seed, population=)``);
* ``seed_tree(seed)`` -> :class:`~glmmsim.randomness.seeds.SeedTree` (``replicate(r)``, ``child(...)``);
* ``prepare_fit(formula, data, ...)`` -> a prepared fitter (``fit(y) -> FitResult``).
* ``resolve_engine(engine, family, link)`` -> the engine name ``"auto"`` stands for (lmm or glmm).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..randomness.seeds import SeedTree

__all__ = ["bind", "seed_tree", "prepare_fit", "resolve_engine"]


def bind(model: Any, conditions: pd.DataFrame, key: list[str] | None) -> Any:
    return model.bind(conditions, key=key)


def seed_tree(seed: Any) -> SeedTree:
    return SeedTree(seed)


def prepare_fit(formula: str, data: pd.DataFrame, **kwargs: Any) -> Any:
    from ..fit import prepare  # imported late: the fit layer loads its engines on first use

    return prepare(formula, data, **kwargs)


def resolve_engine(engine: str, family: str, link: str) -> str:
    from ..fit.protocol import resolve_engine as resolve

    return resolve(engine, family, link)
