"""Any model a job can run: load its bundle whatever its kind, and what a job asks of it.

A job scores with one of two model kinds (issue 8, item 1, one detector contract):

* :class:`aws_anomaly.model.AnomalyModel`: feature rows + a matrix detector (the default);
* :class:`aws_anomaly.streaming.series.SeriesModel`: a NAB streaming detector per entity and
  metric (``model.detector: context``...).

Both are saved as checksummed bundles (:mod:`aws_anomaly.bundle`); a series bundle is JSON only
and says ``"kind": "series"`` in its manifest. :func:`load_model` reads the manifest (checking
its own checksum) and hands the folder to the right loader, which checks everything else. The
job, the registry's rollback and ``aws-anomaly score`` load models through it.

This module sits above :mod:`aws_anomaly.streaming` and below the job's modules (layers in
pyproject.toml).
"""

from __future__ import annotations

import os

from aws_anomaly import bundle
from aws_anomaly.errors import ModelFileError
from aws_anomaly.model import AnomalyModel
from aws_anomaly.streaming.series import SeriesModel

__all__ = ["JobModelType", "is_series", "load_model", "warm_rows"]

#: What a job scores with.
JobModelType = AnomalyModel | SeriesModel


def load_model(path: str | os.PathLike[str]) -> AnomalyModel | SeriesModel:
    """Load the model bundle at ``path``, whatever its kind, verifying its checksums.

    Raises
    ------
    aws_anomaly.errors.ModelFileError
        Not a bundle, a checksum that does not match, an unknown kind (one line, naming it).
    """
    manifest = bundle.read_manifest(path)
    kind = manifest.get("kind", "anomaly_model")
    if kind == "series":
        return SeriesModel.load(path)
    if kind != "anomaly_model":
        raise ModelFileError(f"model bundle {path} holds a model of kind {kind!r}; "
                                    "this aws-anomaly reads 'anomaly_model' and 'series'")
    return AnomalyModel.load(path)


def is_series(model: object) -> bool:
    """True for a streaming series model (scored by its per-entity streams)."""
    return isinstance(model, SeriesModel)


def warm_rows(model: AnomalyModel | SeriesModel) -> int:
    """Rows of an entity's history a model needs before its first ready score (plus one): the
    look-back a job fetches to rebuild a scorer."""
    if isinstance(model, SeriesModel):
        return int(model.min_history) + 1
    return int(model.spec.min_history) + 1
