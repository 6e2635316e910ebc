"""What the job tests share (test_runner, test_live, test_retrain, test_scheduler_retrain): a
demo job, its wall clock and a sink that records what it got."""

from __future__ import annotations

from typing import Any

import pandas as pd

from aws_anomaly.config import JobConfig

T0 = pd.Timestamp("2026-03-01T00:00Z")
STEP = pd.Timedelta("5min")
WALL_PER_STEP = 5.0  # demo speedup 60: one 5-minute step every 5 wall seconds
WALL_PER_DAY = 86400 / 60


def job_config(*, days: int = 4, future_days: int = 1, history: str = "3d",
               **over: Any) -> JobConfig:
    """A job ``demo`` on a two-cluster demo source of ``days`` days before ``T0`` (and
    ``future_days`` after it), a ``history`` of training data, 2 h look-back, 5 min ticks;
    ``over`` replaces top-level keys."""
    cfg: dict[str, Any] = {
        "name": "demo",
        "source": {"type": "demo", "clusters": 2, "days": days, "speedup": 60,
                   "future_days": future_days},
        "model": {"history": history}, "lookback": "2h", "interval": "5m"}
    cfg.update(over)
    return JobConfig.model_validate(cfg)


class Clock:
    """The demo source's wall clock, moved by hand."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def steps(self, k: int) -> None:
        """Move on ``k`` grid steps of data time."""
        self.t += k * WALL_PER_STEP


class Recorder:
    """A score and event sink that keeps what it got."""

    def __init__(self) -> None:
        self.scores: list[pd.DataFrame] = []
        self.events: list = []

    def on_scores(self, job: str, scores: pd.DataFrame, *, model: str) -> None:
        self.scores.append(scores)

    def on_events(self, job: str, events, *, model: str) -> None:
        self.events.extend(events)

    def timestamps(self, entity: str) -> list[pd.Timestamp]:
        """Every scored timestamp of ``entity``, in the order the ticks gave them."""
        out = []
        for s in self.scores:
            out += list(s.loc[s["entity"] == entity, "timestamp"])
        return out

    def frame(self) -> pd.DataFrame:
        """All the scores, sorted by entity and timestamp."""
        return (pd.concat(self.scores).sort_values(["entity", "timestamp"])
                .reset_index(drop=True))
