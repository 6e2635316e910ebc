"""Secrets stay secret in the running service (issue 10.6): a Prometheus URL with credentials
and a Slack webhook URL appear neither in the unauthenticated answers nor in the log, and
httpx's per-request INFO lines (each with its URL) are silenced."""

from __future__ import annotations

import signal
import time

import httpx
import pandas as pd
import pytest

from aws_anomaly.config import load_settings
from aws_anomaly.model import AnomalyModel
from aws_anomaly.sources.demo import DemoSource

from .amkit import free_port
from .hookkit import SwitchableReceiver
from .servekit import start_serve

pytestmark = pytest.mark.integration

SLACK_SECRET = "T0AAAA/B0BBBB/Sl4ckS3cretPathXYZ"
PROM_PASSWORD = "tiger-s3cret-pw"
API_TOKEN = "secrets-test-token-0123456789"

CONFIG = """
service:
  data_dir: {data}
jobs:
  - name: demo
    interval: 5m
    lookback: 1d
    alert: {{min_consecutive: 1}}
    source: {{type: demo, clusters: 2, days: 3, future_days: 1, speedup: 6000}}
    model:
      history: 2d
      threshold: {{method: contamination, contamination: 0.05}}
    notifiers:
      - {{type: slack, url_env: SLACK_URL, timeout_s: 2}}
  - name: prom
    interval: 1s
    source:
      type: prometheus
      url: "http://scott:{password}@127.0.0.1:{closed}"
      max_retries: 0
      timeout_s: 1
      queries: {{cpu: "avg by (cluster) (cpu)"}}
"""


def test_no_secret_in_answers_or_logs(tmp_path, test_output):
    data = tmp_path / "data"
    slack = SwitchableReceiver()
    closed = free_port()
    cfg = tmp_path / "service.yaml"
    cfg.write_text(CONFIG.format(data=data, password=PROM_PASSWORD, closed=closed))
    job = load_settings(cfg, environ={"SLACK_URL": "http://127.0.0.1:1/x"}).jobs[0]
    now = pd.Timestamp.now(tz="UTC").floor("5min")
    src = DemoSource(job.source, start=now)
    AnomalyModel(calibration={"method": "contamination", "contamination": 0.05}).fit(
        src.fetch(now - pd.Timedelta(days=2), now)).save(data / "models" / "demo")
    log = test_output / "service.log"
    port = free_port()
    proc = start_serve(cfg, port, log, log_level="info", append=False, env={
        "AWS_ANOMALY__SERVICE__TOKEN": API_TOKEN,
        "SLACK_URL": f"http://127.0.0.1:{slack.port}/services/{SLACK_SECRET}"})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        answers = ""
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-2000:]
            try:
                ready = httpx.get(base + "/readyz", timeout=2)
                detail = ready.json()["checks"].get("source:prom", {}).get("detail", "")
                if slack.bodies and "not fetched yet" not in detail:
                    answers = "".join(httpx.get(base + p, timeout=5).text
                                      for p in ("/readyz", "/v1/status", "/v1/models"))
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        assert answers, "no alert reached the Slack receiver or the prom job never fetched"
        time.sleep(2)  # a few more failing ticks of the prom job, more alerts
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        slack.close()
    text = log.read_text()
    assert "127.0.0.1" in answers and "scott" not in answers
    for secret in (PROM_PASSWORD, "Sl4ckS3cretPath", API_TOKEN):
        assert secret not in answers, secret
        assert secret not in text, secret
    assert "HTTP Request:" not in text  # httpx's per-request INFO line
    assert "prom" in text and "tick failed" in text  # the failures are still logged
