"""The label-free default model: kNN on levels and volatility, POT threshold, constant metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.data import Dataset
from aws_anomaly.errors import ConfigError, DataError
from aws_anomaly.model import AnomalyModel, default_model


def _server(n: int, seed: int, start: str = "2026-01-05") -> pd.DataFrame:
    """Three correlated load metrics with a daily cycle, plus a disk that never moves."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    ts = pd.date_range(start, periods=n, freq="5min", tz="UTC")
    load = 0.5 + 0.2 * np.sin(2 * np.pi * t / 288) + rng.normal(0, 0.02, n)
    return pd.DataFrame({
        "timestamp": ts, "entity": "srv",
        "cpu": load + rng.normal(0, 0.02, n),
        "mem": 0.6 * load + 0.2 + rng.normal(0, 0.01, n),
        "net": 2.0 * load + rng.normal(0, 0.05, n),
        "disk_unused": np.zeros(n),
    })


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    full = _server(288 * 6, seed=2)
    train, val, test = full.iloc[:288 * 4], full.iloc[288 * 4:288 * 5], full.iloc[288 * 5:].copy()
    test = test.reset_index(drop=True)
    # A correlation break: cpu saturates while mem and net stay on their normal course.
    test.loc[100:111, "cpu"] = 0.98
    # The unused disk starts being written (a value never seen in training).
    test.loc[200:203, "disk_unused"] = 0.003
    return train, val, test


@pytest.fixture(scope="module")
def model(frames) -> AnomalyModel:
    train, val, _ = frames
    return default_model("5min").fit(Dataset.from_frame(train), Dataset.from_frame(val))


def test_windows_scale_with_the_step() -> None:
    assert default_model("5min").spec.windows == (3, 12, 36, 144)
    assert default_model("5min").spec.seasonal_period == 288
    assert default_model("1min").spec.windows == (15, 60, 180, 720)
    assert default_model("1min").persist == (30, 180)
    assert default_model("1h").spec.windows == (2, 3, 4, 12)
    with pytest.raises(ConfigError, match="step must be positive"):
        default_model("0s")


def test_flags_the_break_and_the_moved_constant_and_little_else(model, frames) -> None:
    train, val, test = frames
    hist = Dataset.from_frame(pd.concat([train, val], ignore_index=True))
    s = model.score(Dataset.from_frame(test), history=hist)
    assert s["ready"].all()  # the history warms the windows up
    flags = s["is_anomaly"].to_numpy()
    assert flags[100:112].mean() > 0.8
    assert s.loc[100:111, "top_metric"].eq("cpu").mean() > 0.8
    assert flags[200:204].all()
    assert (s.loc[200:203, "top_metric"] == "disk_unused").all()
    assert (s.loc[200:203, "contrib_disk_unused"] == 1.0).all()
    quiet = np.r_[0:95, 130:195, 215:len(s)]
    assert flags[quiet].mean() < 0.02
    assert model.training_summary_["constant_metrics"] == ["disk_unused"]
    assert model.calibration_used_["method"] == "pot"
    # explanations of kNN rows are exact shares of the squared distance
    c = s.loc[flags, [f"contrib_{m}" for m in model.metrics_]].to_numpy()
    np.testing.assert_allclose(c.sum(axis=1), 1.0)


def test_stream_and_reload_give_the_batch_numbers(model, frames, tmp_path) -> None:
    train, val, test = frames
    hist = pd.concat([train, val], ignore_index=True)
    batch = model.score(Dataset.from_frame(test), history=Dataset.from_frame(hist))
    path = model.save(tmp_path / "m")
    loaded = AnomalyModel.load(path)
    again = loaded.score(Dataset.from_frame(test), history=Dataset.from_frame(hist))
    np.testing.assert_array_equal(again["anomaly_score"], batch["anomaly_score"])
    scorer = loaded.stream("srv", Dataset.from_frame(hist))
    metrics = list(model.metrics_)
    live = [scorer.update(r.timestamp, [getattr(r, m) for m in metrics])
            for r in test.itertuples(index=False)]
    np.testing.assert_allclose([p.anomaly_score for p in live], batch["anomaly_score"],
                               rtol=1e-9, atol=1e-12)
    assert [p.top_metric for p in live][200] == "disk_unused"


def test_fits_without_validation_on_a_held_out_tail(frames) -> None:
    train, val, test = frames
    history = pd.concat([train, val], ignore_index=True)
    m = default_model("5min").fit(Dataset.from_frame(history))
    assert m.training_summary_["calibrated_on"].startswith("holdout: the last 15%")
    s = m.score(Dataset.from_frame(test), history=Dataset.from_frame(history))
    assert s["is_anomaly"].to_numpy()[200:204].all()
    quiet = np.r_[0:95, 130:195, 215:len(s)]
    assert s["is_anomaly"].to_numpy()[quiet].mean() < 0.02


def test_fits_without_validation_on_out_of_fit_scores(frames) -> None:
    train, _, _ = frames
    m = default_model("5min", calibration_holdout=None).fit(Dataset.from_frame(train))
    assert m.training_summary_["calibrated_on"] == "train"
    # leave-one-out training distances are not the trivial zeros of in-fit kNN scores
    assert m.calibrator_.threshold_ > 0
    s = m.score(Dataset.from_frame(train))
    assert s.loc[s["ready"], "is_anomaly"].mean() < 0.02


def test_stream_policies_for_late_and_repeated_points(model, frames) -> None:
    train, val, test = frames
    hist = Dataset.from_frame(pd.concat([train, val], ignore_index=True))
    metrics = list(model.metrics_)
    rows = list(test.itertuples(index=False))

    def vals(r: object) -> list[float]:
        return [getattr(r, m) for m in metrics]

    strict = model.stream("srv", hist)
    strict.update(rows[0].timestamp, vals(rows[0]))
    with pytest.raises(DataError, match="not after the last one"):
        strict.update(rows[0].timestamp, vals(rows[0]))
    lenient = model.stream("srv", hist, timestamps="drop", duplicates="first")
    first = lenient.update(rows[1].timestamp, vals(rows[1]))
    assert first is not None
    assert lenient.update(rows[1].timestamp, vals(rows[2])) is None      # repeated: first stands
    assert lenient.update(rows[0].timestamp, vals(rows[0])) is None      # late: dropped
    nxt = lenient.update(rows[2].timestamp, vals(rows[2]))
    ref = model.stream("srv", hist)
    ref.update(rows[1].timestamp, vals(rows[1]))
    assert nxt is not None
    assert nxt.anomaly_score == ref.update(rows[2].timestamp, vals(rows[2])).anomaly_score
