"""benchmarks/servers_kinds.py: the feature-kind study measured in docs/model.md is what it
says.

Its figures ("Measured 2026-12-02 (H13)") mean something only if a kind found by its position
within a metric's columns is the feature the model names so, dropping a kind removes exactly
that kind's column of every metric, the view distance is rescaled by the count of the columns
left, the shipped subset gives the model's own view scores, and the fast pass (one pass for
every drop-one variant and reference subsample) agrees with the exact distance.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.benchkit import load_benchmark


@pytest.fixture(scope="module")
def bench():
    yield from load_benchmark("servers_kinds.py", "servers_kinds")


@pytest.fixture(scope="module")
def fitted(bench):
    """``default_model`` fit on the first 80 % of 5 days of the demo (the daily terms
    included), with the dump-like arrays the study reads and the model's own view scores of
    the last day's rows (not in the reference)."""
    from servers_thresholds import _view_scores

    from aws_anomaly.data import generate_demo
    from aws_anomaly.evaluation.split import chronological_split, concat
    from aws_anomaly.presets import default_model

    ds, _ = generate_demo(seed=3, days=5, clusters=1)
    sp = chronological_split(ds)
    hist = concat([sp.train, sp.validation])
    model = default_model(ds.step).fit(hist)
    det = model.detector_
    column_metric = np.full(len(model.columns_), -1, dtype=np.int64)
    for i, metric in enumerate(model.metrics_):
        column_metric[model.groups_.get(metric, [])] = i
    X, ready, _ = model._features(sp.test, hist, "test")
    x = model.constant_guard.blind(X[ready])
    d = {"ref": model.constant_guard.blind(np.asarray(det.reference_)),
         "lv": np.asarray(det.views_[0]), "sv": np.asarray(det.views_[1]),
         "column_metric": column_metric}
    return model, d, x, _view_scores(model, x)


def test_kinds_by_position_are_the_features_the_model_names(bench, fitted):
    model, d, _, _ = fitted
    names = np.asarray(model.feature_names_)
    for view, patterns in (("sv", bench.STATIONARY_PATTERNS), ("lv", bench.LEVEL_PATTERNS)):
        kinds = bench.column_kinds(d, view)
        got = bench.kind_patterns(names[d[view]])
        assert got == [patterns[k] for k in kinds], view
    assert len(set(bench.column_kinds(d, "sv").tolist())) == len(bench.STATIONARY_KINDS) == 16
    assert bench.kind_patterns(["cpu__season_diff_288__ewm_6_less_288", "cpu__robust_z_12"]) \
        == ["season_diff_ewm", "robust_z"]


def test_dropping_a_kind_removes_its_column_of_every_metric(bench, fitted):
    _, d, _, _ = fitted
    kinds = bench.column_kinds(d, "sv")
    metrics = np.unique(d["column_metric"][d["sv"]])
    every = set(range(16))
    for k in range(16):
        kept = bench.kept_columns(d, "sv", every - {k})
        gone = sorted(set(d["sv"].tolist()) - set(kept.tolist()))
        assert len(kept) == len(d["sv"]) - len(metrics)
        # one column a metric, each of kind k
        assert sorted(d["column_metric"][gone].tolist()) == sorted(metrics.tolist())
        assert set(kinds[np.isin(d["sv"], gone)].tolist()) == {k}


def test_the_shipped_subset_is_the_models_view_score(bench, fitted):
    _, d, x, views = fitted
    for i, view in enumerate(("lv", "sv")):
        every = set(bench.column_kinds(d, view).tolist())
        got = bench.view_distance(d["ref"], x, bench.kept_columns(d, view, every))
        np.testing.assert_allclose(got, views[:, i], rtol=1e-9, atol=1e-12)


def test_a_subset_is_rescaled_by_the_columns_left(bench, fitted):
    _, d, x, _ = fitted
    cols = bench.kept_columns(d, "sv", {0, 9, 13})
    ref, xs = d["ref"][::7][:, cols], x[:40][:, cols]
    brute = np.sqrt(((xs[:, None, :] - ref[None]) ** 2).sum(-1).min(1)) / np.sqrt(len(cols))
    got = bench.view_distance(d["ref"][::7], x[:40], cols)
    np.testing.assert_allclose(got, brute, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="no columns"):
        bench.view_distance(d["ref"], x, cols[:0])


def test_the_fast_pass_agrees_with_the_exact_distance(bench, fitted):
    _, d, x, _ = fitted
    every = frozenset(range(16))
    kp = bench.KindPass(d["ref"], x, d["sv"], bench.column_kinds(d, "sv"))
    idx = bench.subsample(len(d["ref"]), 500, 0)
    assert len(idx) == 500 and np.all(np.diff(idx) > 0)
    out, sub = kp.run(every, [frozenset({k}) for k in (1, 13)] + [frozenset({2, 3})], [idx])
    assert set(out) == {every, every - {1}, every - {13}, every - {2, 3}}
    for kinds, dist in out.items():
        exact = bench.view_distance(d["ref"], x, bench.kept_columns(d, "sv", kinds))
        np.testing.assert_allclose(dist, exact, rtol=1e-4, atol=1e-6)
    exact = bench.view_distance(d["ref"][idx], x, d["sv"])
    np.testing.assert_allclose(sub[0], exact, rtol=1e-4, atol=1e-6)
    # a kind that matters moves the distance
    assert np.max(np.abs(out[every - {13}] - out[every])) > 1e-3


def test_unequal_metrics_are_refused(bench, fitted):
    _, d, _, _ = fitted
    bad = dict(d, sv=d["sv"][:-1])
    with pytest.raises(ValueError, match="different column counts"):
        bench.column_kinds(bad, "sv")
