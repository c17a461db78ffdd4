"""Tests of glmmsim.analysis: power, recovery and their studies."""
