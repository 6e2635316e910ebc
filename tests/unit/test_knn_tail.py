"""KNNDetector's tail term and the default model's use of it for many metrics (docs/model.md).

The term adds ``tail_weight x`` the mean over the views of ECOD's aggregate: per column not
constant over the reference, ``-log`` of a value's left / right tail probability under the
reference's empirical CDF (``(1 + count) / (n + 1)``) and the tail of the column's skewness
sign; per view the largest of the three tails' means over the ``ceil(sqrt(columns))`` largest
columns. It must be exactly that (batch, training scores, one row at a time), bounded, off at
weight 0, explained as part of the score, refused with one line when misconfigured, and on in
the default model only from ``WIDE_MIN_METRICS`` metrics (with the volatility excess: "the
terms for many metrics").
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.data import Dataset
from aws_anomaly.detectors import KNNDetector
from aws_anomaly.detectors.knn import _COARSE, _TailTable
from aws_anomaly.errors import ConfigError
from aws_anomaly.model import AnomalyModel
from aws_anomaly.presets import EXCESS_WEIGHT, TAIL_WEIGHT, WIDE_MIN_METRICS, default_model
from aws_anomaly.workflows import wide_terms_text

VIEWS = [[0, 1, 2, 3, 4], [4, 5, 6, 7, 8, 9]]


@pytest.fixture(scope="module")
def xz() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.standard_t(3, size=(400, 10))
    X[:, 4] = 0.0  # constant over the reference: no tail
    X[:, 7] = np.round(X[:, 7])  # ties
    Z = rng.standard_t(3, size=(50, 10)) * 1.5
    Z[:, 7] = np.round(Z[:, 7])
    Z[:5, 4] = 3.0  # the constant column moves: the distance sees it, the tail does not
    return X, Z


def naive_tail(X: np.ndarray, Z: np.ndarray, views: list[list[int]]) -> np.ndarray:
    """The term's definition, written out plainly (counts by comparison, loops)."""
    n = len(X)
    out = np.zeros(len(Z))
    for view in views:
        cols = [c for c in view if X[:, c].max() > X[:, c].min()]
        k = math.ceil(math.sqrt(len(cols)))
        for r, z in enumerate(Z):
            left, right, skew = [], [], []
            for c in cols:
                lo = -math.log((1 + np.sum(X[:, c] <= z[c])) / (n + 1))
                hi = -math.log((1 + np.sum(X[:, c] >= z[c])) / (n + 1))
                third = np.mean((X[:, c] - X[:, c].mean()) ** 3)
                left.append(lo)
                right.append(hi)
                skew.append(lo if third < 0 else hi)
            out[r] += max(np.mean(sorted(t)[-k:]) for t in (left, right, skew))
    return out / len(views)


def test_the_term_is_its_definition(xz):
    X, Z = xz
    plain = KNNDetector(views=VIEWS).fit(X)
    det = KNNDetector(views=VIEWS, tail_weight=0.5).fit(X)
    term = 0.5 * naive_tail(X, Z, VIEWS)
    np.testing.assert_allclose(det.score_samples(Z), plain.score_samples(Z) + term, rtol=1e-12)
    np.testing.assert_allclose(det.training_scores_,
                               plain.training_scores_ + 0.5 * naive_tail(X, X, VIEWS),
                               rtol=1e-12)
    # one row at a time (the live path; the few-row counts by bisection) gives the same term
    one = np.array([det.score_samples(Z[i:i + 1])[0] for i in range(len(Z))])
    one_plain = np.array([plain.score_samples(Z[i:i + 1])[0] for i in range(len(Z))])
    np.testing.assert_allclose(one - one_plain, term, rtol=1e-12)
    np.testing.assert_allclose(one, det.score_samples(Z), rtol=1e-12)
    # weight 0 is the plain distance, bit for bit
    off = KNNDetector(views=VIEWS, tail_weight=0.0).fit(X)
    np.testing.assert_array_equal(off.score_samples(Z), plain.score_samples(Z))
    np.testing.assert_array_equal(off.explain_samples(Z), plain.explain_samples(Z))


