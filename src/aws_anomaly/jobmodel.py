"""Model management of one detection job: load or train its model, retrain it with feedback,
register every version, roll back, and the per-entity thresholds feedback raises.

:class:`JobModel` is one half of a job; the other is the tick loop
(:class:`aws_anomaly.runner.JobRunner`, which owns one ``JobModel`` as ``runner.jobmodel`` and
scores each tick with its current :attr:`JobModel.model`). Automated retraining, drift and the
registry's versions are :class:`aws_anomaly.retrain.Retrainer` (``jobmodel.retrainer``), which
works through this object.

Feedback changes what is flagged at the next retrain (:meth:`JobModel.retrain`), in two ways:

* confirmed anomalies (true positives) are labelled in the training history, so the detector
  does not learn them as normal;
* false positives raise the threshold **of that entity**: after retraining, the highest new
  score inside each false-positive event of an entity, times ``fp_margin``, becomes the entity's
  threshold (never below the job's threshold, never above ``fp_max_threshold`` times it, and
  never above the lowest confirmed true-positive peak of the entity, so what people confirmed
  keeps alerting). Other entities are untouched. This is simple to explain in the dashboard
  ("threshold raised to 1.42 after 2 false positives") and needs nothing from the detector.

Locks: ``train_lock`` allows one training or rollback at a time (ticks go on meanwhile);
``lock`` is the job's tick lock, shared with the runner, taken only for the swap itself, so a
tick runs entirely with the old model or entirely with the new one.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aws_anomaly.config import JobConfig
from aws_anomaly.data import Dataset
from aws_anomaly.durations import parse_timestamp
from aws_anomaly.errors import AwsAnomalyError, SourceError, StoreError
from aws_anomaly.events import DEFAULT_MAX_GAP_STEPS, AnomalyEvent
from aws_anomaly.jobhealth import JobHealth, RunnerMetrics
from aws_anomaly.model import AnomalyModel
from aws_anomaly.models_io import load_model, warm_rows
from aws_anomaly.presets import default_model
from aws_anomaly.retrain import Retrainer, input_reference, publish, version_of, version_path
from aws_anomaly.sources.base import Source
from aws_anomaly.store import ModelRecord, Store
from aws_anomaly.streaming.series import SeriesModel

__all__ = ["JobModel", "TrainProgress"]

log = logging.getLogger(__name__)


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


class JobModel:
    """The model of one job: the champion, its training, registry and feedback thresholds.

    Parameters
    ----------
    job
        The job's configuration (``model``, ``retrain``, ``alert`` sections).
    source
        Where training history comes from.
    model
        A fitted model, or ``None`` to load the bundle at ``model_path`` or train one
        (:meth:`ensure_model`).
    store
        The registry, feedback and per-entity thresholds.
    health
        Where errors are counted (shared with the job's tick loop).
    lock
        The job's tick lock: held while the model is swapped.
    model_path
        Where the job's champion bundle lives (versions are kept beside it).
    max_gap_steps
        The job's event merging gap (a challenger's alerts are counted with it).
    on_progress
        Called with :attr:`progress` whenever a training moves on.
    """

    def __init__(self, job: JobConfig, source: Source, model: AnomalyModel | SeriesModel | None,
                 store: Store, *, health: JobHealth | None = None,
                 lock: threading.RLock | None = None, model_path: str | Path | None = None,
                 max_gap_steps: int = DEFAULT_MAX_GAP_STEPS, fp_margin: float = 1.05,
                 fp_max_threshold: float = 3.0,
                 on_progress: Callable[[TrainProgress], None] | None = None) -> None:
        self.job = job
        self.source = source
        self.model = model
        self.store = store
        self.health = health if health is not None else JobHealth(job.name)
        self.lock = lock if lock is not None else threading.RLock()
        self.model_path = Path(model_path) if model_path is not None else None
        self.max_gap_steps = max_gap_steps
        self.fp_margin = fp_margin
        self.fp_max_threshold = fp_max_threshold
        self.on_progress = on_progress
        self.progress = TrainProgress(state="ready" if model is not None else "idle")
        #: One training or rollback at a time.
        self.train_lock = threading.Lock()
        #: Called (under ``lock``) after every swap of the scoring model.
        self.on_swap: list[Callable[[AnomalyModel | SeriesModel], None]] = []
        self._thresholds: dict[str, float] = {}
        self._thresholds_loaded = False
        self.retrainer = Retrainer(self)

    # ------------------------------------------------------------------ properties
    @property
    def name(self) -> str:
        return self.job.name

    @property
    def model_name(self) -> str:
        """The registry's name of the job's model (the job's name)."""
        return self.job.name

    @property
    def metrics(self) -> RunnerMetrics | None:
        return self.health.metrics

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
        """Count an error of ``stage`` in the job's health; returns its message."""
        return self.health.record_error(stage, exc)

    def set_progress(self, **kw: Any) -> None:
        """Update :attr:`progress` (fields of :class:`TrainProgress`) and tell the listener."""
        for k, v in kw.items():
            setattr(self.progress, k, v)
        if kw.get("step"):
            log.info("job %s: model: %s", self.name, kw["step"])
        if self.on_progress is not None:
            self.on_progress(self.progress)

    # ------------------------------------------------------------------ the champion
    def ensure_model(self) -> AnomalyModel | SeriesModel:
        """The job's model: already loaded, loaded from ``model_path``, or trained now."""
        with self.lock:
            if self.model is not None:
                return self.model
            if self.model_path is not None and (self.model_path / "manifest.json").exists():
                self.set_progress(state="training", step=f"loading {self.model_path}",
                                  started=time.time())
                try:
                    self.model = load_model(self.model_path)
                    self._adopt_loaded(self.model)
                    self.model.prepare_live()  # not on the first tick's first point
                except Exception as exc:
                    self.set_progress(state="failed", error=self.record_error("train", exc),
                                      finished=time.time())
                    if isinstance(exc, AwsAnomalyError):
                        raise
                    raise AwsAnomalyError(f"job {self.name}: cannot load {self.model_path}: "
                                          f"{type(exc).__name__}: {exc}") from exc
                self.set_progress(state="ready", step="loaded", finished=time.time())
                return self.model
            return self.retrain(reason="no model bundle yet")

    def _adopt_loaded(self, model: AnomalyModel | SeriesModel) -> None:
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
                    trained_at=parse_timestamp((getattr(model, "manifest_", None) or {}).get(
                        "created_at") or pd.Timestamp.now(tz="UTC"), where="bundle created_at"),
                    info={**self.retrainer.info(model, rows=summary.get("train_rows", 0),
                                                data_start=None, data_end=None, figures=None,
                                                path=path),
                          "entity_thresholds": self.thresholds()},
                    decision={"trigger": "loaded from the model path", "promoted": True,
                              "decision": "forced"}))
            elif not rec.active:
                self.store.promote_model(self.model_name, version)
        except StoreError as exc:
            self.record_error("store", exc)
        self.retrainer.publish_versions()

    def swap_model(self, model: AnomalyModel | SeriesModel,
                   thresholds: Mapping[str, float]) -> None:
        """Replace the scoring model and its per-entity thresholds (caller holds ``lock``);
        the :attr:`on_swap` listeners follow (the runner forgets the old model's scores)."""
        self._thresholds = dict(thresholds)
        self._thresholds_loaded = True
        self.model = model
        for listener in self.on_swap:
            listener(model)

    # ------------------------------------------------------------------ training
    def retrain(self, *, reason: str = "requested") -> AnomalyModel | SeriesModel:
        """Train a model on ``job.model.history`` of the source, using feedback; swap it in.

        True-positive events are labelled anomalous in the history (left out of training);
        false-positive events raise their entity's threshold (see the module docstring). The
        new model is registered as the next version and replaces the champion without a
        check (automated retrains go through :meth:`aws_anomaly.retrain.Retrainer.challenge`).
        Ticks keep scoring with the current model while it trains.
        """
        with self.train_lock:
            self.set_progress(state="training", step=f"fetching history ({reason})",
                              started=time.time(), finished=None, error=None)
            try:
                return self._retrain(reason)
            except Exception as exc:
                # Whatever went wrong (a disk error saving the bundle, a bug), the training
                # is over: never leave the job "training" (every retrain would be refused).
                stage = "fetch" if isinstance(exc, SourceError) else (
                    "store" if isinstance(exc, StoreError) else "train")
                msg = self.record_error(stage, exc)
                if stage == "fetch":
                    self.health.source_answered(msg)
                self.set_progress(state="failed", error=msg, finished=time.time())
                self.retrainer.count("failed")
                if isinstance(exc, AwsAnomalyError):
                    raise
                raise AwsAnomalyError(f"job {self.name}: training failed: "
                                      f"{type(exc).__name__}: {exc}") from exc

    def rollback(self, version: str | None = None) -> ModelRecord:
        """Make an earlier version the champion again from its kept bundle (default: the
        champion before the current one); see :meth:`aws_anomaly.retrain.Retrainer.rollback`."""
        return self.retrainer.rollback(version)

    def training_data(self, span: pd.Timedelta, now: pd.Timestamp
                      ) -> tuple[Dataset, dict[str, tuple[str, AnomalyEvent]]]:
        """``span`` of history up to ``now`` with feedback-confirmed anomalies labelled, and
        the feedback labels."""
        end = now + pd.Timedelta(1, "ns")
        history = self.source.fetch(end - span, end, entities=self.job.entities)
        self.health.source_answered()
        metrics = list(self.job.metrics or history.metrics)
        where = f"job {self.name}: training history"
        history = history.subset(metrics=metrics, where=where)
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
        return Dataset.checked(frame, metrics=metrics, step=history.step, where=where), labels

    def new_model(self, step: pd.Timedelta) -> AnomalyModel | SeriesModel:
        """An unfitted model as the job's ``model`` section describes it: a
        :class:`~aws_anomaly.streaming.series.SeriesModel` for a streaming detector
        (``context``...; ``auto`` calibration is ``pot`` there, as for ``default``), an
        :class:`~aws_anomaly.model.AnomalyModel` otherwise."""
        thr = self.job.model.threshold
        is_default = self.job.model.detector == "default"
        streaming = self.job.model.streaming
        method = thr.method if thr.method != "auto" else (
            "pot" if is_default or streaming else "target_fpr")
        calibration: dict[str, Any] = {"method": method}
        if method == "target_fpr":
            calibration["target_fpr"] = thr.target_fpr
        elif method == "contamination":
            calibration["contamination"] = thr.contamination
        elif method == "pot" and thr.risk is not None:
            calibration["risk"] = thr.risk
        if streaming:
            return SeriesModel(self.job.model.detector, calibration=calibration)
        if is_default:
            return default_model(step, history=pd.Timedelta(self.job.model.history),
                                 calibration=calibration, entity_thresholds=thr.per_entity,
                                 **({"detector_params": self.job.model.detector_params}
                                    if self.job.model.detector_params else {}))
        return AnomalyModel(detector=self.job.model.detector,
                            detector_params=self.job.model.detector_params,
                            calibration=calibration, entity_thresholds=thr.per_entity)

    def _retrain(self, reason: str) -> AnomalyModel | SeriesModel:
        now = self.source.now()
        # The history ends where the next tick starts scoring: a model must not learn points
        # it has not scored yet (a neighbour method would score each of them 0, an incident
        # among them included). Before the first tick that is the start of the look-back;
        # afterwards the oldest entity's progress (usually about now, so retrains learn the
        # recent events users gave feedback on).
        progress = self.store.job_state(self.name)
        cut = min(progress.values()) if progress else now - pd.Timedelta(self.job.lookback)
        cut = min(cut, now)
        data, labels = self.training_data(pd.Timedelta(self.job.model.history), cut)
        self.set_progress(step=f"fitting {self.job.model.detector} on {len(data):,} points of "
                               f"{len(data.entities)} entities", history_points=len(data))
        # The last fifth of each entity's history calibrates the threshold.
        train, valid = data.split_tail(0.2)
        model = self.new_model(data.step)
        model.fit(train, valid)
        # What drift is measured against: the flagged share on the calibration rows and the
        # training inputs' distribution.
        first = valid.frame["timestamp"].min()
        look = train.slice_time(first - pd.Timedelta(data.step) * warm_rows(model), first)
        vs = model.score(valid, history=look if len(look) else None, explain="none")
        ready = vs["ready"].to_numpy(dtype=bool)
        reference = {"held_back": {"flagged": int((vs["is_anomaly"].to_numpy(dtype=bool)
                                                   & ready).sum()), "points": int(ready.sum())},
                     "inputs": input_reference(train, list(model.metrics_))}
        self.set_progress(step="applying feedback to per-entity thresholds")
        new_thr = self.thresholds_from_feedback(model, data, labels)
        version = self.store.next_model_version(self.model_name)
        if self.model_path is not None:
            self.set_progress(step=f"saving bundle to {self.model_path}")
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
        self.retrainer.trained_at(now)
        self.retrainer.install(model, new_thr, version, decision)
        self.retrainer.count("forced")
        self.set_progress(state="ready", step=f"trained on {len(data):,} points",
                          finished=time.time())
        return model

    def thresholds_from_feedback(self, model: AnomalyModel | SeriesModel, data: Dataset,
                                 labels: Mapping[str, tuple[str, AnomalyEvent]]
                                 ) -> dict[str, tuple[float, str]]:
        """Per-entity thresholds (value, why) that false-positive feedback raises for
        ``model`` (see the module docstring); entities without false positives are absent."""
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
