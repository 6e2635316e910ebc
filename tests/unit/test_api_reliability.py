"""Issue 10 through the HTTP API (FastAPI's TestClient, a real SQLite store): readiness that
sees failing writes (5), secrets kept out of answers (6), timestamps and numbers that are 422
naming the field, never 500 (7, with a hypothesis test), and the smaller items (9)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import event

from aws_anomaly.config import Settings
from aws_anomaly.errors import ConfigError
from aws_anomaly.model import AnomalyModel
from aws_anomaly.service.app import build_state, create_app
from aws_anomaly.sources.demo import DemoSource

T0 = pd.Timestamp("2026-03-01T00:00Z")
TOKEN = "reliability-token-0123456789"
METRICS = ("cluster_cpu_request_ratio", "cluster_mem_request_ratio", "cluster_pod_ratio")


def settings(data_dir: Path, **job) -> Settings:
    base = {"name": "demo", "lookback": "1d", "interval": "5m", "model": {"history": "3d"},
            "source": {"type": "demo", "clusters": 2, "days": 4, "speedup": 60,
                       "future_days": 1}}
    base.update(job)
    return Settings.model_validate({"service": {"data_dir": str(data_dir)}, "jobs": [base]})


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> AnomalyModel:
    s = settings(tmp_path_factory.mktemp("m"))
    src = DemoSource(s.jobs[0].source, start=T0, wall_clock=lambda: 0.0)
    return AnomalyModel(calibration={"method": "target_fpr", "target_fpr": 0.02}).fit(
        src.fetch(T0 - pd.Timedelta(days=3), T0))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, fitted: AnomalyModel):
    s = settings(tmp_path_factory.mktemp("api"))
    wall = [0.0]
    src = DemoSource(s.jobs[0].source, start=T0, wall_clock=lambda: wall[0])
    app = create_app(s, sources={"demo": src}, models={"demo": fitted}, token=TOKEN,
                     scheduler=False)
    state = app.state.aws_anomaly
    with TestClient(app) as client:
        assert state.runners["demo"].tick().ok
        yield client, state, wall


# ------------------------------------------------------------------ 5: readiness and writes
def test_readyz_reports_ticks_that_cannot_commit(served) -> None:
    """Issue 10.5: the store answers reads but refuses writes (SQLite query_only, as a
    read-only or full disk does): every tick fails at 'store', and /readyz says so."""
    client, state, wall = served
    runner = state.runners["demo"]
    assert client.get("/readyz").status_code == 200

    def read_only(dbapi_conn, _record) -> None:
        dbapi_conn.execute("PRAGMA query_only=ON")

    event.listen(state.store.engine, "connect", read_only)
    state.store.engine.dispose()
    try:
        wall[0] += 10.0
        res = runner.tick()
        assert not res.ok and res.stage == "store" and "readonly" in res.error
        state.store.ping()  # reads still work: the old check saw nothing wrong
        r = client.get("/readyz")
        assert r.status_code == 503 and "writes:demo" in r.json()["degraded"]
        assert "committed" in r.json()["checks"]["writes:demo"]["detail"]
        assert client.get("/healthz").status_code == 200
    finally:
        event.remove(state.store.engine, "connect", read_only)
        state.store.engine.dispose()
    wall[0] += 5.0
    assert runner.tick().ok
    assert client.get("/readyz").status_code == 200


# ------------------------------------------------------------------ 6: secrets
def test_credentials_of_a_source_never_reach_readyz_or_status(tmp_path, fitted) -> None:
    s = Settings.model_validate({
        "service": {"data_dir": str(tmp_path)},
        "jobs": [{"name": "prom", "source": {
            "type": "prometheus", "url": "http://scott:tiger-s3cret@127.0.0.1:9/prom",
            "max_retries": 0, "timeout_s": 1, "queries": {"cpu": "avg by (cluster) (cpu)"}}}]})
    app = create_app(s, token=TOKEN, scheduler=False)
    runner = app.state.aws_anomaly.runners["prom"]
    with TestClient(app) as client:
        assert not runner.tick().ok  # no model, the source is down: training fails to fetch
        assert "tiger-s3cret" in runner.source_error  # the raw error has it...
        for path in ("/readyz", "/v1/status", "/v1/models"):
            text = client.get(path).text
            assert "tiger-s3cret" not in text and "scott" not in text, path  # ...no answer
        ready = client.get("/readyz").json()
        assert "127.0.0.1" in ready["checks"]["source:prom"]["detail"]


def test_models_do_not_show_server_paths(served) -> None:
    from aws_anomaly.store import ModelRecord

    client, state, _ = served
    runner = state.runners["demo"]
    where = str(runner.model_path)
    state.store.register_model(ModelRecord(
        name=runner.model_name, version="v-paths", job="demo", path=where, detector="ocsvm",
        trained_at=T0, info={"note": f"saved to {where}"}), activate=False)
    runner.progress.step = f"loading {where}"
    try:
        body = client.get("/v1/models").json()
    finally:
        runner.progress.step = ""
    text = str(body)
    assert str(state.settings.service.data_dir) not in text and where not in text
    versions = [v for m in body["items"] for v in m["versions"]]
    assert any(v["version"] == "v-paths" for v in versions)
    assert all("path" not in v for v in versions)


# ------------------------------------------------------------------ 7: timestamps, numbers
def _request(timestamps: list, values: list | None = None) -> dict:
    n = len(timestamps)
    values = values if values is not None else [0.5] * n
    return {"entity": "eks-x", "timestamps": timestamps,
            "metrics": {m: list(values) for m in METRICS}}


@pytest.mark.parametrize(("stamp", "needle"), [
    ("1500-01-01T00:00:00Z", "outside the supported range"),
    ("2300-01-01T00:00:00Z", "outside the supported range"),
    ("0001-01-01T00:00:00+01:00", "outside the supported range"),
    (9.3e9, "outside the supported range"),
    (-9.3e9, "outside the supported range"),
    (1.7e12, "looks like milliseconds"),
    (2.1e10, "outside the supported range"),
    (True, "ISO 8601 text or Unix seconds"),
    ("1700000000", "not an ISO 8601 time"),
    ("yesterday", "not an ISO 8601 time"),
])
def test_out_of_range_or_odd_timestamps_are_422_naming_the_field(served, stamp, needle):
    client, _, _ = served
    r = client.post("/v1/score", json=_request([stamp]))
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("timestamps.0:") and needle in r.json()["detail"]


@pytest.mark.parametrize("bad", [True, "0.5", None, [0.5], {"v": 1}])
def test_metric_values_must_be_numbers(served, bad) -> None:
    client, _, _ = served
    body = _request(["2026-03-01T00:00:00Z", "2026-03-01T00:05:00Z"])
    body["metrics"][METRICS[1]][1] = bad
    r = client.post("/v1/score", json=body)
    assert r.status_code == 422
    assert r.json()["detail"].startswith(f"metrics.{METRICS[1]}.1:")


_numbers = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1.7e9, 9.2e9, -9.2e9, 9.3e9, 2e10, 2.1e10, 1.7e12, 0, -1]))
_iso = st.builds(lambda y, mo, d, h, tz: f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:00:00{tz}",
                 st.integers(1, 9999), st.integers(1, 12), st.integers(1, 28),
                 st.integers(0, 23), st.sampled_from(["Z", "+00:00", "-12:00", "+14:00", ""]))
_stamp = st.one_of(_numbers, _iso, st.booleans(), st.text(max_size=20), st.none())
_value = st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=64),
                   st.integers(-(10**6), 10**6), st.booleans(), st.text(max_size=5),
                   st.none())


@hsettings(max_examples=120, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stamps=st.lists(_stamp, min_size=1, max_size=4), value=_value)
def test_any_timestamps_and_numbers_give_a_4xx_naming_the_field_never_500(
        served, stamps, value) -> None:
    """Issue 10.7: whatever timestamps and values a client sends, the answer is 200 or a 4xx
    whose detail names the field; never a 500."""
    client, _, _ = served
    r = client.post("/v1/score", json=_request(stamps, [value] * len(stamps)))
    assert r.status_code in (200, 422), (r.status_code, r.text)
    if r.status_code == 422:
        detail = r.json()["detail"]
        assert re.match(r"^(timestamps|metrics|body|entity)\b", detail), detail


# ------------------------------------------------------------------ 9: smaller items
def test_openapi_example_of_score_is_accepted(served) -> None:
    client, _, _ = served
    schema = client.get("/openapi.json").json()
    example = schema["components"]["schemas"]["ScoreRequest"]["examples"][0]
    r = client.post("/v1/score", json=example)
    assert r.status_code == 200, r.text[:300]
    assert len(r.json()["points"]) == len(example["timestamps"])


def test_unsized_huge_body_is_413_not_400(served) -> None:
    client, _, _ = served
    chunk = b"x" * (1 << 20)

    def body():  # 50 MB, chunked: no Content-Length
        for _ in range(50):
            yield chunk

    r = client.post("/v1/score", content=body(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text[:200]
    assert "more than the" in r.json()["detail"]


@pytest.mark.parametrize("token", ["   ", "\t\n", " short-but-padded "])
def test_blank_or_padded_token_is_refused(tmp_path, token) -> None:
    s = settings(tmp_path)
    with pytest.raises(ConfigError, match="token"):
        build_state(s, token=token, scheduler=False)
    svc = s.service.model_copy(update={"host": "0.0.0.0"})
    with pytest.raises(ConfigError, match="token"):
        build_state(s.model_copy(update={"service": svc}), token=token, scheduler=False)


def test_short_token_is_refused_off_loopback(tmp_path) -> None:
    s = settings(tmp_path)
    svc = s.service.model_copy(update={"host": "0.0.0.0"})
    with pytest.raises(ConfigError, match="at least 16"):
        build_state(s.model_copy(update={"service": svc}), token="abc", scheduler=False)
    assert build_state(s.model_copy(update={"service": svc}), token=TOKEN,
                       scheduler=False).token == TOKEN


def test_readyz_names_the_failed_fetch_and_source_up_exists_before_a_model(tmp_path) -> None:
    s = Settings.model_validate({
        "service": {"data_dir": str(tmp_path)},
        "jobs": [{"name": "prom", "source": {
            "type": "prometheus", "url": "http://127.0.0.1:9", "max_retries": 0,
            "timeout_s": 1, "queries": {"cpu": "avg by (cluster) (cpu)"}}}]})
    app = create_app(s, token=TOKEN, interval_s=3600)
    state = app.state.aws_anomaly
    with TestClient(app) as client:
        # before the first model the gauge is there, at 0
        metrics = client.get("/metrics").text
        assert 'aws_anomaly_source_up{job="prom"} 0.0' in metrics
        state.scheduler.tick_now("prom")
        ready = client.get("/readyz").json()
        detail = ready["checks"]["source:prom"]["detail"]
        assert "not fetched yet" not in detail and "127.0.0.1:9" in detail
        assert 'aws_anomaly_source_up{job="prom"} 0.0' in client.get("/metrics").text
