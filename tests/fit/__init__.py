"""Tests of glmmsim.fit: the fitting API and its engines."""
