"""Shared state of the service and the FastAPI dependencies that hand it to routes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Request
from prometheus_client import CollectorRegistry

from aws_anomaly.config import Settings
from aws_anomaly.runner import JobRunner
from aws_anomaly.service.scheduler import Scheduler
from aws_anomaly.service.security import check_token
from aws_anomaly.store import Store

__all__ = ["AppState", "Authorized", "State", "get_state", "require_token"]


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


def get_state(request: Request) -> AppState:
    return request.app.state.aws_anomaly


State = Annotated[AppState, Depends(get_state)]


def require_token(state: State,
                  authorization: Annotated[str | None, Header()] = None) -> None:
    """Dependency of mutating endpoints: a valid bearer token or 401/403."""
    refused = check_token(state.token, authorization)
    if refused is not None:
        status, message = refused
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        raise HTTPException(status, message, headers=headers)


Authorized = Depends(require_token)
