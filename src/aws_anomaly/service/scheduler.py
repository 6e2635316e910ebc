"""The scheduler: every job ticks on its own interval, in its own thread.

* One thread per job, so a slow job (a Prometheus timing out, a big catch-up) never delays the
  others; a job's ticks never overlap because its thread runs them one after another.
* A tick that overruns its interval is followed immediately by the next one (counted in
  ``aws_anomaly_scheduler_overruns_total``) — no burst of queued ticks.
* :meth:`Scheduler.stop` (called on SIGTERM through the app's shutdown) lets the running tick
  finish, then the threads exit; nothing is interrupted halfway through a write.
* Retrains asked for through the API run in a thread of their own, one at a time per job, while
  the job keeps ticking with its current model; the runner swaps the new model in between two
  ticks (under its lock) when training is done. A request made during a retrain runs after it.

For the demo source, whose clock runs ``speedup`` times faster than the wall clock, the
interval is in data time: a 1 min interval at speedup 60 ticks every wall second.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from aws_anomaly.config import JobConfig
from aws_anomaly.errors import AwsAnomalyError
from aws_anomaly.runner import STAGES, JobRunner, TickResult

__all__ = ["JobStatus", "Scheduler", "SchedulerMetrics", "tick_interval_s"]

log = logging.getLogger(__name__)


def tick_interval_s(job: JobConfig) -> float:
    """Wall-clock seconds between ticks of ``job`` (data-time interval / demo speedup)."""
    seconds = job.interval.total_seconds()
    speedup = float(getattr(job.source, "speedup", 1.0) or 1.0)
    return max(seconds / speedup, 0.05)


class SchedulerMetrics:
    """The scheduler's own series, registered on the app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.ticks = Counter("aws_anomaly_scheduler_ticks", "Ticks run, by outcome.",
                             ["job", "outcome"], registry=registry)
        self.tick_duration = Histogram(
            "aws_anomaly_scheduler_tick_duration_seconds", "Wall time of one tick.", ["job"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=registry)
        self.overruns = Counter("aws_anomaly_scheduler_overruns",
                                "Ticks that took longer than the job's interval.", ["job"],
                                registry=registry)
        self.stage_errors = Counter("aws_anomaly_scheduler_stage_errors",
                                    "Failed ticks by the stage that failed.", ["job", "stage"],
                                    registry=registry)
        self.source_up = Gauge("aws_anomaly_source_up",
                               "1 when the job's last fetch succeeded, else 0.", ["job"],
                               registry=registry)
        self.retrains = Counter("aws_anomaly_scheduler_retrains", "Model (re)trainings.",
                                ["job", "outcome"], registry=registry)

    def register(self, job: str) -> None:
        for outcome in ("ok", "error"):
            self.ticks.labels(job=job, outcome=outcome)
        for stage in STAGES:
            self.stage_errors.labels(job=job, stage=stage)
        self.overruns.labels(job=job)
        # Present from the start (0 until a fetch succeeds), so "absent" never hides a source
        # that is down before the first model exists.
        self.source_up.labels(job=job).set(0)


@dataclass
class JobStatus:
    """What the API shows about one job's loop."""

    job: str
    interval_s: float
    ticks: int = 0
    failed_ticks: int = 0
    last_tick_started: float | None = None
    last_tick_finished: float | None = None
    last_success: float | None = None
    last_result: TickResult | None = None
    retrain_pending: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


class _JobLoop:
    def __init__(self, runner: JobRunner, interval_s: float, stop: threading.Event,
                 metrics: SchedulerMetrics | None,
                 on_tick: Callable[[TickResult], None] | None) -> None:
        self.runner = runner
        self.interval_s = interval_s
        self.stop = stop
        self.metrics = metrics
        self.on_tick = on_tick
        self.wake = threading.Event()
        self.status = JobStatus(job=runner.name, interval_s=interval_s)
        self.retrain_requested = threading.Event()
        # A requested retrain runs beside the ticks (the runner swaps the new model in under
        # its lock when training is done), so scoring never waits for a training.
        self._retrain_thread: threading.Thread | None = None
        self.thread = threading.Thread(target=self.run, name=f"job-{runner.name}", daemon=True)

    def run(self) -> None:
        next_at = time.monotonic()
        while not self.stop.is_set():
            if self.retrain_requested.is_set() and not self.retraining:
                self.retrain_requested.clear()
                self._retrain_thread = threading.Thread(
                    target=self._retrain, name=f"retrain-{self.runner.name}", daemon=True)
                self._retrain_thread.start()
            delay = next_at - time.monotonic()
            if delay > 0:
                self.wake.wait(delay)
                self.wake.clear()
                continue
            started = time.monotonic()
            self.tick_once()
            took = time.monotonic() - started
            if took > self.interval_s:
                if self.metrics is not None:
                    self.metrics.overruns.labels(job=self.runner.name).inc()
                next_at = time.monotonic()
            else:
                next_at = started + self.interval_s

    def tick_once(self) -> TickResult:
        st = self.status
        st.last_tick_started = time.time()
        try:
            result = self.runner.tick()
        except Exception as exc:  # a bug in a tick must not kill the job's thread
            log.exception("job %s: tick crashed", self.runner.name)
            result = TickResult(self.runner.name, now=_now(), error=f"{type(exc).__name__}: "
                                f"{exc}", stage="score")
            self.runner.record_error("score", exc)
        st.last_tick_finished = time.time()
        st.ticks += 1
        st.last_result = result
        if result.ok:
            st.last_success = st.last_tick_finished
        else:
            st.failed_ticks += 1
            log.warning("job %s: tick failed at stage %s: %s", self.runner.name, result.stage,
                        result.error)
        st.history.append({"at": st.last_tick_finished, "ok": result.ok,
                           "points": result.points, "seconds": round(result.total_s, 4),
                           "stage": result.stage})
        del st.history[:-50]
        if self.metrics is not None:
            m = self.metrics
            m.ticks.labels(job=self.runner.name, outcome="ok" if result.ok else "error").inc()
            m.tick_duration.labels(job=self.runner.name).observe(result.total_s)
            if not result.ok and result.stage:
                m.stage_errors.labels(job=self.runner.name, stage=result.stage).inc()
            if self.runner.source_ok is not None:
                m.source_up.labels(job=self.runner.name).set(1 if self.runner.source_ok else 0)
        if self.on_tick is not None:
            try:
                self.on_tick(result)
            except Exception:
                log.exception("job %s: on_tick callback failed", self.runner.name)
        return result

    @property
    def retraining(self) -> bool:
        """A requested retrain is running (a new request waits for it, then runs)."""
        return self._retrain_thread is not None and self._retrain_thread.is_alive()

    def _retrain(self) -> None:
        self.status.retrain_pending = False
        outcome = "ok"
        try:
            self.runner.retrain(reason="requested through the API")
        except AwsAnomalyError as exc:
            outcome = "error"
            log.warning("job %s: retrain failed: %s", self.runner.name, exc)
        except Exception:
            outcome = "error"
            log.exception("job %s: retrain crashed", self.runner.name)
        if self.metrics is not None:
            self.metrics.retrains.labels(job=self.runner.name, outcome=outcome).inc()
        self.wake.set()  # a request that came in meanwhile starts now, not at the next tick


def _now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


class Scheduler:
    """Runs each :class:`JobRunner` on its interval in its own thread.

    Parameters
    ----------
    runners
        The jobs.
    registry
        Where the scheduler's counters go (the app's registry); ``None`` for no metrics.
    interval_s
        Override the wall-clock interval of every job (tests); default from the job config.
    on_tick
        Called after every tick with its result (logging, tests).
    """

    def __init__(self, runners: Sequence[JobRunner], *,
                 registry: CollectorRegistry | None = None,
                 interval_s: float | None = None,
                 on_tick: Callable[[TickResult], None] | None = None) -> None:
        self.runners = {r.name: r for r in runners}
        self._stop = threading.Event()
        self.metrics = SchedulerMetrics(registry) if registry is not None else None
        self._loops: dict[str, _JobLoop] = {}
        for r in runners:
            if self.metrics is not None:
                self.metrics.register(r.name)
            iv = interval_s if interval_s is not None else tick_interval_s(r.job)
            self._loops[r.name] = _JobLoop(r, iv, self._stop, self.metrics, on_tick)
        self.started = False

    def start(self) -> None:
        """Start every job's thread (each trains or loads its model first)."""
        if self.started:
            return
        self.started = True
        for loop in self._loops.values():
            loop.thread.start()

    def stop(self, timeout: float = 30.0) -> bool:
        """Ask every job to stop after its running tick; True when all threads ended."""
        self._stop.set()
        for loop in self._loops.values():
            loop.wake.set()
        deadline = time.monotonic() + timeout
        ok = True
        for loop in self._loops.values():
            if loop.thread.is_alive():
                loop.thread.join(max(0.0, deadline - time.monotonic()))
                ok &= not loop.thread.is_alive()
        return ok

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def tick_now(self, job: str) -> TickResult:
        """Run one tick of ``job`` in the caller's thread (waits for a running tick)."""
        return self._loops[job].tick_once()

    def request_retrain(self, job: str) -> None:
        """Retrain ``job`` in its thread before its next tick (returns at once)."""
        loop = self._loops[job]
        loop.status.retrain_pending = True
        loop.retrain_requested.set()
        loop.wake.set()

    def status(self, job: str) -> JobStatus:
        return self._loops[job].status

    def statuses(self) -> list[JobStatus]:
        return [loop.status for loop in self._loops.values()]
