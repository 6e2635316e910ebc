"""The HTTP API with FastAPI's TestClient: scoring, anomalies, feedback, models, health,
security, and a catalogue of malformed requests that must each give a clear 4xx."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from aws_anomaly.config import Settings
from aws_anomaly.model import AnomalyModel
from aws_anomaly.service.app import create_app
from aws_anomaly.sources.demo import DemoSource

T0 = pd.Timestamp("2026-03-01T00:00Z")
STEP = pd.Timedelta("5min")
TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def settings(data_dir: Path) -> Settings:
    return Settings.model_validate({
        "service": {"data_dir": str(data_dir)},
        "jobs": [{"name": "demo", "lookback": "1d", "interval": "5m", "model": {"history": "3d"},
                  "source": {"type": "demo", "clusters": 2, "days": 4, "speedup": 60,
                             "future_days": 1}}]})


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("api")
    s = settings(data)
    src = DemoSource(s.jobs[0].source, start=T0, wall_clock=lambda: 0.0)
    model = AnomalyModel(calibration={"method": "target_fpr", "target_fpr": 0.02}).fit(
        src.fetch(T0 - pd.Timedelta(days=3), T0))
    app = create_app(s, sources={"demo": src}, models={"demo": model}, token=TOKEN,
                     scheduler=False)
    state = app.state.aws_anomaly
    with TestClient(app) as client:
        before = client.get("/readyz")
        assert state.runners["demo"].tick().ok
        yield client, state, src, before


@pytest.fixture()
def client(env) -> TestClient:
    return env[0]


def points(src: DemoSource, entity: str, start: pd.Timestamp, n: int) -> dict:
    ef = src.fetch(start, start + n * STEP, entities=[entity]).entity_frame(entity)
    return {"entity": entity, "timestamps": [t.isoformat() for t in ef.index],
            "metrics": {m: ef[m].tolist() for m in src.metrics}}


def an_event(client: TestClient) -> dict:
    items = client.get("/v1/anomalies", params={"limit": 100}).json()["items"]
    assert items, "the demo day should contain anomalies"
    return max(items, key=lambda e: e["peak_score"])


# ------------------------------------------------------------------ health and readiness
def test_readyz_degraded_before_first_fetch_then_ready(env):
    client, _, _, before = env
    assert before.status_code == 503
    body = before.json()
    assert body["ready"] is False and "source:demo" in body["degraded"]
    after = client.get("/readyz")
    assert after.status_code == 200 and after.json()["degraded"] == []
    assert client.get("/healthz").json()["status"] == "ok"


def test_metrics_has_process_and_service_series(client):
    text = client.get("/metrics").text
    assert "process_cpu_seconds_total" in text
    assert 'aws_anomaly_errors_total{job="demo",stage="fetch"} 0.0' in text
    assert 'aws_anomaly_points_scored_total{job="demo"}' in text


def test_openapi_is_served_without_cdn_docs(client):
    spec = client.get("/openapi.json").json()
    assert "/v1/score" in spec["paths"] and "/v1/anomalies/{event_id}/feedback" in spec["paths"]
    assert client.get("/docs").status_code == 404


def test_dashboard_is_served_with_strict_csp(client):
    r = client.get("/")
    assert r.status_code == 200 and "aws-anomaly" in r.text
    assert "cdn" not in r.text.lower() and "https://" not in r.text
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert client.get("/static/dashboard.js").status_code == 200
    assert client.get("/static/charts.js").status_code == 200


# ------------------------------------------------------------------ scoring
def test_score_a_long_window_without_history(env):
    client, state, src, _ = env
    body = points(src, "eks-prod-eu-west-1", T0 - pd.Timedelta(hours=36), 400)
    r = client.post("/v1/score", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out["points"]) == 400 and out["history_points"] == 0
    warm = state.runners["demo"].model.spec.min_history
    assert not any(p["ready"] for p in out["points"][:warm - 1])
    assert all(p["ready"] for p in out["points"][warm:])
    p = out["points"][-1]
    assert set(p["explanation"]["contributions"]) == set(src.metrics)
    assert p["is_anomaly"] == (p["anomaly_score"] >= out["threshold"])


def test_score_one_point_uses_the_running_jobs_history(env):
    client, state, src, _ = env
    nxt = T0 + STEP
    body = points(src, "eks-prod-eu-west-1", T0, 1)
    body["timestamps"] = [nxt.isoformat()]
    r = client.post("/v1/score", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["history_points"] > 0 and out["points"][0]["ready"] is True
    # served by a copy of the job's live stream scorer (the fast path) ...
    runner = state.runners["demo"]
    scorer = runner.live.snapshot("eks-prod-eu-west-1", nxt, runner.model)
    assert scorer is not None and scorer.entity == "eks-prod-eu-west-1"
    # ... which gives the number one pass of the batch model over the whole series the job
    # has scored gives (the first tick fetched `lookback` plus the feature look-back)
    warm = runner.model.spec.min_history + 1
    seen = src.fetch(T0 - pd.Timedelta("1D") - STEP * warm, T0 + pd.Timedelta(1, "ns"),
                     entities=["eks-prod-eu-west-1"]).frame
    frame = pd.concat([seen, pd.DataFrame({"timestamp": [nxt], "entity": "eks-prod-eu-west-1",
                                           **{m: body["metrics"][m] for m in src.metrics}})])
    batch = runner.model.score(frame[["timestamp", "entity", *src.metrics]]).iloc[-1]
    assert out["points"][0]["anomaly_score"] == pytest.approx(batch["anomaly_score"], rel=1e-9)
    # ... and the same expected band, with deviations measured against it
    for m in src.metrics:
        band = out["points"][0]["expected"][m]
        assert band["lower"] <= band["expected"] <= band["upper"]
        for k in ("expected", "lower", "upper"):
            assert band[k] == pytest.approx(batch[f"{k}_{m}"], rel=1e-9)
        x = body["metrics"][m][0]
        half = (band["upper"] - band["expected"] if x >= band["expected"]
                else band["expected"] - band["lower"])
        assert out["points"][0]["explanation"]["deviations"][m] == pytest.approx(
            (x - band["expected"]) / half, abs=1e-3)


def test_repeated_short_requests_do_not_change_each_other(env):
    """The route keeps a primed scorer between requests: a request must never see the points
    of an earlier one, and an off-grid point is still refused."""
    client, state, src, _ = env
    nxt = T0 + STEP
    body = points(src, "eks-prod-eu-west-1", T0, 1)
    body["timestamps"] = [nxt.isoformat()]
    first = client.post("/v1/score", json=body).json()
    spiked = {**body, "metrics": {m: [v[0] * 5 + 1] for m, v in body["metrics"].items()}}
    other = client.post("/v1/score", json=spiked).json()
    assert other["points"][0]["anomaly_score"] != first["points"][0]["anomaly_score"]
    two = {**body, "timestamps": [nxt.isoformat(), (nxt + STEP).isoformat()],
           "metrics": {m: v * 2 for m, v in body["metrics"].items()}}
    assert client.post("/v1/score", json=two).status_code == 200
    again = client.post("/v1/score", json=body).json()
    assert again == first
    # the same answer as a fresh copy of the live scorer (no state carried over)
    runner = state.runners["demo"]
    scorer = runner.live.snapshot("eks-prod-eu-west-1", nxt, runner.model)
    p = scorer.update(nxt, [body["metrics"][m][0] for m in state.runners["demo"].model.metrics_])
    assert again["points"][0]["anomaly_score"] == pytest.approx(p.anomaly_score, rel=1e-12)
    off = {**body, "timestamps": [nxt.isoformat(), (nxt + STEP * 1.5).isoformat()],
           "metrics": {m: v * 2 for m, v in body["metrics"].items()}}
    r = client.post("/v1/score", json=off)
    assert r.status_code == 422 and "index 1" in r.json()["detail"]
    assert "grid starting at" in r.json()["detail"]


def test_too_few_points_for_an_unknown_entity_is_422_with_the_minimum(client, env):
    warm = env[1].runners["demo"].model.spec.min_history
    body = {"entity": "no-such-cluster", "timestamps": ["2026-03-01T00:00:00Z"],
            "metrics": {m: [0.5] for m in env[2].metrics}}
    r = client.post("/v1/score", json=body)
    assert r.status_code == 422
    d = r.json()["detail"]
    assert "timestamps" in d and str(warm + 1) in d and "no-such-cluster" in d


def _continuation(env) -> dict:
    body = points(env[2], "eks-prod-eu-west-1", T0, 1)
    body["timestamps"] = [(T0 + STEP).isoformat()]
    return body


def test_a_live_continuation_is_answered_by_the_fast_path_as_the_route_would(env):
    """A short continuation is answered in front of FastAPI (docs/performance.md): the same
    bytes the route gives, valid against the response model, with the security headers."""
    from aws_anomaly.service.routes import score as score_route

    client, state, _, _ = env
    body = _continuation(env)
    before = state.fast_answers
    r = client.post("/v1/score", json=body)
    assert r.status_code == 200 and state.fast_answers == before + 1
    assert r.headers["content-type"] == "application/json"
    assert "default-src 'self'" in r.headers["content-security-policy"]
    # the route's own answer (the path every other request takes), byte for byte
    req = score_route.ScoreRequest.model_validate(body)
    assert r.content == score_route._json(score_route._score(req, state, None))
    # and what FastAPI would write for the response model
    model = score_route.ScoreResponse.model_validate_json(r.content)
    assert r.content == model.model_dump_json().encode()
    p = r.json()["points"][0]
    assert set(p["expected"]) == set(p["explanation"]["deviations"]) == set(env[2].metrics)
    # ?job= names the job; a charset in the content type is still JSON
    r2 = client.post("/v1/score", params={"job": "demo"}, content=json.dumps(body),
                     headers={"Content-Type": "application/json; charset=utf-8"})
    assert r2.content == r.content and state.fast_answers == before + 2


@pytest.mark.parametrize("jitter", ["3s", "-4s", "29s"])
def test_a_point_a_few_seconds_off_the_live_grid_is_scored_as_its_grid_point(env, jitter):
    """Scrape jitter is not an error: a continuation point within 10 % of a step of the
    live grid gets the answer of the point on the grid (timestamp included), on the fast
    path and through the route; a longer request snaps the same way; further off is 422."""
    from aws_anomaly.service.routes import score as score_route

    client, state, src, _ = env
    exact = client.post("/v1/score", json=_continuation(env))
    assert exact.status_code == 200
    body = _continuation(env)
    body["timestamps"] = [(T0 + STEP + pd.Timedelta(jitter)).isoformat()]
    before = state.fast_answers
    r = client.post("/v1/score", json=body)
    assert r.status_code == 200 and state.fast_answers == before + 1
    assert r.content == exact.content
    req = score_route.ScoreRequest.model_validate(body)
    assert score_route._json(score_route._score(req, state, None)) == exact.content
    # a request long enough for its own windows, every point jittered: the grid times
    n = state.runners["demo"].model.spec.min_history + 20
    long = points(src, "eks-prod-us-east-1", T0 - n * STEP, n)
    long["entity"] = "fresh-cluster"  # no live series: the step's own grid
    want = client.post("/v1/score", json=long).json()
    offsets = [pd.Timedelta(jitter) * (1 if i % 2 else -1) for i in range(n)]
    long["timestamps"] = [(pd.Timestamp(t) + o).isoformat()
                          for t, o in zip(long["timestamps"], offsets, strict=True)]
    got = client.post("/v1/score", json=long).json()
    assert [p["timestamp"] for p in got["points"]] == [p["timestamp"] for p in want["points"]]
    assert [p["anomaly_score"] for p in got["points"]] == \
        [p["anomaly_score"] for p in want["points"]]
    # 31 s off a 5-minute grid is more than jitter
    body["timestamps"] = [(T0 + STEP + pd.Timedelta("31s")).isoformat()]
    assert client.post("/v1/score", json=body).status_code == 422


@pytest.mark.parametrize(("name", "send", "status", "needle"), [
    ("unknown job", lambda c, b: c.post("/v1/score?job=nope", json=b), 404, "unknown job"),
    ("extra query", lambda c, b: c.post("/v1/score?job=demo&x=1", json=b), 200, None),
    ("a string value", lambda c, b: c.post("/v1/score", json={
        **b, "metrics": {**b["metrics"], "cluster_pod_ratio": ["0.5"]}}), 422,
     "metrics.cluster_pod_ratio.0"),
    ("unknown field", lambda c, b: c.post("/v1/score", json={**b, "colour": 1}), 422, "colour"),
    ("bad JSON", lambda c, b: c.post("/v1/score", content=b'{"entity": ',
                                     headers={"Content-Type": "application/json"}), 422,
     "not valid JSON"),
    ("not JSON", lambda c, b: c.post("/v1/score", content=json.dumps(b),
                                     headers={"Content-Type": "text/plain"}), 422, None),
    ("off the grid", lambda c, b: c.post("/v1/score", json={
        **b, "timestamps": [(T0 + STEP * 1.5).isoformat()]}), 422, "grid"),
    ("not a continuation", lambda c, b: c.post("/v1/score", json={
        **b, "timestamps": [(T0 + STEP * 3).isoformat()]}), 422, "too few"),
])
def test_what_the_fast_path_does_not_answer_gets_the_routes_answer(env, name, send, status,
                                                                    needle):
    client, state, _, _ = env
    before = state.fast_answers
    r = send(client, _continuation(env))
    assert r.status_code == status, r.text
    assert state.fast_answers == before  # the route answered, with its own message
    if needle is not None:
        assert needle in r.json()["detail"]


def test_a_long_answer_is_what_the_response_model_writes(env):
    """Long requests are answered by the route as plain data: the same bytes as the model."""
    from aws_anomaly.service.routes.score import ScoreResponse

    client, _, src, _ = env
    body = points(src, "eks-prod-us-east-1", T0 - pd.Timedelta(hours=30), 300)
    r = client.post("/v1/score", json=body)
    assert r.status_code == 200, r.text
    assert r.content == ScoreResponse.model_validate_json(r.content).model_dump_json().encode()
    assert any(p["ready"] for p in r.json()["points"])


def test_a_body_read_past_the_fast_paths_limit_reaches_the_route_whole():
    """The gate reads at most FAST_BYTES; what it read is replayed before the rest."""
    import asyncio

    from aws_anomaly.service.routes.score import _read_body, _replay

    msgs = [{"type": "http.request", "body": b"a" * 10, "more_body": True},
            {"type": "http.request", "body": b"b" * 10, "more_body": True},
            {"type": "http.request", "body": b"c" * 10, "more_body": False}]

    async def run() -> bytes:
        it = iter(msgs)

        async def receive() -> dict:
            return next(it)

        head, whole = await _read_body(receive, 15)
        assert not whole and head == b"a" * 10 + b"b" * 10
        again = _replay(head, receive, more=True)
        got = b""
        while True:
            m = await again()
            got += m["body"]
            if not m["more_body"]:
                return got

    assert asyncio.run(run()) == b"a" * 10 + b"b" * 10 + b"c" * 10


@pytest.mark.parametrize("x", [14.0, 9.0, 10.0, 12.0, 8.0, 1e9, -1e9])
@pytest.mark.parametrize(("y", "lo", "hi"), [(10.0, 8.0, 12.0), (10.0, 10.0, 10.0),
                                             (10.0, 9.0, 10.0), (float("nan"), 8.0, 12.0),
                                             (10.0, float("nan"), 12.0),
                                             (10.0, 8.0, float("inf"))])
def test_the_fast_paths_deviation_is_band_deviation(x, y, lo, hi):
    from aws_anomaly.explain import band_deviation, band_deviation_one

    want = float(band_deviation(x, y, lo, hi))
    got = band_deviation_one(x, y, lo, hi)
    assert (np.isnan(want) and np.isnan(got)) or got == want


# ------------------------------------------------------------------ malformed input catalogue
def _valid(env) -> dict:
    return points(env[2], "eks-prod-eu-west-1", T0 - pd.Timedelta(hours=30), 300)


CATALOGUE = [
    ("metric value is a string", lambda b: b["metrics"].__setitem__(
        "cluster_pod_ratio", ["x", *b["metrics"]["cluster_pod_ratio"][1:]]),
     "metrics.cluster_pod_ratio.0"),
    ("entity is a number", lambda b: b.__setitem__("entity", 5), "entity"),
    ("timestamp is garbage", lambda b: b["timestamps"].__setitem__(3, "yesterday-ish"),
     "timestamps.3"),
    ("unsorted timestamps", lambda b: b["timestamps"].__setitem__(
        5, b["timestamps"][2]), "timestamps"),
    ("duplicate timestamps", lambda b: b["timestamps"].__setitem__(
        6, b["timestamps"][5]), "duplicate timestamp"),
    ("value count differs", lambda b: b["metrics"]["cluster_cpu_request_ratio"].pop(),
     "metrics.cluster_cpu_request_ratio has 299 values"),
    ("unknown metric", lambda b: b["metrics"].__setitem__("gpu", [0.1] * 300), "unknown ['gpu']"),
    ("missing metric", lambda b: b["metrics"].pop("cluster_pod_ratio"), "missing"),
    ("unknown field", lambda b: b.__setitem__("colour", "red"), "colour"),
    ("missing entity", lambda b: b.pop("entity"), "entity"),
    ("empty timestamps", lambda b: (b.__setitem__("timestamps", []),
                                    b.__setitem__("metrics", {})), "timestamps"),
    ("off-grid timestamp", lambda b: b["timestamps"].__setitem__(
        -1, (pd.Timestamp(b["timestamps"][-2]) + pd.Timedelta("7min")).isoformat()),
     "grid"),
]


@pytest.mark.parametrize(("name", "mutate", "needle"), CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_malformed_score_request_is_a_clear_4xx(env, name, mutate, needle):
    client = env[0]
    body = _valid(env)
    mutate(body)
    r = client.post("/v1/score", json=body)
    assert 400 <= r.status_code < 500, (name, r.status_code, r.text)
    assert needle in r.json()["detail"], (name, r.json())


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_inf_values_are_refused(env, bad):
    body = json.dumps(_valid(env))
    text = body.replace("[0.", f"[{bad}, 0.", 1)  # first value of the first metric
    data = json.loads(text)
    first = next(iter(data["metrics"]))
    data["metrics"][first] = data["metrics"][first][:300]
    payload = json.dumps(data, allow_nan=True)
    r = env[0].post("/v1/score", content=payload, headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert f"metrics.{first}.0" in r.json()["detail"] and "finite" in r.json()["detail"]


def test_too_many_points_is_refused(env):
    n = 10_001
    body = {"entity": "x", "timestamps": list(range(0, n * 300, 300)),
            "metrics": {m: [0.5] * n for m in env[2].metrics}}
    r = env[0].post("/v1/score", json=body)
    assert r.status_code == 422 and "timestamps" in r.json()["detail"]
    assert "10000" in r.json()["detail"]


def test_huge_body_is_413_before_parsing(client):
    r = client.post("/v1/score", content=b"{" + b" " * (5 * 1024 * 1024) + b"}",
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "bytes" in r.json()["detail"]


@pytest.mark.parametrize("payload", [b"{not json", b"", b"[1, 2", b'"just a string"'])
def test_bad_json_is_a_4xx_naming_the_body(client, payload):
    r = client.post("/v1/score", content=payload, headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert "body" in r.json()["detail"] or "JSON" in r.json()["detail"]


def test_bad_query_parameters_name_the_field(client):
    for params, needle in [({"limit": 0}, "limit"), ({"limit": "many"}, "limit"),
                           ({"status": "weird"}, "status"), ({"start": "soon"}, "start"),
                           ({"cursor": "zz"}, "cursor"),
                           ({"start": "2026-03-02T00:00Z", "end": "2026-03-01T00:00Z"}, "end")]:
        r = client.get("/v1/anomalies", params=params)
        assert r.status_code == 422 and needle in r.json()["detail"], (params, r.text)
    assert client.get("/v1/anomalies/not-an-id").status_code == 422
    assert client.get("/v1/anomalies/0123456789abcdef").status_code == 404
    r = client.get("/v1/entities/nope/series")
    assert r.status_code == 404 and "nope" in r.json()["detail"]
    assert client.post("/v1/score", params={"job": "nope"}, json=_valid_min()).status_code == 404


def _valid_min() -> dict:
    return {"entity": "x", "timestamps": ["2026-03-01T00:00:00Z"],
            "metrics": {"cluster_cpu_request_ratio": [0.1]}}


# ------------------------------------------------------------------ anomalies and feedback
def test_entities_list_status(client):
    items = client.get("/v1/entities").json()["items"]
    assert {i["entity"] for i in items} == {"eks-prod-eu-west-1", "eks-prod-us-east-1"}
    assert all(i["status"] in ("ok", "anomalous") and i["threshold"] >= 1.0 for i in items)
    series = client.get("/v1/entities/eks-prod-us-east-1/series").json()
    n = len(series["timestamps"])
    assert n == len(series["anomaly_score"]) == len(series["values"]["cluster_pod_ratio"]) > 200


def test_anomaly_pagination_walks_every_event_once(client):
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/anomalies", params=params).json()
        seen += [e["event_id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    everything = client.get("/v1/anomalies", params={"limit": 1000}).json()["items"]
    assert seen == [e["event_id"] for e in everything] and len(seen) == len(set(seen))
    one = everything[0]
    only = client.get("/v1/anomalies", params={"entity": one["entity"]}).json()["items"]
    assert only and all(e["entity"] == one["entity"] for e in only)


def test_anomaly_detail_has_an_explanation(client):
    ev = an_event(client)
    d = client.get(f"/v1/anomalies/{ev['event_id']}").json()
    assert d["top_metrics"][0]["contribution"] > 0 and d["top_metrics"][0]["deviation"] is not None
    top = d["top_metrics"][0]
    assert top["metric"] in d["explanation"]
    # the sentence says what the deviation (band units) says, never the opposite
    part = d["explanation"].split(top["metric"], 1)[1].split(")", 1)[0]
    if abs(top["deviation"]) <= 1.0:
        assert "inside its expected band" in part
    else:
        side = "above" if top["deviation"] > 0 else "below"
        assert f"{abs(top['deviation']):.1f}x the expected band {side}" in part


def test_feedback_needs_a_valid_token(client):
    ev = an_event(client)
    url = f"/v1/anomalies/{ev['event_id']}/feedback"
    r = client.post(url, json={"label": "true_positive"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = client.post(url, json={"label": "true_positive"}, headers={"Authorization": "Bearer no"})
    assert r.status_code == 403
    r = client.post(url, json={"label": "true_positive"}, headers={"Authorization": TOKEN})
    assert r.status_code == 401
    r = client.post(url, json={"label": "maybe"}, headers=AUTH)
    assert r.status_code == 422 and "label" in r.json()["detail"]
    r = client.post("/v1/anomalies/0123456789abcdef/feedback", json={"label": "true_positive"},
                    headers=AUTH)
    assert r.status_code == 404


def test_feedback_is_stored_and_precision_reported(client):
    items = client.get("/v1/anomalies", params={"limit": 100}).json()["items"]
    assert len(items) >= 2
    a, b = items[0], items[1]
    r = client.post(f"/v1/anomalies/{a['event_id']}/feedback",
                    json={"label": "true_positive", "note": "real"}, headers=AUTH)
    assert r.status_code == 201 and r.json()["label"] == "true_positive"
    client.post(f"/v1/anomalies/{b['event_id']}/feedback", json={"label": "false_positive"},
                headers=AUTH)
    d = client.get(f"/v1/anomalies/{a['event_id']}").json()
    assert d["feedback"] == "true_positive" and d["feedback_history"][-1]["note"] == "real"
    p = client.get("/v1/precision").json()
    assert p["reviewed"] >= 2 and 0 < p["precision"] < 1
    models = client.get("/v1/models").json()["items"]
    assert models[0]["precision"]["reviewed"] == p["reviewed"]


def test_models_and_retrain_auth(client):
    m = client.get("/v1/models").json()["items"][0]
    assert m["name"] == "demo" and m["loaded"] is True and m["threshold"] == 1.0
    assert client.post("/v1/models/demo/retrain").status_code == 401
    r = client.post("/v1/models/nope/retrain", headers=AUTH)
    assert r.status_code == 404 and "demo" in r.json()["detail"]
    # without a scheduler the service says how to retrain instead of blocking the request
    assert client.post("/v1/models/demo/retrain", headers=AUTH).status_code == 409


def test_status_reports_jobs_and_errors(client):
    s = client.get("/v1/status").json()
    job = s["jobs"][0]
    assert job["job"] == "demo" and job["ticks"] >= 1 and job["model_info"]["detector"] == "ocsvm"
    assert set(job["errors"]) >= {"fetch", "score", "store"}


def test_non_loopback_bind_without_token_is_refused(tmp_path):
    from aws_anomaly.errors import ConfigError
    from aws_anomaly.service.app import build_state

    s = settings(tmp_path)
    svc = s.service.model_copy(update={"host": "0.0.0.0"})
    with pytest.raises(ConfigError, match="without an API token"):
        build_state(s.model_copy(update={"service": svc}), scheduler=False)


def test_generated_token_when_none_configured(tmp_path):
    from aws_anomaly.service.app import build_state

    st = build_state(settings(tmp_path), scheduler=False, environ={})
    assert len(st.token) >= 24
    assert np.isfinite(st.started)


def test_configured_notifiers_become_alert_sinks(tmp_path):
    from aws_anomaly.runner import AlertSink
    from aws_anomaly.service.app import build_state

    s = Settings.model_validate({
        "service": {"data_dir": str(tmp_path)},
        "jobs": [{"name": "demo", "notifiers": [{"type": "webhook",
                                                 "url": "http://127.0.0.1:9/hook"}]}]})
    st = build_state(s, scheduler=False, environ={})
    sinks = st.runners["demo"].sinks
    assert any(isinstance(x, AlertSink) for x in sinks) and st.exporter in sinks
    assert st.notifiers and all(x in sinks for x in st.notifiers)
