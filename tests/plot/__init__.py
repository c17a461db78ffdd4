"""Tests of glmmsim.plot."""
