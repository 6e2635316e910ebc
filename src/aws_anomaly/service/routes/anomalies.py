"""``/v1/anomalies``: list and read anomaly events, record feedback on them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from aws_anomaly.errors import DataError
from aws_anomaly.events import AnomalyEvent
from aws_anomaly.service.deps import AppState, Authorized, ErrorOut, State
from aws_anomaly.streaming.series import SeriesModel

router = APIRouter(prefix="/v1/anomalies", tags=["anomalies"])

EventId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$",
                              description="16 hex characters, as listed by GET /v1/anomalies")]


class TopMetric(BaseModel):
    metric: str
    contribution: float = Field(description="share of the anomaly attributed to the metric")
    deviation: float | None = Field(
        None, description="how far the metric was from its expected value at the peak, in "
        "units of the band's half-width (|deviation| <= 1: inside the band)")


class Event(BaseModel):
    event_id: str
    job: str
    entity: str
    model: str
    start: datetime
    end: datetime
    peak_time: datetime
    peak_score: float
    n_points: int
    status: Literal["open", "closed"]
    top_metrics: list[TopMetric]
    explanation: str = Field(description="one sentence for people")
    feedback: Literal["true_positive", "false_positive"] | None = Field(
        None, description="the latest verdict, if any")


class FeedbackOut(BaseModel):
    id: int
    label: Literal["true_positive", "false_positive"]
    note: str
    created: datetime


class EventDetail(Event):
    feedback_history: list[FeedbackOut]


class EventPage(BaseModel):
    items: list[Event]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on "
                                    "the last page")


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: Literal["true_positive", "false_positive"] = Field(
        description="true_positive: a real problem; false_positive: not an anomaly")
    note: str = Field("", max_length=2000)


def explain(ev: AnomalyEvent, per_metric: bool = False) -> str:
    """One sentence: which metrics, how far from their expected band (band units, see
    :func:`aws_anomaly.explain.band_deviation`). ``per_metric``: the job's model scores each
    metric on its own (a streaming series detector), so a metric inside its band was unusual
    in its own recent values, never "together with the other metrics"."""
    parts = []
    for metric, share in ev.top_metrics[:2]:
        if share <= 0:
            continue
        dev = ev.deviations.get(metric)
        how = ""
        if dev is not None and abs(dev) <= 1.0:
            how = (", inside its expected band: an unusual pattern of its recent values"
                   if per_metric else
                   ", inside its expected band: unusual together with the other metrics")
        elif dev is not None:
            how = f", {abs(dev):.1f}x the expected band {'above' if dev > 0 else 'below'}"
        parts.append(f"{metric} ({share:.0%} of the anomaly{how})")
    head = (f"score {ev.peak_score:.2f} at {ev.peak_time.strftime('%Y-%m-%d %H:%M')}Z over "
            f"{ev.n_points} point(s)")
    return f"{head}; driven by " + " and ".join(parts) if parts else head


def per_metric_model(state: AppState, job: str) -> bool:
    """Whether the job's model scores each metric on its own (a streaming series model)."""
    runner = state.runners.get(job)
    return runner is not None and isinstance(runner.model, SeriesModel)


def to_model(ev: AnomalyEvent, verdict: str | None = None, per_metric: bool = False) -> Event:
    return Event(
        event_id=ev.event_id, job=ev.job, entity=ev.entity, model=ev.model,
        start=ev.start.to_pydatetime(), end=ev.end.to_pydatetime(),
        peak_time=ev.peak_time.to_pydatetime(), peak_score=ev.peak_score,
        n_points=ev.n_points, status=ev.status,
        top_metrics=[TopMetric(metric=m, contribution=c, deviation=ev.deviations.get(m))
                     for m, c in ev.top_metrics],
        explanation=explain(ev, per_metric), feedback=verdict)


def _utc(t: datetime | None) -> datetime | None:
    # Plain datetimes (not pandas): any year a client sends stays comparable.
    if t is None:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@router.get("", response_model=EventPage, summary="List anomaly events, newest first")
def list_anomalies(
    state: State,
    entity: Annotated[str | None, Query(max_length=256)] = None,
    job: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[Literal["open", "closed"] | None, Query()] = None,
    start: Annotated[datetime | None, Query(description="events ending at or after this")] = None,
    end: Annotated[datetime | None, Query(description="events starting before this")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> EventPage:
    s, e = _utc(start), _utc(end)
    if s is not None and e is not None and e <= s:
        raise HTTPException(422, f"end ({e.isoformat()}) must be after start "
                            f"({s.isoformat()})")
    try:
        page = state.store.list_events(entity=entity, job=job, status=status, start=s, end=e,
                                       limit=limit, cursor=cursor)
    except DataError as exc:
        raise HTTPException(422, f"cursor: {exc}") from None
    verdicts = {k: v[0] for k, v in state.store.latest_labels().items()}
    return EventPage(items=[to_model(ev, verdicts.get(ev.event_id),
                                     per_metric_model(state, ev.job)) for ev in page.items],
                     next_cursor=page.next_cursor)


@router.get("/{event_id}", response_model=EventDetail, summary="One anomaly event",
            responses={404: {"model": ErrorOut, "description": "unknown event"}})
def get_anomaly(event_id: EventId, state: State) -> EventDetail:
    ev = state.store.get_event(event_id)
    if ev is None:
        raise HTTPException(404, f"unknown anomaly event {event_id!r}")
    fb = state.store.feedback_for(event_id)
    base = to_model(ev, fb[-1].label if fb else None, per_metric_model(state, ev.job))
    return EventDetail(**base.model_dump(), feedback_history=[
        FeedbackOut(id=f.id, label=f.label, note=f.note, created=f.created.to_pydatetime())
        for f in fb])


@router.post("/{event_id}/feedback", response_model=FeedbackOut, status_code=201,
             dependencies=[Authorized], summary="Mark an event a true or false positive",
             responses={401: {"model": ErrorOut, "description": "no bearer token"},
                        403: {"model": ErrorOut, "description": "wrong bearer token"},
                        404: {"model": ErrorOut, "description": "unknown event"}})
def post_feedback(event_id: EventId, body: FeedbackIn, state: State) -> FeedbackOut:
    if state.store.get_event(event_id) is None:
        raise HTTPException(404, f"unknown anomaly event {event_id!r}")
    rec = state.store.add_feedback(event_id, body.label, body.note)
    return FeedbackOut(id=rec.id, label=rec.label, note=rec.note,
                       created=rec.created.to_pydatetime())
