"""Tests of the glmmsim command line."""
