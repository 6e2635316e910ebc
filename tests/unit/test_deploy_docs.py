"""The examples in docs/deploy.md work as written: the Helm values render with the chart into
the settings they promise, and the Alertmanager route passes `amtool check-config` and sends
the service's anomaly alerts to the receiver it names."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from aws_anomaly.service.notifiers import Alert, AlertmanagerNotifier
from tests.unit.test_deploy_helm import pod_spec, render, settings_of

DOC = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"


def block(start: str) -> str:
    """The ```yaml block of docs/deploy.md whose first line (dedented) starts with ``start``."""
    found = [textwrap.dedent(b) for b in re.findall(r"```yaml\n(.*?)```", DOC.read_text(),
                                                     flags=re.S)]
    (text,) = [b for b in found if b.startswith(start)]
    return text


def test_amp_values_render_sigv4_and_the_role(tmp_path: Path) -> None:
    values = yaml.safe_load(block("# values-amp.yaml"))
    docs = render(values)
    src = settings_of(docs, tmp_path).jobs[0].source
    assert src.url == "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-0123"
    assert (src.auth.type, src.auth.region) == ("sigv4", "eu-west-1")
    assert "prod-eu-1" in src.queries["cluster_pod_ratio"]
    (sa,) = [d for d in docs if d["kind"] == "ServiceAccount"]
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(
        ":role/aws-anomaly")
    assert pod_spec(docs)["serviceAccountName"] == sa["metadata"]["name"]


def test_webhook_values_render_a_notifier_and_its_secret(tmp_path: Path) -> None:
    docs = render(yaml.safe_load(block("notifiers:")))
    job = settings_of(docs, tmp_path).jobs[0]
    (hook,) = [n for n in job.notifiers if n.type == "webhook"]
    assert hook.resolved_headers({"HOOK_TOKEN": "t"}) == {"X-Token": "t"}
    env = pod_spec(docs)["containers"][0]["env"]
    assert env[0]["name"] == "HOOK_TOKEN"


def _amtool() -> str:
    found = shutil.which("amtool")
    if found:
        return found
    msg = "amtool is not installed (apt-get install prometheus-alertmanager)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg)
    pytest.skip(msg)


def test_alertmanager_route_is_valid_and_routes_anomalies(tmp_path: Path) -> None:
    amtool = _amtool()
    cfg = tmp_path / "alertmanager.yml"
    cfg.write_text(block("route:"))
    check = subprocess.run([amtool, "check-config", str(cfg)], capture_output=True, text=True,
                           timeout=60, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    # the labels the service sends (AlertmanagerNotifier.payload) reach the platform receiver
    alert = Alert("e1", "eks", "m1", "prod-eu-1", 1.4, datetime(2026, 1, 1, tzinfo=UTC))
    labels = AlertmanagerNotifier("http://127.0.0.1:9093").payload([alert])[0]["labels"]
    args = [f"{k}={v}" for k, v in labels.items()]
    routed = subprocess.run([amtool, "config", "routes", "test", f"--config.file={cfg}", *args],
                            capture_output=True, text=True, timeout=60, check=False)
    assert routed.returncode == 0, routed.stderr
    assert routed.stdout.split() == ["platform"]
    other = subprocess.run([amtool, "config", "routes", "test", f"--config.file={cfg}",
                            "alertname=KubePodCrashLooping"], capture_output=True, text=True,
                           timeout=60, check=False)
    assert other.stdout.split() == ["default"]
