"""Notifiers and the durable outbox against real loopback receivers, a real SQLite store and
a real Alertmanager."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aws_anomaly.errors import NotifierError
from aws_anomaly.service.notifiers import (
    Alert,
    AlertmanagerNotifier,
    Dispatcher,
    SlackNotifier,
    WebhookNotifier,
)
from aws_anomaly.store import Store

from .amkit import Receiver, free_port, running_alertmanager
from .hookkit import SwitchableReceiver

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def _alert(event_id: str = "ev-1", *, resolved: bool = False, score: float = 1.8) -> Alert:
    return Alert(event_id=event_id, job="demo", model="ocsvm-1", entity="eks-prod-a",
                 score=score, starts_at=T0, ends_at=T0 + timedelta(minutes=20) if resolved
                 else None, top_metrics=(("cluster_cpu_request_ratio", 0.7),
                                         ("cluster_pod_ratio", 0.3)),
                 dashboard_url="http://127.0.0.1:8080")


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    st = Store(f"sqlite:///{tmp_path / 'store.db'}")
    yield st
    st.close()


def dispatcher(store: Store, url: str, clock: FakeClock, **kw) -> Dispatcher:
    notifier = kw.pop("notifier", None) or WebhookNotifier(url, timeout_s=2)
    return Dispatcher(store, notifier, job="demo", clock=clock, seed=1, **kw)


def test_webhook_retries_transient_failures_and_delivers_once(store: Store) -> None:
    rx = Receiver(fail_with=[503, 503])
    clock = FakeClock()
    errors: list[str] = []
    d = dispatcher(store, rx.url, clock, on_error=lambda key, exc: errors.append(key))
    try:
        assert d.notify([_alert()]) == 0  # one attempt per flush: no sleeping in a caller
        clock.t += 1
        assert d.flush() == 0
        assert errors == ["webhook", "webhook"] and d.outbox_size == 1
        assert d.flush() == 0  # not due yet: backoff
        clock.t += 60
        assert d.flush() == 1 and rx.requests == 3
        (body,) = rx.bodies
        (a,) = body["alerts"]
        assert a["entity"] == "eks-prod-a" and a["status"] == "firing"
        assert a["top_metrics"][0]["metric"] == "cluster_cpu_request_ratio"
        assert a["dashboard_url"].startswith("http://127.0.0.1:8080/?entity=eks-prod-a")
        # the same event in the same state is not sent again; its resolution is
        assert d.notify([_alert(score=2.0)]) == 0
        assert d.notify([_alert(resolved=True)]) == 1
        assert [b["alerts"][0]["status"] for b in rx.bodies] == ["firing", "resolved"]
        assert d.notify([_alert(resolved=True)]) == 0
    finally:
        rx.close()


def test_no_alert_lost_while_receiver_is_down(store: Store) -> None:
    port = free_port()
    clock = FakeClock()
    d = dispatcher(store, f"http://127.0.0.1:{port}/hook", clock)
    assert d.notify([_alert("ev-1"), _alert("ev-2")]) == 0
    assert d.outbox_size == 2
    rx = Receiver(port=port)
    try:
        clock.t += 60  # past the backoff
        assert d.flush() == 2
        assert d.outbox_size == 0
        assert sorted(a["event_id"] for a in rx.bodies[0]["alerts"]) == ["ev-1", "ev-2"]
    finally:
        rx.close()


def test_client_error_is_permanent_and_not_retried(store: Store,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    rx = Receiver(fail_with=[400])
    clock = FakeClock()
    outcomes: list[tuple[str, int]] = []
    d = dispatcher(store, rx.url, clock, on_outcome=lambda k, o, n: outcomes.append((o, n)))
    try:
        with caplog.at_level(logging.ERROR, logger="aws_anomaly.service.notifiers"):
            assert d.notify([_alert()]) == 0
        clock.t += 3600
        assert d.flush() == 0
        assert rx.requests == 1
        assert d.outbox_size == 0 and d.dropped and "400" in d.dropped[0][1]
        assert outcomes == [("dropped", 1)] and "refused" in caplog.text
    finally:
        rx.close()


def test_outbox_survives_a_restart_and_delivers_exactly_once(tmp_path: Path) -> None:
    """Issue 10.1: 30 alerts, the receiver answers 500, the process stops (a clean stop,
    then a fresh store and dispatcher on the same file); after the restart every alert is
    delivered once, none twice."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    rx = SwitchableReceiver(mode="fail")
    try:
        first = Store(url)
        d = Dispatcher(first, WebhookNotifier(rx.url, timeout_s=2), job="demo",
                       base_backoff_s=0.05, max_backoff_s=0.2, poll_s=0.05, batch_size=7)
        d.start()
        alerts = [_alert(f"ev-{i}") for i in range(30)]
        d.submit(alerts[:15])
        d.submit(alerts[15:])
        deadline = time.monotonic() + 20
        while rx.failed < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rx.failed >= 3 and rx.delivered() == set()
        assert d.stop(10)
        first.close()

        rx.mode = "ok"
        second = Store(url)
        d2 = Dispatcher(second, WebhookNotifier(rx.url, timeout_s=2), job="demo",
                        poll_s=0.05, batch_size=7)
        assert d2.outbox_size == 30
        d2.start()
        want = {(a.event_id, "firing") for a in alerts}
        rx.wait_for(lambda got: got >= want, timeout=20)
        assert d2.stop(10)
        assert rx.delivered() == want and rx.duplicates() == {}
        assert second.outbox_counts() == {"pending": 0, "sent": 30, "dropped": 0}
        second.close()
    finally:
        rx.close()


