"""Tests of glmmsim.study: YAML specs and data writers."""