def test_bounded_beyond_the_reference(xz):
    X, _ = xz
    plain = KNNDetector(views=VIEWS).fit(X)
    det = KNNDetector(views=VIEWS, tail_weight=1.0).fit(X)
    far = np.full((2, 10), 1e3)
    far[1] = 1e6
    term = det.score_samples(far) - plain.score_samples(far)
    # every tail column beyond every reference row: log(n + 1), however far
    np.testing.assert_allclose(term, math.log(len(X) + 1), rtol=1e-9)
    # no column varies over the reference: no tail, the plain distance
    flat = np.ones((20, 3))
    rows = np.array([[1.0, 1.0, 1.0], [5.0, 1.0, 0.0]])
    for n_rows in (1, 2, len(rows)):
        np.testing.assert_array_equal(
            KNNDetector(tail_weight=1.0).fit(flat).score_samples(rows[:n_rows]),
            KNNDetector().fit(flat).score_samples(rows[:n_rows]))


def test_few_row_counts_are_searchsorted():
    rng = np.random.default_rng(4)
    sizes = (2, 3, 7, _COARSE - 1, _COARSE, _COARSE + 1, 3 * _COARSE, 3 * _COARSE + 5, 5000)
    for n in sizes:
        refs = [np.round(rng.normal(size=(n, 4)), 1), np.round(rng.normal(size=(n, 3)), 1)]
        refs[0][:2, 0] = [-1.0, 1.0]  # not constant, whatever the draw
        refs[1][:2, 0] = [-1.0, 1.0]
        tt = _TailTable.build(refs, [np.arange(4), np.arange(4, 7)])
        srt = tt.sorted
        assert srt.shape[0] >= 2
        x = np.round(rng.normal(size=(3, srt.shape[0])) * 2, 1)  # many ties
        x[0, 0], x[1, 1], x[2, 0] = srt[0, 0], srt[1, -1], -99.0  # the ends, below all
        x[2, 1] = 99.0  # above all
        at_most, below = tt.counts_few(x)
        for j in range(srt.shape[0]):
            np.testing.assert_array_equal(at_most[:, j], np.searchsorted(srt[j], x[:, j], "right"))
            np.testing.assert_array_equal(below[:, j], np.searchsorted(srt[j], x[:, j], "left"))


