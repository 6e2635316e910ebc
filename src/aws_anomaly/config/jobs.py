"""One detection job (``aws-anomaly run --config job.yaml``) and its alert and automated
retraining policies."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from aws_anomaly.config.fields import Duration, _Model
from aws_anomaly.config.model import ModelConfig
from aws_anomaly.config.notifiers import NotifierConfig
from aws_anomaly.config.sources import DemoSourceConfig, SourceConfig
from aws_anomaly.durations import format_duration


class AlertConfig(_Model):
    """When a run of anomalous points becomes an alert."""

    min_consecutive: int = Field(3, ge=1)
    severity: Literal["info", "warning", "critical"] = "warning"
    threshold: float = Field(1.0, gt=0, description="anomaly_score at or above which a point "
                             "counts as anomalous")


class DriftConfig(_Model):
    """When drift of the live data away from the training data triggers a retrain.

    Drift is always measured and exported (``aws_anomaly_drift_*``); this section makes it
    trigger. Two measures over the last ``window`` of live points (docs/configuration.md):
    the *alert-rate ratio* (the share of points at or above the threshold over the share
    measured on held-back data when the model was trained; it triggers at or above
    ``alert_rate_ratio`` when also significant at ``p_value`` under a binomial test) and the
    per-metric *population stability index* of the recent inputs against the training rows
    (mean over entities; it triggers at or above ``psi``). ``null`` turns a measure's trigger
    off. After a drift-triggered retrain another waits at least ``cooldown``.
    """

    window: Duration = timedelta(days=1)
    alert_rate_ratio: float | None = Field(3.0, gt=1, description="trigger when the recent "
                                           "flagged share is this many times the expected one")
    p_value: float = Field(1e-3, gt=0, lt=1, description="... and that excess is significant "
                           "at this level (binomial test)")
    psi: float | None = Field(0.25, gt=0, description="trigger when a metric's population "
                              "stability index (mean over entities) reaches this")
    min_points: int = Field(100, ge=10, description="ready live points needed in the window "
                            "before drift can trigger")
    cooldown: Duration = timedelta(days=1)


class RetrainConfig(_Model):
    """Automated retraining: a schedule and/or a drift trigger train a *challenger* on the
    recent ``window`` less the last ``holdout``; it replaces the champion only when, on that
    held-back data, its alert rate is within ``budget`` (alerts per entity per day) or no
    higher than the champion's, and it still flags every feedback-confirmed anomaly the
    champion flags. Training runs in the background; scoring keeps the champion until then.
    """

    every: Duration | None = Field(None, description="retrain on this schedule (data time); "
                                   "null: no schedule")
    drift: DriftConfig | None = Field(None, description="drift thresholds that trigger a "
                                      "retrain; null: drift is measured but never triggers")
    window: Duration | None = Field(None, description="recent data a challenger trains and is "
                                    "judged on; default model.history")
    holdout: Duration | None = Field(None, description="the most recent part of window, held "
                                     "back to judge challenger against champion; default a "
                                     "quarter of window, at most 1d")
    budget: float = Field(1.0, gt=0, description="alerts per entity per day allowed on the "
                          "held-back data")


_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


class JobConfig(_Model):
    """One detection job: where metrics come from, which model scores them, who is told.

    ``metrics`` defaults to the source's metric names (the keys of a Prometheus ``queries``
    map, the ``metric`` of each CloudWatch query, the demo metrics); for a file source without
    a ``metrics`` list it stays ``None``, meaning every metric column in the file.
    """

    name: str
    source: SourceConfig = DemoSourceConfig()
    metrics: tuple[str, ...] | None = None
    entities: tuple[str, ...] | None = None
    model: ModelConfig = ModelConfig()
    interval: Duration = timedelta(minutes=1)
    lookback: Duration = timedelta(days=1)
    notifiers: tuple[NotifierConfig, ...] = ()
    alert: AlertConfig = AlertConfig()
    retrain: RetrainConfig = RetrainConfig()

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError(f"job name {v!r} must be 1-63 characters of a-z, 0-9, '_', '.', "
                             "'-', starting with a letter or digit")
        return v

    @model_validator(mode="after")
    def _metrics(self) -> JobConfig:
        available = self.source.metric_names()
        if self.metrics is None:
            # Frozen model: set the derived default once, while it is being built.
            object.__setattr__(self, "metrics", available)
        elif available is not None:
            unknown = [m for m in self.metrics if m not in available]
            if unknown:
                raise ValueError(f"metrics {unknown} are not provided by the {self.source.type} "
                                 f"source, which has {list(available)}")
        if self.metrics is not None and len(set(self.metrics)) != len(self.metrics):
            raise ValueError(f"metrics repeat: {list(self.metrics)}")
        return self

    def retrain_window(self) -> tuple[timedelta, timedelta]:
        """(window, holdout) of automated retraining, defaults applied."""
        window = self.retrain.window or self.model.history
        return window, self.retrain.holdout or min(window / 4, timedelta(days=1))

    @model_validator(mode="after")
    def _retrain_window(self) -> JobConfig:
        window = self.retrain.window or self.model.history
        key = "retrain.window" if self.retrain.window else "model.history"
        if self.retrain.holdout is not None and self.retrain.holdout * 2 > window:
            raise ValueError(f"retrain.holdout ({format_duration(self.retrain.holdout)}) must "
                             f"be at most half of {key} ({format_duration(window)}): the "
                             "challenger trains on the rest")
        return self


