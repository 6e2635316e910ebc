"""Which metrics made a row anomalous: shares of the detector's score per metric.

Two ways, both on the detector's scaled input rows ``Xs`` and its raw scores (higher = more
anomalous), with each metric's columns given as ``groups`` (metric -> column positions;
a cross-metric column counts for both of its metrics):

* :func:`decomposed_shares` — the detector decomposes its own score (kNN: squared distance per
  column to the nearest training row): each metric's share is the sum of its columns' parts.
* :func:`occlusion_shares` — for any detector: each metric's columns are replaced by the
  training median (in scaled space), the drop of the raw score is that metric's part; drops are
  clipped at 0 and normalised to shares summing to 1. Where occluding no single metric lowers
  the score (the anomaly lives in their combination or in the calendar columns), the shares
  are the metrics' squared deviations from the median instead. Every metric's occluded copy of
  a block of rows is scored in one detector call.

This module knows nothing of features, models or time; :class:`~aws_anomaly.model.
AnomalyModel` calls it for flagged rows (``contrib_<metric>``, ``top_metric``).

>>> Xs = np.array([[4.0, 0.0], [0.0, 0.0]])
>>> raw = (Xs ** 2).sum(axis=1)
>>> occlusion_shares(Xs, raw, ["a", "b"], {"a": [0], "b": [1]}, np.zeros(2),
...                  lambda X: (X ** 2).sum(axis=1)).tolist()
[[1.0, 0.0], [0.5, 0.5]]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

__all__ = ["OCCLUSION_ROWS", "decomposed_shares", "metric_membership", "occlusion_shares",
           "shares_of"]

#: Rows (all metrics' occluded copies together) per detector call of :func:`occlusion_shares`:
#: one call for the handful of rows a live point or a chunk flags.
OCCLUSION_ROWS = 16_384


def decomposed_shares(parts: np.ndarray, metrics: Sequence[str],
                      groups: Mapping[str, Sequence[int]]) -> np.ndarray:
    """Shares ``(rows, metrics)`` from a detector's per-column parts of its score
    (``(rows, columns)``); rows whose parts sum to 0 share equally.

    Each metric's part is the sum of its columns' (a column listed twice counts twice): one
    product with :func:`metric_membership`, then :func:`shares_of`.

    >>> decomposed_shares(np.array([[1.0, 3.0, 0.0]]), ["a", "b"], {"a": [0], "b": [1]}).tolist()
    [[0.25, 0.75]]
    """
    return shares_of(parts @ metric_membership(metrics, groups, parts.shape[1]))


def shares_of(metric_parts: np.ndarray) -> np.ndarray:
    """Each row's parts per metric ``(rows, metrics)`` as shares summing to 1; rows whose
    parts sum to 0 share equally.

    >>> shares_of(np.array([[1.0, 3.0], [0.0, 0.0]])).tolist()
    [[0.25, 0.75], [0.5, 0.5]]
    """
    if len(metric_parts) == 1:  # a live point: the same arithmetic without the masks
        one = float(metric_parts[0].sum())
        if one > 0:
            return metric_parts / one
        return np.full_like(metric_parts, 1.0 / metric_parts.shape[1])
    total = metric_parts.sum(axis=1, keepdims=True)
    return np.divide(metric_parts, total,
                     out=np.full_like(metric_parts, 1.0 / metric_parts.shape[1]),
                     where=total > 0)


#: ``id(groups)`` -> (groups, metrics, columns, count matrix) of :func:`metric_membership`.
_MEMBERS: dict[int, tuple[Mapping[str, Sequence[int]], tuple[str, ...], int, np.ndarray]] = {}


def metric_membership(metrics: Sequence[str], groups: Mapping[str, Sequence[int]],
                      n_cols: int) -> np.ndarray:
    """``(n_cols, metrics)``: how many times each column is listed in each metric's group
    (negative positions counted from the end, as indexing reads them), so that per-column
    parts times it are per-metric parts. Cached per ``groups`` object (which must not be
    changed in place afterwards; models replace theirs); read-only.

    >>> metric_membership(["a", "b"], {"a": [0, 2], "b": [2]}, 3).tolist()
    [[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]]
    """
    key = id(groups)
    hit = _MEMBERS.get(key)
    names = tuple(metrics)
    if hit is not None and hit[0] is groups and hit[1] == names and hit[2] == n_cols:
        return hit[3]
    count = np.zeros((n_cols, len(names)))
    for j, metric in enumerate(names):
        for c in groups.get(metric, []):
            count[c, j] += 1.0
    count.flags.writeable = False
    if len(_MEMBERS) >= _PLANS_MAX:
        _MEMBERS.clear()  # (atomic; a matrix costs microseconds to rebuild)
    _MEMBERS[key] = (groups, names, n_cols, count)
    return count


#: ``id(groups)`` -> (groups, metrics, columns, plan) of :func:`_one_row_plan`; a model's
#: groups are set once (fit / load) and read for every flagged live point.
_PLANS: dict[int, tuple[Mapping[str, Sequence[int]], tuple[str, ...], int,
                        tuple[np.ndarray, np.ndarray, np.ndarray] | None]] = {}
_PLANS_MAX = 64


def _one_row_plan(metrics: Sequence[str], groups: Mapping[str, Sequence[int]], n_cols: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Where one row's occluded copies differ from the row: ``(flat positions in the
    (occluded metrics, n_cols) copies, their columns, each copy's metric index)``, or None
    when no metric has columns. Cached per ``groups`` object (which must not be changed in
    place afterwards; models replace theirs)."""
    key = id(groups)
    hit = _PLANS.get(key)
    names = tuple(metrics)
    if hit is not None and hit[0] is groups and hit[1] == names and hit[2] == n_cols:
        return hit[3]
    occluded = [(j, list(cols)) for j, metric in enumerate(names)
                if (cols := groups.get(metric, []))]
    plan = None
    if occluded:
        cols = np.asarray([c for _, cs in occluded for c in cs], dtype=np.intp)
        cols = np.where(cols < 0, cols + n_cols, cols)  # as Xo[g, cols] reads negative ones
        copy = np.repeat(np.arange(len(occluded)), [len(cs) for _, cs in occluded])
        plan = (copy * n_cols + cols, cols, np.asarray([j for j, _ in occluded], dtype=np.intp))
    if len(_PLANS) >= _PLANS_MAX:
        _PLANS.clear()  # (atomic; a plan costs microseconds to rebuild)
    _PLANS[key] = (groups, names, n_cols, plan)
    return plan


