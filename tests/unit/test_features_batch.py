"""Batch features: values against independent references, warm-up, errors, layout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.errors import DataError
from aws_anomaly.features import FeatureSpec, build_features, iter_features
from aws_anomaly.features import batch as batch_mod
from aws_anomaly.features.batch import iter_feature_columns, plan_for
from aws_anomaly.features.kernels import block_reduce, sort_columns, sorting_network
from aws_anomaly.features.spec import FeaturePlan

METRICS = ["cluster_cpu_request_ratio", "cluster_mem_request_ratio", "cluster_pod_ratio"]
SPEC = FeatureSpec(windows=(5, 12), lags=(1, 3), quantile_windows=(7,), seasonal_period=24,
                   cross_windows=(12,))


def _series(n: int, seed: int = 0) -> tuple[np.ndarray, pd.DatetimeIndex]:
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2026-03-02", periods=n, freq="5min", tz="UTC")
    day = np.sin(2 * np.pi * np.arange(n) / 288)[:, None]
    x = 0.5 + 0.2 * day + 0.02 * rng.standard_normal((n, 3))
    x[:, 2] = np.round(x[:, 2] * 100) / 100  # pod ratio moves in steps, often flat
    return x, ts


def _col(fm, name: str) -> np.ndarray:
    return fm.values[:, fm.names.index(name)]


def test_rolling_statistics_match_pandas_including_warm_up() -> None:
    x, ts = _series(300)
    fm = build_features(x, ts, METRICS, SPEC)
    for j, met in enumerate(METRICS):
        s = pd.Series(x[:, j])
        for w in (5, 12):
            roll = s.rolling(w, min_periods=1)
            np.testing.assert_allclose(_col(fm, f"{met}__mean_{w}"), roll.mean(), atol=1e-13)
            np.testing.assert_allclose(_col(fm, f"{met}__std_{w}"), roll.std(ddof=0),
                                       atol=1e-10)
            np.testing.assert_array_equal(_col(fm, f"{met}__min_{w}"), roll.min())
            np.testing.assert_array_equal(_col(fm, f"{met}__max_{w}"), roll.max())
            std = roll.std(ddof=0).to_numpy()
            mean = roll.mean().to_numpy()
            z = (x[:, j] - mean) / np.maximum(std, 1e-6 * (1 + np.abs(mean)))
            np.testing.assert_allclose(_col(fm, f"{met}__z_{w}"), z, rtol=1e-7, atol=1e-7)
        for q, qn in ((0.1, "p10"), (0.5, "median"), (0.9, "p90")):
            np.testing.assert_allclose(_col(fm, f"{met}__{qn}_7"),
                                       s.rolling(7, min_periods=1).quantile(q), atol=1e-13)


def test_lags_seasonal_ratio_and_correlation() -> None:
    x, ts = _series(300)
    fm = build_features(x, ts, METRICS, SPEC)
    cpu, pods = x[:, 0], x[:, 2]
    np.testing.assert_array_equal(_col(fm, f"{METRICS[0]}__value"), cpu)
    lag3 = np.concatenate([np.full(3, cpu[0]), cpu[:-3]])
    np.testing.assert_array_equal(_col(fm, f"{METRICS[0]}__diff_3"), cpu - lag3)
    np.testing.assert_allclose(_col(fm, f"{METRICS[0]}__roc_3"),
                               (cpu - lag3) / np.maximum(np.abs(lag3), 1e-3), rtol=1e-14)
    lag24 = np.concatenate([np.full(24, cpu[0]), cpu[:-24]])
    np.testing.assert_array_equal(_col(fm, f"{METRICS[0]}__season_diff_24"), cpu - lag24)
    np.testing.assert_allclose(_col(fm, f"{METRICS[0]}__per__{METRICS[2]}"),
                               cpu / np.maximum(np.abs(pods), 1e-3), rtol=1e-15)
    corr = pd.Series(cpu).rolling(12).corr(pd.Series(pods)).to_numpy()
    got = _col(fm, f"{METRICS[0]}__corr_12__{METRICS[2]}")
    flat = pd.Series(pods).rolling(12).std(ddof=0).to_numpy() <= 1e-6 * (1 + pods)
    ok = ~np.isnan(corr) & ~flat
    np.testing.assert_allclose(got[ok], corr[ok], atol=1e-9)
    assert np.all(np.abs(got) <= 1.0)


def test_robust_z_uses_median_and_p10_p90_range() -> None:
    x, ts = _series(100)
    fm = build_features(x, ts, METRICS, SPEC)
    win = x[50 - 6:51, 1]
    med = np.median(win)
    scale = (np.quantile(win, 0.9) - np.quantile(win, 0.1)) / 2.5631031310892007
    assert _col(fm, f"{METRICS[1]}__robust_z_7")[50] == pytest.approx((x[50, 1] - med) / scale,
                                                                     rel=1e-9)


def test_calendar_encodes_utc_time_of_day_and_weekday() -> None:
    ts = pd.DatetimeIndex(["2026-03-02T00:00Z", "2026-03-02T12:00Z", "2026-03-05T06:00Z"])
    fm = build_features(np.ones((3, 1)), ts, ["cpu"], FeatureSpec(windows=(2,)))
    hour = np.c_[_col(fm, "time__hour_sin"), _col(fm, "time__hour_cos")]
    np.testing.assert_allclose(hour, [[0, 1], [0, -1], [1, 0]], atol=1e-9)
    # 2026-03-02 is a Monday: the week angle starts there; Thursday 06:00 is 3.25 days on.
    week = np.c_[_col(fm, "time__week_sin"), _col(fm, "time__week_cos")]
    angle = 2 * np.pi * np.array([0, 0.5, 3.25]) / 7
    np.testing.assert_allclose(week, np.c_[np.sin(angle), np.cos(angle)], atol=1e-9)
    other_tz = build_features(np.ones((3, 1)), ts.tz_convert("Asia/Tokyo"), ["cpu"],
                              FeatureSpec(windows=(2,)))
    np.testing.assert_array_equal(other_tz.values, fm.values)


def test_constant_series_gives_zero_spread_and_finite_scores() -> None:
    ts = pd.date_range("2026-03-01", periods=400, freq="5min", tz="UTC")
    x = np.tile([0.1, 0.7, 0.0], (400, 1))
    fm = build_features(x, ts, METRICS)
    assert np.isfinite(fm.values).all()
    for met in METRICS:
        for w in (12, 288):
            assert np.all(_col(fm, f"{met}__std_{w}") == 0.0)
            assert np.all(_col(fm, f"{met}__z_{w}") == 0.0)
        assert np.all(_col(fm, f"{met}__robust_z_12") == 0.0)
    assert np.all(_col(fm, f"{METRICS[0]}__corr_36__{METRICS[1]}") == 0.0)


def test_ready_marks_rows_with_full_history() -> None:
    x, ts = _series(300)
    fm = build_features(x, ts, METRICS)
    assert fm.ready.dtype == bool
    assert not fm.ready[287] and fm.ready[288] and fm.ready.sum() == 300 - 288


def test_chunked_and_threaded_build_is_bit_identical(monkeypatch: pytest.MonkeyPatch) -> None:
    x, ts = _series(2000, seed=3)
    whole = build_features(x, ts, METRICS)
    monkeypatch.setattr(batch_mod, "CHUNK_ROWS", 97)  # chunk edges inside every window
    monkeypatch.setattr(batch_mod, "MAX_THREADS", 2)
    chunked = build_features(x, ts, METRICS)
    np.testing.assert_array_equal(chunked.values, whole.values)
    f_order = build_features(x, ts, METRICS, order="F")
    assert f_order.values.flags.f_contiguous and whole.values.flags.c_contiguous
    np.testing.assert_array_equal(f_order.values, whole.values)


def test_long_series_sums_stay_accurate() -> None:
    # Level 1e3 with noise 1e-3: a global cumulative sum would lose ~1e-7 here.
    n = 200_000
    rng = np.random.default_rng(5)
    x = 1000.0 + 1e-3 * rng.standard_normal((n, 1))
    ts = pd.date_range("2026-01-01", periods=n, freq="5min", tz="UTC")
    fm = build_features(x, ts, ["cpu"], FeatureSpec(windows=(288,), lags=(),
                                                   include_quantiles=False))
    for i in (n - 1, n // 2 + 17, 12345):
        win = x[i - 287:i + 1, 0]
        assert _col(fm, "cpu__mean_288")[i] == pytest.approx(win.mean(), rel=1e-15, abs=1e-12)
        assert _col(fm, "cpu__std_288")[i] == pytest.approx(win.std(), rel=1e-6)


def test_block_reduce_matches_direct_windows() -> None:
    rng = np.random.default_rng(2)
    a = rng.standard_normal((2, 53))
    for w in (1, 2, 5, 53, 60):
        for op, ref in ((np.add, np.sum), (np.minimum, np.min), (np.maximum, np.max)):
            got = block_reduce(a, w, op)
            want = np.array([[ref(row[max(0, i - w + 1):i + 1]) for i in range(53)]
                             for row in a])
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)


def test_empty_input_gives_empty_matrix() -> None:
    fm = build_features(np.empty((0, 3)), pd.DatetimeIndex([], tz="UTC"), METRICS)
    assert fm.values.shape == (0, len(fm.names)) and fm.ready.shape == (0,)


def test_groups_are_returned_per_metric() -> None:
    x, ts = _series(30)
    fm = build_features(x, ts, METRICS, SPEC)
    assert set(fm.groups) == {*METRICS, "time"}
    assert fm.names.index(f"{METRICS[1]}__mean_5") in fm.groups[METRICS[1]]


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda x, ts: (x[:, 0], ts), "2-D"),
    (lambda x, ts: (x[:, :2], ts), "2 columns but 3 metrics"),
    (lambda x, ts: (np.where(np.arange(10)[:, None] == 4, np.nan, x), ts),
     r"metric 'cluster_cpu_request_ratio' has 1 value\(s\) with NaN/inf, first at row 4 "
     r"\(2026-03-02T00:20:00\+00:00\)"),
    (lambda x, ts: (np.where((np.arange(10)[:, None] == 7) & (np.arange(3) == 2), np.inf, x), ts),
     "metric 'cluster_pod_ratio' .* row 7"),
    (lambda x, ts: (x * 1e101, ts), "magnitude above 1e"),
    (lambda x, ts: (x, ts[:9]), "9 timestamps for 10 rows"),
    (lambda x, ts: (x, ts[::-1]), "strictly increasing"),
    (lambda x, ts: (x, ts.insert(5, ts[4]).delete(6)), "strictly increasing"),
    (lambda x, ts: (x, list(ts)), "DatetimeIndex"),
    (lambda x, ts: ([["a"] * 3] * 10, ts), "numeric"),
])
def test_bad_input_raises_data_error(mutate, message: str) -> None:
    x, ts = _series(10)
    vals, stamps = mutate(x, ts)
    with pytest.raises(DataError, match=message):
        build_features(vals, stamps, METRICS, SPEC)


def test_bad_options_raise_data_error() -> None:
    x, ts = _series(10)
    with pytest.raises(DataError, match="order"):
        build_features(x, ts, METRICS, SPEC, order="K")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="FeatureSpec"):
        build_features(x, ts, METRICS, {"windows": [3]})  # type: ignore[arg-type]


def test_frame_labels_columns_and_rows() -> None:
    x, ts = _series(20)
    fm = build_features(x, ts, METRICS, SPEC)
    df = fm.frame(ts)
    assert list(df.columns) == list(fm.names) and df.index.equals(ts)
    np.testing.assert_array_equal(df.to_numpy(), fm.values)


@pytest.mark.parametrize("reuse", [False, True])
def test_iter_features_yields_the_build_features_rows(reuse: bool) -> None:
    x, ts = _series(1000, seed=9)
    whole = build_features(x, ts, METRICS).values
    got = np.empty_like(whole)
    spans = []
    for c0, c1, block in iter_features(x, ts, METRICS, chunk_rows=123, reuse=reuse):
        assert block.flags.c_contiguous and block.shape == (c1 - c0, whole.shape[1])
        got[c0:c1] = block
        spans.append((c0, c1))
    assert spans[0][0] == 0 and spans[-1][1] == 1000 and len(spans) == 9
    np.testing.assert_array_equal(got, whole)


def test_iter_features_validates_before_the_first_chunk() -> None:
    x, ts = _series(10)
    x[3, 1] = np.nan
    with pytest.raises(DataError, match="row 3"):
        iter_features(x, ts, METRICS)
    with pytest.raises(DataError, match="chunk_rows"):
        iter_features(x, ts, METRICS, chunk_rows=0)
    assert list(iter_features(np.empty((0, 3)), pd.DatetimeIndex([], tz="UTC"), METRICS)) == []


def _families(plan: FeaturePlan) -> list[np.ndarray]:
    """Each family's column positions (one array per family, windows and lags apart)."""
    fams = [plan.idx_value, plan.idx_ratio, plan.idx_calendar]
    fams += [row for kind in plan.idx_window.values() for row in kind]
    fams += [*plan.idx_corr, *plan.idx_diff, *plan.idx_roc, *plan.idx_season]
    fams += [plan.idx_quant[q, r] for q in range(len(plan.idx_quant)) for r in range(4)]
    return [f[f >= 0] for f in fams if (f >= 0).any()]


