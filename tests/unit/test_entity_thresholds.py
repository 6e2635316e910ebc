"""Per-entity POT thresholds (``AnomalyModel(entity_thresholds=True)``): each entity held to
the same risk on its own held-out scores; batch, stream, live state and a saved bundle agree."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.data import Dataset
from aws_anomaly.errors import ConfigError
from aws_anomaly.features import FeatureSpec
from aws_anomaly.live import LiveState
from aws_anomaly.model import AnomalyModel

SPEC = FeatureSpec(windows=(6, 24), lags=(1,), include_quantiles=False, include_seasonal=False,
                   cross_windows=(24,))
RISK = 0.02  # 200 normal held-out rows expect 4 points above: enough for an own threshold (3)


def _frame(n: int, seed: int, start: str = "2026-01-01") -> pd.DataFrame:
    """Two entities of the same shape; 'loud' has heavy-tailed noise, 'calm' Gaussian."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range(start, periods=n, freq="5min", tz="UTC")
    parts = []
    for name, noise in (("calm", rng.normal(size=(n, 2))),
                        ("loud", rng.standard_t(2, size=(n, 2)))):
        parts.append(pd.DataFrame({"timestamp": ts, "entity": name,
                                   "cpu": 0.5 + 0.05 * noise[:, 0],
                                   "mem": 0.4 + 0.05 * noise[:, 1]}))
    return pd.concat(parts, ignore_index=True)


def _model(own: bool) -> AnomalyModel:
    return AnomalyModel("knn", spec=SPEC, feature_set="all", persist=(), persist_baseline=None,
                        calibration={"method": "pot", "risk": RISK}, calibration_holdout=0.15,
                        band=None, entity_thresholds=own)


@pytest.fixture(scope="module")
def data() -> tuple[Dataset, Dataset]:
    train = Dataset.from_frame(_frame(1600, 0))
    later = _frame(1800, 1).groupby("entity", sort=False).tail(200)  # follows train
    later["timestamp"] = later["timestamp"] + (train.frame["timestamp"].max()
                                               - later["timestamp"].min()
                                               + pd.Timedelta("5min"))
    return train, Dataset.from_frame(later.reset_index(drop=True))


@pytest.fixture(scope="module")
def models(data) -> dict[bool, AnomalyModel]:
    train, _ = data
    return {own: _model(own).fit(train) for own in (False, True)}


def test_each_entity_gets_its_own_threshold_at_the_same_risk(models) -> None:
    pooled, own = models[False], models[True]
    assert pooled.entity_calibrators_ == {}
    assert sorted(own.entity_calibrators_) == ["calm", "loud"]
    assert own.training_summary_["entity_thresholds"] == ["calm", "loud"]
    thr = {e: c.threshold_ for e, c in own.entity_calibrators_.items()}
    # the heavy-tailed entity's scores reach further: its threshold is higher
    assert thr["loud"] > pooled.calibrator_.threshold_ > thr["calm"]
    assert own.calibrator_for("calm") is own.entity_calibrators_["calm"]
    assert own.calibrator_for("new-cluster") is own.calibrator_  # unseen: pooled
    assert own.calibrator_for(None) is own.calibrator_


def test_flag_rates_are_shared_out_by_entity(models, data) -> None:
    train, later = data
    rates = {}
    for flag_own, m in models.items():
        s = m.score(later, history=train, explain="none")
        rates[flag_own] = s.groupby("entity")["is_anomaly"].mean()
    # pooled: the loud entity takes most of the alerts; per entity: closer to even
    assert rates[False]["loud"] > 4 * rates[False]["calm"]
    assert rates[True]["calm"] > rates[False]["calm"]
    assert rates[True]["loud"] < rates[False]["loud"]


def test_stream_live_and_bundle_use_the_entity_calibrator(models, data, tmp_path) -> None:
    train, later = data
    model = models[True]
    batch = model.score(later, history=train, explain="none")
    loaded = AnomalyModel.load(model.save(tmp_path / "m"))
    assert sorted(loaded.entity_calibrators_) == ["calm", "loud"]
    again = loaded.score(later, history=train, explain="none")
    np.testing.assert_array_equal(again["anomaly_score"], batch["anomaly_score"])
    for entity in ("calm", "loud"):
        hist = Dataset.from_frame(train.frame[train.frame["entity"] == entity])
        rows = later.frame[later.frame["entity"] == entity]
        scorer = loaded.stream(entity, hist)
        live = [scorer.update(r.timestamp, [r.cpu, r.mem]) for r in rows.itertuples()]
        np.testing.assert_allclose([p.anomaly_score for p in live],
                                   batch.loc[rows.index, "anomaly_score"], rtol=1e-9,
                                   atol=1e-12)
    # a job tick: every entity's rows in one detector call, each with its own calibrator
    frame = pd.concat([train.frame, later.frame]).sort_values(["entity", "timestamp"],
                                                              kind="stable")
    frame = frame.reset_index(drop=True)
    out = (frame["timestamp"] > train.frame["timestamp"].max()).to_numpy()
    live = LiveState("demo")
    live.use(model, "1")
    tick = live.score(model, frame, out)
    want = batch.set_index(["entity", "timestamp"])["anomaly_score"]
    got = tick.set_index(["entity", "timestamp"])["anomaly_score"]
    np.testing.assert_allclose(got.loc[want.index], want, rtol=1e-9, atol=1e-12)


def test_one_entity_and_other_rules_keep_the_pooled_threshold(data) -> None:
    train, _ = data
    one = Dataset.from_frame(train.frame[train.frame["entity"] == "calm"])
    assert _model(True).fit(one).entity_calibrators_ == {}
    fpr = AnomalyModel("knn", spec=SPEC, feature_set="all", persist=(),
                       persist_baseline=None, calibration="fpr:0.01",
                       calibration_holdout=0.15, band=None).fit(train)
    assert fpr.entity_calibrators_ == {}


def test_bad_setting_is_refused() -> None:
    with pytest.raises(ConfigError, match="entity_thresholds must be true or false"):
        AnomalyModel(entity_thresholds="yes")  # type: ignore[arg-type]


def test_train_says_which_entities_hold_their_own_threshold(models) -> None:
    from aws_anomaly.workflows import threshold_text

    assert "each entity holds its own threshold" in threshold_text(models[True])
    assert "own threshold" not in threshold_text(models[False])
