"""Persistence of anomaly events, feedback, the model registry index and job state."""

from aws_anomaly.store.store import (
    FeedbackRecord,
    ModelRecord,
    OutboxItem,
    OutboxRow,
    Page,
    Precision,
    Store,
    StreamCheckpoint,
    from_us,
    to_us,
)

__all__ = ["FeedbackRecord", "ModelRecord", "OutboxItem", "OutboxRow", "Page", "Precision",
           "Store", "StreamCheckpoint", "from_us", "to_us"]
