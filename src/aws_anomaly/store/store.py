"""The anomaly store: events, feedback, the model registry index and job state.

One :class:`Store` wraps a SQLAlchemy engine. SQLite is the default (a file under the service's
data dir); a ``postgresql+psycopg://`` URL works the same, and the same test suite runs on both.

Durability choices for SQLite: WAL journal (readers never block the writer, so the API stays
responsive while the scheduler writes) and ``synchronous=FULL`` — a commit is on disk before
it returns, so an event the service reported as written survives a SIGKILL *and* a power cut;
WAL keeps the price of that fsync low. Every write is idempotent: events are upserted on
their identity (job, model, entity, start), job state on (job, entity), so a tick replayed after
a crash writes the same rows, and two jobs watching one entity never overwrite each other.

A tick's events, the job's new "last scored" timestamps and the notifications the tick raised
(the outbox) are written in one transaction (:meth:`Store.commit_tick`), so after a crash
either all are there or none: a range is never marked scored without its events, and an event
is never stored without its alerts. The outbox is delivered by
:class:`aws_anomaly.service.notifiers.Dispatcher` threads, apart from scoring.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pandas as pd
from sqlalchemy import (
    Engine,
    and_,
    case,
    create_engine,
    delete,
    event,
    func,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import CreateColumn

from aws_anomaly.durations import parse_timestamp
from aws_anomaly.errors import DataError, StoreError
from aws_anomaly.events import AnomalyEvent
from aws_anomaly.store import schema
from aws_anomaly.store.schema import events as t_events
from aws_anomaly.store.schema import feedback as t_feedback
from aws_anomaly.store.schema import job_state as t_state
from aws_anomaly.store.schema import models as t_models
from aws_anomaly.store.schema import outbox as t_outbox
from aws_anomaly.store.schema import stream_checkpoints as t_checkpoints
from aws_anomaly.store.schema import thresholds as t_thresholds

__all__ = [
    "FeedbackLabel",
    "FeedbackRecord",
    "ModelRecord",
    "OutboxItem",
    "OutboxRow",
    "Page",
    "Precision",
    "Store",
    "from_us",
    "to_us",
]

FeedbackLabel = Literal["true_positive", "false_positive"]
FEEDBACK_LABELS: tuple[str, ...] = ("true_positive", "false_positive")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(ts: Any) -> int:
    """A timestamp (aware or UTC-naive) as integer microseconds since the epoch.

    Plain :class:`datetime` values take an exact path that works for any year (pandas
    timestamps end in 2262).
    """
    if isinstance(ts, datetime) and not isinstance(ts, pd.Timestamp):
        aware = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
        return (aware - _EPOCH) // timedelta(microseconds=1)
    return int(parse_timestamp(ts, where="store", error=StoreError).value // 1000)


def from_us(us: int) -> pd.Timestamp:
    """Inverse of :func:`to_us` (a UTC timestamp)."""
    return pd.Timestamp(int(us) * 1000, tz="UTC")


def _now_us() -> int:
    return int(time.time() * 1e6)


@dataclass(frozen=True)
class FeedbackRecord:
    id: int
    event_id: str
    label: str
    note: str
    created: pd.Timestamp


@dataclass(frozen=True)
class ModelRecord:
    """One trained model version in the registry index (the bundle lives at ``path``)."""

    name: str
    version: str
    job: str
    path: str
    detector: str
    trained_at: pd.Timestamp
    active: bool = False
    info: Mapping[str, Any] = field(default_factory=dict)
    #: champion | challenger | rejected | retired (``schema.MODEL_STATUSES``); empty: decided
    #: by ``register_model`` (champion when activated).
    status: str = ""
    #: Why the version is what it is: the trigger, the promotion check and its figures.
    decision: Mapping[str, Any] | None = None

    @property
    def number(self) -> int | None:
        """The version as an integer (versions the registry assigns are 1, 2, ...)."""
        return int(self.version) if self.version.isdigit() else None


@dataclass(frozen=True)
class OutboxItem:
    """A notification to queue: one alert state (``firing``/``resolved``) of one event for one
    notifier of a job. ``repeat_after_s``: a firing alert whose last copy was delivered at
    least this long ago is queued again (``None``: once per event)."""

    job: str
    notifier: str
    event_id: str
    status: str
    payload: Mapping[str, Any]
    repeat_after_s: float | None = None


@dataclass(frozen=True)
class OutboxRow:
    """A queued notification as stored (times in seconds since the epoch)."""

    id: int
    job: str
    notifier: str
    event_id: str
    status: str
    seq: int
    payload: dict[str, Any]
    state: str
    attempts: int
    created: float
    next_try: float
    done: float | None
    last_error: str


OUTBOX_STATES = ("pending", "sent", "dropped")


@dataclass(frozen=True)
class StreamCheckpoint:
    """One entity's serialised live stream scorer (see :mod:`aws_anomaly.live`): the JSON
    ``state``, the ``.npz`` bytes of its arrays and the SHA-256 ``checksum`` of both."""

    job: str
    entity: str
    model_version: str
    last_ns: int
    state: dict[str, Any]
    arrays: bytes
    checksum: str


@dataclass(frozen=True)
class Page:
    """One page of events and the cursor of the next page (``None`` on the last)."""

    items: list[AnomalyEvent]
    next_cursor: str | None


@dataclass(frozen=True)
class Precision:
    """Precision measured from feedback: confirmed / (confirmed + refuted) events."""

    true_positives: int
    false_positives: int

    @property
    def reviewed(self) -> int:
        return self.true_positives + self.false_positives

    @property
    def precision(self) -> float | None:
        return self.true_positives / self.reviewed if self.reviewed else None


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _encode_cursor(start_us: int, event_id: str) -> str:
    return base64.urlsafe_b64encode(f"{start_us}:{event_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        start, event_id = raw.split(":", 1)
        return int(start), event_id
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise DataError(f"cursor {cursor!r} is not a cursor this API returned; pass the "
                        "'next_cursor' of the previous page") from None


class Store:
    """Events, feedback, model registry and job state in one SQL database.

    Parameters
    ----------
    url
        SQLAlchemy URL: ``sqlite:///path/to/file.db`` (parent folder created) or
        ``postgresql+psycopg://user@host:port/db``.

    Examples
    --------
    >>> st = Store("sqlite://")
    >>> st.set_job_state("demo", {"eks-a": pd.Timestamp("2026-01-01T00:05Z")})
    >>> st.job_state("demo")
    {'eks-a': Timestamp('2026-01-01 00:05:00+0000', tz='UTC')}
    >>> st.check_integrity()
    []
    """

    def __init__(self, url: str) -> None:
        self.url = url
        if not url.startswith(("sqlite", "postgresql")):
            raise StoreError(f"store {self._safe_url()}: this database is not supported; use "
                             "sqlite:///path/to/file.db or postgresql+psycopg://...")
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            db = url.split("///", 1)[1] if "///" in url else ""
            if db and db != ":memory:":
                from pathlib import Path

                Path(db).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            if not db or db == ":memory:":
                # One database for every thread (the dispatcher threads read the outbox).
                from sqlalchemy.pool import StaticPool

                kwargs["poolclass"] = StaticPool
        elif url.startswith("postgresql"):
            kwargs["pool_pre_ping"] = True
        try:
            self.engine: Engine = create_engine(url, **kwargs)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise StoreError(f"cannot open store {self._safe_url()}: {exc}") from None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._dialect = self.engine.dialect.name
        if self._dialect not in ("sqlite", "postgresql"):
            raise StoreError(f"store {self._safe_url()}: dialect {self._dialect!r} is not "
                             "supported; use sqlite:/// or postgresql+psycopg://")
        try:
            schema.metadata.create_all(self.engine)
            with self.engine.begin() as conn:
                # Stores written by schema version 1 lack the events' identity index.
                schema.events_identity.create(conn, checkfirst=True)
                # ... and versions 1 and 2 the registry's status and decision columns.
                self._migrate_models(conn)
                self._upsert(conn, schema.store_info, [{"key": "schema_version",
                                                        "value": str(schema.SCHEMA_VERSION)}],
                             ["key"], ["value"])
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot initialise store {self._safe_url()}: {exc}") from None

    @staticmethod
    def _migrate_models(conn: Any) -> None:
        """Schema 3: add ``status`` and ``decision`` to the models table of an older store
        (``ALTER TABLE ... ADD COLUMN``, the same statement on SQLite and PostgreSQL); the
        active version of each name becomes its champion, the others retired."""
        have = {c["name"] for c in inspect(conn).get_columns(t_models.name)}
        missing = [n for n in schema.MODEL_COLUMNS_V3 if n not in have]
        for name in missing:
            ddl = CreateColumn(t_models.c[name]).compile(dialect=conn.dialect)
            conn.execute(text(f"ALTER TABLE {t_models.name} ADD COLUMN {ddl}"))
        if "status" in missing:
            conn.execute(update(t_models).values(
                status=case((t_models.c.active.is_(True), "champion"), else_="retired")))

    def _safe_url(self) -> str:
        # Never print a password from a PostgreSQL URL.
        try:
            from sqlalchemy.engine import make_url

            return make_url(self.url).render_as_string(hide_password=True)
        except Exception:
            return "<store url>"

    def close(self) -> None:
        self.engine.dispose()

    @property
    def dialect(self) -> str:
        return self._dialect

    # ------------------------------------------------------------------ helpers
    def _insert(self, table: Any) -> Any:
        return (sqlite.insert(table) if self._dialect == "sqlite"
                else postgresql.insert(table))

    def _upsert(self, conn: Any, table: Any, rows: list[dict[str, Any]], keys: list[str],
                cols: list[str]) -> None:
        if not rows:
            return
        stmt = self._insert(table)
        stmt = stmt.on_conflict_do_update(index_elements=keys,
                                          set_={c: getattr(stmt.excluded, c) for c in cols})
        conn.execute(stmt, rows)

    def _run(self, what: str, fn: Any) -> Any:
        try:
            return fn()
        except SQLAlchemyError as exc:
            raise StoreError(f"store {self._safe_url()}: {what} failed: "
                             f"{type(exc.orig or exc).__name__}: {exc.orig or exc}") from None

    # ------------------------------------------------------------------ events
    @staticmethod
    def _event_row(ev: AnomalyEvent, now: int) -> dict[str, Any]:
        return {
            "event_id": ev.event_id, "job": ev.job, "entity": ev.entity, "model": ev.model,
            "start_us": to_us(ev.start), "end_us": to_us(ev.end), "peak_us": to_us(ev.peak_time),
            "peak_score": float(ev.peak_score), "n_points": int(ev.n_points),
            "weight": float(ev.weight), "status": ev.status,
            "top_metrics": [[m, float(c)] for m, c in ev.top_metrics],
            "deviations": {k: float(v) for k, v in ev.deviations.items()},
            "created_us": now, "updated_us": now,
        }

    @staticmethod
    def _event_from(row: Any) -> AnomalyEvent:
        m = row._mapping
        return AnomalyEvent(
            event_id=m["event_id"], entity=m["entity"], start=from_us(m["start_us"]),
            end=from_us(m["end_us"]), peak_score=float(m["peak_score"]),
            peak_time=from_us(m["peak_us"]),
            top_metrics=tuple((str(a), float(b)) for a, b in m["top_metrics"]),
            n_points=int(m["n_points"]), status=m["status"], weight=float(m["weight"]),
            deviations=dict(m["deviations"] or {}), job=m["job"], model=m["model"])

    #: What identifies an incident; an upsert never changes these columns.
    _EVENT_KEY = ("job", "model", "entity", "start_us")
    _EVENT_UPDATE = ("end_us", "peak_us", "peak_score", "n_points", "weight", "status",
                     "top_metrics", "deviations", "updated_us")

    def _upsert_events(self, conn: Any, rows: list[dict[str, Any]]) -> None:
        self._upsert(conn, t_events, rows, list(self._EVENT_KEY), list(self._EVENT_UPDATE))

    def upsert_events(self, events: Iterable[AnomalyEvent]) -> int:
        """Insert or update events by their (job, model, entity, start); returns how many rows
        were written."""
        now = _now_us()
        rows = [self._event_row(e, now) for e in events]

        def go() -> int:
            with self.engine.begin() as conn:
                self._upsert_events(conn, rows)
            return len(rows)

        return self._run("writing events", go)

    def commit_tick(self, job: str, events: Sequence[AnomalyEvent],
                    last_scored: Mapping[str, pd.Timestamp],
                    outbox: Sequence[OutboxItem] = ()) -> None:
        """Write a tick's events, the job's new last-scored times and the notifications the
        tick raised (see :meth:`enqueue_alerts`) in one transaction."""
        now = _now_us()
        ev_rows = [self._event_row(e, now) for e in events]
        st_rows = [{"job": job, "entity": e, "last_scored_us": to_us(t), "updated_us": now}
                   for e, t in last_scored.items()]

        def go() -> None:
            with self.engine.begin() as conn:
                self._upsert_events(conn, ev_rows)
                self._upsert(conn, t_state, st_rows, ["job", "entity"],
                             ["last_scored_us", "updated_us"])
                self._enqueue(conn, outbox, now)

        self._run("committing a tick", go)

    def get_event(self, event_id: str) -> AnomalyEvent | None:
        def go() -> AnomalyEvent | None:
            with self.engine.connect() as conn:
                row = conn.execute(select(t_events).where(
                    t_events.c.event_id == event_id)).first()
            return self._event_from(row) if row is not None else None

        return self._run("reading an event", go)

    def list_events(self, *, entity: str | None = None, job: str | None = None,
                    status: str | None = None, start: pd.Timestamp | datetime | None = None,
                    end: pd.Timestamp | datetime | None = None, limit: int = 50,
                    cursor: str | None = None) -> Page:
        """Events newest first (by start), filtered; ``start``/``end`` select events that
        overlap ``[start, end)``. Keyset pagination: pass the returned ``next_cursor``."""
        if not 1 <= limit <= 1000:
            raise DataError(f"limit must be between 1 and 1000, got {limit}")
        conds = []
        if entity is not None:
            conds.append(t_events.c.entity == entity)
        if job is not None:
            conds.append(t_events.c.job == job)
        if status is not None:
            conds.append(t_events.c.status == status)
        if start is not None:
            conds.append(t_events.c.end_us >= to_us(start))
        if end is not None:
            conds.append(t_events.c.start_us < to_us(end))
        if cursor is not None:
            c_start, c_id = _decode_cursor(cursor)
            conds.append(or_(t_events.c.start_us < c_start,
                             and_(t_events.c.start_us == c_start, t_events.c.event_id < c_id)))
        q = (select(t_events).where(*conds)
             .order_by(t_events.c.start_us.desc(), t_events.c.event_id.desc())
             .limit(limit + 1))

        def go() -> Page:
            with self.engine.connect() as conn:
                rows = conn.execute(q).fetchall()
            items = [self._event_from(r) for r in rows[:limit]]
            nxt = None
            if len(rows) > limit:
                last = items[-1]
                nxt = _encode_cursor(to_us(last.start), last.event_id)
            return Page(items=items, next_cursor=nxt)

        return self._run("listing events", go)

    def open_events(self, job: str) -> dict[str, AnomalyEvent]:
        """The latest open event of each entity of ``job`` (to continue on the next tick)."""
        def go() -> dict[str, AnomalyEvent]:
            with self.engine.connect() as conn:
                rows = conn.execute(select(t_events).where(
                    t_events.c.job == job, t_events.c.status == "open")
                    .order_by(t_events.c.start_us)).fetchall()
            return {r._mapping["entity"]: self._event_from(r) for r in rows}

        return self._run("reading open events", go)

    def count_events(self, *, job: str | None = None) -> int:
        q = select(func.count()).select_from(t_events)
        if job is not None:
            q = q.where(t_events.c.job == job)

        def go() -> int:
            with self.engine.connect() as conn:
                return int(conn.execute(q).scalar_one())

        return self._run("counting events", go)

    def entity_summary(self, job: str | None = None) -> dict[str, dict[str, Any]]:
        """Per entity: events, open events and the latest event start."""
        q = (select(t_events.c.entity, func.count(), func.max(t_events.c.start_us),
                    func.sum(case((t_events.c.status == "open", 1), else_=0)))
             .group_by(t_events.c.entity))
        if job is not None:
            q = q.where(t_events.c.job == job)

        def go() -> dict[str, dict[str, Any]]:
            with self.engine.connect() as conn:
                rows = conn.execute(q).fetchall()
            return {r[0]: {"events": int(r[1]), "last_event_start": from_us(r[2]),
                           "open_events": int(r[3] or 0)} for r in rows}

        return self._run("summarising entities", go)

    # ------------------------------------------------------------------ feedback
    def add_feedback(self, event_id: str, label: str, note: str = "") -> FeedbackRecord:
        """Record a person's verdict on an event; raises DataError for an unknown event/label."""
        if label not in FEEDBACK_LABELS:
            raise DataError(f"label must be one of {list(FEEDBACK_LABELS)}, got {label!r}")
        now = _now_us()

        def go() -> FeedbackRecord:
            with self.engine.begin() as conn:
                found = conn.execute(select(t_events.c.event_id).where(
                    t_events.c.event_id == event_id)).first()
                if found is None:
                    raise DataError(f"unknown anomaly event {event_id!r}")
                res = conn.execute(t_feedback.insert().values(
                    event_id=event_id, label=label, note=note, created_us=now))
                new_id = int(res.inserted_primary_key[0])
            return FeedbackRecord(id=new_id, event_id=event_id, label=label, note=note,
                                  created=from_us(now))

        return self._run("writing feedback", go)

    def feedback_for(self, event_id: str) -> list[FeedbackRecord]:
        def go() -> list[FeedbackRecord]:
            with self.engine.connect() as conn:
                rows = conn.execute(select(t_feedback).where(
                    t_feedback.c.event_id == event_id).order_by(t_feedback.c.id)).fetchall()
            return [FeedbackRecord(id=r.id, event_id=r.event_id, label=r.label, note=r.note,
                                   created=from_us(r.created_us)) for r in rows]

        return self._run("reading feedback", go)

    def latest_labels(self, *, job: str | None = None) -> dict[str, tuple[str, AnomalyEvent]]:
        """The latest verdict on each reviewed event: ``event_id -> (label, event)``."""
        latest = (select(t_feedback.c.event_id, func.max(t_feedback.c.id).label("fid"))
                  .group_by(t_feedback.c.event_id).subquery())
        q = (select(t_feedback.c.label, t_events)
             .join(latest, latest.c.fid == t_feedback.c.id)
             .join(t_events, t_events.c.event_id == t_feedback.c.event_id))
        if job is not None:
            q = q.where(t_events.c.job == job)

        def go() -> dict[str, tuple[str, AnomalyEvent]]:
            with self.engine.connect() as conn:
                rows = conn.execute(q).fetchall()
            return {r.event_id: (r.label, self._event_from(r)) for r in rows}

        return self._run("reading feedback labels", go)

    def precision(self, *, job: str | None = None,
                  entity: str | None = None) -> Precision:
        """Measured precision: the latest verdict per reviewed event counts once."""
        labels = self.latest_labels(job=job)
        tp = fp = 0
        for label, ev in labels.values():
            if entity is not None and ev.entity != entity:
                continue
            if label == "true_positive":
                tp += 1
            else:
                fp += 1
        return Precision(true_positives=tp, false_positives=fp)

    # ------------------------------------------------------------------ models
    @staticmethod
    def _model_from(r: Any) -> ModelRecord:
        return ModelRecord(name=r.name, version=r.version, job=r.job, path=r.path,
                           detector=r.detector, trained_at=from_us(r.trained_at_us),
                           active=bool(r.active), info=dict(r.info or {}),
                           status=r.status or ("champion" if r.active else "retired"),
                           decision=dict(r.decision) if r.decision is not None else None)

    def register_model(self, rec: ModelRecord, *, activate: bool = True) -> None:
        """Add (or replace) a model version in the index.

        ``activate`` makes it the name's champion (its only active version; the former
        champion becomes ``retired``). Otherwise its ``status`` is ``rec.status``
        (``challenger`` when empty); ``champion`` needs ``activate``.
        """
        status = "champion" if activate else (rec.status or "challenger")
        if status not in schema.MODEL_STATUSES:
            raise DataError(f"model status must be one of {list(schema.MODEL_STATUSES)}, "
                            f"got {rec.status!r}")
        if status == "champion" and not activate:
            raise DataError("a champion is registered with activate=True (or promote_model)")
        row = {"name": rec.name, "version": rec.version, "job": rec.job, "path": rec.path,
               "detector": rec.detector, "trained_at_us": to_us(rec.trained_at),
               "active": status == "champion", "info": dict(rec.info), "status": status,
               "decision": dict(rec.decision) if rec.decision is not None else None}

        def go() -> None:
            with self.engine.begin() as conn:
                if activate:
                    self._retire_champion(conn, rec.name)
                self._upsert(conn, t_models, [row], ["name", "version"],
                             ["job", "path", "detector", "trained_at_us", "active", "info",
                              "status", "decision"])

        self._run("registering a model", go)

    @staticmethod
    def _retire_champion(conn: Any, name: str) -> None:
        c = t_models.c
        conn.execute(update(t_models).where(c.name == name, c.status == "champion")
                     .values(active=False, status="retired"))
        conn.execute(update(t_models).where(c.name == name).values(active=False))

    @staticmethod
    def _version_key(rec: ModelRecord) -> tuple[int, int, int]:
        n = rec.number
        return (0 if n is None else 1, n or 0, to_us(rec.trained_at))

    def list_models(self, *, name: str | None = None) -> list[ModelRecord]:
        """Model versions, by name, newest first (numbered versions by number, then the
        others by training time)."""
        q = select(t_models).order_by(t_models.c.name)
        if name is not None:
            q = q.where(t_models.c.name == name)

        def go() -> list[ModelRecord]:
            with self.engine.connect() as conn:
                rows = conn.execute(q).fetchall()
            recs = [self._model_from(r) for r in rows]
            recs.sort(key=self._version_key, reverse=True)
            recs.sort(key=lambda m: m.name)  # stable: newest first within each name
            return recs

        return self._run("listing models", go)

    def get_model(self, name: str, version: str) -> ModelRecord | None:
        """One version of ``name``, or None."""
        def go() -> ModelRecord | None:
            with self.engine.connect() as conn:
                r = conn.execute(select(t_models).where(t_models.c.name == name,
                                                        t_models.c.version == version)).first()
            return self._model_from(r) if r is not None else None

        return self._run("reading a model", go)

    def active_model(self, name: str) -> ModelRecord | None:
        return next((m for m in self.list_models(name=name) if m.active), None)

    def next_model_version(self, name: str) -> str:
        """The version number the next model of ``name`` gets: one more than the highest
        numbered version so far (``"1"`` for the first)."""
        def go() -> str:
            with self.engine.connect() as conn:
                got = conn.execute(select(t_models.c.version).where(
                    t_models.c.name == name)).scalars().all()
            nums = [int(v) for v in got if str(v).isdigit()]
            return str(max(nums, default=0) + 1)

        return self._run("numbering a model", go)

    def set_model_status(self, name: str, version: str, status: str, *,
                         decision: Mapping[str, Any] | None = None) -> None:
        """Mark a version ``challenger``, ``rejected`` or ``retired`` (``decision``: why, kept
        when None). A champion is made with :meth:`promote_model`."""
        if status not in schema.MODEL_STATUSES or status == "champion":
            raise DataError(f"status must be one of challenger, rejected, retired, got "
                            f"{status!r}; use promote_model for a champion")
        values: dict[str, Any] = {"status": status, "active": False}
        if decision is not None:
            values["decision"] = dict(decision)

        def go() -> None:
            with self.engine.begin() as conn:
                res = conn.execute(update(t_models).where(
                    t_models.c.name == name, t_models.c.version == version).values(**values))
                if res.rowcount == 0:
                    raise DataError(f"model {name!r} has no version {version!r}")

        self._run("updating a model", go)

    def promote_model(self, name: str, version: str, *,
                      decision: Mapping[str, Any] | None = None) -> ModelRecord | None:
        """Make ``version`` the champion of ``name`` in one transaction (the former champion
        becomes ``retired``); returns the former champion, or None. ``decision`` replaces the
        version's recorded decision when given."""
        values: dict[str, Any] = {"status": "champion", "active": True}
        if decision is not None:
            values["decision"] = dict(decision)
        c = t_models.c

        def go() -> ModelRecord | None:
            with self.engine.begin() as conn:
                if conn.execute(select(c.version).where(c.name == name,
                                                        c.version == version)).first() is None:
                    raise DataError(f"model {name!r} has no version {version!r}")
                old = conn.execute(select(t_models).where(
                    c.name == name, c.active.is_(True), c.version != version)).first()
                self._retire_champion(conn, name)
                conn.execute(update(t_models).where(c.name == name, c.version == version)
                             .values(**values))
            return self._model_from(old) if old is not None else None

        return self._run("promoting a model", go)

    # ------------------------------------------------------------------ job state
    def job_state(self, job: str) -> dict[str, pd.Timestamp]:
        """Last scored timestamp per entity of ``job``."""
        def go() -> dict[str, pd.Timestamp]:
            with self.engine.connect() as conn:
                rows = conn.execute(select(t_state.c.entity, t_state.c.last_scored_us)
                                    .where(t_state.c.job == job)).fetchall()
            return {r[0]: from_us(r[1]) for r in rows}

        return self._run("reading job state", go)

    def set_job_state(self, job: str, last_scored: Mapping[str, pd.Timestamp]) -> None:
        self.commit_tick(job, [], last_scored)

    # ------------------------------------------------------------------ stream checkpoints
    def save_checkpoints(self, rows: Sequence[StreamCheckpoint]) -> None:
        """Upsert live stream-scorer checkpoints (one per job and entity) and drop the job's
        checkpoints of other model versions (they can never be resumed)."""
        if not rows:
            return
        now = _now_us()
        data = [{"job": r.job, "entity": r.entity, "model_version": r.model_version,
                 "last_us": r.last_ns // 1000, "state": r.state, "arrays": r.arrays,
                 "checksum": r.checksum, "updated_us": now} for r in rows]
        versions = {(r.job, r.model_version) for r in rows}

        def go() -> None:
            with self.engine.begin() as conn:
                for job, version in versions:
                    conn.execute(delete(t_checkpoints).where(
                        (t_checkpoints.c.job == job)
                        & (t_checkpoints.c.model_version != version)))
                self._upsert(conn, t_checkpoints, data, ["job", "entity"],
                             ["model_version", "last_us", "state", "arrays", "checksum",
                              "updated_us"])

        self._run("writing stream checkpoints", go)

    def load_checkpoints(self, job: str, model_version: str) -> list[StreamCheckpoint]:
        """The job's checkpoints written for ``model_version``."""
        def go() -> list[StreamCheckpoint]:
            c = t_checkpoints.c
            with self.engine.connect() as conn:
                got = conn.execute(select(c.job, c.entity, c.model_version, c.state, c.arrays,
                                          c.checksum)
                                   .where((c.job == job) & (c.model_version == model_version))
                                   ).fetchall()
            out = []
            for r in got:
                state = dict(r[3]) if isinstance(r[3], Mapping) else {}
                last = state.get("last_ns")
                out.append(StreamCheckpoint(r[0], r[1], r[2],
                                            int(last) if isinstance(last, int) else 0,
                                            state, bytes(r[4]), r[5]))
            return out

        return self._run("reading stream checkpoints", go)

    def delete_checkpoints(self, job: str) -> None:
        def go() -> None:
            with self.engine.begin() as conn:
                conn.execute(delete(t_checkpoints).where(t_checkpoints.c.job == job))

        self._run("deleting stream checkpoints", go)

    # ------------------------------------------------------------------ thresholds
    def entity_thresholds(self, job: str) -> dict[str, float]:
        def go() -> dict[str, float]:
            with self.engine.connect() as conn:
                rows = conn.execute(select(t_thresholds.c.entity, t_thresholds.c.threshold)
                                    .where(t_thresholds.c.job == job)).fetchall()
            return {r[0]: float(r[1]) for r in rows}

        return self._run("reading thresholds", go)

    def replace_entity_thresholds(self, job: str, values: Mapping[str, tuple[float, str]]) -> None:
        """Replace the job's per-entity thresholds with ``entity -> (threshold, reason)``."""
        now = _now_us()
        rows = [{"job": job, "entity": e, "threshold": float(t), "reason": r, "updated_us": now}
                for e, (t, r) in values.items()]

        def go() -> None:
            with self.engine.begin() as conn:
                conn.execute(delete(t_thresholds).where(t_thresholds.c.job == job))
                if rows:
                    conn.execute(t_thresholds.insert(), rows)

        self._run("writing thresholds", go)

    # ------------------------------------------------------------------ outbox
    def _enqueue(self, conn: Any, items: Sequence[OutboxItem], now: int) -> int:
        """Queue notifications; returns how many rows were added or refreshed.

        Per (job, notifier, event, status): a pending copy gets the newest payload (the score
        may have grown); a delivered or dropped one is not queued again, except a firing alert
        whose last copy is at least ``repeat_after_s`` old (a new ``seq``).
        """
        changed = 0
        for it in items:
            if it.status not in ("firing", "resolved"):
                raise DataError(f"outbox: status must be 'firing' or 'resolved', got "
                                f"{it.status!r} (event {it.event_id})")
            c = t_outbox.c
            key = (c.job == it.job, c.notifier == it.notifier, c.event_id == it.event_id,
                   c.status == it.status)
            last = conn.execute(select(c.id, c.seq, c.state, c.done_us).where(*key)
                                .order_by(c.seq.desc()).limit(1)).first()
            payload = dict(it.payload)
            if last is None:
                seq = 0
            elif last.state == "pending":
                conn.execute(update(t_outbox).where(c.id == last.id).values(payload=payload))
                changed += 1
                continue
            elif (it.status == "firing" and it.repeat_after_s is not None
                  and now - int(last.done_us or 0) >= it.repeat_after_s * 1e6):
                seq = int(last.seq) + 1
            else:
                continue
            conn.execute(t_outbox.insert().values(
                job=it.job, notifier=it.notifier, event_id=it.event_id, status=it.status,
                seq=seq, payload=payload, state="pending", attempts=0, created_us=now,
                next_try_us=now, done_us=None, last_error=""))
            changed += 1
        return changed

    def enqueue_alerts(self, items: Sequence[OutboxItem], *, now: float | None = None) -> int:
        """Queue notifications in their own transaction (``now``: seconds, default the
        wall clock); returns how many rows were added or refreshed."""
        at = _now_us() if now is None else int(now * 1e6)

        def go() -> int:
            with self.engine.begin() as conn:
                return self._enqueue(conn, items, at)

        return self._run("queueing notifications", go)

    @staticmethod
    def _outbox_from(r: Any) -> OutboxRow:
        return OutboxRow(id=int(r.id), job=r.job, notifier=r.notifier, event_id=r.event_id,
                         status=r.status, seq=int(r.seq), payload=dict(r.payload or {}),
                         state=r.state, attempts=int(r.attempts), created=r.created_us / 1e6,
                         next_try=r.next_try_us / 1e6,
                         done=r.done_us / 1e6 if r.done_us is not None else None,
                         last_error=r.last_error)

    def due_alerts(self, job: str, notifier: str, *, now: float,
                   limit: int = 100) -> list[OutboxRow]:
        """Pending notifications of one notifier of ``job`` due at ``now``, oldest first."""
        c = t_outbox.c
        q = (select(t_outbox).where(c.job == job, c.notifier == notifier, c.state == "pending",
                                    c.next_try_us <= int(now * 1e6))
             .order_by(c.id).limit(limit))

        def go() -> list[OutboxRow]:
            with self.engine.connect() as conn:
                return [self._outbox_from(r) for r in conn.execute(q).fetchall()]

        return self._run("reading the outbox", go)

    def next_alert_due(self, job: str, notifier: str) -> float | None:
        """When the next pending notification of the notifier is due (seconds), or None."""
        c = t_outbox.c
        q = select(func.min(c.next_try_us)).where(c.job == job, c.notifier == notifier,
                                                  c.state == "pending")

        def go() -> float | None:
            with self.engine.connect() as conn:
                got = conn.execute(q).scalar()
            return got / 1e6 if got is not None else None

        return self._run("reading the outbox", go)

    def mark_alerts(self, ids: Sequence[int], state: str, *, now: float,
                    retry_at: float | None = None, error: str = "") -> None:
        """Record a delivery attempt: ``sent``, ``dropped`` (with ``error`` as the reason), or
        ``pending`` again with ``retry_at`` (attempts counted, ``error`` kept)."""
        if state not in OUTBOX_STATES:
            raise DataError(f"outbox state must be one of {list(OUTBOX_STATES)}, got {state!r}")
        if not ids:
            return
        c = t_outbox.c
        values: dict[str, Any] = {"attempts": c.attempts + (0 if state == "dropped" else 1)}
        if state == "pending":
            if retry_at is None:
                raise DataError("mark_alerts: a retry needs retry_at")
            values.update(next_try_us=int(retry_at * 1e6), last_error=error[:2000])
        else:
            values.update(state=state, done_us=int(now * 1e6))
            if error:
                values["last_error"] = error[:2000]
        stmt = update(t_outbox).where(c.id.in_(list(ids)), c.state == "pending").values(**values)

        def go() -> None:
            with self.engine.begin() as conn:
                conn.execute(stmt)

        self._run("updating the outbox", go)

    def expire_alerts(self, job: str, notifier: str, *, older_than: float,
                      now: float) -> list[OutboxRow]:
        """Drop pending notifications queued before ``older_than`` (seconds); returns them."""
        c = t_outbox.c
        cond = (c.job == job, c.notifier == notifier, c.state == "pending",
                c.created_us < int(older_than * 1e6))

        def go() -> list[OutboxRow]:
            with self.engine.begin() as conn:
                rows = [self._outbox_from(r) for r in conn.execute(
                    select(t_outbox).where(*cond).order_by(c.id)).fetchall()]
                if rows:
                    conn.execute(update(t_outbox).where(c.id.in_([r.id for r in rows]))
                                 .values(state="dropped", done_us=int(now * 1e6),
                                         last_error="expired: undelivered for longer than "
                                                    "the notifier's max_age"))
            return rows

        return self._run("expiring the outbox", go)

    def outbox(self, *, job: str | None = None, notifier: str | None = None,
               state: str | None = None) -> list[OutboxRow]:
        """Queued notifications (oldest first), filtered."""
        c = t_outbox.c
        conds = []
        if job is not None:
            conds.append(c.job == job)
        if notifier is not None:
            conds.append(c.notifier == notifier)
        if state is not None:
            conds.append(c.state == state)
        q = select(t_outbox).where(*conds).order_by(c.id)

        def go() -> list[OutboxRow]:
            with self.engine.connect() as conn:
                return [self._outbox_from(r) for r in conn.execute(q).fetchall()]

        return self._run("reading the outbox", go)

    def outbox_counts(self, *, job: str | None = None) -> dict[str, int]:
        """Notifications per state (every state present, 0 when none)."""
        c = t_outbox.c
        q = select(c.state, func.count()).group_by(c.state)
        if job is not None:
            q = q.where(c.job == job)

        def go() -> dict[str, int]:
            with self.engine.connect() as conn:
                got = {r[0]: int(r[1]) for r in conn.execute(q).fetchall()}
            return {s: got.get(s, 0) for s in OUTBOX_STATES}

        return self._run("counting the outbox", go)

    # ------------------------------------------------------------------ integrity
    def check_integrity(self) -> list[str]:
        """Problems found, empty when the store is sound.

        SQLite: ``PRAGMA integrity_check`` and ``foreign_key_check``; every database: events
        whose end precedes their start, unknown statuses, feedback on missing events.
        """
        problems: list[str] = []

        def go() -> None:
            with self.engine.connect() as conn:
                if self._dialect == "sqlite":
                    res = [r[0] for r in conn.execute(text("PRAGMA integrity_check"))]
                    if res != ["ok"]:
                        problems.extend(f"sqlite integrity_check: {r}" for r in res)
                    fk = conn.execute(text("PRAGMA foreign_key_check")).fetchall()
                    problems.extend(f"foreign key violation: {tuple(r)}" for r in fk)
                bad = conn.execute(select(t_events.c.event_id).where(
                    t_events.c.end_us < t_events.c.start_us)).fetchall()
                problems.extend(f"event {r[0]} ends before it starts" for r in bad)
                bad = conn.execute(select(t_events.c.event_id, t_events.c.status).where(
                    t_events.c.status.not_in(["open", "closed"]))).fetchall()
                problems.extend(f"event {r[0]} has unknown status {r[1]!r}" for r in bad)
                orphan = conn.execute(
                    select(t_feedback.c.id).outerjoin(
                        t_events, t_events.c.event_id == t_feedback.c.event_id)
                    .where(t_events.c.event_id.is_(None))).fetchall()
                problems.extend(f"feedback {r[0]} refers to a missing event" for r in orphan)
                bad = conn.execute(select(t_models.c.name, t_models.c.version,
                                          t_models.c.status).where(
                    t_models.c.status.not_in(list(schema.MODEL_STATUSES)))).fetchall()
                problems.extend(f"model {r[0]} version {r[1]} has unknown status {r[2]!r}"
                                for r in bad)
                bad = conn.execute(select(t_models.c.name, func.count()).where(
                    t_models.c.active.is_(True)).group_by(t_models.c.name)
                    .having(func.count() > 1)).fetchall()
                problems.extend(f"model {r[0]} has {r[1]} active versions" for r in bad)
                bad = conn.execute(select(t_outbox.c.id, t_outbox.c.state).where(
                    t_outbox.c.state.not_in(list(OUTBOX_STATES)))).fetchall()
                problems.extend(f"notification {r[0]} has unknown state {r[1]!r}" for r in bad)

        self._run("checking integrity", go)
        return problems

    def ping(self) -> None:
        """Raise StoreError when the database cannot be reached."""
        def go() -> None:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))

        self._run("ping", go)
