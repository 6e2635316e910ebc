"""The single-point fast path gives the batch path's numbers bit for bit.

``Calibrator.transform_one`` (plain floats) against ``Calibrator.transform``, and
``AnomalyModel.score_row`` (what ``StreamScorer.update`` calls) against
``AnomalyModel.score_transformed`` on normal rows, flagged rows and rows where a metric
constant in training moved.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from aws_anomaly.calibration import Calibrator
from aws_anomaly.data import Dataset
from aws_anomaly.data.generator import generate_demo
from aws_anomaly.evaluation.split import chronological_split
from aws_anomaly.model import AnomalyModel


def test_transform_one_is_transform() -> None:
    rng = np.random.default_rng(0)
    cal = Calibrator(method="target_fpr", target_fpr=0.05).fit(rng.normal(size=2000))
    t = cal.threshold_
    raws = np.r_[rng.normal(scale=3.0, size=500), t, np.nextafter(t, -np.inf),
                 np.nextafter(t, np.inf), cal.center_, -1e300, 1e300, 1.7e308, -np.inf, np.inf]
    want = cal.transform(raws)
    got = np.array([cal.transform_one(float(r)) for r in raws])
    np.testing.assert_array_equal(got, want)
    assert got.max() == np.finfo(np.float64).max and (got >= 1.0).sum() == (raws >= t).sum()
    with pytest.raises(Exception, match="NaN"):
        cal.transform_one(math.nan)


def _rows(model: AnomalyModel, ds: Dataset) -> np.ndarray:
    X, ready, _ = model._features(ds, None, "test")
    return X[ready]


def _same(model: AnomalyModel, X: np.ndarray) -> int:
    """Assert score_row == score_transformed row by row; return the flagged rows seen."""
    one = np.ones(1, dtype=bool)
    flagged = 0
    for i in range(len(X)):
        row = X[i:i + 1]
        s, f, c = model.score_transformed(row, one, "flagged")
        score, flag, contrib = model.score_row(row)
        assert (score, flag) == (float(s[0]), bool(f[0]))
        np.testing.assert_array_equal(np.zeros(len(model.metrics_)) if contrib is None
                                      else contrib, c[0])
        assert contrib is not None or not f[0]
        flagged += flag
    return flagged


@pytest.mark.parametrize("detector", ["ocsvm", "knn"])
def test_score_row_is_score_transformed(detector: str) -> None:
    ds, _ = generate_demo(clusters=1, days=6, seed=2)
    split = chronological_split(ds)
    params = {"random_state": 0} if detector == "ocsvm" else {}
    model = AnomalyModel(detector, params).fit(split.train, split.validation)
    X = _rows(model, ds)
    flagged = np.flatnonzero(model.score_transformed(X, np.ones(len(X), bool), "none")[1])
    assert flagged.size >= 3
    pick = np.r_[np.arange(0, len(X), 23), flagged]
    assert _same(model, X[pick]) >= 3  # flagged rows compared too (one row at a time)


def test_score_row_when_a_constant_metric_moves() -> None:
    ds, _ = generate_demo(clusters=1, days=6, seed=3)
    frame = ds.frame.copy()
    frame["cluster_pod_ratio"] = 0.5
    const = Dataset.from_frame(frame)
    split = chronological_split(const)
    model = AnomalyModel("ocsvm", {"random_state": 0}).fit(split.train, split.validation)
    assert model.constant_
    moved = frame.copy()
    moved.loc[moved.index[-40:], "cluster_pod_ratio"] = 0.5 + np.linspace(1e-7, 0.2, 40)
    X = _rows(model, Dataset.from_frame(moved))[-60:]
    assert _same(model, X) >= 35
    score, flag, contrib = model.score_row(X[-1:])
    assert score >= 1.0
    assert flag and contrib is not None and contrib[model.metrics_.index("cluster_pod_ratio")] == 1
