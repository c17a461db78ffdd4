"""Tests of glmmsim.execution: executors and Dask scale-out."""
