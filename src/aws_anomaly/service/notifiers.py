"""Notifications for anomaly events: Alertmanager API v2, a generic JSON webhook, Slack.

A :class:`Dispatcher` sits between the job runner and the notifiers. It turns anomaly events
into :class:`Alert` objects, drops repeats (the same event in the same state is sent once, or
once per ``resend_interval_s`` for Alertmanager, which expects firing alerts to be re-sent
before its ``resolve_timeout``), and keeps every alert that could not be delivered in an
outbox that is retried with exponential backoff and jitter on the next ticks, so a transient
failure loses nothing. A 4xx answer is permanent (the payload or credentials are wrong): it is
not retried, it is counted and reported.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from aws_anomaly.errors import NotifierError

__all__ = [
    "Alert",
    "AlertmanagerNotifier",
    "Dispatcher",
    "Notifier",
    "NotifierSink",
    "SlackNotifier",
    "WebhookNotifier",
    "alert_from_event",
    "build_notifier_sinks",
]

log = logging.getLogger(__name__)


def _iso(ts: datetime) -> str:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Alert:
    """One anomaly event as notifiers see it."""

    event_id: str
    job: str
    model: str
    entity: str
    score: float
    starts_at: datetime
    ends_at: datetime | None = None
    top_metrics: tuple[tuple[str, float], ...] = ()
    severity: str = "warning"
    dashboard_url: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return "resolved" if self.ends_at is not None else "firing"

    @property
    def link(self) -> str:
        base = self.dashboard_url.rstrip("/")
        return f"{base}/?entity={quote(self.entity)}&anomaly={quote(self.event_id)}" if base else ""

    def top_metric_text(self) -> str:
        return ", ".join(f"{m} ({c:.0%})" for m, c in self.top_metrics) or "unknown"

    def summary(self) -> str:
        return f"Anomaly on {self.entity} ({self.model}): score {self.score:.2f}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "status": self.status,
            "job": self.job,
            "model": self.model,
            "entity": self.entity,
            "score": round(float(self.score), 4),
            "starts_at": _iso(self.starts_at),
            "ends_at": _iso(self.ends_at) if self.ends_at else None,
            "top_metrics": [{"metric": m, "contribution": round(float(c), 4)}
                            for m, c in self.top_metrics],
            "severity": self.severity,
            "dashboard_url": self.link,
        }


def alert_from_event(event: Any, *, job: str, model: str, severity: str = "warning",
                     dashboard_url: str = "", labels: Mapping[str, str] | None = None) -> Alert:
    """Build an :class:`Alert` from an anomaly event (``aws_anomaly.events.AnomalyEvent``).

    The event needs ``event_id``, ``entity``, ``start``, ``end``, ``peak_score``,
    ``top_metrics`` (pairs of metric and contribution) and ``status`` (``"open"`` while the
    anomaly lasts; anything else means it ended at ``end``).
    """
    status = str(getattr(event, "status", "open"))
    end = getattr(event, "end", None)
    ends_at = None if status == "open" or end is None else _to_datetime(end)
    return Alert(
        event_id=str(event.event_id), job=job, model=model, entity=str(event.entity),
        score=float(event.peak_score), starts_at=_to_datetime(event.start), ends_at=ends_at,
        top_metrics=tuple((str(m), float(c)) for m, c in getattr(event, "top_metrics", ())),
        severity=severity, dashboard_url=dashboard_url, labels=dict(labels or {}),
    )


def _to_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if hasattr(value, "to_pydatetime"):
        return _to_datetime(value.to_pydatetime())
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


class Notifier(Protocol):
    """Delivers a batch of alerts; raises NotifierError (``permanent`` set for 4xx)."""

    name: str
    #: Re-send firing alerts this often (None: once per state change).
    resend_interval_s: float | None

    def send(self, alerts: Sequence[Alert]) -> None: ...


class _HttpNotifier:
    name = "http"
    resend_interval_s: float | None = None

    def __init__(self, url: str, *, headers: Mapping[str, str] | None = None,
                 timeout_s: float = 5.0, client: httpx.Client | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise NotifierError(f"{self.name} notifier: url {url!r} must start with http(s)://")
        self.url = url
        self.headers = dict(headers or {})
        self._client = client or httpx.Client(timeout=timeout_s)

    def payload(self, alerts: Sequence[Alert]) -> Any:
        raise NotImplementedError

    def send(self, alerts: Sequence[Alert]) -> None:
        if not alerts:
            return
        try:
            resp = self._client.post(self.url, json=self.payload(alerts), headers=self.headers)
        except httpx.HTTPError as exc:
            raise NotifierError(f"{self.name} notifier: cannot reach {self.url}: {exc}") from exc
        if resp.status_code >= 400:
            raise NotifierError(
                f"{self.name} notifier: {self.url} answered {resp.status_code}: "
                f"{resp.text[:200]}",
                permanent=400 <= resp.status_code < 500 and resp.status_code != 429)

    def close(self) -> None:
        self._client.close()


class AlertmanagerNotifier(_HttpNotifier):
    """Posts to Alertmanager's API v2 (``POST {url}/api/v2/alerts``); resolves via ``endsAt``.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> a = Alert("e1", "demo", "m1", "eks-a", 1.4, datetime(2026, 1, 1, tzinfo=UTC),
    ...           top_metrics=(("cpu", 0.8),))
    >>> body = AlertmanagerNotifier("http://127.0.0.1:9093").payload([a])
    >>> body[0]["labels"]["entity"], body[0]["annotations"]["top_metric"], "endsAt" in body[0]
    ('eks-a', 'cpu', False)
    """

    name = "alertmanager"
    resend_interval_s = 60.0

    def __init__(self, url: str, **kw: Any) -> None:
        base = url.rstrip("/")
        super().__init__(base if base.endswith("/api/v2/alerts") else base + "/api/v2/alerts",
                         **kw)

    def payload(self, alerts: Sequence[Alert]) -> list[dict[str, Any]]:
        out = []
        for a in alerts:
            item: dict[str, Any] = {
                "labels": {"alertname": "AwsAnomalyDetected", "entity": a.entity,
                           "model": a.model, "job": a.job, "severity": a.severity,
                           **a.labels},
                "annotations": {
                    "summary": a.summary(),
                    "top_metric": a.top_metrics[0][0] if a.top_metrics else "unknown",
                    "top_metrics": a.top_metric_text(),
                    "score": f"{a.score:.3f}",
                    "event_id": a.event_id,
                    "dashboard": a.link,
                },
                "startsAt": _iso(a.starts_at),
            }
            if a.link:
                item["generatorURL"] = a.link
            if a.ends_at is not None:
                item["endsAt"] = _iso(a.ends_at)
            out.append(item)
        return out


class WebhookNotifier(_HttpNotifier):
    """Posts ``{"version": "1", "alerts": [...]}`` JSON to any HTTP endpoint."""

    name = "webhook"

    def payload(self, alerts: Sequence[Alert]) -> dict[str, Any]:
        return {"version": "1", "source": "aws-anomaly", "alerts": [a.to_dict() for a in alerts]}


class SlackNotifier(_HttpNotifier):
    """Posts a Slack-compatible incoming-webhook payload (``text`` + ``blocks``)."""

    name = "slack"

    def payload(self, alerts: Sequence[Alert]) -> dict[str, Any]:
        lines, blocks = [], []
        for a in alerts:
            icon = ":white_check_mark:" if a.status == "resolved" else ":rotating_light:"
            text = (f"{icon} *{a.status.upper()}* anomaly on *{a.entity}* ({a.model}) — score "
                    f"{a.score:.2f} since {_iso(a.starts_at)}\nTop metrics: {a.top_metric_text()}")
            if a.link:
                text += f"\n<{a.link}|Open in dashboard>"
            lines.append(text)
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
        return {"text": "\n\n".join(lines), "blocks": blocks}


@dataclass
class _Pending:
    alert: Alert
    notifier: str
    attempts: int = 0
    next_try: float = 0.0


class Dispatcher:
    """Deduplicates alerts and delivers them to notifiers without losing any.

    Parameters
    ----------
    notifiers
        Where alerts go.
    max_attempts_per_flush
        Delivery attempts for one alert within one :meth:`flush` (with backoff between).
    base_backoff_s, max_backoff_s
        Exponential backoff with full jitter between attempts, also across flushes.
    on_error
        Called with the notifier name for each failed attempt (e.g. to count errors).
    """

    def __init__(self, notifiers: Iterable[Notifier], *, max_attempts_per_flush: int = 3,
                 base_backoff_s: float = 0.2, max_backoff_s: float = 30.0,
                 on_error: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, seed: int | None = None) -> None:
        self.notifiers = {n.name: n for n in notifiers}
        self.max_attempts_per_flush = max_attempts_per_flush
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.on_error = on_error
        self._clock, self._sleep = clock, sleep
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._outbox: list[_Pending] = []
        self._sent: dict[tuple[str, str, str], float] = {}  # (notifier, event, status) -> when
        self.delivered = 0
        self.dropped: list[tuple[str, str]] = []  # (notifier, reason) for permanent failures

    @property
    def outbox_size(self) -> int:
        with self._lock:
            return len(self._outbox)

    def submit(self, alerts: Iterable[Alert]) -> None:
        """Queue alerts that are new (or due for re-sending) for every notifier."""
        now = self._clock()
        with self._lock:
            queued = {(p.notifier, p.alert.event_id, p.alert.status) for p in self._outbox}
            for a in alerts:
                for name, n in self.notifiers.items():
                    key = (name, a.event_id, a.status)
                    if key in queued:
                        # keep the newest content (score may have grown) for the queued one
                        for p in self._outbox:
                            if (p.notifier, p.alert.event_id, p.alert.status) == key:
                                p.alert = a
                        continue
                    last = self._sent.get(key)
                    if last is not None and (a.status == "resolved" or n.resend_interval_s is None
                                             or now - last < n.resend_interval_s):
                        continue
                    self._outbox.append(_Pending(a, name))
                    queued.add(key)

    def flush(self) -> int:
        """Try to deliver everything queued; returns how many alerts were delivered now."""
        delivered = 0
        for name, notifier in self.notifiers.items():
            with self._lock:
                due = [p for p in self._outbox
                       if p.notifier == name and p.next_try <= self._clock()]
            if not due:
                continue
            for attempt in range(self.max_attempts_per_flush):
                try:
                    notifier.send([p.alert for p in due])
                except NotifierError as exc:
                    if self.on_error:
                        self.on_error(name)
                    if exc.permanent:
                        log.error("dropping %d alert(s): %s", len(due), exc)
                        with self._lock:
                            for p in due:
                                self._outbox.remove(p)
                                self.dropped.append((name, str(exc)))
                        break
                    log.warning("notification attempt %d failed: %s", attempt + 1, exc)
                    wait = self._backoff(max(p.attempts for p in due) + attempt)
                    if attempt + 1 < self.max_attempts_per_flush:
                        self._sleep(wait)
                    else:
                        with self._lock:
                            for p in due:
                                p.attempts += self.max_attempts_per_flush
                                p.next_try = self._clock() + wait
                    continue
                now = self._clock()
                with self._lock:
                    for p in due:
                        self._outbox.remove(p)
                        self._sent[(name, p.alert.event_id, p.alert.status)] = now
                delivered += len(due)
                break
        self.delivered += delivered
        return delivered

    def _backoff(self, attempt: int) -> float:
        cap = min(self.max_backoff_s, self.base_backoff_s * (2 ** attempt))
        return self._rng.uniform(0, cap)

    def notify(self, alerts: Iterable[Alert]) -> int:
        """Submit and flush in one call."""
        self.submit(alerts)
        return self.flush()

    def pending(self) -> list[Alert]:
        with self._lock:
            return [replace(p.alert) for p in self._outbox]


def serialise(alerts: Sequence[Alert]) -> str:
    """JSON text of alerts (for logs and the CLI)."""
    return json.dumps([a.to_dict() for a in alerts], indent=2)


class NotifierSink:
    """The job runner's event sink: anomaly events -> alerts -> one notifier, via a Dispatcher.

    An event alerts once it has lasted ``min_consecutive`` anomalous points (shorter blips
    never page anyone); its end is sent as a resolution. An event that both reached the bar
    and ended within one tick is sent as firing, then resolved, so webhook receivers still see
    the incident. Every call also retries what is still in the outbox.
    """

    def __init__(self, dispatcher: Dispatcher, *, min_consecutive: int = 1,
                 severity: str = "warning", dashboard_url: str = "",
                 labels: Mapping[str, str] | None = None) -> None:
        if min_consecutive < 1:
            raise ValueError(f"min_consecutive must be >= 1, got {min_consecutive}")
        self.dispatcher = dispatcher
        self.min_consecutive = min_consecutive
        self.severity = severity
        self.dashboard_url = dashboard_url
        self.labels = dict(labels or {})

    def on_events(self, job: str, events: Sequence[Any], *, model: str) -> None:
        alerts: list[Alert] = []
        for ev in events:
            if int(getattr(ev, "n_points", 1)) < self.min_consecutive:
                continue
            alert = alert_from_event(ev, job=job, model=model, severity=self.severity,
                                     dashboard_url=self.dashboard_url, labels=self.labels)
            if alert.status == "resolved":
                alerts.append(replace(alert, ends_at=None))
            alerts.append(alert)
        if alerts:
            self.dispatcher.submit(alerts)
        self.dispatcher.flush()


def build_notifier_sinks(job: Any, *, environ: Mapping[str, str] | None = None,
                         on_error: Callable[[str], None] | None = None) -> list[NotifierSink]:
    """One :class:`NotifierSink` per notifier of a job (``aws_anomaly.config.JobConfig``)."""
    sinks = []
    for cfg in job.notifiers:
        kind = cfg.type
        if kind == "alertmanager":
            n: Notifier = AlertmanagerNotifier(str(cfg.url), timeout_s=cfg.timeout_s)
            labels = dict(cfg.labels)
        elif kind == "webhook":
            n = WebhookNotifier(str(cfg.url), headers=cfg.resolved_headers(environ),
                                timeout_s=cfg.timeout_s)
            labels = {}
        elif kind == "slack":
            n = SlackNotifier(cfg.resolved_url(environ), timeout_s=cfg.timeout_s)
            labels = {}
        else:  # the config's discriminated union makes this unreachable for valid configs
            raise NotifierError(f"job {job.name}: unknown notifier type {kind!r}")
        minimum = cfg.min_consecutive or job.alert.min_consecutive
        sinks.append(NotifierSink(
            Dispatcher([n], on_error=on_error), min_consecutive=minimum,
            severity=job.alert.severity,
            dashboard_url=str(cfg.dashboard_url) if cfg.dashboard_url else "", labels=labels))
    return sinks
