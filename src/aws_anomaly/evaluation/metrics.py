"""Point and event metrics for anomaly flags on labelled time series.

Point metrics treat every (entity, timestamp) row as one sample. Event metrics follow how an
operator experiences alerts: an *event* is a maximal run of consecutive labelled points in one
entity (or a row of an ``events.csv`` when one is given); it is detected when at least one point
inside it is flagged. Flagged runs that overlap no true event are *false events*.

Examples
--------
>>> import numpy as np
>>> m = point_metrics(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 1]))
>>> m["precision"], m["recall"], m["fpr"], m["confusion_matrix"]
(0.5, 0.5, 0.5, [[1, 1], [1, 1]])
>>> ev = event_metrics_arrays(np.array([0, 1, 1, 0, 0, 1, 1, 0]),
...                           np.array([0, 0, 1, 0, 1, 0, 0, 0]))
>>> ev["event_recall"], ev["event_precision"], ev["mean_detection_delay_steps"]
(0.5, 0.5, 1.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from aws_anomaly.errors import DataError

__all__ = [
    "average_precision",
    "evaluate_flags",
    "event_metrics_arrays",
    "events_to_mask",
    "point_metrics",
    "pr_curve",
    "roc_auc",
    "roc_curve",
    "runs",
    "undefined_metrics",
]


def _as_binary(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise DataError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    if not np.isin(arr, (0, 1)).all():
        bad = arr[~np.isin(arr, (0, 1))][:3]
        raise DataError(f"{name} must hold 0/1 or booleans, found {bad.tolist()}")
    return arr.astype(bool)


def _ratio(num: float, den: float) -> float:
    # An undefined ratio (nothing to divide by) is reported as 0.0, as scikit-learn's
    # zero_division=0 does; the confusion matrix next to it shows why.
    return float(num) / float(den) if den else 0.0


def point_metrics(y_true: Any, y_pred: Any) -> dict[str, Any]:
    """Precision, recall, F1, false-positive rate and the confusion matrix.

    ``confusion_matrix`` is ``[[tn, fp], [fn, tp]]`` (rows: actual normal / anomaly; columns:
    predicted normal / anomaly), as scikit-learn prints it.
    """
    t = _as_binary(y_true, "y_true")
    p = _as_binary(y_pred, "y_pred")
    if len(t) != len(p):
        raise DataError(f"y_true has {len(t)} values but y_pred has {len(p)}")
    tp = int(np.sum(t & p))
    fp = int(np.sum(~t & p))
    fn = int(np.sum(t & ~p))
    tn = int(np.sum(~t & ~p))
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return {
        "f1": f1,
        "precision": precision,
        "recall": recall,
        "fpr": _ratio(fp, fp + tn),
        "confusion_matrix": [[tn, fp], [fn, tp]],
        "n": len(t),
        "n_anomalous": int(t.sum()),
    }


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True as ``(start, stop)`` index pairs (``stop`` exclusive).

    >>> runs(np.array([0, 1, 1, 0, 1], dtype=bool))
    [(1, 3), (4, 5)]
    """
    m = np.asarray(mask, dtype=bool)
    if m.size == 0:
        return []
    edges = np.flatnonzero(np.diff(np.concatenate(([0], m.view(np.int8), [0]))))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def _event_counts(true_events: Sequence[tuple[int, int]], pred: np.ndarray) -> dict[str, Any]:
    """Counts for one entity: detected events, delays, and true/false flagged runs."""
    detected = []
    delays = []
    for start, stop in true_events:
        hits = np.flatnonzero(pred[start:stop])
        detected.append(hits.size > 0)
        if hits.size:
            delays.append(int(hits[0]))
    truth = np.zeros(len(pred), dtype=bool)
    for start, stop in true_events:
        truth[start:stop] = True
    pred_runs = runs(pred)
    false_runs = sum(1 for a, b in pred_runs if not truth[a:b].any())
    return {"detected": detected, "delays": delays, "pred_runs": len(pred_runs),
            "false_runs": false_runs}


