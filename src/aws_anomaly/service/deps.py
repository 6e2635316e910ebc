"""Shared state of the service and the FastAPI dependencies that hand it to routes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from aws_anomaly.config import Settings
from aws_anomaly.runner import JobRunner
from aws_anomaly.service.scheduler import Scheduler
from aws_anomaly.service.security import check_token
from aws_anomaly.store import Store

__all__ = ["ERROR_RESPONSES", "AppState", "Authorized", "ErrorOut", "State", "get_state",
           "require_token"]


class FieldError(BaseModel):
    field: str
    message: str
    type: str | None = None


class ErrorOut(BaseModel):
    """Every error answer: ``detail`` names the field and the problem."""

    detail: str
    errors: list[FieldError] | None = None


#: Answers any route may give; documented once for every router.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "the body cannot be parsed (not UTF-8 JSON)"},
    404: {"model": ErrorOut, "description": "unknown job, entity, event or model"},
    413: {"model": ErrorOut, "description": "request body too large"},
    422: {"model": ErrorOut, "description": "invalid input; 'detail' names the field"},
    503: {"model": ErrorOut, "description": "not ready (no model yet) or store unavailable"},
}


@dataclass
class AppState:
    """Everything the routes need; built once by :func:`aws_anomaly.service.app.create_app`."""

    settings: Settings
    store: Store
    runners: dict[str, JobRunner]
    scheduler: Scheduler | None
    registry: CollectorRegistry
    token: str
    started: float = field(default_factory=time.time)
    exporter: Any = None
    #: The notifier sinks of every job (their delivery threads run with the scheduler).
    notifiers: list[Any] = field(default_factory=list)
    #: Caps concurrent POST /v1/score work (``routes.score.ScoreLimiter``).
    score_limiter: Any = None
    #: ``POST /v1/score`` requests answered by the fast path (``routes.score``).
    fast_answers: int = 0

    def runner(self, job: str | None) -> JobRunner:
        """The named job's runner (the first job when ``job`` is None); 404 when unknown."""
        if job is None:
            if not self.runners:
                raise HTTPException(404, "this service runs no jobs")
            return next(iter(self.runners.values()))
        try:
            return self.runners[job]
        except KeyError:
            raise HTTPException(404, f"unknown job {job!r}; jobs are "
                                f"{sorted(self.runners)}") from None


async def get_state(request: Request) -> AppState:
    # async: FastAPI runs a plain `def` dependency in the thread pool, a hop per request.
    return request.app.state.aws_anomaly


State = Annotated[AppState, Depends(get_state)]


# Declares the bearer scheme in the OpenAPI document; the check itself is ours (401 vs 403,
# constant-time comparison), so FastAPI's automatic error is off.
_bearer = HTTPBearer(auto_error=False, description="the service's API token")


def require_token(request: Request, state: State,
                  _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None
                  ) -> None:
    """Dependency of mutating endpoints: a valid bearer token or 401/403."""
    refused = check_token(state.token, request.headers.get("authorization"))
    if refused is not None:
        status, message = refused
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        raise HTTPException(status, message, headers=headers)


Authorized = Depends(require_token)
