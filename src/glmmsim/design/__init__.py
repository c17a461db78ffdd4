"""Experimental designs: data frames of conditions (:func:`crossed`, :func:`nested`).

Two generators cover most studies:

* :func:`crossed` -- subjects crossed with items (a reaction-time or accuracy
  experiment), with within- and between-unit factors, repetitions,
  Latin-square counterbalancing, unbalanced trial counts, random missingness
  and continuous covariates (``glmmsim.design.crossed_design``);
* :func:`nested` -- units nested in units (pupils in classes in schools) with
  fixed or randomly drawn cluster sizes (``glmmsim.design.nested_design``).

Both return an ordinary :class:`pandas.DataFrame`, one row per observation,
that can be passed straight to ``Model.simulate``. Covariates are
``glmmsim.design.covariates``; unit labels and the keyed per-unit draws that keep a
unit's values when a design grows are ``glmmsim.design.units``. With
``npartitions=`` both return a Dask DataFrame generated on the workers
(:mod:`glmmsim.dask.partitions`).
"""

from .crossed_design import crossed
from .nested_design import nested
from .units import unit_labels

__all__ = ["crossed", "nested", "unit_labels"]
