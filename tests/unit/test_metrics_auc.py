"""ROC/PR areas and the n/a rule of the report, checked against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from aws_anomaly.errors import DataError
from aws_anomaly.evaluation.metrics import (
    average_precision,
    evaluate_flags,
    point_metrics,
    roc_auc,
    roc_curve,
    undefined_metrics,
)


@pytest.mark.parametrize("seed", range(5))
def test_areas_match_sklearn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.random(400) < 0.1
    y[0], y[1] = True, False
    s = np.round(rng.normal(size=400) + 1.5 * y, 1)  # rounded: many ties
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    c = roc_curve(y, s, max_points=10_000)
    fpr, tpr, _ = sk_roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(c["fpr"], fpr)
    np.testing.assert_allclose(c["tpr"], tpr)
    # The trapezoid area under the drawn curve is the same AUC.
    trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz
    assert trapezoid(c["tpr"], c["fpr"]) == pytest.approx(roc_auc_score(y, s))


def test_thinned_roc_keeps_its_ends() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(5000) < 0.05
    c = roc_curve(y, rng.random(5000), max_points=50)
    assert len(c["fpr"]) <= 51
    assert (c["fpr"][0], c["tpr"][0]) == (0.0, 0.0) and (c["fpr"][-1], c["tpr"][-1]) == (1, 1)
    assert c["threshold"][0] is None  # above every score: nothing flagged


def test_undefined_areas_are_none_and_bad_scores_are_refused() -> None:
    assert roc_auc([0, 0, 0], [0.1, 0.2, 0.3]) is None
    assert roc_auc([1, 1], [0.1, 0.2]) is None
    assert average_precision([0, 0, 0], [0.1, 0.2, 0.3]) is None
    assert roc_auc([0, 1], [0.1, 0.9]) == 1.0 and average_precision([0, 1], [0.1, 0.9]) == 1.0
    with pytest.raises(DataError, match="NaN or infinite"):
        roc_auc([0, 1], [0.1, np.nan])
    with pytest.raises(DataError, match="3 scores for 2 labels"):
        average_precision([0, 1], [0.1, 0.2, 0.3])


def test_undefined_metrics_name_what_reads_na() -> None:
    import pandas as pd

    ts = pd.date_range("2026-01-01", periods=6, freq="5min", tz="UTC")
    frame = pd.DataFrame({"timestamp": ts, "entity": "a", "is_anomaly": 0})
    # No anomalies, one false alarm: recall, F1, event recall and the delay are undefined.
    m = evaluate_flags(frame, np.array([0, 1, 0, 0, 0, 0]))
    assert m["f1"] == 0.0  # the JSON keeps sklearn's zero_division=0 ...
    assert undefined_metrics(m) == {"recall", "f1", "event_recall",
                                    "mean_detection_delay_steps"}  # ... the report says n/a
    # Anomalies present, nothing flagged: precision and event precision undefined, F1 is 0.
    frame["is_anomaly"] = [0, 1, 1, 0, 0, 0]
    m = evaluate_flags(frame, np.zeros(6, dtype=int))
    assert undefined_metrics(m) == {"precision", "event_precision",
                                    "mean_detection_delay_steps"}
    assert "f1" not in undefined_metrics(m)
    assert undefined_metrics(point_metrics(np.array([1, 1]), np.array([1, 0]))) == {"fpr"}
