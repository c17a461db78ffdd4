"""Tests of glmmsim.model: formulas, parameters, simulation."""
