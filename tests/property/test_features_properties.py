"""Hypothesis properties of the features: causal, batch = streaming, finite, bounded input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from aws_anomaly.errors import DataError
from aws_anomaly.features import FeatureSpec, StreamingFeatureBuilder, build_features
from aws_anomaly.features.spec import MAX_ABS_VALUE

# Short windows so every family (warm-up, full windows, weekly lag) shows up in a few rows.
SPEC = FeatureSpec(windows=(2, 3, 5), lags=(1, 2), quantile_windows=(3, 4), seasonal_period=3,
                   include_weekly=True, cross_windows=(3, 5))
METRICS = ["a", "b", "c"]
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _ts(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2026-03-01T23:00Z", periods=n, freq="5min")


@st.composite
def series(draw: st.DrawFn, max_rows: int = 40, elements: st.SearchStrategy | None = None
           ) -> np.ndarray:
    """Series mixing random values, flat stretches and repeated levels."""
    n = draw(st.integers(1, max_rows))
    if elements is None:
        elements = st.floats(-1e3, 1e3, allow_nan=False, width=64)
    x = draw(arrays(np.float64, (n, 3), elements=elements))
    if n > 2 and draw(st.booleans()):
        i = draw(st.integers(0, n - 2))
        j = draw(st.integers(i + 1, n))
        x[i:j] = x[i]
    return x


@SETTINGS
@given(x=series(), data=st.data())
def test_no_look_ahead(x: np.ndarray, data: st.DataObject) -> None:
    n = len(x)
    t = data.draw(st.integers(0, n - 1))
    noise = data.draw(arrays(np.float64, (n - t - 1, 3),
                             elements=st.floats(-1e6, 1e6, allow_nan=False)))
    y = x.copy()
    y[t + 1:] = noise
    a = build_features(x, _ts(n), METRICS, SPEC).values
    b = build_features(y, _ts(n), METRICS, SPEC).values
    np.testing.assert_array_equal(a[: t + 1], b[: t + 1])
    # and a prefix alone gives the same rows
    c = build_features(x[: t + 1], _ts(n)[: t + 1], METRICS, SPEC).values
    np.testing.assert_array_equal(a[: t + 1], c)


@SETTINGS
@given(x=series(max_rows=60))
def test_batch_equals_streaming(x: np.ndarray) -> None:
    ts = _ts(len(x))
    batch = build_features(x, ts, METRICS, SPEC).values
    sb = StreamingFeatureBuilder(SPEC, METRICS)
    rows = np.array([sb.update(t, v) for t, v in zip(ts, x, strict=True)])
    np.testing.assert_allclose(rows, batch, rtol=1e-9, atol=1e-9)


@SETTINGS
@given(x=series(max_rows=30), split=st.integers(0, 30))
def test_warm_start_equals_batch(x: np.ndarray, split: int) -> None:
    ts = _ts(len(x))
    split = min(split, len(x))
    batch = build_features(x, ts, METRICS, SPEC).values
    sb = StreamingFeatureBuilder(SPEC, METRICS)
    sb.warm(x[:split], ts[:split])
    state, arrays_ = sb.get_state()
    sb = StreamingFeatureBuilder.from_state(state, arrays_)
    rows = [sb.update(t, v) for t, v in zip(ts[split:], x[split:], strict=True)]
    if rows:
        np.testing.assert_allclose(np.array(rows), batch[split:], rtol=1e-9, atol=1e-9)


@SETTINGS
@given(x=series(max_rows=30, elements=st.floats(-MAX_ABS_VALUE, MAX_ABS_VALUE,
                                                allow_nan=False)))
def test_finite_output_for_any_finite_input(x: np.ndarray) -> None:
    fm = build_features(x, _ts(len(x)), METRICS, SPEC)
    assert np.isfinite(fm.values).all()
    default = build_features(x, _ts(len(x)), METRICS)
    assert np.isfinite(default.values).all()


@SETTINGS
@given(level=st.floats(-1e6, 1e6, allow_nan=False), n=st.integers(1, 50))
def test_constant_series_has_zero_spread(level: float, n: int) -> None:
    fm = build_features(np.full((n, 3), level), _ts(n), METRICS, SPEC)
    assert np.isfinite(fm.values).all()
    for name, col in zip(fm.names, fm.values.T, strict=True):
        if "__std_" in name or "__z_" in name or "__corr_" in name or "__diff_" in name:
            assert np.all(col == 0.0), name


@pytest.mark.parametrize("bad", [1.5 * MAX_ABS_VALUE, -np.inf, np.nan])
def test_values_beyond_the_supported_range_raise(bad: float) -> None:
    x = np.zeros((4, 3))
    x[2, 1] = bad
    with pytest.raises(DataError, match=r"metric 'b' .* row 2"):
        build_features(x, _ts(4), METRICS, SPEC)
