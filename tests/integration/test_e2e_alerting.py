"""The whole loop against real servers, as a user deploys it.

Demo data with a known anomaly (a node failure on one cluster during the last hour) is
backfilled into a fresh Prometheus TSDB. Prometheus runs on 127.0.0.1 with the repository's
alert rules and a scrape job for the exporter; Alertmanager routes to a loopback webhook.
``aws-anomaly run`` (a real subprocess) trains a model from Prometheus history, scores the
latest window and serves /metrics. The job has run before (its progress is in the state store,
an hour before the failure: a first run would send nothing of its look-back), and both delivery
paths are on: the job's Alertmanager notifier and the Prometheus rule on
``aws_anomaly_alert_active``. The test asserts that the scores are scraped back into
Prometheus, the anomaly rule fires, and the webhook receives one alert (the two paths carry the
same labels, so Alertmanager deduplicates them) with the entity label and the top-metric
annotation. Then Prometheus is stopped mid-run: the job reports clear
fetch errors and counts them, and recovers when Prometheus returns.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aws_anomaly.alert_rules import RuleOptions, render_rules
from aws_anomaly.data.generator import DEFAULT_METRICS, generate_demo
from aws_anomaly.store import Store

from .amkit import Receiver, running_alertmanager
from .promkit import backfill, free_port, running_prometheus, write_openmetrics

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ANOMALOUS = "eks-prod-eu-west-1"


def _wait(what: str, fn: Callable[[], object], timeout: float = 120.0,
          every: float = 0.5) -> object:
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(every)


def _query(prom: str, q: str) -> list[dict]:
    try:
        r = httpx.get(f"{prom}/api/v1/query", params={"query": q}, timeout=5)
    except httpx.HTTPError:
        return []
    return r.json()["data"]["result"] if r.status_code == 200 else []


def _exporter_value(url: str, name: str, **labels: str) -> float | None:
    try:
        text = httpx.get(url, timeout=5).text
    except httpx.HTTPError:
        return None
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


class _Lines:
    """Collects a subprocess's output lines in a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._t = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._t.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line.rstrip())

    def count(self, needle: str) -> int:
        return sum(needle in line for line in self.lines)


def _demo_with_node_failure(now: pd.Timestamp) -> pd.DataFrame:
    days = 8
    # The same values on every run, whatever the time of day: the demo's daily pattern
    # follows its timestamps' time of day, so the data is generated as if it ended at 17:00
    # UTC and then shifted to end at `now` (how anomalous the last point of the failure
    # looks must not depend on when the test runs).
    ref_end = now.normalize() + pd.Timedelta(hours=17)
    start = ref_end - pd.Timedelta(days=days) + pd.Timedelta(minutes=5)
    ds, _ = generate_demo(clusters=2, days=days, seed=11, start=start.isoformat(),
                          events_per_day=0)
    frame = ds.frame.drop(columns=["is_anomaly", "anomaly_type"])
    frame["timestamp"] = frame["timestamp"] + (now - ref_end)
    hit = ((frame["entity"] == ANOMALOUS)
           & (frame["timestamp"] > now - pd.Timedelta(hours=1))).to_numpy()
    # A third of the nodes fail: every demand/capacity ratio jumps by half.
    for m in DEFAULT_METRICS:
        frame.loc[hit, m] = np.minimum(frame.loc[hit, m] / (2 / 3), 1.0)
    return frame


