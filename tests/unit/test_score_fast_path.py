"""The batch scorer's shortcuts give the numbers of the plain computation, bit for bit.

``AnomalyModel.score`` builds only the feature columns the model reads, scales them
feature-major and transposes once, and computes a seasonal metric's plain (season-less) band
only where the seasonal one is not defined yet. Each is compared here with the computation
it replaces: every feature of every row, the row-major scaler, both baselines on every row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.data.generator import generate_demo
from aws_anomaly.evaluation.split import chronological_split
from aws_anomaly.features import FeatureSpec
from aws_anomaly.features.band import Band, BandSpec, _baseline, band_arrays, fit_band
from aws_anomaly.model import AnomalyModel
from aws_anomaly.scaling import Scaler

SPEC = FeatureSpec(windows=(6, 24), lags=(1, 3), quantile_windows=(6,), seasonal_period=96,
                   cross_windows=(24,))


@pytest.mark.parametrize("feature_set", ["stationary", "all", "level", "hybrid"])
def test_score_equals_every_feature_of_every_row_then_scored(feature_set: str) -> None:
    ds, _ = generate_demo(clusters=1, days=5, seed=4)
    split = chronological_split(ds)
    model = AnomalyModel("ocsvm", {"random_state": 0}, spec=SPEC, persist=(3, 12),
                         persist_baseline=48, feature_set=feature_set).fit(split.train,
                                                                           split.validation)
    # the plain path: the spec's every column built, persistence appended, row-major scaling
    X, ready, _ = model._features(ds, None, "t")
    want_score, want_flag, want_contrib = model.score_transformed(X, ready, "flagged")
    out = model.score(ds)
    assert want_flag.sum() >= 3  # flagged rows and their shares are compared too
    np.testing.assert_array_equal(out["anomaly_score"].to_numpy(), want_score)
    np.testing.assert_array_equal(out["is_anomaly"].to_numpy(), want_flag)
    got_contrib = out[[f"contrib_{m}" for m in model.metrics_]].to_numpy()
    np.testing.assert_array_equal(got_contrib, want_contrib)
    # the top metric (taken by position in Arrow) is the plain object-array construction
    top = np.where(want_contrib.sum(axis=1) > 0,
                   np.asarray(model.metrics_, dtype=object)[want_contrib.argmax(axis=1)], "")
    pd.testing.assert_series_equal(out["top_metric"],
                                   pd.Series(pd.array(top, dtype="str"), name="top_metric"))


def _band_every_row(values: np.ndarray, band: Band) -> tuple[np.ndarray, ...]:
    """The band's definition computed in full: both baselines of every metric on every row."""
    n, m = values.shape
    yhat, sig = np.full((n, m), np.nan), np.full((n, m), np.nan)
    for j in range(m):
        x = values[:, j]
        yp, lp = _baseline(x, 0, band.spec)
        y, s = yp, np.fmax(lp, band.sigma_plain[j])
        if band.period[j]:
            ys, ls = _baseline(x, band.period[j], band.spec)
            use = np.isfinite(ys) & np.isfinite(ls)
            y = np.where(use, ys, yp)
            s = np.where(use, np.fmax(ls, band.sigma[j]), s)
        yhat[:, j], sig[:, j] = y, np.where(np.isfinite(y), s, np.nan)
    w = band.spec.width
    return yhat, yhat - w * sig, yhat + w * sig


@pytest.mark.parametrize("rows", [40, 96 + 30, 96 + 2 * 12 - 1, 96 + 2 * 12, 96 + 2 * 12 + 1,
                                  2000])
def test_band_skips_only_the_plain_rows_nobody_reads(rows: int) -> None:
    rng = np.random.default_rng(rows)
    t = np.arange(3000)
    x = np.c_[0.5 + 0.3 * np.sin(2 * np.pi * t / 96) + 0.02 * rng.normal(size=t.size),
              0.4 + 0.05 * rng.normal(size=t.size)]
    band = fit_band([x[:1500]], BandSpec(window=12, periods=(96,)))
    assert band.period == (96, 0)  # one seasonal metric, one without a season
    got = band_arrays(x[:rows], band)
    for g, w in zip(got, _band_every_row(x[:rows], band), strict=True):
        np.testing.assert_array_equal(g, w)
    assert np.isfinite(got[0][:, 0]).sum() == max(0, rows - 12)


@pytest.mark.parametrize(("clip", "unclipped"), [(None, ()), (3.0, ()), (3.0, (1, 4))])
def test_scaler_transform_columns_is_transform_of_the_transpose(
        clip: float | None, unclipped: tuple[int, ...]) -> None:
    rng = np.random.default_rng(1)
    train = rng.normal(size=(500, 7)) * [1, 2, 3, 4, 5, 6, 0]  # a constant column too
    sc = Scaler("robust", clip=clip, unclipped=unclipped).fit(train)
    cols = rng.normal(scale=20.0, size=(7, 3000))  # feature-major, far out: clipping matters
    want = sc.transform(cols.T.copy())
    out = np.empty((3000, 7))
    got = sc.transform_columns(cols.copy(), out=out)
    assert got is out and out.flags.c_contiguous
    np.testing.assert_array_equal(got, want)
    if clip is not None:
        assert (np.abs(np.delete(got, list(unclipped), axis=1)) <= clip).all()
        assert not unclipped or (np.abs(got[:, list(unclipped)]) > clip).any()
