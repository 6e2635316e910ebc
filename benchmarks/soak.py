"""Soak test of the service: mixed load, a failing-then-recovering webhook and source, SIGKILLs.

Everything runs on 127.0.0.1 and stops by itself (``--duration`` seconds of load, at most 600,
plus a bounded drain). Run from the repository root::

    .venv/bin/python benchmarks/soak.py [--duration 90] [--kills 2] [--out out/bench/soak.json]

What it starts (all on loopback, in a temporary folder):

* a **webhook receiver** that answers 500 for the first ``--webhook-down`` seconds, then 200,
  recording every delivered alert as (event id, status);
* a **Prometheus-compatible source** (``/api/v1/query_range`` over the demo generator, in real
  time) that answers 503 between ``--source-down`` seconds (start, end);
* ``aws-anomaly serve`` with two jobs: ``demo`` (the accelerated demo replay, alerting to the
  webhook) and ``prom`` (the Prometheus source); both model bundles are trained beforehand;
* load: ``/healthz`` probes on fresh connections (latency), short and long ``POST /v1/score``
  requests, ``GET /v1/anomalies`` readers (recording every event the API acknowledged),
  ``/readyz`` and ``/metrics`` readers, and a few half-sent requests (slow clients);
* ``--kills`` SIGKILLs spread over the run, each followed by a restart.

At the end the webhook and the source are healthy; the service gets ``--drain`` seconds to
deliver its outbox, then a SIGTERM. Reported (printed as a table and written as JSON):

* alerts expected (firing for each stored event, resolved for each closed one), delivered,
  duplicates, still pending, missing (expected but neither delivered nor pending);
* events lost: acknowledged by ``GET /v1/anomalies`` but absent from the store at the end;
* ``/healthz`` latency p50 / p99 / max (answers while the service was up) and failed probes;
* score answers by status, source up/down as /readyz saw it, restarts and their time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
TOKEN = "soak-token-0123456789abcdef"
METRICS = ("cluster_cpu_request_ratio", "cluster_mem_request_ratio", "cluster_pod_ratio")

CONFIG = """
service:
  data_dir: {data}
  host: 127.0.0.1
  header_timeout_s: 5
  body_timeout_s: 10
jobs:
  - name: demo
    interval: 5m
    lookback: 1d
    alert: {{min_consecutive: 1}}
    source: {{type: demo, clusters: 3, days: 3, future_days: 1, speedup: 3000}}
    model:
      history: 2d
      threshold: {{method: contamination, contamination: 0.05}}
    notifiers:
      - {{type: webhook, url: "{hook}", timeout_s: 2, max_age: 1h}}
  - name: prom
    interval: 5s
    lookback: 2h
    source:
      type: prometheus
      url: "{prom}"
      max_retries: 0
      timeout_s: 3
      queries: {queries}
    model:
      history: 2d
