"""`aws-anomaly run --once` and `backtest` on the demo source, and the notifier sink."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

import pandas as pd
import pytest

from aws_anomaly.cli import main
from aws_anomaly.events import AlertPolicy, AnomalyEvent
from aws_anomaly.service.notifiers import Dispatcher, NotifierSink, WebhookNotifier
from aws_anomaly.store import Store

from .amkit import Receiver

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo_job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("job")
    (d / "job.yaml").write_text(
        "name: demo\nsource: {type: demo, clusters: 2, days: 10, seed: 5}\n"
        "model: {history: 7d}\ninterval: 1m\nlookback: 6h\n")
    return d / "job.yaml"


def test_run_once_trains_scores_and_remembers_progress(
        demo_job: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    state = tmp_path / "state"
    assert main(["run", "--config", str(demo_job), "--once", "--state-dir", str(state)]) == 0
    first = capsys.readouterr().out
    assert (state / "models" / "demo" / "manifest.json").exists()
    scored = int(first.split(" scored ")[1].split()[0])
    assert scored >= 2 * 6 * 12  # the 6 h lookback of both clusters
    # The second run loads the bundle and scores only what arrived since (demo time runs 60x).
    assert main(["run", "--config", str(demo_job), "--once", "--state-dir", str(state)]) == 0
    second = capsys.readouterr().out
    again = int(second.split(" scored ")[1].split()[0])
    assert again < scored / 4


def test_backtest_counts_alerts_per_entity(demo_job: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    # The demo replay starts future_days (28) behind the wall clock and never runs ahead of it.
    end = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=28)).floor("h")
    start = end - pd.Timedelta(days=2)
    out = tmp_path / "bt.json"
    assert main(["backtest", "--config", str(demo_job), "--start", start.isoformat(),
                 "--end", end.isoformat(), "--state-dir", str(tmp_path / "none"),
                 "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [r["entity"] for r in result["entities"]] == ["eks-prod-eu-west-1",
                                                        "eks-prod-us-east-1"]
    for r in result["entities"]:
        assert r["points"] == 2 * 288
        assert 0 <= r["firing"] == r["alerts"] <= r["events"]
        assert r["resolved"] + r["open_at_end"] == r["firing"]
        assert 0 <= r["anomalous_share"] < 0.2
    printed = capsys.readouterr().out
    assert "per day per entity" in printed and f"{result['firing']} alerts fired" in printed
    assert main(["backtest", "--config", str(demo_job), "--start", end.isoformat(),
                 "--end", start.isoformat()]) == 2
    assert "must come after --start" in capsys.readouterr().err


def test_bad_job_file_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "job.yaml"
    bad.write_text("name: demo\nsource: {type: demo, clusterz: 2}\n")
    assert main(["run", "--config", str(bad), "--once"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "clusterz" in err


def _event(n_points: int, status: str = "open") -> AnomalyEvent:
    t = pd.Timestamp("2026-03-01T10:00Z")
    return AnomalyEvent(event_id="e1", entity="eks-a", start=t,
                        end=t + pd.Timedelta(minutes=5 * (n_points - 1)), peak_score=1.6,
                        peak_time=t, top_metrics=(("cluster_cpu_request_ratio", 0.8),),
                        n_points=n_points, status=status, weight=1.6)


def _sink(rx: Receiver, tmp_path: Path) -> NotifierSink:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    return NotifierSink(Dispatcher(store, WebhookNotifier(rx.url), job="demo"),
                        policy=AlertPolicy(min_consecutive=3))


def test_notifier_sink_alerts_after_min_consecutive_and_resolves(tmp_path: Path) -> None:
    rx = Receiver()
    try:
        sink = _sink(rx, tmp_path)
        sink.notify("demo", [_event(2)], model="m")
        assert rx.bodies == []  # a two-point blip pages nobody
        sink.notify("demo", [_event(3)], model="m")
        sink.notify("demo", [_event(4)], model="m")  # same incident, still open: no repeat
        sink.notify("demo", [_event(5, "closed")], model="m")
        statuses = [a["status"] for b in rx.bodies for a in b["alerts"]]
        assert statuses == ["firing", "resolved"]
        assert rx.bodies[0]["alerts"][0]["top_metrics"][0]["metric"] == \
            "cluster_cpu_request_ratio"
    finally:
        rx.close()


def test_short_incident_that_ended_within_a_tick_is_still_reported(tmp_path: Path) -> None:
    rx = Receiver()
    try:
        sink = _sink(rx, tmp_path)
        sink.notify("demo", [_event(4, "closed")], model="m")
        assert [a["status"] for b in rx.bodies for a in b["alerts"]] == ["firing", "resolved"]
    finally:
        rx.close()


def test_run_without_a_model_and_the_source_down_stays_up_and_retries(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Issue 10.9: no bundle and Prometheus unreachable: `run` keeps ticking (each tick tries
    to train again) instead of exiting; the failures are reported per tick."""
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    job = tmp_path / "job.yaml"
    job.write_text(
        "name: prom\ninterval: 1s\n"
        f"source: {{type: prometheus, url: 'http://127.0.0.1:{port}', max_retries: 0,\n"
        "  timeout_s: 2, queries: {cpu: 'avg by (cluster) (cpu)'}}\n")
    code = main(["run", "--config", str(job), "--state-dir", str(tmp_path / "state"),
                 "--metrics-port", "0", "--max-ticks", "3"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "no model yet" in captured.err
    assert captured.out.count("tick failed at fetch") == 3
    assert not (tmp_path / "state" / "models" / "prom" / "manifest.json").exists()


def test_run_counts_failed_deliveries_as_notify_errors(tmp_path: Path) -> None:
    """Issue 10.4: in `run`, as in `serve`, each failed delivery is counted in
    aws_anomaly_errors_total{stage="notify"}; delivery happens outside the tick."""
    from aws_anomaly.cli.loop import _runner
    from aws_anomaly.config import JobConfig
    from aws_anomaly.service.exporter import Exporter
    from aws_anomaly.sources.demo import DemoSource

    from .hookkit import SwitchableReceiver

    rx = SwitchableReceiver(mode="fail")
    job = JobConfig.model_validate({
        "name": "demo", "lookback": "1d", "alert": {"min_consecutive": 1},
        "model": {"history": "2d", "threshold": {"method": "contamination",
                                                  "contamination": 0.05}},
        "source": {"type": "demo", "clusters": 2, "days": 3, "future_days": 1},
        "notifiers": [{"type": "webhook", "url": rx.url, "timeout_s": 2}]})
    t0 = pd.Timestamp("2026-03-01T00:00Z")
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    exporter = Exporter()
    exporter.register_job("demo")
    source = DemoSource(job.source, start=t0, wall_clock=lambda: 0.0)
    runner, notifiers = _runner(job, source, tmp_path, store, exporter)
    # Not a first run (that one sends nothing of its look-back): the job scored before.
    store.set_job_state("demo", {e: t0 - pd.Timedelta(days=1)
                                 for e in ("eks-prod-eu-west-1", "eks-prod-us-east-1")})
    try:
        res = runner.tick()
        assert res.ok and res.events, res.error
        assert rx.requests == 0  # the tick only queued its alerts
        for sink in notifiers:
            sink.start()
        deadline = time.monotonic() + 20
        while runner.errors["notify"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        text = exporter.render().decode()
        found = re.search(r'aws_anomaly_errors_total\{job="demo",stage="notify"\} (\S+)', text)
        assert found and float(found.group(1)) >= 1 and runner.errors["notify"] >= 1
    finally:
        for sink in notifiers:
            sink.stop()
        rx.close()
        store.close()
