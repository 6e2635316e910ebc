"""Issue 12.4/12.5: registry versions, rollback, drift, and automated retraining."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.config import load_job
from aws_anomaly.errors import ConfigError, DataError, ModelFileError
from aws_anomaly.model import AnomalyModel
from aws_anomaly.retrain import (
    Evaluation,
    decide,
    population_stability,
    version_of,
    version_path,
)
from aws_anomaly.runner import JobRunner
from aws_anomaly.service.exporter import Exporter
from aws_anomaly.sources.demo import DemoSource
from aws_anomaly.store import Store
from tests.unit.jobkit import STEP, T0, WALL_PER_DAY, Clock, job_config


def make(tmp_path: Path, **over) -> tuple[JobRunner, Store, Clock, Exporter]:
    job = job_config(future_days=3, history="2d", **over)
    clock = Clock()
    src = DemoSource(job.source, start=T0, wall_clock=clock)
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    exp = Exporter()
    runner = JobRunner(job, src, None, [exp], store, model_path=tmp_path / "model",
                       metrics=exp)
    runner.retrainer.background = False
    return runner, store, clock, exp


def sample(exp: Exporter, name: str, **labels: str) -> float | None:
    return exp.registry.get_sample_value(name, labels)


def test_each_retrain_registers_a_new_version_with_its_figures(tmp_path):
    runner, store, _, exp = make(tmp_path)
    assert runner.tick().ok
    runner.retrain(reason="operator asked")
    v1, v2 = sorted(store.list_models(name="demo"), key=lambda m: m.number)
    assert (v1.version, v1.status, v2.version, v2.status) == ("1", "retired", "2", "champion")
    rows = 2 * 2 * 288  # the 5-minute points of (now - 2d, now] of 2 entities
    assert v2.info["rows"] == rows and v2.info["data_end"] == T0.isoformat()
    assert v2.decision["decision"] == "forced" and v2.decision["trigger"] == "operator asked"
    # every version's bundle is kept; the champion at the model path says which it is
    assert Path(v1.path) == version_path(tmp_path / "model", "1") and Path(v1.path).is_dir()
    assert version_of(runner.model) == "2"
    assert version_of(AnomalyModel.load(tmp_path / "model")) == "2"
    assert sample(exp, "aws_anomaly_model_champion_version", job="demo") == 2
    assert sample(exp, "aws_anomaly_model_versions", job="demo", status="retired") == 1
    assert sample(exp, "aws_anomaly_retrain_decisions_total", job="demo",
                  decision="forced") == 2
    # a restart loads the champion and finds the registry in agreement
    again = JobRunner(runner.job, runner.source, None, [], store, model_path=tmp_path / "model")
    assert version_of(again.ensure_model()) == "2"
    assert [m.version for m in store.list_models(name="demo")] == ["2", "1"]


def test_rollback_restores_the_previous_version_and_scoring_uses_it(tmp_path):
    runner, store, clock, _ = make(tmp_path)
    assert runner.tick().ok
    first = AnomalyModel.load(version_path(tmp_path / "model", "1"))
    clock.t += 72 * 5.0  # six hours of data later: version 2 learns a different window
    runner.retrain()
    assert version_of(runner.model) == "2"
    rec = runner.rollback()
    assert rec.version == "1" and rec.status == "champion"
    assert rec.decision["restored"]["from_version"] == "2"
    assert store.get_model("demo", "2").status == "retired"
    assert version_of(runner.model) == "1"
    assert version_of(AnomalyModel.load(tmp_path / "model")) == "1"
    assert runner.tick().ok
    ds = runner.source.fetch(T0 - 300 * STEP, T0 + 4 * STEP)
    restored = runner.model.score(ds, explain="none")["anomaly_score"].to_numpy()
    assert np.array_equal(restored, first.score(ds, explain="none")["anomaly_score"].to_numpy())
    second = AnomalyModel.load(version_path(tmp_path / "model", "2"))
    assert not np.array_equal(restored,
                              second.score(ds, explain="none")["anomaly_score"].to_numpy())
    with pytest.raises(DataError, match="already the champion"):
        runner.rollback("1")
    with pytest.raises(DataError, match="no version '7'"):
        runner.rollback("7")


def test_rollback_refuses_an_altered_bundle(tmp_path):
    runner, store, _, _ = make(tmp_path)
    assert runner.tick().ok
    runner.retrain()
    kept = version_path(tmp_path / "model", "1")
    arr = next(kept.glob("*.npy"))
    arr.write_bytes(arr.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(ModelFileError, match="sha256"):
        runner.rollback("1")
    assert version_of(runner.model) == "2" and store.active_model("demo").version == "2"


def _high_alert_challenger(step: pd.Timedelta) -> AnomalyModel:
    # Calibrated to flag ~30 % of points: far above any alert budget.
    return AnomalyModel(detector="ocsvm", calibration={"method": "target_fpr",
                                                       "target_fpr": 0.3})


def test_challenger_with_a_far_higher_alert_rate_is_rejected_and_recorded(tmp_path):
    runner, store, _, exp = make(tmp_path, retrain={"budget": 2.0})
    assert runner.tick().ok
    champion = runner.model
    runner.jobmodel.new_model = _high_alert_challenger
    decision = runner.retrainer.challenge("test")
    assert decision["decision"] == "rejected" and decision["promoted"] is False
    ch, cp = decision["challenger"], decision["champion"]
    assert ch["alerts_per_entity_day"] > max(2.0, cp["alerts_per_entity_day"])
    assert ch["flagged_share"] > 0.1 > cp["flagged_share"]
    assert decision["held_back"]["start"] == (T0 - pd.Timedelta("12h")).isoformat()
    rec = store.get_model("demo", "2")
    assert rec.status == "rejected" and rec.decision == decision
    assert rec.info["figures"] == ch and Path(rec.path).is_dir()
    assert runner.model is champion and store.active_model("demo").version == "1"
    assert sample(exp, "aws_anomaly_retrain_decisions_total", job="demo",
                  decision="rejected") == 1
    assert runner.progress.state == "ready" and "rejected" in runner.progress.step


def test_confirmed_anomalies_are_checked_on_both_models(tmp_path):
    runner, store, _, _ = make(tmp_path, lookback="1d", retrain={"budget": 1000.0})
    assert runner.tick().ok
    confirmed = max(store.list_events(limit=1000).items, key=lambda e: e.peak_score)
    store.add_feedback(confirmed.event_id, "true_positive")
    decision = runner.retrainer.challenge("test")
    for side in ("champion", "challenger"):
        assert decision[side]["confirmed_anomalies"] == 1
    assert decision["champion"]["confirmed_detected"] == [confirmed.event_id]
    assert decision["decision"] == ("promoted" if decision["challenger"]["confirmed_detected"]
                                    else "rejected")


def test_a_challenger_that_loses_a_confirmed_anomaly_is_not_promoted():
    def ev(rate: float, detected: tuple[str, ...]) -> Evaluation:
        return Evaluation(alerts=1, alerts_per_entity_day=rate, flagged=1, points=100,
                          confirmed=2, confirmed_detected=detected)

    ok, why = decide(ev(0.2, ("a",)), ev(3.0, ("a", "b")), budget=1.0)
    assert not ok and "misses 1 confirmed anomaly the champion flags: ['b']" in why[-1]
    ok, why = decide(ev(0.2, ("a", "b")), ev(3.0, ("a",)), budget=1.0)
    assert ok and "within the budget" in why[0]
    # over budget: promoted only when no noisier than the champion
    assert decide(ev(2.0, ()), ev(3.0, ()), budget=1.0)[0]
    assert not decide(ev(4.0, ()), ev(3.0, ()), budget=1.0)[0]
    assert not decide(ev(4.0, ()), None, budget=1.0)[0]


def test_schedule_triggers_on_the_data_clock_and_scoring_goes_on_meanwhile(tmp_path):
    runner, store, clock, _ = make(tmp_path, retrain={"every": "1d", "budget": 1000.0})
    assert runner.tick().ok
    assert runner.retrainer.due() is None
    clock.t += WALL_PER_DAY - 5.0  # one step short of a day of data time
    assert runner.tick().ok and [m.version for m in store.list_models()] == ["1"]
    # The challenger trains in the background; ticks keep scoring with the champion.
    runner.retrainer.background = True
    release = threading.Event()
    fitting = threading.Event()
    real = runner.jobmodel.new_model

    def slow(step: pd.Timedelta) -> AnomalyModel:
        model = real(step)
        fit = model.fit

        def wait_then_fit(*a, **k):
            fitting.set()
            assert release.wait(60)
            return fit(*a, **k)

        model.fit = wait_then_fit
        return model

    runner.jobmodel.new_model = slow
    champion = runner.model
    clock.t += 5.0
    assert runner.tick().ok
    assert fitting.wait(60) and runner.retrainer.running()
    clock.t += 5.0
    res = runner.tick()  # not blocked by the training
    assert res.ok and res.points == 2 and runner.model is champion
    release.set()
    assert runner.retrainer.join(120)
    v2 = store.get_model("demo", "2")
    assert v2.decision["trigger"].startswith("schedule") and v2.status == "champion"
    assert runner.model is not champion and version_of(runner.model) == "2"
    assert runner.retrainer.due() is None  # the next one is a day away
    assert runner.tick().ok


def test_drift_is_measured_exported_and_triggers(tmp_path):
    runner, _, _, exp = make(tmp_path, lookback="1d",
                                 retrain={"drift": {"psi": 1e-6, "min_points": 10,
                                                    "alert_rate_ratio": None,
                                                    "cooldown": "5m"}})
    assert runner.tick().ok
    d = runner.retrainer.drift
    assert d.points == 2 * 288 and d.expected_share is not None
    assert d.alert_rate_ratio == pytest.approx((d.flagged / d.points) / d.expected_share)
    assert set(d.psi) == set(runner.model.metrics_)
    text = exp.render().decode()
    assert 'aws_anomaly_drift_alert_rate_ratio{job="demo"}' in text
    for m in runner.model.metrics_:
        assert sample(exp, "aws_anomaly_drift_psi", job="demo", metric=m) == d.psi[m]
    # The same day as training: its trigger waits for the cooldown (5 min of data time).
    assert runner.retrainer.due(T0) is None
    reason = runner.retrainer.due(T0 + STEP)
    assert reason is not None and reason.startswith("drift: PSI")


def test_population_stability_separates_a_shift_from_noise():
    rng = np.random.default_rng(0)
    train = rng.normal(0, 1, 5000)
    edges = np.unique(np.quantile(train, np.linspace(0, 1, 11)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, train, side="right"), minlength=edges.size + 1)
    ref = {"edges": edges.tolist(), "p": ((counts + 0.5) / (train.size + 5.0)).tolist()}
    same = population_stability(ref, rng.normal(0, 1, 300))
    shifted = population_stability(ref, rng.normal(1.0, 1, 300))
    assert same < 0.1 < 0.25 < shifted


def test_retrain_config_errors_name_the_field(tmp_path):
    p = tmp_path / "job.yaml"
    for text, want in [
        ("retrain: {every: 7 days}", "'retrain.every'"),
        ("retrain: {holdout: 8d}", "retrain.holdout (8d) must be at most half of "
                                   "model.history (14d)"),
        ("retrain: {drift: {psi: -1}}", "'retrain.drift.psi'"),
        ("retrain: {drift: {alert_rate_ratio: 0.5}}", "'retrain.drift.alert_rate_ratio'"),
        ("retrain: {budget: 0}", "'retrain.budget'"),
        ("retrain: {evry: 7d}", "unknown key 'retrain.evry'"),
    ]:
        p.write_text(f"name: x\n{text}\n")
        with pytest.raises(ConfigError, match=None) as info:
            load_job(p, environ={})
        assert want in str(info.value), (text, str(info.value))
    p.write_text("name: x\nretrain: {every: 7d, window: 10d, holdout: 1d, budget: 3,\n"
                 "          drift: {psi: 0.2, window: 12h}}\n")
    job = load_job(p, environ={})
    assert job.retrain_window() == (pd.Timedelta(days=10), pd.Timedelta(days=1))
    assert job.retrain.drift is not None and job.retrain.drift.psi == 0.2
