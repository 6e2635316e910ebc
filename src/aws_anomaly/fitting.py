"""Fitting an :class:`~aws_anomaly.model.AnomalyModel`: training data -> detector + threshold.

:meth:`AnomalyModel.fit <aws_anomaly.model.AnomalyModel.fit>` coordinates; the work is here, in
the order it runs:

1. :func:`holdout_split` — without validation data, the calibration holdout: the last
   ``calibration_holdout`` share of each entity's rows set the threshold, the rest train
   (:func:`tail_split`);
2. :func:`fit_inputs` — everything before the detector, as a :class:`FitInputs`: the band,
   which rows the detector learns from (ready: :func:`ready_rows`; not labelled anomalous;
   at most ``max_fit_rows`` of them: :func:`capped`), their features
   (:func:`training_rows`, entity by entity, only the kept rows stored), the model's columns
   (:func:`choose_columns`), log floors, the scaler (the level view standard-scaled and never
   clipped, the constant metrics' value columns scaled by their
   :class:`~aws_anomaly.constants.ConstantGuard`, the persistence columns weighted), the
   scaled training rows and the validation rows;
3. :func:`fit_detector` — the detector with the parameters the model's layout gives it
   (:func:`detector_params`: views, the excess columns, groups, a seed), fit on those rows
   (against the labelled anomalous rows, for a detector that learns from labels);
4. :func:`fit_threshold` — the threshold on the validation (or out-of-fit training) scores,
   pooled and per entity, and the training summary.

What :func:`fit_inputs` sets on the model depends on its feature settings and the data, never
on its detector (every attribute but :data:`DETECTOR_STATE`), so detector selection fits it
once per fold and hands it to every candidate (``AnomalyModel._adopt``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from aws_anomaly.constants import constant_metrics
from aws_anomaly.data import Dataset
from aws_anomaly.detectors import DETECTORS, make_detector
from aws_anomaly.detectors.base import blas_one_thread, subsample_index
from aws_anomaly.errors import ConfigError, DataError
from aws_anomaly.features import build_features, check_history
from aws_anomaly.features.band import BandSpec, fit_band
from aws_anomaly.features.persist import persist_layout, with_persist
from aws_anomaly.features.select import select_columns, std_columns
from aws_anomaly.progress import stage, track
from aws_anomaly.scaling import Scaler, fit_log_floor
from aws_anomaly.threshold import fit_thresholds

if TYPE_CHECKING:
    from aws_anomaly.detectors.base import BaseDetector
    from aws_anomaly.model import AnomalyModel

__all__ = ["DETECTOR_STATE", "FitInputs", "capped", "choose_columns", "detector_params",
           "fit_detector", "fit_inputs", "fit_threshold", "holdout_split", "ready_rows",
           "tail_split", "training_rows", "varying_metrics"]

#: What the model sets after :func:`fit_inputs` (the detector and the threshold); every other
#: fitted attribute (``*_``) and cache (``_*``) is preprocessing state that
#: ``AnomalyModel._adopt`` hands over.
DETECTOR_STATE = frozenset({"detector_", "calibrator_", "entity_calibrators_",
                            "calibration_used_", "training_summary_"})


@dataclass
class FitInputs:
    """What :func:`fit_inputs` computes before the detector."""

    Xs: np.ndarray  # the detector's training rows, scaled
    Xv: np.ndarray | None  # the ready validation rows, scaled (None: no validation data)
    y: np.ndarray | None  # their labels
    entities: np.ndarray | None  # their entities
    state: dict[str, Any]  # the preprocessing attributes, for AnomalyModel._adopt
    summary: dict[str, Any]  # training row counts for training_summary_
    # the labelled anomalous training rows left out of Xs, scaled (None: none), for a
    # detector that learns from labels (``requires_labels``)
    Xa: np.ndarray | None = None


def holdout_split(model: AnomalyModel, train: Dataset, share: float | None = None
                  ) -> tuple[Dataset, Dataset] | None:
    """The model's calibration holdout of ``train``: ``(fit part, holdout)``, the last
    ``share`` (default: the model's ``calibration_holdout``) of each entity's rows held out,
    or None when an entity would keep fewer than ``spec.min_history + 10`` rows to fit on
    (every row still warming up but 10) or hold out fewer than 10."""
    share = model.calibration_holdout if share is None else share
    if share is None:
        raise ConfigError("holdout_split: the model has no calibration_holdout; give a share")
    return tail_split(train, share, model.spec.min_history + 10)


def tail_split(ds: Dataset, share: float, min_rows: int) -> tuple[Dataset, Dataset] | None:
    """:meth:`Dataset.split_tail`, or None when an entity's head would be shorter than
    ``min_rows`` or its tail shorter than 10 rows.

    >>> from aws_anomaly.data.generator import generate_demo
    >>> ds, _ = generate_demo(clusters=1, days=1, seed=0)
    >>> head, tail = tail_split(ds, 0.25, 100)
    >>> len(head), len(tail)
    (216, 72)
    >>> tail_split(ds, 0.25, 250) is None
    True
    """
    size = ds.frame.groupby("entity", sort=False).size().to_numpy()
    n_tail = np.ceil(share * size)
    if ((size - n_tail) < min_rows).any() or (n_tail < 10).any():
        return None
    return ds.split_tail(share)


def ready_rows(entity: np.ndarray, min_history: int) -> np.ndarray:
    """``ready`` of every row of a frame sorted by entity: the features of a row are complete
    from the ``min_history``-th row of its entity on (as ``build_features`` sets them).

    >>> ready_rows(np.array(["a", "a", "a", "b", "b"]), 2).tolist()
    [False, True, True, False, True]
    """
    n = len(entity)
    if n == 0:
        return np.zeros(0, dtype=bool)
    first = np.flatnonzero(np.r_[True, entity[1:] != entity[:-1]])
    position = np.arange(n) - np.repeat(first, np.diff(np.r_[first, n]))
    return position + 1 >= min_history


def capped(mask: np.ndarray, max_rows: int | None, seed: int) -> np.ndarray:
    """``mask`` itself when it selects at most ``max_rows`` rows, else a mask of a seeded
    uniform subset of ``max_rows`` of its rows.

    >>> mask = np.arange(20) % 2 == 0
    >>> capped(mask, 10, 0) is mask
    True
    >>> sub = capped(mask, 4, 0)
    >>> int(sub.sum()), bool((sub <= mask).all())
    (4, True)
    """
    picked = subsample_index(int(mask.sum()), max_rows, seed)
    if picked is None:
        return mask
    out = np.zeros(len(mask), dtype=bool)
    out[np.flatnonzero(mask)[picked]] = True
    return out


def fit_inputs(model: AnomalyModel, train: Dataset, validation: Dataset | pd.DataFrame | None,
               labelled_rows: bool | None = None) -> FitInputs:
    """Everything of :meth:`AnomalyModel.fit` before the detector: features, column choice,
    log floors, scaler, the detector's training matrix and the validation rows' matrix.

    Sets the model's preprocessing attributes (``metrics_``, ``step_``, ``band_``,
    ``all_feature_names_``, those of :func:`choose_columns`, ``log_floor_``, ``scaler_``,
    ``median_``); the returned ``state`` holds them for another model with the
    same feature settings. ``labelled_rows``: also the scaled labelled anomalous rows left out
    of training (``Xa``, for a detector that ``requires_labels``); None: when the model's does.
    """
    model.metrics_ = tuple(train.metrics)
    model.step_ = pd.Timedelta(train.step)
    spec = BandSpec.for_step(model.step_) if model.band == "auto" else model.band
    model.band_ = (None if spec is None else fit_band(
        [vals for _, vals, _, _ in model._entity_series(train, None)], spec))
    labelled = (train.frame["is_anomaly"].to_numpy() == 1
                if model.exclude_labelled and train.has_labels else None)
    # Which rows the scaler and detector learn from is known before any feature is built
    # (a row is ready from the spec's min_history-th row of its entity on), so only those
    # rows' features are kept: never the whole (rows x every spec feature) matrix.
    ready = ready_rows(train.frame["entity"].to_numpy(), model.spec.min_history)
    use = ready if labelled is None else ready & ~labelled
    n_usable = int(use.sum())
    keep = capped(use, model.max_fit_rows, 0)
    # The labelled anomalous rows left out: their features too, for a detector that
    # learns from labels (built in the same pass as the training rows).
    if labelled_rows is None:
        labelled_rows = DETECTORS[model.detector].requires_labels
    anom = None if labelled is None or not labelled_rows else ready & labelled
    if anom is not None and anom.any():
        X_use, fm, X_anom = training_rows(model, train, keep,
                                          capped(anom, model.max_fit_rows, 1))
    else:
        X_use, fm, X_anom = training_rows(model, train, keep)
    names, groups = persist_layout(fm.names, fm.groups, model.persist_terms())
    model.all_feature_names_ = names
    model._check_history(train, ready, "training data")
    choose_columns(model, names, groups, constant_metrics(train))
    n_excluded = int((ready & labelled).sum()) if labelled is not None else 0
    n_use = X_use.shape[0]
    if n_use < 10:
        raise DataError(f"training data: only {n_use} usable rows after the "
                        f"{model.spec.min_history}-row warm-up; give more history")
    _fit_log_floor(model, X_use)
    X = model._prepare(X_use)
    del X_use
    model.scaler_ = Scaler(model.scaler, clip=model.clip).fit(X)
    if model.views_ is not None:
        # The level view is standard-scaled (its values are levels, whose spread the
        # standard deviation describes); the stationary view keeps the model's scaler.
        lv = np.asarray(model.views_[0], dtype=np.int64)
        level = Scaler("standard").fit(X[:, lv])
        model.scaler_.center_[lv] = level.center_
        model.scaler_.scale_[lv] = level.scale_
        # ... and not clipped: a level far outside the history is the signal itself
        # (measured: clipping it cost 0.03 mean best-F1 and paged on drifting servers).
        model.scaler_.unclipped = tuple(int(j) for j in lv)
    # A metric that never moved in training: its value column is scaled so that any
    # change from the constant is >= 1 unit; the detector sees none of its columns (they
    # carry nothing about normal behaviour). See aws_anomaly.constants.
    guard = model.constant_guard
    guard.scale(model.scaler_)
    if model.persist_weight != 1.0:
        # A smaller unit = a larger weight in the detector's distances; stored in the
        # scaler's arrays, so saved bundles and streams need nothing more.
        k = model.feature_plan().n_features
        pcols = [j for j, c in enumerate(model.columns_) if c >= k]
        model.scaler_.scale_[pcols] /= model.persist_weight
    Xs = guard.blind(model.scaler_.transform(X))
    del X
    Xa = (None if X_anom is None
          else guard.blind(model.scaler_.transform(model._prepare(X_anom))))
    model.median_ = np.median(Xs, axis=0)
    Xv = y = entities = None
    if validation is not None:
        val = model._as_dataset(validation, "validation data")
        Xv, ready_v, _ = model._features(val, train, "validation data")
        model._check_history(val, ready_v, "validation data")
        Xv = Xv[ready_v]
        y = (val.frame["is_anomaly"].to_numpy()[ready_v] if val.has_labels else None)
        entities = val.frame["entity"].to_numpy()[ready_v]
    state = {k: v for k, v in vars(model).items()
             if (k.endswith("_") or k.startswith("_")) and k not in DETECTOR_STATE}
    return FitInputs(
        Xs=Xs, Xv=Xv, y=y, entities=entities, state=state, Xa=Xa,
        summary={"train_rows": len(train), "train_rows_used": n_use,
                 "train_rows_usable": n_usable, "max_fit_rows": model.max_fit_rows,
                 "train_rows_excluded_labelled": n_excluded,
                 "warmup_rows": int((~ready).sum()), "entities": list(train.entities)})


def training_rows(model: AnomalyModel, train: Dataset, keep: np.ndarray,
                  also: np.ndarray | None = None) -> tuple[np.ndarray, Any, np.ndarray | None]:
    """(every spec feature of the ``keep`` rows of ``train``, the last entity's
    :class:`FeatureMatrix`, the same of the ``also`` rows or None): features entity by
    entity, each entity's kept rows copied into one buffer per mask (rows not kept are
    never stored)."""
    masks = [keep] if also is None else [keep, also]
    outs = [np.empty((int(m.sum()), 0)) for m in masks]
    filled = [0] * len(masks)
    fm = None
    start = 0
    for entity, vals, ts, _ in track(model._entity_series(train, None),
                                     "features of the training data",
                                     total=len(train.entities), note=lambda item: item[0]):
        check_history(len(vals), model.spec, f"training data: entity '{entity}'")
        fm = build_features(vals, ts, list(model.metrics_), model.spec)
        full = with_persist(fm.values, model.persist_terms())
        for i, mask in enumerate(masks):
            if outs[i].shape[1] != full.shape[1]:
                outs[i] = np.empty((outs[i].shape[0], full.shape[1]))
            mine = mask[start:start + len(full)]
            k = int(mine.sum())
            np.compress(mine, full, axis=0, out=outs[i][filled[i]:filled[i] + k])
            filled[i] += k
        start += len(full)
    if fm is None:  # Dataset guarantees rows, so this is a programming error
        raise DataError("training data: no rows to build features from")
    return outs[0], fm, (outs[1] if also is not None else None)


def choose_columns(model: AnomalyModel, names: Sequence[str],
                   groups: Mapping[str, Sequence[int]],
                   constants: Mapping[str, float] | None = None) -> None:
    """Pick the model's columns from the spec's features (``feature_set``): sets
    ``columns_``, ``views_``, ``feature_names_``, ``groups_`` (metric -> positions among the
    columns) and ``constant_``.

    ``constants`` (metric -> value) are the metrics constant over all training rows: their
    value column is always kept (it carries the "should stay constant" check).
    """
    # Level features (the value and its rolling mean/min/max/quantiles, cross ratios)
    # follow each cluster's own load level and its trend, so a detector fit on the
    # training weeks sees later weeks' normal levels as anomalies; deviations, spreads,
    # differences, seasonal differences and correlations are comparable across time and
    # across clusters (features/select.py).
    cols, model.views_ = select_columns(model.feature_plan(), model.feature_set, len(names))
    idx_value = model.feature_plan().idx_value
    constants = dict(constants or {})
    for metric in constants:
        vi = int(idx_value[model.metrics_.index(metric)])
        if vi not in cols:
            cols.append(vi)
    positions: dict[int, list[int]] = {}
    for j, c in enumerate(cols):
        positions.setdefault(c, []).append(j)
    model.columns_ = np.asarray(cols, dtype=np.int64)
    model.feature_names_ = tuple(names[c] for c in cols)
    model.groups_ = {k: sorted(j for i in v for j in positions.get(int(i), []))
                     for k, v in groups.items()}
    # metric position -> its constant training value
    model.constant_ = {model.metrics_.index(m): float(v) for m, v in constants.items()}
    model._constant_guard = None  # derived from the above: built on first use


def _fit_log_floor(model: AnomalyModel, X_full: np.ndarray) -> None:
    """Per-column floors for the log of rolling standard deviations (0 = no log)."""
    spread_at = (set(range(len(model.columns_))) if model.log_std_floor == "spread"
                 else set(model.views_[0]) if model.views_ is not None else set())
    std_value = std_columns(model.feature_plan()) if model.log_std else {}
    model.log_floor_ = fit_log_floor(X_full, model.columns_, std_value, spread_at)


def varying_metrics(model: AnomalyModel) -> int:
    """How many of the fitted model's metrics are not constant over training (what
    ``wide_min_metrics`` counts)."""
    return len(model.metrics_) - len(model.constant_)


def detector_params(model: AnomalyModel) -> dict[str, Any]:
    """The parameters the model's detector is made with: its ``detector_params`` (a
    ``wide_min_metrics`` among them is not the detector's: under that many metrics that are
    not constant over training, ``tail_weight`` and ``excess_weight`` are 0), plus what
    the model's layout gives a detector that takes them (``views`` and, with
    ``excess_weight``, the level view's volatility columns as ``excess``; ``groups``, a step
    per metric), and ``random_state=0`` unless one is given."""
    params = dict(model.detector_params)
    takes = DETECTORS[model.detector]().get_params()
    if "wide_min_metrics" in params:
        # kNN's terms for many metrics only where the detector sees at least that many
        # (default_model: docs/model.md, "the terms for many metrics")
        need = params.pop("wide_min_metrics")
        if isinstance(need, bool) or not isinstance(need, (int, np.integer)) or need < 1:
            raise ConfigError(f"detector_params: wide_min_metrics must be an integer >= 1, "
                              f"got {need!r}")
        if varying_metrics(model) < need:
            params.update({k: 0.0 for k in ("tail_weight", "excess_weight") if k in params})
    if model.views_ is not None and "views" in takes:
        params.setdefault("views", [list(v) for v in model.views_])
        if params.get("excess_weight"):
            # kNN's excess term (default_model): the level view's volatility columns
            values = {int(c) for c in model.feature_plan().idx_value}
            params.setdefault("excess", [j for j in model.views_[0]
                                         if int(model.columns_[j]) not in values])
    if "groups" in takes:  # lstm_ae: a step per metric
        params.setdefault("groups", [list(v) for v in model.groups_.values() if v])
    if "random_state" in takes and "random_state" not in params:
        # Reproducible by default: the same data gives the same model (and the same
        # alerts) on every retrain; pass random_state to choose another seed.
        params["random_state"] = 0
    return params


def fit_detector(model: AnomalyModel, inputs: FitInputs) -> BaseDetector:
    """The model's detector (:func:`detector_params`) fit on ``inputs.Xs``; a detector that
    learns from labels (``requires_labels``) learns those rows as normal against the labelled
    anomalous rows ``inputs.Xa`` the others never see."""
    Xs = inputs.Xs
    params = detector_params(model)
    if DETECTORS[model.detector].requires_labels:
        if not model.exclude_labelled:
            raise ConfigError(f"detector {model.detector!r} learns from the labelled "
                              "anomalous rows; it needs exclude_labelled=True")
        Xa = inputs.Xa if inputs.Xa is not None else Xs[:0]
        with stage(f"fitting the {model.detector} detector on {Xs.shape[0]:,} normal and "
                   f"{Xa.shape[0]:,} labelled anomalous rows x {Xs.shape[1]} features"):
            return make_detector(model.detector, **params).fit(
                np.vstack([Xs, Xa]),
                np.r_[np.zeros(len(Xs), dtype=bool), np.ones(len(Xa), dtype=bool)])
    with stage(f"fitting the {model.detector} detector on {Xs.shape[0]:,} rows x "
               f"{Xs.shape[1]} features"):
        return make_detector(model.detector, **params).fit(Xs)


def fit_threshold(model: AnomalyModel, inputs: FitInputs, t0: float) -> None:
    """The model's threshold (:func:`aws_anomaly.threshold.fit_thresholds`: pooled, and per
    entity with ``entity_thresholds``) fit on the raw scores of the validation rows
    ``inputs.Xv`` (with their labels), or without validation rows on the training scores
    (out-of-fit where the detector keeps them); sets ``calibrator_``, ``calibration_used_``,
    ``entity_calibrators_`` and ``training_summary_`` (``t0``: when the fit began)."""
    # BLAS on one thread, as the model scores rows (AnomalyModel.score_transformed): the
    # threshold is set on the numbers scoring will give
    if inputs.Xv is not None:
        with stage(f"scoring {inputs.Xv.shape[0]:,} validation rows for the threshold"), \
                blas_one_thread():
            raw = model._raw(inputs.Xv)
        y = inputs.y
        calib_on = "validation"
    else:
        # Out-of-fit training scores where the detector keeps them (kNN: leave-one-out);
        # in-fit scores of a neighbour method would all be 0.
        oof = getattr(model.detector_, "training_scores_", None)
        if oof is not None:
            raw = np.asarray(oof, dtype=np.float64)
        else:
            with blas_one_thread():
                raw = model._raw(inputs.Xs)
        y = None
        calib_on = "train"
    fitted = fit_thresholds(model.calibration, raw, y, model.step_, entities=inputs.entities,
                            per_entity=model.entity_thresholds, calibrated_on=calib_on)
    model.calibrator_ = fitted.pooled
    model.calibration_used_ = fitted.rule
    model.entity_calibrators_ = fitted.per_entity
    model.training_summary_ = {
        "train_rows": inputs.summary["train_rows"],
        "train_rows_used": inputs.summary["train_rows_used"],
        "train_rows_usable": inputs.summary["train_rows_usable"],
        "max_fit_rows": inputs.summary["max_fit_rows"],
        "train_rows_excluded_labelled": inputs.summary["train_rows_excluded_labelled"],
        "warmup_rows": inputs.summary["warmup_rows"], "calibrated_on": calib_on,
        "calibration_rows": len(raw), "entities": inputs.summary["entities"],
        "step": str(model.step_), "fit_seconds": round(time.perf_counter() - t0, 3),
        "constant_metrics": [model.metrics_[j] for j in model.constant_],
        # the kNN's terms for many metrics as fitted (default_model: on from wide_min_metrics)
        **({"tail_weight": float(model.detector_.tail_weight),
            "excess_weight": float(model.detector_.excess_weight)}
           if hasattr(model.detector_, "tail_weight") else {}),
        "entity_thresholds": sorted(model.entity_calibrators_),
    }
