"""Seed handling following numpy / scikit-learn conventions.

A ``seed`` argument anywhere in glmmsim accepts ``None`` (fresh OS entropy), an
int, a :class:`numpy.random.SeedSequence` or a :class:`numpy.random.Generator`.
"""

from __future__ import annotations

import numbers
from typing import Union

import numpy as np

from .errors import InputTypeError

SeedLike = Union[None, int, np.integer, np.random.SeedSequence, np.random.Generator]

__all__ = ["SeedLike", "as_generator", "as_seed_sequence", "seed_key"]


def _check(seed: object, argname: str) -> None:
    if seed is None or isinstance(seed, (np.random.SeedSequence, np.random.Generator)):
        return
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise InputTypeError(
            f"{argname} must be None, a non-negative int, a numpy SeedSequence or a numpy "
            f"Generator; got {type(seed).__name__} {seed!r}"
        )
    if int(seed) < 0:
        raise InputTypeError(f"{argname} must be a non-negative int; got {seed}")


def as_seed_sequence(seed: SeedLike, argname: str = "seed") -> np.random.SeedSequence:
    """Turn any accepted seed into a SeedSequence (a Generator is asked for fresh entropy)."""
    _check(seed, argname)
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, np.random.Generator):
        return np.random.SeedSequence(seed.integers(0, 2**63, size=4, dtype=np.uint64).tolist())
    return np.random.SeedSequence(None if seed is None else int(seed))


def as_generator(seed: SeedLike, argname: str = "seed") -> np.random.Generator:
    """Return a Generator: the one passed, or a new one seeded from ``seed``.

    Examples
    --------
    >>> as_generator(3).standard_normal() == as_generator(3).standard_normal()
    True
    """
    _check(seed, argname)
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(as_seed_sequence(seed, argname))


def seed_key(seed: SeedLike, argname: str = "seed") -> int:
    """A 64-bit key derived from ``seed``; the root of every persistent random-effect draw.

    Equal int seeds (or equal SeedSequences) give equal keys on every machine.
    """
    state = as_seed_sequence(seed, argname).generate_state(1, dtype=np.uint64)
    return int(state[0])
