"""Randomness: seeds, keyed random streams and the exact samplers that read them.

Every random number glmmsim draws is a pure function of a seed and a key, so the same
seed gives the same numbers on any partitioning, executor or machine. One module a stage:

* ``glmmsim.randomness.seeds`` -- what a ``seed=`` accepts, 64-bit seed keys and the
  stateless :class:`SeedTree` of named child seeds (exported here);
* :mod:`~glmmsim.randomness.streams` -- keyed uniforms and normals: per level of a grouping
  factor (persistent random effects) and per row (:class:`~glmmsim.randomness.streams.RowStreams`);
* :mod:`~glmmsim.randomness.samplers` -- exact samplers of every response family that read
  a row's own stream only, with an ``exp``/``log`` that give the same bits on every numpy.

Only ``glmmsim.randomness.seeds`` is imported here (numpy alone), so ``import
glmmsim.randomness`` stays light; the streams and samplers load with the model.

Examples
--------
>>> from glmmsim.randomness import SeedTree
>>> SeedTree(1).child("population") == SeedTree(1).child("population")
True
"""

from .seeds import ReplicateSeeds, SeedLike, SeedTree, as_generator, as_seed_sequence, derive_key, seed_key

__all__ = ["SeedLike", "SeedTree", "ReplicateSeeds", "as_generator", "as_seed_sequence", "derive_key", "seed_key"]
