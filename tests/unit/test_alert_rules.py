"""Alert rules: the committed file is what the generator writes, and promtool accepts and
unit-tests it (each alert fires and resolves as intended; a one-point blip never pages; the
anomaly alert carries the Alertmanager notifier's labels)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from aws_anomaly.alert_rules import ALERT_LABELS, RuleOptions, build_rules, render_rules
from aws_anomaly.errors import ConfigError

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed (apt-get install prometheus); make test does it")
    return path


def test_committed_rules_match_the_generator() -> None:
    assert (DEPLOY / "aws-anomaly-rules.yml").read_text() == render_rules()


def test_promtool_checks_and_unit_tests_pass() -> None:
    tool = _promtool()
    check = subprocess.run([tool, "check", "rules", str(DEPLOY / "aws-anomaly-rules.yml")],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run([tool, "test", "rules", str(DEPLOY / "aws-anomaly-rules.test.yml")],
                          capture_output=True, text=True)
    assert test.returncode == 0, test.stdout + test.stderr
    assert "SUCCESS" in test.stdout


def _promtool_cases_with(rules_text: str, tmp_path: Path) -> subprocess.CompletedProcess:
    shutil.copy(DEPLOY / "aws-anomaly-rules.test.yml", tmp_path)
    (tmp_path / "aws-anomaly-rules.yml").write_text(rules_text)
    return subprocess.run([_promtool(), "test", "rules",
                           str(tmp_path / "aws-anomaly-rules.test.yml")],
                          capture_output=True, text=True)


def test_unit_tests_catch_the_old_point_rule(tmp_path: Path) -> None:
    # The rule this replaced alerted on the latest point (aws_anomaly_is_anomalous) held for
    # `for: 2m`: one 5-minute point holds the gauge longer than that, so eks-b's blip paged.
    rules = build_rules()
    rules["groups"][0]["rules"][0].update(expr="aws_anomaly_is_anomalous == 1", **{"for": "2m"})
    test = _promtool_cases_with(yaml.safe_dump(rules, sort_keys=False), tmp_path)
    out = test.stdout + test.stderr
    assert test.returncode != 0 and "time: 7m" in out and "eks-b" in out, out


def test_unit_tests_catch_labels_the_notifier_does_not_send(tmp_path: Path) -> None:
    # Without the `max by`, the scrape labels (instance, exported_job) stay on the alert and
    # the two replicas give two alerts: Alertmanager would not deduplicate them with the
    # notifier's alert.
    rules = build_rules()
    rules["groups"][0]["rules"][0]["expr"] = "aws_anomaly_alert_active == 1"
    test = _promtool_cases_with(yaml.safe_dump(rules, sort_keys=False), tmp_path)
    out = test.stdout + test.stderr
    assert test.returncode != 0 and "instance" in out, out


def test_anomaly_alert_labels_are_the_alertmanager_notifiers() -> None:
    """The rule path and the direct path give Alertmanager the same label set."""
    from datetime import UTC, datetime

    from aws_anomaly.service.notifiers import Alert, AlertmanagerNotifier

    rule = build_rules()["groups"][0]["rules"][0]
    assert rule["alert"] == "AwsAnomalyDetected" and "labels" not in rule
    assert f"max by ({', '.join(ALERT_LABELS)})" in rule["expr"]
    alert = Alert("e1", "demo", "demo", "eks-a", 1.4, datetime(2026, 1, 1, tzinfo=UTC),
                  severity="critical")
    (sent,) = AlertmanagerNotifier("http://127.0.0.1:9093").payload([alert])
    assert set(sent["labels"]) == {"alertname", *ALERT_LABELS}
    assert sent["labels"]["alertname"] == rule["alert"]


@pytest.mark.parametrize("opts", [RuleOptions(evaluation_interval="30s", job_interval="5m",
                                              stale_intervals=4),
                                  RuleOptions(dashboard_url="https://anomaly.example.org/")])
def test_generated_variants_are_valid(opts: RuleOptions, tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(render_rules(opts))
    check = subprocess.run([_promtool(), "check", "rules", str(path)], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout
    rules = {r["alert"]: r for r in yaml.safe_load(path.read_text())["groups"][0]["rules"]}
    # The service decides when an anomaly alerts: the rule adds no delay of its own.
    assert rules["AwsAnomalyDetected"]["for"] == "0s"
    assert rules["AwsAnomalyDetectorErroring"]["for"] == opts.evaluation_interval
    assert rules["AwsAnomalyDetected"]["annotations"]["dashboard"].startswith(
        opts.dashboard_url.rstrip("/") + "/?entity=")


def test_stale_threshold_follows_job_interval() -> None:
    rules = build_rules(RuleOptions(job_interval="5m", stale_intervals=3))["groups"][0]["rules"]
    assert rules[1]["expr"].endswith("> 900")


@pytest.mark.parametrize(("kwargs", "msg"), [
    ({"stale_intervals": 0}, "stale_intervals must be >= 1"),
    ({"dashboard_url": "anomaly.example.org"}, "dashboard_url 'anomaly.example.org' must"),
    ({"evaluation_interval": "5 minutes"}, "evaluation_interval '5 minutes' is not a"),
])
def test_bad_options_are_clear_errors(kwargs: dict, msg: str) -> None:
    with pytest.raises(ConfigError, match=msg):
        RuleOptions(**kwargs)


def test_rules_command_writes_valid_rules(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from aws_anomaly.cli import main

    out = tmp_path / "sub" / "rules.yml"
    assert main(["rules", "--out", str(out), "--job-interval", "5m",
                 "--stale-intervals", "2"]) == 0
    check = subprocess.run([_promtool(), "check", "rules", str(out)], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout
    assert "> 600" in out.read_text()
    assert main(["rules", "--out", str(out), "--stale-intervals", "0"]) == 2
    assert "error: stale_intervals must be >= 1, got 0" in capsys.readouterr().err
