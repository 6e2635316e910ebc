"""The job runner: one detection job's fetch -> score -> events -> sinks -> state loop.

A job has two halves. :class:`JobRunner` is the tick loop and the job's face to the service;
its model, the trainings, the registry and the thresholds feedback raises are
:class:`aws_anomaly.jobmodel.JobModel` (``runner.jobmodel``; ``runner.model``,
``runner.retrain()``, ``runner.rollback()``... are that object's), and the live series state is
:mod:`aws_anomaly.live` (``runner.live``: one primed stream scorer per entity; ``runner.shown``:
the recent points the dashboard shows). Errors and the source's and store's state are counted
in :class:`aws_anomaly.jobhealth.JobHealth` (``runner.health``), shared by both halves.

Each :meth:`JobRunner.tick` scores every grid point that arrived since the last scored
timestamp of each entity — never more, never less:

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
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from aws_anomaly.config import JobConfig
from aws_anomaly.durations import parse_timestamp
from aws_anomaly.errors import AwsAnomalyError, DataError, SourceError, StoreError
from aws_anomaly.events import DEFAULT_MAX_GAP_STEPS, AlertPolicy, AnomalyEvent
from aws_anomaly.explain import LOOKBACK, band_deviation, classify
from aws_anomaly.jobhealth import STAGES, JobHealth, RunnerMetrics
from aws_anomaly.jobmodel import JobModel, TrainProgress
from aws_anomaly.live import LiveState, RecentPoints
from aws_anomaly.model import AnomalyModel
from aws_anomaly.models_io import warm_rows
from aws_anomaly.retrain import Retrainer, version_of
from aws_anomaly.sources.base import Source
from aws_anomaly.store import ModelRecord, OutboxItem, Store
from aws_anomaly.streaming.series import SeriesModel

__all__ = ["STAGES", "AlertSink", "AlertStateSink", "EventSink", "JobRunner", "RunnerMetrics",
           "ScoreSink", "Sink", "TickResult", "TrainProgress"]

log = logging.getLogger(__name__)


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


def _model_version(model: AnomalyModel) -> str:
    """The registry version stamped into the model's bundle (``"1"`` for a bundle written
    before the registry kept history)."""
    return version_of(model) or "1"


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
    max_gap_steps, fp_margin, fp_max_threshold, on_progress
        See :class:`aws_anomaly.jobmodel.JobModel`.
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
        self.sinks = list(sinks)
        self.store = state
        self.metrics = metrics
        self.max_steps_per_tick = max_steps_per_tick
        self.display_points = display_points
        self.max_gap_steps = max_gap_steps
        #: The one decision of "anomalous points -> alert" (events, notifiers, exporter).
        self.policy = AlertPolicy.from_job(job, max_gap_steps=max_gap_steps)
        # entity -> time of the first tick that scored it without stored progress: its events
        # that started before are look-back history, stored but never notified.
        self._history_before: dict[str, pd.Timestamp] = {}
        self.lock = threading.RLock()  # one tick or model swap at a time for this job
        #: Errors per stage and whether the source and the store answered.
        self.health = JobHealth(job.name, metrics)
        #: The job's model: loading, training, registry, rollback, feedback thresholds.
        self.jobmodel = JobModel(job, source, model, state, health=self.health, lock=self.lock,
                                 model_path=model_path, max_gap_steps=max_gap_steps,
                                 fp_margin=fp_margin, fp_max_threshold=fp_max_threshold,
                                 on_progress=on_progress)
        self.jobmodel.on_swap.append(self._model_swapped)
        #: Each entity's recent scored points, for the dashboard and short /v1/score.
        self.shown = RecentPoints(display_points)
        self.last_result: TickResult | None = None
        self.ticks = 0
        self.points_scored = 0
        #: One primed stream scorer per entity, fed every new point once (aws_anomaly.live);
        #: ticks score with it and short /v1/score requests continue a copy of it.
        self.live = LiveState(job.name)
        self.checkpoint_every = checkpoint_every
        self._ticks_since_checkpoint = 0
        # The registry's drift and automated retraining watch every tick's live scores.
        self.sinks.append(self.retrainer)

    # ------------------------------------------------------------------ properties
    @property
    def name(self) -> str:
        return self.job.name

    @property
    def model_name(self) -> str:
        return self.jobmodel.model_name

    @property
    def model(self) -> AnomalyModel | None:
        """The model the next tick scores with (``jobmodel.model``)."""
        return self.jobmodel.model

    @property
    def model_path(self) -> Path | None:
        return self.jobmodel.model_path

    @property
    def progress(self) -> TrainProgress:
        return self.jobmodel.progress

    @property
    def retrainer(self) -> Retrainer:
        return self.jobmodel.retrainer

    @property
    def step(self) -> pd.Timedelta:
        if self.model is not None:
            return pd.Timedelta(self.model.step_)
        return pd.Timedelta(self.source.step)

    @property
    def base_threshold(self) -> float:
        return self.jobmodel.base_threshold

    def thresholds(self) -> dict[str, float]:
        """Per-entity thresholds raised by feedback (entities not listed use the job's)."""
        return self.jobmodel.thresholds()

    def threshold_for(self, entity: str) -> float:
        return self.jobmodel.threshold_for(entity)

    # health, read by the service
    @property
    def errors(self) -> dict[str, int]:
        return self.health.errors

    @property
    def last_error(self) -> dict[str, str]:
        return self.health.last_error

    @property
    def source_ok(self) -> bool | None:
        return self.health.source_ok

    @property
    def source_error(self) -> str | None:
        return self.health.source_error

    @property
    def store_ok(self) -> bool | None:
        return self.health.store_ok

    @property
    def store_error(self) -> str | None:
        return self.health.store_error

    def record_error(self, stage: str, exc: BaseException) -> str:
        """Count an error of ``stage`` (here and in the metrics); returns its message.

        Thread-safe: the notifiers' delivery threads report here too."""
        return self.health.record_error(stage, exc)

    # ------------------------------------------------------------------ model (JobModel's)
    def ensure_model(self) -> AnomalyModel:
        """The job's model: already loaded, loaded from ``model_path``, or trained now."""
        return self.jobmodel.ensure_model()

    def retrain(self, *, reason: str = "requested") -> AnomalyModel:
        """Train a new champion on the job's history with feedback
        (:meth:`aws_anomaly.jobmodel.JobModel.retrain`); ticks go on meanwhile."""
        return self.jobmodel.retrain(reason=reason)

    def rollback(self, version: str | None = None) -> ModelRecord:
        """Make an earlier version the champion again from its kept bundle (default: the
        champion before the current one); see :meth:`aws_anomaly.retrain.Retrainer.rollback`."""
        return self.jobmodel.rollback(version)

    def _model_swapped(self, model: AnomalyModel) -> None:
        # The old model's scores are not shown with the new one's. The live stream scorers
        # follow at the next tick (LiveState.use: rebuilt, or resumed from checkpoints of this
        # version); /v1/score never continues another model's.
        self.shown.clear()

    # ------------------------------------------------------------------ live state
    def _use_model(self, model: AnomalyModel) -> None:
        """Point the live state at ``model``; on a change, resume the entities' scorers from
        the checkpoints of its version (the others are rebuilt from the look-back)."""
        if not self.live.use(model, _model_version(model)):
            return
        try:
            rows = self.store.load_checkpoints(self.name, self.live.version)
        except StoreError as exc:
            self.record_error("store", exc)
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
                self.record_error("store", exc)
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
            now = self.source.now() if now is None else parse_timestamp(now, where="tick time")
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
        warm = warm_rows(model)
        try:
            state = self.store.job_state(self.name)
        except StoreError as exc:
            return TickResult(self.name, now, error=self.record_error("store", exc), stage="store")
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
        redisplay = not self.shown and bool(known)
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
            msg = self.record_error("fetch", exc)
            self.health.source_answered(msg)
            return TickResult(self.name, now, error=msg, stage="fetch",
                              total_s=time.perf_counter() - t0)
        fetch_s = time.perf_counter() - tf
        self.health.source_answered()
        if self.metrics is not None:
            self.metrics.observe_fetch(self.name, fetch_s)

        frame = ds.frame
        # A dict map (not a Python call per row): this runs over every fetched row.
        last = (pd.to_datetime(frame["entity"].map(state), utc=True)
                .astype("datetime64[ns, UTC]").fillna(first_new - step))
        if not self.shown and known:
            last = last - step * self.display_points  # re-score the recent past for display
        new_mask = (frame["timestamp"] > last).to_numpy()
        if not new_mask.any():
            self.health.success()
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
            return TickResult(self.name, now, error=self.record_error("features", exc),
                              stage="features", total_s=time.perf_counter() - t0)
        except AwsAnomalyError as exc:
            self.live.drop(touched)
            return TickResult(self.name, now, error=self.record_error("score", exc), stage="score",
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
            return TickResult(self.name, now, error=self.record_error("store", exc), stage="store")
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
            msg = self.record_error("store", exc)
            self.health.store_answered(msg)
            return TickResult(self.name, now, error=msg, stage="store",
                              total_s=time.perf_counter() - t0)
        self.health.store_answered()
        self._ticks_since_checkpoint += 1
        if self.checkpoint_every and self._ticks_since_checkpoint >= self.checkpoint_every:
            self.save_checkpoints()
        self.shown.add(scores)
        self._call_sinks(live, events, self.policy.alert_states(
            alerting, entities=live["entity"].astype(str).unique()))
        n_anom = int(live["is_anomaly"].sum())
        self.points_scored += len(live)
        self.health.success()
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
        (``kind_``; see :mod:`aws_anomaly.explain`). A model that scores each metric on its
        own (:class:`~aws_anomaly.streaming.series.SeriesModel`) never sees the metrics
        together: a metric inside its band is an ``unusual pattern`` of its own values there,
        not an ``unusual combination``."""
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
        inside = ("unusual pattern" if isinstance(self.model, SeriesModel)
                  else "unusual combination")
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
                    kind = classify(vals[:, j], scores[f"expected_{m}"].iat[i],
                                    scores[f"lower_{m}"].iat[i], scores[f"upper_{m}"].iat[i])
                    cols[f"kind_{m}"][i] = inside if kind == "unusual combination" else kind
        # Model scores come in dataset order, the same order as `new.frame`.
        return scores.assign(**cols)

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
                    self.record_error("notify", exc)
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
                self.record_error("notify", exc)

    # ------------------------------------------------------------------ queries
    def entities(self) -> list[str]:
        return self.shown.entities()

    def recent(self, entity: str) -> pd.DataFrame | None:
        """The recent scored points of ``entity`` (values, scores, contributions)."""
        return self.shown.recent(entity)

    def history_for(self, entity: str, before: pd.Timestamp) -> pd.DataFrame | None:
        """Recent raw values of ``entity`` strictly before ``before`` (wide: timestamp +
        metrics), for scoring a short request that continues the live series."""
        model = self.model
        if model is None:
            return None
        return self.shown.history_for(entity, before, model.metrics_)
