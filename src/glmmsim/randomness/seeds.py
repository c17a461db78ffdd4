"""Seed handling following numpy / scikit-learn conventions, and the seed tree.

A ``seed`` argument anywhere in glmmsim accepts ``None`` (fresh OS entropy), an
int, a :class:`numpy.random.SeedSequence` or a :class:`numpy.random.Generator`.
Every seed is turned into one 64-bit key (:func:`seed_key`); a Generator is used
once, to draw that key, and is not used again.

Named child seeds (per replicate, per purpose) come from :class:`SeedTree`: a
child's key is a pure hash of its parent's key and its name, so deriving it
twice, in another process or on another machine gives the same key.
"""

from __future__ import annotations

import functools
import hashlib
import numbers
from typing import NamedTuple, Union

import numpy as np

from ..errors import InputTypeError

#: What every ``seed=`` argument accepts: None (fresh entropy), an int, a SeedSequence, a
#: Generator (used once, to draw a key) or a :class:`SeedTree` node.
SeedLike = Union[None, int, np.integer, np.random.SeedSequence, np.random.Generator, "SeedTree"]

__all__ = ["SeedLike", "SeedTree", "ReplicateSeeds", "as_generator", "as_seed_sequence", "derive_key", "seed_key"]


def _check(seed: object, argname: str) -> None:
    if seed is None or isinstance(seed, (np.random.SeedSequence, np.random.Generator)):
        return
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise InputTypeError(
            f"{argname} must be None, a non-negative int, a numpy SeedSequence, a numpy "
            f"Generator or a glmmsim SeedTree; got {type(seed).__name__} {seed!r}"
        )
    if int(seed) < 0:
        raise InputTypeError(f"{argname} must be a non-negative int; got {seed}")


def as_seed_sequence(seed: SeedLike, argname: str = "seed") -> np.random.SeedSequence:
    """Turn any accepted seed into a SeedSequence (a Generator is asked for fresh entropy).

    A :class:`SeedTree` node stands for its key: ``tree`` and ``tree.key`` are the same seed.
    """
    if isinstance(seed, SeedTree):
        seed = seed.key
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
    if isinstance(seed, SeedTree):
        seed = seed.key
    _check(seed, argname)
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(as_seed_sequence(seed, argname))


def seed_key(seed: SeedLike, argname: str = "seed") -> int:
    """A 64-bit key derived from ``seed``; the root of every persistent random-effect draw.

    Equal int seeds (or equal SeedSequences) give equal keys on every machine. A
    Generator is used once: four 64-bit integers are drawn from it to seed the key.

    Parameters
    ----------
    seed : int, SeedSequence, Generator or SeedTree
        The seed (``None``: fresh entropy).
    argname : str
        The argument's name, for the error a bad seed raises.

    Examples
    --------
    >>> seed_key(42) == seed_key(np.random.SeedSequence(42)) != seed_key(43)
    True
    """
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool) and seed >= 0:
        return _int_seed_key(int(seed))
    state = as_seed_sequence(seed, argname).generate_state(1, dtype=np.uint64)
    return int(state[0])


@functools.lru_cache(maxsize=1024)
def _int_seed_key(seed: int) -> int:
    # cached: studies pass the same few seeds (population, noise) again and again
    return int(np.random.SeedSequence(seed).generate_state(1, dtype=np.uint64)[0])


# ------------------------------------------------------------------ seed tree
_MASK64 = (1 << 64) - 1


