"""``/v1/entities``: the monitored entities, their status and recent series."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field

from aws_anomaly.service.deps import ErrorOut, State

router = APIRouter(prefix="/v1/entities", tags=["entities"])


class EntityOut(BaseModel):
    entity: str
    job: str
    status: Literal["anomalous", "ok", "warming_up", "unknown"] = Field(
        description="anomalous: an open event; warming_up: feature windows still filling")
    last_scored: datetime | None
    last_score: float | None
    threshold: float
    open_events: int
    events: int


class EntityList(BaseModel):
    items: list[EntityOut]


class Series(BaseModel):
    entity: str
    job: str
    threshold: float
    metrics: list[str]
    timestamps: list[datetime]
    values: dict[str, list[float]]
    deviations: dict[str, list[float]]
    anomaly_score: list[float]
    is_anomaly: list[bool]
    ready: list[bool]
    expected: dict[str, list[float | None]] = Field(
        default_factory=dict, description="per metric, the model's expected value at each "
        "point (null where the band has no history yet); empty when the model gives no band")
    lower: dict[str, list[float | None]] = Field(
        default_factory=dict, description="per metric, the lower edge of the expected band")
    upper: dict[str, list[float | None]] = Field(
        default_factory=dict, description="per metric, the upper edge of the expected band")


@router.get("", response_model=EntityList, summary="Entities and their status")
def list_entities(state: State,
                  job: Annotated[str | None, Query(max_length=64)] = None) -> EntityList:
    runners = [state.runner(job)] if job is not None else list(state.runners.values())
    items: list[EntityOut] = []
    for r in runners:
        summary = state.store.entity_summary(r.name)
        last_scored = state.store.job_state(r.name)
        for entity in sorted(set(r.entities()) | set(last_scored) | set(summary)):
            rec = r.recent(entity)
            info = summary.get(entity, {})
            last_score = None
            status = "unknown"
            if rec is not None and len(rec):
                row = rec.iloc[-1]
                last_score = float(row["anomaly_score"])
                status = "ok" if bool(row["ready"]) else "warming_up"
            if info.get("open_events", 0):
                status = "anomalous"
            ts = last_scored.get(entity)
            items.append(EntityOut(
                entity=entity, job=r.name, status=status,
                last_scored=ts.to_pydatetime() if ts is not None else None,
                last_score=last_score, threshold=r.threshold_for(entity),
                open_events=int(info.get("open_events", 0)), events=int(info.get("events", 0))))
    return EntityList(items=items)


@router.get("/{entity}/series", response_model=Series,
            summary="Recent values, scores and flags of one entity",
            responses={404: {"model": ErrorOut, "description": "unknown entity"}})
def series(entity: Annotated[str, Path(max_length=256)], state: State,
           job: Annotated[str | None, Query(max_length=64)] = None,
           points: Annotated[int, Query(ge=1, le=5000)] = 576) -> Series:
    runner = state.runner(job)
    rec = runner.recent(entity)
    if rec is None:
        raise HTTPException(404, f"unknown entity {entity!r} in job {runner.name!r}; entities "
                            f"are {runner.entities()[:20]}")
    rec = rec.tail(points)
    metrics = [c.removeprefix("value_") for c in rec.columns if c.startswith("value_")]

    def clean(a: np.ndarray) -> list[float]:
        return np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0).tolist()

    def or_null(col: str) -> list[float | None]:
        a = rec[col].to_numpy(dtype=np.float64)
        return [float(v) if np.isfinite(v) else None for v in a]

    band = {part: {m: or_null(f"{part}_{m}") for m in metrics if f"{part}_{m}" in rec.columns}
            for part in ("expected", "lower", "upper")}

    return Series(
        entity=entity, job=runner.name, threshold=runner.threshold_for(entity), metrics=metrics,
        timestamps=[t.to_pydatetime() for t in rec["timestamp"]],
        values={m: clean(rec[f"value_{m}"].to_numpy()) for m in metrics},
        deviations={m: clean(rec[f"dev_{m}"].to_numpy()) for m in metrics
                    if f"dev_{m}" in rec.columns},
        anomaly_score=clean(rec["anomaly_score"].to_numpy()),
        is_anomaly=[bool(x) for x in rec["is_anomaly"]],
        ready=[bool(x) for x in rec["ready"]],
        expected=band["expected"], lower=band["lower"], upper=band["upper"])
