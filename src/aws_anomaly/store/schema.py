"""Tables of the anomaly store (SQLAlchemy Core), the same on SQLite and PostgreSQL.

Times are stored as integer microseconds since the Unix epoch (UTC): one representation that
orders, compares and round-trips identically on both databases, with no time-zone guessing.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "MODEL_COLUMNS_V3",
    "MODEL_STATUSES",
    "SCHEMA_VERSION",
    "events",
    "feedback",
    "job_state",
    "metadata",
    "models",
    "outbox",
    "store_info",
    "stream_checkpoints",
    "thresholds",
]

#: 2: events unique per (job, model, entity, start); the notification outbox.
#: 3: the model registry keeps history: each version's ``status`` (champion, challenger,
#: rejected, retired) and the promotion ``decision`` with its figures.
#: 4: ``stream_checkpoints``, the live stream scorers' state (a new table: ``create_all`` adds
#: it to older stores).
SCHEMA_VERSION = 4

metadata = MetaData()

store_info = Table(
    "store_info", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

events = Table(
    "anomaly_events", metadata,
    Column("event_id", String(32), primary_key=True),
    Column("job", String(64), nullable=False),
    Column("entity", String(256), nullable=False),
    Column("model", String(128), nullable=False, default=""),
    Column("start_us", BigInteger, nullable=False),
    Column("end_us", BigInteger, nullable=False),
    Column("peak_us", BigInteger, nullable=False),
    Column("peak_score", Float, nullable=False),
    Column("n_points", Integer, nullable=False),
    Column("weight", Float, nullable=False),
    Column("status", String(8), nullable=False),
    Column("top_metrics", JSON, nullable=False),
    Column("deviations", JSON, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Index("ix_events_start", "start_us", "event_id"),
    Index("ix_events_entity_start", "entity", "start_us"),
    Index("ix_events_job_status", "job", "status"),
)

#: An incident is one per (job, model, entity, start): two jobs watching one entity keep their
#: own events. Created by ``Store`` also on stores written by schema version 1.
events_identity = Index("ux_events_identity", events.c.job, events.c.model, events.c.entity,
                        events.c.start_us, unique=True)

feedback = Table(
    "feedback", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(32), ForeignKey("anomaly_events.event_id", ondelete="CASCADE"),
           nullable=False, index=True),
    Column("label", String(16), nullable=False),
    Column("note", Text, nullable=False, default=""),
    Column("created_us", BigInteger, nullable=False),
)

models = Table(
    "models", metadata,
    Column("name", String(128), primary_key=True),
    Column("version", String(64), primary_key=True),
    Column("job", String(64), nullable=False),
    Column("path", Text, nullable=False),
    Column("detector", String(64), nullable=False),
    Column("trained_at_us", BigInteger, nullable=False),
    Column("active", Boolean, nullable=False, default=False),
    Column("info", JSON, nullable=False),
    # Added by schema version 3 (``Store`` adds them to older stores; see MODEL_COLUMNS_V3).
    Column("status", String(16), nullable=False, server_default=""),
    Column("decision", JSON, nullable=True),
)

#: Columns of ``models`` that a store written by schema version 1 or 2 lacks.
MODEL_COLUMNS_V3 = ("status", "decision")

#: What a model version can be in the registry: the one scoring (``champion``; exactly one per
#: name), one being judged (``challenger``), one that failed the check (``rejected``), a former
#: champion (``retired``).
MODEL_STATUSES = ("champion", "challenger", "rejected", "retired")

job_state = Table(
    "job_state", metadata,
    Column("job", String(64), primary_key=True),
    Column("entity", String(256), primary_key=True),
    Column("last_scored_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)

thresholds = Table(
    "entity_thresholds", metadata,
    Column("job", String(64), primary_key=True),
    Column("entity", String(256), primary_key=True),
    Column("threshold", Float, nullable=False),
    Column("reason", Text, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)

#: Notifications waiting for delivery (``pending``), delivered (``sent``) or given up
#: (``dropped``: a 4xx answer, or older than the notifier's ``max_age``). Rows are written in
#: the tick's transaction, so an alert exists exactly when its event does, and survive
#: restarts and SIGKILL. ``seq`` numbers the re-sends of a still-firing alert.
outbox = Table(
    "notification_outbox", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job", String(64), nullable=False),
    Column("notifier", String(64), nullable=False),
    Column("event_id", String(32), nullable=False),
    Column("status", String(8), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("state", String(8), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("next_try_us", BigInteger, nullable=False),
    Column("done_us", BigInteger, nullable=True),
    Column("last_error", Text, nullable=False),
    UniqueConstraint("job", "notifier", "event_id", "status", "seq", name="ux_outbox_alert"),
    Index("ix_outbox_due", "job", "notifier", "state", "next_try_us"),
)

#: The live state of one job's stream scorer per entity (``aws_anomaly.live``): the JSON part
#: and a ``.npz`` of numpy arrays (no pickle), with the SHA-256 of both. One row per (job,
#: entity); ``model_version`` says which model it belongs to (a job resumes only from the
#: version it scores with), ``last_us`` the last point it has seen.
stream_checkpoints = Table(
    "stream_checkpoints", metadata,
    Column("job", String(64), primary_key=True),
    Column("entity", String(256), primary_key=True),
    Column("model_version", String(64), nullable=False),
    Column("last_us", BigInteger, nullable=False),
    Column("state", JSON, nullable=False),
    Column("arrays", LargeBinary, nullable=False),
    Column("checksum", String(64), nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)
