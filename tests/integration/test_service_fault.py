"""Fault test: the source fails for several ticks while the scheduler runs. The service stays
up, /readyz names the source, errors are counted, and after recovery every missed interval
is scored exactly once."""

from __future__ import annotations

import re
import time

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from aws_anomaly.config import Settings
from aws_anomaly.model import AnomalyModel
from aws_anomaly.service.app import create_app
from aws_anomaly.sources.demo import DemoSource

pytestmark = pytest.mark.integration

T0 = pd.Timestamp("2026-03-01T00:00Z")
STEP = pd.Timedelta("5min")


class Recorder:
    def __init__(self) -> None:
        self.frames: list[pd.DataFrame] = []

    def on_scores(self, job: str, scores: pd.DataFrame, *, model: str) -> None:
        self.frames.append(scores[["timestamp", "entity"]])


def wait_for(cond, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_source_outage_is_reported_and_caught_up(tmp_path):
    s = Settings.model_validate({
        "service": {"data_dir": str(tmp_path)},
        "jobs": [{"name": "demo", "lookback": "2h", "model": {"history": "2d"},
                  "source": {"type": "demo", "clusters": 2, "days": 3, "speedup": 60,
                             "future_days": 1}}]})
    wall = [0.0]
    src = DemoSource(s.jobs[0].source, start=T0, wall_clock=lambda: wall[0])
    model = AnomalyModel(calibration={"method": "target_fpr", "target_fpr": 0.02}).fit(
        src.fetch(T0 - pd.Timedelta(days=2), T0))
    rec = Recorder()
    app = create_app(s, sources={"demo": src}, models={"demo": model},
                     sinks_for=lambda job: [rec], token="t", interval_s=0.05)
    state = app.state.aws_anomaly
    runner = state.runners["demo"]
    with TestClient(app) as client:
        wait_for(lambda: client.get("/readyz").status_code == 200, what="ready")
        src.failing = True
        wall[0] += 6 * 5.0  # six new 5-minute points arrive during the outage
        wait_for(lambda: runner.errors["fetch"] >= 4, what="failed ticks")
        r = client.get("/readyz")
        assert r.status_code == 503
        body = r.json()
        assert body["degraded"] == ["source:demo"]
        assert "failing" in body["checks"]["source:demo"]["detail"]
        assert client.get("/healthz").status_code == 200
        metrics = client.get("/metrics").text
        m = re.search(r'aws_anomaly_errors_total\{job="demo",stage="fetch"\} (\d+)', metrics)
        assert m and int(m.group(1)) >= 4
        assert re.search(r'aws_anomaly_scheduler_ticks_total\{job="demo",outcome="error"\} '
                         r'([1-9]\d*)', metrics)
        assert 'aws_anomaly_source_up{job="demo"} 0.0' in metrics
        status = client.get("/v1/status").json()["jobs"][0]
        assert status["errors"]["fetch"] >= 4 and status["source_ok"] is False

        src.failing = False
        target = T0 + 6 * STEP
        wait_for(lambda: set(state.store.job_state("demo").values()) == {target},
                 what="catch-up")
        assert client.get("/readyz").status_code == 200
    scored = pd.concat(rec.frames)
    for entity, g in scored.groupby("entity"):
        ts = pd.DatetimeIndex(g["timestamp"])
        # every grid point from the first one scored to the end, once each
        assert ts.is_unique, entity
        assert ts.max() == target
        assert (np.diff(ts.sort_values().asi8) == STEP.value).all(), entity
        assert len(ts) == 25 + 6
