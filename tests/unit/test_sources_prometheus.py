"""Prometheus source details with httpx.MockTransport: chunk plan, auth headers, decoding."""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import numpy as np
import pandas as pd
import pytest
from moto import mock_aws

from aws_anomaly.config import PrometheusSourceConfig
from aws_anomaly.errors import SourceError
from aws_anomaly.sources.prometheus import PrometheusSource, SigV4HttpxAuth

T0 = pd.Timestamp("2026-03-01T00:00Z")
STEP = pd.Timedelta("5min")


class Recorder:
    """A fake API: answers each range query with value = seconds since T0 / 300."""

    def __init__(self, values: list[str] | None = None, status: list[int] | None = None) -> None:
        self.forms: list[dict[str, str]] = []
        self.headers: list[httpx.Headers] = []
        self.status = list(status or [])
        self.values = values

    def __call__(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        self.forms.append(form)
        self.headers.append(request.headers)
        if self.status:
            return httpx.Response(self.status.pop(0), text="busy")
        s, e = float(form["start"]), float(form["end"])
        times = np.arange(s, e + 1, 300.0)
        vals = self.values or [str((t - T0.timestamp()) / 300) for t in times]
        return httpx.Response(200, json={"status": "success", "data": {
            "resultType": "matrix", "result": [{"metric": {"cluster": "a"}, "values": [
                [t, v] for t, v in zip(times, vals, strict=False)]}]}})


def source(rec: Recorder, **kw: object) -> PrometheusSource:
    cfg = PrometheusSourceConfig.model_validate(
        {"url": "http://prom.test:9090", "queries": {"cpu": "cpu_by_cluster"}, **kw})
    return PrometheusSource(cfg, transport=httpx.MockTransport(rec), sleep=lambda s: None)


def test_chunks_cover_every_grid_point_once() -> None:
    rec = Recorder()
    src = source(rec, max_points_per_request=7)
    ds = src.fetch(T0, T0 + 30 * STEP)
    assert ds.values("a")[:, 0].tolist() == list(range(30))
    starts = [float(f["start"]) for f in rec.forms]
    ends = [float(f["end"]) for f in rec.forms]
    assert len(rec.forms) == 5  # 7 + 7 + 7 + 7 + 2 points
    assert all((e - s) / 300 + 1 <= 7 for s, e in zip(starts, ends, strict=True))
    assert all(b - a == 300 for a, b in zip(ends[:-1], starts[1:], strict=True))
    assert rec.forms[0]["step"] == "5m" and rec.forms[0]["query"] == "cpu_by_cluster"


def test_nan_values_become_gaps() -> None:
    rec = Recorder(values=["1", "NaN", "3", "4"])
    ds = source(rec).fetch(T0, T0 + 4 * STEP)
    assert ds.values("a")[:, 0].tolist() == [1.0, 1.0, 3.0, 4.0]


def test_basic_auth_and_extra_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROM_PW", "pa:ss")
    rec = Recorder()
    source(rec, auth={"type": "basic", "username": "reader", "password_env": "PROM_PW"},
           headers={"X-Scope-OrgID": "tenant-1"}).fetch(T0, T0 + STEP)
    h = rec.headers[0]
    assert h["Authorization"] == "Basic " + base64.b64encode(b"reader:pa:ss").decode()
    assert h["X-Scope-OrgID"] == "tenant-1"


def test_429_is_retried() -> None:
    rec = Recorder(status=[429])
    assert len(source(rec).fetch(T0, T0 + STEP)) == 1
    assert len(rec.forms) == 2


def test_non_json_answer_is_explained() -> None:
    def html(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>Grafana</html>")

    cfg = PrometheusSourceConfig(url="http://prom.test", queries={"cpu": "x"})
    with (PrometheusSource(cfg, transport=httpx.MockTransport(html)) as src,
          pytest.raises(SourceError, match=r"did not answer JSON \(is it a Prometheus API URL")):
        src.fetch(T0, T0 + STEP)


def test_configuration_problems(tmp_path: Path) -> None:
    cfg = PrometheusSourceConfig(url="http://p", queries={"cpu": "x"},
                                 tls={"ca_file": tmp_path / "nope.pem"})
    with pytest.raises(SourceError, match=r"TLS file .*nope\.pem does not exist"):
        PrometheusSource(cfg)
    with pytest.raises(SourceError, match=r"no query for metric\(s\) \['mem'\]"):
        PrometheusSource(PrometheusSourceConfig(url="http://p", queries={"cpu": "x"}),
                         metrics=["mem"])
    with (PrometheusSource(PrometheusSourceConfig(url="http://p", queries={"cpu": "x"})) as src,
          pytest.raises(SourceError, match="no 0 days 00:05:00 grid point")):
        src.fetch(T0 + pd.Timedelta("1min"), T0 + pd.Timedelta("2min"))


def test_sigv4_assumes_the_role_with_sts(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDBASE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "base-secret")
    with mock_aws():
        auth = SigV4HttpxAuth("us-east-2", role_arn="arn:aws:iam::123456789012:role/amp-reader")
        request = httpx.Request("POST", "https://aps-workspaces.us-east-2.amazonaws.com/"
                                "workspaces/ws-1/api/v1/query_range", data={"query": "up"})
        signed = next(auth.auth_flow(request))
    header = signed.headers["Authorization"]
    assert header.startswith("AWS4-HMAC-SHA256 Credential=")
    akid, _, region, service, _ = header.split("Credential=")[1].split(",")[0].split("/")
    assert akid != "AKIDBASE"  # the assumed role's temporary key, not the base one
    assert (region, service) == ("us-east-2", "aps")
    assert signed.headers["X-Amz-Security-Token"]  # temporary credentials carry a token
    assert "x-amz-security-token" in header.split("SignedHeaders=")[1]
