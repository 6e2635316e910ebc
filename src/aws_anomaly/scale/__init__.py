"""Scale past one machine on Dask: score and train many entities on a ``distributed`` cluster.

* :func:`score_dataset` — score a multi-entity :class:`~aws_anomaly.data.Dataset` with a model
  (or one model per entity) across the workers; equal to the in-process
  :meth:`AnomalyModel.score <aws_anomaly.model.AnomalyModel.score>`.
* :func:`score_source` — each task builds the source from its configuration, fetches its own
  entities and scores them, so metric data never passes through the client.
* :func:`train_per_entity` — one model per entity (cluster), fit in parallel, saved as bundles.
* :func:`local_cluster` — a :class:`distributed.LocalCluster` on 127.0.0.1 for one machine.

``client=`` is a :class:`distributed.Client` or a scheduler address (``tcp://host:port``).
Design and measurements: ``docs/scale.md``.
"""

from aws_anomaly.scale.client import (
    ClientLike,
    SchedulerError,
    TaskError,
    connect_timeout,
    local_cluster,
    using_client,
)
from aws_anomaly.scale.jobs import bundle_folder, score_dataset, score_source, train_per_entity
from aws_anomaly.scale.tasks import ModelRef, load_cached, score_partition

__all__ = [
    "ClientLike",
    "ModelRef",
    "SchedulerError",
    "TaskError",
    "bundle_folder",
    "connect_timeout",
    "load_cached",
    "local_cluster",
    "score_dataset",
    "score_partition",
    "score_source",
    "train_per_entity",
    "using_client",
]
