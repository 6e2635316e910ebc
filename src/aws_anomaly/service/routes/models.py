"""``/v1/models``: the model registry, retraining, and precision measured from feedback."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field

from aws_anomaly.errors import DataError, ModelFileError
from aws_anomaly.retrain import RetrainBusyError
from aws_anomaly.service.deps import AppState, Authorized, ErrorOut, State
from aws_anomaly.service.redact import hide_paths, redact

router = APIRouter(prefix="/v1", tags=["models"])


class PrecisionOut(BaseModel):
    true_positives: int
    false_positives: int
    reviewed: int
    precision: float | None = Field(description="true / reviewed events; null until reviewed")


class ModelVersion(BaseModel):
    """One trained version (where its bundle lives on the server is not shown)."""

    version: str
    detector: str
    trained_at: datetime = Field(description="when the version was created")
    active: bool
    status: str = Field(description="champion | challenger | rejected | retired")
    rows: int | None = Field(None, description="rows the version was trained on")
    figures: dict[str, Any] = Field(default_factory=dict, description="the version on the "
                                    "held-back data: alerts per entity per day, flagged "
                                    "share, confirmed anomalies it flags")
    decision: dict[str, Any] | None = Field(None, description="the trigger, the promotion "
                                            "check, its reasons and both models' figures")
    info: dict[str, Any]


class DriftOut(BaseModel):
    """Drift of the recent live points against the champion's training (see
    docs/configuration.md, ``retrain``)."""

    points: int
    flagged: int
    expected_share: float | None
    alert_rate_ratio: float | None
    p_value: float | None
    psi: dict[str, float]
    triggered: str | None


class ModelOut(BaseModel):
    name: str
    job: str
    loaded: bool
    training: dict[str, Any] = Field(description="state of the latest (re)training")
    threshold: float = Field(description="the job's anomaly_score threshold")
    entity_thresholds: dict[str, float] = Field(description="thresholds raised by feedback")
    precision: PrecisionOut
    champion: str | None = Field(None, description="the version scoring now")
    drift: DriftOut
    retraining: bool = Field(description="an automated retrain runs in the background")
    versions: list[ModelVersion]


class ModelList(BaseModel):
    items: list[ModelOut]


class RetrainOut(BaseModel):
    name: str
    status: str
    detail: str


class RollbackIn(BaseModel):
    version: str | None = Field(None, max_length=64, description="the version to restore; "
                                "default the champion before the current one")


class RollbackOut(BaseModel):
    name: str
    version: str
    status: str


def precision_of(state: AppState, job: str | None = None,
                 entity: str | None = None) -> PrecisionOut:
    p = state.store.precision(job=job, entity=entity)
    return PrecisionOut(true_positives=p.true_positives, false_positives=p.false_positives,
                        reviewed=p.reviewed,
                        precision=round(p.precision, 4) if p.precision is not None else None)


def _public_info(info: Any) -> dict[str, Any]:
    """The registry's info without anything that looks like a server path or a secret."""
    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items() if k not in ("path", "model_path")}
        if isinstance(v, list):
            return [clean(x) for x in v]
        if isinstance(v, str):
            return hide_paths(redact(v))
        return v

    return clean(dict(info))


@router.get("/models", response_model=ModelList, summary="Models, their versions and precision")
def list_models(state: State) -> ModelList:
    items = []
    for r in state.runners.values():
        recs = state.store.list_models(name=r.model_name)
        versions = [ModelVersion(
            version=m.version, detector=m.detector, trained_at=m.trained_at.to_pydatetime(),
            active=m.active, status=m.status,
            rows=m.info.get("rows") if isinstance(m.info.get("rows"), int) else None,
            figures=_public_info(m.info.get("figures") or {}),
            decision=_public_info(m.decision) if m.decision is not None else None,
            info=_public_info({k: v for k, v in m.info.items()
                               if k not in ("figures", "manifest_sha256")}))
            for m in recs]
        items.append(ModelOut(name=r.model_name, job=r.name, loaded=r.model is not None,
                              training=_public_info(r.progress.as_dict()),
                              threshold=r.base_threshold,
                              entity_thresholds=r.thresholds(),
                              precision=precision_of(state, r.name),
                              champion=next((m.version for m in recs if m.active), None),
                              drift=DriftOut(**r.retrainer.drift.as_dict()),
                              retraining=r.retrainer.running(), versions=versions))
    return ModelList(items=items)


@router.post("/models/{name}/retrain", response_model=RetrainOut, status_code=202,
             dependencies=[Authorized],
             summary="Retrain a model on fresh history, applying feedback",
             responses={401: {"model": ErrorOut, "description": "no bearer token"},
                        403: {"model": ErrorOut, "description": "wrong bearer token"},
                        404: {"model": ErrorOut, "description": "unknown model"},
                        409: {"model": ErrorOut, "description": "already training"}})
def retrain(name: Annotated[str, Path(max_length=128)], state: State) -> RetrainOut:
    runner = next((r for r in state.runners.values() if r.model_name == name), None)
    if runner is None:
        raise HTTPException(404, f"unknown model {name!r}; models are "
                            f"{sorted(r.model_name for r in state.runners.values())}")
    if state.scheduler is None:
        raise HTTPException(409, "this service runs without a scheduler; retrain with the CLI")
    st = state.scheduler.status(runner.name)
    if runner.progress.state == "training" or st.retrain_pending:
        raise HTTPException(409, f"model {name!r} is already training "
                            f"({runner.progress.step})")
    state.scheduler.request_retrain(runner.name)
    return RetrainOut(name=name, status="accepted",
                      detail="retraining between ticks; follow GET /v1/models")


@router.post("/models/{name}/rollback", response_model=RollbackOut,
             dependencies=[Authorized],
             summary="Make an earlier version the champion again (no retraining)",
             responses={401: {"model": ErrorOut, "description": "no bearer token"},
                        403: {"model": ErrorOut, "description": "wrong bearer token"},
                        404: {"model": ErrorOut, "description": "unknown model or version"},
                        409: {"model": ErrorOut, "description": "training, or nothing to "
                              "roll back to, or the version's bundle is gone or altered"}})
def rollback(name: Annotated[str, Path(max_length=128)], state: State,
             body: RollbackIn | None = None) -> RollbackOut:
    runner = next((r for r in state.runners.values() if r.model_name == name), None)
    if runner is None:
        raise HTTPException(404, f"unknown model {name!r}; models are "
                            f"{sorted(r.model_name for r in state.runners.values())}")
    version = body.version if body is not None else None
    if version is not None and state.store.get_model(name, version) is None:
        known = [m.version for m in state.store.list_models(name=name)]
        raise HTTPException(404, f"model {name!r} has no version {version!r}; versions are "
                            f"{known}")
    try:
        rec = runner.rollback(version)
    except (RetrainBusyError, DataError, ModelFileError) as exc:
        raise HTTPException(409, hide_paths(redact(str(exc)))) from None
    return RollbackOut(name=name, version=rec.version, status=rec.status)


@router.get("/precision", response_model=PrecisionOut,
            summary="Precision measured from feedback (latest verdict per event)")
def precision(state: State, job: Annotated[str | None, Query(max_length=64)] = None,
              entity: Annotated[str | None, Query(max_length=256)] = None) -> PrecisionOut:
    if job is not None:
        state.runner(job)
    return precision_of(state, job, entity)
