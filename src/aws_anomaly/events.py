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

:class:`AlertPolicy` is the one place that decides when anomalous points become an *alert*:
the job runner merges with it, the notifiers send what it says, the exporter publishes its
state (``aws_anomaly_alert_active``, which the Prometheus rules alert on) and ``backtest``
counts with it. Its rules:

* a point is anomalous when it is ready and ``anomaly_score >= threshold``;
* anomalous points of one entity merge into one event when at most ``max_gap_steps`` normal
  points lie between them (the merge gap);
* an event **fires** once it holds ``min_consecutive`` anomalous points (a shorter blip never
  alerts), at the time of that point; it stays firing while the event is open;
* it **resolves** when the event closes: ``max_gap_steps + 1`` normal points after its last
  anomalous point (the cool-down: an anomaly inside that gap continues the same alert rather
  than raising a new one); the resolution carries the event's end;
* events the job scored before it started notifying (its first run, or an entity seen for the
  first time, scores ``lookback`` of past data) are *history*: stored, never sent, never shown
  as firing (:meth:`AlertPolicy.split_history`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from aws_anomaly.durations import parse_timestamp
from aws_anomaly.errors import ConfigError, DataError

__all__ = ["DEFAULT_MAX_GAP_STEPS", "AlertPolicy", "AlertState", "AnomalyEvent", "EventStatus",
           "event_id_for", "merge_events"]

EventStatus = Literal["open", "closed"]
AlertState = Literal["firing", "resolved"]
#: Normal points allowed inside one event (the job runner's default merge gap).
DEFAULT_MAX_GAP_STEPS = 2
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
    ts = parse_timestamp(start, where="event start", error=DataError)
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


def merge_events(
    scores: pd.DataFrame,
    *,
    max_gap_steps: int = DEFAULT_MAX_GAP_STEPS,
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

    # One pass over all entities: rows in (entity, timestamp) order, then numpy over the sorted
    # arrays. Only entities with an anomalous point or a previous event are looked at one by one.
    codes, uniques = pd.factorize(scores["entity"], sort=True)
    keep = codes >= 0  # groupby leaves out rows without an entity
    ts_all = pd.DatetimeIndex(scores["timestamp"])
    ts_all = ts_all.tz_localize("UTC") if ts_all.tz is None else ts_all.tz_convert("UTC")
    order = np.lexsort((ts_all.as_unit("ns").asi8, codes))
    order = order[keep[order]]
    codes = codes[order]
    ts = ts_all[order]
    ns = ts.as_unit("ns").asi8
    n_ent = len(uniques)
    names = [str(u) for u in uniques]
    bounds = np.searchsorted(codes, np.arange(n_ent + 1))  # rows of entity j: bounds[j]:bounds[j+1]

    score = scores["anomaly_score"].to_numpy(dtype=np.float64)[order]
    if threshold is None:
        flag = scores["is_anomaly"].to_numpy(dtype=bool)[order]
    else:
        thr = (np.array([threshold.get(e, 1.0) for e in names], dtype=np.float64)
               if isinstance(threshold, Mapping) else np.full(n_ent, float(threshold)))
        flag = score >= thr[codes]
    if "ready" in scores.columns:
        flag &= scores["ready"].to_numpy(dtype=bool)[order]
    flag &= np.isfinite(score)
    contrib = scores[contrib_cols].to_numpy(dtype=np.float64)[order] if contrib_cols else None
    devs = scores[dev_cols].to_numpy(dtype=np.float64)[order] if dev_cols else None

    if fixed_step:  # a zero step is inferred, as a missing one
        has_step = np.ones(n_ent, dtype=bool)
        gap_ns = np.full(n_ent, (fixed_step * (max_gap_steps + 1)).value, dtype=np.int64)
    else:
        step_ns = _infer_steps(ns, codes, n_ent)
        has_step = step_ns > 0
        gap_ns = np.array([(pd.Timedelta(int(v), unit="ns") * (max_gap_steps + 1)).value
                           if v > 0 else 0 for v in step_ns], dtype=np.int64)
    last_ns = ns[np.maximum(bounds[1:] - 1, 0)]

    # Runs of anomalous points separated by at most the entity's gap in time: a run starts at
    # an entity's first anomalous point or after a longer pause.
    idx = np.flatnonzero(flag)
    fc = codes[idx]
    new_run = np.ones(len(idx), dtype=bool)
    if len(idx) > 1:
        same = fc[1:] == fc[:-1]
        new_run[1:] = ~same | (np.diff(ns[idx]) > gap_ns[fc[1:]])
    run_starts = np.flatnonzero(new_run)
    run_ends = np.append(run_starts[1:], len(idx))
    run_code = fc[run_starts]
    ent_runs = np.searchsorted(run_code, np.arange(n_ent + 1))  # runs of entity j

    out: list[AnomalyEvent] = []
    wanted = set(np.unique(run_code).tolist())
    wanted.update(j for j, e in enumerate(names) if e in previous)
    for j in sorted(wanted):
        entity = names[j]
        gap = pd.Timedelta(int(gap_ns[j]), unit="ns")
        last_ts = pd.Timestamp(int(last_ns[j]), unit="ns", tz="UTC")
        prev = previous.pop(entity, None)
        for k, r in enumerate(range(ent_runs[j], ent_runs[j + 1])):
            run = idx[run_starts[r]:run_ends[r]]
            ev = _build(entity, ts, score, contrib, contrib_cols, devs, dev_cols, run, job, model)
            if k == 0 and prev is not None and prev.status == "open" and (
                    ev.start - prev.end <= gap):
                ev = _combine(prev, ev)
                prev = None
            closed = last_ts - ev.end >= gap and bool(has_step[j])
            out.append(replace(ev, status="closed" if closed else "open"))
        # An open event scored further without a continuation closes once enough quiet
        # points passed.
        if (prev is not None and prev.status == "open" and has_step[j]
                and last_ts - prev.end >= gap):
            out.append(replace(prev, status="closed"))
    return sorted(out, key=lambda e: (e.entity, e.start))


def _infer_steps(ns: np.ndarray, codes: np.ndarray, n_ent: int) -> np.ndarray:
    """Per entity, the most common positive difference of its sorted timestamps (the smallest
    of equally common ones; 0 when it has none), in nanoseconds."""
    out = np.zeros(n_ent, dtype=np.int64)
    if len(ns) < 2:
        return out
    d = np.diff(ns)
    c = codes[1:]
    ok = (codes[1:] == codes[:-1]) & (d > 0)
    d, c = d[ok], c[ok]
    if not len(d):
        return out
    o = np.lexsort((d, c))
    d, c = d[o], c[o]
    first = np.ones(len(d), dtype=bool)
    first[1:] = (d[1:] != d[:-1]) | (c[1:] != c[:-1])
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, len(d)))
    vals, owner = d[starts], c[starts]
    best = np.lexsort((vals, -counts, owner))  # per entity: most common, then smallest
    pick = best[np.r_[True, owner[best][1:] != owner[best][:-1]]]
    out[owner[pick]] = vals[pick]
    return out


