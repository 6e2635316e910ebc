"""Hypothesis properties of the Calibrator: monotone, exact 1.0 at the threshold, FPR bound."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from aws_anomaly.calibration import Calibrator

# Scores on very different scales, with ties (small integer grids) and without.
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
grid = st.integers(min_value=-5, max_value=5).map(float)
scores = st.one_of(arrays(np.float64, st.integers(1, 60), elements=finite),
                   arrays(np.float64, st.integers(1, 60), elements=grid))
fractions = st.sampled_from([0.01, 0.05, 0.1, 0.25, 0.5])
SETTINGS = settings(max_examples=40, deadline=None)


@st.composite
def labelled(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    raw = draw(scores)
    y = draw(arrays(np.int64, raw.size, elements=st.integers(0, 1)))
    if y.all():
        y[0] = 0  # at least one normal point is required
    return raw, y


@st.composite
def fitted(draw: st.DrawFn) -> Calibrator:
    raw, y = draw(labelled())
    method = draw(st.sampled_from(["best_f1", "target_fpr", "contamination"]))
    frac = draw(fractions)
    use_y = method == "best_f1" or draw(st.booleans())
    return Calibrator(method, target_fpr=frac, contamination=frac).fit(raw, y if use_y else None)


@SETTINGS
@given(cal=fitted(), probe=arrays(np.float64, st.integers(1, 40), elements=finite))
def test_transform_is_monotone_and_finite(cal: Calibrator, probe: np.ndarray) -> None:
    probe = np.sort(np.r_[probe, cal.threshold_, cal.center_,
                          np.nextafter(cal.threshold_, -np.inf)])
    out = cal.transform(probe)
    assert np.isfinite(out).all()
    assert (out >= 0).all()
    assert (np.diff(out) >= 0).all()


@SETTINGS
@given(cal=fitted(), probe=arrays(np.float64, st.integers(1, 40), elements=finite))
def test_at_least_one_exactly_when_at_or_above_threshold(cal: Calibrator,
                                                        probe: np.ndarray) -> None:
    t = cal.threshold_
    assert cal.transform(np.array([t]))[0] == 1.0
    assert cal.transform(np.array([np.nextafter(t, -np.inf)]))[0] < 1.0
    np.testing.assert_array_equal(cal.transform(probe) >= 1.0, probe >= t)
    np.testing.assert_array_equal(cal.predict(probe), probe >= t)
    assert cal.threshold_ > cal.center_ and math.isfinite(cal.scale_)


@SETTINGS
@given(data=labelled(), target=fractions)
def test_target_fpr_realised_on_fitting_normals_is_at_most_target(data, target: float) -> None:
    raw, y = data
    cal = Calibrator("target_fpr", target_fpr=target).fit(raw, y)
    normal = raw[y == 0]
    realised = np.mean(normal >= cal.threshold_)
    assert realised <= target + 1e-12
    # and it is the lowest such threshold among the normal scores: one step lower (the
    # largest normal score below it) would exceed the target
    lower = normal[normal < cal.threshold_]
    if lower.size:
        assert np.mean(normal >= lower.max()) > target


@SETTINGS
@given(data=labelled())
def test_best_f1_is_optimal_over_distinct_thresholds(data) -> None:
    raw, y = data
    cal = Calibrator("best_f1").fit(raw, y)
    if cal.fallback_ is not None:
        assert cal.method_used_ == "target_fpr"
        return
    pos = y == 1
    f1s = {}
    for t in np.unique(raw):
        flag = raw >= t
        tp = np.sum(flag & pos)
        f1s[float(t)] = 2 * tp / (np.sum(flag) + np.sum(pos))
    best = max(f1s.values())
    assert cal.best_f1_ == best
    assert cal.threshold_ == max(t for t, f in f1s.items() if f == best)  # the higher tie