def test_iter_feature_columns_writes_the_columns_asked_for_bit_identical() -> None:
    x, ts = _series(1000, seed=4)
    whole = build_features(x, ts, METRICS, SPEC).values
    plan = plan_for(METRICS, SPEC)
    k = plan.n_features
    rng = np.random.default_rng(0)
    subsets = _families(plan) + [np.sort(rng.choice(k, size=s, replace=False))
                                 for s in (1, 3, 10, k // 2, k - 1)]
    assert sum(len(f) for f in _families(plan)) == k  # every column in one family
    for cols in subsets:
        got = np.full((k, len(x)), np.nan)
        for c0, c1, block in iter_feature_columns(x, ts, METRICS, SPEC, chunk_rows=97,
                                                  extra=2, columns=cols):
            assert block.shape == (k + 2, c1 - c0)
            got[cols, c0:c1] = block[cols]
        np.testing.assert_array_equal(got[cols], whole[:, cols].T)


def test_iter_feature_columns_skips_the_families_not_asked_for(
        monkeypatch: pytest.MonkeyPatch) -> None:
    x, ts = _series(500, seed=5)
    plan = plan_for(METRICS, SPEC)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a family nobody asked for was computed")

    for name in ("sparse_levels", "sparse_window", "finish_ratio", "calendar",
                 "finish_quantiles", "finish_corr"):
        monkeypatch.setattr(batch_mod, name, refuse)
    cols = np.r_[plan.idx_window["std"].ravel(), plan.idx_diff.ravel(), plan.idx_season.ravel()]
    cols = cols[cols >= 0]
    n = sum(c1 - c0 for c0, c1, _ in iter_feature_columns(x, ts, METRICS, SPEC, chunk_rows=128,
                                                           columns=cols))
    assert n == 500
    with pytest.raises(AssertionError, match="nobody asked"):  # the refusal is live
        list(iter_feature_columns(x, ts, METRICS, SPEC, columns=plan.idx_calendar))


@pytest.mark.parametrize(("columns", "message"), [
    ([0, 10_000], "feature position 10000 is outside 0..69"),
    ([-1], "feature position -1 is outside"),
    ([[0, 1]], "list of feature positions"),
    (["a"], "list of feature positions"),
])
def test_iter_feature_columns_refuses_bad_columns(columns: object, message: str) -> None:
    x, ts = _series(10)
    with pytest.raises(DataError, match=message):
        iter_feature_columns(x, ts, METRICS, SPEC, columns=columns)  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 12, 13, 16, 17])