def _build(entity: str, ts: pd.DatetimeIndex, score: np.ndarray, contrib: np.ndarray | None,
           contrib_cols: list[str], devs: np.ndarray | None, dev_cols: list[str],
           run: np.ndarray | list[int], job: str, model: str) -> AnomalyEvent:
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


_SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class AlertPolicy:
    """When anomalous points become an alert, and when it resolves (see the module docstring).

    Built from a job's ``alert`` section (:meth:`from_job`); a notifier's own
    ``min_consecutive`` gives that notifier a stricter copy (:meth:`with_min_consecutive`),
    the same rules with another bar.

    Examples
    --------
    >>> ts = pd.date_range("2026-01-01", periods=9, freq="5min", tz="UTC")
    >>> s = pd.DataFrame({"timestamp": ts, "entity": "eks-a",
    ...     "anomaly_score": [0.2, 1.5, 0.3, 0.2, 0.1, 1.2, 1.3, 1.4, 0.1], "is_anomaly": False})
    >>> policy = AlertPolicy(min_consecutive=3)
    >>> events = policy.merge(s, threshold=policy.threshold)
    >>> [(e.n_points, policy.fires(e)) for e in events]  # a blip, then three points
    [(1, False), (3, True)]
    >>> policy.alert_states(events)
    {'eks-a': True}
    >>> [state for _, state in policy.transitions(events)]
    ['firing']
    """

    threshold: float = 1.0
    min_consecutive: int = 3
    max_gap_steps: int = DEFAULT_MAX_GAP_STEPS
    severity: str = "warning"

    def __post_init__(self) -> None:
        if not (np.isfinite(self.threshold) and self.threshold > 0):
            raise ConfigError(f"alert.threshold must be > 0, got {self.threshold}")
        if isinstance(self.min_consecutive, bool) or int(self.min_consecutive) < 1:
            raise ConfigError(f"alert.min_consecutive must be >= 1, got {self.min_consecutive}")
        if isinstance(self.max_gap_steps, bool) or int(self.max_gap_steps) < 0:
            raise ConfigError(f"max_gap_steps must be >= 0, got {self.max_gap_steps}")
        if self.severity not in _SEVERITIES:
            raise ConfigError(f"alert.severity {self.severity!r} is not one of {_SEVERITIES}")

    @classmethod
    def from_job(cls, job: Any, *, max_gap_steps: int = DEFAULT_MAX_GAP_STEPS) -> AlertPolicy:
        """The policy of a job (``aws_anomaly.config.JobConfig``): its ``alert`` section."""
        alert = job.alert
        return cls(threshold=float(alert.threshold), min_consecutive=int(alert.min_consecutive),
                   max_gap_steps=max_gap_steps, severity=str(alert.severity))

    def with_min_consecutive(self, min_consecutive: int | None) -> AlertPolicy:
        """This policy with another bar (a notifier's override); ``None`` keeps it."""
        return self if min_consecutive is None else replace(
            self, min_consecutive=int(min_consecutive))

    @property
    def gap_steps(self) -> int:
        """Normal points after the last anomalous one before an event (and its alert) ends."""
        return self.max_gap_steps + 1

    # ------------------------------------------------------------------ points -> events
    def merge(self, scores: pd.DataFrame, *, step: pd.Timedelta | str | None = None,
              previous: Mapping[str, AnomalyEvent] | None = None,
              threshold: float | Mapping[str, float] | None = None, job: str = "",
              model: str = "") -> list[AnomalyEvent]:
        """:func:`merge_events` with this policy's merge gap.

        ``threshold`` ``None`` keeps the scores' ``is_anomaly`` (the runner has applied the
        per-entity thresholds); a value, or a map per entity (entities not in it use this
        policy's ``threshold``), recomputes it.
        """
        if isinstance(threshold, Mapping):
            ents = scores["entity"].astype(str).unique() if "entity" in scores else ()
            threshold = {str(e): float(threshold.get(str(e), self.threshold)) for e in ents}
        return merge_events(scores, max_gap_steps=self.max_gap_steps, step=step,
                            previous=previous, threshold=threshold, job=job, model=model)

    # ------------------------------------------------------------------ events -> alerts
    def fires(self, event: AnomalyEvent) -> bool:
        """Whether ``event`` is (or was) an alert: it reached ``min_consecutive`` points."""
        return int(event.n_points) >= self.min_consecutive

    def firing(self, event: AnomalyEvent) -> bool:
        """Whether ``event``'s alert fires now: it reached the bar and is still open."""
        return self.fires(event) and event.status == "open"

    def transitions(self, events: Sequence[AnomalyEvent]
                    ) -> list[tuple[AnomalyEvent, AlertState]]:
        """What to send for events a tick touched: ``firing`` for each event that reached the
        bar, and ``resolved`` after it when the event closed (an incident that started and
        ended within one tick is still reported). Receivers and the outbox deduplicate a
        state sent before."""
        out: list[tuple[AnomalyEvent, AlertState]] = []
        for ev in events:
            if not self.fires(ev):
                continue
            out.append((ev, "firing"))
            if ev.status != "open":
                out.append((ev, "resolved"))
        return out

    def alert_states(self, events: Sequence[AnomalyEvent],
                     entities: Iterable[str] = ()) -> dict[str, bool]:
        """Per entity, whether an alert fires after these events: the entity's latest event
        decides; ``entities`` without an event are not firing."""
        states = {str(e): False for e in entities}
        for ev in sorted(events, key=lambda e: (e.entity, e.start)):
            states[ev.entity] = self.firing(ev)
        return states

    def split_history(self, events: Sequence[AnomalyEvent],
                      history_before: Mapping[str, pd.Timestamp]
                      ) -> tuple[list[AnomalyEvent], list[AnomalyEvent]]:
        """``(live, history)``: an event of an entity in ``history_before`` that started
        before that time is history (a first run's look-back): it is stored but never sent
        and never shown as firing, even while it goes on."""
        live: list[AnomalyEvent] = []
        history: list[AnomalyEvent] = []
        for ev in events:
            cut = history_before.get(ev.entity)
            (history if cut is not None and ev.start < cut else live).append(ev)
        return live, history

    def summarize(self, events: Sequence[AnomalyEvent], *,
                  step: pd.Timedelta | None = None) -> dict[str, Any]:
        """Counts of what these events send: alerts fired, resolved, still firing at the end,
        and the longest alert (first to last anomalous point, plus one step) in minutes."""
        fired = [e for e in events if self.fires(e)]
        one = pd.Timedelta(step) if step is not None else pd.Timedelta(0)
        longest = max(((e.end - e.start + one) / pd.Timedelta(minutes=1) for e in fired),
                      default=0.0)
        return {"firing": len(fired), "resolved": sum(e.status != "open" for e in fired),
                "open_at_end": sum(e.status == "open" for e in fired),
                "longest_alert_minutes": round(float(longest), 1)}
