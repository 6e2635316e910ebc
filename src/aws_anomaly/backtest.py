"""How noisy would a job be? Replay a range of history through the job's model and count the
alerts it would have sent (``aws-anomaly backtest``; a notebook calls :func:`backtest_job`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from aws_anomaly.config import JobConfig
from aws_anomaly.data import Dataset
from aws_anomaly.errors import ConfigError
from aws_anomaly.runner import JobRunner
from aws_anomaly.sources.base import Source, to_utc
from aws_anomaly.store import Store

__all__ = ["ClockedSource", "backtest_job"]


class ClockedSource:
    """A source whose clock stands at ``now`` and which never returns a point after it: a
    backtest's model is trained on what came before the replayed range."""

    def __init__(self, inner: Source, now: pd.Timestamp) -> None:
        self._inner, self._now = inner, now
        self.step = inner.step
        self.name = getattr(inner, "name", "source")

    def now(self) -> pd.Timestamp:
        return self._now

    def fetch(self, start: Any, end: Any, *, entities: Sequence[str] | None = None) -> Dataset:
        return self._inner.fetch(start, min(to_utc(end), self._now + pd.Timedelta(1, "ns")),
                                 entities=entities)

    def latest(self, lookback: Any, *, entities: Sequence[str] | None = None) -> Dataset:
        return self.fetch(self._now - pd.Timedelta(lookback), self._now, entities=entities)

    def close(self) -> None:
        pass


def backtest_job(job: JobConfig, source: Source, start: pd.Timestamp, end: pd.Timestamp, *,
                 model_path: Path | None = None) -> dict[str, Any]:
    """Replay ``[start, end)`` through the job's model and count what it would send.

    The model is the job's bundle when ``model_path`` holds one; otherwise one is trained on
    the job's history *before* ``start`` (so the replayed range is never seen in training).
    The alerts are the job's :class:`~aws_anomaly.events.AlertPolicy` decision, the one the
    runner's notifiers send and ``aws_anomaly_alert_active`` (hence the Prometheus rules)
    shows: ``firing`` counts alerts raised (events that reached ``alert.min_consecutive``
    anomalous points), ``resolved`` those that also ended inside the range. Notifiers with
    their own ``min_consecutive`` are counted separately under ``notifiers``.
    """
    if end <= start:
        raise ConfigError(f"backtest: --end {end} must come after --start {start}")
    runner = JobRunner(job, ClockedSource(source, start), None, [], Store("sqlite://"),
                       model_path=model_path)
    policy = runner.policy
    model = runner.ensure_model()
    step = pd.Timedelta(model.step_)
    data = source.fetch(start - step * (int(model.spec.min_history) + 1), end,
                        entities=list(job.entities) if job.entities else None)
    hist = data.subset(end=start, where="backtest: look-back")
    new = data.subset(start=start, where="backtest: replayed range")
    scores = model.score(new, history=hist if len(hist) else None)
    events = policy.merge(scores, step=step, threshold=policy.threshold, job=job.name,
                          model=runner.model_name)
    scores = scores.assign(is_anomaly=scores["anomaly_score"] >= policy.threshold)
    days = max((end - start) / pd.Timedelta(days=1), 1e-9)
    rows = []
    for entity, g in scores.groupby("entity", sort=True):
        evs = [e for e in events if e.entity == entity]
        sent = policy.summarize(evs, step=step)
        rows.append({
            "entity": str(entity), "points": len(g),
            "anomalous_share": round(float((g["is_anomaly"] & g["ready"]).mean()), 5),
            "events": len(evs), "alerts": sent["firing"], "firing": sent["firing"],
            "resolved": sent["resolved"], "open_at_end": sent["open_at_end"],
            "alerts_per_day": round(sent["firing"] / days, 3),
            "longest_alert_minutes": sent["longest_alert_minutes"],
        })
    total = policy.summarize(events, step=step)
    notifiers = []
    for i, cfg in enumerate(job.notifiers):
        if cfg.min_consecutive is None or cfg.min_consecutive == policy.min_consecutive:
            continue
        own = policy.with_min_consecutive(cfg.min_consecutive).summarize(events, step=step)
        notifiers.append({"notifier": f"{cfg.type}-{i}", "min_consecutive": cfg.min_consecutive,
                          "firing": own["firing"], "resolved": own["resolved"]})
    return {"job": job.name, "start": start.isoformat(), "end": end.isoformat(),
            "days": round(days, 3), "min_consecutive": policy.min_consecutive,
            "max_gap_steps": policy.max_gap_steps, "threshold": policy.threshold,
            "entities": rows, "alerts": total["firing"], "firing": total["firing"],
            "resolved": total["resolved"], "open_at_end": total["open_at_end"],
            "alerts_per_day_per_entity": round(total["firing"] / days / max(len(rows), 1), 3),
            "notifiers": notifiers}
