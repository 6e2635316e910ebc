"""``AnomalyModel``: feature spec + scaler + detector + calibrator, fit once, scored anywhere.

The same object scores a batch (:meth:`AnomalyModel.score`), answers scikit-learn style
(:meth:`AnomalyModel.predict`: -1 anomaly / 1 normal), and scores a live stream point by point
(:meth:`AnomalyModel.stream`) with the same numbers. It is saved as a checksummed bundle
(:mod:`aws_anomaly.bundle`), never as a pickle.

The model coordinates parts with one job each: :mod:`aws_anomaly.fitting` (what :meth:`fit`
does: the calibration holdout, the features and scaler, the detector, the threshold),
:mod:`aws_anomaly.scoring` (the batch path of :meth:`score`, chunk by chunk),
:mod:`aws_anomaly.constants` (metrics constant over training: the "should stay constant"
check), :mod:`aws_anomaly.stream` (the live path, a point at a time),
:mod:`aws_anomaly.attribution` (the shares of a score per metric), and
:mod:`aws_anomaly.modelsave` / :mod:`aws_anomaly.modelfile` (the bundle written and read
back). What stays here is the model's parameters and fitted state, the column transform, and
the scoring of transformed rows (:meth:`score_transformed`, :meth:`score_row`) that the batch
and live paths share.

Rows while the feature windows are still filling (``ready`` False, the first
``spec.min_history`` rows of each entity without earlier history) cannot be scored fairly: they
get ``anomaly_score`` 0.0, ``is_anomaly`` False, ``top_metric`` "" and zero contributions.

Explanations: for every flagged row the contribution of each metric is measured by occlusion:
its feature group (``FeatureMatrix.groups``) is replaced by the training median (in scaled
space), the drop of the raw score is recorded, and the drops are normalised to shares summing to
1 (``contrib_<metric>``); ``top_metric`` is the largest. Rows that are not flagged carry zero
contributions and ``top_metric`` "" unless ``explain="all"`` is asked for.

Examples
--------
>>> from aws_anomaly.data.generator import generate_demo
>>> from aws_anomaly.evaluation.split import chronological_split
>>> ds, events = generate_demo(clusters=1, days=3, seed=0)
>>> split = chronological_split(ds)
>>> spec = FeatureSpec(windows=(6, 24), lags=(1,), include_seasonal=False, cross_windows=(24,))
>>> model = AnomalyModel("robust", spec=spec).fit(split.train, split.validation)
>>> scores = model.score(ds)
>>> scores.columns[:5].tolist()
['timestamp', 'entity', 'anomaly_score', 'is_anomaly', 'top_metric']
>>> bool((scores["is_anomaly"] == (scores["anomaly_score"] >= 1.0)).all())
True
>>> sorted(set(model.predict(ds).tolist()))
[-1, 1]
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from aws_anomaly import modelfile
from aws_anomaly.attribution import OCCLUSION_ROWS, metric_membership, occlusion_shares, shares_of
from aws_anomaly.calibration import Calibrator
from aws_anomaly.constants import ConstantGuard, constant_metrics
from aws_anomaly.data import Dataset
from aws_anomaly.detectors import DETECTORS
from aws_anomaly.detectors.base import blas_one_thread
from aws_anomaly.errors import ConfigError, DataError, NotFittedError
from aws_anomaly.features import (
    FeatureSpec,
    build_features,
    check_history,
)
from aws_anomaly.features.band import BandSpec
from aws_anomaly.features.persist import (
    PersistPlan,
    check_persist,
    persist_plan,
    with_persist,
)
from aws_anomaly.features.select import FEATURE_SETS
from aws_anomaly.features.spec import FeaturePlan
from aws_anomaly.fitting import (
    FitInputs,
    fit_detector,
    fit_inputs,
    fit_threshold,
    holdout_split,
)
from aws_anomaly.modelsave import manifest, save_model
from aws_anomaly.progress import track
from aws_anomaly.scaling import Scaler, prepare
from aws_anomaly.scoring import input_rows, score_series, score_table
from aws_anomaly.stream import PointScore, StreamScorer
from aws_anomaly.threshold import (
    AUTO_MAX_FPR,
    DEFAULT_RISK,
    ENTITY_MIN_EXCEEDANCES,
    calibrate,
    calibrator_for,
    parse_threshold,
)

__all__ = [
    "AUTO_MAX_FPR",
    "DEFAULT_RISK",
    "ENTITY_MIN_EXCEEDANCES",
    "MAX_FIT_ROWS",
    "SCORE_COLUMNS",
    "AnomalyModel",
    "PointScore",
    "Scaler",
    "StreamScorer",
    "constant_metrics",
    "parse_threshold",
]

# AUTO_MAX_FPR, DEFAULT_RISK, ENTITY_MIN_EXCEEDANCES and parse_threshold live with the
# threshold fitting (aws_anomaly.threshold) and are served from here for older imports.

#: Default cap on the training rows the scaler and detector learn from (``max_fit_rows``).
MAX_FIT_ROWS = 100_000
SCORE_COLUMNS = ("timestamp", "entity", "anomaly_score", "is_anomaly", "top_metric")


class AnomalyModel:
    """Feature spec + scaler + detector + calibrator.

    Parameters
    ----------
    detector
        A name in :data:`aws_anomaly.detectors.DETECTORS` (``ocsvm``, ``iforest``, ``lof``,
        ``robust``).
    detector_params
        Hyperparameters passed to the detector.
    spec
        The :class:`~aws_anomaly.features.FeatureSpec`; ``None`` for the default.
    calibration
        ``"auto"``, ``"best-f1"``, ``"fpr:0.01"``, ``"share:0.05"`` or a dict of
        :class:`~aws_anomaly.calibration.Calibrator` arguments (see :func:`parse_threshold`).
    scaler
        ``"robust"`` or ``"standard"``.
    exclude_labelled
        When the training data has labels, leave rows labelled anomalous out of the detector's
        training set (labels of the training split only; they never reach later splits).
    band
        The expected value and band per metric (:mod:`aws_anomaly.features.band`), returned by
        :meth:`score` and by streams: ``"auto"`` (:meth:`BandSpec.for_step` of the training
        step: a 3-hour level window, daily and weekly season candidates), a
        :class:`~aws_anomaly.features.band.BandSpec`, or None (no band columns' values).
    feature_set
        ``"stationary"`` (default): leave out level features (value, rolling mean / min / max /
        quantiles, cross ratios), keeping deviations, spreads, differences, seasonal
        differences, correlations and calendar terms; ``"all"``: every feature of the spec;
        ``"level"``: the value and its rolling standard deviations only; ``"hybrid"``: two
        views side by side (the label-free default, see :func:`default_model`): the *level*
        view (the value and its rolling standard deviations over the two shortest windows,
        standard-scaled, never clipped, ``log_std_floor="spread"``) and the *stationary* view (the
        ``"stationary"`` set, robust-scaled, typical log floor). A ``knn`` detector measures
        each view apart (its ``views``).
    log_std
        Use the log of rolling standard deviations, so a metric gone flat is as visible as one
        gone noisy.
    log_std_floor
        What is added to a rolling standard deviation before its log: ``"typical"`` a
        thousandth of its typical (median) training value, so going flat is a large deviation;
        ``"spread"`` the metric's own training standard deviation, so the feature reads
        ``log(1 + std / spread)`` and only volatility comparable with the metric's normal range
        counts (robust on quantised, often-flat metrics).
    calibration_holdout
        When ``fit`` gets no validation data: the share of each entity's most recent training
        rows held out to set the threshold (the detector learns from the rest). Scores of the
        rows a detector learned from are optimistic, and for a neighbour method on a time
        series even its leave-one-out scores are (each row's twin is the row one step
        earlier), so a threshold set on them pages far too often. None: calibrate on the
        training scores (out-of-fit ones where the detector keeps them).
    clip
        Scaled features are clipped to ``[-clip, clip]`` (None: no clipping).
    max_fit_rows
        The scaler, the training medians and the detector learn from at most this many of the
        usable training rows (ready, not labelled anomalous): a seeded uniform subsample
        (seed 0, in time order) when there are more; None: all of them. Features are always
        built on every row (they are causal series). The default,
        :data:`MAX_FIT_ROWS` (100,000 rows: 35 days of 10 clusters at 5-minute steps), keeps
        training on long histories within seconds and well under a gigabyte; histories below
        it are unaffected. docs/performance.md has the measurements.
    persist
        Spans (rows) of exponentially weighted means of the seasonal differences (value minus
        the value one period earlier), added as features ``{m}__season_diff_{P}__ewm_{s}``.
        A level shift or a slow leak keeps these away from zero for its whole duration, where
        rolling z-scores fade as their windows absorb it. Causal; empty: none.
    entity_thresholds
        With a POT threshold and several entities: each entity whose held-out (validation)
        rows are enough (:data:`ENTITY_MIN_EXCEEDANCES`) gets its own calibrator, the same
        rule fit on its own scores, so every entity is held to the same risk (normal points
        a day above its threshold) instead of the noisiest entities taking the pooled
        threshold's whole budget. Entities without enough rows, and entities not seen in
        training, use the pooled calibrator. ``anomaly_score >= 1`` keeps its meaning: at or
        beyond the entity's threshold. Other threshold rules are pooled.
    """

    def __init__(self, detector: str = "ocsvm", detector_params: Mapping[str, Any] | None = None,
                 spec: FeatureSpec | None = None, calibration: str | Mapping[str, Any] = "auto",
                 scaler: str = "robust", exclude_labelled: bool = True,
                 feature_set: str = "stationary", log_std: bool = True,
                 clip: float | None = 10.0, persist: Sequence[int] = (6, 36),
                 persist_weight: float = 1.0, persist_baseline: int | None = 288,
                 log_std_floor: str = "typical",
                 calibration_holdout: float | None = None,
                 max_fit_rows: int | None = MAX_FIT_ROWS,
                 band: BandSpec | Mapping[str, Any] | str | None = "auto",
                 entity_thresholds: bool = True) -> None:
        if detector not in DETECTORS:
            raise ConfigError(f"unknown detector {detector!r}; choose one of {sorted(DETECTORS)}")
        self.detector = detector
        self.detector_params = dict(detector_params or {})
        self.spec = spec if spec is not None else FeatureSpec()
        self.calibration = (parse_threshold(calibration) if isinstance(calibration, str)
                            else dict(calibration))
        if scaler not in ("robust", "standard"):
            raise ConfigError(f"scaler must be 'robust' or 'standard', got {scaler!r}")
        self.scaler = scaler
        self.exclude_labelled = exclude_labelled
        if feature_set not in FEATURE_SETS:
            raise ConfigError(f"feature_set must be one of {', '.join(map(repr, FEATURE_SETS))}, "
                              f"got {feature_set!r}")
        self.feature_set = feature_set
        self.log_std = bool(log_std)
        if log_std_floor not in ("typical", "spread"):
            raise ConfigError(f"log_std_floor must be 'typical' or 'spread', got "
                              f"{log_std_floor!r}")
        self.log_std_floor = log_std_floor
        if calibration_holdout is not None and (
                isinstance(calibration_holdout, bool)
                or not isinstance(calibration_holdout, (int, float))
                or not 0.0 < calibration_holdout < 0.5):
            raise ConfigError(f"calibration_holdout must be None or a share in (0, 0.5), got "
                              f"{calibration_holdout!r}")
        self.calibration_holdout = (None if calibration_holdout is None
                                    else float(calibration_holdout))
        if clip is not None and not (isinstance(clip, (int, float)) and clip > 0):
            raise ConfigError(f"clip must be a positive number or None, got {clip!r}")
        self.clip = None if clip is None else float(clip)
        self.persist = check_persist(persist)
        if (isinstance(persist_weight, bool) or not isinstance(persist_weight, (int, float))
                or not 0.0 < persist_weight <= 100.0):
            raise ConfigError(f"persist_weight must be a number in (0, 100], got "
                              f"{persist_weight!r}")
        self.persist_weight = float(persist_weight)
        if persist_baseline is not None and (
                isinstance(persist_baseline, bool)
                or not isinstance(persist_baseline, (int, np.integer))
                or persist_baseline <= max(self.persist, default=1)):
            raise ConfigError(f"persist_baseline must be None or an integer span (rows) longer "
                              f"than every persist span {list(self.persist)}, got "
                              f"{persist_baseline!r}")
        self.persist_baseline = None if persist_baseline is None else int(persist_baseline)
        if isinstance(band, Mapping):
            band = BandSpec.from_dict(band)
        if not (band is None or band == "auto" or isinstance(band, BandSpec)):
            raise ConfigError(f"band must be 'auto', None or a BandSpec, got {band!r}")
        self.band = band
        if max_fit_rows is not None and (isinstance(max_fit_rows, bool)
                                         or not isinstance(max_fit_rows, (int, np.integer))
                                         or max_fit_rows < 10):
            raise ConfigError(f"max_fit_rows must be None or an integer >= 10, got "
                              f"{max_fit_rows!r}")
        self.max_fit_rows = None if max_fit_rows is None else int(max_fit_rows)
        if not isinstance(entity_thresholds, bool):
            raise ConfigError(f"entity_thresholds must be true or false, got "
                              f"{entity_thresholds!r}")
        self.entity_thresholds = entity_thresholds
        self.metadata: dict[str, Any] = {}

    # ------------------------------------------------------------------ helpers
    def _check_fitted(self) -> None:
        if not hasattr(self, "detector_"):
            raise NotFittedError("AnomalyModel is not fitted; call fit() or AnomalyModel.load()")

    def _as_dataset(self, data: Dataset | pd.DataFrame, where: str) -> Dataset:
        ds = Dataset.coerce(data, where=where, metrics=getattr(self, "metrics_", None))
        if hasattr(self, "metrics_") and tuple(ds.metrics) != tuple(self.metrics_):
            # the model's metrics, in its order (coerce checked that each is there)
            ds = ds.subset(metrics=list(self.metrics_), where=where)
        return ds

    def _features(self, data: Dataset, history: Dataset | None, where: str,
                  prepared: bool = True) -> tuple[np.ndarray, np.ndarray, Any]:
        """Features of every row of ``data`` (in order), using ``history`` as causal look-back.

        ``prepared``: return the model's scaled columns (see :meth:`transform`) rather than
        every raw feature of the spec; done per entity, so the full matrix is never stacked.

        History of an entity is used only when it ends exactly one step before the entity's
        first row in ``data`` (a contiguous series); otherwise those rows warm up afresh.
        """
        blocks, ready_blocks = [], []
        fm = None
        for entity, vals, ts, n_ctx in track(
                self._entity_series(data, history), f"features of the {where}",
                total=len(data.entities), note=lambda item: str(item[0])):
            check_history(len(vals), self.spec,
                          f"{where}: entity '{entity}'" + (" with its history" if n_ctx else ""))
            fm = build_features(vals, ts, list(self.metrics_), self.spec)
            full = with_persist(fm.values, self.persist_terms())
            block = full[n_ctx:]
            blocks.append(self.transform(block) if prepared else block)
            ready_blocks.append(np.asarray(fm.ready[n_ctx:], dtype=bool))
        if not blocks:  # Dataset guarantees rows, so this is a programming error
            raise DataError(f"{where}: no rows to build features from")
        X = np.vstack(blocks) if len(blocks) > 1 else blocks[0]
        ready = np.concatenate(ready_blocks) if ready_blocks else np.empty(0, dtype=bool)
        return X, ready, fm

    def _entity_series(self, data: Dataset, history: Dataset | None
                       ) -> Iterator[tuple[str, np.ndarray, pd.DatetimeIndex, int]]:
        """Per entity: (entity, values with look-back, timestamps, look-back rows).

        History of an entity is prepended only when it ends exactly one step before the
        entity's first row in ``data`` (a contiguous series).
        """
        metrics = list(self.metrics_)
        hist_frames = dict(history.iter_entities()) if history is not None else {}
        for entity, ef in data.iter_entities():
            vals = ef[metrics].to_numpy(dtype=np.float64)
            ts = pd.DatetimeIndex(ef.index)
            n_ctx = 0
            h = hist_frames.get(entity)
            if h is not None and len(h) and h.index[-1] + data.step == ts[0]:
                vals = np.vstack([h[metrics].to_numpy(dtype=np.float64), vals])
                ts = pd.DatetimeIndex(h.index).append(ts)
                n_ctx = len(h)
            yield entity, vals, ts, n_ctx

    def feature_plan(self) -> FeaturePlan:
        """The column layout of the spec's features for the model's metrics (cached)."""
        key = (self.spec, tuple(self.metrics_))
        cached = getattr(self, "_feature_plan_cache", None)
        if cached is None or cached[0] != key:
            cached = (key, FeaturePlan.build(self.metrics_, self.spec))
            self._feature_plan_cache = cached
        return cached[1]

    def persist_terms(self) -> PersistPlan:
        """The persistence columns appended to the spec's features
        (:func:`aws_anomaly.features.persist.persist_plan`; cached)."""
        key = (self.spec, tuple(self.metrics_), self.persist, self.persist_baseline)
        cached = getattr(self, "_plan_cache", None)
        if cached is None or cached[0] != key:
            cached = (key, persist_plan(self.feature_plan(), self.persist,
                                        self.persist_baseline))
            self._plan_cache = cached
        return cached[1]

    def read_features(self) -> list[int]:
        """The spec's feature positions the fitted model reads, directly or as the source of
        a persistence column: batch scoring and the live scorer build only the families these
        come from (rolling min / max, ratios... that no column reads are skipped)."""
        k = self.feature_plan().n_features
        return sorted({int(c) for c in self.columns_ if c < k}
                      | {int(t.src) for t in self.persist_terms()})

    def _check_history(self, data: Dataset, ready: np.ndarray, where: str) -> None:
        if ready.any():
            return
        ent = data.frame["entity"].to_numpy()
        sizes = {e: int((ent == e).sum()) for e in data.entities}
        raise DataError(
            f"{where}: too few points for the feature windows: every row is still warming up "
            f"(rows per entity {sizes}); the feature spec needs {self.spec.min_history} earlier "
            "rows before the first scored point — give more history"
        )

    # ------------------------------------------------------------------ fit
    def fit(self, train: Dataset | pd.DataFrame,
            validation: Dataset | pd.DataFrame | None = None) -> AnomalyModel:
        """Fit scaler and detector on ``train``; fit the calibrator on ``validation``.

        Validation rows that continue a training entity use the training rows as feature
        look-back. Without validation data the calibrator is fit on the training scores (with a
        target FPR or share; best F1 needs labelled validation data).
        """
        t0 = time.perf_counter()
        train = self._as_dataset(train, "training data")
        if validation is None and self.calibration_holdout is not None:
            parts = holdout_split(self, train)
            if parts is not None:
                self.fit(*parts)
                self.training_summary_["calibrated_on"] = (
                    f"holdout: the last {self.calibration_holdout:.0%} of each entity's "
                    "training rows")
                self.training_summary_["fit_seconds"] = round(time.perf_counter() - t0, 3)
                return self
        inputs = self._fit_inputs(train, validation)
        self._fit_on(inputs, t0)
        return self

    def _fit_inputs(self, train: Dataset, validation: Dataset | pd.DataFrame | None,
                    labelled_rows: bool | None = None) -> FitInputs:
        """Everything of :meth:`fit` before the detector (:func:`aws_anomaly.fitting.
        fit_inputs`): sets the preprocessing state, which :meth:`_adopt` gives to another
        model with the same feature settings (detector selection fits every candidate of a
        fold on one)."""
        return fit_inputs(self, train, validation, labelled_rows)

    def _adopt(self, inputs: FitInputs) -> None:
        """Take the preprocessing state :meth:`_fit_inputs` set on a model with the same
        feature settings (the detector and its parameters may differ)."""
        for key, value in inputs.state.items():
            setattr(self, key, copy.deepcopy(value))

    def _fit_on(self, inputs: FitInputs, t0: float | None = None) -> None:
        """The end of :meth:`fit`: the detector fit on ``inputs``
        (:func:`~aws_anomaly.fitting.fit_detector`), then its threshold
        (:func:`~aws_anomaly.fitting.fit_threshold`)."""
        t0 = time.perf_counter() if t0 is None else t0
        self.detector_ = fit_detector(self, inputs)
        fit_threshold(self, inputs, t0)

    def calibrator_for(self, entity: str | None) -> Calibrator:
        """The calibrator of ``entity``'s scores: its own (``entity_thresholds``) or the
        pooled one."""
        return calibrator_for(self.calibrator_, getattr(self, "entity_calibrators_", None),
                              entity)

    def _calibrate(self, raw: np.ndarray, entity: str | np.ndarray | None) -> np.ndarray:
        """Calibrated scores of ``raw``: ``entity`` one entity's name for every row, an array
        of the rows' entities, or None (the pooled calibrator)."""
        return calibrate(self.calibrator_, getattr(self, "entity_calibrators_", None), raw,
                         entity)

    # ------------------------------------------------------------------ constant metrics
    @property
    def constant_guard(self) -> ConstantGuard:
        """The "should stay constant" check of the metrics constant over training
        (:class:`~aws_anomaly.constants.ConstantGuard`, false when there are none); built once
        from ``constant_`` and the column layout (scoring is a hot path)."""
        guard = self.__dict__.get("_constant_guard")
        if guard is None:
            guard = ConstantGuard.build(self.constant_, self.metrics_, self.columns_,
                                        self.feature_plan().idx_value, self.groups_)
            self._constant_guard = guard
        return guard

    # ------------------------------------------------------------------ transform
    def _prepare(self, X_full: np.ndarray) -> np.ndarray:
        return prepare(X_full, self.columns_, self.log_floor_, self._log_columns)

    @property
    def _log_columns(self) -> np.ndarray:
        """Positions (in the model's columns) taken as logs; cached per ``log_floor_`` array
        (set by fit and load), as scoring one live point asks for it every time."""
        cached = getattr(self, "_log_cache", None)
        if cached is None or cached[0] is not self.log_floor_:
            logc = np.flatnonzero(self.log_floor_ > 0)
            cached = (self.log_floor_, logc, self.log_floor_[logc])
            self._log_cache = cached
        return cached[1]

    def transform_row(self, row: np.ndarray) -> np.ndarray:
        """:meth:`transform` of one raw feature row ``(width,)`` -> ``(1, columns)``: the
        same operations on the same values (so the same numbers) without the batch path's
        per-call work; the live path calls it once per point."""
        X = row.take(self.columns_)
        logc = self._log_columns
        if logc.size:
            X[logc] = np.log(np.maximum(X[logc], 0.0) + self._log_cache[2])
        return self.scaler_.transform(X[None, :])

    def transform(self, X_full: np.ndarray, chunk_rows: int = 4096) -> np.ndarray:
        """Raw features (the spec's, then the persistence columns; ``(rows, width)``) -> the
        detector's input: the model's columns, logs of spreads, scaled.

        Done in row chunks so each chunk stays in cache through the three steps (one pass over
        memory instead of three).
        """
        n = X_full.shape[0]
        if n <= chunk_rows:
            return self.scaler_.transform(self._prepare(X_full))
        out = np.empty((n, len(self.columns_)))
        for start in range(0, n, chunk_rows):
            stop = min(start + chunk_rows, n)
            out[start:stop] = self.scaler_.transform(self._prepare(X_full[start:stop]))
        return out

    # ------------------------------------------------------------------ scoring
    def _raw(self, Xs: np.ndarray) -> np.ndarray:
        return np.asarray(self.detector_.score_samples(self.constant_guard.blind(Xs)),
                          dtype=np.float64)

    def _raw_prepared(self, Xs: np.ndarray) -> np.ndarray:
        """:meth:`_raw` of rows this model transformed itself (no re-validation)."""
        return np.asarray(self.detector_.score_prepared(self.constant_guard.blind(Xs)),
                          dtype=np.float64)

    def _membership(self, Xs: np.ndarray) -> np.ndarray:
        """``(columns, metrics)``: which of the detector's input columns are each metric's
        (a decomposing detector's per-column parts times it are its per-metric parts)."""
        return metric_membership(self.metrics_, self.groups_, Xs.shape[1])

    def _contributions(self, Xs: np.ndarray, raw: np.ndarray,
                       raw_fn: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
        """Shares (n, n_metrics) of the scaled rows ``Xs`` with raw scores ``raw``
        (:mod:`aws_anomaly.attribution`): the detector's own decomposition of its score where
        it has one (kNN: exact shares at the cost of one scoring pass), else occlusion."""
        explain = getattr(self.detector_, "explain_samples", None)
        if explain is not None:
            if len(Xs) == 0:
                return np.zeros((0, len(self.metrics_)))
            return shares_of(explain(self.constant_guard.blind(Xs), self._membership(Xs)))
        return occlusion_shares(Xs, raw, self.metrics_, self.groups_, self.median_,
                                raw_fn or self._raw, OCCLUSION_ROWS)

    def score_transformed(self, X: np.ndarray, ready: np.ndarray, explain: str,
                          entity: str | np.ndarray | None = None
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(anomaly_score, is_anomaly, contributions)`` of rows ``X`` from :meth:`transform`;
        rows not ``ready`` get 0, False and zeros; ``explain`` as in :meth:`score`.
        ``entity``: the rows' entity (one name, or an array of one per row) for their
        calibrator (:meth:`calibrator_for`); None: the pooled one.

        BLAS runs on one thread (:func:`~aws_anomaly.detectors.base.blas_one_thread`): a
        multi-threaded OpenBLAS product may round differently from a one-thread one on some
        CPUs (AMD EPYC: 1e-15 on an OCSVM score), and every caller (batch chunks, a tick, a
        fold of ``auto``) must get the same numbers; their products are also too small for
        BLAS threads to pay."""
        with blas_one_thread():
            return self._score_transformed(X, ready, explain, entity)

    def _score_transformed(self, X: np.ndarray, ready: np.ndarray, explain: str,
                           entity: str | np.ndarray | None
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, m = len(X), len(self.metrics_)
        score = np.zeros(n)
        contrib = np.zeros((n, m))
        idx = np.flatnonzero(ready)
        if idx.size:
            Xs = X[idx] if idx.size < len(X) else X
            raw = self._raw(Xs)
            score[idx] = self._calibrate(
                raw, entity if entity is None or isinstance(entity, str) or idx.size == len(X)
                else entity[idx])
            brk = z = None
            guard = self.constant_guard
            if guard:
                # A metric constant over all of training has moved: anomalous whatever the
                # detector says ("should stay constant"; aws_anomaly.constants).
                z = guard.breaks(Xs)
                brk = guard.moved(z)
                if brk.any():
                    score[idx[brk]] = guard.lift(score[idx[brk]], z[brk])
            if explain != "none":
                sel = (np.ones(len(idx), dtype=bool) if explain == "all"
                       else score[idx] >= 1.0)
                if brk is not None:
                    sel &= ~brk
                if sel.any():
                    contrib[idx[sel]] = self._contributions(Xs[sel], raw[sel])
                if brk is not None and brk.any():
                    contrib[idx[brk]] = guard.shares(z[brk])
        flag = ready & (score >= 1.0)
        return score, flag, contrib

    def prepare_live(self) -> None:
        """Build the detector's live-path caches now (``prepare_live`` where it has one, the
        kNN's search tables), not on the first live point: a job calls it on a model it loads
        or is about to swap in, outside the tick lock. Batch scoring never needs it."""
        prepare = getattr(self.detector_, "prepare_live", None)
        if prepare is not None:
            prepare()

    def score_row(self, X: np.ndarray, entity: str | None = None
                  ) -> tuple[float, bool, np.ndarray | None]:
        """:meth:`score_transformed` of one ready row ``X`` (``(1, columns)``, from
        :meth:`transform_row`) with ``explain="flagged"``, as ``(anomaly_score, is_anomaly,
        contributions or None when they are all zero)``: the same numbers, without the batch
        path's masks and index arrays (the live path scores one point at a time).

        A detector whose one-row score is a large BLAS product (``blas_bound``: kNN) runs
        with BLAS on one thread: with the other cores busy, a BLAS thread that waits for one
        cost the default model 7.8 ms a point instead of 0.3 ms."""
        if getattr(self.detector_, "blas_bound", False):
            with blas_one_thread():
                return self._score_row(X, entity)
        return self._score_row(X, entity)

    def _score_row(self, X: np.ndarray, entity: str | None
                   ) -> tuple[float, bool, np.ndarray | None]:
        paired = getattr(self.detector_, "score_explained", None)
        guard = self.constant_guard
        explain = None
        if paired is None:
            raw = self._raw_prepared(X)
        else:  # the explanation reuses the score's search (kNN: its nearest rows)
            raw, explain = paired(guard.blind(X))
        score = self.calibrator_for(entity).transform_one(float(raw[0]))
        if guard:
            z = guard.breaks(X)
            if guard.moved(z)[0]:  # a constant metric moved: see score_transformed
                return float(guard.lift(score, z)[0]), True, guard.shares(z)[0]
        if score >= 1.0:
            if explain is not None:
                return score, True, shares_of(explain(self._membership(X)))[0]
            return score, True, self._contributions(X, raw, self._raw_prepared)[0]
        return score, False, None

    def score(self, data: Dataset | pd.DataFrame, history: Dataset | pd.DataFrame | None = None,
              explain: str = "flagged", *, rows: str = "input") -> pd.DataFrame:
        """Score every row of ``data``.

        Parameters
        ----------
        data
            A :class:`Dataset` or a wide frame (``timestamp``, optional ``entity``, one column
            per training metric).
        history
            Earlier rows of the same entities, used only as feature look-back (not scored).
        explain
            ``"flagged"`` (occlusion contributions for flagged rows), ``"all"`` or ``"none"``.
        rows
            Which rows come back for a DataFrame ``data``: ``"input"`` (default) one row per
            row of the frame, in its order and with its index, each with the score of the
            grid step holding it (``[t, t + step)``: rows merged into one step share its
            score; a row loading dropped, before every metric of its entity has a value, gets
            ``anomaly_score`` NaN, not flagged, not ready); ``"grid"`` the rows of the regular
            grid the frame was loaded onto, gap-filled points included, in (entity, timestamp)
            order. A :class:`Dataset` is its own grid: both give its rows.

        Returns
        -------
        pandas.DataFrame
            ``timestamp``, ``entity``, ``anomaly_score`` (>= 1.0 is anomalous), ``is_anomaly``,
            ``top_metric``, ``contrib_<metric>`` per metric, ``ready``, and per metric the
            expected value and band ``expected_<metric>``, ``lower_<metric>``,
            ``upper_<metric>`` (NaN where the band has no history yet); rows as ``rows`` says.
        """
        self._check_fitted()
        if explain not in ("flagged", "all", "none"):
            raise ConfigError(f"explain must be 'flagged', 'all' or 'none', got {explain!r}")
        if rows not in ("input", "grid"):
            raise ConfigError(f"rows must be 'input' or 'grid', got {rows!r}")
        ds = self._as_dataset(data, "scoring data")
        hist = self._as_dataset(history, "history") if history is not None else None
        out = score_table(ds, self.metrics_, score_series(self, ds, hist, explain,
                                                           "scoring data"))
        if rows == "input" and isinstance(data, pd.DataFrame):
            out = input_rows(out, data, ds.step)
        return out

    def predict(self, data: Dataset | pd.DataFrame,
                history: Dataset | pd.DataFrame | None = None, *, rows: str = "input"
                ) -> np.ndarray:
        """-1 for anomalous rows, 1 for normal ones (warm-up rows are 1), as scikit-learn does:
        one per row of ``data`` in its order (``rows="grid"``: per grid row); ``history`` is
        look-back as in :meth:`score`.
        """
        flags = self.score(data, history=history, explain="none",
                           rows=rows)["is_anomaly"].to_numpy()
        return np.where(flags, -1, 1)

    def stream(self, entity: str, history: Dataset | pd.DataFrame | None = None, *,
               timestamps: str = "error", duplicates: str = "error") -> StreamScorer:
        """A point-by-point scorer for one entity; ``history`` primes its feature windows.

        ``timestamps`` and ``duplicates`` are the live policies of
        :func:`aws_anomaly.data.dataset.stream_admit` (a late or repeated point is refused by
        default; ``timestamps="drop"`` / ``duplicates="first"`` skip it instead).
        """
        self._check_fitted()
        scorer = StreamScorer(self, entity, timestamps=timestamps, duplicates=duplicates)
        if history is not None:
            ds = self._as_dataset(history, "stream history")
            if entity in ds.entities:
                ef = ds.entity_frame(entity)
                scorer.prime(pd.DatetimeIndex(ef.index),
                             ef[list(self.metrics_)].to_numpy(dtype=np.float64))
        return scorer

    # ------------------------------------------------------------------ persistence
    def describe(self) -> dict[str, Any]:
        """The JSON-serialisable description written to the bundle manifest
        (:func:`aws_anomaly.modelsave.manifest`)."""
        self._check_fitted()
        return manifest(self)

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the model as a bundle folder (see :mod:`aws_anomaly.bundle`,
        :func:`aws_anomaly.modelsave.save_model`); returns the path."""
        self._check_fitted()
        return save_model(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AnomalyModel:
        """Load a bundle written by :meth:`save`, verifying checksums and types
        (:func:`aws_anomaly.modelfile.read_model`)."""
        params, fitted = modelfile.read_model(path)
        model = cls(**params)
        vars(model).update(fitted)
        return model

    def __repr__(self) -> str:
        state = "fitted" if hasattr(self, "detector_") else "unfitted"
        return (f"AnomalyModel(detector={self.detector!r}, detector_params="
                f"{self.detector_params!r}, scaler={self.scaler!r}, {state})")


#: Names that moved to :mod:`aws_anomaly.presets` and are still served from here for old imports.
_MOVED_TO_PRESETS = frozenset({"default_model", "DEFAULT_WINDOWS", "MIN_SEASONAL_HISTORY"})


def __getattr__(name: str) -> Any:
    """``from aws_anomaly.model import default_model`` keeps working: presets sit one layer up.

    The import is made on first use (``importlib``, not an import statement) because
    :mod:`aws_anomaly.presets` imports this module; new code imports from presets directly.
    """
    if name in _MOVED_TO_PRESETS:
        import importlib

        return getattr(importlib.import_module("aws_anomaly.presets"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
