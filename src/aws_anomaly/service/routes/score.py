"""``POST /v1/score``: score an entity's points on demand."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
import pandas as pd
import pydantic_core
from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from aws_anomaly.data import Dataset
from aws_anomaly.data.dataset import JITTER_FRACTION, jitter_offsets
from aws_anomaly.errors import DataError, NotFittedError
from aws_anomaly.explain import band_deviation, band_deviation_one
from aws_anomaly.service.deps import AppState, ErrorOut, State

router = APIRouter(prefix="/v1", tags=["score"])

MAX_POINTS = 10_000
#: Requests up to this many points that continue a live series use a copy of the job's live
#: stream scorer of the entity (``JobRunner.live``).
FAST_PATH_POINTS = 64
#: Numbers only: ``true`` or ``"0.5"`` are refused, not read as 1.0 or 0.5.
FiniteFloat = Annotated[float, Field(allow_inf_nan=False, strict=True)]
MetricName = Annotated[str, StringConstraints(min_length=1, max_length=128)]

#: Times the service scores: well inside pandas' nanosecond range (1677-2262), with room for
#: the feature look-back before the first point.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _timestamp(v: Any) -> datetime:
    """One request timestamp: ISO 8601 text or Unix seconds (a JSON number), in range."""
    if isinstance(v, bool) or not isinstance(v, (int, float, str, datetime)):
        raise ValueError(f"expected ISO 8601 text or Unix seconds (a number), got "
                         f"{type(v).__name__} {v!r}"[:200])
    if isinstance(v, (int, float)):
        if not math.isfinite(v):
            raise ValueError(f"Unix seconds must be a finite number, got {v!r}")
        if not EARLIEST.timestamp() <= v < LATEST.timestamp():
            hint = (" (this looks like milliseconds: send seconds)" if abs(v) >= 2e10 and
                    EARLIEST.timestamp() <= v / 1000 < LATEST.timestamp() else "")
            raise ValueError(f"{v!r} Unix seconds is outside the supported range "
                             f"{EARLIEST.timestamp():.0f} to {LATEST.timestamp():.0f} "
                             f"({EARLIEST.year}-{LATEST.year - 1}){hint}")
        return datetime.fromtimestamp(v, tz=UTC)
    if isinstance(v, str):
        text = v.strip()
        if len(text) > 64:
            raise ValueError(f"{text[:40]!r}... is not an ISO 8601 time")
        try:
            t = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not an ISO 8601 time (e.g. 2026-03-01T10:00:00Z); "
                             "send Unix seconds as a JSON number") from None
    else:
        t = v
    t = t if t.tzinfo is not None else t.replace(tzinfo=UTC)
    try:
        t = t.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError(f"{v!s} is outside the supported range {EARLIEST.year}-"
                         f"{LATEST.year - 1}") from None
    if not EARLIEST <= t < LATEST:
        raise ValueError(f"{t.isoformat()} is outside the supported range "
                         f"{EARLIEST.year}-{LATEST.year - 1}")
    return t


Timestamp = Annotated[datetime, BeforeValidator(_timestamp)]


def _example(n: int | None = None) -> dict[str, Any]:
    """A request the embedded demo's model scores (enough points for its feature windows)."""
    from aws_anomaly.features import FeatureSpec

    n = n or FeatureSpec().min_history + 1
    t0 = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
    i = np.arange(n)
    daily = np.sin(2 * np.pi * i / 288)
    return {"entity": "eks-prod-1",
            "timestamps": [datetime.fromtimestamp(t0 + 300 * k, tz=UTC).isoformat()
                           .replace("+00:00", "Z") for k in range(n)],
            "metrics": {"cluster_cpu_request_ratio": np.round(0.6 + 0.1 * daily, 3).tolist(),
                        "cluster_mem_request_ratio": np.round(0.55 + 0.05 * daily, 3).tolist(),
                        "cluster_pod_ratio": np.round(0.4 + 0.08 * daily, 3).tolist()}}


