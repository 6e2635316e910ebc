"""Deployment artifacts stay consistent with the code: the Grafana dashboard queries metrics
the exporter really exports, the Helm chart ships the generated alert rules, and the compose
settings file is a valid configuration."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import yaml

from aws_anomaly.alert_rules import render_rules
from aws_anomaly.config import load_settings
from aws_anomaly.service.exporter import Exporter

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _exported_names() -> set[str]:
    exp = Exporter()
    exp.register_job("j")
    exp.set_model("m", detector="d", version="v", trained_at="t")
    exp.observe_fetch("j", 0.1)
    exp.observe_scoring("j", 0.1)
    exp.record_success("j")
    exp.on_scores("j", pd.DataFrame({"timestamp": [pd.Timestamp("2026-01-01", tz="UTC")],
                                     "entity": ["e"], "anomaly_score": [0.1],
                                     "is_anomaly": [False], "contrib_x": [1.0]}), model="m")
    exp.on_alert_states("j", {"e": False}, model="m", severity="warning")  # as the runner does
    text = exp.render().decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines()
            if line and not line.startswith("#")}


def test_grafana_dashboard_queries_exported_metrics() -> None:
    dash = json.loads((DEPLOY / "grafana" / "aws-anomaly-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in dash["templating"]["list"] if "definition" in v]
    used = {m for e in exprs for m in re.findall(r"aws_anomaly_[a-z_]+", e)}
    assert used, "the dashboard queries no aws_anomaly metric"
    missing = used - _exported_names()
    assert not missing, f"dashboard queries metrics the exporter does not export: {missing}"


def test_rules_queries_exported_metrics() -> None:
    used = set(re.findall(r"aws_anomaly_[a-z_]+", render_rules()))
    assert used - _exported_names() == set()


def test_helm_chart_ships_the_generated_rules() -> None:
    chart_rules = DEPLOY / "helm" / "aws-anomaly" / "files" / "aws-anomaly-rules.yml"
    assert chart_rules.read_text() == render_rules()


def test_compose_mounts_existing_files_and_settings_are_valid() -> None:
    compose_dir = DEPLOY / "compose"
    compose = yaml.safe_load((compose_dir / "docker-compose.yml").read_text())
    for svc in compose["services"].values():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("."):
                assert (compose_dir / src).exists(), f"compose mounts missing {src}"
    settings = load_settings(compose_dir / "settings.yaml", environ={"AWS_ANOMALY_TOKEN": "x"})
    assert settings.service.host == "0.0.0.0"
    assert settings.service.resolved_token({"AWS_ANOMALY_TOKEN": "s3cret"}) == "s3cret"
    assert [j.name for j in settings.jobs] == ["demo"]
