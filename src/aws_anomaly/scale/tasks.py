"""What runs on a Dask worker: load a model, score a partition, train one entity's model,
fetch and score a group of entities from a source.

These are plain module-level functions so that Dask sends them by reference (the worker imports
this module) and they can be called in-process as well, which the tests do to check the
distributed result against the local one.

A model reaches a worker in one of two ways: as a fitted model object (an
:class:`~aws_anomaly.model.AnomalyModel` or a streaming
:class:`~aws_anomaly.streaming.series.SeriesModel`) scattered once over the cluster's own
connections, or as a bundle path of either kind the worker loads with
:func:`aws_anomaly.models_io.load_model`, which verifies every file's sha256. Never as a pickle
file. Loaded bundles are cached per worker process, keyed by
the path and the manifest's modification time and size, so a bundle is read once per worker and
again only when it is rewritten.

Every error raised while working on an entity names it: the project's own errors keep their
class with ``entity '<name>': `` in front of the message; anything else becomes a
:class:`~aws_anomaly.scale.client.TaskError`.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aws_anomaly.bundle import MANIFEST
from aws_anomaly.data import Dataset
from aws_anomaly.errors import AwsAnomalyError, ModelFileError, SourceError
from aws_anomaly.model import AnomalyModel
from aws_anomaly.models_io import load_model
from aws_anomaly.scale.client import TaskError
from aws_anomaly.sources import make_source
from aws_anomaly.streaming.series import SeriesModel

__all__ = [
    "ModelRef",
    "fetch_and_score",
    "load_cached",
    "score_partition",
    "train_entity",
]

#: A fitted model (either kind), a bundle path, or one bundle path per entity.
ModelRef = (AnomalyModel | SeriesModel | str | os.PathLike[str]
            | Mapping[str, str | os.PathLike[str]])

_CACHE_SIZE = 32
_cache: OrderedDict[tuple[str, int, int], AnomalyModel | SeriesModel] = OrderedDict()
_cache_lock = threading.Lock()


def load_cached(path: str | os.PathLike[str]) -> AnomalyModel | SeriesModel:
    """:func:`~aws_anomaly.models_io.load_model` (a bundle of any kind) with a per-process
    cache (checksums verified on each load).

    The key includes the manifest's modification time and size, so a rewritten bundle is
    loaded again.
    """
    p = Path(path)
    try:
        st = (p / MANIFEST).stat()
    except OSError as exc:
        raise ModelFileError(f"model bundle {p}: cannot read {MANIFEST} on this worker "
                             f"({exc.strerror}); the path must be readable by every Dask "
                             "worker") from None
    key = (str(p), st.st_mtime_ns, st.st_size)
    with _cache_lock:
        model = _cache.get(key)
        if model is not None:
            _cache.move_to_end(key)
            return model
    model = load_model(p)
    with _cache_lock:
        _cache[key] = model
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return model


def _names(entities: Sequence[str]) -> str:
    return ("entity " if len(entities) == 1 else "entities ") + ", ".join(
        f"'{e}'" for e in entities)


def _prefixed(entities: Sequence[str], exc: AwsAnomalyError) -> AwsAnomalyError:
    """The same error class with the entities in front of the message (attributes kept),
    unless the message already names one of them."""
    msg = str(exc)
    if not any(f"'{e}'" in msg for e in entities):
        msg = f"{_names(entities)}: {msg}"
    new = type(exc).__new__(type(exc))
    new.__dict__.update(exc.__dict__)
    new.args = (msg,)
    return new


@contextmanager
def naming(entities: str | Sequence[str], doing: str) -> Iterator[None]:
    """Re-raise any error with the entity (or entities) named (see the module docstring)."""
    ents = [entities] if isinstance(entities, str) else list(entities)
    try:
        yield
    except AwsAnomalyError as exc:
        raise _prefixed(ents, exc) from exc
    except Exception as exc:
        raise TaskError(f"{_names(ents)}: {doing} failed: {type(exc).__name__}: {exc}",
                        entity=ents[0]) from exc


def _resolve(model: ModelRef, entity: str) -> AnomalyModel | SeriesModel:
    if isinstance(model, (AnomalyModel, SeriesModel)):
        return model
    if isinstance(model, Mapping):
        return load_cached(model[entity])
    return load_cached(model)


def _slices(ds: Dataset) -> dict[str, tuple[int, int]]:
    """Row range of each entity: a Dataset keeps each entity's rows together, in order."""
    ent = ds.frame["entity"].to_numpy()
    bounds = [0, *(np.flatnonzero(ent[1:] != ent[:-1]) + 1).tolist(), len(ent)]
    return {str(ent[a]): (a, b) for a, b in itertools.pairwise(bounds)}


