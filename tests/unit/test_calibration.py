"""Calibrator: thresholds, the 1.0 map, fallbacks, persistence, PR curve."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_recall_curve

from aws_anomaly.calibration import (
    Calibrator,
    fpr_at_threshold,
    pr_curve,
    threshold_for_fraction,
)
from aws_anomaly.errors import ConfigError, DataError, ModelFileError, NotFittedError


@pytest.fixture()
def labelled() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    normal = rng.normal(size=2000)
    anomalies = rng.normal(loc=3.5, size=60)
    raw = np.r_[normal, anomalies]
    y = np.r_[np.zeros(2000, int), np.ones(60, int)]
    return raw, y


def _brute_force_best_f1(raw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    best = (-1.0, -math.inf)
    for t in np.unique(raw):
        flag = raw >= t
        tp, fp, fn = np.sum(flag & (y == 1)), np.sum(flag & (y == 0)), np.sum(~flag & (y == 1))
        f1 = 2 * tp / (2 * tp + fp + fn)
        if f1 > best[0] or (f1 == best[0] and t > best[1]):
            best = (f1, t)
    return best


def test_best_f1_matches_brute_force(labelled) -> None:
    raw, y = labelled
    raw = np.round(raw, 1)  # ties
    cal = Calibrator("best_f1").fit(raw, y)
    f1, t = _brute_force_best_f1(raw, y)
    assert cal.threshold_ == t
    assert cal.best_f1_ == pytest.approx(f1, abs=1e-12)
    assert cal.best_f1_ == pytest.approx(f1_score(y, raw >= t), abs=1e-12)
    assert cal.fallback_ is None and cal.method_used_ == "best_f1"
    assert cal.center_ == pytest.approx(np.median(raw[y == 0]))


def test_best_f1_ties_go_to_the_higher_threshold() -> None:
    raw = np.array([0.0, 0.5, 1.0, 2.0, 3.0, 4.0])
    y = np.array([0, 0, 1, 0, 0, 1])
    # t=4: TP1 FP0 P2 -> 2/3; t=1: TP2 FP2 -> 4/6 = 2/3: a tie, the higher one must win.
    cal = Calibrator("best_f1").fit(raw, y)
    assert cal.best_f1_ == pytest.approx(2 / 3)
    assert cal.threshold_ == 4.0


def test_best_f1_needs_labels() -> None:
    with pytest.raises(DataError, match="needs labels y"):
        Calibrator("best_f1").fit(np.arange(10.0))


def test_best_f1_without_positives_falls_back_to_target_fpr() -> None:
    raw = np.arange(1000.0)
    cal = Calibrator("best_f1", target_fpr=0.01).fit(raw, np.zeros(1000, int))
    assert cal.method_used_ == "target_fpr"
    assert "no anomalies" in cal.fallback_
    assert cal.threshold_ == 990.0
    assert fpr_at_threshold(raw, cal.threshold_) <= 0.01


def test_all_equal_scores_fall_back_and_stay_sane() -> None:
    raw = np.full(50, 0.7)
    y = np.r_[np.zeros(45, int), np.ones(5, int)]
    cal = Calibrator("best_f1").fit(raw, y)
    assert "all 50 scores are equal" in cal.fallback_
    assert cal.threshold_ > 0.7 and cal.center_ == 0.7
    out = cal.transform(np.array([0.7, 0.7, 0.71, 100.0]))
    assert np.isfinite(out).all()
    assert out[0] == 0.0 and out[2] >= 1.0
    for method in ("target_fpr", "contamination"):
        c = Calibrator(method).fit(raw)
        assert c.transform(np.array([0.7]))[0] == 0.0
        assert not c.predict(raw).any()


def test_scores_that_do_not_separate_labels_fall_back() -> None:
    rng = np.random.default_rng(1)
    raw = np.r_[rng.normal(size=500), rng.normal(loc=-3, size=20)]  # anomalies score LOW
    y = np.r_[np.zeros(500, int), np.ones(20, int)]
    cal = Calibrator("best_f1").fit(raw, y)
    assert cal.method_used_ == "target_fpr"
    assert "do not separate" in cal.fallback_
    assert cal.threshold_ > cal.center_


def test_all_anomalous_labels_raise() -> None:
    with pytest.raises(DataError, match="all 3 points are labelled anomalous"):
        Calibrator("target_fpr").fit([1.0, 2.0, 3.0], [1, 1, 1])


def test_target_fpr_uses_normal_points_only_when_labelled(labelled) -> None:
    raw, y = labelled
    with_y = Calibrator("target_fpr", target_fpr=0.02).fit(raw, y)
    without_y = Calibrator("target_fpr", target_fpr=0.02).fit(raw)
    assert fpr_at_threshold(raw, with_y.threshold_, y) <= 0.02
    assert fpr_at_threshold(raw, with_y.threshold_, y) > 0.015  # as low as the target allows
    assert fpr_at_threshold(raw, without_y.threshold_) <= 0.02
    # the anomalies' high scores push the label-free threshold up
    assert without_y.threshold_ > with_y.threshold_


def test_contamination_flags_at_most_that_fraction_without_labels(labelled) -> None:
    raw, _ = labelled
    cal = Calibrator("contamination", contamination=0.03).fit(raw)
    flagged = cal.predict(raw).mean()
    assert 0.025 < flagged <= 0.03


def test_threshold_for_fraction_handles_ties_and_tiny_inputs() -> None:
    assert threshold_for_fraction(np.array([5.0]), 0.01) == np.nextafter(5.0, np.inf)
    # 7 of 100 allowed despite 0.07 * 100 = 7.000000000000001
    assert threshold_for_fraction(np.arange(100.0), 0.07) == 93.0
    tied = np.r_[np.zeros(90), np.ones(10)]
    t = threshold_for_fraction(tied, 0.05)  # the top 10% tie: none may be flagged
    assert t > 1.0 and np.mean(tied >= t) == 0.0


def test_transform_maps_center_to_zero_threshold_to_one(labelled) -> None:
    raw, y = labelled
    cal = Calibrator("best_f1").fit(raw, y)
    t, c = cal.threshold_, cal.center_
    below = np.nextafter(t, -np.inf)
    out = cal.transform(np.array([c - 10, c, (c + t) / 2, below, t, t + (t - c)]))
    assert out[0] == 0.0 and out[1] == 0.0
    assert out[2] == pytest.approx(0.5)
    assert out[3] < 1.0 and out[4] == 1.0
    assert out[5] == pytest.approx(2.0)
    np.testing.assert_array_equal(cal.predict(raw), cal.transform(raw) >= 1.0)


def test_transform_keeps_shape_handles_inf_and_rejects_nan(labelled) -> None:
    raw, y = labelled
    cal = Calibrator("best_f1").fit(raw, y)
    assert cal.transform(np.zeros((2, 3))).shape == (2, 3)
    assert cal.transform(3.0).shape == ()
    top = np.finfo(np.float64).max
    np.testing.assert_array_equal(cal.transform(np.array([np.inf, -np.inf])), [top, 0.0])
    with pytest.raises(DataError, match="1 NaN value"):
        cal.transform(np.array([0.0, np.nan]))


def test_to_dict_round_trips_through_json(labelled) -> None:
    raw, y = labelled
    for method in ("best_f1", "target_fpr", "contamination"):
        cal = Calibrator(method).fit(raw, y)
        again = Calibrator.from_dict(json.loads(json.dumps(cal.to_dict())))
        assert again.threshold_ == cal.threshold_ and again.center_ == cal.center_
        np.testing.assert_array_equal(again.transform(raw), cal.transform(raw))
        assert again.method_used_ == cal.method_used_ and again.fallback_ == cal.fallback_
        assert repr(again) == repr(cal)


@pytest.mark.parametrize("mutate", [
    lambda d: d.pop("threshold"),
    lambda d: d.update(format="pickle"),
    lambda d: d.update(version=99),
    lambda d: d.update(threshold="high"),
    lambda d: d.update(center=10.0),
    lambda d: d["params"].update(method="magic"),
])
def test_from_dict_rejects_bad_state(mutate, labelled) -> None:
    raw, y = labelled
    state = Calibrator("best_f1").fit(raw, y).to_dict()
    mutate(state)
    with pytest.raises(ModelFileError):
        Calibrator.from_dict(state)


def test_pr_curve_matches_sklearn(labelled) -> None:
    raw, y = labelled
    raw = np.round(raw, 1)  # plenty of ties
    p, r, t = pr_curve(raw, y)
    sp, sr, st = precision_recall_curve(y, raw)
    np.testing.assert_allclose(p, sp)
    np.testing.assert_allclose(r, sr)
    np.testing.assert_array_equal(t, st)
    with pytest.raises(DataError, match="no anomalies"):
        pr_curve(raw, np.zeros_like(y))


@pytest.mark.parametrize(("params", "match"), [
    ({"method": "median"}, "method='median' is not allowed; use one of 'best_f1'"),
    ({"method": "target_fpr", "target_fpr": 0.0}, r"target_fpr=0.0 is not allowed.*\(0, 0.5\]"),
    ({"method": "contamination", "contamination": 0.9}, "contamination=0.9 is not allowed"),
])
def test_bad_parameters_raise_config_error(params: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Calibrator(**params).fit(np.arange(10.0))


@pytest.mark.parametrize(("raw", "y", "match"), [
    ([], None, "non-empty 1-D"),
    ([[1.0, 2.0]], None, "non-empty 1-D"),
    ([1.0, np.nan], None, "1 NaN/inf value"),
    ([1.0, 2.0], [0, 2], "0 \\(normal\\) / 1 \\(anomaly\\)"),
    ([1.0, 2.0], [0, 1, 0], "y has shape \\(3,\\), expected \\(2,\\)"),
])
def test_bad_inputs_raise_data_error(raw, y, match: str) -> None:
    with pytest.raises(DataError, match=match):
        Calibrator("target_fpr").fit(raw, y)


def test_unfitted_use_raises() -> None:
    for method in ("transform", "predict", "to_dict"):
        args = () if method == "to_dict" else ([1.0],)
        with pytest.raises(NotFittedError, match=f"before {method}"):
            getattr(Calibrator(), method)(*args)


# -- peaks over threshold ----------------------------------------------------------------------

def test_pot_extrapolates_a_known_tail() -> None:
    """Exponential and Pareto tails: the fitted threshold lands on the true 1 - risk quantile,
    beyond what an empirical quantile of the same sample can resolve."""
    rng = np.random.default_rng(1)
    exp = rng.exponential(size=5000)
    cal = Calibrator("pot", risk=1e-4).fit(exp)
    assert cal.fallback_ is None
    assert abs(cal.threshold_ - np.log(1e4)) < 1.0          # true quantile 9.21
    pareto = rng.pareto(3.0, size=20000) + 1.0               # P(X > x) = x ** -3
    thr = Calibrator("pot", risk=1e-3).fit(pareto).threshold_
    assert 7.0 < thr < 14.0                                  # true quantile 10.0
    # At most about `risk` of new data from the same law lands above it.
    fresh = rng.exponential(size=200000)
    assert np.mean(fresh >= cal.threshold_) < 5e-4


def test_pot_falls_back_and_round_trips() -> None:
    few = np.array([0.1, 0.2, 0.3, 0.4, 0.5] * 4)
    cal = Calibrator("pot").fit(few)
    assert cal.fallback_ is not None and "empirical" in cal.fallback_
    assert cal.threshold_ > cal.center_
    back = Calibrator.from_dict(cal.to_dict())
    assert (back.method, back.risk, back.pot_level) == ("pot", 1e-3, 0.98)
    assert back.threshold_ == cal.threshold_
    with pytest.raises(ConfigError, match="risk"):
        Calibrator("pot", risk=0.5).fit(few)
