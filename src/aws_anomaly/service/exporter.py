"""Prometheus exporter: anomaly scores and self-monitoring as ``aws_anomaly_*`` metrics.

One :class:`Exporter` owns one fresh ``CollectorRegistry`` (never the global one), so several
services or tests in one process do not share state. It is a sink for the job runner: give it
each tick's scores with :meth:`Exporter.on_scores` and it keeps, per (entity, model), the score
of the latest scored point.

Cardinality is bounded and documented (docs/exporter.md):

* per-entity series: ``aws_anomaly_score``, ``aws_anomaly_is_anomalous`` (1 per entity and
  model), ``aws_anomaly_alert_active`` (1 per entity, model, job and severity: the job's alert
  state as its :class:`~aws_anomaly.events.AlertPolicy` decides, the one the notifiers send
  and the Prometheus rules alert on; :meth:`Exporter.on_alert_states`) and
  ``aws_anomaly_metric_contribution`` (1 per entity, model and metric);
* at most ``max_entities`` entities per model are exported (default 2,000); further entities
  are counted in ``aws_anomaly_dropped_entities_total`` instead of creating series;
* an entity that has not been scored for ``stale_after_s`` seconds (e.g. a deleted cluster)
  has its series removed, so label churn does not grow the registry forever.

Label values are escaped by the exposition format (quotes, backslashes and newlines in a
cluster name are safe).
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "STAGES", "Exporter"]

#: Stages counted by ``aws_anomaly_errors_total{stage}``.
STAGES = ("fetch", "features", "score", "store", "notify", "train")

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass
class _EntityState:
    last_seen: float
    metrics: set[str] = field(default_factory=set)
    band_metrics: set[str] = field(default_factory=set)  # with value / expected / band series
    alert_labels: tuple[str, str] | None = None  # (job, severity) of its alert_active series


class Exporter:
    """Holds the ``aws_anomaly_*`` metrics of one process.

    Parameters
    ----------
    max_entities
        Upper bound on entities exported per model (cardinality guard).
    stale_after_s
        Series of an entity not scored for this long are removed.
    clock
        Wall-clock source (seconds); injectable for tests.

    Examples
    --------
    >>> import pandas as pd
    >>> exp = Exporter()
    >>> scores = pd.DataFrame({"timestamp": pd.to_datetime(["2026-01-01T00:00Z"]),
    ...     "entity": ["eks-a"], "anomaly_score": [1.7], "is_anomaly": [True],
    ...     "contrib_cpu": [0.9], "contrib_mem": [0.1]})
    >>> exp.on_scores("demo", scores, model="ocsvm-1")
    >>> 'aws_anomaly_score{entity="eks-a",model="ocsvm-1"} 1.7' in exp.render().decode()
    True
    """

    def __init__(self, *, max_entities: int = 2000, stale_after_s: float = 3600.0,
                 clock=time.time) -> None:
        if max_entities < 1:
            raise ValueError(f"max_entities must be >= 1, got {max_entities}")
        self.max_entities = max_entities
        self.stale_after_s = stale_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self._entities: dict[str, dict[str, _EntityState]] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.score = Gauge("aws_anomaly_score",
                           "Calibrated anomaly score of the latest point (>= 1 is anomalous).",
                           ["entity", "model"], registry=r)
        self.is_anomalous = Gauge("aws_anomaly_is_anomalous",
                                  "1 when the latest point is anomalous, else 0.",
                                  ["entity", "model"], registry=r)
        self.alert_active = Gauge(
            "aws_anomaly_alert_active",
            "1 while the job's alert on the entity fires (the alert the notifiers send: the "
            "event reached alert.min_consecutive anomalous points and has not closed), else 0.",
            ["job", "entity", "model", "severity"], registry=r)
        self.contribution = Gauge("aws_anomaly_metric_contribution",
                                  "Share of the latest point's anomaly attributed to a metric.",
                                  ["entity", "model", "metric"], registry=r)
        # The expected value and band of each metric at the latest point (the model's band,
        # aws_anomaly.features.band), next to the value it was compared with: the three lines
        # a Grafana panel draws. Only exported while the band is defined.
        self.band = {
            key: Gauge(name, help_, ["entity", "model", "metric"], registry=r)
            for key, name, help_ in (
                ("value", "aws_anomaly_metric_value", "The metric's value at the latest point."),
                ("expected", "aws_anomaly_expected_value",
                 "Where the metric was expected at the latest point, from its past only."),
                ("lower", "aws_anomaly_expected_lower",
                 "Lower edge of the metric's normal band at the latest point."),
                ("upper", "aws_anomaly_expected_upper",
                 "Upper edge of the metric's normal band at the latest point."))}
        self.last_point = Gauge("aws_anomaly_last_scored_point_timestamp_seconds",
                                "Timestamp of the latest scored data point.",
                                ["entity", "model"], registry=r)
        self.model_info = Gauge("aws_anomaly_model_info",
                                "Loaded model (value is always 1).",
                                ["model", "detector", "version", "trained_at"], registry=r)
        self.fetch_duration = Histogram("aws_anomaly_fetch_duration_seconds",
                                        "Time to fetch one tick's data from the source.",
                                        ["job"], buckets=_DURATION_BUCKETS, registry=r)
        self.scoring_duration = Histogram("aws_anomaly_scoring_duration_seconds",
                                          "Time to build features and score one tick.",
                                          ["job"], buckets=_DURATION_BUCKETS, registry=r)
        self.errors = Counter("aws_anomaly_errors",
                              "Errors by pipeline stage (fetch, features, score, store, "
                              "notify, train).", ["job", "stage"], registry=r)
        self.last_success = Gauge("aws_anomaly_last_success_timestamp_seconds",
                                  "Wall-clock time of the job's last successful tick.",
                                  ["job"], registry=r)
        self.points_scored = Counter("aws_anomaly_points_scored",
                                     "Data points scored.", ["job"], registry=r)
        self.anomalies = Counter("aws_anomaly_anomalous_points",
                                 "Data points scored as anomalous.", ["job"], registry=r)
        self.notifications = Counter(
            "aws_anomaly_notifications", "Alert deliveries by outcome: sent, retry (a failed "
            "attempt, retried later), dropped (refused by the receiver), expired (undelivered "
            "for longer than the notifier's max_age).", ["job", "notifier", "outcome"],
            registry=r)
        self.dropped = Counter("aws_anomaly_dropped_entities",
                               "Scores not exported because max_entities was reached.",
                               ["model"], registry=r)

        # Model registry, drift and automated retraining (aws_anomaly.retrain); one series
        # per job (and per metric for PSI, per status, per decision): bounded by the config.
        self.drift_alert_rate = Gauge(
            "aws_anomaly_drift_alert_rate_ratio", "Share of the job's recent ready points at "
            "or above threshold over the share expected from held-back data at training.",
            ["job"], registry=r)
        self.drift_psi = Gauge(
            "aws_anomaly_drift_psi", "Population stability index of a metric's recent values "
            "against the training rows (mean over entities).", ["job", "metric"], registry=r)
        self.champion_version = Gauge(
            "aws_anomaly_model_champion_version", "Registry version of the model scoring the "
            "job.", ["job"], registry=r)
        self.model_versions = Gauge(
            "aws_anomaly_model_versions", "Registered model versions of the job by status "
            "(champion, challenger, rejected, retired).", ["job", "status"], registry=r)
        self.retrains = Counter(
            "aws_anomaly_retrain_decisions", "Model trainings and rollbacks by outcome: "
            "promoted / rejected (automated challenger), forced (requested or first "
            "training), rollback, failed.", ["job", "decision"], registry=r)
        self._drift_metrics: dict[str, set[str]] = {}

    # ------------------------------------------------------------------ job instrumentation
    def register_job(self, job: str) -> None:
        """Create the job's series at zero so rules see them before the first error."""
        for stage in STAGES:
            self.errors.labels(job=job, stage=stage)
        self.points_scored.labels(job=job)
        self.anomalies.labels(job=job)

    def observe_fetch(self, job: str, seconds: float) -> None:
        self.fetch_duration.labels(job=job).observe(seconds)

    def observe_scoring(self, job: str, seconds: float) -> None:
        self.scoring_duration.labels(job=job).observe(seconds)

    def record_error(self, job: str, stage: str) -> None:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; stages are {STAGES}")
        self.errors.labels(job=job, stage=stage).inc()

    def record_notification(self, job: str, notifier: str, outcome: str, n: int = 1) -> None:
        """Count ``n`` alerts of one notifier with ``outcome`` (sent/retry/dropped/expired)."""
        self.notifications.labels(job=job, notifier=notifier, outcome=outcome).inc(n)

    def record_success(self, job: str, when: float | None = None) -> None:
        self.last_success.labels(job=job).set(self._clock() if when is None else when)

    def set_drift(self, job: str, *, alert_rate_ratio: float | None,
                  psi: Mapping[str, float]) -> None:
        """Publish the job's drift figures; a figure not measured (None, a metric missing)
        has its series removed rather than left stale."""
        with self._lock:
            if alert_rate_ratio is None:
                with contextlib.suppress(KeyError):
                    self.drift_alert_rate.remove(job)
            else:
                self.drift_alert_rate.labels(job=job).set(float(alert_rate_ratio))
            before = self._drift_metrics.get(job, set())
            for metric in before - set(psi):
                with contextlib.suppress(KeyError):
                    self.drift_psi.remove(job, metric)
            for metric, value in psi.items():
                self.drift_psi.labels(job=job, metric=metric).set(float(value))
            self._drift_metrics[job] = set(psi)

    def set_model_versions(self, job: str, *, champion: str | None,
                           statuses: Mapping[str, int]) -> None:
        """Publish the champion's version (when numbered) and versions per status."""
        if champion is not None and champion.isdigit():
            self.champion_version.labels(job=job).set(int(champion))
        for status, n in statuses.items():
            self.model_versions.labels(job=job, status=status).set(n)

    def record_retrain(self, job: str, decision: str) -> None:
        """Count one training or rollback of ``job`` by its outcome."""
        self.retrains.labels(job=job, decision=decision).inc()

    def set_model(self, model: str, *, detector: str, version: str, trained_at: str) -> None:
        """Publish the loaded model; replaces a previous info series of the same model."""
        with self._lock:
            for labels in list(self._model_info_labels()):
                if labels[0] == model:
                    self.model_info.remove(*labels)
            self.model_info.labels(model=model, detector=detector, version=version,
                                   trained_at=trained_at).set(1)

    def _model_info_labels(self) -> Iterable[tuple[str, ...]]:
        for metric in self.model_info.collect():
            for s in metric.samples:
                yield (s.labels["model"], s.labels["detector"], s.labels["version"],
                       s.labels["trained_at"])

    # ------------------------------------------------------------------ scores
    def on_scores(self, job: str, scores: pd.DataFrame, *, model: str) -> None:
        """Export the latest scored point of each entity in ``scores``.

        ``scores`` has the columns of ``AnomalyModel.score``: ``timestamp``, ``entity``,
        ``anomaly_score``, ``is_anomaly`` and ``contrib_<metric>`` (optional). Rows that are
        not ``ready`` (feature warm-up) are ignored.
        """
        if len(scores) == 0:
            return
        if "ready" in scores.columns:
            scores = scores[scores["ready"].astype(bool)]
            if len(scores) == 0:
                return
        latest = scores.sort_values("timestamp").groupby("entity", sort=False).tail(1)
        contrib_cols = [c for c in scores.columns if c.startswith("contrib_")]
        n = len(scores)
        now = self._clock()
        with self._lock:
            known = self._entities.setdefault(model, {})
            for row_d in latest.to_dict("records"):
                entity = str(row_d["entity"])
                if entity not in known and len(known) >= self.max_entities:
                    self.dropped.labels(model=model).inc()
                    continue
                state = known.setdefault(entity, _EntityState(last_seen=now))
                state.last_seen = now
                self.score.labels(entity=entity, model=model).set(float(row_d["anomaly_score"]))
                self.is_anomalous.labels(entity=entity, model=model).set(
                    1.0 if bool(row_d["is_anomaly"]) else 0.0)
                ts = pd.Timestamp(row_d["timestamp"])
                self.last_point.labels(entity=entity, model=model).set(ts.timestamp())
                for col in contrib_cols:
                    metric = col.removeprefix("contrib_")
                    value = float(row_d[col])
                    self.contribution.labels(entity=entity, model=model,
                                             metric=metric).set(value)
                    state.metrics.add(metric)
                    for key, gauge in self.band.items():
                        v = row_d.get(f"{key}_{metric}")
                        if v is not None and math.isfinite(float(v)):
                            gauge.labels(entity=entity, model=model, metric=metric).set(
                                float(v))
                            state.band_metrics.add(metric)
        self.points_scored.labels(job=job).inc(n)
        if "is_anomaly" in scores.columns:
            self.anomalies.labels(job=job).inc(int(scores["is_anomaly"].astype(bool).sum()))
        self.expire()

    def on_alert_states(self, job: str, states: Mapping[str, bool], *, model: str,
                        severity: str) -> None:
        """Publish whether each entity's alert fires (``aws_anomaly_alert_active``).

        The job runner calls this after each committed tick with its policy's decision for
        every entity it scored (:meth:`aws_anomaly.events.AlertPolicy.alert_states`). Only
        entities exported by :meth:`on_scores` get a series (the same cardinality bound).
        """
        with self._lock:
            known = self._entities.get(model, {})
            for entity, firing in states.items():
                state = known.get(str(entity))
                if state is None:
                    continue
                labels = (job, severity)
                if state.alert_labels is not None and state.alert_labels != labels:
                    self.alert_active.remove(state.alert_labels[0], str(entity), model,
                                             state.alert_labels[1])
                state.alert_labels = labels
                self.alert_active.labels(job=job, entity=str(entity), model=model,
                                         severity=severity).set(1.0 if firing else 0.0)

    def expire(self) -> list[tuple[str, str]]:
        """Remove series of entities not scored for ``stale_after_s``; returns what went."""
        now = self._clock()
        gone: list[tuple[str, str]] = []
        with self._lock:
            for model, known in self._entities.items():
                for entity, state in list(known.items()):
                    if now - state.last_seen <= self.stale_after_s:
                        continue
                    for g in (self.score, self.is_anomalous, self.last_point):
                        g.remove(entity, model)
                    for metric in state.metrics:
                        self.contribution.remove(entity, model, metric)
                    for metric in state.band_metrics:
                        for gauge in self.band.values():
                            with contextlib.suppress(KeyError):  # a band not yet defined
                                gauge.remove(entity, model, metric)
                    if state.alert_labels is not None:
                        self.alert_active.remove(state.alert_labels[0], entity, model,
                                                 state.alert_labels[1])
                    del known[entity]
                    gone.append((model, entity))
        return gone

    def exported_entities(self) -> Mapping[str, frozenset[str]]:
        with self._lock:
            return {m: frozenset(k) for m, k in self._entities.items()}

    def render(self) -> bytes:
        """The registry in Prometheus text exposition format."""
        return generate_latest(self.registry)

    def serve(self, port: int, host: str = "127.0.0.1") -> Any:
        """Serve ``/metrics`` on ``host:port`` from a background thread (``aws-anomaly run``,
        which has no API server); returns the HTTP server (``server_port``, ``shutdown()``)."""
        from prometheus_client import start_http_server

        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server
