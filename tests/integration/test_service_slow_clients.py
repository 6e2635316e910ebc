"""Slow and greedy clients against the real server (uvicorn with the guarded protocol) on
127.0.0.1: half-sent requests are timed out and evicted while /healthz keeps answering (issue
10.3), and a burst of large score requests is capped (issue 10.9). Every load here is bounded
in count and time and stops by itself."""

from __future__ import annotations

import contextlib
import json
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import uvicorn

from aws_anomaly.config import Settings
from aws_anomaly.model import AnomalyModel
from aws_anomaly.service.app import create_app
from aws_anomaly.service.server import server_config
from aws_anomaly.sources.demo import DemoSource

from .amkit import free_port

pytestmark = pytest.mark.integration

T0 = pd.Timestamp("2026-03-01T00:00Z")
HOST = "127.0.0.1"


def settings(data_dir: Path, **service) -> Settings:
    return Settings.model_validate({
        "service": {"data_dir": str(data_dir), "host": HOST, "port": free_port(), **service},
        "jobs": [{"name": "demo", "lookback": "1d", "interval": "5m", "model": {"history": "2d"},
                  "source": {"type": "demo", "clusters": 2, "days": 3, "speedup": 60,
                             "future_days": 1}}]})


@pytest.fixture(scope="module")
def fitted() -> AnomalyModel:
    s = settings(Path("unused"))
    src = DemoSource(s.jobs[0].source, start=T0, wall_clock=lambda: 0.0)
    return AnomalyModel(calibration={"method": "target_fpr", "target_fpr": 0.02}).fit(
        src.fetch(T0 - pd.Timedelta(days=2), T0))


class Running:
    def __init__(self, s: Settings, model: AnomalyModel) -> None:
        src = DemoSource(s.jobs[0].source, start=T0, wall_clock=lambda: 0.0)
        self.app = create_app(s, sources={"demo": src}, models={"demo": model},
                              token="slow-clients-token-0123", scheduler=False)
        self.state = self.app.state.aws_anomaly
        cfg, self.guard = server_config(self.app, s.service, log_level="warning")
        self.server = uvicorn.Server(cfg)
        self.url = f"http://{HOST}:{s.service.port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@pytest.fixture()
def running(tmp_path: Path, fitted: AnomalyModel, request) -> Iterator[Running]:
    extra = getattr(request, "param", {})
    r = Running(settings(tmp_path, **extra), fitted)
    try:
        yield r
    finally:
        r.stop()


def healthz_ms(url: str) -> float:
    t = time.perf_counter()
    r = httpx.get(url + "/healthz", timeout=5)  # a new connection each time
    assert r.status_code == 200
    return (time.perf_counter() - t) * 1000


def half_sent(port: int) -> socket.socket:
    s = socket.create_connection((HOST, port), timeout=5)
    s.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
    return s


def closed_by_server(s: socket.socket, within: float) -> bool:
    s.settimeout(within)
    try:
        while True:
            data = s.recv(4096)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


@pytest.mark.parametrize("running", [{"max_connections": 64, "header_timeout_s": 2.0,
                                      "body_timeout_s": 2.0}], indirect=True)
def test_half_sent_requests_are_evicted_and_timed_out_while_healthz_answers(running):
    """600 connections that never finish their headers (10x the cap) on loopback: /healthz
    still answers each probe, the server holds at most the cap, and the rest are closed."""
    port = int(running.url.rsplit(":", 1)[1])
    socks: list[socket.socket] = []
    probes: list[float] = []
    started = time.monotonic()
    try:
        for i in range(600):
            # refused or reset: the server is shedding them, as it should
            with contextlib.suppress(OSError):
                socks.append(half_sent(port))
            if i % 50 == 49:
                probes.append(healthz_ms(running.url))
        assert time.monotonic() - started < 60
        probes += [healthz_ms(running.url) for _ in range(10)]
        assert len(running.guard.conns) <= 64
        assert running.guard.evicted >= 600 - 64
        assert max(probes) < 2000 and statistics.median(probes) < 200, probes
        # The survivors get a 408 and are closed once the header timeout passes.
        alive = [s for s in socks if not closed_by_server(s, 0.01)]
        assert 0 < len(alive) <= 64
        time.sleep(2.5)
        assert all(closed_by_server(s, 1.0) for s in alive)
        assert running.guard.header_timeouts >= 1
    finally:
        for s in socks:
            s.close()


@pytest.mark.parametrize("running", [{"header_timeout_s": 5.0, "body_timeout_s": 1.0}],
                         indirect=True)
def test_a_body_that_never_arrives_is_timed_out(running):
    port = int(running.url.rsplit(":", 1)[1])
    s = socket.create_connection((HOST, port), timeout=5)
    try:
        s.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 5000\r\n\r\n{\"entity\": ")
        t = time.monotonic()
        assert closed_by_server(s, 5.0)
        assert 0.8 < time.monotonic() - t < 4.0
        assert running.guard.body_timeouts == 1
        assert healthz_ms(running.url) < 2000
    finally:
        s.close()


def big_request(n: int = 10_000) -> dict:
    ts = pd.date_range(T0 - pd.Timedelta(minutes=5 * n), periods=n, freq="5min", tz="UTC")
    rng = np.random.default_rng(0)
    return {"entity": "eks-load", "timestamps": [t.isoformat() for t in ts],
            "metrics": {m: np.round(0.5 + 0.05 * rng.standard_normal(n), 4).tolist()
                        for m in ("cluster_cpu_request_ratio", "cluster_mem_request_ratio",
                                  "cluster_pod_ratio")}}


@pytest.mark.parametrize("running", [{"score_concurrency": 1, "score_queue": 1}],
                         indirect=True)
def test_a_burst_of_large_score_requests_is_capped(running):
    """16 concurrent 10,000-point requests: at most 1 scores and 1 waits, the rest get 429
    with Retry-After at once; /healthz keeps answering quickly meanwhile."""
    body = json.dumps(big_request()).encode()  # serialised once: the clients stay light
    stop = threading.Event()
    probes: list[float] = []

    def probe() -> None:
        while not stop.is_set():
            probes.append(healthz_ms(running.url))
            time.sleep(0.05)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(
            lambda _: httpx.post(running.url + "/v1/score", content=body, timeout=120,
                                 headers={"Content-Type": "application/json"}), range(16)))
    stop.set()
    prober.join(10)
    codes = sorted(r.status_code for r in answers)
    assert codes.count(200) >= 1 and codes.count(429) >= 10, codes
    assert set(codes) <= {200, 429}
    refused = next(r for r in answers if r.status_code == 429)
    assert refused.headers["retry-after"] == "1" and "retry" in refused.json()["detail"]
    assert probes and statistics.median(probes) < 300, sorted(probes)
