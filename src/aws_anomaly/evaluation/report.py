"""Evaluation reports: ``metrics.json`` and a self-contained ``report.html``.

The HTML page is one file that opens offline: the charting library (uPlot, MIT, vendored in
``aws_anomaly/service/static/vendor``) and the chart code the dashboard uses
(``service/static/charts.js``) are inlined with the data, nothing is fetched. It shows:

* what was run: the model, the data, row counts per split (rows, scored rows past the feature
  warm-up, labelled and anomalous rows, entities, time span);
* the threshold (``anomaly_score >= 1.0`` on the calibrated scale) and how it was chosen (rule,
  the part it was set on, the raw detector score it maps to);
* the detector-selection table when the run chose among detectors;
* per split: point and event metrics, with ``n/a`` wherever a figure is undefined (F1 on a split
  without anomalies, precision with nothing flagged; :func:`~aws_anomaly.evaluation.metrics
  .undefined_metrics`), the precision-recall and ROC curves with their areas (average
  precision, ROC AUC), the confusion matrix, recall per anomaly type, figures per entity, what
  was flagged (share, periods, alerts per day overall and per calendar day) and the flagged
  periods; a split without labels gets only the label-free parts;
* per entity: each metric in its own units (never rescaled), the model's expected band when the
  scores carry one (``expected_/lower_/upper_<metric>``), detections, false alarms and missed
  anomalies shaded, the anomaly score with the 1.0 threshold line; charts of one entity zoom
  together (drag to zoom, double-click resets), times in UTC, as the axes say.
"""

from __future__ import annotations

import html
import itertools
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aws_anomaly.errors import DataError
from aws_anomaly.evaluation.metrics import (
    average_precision,
    event_metrics_arrays,
    point_metrics,
    pr_curve,
    roc_auc,
    roc_curve,
    runs,
    undefined_metrics,
)
from aws_anomaly.events import merge_events

__all__ = ["flag_summary", "render_html", "threshold_description", "write_metrics_json",
           "write_report"]

#: normal points allowed inside one flagged period (as the runner merges live events)
PERIOD_GAP_STEPS = 2
#: at most this many points per entity are drawn (more rows are thinned, see ``_thin``)
MAX_POINTS = 4000

_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#17becf")
_SHADES = {"tp": ("rgba(44, 160, 44, 0.28)", "detected anomaly"),
           "fp": ("rgba(214, 39, 40, 0.25)", "false alarm"),
           "fn": ("rgba(255, 191, 0, 0.38)", "missed anomaly"),
           "flag": ("rgba(148, 103, 189, 0.28)", "flagged (no labels)")}
_NA = "n/a"
_STATIC = ("service", "static")


