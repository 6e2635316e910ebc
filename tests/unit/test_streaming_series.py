"""The streaming (NAB) detectors under the model's contract (aws_anomaly.streaming.series)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aws_anomaly.calibration import Calibrator
from aws_anomaly.data.generator import generate_demo
from aws_anomaly.errors import ConfigError, DataError, ModelFileError, NotFittedError
from aws_anomaly.events import AlertPolicy
from aws_anomaly.model import PointScore
from aws_anomaly.streaming import NAB_DETECTORS
from aws_anomaly.streaming.series import (
    SeriesDetector,
    SeriesModel,
    SeriesState,
    SeriesStream,
)

STEP_NS = 300 * 10**9


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(30, 260),
    m=st.integers(1, 3),
    probationary=st.integers(4, 80),
    split=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**31 - 1),
    quantum=st.sampled_from([0.0, 0.5, 1.0]),
    name=st.sampled_from(["context", "forecast", "aws_ensemble"]),
)
def test_batch_equals_stream_with_a_checkpoint(n: int, m: int, probationary: int, split: float,
                                               seed: int, quantum: float, name: str) -> None:
    """Batch and streaming give the same numbers, through a JSON checkpoint at any point."""
    rng = np.random.default_rng(seed)
    vals = np.cumsum(rng.normal(size=(n, m)), axis=0)
    if quantum:  # quantised, often repeated values (flat metrics, counters)
        vals = np.round(vals / quantum) * quantum
    vals[rng.integers(n), rng.integers(m)] += 20.0
    t = np.arange(n, dtype=np.int64) * STEP_NS
    det = SeriesDetector(name, probationary=probationary)
    batch = det.score_series(t, vals)
    assert batch.shape == (n, m) and np.all((batch >= 0) & (batch <= 1))
    k = int(split * n)
    state = det.start(m)
    first = [state.update(int(t[i]), vals[i]) for i in range(k)]
    restored = SeriesState.from_state(json.loads(json.dumps(state.get_state())))
    rest = [restored.update(int(t[i]), vals[i]) for i in range(k, n)]
    np.testing.assert_array_equal(np.vstack(first + rest), batch)


def test_series_detector_is_the_nab_detector_per_metric() -> None:
    """Column j of the batch form is the NAB bench's run of that metric alone."""
    rng = np.random.default_rng(3)
    vals = rng.normal(size=(400, 2)).cumsum(axis=0)
    t = np.arange(400, dtype=np.int64) * STEP_NS
    raw = SeriesDetector("aws_context", probationary=120).score_series(t, vals)
    for j in range(2):
        nab = NAB_DETECTORS["aws_context"]().run(t, vals[:, j], 120)
        np.testing.assert_array_equal(raw[:, j], nab)


def test_series_detector_rejects_bad_input() -> None:
    det = SeriesDetector("context", probationary=10)
    t = np.arange(5, dtype=np.int64)
    with pytest.raises(DataError, match="2-D"):
        det.score_series(t, np.zeros(5))
    with pytest.raises(DataError, match="row 3 goes backwards"):
        det.score_series(np.array([0, 1, 2, 1, 4]), np.zeros((5, 1)))
    with pytest.raises(DataError, match="must be finite"):
        det.start(1).update(0, [float("nan")])
    with pytest.raises(ConfigError, match="unknown streaming detector 'htm'; allowed: "
                                          "'context', 'context_forecast', 'forecast'"):
        SeriesDetector("htm")
    with pytest.raises(ConfigError, match=r"learn 'soon' is not a duration"):
        SeriesModel(learn="soon")
    with pytest.raises(ConfigError, match="floor must be"):
        SeriesModel(floor=2.0)


@pytest.fixture(scope="module")
def demo():
    ds, events = generate_demo(clusters=2, days=10, step="5min", seed=1234, events_per_day=0.5)
    return ds, events


