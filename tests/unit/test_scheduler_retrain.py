"""A retrain asked for through the API never stops the job's ticks."""

from __future__ import annotations

import threading
import time

import pandas as pd

from aws_anomaly.service.scheduler import Scheduler
from tests.unit.test_runner import make, model  # noqa: F401  (model: the fixture)


def test_requested_retrain_runs_beside_the_ticks(tmp_path, model) -> None:  # noqa: F811
    runner, _, clock, _ = make(tmp_path, model)
    gate, started = threading.Event(), threading.Event()
    calls: list[str] = []

    def slow_retrain(*, reason: str = "requested"):
        calls.append(reason)
        started.set()
        assert gate.wait(30), "the test never released the retrain"
        return runner.model

    runner.retrain = slow_retrain  # the training itself is tested elsewhere; here: its timing
    ticks: list[pd.Timestamp] = []
    sched = Scheduler([runner], interval_s=0.05, on_tick=lambda r: ticks.append(r.now))
    sched.start()
    try:
        sched.request_retrain(runner.name)
        assert started.wait(10), "the retrain did not start"
        n = len(ticks)
        deadline = time.monotonic() + 10
        while len(ticks) < n + 3 and time.monotonic() < deadline:
            clock.steps(1)
            time.sleep(0.05)
        assert len(ticks) >= n + 3, "ticks stopped while the model trained"
        sched.request_retrain(runner.name)  # asked again meanwhile: runs after the first
        time.sleep(0.3)
        assert calls == ["requested through the API"]
        gate.set()
        deadline = time.monotonic() + 10
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(calls) == 2
    finally:
        gate.set()
        assert sched.stop(timeout=30)