def occlusion_shares(Xs: np.ndarray, raw: np.ndarray, metrics: Sequence[str],
                     groups: Mapping[str, Sequence[int]], median: np.ndarray,
                     score: Callable[[np.ndarray], np.ndarray],
                     block_rows: int = OCCLUSION_ROWS) -> np.ndarray:
    """Occlusion shares ``(rows, metrics)`` of the scaled rows ``Xs`` whose raw scores are
    ``raw``; ``score`` maps rows to raw scores (the detector), ``median`` is the training
    median of each column (see the module docstring)."""
    m = len(metrics)
    if len(Xs) == 1:
        plan = _one_row_plan(metrics, groups, Xs.shape[1])
        if plan is not None and block_rows >= len(plan[2]):
            # One row (a live point): the same detector call on the same occluded copies
            # and the same arithmetic as below, without the block loop's 3-D copies and with
            # the copies' positions worked out once per (metrics, groups); a row that
            # occluding no metric lowers goes the general way below.
            flat, cols, occ = plan
            Xo = np.repeat(Xs, len(occ), axis=0)
            Xo.put(flat, median.take(cols))
            one = np.zeros(m)
            one[occ] = raw[0] - score(Xo)
            np.maximum(one, 0.0, out=one)  # what np.clip(one, 0.0, None) computes
            total_one = one.sum()
            if total_one > 0:
                return (one / total_one)[None, :]
    out = np.zeros((len(Xs), m))
    if len(Xs) == 0:
        return out
    occluded = [(j, cols) for j, metric in enumerate(metrics)
                if (cols := groups.get(metric, []))]
    drops = np.zeros((len(Xs), m))
    block = max(1, block_rows // max(1, len(occluded)))
    for r0 in range(0, len(Xs), block):
        part = Xs[r0:r0 + block]
        Xo = np.empty((len(occluded), *part.shape))
        for g, (_, cols) in enumerate(occluded):
            Xo[g] = part
            Xo[g][:, cols] = median[cols]
        lowered = score(Xo.reshape(-1, part.shape[1])).reshape(len(occluded), -1)
        for g, (j, _) in enumerate(occluded):
            drops[r0:r0 + block, j] = raw[r0:r0 + block] - lowered[g]
    drops = np.clip(drops, 0.0, None)
    total = drops.sum(axis=1)
    ok = total > 0
    out[ok] = drops[ok] / total[ok, None]
    if (~ok).any():
        dev = np.zeros((int((~ok).sum()), m))
        for j, metric in enumerate(metrics):
            cols = groups.get(metric, [])
            if cols:
                dev[:, j] = np.sum((Xs[~ok][:, cols] - median[cols]) ** 2, axis=1)
        dtot = dev.sum(axis=1)
        dev = np.where(dtot[:, None] > 0, dev / np.where(dtot > 0, dtot, 1)[:, None], 1.0 / m)
        out[~ok] = dev
    return out
