"""The CLI's metrics table says n/a where a figure is undefined, as the report does."""

from __future__ import annotations

import pandas as pd

from aws_anomaly.cli.workflow import _print_table
from aws_anomaly.evaluation.metrics import evaluate_flags


def _metrics(labels: list[int], flags: list[int]) -> dict:
    ts = pd.date_range("2026-01-01", periods=len(labels), freq="5min", tz="UTC")
    frame = pd.DataFrame({"timestamp": ts, "entity": "a", "is_anomaly": labels})
    return evaluate_flags(frame, flags)


def test_a_part_without_anomalies_reads_na_not_zero() -> None:
    lines: list[str] = []
    _print_table({"validation": _metrics([0, 1, 1, 0, 0, 0], [0, 1, 1, 0, 0, 0]),
                  "test": _metrics([0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0])}, say=lines.append)
    row = {line.split()[0]: line.split()[1:] for line in lines if line.strip()}
    assert row["F1-Score"] == ["1.000", "n/a", "n/a"]
    assert row["Recall"] == ["1.000", "n/a", "n/a"]
    assert row["Precision"] == ["1.000", "0.000", "1.000"]  # defined: one false alarm
