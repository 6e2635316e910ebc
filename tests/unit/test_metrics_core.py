"""Point and event metrics: the numbers an operator and the README report depend on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.errors import DataError
from aws_anomaly.evaluation.metrics import (
    evaluate_flags,
    event_metrics_arrays,
    point_metrics,
    pr_curve,
    runs,
)


def test_point_metrics_match_hand_counts_and_sklearn() -> None:
    from sklearn.metrics import f1_score, precision_score, recall_score

    rng = np.random.default_rng(3)
    t = rng.integers(0, 2, 200)
    p = rng.integers(0, 2, 200)
    m = point_metrics(t, p)
    assert m["precision"] == pytest.approx(precision_score(t, p))
    assert m["recall"] == pytest.approx(recall_score(t, p))
    assert m["f1"] == pytest.approx(f1_score(t, p))
    (tn, fp), (fn, tp) = m["confusion_matrix"]
    assert tn + fp + fn + tp == 200
    assert m["fpr"] == pytest.approx(fp / (fp + tn))


def test_point_metrics_no_positives_is_zero_not_nan() -> None:
    m = point_metrics([0, 0, 0], [0, 0, 0])
    assert m["precision"] == 0.0 and m["recall"] == 0.0 and m["f1"] == 0.0 and m["fpr"] == 0.0


def test_point_metrics_rejects_bad_labels_and_lengths() -> None:
    with pytest.raises(DataError, match="0/1"):
        point_metrics([0, 2], [0, 1])
    with pytest.raises(DataError, match="3 values"):
        point_metrics([0, 1, 1], [0, 1])


def test_runs() -> None:
    assert runs(np.array([1, 1, 0, 1], dtype=bool)) == [(0, 2), (3, 4)]
    assert runs(np.zeros(4, dtype=bool)) == []


def test_event_metrics_delay_and_false_events() -> None:
    #            event A (detected at +2)    event B (missed)  false run
    y = np.array([0, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0])
    p = np.array([0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0])
    ev = event_metrics_arrays(y, p)
    assert ev["n_events"] == 2
    assert ev["event_recall"] == 0.5
    # the flagged run 3..5 overlaps event A; 10..11 overlaps nothing
    assert ev["n_flagged_runs"] == 2 and ev["n_false_events"] == 1
    assert ev["event_precision"] == 0.5
    assert ev["mean_detection_delay_steps"] == 2.0


def _frame(entities: list[str], labels: list[list[int]], types: list[list[str]]) -> pd.DataFrame:
    parts = []
    for e, lab, typ in zip(entities, labels, types, strict=True):
        parts.append(pd.DataFrame({
            "timestamp": pd.date_range("2026-01-01", periods=len(lab), freq="5min", tz="UTC"),
            "entity": e, "is_anomaly": lab, "anomaly_type": typ}))
    return pd.concat(parts, ignore_index=True)


def test_events_do_not_merge_across_entities_and_per_type_recall() -> None:
    # entity a ends inside an event and entity b starts inside one: two events, not one
    f = _frame(["a", "b"], [[0, 0, 1, 1], [1, 1, 0, 0]],
               [["", "", "spike", "spike"], ["drift", "drift", "", ""]])
    flags = np.array([0, 0, 0, 1, 0, 0, 0, 0], dtype=bool)
    m = evaluate_flags(f, flags)
    assert m["n_events"] == 2
    assert m["event_recall"] == 0.5
    assert m["per_type_recall"] == {"drift": 0.0, "spike": 1.0}
    assert m["per_type_point_recall"] == {"drift": 0.0, "spike": 0.5}
    assert m["mean_detection_delay_steps"] == 1.0


def test_events_table_overrides_label_runs() -> None:
    f = _frame(["a"], [[0, 1, 1, 0, 1, 1, 0, 0]], [[""] + ["x"] * 7])
    ts = f["timestamp"]
    # one event spanning both labelled runs (e.g. a flapping incident)
    events = pd.DataFrame({"entity": ["a"], "start": [ts[1]], "end": [ts[5]],
                           "anomaly_type": ["incident"]})
    flags = np.array([0, 0, 0, 0, 1, 0, 0, 0], dtype=bool)
    m = evaluate_flags(f, flags, events=events)
    assert m["n_events"] == 1 and m["event_recall"] == 1.0
    assert m["mean_detection_delay_steps"] == 3.0
    assert m["per_type_recall"] == {"incident": 1.0}


def test_evaluate_flags_needs_labels() -> None:
    f = _frame(["a"], [[0, 1]], [["", "x"]]).drop(columns="is_anomaly")
    with pytest.raises(DataError, match="no 'is_anomaly'"):
        evaluate_flags(f, [0, 1])


def test_no_detection_gives_null_delay() -> None:
    assert event_metrics_arrays([0, 1, 0], [0, 0, 0])["mean_detection_delay_steps"] is None


def test_pr_curve_monotone_recall_and_endpoints() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    s = y + rng.normal(0, 0.8, 500)
    c = pr_curve(y, s)
    assert np.all(np.diff(c["recall"]) >= -1e-12)
    assert c["recall"][-1] == 1.0
    assert len(c["precision"]) <= 200
    with pytest.raises(DataError, match="NaN"):
        pr_curve([0, 1], [0.1, float("nan")])
