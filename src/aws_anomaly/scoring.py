"""The batch path of :meth:`AnomalyModel.score <aws_anomaly.model.AnomalyModel.score>`: a
dataset's rows -> the score table.

* :func:`score_series` — the scores, flags, explanations, readiness and bands of every row,
  entity by entity and chunk by chunk, in bounded memory;
* :func:`score_table` — those arrays as the table ``score`` returns (``timestamp``, ``entity``,
  ``anomaly_score``, ``is_anomaly``, ``top_metric``, ``contrib_<metric>``, ``ready``, the band
  columns);
* :func:`input_rows` — a table of grid rows mapped back onto the rows of the frame that was
  loaded onto that grid (``score(frame, rows="input")``).

The rows themselves are scored by the model (:meth:`AnomalyModel.score_transformed
<aws_anomaly.model.AnomalyModel.score_transformed>`), as the live path scores one point
(``AnomalyModel.score_row``): the same numbers either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from aws_anomaly.data import Dataset
from aws_anomaly.data.dataset import DEFAULT_ENTITY, parse_timestamps
from aws_anomaly.features import check_history
from aws_anomaly.features.band import band_arrays
from aws_anomaly.features.batch import CHUNK_ROWS, iter_feature_columns
from aws_anomaly.features.persist import PersistFilter
from aws_anomaly.progress import track

if TYPE_CHECKING:
    from aws_anomaly.model import AnomalyModel

__all__ = ["input_rows", "score_series", "score_table"]

#: ``(anomaly_score, is_anomaly, contributions, ready, (expected, lower, upper))``, a row each.
SeriesScores = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                     tuple[np.ndarray, np.ndarray, np.ndarray]]


def score_series(model: AnomalyModel, data: Dataset, history: Dataset | None, explain: str,
                 where: str, chunk_rows: int = CHUNK_ROWS) -> SeriesScores:
    """``(anomaly_score, is_anomaly, contributions, ready, (expected, lower, upper))`` of
    every row of ``data``, in order, by the fitted ``model``; ``history``: earlier rows as
    feature look-back; ``explain`` as in ``AnomalyModel.score``.

    Entity by entity, chunk by chunk of ``chunk_rows`` rows: the spec's features the
    model reads (its columns and the persistence sources) are built feature-major into
    one reused buffer (:func:`~aws_anomaly.features.batch.iter_feature_columns`), the
    persistence columns are filled in place below them with the filter state carried
    across chunks, only the model's columns are taken, logged and scaled feature-major
    and transposed once into a second reused buffer
    (:meth:`~aws_anomaly.scaling.Scaler.transform_columns`), and the detector scores that
    chunk. Memory is a few chunks, whatever the length; no
    ``(rows x features)`` matrix is made. The numbers are those of the whole-series path
    (``AnomalyModel._features`` + ``score_transformed``), bit for bit.
    """
    n, m = len(data.frame), len(model.metrics_)
    score = np.zeros(n)
    flag = np.zeros(n, dtype=bool)
    contrib = np.zeros((n, m))
    ready = np.zeros(n, dtype=bool)
    band = getattr(model, "band_", None)
    bands = tuple(np.full((n, m), np.nan) for _ in range(3))
    terms = model.persist_terms()
    k = model.feature_plan().n_features
    cols = model.columns_
    logc = model._log_columns
    floor = model.log_floor_[logc][:, None]
    scaled = np.empty((chunk_rows, len(cols)))
    picked = np.empty((len(cols), chunk_rows))
    metrics = list(model.metrics_)
    # only the spec's columns the model reads (directly or as a persistence source) are
    # built: families no model column comes from (rolling min / max, ratios) are skipped
    read = model.read_features()
    o = 0  # output row of the entity's first scored row
    for entity, vals, ts, n_ctx in track(
            model._entity_series(data, history),
            f"features of the {where}, scored chunk by chunk", total=len(data.entities),
            note=lambda item: str(item[0])):
        check_history(len(vals), model.spec,
                      f"{where}: entity '{entity}'" + (" with its history" if n_ctx else ""))
        n_out = len(vals) - n_ctx
        if band is not None:
            for dst, arr in zip(bands, band_arrays(vals, band), strict=True):
                dst[o:o + n_out] = arr[n_ctx:]
        persist = PersistFilter(terms, k)
        for c0, c1, chunk in iter_feature_columns(vals, ts, metrics, model.spec,
                                                  chunk_rows=chunk_rows, extra=len(terms),
                                                  columns=read):
            persist.fill_columns(chunk)
            r0 = max(c0, n_ctx)
            if r0 >= c1:
                continue
            rows = c1 - r0
            # mode="clip": with ``out``, the default mode buffers the whole copy
            fm = np.take(chunk[:, r0 - c0:], cols, axis=0, out=picked[:, :rows],
                         mode="clip")
            if logc.size:
                fm[logc] = np.log(np.maximum(fm[logc], 0.0) + floor)
            Xs = model.scaler_.transform_columns(fm, out=scaled[:rows])
            ok = np.arange(r0 + 1, c1 + 1) >= model.spec.min_history
            sl = slice(o + r0 - n_ctx, o + c1 - n_ctx)
            # (BLAS on one thread, inside: a chunk's products are too small for OpenBLAS's
            # spinning threads to pay, and on a busy machine they cost 2-20x)
            score[sl], flag[sl], contrib[sl] = model.score_transformed(
                Xs, ok, explain, str(entity))
            ready[sl] = ok
        o += n_out
    model._check_history(data, ready, where)
    return score, flag, contrib, ready, bands  # type: ignore[return-value]


def score_table(ds: Dataset, metrics: Sequence[str], scores: SeriesScores) -> pd.DataFrame:
    """The table of :func:`score_series`' ``scores`` of the rows of ``ds`` (the model's
    ``metrics``): ``timestamp``, ``entity``, ``anomaly_score``, ``is_anomaly``, ``top_metric``
    (the largest contribution; "" for a row without any), ``contrib_<metric>``, ``ready``,
    and ``expected_<metric>``, ``lower_<metric>``, ``upper_<metric>``."""
    import pyarrow as pa

    score, flag, contrib, ready, (yhat, lower, upper) = scores
    has = contrib.sum(axis=1) > 0
    # the names taken by position in Arrow (a row's name is one of m + 1 strings): the
    # same strings as an object array of one Python str per row, at half the cost
    pick = np.where(has, contrib.argmax(axis=1) + 1, 0)
    top = pa.array(["", *metrics], type=pa.string()).take(pa.array(pick))
    # The timestamp column is passed as a Series: converting tz-aware datetimes to numpy
    # goes through Python objects and costs more than the scoring itself.
    cols: dict[str, Any] = {
        "timestamp": ds.frame["timestamp"].reset_index(drop=True),
        "entity": ds.frame["entity"].reset_index(drop=True),
        "anomaly_score": score,
        "is_anomaly": flag,
        "top_metric": pd.array(top, dtype="str"),
    }
    for j, metric in enumerate(metrics):
        cols[f"contrib_{metric}"] = contrib[:, j]
    cols["ready"] = ready
    for j, metric in enumerate(metrics):
        cols[f"expected_{metric}"] = yhat[:, j]
        cols[f"lower_{metric}"] = lower[:, j]
        cols[f"upper_{metric}"] = upper[:, j]
    return pd.DataFrame(cols)  # built at once: inserting columns one by one fragments it


def input_rows(grid: pd.DataFrame, frame: pd.DataFrame, step: pd.Timedelta) -> pd.DataFrame:
    """``grid`` (scores of the rows ``frame`` was loaded onto, in (entity, timestamp) order)
    mapped back onto the rows of ``frame``: each row takes the grid row of its entity whose
    step ``[t, t + step)`` holds its time. Rows without one (dropped by loading) keep their
    own time and entity with a NaN score, False flags and empty text.

    >>> ts = pd.date_range("2026-01-01", periods=3, freq="5min", tz="UTC", unit="ns")
    >>> grid = pd.DataFrame({"timestamp": ts, "entity": "default",  # a Dataset's grid
    ...                      "anomaly_score": [0.1, 0.2, 0.3], "is_anomaly": False})
    >>> frame = pd.DataFrame({"timestamp": [ts[2] + pd.Timedelta("1min"), ts[0]]},
    ...                      index=[10, 11])
    >>> input_rows(grid, frame, pd.Timedelta("5min"))["anomaly_score"].to_dict()
    {10: 0.3, 11: 0.1}
    """
    ts = parse_timestamps(frame["timestamp"].reset_index(drop=True), "scoring data")
    ents = (frame["entity"].astype(str).to_numpy(dtype=object) if "entity" in frame.columns
            else np.full(len(frame), DEFAULT_ENTITY, dtype=object))
    t_in = pd.DatetimeIndex(ts).asi8
    t_grid = pd.DatetimeIndex(grid["timestamp"]).asi8
    g_ent = grid["entity"].to_numpy(dtype=object)
    take = np.full(len(frame), -1, dtype=np.int64)
    bounds = np.flatnonzero(np.concatenate(([True], g_ent[1:] != g_ent[:-1], [True])))
    where_in = pd.Series(np.arange(len(frame))).groupby(ents, sort=False).indices
    for a, b in pairwise(bounds.tolist()):
        idx = where_in.get(g_ent[a])
        if idx is None:
            continue
        pos = np.searchsorted(t_grid[a:b], t_in[idx], side="right") - 1
        ok = pos >= 0
        ok[ok] = t_in[idx[ok]] - t_grid[a + pos[ok]] < step.value
        take[idx[ok]] = a + pos[ok]
    if len(take) == len(grid) and np.array_equal(take, np.arange(len(grid))):
        out = grid.copy()  # the frame was already the grid: nothing moves
    else:
        out = grid.iloc[np.maximum(take, 0)].reset_index(drop=True)
        lost = take < 0
        if lost.any():
            for col in out.columns:
                if pd.api.types.is_bool_dtype(out[col]):
                    out.loc[lost, col] = False
                elif pd.api.types.is_float_dtype(out[col]):
                    out.loc[lost, col] = np.nan
                elif col not in ("timestamp", "entity"):
                    out.loc[lost, col] = ""
        out["timestamp"] = ts.to_numpy()
        out["entity"] = pd.array(ents, dtype=grid["entity"].dtype)
    out.index = frame.index
    return out
