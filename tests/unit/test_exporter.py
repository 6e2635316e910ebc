"""The Prometheus exporter: values, escaping, cardinality bound, expiry."""

from __future__ import annotations

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aws_anomaly.service.exporter import Exporter


def _samples(exp: Exporter, name: str) -> dict[tuple, float]:
    out = {}
    for fam in text_string_to_metric_families(exp.render().decode()):
        for s in fam.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def _scores(entity: str, values: list[float], *, ready: bool = True) -> pd.DataFrame:
    ts = pd.date_range("2026-03-01", periods=len(values), freq="5min", tz="UTC")
    return pd.DataFrame({"timestamp": ts, "entity": entity, "anomaly_score": values,
                         "is_anomaly": [v >= 1 for v in values], "ready": ready,
                         "contrib_cpu": 0.75, "contrib_mem": 0.25})


def test_latest_point_per_entity_is_exported() -> None:
    exp = Exporter()
    exp.on_scores("demo", pd.concat([_scores("a", [0.2, 1.5]), _scores("b", [1.2, 0.3])]),
                  model="m1")
    score = _samples(exp, "aws_anomaly_score")
    assert score[(("entity", "a"), ("model", "m1"))] == 1.5
    assert score[(("entity", "b"), ("model", "m1"))] == 0.3
    flag = _samples(exp, "aws_anomaly_is_anomalous")
    assert flag[(("entity", "a"), ("model", "m1"))] == 1.0
    assert flag[(("entity", "b"), ("model", "m1"))] == 0.0
    contrib = _samples(exp, "aws_anomaly_metric_contribution")
    assert contrib[(("entity", "a"), ("metric", "cpu"), ("model", "m1"))] == 0.75
    assert _samples(exp, "aws_anomaly_points_scored_total")[(("job", "demo"),)] == 4
    assert _samples(exp, "aws_anomaly_anomalous_points_total")[(("job", "demo"),)] == 2


def test_warm_up_rows_are_not_exported() -> None:
    exp = Exporter()
    exp.on_scores("demo", _scores("a", [5.0], ready=False), model="m1")
    assert _samples(exp, "aws_anomaly_score") == {}


def test_label_values_are_escaped() -> None:
    exp = Exporter()
    nasty = 'eks "prod"\\eu\nwest'
    exp.on_scores("demo", _scores(nasty, [1.1]), model="m1")
    score = _samples(exp, "aws_anomaly_score")
    assert score == {(("entity", nasty), ("model", "m1")): 1.1}


def test_cardinality_is_bounded() -> None:
    exp = Exporter(max_entities=2)
    for e in ("a", "b", "c"):
        exp.on_scores("demo", _scores(e, [0.1]), model="m1")
    assert {k[0][1] for k in _samples(exp, "aws_anomaly_score")} == {"a", "b"}
    assert _samples(exp, "aws_anomaly_dropped_entities_total")[(("model", "m1"),)] == 1


def test_vanished_entities_expire() -> None:
    now = [1000.0]
    exp = Exporter(stale_after_s=300, clock=lambda: now[0])
    exp.on_scores("demo", _scores("a", [0.1]), model="m1")
    now[0] += 200
    exp.on_scores("demo", _scores("b", [0.1]), model="m1")
    now[0] += 200
    assert exp.expire() == [("m1", "a")]
    assert {k[0][1] for k in _samples(exp, "aws_anomaly_score")} == {"b"}
    assert not any(k[0][1] == "a" for k in _samples(exp, "aws_anomaly_metric_contribution"))


def test_self_monitoring_series() -> None:
    exp = Exporter(clock=lambda: 1234.0)
    exp.register_job("demo")
    errors = _samples(exp, "aws_anomaly_errors_total")
    assert errors[(("job", "demo"), ("stage", "fetch"))] == 0
    exp.record_error("demo", "fetch")
    exp.observe_fetch("demo", 0.02)
    exp.observe_scoring("demo", 0.01)
    exp.record_success("demo")
    assert _samples(exp, "aws_anomaly_errors_total")[(("job", "demo"), ("stage", "fetch"))] == 1
    assert _samples(exp, "aws_anomaly_fetch_duration_seconds_count")[(("job", "demo"),)] == 1
    assert _samples(exp, "aws_anomaly_last_success_timestamp_seconds")[(("job", "demo"),)] == 1234
    with pytest.raises(ValueError, match="unknown stage 'fetchh'"):
        exp.record_error("demo", "fetchh")


