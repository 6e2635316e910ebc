"""The label-free ``pot`` threshold's risk is stated in time: the same normal points a day
above the threshold whatever the data's step (threshold.pot_risk); and the thresholds
``threshold.fit_thresholds`` fits from held-out scores (the rule resolved, one per entity)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.config.model import ThresholdConfig
from aws_anomaly.data import Dataset
from aws_anomaly.errors import ConfigError
from aws_anomaly.presets import default_model
from aws_anomaly.threshold import (
    AUTO_MAX_FPR,
    ENTITY_MIN_EXCEEDANCES,
    MAX_POT_RISK,
    calibrate,
    calibrator_for,
    fit_thresholds,
    parse_threshold,
    pot_risk,
)


def _series(step: str, days: float, seed: int = 0) -> Dataset:
    ts = pd.date_range("2026-03-01", periods=int(pd.Timedelta(f"{days}D") / pd.Timedelta(step)),
                       freq=step, tz="UTC")
    rng = np.random.default_rng(seed)
    day = np.sin(2 * np.pi * (ts - ts[0]).total_seconds() / 86400.0)
    frame = pd.DataFrame({"timestamp": ts, "entity": "c1",
                          "cpu": 0.5 + 0.2 * day + 0.02 * rng.standard_normal(len(ts)),
                          "mem": 0.6 + 0.1 * day + 0.02 * rng.standard_normal(len(ts))})
    return Dataset.from_frame(frame)


def test_risk_per_point_follows_the_step_with_a_ceiling() -> None:
    day = pd.Timedelta("1D")
    for step in ("30s", "1min", "5min", "10min"):
        # the same expected normal points a day above the threshold: 1.44
        assert pot_risk(step) * (day / pd.Timedelta(step)) == pytest.approx(1.44)
    assert pot_risk("1h") == pot_risk("1D") == MAX_POT_RISK
    with pytest.raises(ConfigError, match="positive"):
        pot_risk("0s")
    assert parse_threshold("pot") == {"method": "pot"}
    assert parse_threshold("pot:0.002") == {"method": "pot", "risk": 0.002}
    assert ThresholdConfig().risk is None


@pytest.mark.parametrize(("step", "days"), [("5min", 4), ("1min", 1.5)])
def test_default_model_takes_the_risk_of_its_data_step(step: str, days: float) -> None:
    ds = _series(step, days)
    model = default_model(ds.step, history=f"{days}D").fit(ds)
    assert model.calibration_used_ == {"method": "pot", "risk": pot_risk(step)}
    # a risk the caller names is kept
    named = default_model(ds.step, history=f"{days}D",
                          calibration={"method": "pot", "risk": 2e-4}).fit(ds)
    assert named.calibration_used_["risk"] == 2e-4
    assert named.calibrator_.threshold_ >= model.calibrator_.threshold_


# ------------------------------------------------------------------ fit_thresholds
def _fleet(rows: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    raw = np.r_[rng.normal(0, 1, rows), rng.normal(0, 3, rows), rng.normal(0, 1, 200)]
    return raw, np.repeat(["quiet", "noisy", "short"], [rows, rows, 200])


def test_each_entity_with_enough_rows_gets_its_own_pot_threshold() -> None:
    raw, ent = _fleet()
    th = fit_thresholds({"method": "pot"}, raw, None, pd.Timedelta("5min"), entities=ent)
    assert th.rule == {"method": "pot", "risk": 0.005}
    # 200 rows x 0.005 = 1 expected exceedance < the minimum: "short" keeps the pooled one
    assert ENTITY_MIN_EXCEEDANCES > 200 * 0.005
    assert sorted(th.per_entity) == ["noisy", "quiet"]
    assert calibrator_for(th.pooled, th.per_entity, "short") is th.pooled
    assert calibrator_for(th.pooled, th.per_entity, "unseen") is th.pooled
    # each row calibrated by its own entity's threshold, whole array or one entity at a time
    rows = calibrate(th.pooled, th.per_entity, raw, ent)
    for name in ("quiet", "noisy", "short"):
        own = calibrate(th.pooled, th.per_entity, raw[ent == name], name)
        np.testing.assert_array_equal(rows[ent == name], own)
    # each entity's own threshold flags about its risk of its own rows; the pooled one would
    # flag the noisy entity far more and the quiet one far less
    for name in ("quiet", "noisy"):
        assert np.mean(rows[ent == name] >= 1.0) < 0.02
    pooled = th.pooled.transform(raw)
    assert np.mean(pooled[ent == "noisy"] >= 1.0) > 2 * np.mean(rows[ent == "noisy"] >= 1.0)


def test_no_per_entity_thresholds_for_one_entity_other_rules_or_when_off() -> None:
    raw, ent = _fleet()
    step = pd.Timedelta("1min")
    one = np.full(len(raw), "a")
    assert fit_thresholds({"method": "pot"}, raw, None, step, entities=one).per_entity == {}
    assert fit_thresholds({"method": "pot"}, raw, None, step, entities=ent,
                          per_entity=False).per_entity == {}
    th = fit_thresholds({"method": "target_fpr", "target_fpr": 0.01}, raw, None, step,
                        entities=ent)
    assert th.per_entity == {} and th.rule == {"method": "target_fpr", "target_fpr": 0.01}


def test_auto_and_best_f1_resolve_by_the_labels() -> None:
    rng = np.random.default_rng(4)
    raw = np.r_[rng.normal(0, 1, 2000), rng.normal(6, 1, 40)]
    y = np.r_[np.zeros(2000, bool), np.ones(40, bool)]
    step = pd.Timedelta("5min")
    assert fit_thresholds({"method": "auto"}, raw, y, step).rule == {"method": "best_f1"}
    assert fit_thresholds({"method": "auto"}, raw, None, step).rule == {
        "method": "target_fpr", "target_fpr": 0.01}
    with pytest.raises(ConfigError, match=r"best-f1 needs labelled anomalies.*train data"):
        fit_thresholds({"method": "best_f1"}, raw, None, step, calibrated_on="train")
    # anomalies inside the normal tail: best F1 sits low, auto caps the validation FPR
    mixed = np.r_[rng.normal(0, 1, 2000), rng.normal(1.5, 1, 400)]
    ym = np.r_[np.zeros(2000, bool), np.ones(400, bool)]
    th = fit_thresholds({"method": "auto"}, mixed, ym, step)
    fpr = float(np.mean(th.pooled.transform(mixed[~ym]) >= 1.0))
    assert fpr <= AUTO_MAX_FPR + 1e-9