def test_undelivered_alerts_expire_after_max_age_logged_and_counted(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    rx = SwitchableReceiver(mode="fail")
    clock = FakeClock()
    outcomes: list[tuple[str, str, int]] = []
    d = dispatcher(store, rx.url, clock, max_age_s=600,
                   on_outcome=lambda k, o, n: outcomes.append((k, o, n)))
    try:
        d.notify([_alert("ev-1"), _alert("ev-2")])
        clock.t += 599  # younger than max_age: kept and retried
        d.flush()
        assert d.outbox_size == 2 and not any(o == "expired" for _, o, _ in outcomes)
        clock.t += 2
        with caplog.at_level(logging.ERROR, logger="aws_anomaly.service.notifiers"):
            d.flush()
        assert d.outbox_size == 0 and ("webhook", "expired", 2) in outcomes
        assert "dropped 2 alert(s) undelivered" in caplog.text and "ev-1" in caplog.text
        assert store.outbox_counts() == {"pending": 0, "sent": 0, "dropped": 2}
    finally:
        rx.close()


def test_repeat_interval_resends_a_still_firing_alert(store: Store) -> None:
    """Issue 10.4: repeat_interval is honoured: a firing alert goes again once that long
    passed since its last delivery, never sooner; a resolution never repeats."""
    rx = SwitchableReceiver()
    clock = FakeClock()
    d = dispatcher(store, rx.url, clock, repeat_interval_s=300)
    try:
        assert d.notify([_alert()]) == 1
        clock.t += 299
        assert d.notify([_alert(score=2.0)]) == 0
        clock.t += 2
        assert d.notify([_alert(score=2.5)]) == 1
        assert rx.alerts == [("ev-1", "firing"), ("ev-1", "firing")]
        assert rx.bodies[1]["alerts"][0]["score"] == 2.5
        assert d.notify([_alert(resolved=True)]) == 1
        clock.t += 10_000
        assert d.notify([_alert(resolved=True)]) == 0
    finally:
        rx.close()


def test_slack_payload_carries_entity_score_metrics_and_link() -> None:
    rx = Receiver()
    try:
        SlackNotifier(rx.url).send([_alert()])
        (body,) = rx.bodies
        assert "eks-prod-a" in body["text"] and "1.80" in body["text"]
        assert "cluster_cpu_request_ratio (70%)" in body["text"]
        assert body["blocks"][0]["type"] == "section"
        assert "<http://127.0.0.1:8080/?entity=eks-prod-a" in body["text"]
    finally:
        rx.close()


def test_errors_never_show_a_secret_url() -> None:
    port = free_port()
    slack = SlackNotifier(f"http://127.0.0.1:{port}/services/T0/B0/s3cr3tPathToken",
                          timeout_s=1)
    with pytest.raises(NotifierError) as info:
        slack.send([_alert()])
    assert "s3cr3tPathToken" not in str(info.value)
    hook = WebhookNotifier(f"http://user:hunter22@127.0.0.1:{port}/h?key=abc123", timeout_s=1)
    with pytest.raises(NotifierError) as info:
        hook.send([_alert()])
    assert "hunter22" not in str(info.value) and "abc123" not in str(info.value)
    assert "127.0.0.1" in str(info.value)


def test_bad_url_is_a_clear_error() -> None:
    with pytest.raises(NotifierError, match="must start with http"):
        WebhookNotifier("ftp://example")


def test_alertmanager_routes_alert_to_webhook_and_resolves(store: Store) -> None:
    rx = Receiver()
    try:
        with running_alertmanager(rx.url) as am:
            d = Dispatcher(store, AlertmanagerNotifier(am), job="demo")
            assert d.notify([_alert()]) == 1

            def firing(bodies):
                return [b for b in bodies if b.get("status") == "firing"]

            (msg,) = rx.wait_for(firing)[:1]
            (a,) = msg["alerts"]
            assert a["labels"]["entity"] == "eks-prod-a"
            assert a["labels"]["alertname"] == "AwsAnomalyDetected"
            assert a["annotations"]["top_metric"] == "cluster_cpu_request_ratio"
            assert d.notify([_alert(resolved=True)]) == 1
            resolved = rx.wait_for(lambda bs: [b for b in bs if b.get("status") == "resolved"])
            assert resolved[0]["alerts"][0]["labels"]["entity"] == "eks-prod-a"
    finally:
        rx.close()