def entity_parts(ds: Dataset) -> dict[str, Dataset]:
    """One Dataset per entity, in the dataset's order (row slices, not re-validated)."""
    return {e: ds.subset(slice(a, b), where=f"entity {e!r}") for e, (a, b) in _slices(ds).items()}


def score_partition(model: ModelRef, data: Dataset, history: Dataset | None = None,
                    explain: str = "flagged") -> pd.DataFrame:
    """Score the entities of ``data`` and return the rows in the dataset's order.

    With one model for all, a single :meth:`AnomalyModel.score` call (features are built per
    entity inside it, and scaler, detector and calibrator work row by row, so the rows equal
    those of scoring the whole dataset in one process); with one model per entity, entity by
    entity. An entity without enough look-back is named by the model's own check.
    """
    if not isinstance(model, Mapping):
        with naming(list(_slices(data)), "scoring"):
            return _resolve(model, "").score(data, history=history, explain=explain)
    hist = entity_parts(history) if history is not None else {}
    out = []
    for entity, part in entity_parts(data).items():
        with naming(entity, "scoring"):
            m = _resolve(model, entity)
            out.append(m.score(part, history=hist.get(entity), explain=explain))
    return out[0] if len(out) == 1 else pd.concat(out, ignore_index=True)


def train_entity(train: Dataset, validation: Dataset | None, params: Mapping[str, Any],
                 path: str, entity: str) -> str:
    """Fit ``AnomalyModel(**params)`` on one entity and save it as a bundle at ``path``."""
    with naming(entity, "training"):
        model = AnomalyModel(**params)
        model.metadata["entity"] = entity
        model.fit(train, validation)
        return model.save(path)


def fetch_and_score(source_cfg: Any, model: ModelRef, entities: Sequence[str],
                    start: pd.Timestamp, end: pd.Timestamp, lookback: pd.Timedelta | None,
                    explain: str = "flagged", source_kwargs: Mapping[str, Any] | None = None,
                    make: Callable[..., Any] = make_source) -> pd.DataFrame:
    """Build the source from its config, fetch ``entities`` over ``[start - lookback, end)``
    and score ``[start, end)`` with the earlier rows as look-back.

    ``lookback`` None: ``spec.min_history`` steps of the (first) model, enough for the first
    scored point to be ready.
    """
    with naming(entities, "loading the model"):
        first = _resolve(model, entities[0])
    back = lookback if lookback is not None else first.spec.min_history * first.step_
    with naming(entities, "fetching"):
        source = make(source_cfg, metrics=list(first.metrics_), **dict(source_kwargs or {}))
        try:
            ds = source.fetch(start - back, end, entities=list(entities))
        finally:
            source.close()
        missing = [e for e in entities if e not in set(ds.entities)]
        if missing:
            raise SourceError(f"{source.name}: no data for entity '{missing[0]}' in "
                              f"[{start - back}, {end})" + (f" (nor for {missing[1:]})"
                                                           if len(missing) > 1 else ""))
    hist = ds.slice_time(None, start)
    cur = ds.slice_time(start, None)
    empty = [e for e in entities if e not in set(cur.entities)] if len(cur) else list(entities)
    if empty:
        raise SourceError(f"entity '{empty[0]}': {source.name} has no points in [{start}, {end})"
                          " to score")
    return score_partition(model, cur, hist if len(hist) else None, explain)
