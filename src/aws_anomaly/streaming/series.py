"""The streaming (NAB) detectors under the model's contract: per entity, per metric, causal.

One contract for every detector (issue 8, item 1): a detector consumes an entity's metric series
causally and returns a raw "higher = more anomalous" score per point, per metric where it can;
the same calibrator (:class:`aws_anomaly.calibration.Calibrator`) and the same decision layer
(:class:`aws_anomaly.events.AlertPolicy` on the score frame) follow every one.

The feature-matrix detectors of :mod:`aws_anomaly.detectors` meet it through the feature
builder (each feature row is a causal summary of the entity's series). The univariate streaming
detectors of this package meet it here:

* :class:`SeriesDetector` runs one streaming detector per metric of an entity. Its batch form,
  :meth:`SeriesDetector.score_series`, and its streaming form, :meth:`SeriesDetector.start` ->
  :class:`SeriesState` fed one point at a time, give the same numbers (a property test checks
  it, saved and restored states included).
* :class:`SeriesModel` is the model around it, with the public surface of
  :class:`aws_anomaly.model.AnomalyModel` that a job uses (``fit``, ``score``, ``predict``,
  ``stream``, ``min_history``, ``metrics_``, ``step_``): the row's raw score is the largest
  metric score, the per-metric scores are the explanation (``contrib_<metric>``,
  ``top_metric``), and the threshold comes from the model's calibrator fitted on the training
  scores (``pot`` at ``risk`` 1e-3 by default, no labels needed). Its score frame has the
  columns of ``AnomalyModel.score``, so ``AlertPolicy.merge`` turns it into alerts unchanged.

The model is stateless between calls, as ``AnomalyModel`` is: ``score(data, history)`` runs
each entity's detectors from a fresh state over ``history`` (the look-back) then ``data``; the
first :attr:`SeriesModel.min_history` points of that run are the detectors' learning period
(``ready`` False, never flagged). ``stream(entity)`` continues point by point with the same
numbers as one ``score`` pass over the whole series.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from aws_anomaly.data import Dataset
>>> ts = pd.date_range("2026-01-01", periods=1500, freq="5min", tz="UTC")
>>> x = np.sin(np.arange(1500) * 2 * np.pi / 288) + 5
>>> x[1400:1410] += 6.0
>>> ds = Dataset.from_frame(pd.DataFrame({"timestamp": ts, "entity": "a", "cpu": x}))
>>> m = SeriesModel("context", learn="1D").fit(ds.slice_time(None, ts[1200]))
>>> s = m.score(ds)
>>> bool(s["is_anomaly"].to_numpy()[1400:1410].any()), int(s["is_anomaly"].to_numpy()[:1400].sum())
(True, 0)
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from aws_anomaly import bundle
from aws_anomaly.calibration import Calibrator
from aws_anomaly.data import Dataset
from aws_anomaly.durations import format_duration, parse_timedelta, parse_timestamp
from aws_anomaly.errors import ConfigError, DataError, ModelFileError, NotFittedError
from aws_anomaly.model import PointScore
from aws_anomaly.streaming import (
    make_context_ensemble,
    make_forecast_ensemble,
    make_full_ensemble,
)
from aws_anomaly.streaming.base import StreamingDetector, _as_ns, _state_class

__all__ = ["SERIES_DETECTORS", "SeriesDetector", "SeriesModel", "SeriesSpec", "SeriesState",
           "SeriesStream"]

#: The streaming detectors a model can run, by name (the NAB bench names them ``aws_<name>``,
#: which are accepted too). Each is built with the package's one chosen parameter set.
SERIES_DETECTORS: dict[str, Callable[[], StreamingDetector]] = {
    "context": make_context_ensemble,
    "forecast": make_forecast_ensemble,
    "context_forecast": make_full_ensemble,
}

#: The learning period, in time: NAB's 750 records at its usual 5-minute step. The streaming
#: detectors' parameters were chosen with it; stated in time so it means the same on any step.
DEFAULT_LEARN = "62h30m"

#: Fewest learning points whatever the step (the context detector estimates its value range
#: from the first half of the learning period).
MIN_LEARN_POINTS = 20

_STATE_VERSION = 1


class SeriesSpec:
    """What a job reads of a model's feature spec (``AnomalyModel.spec``): the look-back."""

    __slots__ = ("min_history",)

    def __init__(self, min_history: int) -> None:
        self.min_history = int(min_history)

    def __repr__(self) -> str:
        return f"SeriesSpec(min_history={self.min_history})"


