"""benchmarks/servers_tod.py: the time-of-day neighbours measured in docs/model.md are what
it says.

Its figures ("Measured 2026-12-02 afternoon: time-of-day neighbours") mean something only if
each row's distance is to its nearest reference row within the window of its time of day
(across midnight too), a window as long as the day gives the unrestricted distance, and a
row whose window holds no reference row falls back to the nearest row overall.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.unit.benchkit import load_benchmark

DAY = 86_400.0


@pytest.fixture(scope="module")
def bench():
    yield from load_benchmark("servers_tod.py", "servers_tod")


def _brute(ref, ref_tod, x, x_tod, window):
    out = []
    for row, t in zip(x, x_tod, strict=True):
        gap = np.abs(ref_tod - t) % DAY
        ok = np.minimum(gap, DAY - gap) <= window
        if not ok.any():
            ok[:] = True
        out.append(np.sqrt(((ref[ok] - row) ** 2).sum(axis=1).min()))
    return np.asarray(out) / math.sqrt(ref.shape[1])


@pytest.mark.parametrize("window_h", [0.5, 2.0, 12.0])
def test_each_row_gets_its_nearest_row_within_its_window(bench, window_h):
    rng = np.random.default_rng(4)
    ref = rng.normal(size=(600, 5))
    ref_tod = rng.uniform(0, DAY, 600)
    x = rng.normal(size=(150, 5))
    x_tod = np.r_[rng.uniform(0, DAY, 146), [0.0, 30.0, DAY - 30.0, 43_200.0]]  # midnight
    got = bench.nearest_in_window(ref, ref_tod, x, x_tod, window_h * 3600.0)
    np.testing.assert_allclose(got, _brute(ref, ref_tod, x, x_tod, window_h * 3600.0),
                               rtol=1e-9, atol=1e-9)
    if window_h == 12.0:  # the whole day: the unrestricted distance
        full = np.sqrt(((x[:, None, :] - ref[None]) ** 2).sum(axis=2).min(axis=1)) / math.sqrt(5)
        np.testing.assert_allclose(got, full, rtol=1e-9, atol=1e-9)


def test_the_window_crosses_midnight_and_an_empty_window_falls_back(bench):
    ref = np.array([[0.0], [10.0]])
    ref_tod = np.array([DAY - 600.0, 43_200.0])  # 23:50 and noon
    x = np.array([[9.0], [1.0]])
    x_tod = np.array([300.0, 6 * 3600.0])  # 00:05 (23:50 is 15 min away); 06:00 (none)
    got = bench.nearest_in_window(ref, ref_tod, x, x_tod, 1800.0) * math.sqrt(1)
    # 00:05 may only use 23:50 (distance 9, not noon's 1); 06:00 has no row within 30 min
    np.testing.assert_allclose(got, [9.0, 1.0])


def test_a_row_alone_in_its_window_uses_every_row_even_when_its_bin_has_candidates(bench):
    ref = np.array([[0.0], [10.0]])
    ref_tod = np.array([1200.0, 43_200.0])  # 00:20 and noon
    x = np.array([[9.0]])
    # 00:00 with a 10-minute window: 00:20 is within the bin's reach (window + bin), not the
    # row's own window: the nearest overall (noon, distance 1)
    got = bench.nearest_in_window(ref, ref_tod, x, np.array([0.0]), 600.0)
    np.testing.assert_allclose(got, [1.0])
