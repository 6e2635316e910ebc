"""benchmarks/servers_copula.py: the rank scaler keeps the order, is bounded inside the
training range, and (``extend``) keeps growing past it."""

from __future__ import annotations

import numpy as np

from tests.unit.benchkit import load_benchmark


def test_rank_scores_keep_order_and_extend_past_the_range() -> None:
    for mod in load_benchmark("servers_copula.py", "servers_copula"):
        rng = np.random.default_rng(0)
        ref = rng.standard_cauchy((2000, 2))  # heavy tails: what the scaler is for
        x = np.array([[0.0, 0.0], [1.0, 1.0], [ref[:, 0].max() + 5.0, ref[:, 1].min() - 5.0],
                      [ref[:, 0].max() + 50.0, ref[:, 1].min() - 50.0]])
        clip = mod.copula(ref, x, extend=False)
        ext = mod.copula(ref, x, extend=True)
        inside = mod.copula(ref, ref, extend=False)
        # monotone per column, bounded by the extreme normal score, centred on the median
        for j in range(2):
            order = np.argsort(ref[:, j], kind="stable")
            assert np.all(np.diff(inside[order, j]) >= 0)
        assert np.abs(inside).max() < 4.0 and abs(np.median(inside[:, 0])) < 0.01
        # past the range: clipped scores stop, extended ones go on growing by the distance
        assert clip[2, 0] == clip[3, 0] and clip[2, 1] == clip[3, 1]
        assert np.isclose(ext[3, 0] - ext[2, 0], 45.0) and np.isclose(ext[2, 1] - ext[3, 1], 45.0)
        np.testing.assert_array_equal(clip[:2], ext[:2])
