"""Tests of glmmsim.dask: partitioned designs, Dask frames, the Dask executor, partitioned output."""