"""


#: The /healthz prober, run as its own process: one fresh connection per line on stdin.
PROBE = """
import sys, time, http.client
host, port = sys.argv[1].split("//")[1].split(":")
for _ in sys.stdin:
    t = time.perf_counter()
    try:
        c = http.client.HTTPConnection(host, int(port), timeout=5)
        c.request("GET", "/healthz")
        ok = c.getresponse().status == 200
        c.close()
    except OSError:
        ok = False
    print("ok" if ok else "failed", (time.perf_counter() - t) * 1000, flush=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def percentile(xs: list[float], q: float) -> float | None:
    return float(np.percentile(xs, q)) if xs else None


# ---------------------------------------------------------------------------------- receivers
class Webhook:
    """Answers 500 until ``up_at`` (monotonic), then 200; records delivered alerts."""

    def __init__(self, up_at: float) -> None:
        self.up_at = up_at
        self.lock = threading.Lock()
        self.alerts: list[tuple[str, str]] = []
        self.requests = Counter()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                ok = time.monotonic() >= outer.up_at
                with outer.lock:
                    outer.requests["ok" if ok else "failed"] += 1
                    if ok:
                        for a in json.loads(raw).get("alerts", []):
                            outer.alerts.append((a["event_id"], a["status"]))
                self.send_response(200 if ok else 500)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{HOST}:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakePrometheus:
    """``/api/v1/query_range`` of the demo generator in real time; 503 while ``down``."""

    def __init__(self, down: tuple[float, float]) -> None:
        from aws_anomaly.config import DemoSourceConfig
        from aws_anomaly.sources.demo import DemoSource

        self.down = down
        self.t0 = time.monotonic()
        self.source = DemoSource(DemoSourceConfig(clusters=2, days=3, future_days=1, speedup=1,
                                                  seed=11))
        self.answers = Counter()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length", 0)))
                                .decode())
                status, body = outer.answer(self.path, {k: v[0] for k, v in form.items()})
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{HOST}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def is_down(self) -> bool:
        t = time.monotonic() - self.t0
        return self.down[0] <= t < self.down[1]

    def answer(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if self.is_down():
            self.answers[503] += 1
            return 503, {"status": "error", "errorType": "unavailable",
                         "error": "soak: source down on purpose"}
        if not path.startswith("/api/v1/query_range"):
            self.answers[404] += 1
            return 404, {"status": "error", "error": f"not served: {path}"}
        metric = form["query"]
        start = pd.Timestamp(float(form["start"]), unit="s", tz="UTC")
        end = pd.Timestamp(float(form["end"]), unit="s", tz="UTC")
        try:
            frame = self.source.fetch(start, end + pd.Timedelta(1, "ns")).frame
        except Exception:  # nothing in range yet: an empty matrix
            frame = pd.DataFrame(columns=["timestamp", "entity", metric])
        result = []
        for entity, g in frame.groupby("entity"):
            ts = g["timestamp"].astype("int64").to_numpy() / 1e9
            result.append({"metric": {"cluster": str(entity)},
                           "values": [[float(t), repr(float(v))] for t, v in
                                      zip(ts, g[metric].to_numpy(), strict=True)]})
        self.answers[200] += 1
        return 200, {"status": "success", "data": {"resultType": "matrix", "result": result}}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------------- service
class Service:
    def __init__(self, cfg: Path, port: int, log: Path) -> None:
        self.cfg, self.port, self.log = cfg, port, log
        self.base = f"http://{HOST}:{port}"
        self.proc: subprocess.Popen | None = None
        self.up = threading.Event()
        self.restarts: list[float] = []

    def start(self, timeout: float = 180.0) -> float:
        env = {**os.environ, "AWS_ANOMALY__SERVICE__TOKEN": TOKEN}
        t = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aws_anomaly", "serve", "--config", str(self.cfg),
             "--port", str(self.port), "--log-level", "warning"],
            stdout=self.log.open("ab"), stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        while time.monotonic() - t < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited with {self.proc.returncode}; see {self.log}")
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    self.up.set()
                    return time.monotonic() - t
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"service did not answer /healthz within {timeout} s")

    def kill(self) -> None:
        self.up.clear()
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int | None:
        self.up.clear()
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


