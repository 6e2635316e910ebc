"""A job's model section: the bundle, the detector, the training history, the threshold."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from aws_anomaly.config.fields import Duration, FilePath, _Model

#: The detectors of :data:`aws_anomaly.detectors.DETECTORS` (feature-matrix detectors run by
#: ``AnomalyModel``). Listed here because the config sits below the detectors' layer; a test
#: (tests/unit/test_config_detectors.py) keeps them equal to the registries.
MATRIX_DETECTORS = ("ensemble", "iforest", "knn", "lof", "lstm_ae", "ocsvm", "robust")
#: The streaming (NAB) detectors of :data:`aws_anomaly.streaming.series.SERIES_DETECTORS`, run
#: per entity and metric by ``SeriesModel``.
SERIES_DETECTORS = ("context", "context_forecast", "forecast")
#: Every name ``model.detector`` accepts.
MODEL_DETECTORS = ("default", *MATRIX_DETECTORS, *SERIES_DETECTORS)


class ThresholdConfig(_Model):
    """How the calibrator picks the threshold (see :class:`aws_anomaly.calibration.Calibrator`).

    ``auto`` (the default): ``pot`` at ``risk`` for the ``default`` detector, ``target_fpr``
    for the others. ``pot`` fits the tail of the held-out scores (peaks over threshold) and
    needs no labels; ``best_f1`` needs labelled validation data. ``risk`` unset: the model's
    step decides (:func:`aws_anomaly.threshold.pot_risk`: 1.44 normal points a day above the
    threshold, risk 1e-3 at one-minute data, 5e-3 at five-minute data; the streaming
    detectors keep 1e-3). ``per_entity`` (``pot``, the ``default`` detector's feature model):
    each entity whose held-out rows are enough gets its own threshold at that risk, so every
    entity pages at the same rate instead of the noisiest taking the pooled threshold's
    budget (:class:`aws_anomaly.model.AnomalyModel` ``entity_thresholds``); false: one pooled
    threshold.
    """

    method: Literal["auto", "pot", "best_f1", "target_fpr", "contamination"] = "auto"
    target_fpr: float = Field(0.01, gt=0, lt=1)
    contamination: float = Field(0.05, gt=0, le=0.5)
    risk: float | None = Field(None, gt=0, le=0.1)
    per_entity: bool = True


class ModelConfig(_Model):
    """The model bundle a job scores with; trained from ``history`` when ``path`` is missing.

    ``path`` defaults to ``<service.data_dir>/models/<job name>``.
    """

    path: FilePath | None = None
    #: ``default``: the label-free default model (:func:`aws_anomaly.model.default_model`);
    #: or a detector name of :data:`aws_anomaly.detectors.DETECTORS` on the classic features;
    #: or a streaming detector of :data:`aws_anomaly.streaming.series.SERIES_DETECTORS`
    #: (``context``, ``forecast``, ``context_forecast``: a ``SeriesModel``, one NAB streaming
    #: detector per entity and metric; ``detector_params`` must then be empty).
    #: A job trains on the ``history`` that ends where its ``lookback`` starts, so the model
    #: never learns the points it scores first.
    detector: str = "default"
    detector_params: dict[str, Any] = Field(default_factory=dict)
    history: Duration = timedelta(days=14)
    threshold: ThresholdConfig = ThresholdConfig()

    @field_validator("detector")
    @classmethod
    def _known_detector(cls, v: str) -> str:
        if v not in MODEL_DETECTORS:
            raise ValueError(f"unknown detector {v!r}; valid: {', '.join(MODEL_DETECTORS)}")
        return v

    @model_validator(mode="after")
    def _no_params_for_streaming(self) -> ModelConfig:
        if self.detector in SERIES_DETECTORS and self.detector_params:
            raise ValueError(f"detector_params: the streaming detector {self.detector!r} takes "
                             f"none (it runs with the package's chosen parameters), got "
                             f"{sorted(self.detector_params)}")
        return self

    @property
    def streaming(self) -> bool:
        """True for a streaming (NAB) detector, run as a ``SeriesModel``."""
        return self.detector in SERIES_DETECTORS
