"""Score and train many entities on a Dask cluster: :func:`score_dataset`,
:func:`score_source`, :func:`train_per_entity`.

The unit of work is the entity (a cluster): features are causal and built per entity, so an
entity with its own look-back history can be scored anywhere and give the same numbers as the
single-process :meth:`AnomalyModel.score <aws_anomaly.model.AnomalyModel.score>`. Entities are
grouped into partitions of ``entities_per_task`` (by default about four tasks per worker thread,
so a slow entity does not leave the other workers idle at the end); results are gathered in the
dataset's (entity, timestamp) order.

See ``docs/scale.md`` for the design and the measured speed-up.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from distributed import Client, Future, as_completed

from aws_anomaly.data import Dataset
from aws_anomaly.errors import AwsAnomalyError, ConfigError, DataError, NotFittedError
from aws_anomaly.model import AnomalyModel
from aws_anomaly.scale.client import ClientLike, SchedulerError, TaskError, using_client
from aws_anomaly.scale.tasks import (
    ModelRef,
    entity_parts,
    fetch_and_score,
    score_partition,
    train_entity,
)
from aws_anomaly.sources import to_utc
from aws_anomaly.streaming.series import SeriesModel

__all__ = ["bundle_folder", "score_dataset", "score_source", "train_per_entity"]


# ---------------------------------------------------------------------------------- helpers
def _check_explain(explain: str) -> None:
    if explain not in ("flagged", "all", "none"):
        raise ConfigError(f"explain must be 'flagged', 'all' or 'none', got {explain!r}")


def _task_size(n_entities: int, client: Client, entities_per_task: int | None) -> int:
    if entities_per_task is not None:
        if not (isinstance(entities_per_task, int) and entities_per_task >= 1):
            raise ConfigError(f"entities_per_task must be a positive integer, got "
                              f"{entities_per_task!r}")
        return entities_per_task
    threads = max(1, sum(client.nthreads().values()))
    return max(1, math.ceil(n_entities / (4 * threads)))


def _groups(entities: Sequence[str], size: int) -> list[list[str]]:
    return [list(entities[i:i + size]) for i in range(0, len(entities), size)]


def _ship_model(client: Client, model: ModelRef, entities: Sequence[str]) -> Any:
    """What the tasks receive for ``model``: a scattered object, a path, or a path map.

    A fitted model goes to every worker once, over the cluster's connections; bundle paths are
    made absolute here (workers may run in another folder) and loaded by the workers.
    """
    if isinstance(model, AnomalyModel):
        if not hasattr(model, "detector_"):
            raise NotFittedError("AnomalyModel is not fitted; call fit() or "
                                 "AnomalyModel.load() before scoring on a cluster")
        return client.scatter(model, broadcast=True, hash=False)
    if isinstance(model, SeriesModel):
        if not hasattr(model, "calibrator_"):
            raise NotFittedError("SeriesModel is not fitted; call fit() or "
                                 "aws_anomaly.models_io.load_model() before scoring on a "
                                 "cluster")
        return client.scatter(model, broadcast=True, hash=False)
    if isinstance(model, Mapping):
        missing = [e for e in entities if e not in model]
        if missing:
            raise ConfigError(f"no model bundle for entit{'y' if len(missing) == 1 else 'ies'} "
                              f"{missing[:5]}{' ...' if len(missing) > 5 else ''}; the model "
                              f"map has {sorted(model)[:5]}")
        return {e: os.path.abspath(os.fspath(model[e])) for e in entities}
    if isinstance(model, (str, os.PathLike)):
        return os.path.abspath(os.fspath(model))
    raise ConfigError(f"model must be a fitted AnomalyModel or SeriesModel, a bundle path or "
                      f"a mapping of entity to bundle path, got {type(model).__name__}")


def _run(client: Client, fn: Callable[..., Any], calls: list[tuple[list[str], tuple[Any, ...]]],
         what: str) -> list[Any]:
    """Submit ``fn(*args)`` for every call, fail fast on the first error, results in order.

    The first failed task cancels the rest and raises: the project's errors as they came from
    the worker (they already name the entity), anything else as :class:`TaskError` naming the
    entities of that task.
    """
    tag = uuid.uuid4().hex[:12]
    futures: list[Future] = [
        client.submit(fn, *args, key=f"aws-anomaly-{what}-{tag}-{i}", pure=False)
        for i, (_, args) in enumerate(calls)]
    entities_of = {f.key: ents for f, (ents, _) in zip(futures, calls, strict=True)}
    try:
        for fut in as_completed(futures, loop=client.loop):
            if fut.status == "error":
                exc = fut.exception()
                ents = entities_of[fut.key]
                if isinstance(exc, AwsAnomalyError):
                    raise exc
                raise TaskError(f"{what} of entit{'y' if len(ents) == 1 else 'ies'} "
                                f"{', '.join(repr(e) for e in ents)} failed on the cluster: "
                                f"{type(exc).__name__}: {exc}", entity=ents[0])
            if fut.status == "cancelled":
                raise SchedulerError(f"{what}: the task for {entities_of[fut.key]} was cancelled "
                                     f"(lost connection to the scheduler at "
                                     f"{client.scheduler.address}?)",
                                     address=client.scheduler.address)
        return client.gather(futures)
    finally:
        client.cancel(futures)


# ---------------------------------------------------------------------------------- scoring
def score_dataset(model: ModelRef, data: Dataset, *, client: ClientLike,
                  history: Dataset | None = None, explain: str = "flagged",
                  entities_per_task: int | None = None,
                  timeout: float | None = None) -> pd.DataFrame:
    """Score every row of ``data`` on a Dask cluster; equal to ``model.score(data, history)``.

    Parameters
    ----------
    model
        A fitted :class:`~aws_anomaly.model.AnomalyModel` or streaming
        :class:`~aws_anomaly.streaming.series.SeriesModel` (sent to every worker once), a
        bundle path of either kind (each worker loads and verifies it once), or a mapping
        entity -> bundle path (one
        model per entity, e.g. from :func:`train_per_entity`). Paths must be readable by every
        worker.
    data
        The rows to score.
    client
        A :class:`distributed.Client` or a scheduler address (``tcp://host:port``).
    history
        Earlier rows of the same entities, used only as feature look-back; each partition
        carries its own entities' history.
    explain
        As for :meth:`AnomalyModel.score`.
    entities_per_task
        Entities per task (default: about four tasks per worker thread).
    timeout
        Seconds to wait for the scheduler and a worker (see
        :func:`~aws_anomaly.scale.client.connect_timeout`).

    Returns
    -------
    pandas.DataFrame
        The columns of :meth:`AnomalyModel.score`, one row per input row, in the dataset's
        (entity, timestamp) order.

    Raises
    ------
    SchedulerError
        The scheduler is unreachable or has no worker.
    DataError, ModelFileError, ...
        As raised for the failing entity, its name in the message.
    """
    _check_explain(explain)
    if not isinstance(data, Dataset):
        raise DataError(f"score_dataset: data must be a Dataset, got {type(data).__name__}; "
                        "build one with Dataset.from_frame")
    if history is not None and not isinstance(history, Dataset):
        raise DataError(f"score_dataset: history must be a Dataset or None, got "
                        f"{type(history).__name__}")
    parts = entity_parts(data)
    hist_parts = entity_parts(history) if history is not None else {}
    with using_client(client, timeout=timeout) as c:
        shipped = _ship_model(c, model, list(parts))
        groups = _groups(list(parts), _task_size(len(parts), c, entities_per_task))
        chunks = [_stack([parts[e] for e in ents]) for ents in groups]
        hchunks = [_stack([hist_parts[e] for e in ents if e in hist_parts]) for ents in groups]
        # Data goes to the workers as scattered blocks rather than inside the task graph.
        blocks = c.scatter(chunks + [h for h in hchunks if h is not None], hash=False)
        hist_blocks = iter(blocks[len(chunks):])
        calls = []
        for ents, block, h in zip(groups, blocks[:len(chunks)], hchunks, strict=True):
            m = {e: shipped[e] for e in ents} if isinstance(shipped, dict) else shipped
            calls.append((ents, (m, block, next(hist_blocks) if h is not None else None,
                                 explain)))
        results = _run(c, score_partition, calls, "scoring")
    out = pd.concat(results, ignore_index=True) if len(results) > 1 else results[0]
    return out.reset_index(drop=True)


def _stack(parts: list[Dataset]) -> Dataset | None:
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return Dataset.concat(parts, where="scale: a task's entities")


def score_source(source_cfg: Any, model: ModelRef, start: Any, end: Any, *,
                 entities: Sequence[str], client: ClientLike,
                 lookback: timedelta | pd.Timedelta | None = None, explain: str = "flagged",
                 entities_per_task: int | None = None,
                 source_kwargs: Mapping[str, Any] | None = None,
                 timeout: float | None = None) -> pd.DataFrame:
    """Fetch and score ``[start, end)`` for many entities; each task reads its own entities.

    Every task builds the source from ``source_cfg`` (a source section of the configuration,
    e.g. :class:`~aws_anomaly.config.PrometheusSourceConfig`), fetches its entities over
    ``[start - lookback, end)``, scores ``[start, end)`` using the earlier rows as look-back and
    returns the scores: metric data never passes through the client.

    Parameters
    ----------
    source_cfg
        The source configuration, sent to the workers (it holds no resolved secret: secrets
        given by ``*_env`` / ``*_file`` are resolved on the worker).
    model
        As for :func:`score_dataset`.
    start, end
        The range to score (anything :func:`aws_anomaly.sources.to_utc` reads).
    entities
        The entities to score (a source cannot list them without fetching).
    lookback
        History fetched before ``start`` as feature look-back (default: the model's
        ``spec.min_history`` steps, the least that makes the first point ready).
    source_kwargs
        Extra arguments for the source class (e.g. ``start=`` to pin the demo's clock).

    Raises
    ------
    SourceError
        A source could not be read, or returned nothing for an entity (named).
    """
    _check_explain(explain)
    if isinstance(entities, str) or not entities:
        raise ConfigError("score_source: give the entities to score as a non-empty list of "
                          "names (e.g. ['eks-prod-eu-west-1'])")
    ents = list(dict.fromkeys(str(e) for e in entities))
    t0, t1 = to_utc(start, where="start"), to_utc(end, where="end")
    if t1 <= t0:
        raise ConfigError(f"score_source: end {t1} must be after start {t0}")
    back = pd.Timedelta(lookback) if lookback is not None else None
    if back is not None and back < pd.Timedelta(0):
        raise ConfigError(f"score_source: lookback must not be negative, got {lookback}")
    with using_client(client, timeout=timeout) as c:
        shipped = _ship_model(c, model, ents)
        # Entities in dataset order, so the result is ordered like Dataset rows.
        ents = sorted(ents)
        calls = []
        for group in _groups(ents, _task_size(len(ents), c, entities_per_task)):
            m = {e: shipped[e] for e in group} if isinstance(shipped, dict) else shipped
            calls.append((group, (source_cfg, m, group, t0, t1, back, explain,
                                  dict(source_kwargs or {}))))
        results = _run(c, fetch_and_score, calls, "fetch-and-score")
    out = pd.concat(results, ignore_index=True) if len(results) > 1 else results[0]
    return out.reset_index(drop=True)


# ---------------------------------------------------------------------------------- training
def bundle_folder(entity: str) -> str:
    """A safe folder name for an entity's bundle: the name itself when it is a plain file name,
    else a cleaned name plus a short hash so distinct entities never share a folder.

    >>> bundle_folder("eks-prod-eu-west-1")
    'eks-prod-eu-west-1'
    >>> bundle_folder("team/a b")  # "/" and " " are not allowed in a folder name
    'team_a_b-cf90fcf3'
    """
    slug = re.sub(r"[^A-Za-z0-9_.-]", "_", entity)[:80]
    if slug == entity and not slug.startswith("."):
        return slug
    return f"{slug.lstrip('.') or 'entity'}-{hashlib.sha256(entity.encode()).hexdigest()[:8]}"


def train_per_entity(train: Dataset, validation: Dataset | None = None, *, client: ClientLike,
                     out_dir: str | os.PathLike[str],
                     model_params: Mapping[str, Any] | None = None,
                     timeout: float | None = None) -> dict[str, Path]:
    """Fit one :class:`~aws_anomaly.model.AnomalyModel` per entity, in parallel, and save each
    as a bundle under ``out_dir``.

    Parameters
    ----------
    train
        Training rows of every entity.
    validation
        Validation rows (for the calibrator); when given, every training entity must have
        some. Each entity's validation uses its own training rows as look-back.
    client
        A :class:`distributed.Client` or a scheduler address.
    out_dir
        Folder for the bundles, one sub-folder per entity (:func:`bundle_folder`); the workers
        write there, so it must be on storage they share with the caller.
    model_params
        Keyword arguments of :class:`AnomalyModel` (``detector``, ``calibration``...).

    Returns
    -------
    dict
        entity -> bundle path, in entity order. Load one with ``AnomalyModel.load`` or pass the
        whole map to :func:`score_dataset`.
    """
    params = dict(model_params or {})
    try:
        AnomalyModel(**params)  # fail here, once, on a bad parameter
    except TypeError as exc:
        raise ConfigError(f"train_per_entity: bad model_params: {exc}") from None
    if not isinstance(train, Dataset):
        raise DataError(f"train_per_entity: train must be a Dataset, got {type(train).__name__}")
    parts = entity_parts(train)
    val_parts: dict[str, Dataset] = {}
    if validation is not None:
        val_parts = entity_parts(validation)
        missing = [e for e in parts if e not in val_parts]
        if missing:
            raise DataError(f"train_per_entity: validation data has no rows for entit"
                            f"{'y' if len(missing) == 1 else 'ies'} {missing[:5]}; give every "
                            "training entity validation rows, or no validation at all")
    root = Path(out_dir).absolute()
    folders = {e: bundle_folder(e) for e in parts}
    root.mkdir(parents=True, exist_ok=True)
    ents = list(parts)
    with using_client(client, timeout=timeout) as c:
        blocks = c.scatter([parts[e] for e in ents] + [val_parts[e] for e in ents if val_parts],
                           hash=False)
        tr, va = blocks[:len(ents)], blocks[len(ents):] or [None] * len(ents)
        calls = [([e], (tr[i], va[i], params, str(root / folders[e]), e))
                 for i, e in enumerate(ents)]
        paths = _run(c, train_entity, calls, "training")
    return {e: Path(p) for e, p in zip(ents, paths, strict=True)}