# ---------------------------------------------------------------------------------- load
class Load:
    """Client threads; each loop checks ``stop`` and bounds its own work."""

    def __init__(self, svc: Service, rng: random.Random) -> None:
        self.svc = svc
        self.rng = rng
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.healthz_ms: list[float] = []
        self.healthz_failed = 0
        self.score = Counter()
        self.acknowledged: set[str] = set()
        self.ready = Counter()
        self.slow_closed = 0
        self.threads: list[threading.Thread] = []

    def run(self, target: Any) -> None:
        t = threading.Thread(target=target, daemon=True)
        t.start()
        self.threads.append(t)

    def start(self) -> None:
        for fn in (self.healthz, self.scorer, self.readers, self.readyz, self.slow_clients):
            self.run(fn)

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def healthz(self) -> None:
        """Probes from a separate process (this one is busy generating load, which would
        otherwise show up in the measured latency); reads its results from a pipe."""
        probe = subprocess.Popen([sys.executable, "-c", PROBE, self.svc.base],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert probe.stdin is not None and probe.stdout is not None
        try:
            while not self.stop.is_set():
                if not self.svc.up.is_set():
                    time.sleep(0.05)
                    continue
                probe.stdin.write("probe\n")
                probe.stdin.flush()
                answer = probe.stdout.readline().split()
                ok, ms = answer[0] == "ok", float(answer[1])
                with self.lock:
                    if ok:
                        self.healthz_ms.append(ms)
                    elif self.svc.up.is_set():
                        self.healthz_failed += 1
                time.sleep(0.05)
        finally:
            probe.stdin.close()
            probe.wait(10)

    def _request(self, n: int) -> bytes:
        end = pd.Timestamp("2026-03-01T00:00Z") + pd.Timedelta(minutes=5 * self.rng.randrange(
            0, 10_000))
        ts = pd.date_range(end=end, periods=n, freq="5min", tz="UTC")
        x = np.arange(n)
        body = {"entity": f"soak-{self.rng.randrange(3)}", "timestamps": [
            t.isoformat() for t in ts], "metrics": {
            m: np.round(0.5 + 0.1 * np.sin(2 * np.pi * x / 288 + i), 4).tolist()
            for i, m in enumerate(METRICS)}}
        return json.dumps(body).encode()

    def scorer(self) -> None:
        bodies = {300: self._request(300), 5000: self._request(5000)}
        while not self.stop.is_set():
            if not self.svc.up.is_set():
                time.sleep(0.1)
                continue
            n = 5000 if self.rng.random() < 0.15 else 300
            try:
                r = httpx.post(self.svc.base + "/v1/score", content=bodies[n], timeout=60,
                               headers={"Content-Type": "application/json"})
                key = str(r.status_code)
                if r.status_code == 503:  # no model yet (after a restart), or no slot
                    key += " no model yet" if "no model" in r.text else " busy"
            except httpx.HTTPError as exc:
                key = type(exc).__name__
            with self.lock:
                self.score[key] += 1
            time.sleep(0.2)

    def readers(self) -> None:
        while not self.stop.is_set():
            if not self.svc.up.is_set():
                time.sleep(0.1)
                continue
            try:
                r = httpx.get(self.svc.base + "/v1/anomalies", params={"limit": 1000}, timeout=5)
                if r.status_code == 200:
                    ids = {e["event_id"] for e in r.json()["items"]}
                    with self.lock:
                        self.acknowledged |= ids
                httpx.get(self.svc.base + "/metrics", timeout=5)
            except httpx.HTTPError:
                pass
            time.sleep(0.3)

    def readyz(self) -> None:
        while not self.stop.is_set():
            if not self.svc.up.is_set():
                time.sleep(0.1)
                continue
            try:
                checks = httpx.get(self.svc.base + "/readyz", timeout=5).json()["checks"]
                src = checks.get("source:prom", {})
                with self.lock:
                    self.ready["source up" if src.get("ok") else "source down"] += 1
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.5)

    def slow_clients(self) -> None:
        """Bursts of 40 half-sent requests, held until the server closes them (or 8 s)."""
        while not self.stop.is_set():
            if not self.svc.up.is_set():
                time.sleep(0.2)
                continue
            socks = []
            for _ in range(40):
                with contextlib.suppress(OSError):
                    s = socket.create_connection((HOST, self.svc.port), timeout=2)
                    s.sendall(b"POST /v1/score HTTP/1.1\r\nHost: soak\r\n")
                    socks.append(s)
            deadline = time.monotonic() + 8
            for s in socks:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                with contextlib.suppress(OSError):
                    while s.recv(4096):
                        pass
                    with self.lock:
                        self.slow_closed += 1
                s.close()
            self.stop.wait(2)


