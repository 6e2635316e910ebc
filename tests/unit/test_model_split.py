"""The parts split out of ``model.py`` stay reachable where callers found them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import aws_anomaly.model as model_module
from aws_anomaly import presets
from aws_anomaly.errors import ConfigError
from aws_anomaly.features import FeatureSpec
from aws_anomaly.features.persist import PersistFilter, PersistState, persist_plan, with_persist
from aws_anomaly.features.select import level_columns, select_columns
from aws_anomaly.features.spec import FeaturePlan


def test_default_model_moved_to_presets_and_still_resolves_from_model() -> None:
    assert model_module.default_model is presets.default_model
    assert model_module.DEFAULT_WINDOWS is presets.DEFAULT_WINDOWS
    from aws_anomaly.model import default_model

    assert default_model("5min").detector == "knn"


def test_unknown_model_attribute_still_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = model_module.no_such_name  # type: ignore[attr-defined]


def test_column_roles_come_from_the_plan_not_from_names() -> None:
    # metrics whose names look like feature families: a correlation column ending in
    # "__value" or "__std_3" is not a level feature, whatever a name pattern would say
    spec = FeatureSpec(windows=(3, 6), lags=(1,), include_quantiles=False,
                       include_seasonal=False, cross_windows=(6,))
    plan = FeaturePlan.build(["a", "value", "x__std_3"], spec)
    names = plan.names
    corr = names.index("a__corr_6__value")
    level = level_columns(plan)
    assert corr not in level and names.index("a__per__value") in level
    cols, views = select_columns(plan, "stationary", plan.n_features)
    assert corr in cols and names.index("value__value") not in cols
    cols, views = select_columns(plan, "level", plan.n_features)
    assert [names[c] for c in cols] == [
        f"{m}__{f}" for m in ("a", "value", "x__std_3") for f in ("value", "std_3", "std_6")]
    cols, views = select_columns(plan, "hybrid", plan.n_features + 2)  # + 2 appended columns
    assert views is not None and cols[-2:] == [plan.n_features, plan.n_features + 1]
    assert [names[cols[j]] for j in views[0]][:3] == ["a__value", "a__std_3", "a__std_6"]
    with pytest.raises(ConfigError, match="feature_set must be one of"):
        select_columns(plan, "levels", plan.n_features)


def test_persist_filter_in_chunks_gives_the_bits_of_the_whole_series() -> None:
    spec = FeatureSpec(windows=(3,), lags=(1,), include_quantiles=False, seasonal_period=5)
    plan = FeaturePlan.build(["cpu", "mem"], spec)
    terms = persist_plan(plan, (2, 4), baseline=9)
    assert [t.src for t in terms] == [int(i) for i in plan.idx_season.ravel()] * 2
    rng = np.random.default_rng(0)
    values = rng.normal(size=(101, plan.n_features))
    whole = with_persist(values, terms)
    k = plan.n_features
    chunked = np.zeros_like(whole)
    chunked[:, :k] = values
    filt = PersistFilter(terms, k)
    for start in range(0, 101, 17):
        filt.fill(chunked[start:start + 17])
    np.testing.assert_array_equal(chunked, whole)
    # the streaming state follows the same recursion, one row at a time
    state = PersistState(terms)
    row_out = np.empty(len(terms))
    for i in range(101):
        state.step(values[i], row_out)
    np.testing.assert_allclose(row_out, whole[-1, k:], rtol=0, atol=1e-12)
    src = values[:, terms[0].src]
    expected = pd.Series(src).ewm(alpha=terms[0].a, adjust=False).mean() \
        - pd.Series(src).ewm(alpha=terms[0].b, adjust=False).mean()
    np.testing.assert_allclose(whole[:, k], expected.to_numpy(), atol=1e-12)


def test_batch_fast_path_matches_the_whole_series_path_and_any_chunk_size() -> None:
    from aws_anomaly.data.generator import generate_demo
    from aws_anomaly.evaluation.split import chronological_split
    from aws_anomaly.model import AnomalyModel
    from aws_anomaly.scoring import score_series

    ds, _ = generate_demo(clusters=2, days=4, seed=3)
    split = chronological_split(ds)
    spec = FeatureSpec(windows=(6, 24), lags=(1,), seasonal_period=96, cross_windows=(24,))
    model = AnomalyModel("robust", spec=spec, persist=(3, 12), persist_baseline=48,
                         feature_set="hybrid").fit(split.train, split.validation)
    hist = split.train
    data = split.validation
    # the whole-series path: every feature of every row stacked, then scored at once
    X, ready, _ = model._features(data, hist, "t")
    want = model.score_transformed(X, ready, "all")
    for chunk in (7, 100, 16_384):
        got = score_series(model, data, hist, "all", "t", chunk_rows=chunk)
        np.testing.assert_array_equal(got[3], ready)
        np.testing.assert_array_equal(got[0], want[0])  # robust: row by row, exact
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_allclose(got[2], want[2], rtol=0, atol=1e-15)
    out = model.score(data, history=hist)
    assert out["is_anomaly"].sum() > 0 and out["expected_" + ds.metrics[0]].notna().any()


@pytest.mark.parametrize("w", [3, 4, 36, 37])
def test_band_medians_are_those_of_pandas_and_numpy(w: int) -> None:
    from aws_anomaly.features.band import _past_median, _season

    rng = np.random.default_rng(w)
    v = np.round(rng.normal(size=3000), 1)  # ties
    v[:50] = np.nan  # a season's first period has no lag
    want = np.full(len(v), np.nan)
    want[w:] = pd.Series(v).rolling(w, min_periods=w).median().to_numpy()[w - 1:-1]
    np.testing.assert_array_equal(_past_median(v, w), want)
    v[700] = np.nan  # NaN inside: the windows holding it are NaN
    want[w:] = pd.Series(v).rolling(w, min_periods=w).median().to_numpy()[w - 1:-1]
    np.testing.assert_array_equal(_past_median(v, w), want)
    x = rng.normal(size=500)
    lags = np.full((500, 4), np.nan)
    for j in range(1, 5):
        lags[j * w:, j - 1] = x[: 500 - j * w]
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        expected = np.nanmedian(lags, axis=1)
    np.testing.assert_array_equal(_season(x, w, 4), expected)
