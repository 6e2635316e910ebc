"""Evaluation reports: ``metrics.json`` and a self-contained ``report.html``.

The HTML page has no external assets (no CDN, no fonts, no scripts): every chart is inline SVG
generated here, so the report opens offline and can be attached to a ticket as one file. Per
entity it shows the metric series with true detections, false alarms and missed anomalies
shaded, and the anomaly-score timeline with the 1.0 threshold line; per split what the model
flagged (share of points, flagged periods, alerts per day: :func:`flag_summary`) and, when the
split has labels, the precision-recall curve, the confusion matrix and the recall per anomaly
type. Data without labels gets the same report minus the label-based parts.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aws_anomaly.errors import DataError
from aws_anomaly.evaluation.metrics import pr_curve, runs
from aws_anomaly.events import merge_events

__all__ = ["flag_summary", "render_html", "write_metrics_json", "write_report"]

#: normal points allowed inside one flagged period (as the runner merges live events)
PERIOD_GAP_STEPS = 2

_W, _H, _PAD = 960, 170, 38
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#17becf")
_SHADES = {"tp": ("#2ca02c", "detected anomaly"), "fp": ("#d62728", "false alarm"),
           "fn": ("#ffbf00", "missed anomaly"), "flag": ("#9467bd", "flagged (no labels)")}
_MAX_POINTS = 2000


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


def _thin(n: int) -> np.ndarray:
    """Indices to draw at most ~_MAX_POINTS points of a series of n."""
    if n <= _MAX_POINTS:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, _MAX_POINTS).round().astype(int))


def _x(i: np.ndarray | float, n: int) -> np.ndarray | float:
    return _PAD + (np.asarray(i) / max(n - 1, 1)) * (_W - 2 * _PAD)


def _polyline(y: np.ndarray, lo: float, hi: float, color: str, width: float = 1.2) -> str:
    n = len(y)
    idx = _thin(n)
    span = hi - lo if hi > lo else 1.0
    ys = _H - _PAD / 2 - (y[idx] - lo) / span * (_H - _PAD)
    xs = _x(idx, n)
    pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(xs, ys, strict=True))
    return (f'<polyline fill="none" stroke="{color}" stroke-width="{width}" '
            f'points="{pts}"/>')


def _shade(mask: np.ndarray, n: int, color: str, title: str) -> str:
    parts = []
    for a, b in runs(mask):
        x0, x1 = float(_x(a - 0.5, n)), float(_x(b - 0.5, n))
        parts.append(f'<rect x="{x0:.1f}" y="0" width="{max(x1 - x0, 1.0):.1f}" height="{_H}" '
                     f'fill="{color}" fill-opacity="0.25"><title>{html.escape(title)}</title>'
                     "</rect>")
    return "".join(parts)


def _axis_labels(ts: pd.Series, lo: float, hi: float, fmt: str = "{:.3g}") -> str:
    n = len(ts)
    out = [f'<line x1="{_PAD}" y1="{_H - _PAD / 2}" x2="{_W - _PAD}" y2="{_H - _PAD / 2}" '
           'stroke="#999"/>']
    for frac in (0.0, 0.5, 1.0):
        i = round(frac * (n - 1)) if n else 0
        label = pd.Timestamp(ts.iloc[i]).strftime("%Y-%m-%d %H:%M") if n else ""
        anchor = {0.0: "start", 0.5: "middle", 1.0: "end"}[frac]
        out.append(f'<text x="{float(_x(i, n)):.1f}" y="{_H - 4}" font-size="10" '
                   f'text-anchor="{anchor}">{label}</text>')
    out.append(f'<text x="2" y="{_PAD / 2 + 4}" font-size="10">{fmt.format(hi)}</text>')
    out.append(f'<text x="2" y="{_H - _PAD / 2}" font-size="10">{fmt.format(lo)}</text>')
    return "".join(out)


def _series_svg(frame: pd.DataFrame, metrics: Sequence[str], truth: np.ndarray,
                flags: np.ndarray, boundary: int | None, known: np.ndarray | None = None) -> str:
    """``known``: rows that carry labels (default all); flags on other rows are drawn as
    "flagged", not as hits or false alarms."""
    n = len(frame)
    body = []
    k = np.ones(n, dtype=bool) if known is None else known
    for key, mask in (("tp", truth & flags & k), ("fp", ~truth & flags & k),
                      ("fn", truth & ~flags & k), ("flag", flags & ~k)):
        color, title = _SHADES[key]
        body.append(_shade(mask, n, color, title))
    # Each metric min-max normalised so metrics of different units share one panel.
    for j, m in enumerate(metrics):
        y = frame[m].to_numpy(dtype=float)
        lo, hi = float(np.min(y)), float(np.max(y))
        body.append(_polyline(y, lo, hi, _COLORS[j % len(_COLORS)]))
    if boundary is not None and 0 < boundary < n:
        xb = float(_x(boundary - 0.5, n))
        body.append(f'<line x1="{xb:.1f}" y1="0" x2="{xb:.1f}" y2="{_H}" stroke="#333" '
                    'stroke-dasharray="4 3"><title>validation | test</title></line>')
    body.append(_axis_labels(frame["timestamp"], 0, 1, "{:.0f}"))
    return (f'<svg viewBox="0 0 {_W} {_H}" width="100%" role="img" '
            f'xmlns="http://www.w3.org/2000/svg">{"".join(body)}</svg>')


def _score_svg(frame: pd.DataFrame, truth: np.ndarray) -> str:
    n = len(frame)
    score = frame["anomaly_score"].to_numpy(dtype=float)
    hi = max(float(np.quantile(score, 0.999)) if n else 1.0, 1.5)
    clipped = np.minimum(score, hi)
    body = [_shade(truth, n, "#7f7f7f", "labelled anomaly"), _polyline(clipped, 0.0, hi, "#333")]
    y1 = _H - _PAD / 2 - (1.0 / hi) * (_H - _PAD)
    body.append(f'<line x1="{_PAD}" y1="{y1:.1f}" x2="{_W - _PAD}" y2="{y1:.1f}" '
                'stroke="#d62728" stroke-dasharray="6 3"><title>threshold 1.0</title></line>')
    body.append(f'<text x="{_W - _PAD + 2}" y="{y1 + 3:.1f}" font-size="10" '
                'fill="#d62728">1.0</text>')
    body.append(_axis_labels(frame["timestamp"], 0.0, hi))
    return (f'<svg viewBox="0 0 {_W} {_H}" width="100%" role="img" '
            f'xmlns="http://www.w3.org/2000/svg">{"".join(body)}</svg>')


def _pr_svg(curve: Mapping[str, Sequence[float]], point: tuple[float, float] | None) -> str:
    size, pad = 260, 34
    inner = size - 2 * pad

    def xy(r: float, p: float) -> tuple[float, float]:
        return pad + r * inner, size - pad - p * inner

    pts = " ".join("{:.1f},{:.1f}".format(*xy(r, p))
                   for r, p in zip(curve["recall"], curve["precision"], strict=True))
    body = [f'<rect x="{pad}" y="{pad}" width="{inner}" height="{inner}" fill="none" '
            'stroke="#999"/>',
            f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{pts}"/>',
            f'<text x="{size / 2}" y="{size - 6}" font-size="11" text-anchor="middle">recall'
            "</text>",
            f'<text x="10" y="{size / 2}" font-size="11" text-anchor="middle" '
            f'transform="rotate(-90 10 {size / 2})">precision</text>',
            f'<text x="{pad}" y="{size - pad + 12}" font-size="9">0</text>',
            f'<text x="{size - pad}" y="{size - pad + 12}" font-size="9">1</text>',
            f'<text x="{pad - 10}" y="{pad + 4}" font-size="9">1</text>']
    if point is not None:
        cx, cy = xy(point[0], point[1])
        body.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="#d62728">'
                    "<title>operating point (threshold 1.0)</title></circle>")
    return (f'<svg viewBox="0 0 {size} {size}" width="{size}" height="{size}" role="img" '
            f'xmlns="http://www.w3.org/2000/svg">{"".join(body)}</svg>')


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return html.escape(str(v))


def _flag_rows(metrics: Mapping[str, Any]) -> str:
    keys = (("flagged_share", "flagged share of scored points"),
            ("flagged_points", "flagged points"), ("flagged_periods", "flagged periods"),
            ("alerts_per_day", "alerts per day (per entity)"), ("scored_rows", "scored rows"),
            ("rows", "rows"))
    rows = []
    for k, label in keys:
        if k in metrics:
            v = metrics[k]
            text = f"{100 * float(v):.2f} %" if k == "flagged_share" else _fmt(v)
            rows.append(f"<tr><th>{html.escape(label)}</th><td>{text}</td></tr>")
    return "".join(rows)


def _periods_table(periods: Sequence[Mapping[str, Any]], total: int) -> str:
    if not periods:
        return "<p>no flagged periods</p>"
    head = ("<tr><th>entity</th><th>start</th><th>end</th><th>points</th><th>peak score</th>"
            "<th>top metric</th></tr>")
    body = "".join(
        f"<tr><td>{html.escape(str(p['entity']))}</td><td>{html.escape(str(p['start']))}</td>"
        f"<td>{html.escape(str(p['end']))}</td><td>{p['points']}</td>"
        f"<td>{_fmt(float(p['peak_score']))}</td><td>{html.escape(str(p['top_metric']))}</td>"
        "</tr>" for p in periods)
    more = (f"<p>the first {len(periods)} of {total} periods</p>" if total > len(periods)
            else "")
    return f"<table>{head}{body}</table>{more}"


def _split_section(name: str, metrics: Mapping[str, Any], scores: pd.DataFrame | None,
                   truth: np.ndarray | None) -> str:
    flagged = (f"<div><h3>Flagged</h3><table>{_flag_rows(metrics)}</table></div>"
               if "flagged_share" in metrics else "")
    periods = ""
    if "periods" in metrics:
        periods = (f"<h3>Flagged periods</h3>"
                   f"{_periods_table(metrics['periods'], int(metrics.get('flagged_periods', 0)))}")
    if "f1" not in metrics:
        return (f"<section><h2>{html.escape(name)}</h2><p>no labels: what the model flagged"
                f"</p><div class='row'>{flagged}</div>{periods}</section>")
    cm = metrics.get("confusion_matrix", [[0, 0], [0, 0]])
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(metrics.get(k))}</td></tr>"
                   for k in ("f1", "precision", "recall", "fpr", "event_recall",
                             "event_precision", "mean_detection_delay_steps", "n_events"))
    cmt = ("<table class='cm'><tr><th></th><th>predicted normal</th><th>predicted anomaly</th>"
           f"</tr><tr><th>actual normal</th><td>{cm[0][0]}</td><td>{cm[0][1]}</td></tr>"
           f"<tr><th>actual anomaly</th><td>{cm[1][0]}</td><td>{cm[1][1]}</td></tr></table>")
    per_type = metrics.get("per_type_recall", {}) or {}
    ptr = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td>"
        f"<td><svg width='120' height='10'><rect width='{120 * float(v):.0f}' height='10' "
        f"fill='#1f77b4'/></svg></td></tr>" for k, v in per_type.items())
    pr = ""
    if scores is not None and truth is not None and truth.any():
        ready = scores["ready"].to_numpy(dtype=bool)
        curve = pr_curve(truth[ready], scores["anomaly_score"].to_numpy()[ready])
        pr = _pr_svg(curve, (float(metrics.get("recall", 0.0)),
                             float(metrics.get("precision", 0.0))))
    return (f"<section><h2>{html.escape(name)}</h2><div class='row'>"
            f"<div><h3>Metrics</h3><table>{rows}</table></div>"
            f"<div><h3>Confusion matrix</h3>{cmt}</div>"
            f"<div><h3>Event recall per anomaly type</h3><table>{ptr}</table></div>"
            f"<div><h3>Precision-recall</h3>{pr}</div>{flagged}</div>{periods}</section>")


def render_html(*, title: str, metrics: Mapping[str, Mapping[str, Any]],
                scores: Mapping[str, pd.DataFrame], data: pd.DataFrame,
                metric_names: Sequence[str], info: Mapping[str, Any] | None = None) -> str:
    """Build the report page.

    Parameters
    ----------
    metrics
        Split name -> metrics dict (as from :func:`~aws_anomaly.evaluation.metrics
        .evaluate_flags`).
    scores
        Split name -> the model's score frame for that split (timestamp, entity,
        anomaly_score, is_anomaly, ready); splits are drawn in the given order, joined.
    data
        The rows matching the concatenated score frames (timestamp, entity, metric columns,
        ``is_anomaly`` when labelled: missing or NaN where a split has no labels), same order.
    """
    parts = list(scores.items())
    if not parts:
        raise DataError("nothing to report: no scored splits")
    joined = pd.concat([s.assign(_split=k) for k, s in parts], ignore_index=True)
    d = data.reset_index(drop=True)
    if len(d) != len(joined):
        raise DataError(f"report: {len(d)} data rows for {len(joined)} scored rows")
    order = np.lexsort((pd.to_datetime(joined["timestamp"]).to_numpy(),
                        joined["entity"].astype(str).to_numpy()))
    joined, d = joined.iloc[order].reset_index(drop=True), d.iloc[order].reset_index(drop=True)
    truth_all = (d["is_anomaly"].fillna(0).to_numpy() == 1) if "is_anomaly" in d else None
    known_all = (d["is_anomaly"].notna().to_numpy() if "is_anomaly" in d
                 else np.zeros(len(d), dtype=bool))

    sections = []
    offset = 0
    for name, s in parts:
        t = (data["is_anomaly"].fillna(0).to_numpy()[offset:offset + len(s)] == 1
             if "is_anomaly" in data else None)
        sections.append(_split_section(name, metrics.get(name, {}), s, t))
        offset += len(s)

    shown = [k for k in ("tp", "fp", "fn") if known_all.any()] + (
        ["flag"] if not known_all.all() else [])
    legend = "".join(f"<span class='sw' style='background:{_SHADES[k][0]}'></span>"
                     f"{html.escape(_SHADES[k][1])} " for k in shown)
    legend += "".join(f"<span class='ln' style='background:{_COLORS[j % len(_COLORS)]}'></span>"
                      f"{html.escape(m)} " for j, m in enumerate(metric_names))
    ent_html = []
    ent_col = joined["entity"].astype(str).to_numpy()
    for e in pd.unique(ent_col):
        sel = ent_col == e
        f = d.loc[sel].reset_index(drop=True)
        sc = joined.loc[sel].reset_index(drop=True)
        flags = sc["is_anomaly"].to_numpy(dtype=bool)
        truth = truth_all[sel] if truth_all is not None else np.zeros(len(f), dtype=bool)
        splits = sc["_split"].to_numpy()
        boundary = int(np.argmax(splits != splits[0])) if (splits != splits[0]).any() else None
        ent_html.append(
            f"<section><h2>Entity {html.escape(e)}</h2>"
            f"<p class='legend'>{legend}</p>"
            f"<h3>Metrics (each scaled to its own range)</h3>"
            f"{_series_svg(f, metric_names, truth, flags, boundary, known_all[sel])}"
            f"<h3>Anomaly score (threshold 1.0)</h3>{_score_svg(sc, truth)}</section>")
    info_rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_fmt(v)}</td></tr>"
                        for k, v in (info or {}).items())
    css = ("body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}"
           "table{border-collapse:collapse;margin:4px 0}th,td{border:1px solid #ddd;"
           "padding:3px 8px;text-align:left;font-size:13px}.row{display:flex;flex-wrap:wrap;"
           "gap:24px}.sw,.ln{display:inline-block;width:14px;height:10px;margin:0 4px 0 10px;"
           "opacity:.6}.ln{height:3px;opacity:1;vertical-align:middle}section{margin:18px 0}"
           "h2{border-bottom:1px solid #eee}")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{css}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><table>{info_rows}</table>"
            f"{''.join(sections)}{''.join(ent_html)}</body></html>")


def write_report(out_dir: str | os.PathLike[str], *, metrics: Mapping[str, Mapping[str, Any]],
                 scores: Mapping[str, pd.DataFrame], data: pd.DataFrame,
                 metric_names: Sequence[str], info: Mapping[str, Any] | None = None,
                 title: str = "aws-anomaly evaluation") -> tuple[Path, Path]:
    """Write ``metrics.json`` and ``report.html`` into ``out_dir``; returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mpath = write_metrics_json(out / "metrics.json", metrics)
    hpath = out / "report.html"
    hpath.write_text(render_html(title=title, metrics=metrics, scores=scores, data=data,
                                 metric_names=metric_names, info=info), encoding="utf-8")
    return mpath, hpath
