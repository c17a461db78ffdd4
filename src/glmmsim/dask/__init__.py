"""Dask support: designs, simulations, studies and Parquet datasets larger than one machine.

Every number is the one pandas gives on one machine, whatever the partitioning, because
every draw is keyed (:mod:`glmmsim.randomness`). One module a piece:

* :mod:`~glmmsim.dask.partitions` -- ``crossed``/``nested(npartitions=...)``: designs whose
  partitions are generated on the workers;
* ``glmmsim.dask.frames`` -- ``Model.simulate`` on a Dask DataFrame, partition by partition;
* ``glmmsim.dask.executor`` -- :class:`DaskExecutor`: study batches on a
  ``distributed.Client``;
* ``glmmsim.dask.parquet`` -- :func:`write_partitions`: one Parquet file a partition,
  published whole (``glmmsim.dask.staged_folder``).

Needs the ``dask`` extra to run; importing this package does not import Dask.
"""

from .executor import DaskExecutor, is_dask_client
from .parquet import write_partitions

__all__ = ["DaskExecutor", "is_dask_client", "write_partitions"]
