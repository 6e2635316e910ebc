"""One alert semantics: the job runner, the notifiers, the exporter's aws_anomaly_alert_active
and `backtest` all follow the job's AlertPolicy, and a first run sends nothing of its
look-back (issue 9)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aws_anomaly.backtest import backtest_job
from aws_anomaly.config import JobConfig
from aws_anomaly.model import AnomalyModel
from aws_anomaly.runner import JobRunner
from aws_anomaly.service.exporter import Exporter
from aws_anomaly.service.notifiers import build_notifier_sinks
from aws_anomaly.sources.demo import DemoSource
from aws_anomaly.store import Store

from .amkit import Receiver

pytestmark = pytest.mark.integration

T0 = pd.Timestamp("2026-03-01T00:00Z")
STEP = pd.Timedelta("5min")
WALL_PER_STEP = 5.0  # speedup 60


def job_config(hook: str, tmp_path: Path) -> JobConfig:
    # A low threshold makes incidents frequent enough for a short test.
    return JobConfig.model_validate({
        "name": "demo", "lookback": "1d", "interval": "5m",
        "source": {"type": "demo", "clusters": 2, "days": 4, "speedup": 60, "future_days": 1},
        "model": {"history": "3d", "path": str(tmp_path / "model")},
        "alert": {"min_consecutive": 2, "threshold": 0.5},
        "notifiers": [{"type": "webhook", "url": hook, "timeout_s": 2}]})


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[AnomalyModel, Path]:
    src = DemoSource(job_config("http://127.0.0.1:9/x", Path(".")).source, start=T0,
                     wall_clock=lambda: 0.0)
    m = AnomalyModel(detector="ocsvm", calibration={"method": "target_fpr",
                                                    "target_fpr": 0.02})
    m.fit(src.fetch(T0 - pd.Timedelta(days=3), T0 - pd.Timedelta(days=1)))
    path = tmp_path_factory.mktemp("bundle") / "model"
    m.save(path)
    return m, path


def alert_active(exp: Exporter) -> dict[str, float]:
    out = {}
    for fam in text_string_to_metric_families(exp.render().decode()):
        for s in fam.samples:
            if s.name == "aws_anomaly_alert_active":
                out[s.labels["entity"]] = s.value
    return out


def runner_for(job: JobConfig, model: AnomalyModel, store: Store, clock: list[float]):
    src = DemoSource(job.source, start=T0, wall_clock=lambda: clock[0])
    exporter = Exporter()
    sinks = build_notifier_sinks(job, store)
    runner = JobRunner(job, src, model, [exporter, *sinks], store)
    return runner, exporter, sinks


def test_first_run_records_its_lookback_but_sends_only_what_comes_after(
        tmp_path: Path, model: tuple[AnomalyModel, Path]) -> None:
    rx = Receiver()
    clock = [0.0]
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    job = job_config(rx.url, tmp_path)
    runner, exporter, sinks = runner_for(job, model[0], store, clock)
    try:
        first = runner.tick()
        assert first.ok, first.error
        old_alerts = [e for e in first.events if runner.policy.fires(e)]
        assert old_alerts, "the day of look-back should hold alerts for this test to mean much"
        # Recorded in history, never queued, never shown as firing.
        stored = {e.event_id for e in store.list_events(limit=1000).items}
        assert {e.event_id for e in first.events} <= stored
        assert store.outbox() == []
        assert set(alert_active(exporter).values()) == {0.0}
        # What starts after the first tick is sent, as the policy says.
        for _ in range(24):
            clock[0] += 12 * WALL_PER_STEP  # one hour of data per tick
            assert runner.tick().ok
        rows = store.outbox()
        assert rows, "no alert in the day after the first run"
        sent_ids = {r.event_id for r in rows}
        assert not sent_ids & {e.event_id for e in old_alerts}
        for r in rows:
            ev = store.get_event(r.event_id)
            assert ev is not None and ev.start > T0 and runner.policy.fires(ev)
            assert r.status == "firing" or ev.status == "closed"
        assert sinks[0].dispatcher.flush() == len(rows)
        got = {(a["event_id"], a["status"]) for b in rx.bodies for a in b["alerts"]}
        assert got == {(r.event_id, r.status) for r in rows}
        # The exporter shows exactly the alerts still firing (open and over the bar).
        open_firing = {e.entity for e in store.open_events("demo").values()
                       if runner.policy.firing(e) and e.event_id in sent_ids}
        assert {e for e, v in alert_active(exporter).items() if v == 1.0} == open_firing
    finally:
        for s in sinks:
            s.stop()
        rx.close()
        store.close()


class Scores:
    """Keeps the scores the runner hands its sinks."""

    def __init__(self) -> None:
        self.frames: list[pd.DataFrame] = []

    def on_scores(self, job: str, scores: pd.DataFrame, *, model: str) -> None:
        self.frames.append(scores)


def test_tick_by_tick_alerts_equal_the_policys_replay_of_the_same_scores(
        tmp_path: Path, model: tuple[AnomalyModel, Path]) -> None:
    """What the runner queues over many ticks (events continued across ticks) is what the
    policy's one-pass replay, the one `backtest` counts with, finds in the same scores; and
    the exporter shows the alerts still open."""
    fitted, _ = model
    clock = [0.0]
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    job = job_config("http://127.0.0.1:9/x", tmp_path)
    runner, exporter, sinks = runner_for(job, fitted, store, clock)
    got = Scores()
    runner.sinks.append(got)
    start, end = T0 - pd.Timedelta(hours=20), T0
    try:
        # Not a first run: the job scored up to `start` before.
        store.set_job_state("demo", {e: start - STEP for e in ("eks-prod-eu-west-1",
                                                                 "eks-prod-us-east-1")})
        now = start - STEP
        while now < end - STEP:
            now = min(now + pd.Timedelta(minutes=50), end - STEP)
            assert runner.tick(now).ok
        rows = store.outbox()
        scores = pd.concat(got.frames, ignore_index=True)
        assert len(scores) == 2 * 240
        policy = runner.policy
        replay = policy.merge(scores, step=STEP, threshold=policy.threshold, job="demo",
                              model="demo")
        summary = policy.summarize(replay, step=STEP)
        assert summary["firing"] == sum(r.status == "firing" for r in rows) > 0
        assert summary["resolved"] == sum(r.status == "resolved" for r in rows) > 0
        assert {e.event_id for e in replay if policy.fires(e)} == {r.event_id for r in rows}
        assert summary["open_at_end"] == sum(alert_active(exporter).values())
    finally:
        for s in sinks:
            s.stop()
        store.close()


def test_backtest_reports_firing_and_resolved_per_entity(
        tmp_path: Path, model: tuple[AnomalyModel, Path]) -> None:
    _, bundle = model
    job = job_config("http://127.0.0.1:9/x", tmp_path)
    src = DemoSource(job.source, start=T0, wall_clock=lambda: 0.0)
    result = backtest_job(job, src, T0 - pd.Timedelta(hours=20), T0, model_path=bundle)
    assert result["min_consecutive"] == 2 and result["max_gap_steps"] == 2
    assert result["firing"] == sum(r["firing"] for r in result["entities"]) > 0
    assert result["resolved"] + result["open_at_end"] == result["firing"]
    for r in result["entities"]:
        assert r["points"] == 240 and r["alerts"] == r["firing"] <= r["events"]
        assert r["alerts_per_day"] == pytest.approx(r["firing"] / (20 / 24), abs=1e-3)
