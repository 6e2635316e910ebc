"""Health, readiness, status and the Prometheus ``/metrics`` endpoint."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from aws_anomaly import __version__
from aws_anomaly.errors import StoreError
from aws_anomaly.service.deps import State
from aws_anomaly.service.redact import hide_paths, redact

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    version: str
    uptime_s: float


class Check(BaseModel):
    ok: bool
    detail: str


class Ready(BaseModel):
    ready: bool
    degraded: list[str] = Field(description="names of the checks that failed")
    checks: dict[str, Check]


class JobInfo(BaseModel):
    job: str
    model: str
    interval_s: float | None
    ticks: int
    failed_ticks: int
    points_scored: int
    last_tick: dict[str, Any] | None
    last_success: float | None
    errors: dict[str, int]
    last_errors: dict[str, str]
    source: str
    source_ok: bool | None
    training: dict[str, Any]
    model_info: dict[str, Any]
    recent_ticks: list[dict[str, Any]]


class StatusOut(BaseModel):
    version: str
    uptime_s: float
    jobs: list[JobInfo]


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
async def healthz(state: State) -> Health:
    # async: answered on the event loop, never queued behind the thread pool's work.
    return Health(status="ok", version=__version__, uptime_s=round(time.time() - state.started,
                                                                   3))


@router.get("/readyz", response_model=Ready, summary="Readiness: models loaded, sources and "
            "store reachable", responses={503: {"model": Ready, "description": "degraded"}})
def readyz(state: State) -> Any:
    checks: dict[str, Check] = {}
    try:
        state.store.ping()
        checks["store"] = Check(ok=True, detail=state.store.dialect)
    except StoreError as exc:
        checks["store"] = Check(ok=False, detail=str(exc))
    for r in state.runners.values():
        if r.model is not None:
            checks[f"model:{r.name}"] = Check(ok=True, detail="loaded")
        else:
            checks[f"model:{r.name}"] = Check(ok=False, detail=f"{r.progress.state}: "
                                              f"{r.progress.step or 'not loaded yet'}")
        if r.store_ok is False:
            # The store answers reads (ping) but the job's last commit failed: not ready.
            checks[f"writes:{r.name}"] = Check(ok=False, detail=f"the last tick could not be "
                                               f"committed: {r.store_error}")
        if r.source_ok is None:
            checks[f"source:{r.name}"] = Check(ok=False, detail=f"{r.source.name}: not "
                                               "fetched yet")
        elif r.source_ok:
            checks[f"source:{r.name}"] = Check(ok=True, detail=r.source.name)
        else:
            checks[f"source:{r.name}"] = Check(ok=False, detail=f"{r.source.name}: "
                                               f"{r.source_error}")
    # Unauthenticated: never show a credential inside a URL or an error.
    checks = {k: Check(ok=c.ok, detail=hide_paths(redact(c.detail)))
              for k, c in checks.items()}
    degraded = sorted(k for k, c in checks.items() if not c.ok)
    body = Ready(ready=not degraded, degraded=degraded, checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if not degraded else 503)


@router.get("/v1/status", response_model=StatusOut, summary="Jobs, last runs and errors")
def status(state: State) -> StatusOut:
    jobs = []
    for r in state.runners.values():
        st = state.scheduler.status(r.name) if state.scheduler is not None else None
        res = r.last_result
        last = None
        if res is not None:
            last = {"now": res.now.isoformat(), "ok": res.ok, "points": res.points,
                    "anomalies": res.anomalies, "events": len(res.events),
                    "caught_up": res.caught_up, "seconds": round(res.total_s, 4),
                    "error": hide_paths(redact(res.error)) if res.error else None,
                    "stage": res.stage,
                    "scored_to": res.scored_to.isoformat() if res.scored_to is not None
                    else None}
        info: dict[str, Any] = {}
        if r.model is not None:
            summary = getattr(r.model, "training_summary_", {}) or {}
            info = {"detector": r.model.detector, "metrics": list(r.model.metrics_),
                    "step_seconds": r.model.step_.total_seconds(),
                    "features": len(r.model.feature_names_),
                    "trained_at": summary.get("trained_at"),
                    "training_rows": summary.get("rows", summary.get("n_train"))}
        jobs.append(JobInfo(
            job=r.name, model=r.model_name, interval_s=st.interval_s if st else None,
            ticks=r.ticks, failed_ticks=st.failed_ticks if st else 0,
            points_scored=r.points_scored, last_tick=last,
            last_success=st.last_success if st else None, errors=dict(r.errors),
            last_errors={k: hide_paths(redact(v)) for k, v in r.last_error.items()},
            source=redact(r.source.name), source_ok=r.source_ok,
            training={k: hide_paths(redact(v)) if isinstance(v, str) else v
                      for k, v in r.progress.as_dict().items()}, model_info=info,
            recent_ticks=list(st.history[-20:]) if st else []))
    return StatusOut(version=__version__, uptime_s=round(time.time() - state.started, 3),
                     jobs=jobs)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})
def metrics(state: State) -> Response:
    return Response(generate_latest(state.registry), media_type=CONTENT_TYPE_LATEST)