class ScoreRequest(BaseModel):
    """One entity's points: timestamps and one value list per metric, aligned by position.

    The example is one day and five minutes of 5-minute points: enough for the feature
    windows of a model trained with the default features, for an entity with no live
    history."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_example()]})

    entity: str = Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f]+$",
                        description="the entity (cluster) the points belong to")
    timestamps: list[Timestamp] = Field(
        min_length=1, max_length=MAX_POINTS,
        description=f"ISO 8601 text or Unix seconds (numbers), increasing, between "
        f"{EARLIEST.year} and {LATEST.year - 1}, on the model's step grid (the entity's "
        f"live series' grid when it has one); a point within {JITTER_FRACTION:.0%} of a "
        "step of a grid point is scored as that point's sample, and the answer gives the "
        "grid time")
    metrics: dict[MetricName, list[FiniteFloat]] = Field(
        min_length=1, max_length=64,
        description="metric name -> values, one per timestamp, finite numbers")

    @field_validator("timestamps")
    @classmethod
    def _increasing(cls, v: list[datetime]) -> list[datetime]:
        ts = [t if t.tzinfo else t.replace(tzinfo=UTC) for t in v]
        for i in range(1, len(ts)):
            if ts[i] == ts[i - 1]:
                raise ValueError(f"duplicate timestamp {ts[i].isoformat()} at index {i}; "
                                 "each point needs its own time")
            if ts[i] < ts[i - 1]:
                raise ValueError(f"timestamps must increase: index {i} "
                                 f"({ts[i].isoformat()}) is before index {i - 1} "
                                 f"({ts[i - 1].isoformat()})")
        return ts

    @model_validator(mode="after")
    def _aligned(self) -> ScoreRequest:
        n = len(self.timestamps)
        for name, values in self.metrics.items():
            if len(values) != n:
                raise ValueError(f"metrics.{name} has {len(values)} values but timestamps has "
                                 f"{n}; give one value per timestamp")
        return self


class PointExplanation(BaseModel):
    top_metric: str = Field(description="the metric that drove the score most ('' if none)")
    contributions: dict[str, float] = Field(description="share of the anomaly per metric")
    deviations: dict[str, float | None] = Field(
        description="per metric, how far the value is from its expected value in units of "
        "the band's half-width (|deviation| <= 1: inside the band); null before the band has "
        "history")


class ExpectedBand(BaseModel):
    expected: float
    lower: float
    upper: float


class ScoredPoint(BaseModel):
    timestamp: datetime
    anomaly_score: float = Field(description=">= threshold (1.0 by default) is anomalous")
    is_anomaly: bool
    ready: bool = Field(description="False while the feature windows were still filling")
    explanation: PointExplanation
    expected: dict[str, ExpectedBand | None] = Field(
        default_factory=dict, description="per metric, the expected value and band at this "
        "point, from the entity's past only (null before the band has history)")


class ScoreResponse(BaseModel):
    entity: str
    job: str
    model: str
    threshold: float
    history_points: int = Field(description="earlier points of the running job used as "
                                "feature look-back")
    points: list[ScoredPoint]


class ScoreLimiter:
    """At most ``concurrency`` scorings at once, ``queue`` more waiting (each at most
    ``wait_s``); beyond that a request is refused with 429 at once, so a burst of large
    requests cannot take the event loop's threads, the CPU and the memory from everything
    else (``/healthz`` keeps answering)."""

    def __init__(self, concurrency: int = 2, queue: int = 8, wait_s: float = 30.0) -> None:
        self.concurrency = concurrency
        self.queue = queue
        self.wait_s = wait_s
        self.active = 0
        self.waiting = 0
        self.refused = 0
        self._sems: dict[int, asyncio.Semaphore] = {}

    def _sem(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        sem = self._sems.get(id(loop))
        if sem is None:
            self._sems = {id(loop): (sem := asyncio.Semaphore(self.concurrency))}
        return sem

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        sem = self._sem()
        if sem.locked() and self.waiting >= self.queue:
            self.refused += 1
            raise HTTPException(429, f"body: the service is scoring {self.active} request(s) "
                                f"with {self.waiting} waiting; retry in a second",
                                headers={"Retry-After": "1"})
        self.waiting += 1
        try:
            await asyncio.wait_for(sem.acquire(), timeout=self.wait_s)
        except TimeoutError:
            self.refused += 1
            raise HTTPException(503, f"body: waited {self.wait_s:.0f} s for a scoring slot; "
                                "retry shortly", headers={"Retry-After": "5"}) from None
        finally:
            self.waiting -= 1
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
            sem.release()


#: Score requests with bodies at least this large (or of unknown size) take a limiter slot
#: before their body is read (about 600 points; shorter ones are cheap).
GATED_BYTES = 64 * 1024
#: Bodies up to this size are tried on the fast path (a request of FAST_PATH_POINTS points of
#: three metrics is about 6 KiB); larger ones go to the route without being parsed twice.
FAST_BYTES = 16 * 1024


class ScoreGateMiddleware:
    """The ASGI front of ``POST /v1/score``.

    * A **short** request (``Content-Length`` up to :data:`FAST_BYTES`) that is a valid short
      continuation of an entity's live series is answered here, without FastAPI's routing,
      dependency solving and response machinery (about half of a single-point request's
      time): the body is validated by the same :class:`ScoreRequest` and scored by the same
      :func:`_score_cached` as the route. Anything else (invalid, no live series, an unknown
      job, another content type, any error) is handed to the route with the body replayed,
      so every error answer still comes from one place (docs/performance.md, "The service
      at scale").
    * A **large** request (:data:`GATED_BYTES` or more, or of unknown size) takes a
      :class:`ScoreLimiter` slot *before* its body is read and
      validated (parsing 10,000 points costs the event loop ~0.1 s), and holds it until the
      answer is sent; a request beyond the limiter's queue gets 429 at once.
    """

    def __init__(self, app: Any, path: str = "/v1/score") -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" \
                or scope.get("path") != self.path:
            await self.app(scope, receive, send)
            return
        size = content_type = None
        for k, v in scope.get("headers") or ():
            if k == b"content-length":
                size = v
            elif k == b"content-type":
                content_type = v
        try:
            n = int(size) if size is not None else None
        except ValueError:
            n = None
        small = n is not None and n < GATED_BYTES
        state = getattr(getattr(scope.get("app"), "state", None), "aws_anomaly", None)
        if n is not None and n <= FAST_BYTES and state is not None and content_type is not None \
                and content_type.partition(b";")[0].strip().lower() == b"application/json":
            body, whole = await _read_body(receive, FAST_BYTES)
            if not whole:  # the client went away, or sent more than it declared
                await self.app(scope, _replay(body, receive, more=True), send)
                return
            answer = _answer_fast(state, scope.get("query_string", b""), body)
            if answer is not None:
                state.fast_answers += 1
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(answer)).encode())]})
                await send({"type": "http.response.body", "body": answer})
                return
            receive = _replay(body, receive)
        limiter = getattr(state, "score_limiter", None)
        if small or limiter is None:
            await self.app(scope, receive, send)
            return
        try:
            async with limiter.slot():
                await self.app(scope, receive, send)
        except HTTPException as exc:
            body = json.dumps({"detail": exc.detail}).encode()
            await send({"type": "http.response.start", "status": exc.status_code,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode()),
                                    *[(k.lower().encode(), v.encode())
                                      for k, v in (exc.headers or {}).items()]]})
            await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Any, limit: int) -> tuple[bytes, bool]:
    """``(bytes read, whole)``: the whole request body, or what came before the client
    disconnected or went over ``limit`` bytes (the route then reads the rest and answers as
    usual)."""
    chunks = []
    seen = 0
    while True:
        msg = await receive()
        if msg["type"] != "http.request":
            return b"".join(chunks), False
        chunk = msg.get("body", b"")
        seen += len(chunk)
        chunks.append(chunk)
        if seen > limit:
            return b"".join(chunks), False
        if not msg.get("more_body", False):
            return b"".join(chunks), True


def _replay(body: bytes, receive: Any, *, more: bool = False) -> Any:
    """A ``receive`` that gives ``body`` (already read) first, then the client's messages
    (``more``: the body read so far is not all of it)."""
    sent = False

    async def replayed() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return replayed


def _answer_fast(state: AppState, query: bytes, body: bytes) -> bytes | None:
    """The JSON answer of a valid short continuation of a live series; None for anything the
    route must answer (any error included: its message comes from the route)."""
    job: str | None = None
    if query:
        name, eq, value = query.partition(b"=")
        if name != b"job" or not eq or b"&" in value or b"%" in value or b"+" in value:
            return None
        try:
            job = value.decode("ascii")
        except UnicodeDecodeError:
            return None
        if job not in state.runners:
            return None
    try:
        # As FastAPI does: json.loads, then the model in Python mode.
        req = ScoreRequest.model_validate(json.loads(body))
        got = _score_cached(req, state, job)
    except Exception:  # invalid, 4xx, or a bug: the route answers, with its message
        return None
    return None if got is None else _json(got)


@router.post("/score", response_model=ScoreResponse, summary="Score an entity's points",
             responses={422: {"model": ErrorOut,
                              "description": "invalid points or too few for the windows"},
                        429: {"model": ErrorOut, "description": "too many scoring requests at "
                              "once; retry after the Retry-After header's seconds"},
                        503: {"model": ErrorOut, "description": "no model loaded yet"}})
async def score(req: ScoreRequest, state: State,
                job: Annotated[str | None, Query(description="job whose model scores "
                                                 "(default: the first)")] = None
                ) -> Response:
    # A few points continuing an entity's live series cost well under 1 ms with a copy of the
    # job's stream scorer: answer on the event loop (a thread hop costs more than that).
    # Everything else - errors included, so their messages come from one place - runs in the
    # thread pool.
    fast = _score_cached(req, state, job)
    if fast is None:
        fast = await run_in_threadpool(_score, req, state, job)
    # Serialised once here: returned as a model, FastAPI would dump it, validate the dump
    # against `response_model` and serialise it again (about as long as a short scoring).
    return Response(_json(fast), media_type="application/json")


def _score_cached(req: ScoreRequest, state: AppState, job: str | None
                  ) -> dict[str, Any] | None:
    """The answer when the request is a valid short continuation of the entity's live series
    (see :func:`_score_streaming`), else ``None``."""
    if len(req.timestamps) > FAST_PATH_POINTS:
        return None
    runner = state.runner(job)
    model = runner.model
    if model is None:
        return None
    metrics = model.metrics_
    if len(req.metrics) != len(metrics) or any(m not in req.metrics for m in metrics):
        return None
    step_ns = int(model.step_.value)
    stamps = _snap([pd.Timestamp(t) for t in req.timestamps], runner.live.last_ns(req.entity),
                   step_ns)
    f0 = stamps[0].value
    for ts in stamps:
        if (ts.value - f0) % step_ns:
            return None  # refused, with its message, by _score
    return _score_streaming(runner, req, stamps, list(metrics), runner.threshold_for(req.entity))


def _score(req: ScoreRequest, state: AppState, job: str | None) -> dict[str, Any]:
    runner = state.runner(job)
    model = runner.model
    if model is None:
        raise HTTPException(503, f"job {runner.name!r} has no model yet "
                            f"({runner.progress.state}: {runner.progress.step}); retry shortly")
    metrics = list(model.metrics_)
    missing = [m for m in metrics if m not in req.metrics]
    extra = [m for m in req.metrics if m not in metrics]
    if missing or extra:
        raise HTTPException(422, f"metrics: the model uses {metrics}; "
                            + (f"missing {missing}" if missing else "")
                            + ("; " if missing and extra else "")
                            + (f"unknown {extra}" if extra else ""))
    step = pd.Timedelta(model.step_)
    # A point within JITTER_FRACTION of a step of the grid (the entity's live series' grid,
    # else the one the first point starts) is that grid point's sample: early or late.
    anchor = runner.live.last_ns(req.entity)
    if len(req.timestamps) <= FAST_PATH_POINTS:
        # A few points: plain Timestamps and integer arithmetic; a DatetimeIndex and its
        # vectorised grid check cost more than the scoring itself.
        stamps = _snap([pd.Timestamp(t).tz_convert("UTC") for t in req.timestamps], anchor,
                       int(step.value))
        _check_grid(stamps, [t.value for t in stamps], step)
        threshold = runner.threshold_for(req.entity)
        fast = _score_streaming(runner, req, stamps, metrics, threshold)
        if fast is not None:
            return fast
        ts = pd.DatetimeIndex(pd.to_datetime(req.timestamps, utc=True))
    else:
        parsed = pd.DatetimeIndex(pd.to_datetime(req.timestamps, utc=True))
        ts = pd.DatetimeIndex(pd.to_datetime(_snap_ns(parsed.as_unit("ns").asi8, anchor,
                                                      int(step.value)), unit="ns", utc=True)
                              ).as_unit(parsed.unit)
        off = (ts - ts[0]) % step
        if (off != pd.Timedelta(0)).any():
            i = int(np.flatnonzero(off != pd.Timedelta(0))[0])
            _off_grid(i, ts[i], ts[0], step)
        threshold = runner.threshold_for(req.entity)
    frame = pd.DataFrame({"timestamp": ts, "entity": req.entity})
    for m in metrics:
        frame[m] = np.asarray(req.metrics[m], dtype=np.float64)
    warm = int(model.spec.min_history)
    hist = runner.history_for(req.entity, ts[0])
    used = 0
    if hist is not None:
        if hist["timestamp"].iloc[-1] + step == ts[0]:
            hist = hist.tail(warm + 1)
            used = len(hist)
        else:
            hist = None
    if used == 0 and len(ts) <= warm:
        known = runner.recent(req.entity) is not None
        why = ("its recent history in job " f"{runner.name!r} does not end one step before the "
               "first timestamp" if known else f"job {runner.name!r} has no recent history for "
               "it")
        raise HTTPException(422, f"timestamps: {len(ts)} point(s) are too few for the feature "
                            f"windows of entity {req.entity!r} ({why}); send at least "
                            f"{warm + 1} consecutive points on the {step} grid")
    try:
        data = Dataset.from_frame(frame, metrics=metrics, step=step, source="request")
        history = (Dataset.from_frame(hist, metrics=metrics, step=step, source="history")
                   if used else None)
        scores = model.score(data, history=history, explain="flagged")
    except NotFittedError as exc:
        raise HTTPException(503, str(exc)) from None
    except DataError as exc:
        raise HTTPException(422, str(exc)) from None
    values = np.column_stack([frame[m].to_numpy() for m in metrics])
    yhat, lower, upper = (scores[[f"{k}_{m}" for m in metrics]].to_numpy(dtype=np.float64)
                          for k in ("expected", "lower", "upper"))
    dev = band_deviation(values, yhat, lower, upper).tolist()
    contrib = scores[[f"contrib_{m}" for m in metrics]].to_numpy(dtype=np.float64).tolist()
    s = scores["anomaly_score"].to_numpy(dtype=np.float64).tolist()
    ready = scores["ready"].to_numpy(dtype=bool).tolist()
    top = scores["top_metric"].astype(str).tolist()
    y, lo, hi = yhat.tolist(), lower.tolist(), upper.tolist()
    threshold = float(threshold)
    points = [_point(t, s[i], ready[i], threshold, top[i], contrib[i], dev[i], y[i], lo[i], hi[i],
                     metrics)
              for i, t in enumerate(ts.to_pydatetime())]
    return {"entity": req.entity, "job": runner.name, "model": runner.model_name,
            "threshold": threshold, "history_points": int(used), "points": points}


def _point(t: datetime, score: float, ready: bool, threshold: float, top: str,
           contrib: list[float], dev: list[float], y: list[float], lo: list[float],
           hi: list[float], metrics: list[str]) -> dict[str, Any]:
    """One :class:`ScoredPoint` as plain data in its fields' order (values per metric in
    ``metrics`` order; ``dev`` the band deviations)."""
    return {
        "timestamp": t, "anomaly_score": _finite(score),
        "is_anomaly": bool(ready and score >= threshold), "ready": bool(ready),
        "explanation": {
            "top_metric": str(top),
            "contributions": {m: _finite(contrib[j]) for j, m in enumerate(metrics)},
            "deviations": {m: _dev(dev[j]) for j, m in enumerate(metrics)}},
        "expected": {m: ({"expected": y[j], "lower": lo[j], "upper": hi[j]}
                         if _isfinite(y[j]) and _isfinite(lo[j]) and _isfinite(hi[j])
                         else None) for j, m in enumerate(metrics)}}


def _dev(x: float) -> float | None:
    """A band deviation for JSON: None where undefined, capped where infinite."""
    x = float(x)
    return None if math.isnan(x) else round(max(-1e6, min(1e6, x)), 3)


def _off_grid(i: int, at: pd.Timestamp, first: pd.Timestamp, step: pd.Timedelta) -> None:
    raise HTTPException(422, f"timestamps: index {i} ({at.isoformat()}) is not on the "
                        f"model's {step} grid starting at {first.isoformat()}")


def _snap_ns(ns: np.ndarray, anchor: int | None, step_ns: int) -> np.ndarray:
    """Times ``ns`` (int64 ns) with each point within the jitter of a grid point moved to
    it (:func:`~aws_anomaly.data.dataset.jitter_offsets`, as file loading does). The grid
    runs through ``anchor`` (the entity's last live point); without one, through the whole
    multiples of the step since the epoch when the first point is within the jitter of one,
    else through the first point. Points further off stay, for the grid check to refuse."""
    if not len(ns):
        return ns
    if anchor is None:
        d0, near0 = jitter_offsets(ns[:1], 0, step_ns)
        anchor = int(ns[0] - d0[0]) if near0[0] else int(ns[0])
    d, near = jitter_offsets(ns, anchor, step_ns)
    return np.where(near, ns - d, ns)


def _snap(stamps: list[pd.Timestamp], anchor: int | None, step_ns: int
          ) -> list[pd.Timestamp]:
    """:func:`_snap_ns` of a few Timestamps (each keeps its time zone)."""
    ns = _snap_ns(np.array([t.value for t in stamps], dtype=np.int64), anchor, step_ns)
    return [t if v == t.value else t - pd.Timedelta(t.value - v, unit="ns")
            for t, v in zip(stamps, ns.tolist(), strict=True)]


def _check_grid(stamps: list[pd.Timestamp], ns: list[int], step: pd.Timedelta) -> None:
    """422 naming the first point off the ``step`` grid that starts at the first point."""
    step_ns = int(step.value)
    for i, v in enumerate(ns):
        if (v - ns[0]) % step_ns:
            _off_grid(i, stamps[i], stamps[0], step)


def _score_streaming(runner: Any, req: ScoreRequest, ts: list[pd.Timestamp], metrics: list[str],
                     threshold: float) -> dict[str, Any] | None:
    """Score a few points that continue the live series with a copy of the job's live stream
    scorer of the entity (the same numbers as the batch model, and the scores the job will
    give these points); ``None`` when the entity has no live series ending one step before
    the first point. The live state is never changed.

    The answer is a :class:`ScoreResponse` as plain data, in its fields' order (serialised by
    :func:`_json` as the model would be): building and validating the nested models cost as
    much as scoring one point."""
    model = runner.model
    if model is None:
        return None
    scorer = runner.live.snapshot(req.entity, ts[0], model)
    if scorer is None:
        return None
    used = min(scorer.n_seen, int(model.spec.min_history) + 1)
    values = np.column_stack([np.asarray(req.metrics[m], dtype=np.float64) for m in metrics])
    rows = values.tolist()
    threshold = float(threshold)
    nan = float("nan")
    points = []
    try:
        for i, t in enumerate(ts):
            p = scorer.update(t, values[i])
            x = rows[i]
            y, lo, hi = ([float(d.get(m, nan)) for m in metrics]
                         for d in (p.expected, p.lower, p.upper))
            points.append(_point(
                t.to_pydatetime(), p.anomaly_score, p.ready, threshold, p.top_metric,
                [p.contributions.get(m, 0.0) for m in metrics],
                [band_deviation_one(x[j], y[j], lo[j], hi[j]) for j in range(len(metrics))],
                y, lo, hi, metrics))
    except DataError as exc:
        raise HTTPException(422, f"timestamps: {exc}") from None
    return {"entity": req.entity, "job": runner.name, "model": runner.model_name,
            "threshold": threshold, "history_points": int(used), "points": points}


_isfinite = math.isfinite


def _json(answer: dict[str, Any]) -> bytes:
    """A :class:`ScoreResponse` given as plain data, as JSON: pydantic-core's serialiser,
    with the model's settings (non-finite floats as null), so the bytes are the model's."""
    return pydantic_core.to_json(answer, inf_nan_mode="null")


def _finite(x: float) -> float:
    x = float(x)
    return x if math.isfinite(x) else 0.0
