"""The "should stay constant" check (aws_anomaly.constants.ConstantGuard) on its own and inside a
fitted model: the tolerance boundary, shares of two moved metrics, the detector blinded, the
batch and live paths giving the same numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.constants import ConstantGuard, constant_metrics
from aws_anomaly.data import Dataset
from aws_anomaly.features import FeatureSpec
from aws_anomaly.model import AnomalyModel
from aws_anomaly.scaling import CONSTANT_TOLERANCE, Scaler

SPEC = FeatureSpec(windows=(6, 24), lags=(1,), include_seasonal=False, cross_windows=())


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2026-01-01", periods=n, freq="5min", tz="UTC")
    return pd.DataFrame({"timestamp": ts, "cpu": 0.5 + 0.05 * rng.standard_normal(n),
                         "disk": np.full(n, 3.0), "swap": np.zeros(n)})


@pytest.fixture(scope="module")
def model() -> AnomalyModel:
    return AnomalyModel("robust", spec=SPEC, calibration="fpr:0.01").fit(
        Dataset.from_frame(_frame(600)))


def test_constant_metrics_finds_only_the_flat_ones() -> None:
    assert constant_metrics(Dataset.from_frame(_frame(50))) == {"disk": 3.0, "swap": 0.0}


def test_the_model_guard_covers_every_column_of_the_constant_metrics(model) -> None:
    guard = model.constant_guard
    assert guard and guard.metrics == (1, 2)
    assert model.training_summary_["constant_metrics"] == ["disk", "swap"]
    blinded = sorted({c for m in ("disk", "swap") for c in model.groups_[m]})
    assert guard.columns.tolist() == blinded
    # the value columns are scaled so one tolerance unit reads 1.0
    assert model.scaler_.center_[guard.value_columns].tolist() == [3.0, 0.0]
    assert np.allclose(model.scaler_.scale_[guard.value_columns],
                       CONSTANT_TOLERANCE * np.array([4.0, 1.0]))
    X = np.random.default_rng(1).normal(size=(4, len(model.columns_)))
    out = guard.blind(X)
    assert (out[:, guard.columns] == 0).all()
    keep = np.setdiff1d(np.arange(X.shape[1]), guard.columns)
    assert np.array_equal(out[:, keep], X[:, keep]) and (X[:, guard.columns] != 0).all()


def test_a_move_is_flagged_from_one_tolerance_unit_on() -> None:
    guard = ConstantGuard.build({0: 2.0}, ["disk"], columns=[0], idx_value=[0],
                                groups={"disk": [0]})
    scaler = Scaler("standard").fit(np.zeros((3, 1)))
    guard.scale(scaler)
    unit = CONSTANT_TOLERANCE * 3.0
    z = guard.breaks(scaler.transform(np.array([[2.0], [2.0 + 0.5 * unit], [2.0 - 1.01 * unit]])))
    assert guard.moved(z).tolist() == [False, False, True]
    # at exactly one unit the floor is 1.0; further moves grow like log1p
    assert guard.lift(np.array([0.2, 0.2, 5.0]), np.array([[1.0], [11.0], [2.0]])).tolist() == [
        1.0, 1.0 + np.log1p(10.0), 5.0]


def test_shares_split_between_the_metrics_that_moved() -> None:
    guard = ConstantGuard.build({0: 0.0, 2: 1.0}, ["a", "b", "c"], columns=[0, 1, 2],
                                idx_value=[0, 1, 2], groups={"a": [0], "b": [1], "c": [2]})
    shares = guard.shares(np.array([[3.0, 1.0], [0.5, 2.0]]))
    assert shares.tolist() == [[0.75, 0.0, 0.25], [0.0, 0.0, 1.0]]


def test_a_guard_without_constant_metrics_changes_nothing() -> None:
    guard = ConstantGuard.build({}, ["a"], columns=[0], idx_value=[0], groups={"a": [0]})
    X = np.ones((2, 1))
    assert not guard and guard.blind(X) is X
    scaler = Scaler("standard").fit(np.arange(4.0)[:, None])
    before = scaler.scale_.copy()
    guard.scale(scaler)
    assert np.array_equal(scaler.scale_, before)


def test_batch_and_live_paths_agree_when_a_constant_metric_moves(model) -> None:
    f = _frame(700, seed=3).iloc[600:].reset_index(drop=True)
    f.loc[60:63, "disk"] = 3.5
    f.loc[62:66, "swap"] = 1.0
    history = Dataset.from_frame(_frame(600))
    scores = model.score(f, history=history)
    moved = scores.index.isin(range(60, 67))
    assert scores.loc[moved, "is_anomaly"].all()
    assert set(scores.loc[moved, "top_metric"]) <= {"disk", "swap"}
    both = scores.loc[[62, 63]]
    assert (both[["contrib_disk", "contrib_swap"]] > 0).all().all()
    assert np.allclose(both[["contrib_disk", "contrib_swap"]].sum(axis=1), 1.0)
    assert (both["contrib_cpu"] == 0).all()
    scorer = model.stream("default", history=history)
    for i, row in f.iterrows():
        p = scorer.update(row["timestamp"], row[["cpu", "disk", "swap"]].to_numpy(float))
        assert p.anomaly_score == scores.loc[i, "anomaly_score"]
        assert p.is_anomaly == scores.loc[i, "is_anomaly"]
        if p.is_anomaly:
            assert p.contributions == pytest.approx(
                {m: scores.loc[i, f"contrib_{m}"] for m in ("cpu", "disk", "swap")}, abs=0)
