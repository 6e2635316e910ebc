"""How one job is doing: errors counted per pipeline stage, and whether its source and its
store answered the last time they were used.

Both halves of a job write here: the tick loop (:class:`aws_anomaly.runner.JobRunner`) and the
model management (:class:`aws_anomaly.jobmodel.JobModel`, which fetches training history and
writes the registry). The service reads it (``/v1/health``, the exporter's error counters and
``aws_anomaly_source_up``).
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from aws_anomaly.errors import AwsAnomalyError

__all__ = ["STAGES", "JobHealth", "RunnerMetrics"]

log = logging.getLogger(__name__)

#: Pipeline stages whose errors are counted separately.
STAGES = ("fetch", "features", "score", "store", "notify", "train")


class RunnerMetrics(Protocol):
    """Self-monitoring hooks (``aws_anomaly.service.exporter.Exporter`` implements them)."""

    def observe_fetch(self, job: str, seconds: float) -> None: ...
    def observe_scoring(self, job: str, seconds: float) -> None: ...
    def record_error(self, job: str, stage: str) -> None: ...
    def record_success(self, job: str, when: float | None = None) -> None: ...


class JobHealth:
    """Error counts per stage and the source's and store's last answers for one job.

    Thread-safe: ticks, trainings and the notifiers' delivery threads all report here.
    """

    def __init__(self, job: str, metrics: RunnerMetrics | None = None) -> None:
        self.job = job
        self.metrics = metrics
        self.errors: dict[str, int] = dict.fromkeys(STAGES, 0)
        self.last_error: dict[str, str] = {}
        #: Whether the source answered the last fetch (None: none tried yet) and why not.
        self.source_ok: bool | None = None
        self.source_error: str | None = None
        #: Whether the last write of a tick reached the store (None: none tried yet).
        self.store_ok: bool | None = None
        self.store_error: str | None = None
        self._lock = threading.Lock()

    def record_error(self, stage: str, exc: BaseException) -> str:
        """Count an error of ``stage`` (here and in the metrics); returns its message."""
        if stage not in self.errors:
            raise ValueError(f"unknown stage {stage!r}; stages are {STAGES}")
        msg = f"{type(exc).__name__}: {exc}" if not isinstance(exc, AwsAnomalyError) else str(exc)
        with self._lock:
            self.errors[stage] += 1
            self.last_error[stage] = msg
        if self.metrics is not None:
            try:
                self.metrics.record_error(self.job, stage)
            except Exception:  # monitoring must never break the job
                log.exception("job %s: recording an error failed", self.job)
        return msg

    def source_answered(self, error: str | None = None) -> None:
        """The source answered (``error`` None) or failed with ``error``."""
        self.source_ok, self.source_error = error is None, error

    def store_answered(self, error: str | None = None) -> None:
        """A tick's commit reached the store (``error`` None) or failed with ``error``."""
        self.store_ok, self.store_error = error is None, error

    def success(self) -> None:
        """A tick succeeded (the metrics' last-success time)."""
        if self.metrics is not None:
            self.metrics.record_success(self.job)
