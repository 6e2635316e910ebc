"""The job runner: one detection job's fetch -> score -> events -> sinks -> state loop.

:class:`JobRunner` owns one job's model. Each :meth:`JobRunner.tick` scores every grid point
that arrived since the last scored timestamp of each entity — never more, never less:

* the last scored timestamp per (job, entity) lives in the store; a tick fetches from there (plus
  the feature look-back the model needs) up to the source's ``now()``, so after a source outage
  the next successful tick catches up on the whole missed range (in chunks of at most
  ``max_steps_per_tick`` grid steps per tick, so a week-long outage does not become one huge
  request);
* the tick's events, the new last-scored timestamps and the notifications the events raise
  (:class:`AlertSink` plans them into the store's outbox) are committed in one transaction, and
  only then are the other sinks called, so a crash between the two repeats a tick (idempotent
  upserts) rather than losing one, and an alert is never lost once its event is stored;
  delivery happens elsewhere (the notifiers' dispatcher threads), never in the tick;
* each stage (fetch, features, score, store, notify, train) records its errors separately.

Feedback changes what is flagged at the next retrain (:meth:`JobRunner.retrain`), in two ways:

* confirmed anomalies (true positives) are labelled in the training history, so the detector
  does not learn them as normal;
* false positives raise the threshold **of that entity**: after retraining, the highest new
  score inside each false-positive event of an entity, times ``fp_margin``, becomes the entity's
  threshold (never below the job's threshold, never above ``fp_max_threshold`` times it, and
  never above the lowest confirmed true-positive peak of the entity, so what people confirmed
  keeps alerting). Other entities are untouched. This is simple to explain in the dashboard
  ("threshold raised to 1.42 after 2 false positives") and needs nothing from the detector.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from aws_anomaly.config import JobConfig
from aws_anomaly.data import Dataset
from aws_anomaly.errors import AwsAnomalyError, DataError, SourceError, StoreError
from aws_anomaly.events import DEFAULT_MAX_GAP_STEPS, AlertPolicy, AnomalyEvent
from aws_anomaly.explain import LOOKBACK, band_deviation, classify
from aws_anomaly.live import LiveState
from aws_anomaly.model import AnomalyModel, default_model
from aws_anomaly.retrain import (
    Retrainer,
    input_reference,
    publish,
    version_of,
    version_path,
)
from aws_anomaly.sources.base import Source
from aws_anomaly.store import ModelRecord, OutboxItem, Store

__all__ = ["STAGES", "AlertSink", "AlertStateSink", "EventSink", "JobRunner", "RunnerMetrics",
           "ScoreSink", "Sink", "TickResult", "TrainProgress"]

log = logging.getLogger(__name__)

#: Pipeline stages whose errors are counted separately.
STAGES = ("fetch", "features", "score", "store", "notify", "train")


@runtime_checkable
class ScoreSink(Protocol):
    """Receives every tick's scores (the Prometheus exporter)."""

    def on_scores(self, job: str, scores: pd.DataFrame, *, model: str) -> None: ...


@runtime_checkable
class EventSink(Protocol):
    """Receives the events a tick opened, extended or closed (notifiers)."""

    def on_events(self, job: str, events: Sequence[AnomalyEvent], *, model: str) -> None: ...


@runtime_checkable
class AlertSink(Protocol):
    """Plans the notifications of a tick's events; they are written into the store's outbox
    in the tick's transaction, then :meth:`wake` tells the sink's deliverer to look."""

    def plan_alerts(self, job: str, events: Sequence[AnomalyEvent], *,
                    model: str) -> Sequence[OutboxItem]: ...

    def wake(self) -> None: ...


@runtime_checkable
class AlertStateSink(Protocol):
    """Receives, after each committed tick, whether the job's alert fires on each entity it
    scored, as the job's :class:`~aws_anomaly.events.AlertPolicy` decides (the exporter's
    ``aws_anomaly_alert_active``, which the Prometheus rules alert on)."""

    def on_alert_states(self, job: str, states: Mapping[str, bool], *, model: str,
                        severity: str) -> None: ...


Sink = ScoreSink | EventSink | AlertSink | AlertStateSink


class RunnerMetrics(Protocol):
    """Self-monitoring hooks (``aws_anomaly.service.exporter.Exporter`` implements them)."""

    def observe_fetch(self, job: str, seconds: float) -> None: ...
    def observe_scoring(self, job: str, seconds: float) -> None: ...
    def record_error(self, job: str, stage: str) -> None: ...
    def record_success(self, job: str, when: float | None = None) -> None: ...


@dataclass(frozen=True)
class TickResult:
    """What one tick did. ``error`` is set (and ``stage`` names where) when it failed."""

    job: str
    now: pd.Timestamp
    points: int = 0
    anomalies: int = 0
    events: tuple[AnomalyEvent, ...] = ()
    entities: int = 0
    scored_from: pd.Timestamp | None = None
    scored_to: pd.Timestamp | None = None
    caught_up: bool = True
    fetch_s: float = 0.0
    score_s: float = 0.0
    total_s: float = 0.0
    error: str | None = None
    stage: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class TrainProgress:
    """Where a model (re)training is; shown by the API and the dashboard."""

    state: str = "idle"  # idle | training | ready | failed
    step: str = ""
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    history_points: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "step": self.step, "started": self.started,
                "finished": self.finished, "error": self.error,
                "history_points": self.history_points}


