"""The expected value and band per metric (features/band.py) and its use by the model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.data import Dataset
from aws_anomaly.errors import ConfigError, ModelFileError
from aws_anomaly.features.band import Band, BandSpec, BandState, band_arrays, fit_band
from aws_anomaly.model import default_model

DAY = 288  # rows of 5 minutes
SPEC = BandSpec.for_step("5min")


def _stream(x: np.ndarray, band: Band) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    st = BandState(band)
    out = []
    for row in x:
        out.append(st.expected())
        st.update(row)
    return tuple(np.array([o[i] for o in out]) for i in range(3))  # type: ignore[return-value]


def _series(days: int = 10, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(days * DAY)
    daily = 0.5 + 0.3 * np.sin(2 * np.pi * t / DAY) + 0.02 * rng.normal(size=t.size)
    noise = 0.4 + 0.05 * rng.normal(size=t.size)
    return np.c_[daily, noise, np.full(t.size, 7.0)]


def test_spec_is_stated_in_time() -> None:
    assert BandSpec.for_step("5min").window == 36
    assert BandSpec.for_step("1min").periods == (1440, 10080)
    assert BandSpec.for_step("1h").window == 3
    with pytest.raises(ConfigError, match="window"):
        BandSpec(window=1)
    with pytest.raises(ConfigError, match="increasing"):
        BandSpec(window=4, periods=(10, 5))


def test_batch_equals_streaming_exactly() -> None:
    x = _series()
    x[2000:2100, 1] += 2.0  # a level shift, so the band moves
    band = fit_band([x[: 7 * DAY]], SPEC)
    batch = band_arrays(x, band)
    stream = _stream(x, band)
    for b, s in zip(batch, stream, strict=True):
        assert np.array_equal(np.isnan(b), np.isnan(s))
        np.testing.assert_array_equal(b[np.isfinite(b)], s[np.isfinite(s)])


def test_season_is_found_from_the_data() -> None:
    x = _series()
    band = fit_band([x[: 7 * DAY]], SPEC)
    assert band.period == (DAY, 0, 0)  # daily sine / white noise / constant
    # a week of data with a weekday-weekend pattern and three weeks of history: weekly
    t = np.arange(21 * DAY)
    weekly = np.where((t // DAY) % 7 >= 5, 0.2, 0.8) + 0.01 * np.random.default_rng(1).normal(
        size=t.size)
    assert fit_band([weekly[:, None]], SPEC).period == (7 * DAY,)
    # too little history for a season: none is claimed
    assert fit_band([x[: DAY]], SPEC).period == (0, 0, 0)


def test_recurring_spike_is_learned_and_a_new_one_is_not() -> None:
    x = _series()
    t = np.arange(len(x))
    x[(t % DAY) == 30, 0] += 2.0  # a nightly job at the same time every day
    band = fit_band([x[: 7 * DAY]], SPEC)
    _, lo, hi = band_arrays(x, band)
    i = 8 * DAY + 30
    assert lo[i, 0] <= x[i, 0] <= hi[i, 0], "the nightly spike is expected"
    x2 = x.copy()
    j = 8 * DAY + 150
    x2[j, 0] += 2.0
    _, _, hi2 = band_arrays(x2, band)
    assert x2[j, 0] > hi2[j, 0], "a spike at another time is outside the band"


def test_level_shift_is_rebaselined_after_half_the_window() -> None:
    x = _series()
    x[5 * DAY:, 1] += 3.0  # lasting shift of a season-less metric
    band = fit_band([x[: 4 * DAY]], SPEC)
    _, lo, hi = band_arrays(x, band)
    out = (x[:, 1] > hi[:, 1]) | (x[:, 1] < lo[:, 1])
    after = out[5 * DAY: 5 * DAY + 2 * SPEC.window]
    assert after[: SPEC.window // 2 - 1].all(), "the shift is outside the band at first"
    assert not after[SPEC.window // 2 + 1:].any(), "and the new normal afterwards"


def test_one_odd_day_does_not_move_the_expected_value() -> None:
    x = _series()
    band = fit_band([x[: 7 * DAY]], SPEC)
    clean, _, _ = band_arrays(x, band)
    x2 = x.copy()
    x2[7 * DAY: 7 * DAY + 100, 0] += 5.0  # an incident one day earlier at the same times
    odd, _, _ = band_arrays(x2, band)
    rows = slice(8 * DAY + 110, 8 * DAY + 200)  # one day later, after the level window
    np.testing.assert_allclose(odd[rows, 0], clean[rows, 0], atol=0.05)


def test_constant_metric_band_is_tight_and_causal() -> None:
    x = _series()
    band = fit_band([x[: 7 * DAY]], SPEC)
    y, lo, hi = band_arrays(x, band)
    assert np.nanmax(hi[:, 2] - lo[:, 2]) < 1e-4
    x2 = x.copy()
    x2[9 * DAY:, 2] = 7.01
    y2, lo2, hi2 = band_arrays(x2, band)
    assert x2[9 * DAY, 2] > hi2[9 * DAY, 2]
    # causal: nothing before the change moved
    for a, b in ((y, y2), (lo, lo2), (hi, hi2)):
        np.testing.assert_array_equal(a[: 9 * DAY + 1], b[: 9 * DAY + 1])
    # NaN only during the first window (no history), never afterwards
    assert np.isnan(y[: SPEC.window]).all() and np.isfinite(y[SPEC.window:]).all()


def test_band_description_is_validated() -> None:
    band = fit_band([_series()[: 3 * DAY]], SPEC)
    assert Band.from_dict(band.to_dict(), 3) == band
    bad = band.to_dict()
    bad["sigma"][0] = -1.0
    with pytest.raises(ModelFileError, match="positive"):
        Band.from_dict(bad, 3)
    with pytest.raises(ModelFileError, match="expected 4"):
        Band.from_dict(band.to_dict(), 4)


def _frame(days: int = 5) -> Dataset:
    x = _series(days)
    ts = pd.date_range("2026-03-01", periods=len(x), freq="5min", tz="UTC")
    return Dataset.from_frame(pd.DataFrame({"timestamp": ts, "cpu": x[:, 0], "mem": x[:, 1],
                                            "disk": x[:, 2]}))


def test_model_scores_and_streams_give_the_same_band(tmp_path) -> None:
    data = _frame()
    train, test = data.split_tail(0.2)
    model = default_model("5min", history="4D").fit(train)
    scores = model.score(test, history=train)
    for m in data.metrics:
        assert {f"expected_{m}", f"lower_{m}", f"upper_{m}"} <= set(scores.columns)
    assert np.isfinite(scores["expected_cpu"]).all()
    assert (scores["lower_mem"] <= scores["upper_mem"]).all()
    loaded = type(model).load(model.save(tmp_path / "m"))
    assert loaded.band_ == model.band_
    stream = loaded.stream("default", history=train)
    tf = test.entity_frame("default")
    points = [stream.update(t, row) for t, row in zip(tf.index, tf[list(data.metrics)]
                                                         .to_numpy(), strict=True)]
    for k in range(0, len(points), 37):
        p, row = points[k], scores.iloc[k]
        for m in data.metrics:
            assert p.expected[m] == pytest.approx(row[f"expected_{m}"], abs=1e-12)
            assert p.upper[m] == pytest.approx(row[f"upper_{m}"], abs=1e-12)


def test_model_without_band() -> None:
    data = _frame(2)
    model = default_model("5min", history="2D", band=None).fit(data)
    s = model.score(data)
    assert s["expected_cpu"].isna().all()
    with pytest.raises(ConfigError, match="band must be"):
        default_model("5min", band="weekly")


def test_band_state_restored_while_its_window_still_holds_gaps_continues_exactly() -> None:
    """The state is saved in the first window (NaN rows) and in the first season (NaN
    de-seasonalised values) and restored: the rest of the stream equals the uninterrupted one
    and batch."""
    x = _series(days=3)
    band = fit_band([x], SPEC)
    batch = band_arrays(x, band)
    for cut in (5, SPEC.window - 1, SPEC.window + 1, DAY + 3, DAY + SPEC.window + 2):
        st = BandState(band)
        for row in x[:cut]:
            st.expected()
            st.update(row)
        again = BandState.from_state(band, *st.get_state())
        out = []
        for row in x[cut:]:
            out.append(again.expected())
            again.update(row)
        for i in range(3):
            s = np.array([o[i] for o in out])
            np.testing.assert_array_equal(s, batch[i][cut:])
