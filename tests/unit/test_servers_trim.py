"""benchmarks/servers_trim.py: the reference trimming measured in docs/model.md is what it says.

Its figures ("Measured 2026-12-02: trimming the reference set") mean something only if a
row's own outlier score ignores the rows within the exclusion zone (so a one-off incident of
many rows is an outlier among the training rows, and a state seen twice is not), the trim
drops exactly the top share, and the trimmed distances are the nearest kept row's.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.benchkit import load_benchmark


@pytest.fixture(scope="module")
def bench():
    yield from load_benchmark("servers_trim.py", "servers_trim")


def _series() -> np.ndarray:
    """200 rows of a 2-column cycle (period 20) with a one-off 6-row excursion at rows
    100-105, and a second visit to another state at rows 40-42 and 160-162."""
    t = np.arange(200)
    x = np.column_stack([np.sin(2 * np.pi * t / 20), np.cos(2 * np.pi * t / 20)])
    x[100:106] += [5.0, 5.0]
    x[40:43] += [0.0, -3.0]
    x[160:163] += [0.0, -3.0]
    return x


def test_the_exclusion_zone_makes_a_one_off_incident_an_outlier(bench):
    x = _series()
    views = [np.array([0]), np.array([1])]
    zoned = bench.own_outlier_scores(x, views, exclude=10)
    # every row of the one-off excursion outscores every other row ...
    assert zoned[100:106].min() > np.delete(zoned, np.arange(100, 106)).max()
    # ... while without a zone its rows are each other's neighbours
    plain = bench.own_outlier_scores(x, views, exclude=1)
    assert plain[101:105].max() < 0.1 * zoned[101:105].min()
    # a state visited twice, far apart, is its own neighbour: not an outlier
    assert zoned[40:43].max() < 0.1 * zoned[100:106].min()


def test_the_trim_drops_the_top_share_and_nothing_else(bench):
    scores = np.arange(1000, dtype=float)
    kept = bench.kept_rows(scores, 0.01)
    assert kept.sum() == 990 and not kept[-10:].any()
    assert bench.kept_rows(scores, 0.0).all()


def test_trimmed_distances_are_the_nearest_kept_rows(bench):
    rng = np.random.default_rng(0)
    ref, x = rng.normal(size=(300, 4)), rng.normal(size=(50, 4))
    masks = [np.ones(300, bool), rng.random(300) < 0.5]
    got = bench.nearest_kept(ref, x, masks)
    for k, m in enumerate(masks):
        d = np.sqrt(((x[:, None, :] - ref[m][None, :, :]) ** 2).sum(-1)).min(1) / 2.0
        np.testing.assert_allclose(got[k], d, rtol=1e-9, atol=1e-9)


def test_the_relative_distance_divides_by_the_nearest_rows_own_distance(bench):
    rng = np.random.default_rng(1)
    ref, x = rng.normal(size=(200, 3)), rng.normal(size=(20, 3))
    dist, arg = bench.nearest(ref, x, with_index=True)
    brute = np.sqrt(((x[:, None, :] - ref[None, :, :]) ** 2).sum(-1))
    np.testing.assert_array_equal(arg, brute.argmin(1))
    np.testing.assert_allclose(dist, brute.min(1) / np.sqrt(3), rtol=1e-9)