def splitmix64(x: int) -> int:
    """SplitMix64 finaliser on one 64-bit int, in Python ints (the same bits as the numpy
    version in :mod:`glmmsim.randomness.streams`, without numpy's per-call cost for a handful of ints).

    Examples
    --------
    >>> splitmix64(0) == splitmix64(0) != splitmix64(1)
    True
    """
    z = (x + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _part_key(part: object) -> int:
    """A stable 64-bit hash of one path element; ints and strings are told apart ("1" != 1)."""
    if isinstance(part, bool) or not isinstance(part, (str, numbers.Integral)):
        raise InputTypeError(f"seed tree path elements must be str or int; got {type(part).__name__} {part!r}")
    text = f"s:{part}" if isinstance(part, str) else f"i:{int(part)}"
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def derive_key(key: int, *path: str | int) -> int:
    """The 64-bit key of ``path`` below ``key``: ``k <- splitmix64(k XOR hash(part))`` per part.

    Examples
    --------
    >>> derive_key(5, "noise") == derive_key(5, "noise")
    True
    >>> derive_key(5, "replicate", 1) == derive_key(derive_key(5, "replicate"), 1)
    True
    """
    acc = int(key) & _MASK64
    for part in path:
        acc = splitmix64(acc ^ _part_key(part))
    return acc


class ReplicateSeeds(NamedTuple):
    """The three seeds of one replicate of a study (each a 64-bit int, usable as any ``seed``).

    population
        Seeds the random effects (``Model(seed=...)``, ``bound.simulate(population=...)``).
    noise
        Seeds the response noise (``simulate(seed=...)``).
    design
        Seeds a randomised design generator (``glmmsim.design.*(seed=...)``).
    """

    population: int
    noise: int
    design: int


class SeedTree:
    """Named child seeds derived statelessly from one root seed.

    A node is a 64-bit key. The root key is :func:`seed_key` of the seed given;
    a child's key is a pure hash of its parent's key and its path
    (:func:`derive_key`: SplitMix64 of the key XOR a BLAKE2b hash of each path
    element), so ``tree.child("replicate", 3)`` is the same node however often,
    in whichever process and in whichever order it is asked for. Unlike
    ``SeedSequence.spawn`` nothing is counted.

    Parameters
    ----------
    seed : int, SeedSequence, Generator, SeedTree or None
        The root. A Generator is used once, here, to draw the root key;
        ``None`` takes fresh entropy from the OS.

    Examples
    --------
    >>> tree = SeedTree(2024)
    >>> tree.child("replicate", 12).child("noise").key == tree.child("replicate", 12, "noise").key
    True
    >>> rep = tree.replicate(0)
    >>> rep == SeedTree(2024).replicate(0), rep.noise == tree.child("replicate", 0, "noise").key
    (True, True)
    """

    __slots__ = ("_key",)

    def __init__(self, seed: SeedLike | SeedTree = None) -> None:
        self._key = seed._key if isinstance(seed, SeedTree) else seed_key(seed, "seed")

    @classmethod
    def _from_key(cls, key: int) -> SeedTree:
        tree = cls.__new__(cls)
        tree._key = key
        return tree

    @property
    def key(self) -> int:
        """This node's 64-bit key (a valid ``seed`` anywhere in glmmsim)."""
        return self._key

    def child(self, *path: str | int) -> SeedTree:
        """The node at ``path`` (strings and ints) below this one."""
        return SeedTree._from_key(derive_key(self._key, *path))

    def replicate(self, r: int) -> ReplicateSeeds:
        """The seeds of replicate ``r``: the keys of ``("replicate", r, purpose)`` for each purpose.

        The same ``r`` gives the same seeds at every design point of a study,
        so design points share their random numbers (common random numbers).
        """
        if isinstance(r, bool) or not isinstance(r, numbers.Integral) or r < 0:
            raise InputTypeError(f"replicate number must be a non-negative int; got {r!r}")
        node = self.child("replicate", int(r))
        return ReplicateSeeds(*(node.child(p).key for p in ReplicateSeeds._fields))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SeedTree) and other._key == self._key

    def __hash__(self) -> int:
        return hash(("SeedTree", self._key))

    def __repr__(self) -> str:
        return f"SeedTree(key={self._key:#018x})"

    def __reduce__(self):
        return (SeedTree._from_key, (self._key,))
