"""aws_anomaly.attribution: shares of the score per metric (the model's explanations).

The occlusion shares were moved out of model.py; these tests pin their arithmetic on
scoring functions whose answer is known, that cutting the rows into blocks changes nothing,
and that the model's shares are those of the plain one-detector-call-per-metric loop.
"""

from __future__ import annotations

import numpy as np
import pytest

from aws_anomaly.attribution import decomposed_shares, occlusion_shares
from aws_anomaly.data.generator import generate_demo
from aws_anomaly.evaluation.split import chronological_split
from aws_anomaly.model import AnomalyModel

GROUPS = {"a": [0, 2], "b": [1, 2], "c": []}  # column 2 is shared by a and b; c has none


def _sq(X: np.ndarray) -> np.ndarray:
    return (X ** 2).sum(axis=1)


def test_occlusion_shares_of_a_known_score() -> None:
    Xs = np.array([[3.0, 1.0, 0.0], [0.0, 2.0, 0.0], [1.0, 1.0, 2.0]])
    got = occlusion_shares(Xs, _sq(Xs), ["a", "b", "c"], GROUPS, np.zeros(3), _sq)
    # drops: row 0 a=9 b=1; row 1 a=0 b=4; row 2 a=1+4 b=1+4; c never has columns
    np.testing.assert_allclose(got, [[0.9, 0.1, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0]])


def test_no_single_metric_lowers_the_score_shares_by_squared_deviation() -> None:
    Xs = np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    flat = occlusion_shares(Xs, np.ones(2), ["a", "b", "c"], GROUPS, np.zeros(3),
                            lambda X: np.ones(len(X)))
    # row 0: deviations a=4, b=1; row 1: none anywhere -> equal shares
    np.testing.assert_allclose(flat, [[0.8, 0.2, 0.0], [1 / 3, 1 / 3, 1 / 3]])


def test_blocks_do_not_change_the_shares() -> None:
    rng = np.random.default_rng(0)
    Xs = rng.normal(size=(50, 3))
    med = rng.normal(size=3)
    whole = occlusion_shares(Xs, _sq(Xs), ["a", "b", "c"], GROUPS, med, _sq)
    calls: list[int] = []

    def counted(X: np.ndarray) -> np.ndarray:
        calls.append(len(X))
        return _sq(X)

    cut = occlusion_shares(Xs, _sq(Xs), ["a", "b", "c"], GROUPS, med, counted, block_rows=14)
    np.testing.assert_array_equal(whole, cut)
    assert calls == [14] * 7 + [2]  # 7 rows of both occluded metrics per call
    assert occlusion_shares(Xs[:0], _sq(Xs[:0]), ["a"], GROUPS, med, _sq).shape == (0, 1)


def test_decomposed_shares() -> None:
    parts = np.array([[1.0, 1.0, 2.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(decomposed_shares(parts, ["a", "b", "c"], GROUPS),
                               [[0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]])


@pytest.mark.parametrize("detector", ["ocsvm", "iforest"])
def test_model_shares_are_the_per_metric_loop(detector: str) -> None:
    ds, _ = generate_demo(clusters=1, days=6, seed=1)
    split = chronological_split(ds)
    model = AnomalyModel(detector, {"random_state": 0}).fit(split.train, split.validation)
    X, ready, _ = model._features(ds, None, "test")
    X = X[ready][::7]
    raw = model._raw(X)
    got = model._contributions(X, raw)
    drops = np.zeros_like(got)
    for j, metric in enumerate(model.metrics_):  # one detector call per metric
        cols = model.groups_[metric]
        Xo = X.copy()
        Xo[:, cols] = model.median_[cols]
        drops[:, j] = np.clip(raw - model._raw(Xo), 0.0, None)
    ok = drops.sum(axis=1) > 0
    assert ok.mean() > 0.5
    np.testing.assert_allclose(got[ok], drops[ok] / drops[ok].sum(axis=1, keepdims=True),
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.sum(axis=1), 1.0)


def test_one_row_path_equals_the_block_path() -> None:
    rng = np.random.default_rng(1)
    Xs = rng.normal(size=(40, 3))
    Xs[5] = 0.0  # occluding lowers nothing: the squared-deviation fallback, one row too
    med = np.zeros(3)
    whole = occlusion_shares(Xs, _sq(Xs), ["a", "b", "c"], GROUPS, med, _sq)
    calls: list[int] = []

    def counted(X: np.ndarray) -> np.ndarray:
        calls.append(len(X))
        return _sq(X)

    for i in range(len(Xs)):
        one = occlusion_shares(Xs[i:i + 1], _sq(Xs[i:i + 1]), ["a", "b", "c"], GROUPS, med,
                               counted)
        np.testing.assert_array_equal(one, whole[i:i + 1])
    assert calls.count(2) == len(Xs) + 1  # one call per row; the fallback row scores again


def test_one_row_path_follows_the_metrics_and_groups_it_is_given() -> None:
    """The one-row path caches where the occluded copies differ per ``groups`` object: a
    different metric order, column count, groups dict or negative column positions must
    still give the block path's shares (bit for bit, signs of zeros included)."""
    rng = np.random.default_rng(2)
    med = rng.normal(size=4)
    cases = [
        (["a", "b", "c"], GROUPS, 3),
        (["c", "b", "a"], GROUPS, 3),  # same groups object, other metric order
        (["a", "b", "c"], GROUPS, 4),  # same groups, wider rows
        (["a", "b"], {"a": [-1, 0], "b": [1]}, 4),  # -1 is column 3, as Xo[:, -1] reads it
        (["x", "a"], {"a": [2], "x": [0, 1, 3]}, 4),
    ]
    for metrics, groups, k in cases:
        Xs = rng.normal(size=(12, k)) * 3
        Xs[4] = med[:k]  # occluding lowers nothing: the fallback, which scores again
        whole = occlusion_shares(Xs, _sq(Xs), metrics, groups, med[:k], _sq, block_rows=1)
        for i in range(len(Xs)):
            one = occlusion_shares(Xs[i:i + 1], _sq(Xs[i:i + 1]), metrics, groups, med[:k],
                                   _sq)
            np.testing.assert_array_equal(one, whole[i:i + 1])
            np.testing.assert_array_equal(np.signbit(one), np.signbit(whole[i:i + 1]))
        assert (whole[:, [j for j, m in enumerate(metrics) if groups.get(m)]] > 0).any()


def test_shares_of_one_row_are_the_batch_shares_bit_for_bit() -> None:
    # a live point takes a shorter path: the same numbers as the same row in a batch
    from aws_anomaly.attribution import shares_of

    rng = np.random.default_rng(0)
    parts = rng.random((400, 7)) ** 3
    parts[::50] = 0.0  # rows with nothing to share: equal shares
    many = shares_of(parts)
    np.testing.assert_array_equal(np.vstack([shares_of(parts[i:i + 1]) for i in range(400)]),
                                  many)
    np.testing.assert_array_equal(many[0], np.full(7, 1 / 7))
