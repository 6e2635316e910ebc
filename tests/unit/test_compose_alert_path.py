"""The compose stack turns on exactly one alert delivery path by default (the service's
Alertmanager notifier); the Prometheus rules are an overlay (issue 9)."""

from __future__ import annotations

from pathlib import Path

import yaml

from aws_anomaly.config import load_settings

COMPOSE = Path(__file__).resolve().parents[2] / "deploy" / "compose"


def _mounts(compose: dict, service: str) -> dict[str, str]:
    return {v.split(":")[1]: v.split(":")[0]
            for v in compose["services"][service].get("volumes", [])}


def test_default_stack_notifies_only_through_the_service() -> None:
    compose = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())
    mounts = _mounts(compose, "prometheus")
    prom = yaml.safe_load((COMPOSE / mounts["/etc/prometheus/prometheus.yml"]).read_text())
    assert "rule_files" not in prom and "alerting" not in prom
    assert not any("rules" in target for target in mounts)
    settings = load_settings(COMPOSE / "settings.yaml", environ={"AWS_ANOMALY_TOKEN": "x"})
    assert [n.type for j in settings.jobs for n in j.notifiers] == ["alertmanager"]


def test_rules_overlay_loads_the_shipped_rules() -> None:
    overlay = yaml.safe_load((COMPOSE / "docker-compose.rules.yml").read_text())
    mounts = _mounts(overlay, "prometheus")
    for src in mounts.values():
        assert (COMPOSE / src).exists(), src
    prom = yaml.safe_load((COMPOSE / mounts["/etc/prometheus/prometheus.yml"]).read_text())
    assert prom["rule_files"] == ["/etc/prometheus/rules/aws-anomaly-rules.yml"]
    assert (COMPOSE / mounts[prom["rule_files"][0]]).resolve() == (
        COMPOSE.parent / "prometheus" / "aws-anomaly-rules.yml").resolve()
    assert prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "alertmanager:9093"]