def _summarise(detected: list[bool], delays: list[int], pred_runs: int,
               false_runs: int) -> dict[str, Any]:
    n_events = len(detected)
    return {
        "n_events": n_events,
        "n_detected_events": int(sum(detected)),
        "event_recall": _ratio(sum(detected), n_events),
        "n_flagged_runs": pred_runs,
        "n_false_events": false_runs,
        "event_precision": _ratio(pred_runs - false_runs, pred_runs),
        # None (JSON null) when no event was detected: a delay of 0 would claim instant detection.
        "mean_detection_delay_steps": float(np.mean(delays)) if delays else None,
    }


def event_metrics_arrays(y_true: Any, y_pred: Any) -> dict[str, Any]:
    """Event metrics for a single series (one entity), events = runs of labelled points."""
    t = _as_binary(y_true, "y_true")
    p = _as_binary(y_pred, "y_pred")
    if len(t) != len(p):
        raise DataError(f"y_true has {len(t)} values but y_pred has {len(p)}")
    c = _event_counts(runs(t), p)
    return _summarise(c["detected"], c["delays"], c["pred_runs"], c["false_runs"])


def events_to_mask(frame: pd.DataFrame, events: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Turn ``events`` rows (entity, start, end[, anomaly_type or type]) into per-row event ids.

    Returns ``(event_id, types)``: ``event_id[i]`` is the index of the event row covering row
    ``i`` of ``frame`` (-1 for none); ``types`` the anomaly type of each event. ``start`` and
    ``end`` are inclusive timestamps.
    """
    need = {"entity", "start", "end"}
    missing = need - set(events.columns)
    if missing:
        raise DataError(f"events table is missing column(s) {sorted(missing)}; "
                        f"expected entity, start, end and optionally anomaly_type")
    ids = np.full(len(frame), -1, dtype=np.int64)
    ts = pd.to_datetime(frame["timestamp"], utc=True).to_numpy()
    ent = frame["entity"].astype(str).to_numpy()
    starts = pd.to_datetime(events["start"], utc=True).to_numpy()
    ends = pd.to_datetime(events["end"], utc=True).to_numpy()
    ev_ent = events["entity"].astype(str).to_numpy()
    bad = np.flatnonzero(ends < starts)
    if bad.size:
        k = int(bad[0])
        raise DataError(f"events row {k}: end {ends[k]} is before start {starts[k]}")
    # Rows sorted by (entity, time) once; each event is then two binary searches in its
    # entity's block (a mask over all rows per event cost minutes on 1,000+ events x 500k rows).
    # Events are applied in order, so a later event still wins where two overlap.
    codes, names = pd.factorize(ent)
    order = np.lexsort((ts, codes))
    ts_sorted = ts[order]
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1), side="left")
    block = {str(n): (int(bounds[i]), int(bounds[i + 1])) for i, n in enumerate(names)}
    for k in range(len(events)):
        span = block.get(ev_ent[k])
        if span is None or pd.isna(starts[k]) or pd.isna(ends[k]):
            continue
        lo, hi = span
        a = lo + int(np.searchsorted(ts_sorted[lo:hi], starts[k], side="left"))
        b = lo + int(np.searchsorted(ts_sorted[lo:hi], ends[k], side="right"))
        ids[order[a:b]] = k
    # The data layer's events table names the column ``type``; accept either spelling.
    tcol = next((c for c in ("anomaly_type", "type") if c in events.columns), None)
    types = (events[tcol].fillna("").astype(str).to_numpy() if tcol is not None
             else np.full(len(events), "unknown"))
    return ids, types


def evaluate_flags(frame: pd.DataFrame, flags: Any, *, label_col: str = "is_anomaly",
                   events: pd.DataFrame | None = None) -> dict[str, Any]:
    """Point and event metrics for ``flags`` over a labelled multi-entity frame.

    Parameters
    ----------
    frame
        Rows sorted by (entity, timestamp) with ``entity``, ``timestamp``, the 0/1 label column
        and optionally ``anomaly_type``.
    flags
        Booleans (or 0/1), one per row of ``frame``.
    events
        Optional table of true events (entity, start, end inclusive, anomaly_type). When given,
        events are its rows rather than runs of labelled points.

    Returns
    -------
    dict
        ``f1``, ``precision``, ``recall``, ``fpr``, ``confusion_matrix``, ``event_recall``,
        ``event_precision``, ``mean_detection_delay_steps``, ``n_events``, ``per_type_recall``
        (event recall per anomaly type) and ``per_type_point_recall``.
    """
    if label_col not in frame.columns:
        raise DataError(f"cannot evaluate: the data has no '{label_col}' labels; "
                        f"columns are {list(frame.columns)}")
    pred = _as_binary(np.asarray(flags), "flags")
    if len(pred) != len(frame):
        raise DataError(f"{len(pred)} flags for {len(frame)} rows")
    truth = _as_binary(frame[label_col].to_numpy(), label_col)
    out = point_metrics(truth, pred)
    types_col = (frame["anomaly_type"].fillna("").astype(str).to_numpy()
                 if "anomaly_type" in frame.columns else np.where(truth, "unknown", ""))
    ent = frame["entity"].astype(str).to_numpy()
    if events is not None:
        ev_ids, ev_types = events_to_mask(frame, events)

    detected: list[bool] = []
    delays: list[int] = []
    pred_runs = false_runs = 0
    per_type: dict[str, list[bool]] = {}
    for e in pd.unique(ent):
        idx = np.flatnonzero(ent == e)
        p = pred[idx]
        if events is None:
            t_events = runs(truth[idx])
            t_types = [types_col[idx[a]] or "unknown" for a, _ in t_events]
        else:
            sub = ev_ids[idx]
            t_events, t_types = [], []
            for k in pd.unique(sub[sub >= 0]):
                where = np.flatnonzero(sub == k)
                t_events.append((int(where[0]), int(where[-1]) + 1))
                t_types.append(str(ev_types[k]) or "unknown")
        c = _event_counts(t_events, p)
        detected += c["detected"]
        delays += c["delays"]
        pred_runs += c["pred_runs"]
        false_runs += c["false_runs"]
        for typ, hit in zip(t_types, c["detected"], strict=True):
            per_type.setdefault(typ, []).append(hit)
    out.update(_summarise(detected, delays, pred_runs, false_runs))
    out["per_type_recall"] = {k: _ratio(sum(v), len(v)) for k, v in sorted(per_type.items())}
    point_type: dict[str, float] = {}
    for typ in sorted(set(types_col[truth].tolist())):
        sel = truth & (types_col == typ)
        point_type[typ or "unknown"] = _ratio(int(np.sum(pred & sel)), int(sel.sum()))
    out["per_type_point_recall"] = point_type
    return out


def pr_curve(y_true: Any, scores: Any, max_points: int = 200) -> dict[str, list[float]]:
    """Precision-recall pairs over thresholds (for plots), thinned to ``max_points``.

    >>> c = pr_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> c["precision"][0], c["recall"][-1]
    (1.0, 1.0)
    """
    t = _as_binary(y_true, "y_true")
    s = np.asarray(scores, dtype=np.float64)
    if len(s) != len(t):
        raise DataError(f"{len(s)} scores for {len(t)} labels")
    if not np.isfinite(s).all():
        raise DataError("scores contain NaN or infinite values")
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    tp = np.cumsum(t[order])
    k = np.arange(1, len(s) + 1)
    # one point per distinct threshold: the last index of each run of equal scores
    last = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), len(s) - 1] if len(s) else np.array([])
    pos = max(int(t.sum()), 1)
    precision = tp[last] / k[last] if len(s) else np.array([])
    recall = tp[last] / pos if len(s) else np.array([])
    thr = s_sorted[last] if len(s) else np.array([])
    if len(last) > max_points:
        pick = np.unique(np.linspace(0, len(last) - 1, max_points).round().astype(int))
        precision, recall, thr = precision[pick], recall[pick], thr[pick]
    return {"precision": precision.tolist(), "recall": recall.tolist(),
            "threshold": thr.tolist()}


def _scored(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    t = _as_binary(y_true, "y_true")
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or len(s) != len(t):
        raise DataError(f"{len(s)} scores for {len(t)} labels")
    if not np.isfinite(s).all():
        raise DataError("scores contain NaN or infinite values")
    return t, s


def roc_curve(y_true: Any, scores: Any, max_points: int = 200) -> dict[str, list[float]]:
    """False- and true-positive rates over thresholds (for plots), from (0, 0) to (1, 1),
    thinned to about ``max_points``; one point per distinct score (ties move together).

    >>> c = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> c["fpr"], c["tpr"]
    ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    """
    t, s = _scored(y_true, scores)
    order = np.argsort(-s, kind="stable")
    s_sorted, t_sorted = s[order], t[order]
    last = (np.r_[np.flatnonzero(np.diff(s_sorted) != 0), len(s) - 1] if len(s)
            else np.array([], dtype=int))
    tp = np.cumsum(t_sorted)[last] if len(s) else np.array([])
    fp = (last + 1) - tp
    pos, neg = max(int(t.sum()), 1), max(int((~t).sum()), 1)
    fpr = np.r_[0.0, fp / neg]
    tpr = np.r_[0.0, tp / pos]
    thr = np.r_[np.inf, s_sorted[last]] if len(s) else np.array([np.inf])
    if len(fpr) > max_points:
        pick = np.unique(np.r_[0, np.linspace(0, len(fpr) - 1, max_points).round().astype(int)])
        fpr, tpr, thr = fpr[pick], tpr[pick], thr[pick]
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(),
            "threshold": [float(x) if np.isfinite(x) else None for x in thr]}


def roc_auc(y_true: Any, scores: Any) -> float | None:
    """Area under the ROC curve: the chance that a random anomalous point scores above a
    random normal one (ties count half). ``None`` when either class is missing (undefined).

    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    >>> roc_auc([0, 0, 0], [0.1, 0.2, 0.3]) is None
    True
    """
    from scipy.stats import rankdata

    t, s = _scored(y_true, scores)
    pos, neg = int(t.sum()), int((~t).sum())
    if pos == 0 or neg == 0:
        return None
    ranks = rankdata(s)  # average ranks for ties: the Mann-Whitney U statistic
    u = float(ranks[t].sum()) - pos * (pos + 1) / 2.0
    return u / (pos * neg)


def average_precision(y_true: Any, scores: Any) -> float | None:
    """Area under the precision-recall curve as a step function (average precision: the mean
    of the precision at each threshold, weighted by the recall it adds; tied scores form one
    threshold). ``None`` when there are no anomalies (undefined).

    >>> average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])  # doctest: +ELLIPSIS
    0.8333...
    >>> average_precision([0, 0], [0.1, 0.4]) is None
    True
    """
    t, s = _scored(y_true, scores)
    pos = int(t.sum())
    if pos == 0:
        return None
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), len(s) - 1]
    tp = np.cumsum(t[order])[last]
    precision = tp / (last + 1)
    recall = tp / pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def undefined_metrics(m: Mapping[str, Any]) -> frozenset[str]:
    """Keys of an :func:`evaluate_flags` result whose value is undefined (reported as 0.0 or
    null there, as scikit-learn's ``zero_division=0`` does) and should read "n/a": precision
    with nothing flagged, recall and F1 with no labelled anomalies, FPR with no normal points,
    event recall with no events, event precision with no flagged runs, the detection delay
    with no detected event.

    >>> m = point_metrics(np.array([0, 0, 0]), np.array([0, 1, 0]))
    >>> sorted(undefined_metrics(m))
    ['f1', 'recall']
    """
    out: set[str] = set()
    cm = m.get("confusion_matrix")
    if cm is not None:
        (tn, fp), (fn, tp) = cm
        if tp + fp == 0:
            out.add("precision")
        if tp + fn == 0:
            out.update(("recall", "f1"))
        if fp + tn == 0:
            out.add("fpr")
    if "n_events" in m and not m["n_events"]:
        out.update(("event_recall", "mean_detection_delay_steps"))
    if "n_flagged_runs" in m and not m["n_flagged_runs"]:
        out.add("event_precision")
    if "mean_detection_delay_steps" in m and m["mean_detection_delay_steps"] is None:
        out.add("mean_detection_delay_steps")
    return frozenset(out)
