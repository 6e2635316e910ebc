"""Notifications for anomaly events: Alertmanager API v2, a generic JSON webhook, Slack.

The path of an alert:

1. The job runner hands each tick's events to every :class:`NotifierSink`, which turns them
   into :class:`Alert` objects as the job's :class:`~aws_anomaly.events.AlertPolicy` decides
   (an event fires once it holds ``min_consecutive`` anomalous points and resolves when it
   closes; the exporter's ``aws_anomaly_alert_active`` and the Prometheus rules follow the
   same policy) and plans outbox rows (:meth:`Dispatcher.plan`). The runner writes those
   rows **in the tick's transaction** (``Store.commit_tick``): an alert exists exactly when
   its event does, and it survives SIGTERM, SIGKILL and restarts.
2. A :class:`Dispatcher` thread per (job, notifier) delivers the outbox, apart from scoring: a
   dead receiver never slows a tick. It sends due rows in batches, marks them sent at once
   (so after a restart nothing delivered is sent again, and everything pending is), retries
   failures with exponential backoff and jitter, counts and logs every failed attempt, drops a
   4xx answer at once (permanent: the payload or the credentials are wrong) and drops rows
   still undelivered after ``max_age`` with an error log line and a count.
3. Repeats: the same event in the same state is queued once; a still-firing event is queued
   again ``repeat_interval`` after its last delivery (Alertmanager: at least every 60 s, so its
   ``resolve_timeout`` never resolves an alert that still fires).

Delivery is at-least-once with a window of one request: a process killed after the receiver
answered but before the row is marked sent sends that batch again after the restart (each
alert carries its ``event_id`` and ``status`` for receivers that deduplicate).

URLs in messages and logs are redacted (credentials, query strings, Slack webhook paths).
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

from aws_anomaly.errors import NotifierError, StoreError
from aws_anomaly.events import AlertPolicy
from aws_anomaly.service.redact import redact, redact_url, register_secret
from aws_anomaly.store import OutboxItem, OutboxRow, Store

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

    def to_record(self) -> dict[str, Any]:
        """Everything needed to rebuild the alert (:meth:`from_record`), JSON-ready."""
        return {"event_id": self.event_id, "job": self.job, "model": self.model,
                "entity": self.entity, "score": float(self.score),
                "starts_at": _iso(self.starts_at),
                "ends_at": _iso(self.ends_at) if self.ends_at else None,
                "top_metrics": [[m, float(c)] for m, c in self.top_metrics],
                "severity": self.severity, "dashboard_url": self.dashboard_url,
                "labels": dict(self.labels)}

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> Alert:
        """The alert stored by :meth:`to_record`."""
        try:
            return cls(event_id=str(rec["event_id"]), job=str(rec["job"]),
                       model=str(rec["model"]), entity=str(rec["entity"]),
                       score=float(rec["score"]), starts_at=_to_datetime(rec["starts_at"]),
                       ends_at=_to_datetime(rec["ends_at"]) if rec.get("ends_at") else None,
                       top_metrics=tuple((str(m), float(c)) for m, c in rec["top_metrics"]),
                       severity=str(rec.get("severity", "warning")),
                       dashboard_url=str(rec.get("dashboard_url", "")),
                       labels={str(k): str(v) for k, v in (rec.get("labels") or {}).items()})
        except (KeyError, TypeError, ValueError) as exc:
            raise NotifierError(f"outbox row of event {rec.get('event_id')!r} is not an alert "
                                f"({type(exc).__name__}: {exc})", permanent=True) from None


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
            raise NotifierError(f"{self.name} notifier: url {redact_url(url)!r} must start "
                                "with http(s)://")
        self.url = url
        self.headers = dict(headers or {})
        for value in self.headers.values():
            register_secret(value)
        self._client = client or httpx.Client(timeout=timeout_s)

    @property
    def safe_url(self) -> str:
        """The URL as logs and messages show it (no credentials, query or secret path)."""
        return redact_url(self.url)

    def payload(self, alerts: Sequence[Alert]) -> Any:
        raise NotImplementedError

    def send(self, alerts: Sequence[Alert]) -> None:
        if not alerts:
            return
        try:
            resp = self._client.post(self.url, json=self.payload(alerts), headers=self.headers)
        except httpx.HTTPError as exc:
            raise NotifierError(f"{self.name} notifier: cannot reach {self.safe_url}: "
                                f"{type(exc).__name__}: {redact(str(exc))}") from None
        if resp.status_code >= 400:
            raise NotifierError(
                f"{self.name} notifier: {self.safe_url} answered {resp.status_code}: "
                f"{redact(resp.text[:200])}",
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

    def __init__(self, url: str, **kw: Any) -> None:
        register_secret(url)  # the URL of an incoming webhook is its credential
        super().__init__(url, **kw)

    @property
    def safe_url(self) -> str:
        """Scheme and host only: the path of an incoming webhook is its secret."""
        shown = redact_url(self.url)
        scheme, _, rest = shown.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0]}/***"

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



#: Outcomes counted by :class:`Dispatcher`'s ``on_outcome`` hook.
OUTCOMES = ("sent", "retry", "dropped", "expired")


class Dispatcher:
    """Delivers one notifier's alerts of one job from the store's outbox, in its own thread.

    Parameters
    ----------
    store
        Where the outbox lives (``Store("sqlite://")`` for a throwaway one).
    notifier
        Where alerts go.
    job
        The job whose alerts these are.
    key
        The notifier's name in the outbox (default ``notifier.name``); stable across restarts.
    repeat_interval_s
        Queue a still-firing alert again this long after its last delivery (``None``: once).
        Alertmanager notifiers repeat at least every ``notifier.resend_interval_s``.
    max_age_s
        Undelivered alerts older than this are dropped (logged at ERROR and counted).
    base_backoff_s, max_backoff_s
        Retry delay: ``base * 2**attempts`` capped at ``max``, with jitter (half to all of it).
    batch_size
        Alerts per request.
    poll_s
        Longest sleep of the delivery thread between looks at the outbox.
    on_error
        ``(key, exception)`` for each failed attempt (serve and run count them as
        ``aws_anomaly_errors_total{stage="notify"}``).
    on_outcome
        ``(key, outcome, count)``, outcome one of :data:`OUTCOMES`.
    clock
        Wall clock in seconds (injectable for tests).
    """

    def __init__(self, store: Store, notifier: Notifier, *, job: str, key: str | None = None,
                 repeat_interval_s: float | None = None, max_age_s: float = 86400.0,
                 base_backoff_s: float = 1.0, max_backoff_s: float = 60.0,
                 batch_size: int = 100, poll_s: float = 5.0,
                 on_error: Callable[[str, Exception], None] | None = None,
                 on_outcome: Callable[[str, str, int], None] | None = None,
                 clock: Callable[[], float] = time.time, seed: int | None = None) -> None:
        if max_age_s <= 0 or batch_size < 1 or base_backoff_s < 0 or poll_s <= 0:
            raise NotifierError(f"dispatcher {job}/{key or notifier.name}: max_age_s, "
                                "batch_size and poll_s must be > 0 and base_backoff_s >= 0")
        self.store = store
        self.notifier = notifier
        self.job = job
        self.key = key or notifier.name
        repeats = [x for x in (repeat_interval_s, notifier.resend_interval_s) if x is not None]
        self.repeat_after_s = min(repeats) if repeats else None
        self.max_age_s = max_age_s
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.batch_size = batch_size
        self.poll_s = poll_s
        self.on_error = on_error
        self.on_outcome = on_outcome
        self._clock = clock
        self._rng = random.Random(seed)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flush_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.delivered = 0
        self.failures = 0
        self.dropped: list[tuple[str, str]] = []  # (event_id, reason) of dropped alerts
        self.last_error: str | None = None

    # ------------------------------------------------------------------ queueing
    def plan(self, alerts: Iterable[Alert]) -> list[OutboxItem]:
        """Outbox rows for ``alerts`` (the runner writes them in the tick's transaction)."""
        return [OutboxItem(job=self.job, notifier=self.key, event_id=a.event_id,
                           status=a.status, payload=a.to_record(),
                           repeat_after_s=self.repeat_after_s if a.status == "firing"
                           else None) for a in alerts]

    def submit(self, alerts: Iterable[Alert]) -> int:
        """Queue alerts in their own transaction; returns how many rows changed."""
        n = self.store.enqueue_alerts(self.plan(alerts), now=self._clock())
        self.wake()
        return n

    def pending(self) -> list[Alert]:
        """Alerts waiting for delivery, oldest first."""
        return [Alert.from_record(r.payload) for r in self.store.outbox(
            job=self.job, notifier=self.key, state="pending")]

    @property
    def outbox_size(self) -> int:
        return len(self.store.outbox(job=self.job, notifier=self.key, state="pending"))

    # ------------------------------------------------------------------ delivery
    def _count(self, outcome: str, n: int) -> None:
        if self.on_outcome is not None and n:
            try:
                self.on_outcome(self.key, outcome, n)
            except Exception:  # monitoring must never stop delivery
                log.exception("notifier %s/%s: counting %s failed", self.job, self.key, outcome)

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        self.last_error = str(exc)
        if self.on_error is not None:
            try:
                self.on_error(self.key, exc)
            except Exception:
                log.exception("notifier %s/%s: counting an error failed", self.job, self.key)

    def _backoff(self, attempts: int) -> float:
        cap = min(self.max_backoff_s, self.base_backoff_s * (2 ** min(attempts, 30)))
        return cap / 2 + self._rng.uniform(0, cap / 2)

    def _expire(self, now: float) -> None:
        gone = self.store.expire_alerts(self.job, self.key, older_than=now - self.max_age_s,
                                        now=now)
        if gone:
            log.error("job %s: notifier %s: dropped %d alert(s) undelivered for more than "
                      "%.0f s (max_age); events %s; last error: %s", self.job, self.key,
                      len(gone), self.max_age_s, sorted({r.event_id for r in gone})[:10],
                      gone[-1].last_error or "none")
            self.dropped += [(r.event_id, "expired") for r in gone]
            self._count("expired", len(gone))

    def flush(self) -> int:
        """Deliver everything due now (one attempt per batch, no sleeping); returns how many
        alerts were delivered. A failed batch is retried later, after its backoff."""
        with self._flush_lock:
            delivered = 0
            try:
                now = self._clock()
                self._expire(now)
                while not self._stop.is_set():
                    due = self.store.due_alerts(self.job, self.key, now=now,
                                                limit=self.batch_size)
                    if not due:
                        break
                    sent = self._send(due)
                    delivered += sent
                    if sent < len(due):
                        break
                    now = self._clock()
            except StoreError as exc:
                log.warning("job %s: notifier %s: the outbox is unavailable: %s", self.job,
                            self.key, exc)
                self._failed(exc)
            self.delivered += delivered
            return delivered

    def _send(self, rows: list[OutboxRow]) -> int:
        good: list[OutboxRow] = []
        alerts: list[Alert] = []
        for r in rows:
            try:
                alerts.append(Alert.from_record(r.payload))
                good.append(r)
            except NotifierError as exc:
                self.store.mark_alerts([r.id], "dropped", now=self._clock(), error=str(exc))
                log.error("job %s: notifier %s: %s", self.job, self.key, exc)
                self.dropped.append((r.event_id, str(exc)))
                self._count("dropped", 1)
        if not good:
            return 0
        ids = [r.id for r in good]
        try:
            self.notifier.send(alerts)
        except Exception as exc:  # any failure of one notifier is retried, counted, logged
            self._failed(exc)
            now = self._clock()
            if isinstance(exc, NotifierError) and exc.permanent:
                self.store.mark_alerts(ids, "dropped", now=now, error=str(exc))
                log.error("job %s: notifier %s: dropping %d alert(s), the receiver refused "
                          "them: %s", self.job, self.key, len(good), exc)
                self.dropped += [(r.event_id, str(exc)) for r in good]
                self._count("dropped", len(good))
                return 0
            attempts = max(r.attempts for r in good) + 1
            wait = self._backoff(attempts - 1)
            self.store.mark_alerts(ids, "pending", now=now, retry_at=now + wait,
                                   error=str(exc))
            log.warning("job %s: notifier %s: delivering %d alert(s) failed (attempt %d, "
                        "next in %.1f s): %s", self.job, self.key, len(good), attempts, wait,
                        exc)
            self._count("retry", len(good))
            return 0
        self.store.mark_alerts(ids, "sent", now=self._clock())
        self._count("sent", len(good))
        return len(good)

    def notify(self, alerts: Iterable[Alert]) -> int:
        """Submit and flush in one call (no thread needed); returns alerts delivered now."""
        self.submit(alerts)
        return self.flush()

    # ------------------------------------------------------------------ thread
    def wake(self) -> None:
        """Look at the outbox now (after a tick queued alerts)."""
        self._wake.set()

    def start(self) -> None:
        """Deliver in a background thread until :meth:`stop`."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"notify-{self.job}-{self.key}")
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to stop after its running request (returns at once)."""
        self._stop.set()
        self._wake.set()

    def stop(self, timeout: float = 15.0) -> bool:
        """Stop the thread after its running request; True when it ended. Undelivered
        alerts stay in the outbox for the next start."""
        self.request_stop()
        t = self._thread
        if t is not None:
            t.join(timeout)
            return not t.is_alive()
        return True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.flush()
                nxt = self.store.next_alert_due(self.job, self.key)
            except Exception:  # the thread must survive anything; the error is logged
                log.exception("job %s: notifier %s: delivery pass failed", self.job, self.key)
                nxt = None
            wait = self.poll_s
            if nxt is not None:
                wait = min(wait, max(0.0, nxt - self._clock()))
            if wait > 0:
                self._wake.wait(wait)


def serialise(alerts: Sequence[Alert]) -> str:
    """JSON text of alerts (for logs and the CLI)."""
    return json.dumps([a.to_dict() for a in alerts], indent=2)


class NotifierSink:
    """The job runner's alert sink: anomaly events -> alerts -> the outbox of one notifier.

    What is sent is the ``policy``'s decision (:meth:`AlertPolicy.transitions`): an event
    fires once it holds ``min_consecutive`` anomalous points (shorter blips never page
    anyone) and its end is sent as a resolution; an event that both reached the bar and ended
    within one tick is sent as firing, then resolved, so receivers still see the incident.
    The runner calls :meth:`plan_alerts` before committing a tick (the rows go into the
    tick's transaction) and :meth:`wake` after; :meth:`notify` queues and delivers at once,
    for use without a runner.
    """

    def __init__(self, dispatcher: Dispatcher, *, policy: AlertPolicy | None = None,
                 dashboard_url: str = "", labels: Mapping[str, str] | None = None) -> None:
        self.dispatcher = dispatcher
        self.policy = policy or AlertPolicy()
        self.dashboard_url = dashboard_url
        self.labels = dict(labels or {})

    @property
    def min_consecutive(self) -> int:
        return self.policy.min_consecutive

    @property
    def severity(self) -> str:
        return self.policy.severity

    def alerts_for(self, job: str, events: Sequence[Any], *, model: str) -> list[Alert]:
        """The alerts ``events`` raise (see the class docstring)."""
        alerts: list[Alert] = []
        for ev, state in self.policy.transitions(events):
            alert = alert_from_event(ev, job=job, model=model, severity=self.severity,
                                     dashboard_url=self.dashboard_url, labels=self.labels)
            alerts.append(replace(alert, ends_at=None) if state == "firing" else alert)
        return alerts

    def plan_alerts(self, job: str, events: Sequence[Any], *, model: str) -> list[OutboxItem]:
        return self.dispatcher.plan(self.alerts_for(job, events, model=model))

    def wake(self) -> None:
        self.dispatcher.wake()

    def notify(self, job: str, events: Sequence[Any], *, model: str) -> int:
        """Queue the events' alerts and deliver what is due now; returns alerts delivered."""
        alerts = self.alerts_for(job, events, model=model)
        if alerts:
            self.dispatcher.submit(alerts)
        return self.dispatcher.flush()

    def start(self) -> None:
        self.dispatcher.start()

    def request_stop(self) -> None:
        self.dispatcher.request_stop()

    def stop(self, timeout: float = 15.0) -> bool:
        return self.dispatcher.stop(timeout)


def build_notifier_sinks(job: Any, store: Store, *, environ: Mapping[str, str] | None = None,
                         on_error: Callable[[str, Exception], None] | None = None,
                         on_outcome: Callable[[str, str, int], None] | None = None,
                         clock: Callable[[], float] = time.time,
                         policy: AlertPolicy | None = None) -> list[NotifierSink]:
    """One :class:`NotifierSink` per notifier of a job (``aws_anomaly.config.JobConfig``),
    each with a :class:`Dispatcher` on ``store`` (named ``<type>-<position>`` in the outbox).

    ``policy`` is the job's alert policy (default :meth:`AlertPolicy.from_job`); a notifier's
    own ``min_consecutive`` raises or lowers the bar for that notifier only."""
    base = policy or AlertPolicy.from_job(job)
    sinks = []
    for i, cfg in enumerate(job.notifiers):
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
        repeat = cfg.repeat_interval.total_seconds() if cfg.repeat_interval else None
        dispatcher = Dispatcher(store, n, job=job.name, key=f"{kind}-{i}",
                                repeat_interval_s=repeat,
                                max_age_s=cfg.max_age.total_seconds(),
                                on_error=on_error, on_outcome=on_outcome, clock=clock)
        sinks.append(NotifierSink(
            dispatcher, policy=base.with_min_consecutive(cfg.min_consecutive),
            dashboard_url=str(cfg.dashboard_url) if cfg.dashboard_url else "", labels=labels))
    return sinks
