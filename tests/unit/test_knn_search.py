"""benchmarks/knn_search.py: the A/B of the live search with and without the projection
compares like with like (the same detector, only the first pass differs) and checks the
one-row scores against the batch."""

from __future__ import annotations

import numpy as np
import pytest

from aws_anomaly.detectors.knn import KNNDetector
from tests.unit.benchkit import load_benchmark


@pytest.fixture(scope="module")
def bench():
    yield from load_benchmark("knn_search.py", "knn_search_bench")


def test_ab_times_a_wide_view_with_and_without_its_projection(bench) -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3200, 4)) @ rng.standard_normal((4, 30)) \
        + 0.05 * rng.standard_normal((3200, 30))
    det = KNNDetector(views=[[0, 1, 2], list(range(3, 30))]).fit(X[:3000])
    r = bench.ab_times(det, X[3000:], repeat=1)
    assert r["views"] == [3, 27]
    assert r["axes"][0] is None and 0 < r["axes"][1] <= 13
    assert r["one_row_vs_batch_rel"] < 1e-12
    assert r["projected_p50_us"] > 0 and r["full_p50_us"] > 0
    off = bench.without_projection(det)
    assert off._projection(1) is None and det._projection(1) is not None
    rows = X[3000:3040]
    # the same nearest rows: the distances agree up to the float64 products' summation order
    np.testing.assert_allclose([off._scores_few(rows[i:i + 1])[0] for i in range(40)],
                               [det._scores_few(rows[i:i + 1])[0] for i in range(40)], rtol=1e-12)
