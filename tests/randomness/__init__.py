"""Tests of glmmsim.randomness: seeds, keyed streams, samplers."""
