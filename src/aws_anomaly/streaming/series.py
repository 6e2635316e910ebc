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
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from aws_anomaly import bundle
from aws_anomaly.calibration import Calibrator
from aws_anomaly.data import Dataset
from aws_anomaly.data.dataset import FILL_STEPS, grid_gap_steps
from aws_anomaly.durations import format_duration, parse_timedelta
from aws_anomaly.errors import ConfigError, DataError, ModelFileError, NotFittedError
from aws_anomaly.explain import LOOKBACK
from aws_anomaly.features.band import Band, BandSpec, BandState, band_arrays, fit_band
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
#: Version of a :class:`SeriesStream`'s checkpoint (2: with the band and the recent points).
_STREAM_VERSION = 2
#: Points of an entity a stream remembers (values and times, gap-filled steps included): the
#: context :func:`aws_anomaly.explain.classify` reads to tell a spike from a shift or a drift.
RECENT_POINTS = LOOKBACK


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
        ``rest_level``, 0.45 for ``context``: where it starts an alarm and its rest; its alarms
        score at least 0.6, where NAB's thresholds land on every leave-one-category-out fold),
        a number, or
        None. Training scores of a clean series are small and a tail fitted on them alone
        would page on the training series' own largest wiggle.
    band
        The expected value and band per metric (:mod:`aws_anomaly.features.band`, the same
        band :class:`~aws_anomaly.model.AnomalyModel` gives: it depends on each metric's own
        history only, never on the detector): ``"auto"`` (:meth:`BandSpec.for_step` of the
        training step), a :class:`~aws_anomaly.features.band.BandSpec` (or its dict), or None
        (NaN band columns). It is what the explanations measure a point against
        (observed vs expected, the deviation in band units, the kind); the score stays the
        detector's.

    Raises
    ------
    ConfigError
        An unknown detector, a bad calibration or learning period (one line, naming it).
    """

    def __init__(self, detector: str = "context", *,
                 calibration: Mapping[str, Any] | None = None,
                 learn: str | pd.Timedelta = DEFAULT_LEARN,
                 floor: float | str | None = "alarm",
                 band: BandSpec | Mapping[str, Any] | str | None = "auto") -> None:
        self.detector = _detector_name(detector)
        self.calibration = dict(calibration or {"method": "pot", "risk": 1e-3})
        Calibrator(**self.calibration)  # fail here, once, on a bad argument
        self.learn = parse_timedelta(learn, where="learn")
        if floor is not None and floor != "alarm" and (
                isinstance(floor, (bool, str)) or not 0.0 <= float(floor) <= 1.0):
            raise ConfigError(f"floor must be 'alarm', None or a number in [0, 1], got "
                              f"{floor!r}")
        self.floor = floor
        if isinstance(band, Mapping):
            try:
                band = BandSpec.from_dict(band)
            except (KeyError, TypeError, ValueError) as exc:
                raise ConfigError(f"band: invalid spec {dict(band)!r} ({exc})") from None
        if not (band is None or band == "auto" or isinstance(band, BandSpec)):
            raise ConfigError(f"band must be 'auto', None or a BandSpec, got {band!r}")
        self.band = band
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

    def _runs(self, data: Dataset, history: Dataset | None, *, band: bool = False
              ) -> list[tuple[str, pd.DatetimeIndex, np.ndarray, np.ndarray, np.ndarray]]:
        """Per entity: (entity, timestamps of ``data``, raw (n, m), ready (n,), band): the
        band ``(3, n, m)`` (expected, lower, upper; NaN without one) when ``band``, else
        empty. Look-back in ``history`` is used when it ends one step before the entity's
        first row (a contiguous series)."""
        metrics = list(self.metrics_)
        fitted = getattr(self, "band_", None) if band else None
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
            bands = np.full((3 if band else 0, len(ts), len(metrics)), np.nan)
            if fitted is not None:
                for k, arr in enumerate(band_arrays(vals, fitted)):
                    bands[k] = arr[n_ctx:]
            out.append((str(entity), ts, raw, ready, bands))
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
        spec = BandSpec.for_step(self.step_) if self.band == "auto" else self.band
        self.band_: Band | None = None if spec is None else fit_band(
            [train.values(e) for e in train.entities], spec)
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
        ``expected_``/``lower_``/``upper_<metric>``: the band (``band_``, from each metric's
        own past; NaN before its window has history, or without a band).
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
        for entity, ts, raw, ready, band in self._runs(data, hist, band=True):
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
            for j, name in enumerate(self.metrics_):
                part.update({f"{k}_{name}": band[i, :, j]
                             for i, k in enumerate(("expected", "lower", "upper"))})
            frames.append(pd.DataFrame(part))
        return pd.concat(frames, ignore_index=True)

    def predict(self, data: Dataset | pd.DataFrame,
                history: Dataset | pd.DataFrame | None = None) -> np.ndarray:
        """-1 (anomalous) / 1 per row, as :meth:`score`'s ``is_anomaly``."""
        flags = self.score(data, history)["is_anomaly"].to_numpy()
        return np.where(flags, -1, 1)

    def prepare_live(self) -> None:
        """Nothing to build ahead of the live path (the model contract's
        :meth:`AnomalyModel.prepare_live <aws_anomaly.model.AnomalyModel.prepare_live>`: its
        streaming detectors keep no tables)."""

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
                "band_spec": self.band.to_dict() if isinstance(self.band, BandSpec)
                else self.band,
                "band": None if self.band_ is None else self.band_.to_dict(),
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
            # models saved before bands have none
            model = cls(d["detector"], calibration=d["calibration"],
                        learn=d["learn"],
                        floor=d.get("floor", "alarm"), band=d.get("band_spec"))
            model.metrics_ = tuple(d["metrics"])
            model.band_ = (None if d.get("band") is None
                           else Band.from_dict(d["band"], len(model.metrics_)))
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
    pass over the whole series (scores, shares and band), one point at a time.

    Points come on the model's step grid, each after the last. Gaps (issue 8: what a user
    expects of a stream that missed points):

    * up to :attr:`max_gap_steps` missing steps (the ``Dataset`` fill limit, as
      :class:`~aws_anomaly.stream.StreamScorer`) are filled by holding the last values, as a
      ``Dataset`` (``gap_policy="ffill"``) fills them in batch, so the live numbers stay those
      of one ``score`` pass over the filled series;
    * a longer gap, up to :attr:`restart_steps` (the look-back: the learning period), is
      crossed: the detectors take the next point as it is (they read time: what they learned
      still describes the series), the band's rows are filled with the held values so its
      seasons stay aligned with the clock;
    * a gap longer than the look-back is refused (:class:`DataError`): nothing the stream
      learned would be in a rebuild's look-back, so the job starts a new stream after it
      (:mod:`aws_anomaly.live`), which learns again, as a fresh ``score`` would.

    The state (detectors, band, last points) round-trips through :meth:`get_state` /
    :meth:`from_state` (JSON + numpy arrays, no pickle).
    """

    #: Missing steps filled with the last values (the ``Dataset`` default ``max_gap_steps``).
    max_gap_steps = FILL_STEPS

    def __init__(self, model: SeriesModel, entity: str,
                 state: SeriesState | None = None) -> None:
        self.model = model
        self.entity = entity
        self.state = state if state is not None else model.series_detector_.start(
            len(model.metrics_))
        m = len(model.metrics_)
        band = getattr(model, "band_", None)
        self._band = None if band is None else BandState(band)
        nan = np.full(m, np.nan)
        self._expected: tuple[np.ndarray, np.ndarray, np.ndarray] = (nan, nan, nan)
        # the last RECENT_POINTS points (times in ns, values), a ring at _n % RECENT_POINTS
        self._recent_t = np.zeros(RECENT_POINTS, dtype=np.int64)
        self._recent_v = np.full((RECENT_POINTS, m), np.nan)
        self._n = 0
        self._step_ns = int(model.step_.value)

    # ------------------------------------------------------------------ properties
    @property
    def last_ns(self) -> int | None:
        """Time (ns) of the last point fed; None before the first."""
        return int(self._recent_t[(self._n - 1) % RECENT_POINTS]) if self._n else None

    @property
    def n_seen(self) -> int:
        """Points the detectors were fed (gap-filled steps included)."""
        return self.state.n_seen

    @property
    def ready(self) -> bool:
        """True once the learning period is over (the next point is scored)."""
        return self.state.n_seen >= self.model.series_detector_.probationary

    @property
    def restart_steps(self) -> int:
        """The longest gap (missing steps) the stream crosses: the look-back (the learning
        period, :attr:`SeriesModel.min_history`)."""
        return int(self.model.min_history)

    def band(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Expected value, lower and upper bound per metric at the last point fed (from the
        points before it; NaN without a band or before its window has history)."""
        return self._expected

    def recent_values(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The last ``n`` (at most :data:`RECENT_POINTS`) points fed, oldest first: (times in
        ns, values ``(rows, metrics)``), gap-filled steps included (copies)."""
        take = min(int(n), self._n, RECENT_POINTS)
        idx = [(self._n - take + i) % RECENT_POINTS for i in range(take)]
        return self._recent_t[idx].copy(), self._recent_v[idx].copy()

    def gap_steps(self, ns: int) -> int:
        """Missing steps between the last point and a point at ``ns`` (0: it continues);
        -1 when it is not after the last point or off its grid."""
        return grid_gap_steps(self.last_ns, ns, self._step_ns)

    def continues(self, ns: int) -> bool:
        """Whether a point at ``ns`` may be fed (after the last, on its grid, across a gap
        of at most :attr:`restart_steps`)."""
        return 0 <= self.gap_steps(ns) <= self.restart_steps

    # ------------------------------------------------------------------ feeding
    def _remember(self, ns: int, values: np.ndarray) -> None:
        i = self._n % RECENT_POINTS
        self._recent_t[i] = ns
        self._recent_v[i] = values
        self._n += 1

    def advance(self, ns: int, values: Any) -> tuple[np.ndarray, bool]:
        """Feed one point (time in ns since the epoch, UTC; values in the model's metric
        order): ``(raw scores (m,), ready)``, ``ready`` False in the learning period. Gaps
        as the class says; afterwards :meth:`band` is this point's band. Raises
        :class:`DataError` (state unchanged) for a wrong number of values, a non-finite one,
        a point not after the last, off its grid, or after a gap longer than the look-back.
        """
        ns = int(ns)
        vals = np.asarray(values, dtype=np.float64).reshape(-1)
        m = len(self.model.metrics_)
        if len(vals) != m:
            raise DataError(f"entity '{self.entity}': expected {m} values "
                            f"{list(self.model.metrics_)}, got {len(vals)}")
        if not np.isfinite(vals).all():
            raise DataError(f"entity '{self.entity}' at {pd.Timestamp(ns, tz='UTC')}: values "
                            f"must be finite, got "
                            f"{vals.tolist()}")
        last = self.last_ns
        if last is not None:
            k = self.gap_steps(ns)
            at = pd.Timestamp(ns, tz="UTC") if k < 0 or k > self.restart_steps else None
            if k < 0:
                why = "is not after" if ns <= last else "is off the grid of"
                raise DataError(f"entity '{self.entity}': timestamp {at} {why} the last one "
                                f"{pd.Timestamp(last, tz='UTC')} (step {self.model.step_})")
            if k > self.restart_steps:
                raise DataError(f"entity '{self.entity}': gap of {k} missing steps before {at}, "
                                f"longer than the look-back of {self.restart_steps}; start a "
                                "new stream")
            held = self._recent_v[(self._n - 1) % RECENT_POINTS].copy()
            for i in range(1, k + 1):
                t = last + i * self._step_ns
                if self._band is not None:
                    self._band.update(held)
                if k <= self.max_gap_steps:
                    self.state.update(t, held)
                self._remember(t, held)
        ready = self.ready
        if self._band is not None:
            self._expected = self._band.expected()
            self._band.update(vals)
        raw = self.state.update(ns, vals)
        self._remember(ns, vals)
        return raw, ready

    def prime(self, timestamps: Sequence[Any] | pd.DatetimeIndex, values: np.ndarray) -> None:
        """Feed history (not scored)."""
        vals = np.asarray(values, dtype=np.float64)
        for t, v in zip(pd.DatetimeIndex(timestamps).asi8.tolist(), vals, strict=True):
            self.advance(t, v)

    def update(self, timestamp: Any, values: Any) -> PointScore:
        """Score one point (values in the model's metric order), then learn it."""
        ns = _as_ns(timestamp)
        raw, ready = self.advance(ns, values)
        ts = pd.Timestamp(ns, tz="UTC")
        names = self.model.metrics_
        y, lo, hi = self._expected
        band = (dict(zip(names, y.tolist(), strict=True)),
                dict(zip(names, lo.tolist(), strict=True)),
                dict(zip(names, hi.tolist(), strict=True)))
        if not ready:
            return PointScore(ts, self.entity, 0.0, False, "", dict.fromkeys(names, 0.0), False,
                              *band)
        score = float(self.model.calibrator_.transform(np.array([raw.max()]))[0])
        total = float(raw.sum())
        contrib = raw / total if total > 0 else np.zeros_like(raw)
        top = names[int(contrib.argmax())] if total > 0 else ""
        return PointScore(ts, self.entity, score, score >= 1.0, top,
                          dict(zip(names, contrib.tolist(), strict=True)), True, *band)

    # ------------------------------------------------------------------ state
    def copy(self) -> SeriesStream:
        """An independent scorer in the same state (sharing the read-only model)."""
        new = object.__new__(SeriesStream)
        new.__dict__.update(self.__dict__)
        new.state = self.state.copy()
        new._band = None if self._band is None else self._band.copy()
        new._recent_t = self._recent_t.copy()
        new._recent_v = self._recent_v.copy()
        return new

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(json_dict, arrays)``: the detectors' JSON state, the band's state and the last
        points (arrays: the band's windows, the last band, the recent times and values; no
        NaN in the JSON part); no pickle."""
        state: dict[str, Any] = {
            "version": _STREAM_VERSION, "entity": self.entity, "series": self.state.get_state(),
            "n": int(self._n), "band": None}
        arrays = {"recent_t": self._recent_t.copy(), "recent_v": self._recent_v.copy(),
                  "expected": np.vstack(self._expected)}
        if self._band is not None:
            state["band"], band_arrays_ = self._band.get_state()
            arrays.update({f"band.{k}": v for k, v in band_arrays_.items()})
        return state, arrays

    @classmethod
    def from_state(cls, model: SeriesModel, state: Mapping[str, Any],
                   arrays: Mapping[str, np.ndarray]) -> SeriesStream:
        """Rebuild a scorer of ``model`` saved with :meth:`get_state`; :class:`ModelFileError`
        when the state is another version's, another model's or does not fit."""
        try:
            if not isinstance(state, Mapping) or state.get("version") != _STREAM_VERSION:
                raise ModelFileError(f"not a series stream state of version {_STREAM_VERSION}")
            series = SeriesState.from_state(state["series"])
            entity = str(state["entity"])
            n = state["n"]
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise ModelFileError(f"n must be an integer >= 0, got {n!r}")
            m = len(model.metrics_)
            if len(series.detectors) != m:
                raise ModelFileError(f"it has {len(series.detectors)} metrics, the model {m}")
            sc = cls(model, entity, series)
            recent_t = np.asarray(arrays["recent_t"], dtype=np.int64)
            recent_v = np.asarray(arrays["recent_v"], dtype=np.float64)
            if recent_t.shape != sc._recent_t.shape or recent_v.shape != sc._recent_v.shape:
                raise ModelFileError(f"recent points of shape {recent_v.shape}, expected "
                                     f"{sc._recent_v.shape}")
            expected = np.array(arrays["expected"], dtype=np.float64)
            if expected.shape != (3, m):
                raise ModelFileError(f"the last band has shape {expected.shape}, expected "
                                     f"{(3, m)}")
            if (state["band"] is None) != (sc._band is None):
                raise ModelFileError("the band does not fit the model (" + (
                    "the model has none" if sc._band is None else "the state has none") + ")")
            if sc._band is not None:
                sc._band = BandState.from_state(
                    sc._band.band, state["band"],
                    {k[len("band."):]: v for k, v in arrays.items() if k.startswith("band.")})
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise ModelFileError(f"stream state is not a series scorer's: {exc}") from None
        sc._n, sc._recent_t, sc._recent_v = n, recent_t.copy(), recent_v.copy()
        sc._expected = (expected[0], expected[1], expected[2])
        return sc