def test_explanation_is_the_score_split_over_columns(xz):
    X, Z = xz
    det = KNNDetector(views=VIEWS, tail_weight=0.5, excess=[1, 2], excess_weight=0.5).fit(X)
    for rows in (Z, Z[:1]):
        parts = det.explain_samples(rows)
        assert (parts >= 0).all()
        np.testing.assert_allclose(parts.sum(axis=1), det.score_samples(rows), rtol=1e-9)
    det = KNNDetector(views=VIEWS, tail_weight=1.0).fit(X)
    row = np.zeros((1, 10))
    row[0, 6] = 40.0  # far beyond training on column 6 only
    share = det.explain_samples(row)[0] / det.score_samples(row)[0]
    assert share.argmax() == 6 and share[6] > 0.5
    # a model's per-metric weights: the same parts summed by metric
    weights = np.zeros((10, 2))
    weights[:5, 0] = weights[5:, 1] = 1.0
    np.testing.assert_allclose(det.explain_samples(Z, weights), det.explain_samples(Z) @ weights,
                               rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("weight", [-1.0, float("nan"), "0.5", True])
def test_bad_weight_is_a_one_line_error(xz, weight):
    with pytest.raises(ConfigError, match=r"tail_weight=.* is not allowed") as err:
        KNNDetector(tail_weight=weight).fit(xz[0])
    assert "\n" not in str(err.value)


def _servers(n_metrics: int, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2026-01-05", periods=n, freq="5min", tz="UTC")
    t = np.arange(n)
    cols = {f"m{j}": 0.5 + 0.2 * np.sin(2 * np.pi * (t / 288 + j / n_metrics))
            + rng.normal(0, 0.02, n) for j in range(n_metrics)}
    return pd.DataFrame({"timestamp": ts, "entity": "srv", **cols})


def test_default_model_turns_it_on_from_the_metric_count():
    assert default_model("5min").detector_params == {
        "tail_weight": TAIL_WEIGHT, "excess_weight": EXCESS_WEIGHT,
        "wide_min_metrics": WIDE_MIN_METRICS}
    assert default_model("5min", detector_params={"tail_weight": 0}).detector_params == {
        "tail_weight": 0, "excess_weight": EXCESS_WEIGHT,
        "wide_min_metrics": WIDE_MIN_METRICS}  # a caller's laid over it
    assert default_model("5min", detector="lof").detector_params == {}
    n = 4 * 288 + 100
    wide = _servers(WIDE_MIN_METRICS, n, 1)
    wide.loc[4 * 288 + 50:, "m3"] += 0.3  # one metric of ten jumps
    data = Dataset.from_frame(wide)
    train, test = data.subset(rows=slice(0, 4 * 288)), data.subset(rows=slice(4 * 288, None))
    model = default_model(data.step).fit(train)
    det = model.detector_
    assert det.tail_weight == TAIL_WEIGHT and det.excess_weight == EXCESS_WEIGHT
    assert det.excess_.size == 2 * WIDE_MIN_METRICS  # the level view's volatility columns
    assert model.training_summary_["tail_weight"] == TAIL_WEIGHT
    assert model.training_summary_["excess_weight"] == EXCESS_WEIGHT
    assert wide_terms_text(model).startswith(
        f"on ({WIDE_MIN_METRICS} metrics, from {WIDE_MIN_METRICS}): tail {TAIL_WEIGHT:g} ")
    out = model.score(test, history=train, explain="flagged")
    assert out["is_anomaly"].iloc[50:].mean() > 0.5 >= out["is_anomaly"].iloc[:50].mean()
    flagged = out[out["is_anomaly"]]
    assert (flagged["top_metric"] == "m3").mean() > 0.8
    # the live stream gives the batch numbers
    scorer = model.stream("srv", history=train)
    metrics = list(model.metrics_)
    live = [scorer.update(row.timestamp, [getattr(row, m) for m in metrics]).anomaly_score
            for row in test.frame.itertuples()]
    np.testing.assert_allclose(live, out["anomaly_score"].to_numpy(), rtol=1e-9, atol=1e-12)


def test_under_the_metric_count_it_is_off(tmp_path):
    n = 4 * 288
    narrow = _servers(WIDE_MIN_METRICS, n, 2)
    for j in range(1, WIDE_MIN_METRICS - WIDE_MIN_METRICS // 2 + 1):
        narrow[f"m{j}"] = 1.0  # constant metrics do not count
    model = default_model("5min").fit(Dataset.from_frame(narrow))
    assert model.detector_.tail_weight == 0.0 and model.detector_.excess_weight == 0.0
    assert model.detector_.excess_.size == 0
    assert model.training_summary_["tail_weight"] == 0.0
    assert wide_terms_text(model).startswith(
        f"off ({WIDE_MIN_METRICS // 2} metrics not constant")
    # a model whose parameters do not mention them says nothing
    assert wide_terms_text(AnomalyModel("knn").fit(Dataset.from_frame(narrow))) is None
    off = default_model("5min", detector_params={"tail_weight": 0.0, "excess_weight": 0.0}
                        ).fit(Dataset.from_frame(narrow))
    np.testing.assert_array_equal(model.detector_.training_scores_,
                                  off.detector_.training_scores_)
    with pytest.raises(ConfigError, match=r"wide_min_metrics must be an integer >= 1, got 'x'"):
        default_model("5min", detector_params={"wide_min_metrics": "x"}).fit(
            Dataset.from_frame(narrow))


def test_saved_and_loaded_model_scores_the_same(tmp_path):
    data = Dataset.from_frame(_servers(WIDE_MIN_METRICS + 2, 4 * 288 + 60, 3))
    train, test = data.subset(rows=slice(0, 4 * 288)), data.subset(rows=slice(4 * 288, None))
    model = default_model(data.step).fit(train)
    assert model.detector_.tail_weight == TAIL_WEIGHT
    again = AnomalyModel.load(model.save(tmp_path / "m"))
    assert again.detector_.tail_weight == TAIL_WEIGHT
    # the sorted table is not saved: made on first use, or by prepare_live before a swap
    assert "tail" not in again.detector_.__dict__.get("_view_cache", {})
    again.prepare_live()
    assert "tail" in again.detector_.__dict__["_view_cache"]
    a = model.score(test, history=train, explain="all")
    b = again.score(test, history=train, explain="all")
    pd.testing.assert_frame_equal(a, b)


def test_the_servers_bench_keeps_the_ab():
    from aws_anomaly.evaluation import servers_bench

    step = pd.Timedelta("1min")
    for name, tail, excess in (("aws_default_narrow", 0.0, 0.0),
                               ("aws_default_excess", 0.0, EXCESS_WEIGHT),
                               ("aws_default_tail", TAIL_WEIGHT, 0.0)):
        spec = servers_bench.DETECTORS[name]
        assert spec.named_only
        assert name not in servers_bench._resolve(servers_bench.DETECTORS, None)
        params = spec.factory(**spec.params)._build(step).detector_params
        assert (params["tail_weight"], params["excess_weight"]) == (tail, excess)
