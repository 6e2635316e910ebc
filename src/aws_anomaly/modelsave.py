"""Writing an :class:`~aws_anomaly.model.AnomalyModel` bundle: the manifest and the arrays that
:func:`aws_anomaly.modelfile.read_model` reads back.

* :func:`manifest` — the JSON-serialisable description of a fitted model
  (``AnomalyModel.describe``): its constructor arguments under ``"model"``, its fitted layout
  (metrics, step, column names and groups, views, constant metrics, band), its calibrators,
  the training summary and the caller's ``metadata``;
* :func:`save_model` — that manifest, the detector and the numeric arrays (:data:`ARRAYS`)
  written as a checksummed bundle folder (:func:`aws_anomaly.bundle.write_bundle`).

A field added here needs its reader in :mod:`aws_anomaly.modelfile`, with the default that
bundles written before it had, so older bundles keep loading and scoring the same.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from aws_anomaly import bundle
from aws_anomaly.features.band import BandSpec

if TYPE_CHECKING:
    from aws_anomaly.model import AnomalyModel

__all__ = ["ARRAYS", "jsonable", "manifest", "save_model"]

#: The bundle's arrays, by file name: the scaler's centre and unit, the training medians (in
#: scaled space, for occlusion), the model's columns and the log floors.
ARRAYS = ("scaler_center", "scaler_scale", "train_median", "columns", "log_floor")


def manifest(model: AnomalyModel) -> dict[str, Any]:
    """The JSON-serialisable description of the fitted ``model`` written to its bundle's
    manifest (the keys in the order they are written)."""
    return {
        "model": {
            "detector": model.detector, "detector_params": model.detector_params,
            "scaler": model.scaler, "exclude_labelled": model.exclude_labelled,
            "calibration": model.calibration, "feature_set": model.feature_set,
            "log_std": model.log_std, "clip": model.clip, "persist": list(model.persist),
            "persist_weight": model.persist_weight,
            "persist_baseline": model.persist_baseline,
            "log_std_floor": model.log_std_floor,
            "calibration_holdout": model.calibration_holdout,
            "max_fit_rows": model.max_fit_rows,
            "band": (model.band if not isinstance(model.band, BandSpec)
                     else model.band.to_dict()),
            "entity_thresholds": model.entity_thresholds,
        },
        "constant_metrics": {model.metrics_[j]: v for j, v in model.constant_.items()},
        "band": (None if getattr(model, "band_", None) is None
                 else model.band_.to_dict()),
        "views": model.views_,
        "metrics": list(model.metrics_),
        "step_seconds": model.step_.total_seconds(),
        "feature_names": list(model.feature_names_),
        "spec_feature_names": list(model.all_feature_names_),
        "feature_groups": model.groups_,
        "feature_spec": model.spec.to_dict(),
        "calibrator": model.calibrator_.to_dict(),
        "entity_calibrators": {e: c.to_dict()
                               for e, c in getattr(model, "entity_calibrators_", {}).items()},
        "calibration_used": model.calibration_used_,
        "scaler_params": {"kind": model.scaler, "arrays": list(ARRAYS)},
        "training_summary": model.training_summary_,
        **jsonable(model.metadata),
    }


def save_model(model: AnomalyModel, path: str | os.PathLike[str]) -> str:
    """Write the fitted ``model`` as a bundle folder at ``path``; returns the path."""
    desc = manifest(model)
    arrays = dict(zip(ARRAYS, (model.scaler_.center_, model.scaler_.scale_, model.median_,
                               model.columns_, model.log_floor_), strict=True))
    return str(bundle.write_bundle(path, desc, model.detector_, arrays))


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars and arrays as Python numbers and lists, tuples as lists,
    keys as text, and non-finite floats as None (JSON has none).

    >>> jsonable({"f1": np.float64(0.5), 3: (np.int64(1), float("nan")), "a": np.ones(2)})
    {'f1': 0.5, '3': [1, None], 'a': [1.0, 1.0]}
    """
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
