"""The HTML report is self-contained and shows what it claims; metrics.json is strict JSON."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.errors import DataError
from aws_anomaly.evaluation.metrics import evaluate_flags
from aws_anomaly.evaluation.report import render_html, write_report


def _scored(entity: str, n: int, start: str, flags: np.ndarray, labels: np.ndarray):
    ts = pd.date_range(start, periods=n, freq="5min", tz="UTC")
    data = pd.DataFrame({"timestamp": ts, "entity": entity, "cpu": np.sin(np.arange(n)),
                         "is_anomaly": labels.astype(np.int8),
                         "anomaly_type": np.where(labels == 1, "spike", "")})
    score = np.where(flags, 1.5, 0.3)
    scores = pd.DataFrame({"timestamp": ts, "entity": entity, "anomaly_score": score,
                           "is_anomaly": flags, "top_metric": np.where(flags, "cpu", ""),
                           "contrib_cpu": flags.astype(float), "ready": True})
    return data, scores


def test_report_files(tmp_path) -> None:
    lab = np.zeros(60, dtype=int)
    lab[20:25] = 1
    flags = np.zeros(60, dtype=bool)
    flags[22:27] = True
    flags[50] = True
    val_d, val_s = _scored("eks-a", 60, "2026-01-01", flags, lab)
    test_d, test_s = _scored("eks-a", 60, "2026-01-01 05:00", flags, lab)
    metrics = {name: evaluate_flags(d, s["is_anomaly"].to_numpy())
               for name, d, s in (("validation", val_d, val_s), ("test", test_d, test_s))}
    mpath, hpath = write_report(tmp_path, metrics=metrics,
                                scores={"validation": val_s, "test": test_s},
                                data=pd.concat([val_d, test_d], ignore_index=True),
                                metric_names=["cpu"], info={"model": "m"})
    loaded = json.loads(mpath.read_text())
    for split in ("validation", "test"):
        for key in ("f1", "precision", "recall", "fpr", "event_recall", "event_precision",
                    "mean_detection_delay_steps", "confusion_matrix", "per_type_recall"):
            assert key in loaded[split]
    assert loaded["test"]["confusion_matrix"] == [[52, 3], [2, 3]]
    page = hpath.read_text()
    # self-contained: no scripts, stylesheets or images fetched from anywhere
    assert not re.search(r"<script[^>]*src=|<link[^>]*href=|<img[^>]*src=|url\(", page)
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", page)
    assert page.count("<svg") >= 4  # series + score timeline per entity, PR curve per split
    assert "threshold 1.0" in page and "false alarm" in page and "missed anomaly" in page
    assert "Entity eks-a" in page and "spike" in page


def test_report_rejects_mismatched_rows() -> None:
    d, s = _scored("a", 10, "2026-01-01", np.zeros(10, dtype=bool), np.zeros(10, dtype=int))
    with pytest.raises(DataError, match="9 data rows"):
        render_html(title="x", metrics={}, scores={"test": s}, data=d.iloc[:9],
                    metric_names=["cpu"])
