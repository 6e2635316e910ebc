"""Reading an :class:`~aws_anomaly.model.AnomalyModel` bundle: the manifest and arrays turned
back into the model's parameters and fitted state, every field checked.

:meth:`AnomalyModel.save <aws_anomaly.model.AnomalyModel.save>` writes the bundle
(:func:`aws_anomaly.bundle.write_bundle`: checksummed files, the detector through skops with
its types vouched for, never a pickle); :meth:`AnomalyModel.load` builds the model from what
:func:`read_model` returns. Bundles written by earlier versions load with the defaults those
versions had (no persistence columns, no band, one pooled threshold, ...).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from aws_anomaly import bundle
from aws_anomaly.calibration import Calibrator
from aws_anomaly.detectors import DETECTORS, TRUSTED_TYPES
from aws_anomaly.errors import ModelFileError
from aws_anomaly.features import FeatureSpec
from aws_anomaly.features.band import Band
from aws_anomaly.scaling import Scaler

__all__ = ["read_model"]


def _params(cfg: dict[str, Any], man: dict[str, Any]) -> dict[str, Any]:
    """The model's constructor arguments, with the defaults of the bundles that predate a
    field."""
    return {
        "detector": cfg["detector"], "detector_params": cfg["detector_params"],
        "spec": FeatureSpec.from_dict(man["feature_spec"]),
        "calibration": cfg["calibration"], "scaler": cfg["scaler"],
        "exclude_labelled": cfg.get("exclude_labelled", True),
        "feature_set": cfg.get("feature_set", "all"),
        "log_std": cfg.get("log_std", False), "clip": cfg.get("clip"),
        # bundles written before persistence features had none
        "persist": cfg.get("persist", ()),
        "persist_weight": cfg.get("persist_weight", 1.0),
        "persist_baseline": cfg.get("persist_baseline"),
        "log_std_floor": cfg.get("log_std_floor", "typical"),
        "calibration_holdout": cfg.get("calibration_holdout"),
        # bundles written before the cap learned from every row
        "max_fit_rows": cfg.get("max_fit_rows"),
        "band": cfg.get("band"),
        # bundles written before per-entity thresholds pooled them
        "entity_thresholds": cfg.get("entity_thresholds", False),
    }


def read_model(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(constructor arguments, fitted attributes)`` of the model bundle at ``path``.

    Checksums, the detector's types, the manifest's fields and the arrays' shapes are
    verified first (:func:`aws_anomaly.bundle.read_bundle`,
    :func:`~aws_anomaly.bundle.check_model_fields`).

    Raises
    ------
    ModelFileError
        The bundle is incomplete, altered, of another kind, or inconsistent (the message names
        the bundle and the field).
    """
    contents = bundle.read_bundle(path, trusted=list(TRUSTED_TYPES))
    man = contents.manifest
    try:
        cfg = man["model"]
        params = _params(cfg, man)
        metrics = tuple(man["metrics"])
        arr = contents.arrays
        views = man.get("views")
        views_ = None if views is None else [[int(j) for j in v] for v in views]
        fitted: dict[str, Any] = {
            "metrics_": metrics,
            "step_": pd.Timedelta(seconds=bundle.step_seconds(path, man["step_seconds"])),
            "feature_names_": tuple(man["feature_names"]),
            "all_feature_names_": tuple(man["spec_feature_names"]),
            "groups_": {k: [int(i) for i in v] for k, v in man["feature_groups"].items()},
            "constant_": {metrics.index(k): float(v)
                          for k, v in man.get("constant_metrics", {}).items()},
            # bundles written before bands have none
            "band_": (None if man.get("band") is None
                      else Band.from_dict(man["band"], len(metrics))),
            "calibrator_": Calibrator.from_dict(man["calibrator"]),
            "entity_calibrators_": {str(e): Calibrator.from_dict(d)
                                    for e, d in man.get("entity_calibrators", {}).items()},
            "calibration_used_": man.get("calibration_used", {}),
            "training_summary_": man.get("training_summary", {}),
            "views_": views_,
            "scaler_": Scaler(cfg["scaler"], arr["scaler_center"], arr["scaler_scale"],
                              params["clip"], tuple(views_[0]) if views_ else ()),
            "median_": arr["train_median"],
            "columns_": np.asarray(arr["columns"], dtype=np.int64),
            "log_floor_": np.asarray(arr["log_floor"], dtype=np.float64),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"model bundle {path}: manifest is incomplete or invalid "
                             f"({type(exc).__name__}: {exc})") from exc
    scaler = fitted["scaler_"]
    bundle.check_model_fields(
        path, metrics=metrics, step_seconds=fitted["step_"].total_seconds(),
        feature_names=fitted["feature_names_"], spec_feature_names=fitted["all_feature_names_"],
        groups=fitted["groups_"], arrays={
            "columns": arr["columns"], "scaler_center": scaler.center_,
            "scaler_scale": scaler.scale_, "train_median": fitted["median_"],
            "log_floor": fitted["log_floor_"]})
    k = len(fitted["feature_names_"])
    if views_ is not None and (
            len(views_) > bundle.MAX_VIEWS
            or any(not v or min(v) < 0 or max(v) >= k for v in views_)):
        raise ModelFileError(f"model bundle {path}: 'views' must be at most "
                             f"{bundle.MAX_VIEWS} non-empty lists of column positions in "
                             f"0..{k - 1}")
    expected = DETECTORS[params["detector"]]
    if type(contents.detector) is not expected:
        raise ModelFileError(
            f"model bundle {path}: {bundle.DETECTOR_FILE} holds a "
            f"{type(contents.detector).__module__}.{type(contents.detector).__qualname__}, "
            f"not the {expected.__qualname__} the manifest names; refusing to use it")
    fitted["detector_"] = contents.detector
    fitted["metadata"] = {key: man[key] for key in ("evaluation", "selection", "split", "tuning")
                          if key in man}
    fitted["manifest_"] = man
    return params, fitted
