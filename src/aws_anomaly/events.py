"""Anomaly events: runs of anomalous points merged into one incident per entity.

A model scores points; people act on incidents. :func:`merge_events` turns a frame of scores
(the output of ``AnomalyModel.score``) into :class:`AnomalyEvent` objects:

* consecutive anomalous points of one entity form one event; up to ``max_gap_steps`` normal
  points inside a run do not split it (a flapping score is one incident, not five);
* an event is ``"open"`` while fewer than ``max_gap_steps + 1`` normal points have been scored
  after its last anomalous point (it may still grow), ``"closed"`` afterwards;
* ``event_id`` is a hash of the job, the model, the entity and the start time, so scoring the
  same range again, or continuing an open event on the next tick (pass it in ``previous``),
  yields the same id and a store upsert never duplicates an incident, while two jobs (or two
  models) watching the same entity keep separate incidents that never overwrite each other.

Each event keeps its explanation: ``top_metrics`` (metric, share of the anomaly) averaged over
its points weighted by score, and ``deviations`` (metric -> robust z-score at the peak: how far
from normal the metric was) when the scores carry ``dev_<metric>`` columns.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd

from aws_anomaly.errors import DataError

__all__ = ["AnomalyEvent", "EventStatus", "event_id_for", "merge_events"]

EventStatus = Literal["open", "closed"]
_REQUIRED = ("timestamp", "entity", "anomaly_score", "is_anomaly")


def event_id_for(entity: str, start: pd.Timestamp, *, job: str = "", model: str = "") -> str:
    """The stable id of the event of ``entity`` starting at ``start``, found by ``job`` with
    ``model`` (16 hex characters).

    >>> t = pd.Timestamp("2026-01-01T00:00Z")
    >>> event_id_for("eks-a", t, job="cpu", model="cpu")
    '826a7d9076727a62'
    >>> event_id_for("eks-a", t, job="cpu") != event_id_for("eks-a", t, job="mem")
    True
    """
    ts = pd.Timestamp(start)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    key = f"{job}\x00{model}\x00{entity}\x00{ts.isoformat()}".encode()
    return hashlib.sha256(key).hexdigest()[:16]


@dataclass(frozen=True)
class AnomalyEvent:
    """One incident: a run of anomalous points of one entity.

    ``weight`` (the sum of the anomaly scores of the event's anomalous points) lets an event
    continued on a later tick average its explanation correctly with the new points.
    """

    event_id: str
    entity: str
    start: pd.Timestamp
    end: pd.Timestamp
    peak_score: float
    peak_time: pd.Timestamp
    top_metrics: tuple[tuple[str, float], ...]
    n_points: int
    status: EventStatus
    weight: float
    deviations: Mapping[str, float] = field(default_factory=dict)
    job: str = ""
    model: str = ""

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (ISO 8601 UTC times)."""
        return {
            "event_id": self.event_id, "entity": self.entity, "job": self.job,
            "model": self.model, "start": _iso(self.start), "end": _iso(self.end),
            "peak_score": self.peak_score, "peak_time": _iso(self.peak_time),
            "top_metrics": [[m, c] for m, c in self.top_metrics], "n_points": self.n_points,
            "status": self.status, "deviations": dict(self.deviations),
        }


def _iso(ts: pd.Timestamp) -> str:
    return pd.Timestamp(ts).tz_convert("UTC").isoformat().replace("+00:00", "Z")


def _infer_step(ts: pd.DatetimeIndex) -> pd.Timedelta | None:
    if len(ts) < 2:
        return None
    d = np.diff(ts.as_unit("ns").asi8)
    d = d[d > 0]
    if len(d) == 0:
        return None
    vals, counts = np.unique(d, return_counts=True)
    return pd.Timedelta(int(vals[np.argmax(counts)]), unit="ns")


def merge_events(
    scores: pd.DataFrame,
    *,
    max_gap_steps: int = 2,
    step: pd.Timedelta | str | None = None,
    previous: Mapping[str, AnomalyEvent] | None = None,
    threshold: float | Mapping[str, float] | None = None,
    job: str = "",
    model: str = "",
) -> list[AnomalyEvent]:
    """Merge scored points into anomaly events.

    Parameters
    ----------
    scores
        Columns ``timestamp`` (UTC), ``entity``, ``anomaly_score``, ``is_anomaly``; optionally
        ``ready`` (rows not ready never count as anomalous), ``contrib_<metric>`` and
        ``dev_<metric>``.
    max_gap_steps
        Normal points allowed inside one event; the event closes after more than this many.
    step
        The grid step; inferred per entity from the timestamps when ``None``.
    previous
        Open events per entity from an earlier call (the store's open events); a run that starts
        within ``max_gap_steps`` steps of one continues it, keeping its ``event_id`` and start.
        An open previous event with no continuation is returned again, closed if enough normal
        points followed it.
    threshold
        When given (one value or a value per entity), ``is_anomaly`` is recomputed as
        ``anomaly_score >= threshold`` (per-entity thresholds raised by feedback).
    job, model
        Copied onto each event.

    Returns
    -------
    list of AnomalyEvent
        Sorted by (entity, start); only events touched by ``scores``.

    Examples
    --------
    >>> ts = pd.date_range("2026-01-01", periods=8, freq="5min", tz="UTC")
    >>> s = pd.DataFrame({"timestamp": ts, "entity": "eks-a",
    ...     "anomaly_score": [0.2, 1.5, 2.0, 0.3, 1.2, 0.1, 0.1, 0.1],
    ...     "is_anomaly": [False, True, True, False, True, False, False, False]})
    >>> [(e.start.strftime("%H:%M"), e.end.strftime("%H:%M"), e.peak_score, e.status)
    ...  for e in merge_events(s, max_gap_steps=1)]
    [('00:05', '00:20', 2.0, 'closed')]
    """
    if max_gap_steps < 0:
        raise DataError(f"merge_events: max_gap_steps must be >= 0, got {max_gap_steps}")
    missing = [c for c in _REQUIRED if c not in scores.columns]
    if missing:
        raise DataError(f"merge_events: scores lack column(s) {missing}; columns are "
                        f"{list(scores.columns)}")
    previous = dict(previous or {})
    fixed_step = pd.Timedelta(step) if step is not None else None
    contrib_cols = [c for c in scores.columns if c.startswith("contrib_")]
    dev_cols = [c for c in scores.columns if c.startswith("dev_")]
    out: list[AnomalyEvent] = []
    for entity, g in scores.groupby("entity", sort=True):
        entity = str(entity)
        g = g.sort_values("timestamp")
        ts = pd.DatetimeIndex(g["timestamp"])
        ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
        score = g["anomaly_score"].to_numpy(dtype=np.float64)
        if threshold is None:
            flag = g["is_anomaly"].to_numpy(dtype=bool).copy()
        else:
            thr = (threshold.get(entity, 1.0) if isinstance(threshold, Mapping)
                   else float(threshold))
            flag = score >= thr
        if "ready" in g.columns:
            flag &= g["ready"].to_numpy(dtype=bool)
        flag &= np.isfinite(score)
        ent_step = fixed_step or _infer_step(ts)
        gap = (ent_step * (max_gap_steps + 1)) if ent_step is not None else pd.Timedelta(0)
        last_ts = ts[-1]
        contrib = g[contrib_cols].to_numpy(dtype=np.float64) if contrib_cols else None
        devs = g[dev_cols].to_numpy(dtype=np.float64) if dev_cols else None

        # Runs of anomalous points separated by at most `gap` in time.
        idx = np.flatnonzero(flag)
        runs: list[list[int]] = []
        for i in idx:
            if runs and ts[i] - ts[runs[-1][-1]] <= gap:
                runs[-1].append(int(i))
            else:
                runs.append([int(i)])

        prev = previous.pop(entity, None)
        for k, run in enumerate(runs):
            ev = _build(entity, ts, score, contrib, contrib_cols, devs, dev_cols, run, job, model)
            if k == 0 and prev is not None and prev.status == "open" and (
                    ev.start - prev.end <= gap):
                ev = _combine(prev, ev)
                prev = None
            closed = last_ts - ev.end >= gap and ent_step is not None
            out.append(replace(ev, status="closed" if closed else "open"))
        # An open event scored further without a continuation closes once enough quiet
        # points passed.
        if (prev is not None and prev.status == "open" and ent_step is not None
                and last_ts - prev.end >= gap):
            out.append(replace(prev, status="closed"))
    return sorted(out, key=lambda e: (e.entity, e.start))


def _build(entity: str, ts: pd.DatetimeIndex, score: np.ndarray, contrib: np.ndarray | None,
           contrib_cols: list[str], devs: np.ndarray | None, dev_cols: list[str],
           run: list[int], job: str, model: str) -> AnomalyEvent:
    r = np.asarray(run)
    s = score[r]
    peak = int(r[np.argmax(s)])
    weight = float(s.sum())
    top: tuple[tuple[str, float], ...] = ()
    if contrib is not None:
        w = s / weight if weight > 0 else np.full(len(s), 1.0 / len(s))
        share = np.nan_to_num(contrib[r], nan=0.0).T @ w
        top = _rank([(c.removeprefix("contrib_"), float(v)) for c, v in zip(
            contrib_cols, share, strict=True)])
    deviations: dict[str, float] = {}
    if devs is not None:
        deviations = {c.removeprefix("dev_"): round(float(v), 3)
                      for c, v in zip(dev_cols, devs[peak], strict=True) if np.isfinite(v)}
    start = ts[r[0]]
    return AnomalyEvent(
        event_id=event_id_for(entity, start, job=job, model=model), entity=entity, start=start,
        end=ts[r[-1]], peak_score=float(score[peak]), peak_time=ts[peak], top_metrics=top,
        n_points=len(r), status="open", weight=weight, deviations=deviations, job=job,
        model=model)


def _rank(pairs: list[tuple[str, float]]) -> tuple[tuple[str, float], ...]:
    pairs = sorted(pairs, key=lambda p: -p[1])
    return tuple((m, round(v, 4)) for m, v in pairs)


def _combine(old: AnomalyEvent, new: AnomalyEvent) -> AnomalyEvent:
    weight = old.weight + new.weight
    shares: dict[str, float] = {}
    for ev in (old, new):
        for m, c in ev.top_metrics:
            shares[m] = shares.get(m, 0.0) + c * (ev.weight / weight if weight > 0 else 0.5)
    peak_new = new.peak_score > old.peak_score
    return replace(
        old, end=new.end, n_points=old.n_points + new.n_points, weight=weight,
        peak_score=new.peak_score if peak_new else old.peak_score,
        peak_time=new.peak_time if peak_new else old.peak_time,
        deviations=new.deviations if peak_new else old.deviations,
        top_metrics=_rank(list(shares.items())) if shares else old.top_metrics,
        job=new.job or old.job, model=new.model or old.model)
