"""Alerts survive SIGKILL: the service queues alerts for a webhook that answers 500, is killed
with SIGKILL, and after a restart (the webhook healthy again) every alert queued before the
kill is delivered, none twice; the outbox and the events agree."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from aws_anomaly.config import load_settings
from aws_anomaly.model import AnomalyModel
from aws_anomaly.sources.demo import DemoSource
from aws_anomaly.store import Store

from .amkit import free_port
from .hookkit import SwitchableReceiver
from .servekit import start_serve

pytestmark = pytest.mark.integration

CONFIG = """
service:
  data_dir: {data}
jobs:
  - name: demo
    interval: 5m
    lookback: 1d
    alert: {{min_consecutive: 1}}
    source: {{type: demo, clusters: 3, days: 3, future_days: 1, speedup: 6000}}
    model:
      history: 2d
      threshold: {{method: contamination, contamination: 0.05}}
    notifiers:
      - {{type: webhook, url: "{hook}", timeout_s: 1}}
"""


def start(cfg: Path, port: int, log: Path) -> subprocess.Popen:
    return start_serve(cfg, port, log, env={"AWS_ANOMALY__SERVICE__TOKEN": "kill-token"})


def wait(cond, proc: subprocess.Popen, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"service exited with {proc.returncode} waiting for {what}")
        got = cond()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_alerts_queued_before_sigkill_are_delivered_once_after_restart(tmp_path, test_output):
    data = tmp_path / "data"
    rx = SwitchableReceiver(mode="fail")
    cfg = tmp_path / "service.yaml"
    cfg.write_text(CONFIG.format(data=data, hook=rx.url))
    # A model bundle in place, so the service starts scoring at once (no training).
    job = load_settings(cfg).jobs[0]
    now = pd.Timestamp.now(tz="UTC").floor("5min")
    src = DemoSource(job.source, start=now)
    AnomalyModel(calibration={"method": "contamination", "contamination": 0.05}).fit(
        src.fetch(now - pd.Timedelta(days=2), now)).save(data / "models" / "demo")
    log = test_output / "service.log"
    log.write_bytes(b"")
    port = free_port()
    db = f"sqlite:///{data / 'aws_anomaly.db'}"
    proc = start(cfg, port, log)
    try:
        wait(lambda: ready(port), proc, 120, "the service")
        store = Store(db)
        wait(lambda: store.outbox_counts()["pending"] >= 3 and rx.failed >= 2, proc, 60,
             "queued alerts and failed deliveries")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        queued = {(r.event_id, r.status) for r in store.outbox()}
        assert queued and all(r.state == "pending" for r in store.outbox())
        assert rx.delivered() == set()
        # Every stored event has its alerts queued: they were written in the same commit.
        # Events of the first tick's look-back (they started before it) are history: stored,
        # never queued.
        first_live = min(store.get_event(e).start for e, _ in queued)
        for ev in store.list_events(limit=1000).items:
            if ev.start < first_live:
                assert not any(e == ev.event_id for e, _ in queued)
                continue
            assert (ev.event_id, "firing") in queued
            if ev.status == "closed":
                assert (ev.event_id, "resolved") in queued

        rx.mode = "ok"
        proc = start(cfg, port, log)
        wait(lambda: ready(port), proc, 120, "the restarted service")
        rx.wait_for(lambda got: got >= queued, timeout=60)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        assert rx.duplicates() == {}
        rows = store.outbox()
        sent = {(r.event_id, r.status) for r in rows if r.state == "sent"}
        assert sent == rx.delivered() and queued <= sent
        assert not [r for r in rows if r.state == "dropped"]
        store.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        rx.close()