def test_model_runs_a_nab_detector_end_to_end(demo) -> None:
    """Fit on clean-ish history, score the rest with look-back, the same calibrator and the
    same alert policy as every model: alerts land on the injected anomalies."""
    ds, events = demo
    cut = ds.frame["timestamp"].min() + pd.Timedelta(days=6)
    train, test = ds.slice_time(None, cut), ds.slice_time(cut, None)
    model = SeriesModel("context").fit(train)
    assert isinstance(model.calibrator_, Calibrator)
    assert model.min_history == 750  # 62h30m at 5 minutes, NAB's learning period
    assert model.calibrator_.threshold_ >= 0.45
    scores = model.score(test, history=train)
    assert list(scores.columns[:5]) == ["timestamp", "entity", "anomaly_score", "is_anomaly",
                                        "top_metric"]
    assert {f"contrib_{m}" for m in ds.metrics} <= set(scores.columns)
    assert len(scores) == len(test.frame) and scores["ready"].all()
    flagged = scores[scores["is_anomaly"]]
    assert (flagged["anomaly_score"] >= 1.0).all()
    assert set(flagged["top_metric"]) <= set(ds.metrics)
    # Alerts from the one decision layer: most of them overlap a labelled anomaly.
    policy = AlertPolicy(min_consecutive=1)
    alerts = policy.merge(scores, threshold=policy.threshold)
    assert alerts
    labelled = test.frame["is_anomaly"].to_numpy().astype(bool)
    hit = scores["is_anomaly"].to_numpy() & labelled
    assert hit.sum() >= 1
    truth = events[events["start"] >= cut]
    found = sum(
        any(a.entity == e.entity and a.start <= e.end + pd.Timedelta("1h") and a.end >= e.start
            for a in alerts)
        for e in truth.itertuples())
    assert found >= len(truth) // 3, (found, len(truth))
    assert len(alerts) <= 3 * len(truth) + 2


def test_model_stream_equals_score_and_survives_a_checkpoint(demo) -> None:
    ds, _ = demo
    ent = ds.entities[0]
    t0 = ds.frame["timestamp"].min()
    one = ds.select([ent]).slice_time(None, t0 + pd.Timedelta(days=4))
    model = SeriesModel("context", learn="1D").fit(one.slice_time(None, t0 + pd.Timedelta(days=2)))
    batch = model.score(one)
    frame = one.frame
    vals = frame[list(ds.metrics)].to_numpy()
    stream = model.stream(ent)
    got: list[PointScore] = []
    half = len(frame) // 2
    for i, (ts, v) in enumerate(zip(frame["timestamp"], vals, strict=True)):
        if i == half:
            stream = SeriesStream.from_state(model, stream.get_state())
        got.append(stream.update(ts, v))
    np.testing.assert_array_equal([p.anomaly_score for p in got], batch["anomaly_score"])
    assert [p.is_anomaly for p in got] == batch["is_anomaly"].tolist()
    assert [p.ready for p in got] == batch["ready"].tolist()
    assert not batch["ready"].to_numpy()[: model.min_history].any()


def test_model_round_trips_through_json_and_refuses_misuse(demo) -> None:
    ds, _ = demo
    train = ds.slice_time(None, ds.frame["timestamp"].min() + pd.Timedelta(days=4))
    with pytest.raises(NotFittedError, match="SeriesModel is not fitted"):
        SeriesModel().score(ds)
    model = SeriesModel("forecast").fit(train)
    again = SeriesModel.from_dict(json.loads(json.dumps(model.to_dict())))
    pd.testing.assert_frame_equal(again.score(ds), model.score(ds))
    # With validation data (continuing the training entities, labelled): calibrated on it.
    t0 = ds.frame["timestamp"].min()
    val = ds.slice_time(t0 + pd.Timedelta(days=4), t0 + pd.Timedelta(days=6))
    on_val = SeriesModel("forecast", calibration={"method": "best_f1"}).fit(train, val)
    assert on_val.training_summary_["calibrated_on"] == "validation"
    assert on_val.training_summary_["calibration_rows"] == len(val.frame)
    with pytest.raises(ModelFileError, match="not a streaming series model"):
        SeriesModel.from_dict({"kind": "knn"})
    with pytest.raises(DataError, match=r"missing metric column\(s\) \['cluster_pod_ratio'\]"):
        model.score(ds.frame.drop(columns=["cluster_pod_ratio"]))
    short = ds.slice_time(None, ds.frame["timestamp"].min() + pd.Timedelta(hours=30))
    with pytest.raises(DataError, match="too few points after the context detector's learning "
                                        "period of 750 points"):
        SeriesModel("context").fit(short)
