"""The label-free ``pot`` threshold's risk is stated in time: the same normal points a day
above the threshold whatever the data's step (threshold.pot_risk)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.config.model import ThresholdConfig
from aws_anomaly.data import Dataset
from aws_anomaly.errors import ConfigError
from aws_anomaly.presets import default_model
from aws_anomaly.threshold import MAX_POT_RISK, parse_threshold, pot_risk


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