def _model_version(model: AnomalyModel) -> str:
    """The registry version stamped into the model's bundle (``"1"`` for a bundle written
    before the registry kept history)."""
    return version_of(model) or "1"


@dataclass
class _Display:
    """Recent raw values and scores of one entity, for the dashboard and short /v1/score."""

    frame: pd.DataFrame = field(default_factory=pd.DataFrame)


class JobRunner:
    """Runs one job: fetch new points, score them, merge events, store, call sinks.

    Parameters
    ----------
    job
        The job's configuration.
    source
        The metrics source (:class:`aws_anomaly.sources.base.Source`).
    model
        A fitted model, or ``None`` to load the bundle at ``model_path`` or train one from
        ``job.model.history`` of the source (:meth:`ensure_model`).
    sinks
        Score and event sinks, called after each tick is committed.
    state
        The store holding job state, events, feedback, thresholds and the model registry.
    model_path
        Where the job's model bundle lives.
    metrics
        Optional self-monitoring hooks.
    max_steps_per_tick
        Catch-up chunk: at most this many grid steps are scored per tick.
    display_points
        Points per entity kept in memory for the dashboard.
    checkpoint_every
        Write the live stream scorers' checkpoints every this many committed ticks (and at
        :meth:`save_checkpoints` on shutdown); 0: only on shutdown.
    """

    def __init__(self, job: JobConfig, source: Source, model: AnomalyModel | None,
                 sinks: Sequence[Sink], state: Store, *, model_path: str | Path | None = None,
                 metrics: RunnerMetrics | None = None, max_steps_per_tick: int = 2016,
                 display_points: int = 576, max_gap_steps: int = DEFAULT_MAX_GAP_STEPS,
                 fp_margin: float = 1.05, fp_max_threshold: float = 3.0,
                 on_progress: Callable[[TrainProgress], None] | None = None,
                 checkpoint_every: int = 12) -> None:
        self.job = job
        self.source = source
        self.model = model
        self.sinks = list(sinks)
        self.store = state
        self.model_path = Path(model_path) if model_path is not None else None
        self.metrics = metrics
        self.max_steps_per_tick = max_steps_per_tick
        self.display_points = display_points
        self.max_gap_steps = max_gap_steps
        #: The one decision of "anomalous points -> alert" (events, notifiers, exporter).
        self.policy = AlertPolicy.from_job(job, max_gap_steps=max_gap_steps)
        # entity -> time of the first tick that scored it without stored progress: its events
        # that started before are look-back history, stored but never notified.
        self._history_before: dict[str, pd.Timestamp] = {}
        self.fp_margin = fp_margin
        self.fp_max_threshold = fp_max_threshold
        self.on_progress = on_progress
        self.progress = TrainProgress(state="ready" if model is not None else "idle")
        self.lock = threading.RLock()  # one tick or retrain at a time for this job
        # entity -> its recent scored points, one numpy array per column ("timestamp": int64
        # ns UTC); a frame is built only when someone reads it (recent()). Appending to pandas
        # frames per entity cost ~1.2 ms an entity on every tick.
        self._display: dict[str, dict[str, np.ndarray]] = {}
        self._display_lock = threading.Lock()
        self.last_result: TickResult | None = None
        self.errors: dict[str, int] = dict.fromkeys(STAGES, 0)
        self.last_error: dict[str, str] = {}
        self._error_lock = threading.Lock()
        #: Whether the last write of a tick reached the store (None: none tried yet).
        self.store_ok: bool | None = None
        self.store_error: str | None = None
        self.source_ok: bool | None = None
        self.source_error: str | None = None
        self.ticks = 0
        self.points_scored = 0
        self._thresholds: dict[str, float] = {}
        self._thresholds_loaded = False
        #: One primed stream scorer per entity, fed every new point once (aws_anomaly.live);
        #: ticks score with it and short /v1/score requests continue a copy of it.
        self.live = LiveState(job.name)
        self.checkpoint_every = checkpoint_every
        self._ticks_since_checkpoint = 0
        # Model management: one training or rollback at a time (ticks go on meanwhile; the
        # swap itself takes `lock`); the registry, drift and automated retraining.
        self._train_lock = threading.Lock()
        self.retrainer = Retrainer(self)
        self.sinks.append(self.retrainer)

    # ------------------------------------------------------------------ properties
    @property
    def name(self) -> str:
        return self.job.name

    @property
    def model_name(self) -> str:
        return self.job.name

    @property
    def step(self) -> pd.Timedelta:
        if self.model is not None:
            return pd.Timedelta(self.model.step_)
        return pd.Timedelta(self.source.step)

    @property
    def base_threshold(self) -> float:
        return float(self.job.alert.threshold)

    def thresholds(self) -> dict[str, float]:
        """Per-entity thresholds raised by feedback (entities not listed use the job's)."""
        if not self._thresholds_loaded:
            self._thresholds = self.store.entity_thresholds(self.name)
            self._thresholds_loaded = True
        return dict(self._thresholds)

    def threshold_for(self, entity: str) -> float:
        return self.thresholds().get(entity, self.base_threshold)

    def record_error(self, stage: str, exc: BaseException) -> str:
        """Count an error of ``stage`` (here and in the metrics); returns its message.

        Thread-safe: the notifiers' delivery threads report here too."""
        return self._error(stage, exc)

    def _error(self, stage: str, exc: BaseException) -> str:
        msg = f"{type(exc).__name__}: {exc}" if not isinstance(exc, AwsAnomalyError) else str(exc)
        with self._error_lock:
            self.errors[stage] += 1
            self.last_error[stage] = msg
        if self.metrics is not None:
            try:
                self.metrics.record_error(self.name, stage)
            except Exception:  # monitoring must never break the job
                log.exception("job %s: recording an error failed", self.name)
        return msg

    def _progress(self, **kw: Any) -> None:
        for k, v in kw.items():
            setattr(self.progress, k, v)
        if kw.get("step"):
            log.info("job %s: model: %s", self.name, kw["step"])
        if self.on_progress is not None:
            self.on_progress(self.progress)

    # ------------------------------------------------------------------ model
    def ensure_model(self) -> AnomalyModel:
        """The job's model: already loaded, loaded from ``model_path``, or trained now."""
        with self.lock:
            if self.model is not None:
                return self.model
            if self.model_path is not None and (self.model_path / "manifest.json").exists():
                self._progress(state="training", step=f"loading {self.model_path}",
                               started=time.time())
                try:
                    self.model = AnomalyModel.load(self.model_path)
                    self._adopt_loaded(self.model)
                except Exception as exc:
                    self._progress(state="failed", error=self._error("train", exc),
                                   finished=time.time())
                    if isinstance(exc, AwsAnomalyError):
                        raise
                    raise AwsAnomalyError(f"job {self.name}: cannot load {self.model_path}: "
                                          f"{type(exc).__name__}: {exc}") from exc
                self._progress(state="ready", step="loaded", finished=time.time())
                return self.model
            return self.retrain(reason="no model bundle yet")

    def _adopt_loaded(self, model: AnomalyModel) -> None:
        """Make the registry agree with the bundle loaded from ``model_path`` (the champion).

        A bundle stamped with a version is that version: promoted if the registry says
        otherwise (a crash between writing the champion and recording it). A bundle written
        before versions were kept becomes the next version, kept at its versioned path.
        """
        version = version_of(model)
        try:
            rec = self.store.get_model(self.model_name, version) if version else None
            if rec is None:
                if version is None:
                    version = self.store.next_model_version(self.model_name)
                    ref = {"inputs": {}, "held_back": {}}
                    path = self.retrainer.save_version(model, version, ref)
                    if path is not None and self.model_path is not None:
                        publish(path, self.model_path)
                else:
                    kept = (version_path(self.model_path, version)
                            if self.model_path is not None else None)
                    path = kept if kept is not None and kept.exists() else self.model_path
                summary = getattr(model, "training_summary_", {}) or {}
                self.store.register_model(ModelRecord(
                    name=self.model_name, version=version, job=self.name,
                    path=str(path or ""), detector=model.detector,
                    trained_at=pd.Timestamp((getattr(model, "manifest_", None) or {}).get(
                        "created_at") or pd.Timestamp.now(tz="UTC")),
                    info={**self.retrainer.info(model, rows=summary.get("train_rows", 0),
                                                data_start=None, data_end=None, figures=None,
                                                path=path),
                          "entity_thresholds": self.thresholds()},
                    decision={"trigger": "loaded from the model path", "promoted": True,
                              "decision": "forced"}))
            elif not rec.active:
                self.store.promote_model(self.model_name, version)
        except StoreError as exc:
            self._error("store", exc)
        self.retrainer.publish_versions()

    def retrain(self, *, reason: str = "requested") -> AnomalyModel:
        """Train a model on ``job.model.history`` of the source, using feedback; swap it in.

        True-positive events are labelled anomalous in the history (left out of training);
        false-positive events raise their entity's threshold (see the module docstring). The
        new model is registered as the next version and replaces the champion without a
        check (automated retrains go through :meth:`aws_anomaly.retrain.Retrainer.challenge`).
        Ticks keep scoring with the current model while it trains.
        """
        with self._train_lock:
            self._progress(state="training", step=f"fetching history ({reason})",
                           started=time.time(), finished=None, error=None)
            try:
                return self._retrain(reason)
            except Exception as exc:
                # Whatever went wrong (a disk error saving the bundle, a bug), the training
                # is over: never leave the job "training" (every retrain would be refused).
                stage = "fetch" if isinstance(exc, SourceError) else (
                    "store" if isinstance(exc, StoreError) else "train")
                msg = self._error(stage, exc)
                if stage == "fetch":
                    self.source_ok, self.source_error = False, msg
                self._progress(state="failed", error=msg, finished=time.time())
                self.retrainer._count("failed")
                if isinstance(exc, AwsAnomalyError):
                    raise
                raise AwsAnomalyError(f"job {self.name}: training failed: "
                                      f"{type(exc).__name__}: {exc}") from exc

    def rollback(self, version: str | None = None) -> ModelRecord:
        """Make an earlier version the champion again from its kept bundle (default: the
        champion before the current one); see :meth:`aws_anomaly.retrain.Retrainer.rollback`."""
        return self.retrainer.rollback(version)

    def _training_data(self, span: pd.Timedelta, now: pd.Timestamp
                       ) -> tuple[Dataset, dict[str, tuple[str, AnomalyEvent]]]:
        """``span`` of history up to ``now`` with feedback-confirmed anomalies labelled, and
        the feedback labels."""
        end = now + pd.Timedelta(1, "ns")
        history = self.source.fetch(end - span, end, entities=self.job.entities)
        self.source_ok, self.source_error = True, None
        metrics = list(self.job.metrics or history.metrics)
        history = Dataset(frame=history.frame, metrics=tuple(metrics), step=history.step)
        labels = self.store.latest_labels(job=self.name)
        # Labels the source knows (the demo's injected anomalies) plus confirmed events.
        lab = (history.frame["is_anomaly"].to_numpy(dtype=np.int8).copy() if history.has_labels
               else np.zeros(len(history.frame), dtype=np.int8))
        frame = history.frame.drop(columns=["is_anomaly", "anomaly_type"], errors="ignore")
        ts = frame["timestamp"]
        ent = frame["entity"].to_numpy()
        for verdict, ev in labels.values():
            if verdict == "true_positive":
                lab[(ent == ev.entity) & (ts >= ev.start).to_numpy()
                    & (ts <= ev.end).to_numpy()] = 1
        frame = frame.assign(is_anomaly=lab, anomaly_type=np.where(lab == 1, "confirmed", ""))
        return Dataset(frame=frame, metrics=tuple(metrics), step=history.step), labels

    def _new_model(self, step: pd.Timedelta) -> AnomalyModel:
        """An unfitted model as the job's ``model`` section describes it."""
        thr = self.job.model.threshold
        is_default = self.job.model.detector == "default"
        method = thr.method if thr.method != "auto" else ("pot" if is_default else "target_fpr")
        calibration: dict[str, Any] = {"method": method}
        if method == "target_fpr":
            calibration["target_fpr"] = thr.target_fpr
        elif method == "contamination":
            calibration["contamination"] = thr.contamination
        elif method == "pot":
            calibration["risk"] = thr.risk
        if is_default:
            return default_model(step, history=pd.Timedelta(self.job.model.history),
                                 calibration=calibration,
                                 **({"detector_params": self.job.model.detector_params}
                                    if self.job.model.detector_params else {}))
        return AnomalyModel(detector=self.job.model.detector,
                            detector_params=self.job.model.detector_params,
                            calibration=calibration)

    def _swap_model(self, model: AnomalyModel, thresholds: Mapping[str, float]) -> None:
        """Replace the scoring model and its per-entity thresholds (caller holds ``lock``)."""
        self._thresholds = dict(thresholds)
        self._thresholds_loaded = True
        self.model = model
        with self._display_lock:
            self._display.clear()  # old scores came from the old model
        # The live stream scorers follow at the next tick (LiveState.use: rebuilt, or resumed
        # from checkpoints of this version); /v1/score never continues another model's.

    def _retrain(self, reason: str) -> AnomalyModel:
        now = self.source.now()
        # The history ends where the next tick starts scoring: a model must not learn points
        # it has not scored yet (a neighbour method would score each of them 0, an incident
        # among them included). Before the first tick that is the start of the look-back;
        # afterwards the oldest entity's progress (usually about now, so retrains learn the
        # recent events users gave feedback on).
        progress = self.store.job_state(self.name)
        cut = min(progress.values()) if progress else now - pd.Timedelta(self.job.lookback)
        cut = min(cut, now)
        data, labels = self._training_data(pd.Timedelta(self.job.model.history), cut)
        self._progress(step=f"fitting {self.job.model.detector} on {len(data):,} points of "
                            f"{len(data.entities)} entities", history_points=len(data))
        # The last fifth of each entity's history calibrates the threshold.
        train, valid = data.split_tail(0.2)
        model = self._new_model(data.step)
        model.fit(train, valid)
        # What drift is measured against: the flagged share on the calibration rows and the
        # training inputs' distribution.
        first = valid.frame["timestamp"].min()
        look = train.slice_time(first - pd.Timedelta(data.step) * (model.spec.min_history + 1),
                                first)
        vs = model.score(valid, history=look if len(look) else None, explain="none")
        ready = vs["ready"].to_numpy(dtype=bool)
        reference = {"held_back": {"flagged": int((vs["is_anomaly"].to_numpy(dtype=bool)
                                                   & ready).sum()), "points": int(ready.sum())},
                     "inputs": input_reference(train, list(model.metrics_))}
        self._progress(step="applying feedback to per-entity thresholds")
        new_thr = self._thresholds_from_feedback(model, data, labels)
        version = self.store.next_model_version(self.model_name)
        if self.model_path is not None:
            self._progress(step=f"saving bundle to {self.model_path}")
        path = self.retrainer.save_version(model, version, reference)
        decision = {"trigger": reason, "check": "none: a requested training replaces the "
                    "champion", "promoted": True, "decision": "forced",
                    "at": now.isoformat()}
        self.store.register_model(ModelRecord(
            name=self.model_name, version=version, job=self.name, path=str(path or ""),
            detector=model.detector, trained_at=pd.Timestamp.now(tz="UTC"),
            info={**self.retrainer.info(model, rows=len(data),
                                        data_start=data.frame["timestamp"].min(),
                                        data_end=cut, figures=None, path=path),
                  "entity_thresholds": {e: t for e, (t, _) in new_thr.items()}},
            status="challenger", decision=decision), activate=False)
        self.retrainer._last_train = now
        self.retrainer.install(model, new_thr, version, decision)
        self.retrainer._count("forced")
        self._progress(state="ready", step=f"trained on {len(data):,} points",
                       finished=time.time())
        return model

    def _thresholds_from_feedback(self, model: AnomalyModel, data: Dataset,
                                  labels: Mapping[str, tuple[str, AnomalyEvent]]
                                  ) -> dict[str, tuple[float, str]]:
        base = self.base_threshold
        fps: dict[str, list[AnomalyEvent]] = {}
        tps: dict[str, list[AnomalyEvent]] = {}
        for verdict, ev in labels.values():
            (tps if verdict == "true_positive" else fps).setdefault(ev.entity, []).append(ev)
        if not fps:
            return {}
        wanted = [e for e in fps if e in data.entities]
        scores = model.score(data.select(wanted), explain="none") if wanted else None
        out: dict[str, tuple[float, str]] = {}

        def peak(ev: AnomalyEvent) -> float:
            if scores is None or ev.entity not in wanted:
                return ev.peak_score
            s = scores[(scores["entity"] == ev.entity) & (scores["timestamp"] >= ev.start)
                       & (scores["timestamp"] <= ev.end)]["anomaly_score"]
            return float(s.max()) if len(s) else ev.peak_score

        for entity, evs in fps.items():
            want = max(peak(ev) for ev in evs) * self.fp_margin
            cap = base * self.fp_max_threshold
            tp_peaks = [peak(ev) for ev in tps.get(entity, [])]
            if tp_peaks:
                cap = min(cap, min(tp_peaks))
            # Rounded down: a cap at a confirmed peak must stay at or below that peak.
            value = max(base, math.floor(min(want, cap) * 1e4) / 1e4)
            if value > base:
                out[entity] = (value, f"{len(evs)} false positive(s) in feedback")
        return out

    # ------------------------------------------------------------------ live state
    def _use_model(self, model: AnomalyModel) -> None:
        """Point the live state at ``model``; on a change, resume the entities' scorers from
        the checkpoints of its version (the others are rebuilt from the look-back)."""
        if not self.live.use(model, _model_version(model)):
            return
        try:
            rows = self.store.load_checkpoints(self.name, self.live.version)
        except StoreError as exc:
            self._error("store", exc)
            return
        n = self.live.restore(rows)
        if n:
            log.info("job %s: resumed %d stream scorer(s) of model version %s from checkpoints",
                     self.name, n, self.live.version)

    def _fetch_start(self, state: Mapping[str, pd.Timestamp], entities: list[str] | None,
                     first_new: pd.Timestamp, step: pd.Timedelta, warm: int,
                     redisplay: bool) -> pd.Timestamp:
        """Where this tick's fetch starts: after the last point of each entity's live scorer
        when it has one that the rows to score continue; else the look-back (``warm`` rows)
        before the first row to score, from which the scorer is rebuilt."""
        back = self.display_points if redisplay else 0
        scope = list(entities) if entities is not None else list(state)
        starts = [first_new - step * warm] if not scope else []
        far = step * self.max_steps_per_tick
        for e in scope:
            last = state.get(e)
            lookback = (last if last is not None else first_new) - step * (warm + back)
            live = self.live.last_ns(e)
            scored = (last if last is not None else first_new - step) - step * back
            if live is not None and scored.value - live > far.value:
                self.live.drop([e])  # too far behind to replay: rebuilt from the look-back
                live = None
            if live is not None and live <= scored.value:
                starts.append(pd.Timestamp(live, tz="UTC") + step)
            else:  # no scorer, or points it has seen are scored again (display)
                starts.append(lookback)
        return min(starts)

    def save_checkpoints(self, *, everything: bool = False, timeout: float = -1) -> int:
        """Write the live scorers changed since the last checkpoint (all with
        ``everything``) to the store; returns how many. A failed write is counted as a store
        error and retried at the next checkpoint. Waits for a running tick (at most
        ``timeout`` seconds when given; then nothing is written)."""
        if not self.lock.acquire(timeout=timeout):
            log.warning("job %s: a tick is still running; stream checkpoints not written",
                        self.name)
            return 0
        try:
            self._ticks_since_checkpoint = 0
            rows = self.live.checkpoint_rows(everything=everything)
            try:
                self.store.save_checkpoints(rows)
            except StoreError as exc:
                self._error("store", exc)
                self.live.mark_dirty(r.entity for r in rows)
                return 0
            if rows:
                log.info("job %s: %d stream checkpoint(s) written", self.name, len(rows))
            return len(rows)
        finally:
            self.lock.release()

    # ------------------------------------------------------------------ tick
    def tick(self, now: pd.Timestamp | None = None) -> TickResult:
        """Score everything new up to ``now`` (default: the source's clock)."""
        with self.lock:
            t0 = time.perf_counter()
            now = self.source.now() if now is None else pd.Timestamp(now)
            result = self._tick(now, t0)
            self.last_result = result
            self.ticks += 1
            return result

    def _tick(self, now: pd.Timestamp, t0: float) -> TickResult:
        model = self.model
        if model is None:
            try:
                model = self.ensure_model()
            except AwsAnomalyError as exc:
                return TickResult(self.name, now, error=str(exc),
                                  stage="fetch" if isinstance(exc, SourceError) else "train",
                                  total_s=time.perf_counter() - t0)
        step = pd.Timedelta(model.step_)
        warm = int(model.spec.min_history) + 1
        try:
            state = self.store.job_state(self.name)
        except StoreError as exc:
            return TickResult(self.name, now, error=self._error("store", exc), stage="store")
        self._use_model(model)
        end = now + pd.Timedelta(1, "ns")  # the point exactly at `now` is measured
        first_new = pd.Timestamp(now - pd.Timedelta(self.job.lookback))
        # Score from the oldest entity's last scored point; new entities from `lookback` ago.
        entities = list(self.job.entities) if self.job.entities else None
        known = [t for e, t in state.items() if entities is None or e in entities]
        oldest = min(known) if known else first_new
        if entities is not None and any(e not in state for e in entities):
            oldest = min(oldest, first_new)
        limit_end = oldest + step * self.max_steps_per_tick + pd.Timedelta(1, "ns")
        caught_up = limit_end >= end
        end = min(end, limit_end)
        # After a restart, show the recent past again (scored for display only).
        redisplay = not self._display and bool(known)
        fetch_start = self._fetch_start(state, entities, first_new, step, warm, redisplay)
        # Every tick asks the source for at least its latest step, even when every live scorer
        # has it already (no new step yet): an idle tick is then a quiet success that still
        # checks the source, so an outage shows (source_up, a failed fetch) within a tick, not
        # a step later.
        fetch_start = min(fetch_start, end - step)
        tf = time.perf_counter()
        try:
            ds = self.source.fetch(fetch_start, end, entities=entities)
        except AwsAnomalyError as exc:
            msg = self._error("fetch", exc)
            self.source_ok, self.source_error = False, msg
            return TickResult(self.name, now, error=msg, stage="fetch",
                              total_s=time.perf_counter() - t0)
        fetch_s = time.perf_counter() - tf
        self.source_ok, self.source_error = True, None
        if self.metrics is not None:
            self.metrics.observe_fetch(self.name, fetch_s)

        frame = ds.frame
        # A dict map (not a Python call per row): this runs over every fetched row.
        last = (pd.to_datetime(frame["entity"].map(state), utc=True)
                .astype("datetime64[ns, UTC]").fillna(first_new - step))
        if not self._display and known:
            last = last - step * self.display_points  # re-score the recent past for display
        new_mask = (frame["timestamp"] > last).to_numpy()
        if not new_mask.any():
            self._success()
            return TickResult(self.name, now, entities=len(ds.entities), caught_up=caught_up,
                              fetch_s=fetch_s, total_s=time.perf_counter() - t0)
        metrics = tuple(model.metrics_)
        new_frame = frame.loc[new_mask].reset_index(drop=True)
        touched = [str(e) for e in pd.unique(frame["entity"])]
        # Each entity's last points before this tick: the context of a flagged point's kind.
        context = {e: got for e in touched if (got := self.live.recent(e, LOOKBACK)) is not None}
        ts_ = time.perf_counter()
        try:
            # Every entity's stream scorer advanced with its new points; one detector call.
            scores = self.live.score(model, frame, new_mask)
        except DataError as exc:
            self.live.drop(touched)
            return TickResult(self.name, now, error=self._error("features", exc),
                              stage="features", total_s=time.perf_counter() - t0)
        except AwsAnomalyError as exc:
            self.live.drop(touched)
            return TickResult(self.name, now, error=self._error("score", exc), stage="score",
                              total_s=time.perf_counter() - t0)
        score_s = time.perf_counter() - ts_
        if self.metrics is not None:
            self.metrics.observe_scoring(self.name, score_s)
        scores = self._decorate(scores, new_frame, frame, context, metrics, step)
        display_only = self._display_only_mask(scores, state)
        live = scores.loc[~display_only].reset_index(drop=True)

        try:
            previous = self.store.open_events(self.name)
        except StoreError as exc:
            self.live.drop(touched)  # advanced past points the store does not know as scored
            return TickResult(self.name, now, error=self._error("store", exc), stage="store")
        # Only entities with an anomalous point or an open event can open, extend or close an
        # event: merging the others (most of them, most ticks) would return nothing.
        flagged = live["is_anomaly"].to_numpy(dtype=bool) & live["ready"].to_numpy(dtype=bool)
        involved = set(live["entity"].to_numpy()[flagged].tolist()) | set(previous)
        eventful = live if len(involved) >= len(touched) else \
            live.loc[live["entity"].isin(list(involved))]
        events = self.policy.merge(eventful, step=step, previous=previous, job=self.name,
                                   model=self.model_name)
        # A first run (or an entity seen for the first time) scores `lookback` of past data:
        # what happened before this tick is history, recorded but never sent.
        for e in live["entity"].unique():
            if str(e) not in state:
                self._history_before.setdefault(str(e), now)
        alerting, history = self.policy.split_history(events, self._history_before)
        if history:
            log.info("job %s: %d event(s) that started before the job first scored their "
                     "entity are recorded as history, not notified", self.name, len(history))
        last_scored = {str(e): pd.Timestamp(t) for e, t in
                       live.groupby("entity")["timestamp"].max().items()}
        outbox = self._plan_alerts(alerting)
        try:
            self.store.commit_tick(self.name, events, last_scored, outbox)
        except StoreError as exc:
            self.live.drop(touched)
            msg = self._error("store", exc)
            self.store_ok, self.store_error = False, msg
            return TickResult(self.name, now, error=msg, stage="store",
                              total_s=time.perf_counter() - t0)
        self.store_ok, self.store_error = True, None
        self._ticks_since_checkpoint += 1
        if self.checkpoint_every and self._ticks_since_checkpoint >= self.checkpoint_every:
            self.save_checkpoints()
        self._remember(scores)
        self._call_sinks(live, events, self.policy.alert_states(
            alerting, entities=live["entity"].astype(str).unique()))
        n_anom = int(live["is_anomaly"].sum())
        self.points_scored += len(live)
        self._success()
        return TickResult(
            self.name, now, points=len(live), anomalies=n_anom, events=tuple(events),
            entities=len(last_scored), scored_from=live["timestamp"].min() if len(live) else None,
            scored_to=live["timestamp"].max() if len(live) else None, caught_up=caught_up,
            fetch_s=fetch_s, score_s=score_s, total_s=time.perf_counter() - t0)

    def _display_only_mask(self, scores: pd.DataFrame,
                           state: Mapping[str, pd.Timestamp]) -> np.ndarray:
        # Rows at or before an entity's stored last-scored time were scored for display only.
        if not state:
            return np.zeros(len(scores), dtype=bool)
        last = pd.to_datetime(scores["entity"].map(lambda e: state.get(e, pd.NaT)), utc=True)
        return (scores["timestamp"] <= last).fillna(False).to_numpy(dtype=bool)

    def _decorate(self, scores: pd.DataFrame, nf: pd.DataFrame, fetched: pd.DataFrame,
                  context: Mapping[str, tuple[np.ndarray, np.ndarray]],
                  metrics: tuple[str, ...], step: pd.Timedelta) -> pd.DataFrame:
        """Apply per-entity thresholds; add raw values, their deviation from the expected
        value in band units (``dev_``) and, on anomalous rows, the kind of behaviour
        (``kind_``; see :mod:`aws_anomaly.explain`)."""
        thr = self.thresholds()
        base = self.base_threshold
        limit = scores["entity"].map(lambda e: thr.get(e, base)).to_numpy(dtype=np.float64)
        ready = scores["ready"].to_numpy(dtype=bool)
        flag = ready & (scores["anomaly_score"].to_numpy() >= limit)
        scores = scores.assign(is_anomaly=flag, threshold=limit)
        cols: dict[str, Any] = {}
        for m in metrics:
            vals = nf[m].to_numpy(dtype=np.float64)
            dev = band_deviation(vals, scores[f"expected_{m}"].to_numpy(),
                                 scores[f"lower_{m}"].to_numpy(),
                                 scores[f"upper_{m}"].to_numpy())
            cols[f"value_{m}"] = vals
            cols[f"dev_{m}"] = np.round(np.clip(dev, -1e6, 1e6), 3)
            cols[f"kind_{m}"] = np.full(len(vals), "", dtype=object)
        if flag.any():
            # The kind needs each flagged point's recent values: the entity's points before
            # this tick (the live state's) + the fetched rows up to the point.
            ent_col = fetched["entity"].to_numpy()
            fts = fetched["timestamp"].array.asi8
            fvals = fetched[list(metrics)].to_numpy(dtype=np.float64)
            for i in np.flatnonzero(flag):
                ent, ts = str(nf["entity"].iat[i]), int(nf["timestamp"].iat[i].value)
                rows = np.flatnonzero((ent_col == ent) & (fts <= ts))
                vals = fvals[rows]
                ctx = context.get(ent)
                if ctx is not None and len(rows) < LOOKBACK:
                    first = fts[rows[0]] if len(rows) else ts + 1
                    vals = np.vstack([ctx[1][ctx[0] < first], vals])
                vals = vals[-LOOKBACK:]
                for j, m in enumerate(metrics):
                    cols[f"kind_{m}"][i] = classify(
                        vals[:, j], scores[f"expected_{m}"].iat[i],
                        scores[f"lower_{m}"].iat[i], scores[f"upper_{m}"].iat[i])
        # Model scores come in dataset order, the same order as `new.frame`.
        return scores.assign(**cols)

    def _remember(self, scores: pd.DataFrame) -> None:
        # expected_/lower_/upper_<metric>: the model's expected band (NaN before it has history)
        keep = ["timestamp", "anomaly_score", "is_anomaly", "ready", "threshold",
                *[c for c in scores.columns if c.startswith(
                    ("value_", "contrib_", "dev_", "expected_", "lower_", "upper_"))]]
        if not len(scores):
            return
        codes, uniq = pd.factorize(scores["entity"].to_numpy())
        order = np.argsort(codes, kind="stable")  # each entity's rows, in their given order
        bounds = np.searchsorted(codes[order], np.arange(len(uniq) + 1))
        arrays = {c: scores[c].to_numpy() for c in keep}
        arrays["timestamp"] = pd.DatetimeIndex(scores["timestamp"]).asi8
        n = self.display_points
        with self._display_lock:
            for j, entity in enumerate(uniq):
                rows = order[bounds[j]:bounds[j + 1]]
                new = {c: a[rows] for c, a in arrays.items()}
                old = self._display.get(str(entity))
                if old is not None and old.keys() == new.keys() and len(old["timestamp"]):
                    before = old["timestamp"] < new["timestamp"].min()
                    new = {c: np.concatenate([old[c][before], new[c]]) for c in new}
                self._display[str(entity)] = {c: a[-n:] for c, a in new.items()}

    def _plan_alerts(self, events: Sequence[AnomalyEvent]) -> list[OutboxItem]:
        out: list[OutboxItem] = []
        if not events:
            return out
        for sink in self.sinks:
            if isinstance(sink, AlertSink):
                try:
                    out.extend(sink.plan_alerts(self.name, events, model=self.model_name))
                except Exception as exc:  # a bug in one notifier must not stop scoring
                    log.exception("job %s: planning alerts of %s failed", self.name,
                                  type(sink).__name__)
                    self._error("notify", exc)
        return out

    def _call_sinks(self, scores: pd.DataFrame, events: Sequence[AnomalyEvent],
                    alert_states: Mapping[str, bool]) -> None:
        for sink in self.sinks:
            if isinstance(sink, AlertSink):
                sink.wake()  # delivery happens in the sink's own thread
            try:
                if isinstance(sink, ScoreSink) and len(scores):
                    sink.on_scores(self.name, scores, model=self.model_name)
                if isinstance(sink, EventSink) and events:
                    sink.on_events(self.name, events, model=self.model_name)
                if isinstance(sink, AlertStateSink) and alert_states:
                    sink.on_alert_states(self.name, alert_states, model=self.model_name,
                                         severity=self.policy.severity)
            except Exception as exc:
                # A sink failing (a notifier down) must not stop scoring; it is counted.
                log.warning("job %s: sink %s failed: %s", self.name, type(sink).__name__, exc)
                self._error("notify", exc)

    def _success(self) -> None:
        if self.metrics is not None:
            self.metrics.record_success(self.name)

    # ------------------------------------------------------------------ queries
    def entities(self) -> list[str]:
        with self._display_lock:
            return sorted(self._display)

    def recent(self, entity: str) -> pd.DataFrame | None:
        """The recent scored points of ``entity`` (values, scores, contributions)."""
        with self._display_lock:
            got = self._display.get(entity)
        if got is None:
            return None
        # the arrays are replaced, never changed in place: reading them unlocked is safe
        out = pd.DataFrame({c: a.copy() for c, a in got.items()})
        out["timestamp"] = pd.to_datetime(got["timestamp"], utc=True)
        return out

    def history_for(self, entity: str, before: pd.Timestamp) -> pd.DataFrame | None:
        """Recent raw values of ``entity`` strictly before ``before`` (wide: timestamp +
        metrics), for scoring a short request that continues the live series."""
        rec = self.recent(entity)
        if rec is None or self.model is None:
            return None
        rec = rec[rec["timestamp"] < before]
        if not len(rec):
            return None
        out = pd.DataFrame({"timestamp": rec["timestamp"].to_numpy(), "entity": entity})
        for m in self.model.metrics_:
            out[m] = rec[f"value_{m}"].to_numpy()
        return out
