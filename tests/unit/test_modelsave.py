"""aws_anomaly.modelsave: what a saved bundle holds is what modelfile reads back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aws_anomaly.data.generator import generate_demo
from aws_anomaly.errors import NotFittedError
from aws_anomaly.features import FeatureSpec
from aws_anomaly.model import AnomalyModel
from aws_anomaly.modelfile import read_model
from aws_anomaly.modelsave import ARRAYS, manifest, save_model

SPEC = FeatureSpec(windows=(6, 24), lags=(1,), include_seasonal=False, cross_windows=(24,))


def test_a_saved_model_reads_back_field_for_field(tmp_path) -> None:
    ds, _ = generate_demo(clusters=2, days=2, seed=2)
    model = AnomalyModel("robust", spec=SPEC, calibration_holdout=0.2)
    model.fit(ds)
    model.metadata["evaluation"] = {"f1": np.float64(0.5), "fpr": float("nan")}
    path = save_model(model, tmp_path / "m")
    written = json.loads((tmp_path / "m" / "manifest.json").read_text())
    desc = manifest(model)
    assert desc == model.describe()
    assert written["model"] == desc["model"] and written["metrics"] == desc["metrics"]
    assert written["evaluation"] == {"f1": 0.5, "fpr": None}
    assert desc["scaler_params"]["arrays"] == list(ARRAYS)
    assert sorted(f"{a}.npy" for a in ARRAYS) == sorted(
        f for f in written["files"] if f.endswith(".npy"))
    params, fitted = read_model(path)
    again = AnomalyModel(**params)
    vars(again).update(fitted)
    assert manifest(again) == {**desc, "evaluation": {"f1": 0.5, "fpr": None}}
    for name, attr in (("columns", "columns_"), ("log_floor", "log_floor_"),
                       ("train_median", "median_")):
        assert np.array_equal(getattr(again, attr), getattr(model, attr)), name
    assert np.array_equal(again.scaler_.center_, model.scaler_.center_)
    assert np.array_equal(again.scaler_.scale_, model.scaler_.scale_)
    assert again.score(ds).equals(model.score(ds))


def test_an_unfitted_model_is_not_saved(tmp_path) -> None:
    with pytest.raises(NotFittedError):
        AnomalyModel("robust").save(tmp_path / "m")
    assert not (tmp_path / "m").exists()
