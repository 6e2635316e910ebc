"""The examples in docs/configuration.md load as they are written."""

from __future__ import annotations

import re
from pathlib import Path

from aws_anomaly.config import load_job, load_settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S)


def test_job_example_loads(tmp_path: Path) -> None:
    (job_text,) = [b for b in blocks() if b.startswith("name:")]
    p = tmp_path / "job.yaml"
    p.write_text(job_text)
    job = load_job(p, environ={})
    assert job.name == "eks-prod"
    assert job.source.type == "prometheus" and job.source.auth.type == "sigv4"
    assert len(job.metrics or ()) == 3
    assert [n.type for n in job.notifiers] == ["alertmanager", "webhook", "slack"]


def test_settings_example_loads(tmp_path: Path) -> None:
    (text,) = [b for b in blocks() if b.startswith("service:")]
    p = tmp_path / "settings.yaml"
    p.write_text(text)
    s = load_settings(p, environ={})
    assert [j.name for j in s.jobs] == ["demo", "eks-prod"]
    assert s.service.store_url(environ={"AWS_ANOMALY_DB_URL": "postgresql://x"}) == \
        "postgresql://x"


def test_cloudwatch_example_loads(tmp_path: Path) -> None:
    (text,) = [b for b in blocks() if "type: cloudwatch" in b]
    p = tmp_path / "job.yaml"
    p.write_text("name: cw\n" + text)
    job = load_job(p, environ={})
    assert job.metrics == ("cluster_cpu_request_ratio",)
