"""A job's model section: the bundle, the detector, the training history, the threshold."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import Field

from aws_anomaly.config.fields import Duration, FilePath, _Model


class ThresholdConfig(_Model):
    """How the calibrator picks the threshold (see :class:`aws_anomaly.calibration.Calibrator`).

    ``auto`` (the default): ``pot`` at ``risk`` for the ``default`` detector, ``target_fpr``
    for the others. ``pot`` fits the tail of the held-out scores (peaks over threshold) and
    needs no labels; ``best_f1`` needs labelled validation data.
    """

    method: Literal["auto", "pot", "best_f1", "target_fpr", "contamination"] = "auto"
    target_fpr: float = Field(0.01, gt=0, lt=1)
    contamination: float = Field(0.05, gt=0, le=0.5)
    risk: float = Field(1e-3, gt=0, le=0.1)


class ModelConfig(_Model):
    """The model bundle a job scores with; trained from ``history`` when ``path`` is missing.

    ``path`` defaults to ``<service.data_dir>/models/<job name>``.
    """

    path: FilePath | None = None
    #: ``default``: the label-free default model (:func:`aws_anomaly.model.default_model`);
    #: or a detector name of :data:`aws_anomaly.detectors.DETECTORS` on the classic features.
    #: A job trains on the ``history`` that ends where its ``lookback`` starts, so the model
    #: never learns the points it scores first.
    detector: str = "default"
    detector_params: dict[str, Any] = Field(default_factory=dict)
    history: Duration = timedelta(days=14)
    threshold: ThresholdConfig = ThresholdConfig()


