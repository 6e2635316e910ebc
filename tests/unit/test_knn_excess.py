"""KNNDetector's excess term and the default model's use of it (docs/model.md).

The term adds ``excess_weight x mean(max(0, x[excess]))`` to the mean of the views'
distances; the default model passes the level view's volatility columns. It must be exactly
that number (batch, training scores, one row at a time), off at weight 0, explained as part of
the score, and refused with one line when misconfigured.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.data import Dataset
from aws_anomaly.detectors import KNNDetector
from aws_anomaly.errors import ConfigError
from aws_anomaly.presets import EXCESS_WEIGHT, WIDE_MIN_METRICS, default_model


@pytest.fixture(scope="module")
def xy() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.normal(size=(300, 6)), rng.normal(size=(40, 6)) * 2.0


def test_the_term_is_the_weighted_mean_positive_part(xy):
    X, Z = xy
    views = [[0, 1, 2], [3, 4, 5]]
    plain = KNNDetector(views=views).fit(X)
    det = KNNDetector(views=views, excess=[1, 2], excess_weight=0.5).fit(X)
    term = 0.5 * np.maximum(Z[:, [1, 2]], 0.0).mean(axis=1)
    np.testing.assert_allclose(det.score_samples(Z), plain.score_samples(Z) + term, rtol=1e-12)
    loo = 0.5 * np.maximum(X[:, [1, 2]], 0.0).mean(axis=1)
    np.testing.assert_allclose(det.training_scores_, plain.training_scores_ + loo, rtol=1e-12)
    # one row at a time gives the same numbers (the live path scores one point per call)
    one = np.array([det.score_samples(Z[i:i + 1])[0] for i in range(len(Z))])
    np.testing.assert_allclose(one, det.score_samples(Z), rtol=1e-12)
    # weight 0 (or no columns) is the plain distance, bit for bit
    for off in (KNNDetector(views=views, excess=[1, 2], excess_weight=0.0),
                KNNDetector(views=views, excess=None, excess_weight=0.5)):
        np.testing.assert_array_equal(off.fit(X).score_samples(Z), plain.score_samples(Z))
        np.testing.assert_array_equal(off.explain_samples(Z), plain.explain_samples(Z))


def test_explanation_is_the_score_split_over_columns(xy):
    X, Z = xy
    det = KNNDetector(views=[[0, 1, 2], [3, 4, 5]], excess=[1, 2], excess_weight=0.5).fit(X)
    parts = det.explain_samples(Z)
    assert (parts >= 0).all()
    np.testing.assert_allclose(parts.sum(axis=1), det.score_samples(Z), rtol=1e-9)
    # a row far above training on column 1 only: column 1 carries most of the score
    row = np.zeros((1, 6))
    row[0, 1] = 12.0
    share = det.explain_samples(row)[0] / det.score_samples(row)[0]
    assert share[1] > 0.9


@pytest.mark.parametrize(("params", "match"), [
    ({"excess": [0, 9], "excess_weight": 0.5}, r"excess must be None or a non-empty list"),
    ({"excess": "ab", "excess_weight": 0.5}, r"excess must be None or a non-empty list"),
    ({"excess": [], "excess_weight": 0.5}, r"excess must be None or a non-empty list"),
    ({"excess": [1], "excess_weight": -1.0}, r"excess_weight=-1.0 is not allowed"),
    ({"excess": [1], "excess_weight": float("nan")}, r"excess_weight=nan is not allowed"),
])
def test_bad_settings_are_one_line_errors(xy, params, match):
    with pytest.raises(ConfigError, match=match) as err:
        KNNDetector(**params).fit(xy[0])
    assert "\n" not in str(err.value)


def _servers(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2026-01-05", periods=n, freq="5min", tz="UTC")
    t = np.arange(n)
    return pd.DataFrame({"timestamp": ts, "entity": "srv",
                         "cpu": 0.5 + 0.2 * np.sin(2 * np.pi * t / 288) + rng.normal(0, 0.02, n),
                         "mem": 0.4 + rng.normal(0, 0.02, n),
                         "disk": np.zeros(n)})


def test_default_model_takes_the_level_views_volatility_excess_on_request():
    frame = _servers(4 * 288 + 200, 2)
    # the last 200 rows: every metric turns noisier together (a volatility surge)
    frame.loc[4 * 288 + 100:, ["cpu", "mem"]] += np.random.default_rng(3).normal(0, 0.1,
                                                                              (100, 2))
    data = Dataset.from_frame(frame)
    train = data.subset(rows=slice(0, 4 * 288))
    test = data.subset(rows=slice(4 * 288, None))
    # on by default from WIDE_MIN_METRICS metrics only (docs/model.md): 2 metrics move here
    assert default_model(data.step).fit(train).detector_.excess_weight == 0.0
    params = {"excess_weight": EXCESS_WEIGHT, "tail_weight": 0.0, "wide_min_metrics": 1}
    model = default_model(data.step, detector_params=params).fit(train)
    det = model.detector_
    assert model.detector_params == params  # laid over the preset's own
    assert WIDE_MIN_METRICS > 2 and det.excess_weight == EXCESS_WEIGHT
    names = [model.feature_names_[j] for j in det.excess_]
    level = [model.feature_names_[j] for j in model.views_[0]]
    # the level view's columns less its values: every metric's two volatility columns
    assert sorted(names) == sorted(n for n in level if not n.endswith("__value"))
    assert len(names) == 2 * len(data.metrics)
    out = model.score(test, history=train, explain="flagged")
    assert out["is_anomaly"].iloc[100:].mean() > 0.5 >= out["is_anomaly"].iloc[:100].mean()
    # the live stream gives the batch numbers
    scorer = model.stream("srv", history=train)
    live = [scorer.update(row.timestamp, [row.cpu, row.mem, row.disk]).anomaly_score
            for row in test.frame.itertuples()]
    np.testing.assert_allclose(live, out["anomaly_score"].to_numpy(), rtol=1e-9, atol=1e-12)
    # other detectors of the preset take no excess setting
    assert default_model(data.step, detector="lof").detector_params == {}
