"""``/v1/models``: the registry's versions with their decisions, rollback, and the gauges."""

from __future__ import annotations

import pandas as pd
from fastapi.testclient import TestClient

from aws_anomaly.config import Settings
from aws_anomaly.retrain import version_of
from aws_anomaly.service.app import create_app
from aws_anomaly.sources.demo import DemoSource

T0 = pd.Timestamp("2026-03-01T00:00Z")
TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_versions_rollback_and_gauges(tmp_path):
    s = Settings.model_validate({
        "service": {"data_dir": str(tmp_path)},
        "jobs": [{"name": "demo", "lookback": "2h", "interval": "5m",
                  "model": {"history": "2d"},
                  "source": {"type": "demo", "clusters": 2, "days": 4, "speedup": 60,
                             "future_days": 1}}]})
    src = DemoSource(s.jobs[0].source, start=T0, wall_clock=lambda: 0.0)
    app = create_app(s, sources={"demo": src}, token=TOKEN, scheduler=False)
    runner = app.state.aws_anomaly.runners["demo"]
    with TestClient(app) as client:
        assert runner.tick().ok
        # nothing earlier to go back to: a clear 409, the champion stays
        r = client.post("/v1/models/demo/rollback", headers=AUTH)
        assert r.status_code == 409 and "no earlier champion" in r.json()["detail"]
        runner.retrain(reason="feedback applied")
        m = client.get("/v1/models").json()["items"][0]
        assert m["champion"] == "2" and m["retraining"] is False
        assert m["drift"]["points"] == 0  # no live tick since version 2
        v2, v1 = m["versions"]
        assert (v2["version"], v2["status"], v1["version"], v1["status"]) == (
            "2", "champion", "1", "retired")
        assert v2["rows"] == 2 * 576 and v2["decision"]["trigger"] == "feedback applied"
        assert v2["decision"]["decision"] == "forced"
        assert str(tmp_path) not in str(m)  # kept bundles' paths are not shown

        assert client.post("/v1/models/demo/rollback").status_code == 401
        r = client.post("/v1/models/demo/rollback", json={"version": "9"}, headers=AUTH)
        assert r.status_code == 404 and "versions are ['2', '1']" in r.json()["detail"]
        assert client.post("/v1/models/nope/rollback", headers=AUTH).status_code == 404
        r = client.post("/v1/models/demo/rollback", json={"version": "1"}, headers=AUTH)
        assert r.status_code == 200 and r.json() == {"name": "demo", "version": "1",
                                                     "status": "champion"}
        assert version_of(runner.model) == "1"
        items = client.get("/v1/models").json()["items"][0]
        assert items["champion"] == "1"
        assert items["versions"][1]["decision"]["restored"]["from_version"] == "2"
        r = client.post("/v1/models/demo/rollback", json={"version": "1"}, headers=AUTH)
        assert r.status_code == 409 and "already the champion" in r.json()["detail"]

        text = client.get("/metrics").text
        assert 'aws_anomaly_model_champion_version{job="demo"} 1.0' in text
        assert 'aws_anomaly_model_versions{job="demo",status="retired"} 1.0' in text
        assert 'aws_anomaly_retrain_decisions_total{decision="rollback",job="demo"} 1.0' in text
        assert runner.tick().ok
        text = client.get("/metrics").text
        assert 'aws_anomaly_drift_alert_rate_ratio{job="demo"}' in text
        assert 'aws_anomaly_drift_psi{job="demo",metric="cluster_pod_ratio"}' in text
