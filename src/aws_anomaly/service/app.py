"""Builds the FastAPI application: routes, error handlers, security, dashboard, scheduler.

:func:`create_app` wires one :class:`~aws_anomaly.service.deps.AppState` (settings, store, a
:class:`~aws_anomaly.runner.JobRunner` per job, the scheduler, a fresh Prometheus registry) into
the app. The scheduler starts with the app (lifespan) and stops with it: on SIGTERM uvicorn
ends the lifespan, the running ticks finish, and the process exits cleanly.

Error policy: bad input is always a 4xx whose message names the field; only real bugs give 500.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from aws_anomaly import __version__
from aws_anomaly.config import JobConfig, Settings
from aws_anomaly.errors import AwsAnomalyError, DataError, StoreError
from aws_anomaly.model import AnomalyModel
from aws_anomaly.runner import JobRunner, Sink
from aws_anomaly.service.deps import ERROR_RESPONSES, AppState
from aws_anomaly.service.redact import redact
from aws_anomaly.service.routes import anomalies, entities, health, models, score
from aws_anomaly.service.scheduler import Scheduler
from aws_anomaly.service.security import (
    BodyLimitMiddleware,
    SecurityHeadersMiddleware,
    check_bind,
    new_token,
)
from aws_anomaly.sources import Source, make_source
from aws_anomaly.store import Store

__all__ = ["build_state", "create_app"]

log = logging.getLogger(__name__)

STATIC = resources.files("aws_anomaly.service") / "static"


def _registry() -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=True)
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        collector(registry=reg)
    return reg


def build_state(settings: Settings, *, store: Store | None = None,
                sources: Mapping[str, Source] | None = None,
                models: Mapping[str, AnomalyModel] | None = None,
                sinks_for: Callable[[JobConfig], Sequence[Sink]] | None = None,
                token: str | None = None, interval_s: float | None = None,
                scheduler: bool = True, environ: Mapping[str, str] | None = None) -> AppState:
    """Everything the service needs, from the settings (tests inject sources/models/store)."""
    svc = settings.service
    configured = token if token is not None else svc.resolved_token(environ)
    check_bind(svc.host, configured)
    tok = configured or new_token()
    _register_secrets(settings, tok, environ)
    store = store or Store(svc.store_url(environ))
    exporter = None
    if svc.exporter.enabled:
        from aws_anomaly.service.exporter import Exporter

        exporter = Exporter()
        registry = exporter.registry
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            with contextlib.suppress(ValueError):  # the exporter may register them itself
                collector(registry=registry)
    else:
        registry = _registry()
    runners: dict[str, JobRunner] = {}
    notifier_sinks: list[Any] = []
    for job in settings.jobs:
        src = (sources or {}).get(job.name) or _make_source(job, store)
        sinks: list[Sink] = []
        if exporter is not None:
            exporter.register_job(job.name)
            sinks.append(exporter)
        if sinks_for is not None:
            sinks.extend(sinks_for(job))
        elif job.notifiers:
            built = _notifier_sinks(job, store, runners, exporter, environ)
            notifier_sinks.extend(built)
            sinks.extend(built)
        runners[job.name] = JobRunner(
            job, src, (models or {}).get(job.name), sinks, store,
            model_path=settings.model_path(job), metrics=exporter)
    sched = Scheduler(list(runners.values()), registry=registry,
                      interval_s=interval_s) if scheduler else None
    from aws_anomaly.service.routes.score import ScoreLimiter

    return AppState(settings=settings, store=store, runners=runners, scheduler=sched,
                    registry=registry, token=tok, exporter=exporter,
                    notifiers=notifier_sinks,
                    score_limiter=ScoreLimiter(svc.score_concurrency, svc.score_queue))


def _register_secrets(settings: Settings, token: str,
                      environ: Mapping[str, str] | None) -> None:
    """Make every secret of the config unprintable (``redact`` masks it in logs/answers)."""
    from aws_anomaly.service.redact import register_secret

    register_secret(token)
    for job in settings.jobs:
        auth = getattr(job.source, "auth", None)
        try:
            got = auth.resolve(environ) if auth is not None and hasattr(auth, "resolve") \
                else None
        except Exception:  # an unresolvable secret is reported where it is used
            got = None
        if isinstance(got, tuple):  # basic auth: (user, password)
            register_secret(str(got[-1]))
        elif isinstance(got, str):  # a bearer token
            register_secret(got)


def _make_source(job: JobConfig, store: Store) -> Source:
    if job.source.type == "demo":
        # The demo replay's clock starts at "now"; after a restart resume where the job
        # stopped, so the stored progress and the replay agree and scoring goes on.
        last = store.job_state(job.name)
        if last:
            return make_source(job.source, metrics=job.metrics, start=max(last.values()))
    return make_source(job.source, metrics=job.metrics)


def _notifier_sinks(job: JobConfig, store: Store, runners: Mapping[str, JobRunner],
                    exporter: Any, environ: Mapping[str, str] | None) -> list[Any]:
    """The job's notifier sinks; each failed delivery counts as a ``notify`` error of the job
    (in /v1/status and ``aws_anomaly_errors_total``), each outcome in
    ``aws_anomaly_notifications_total``."""
    from aws_anomaly.service.notifiers import build_notifier_sinks

    def on_error(_notifier: str, exc: Exception) -> None:
        runner = runners.get(job.name)
        if runner is not None:
            runner.record_error("notify", exc)
        elif exporter is not None:
            exporter.record_error(job.name, "notify")

    def on_outcome(notifier: str, outcome: str, n: int) -> None:
        if exporter is not None:
            exporter.record_notification(job.name, notifier, outcome, n)

    return list(build_notifier_sinks(job, store, environ=environ, on_error=on_error,
                                     on_outcome=on_outcome))


def _field(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _validation_message(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        loc = list(err.get("loc", ()))
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx") or {}
            msg = f"request body is not valid JSON: {ctx.get('error', msg)}"
            loc = ["body"]
        out.append({"field": _field(loc), "message": msg, "type": err.get("type")})
    return out


def create_app(settings: Settings | None = None, *, state: AppState | None = None,
               **kwargs: Any) -> FastAPI:
    """The FastAPI app of the service (pass ``state`` or the arguments of :func:`build_state`).

    The interactive docs UI is disabled (it loads assets from a CDN); the schema is at
    ``/openapi.json``.
    """
    if state is None:
        state = build_state(settings or Settings(), **kwargs)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if state.scheduler is not None:
            for sink in state.notifiers:
                sink.start()
            state.scheduler.start()
        try:
            yield
        finally:
            if state.scheduler is not None:
                log.info("stopping: waiting for running ticks to finish")
                state.scheduler.stop()
                for r in state.runners.values():  # the live scorers resume from here
                    with contextlib.suppress(Exception):
                        r.save_checkpoints(timeout=10.0)
            # Undelivered alerts stay in the store's outbox for the next start; all threads
            # are asked at once, so the waits overlap.
            for sink in state.notifiers:
                sink.request_stop()
            for sink in state.notifiers:
                sink.stop(15.0)
            for r in state.runners.values():
                with contextlib.suppress(Exception):
                    r.source.close()

    app = FastAPI(title="aws-anomaly", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None,
                  description="Anomaly detection for AWS / EKS cluster metrics: scores, "
                  "anomaly events, feedback, models. Mutating endpoints need "
                  "'Authorization: Bearer <token>'.")
    app.state.aws_anomaly = state
    for r in (score.router, entities.router, anomalies.router, models.router, health.router):
        app.include_router(r, responses=ERROR_RESPONSES)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_message(exc.errors())
        first = errors[0] if errors else {"field": "body", "message": "invalid request"}
        return JSONResponse(status_code=422, content={
            "detail": f"{first['field']}: {first['message']}", "errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail
        if exc.status_code == 400 and detail == "There was an error parsing the body":
            detail = "body: cannot parse the request body; send UTF-8 JSON"
        if isinstance(detail, str):
            detail = redact(detail)
        return JSONResponse(status_code=exc.status_code, content={"detail": detail},
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": redact(str(exc))})

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError) -> JSONResponse:
        log.error("store error: %s", exc)
        return JSONResponse(status_code=503, content={"detail": "the anomaly store is "
                                                      "unavailable; retry shortly"})

    @app.exception_handler(AwsAnomalyError)
    async def _domain(request: Request, exc: AwsAnomalyError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": redact(str(exc))})

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.add_middleware(score.ScoreGateMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(BodyLimitMiddleware)
    return app


def openapi_json(app: FastAPI) -> str:
    """The OpenAPI document as text (for docs and tests)."""
    return json.dumps(app.openapi(), indent=2)