def test_sorting_network_sorts_every_input(n: int) -> None:
    rng = np.random.default_rng(n)
    cols = [rng.integers(0, 3, size=400).astype(float) for _ in range(n)]  # many ties
    got = np.array(sort_columns(cols))
    np.testing.assert_array_equal(got, np.sort(np.array(cols), axis=0))
    assert all(0 <= i < j < n for i, j in sorting_network(n))


def test_quantiles_by_network_are_the_sorted_windows_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    x, ts = _series(700, seed=6)
    x[:, 1] = np.round(x[:, 1], 2)  # ties inside windows
    spec = FeatureSpec(windows=(5,), lags=(1,), quantile_windows=(4, 12, 16),
                       seasonal_period=24, cross_windows=())
    calls: list[int] = []

    def counted(cols: list[np.ndarray]) -> list[np.ndarray]:
        calls.append(len(cols))
        return sort_columns(cols)

    monkeypatch.setattr(batch_mod, "sort_columns", counted)
    net = build_features(x, ts, METRICS, spec).values
    assert set(calls) == {4, 12, 16}
    monkeypatch.setattr(batch_mod, "NETWORK_MAX_WINDOW", 0)  # every window sorted instead
    calls.clear()
    srt = build_features(x, ts, METRICS, spec).values
    assert not calls
    np.testing.assert_array_equal(net, srt)
