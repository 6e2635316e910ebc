"""Notifiers against real loopback receivers and a real Alertmanager."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aws_anomaly.errors import NotifierError
from aws_anomaly.service.notifiers import (
    Alert,
    AlertmanagerNotifier,
    Dispatcher,
    SlackNotifier,
    WebhookNotifier,
)

from .amkit import Receiver, free_port, running_alertmanager

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
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def test_webhook_retries_transient_failures_and_delivers_once() -> None:
    rx = Receiver(fail_with=[503, 503])
    clock = FakeClock()
    errors: list[str] = []
    d = Dispatcher([WebhookNotifier(rx.url)], clock=clock, sleep=clock.sleep, seed=1,
                   on_error=errors.append)
    try:
        assert d.notify([_alert()]) == 1
        assert rx.requests == 3 and errors == ["webhook", "webhook"]
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


def test_no_alert_lost_while_receiver_is_down() -> None:
    port = free_port()
    clock = FakeClock()
    d = Dispatcher([WebhookNotifier(f"http://127.0.0.1:{port}/hook", timeout_s=1)],
                   clock=clock, sleep=clock.sleep, seed=2)
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


def test_client_error_is_permanent_and_not_retried() -> None:
    rx = Receiver(fail_with=[400])
    clock = FakeClock()
    d = Dispatcher([WebhookNotifier(rx.url)], clock=clock, sleep=clock.sleep)
    try:
        assert d.notify([_alert()]) == 0
        assert rx.requests == 1
        assert d.outbox_size == 0 and d.dropped and "400" in d.dropped[0][1]
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


def test_bad_url_is_a_clear_error() -> None:
    with pytest.raises(NotifierError, match="must start with http"):
        WebhookNotifier("ftp://example")


def test_alertmanager_routes_alert_to_webhook_and_resolves() -> None:
    rx = Receiver()
    try:
        with running_alertmanager(rx.url) as am:
            d = Dispatcher([AlertmanagerNotifier(am)])
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
