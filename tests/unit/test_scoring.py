"""aws_anomaly.scoring.score_table: the arrays of a batch score as the table score returns."""

from __future__ import annotations

import numpy as np
import pandas as pd

from aws_anomaly.data import Dataset
from aws_anomaly.scoring import score_table


def test_score_table_names_the_top_metric_only_where_a_row_is_explained() -> None:
    ts = pd.date_range("2026-01-01", periods=3, freq="5min", tz="UTC")
    ds = Dataset.from_frame(pd.DataFrame({"timestamp": ts, "cpu": [1.0, 2.0, 3.0],
                                          "mem": [1.0, 1.5, 1.0]}))
    contrib = np.array([[0.0, 0.0], [0.25, 0.75], [1.0, 0.0]])
    band = tuple(np.full((3, 2), v) for v in (1.0, 0.5, 1.5))
    out = score_table(ds, ("cpu", "mem"), (np.array([0.2, 1.5, 3.0]),
                                           np.array([False, True, True]), contrib,
                                           np.array([False, True, True]), band))
    assert out.columns.tolist() == [
        "timestamp", "entity", "anomaly_score", "is_anomaly", "top_metric", "contrib_cpu",
        "contrib_mem", "ready", "expected_cpu", "lower_cpu", "upper_cpu", "expected_mem",
        "lower_mem", "upper_mem"]
    assert out["top_metric"].tolist() == ["", "mem", "cpu"]
    assert out["timestamp"].tolist() == list(ts) and set(out["entity"]) == {"default"}
    assert out["contrib_mem"].tolist() == [0.0, 0.75, 0.0]
    assert out["upper_mem"].tolist() == [1.5] * 3