def test_model_info_replaced_on_reload() -> None:
    exp = Exporter()
    exp.set_model("m1", detector="ocsvm", version="0.1.0", trained_at="2026-01-01")
    exp.set_model("m1", detector="ocsvm", version="0.1.0", trained_at="2026-02-01")
    info = _samples(exp, "aws_anomaly_model_info")
    assert len(info) == 1 and ("trained_at", "2026-02-01") in next(iter(info))


def test_registries_are_independent() -> None:
    a, b = Exporter(), Exporter()
    a.on_scores("demo", _scores("x", [0.5]), model="m1")
    assert _samples(b, "aws_anomaly_score") == {}


def test_alert_state_is_published_with_the_notifiers_labels() -> None:
    exp = Exporter()
    exp.on_scores("demo", pd.concat([_scores("a", [1.5]), _scores("b", [1.2])]), model="m1")
    exp.on_alert_states("demo", {"a": True, "b": False, "never-scored": True}, model="m1",
                        severity="warning")
    active = _samples(exp, "aws_anomaly_alert_active")
    key = (("entity", "a"), ("job", "demo"), ("model", "m1"), ("severity", "warning"))
    assert active == {key: 1.0, (("entity", "b"), ("job", "demo"), ("model", "m1"),
                                 ("severity", "warning")): 0.0}
    # The alert resolves: 0, same series. A new severity replaces the series, never adds one.
    exp.on_alert_states("demo", {"a": False}, model="m1", severity="warning")
    assert _samples(exp, "aws_anomaly_alert_active")[key] == 0.0
    exp.on_alert_states("demo", {"a": True}, model="m1", severity="critical")
    got = {k: v for k, v in _samples(exp, "aws_anomaly_alert_active").items()
           if ("entity", "a") in k}
    assert got == {(("entity", "a"), ("job", "demo"), ("model", "m1"),
                    ("severity", "critical")): 1.0}


def test_alert_state_expires_with_the_entity() -> None:
    now = [1000.0]
    exp = Exporter(stale_after_s=300, clock=lambda: now[0])
    exp.on_scores("demo", _scores("a", [1.5]), model="m1")
    exp.on_alert_states("demo", {"a": True}, model="m1", severity="warning")
    now[0] += 400
    assert exp.expire() == [("m1", "a")]
    assert _samples(exp, "aws_anomaly_alert_active") == {}


def test_expected_band_is_exported_next_to_the_value() -> None:
    now = [1000.0]
    exp = Exporter(stale_after_s=300, clock=lambda: now[0])
    s = _scores("a", [0.2, 1.5]).assign(
        value_cpu=[0.4, 0.9], expected_cpu=[0.41, 0.42], lower_cpu=[0.3, 0.31],
        upper_cpu=[0.52, 0.53], value_mem=[0.5, 0.5], expected_mem=float("nan"),
        lower_mem=float("nan"), upper_mem=float("nan"))
    exp.on_scores("demo", s, model="m1")
    key = (("entity", "a"), ("metric", "cpu"), ("model", "m1"))
    assert _samples(exp, "aws_anomaly_metric_value")[key] == 0.9
    assert _samples(exp, "aws_anomaly_expected_value")[key] == 0.42
    assert _samples(exp, "aws_anomaly_expected_lower")[key] == 0.31
    assert _samples(exp, "aws_anomaly_expected_upper")[key] == 0.53
    # a band not defined yet (no history) is absent, not NaN
    assert not any(k[1] == ("metric", "mem") for k in _samples(exp, "aws_anomaly_expected_value"))
    now[0] += 400
    exp.expire()
    for name in ("aws_anomaly_metric_value", "aws_anomaly_expected_value",
                 "aws_anomaly_expected_lower", "aws_anomaly_expected_upper"):
        assert _samples(exp, name) == {}