def test_anomaly_reaches_webhook_and_run_survives_prometheus_outage(
        tmp_path: Path, test_output: Path) -> None:
    now = pd.Timestamp.now(tz="UTC").floor("5min")
    frame = _demo_with_node_failure(now)
    om = write_openmetrics(frame, tmp_path / "data.om", metrics=list(DEFAULT_METRICS))
    tsdb = tmp_path / "tsdb"
    backfill(om, tsdb)

    exporter_port, prom_port = free_port(), free_port()
    rules = tmp_path / "rules.yml"
    rules.write_text(render_rules(RuleOptions(evaluation_interval="1s", job_interval="2s",
                                              stale_intervals=30)))
    # The job scored up to two hours ago before (not a first run).
    state = Store(f"sqlite:///{tmp_path / 'state' / 'aws_anomaly.db'}")
    state.set_job_state("e2e", {e: now - pd.Timedelta(hours=2)
                                for e in (ANOMALOUS, "eks-prod-us-east-1")})
    state.close()
    rx = Receiver()
    timings: dict[str, float] = {}
    with running_alertmanager(rx.url) as am:
        prom_cfg = (
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "alerting:\n  alertmanagers:\n"
            f"  - static_configs:\n    - targets: ['{am.removeprefix('http://')}']\n"
            "scrape_configs:\n- job_name: aws-anomaly\n  static_configs:\n"
            f"  - targets: ['127.0.0.1:{exporter_port}']\n"
        )
        job = tmp_path / "job.yaml"
        queries = "".join(f"    {m}: {m}\n" for m in DEFAULT_METRICS)
        job.write_text(
            "name: e2e\n"
            "source:\n  type: prometheus\n"
            f"  url: http://127.0.0.1:{prom_port}\n"
            "  entity_label: cluster\n  step: 5m\n  max_retries: 1\n  backoff_s: 0.1\n"
            "  timeout_s: 5\n"
            f"  queries:\n{queries}"
            "model:\n  history: 7d\n"
            "interval: 2s\nlookback: 1d\n"
            "alert:\n  min_consecutive: 3\n"
            f"notifiers:\n- type: alertmanager\n  url: {am}\n"
            "  dashboard_url: http://127.0.0.1:8080\n"
        )
        with running_prometheus(tsdb, prom_cfg, rule_files=[rules], port=prom_port) as prom:
            t_start = time.monotonic()
            proc = subprocess.Popen(
                [sys.executable, "-m", "aws_anomaly", "run", "--config", str(job),
                 "--state-dir", str(tmp_path / "state"), "--metrics-port", str(exporter_port)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
            out = _Lines(proc)
            try:
                # 1. the exporter's scores are scraped back into Prometheus
                scraped = _wait("the anomalous score in Prometheus", lambda: [
                    r for r in _query(prom, f'aws_anomaly_score{{entity="{ANOMALOUS}"}}')
                    if float(r["value"][1]) >= 1.0], timeout=180)
                timings["run_start_to_scraped_s"] = time.monotonic() - t_start
                t_scraped = time.monotonic()
                normal = _query(prom, 'aws_anomaly_score{entity="eks-prod-us-east-1"}')
                assert normal and float(normal[0]["value"][1]) < 1.0
                assert scraped[0]["metric"]["model"] == "e2e"

                # 2. the rule fires and 3. the webhook receives the alert
                def firing(bodies: list) -> list:
                    return [a for b in bodies if b.get("status") == "firing"
                            for a in b["alerts"]
                            if a["labels"].get("alertname") == "AwsAnomalyDetected"]

                alerts = rx.wait_for(firing, timeout=60)
                timings["scraped_to_webhook_s"] = time.monotonic() - t_scraped
                timings["run_start_to_webhook_s"] = time.monotonic() - t_start
                assert {a["labels"]["entity"] for a in alerts} == {ANOMALOUS}
                assert alerts[0]["annotations"]["top_metric"] in DEFAULT_METRICS
                # Both paths delivered (the rule fired, the notifier sent its event) and
                # Alertmanager holds one alert: the label sets are equal.
                _wait("the rule firing", lambda: _query(
                    prom, 'ALERTS{alertname="AwsAnomalyDetected",alertstate="firing"}'))
                fired = _query(prom, 'ALERTS{alertname="AwsAnomalyDetected",'
                                     'alertstate="firing"}')
                want = {"alertname": "AwsAnomalyDetected", "job": "e2e", "entity": ANOMALOUS,
                        "model": "e2e", "severity": "warning"}
                assert [{k: v for k, v in r["metric"].items() if k != "alertstate"}
                        for r in fired] == [{"__name__": "ALERTS", **want}]
                sent = _wait("the notifier's delivery", lambda: [
                    r for r in Store(f"sqlite:///{tmp_path / 'state' / 'aws_anomaly.db'}")
                    .outbox(job="e2e") if r.state == "sent"])
                assert sent
                held = httpx.get(f"{am}/api/v2/alerts", timeout=5).json()
                assert [a["labels"] for a in held
                        if a["labels"].get("alertname") == "AwsAnomalyDetected"] == [want]
                assert {frozenset(a["labels"].items()) for a in alerts} == {
                    frozenset(want.items())}
            except BaseException:
                proc.terminate()
                seen = {q: _query(prom, q) for q in (
                    "aws_anomaly_score", "aws_anomaly_is_anomalous", "ALERTS")}
                print("\n".join(out.lines[-40:]), json.dumps(seen, indent=1), rx.bodies)
                raise
        # Prometheus is stopped here, mid-run.
        metrics_url = f"http://127.0.0.1:{exporter_port}/metrics"
        try:
            before = out.count("tick failed at fetch")
            _wait("a failed tick", lambda: out.count("tick failed at fetch") > before,
                  timeout=60)
            failure = next(line for line in out.lines if "tick failed at fetch" in line)
            assert f"127.0.0.1:{prom_port}" in failure, failure
            errors = _exporter_value(metrics_url, "aws_anomaly_errors_total", job="e2e",
                                     stage="fetch")
            assert errors is not None and errors >= 1
            last_ok = _exporter_value(metrics_url, "aws_anomaly_last_success_timestamp_seconds",
                                      job="e2e")
            assert proc.poll() is None, "the run must survive the outage"
            # Prometheus comes back on the same port and data: the job recovers.
            with running_prometheus(tsdb, prom_cfg, rule_files=[rules], port=prom_port):
                _wait("a successful tick after the outage", lambda: (
                    (_exporter_value(metrics_url, "aws_anomaly_last_success_timestamp_seconds",
                                     job="e2e") or 0) > (last_ok or 0)), timeout=60)
        finally:
            proc.terminate()
            proc.wait(30)
            rx.close()
    assert proc.returncode == 0, "\n".join(out.lines)
    assert out.count("stopping: the running tick finished") == 1
    (test_output / "e2e_timings.json").write_text(json.dumps(timings, indent=2))
    print(json.dumps(timings))