# ---------------------------------------------------------------------------------- main
def train_bundles(data: Path, cfg: Path) -> None:
    from aws_anomaly.config import load_settings
    from aws_anomaly.model import AnomalyModel
    from aws_anomaly.sources.demo import DemoSource

    settings = load_settings(cfg)
    now = pd.Timestamp.now(tz="UTC").floor("5min")
    demo = DemoSource(settings.job("demo").source, start=now)
    AnomalyModel(calibration={"method": "contamination", "contamination": 0.05}).fit(
        demo.fetch(now - pd.Timedelta(days=2), now)).save(data / "models" / "demo")
    from aws_anomaly.config import DemoSourceConfig

    prom_like = DemoSource(DemoSourceConfig(clusters=2, days=3, future_days=1, seed=11),
                           start=now)
    AnomalyModel(calibration={"method": "target_fpr", "target_fpr": 0.01}).fit(
        prom_like.fetch(now - pd.Timedelta(days=2), now)).save(data / "models" / "prom")


def _all_events(st: Any, job: str | None = None) -> list[Any]:
    out, cursor = [], None
    while True:
        page = st.list_events(job=job, limit=1000, cursor=cursor)
        out += page.items
        cursor = page.next_cursor
        if cursor is None:
            return out


def expected_alerts(db: Path) -> tuple[set[tuple[str, str]], set[str], dict[str, int],
                                       set[tuple[str, str]]]:
    """(alerts the demo job's stored events call for, ids of every stored event, the outbox
    counts, alerts still pending)."""
    from aws_anomaly.store import Store

    st = Store(f"sqlite:///{db}")
    try:
        want: set[tuple[str, str]] = set()
        for ev in _all_events(st, "demo"):
            want.add((ev.event_id, "firing"))
            if ev.status == "closed":
                want.add((ev.event_id, "resolved"))
        present = {e.event_id for e in _all_events(st)}
        pending = {(r.event_id, r.status) for r in st.outbox(job="demo", state="pending")}
        return want, present, st.outbox_counts(job="demo"), pending
    finally:
        st.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=90.0, help="seconds of load (<= 600)")
    ap.add_argument("--kills", type=int, default=2, help="SIGKILLs during the load (<= 10)")
    ap.add_argument("--webhook-down", type=float, default=25.0,
                    help="the webhook answers 500 for this many seconds from the start")
    ap.add_argument("--source-down", type=float, nargs=2, default=(20.0, 45.0),
                    metavar=("FROM", "TO"), help="the source answers 503 in this window (s)")
    ap.add_argument("--drain", type=float, default=60.0,
                    help="at most this many seconds to deliver the outbox at the end")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "bench" / "soak.json")
    args = ap.parse_args(argv)
    if not 5 <= args.duration <= 600 or not 0 <= args.kills <= 10:
        ap.error("--duration must be 5..600 s and --kills 0..10")
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="aws-anomaly-soak-"))
    data = tmp / "data"
    started = time.monotonic()
    hook = Webhook(up_at=started + args.webhook_down)
    prom = FakePrometheus(down=tuple(args.source_down))
    cfg = tmp / "service.yaml"
    cfg.write_text(CONFIG.format(data=data, hook=hook.url, prom=prom.url,
                                 queries=json.dumps({m: m for m in METRICS})))
    print(f"soak: {args.duration:.0f} s, {args.kills} SIGKILL(s), webhook down for "
          f"{args.webhook_down:.0f} s, source down {args.source_down[0]:.0f}-"
          f"{args.source_down[1]:.0f} s; folder {tmp}", flush=True)
    t = time.monotonic()
    train_bundles(data, cfg)
    print(f"trained both bundles in {time.monotonic() - t:.1f} s", flush=True)
    svc = Service(cfg, free_port(), tmp / "service.log")
    first_start = svc.start()
    # The down windows count from the first answer of the service, not from the setup.
    hook.up_at = time.monotonic() + args.webhook_down
    prom.t0 = time.monotonic()
    load = Load(svc, rng)
    load.start()
    kill_at = [args.duration * (i + 1) / (args.kills + 1) for i in range(args.kills)]
    restarts = []
    t0 = time.monotonic()
    try:
        for at in kill_at:
            time.sleep(max(0.0, t0 + at - time.monotonic()))
            svc.kill()
            restarts.append(round(svc.start(), 2))
            print(f"  {time.monotonic() - t0:5.1f} s: SIGKILL, restarted in {restarts[-1]} s",
                  flush=True)
        time.sleep(max(0.0, t0 + args.duration - time.monotonic()))
        load.join()
        # Drain: the webhook and the source are healthy now.
        hook.up_at = min(hook.up_at, time.monotonic())
        deadline = time.monotonic() + args.drain
        db = data / "aws_anomaly.db"
        while time.monotonic() < deadline:
            _, _, counts, _ = expected_alerts(db)
            if counts["pending"] == 0:
                break
            time.sleep(1)
        rc = svc.stop()
    finally:
        load.stop.set()
        if svc.proc is not None and svc.proc.poll() is None:
            svc.proc.kill()
    want, present, counts, pending = expected_alerts(data / "aws_anomaly.db")
    delivered_all = Counter(hook.alerts)
    delivered = set(delivered_all)
    duplicates = sum(n - 1 for n in delivered_all.values() if n > 1)
    missing = want - delivered - pending
    lost = load.acknowledged - present
    hz = load.healthz_ms
    result = {
        "duration_s": args.duration, "kills": args.kills, "first_start_s": round(first_start, 2),
        "restart_s": restarts, "exit_code_after_sigterm": rc,
        "alerts_expected": len(want), "alerts_delivered": len(delivered & want),
        "alerts_duplicated": duplicates, "alerts_pending_at_end": len(pending),
        "alerts_missing": len(missing), "alerts_unexpected": len(delivered - want),
        "outbox": counts, "webhook_requests": dict(hook.requests),
        "events_acknowledged": len(load.acknowledged), "events_lost": len(lost),
        "events_stored": len(present),
        "healthz_probes": len(hz), "healthz_failed_while_up": load.healthz_failed,
        "healthz_p50_ms": percentile(hz, 50), "healthz_p99_ms": percentile(hz, 99),
        "healthz_max_ms": max(hz) if hz else None,
        "score_answers": dict(load.score), "readyz_source": dict(load.ready),
        "source_answers": {str(k): v for k, v in prom.answers.items()},
        "slow_clients_closed_by_server": load.slow_closed,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_avg": os.getloadavg()},
    }
    rows = [
        ("alerts expected", result["alerts_expected"]),
        ("alerts delivered", result["alerts_delivered"]),
        ("alerts duplicated", duplicates),
        ("alerts pending at end", len(pending)),
        ("alerts missing", len(missing)),
        ("events acknowledged by the API", len(load.acknowledged)),
        ("events lost", len(lost)),
        ("/healthz probes (failed while up)", f"{len(hz)} ({load.healthz_failed})"),
        ("/healthz p50 / p99 / max ms", " / ".join(
            f"{x:.1f}" if x is not None else "-" for x in (
                result["healthz_p50_ms"], result["healthz_p99_ms"], result["healthz_max_ms"]))),
        ("score answers", ", ".join(f"{k}: {v}" for k, v in sorted(load.score.items()))),
        ("readyz saw the source", ", ".join(f"{k}: {v}" for k, v in load.ready.items())),
        ("restarts after SIGKILL (s)", ", ".join(map(str, restarts)) or "-"),
        ("exit code after SIGTERM", rc),
    ]
    width = max(len(k) for k, _ in rows)
    print()
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\nwrote {args.out}")
    hook.close()
    prom.close()
    return 0 if not lost and not missing else 1


if __name__ == "__main__":
    raise SystemExit(main())
