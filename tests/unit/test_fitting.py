"""aws_anomaly.fitting: the calibration holdout, the detector's parameters from the model's
layout, and the preprocessing state one model hands to another."""

from __future__ import annotations

import numpy as np
import pytest

from aws_anomaly.data.generator import generate_demo
from aws_anomaly.errors import ConfigError
from aws_anomaly.features import FeatureSpec
from aws_anomaly.fitting import (
    DETECTOR_STATE,
    detector_params,
    fit_detector,
    fit_inputs,
    holdout_split,
)
from aws_anomaly.model import AnomalyModel
from aws_anomaly.presets import default_model

SPEC = FeatureSpec(windows=(6, 24), lags=(1,), include_seasonal=False, cross_windows=(24,))


@pytest.fixture(scope="module")
def data():
    ds, _ = generate_demo(clusters=2, days=2, seed=5)
    return ds


def test_holdout_split_takes_the_models_share_of_each_entity(data) -> None:
    model = AnomalyModel("robust", spec=SPEC, calibration_holdout=0.2)
    fit_part, holdout = holdout_split(model, data)
    for e in data.entities:
        n = len(data.entity_frame(e))
        assert len(holdout.entity_frame(e)) == int(np.ceil(0.2 * n))
        assert fit_part.entity_frame(e).index[-1] < holdout.entity_frame(e).index[0]
    # a share given overrides the model's; too short a fit part: no split
    assert len(holdout_split(model, data, 0.4)[1]) > len(holdout)
    short = data.subset(rows=slice(0, SPEC.min_history + 20))
    assert holdout_split(model, short) is None
    with pytest.raises(ConfigError, match="calibration_holdout"):
        holdout_split(AnomalyModel("robust", spec=SPEC), data)


def test_a_model_fit_on_its_holdout_says_so(data) -> None:
    model = AnomalyModel("robust", spec=SPEC, calibration_holdout=0.2).fit(data)
    fit_part, _ = holdout_split(model, data)
    assert model.training_summary_["train_rows"] == len(fit_part)
    assert model.training_summary_["calibrated_on"].startswith("holdout: the last 20%")


def test_detector_params_come_from_the_layout_and_keep_what_was_given(data) -> None:
    model = default_model(data.step)
    fit_inputs(model, data, None)
    params = detector_params(model)
    assert params["views"] == [list(v) for v in model.views_]
    assert params["random_state"] == 0 and "excess" not in params
    # the volatility-excess term, when asked for at any width (the default turns it on from
    # WIDE_MIN_METRICS metrics only): the level view's columns that are no value
    excess = default_model(data.step, detector_params={"excess_weight": 0.5,
                                                       "wide_min_metrics": 1})
    fit_inputs(excess, data, None)
    cols = detector_params(excess)["excess"]
    values = {int(c) for c in excess.feature_plan().idx_value}
    assert cols and set(cols) < set(excess.views_[0])
    assert all(int(excess.columns_[j]) not in values for j in cols)
    seeded = AnomalyModel("iforest", {"random_state": 7}, spec=SPEC)
    fit_inputs(seeded, data, None)
    assert detector_params(seeded)["random_state"] == 7
    assert "views" not in detector_params(seeded)  # the stationary set has no views


def test_the_preprocessing_state_moves_to_another_detector_unchanged(data) -> None:
    base = AnomalyModel("robust", spec=SPEC, calibration="fpr:0.01")
    inputs = fit_inputs(base, data, None)
    assert not DETECTOR_STATE & set(inputs.state)
    assert {"scaler_", "columns_", "log_floor_", "median_", "constant_"} <= set(inputs.state)
    other = AnomalyModel("iforest", spec=SPEC, calibration="fpr:0.01")
    other._adopt(inputs)
    other._fit_on(inputs)
    alone = AnomalyModel("iforest", spec=SPEC, calibration="fpr:0.01").fit(data)
    a = other.score(data, explain="all")
    b = alone.score(data, explain="all")
    assert a.equals(b)
    # a deep copy: fitting the first model again does not touch the second's arrays
    base.scaler_.center_[:] = 0.0
    assert not np.array_equal(other.scaler_.center_, base.scaler_.center_)


def test_a_detector_that_learns_from_labels_needs_the_labelled_rows_left_out(data) -> None:
    model = AnomalyModel("supervised", spec=SPEC, exclude_labelled=False)
    inputs = fit_inputs(model, data, None)
    with pytest.raises(ConfigError, match="exclude_labelled=True"):
        fit_detector(model, inputs)
