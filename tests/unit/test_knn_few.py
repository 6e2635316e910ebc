"""The nearest-neighbour detector's few-row path (a float32 first pass, then the candidates in
float64) gives the batch path's distances: the live path scores one row a call with it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from aws_anomaly.detectors.knn import _FEW, KNNDetector


def _one_by_one(det: KNNDetector, X: np.ndarray) -> np.ndarray:
    return np.array([det.score_samples(X[i:i + 1])[0] for i in range(len(X))])


def _two_views(seed: int, rows: int, excess: bool) -> tuple[np.ndarray, KNNDetector]:
    """``rows`` standard normal rows of 10 columns and a detector fit on the first 400, with a
    3-column and a 7-column view (and the excess term on the first two columns, if asked)."""
    X = np.random.default_rng(seed).standard_normal((rows, 10))
    det = KNNDetector(views=[[0, 1, 2], [3, 4, 5, 6, 7, 8, 9]], excess=[0, 1] if excess else None,
                      excess_weight=0.25 if excess else 0.0).fit(X[:400])
    return X, det


@pytest.mark.parametrize("views", [None, [[0, 1, 2], [3, 4, 5, 6, 7, 8, 9]]])
def test_one_row_calls_give_the_batch_scores(views) -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((600, 10))
    det = KNNDetector(views=views, excess=[0, 1] if views else None,
                      excess_weight=0.25 if views else 0.0).fit(X[:400])
    batch = det.score_samples(X[400:])  # 200 rows: the blocked float64 path
    assert len(X[400:]) > _FEW
    np.testing.assert_allclose(_one_by_one(det, X[400:]), batch, rtol=1e-12)
    if views is None:  # a training row is at distance 0 from its own copy
        assert det.score_samples(X[:1])[0] == pytest.approx(0.0, abs=1e-6)


def test_near_ties_far_from_the_origin_still_find_the_nearest_row() -> None:
    # float32 cannot tell these reference rows apart (norms ~ 4,500, spacing ~ 1e-3), so the
    # first pass keeps many candidates and the float64 check must still pick the nearest
    rng = np.random.default_rng(1)
    ref = 1000.0 + 1e-3 * rng.standard_normal((500, 20))
    det = KNNDetector().fit(ref)
    queries = 1000.0 + 1e-3 * rng.standard_normal((30, 20))
    # the float64 expansion |x|^2 + |t|^2 - 2 x.t is exact to ~ d 2^-52 (|x|^2 + |t|^2) on
    # either path; a wrong nearest row would be off by ~1e-6 (the rows' spacing squared)
    tol = 4 * 20 * 2.0 ** -52 * 2 * 20 * 1000.0 ** 2
    for q in queries:
        exact = ((ref - q) ** 2).sum(axis=1).min()
        few = det.score_samples(q[None, :])[0] ** 2
        batch = det.score_samples(np.vstack([q] * (_FEW + 1)))[0] ** 2
        assert abs(few - exact) <= tol and abs(batch - exact) <= tol


def test_values_beyond_float32_fall_back_to_float64() -> None:
    rng = np.random.default_rng(2)
    det = KNNDetector().fit(rng.standard_normal((100, 3)))
    row = np.array([[1e39, 0.0, 0.0]])
    got = det.score_samples(row)[0]
    assert np.isfinite(got)
    assert got == pytest.approx(det.score_samples(np.vstack([row] * (_FEW + 1)))[0], rel=1e-12)
    assert got == pytest.approx(1e39, rel=1e-9)


@pytest.mark.parametrize("width", [3, 20])  # 20: the projected first pass
def test_a_huge_row_against_tiny_reference_rows_falls_back_to_float64(width: int) -> None:
    # 2 |x| T + T^2 is small here, but x itself does not fit in float32
    rng = np.random.default_rng(8)
    scale = np.r_[np.ones(3), 1e-3 * np.ones(width - 3)]
    det = KNNDetector().fit(1e-30 * rng.standard_normal((3000, width)) * scale)
    row = np.zeros((1, width))
    row[0, 1] = 1e50
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow on the way
        got = det.score_samples(row)[0]
    assert got == pytest.approx(det.score_samples(np.vstack([row] * (_FEW + 1)))[0], rel=1e-12)
    assert got == pytest.approx(1e50, rel=1e-9)


def test_the_float32_copies_are_not_saved() -> None:
    rng = np.random.default_rng(3)
    det = KNNDetector().fit(rng.standard_normal((50, 4)))
    det.score_samples(rng.standard_normal((1, 4)))
    assert "_view_cache" in det.__dict__
    state = det.__getstate__()
    assert "_view_cache" not in state and "_tmax" not in state


@pytest.mark.parametrize("excess", [False, True])
def test_one_row_explanations_are_the_batch_ones(excess: bool) -> None:
    X, det = _two_views(4, 500, excess)
    batch = det.explain_samples(X[400:])
    one = np.vstack([det.explain_samples(X[i:i + 1]) for i in range(400, 500)])
    np.testing.assert_allclose(one, batch, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("excess", [False, True])
@pytest.mark.parametrize("rows", [1, _FEW, _FEW + 3])
def test_score_explained_is_the_two_calls(excess: bool, rows: int) -> None:
    # the live path scores a row and explains it from the same search: the same numbers as
    # score_prepared then explain_samples, bit for bit, and the search runs once
    X, det = _two_views(5, 420, excess)
    Q = 3.0 * X[400:400 + rows]
    calls = []
    real = det._nearest_few

    def counted(x: np.ndarray, view: int) -> tuple[float, int]:
        calls.append(view)
        return real(x, view)

    det._nearest_few = counted  # type: ignore[method-assign]
    scores, explain = det.score_explained(Q)
    parts = explain()
    searched = len(calls)
    del det._nearest_few
    np.testing.assert_array_equal(scores, det.score_prepared(Q))
    np.testing.assert_array_equal(parts, det.explain_samples(Q))
    if rows <= _FEW:  # one search per row and view, shared by the explanation
        assert searched == rows * 2


def _low_rank(rng: np.random.Generator, n: int, d: int, rank: int, noise: float) -> np.ndarray:
    return rng.standard_normal((n, rank)) @ rng.standard_normal((rank, d)) \
        + noise * rng.standard_normal((n, d))


def test_a_wide_view_reads_its_leading_axes_and_finds_the_same_nearest_rows() -> None:
    rng = np.random.default_rng(5)
    X = _low_rank(rng, 3500, 40, 6, 0.05)
    det = KNNDetector(views=[[0, 1, 2], list(range(3, 40))]).fit(X[:3000])
    assert det._projection(0) is None  # 3 columns: a full pass costs as little
    proj = det._projection(1)
    assert proj is not None and proj[1].shape[1] <= 37 // 2
    queries = np.vstack([X[3000:], _low_rank(rng, 50, 40, 6, 3.0)])  # near and far rows
    batch = det.score_samples(queries)
    np.testing.assert_allclose(_one_by_one(det, queries), batch, rtol=1e-12)
    ref = det.reference_[:, 3:]
    for q in queries[:100]:
        exact = ((ref - q[3:]) ** 2).sum(axis=1)
        assert det._nearest_few(q[3:], 1)[1] == int(exact.argmin())


def test_the_projection_keeps_near_ties_and_exact_duplicates() -> None:
    # many reference rows at almost the same distance: the bound must keep them all
    rng = np.random.default_rng(6)
    base = _low_rank(rng, 300, 24, 3, 0.01)
    X = np.vstack([base + 1e-7 * rng.standard_normal(base.shape) for _ in range(10)])
    det = KNNDetector().fit(X)
    assert det._projection(0) is not None
    for q in base[:40] + 1e-8 * rng.standard_normal((40, 24)):
        d2, i = det._nearest_few(q, 0)
        exact = ((det.reference_ - q) ** 2).sum(axis=1)
        assert d2 == pytest.approx(exact.min(), abs=1e-9)
        assert exact[i] == pytest.approx(exact.min(), abs=1e-9)


def test_spread_variance_keeps_the_full_pass() -> None:
    rng = np.random.default_rng(7)
    det = KNNDetector().fit(rng.standard_normal((2500, 20)))  # no leading axes
    assert det._projection(0) is None
    q = rng.standard_normal((1, 20))
    assert det.score_samples(q)[0] == pytest.approx(
        det.score_samples(np.vstack([q] * (_FEW + 1)))[0], rel=1e-12)


@pytest.mark.parametrize("excess", [False, True])
def test_weighted_explanations_are_the_parts_times_the_weights(excess: bool) -> None:
    # a model passes its metrics' column membership: each metric's part in one step
    X, det = _two_views(9, 500, excess)
    weights = np.zeros((10, 3))
    weights[[0, 3, 4], 0] = 1.0
    weights[[1, 5, 6, 7], 1] = 1.0
    weights[[2, 7, 8, 9], 2] = 1.0  # column 7 in two groups
    want = det.explain_samples(X[400:]) @ weights
    np.testing.assert_allclose(det.explain_samples(X[400:], weights), want, rtol=1e-12)
    for i in range(400, 420):  # the live path: the score's own search, the same numbers
        _, explain = det.score_explained(X[i:i + 1])
        np.testing.assert_array_equal(explain(weights), det.explain_samples(X[i:i + 1], weights))
        np.testing.assert_array_equal(explain(), det.explain_samples(X[i:i + 1]))


def test_prepare_live_builds_the_first_points_tables_and_changes_no_score() -> None:
    """What the first live point would build (each view's float32 table, the wide view's
    projection) is built by prepare_live, so that point builds nothing; the scores are a
    fresh detector's. A detector whose live path is not the few-row search builds nothing."""
    rng = np.random.default_rng(6)
    X = _low_rank(rng, 3100, 40, 6, 0.05)
    views = [[0, 1, 2], list(range(3, 40))]
    det = KNNDetector(views=views).fit(X[:3000])
    fresh = KNNDetector(views=views).fit(X[:3000])
    det.prepare_live()
    built = set(det.__dict__["_view_cache"])
    assert {("f32", 0), ("f32", 1), ("proj", 0), ("proj", 1)} <= built
    assert det.__dict__["_view_cache"][("proj", 1)] is not None
    got = _one_by_one(det, X[3000:])
    assert set(det.__dict__["_view_cache"]) == built  # the live points built nothing more
    np.testing.assert_array_equal(got, _one_by_one(fresh, X[3000:]))
    three = KNNDetector(n_neighbors=3).fit(X[:3000])
    three.prepare_live()
    assert not three.__dict__.get("_view_cache")