def _detector_name(name: str) -> str:
    if not isinstance(name, str):
        raise ConfigError(f"streaming detector must be a name, got {type(name).__name__}")
    key = name[4:] if name.startswith("aws_") else name
    if key == "ensemble":
        key = "context_forecast"
    if key not in SERIES_DETECTORS:
        allowed = ", ".join(repr(n) for n in sorted(SERIES_DETECTORS))
        raise ConfigError(f"unknown streaming detector {name!r}; allowed: {allowed}")
    return key


class SeriesDetector:
    """One streaming detector per metric of an entity; raw score per point and metric.

    Parameters
    ----------
    name
        A key of :data:`SERIES_DETECTORS` (or its NAB bench name, ``aws_context``...).
    probationary
        The learning period in points (the detectors score it, low; a model marks it not
        ready).

    Examples
    --------
    >>> import numpy as np
    >>> det = SeriesDetector("context", probationary=100)
    >>> t = np.arange(300, dtype=np.int64) * 300_000_000_000
    >>> v = np.column_stack([np.tile([0.0, 1.0, 2.0], 100), np.ones(300)])
    >>> v[250, 0] = 9.0
    >>> raw = det.score_series(t, v)
    >>> raw.shape, int(np.argmax(raw[:, 0]))
    ((300, 2), 250)
    >>> st = det.start(2)
    >>> bool(np.array_equal(np.vstack([st.update(int(a), b) for a, b in zip(t, v)]), raw))
    True
    """

    def __init__(self, name: str = "context", *, probationary: int = 750) -> None:
        self.name = _detector_name(name)
        if isinstance(probationary, bool) or not isinstance(probationary, (int, np.integer)) \
                or probationary < 2:
            raise ConfigError(f"probationary must be an int >= 2 points, got {probationary!r}")
        self.probationary = int(probationary)

    def new(self) -> StreamingDetector:
        """A fresh detector for one metric, with this learning period."""
        return SERIES_DETECTORS[self.name]().reset(self.probationary)

    def score_series(self, timestamps: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Raw scores ``(n, m)`` in [0, 1] of a whole series from a fresh state (batch form).

        ``timestamps``: ``(n,)`` datetime64 or int64 ns, non-decreasing; ``values``: ``(n, m)``
        finite float64. Row ``i`` depends on rows ``0..i`` only.
        """
        vals = np.asarray(values, dtype=np.float64)
        if vals.ndim != 2:
            raise DataError(f"values must be 2-D (points, metrics), got shape {vals.shape}")
        ts = np.asarray(timestamps)
        t_ns = ts.astype("datetime64[ns]").astype(np.int64) if ts.dtype.kind == "M" else (
            ts.astype(np.int64))
        if len(t_ns) != len(vals):
            raise DataError(f"{len(t_ns)} timestamps but {len(vals)} rows of values")
        if len(t_ns) > 1 and (np.diff(t_ns) < 0).any():
            i = int(np.argmax(np.diff(t_ns) < 0)) + 1
            raise DataError(f"timestamp at row {i} goes backwards; a series is scored in time "
                            "order")
        out = np.empty(vals.shape)
        for j in range(vals.shape[1]):
            out[:, j] = self.new().run(t_ns, vals[:, j], self.probationary)
        return out

    def start(self, n_metrics: int) -> SeriesState:
        """A fresh streaming state for an entity with ``n_metrics`` metrics."""
        return SeriesState([self.new() for _ in range(int(n_metrics))])


class SeriesState:
    """The streaming form of :class:`SeriesDetector` for one entity: one detector per metric.

    ``update(ns, values)`` scores a point then learns it; :meth:`get_state` is JSON-safe (no
    pickle) and :meth:`from_state` rebuilds it (the classes it may name are the registered
    streaming detectors only).
    """

    def __init__(self, detectors: Sequence[StreamingDetector]) -> None:
        self.detectors = list(detectors)

    @property
    def n_seen(self) -> int:
        """Points fed so far."""
        return int(self.detectors[0].n_seen_) if self.detectors else 0

    def update(self, timestamp: Any, values: Any) -> np.ndarray:
        """Raw scores ``(m,)`` of one point (time: ns int, datetime or ISO string)."""
        vals = np.asarray(values, dtype=np.float64).reshape(-1)
        if len(vals) != len(self.detectors):
            raise DataError(f"expected {len(self.detectors)} values, got {len(vals)}")
        bad = ~np.isfinite(vals)
        if bad.any():
            raise DataError(f"value {int(np.argmax(bad))} of the point at {timestamp} is "
                            f"{vals[bad][0]}; values must be finite")
        ns = _as_ns(timestamp)
        return np.array([d.update(ns, float(v)) for d, v in zip(self.detectors, vals,
                                                                 strict=True)])

    def copy(self) -> SeriesState:
        """An independent copy."""
        return SeriesState(copy.deepcopy(self.detectors))

    def get_state(self) -> dict[str, Any]:
        """JSON-safe state of every metric's detector."""
        return {"version": _STATE_VERSION, "detectors": [d.get_state() for d in self.detectors]}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> SeriesState:
        """Rebuild from :meth:`get_state`; :class:`ModelFileError` on a foreign state."""
        if not isinstance(state, Mapping) or state.get("version") != _STATE_VERSION:
            raise ModelFileError("streaming series state is missing or of another version")
        dets = []
        for st in state["detectors"]:
            if not isinstance(st, Mapping) or "class" not in st:
                raise ModelFileError("streaming series state holds a malformed detector state")
            dets.append(_state_class(str(st["class"])).from_state(dict(st)))
        return cls(dets)


class SeriesModel:
    """A streaming detector per metric + the model's calibrator: a job's model contract.

    Parameters
    ----------
    detector
        A key of :data:`SERIES_DETECTORS` (``context``, the NAB bench's ``aws_context``).
    calibration
        :class:`~aws_anomaly.calibration.Calibrator` arguments; the default, peaks over
        threshold at risk 1e-3, needs no labels (labels, when the training data has them, keep
        the fit on normal points, as for ``AnomalyModel``).
    learn
        The detectors' learning period, in time (turned into points of the training step, at
        least :data:`MIN_LEARN_POINTS`).
    floor
        The lowest raw threshold: ``"alarm"`` (default) the detector's own alarm level (its
        ``rest_level``, 0.45 for ``context``: where it starts an alarm and its rest; the level
        NAB's thresholds land on, 0.45 on every leave-one-category-out fold), a number, or
        None. Training scores of a clean series are small and a tail fitted on them alone
        would page on the training series' own largest wiggle.

    Raises
    ------
    ConfigError
        An unknown detector, a bad calibration or learning period (one line, naming it).
    """

    def __init__(self, detector: str = "context", *,
                 calibration: Mapping[str, Any] | None = None,
                 learn: str | pd.Timedelta = DEFAULT_LEARN,
                 floor: float | str | None = "alarm") -> None:
        self.detector = _detector_name(detector)
        self.calibration = dict(calibration or {"method": "pot", "risk": 1e-3})
        Calibrator(**self.calibration)  # fail here, once, on a bad argument
        self.learn = parse_timedelta(learn, where="learn")
        if floor is not None and floor != "alarm" and (
                isinstance(floor, (bool, str)) or not 0.0 <= float(floor) <= 1.0):
            raise ConfigError(f"floor must be 'alarm', None or a number in [0, 1], got "
                              f"{floor!r}")
        self.floor = floor
        self.metadata: dict[str, Any] = {}
        #: No estimator parameters (the detectors run with the package's chosen set); kept
        #: for the registry, which records every model's.
        self.detector_params: dict[str, Any] = {}

    # ------------------------------------------------------------------ helpers
    def _check_fitted(self) -> None:
        if not hasattr(self, "calibrator_"):
            raise NotFittedError("SeriesModel is not fitted; call fit() or from_dict()")

    @property
    def min_history(self) -> int:
        """Points of an entity's series before its first scored (ready) point."""
        self._check_fitted()
        return self.series_detector_.probationary

    @property
    def spec(self) -> SeriesSpec:
        """``spec.min_history`` as ``AnomalyModel.spec`` has it: the rows of look-back a job
        fetches to rebuild an entity's scorer (the learning period)."""
        return SeriesSpec(self.min_history)

    @property
    def feature_names_(self) -> tuple[str, ...]:
        """What the detectors read: the metrics themselves (one detector each), as
        ``AnomalyModel.feature_names_`` lists its feature columns (``/v1/status``)."""
        self._check_fitted()
        return tuple(self.metrics_)

    def _as_dataset(self, data: Dataset | pd.DataFrame, where: str) -> Dataset:
        data = Dataset.coerce(data, where=where, metrics=getattr(self, "metrics_", None))
        if (hasattr(self, "metrics_") and hasattr(self, "step_")
                and pd.Timedelta(data.step) != self.step_):
            raise DataError(f"{where}: step {data.step} is not the model's {self.step_}")
        return data

    def _runs(self, data: Dataset, history: Dataset | None
              ) -> list[tuple[str, pd.DatetimeIndex, np.ndarray, np.ndarray, int]]:
        """Per entity: (entity, timestamps of ``data``, raw (n, m), ready (n,), look-back)."""
        metrics = list(self.metrics_)
        hist = dict(history.iter_entities()) if history is not None else {}
        det = self.series_detector_
        out = []
        for entity, ef in data.iter_entities():
            ts = pd.DatetimeIndex(ef.index)
            vals = ef[metrics].to_numpy(dtype=np.float64)
            n_ctx = 0
            h = hist.get(entity)
            if h is not None and len(h) and h.index[-1] + data.step == ts[0]:
                vals = np.vstack([h[metrics].to_numpy(dtype=np.float64), vals])
                all_ts = pd.DatetimeIndex(h.index).append(ts)
                n_ctx = len(h)
            else:
                all_ts = ts
            raw = det.score_series(all_ts.asi8, vals)[n_ctx:]
            ready = np.arange(n_ctx, n_ctx + len(ts)) >= det.probationary
            out.append((str(entity), ts, raw, ready, n_ctx))
        return out

    def alarm_floor(self) -> float | None:
        """The raw threshold floor (see ``floor``); None for none."""
        if self.floor is None:
            return None
        if self.floor == "alarm":
            level = getattr(SERIES_DETECTORS[self.detector](), "rest_level", None)
            return None if level is None else float(level)
        return float(self.floor)

    # ------------------------------------------------------------------ fit
    def fit(self, train: Dataset | pd.DataFrame,
            validation: Dataset | pd.DataFrame | None = None) -> SeriesModel:
        """Fit the calibrator on the detectors' scores of the training series.

        The detectors learn online, so "fitting" runs them over each training entity and
        calibrates on the scores after their learning period (pooled over entities); with
        ``validation`` (continuing the training entities) the calibrator uses its scores
        instead, with its labels when it has them.

        Raises
        ------
        DataError
            No entity has a point after the learning period (the message gives the sizes).
        """
        train = self._as_dataset(train, "training data")
        self.metrics_ = tuple(train.metrics)
        self.step_ = pd.Timedelta(train.step)
        points = max(MIN_LEARN_POINTS, math.ceil(self.learn / self.step_))
        self.series_detector_ = SeriesDetector(self.detector, probationary=points)
        calib = train
        history = None
        if validation is not None:
            calib = self._as_dataset(validation, "validation data")
            history = train
        raws, labels = [], []
        for entity, _, raw, ready, _ in self._runs(calib, history):
            raws.append(raw.max(axis=1)[ready])
            if calib.has_labels:
                labels.append(np.asarray(calib.labels(entity), dtype=bool)[ready])
        raw_all = np.concatenate(raws) if raws else np.empty(0)
        if raw_all.size < MIN_LEARN_POINTS:
            sizes = {e: len(f) for e, f in calib.iter_entities()}
            del self.series_detector_
            raise DataError(
                f"training data: too few points after the {self.detector} detector's learning "
                f"period of {points} points ({self.learn} at {self.step_}): rows per entity "
                f"{sizes}; give more history or a shorter learn=")
        y = np.concatenate(labels) if labels else None
        method = self.calibration.get("method")
        cal = Calibrator(**self.calibration).fit(
            raw_all, y if method in ("best_f1", "target_fpr", "pot") else None)
        floor = self.alarm_floor()
        if floor is not None and cal.threshold_ < floor:
            # The same calibrator with its threshold raised to the floor (center -> 0 and
            # threshold -> 1 as ever).
            st = cal.to_dict()
            st["fallback"] = (f"threshold {st['threshold']:.4g} raised to the floor "
                              f"{floor:.4g}" + (f"; {st['fallback']}" if st["fallback"] else ""))
            st["threshold"] = floor
            st["scale"] = max(floor - float(st["center"]), 1e-12)
            cal = Calibrator.from_dict(st)
        self.calibrator_ = cal
        self.training_summary_ = {
            "entities": len(train.entities), "calibration_rows": int(raw_all.size),
            "learn_points": points, "calibrated_on": "validation" if validation is not None
            else "train", "threshold_raw": float(self.calibrator_.threshold_),
        }
        return self

    # ------------------------------------------------------------------ score
    def score(self, data: Dataset | pd.DataFrame,
              history: Dataset | pd.DataFrame | None = None, *,
              explain: str = "full") -> pd.DataFrame:
        """Score every row of ``data`` (a :class:`Dataset` is its own grid).

        Columns as :meth:`aws_anomaly.model.AnomalyModel.score`: ``timestamp``, ``entity``,
        ``anomaly_score`` (calibrated: >= 1.0 is anomalous), ``is_anomaly``, ``top_metric``,
        ``contrib_<metric>`` (each metric's share of the per-metric raw scores), ``ready`` and
        ``expected_``/``lower_``/``upper_<metric>`` (NaN: these detectors give no band).
        ``history`` is look-back for entities it continues (ending one step before their first
        row); without it each entity's first :attr:`min_history` rows are the learning period.
        ``explain`` is accepted for the callers of ``AnomalyModel.score`` (``full``,
        ``flagged``, ``none``): the per-metric shares cost nothing and are always given.
        """
        if explain not in ("full", "flagged", "none"):
            raise ConfigError(f"explain must be 'full', 'flagged' or 'none', got {explain!r}")
        self._check_fitted()
        data = self._as_dataset(data, "scoring data")
        hist = None if history is None else self._as_dataset(history, "history")
        frames = []
        m = len(self.metrics_)
        for entity, ts, raw, ready, _ in self._runs(data, hist):
            row = raw.max(axis=1)
            score = np.where(ready, self.calibrator_.transform(row), 0.0)
            total = raw.sum(axis=1, keepdims=True)
            contrib = np.divide(raw, total, out=np.zeros_like(raw), where=total > 0)
            contrib[~ready] = 0.0
            top = np.where(contrib.sum(axis=1) > 0,
                           np.asarray(self.metrics_, dtype=object)[contrib.argmax(axis=1)], "")
            part = {"timestamp": ts, "entity": entity, "anomaly_score": score,
                    "is_anomaly": ready & (score >= 1.0), "top_metric": top}
            part.update({f"contrib_{self.metrics_[j]}": contrib[:, j] for j in range(m)})
            part["ready"] = ready
            nan = np.full(len(ts), np.nan)
            for name in self.metrics_:
                part.update({f"{k}_{name}": nan for k in ("expected", "lower", "upper")})
            frames.append(pd.DataFrame(part))
        return pd.concat(frames, ignore_index=True)

    def predict(self, data: Dataset | pd.DataFrame,
                history: Dataset | pd.DataFrame | None = None) -> np.ndarray:
        """-1 (anomalous) / 1 per row, as :meth:`score`'s ``is_anomaly``."""
        flags = self.score(data, history)["is_anomaly"].to_numpy()
        return np.where(flags, -1, 1)

    def stream(self, entity: str) -> SeriesStream:
        """A live scorer for one entity (fresh: its first points are the learning period)."""
        self._check_fitted()
        return SeriesStream(self, entity)

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description of the fitted model (parameters, layout, calibrator)."""
        self._check_fitted()
        return {"kind": "series", "version": _STATE_VERSION, "detector": self.detector,
                "calibration": self.calibration,
                "learn": format_duration(self.learn.to_pytimedelta()), "floor": self.floor,
                "metrics": list(self.metrics_), "step": str(self.step_),
                "probationary": self.series_detector_.probationary,
                "calibrator": self.calibrator_.to_dict(), "metadata": self.metadata,
                "training_summary": self.training_summary_}

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the model as a JSON-only bundle (:mod:`aws_anomaly.bundle`, ``kind``
        ``series``: the manifest and its checksum, no pickle, no skops); returns the path."""
        desc = {"kind": "series", "metrics": list(self.metrics_) if hasattr(self, "metrics_")
                else [], "step_seconds": self.step_.total_seconds()
                if hasattr(self, "step_") else None, "model": self.to_dict(),
                # the registry's stamp, where :func:`aws_anomaly.retrain.version_of` reads it
                **{k: v for k, v in self.metadata.items() if k not in ("kind", "model")}}
        return str(bundle.write_bundle(path, desc, None))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SeriesModel:
        """Load a bundle written by :meth:`save`, verifying its checksums
        (:func:`aws_anomaly.bundle.read_json_bundle`); :class:`ModelFileError` otherwise."""
        manifest = bundle.read_json_bundle(path, "series")
        model = cls.from_dict(manifest.get("model"))
        model.manifest_ = manifest
        return model

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SeriesModel:
        """Rebuild a model saved with :meth:`to_dict`."""
        if not isinstance(d, Mapping) or d.get("kind") != "series" \
                or d.get("version") != _STATE_VERSION:
            raise ModelFileError("not a streaming series model description (kind 'series', "
                                 f"version {_STATE_VERSION})")
        try:
            model = cls(d["detector"], calibration=d["calibration"],
                        learn=d["learn"],
                        floor=d.get("floor", "alarm"))
            model.metrics_ = tuple(d["metrics"])
            model.step_ = pd.Timedelta(d["step"])
            model.series_detector_ = SeriesDetector(model.detector,
                                                    probationary=int(d["probationary"]))
            model.calibrator_ = Calibrator.from_dict(d["calibrator"])
            model.metadata = dict(d.get("metadata", {}))
            model.training_summary_ = dict(d.get("training_summary", {}))
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise ModelFileError(f"streaming series model description is incomplete: {exc}"
                                 ) from exc
        return model

    def __repr__(self) -> str:
        state = "fitted" if hasattr(self, "calibrator_") else "unfitted"
        return f"SeriesModel(detector={self.detector!r}, learn={str(self.learn)!r}, {state})"


class SeriesStream:
    """Live scoring of one entity with a :class:`SeriesModel`: the numbers of one ``score``
    pass over the whole series, one point at a time."""

    def __init__(self, model: SeriesModel, entity: str,
                 state: SeriesState | None = None) -> None:
        self.model = model
        self.entity = entity
        self.state = state if state is not None else model.series_detector_.start(
            len(model.metrics_))

    @property
    def last_ns(self) -> int | None:
        """Time (ns) of the last point fed; None before the first."""
        if not self.state.detectors:
            return None
        last = self.state.detectors[0].last_t_
        return None if last is None else int(last)

    @property
    def n_seen(self) -> int:
        """Points fed so far."""
        return self.state.n_seen

    @property
    def ready(self) -> bool:
        """True once the learning period is over (the next point is scored)."""
        return self.state.n_seen >= self.model.series_detector_.probationary

    def prime(self, timestamps: Sequence[Any] | pd.DatetimeIndex, values: np.ndarray) -> None:
        """Feed history (not scored)."""
        vals = np.asarray(values, dtype=np.float64)
        for t, v in zip(pd.DatetimeIndex(timestamps).asi8.tolist(), vals, strict=True):
            self.state.update(t, v)

    def update(self, timestamp: Any, values: Any) -> PointScore:
        """Score one point (values in the model's metric order), then learn it."""
        ready = self.ready
        raw = self.state.update(timestamp, values)
        names = self.model.metrics_
        ts = pd.Timestamp(int(timestamp), tz="UTC") if isinstance(
            timestamp, (int, np.integer)) and not isinstance(timestamp, bool) else (
            parse_timestamp(timestamp, where=f"point of entity {self.entity!r}",
                            error=DataError))
        if not ready:
            return PointScore(ts, self.entity, 0.0, False, "", dict.fromkeys(names, 0.0), False)
        score = float(self.model.calibrator_.transform(np.array([raw.max()]))[0])
        total = float(raw.sum())
        contrib = raw / total if total > 0 else np.zeros_like(raw)
        top = names[int(contrib.argmax())] if total > 0 else ""
        return PointScore(ts, self.entity, score, score >= 1.0, top,
                          dict(zip(names, contrib.tolist(), strict=True)), True)

    def copy(self) -> SeriesStream:
        """An independent scorer in the same state (sharing the read-only model)."""
        return SeriesStream(self.model, self.entity, self.state.copy())

    def get_state(self) -> str:
        """The scorer's state as a JSON string (checkpoints)."""
        return json.dumps({"entity": self.entity, "series": self.state.get_state()})

    @classmethod
    def from_state(cls, model: SeriesModel, text: str) -> SeriesStream:
        """Rebuild a scorer of ``model`` saved with :meth:`get_state`."""
        try:
            d = json.loads(text)
            state = SeriesState.from_state(d["series"])
            entity = str(d["entity"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelFileError(f"stream state is not a series scorer's: {exc}") from exc
        if len(state.detectors) != len(model.metrics_):
            raise ModelFileError(f"stream state has {len(state.detectors)} metrics, the model "
                                 f"{len(model.metrics_)}")
        return cls(model, entity, state)
