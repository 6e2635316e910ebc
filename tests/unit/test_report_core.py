"""The HTML report is self-contained and shows what it claims; metrics.json is strict JSON.

Checked: n/a where a figure is undefined (F1 on a split without anomalies), PR and ROC areas
(the same numbers as scikit-learn), the threshold and how it was chosen, row counts, alerts per
day, per-type and per-entity tables, series in their own units with the expected band, the
detector-selection table, and the label-free report (no PR/ROC; flagged periods and alerts per
day). The charts themselves are drawn in Chromium by tests/integration/test_dashboard.py.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from aws_anomaly.errors import DataError
from aws_anomaly.evaluation.metrics import evaluate_flags
from aws_anomaly.evaluation.report import (
    flag_summary,
    render_html,
    threshold_description,
    write_report,
)


def _scored(entity: str, n: int, start: str, flags: np.ndarray, labels: np.ndarray | None,
            band: bool = False):
    ts = pd.date_range(start, periods=n, freq="5min", tz="UTC")
    cpu = 40 + 10 * np.sin(np.arange(n) / 5)  # percent, not 0..1
    data = pd.DataFrame({"timestamp": ts, "entity": entity, "cpu": cpu})
    if labels is not None:
        data["is_anomaly"] = labels.astype(np.int8)
        data["anomaly_type"] = np.where(labels == 1, "spike", "")
    rng = np.random.default_rng(n)
    score = np.where(flags, 1.5, 0.3) + rng.uniform(-0.2, 0.2, n)
    scores = pd.DataFrame({"timestamp": ts, "entity": entity, "anomaly_score": score,
                           "is_anomaly": flags, "top_metric": np.where(flags, "cpu", ""),
                           "contrib_cpu": flags.astype(float), "ready": True})
    if band:
        expected = np.full(n, 40.0)
        expected[:3] = np.nan  # no history yet
        scores["expected_cpu"], scores["lower_cpu"], scores["upper_cpu"] = (
            expected, expected - 12.0, expected + 12.0)
    return data, scores


def _blob(page: str) -> dict:
    m = re.search(r"<script type='application/json' id='report-data'>(.*?)</script>", page,
                  re.S)
    assert m, "no data block"
    return json.loads(m.group(1).replace("<\\/", "</"))


def _row(page: str, section: str, label: str) -> str:
    """The value cell next to ``label`` in the section with id ``section``."""
    part = page[page.index(f"id='{section}'"):]
    part = part[:part.index("</section>")]
    m = re.search(rf"<th>{re.escape(label)}</th><td>([^<]*)</td>", part)
    assert m, f"{label!r} not in {section}"
    return m.group(1)


@pytest.fixture()
def labelled(tmp_path):
    # validation: no anomalies at all (F1 undefined), two false alarms on day 1
    val_lab = np.zeros(300, dtype=int)
    val_flags = np.zeros(300, dtype=bool)
    val_flags[[50, 51, 200]] = True
    # test: one labelled event, partly detected, one false alarm
    test_lab = np.zeros(300, dtype=int)
    test_lab[100:110] = 1
    test_flags = np.zeros(300, dtype=bool)
    test_flags[104:112] = True
    test_flags[250] = True
    val_d, val_s = _scored("eks-a", 300, "2026-01-01", val_flags, val_lab, band=True)
    test_d, test_s = _scored("eks-a", 300, "2026-01-02 01:00", test_flags, test_lab, band=True)
    metrics = {}
    for name, d, s in (("validation", val_d, val_s), ("test", test_d, test_s)):
        m = flag_summary(s, "5min")
        m.update(evaluate_flags(d, s["is_anomaly"].to_numpy()))
        metrics[name] = m
    mpath, hpath = write_report(tmp_path, metrics=metrics,
                                scores={"validation": val_s, "test": test_s},
                                data=pd.concat([val_d, test_d], ignore_index=True),
                                metric_names=["cpu"], info={"model": "m"})
    return mpath, hpath, metrics, test_s, test_lab


def test_report_is_self_contained_and_strict_json(labelled) -> None:
    mpath, hpath, _, _, _ = labelled
    loaded = json.loads(mpath.read_text())
    for split in ("validation", "test"):
        for key in ("f1", "precision", "recall", "fpr", "event_recall", "event_precision",
                    "mean_detection_delay_steps", "confusion_matrix", "per_type_recall"):
            assert key in loaded[split]
    assert loaded["test"]["confusion_matrix"] == [[287, 3], [4, 6]]
    page = hpath.read_text()
    # nothing fetched from anywhere: no script/stylesheet/image sources, no address at all
    assert not re.search(r"<script[^>]*src=|<link[^>]*href=|<img[^>]*src=|url\(", page)
    assert not re.search(r"https?://", page)
    # uPlot and the shared chart code are inlined
    assert "uPlot 1.6.32" in page and "var uPlot=function" in page
    assert "const AnomalyCharts" in page


def test_na_where_undefined_and_areas(labelled) -> None:
    _, hpath, metrics, test_s, test_lab = labelled
    page = hpath.read_text()
    # validation has no anomalies: F1 and recall are n/a (0.0 in metrics.json), and so are the
    # curves and their areas; precision is defined (0 of 3 flags right)
    assert metrics["validation"]["f1"] == 0.0
    assert _row(page, "split-validation", "F1") == "n/a"
    assert _row(page, "split-validation", "recall") == "n/a"
    assert _row(page, "split-validation", "precision") == "0.000"
    assert _row(page, "split-validation", "ROC AUC") == "n/a"
    assert _row(page, "split-validation", "PR AUC (average precision)") == "n/a"
    # test: real numbers, the areas as scikit-learn computes them
    assert _row(page, "split-test", "F1") == f"{metrics['test']['f1']:.3f}" != "n/a"
    y, s = test_lab == 1, test_s["anomaly_score"].to_numpy()
    assert _row(page, "split-test", "ROC AUC") == f"{roc_auc_score(y, s):.3f}"
    assert _row(page, "split-test", "PR AUC (average precision)") == \
        f"{average_precision_score(y, s):.3f}"
    blob = _blob(page)
    assert set(blob["curves"]) == {"test"}
    roc = blob["curves"]["test"]["roc"]
    assert roc["x"][0] == 0.0 and roc["x"][-1] == 1.0 and "AUC" in roc["title"]
    assert blob["curves"]["test"]["pr"]["point"] == [
        pytest.approx(metrics["test"]["recall"]), pytest.approx(metrics["test"]["precision"])]
    assert page.count("class='curve'") == 2


def test_rows_alerts_per_day_types_and_entities(labelled) -> None:
    _, hpath, metrics, _, _ = labelled
    page = hpath.read_text()
    rows = page[page.index("id='rows'"):]
    assert "<th>validation</th><td>300</td><td>300</td><td>0</td><td>1</td><td>300</td><td>0</td>" \
        in rows
    assert "<th>test</th><td>300</td><td>300</td><td>0</td><td>1</td><td>300</td><td>10</td>" \
        in rows
    # alerts per day: validation flagged periods at rows 50-51 and 200 (two on 2026-01-01)
    val = page[page.index("id='split-validation'"):page.index("id='split-test'")]
    table = val[val.index("class='alerts-per-day'"):]
    assert "<tr><td>2026-01-01</td><td>2</td><td>1</td><td>2.00</td></tr>" in table
    assert "<tr><td>2026-01-02</td><td>0</td><td>1</td><td>0.00</td></tr>" in table
    assert _row(page, "split-validation", "alerts per day (per entity)") == \
        f"{metrics['validation']['alerts_per_day']:.3f}"
    test = page[page.index("id='split-test'"):]
    assert "class='per-type'" in test and "<th>spike</th><td>1.000</td>" in test
    per_entity = test[test.index("class='per-entity'"):]
    assert "<td>eks-a</td><td>300</td><td>9</td><td>2</td>" in per_entity
    # the chart legend names what the shading means
    assert "false alarm" in page and "missed anomaly" in page and "detected anomaly" in page
    assert "Entity eks-a" in page


def test_series_in_their_own_units_with_the_band(labelled) -> None:
    _, hpath, _, _, _ = labelled
    blob = _blob(hpath.read_text())
    (ent,) = blob["entities"]
    cpu = ent["metrics"]["cpu"]
    assert len(ent["x"]) == 600 and not ent["thinned"]
    # raw values (percent around 40), not min-max scaled into 0..1
    want = 40 + 10 * np.sin(np.arange(300) / 5)
    np.testing.assert_allclose(cpu["values"][:300], want, rtol=1e-5)
    assert max(cpu["values"]) > 49
    # the band: NaN before it has history -> null, then expected +- 12
    assert cpu["expected"][:3] == [None] * 3 and cpu["expected"][3] == 40.0
    assert cpu["lower"][3] == 28.0 and cpu["upper"][3] == 52.0
    kinds = {s["label"] for s in ent["spans"]}
    assert {"detected anomaly", "false alarm", "missed anomaly", "validation | test"} <= kinds
    assert ent["x"][1] - ent["x"][0] == 300.0  # seconds


def test_report_without_labels(tmp_path) -> None:
    flags = np.zeros(600, dtype=bool)
    flags[[10, 11, 400]] = True
    d, s = _scored("eks-b", 600, "2026-02-01", flags, None)
    m = {"test": flag_summary(s, "5min")}
    _, hpath = write_report(tmp_path, metrics=m, scores={"test": s}, data=d,
                            metric_names=["cpu"], info={"threshold": "pot:0.001 (extreme-value)"})
    page = hpath.read_text()
    assert "no labels: what the model flagged" in page
    assert "ROC AUC" not in page and "class='curve'" not in page and "F1" not in page
    assert _blob(page)["curves"] == {}
    assert "flagged (no labels)" in page
    assert _row(page, "split-test", "flagged periods") == "2"
    table = page[page.index("class='alerts-per-day'"):]
    assert "<tr><td>2026-02-01</td><td>1</td><td>1</td><td>1.00</td></tr>" in table
    assert "<tr><td>2026-02-02</td><td>1</td><td>1</td><td>1.00</td></tr>" in table
    assert "<th>start (UTC)</th>" in page and "2026-02-01 00:50 UTC" in page  # the period
    # without a model, the threshold line says what the caller passed
    assert _row(page, "threshold", "how it was chosen") == "pot:0.001 (extreme-value)"
    assert "anomaly_score &gt;= 1.0" in _row(page, "threshold", "threshold")


def test_threshold_and_selection_from_a_fitted_model(tmp_path) -> None:
    from aws_anomaly.data.generator import generate_demo
    from aws_anomaly.model import AnomalyModel

    ds, _ = generate_demo(clusters=1, days=3, seed=0)
    model = AnomalyModel("knn", calibration="fpr:0.01").fit(ds)
    model.metadata = {"selection": {
        "method": "rolling-origin validation folds", "chosen": "knn", "reason": "best objective",
        "table": [{"candidate": "knn", "mean_f1": 0.61, "std_f1": 0.05, "mean_fpr": 0.004,
                   "mean_event_recall": 0.8, "objective": 0.585, "folds_f1": [0.6, 0.62],
                   "error": None},
                  {"candidate": "lof", "error": "too few rows"}]}}
    desc = threshold_description(model)
    assert desc["raw_threshold"] == pytest.approx(float(model.calibrator_.threshold_))
    assert desc["calibrated_on"] == model.training_summary_["calibrated_on"]
    scores = model.score(ds)
    m = {"test": {**flag_summary(scores, ds.step), **evaluate_flags(
        ds.frame, scores["is_anomaly"].to_numpy())}}
    page = render_html(title="t", metrics=m, scores={"test": scores}, data=ds.frame,
                       metric_names=list(ds.metrics), model=model)
    assert _row(page, "threshold", "how it was chosen") == (
        "at most 1 % of the validation points above it (target false-positive rate)")
    assert _row(page, "threshold", "raw detector score at 1.0").startswith(
        f"{model.calibrator_.threshold_:.6g} (knn)")
    sel = page[page.index("id='selection'"):]
    assert "chosen: <b>knn</b> — best objective" in sel
    assert ("<tr class='chosen'><td>knn</td><td>0.610</td><td>0.050</td><td>0.0040</td>"
            "<td>0.800</td><td>0.585</td><td>0.600, 0.620</td></tr>") in sel
    assert "<td>lof</td><td colspan='6'>failed: too few rows</td>" in sel
    # a model that gives its expected band gets it drawn for every metric
    if all(f"expected_{x}" in scores.columns for x in ds.metrics):
        metrics = _blob(page)["entities"][0]["metrics"]
        assert all("upper" in metrics[x] for x in ds.metrics)


def test_long_series_are_thinned_keeping_every_peak(tmp_path) -> None:
    n = 20_000
    flags = np.zeros(n, dtype=bool)
    flags[[7, 12_345, 19_999]] = True
    d, s = _scored("big", n, "2026-01-01", flags, None)
    page = render_html(title="t", metrics={"test": flag_summary(s, "5min")},
                       scores={"test": s}, data=d, metric_names=["cpu"])
    ent = _blob(page)["entities"][0]
    assert ent["thinned"] and len(ent["x"]) <= 4000 and ent["rows"] == n
    assert sum(v >= 1.0 for v in ent["score"]) == 3  # each flagged point's bucket shows it
    assert "Drawn: " in page


def test_report_rejects_mismatched_rows_and_unknown_metrics() -> None:
    d, s = _scored("a", 10, "2026-01-01", np.zeros(10, dtype=bool), np.zeros(10, dtype=int))
    with pytest.raises(DataError, match="9 data rows"):
        render_html(title="x", metrics={}, scores={"test": s}, data=d.iloc[:9],
                    metric_names=["cpu"])
    with pytest.raises(DataError, match=r"no column\(s\) \['mem'\]"):
        render_html(title="x", metrics={}, scores={"test": s}, data=d, metric_names=["mem"])
    with pytest.raises(DataError, match="no scored splits"):
        render_html(title="x", metrics={}, scores={}, data=d, metric_names=["cpu"])
