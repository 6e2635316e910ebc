"""benchmarks/demo_types.py: the flag-holding rule its docs table measures (docs/benchmarks.md,
"Demo seed 1234: where the F1 is lost") must hold a lasting shift and only that."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.benchkit import load_benchmark


@pytest.fixture(scope="module")
def bench():
    yield from load_benchmark("demo_types.py", "demo_types")


def _series(bench, n: int = 200, shift_at: int = 50, shift_end: int = 110) -> np.ndarray:
    """One day of look-back, then ``n`` rows of noise with a level shift (10 sigmas)."""
    rng = np.random.default_rng(0)
    day = bench.DAY_ROWS
    x = rng.normal(0.0, 0.01, (day + n, 2))
    x[day + shift_at:day + shift_end, 0] += 0.1
    return x


@pytest.mark.parametrize("seasonal", [False, True])
def test_a_flagged_edge_is_held_until_the_level_returns(bench, seasonal):
    x = _series(bench)
    flags = np.zeros(200, bool)
    flags[50] = True  # the edge, as the models flag it
    noise = np.full(2, 0.01)
    held = bench.hold_flags(x, flags, noise, seasonal=seasonal)
    assert held[50:110].all()
    assert not held[:50].any()
    assert held[110:].sum() <= 1  # released when the level returns (one noisy row at most)


def test_holding_stops_after_max_hold_and_needs_a_flag(bench):
    x = _series(bench)
    noise = np.full(2, 0.01)
    assert not bench.hold_flags(x, np.zeros(200, bool), noise, seasonal=False).any()
    flags = np.zeros(200, bool)
    flags[50] = True
    held = bench.hold_flags(x, flags, noise, seasonal=False, max_hold=10)
    assert held[50:61].all() and not held[61:].any()


def test_the_one_day_difference_does_not_hold_a_daily_ramp(bench):
    day = bench.DAY_ROWS
    t = np.arange(day + 200)
    ramp = 0.2 * np.sin(2 * np.pi * t / day)  # the same daily cycle every day
    x = np.column_stack([ramp, ramp])
    flags = np.zeros(200, bool)
    flags[20:40] = True  # flags on the ramp (a burst of another kind)
    noise = np.full(2, 0.01)
    assert bench.hold_flags(x, flags, noise, seasonal=False)[40:60].all()  # the raw level holds
    assert not bench.hold_flags(x, flags, noise, seasonal=True)[40:].any()
