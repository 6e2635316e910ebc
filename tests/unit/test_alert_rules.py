"""Alert rules: the committed file is what the generator writes, and promtool accepts and
unit-tests it (each alert fires and resolves as intended)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from aws_anomaly.alert_rules import RuleOptions, build_rules, parse_duration_s, render_rules
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


def test_unit_tests_catch_a_wrong_rule(tmp_path: Path) -> None:
    # Fewer consecutive evaluations make the alert fire one evaluation early: the cases fail.
    shutil.copy(DEPLOY / "aws-anomaly-rules.test.yml", tmp_path)
    (tmp_path / "aws-anomaly-rules.yml").write_text(render_rules(RuleOptions(consecutive=2)))
    test = subprocess.run([_promtool(), "test", "rules",
                           str(tmp_path / "aws-anomaly-rules.test.yml")],
                          capture_output=True, text=True)
    assert test.returncode != 0 and "time: 3m" in test.stdout + test.stderr


@pytest.mark.parametrize("opts", [RuleOptions(evaluation_interval="30s", consecutive=5,
                                              severity="critical", job_interval="5m"),
                                  RuleOptions(consecutive=1)])
def test_generated_variants_are_valid(opts: RuleOptions, tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(render_rules(opts))
    check = subprocess.run([_promtool(), "check", "rules", str(path)], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout
    rules = {r["alert"]: r for r in yaml.safe_load(path.read_text())["groups"][0]["rules"]}
    ev = parse_duration_s(opts.evaluation_interval)
    assert parse_duration_s(rules["AwsAnomalyDetected"]["for"] if opts.consecutive > 1
                            else "1s") == (ev * (opts.consecutive - 1) or 1)
    assert rules["AwsAnomalyDetected"]["labels"]["severity"] == opts.severity


def test_stale_threshold_follows_job_interval() -> None:
    rules = build_rules(RuleOptions(job_interval="5m", stale_intervals=3))["groups"][0]["rules"]
    assert rules[1]["expr"].endswith("> 900")


@pytest.mark.parametrize(("kwargs", "msg"), [
    ({"consecutive": 0}, "consecutive must be >= 1"),
    ({"severity": "loud"}, "severity 'loud' is not one of"),
    ({"evaluation_interval": "5 minutes"}, "evaluation_interval '5 minutes' is not a"),
])
def test_bad_options_are_clear_errors(kwargs: dict, msg: str) -> None:
    with pytest.raises(ConfigError, match=msg):
        RuleOptions(**kwargs)


def test_rules_command_writes_valid_rules(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from aws_anomaly.cli import main

    out = tmp_path / "sub" / "rules.yml"
    assert main(["rules", "--out", str(out), "--consecutive", "4", "--severity",
                 "critical"]) == 0
    check = subprocess.run([_promtool(), "check", "rules", str(out)], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout
    assert "severity: critical" in out.read_text()
    assert main(["rules", "--out", str(out), "--consecutive", "0"]) == 2
    assert "error: consecutive must be >= 1, got 0" in capsys.readouterr().err