def _clean(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        return _clean(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_metrics_json(path: str | os.PathLike[str], metrics: Mapping[str, Any]) -> Path:
    """Write ``metrics`` as strict JSON (NaN/inf become null)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(_clean(metrics), indent=2, allow_nan=False) + "\n")
    return p


def flag_summary(scores: pd.DataFrame, step: pd.Timedelta | str, *,
                 max_gap_steps: int = PERIOD_GAP_STEPS, max_periods: int = 50
                 ) -> dict[str, Any]:
    """What a model flagged in a scored range, without labels.

    ``scores`` is :meth:`AnomalyModel.score` output (``timestamp``, ``entity``,
    ``anomaly_score``, ``is_anomaly``, ``ready``, ...). Flagged points of one entity separated
    by at most ``max_gap_steps`` normal points form one flagged period, as the live runner
    merges them into one event (one alert). Returns ``rows``, ``scored_rows`` (past the feature
    warm-up), ``flagged_points``, ``flagged_share`` (of scored rows), ``flagged_periods``,
    ``days`` (scored time summed over entities), ``alerts_per_day`` (periods per entity-day)
    and ``periods``: the first ``max_periods`` periods (entity, start, end, points, peak score,
    top metric).

    >>> ts = pd.date_range("2026-01-01", periods=288, freq="5min", tz="UTC")
    >>> flags = np.zeros(288, dtype=bool); flags[[10, 11, 13, 200]] = True
    >>> s = pd.DataFrame({"timestamp": ts, "entity": "a", "anomaly_score": flags * 1.5,
    ...                   "is_anomaly": flags, "ready": True})
    >>> r = flag_summary(s, "5min")
    >>> r["flagged_points"], r["flagged_periods"], r["alerts_per_day"]
    (4, 2, 2.0)
    """
    step = pd.Timedelta(step)
    ready = (scores["ready"].to_numpy(dtype=bool) if "ready" in scores.columns
             else np.ones(len(scores), dtype=bool))
    flags = scores["is_anomaly"].to_numpy(dtype=bool) & ready
    n_scored = int(ready.sum())
    entities = scores["entity"].astype(str).to_numpy()
    days = 0.0
    for e in pd.unique(entities):
        days += float(ready[entities == e].sum()) * (step / pd.Timedelta(days=1))
    events = merge_events(scores, max_gap_steps=max_gap_steps, step=step) if flags.any() else []
    periods = [{"entity": ev.entity, "start": ev.start.isoformat(), "end": ev.end.isoformat(),
                "points": ev.n_points, "peak_score": round(float(ev.peak_score), 3),
                "top_metric": ev.top_metrics[0][0] if ev.top_metrics else ""}
               for ev in events[:max_periods]]
    return {
        "rows": len(scores), "scored_rows": n_scored, "flagged_points": int(flags.sum()),
        "flagged_share": float(flags.sum()) / n_scored if n_scored else 0.0,
        "flagged_periods": len(events), "days": round(days, 4),
        "alerts_per_day": round(len(events) / days, 3) if days > 0 else 0.0,
        "periods": periods,
    }


# ------------------------------------------------------------------ threshold and selection
def threshold_description(model: Any) -> dict[str, Any]:
    """How a fitted :class:`~aws_anomaly.model.AnomalyModel` sets its threshold: ``rule`` (in
    words), ``method`` and its parameters, ``calibrated_on`` (the part it was set on),
    ``raw_threshold`` (the detector score that maps to 1.0) and ``detector``. Missing pieces
    are left out (a model saved by an older version may lack some)."""
    used = dict(getattr(model, "calibration_used_", {}) or {})
    method = used.get("method")
    out: dict[str, Any] = {"scale": "anomaly_score >= 1.0 is anomalous (calibrated scale)"}
    if method == "best_f1":
        out["rule"] = "best F1 on the labelled validation part"
    elif method == "target_fpr":
        out["rule"] = (f"at most {100 * float(used['target_fpr']):g} % of the validation points "
                       "above it (target false-positive rate)")
    elif method == "pot":
        out["rule"] = (f"peaks over threshold: an extreme-value fit of the score tail; a normal "
                       f"point exceeds it with probability {used.get('risk')}")
    elif method == "contamination":
        out["rule"] = (f"the top {100 * float(used['contamination']):g} % of the validation "
                       "scores")
    elif used:
        out["rule"] = json.dumps(_clean(used))
    if used:
        out["method"] = used
    summary = getattr(model, "training_summary_", None) or {}
    if summary.get("calibrated_on"):
        out["calibrated_on"] = summary["calibrated_on"]
    raw = getattr(getattr(model, "calibrator_", None), "threshold_", None)
    if isinstance(raw, (float, int, np.floating)) and math.isfinite(float(raw)):
        out["raw_threshold"] = float(raw)
    fallback = getattr(getattr(model, "calibrator_", None), "fallback_", None)
    if fallback:
        out["fallback"] = str(fallback)
    if getattr(model, "detector", None):
        out["detector"] = str(model.detector)
    return out


def _threshold_html(desc: Mapping[str, Any], info: Mapping[str, Any]) -> str:
    rows = [("threshold", "1.0 on the calibrated anomaly score: a point is flagged when "
             "anomaly_score >= 1.0")]
    if "rule" in desc:
        rows.append(("how it was chosen", str(desc["rule"])))
    elif "threshold" in info:
        rows.append(("how it was chosen", str(info["threshold"])))
    else:
        rows.append(("how it was chosen", "not recorded (pass the model to the report)"))
    if "calibrated_on" in desc:
        rows.append(("set on", f"the {desc['calibrated_on']} part"))
    if "raw_threshold" in desc:
        rows.append(("raw detector score at 1.0",
                     f"{desc['raw_threshold']:.6g} ({desc.get('detector', 'detector')})"))
    if "fallback" in desc:
        rows.append(("note", str(desc["fallback"])))
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                   for k, v in rows)
    return f"<section id='threshold'><h2>Threshold</h2><table>{body}</table></section>"


def _selection_html(selection: Mapping[str, Any] | None) -> str:
    if not selection:
        return ""
    head = (f"<section id='selection'><h2>Detector selection</h2><p>"
            f"{html.escape(str(selection.get('method', '')))}; chosen: "
            f"<b>{html.escape(str(selection.get('chosen', '')))}</b>")
    if selection.get("reason"):
        head += f" — {html.escape(str(selection['reason']))}"
    head += "</p>"
    table = selection.get("table") or []
    if not table:
        return head + "<p>no comparison table: nothing was compared</p></section>"
    rows = []
    for r in table:
        name = html.escape(str(r.get("candidate", "")))
        mark = " class='chosen'" if r.get("candidate") == selection.get("chosen") else ""
        if r.get("error"):
            rows.append(f"<tr{mark}><td>{name}</td><td colspan='6'>failed: "
                        f"{html.escape(str(r['error']))}</td></tr>")
            continue
        folds = ", ".join(_num(v) for v in r.get("folds_f1") or [])
        rows.append(f"<tr{mark}><td>{name}</td><td>{_num(r.get('mean_f1'))}</td>"
                    f"<td>{_num(r.get('std_f1'))}</td><td>{_num(r.get('mean_fpr'), 4)}</td>"
                    f"<td>{_num(r.get('mean_event_recall'))}</td>"
                    f"<td>{_num(r.get('objective'))}</td><td>{folds}</td></tr>")
    return (head + "<table><tr><th>candidate</th><th>mean F1</th><th>std F1</th>"
            "<th>mean FPR</th><th>mean event recall</th><th>objective</th><th>F1 per fold</th>"
            f"</tr>{''.join(rows)}</table></section>")


# ------------------------------------------------------------------ small formatting helpers
def _num(v: Any, digits: int = 3) -> str:
    if v is None:
        return _NA
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return _NA if not math.isfinite(float(v)) else f"{float(v):.{digits}f}"
    return html.escape(str(v))


def _metric(m: Mapping[str, Any], key: str, undefined: frozenset[str], digits: int = 3) -> str:
    if key in undefined or key not in m:
        return _NA
    return _num(m[key], digits)


def _fmt_info(v: Any) -> str:
    if isinstance(v, float):
        return _num(v)
    return html.escape(str(v))


def _utc(ts: Any) -> str:
    return pd.Timestamp(ts).strftime("%Y-%m-%d %H:%M UTC")


# ------------------------------------------------------------------ per split
def _rows_table(parts: Sequence[tuple[str, pd.DataFrame]], data_parts: Mapping[str, pd.DataFrame]
                ) -> str:
    head = ("<tr><th>split</th><th>rows</th><th>scored rows (past warm-up)</th>"
            "<th>warming up</th><th>entities</th><th>labelled rows</th><th>anomalous rows</th>"
            "<th>from (UTC)</th><th>to (UTC)</th></tr>")
    body = []
    for name, s in parts:
        d = data_parts[name]
        ready = (s["ready"].to_numpy(dtype=bool) if "ready" in s.columns
                 else np.ones(len(s), dtype=bool))
        if "is_anomaly" in d.columns:
            lab = d["is_anomaly"]
            labelled = int(lab.notna().sum())
            anomalous = str(int((lab.fillna(0).to_numpy() == 1).sum()))
        else:
            labelled, anomalous = 0, _NA
        ts = pd.to_datetime(s["timestamp"], utc=True)
        body.append(f"<tr><th>{html.escape(name)}</th><td>{len(s)}</td><td>{int(ready.sum())}"
                    f"</td><td>{int((~ready).sum())}</td><td>{s['entity'].nunique()}</td>"
                    f"<td>{labelled}</td><td>{anomalous}</td>"
                    f"<td>{_utc(ts.min()) if len(ts) else _NA}</td>"
                    f"<td>{_utc(ts.max()) if len(ts) else _NA}</td></tr>")
    return (f"<section id='rows'><h2>Rows</h2><table>{head}{''.join(body)}</table>"
            "<p class='note'>Scored rows are past the feature warm-up; only they count in the "
            "metrics below.</p></section>")


def _flag_rows(metrics: Mapping[str, Any]) -> str:
    keys = (("flagged_share", "flagged share of scored points"),
            ("flagged_points", "flagged points"), ("flagged_periods", "flagged periods"),
            ("alerts_per_day", "alerts per day (per entity)"), ("days", "entity-days scored"),
            ("scored_rows", "scored rows"), ("rows", "rows"))
    rows = []
    for k, label in keys:
        if k in metrics:
            v = metrics[k]
            text = f"{100 * float(v):.2f} %" if k == "flagged_share" else _num(v)
            rows.append(f"<tr><th>{html.escape(label)}</th><td>{text}</td></tr>")
    return "".join(rows)


def _alerts_by_day(scores: pd.DataFrame, step: pd.Timedelta | None) -> str:
    """Flagged periods (alerts) starting on each UTC calendar day, with the entities scored."""
    if not len(scores):
        return ""
    ready = (scores["ready"].to_numpy(dtype=bool) if "ready" in scores.columns
             else np.ones(len(scores), dtype=bool))
    flags = scores["is_anomaly"].to_numpy(dtype=bool) & ready
    ts = pd.to_datetime(scores["timestamp"], utc=True)
    days = ts.dt.floor("D")
    scored_entities = scores.loc[ready].groupby(days[ready])["entity"].nunique()
    counts: dict[pd.Timestamp, int] = {}
    if flags.any():
        for ev in merge_events(scores.assign(is_anomaly=flags),
                               max_gap_steps=PERIOD_GAP_STEPS, step=step):
            d = pd.Timestamp(ev.start).tz_convert("UTC").floor("D")
            counts[d] = counts.get(d, 0) + 1
    rows = []
    for d, n_ent in scored_entities.items():
        n = counts.get(pd.Timestamp(d), 0)
        rows.append(f"<tr><td>{pd.Timestamp(d):%Y-%m-%d}</td><td>{n}</td><td>{int(n_ent)}</td>"
                    f"<td>{n / max(int(n_ent), 1):.2f}</td></tr>")
    return ("<div><h3>Alerts per day</h3><table class='alerts-per-day'><tr><th>day (UTC)</th>"
            "<th>alerts (flagged periods starting)</th><th>entities scored</th>"
            f"<th>per entity</th></tr>{''.join(rows)}</table></div>")


def _periods_table(periods: Sequence[Mapping[str, Any]], total: int) -> str:
    if not periods:
        return "<p>no flagged periods</p>"
    head = ("<tr><th>entity</th><th>start (UTC)</th><th>end (UTC)</th><th>points</th>"
            "<th>peak score</th><th>top metric</th></tr>")
    body = "".join(
        f"<tr><td>{html.escape(str(p['entity']))}</td><td>{_utc(p['start'])}</td>"
        f"<td>{_utc(p['end'])}</td><td>{p['points']}</td>"
        f"<td>{_num(float(p['peak_score']))}</td><td>{html.escape(str(p['top_metric']))}</td>"
        "</tr>" for p in periods)
    more = (f"<p>the first {len(periods)} of {total} periods</p>" if total > len(periods)
            else "")
    return f"<table>{head}{body}</table>{more}"


def _per_entity_table(scores: pd.DataFrame, truth: np.ndarray | None,
                      step: pd.Timedelta | None) -> str:
    ent = scores["entity"].astype(str).to_numpy()
    ready = (scores["ready"].to_numpy(dtype=bool) if "ready" in scores.columns
             else np.ones(len(scores), dtype=bool))
    flags = scores["is_anomaly"].to_numpy(dtype=bool)
    labelled = truth is not None
    head = ("<tr><th>entity</th><th>scored rows</th><th>flagged points</th>"
            "<th>flagged periods</th><th>alerts per day</th>"
            + ("<th>anomalous rows</th><th>precision</th><th>recall</th><th>F1</th>"
               "<th>event recall</th>" if labelled else "") + "</tr>")
    rows = []
    for e in pd.unique(ent):
        sel = ent == e
        fs = flag_summary(scores.loc[sel], step or pd.Timedelta("5min"), max_periods=0)
        cells = (f"<td>{html.escape(e)}</td><td>{fs['scored_rows']}</td>"
                 f"<td>{fs['flagged_points']}</td><td>{fs['flagged_periods']}</td>"
                 f"<td>{_num(fs['alerts_per_day'], 2)}</td>")
        if truth is not None:
            t, p = truth[sel & ready], flags[sel & ready]
            pm = point_metrics(t, p)
            pm.update(event_metrics_arrays(t, p))
            und = undefined_metrics(pm)
            cells += (f"<td>{int(t.sum())}</td><td>{_metric(pm, 'precision', und)}</td>"
                      f"<td>{_metric(pm, 'recall', und)}</td><td>{_metric(pm, 'f1', und)}</td>"
                      f"<td>{_metric(pm, 'event_recall', und)}</td>")
        rows.append(f"<tr>{cells}</tr>")
    return (f"<div><h3>Per entity</h3><table class='per-entity'>{head}{''.join(rows)}</table>"
            "</div>")


def _per_type_table(metrics: Mapping[str, Any]) -> str:
    ev = metrics.get("per_type_recall", {}) or {}
    pt = metrics.get("per_type_point_recall", {}) or {}
    kinds = sorted(set(ev) | set(pt))
    if not kinds:
        return ("<div><h3>Event recall per anomaly type (and point recall)</h3>"
                "<p>no labelled anomalies</p></div>")
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{_num(ev.get(k))}</td><td>{_num(pt.get(k))}</td>"
        f"<td><span class='bar' style='width:{120 * float(ev.get(k) or 0):.0f}px'></span></td>"
        "</tr>" for k in kinds)
    return ("<div><h3>Event recall per anomaly type (and point recall)</h3>"
            "<table class='per-type'><tr><th>type</th>"
            f"<th>event recall</th><th>point recall</th><th></th></tr>{rows}</table></div>")


def _split_section(name: str, metrics: Mapping[str, Any], scores: pd.DataFrame,
                   truth: np.ndarray | None, step: pd.Timedelta | None,
                   curves: dict[str, Any]) -> str:
    flagged = (f"<div><h3>Flagged</h3><table>{_flag_rows(metrics)}</table></div>"
               if "flagged_share" in metrics else "")
    by_day = _alerts_by_day(scores, step)
    periods = ""
    if "periods" in metrics:
        periods = (f"<h3>Flagged periods</h3>"
                   f"{_periods_table(metrics['periods'], int(metrics.get('flagged_periods', 0)))}")
    sid = f"split-{html.escape(name)}"
    if "f1" not in metrics or truth is None:
        per_entity = _per_entity_table(scores, None, step)
        return (f"<section id='{sid}'><h2>{html.escape(name)}</h2><p>no labels: what the model "
                f"flagged (no precision, recall, PR or ROC without labels)</p>"
                f"<div class='row'>{flagged}{by_day}{per_entity}</div>{periods}</section>")
    und = undefined_metrics(metrics)
    ready = (scores["ready"].to_numpy(dtype=bool) if "ready" in scores.columns
             else np.ones(len(scores), dtype=bool))
    t, sc = truth[ready], scores["anomaly_score"].to_numpy(dtype=np.float64)[ready]
    sc = np.nan_to_num(sc, nan=0.0, posinf=np.finfo(np.float64).max)
    ap = average_precision(t, sc) if len(t) else None
    auc = roc_auc(t, sc) if len(t) else None
    rows = "".join(
        f"<tr><th>{html.escape(label)}</th><td>{_metric(metrics, k, und)}</td></tr>"
        for k, label in (("f1", "F1"), ("precision", "precision"), ("recall", "recall"),
                         ("fpr", "false-positive rate"), ("event_recall", "event recall"),
                         ("event_precision", "event precision"),
                         ("mean_detection_delay_steps", "mean detection delay (steps)"),
                         ("n_events", "labelled events")))
    rows += (f"<tr><th>PR AUC (average precision)</th><td>{_num(ap)}</td></tr>"
             f"<tr><th>ROC AUC</th><td>{_num(auc)}</td></tr>")
    cm = metrics.get("confusion_matrix", [[0, 0], [0, 0]])
    cmt = ("<table class='cm'><tr><th></th><th>predicted normal</th><th>predicted anomaly</th>"
           f"</tr><tr><th>actual normal</th><td>{cm[0][0]}</td><td>{cm[0][1]}</td></tr>"
           f"<tr><th>actual anomaly</th><td>{cm[1][0]}</td><td>{cm[1][1]}</td></tr></table>")
    charts = ""
    if t.any() and (~t).any():
        pr = pr_curve(t, sc, max_points=300)
        roc = roc_curve(t, sc, max_points=300)
        p_op = None if "precision" in und else float(metrics["precision"])
        r_op = float(metrics.get("recall", 0.0))
        curves[name] = {
            "pr": {"x": pr["recall"], "y": pr["precision"],
                   "point": [r_op, p_op] if p_op is not None else None,
                   "title": f"Precision-recall ({name}), AP {_num(ap)}"},
            "roc": {"x": roc["fpr"], "y": roc["tpr"],
                    "point": [float(metrics.get("fpr", 0.0)), r_op],
                    "title": f"ROC ({name}), AUC {_num(auc)}"}}
        charts = (f"<div><h3>Precision-recall and ROC</h3><div class='curves'>"
                  f"<div class='curve' data-split='{html.escape(name)}' data-kind='pr'></div>"
                  f"<div class='curve' data-split='{html.escape(name)}' data-kind='roc'></div>"
                  "</div><p class='note'>red dot: the operating point at threshold 1.0</p>"
                  "</div>")
    else:
        charts = ("<div><h3>Precision-recall and ROC</h3><p>n/a: the scored rows of this split "
                  "hold only one class (no anomalies, or nothing normal), so the curves and "
                  "their areas are undefined</p></div>")
    return (f"<section id='{sid}'><h2>{html.escape(name)}</h2><div class='row'>"
            f"<div><h3>Metrics</h3><table class='metrics'>{rows}</table></div>"
            f"<div><h3>Confusion matrix</h3>{cmt}</div>{charts}</div>"
            f"<div class='row'>{_per_type_table(metrics)}"
            f"{_per_entity_table(scores, truth, step)}</div>"
            f"<div class='row'>{flagged}{by_day}</div>{periods}</section>")


# ------------------------------------------------------------------ per entity (charts)
def _thin(score: np.ndarray, n_max: int = MAX_POINTS) -> np.ndarray:
    """Row indices to draw: all rows up to ``n_max``; past that the highest-scoring row of each
    of ``n_max`` equal buckets, so every peak of the score stays visible."""
    n = len(score)
    if n <= n_max:
        return np.arange(n)
    edges = np.linspace(0, n, n_max + 1).round().astype(int)
    s = np.nan_to_num(score, nan=-np.inf)
    return np.array([a + int(np.argmax(s[a:b])) for a, b in itertools.pairwise(edges) if b > a])


def _values(a: np.ndarray) -> list[float | None]:
    return [float(f"{v:.6g}") if math.isfinite(v) else None for v in a.tolist()]


def _spans(x: np.ndarray, mask: np.ndarray, half: float, color: str, label: str
           ) -> list[dict[str, Any]]:
    return [{"from": float(x[a] - half), "to": float(x[b - 1] + half), "color": color,
             "label": label} for a, b in runs(mask)]


def _entity_payload(name: str, frame: pd.DataFrame, sc: pd.DataFrame,
                    metric_names: Sequence[str], truth: np.ndarray, known: np.ndarray,
                    boundary: int | None) -> dict[str, Any]:
    x = ((pd.to_datetime(sc["timestamp"], utc=True) - pd.Timestamp(0, tz="UTC"))
         / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64)
    flags = sc["is_anomaly"].to_numpy(dtype=bool)
    half = float(np.median(np.diff(x))) / 2 if len(x) > 1 else 150.0
    spans: list[dict[str, Any]] = []
    for key, mask in (("tp", truth & flags & known), ("fp", ~truth & flags & known),
                      ("fn", truth & ~flags & known), ("flag", flags & ~known)):
        spans += _spans(x, mask, half, *_SHADES[key])
    if boundary is not None and 0 < boundary < len(x):
        spans.append({"from": float(x[boundary]) - half * 0.15,
                      "to": float(x[boundary]) + half * 0.15, "color": "rgba(0, 0, 0, 0.55)",
                      "label": "validation | test"})
    score = sc["anomaly_score"].to_numpy(dtype=np.float64)
    idx = _thin(score)
    metrics = {}
    for m in metric_names:
        entry: dict[str, Any] = {"values": _values(frame[m].to_numpy(dtype=np.float64)[idx])}
        if all(f"{p}_{m}" in sc.columns for p in ("expected", "lower", "upper")):
            for p in ("expected", "lower", "upper"):
                entry[p] = _values(sc[f"{p}_{m}"].to_numpy(dtype=np.float64)[idx])
        metrics[m] = entry
    return {"entity": name, "x": [float(v) for v in x[idx]], "metrics": metrics,
            "score": _values(score[idx]), "spans": spans, "thinned": len(idx) < len(x),
            "rows": len(x)}


def _asset(*parts: str) -> str:
    """A file of the dashboard's static folder, read as package data (nothing is imported from
    ``aws_anomaly.service``, which sits above this module)."""
    text = resources.files("aws_anomaly").joinpath(*_STATIC, *parts).read_text(encoding="utf-8")
    # uPlot's banner comment carries its home page; the report states the library and licence
    # in its own comment and keeps the page free of any address.
    return re.sub(r"^/\*! https?://\S+ \((v[\d.]+)\) \*/", r"/* uPlot \1 */", text)


def _script_json(obj: Any) -> str:
    """JSON safe inside a <script> element (no "</" can close it)."""
    return json.dumps(_clean(obj), allow_nan=False, separators=(",", ":")).replace("</", "<\\/")


_RENDER_JS = """
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const colors = data.colors;
  for (const e of data.entities) {
    const box = document.querySelector(`.entity-charts[data-entity="${CSS.escape(e.entity)}"]`);
    if (!box) continue;
    const group = AnomalyCharts.group(null);
    e.metricNames.forEach((m, j) => {
      const div = document.createElement("div");
      div.className = "chart-box";
      div.dataset.metric = m;
      box.appendChild(div);
      const d = e.metrics[m];
      AnomalyCharts.timeChart(div, {
        title: m, unit: "", x: e.x, tz: "UTC", group, height: 190, shade: e.spans,
        series: [{ label: m, values: d.values, color: colors[j % colors.length] }],
        band: d.upper ? { expected: d.expected, lower: d.lower, upper: d.upper } : null,
      });
    });
    const div = document.createElement("div");
    div.className = "chart-box score";
    div.dataset.metric = "anomaly_score";
    box.appendChild(div);
    AnomalyCharts.timeChart(div, {
      title: "Anomaly score (threshold 1.0)", unit: "anomaly score", x: e.x, tz: "UTC", group,
      height: 190, threshold: 1.0, shade: e.spans,
      series: [{ label: "anomaly score", values: e.score, color: "#333333" }],
    });
  }
  for (const el of document.querySelectorAll(".curve")) {
    const c = data.curves[el.dataset.split][el.dataset.kind];
    const roc = el.dataset.kind === "roc";
    AnomalyCharts.curve(el, { title: c.title, x: c.x, y: c.y, point: c.point, diagonal: roc,
      xLabel: roc ? "false-positive rate" : "recall",
      yLabel: roc ? "true-positive rate" : "precision", width: 360, height: 320 });
  }
  document.body.dataset.rendered = "true";
})();
"""

_CSS = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;color:#222;"
    "max-width:1200px;padding:0 16px}table{border-collapse:collapse;margin:4px 0}"
    "th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;font-size:13px;"
    "font-variant-numeric:tabular-nums}.row{display:flex;flex-wrap:wrap;gap:24px;"
    "align-items:flex-start}.sw{display:inline-block;width:14px;height:10px;margin:0 4px 0 10px}"
    "section{margin:22px 0}h2{border-bottom:1px solid #eee;padding-bottom:4px}"
    ".note{color:#666;font-size:12px}.bar{display:inline-block;height:9px;background:#1f77b4}"
    "tr.chosen td{background:#f0fdf4;font-weight:600}.curves{display:flex;gap:12px;"
    "flex-wrap:wrap}.chart-box{width:100%;margin-bottom:6px}.u-title{font-size:13px;"
    "font-weight:600;text-align:left;padding-left:64px}.u-legend{font-size:12px}"
    ".u-legend th,.u-legend td{border:0}"
)


def render_html(*, title: str, metrics: Mapping[str, Mapping[str, Any]],
                scores: Mapping[str, pd.DataFrame], data: pd.DataFrame,
                metric_names: Sequence[str], info: Mapping[str, Any] | None = None,
                model: Any = None, selection: Mapping[str, Any] | None = None,
                step: pd.Timedelta | str | None = None) -> str:
    """Build the report page.

    Parameters
    ----------
    metrics
        Split name -> metrics dict (as from :func:`~aws_anomaly.evaluation.metrics
        .evaluate_flags` and :func:`flag_summary`).
    scores
        Split name -> the model's score frame for that split (timestamp, entity,
        anomaly_score, is_anomaly, ready; ``expected_/lower_/upper_<metric>`` when the model
        gives its expected band); splits are drawn in the given order, joined.
    data
        The rows matching the concatenated score frames (timestamp, entity, metric columns,
        ``is_anomaly`` when labelled: missing or NaN where a split has no labels), same order.
    model
        The fitted model, for the threshold (how it was chosen) and, from its metadata, the
        detector-selection table; optional.
    selection
        The detector-selection record (``method``, ``chosen``, ``reason``, ``table``); default
        ``model.metadata["selection"]``.
    step
        The sampling step (default: the model's, else inferred from the timestamps).
    """
    parts = list(scores.items())
    if not parts:
        raise DataError("nothing to report: no scored splits")
    joined = pd.concat([s.assign(_split=k) for k, s in parts], ignore_index=True)
    d = data.reset_index(drop=True)
    if len(d) != len(joined):
        raise DataError(f"report: {len(d)} data rows for {len(joined)} scored rows")
    missing = [m for m in metric_names if m not in d.columns]
    if missing:
        raise DataError(f"report: the data has no column(s) {missing} for the metrics named; "
                        f"columns are {list(d.columns)}")
    info = dict(info or {})
    if step is None and model is not None and getattr(model, "step_", None) is not None:
        step = model.step_
    step_td = pd.Timedelta(step) if step is not None else _infer_step(joined)
    if selection is None and model is not None:
        selection = (getattr(model, "metadata", None) or {}).get("selection")
    desc = threshold_description(model) if model is not None else {}

    # Per split: its own slice of the data (in the given order).
    data_parts: dict[str, pd.DataFrame] = {}
    offset = 0
    for name, s in parts:
        data_parts[name] = d.iloc[offset:offset + len(s)].reset_index(drop=True)
        offset += len(s)
    curves: dict[str, Any] = {}
    sections = []
    for name, s in parts:
        dp = data_parts[name]
        t = None
        if "is_anomaly" in dp.columns and dp["is_anomaly"].notna().all():
            t = dp["is_anomaly"].to_numpy() == 1
        sections.append(_split_section(name, metrics.get(name, {}), s.reset_index(drop=True),
                                       t, step_td, curves))

    order = np.lexsort((pd.to_datetime(joined["timestamp"]).to_numpy(),
                        joined["entity"].astype(str).to_numpy()))
    joined, d = joined.iloc[order].reset_index(drop=True), d.iloc[order].reset_index(drop=True)
    truth_all = (d["is_anomaly"].fillna(0).to_numpy() == 1 if "is_anomaly" in d
                 else np.zeros(len(d), dtype=bool))
    known_all = (d["is_anomaly"].notna().to_numpy() if "is_anomaly" in d
                 else np.zeros(len(d), dtype=bool))
    shown = [k for k in ("tp", "fp", "fn") if known_all.any()] + (
        ["flag"] if not known_all.all() else [])
    legend = "".join(f"<span class='sw' style='background:{_SHADES[k][0]}'></span>"
                     f"{html.escape(_SHADES[k][1])} " for k in shown)
    has_band = any(f"expected_{m}" in joined.columns for m in metric_names)
    if has_band:
        legend += ("<span class='sw' style='background:rgba(37,99,235,0.2)'></span>expected band "
                   "(the model's expected value and its range)")
    payload = []
    ent_html = []
    ent_col = joined["entity"].astype(str).to_numpy()
    for e in pd.unique(ent_col):
        sel = ent_col == e
        f = d.loc[sel].reset_index(drop=True)
        sc = joined.loc[sel].reset_index(drop=True)
        splits = sc["_split"].to_numpy()
        boundary = int(np.argmax(splits != splits[0])) if (splits != splits[0]).any() else None
        p = _entity_payload(e, f, sc, metric_names, truth_all[sel], known_all[sel], boundary)
        p["metricNames"] = list(metric_names)
        payload.append(p)
        thinned = (f" Drawn: {len(p['x'])} of {p['rows']} points (the highest-scoring point of "
                   "each stretch; shading uses every point)." if p["thinned"] else "")
        ent_html.append(
            f"<section class='entity'><h2>Entity {html.escape(e)}</h2>"
            f"<p class='legend'>{legend}</p><p class='note'>Each metric in its own units. "
            f"Times in UTC. Drag across a chart to zoom (all charts of this entity follow); "
            f"double-click resets.{' The dark line: validation | test.' if boundary else ''}"
            f"{thinned}</p>"
            f"<div class='entity-charts' data-entity='{html.escape(e)}'></div></section>")
    info_rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_fmt_info(v)}</td></tr>"
                        for k, v in info.items())
    blob = {"entities": payload, "curves": curves, "colors": list(_COLORS)}
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title>"
            f"<style>{_asset('vendor', 'uPlot.min.css')}</style><style>{_CSS}</style></head>"
            f"<body><h1>{html.escape(title)}</h1><table class='info'>{info_rows}</table>"
            f"{_threshold_html(desc, info)}{_rows_table(parts, data_parts)}"
            f"{_selection_html(selection)}{''.join(sections)}{''.join(ent_html)}"
            f"<noscript><p>The charts need JavaScript (inlined in this file; nothing is "
            f"fetched).</p></noscript>"
            f"<script type='application/json' id='report-data'>{_script_json(blob)}</script>"
            f"<script>/* uPlot 1.6.32, MIT License, (c) Leon Sorokin */\n"
            f"{_asset('vendor', 'uPlot.iife.min.js')}</script>"
            f"<script>{_asset('charts.js')}</script><script>{_RENDER_JS}</script>"
            f"</body></html>")


def _infer_step(scores: pd.DataFrame) -> pd.Timedelta | None:
    ts = pd.to_datetime(scores["timestamp"], utc=True)
    diffs = ts.groupby(scores["entity"].astype(str).to_numpy()).diff().dropna()
    diffs = diffs[diffs > pd.Timedelta(0)]
    return pd.Timedelta(diffs.median()) if len(diffs) else None


def write_report(out_dir: str | os.PathLike[str], *, metrics: Mapping[str, Mapping[str, Any]],
                 scores: Mapping[str, pd.DataFrame], data: pd.DataFrame,
                 metric_names: Sequence[str], info: Mapping[str, Any] | None = None,
                 title: str = "aws-anomaly evaluation", model: Any = None,
                 selection: Mapping[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``metrics.json`` and ``report.html`` into ``out_dir``; returns both paths.
    ``model`` (optional) adds how the threshold was chosen and the detector-selection table."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mpath = write_metrics_json(out / "metrics.json", metrics)
    hpath = out / "report.html"
    hpath.write_text(render_html(title=title, metrics=metrics, scores=scores, data=data,
                                 metric_names=metric_names, info=info, model=model,
                                 selection=selection), encoding="utf-8")
    return mpath, hpath
