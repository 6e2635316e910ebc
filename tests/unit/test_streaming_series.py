"""The streaming (NAB) detectors under the model's contract (aws_anomaly.streaming.series)."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aws_anomaly.calibration import Calibrator
from aws_anomaly.data import Dataset
from aws_anomaly.data.generator import generate_demo
from aws_anomaly.errors import ConfigError, DataError, ModelFileError, NotFittedError
from aws_anomaly.events import AlertPolicy
from aws_anomaly.features.band import BandSpec
from aws_anomaly.model import PointScore
from aws_anomaly.streaming import NAB_DETECTORS
from aws_anomaly.streaming.series import (
    SeriesDetector,
    SeriesModel,
    SeriesState,
    SeriesStream,
)

STEP_NS = 300 * 10**9
BANDS = ("expected", "lower", "upper")


def through_json(stream: SeriesStream, model: SeriesModel) -> SeriesStream:
    """The stream rebuilt from its checkpoint as a job stores it: JSON text + a .npz."""
    state, arrays = stream.get_state()
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    with np.load(io.BytesIO(buf.getvalue()), allow_pickle=False) as z:
        back = {k: z[k] for k in z.files}
    return SeriesStream.from_state(model, json.loads(json.dumps(state, allow_nan=False)), back)


def assert_points_equal(points: list[PointScore], batch: pd.DataFrame, metrics) -> None:
    """Stream points == batch rows: scores, flags, readiness, shares and the band, exactly."""
    np.testing.assert_array_equal([p.anomaly_score for p in points], batch["anomaly_score"])
    assert [p.is_anomaly for p in points] == batch["is_anomaly"].tolist()
    assert [p.ready for p in points] == batch["ready"].tolist()
    assert [p.top_metric for p in points] == batch["top_metric"].astype(str).tolist()
    for m in metrics:
        np.testing.assert_array_equal([p.contributions[m] for p in points],
                                      batch[f"contrib_{m}"])
        for k in BANDS:
            np.testing.assert_array_equal([getattr(p, k)[m] for p in points],
                                          batch[f"{k}_{m}"])


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


@settings(max_examples=6, deadline=None)
@given(
    n=st.integers(70, 240),
    m=st.integers(1, 3),
    split=st.floats(0.0, 1.0),
    holes=st.lists(st.tuples(st.floats(0.05, 0.95), st.integers(1, 8)), max_size=3),
    seed=st.integers(0, 2**31 - 1),
    quantum=st.sampled_from([0.0, 0.5]),
)
def test_model_batch_equals_stream_with_band_gaps_and_a_json_checkpoint(
        n: int, m: int, split: float, holes: list[tuple[float, int]], seed: int,
        quantum: float) -> None:
    """A SeriesModel's stream gives one ``score`` pass's numbers, band included: through a
    JSON + npz checkpoint at any point, and across short gaps (filled by the stream as the
    batch ``Dataset`` fills them)."""
    rng = np.random.default_rng(seed)
    season = np.sin(np.arange(n) * 2 * np.pi / 8)[:, None]
    vals = np.cumsum(rng.normal(size=(n, m)), axis=0) * 0.3 + 3 * season
    if quantum:
        vals = np.round(vals / quantum) * quantum
    vals[rng.integers(n), rng.integers(m)] += 15.0
    ts = pd.date_range("2026-01-01", periods=n, freq="5min", tz="UTC")
    cols = [f"m{j}" for j in range(m)]
    frame = pd.DataFrame({"timestamp": ts, "entity": "e", **dict(zip(cols, vals.T, strict=True))})
    keep = np.ones(n, dtype=bool)
    for at, k in holes:  # points the source missed (never the first or the last)
        i = int(at * n)
        keep[max(i, 1): min(i + k, n - 1)] = False
    filled = Dataset.from_frame(frame[keep], metrics=cols)  # ffill, as the job's source
    assert len(filled.frame) == n
    model = SeriesModel("context", learn="1h", band=BandSpec(window=5, periods=(8,))) \
        .fit(filled.subset(slice(0, 60)))
    assert model.band_ is not None
    batch = model.score(filled)
    seen = batch.loc[keep].reset_index(drop=True)
    stream = model.stream("e")
    points = []
    cut = int(split * keep.sum())
    for i, (t, v) in enumerate(zip(ts[keep], vals[keep], strict=True)):
        if i == cut:
            stream = through_json(stream, model)
        points.append(stream.update(t, v))
    assert_points_equal(points, seen, cols)
    assert np.isfinite(seen[f"expected_{cols[0]}"].to_numpy()[10:]).all()


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
            stream = through_json(stream, model)
        got.append(stream.update(ts, v))
    assert_points_equal(got, batch, ds.metrics)
    assert not batch["ready"].to_numpy()[: model.min_history].any()
    # the band is the model's (fitted on the training series, per metric) from the window on
    assert model.band_ is not None and model.band_.spec == BandSpec.for_step("5min")
    assert np.isfinite(batch[[f"{k}_{m}" for k in BANDS for m in ds.metrics]]
                       .to_numpy()[model.band_.spec.window:]).all()
    lo, hi = (batch[f"{k}_cluster_cpu_request_ratio"].to_numpy()[100:] for k in ("lower", "upper"))
    assert (lo < hi).all()
    # a model without a band (as bundles written before bands): NaN band columns, the same
    # scores (on the first day and a half: scores are causal)
    plain = SeriesModel.from_dict({**model.to_dict(), "band": None, "band_spec": None})
    nob = plain.score(one.slice_time(None, t0 + pd.Timedelta(hours=36)))
    assert plain.band_ is None and nob.filter(like="expected_").isna().all().all()
    np.testing.assert_array_equal(nob["anomaly_score"], batch["anomaly_score"][:len(nob)])
    assert nob["ready"].any()
    # a checkpoint of one kind of model does not load into the other
    state, arrays = got_stream_state = stream.get_state()
    with pytest.raises(ModelFileError, match="the band does not fit the model"):
        SeriesStream.from_state(plain, state, arrays)
    with pytest.raises(ModelFileError, match="version 2"):
        SeriesStream.from_state(model, {**state, "version": 1}, arrays)
    with pytest.raises(ModelFileError, match="not a series scorer's"):
        SeriesStream.from_state(model, state, {k: v for k, v in arrays.items()
                                               if k != "recent_v"})
    del got_stream_state


def test_stream_gaps_are_filled_crossed_or_refused(demo) -> None:
    """Up to max_gap_steps missing steps are filled with the last values (as batch fills
    them); a longer gap up to the look-back is crossed (the band's rows held, its season
    aligned); a longer one is refused: the job starts a new stream after it."""
    ds, _ = demo
    ent = ds.entities[0]
    t0 = ds.frame["timestamp"].min()
    one = ds.select([ent])
    model = SeriesModel("context", learn="6h").fit(one.slice_time(None, t0 + pd.Timedelta(days=2)))
    frame = one.frame
    ts, vals = frame["timestamp"], frame[list(ds.metrics)].to_numpy()
    look = model.min_history
    assert look == 72
    st_ = model.stream(ent)
    st_.prime(ts[:300], vals[:300])
    # a short gap: the filled steps count (n_seen) and the recent points hold the last values
    short = st_.copy()
    k = SeriesStream.max_gap_steps
    assert short.gap_steps(ts[300 + k].value) == k and short.continues(ts[300 + k].value)
    short.update(ts[300 + k], vals[300 + k])
    assert short.n_seen == 301 + k
    times, recent = short.recent_values(3)
    np.testing.assert_array_equal(recent[:2], [vals[299], vals[299]])
    np.testing.assert_array_equal(recent[2], vals[300 + k])
    assert list(times) == [ts[298 + k].value, ts[299 + k].value, ts[300 + k].value]
    # a longer gap, within the look-back: the detectors take the point as it is
    cross = st_.copy()
    p = cross.update(ts[300 + look], vals[300 + look])
    assert cross.n_seen == 301 and p.ready and np.isfinite(p.expected[ds.metrics[0]])
    assert cross.last_ns == ts[300 + look].value
    # past the look-back: refused, the state unchanged
    far = st_.copy()
    with pytest.raises(DataError, match=rf"gap of {look + 1} missing steps .* longer than the "
                                        rf"look-back of {look}; start a new stream"):
        far.update(ts[301 + look], vals[301 + look])
    assert not far.continues(ts[301 + look].value) and far.n_seen == 300
    with pytest.raises(DataError, match="is not after the last one"):
        far.update(ts[299], vals[299])
    with pytest.raises(DataError, match="is off the grid"):
        far.update(ts[300] + pd.Timedelta("1min"), vals[300])
    with pytest.raises(DataError, match="values must be finite"):
        far.update(ts[300], [1.0, float("nan"), 2.0])
    with pytest.raises(DataError, match="expected 3 values"):
        far.update(ts[300], [1.0])
    assert far.n_seen == 300 and far.get_state()[0] == st_.get_state()[0]


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
