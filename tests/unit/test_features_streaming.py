"""Streaming features: equal to batch row by row, warm-up, persistence, errors."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.errors import DataError
from aws_anomaly.features import FeatureSpec, StreamingFeatureBuilder, build_features
from aws_anomaly.features.kernels import calendar, calendar_one

METRICS = ["cluster_cpu_request_ratio", "cluster_mem_request_ratio", "cluster_pod_ratio"]


def _realistic(n: int, seed: int = 0) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """Daily cycle, noise, flat pod ratio stretches, a spike and a level shift."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2026-03-01", periods=n, freq="5min", tz="UTC")
    day = np.sin(2 * np.pi * np.arange(n) / 288)
    cpu = 0.55 + 0.2 * day + 0.01 * rng.standard_normal(n)
    mem = 0.6 + 0.1 * day + 0.005 * rng.standard_normal(n)
    pods = np.round((0.4 + 0.15 * day) * 110) / 110
    cpu[n // 3] += 0.5
    mem[n // 2:] += 0.2
    pods[n // 9: n // 2] = pods[n // 9]
    return np.c_[cpu, mem, pods], ts


def _stream(sb: StreamingFeatureBuilder, x: np.ndarray, ts: pd.DatetimeIndex) -> np.ndarray:
    return np.array([sb.update(t, v) for t, v in zip(ts, x, strict=True)])


def test_streaming_equals_batch_on_a_realistic_series_with_default_spec() -> None:
    x, ts = _realistic(900)
    batch = build_features(x, ts, METRICS).values
    sb = StreamingFeatureBuilder(FeatureSpec(), METRICS)
    rows = _stream(sb, x, ts)
    np.testing.assert_allclose(rows, batch, rtol=1e-9, atol=1e-9)
    assert sb.n_seen == 900 and sb.ready and rows.shape[1] == sb.n_features


def test_streaming_equals_batch_with_weekly_terms_and_long_random_walk() -> None:
    spec = FeatureSpec(windows=(3, 8, 20), lags=(1, 5), quantile_windows=(4, 9),
                       seasonal_period=6, include_weekly=True, cross_windows=(8, 20))
    rng = np.random.default_rng(7)
    n = 1500
    x = np.cumsum(rng.standard_normal((n, 2)), axis=0) * [1.0, 1e3]
    x[200:260, 0] = x[200, 0]
    ts = pd.date_range("2026-01-01", periods=n, freq="1min", tz="UTC")
    batch = build_features(x, ts, ["a", "b"], spec).values
    rows = _stream(StreamingFeatureBuilder(spec, ["a", "b"]), x, ts)
    np.testing.assert_allclose(rows, batch, rtol=1e-9, atol=1e-9)


def test_ready_flips_at_min_history() -> None:
    spec = FeatureSpec(windows=(4,), lags=(6,), include_quantiles=False,
                       include_seasonal=False, include_cross=False)
    sb = StreamingFeatureBuilder(spec, ["cpu"])
    ts = pd.date_range("2026-01-01", periods=8, freq="5min", tz="UTC")
    flags = []
    for t in ts:
        sb.update(t, [1.0])
        flags.append(sb.ready)
    assert flags == [False] * 6 + [True, True]


def test_warm_then_update_continues_like_batch() -> None:
    x, ts = _realistic(1000, seed=2)
    batch = build_features(x, ts, METRICS).values
    sb = StreamingFeatureBuilder(FeatureSpec(), METRICS)
    sb.warm(x[:300], ts[:300])
    sb.warm(x[300:701], ts[300:701])  # odd split: inside aligned blocks of every window
    assert sb.n_seen == 701 and sb.ready
    rows = _stream(sb, x[701:], ts[701:])
    np.testing.assert_allclose(rows, batch[701:], rtol=1e-9, atol=1e-9)


def test_state_round_trips_through_json_and_npz() -> None:
    x, ts = _realistic(800, seed=4)
    batch = build_features(x, ts, METRICS).values
    sb = StreamingFeatureBuilder(FeatureSpec(), METRICS)
    _stream(sb, x[:500], ts[:500])
    state, arrays = sb.get_state()
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as npz:
        loaded = {k: npz[k] for k in npz.files}
    again = StreamingFeatureBuilder.from_state(json.loads(json.dumps(state)), loaded)
    assert again.n_seen == 500
    np.testing.assert_allclose(_stream(again, x[500:], ts[500:]), batch[500:],
                               rtol=1e-9, atol=1e-9)
    with pytest.raises(DataError, match="does not come after"):
        again.update(ts[0], x[0])


def test_state_of_a_fresh_builder_restores_empty() -> None:
    state, arrays = StreamingFeatureBuilder(FeatureSpec(), METRICS).get_state()
    fresh = StreamingFeatureBuilder.from_state(state, arrays)
    assert fresh.n_seen == 0 and not fresh.ready


@pytest.mark.parametrize(("change", "message"), [
    (lambda s, a: ({**s, "extra": 1}, a), "keys"),
    (lambda s, a: ({**s, "version": 99}, a), "version 99"),
    (lambda s, a: (s, {"history": a["history"][:-1]}), "inconsistent"),
    (lambda s, a: (s, {"history": a["history"][:, :2]}), "inconsistent"),
    (lambda s, a: (s, {"history": np.where(a["history"] > 0.5, np.nan, a["history"])}),
     "NaN"),
    (lambda s, a: ({**s, "ref": [1.0]}, a), "ref"),
    (lambda s, a: ({**s, "n_seen": -1}, a), "inconsistent"),
])
def test_bad_state_raises_data_error(change, message: str) -> None:
    x, ts = _realistic(50)
    sb = StreamingFeatureBuilder(FeatureSpec(), METRICS)
    sb.warm(x, ts)
    state, arrays = change(*sb.get_state())
    with pytest.raises(DataError, match=message):
        StreamingFeatureBuilder.from_state(state, arrays)


def test_update_accepts_common_timestamp_types() -> None:
    spec = FeatureSpec(windows=(2,), lags=(), include_quantiles=False, include_seasonal=False)
    ts = pd.Timestamp("2026-03-02T10:00Z")
    stamps = [ts, ts.to_pydatetime() + pd.Timedelta("5min"), "2026-03-02T10:10:00Z",
              np.datetime64("2026-03-02T10:15"), (ts + pd.Timedelta("20min")).value]
    sb = StreamingFeatureBuilder(spec, ["cpu"])
    rows = np.array([sb.update(s, [0.5]) for s in stamps])
    batch = build_features(np.full((5, 1), 0.5), pd.date_range(ts, periods=5, freq="5min"),
                           ["cpu"], spec).values
    np.testing.assert_allclose(rows, batch, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("ts", "values", "message"), [
    ("2026-03-02T10:05Z", [0.1, 0.2], "got 2 values for 3 metrics"),
    ("2026-03-02T10:05Z", [0.1, np.nan, 0.3], "metric 'cluster_mem_request_ratio' has value nan"),
    ("2026-03-02T10:05Z", [0.1, 0.2, np.inf], "cluster_pod_ratio"),
    ("2026-03-02T10:00Z", [0.1, 0.2, 0.3], "does not come after"),
    ("2026-03-02T09:00Z", [0.1, 0.2, 0.3], "does not come after"),
    ("not a time", [0.1, 0.2, 0.3], "cannot read timestamp"),
    ("2026-03-02T10:05Z", ["a", "b", "c"], "must be 3 numbers"),
    (None, [0.1, 0.2, 0.3], "NaT"),
])
def test_bad_updates_raise_and_leave_the_state_alone(ts, values, message: str) -> None:
    sb = StreamingFeatureBuilder(FeatureSpec(), METRICS)
    sb.update(pd.Timestamp("2026-03-02T10:00Z"), [0.1, 0.2, 0.3])
    with pytest.raises(DataError, match=message):
        sb.update(ts, values)
    assert sb.n_seen == 1


def test_warm_rejects_history_before_the_last_row() -> None:
    x, ts = _realistic(20)
    sb = StreamingFeatureBuilder(FeatureSpec(), METRICS)
    sb.warm(x[10:], ts[10:])
    with pytest.raises(DataError, match="does not come after"):
        sb.warm(x[:10], ts[:10])
    with pytest.raises(DataError, match="strictly increasing"):
        StreamingFeatureBuilder(FeatureSpec(), METRICS).warm(x[::-1], ts[::-1])


def test_scalar_calendar_matches_vectorised_calendar() -> None:
    ns = pd.date_range("1999-12-31T23:00Z", periods=500, freq="37min").asi8
    vec = calendar(ns)
    one = np.array([calendar_one(int(v)) for v in ns]).T
    np.testing.assert_allclose(one, vec, rtol=0, atol=1e-12)


@pytest.mark.parametrize("n_metrics", [1, 4])
@pytest.mark.parametrize("families", [True, False])
def test_streaming_equals_batch_for_other_metric_counts_and_families(
        n_metrics: int, families: bool) -> None:
    spec = FeatureSpec(windows=(4, 10), lags=(2,) if families else (), quantile_windows=(5,),
                       include_quantiles=families, include_seasonal=families,
                       seasonal_period=12, include_cross=families, cross_windows=(10,),
                       include_calendar=families)
    names = [f"m{i}" for i in range(n_metrics)]
    rng = np.random.default_rng(n_metrics)
    x = rng.random((150, n_metrics))
    ts = pd.date_range("2026-01-01", periods=150, freq="5min", tz="UTC")
    batch = build_features(x, ts, names, spec)
    rows = _stream(StreamingFeatureBuilder(spec, names), x, ts)
    np.testing.assert_allclose(rows, batch.values, rtol=1e-9, atol=1e-9)
    assert rows.shape[1] == len(batch.names)


def test_streaming_is_bit_identical_to_batch_when_blocks_end_together_or_apart() -> None:
    """Sum windows 4, 6, 10 and 15 end blocks alone and together (4 and 6 at 12, 6 and 10 at
    30, 6, 10 and 15 at 30, all four at 60); the builder scans only the largest ending block
    and points the others at its tail. Streamed rows, and rows after a warm-up, a state
    round trip or a copy at every offset of the first blocks, equal batch bit for bit (400
    rows: the 286-row history ring compacts on the way)."""
    spec = FeatureSpec(windows=(4, 6, 10), lags=(1, 5), quantile_windows=(4,),
                       seasonal_period=6, cross_windows=(6, 15))
    rng = np.random.default_rng(3)
    n = 400
    x = np.cumsum(rng.standard_normal((n, 3)), axis=0) + 5
    x[70:90] = x[70]  # flat stretch: min / max suffixes equal their prefixes
    x[0, 2], x[60:66, 2] = 0.0, -0.0  # centred on 0.0, -0.0 - 0.0 starts blocks at row 60
    ts = pd.date_range("2026-01-01", periods=n, freq="5min", tz="UTC")
    names = ["a", "b", "c"]
    batch = build_features(x, ts, names, spec).values
    rows = _stream(StreamingFeatureBuilder(spec, names), x, ts)
    np.testing.assert_array_equal(rows, batch)
    np.testing.assert_array_equal(np.signbit(rows), np.signbit(batch))
    for k in [*range(1, 32), 59, 60, 61, 119]:
        sb = StreamingFeatureBuilder(spec, names)
        sb.warm(x[:k], ts[:k])
        again = StreamingFeatureBuilder.from_state(*sb.get_state())
        twin = sb.copy()
        for b in (sb, again, twin):
            np.testing.assert_array_equal(_stream(b, x[k:k + 40], ts[k:k + 40]),
                                          batch[k:k + 40])


_ALWAYS = ("__value", "__mean_", "__std_", "__z_", "__diff_", "__roc_")
_FAMILIES = {"std": _ALWAYS, "minmax": ("__min_", "__max_"), "corr": ("__corr_",),
             "ratio": ("__per__",), "quant": ("__p10_", "__median_", "__p90_", "__robust_z_"),
             "season": ("__season_diff_",), "time": ("time__",)}


@pytest.mark.parametrize("family", sorted(_FAMILIES))
def test_builder_for_some_columns_gives_them_bit_for_bit_and_nan_elsewhere(family: str) -> None:
    """A caller that reads a few columns (the live scorer: its model's) gets exactly the
    full builder's numbers there, through block ends, a state round trip and a copy; the
    families it does not read are not computed (NaN)."""
    spec = FeatureSpec(windows=(4, 6, 10), lags=(1, 5), quantile_windows=(4,),
                       seasonal_period=6, cross_windows=(6, 15))
    names = ["a", "b", "c"]
    full = StreamingFeatureBuilder(spec, names)

    def of(fam: tuple[str, ...]) -> list[int]:
        return [i for i, nm in enumerate(full.names) if any(f in nm for f in fam)]

    cols = of(_FAMILIES[family])[:4]
    assert len(cols) >= 3
    part = StreamingFeatureBuilder(spec, names, cols)
    assert part.columns == tuple(sorted(cols))
    rng = np.random.default_rng(5)
    x = np.cumsum(rng.standard_normal((200, 3)), axis=0) + 5
    ts = pd.date_range("2026-01-01", periods=200, freq="5min", tz="UTC")
    want = _stream(full, x, ts)
    got = _stream(part, x[:97], ts[:97])
    again = StreamingFeatureBuilder.from_state(*part.get_state(), columns=cols)
    got = np.vstack([got, _stream(again.copy(), x[97:], ts[97:])])
    np.testing.assert_array_equal(got[:, cols], want[:, cols])
    # every other family is skipped wholesale; the value, window statistics and lags are
    # always built (cheap, and what the other families are made from)
    built = set(of(_FAMILIES[family])) | set(of(_ALWAYS))
    skipped = [i for i in range(len(full.names)) if i not in built]
    assert skipped and np.isnan(got[:, skipped]).all()
    assert not np.isnan(got[spec.min_history:][:, sorted(built)]).any()
    with pytest.raises(DataError, match="outside"):
        StreamingFeatureBuilder(spec, names, [len(full.names)])
