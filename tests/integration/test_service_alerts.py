"""Alerts through the running service: a failing or hanging webhook never slows scoring,
every failed delivery is counted (``aws_anomaly_errors_total{stage="notify"}``, /v1/status),
and alerts queued while the receiver is down are delivered exactly once after a restart."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from aws_anomaly.config import Settings
from aws_anomaly.model import AnomalyModel
from aws_anomaly.service.app import create_app
from aws_anomaly.sources.demo import DemoSource
from aws_anomaly.store import Store

from .hookkit import SwitchableReceiver

pytestmark = pytest.mark.integration

T0 = pd.Timestamp("2026-03-01T00:00Z")


def settings(data_dir: Path, hook: str) -> Settings:
    return Settings.model_validate({
        "service": {"data_dir": str(data_dir)},
        "jobs": [{"name": "demo", "lookback": "1d", "interval": "5m",
                  "model": {"history": "2d"}, "alert": {"min_consecutive": 1},
                  "source": {"type": "demo", "clusters": 2, "days": 3, "speedup": 60,
                             "future_days": 1},
                  "notifiers": [{"type": "webhook", "url": hook, "timeout_s": 1.5}]}]})


@pytest.fixture(scope="module")
def fitted() -> AnomalyModel:
    s = settings(Path("unused"), "http://127.0.0.1:9/hook")
    src = DemoSource(s.jobs[0].source, start=T0, wall_clock=lambda: 0.0)
    return AnomalyModel(calibration={"method": "target_fpr", "target_fpr": 0.02}).fit(
        src.fetch(T0 - pd.Timedelta(days=2), T0))


def wait_for(cond, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def expected_alerts(store: Store) -> set[tuple[str, str]]:
    out = set()
    for ev in store.list_events(limit=1000).items:
        out.add((ev.event_id, "firing"))
        if ev.status == "closed":
            out.add((ev.event_id, "resolved"))
    return out


def app_for(data: Path, hook: str, model: AnomalyModel, wall: list[float]):
    s = settings(data, hook)
    # Not a first start (that one sends nothing of its look-back): the job scored before.
    store = Store(s.service.store_url())
    if not store.job_state("demo"):
        store.set_job_state("demo", {e: T0 - pd.Timedelta(days=1)
                                     for e in ("eks-prod-eu-west-1", "eks-prod-us-east-1")})
    store.close()
    src = DemoSource(s.jobs[0].source, start=T0, wall_clock=lambda: wall[0])
    return create_app(s, sources={"demo": src}, models={"demo": model}, token="t",
                      interval_s=0.05)


def notify_errors(metrics_text: str) -> float:
    m = re.search(r'aws_anomaly_errors_total\{job="demo",stage="notify"\} (\S+)', metrics_text)
    assert m, "aws_anomaly_errors_total{stage=notify} is missing"
    return float(m.group(1))


def test_hanging_webhook_never_slows_ticks_and_errors_are_counted(tmp_path, fitted):
    """Issue 10.4: with a receiver that never answers, ticks stay fast (delivery runs in its
    own thread) and serve counts each failed delivery."""
    rx = SwitchableReceiver(mode="hang")
    wall = [0.0]
    app = app_for(tmp_path, rx.url, fitted, wall)
    state = app.state.aws_anomaly
    runner = state.runners["demo"]
    try:
        with TestClient(app) as client:
            wait_for(lambda: state.store.count_events() > 0, what="events")
            for _ in range(20):  # more ticks while deliveries hang
                wall[0] += 5.0
                time.sleep(0.06)
            wait_for(lambda: runner.errors["notify"] >= 2, timeout=20, what="notify errors")
            assert notify_errors(client.get("/metrics").text) >= 2
            job = client.get("/v1/status").json()["jobs"][0]
            assert job["errors"]["notify"] >= 2 and "webhook" in job["last_errors"]["notify"]
            hist = state.scheduler.status("demo").history
            assert len(hist) >= 10
            # One hung delivery attempt takes 1.5 s; no tick waited for one.
            assert max(h["seconds"] for h in hist) < 1.2, hist
            assert 'aws_anomaly_notifications_total{job="demo",notifier="webhook-0",' \
                   'outcome="retry"}' in client.get("/metrics").text
    finally:
        rx.close()


def test_alerts_queued_while_the_webhook_fails_arrive_once_after_a_restart(tmp_path, fitted):
    """Issue 10.1: the webhook answers 500; the service stops (SIGTERM-like: lifespan ends)
    with alerts undelivered; the restarted service delivers each of them exactly once."""
    rx = SwitchableReceiver(mode="fail")
    wall = [0.0]
    try:
        app = app_for(tmp_path, rx.url, fitted, wall)
        state = app.state.aws_anomaly
        with TestClient(app):
            wait_for(lambda: state.store.count_events() > 0, what="events")
            wait_for(lambda: rx.failed >= 1, what="a failed delivery")
        want = expected_alerts(state.store)
        pending = {(r.event_id, r.status) for r in state.store.outbox(state="pending")}
        assert want and pending == want and rx.delivered() == set()
        state.store.close()

        rx.mode = "ok"
        app = app_for(tmp_path, rx.url, fitted, wall)
        state = app.state.aws_anomaly
        with TestClient(app):
            rx.wait_for(lambda got: got >= want, timeout=30)
            wait_for(lambda: state.store.outbox_counts()["pending"] == 0, what="empty outbox")
        assert rx.delivered() == expected_alerts(state.store) and rx.duplicates() == {}
    finally:
        rx.close()
