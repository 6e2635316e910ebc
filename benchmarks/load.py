"""Load benchmark of the service: POST /v1/score over loopback, and scheduler ticks.

1. Starts ``aws-anomaly serve`` on the small demo (3 clusters) on a free loopback port.
2. Drives ``POST /v1/score`` at several concurrencies (one kept-alive connection per
   concurrent client): single-point requests that continue the running job's series (so the
   job's live scorer is continued), and 1,000-point requests. Prints throughput, p50/p99
   latency and the service's CPU per request (from /proc, so a shared machine's load shows in
   wall figures but hardly in this one). The default client (``--client raw``) writes the
   prepared request bytes and reads each answer whole (status, content-length, body) over
   asyncio streams, about 0.1 ms of CPU per request; ``--client httpx`` (the async httpx
   client, ~1.5 ms of CPU per request) was used for the issue's "before" figures. On a 2-core
   machine the client shares the CPUs with the service, so a heavy client caps the figures.
3. Times the scheduler's work in-process: one tick scoring 1,000 entities x 3 metrics (one
   new point each) with the demo source.

Prints a table, then the issue's aims with the figures of this run (and the load average,
since the machine is shared), and writes ``out/bench/load.json``. Run:
``.venv/bin/python benchmarks/load.py`` (``--quick`` for fewer requests; ``--only tick`` or
``--only api`` for one part; ``--client httpx`` for the httpx client).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
CONFIG = """
service:
  data_dir: {data}
jobs:
  - name: demo
    interval: 5m
    lookback: 1d
    source: {{type: demo, clusters: 3, days: 3, future_days: 1, speedup: 1}}
    model:
      history: 2d
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(tmp: Path) -> tuple[subprocess.Popen, str]:
    cfg = tmp / "service.yaml"
    cfg.write_text(CONFIG.format(data=tmp / "data"))
    port = free_port()
    env = {**os.environ, "AWS_ANOMALY__SERVICE__TOKEN": "bench"}
    proc = subprocess.Popen([sys.executable, "-m", "aws_anomaly", "serve", "--config", str(cfg),
                             "--port", str(port), "--log-level", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("service did not become ready")


def bodies(base: str) -> tuple[dict, dict]:
    items: list = []
    for _ in range(300):  # the first tick's scores
        items = httpx.get(f"{base}/v1/entities").json()["items"]
        if items and items[0]["last_score"] is not None:
            break
        time.sleep(0.2)
    ent = items[0]["entity"]
    s = httpx.get(f"{base}/v1/entities/{ent}/series").json()
    last = pd.Timestamp(s["timestamps"][-1])
    step = pd.Timestamp(s["timestamps"][-1]) - pd.Timestamp(s["timestamps"][-2])
    single = {"entity": ent, "timestamps": [(last + step).isoformat()],
              "metrics": {m: [v[-1]] for m, v in s["values"].items()}}
    n = 1000
    start = last - step * (n + 10_000)
    rng = np.random.default_rng(0)
    big = {"entity": "bench-cluster",
           "timestamps": [(start + i * step).isoformat() for i in range(n)],
           "metrics": {m: (np.resize(np.asarray(v), n) * (1 + 0.01 * rng.standard_normal(n))
                           ).round(6).tolist() for m, v in s["values"].items()}}
    return single, big


def _process_cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of process ``pid`` (Linux /proc), None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, TypeError):
        return None


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 answer read whole: (status, body). The service always sends a
    content-length for JSON."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def drive_raw(base: str, body: dict, concurrency: int, total: int) -> dict:
    """:func:`drive` with a minimal client: one asyncio stream per concurrent client, the
    request's bytes prepared once, each answer read whole and its status checked."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    payload = json.dumps(body).encode()
    request = (f"POST /v1/score HTTP/1.1\r\nhost: {host}:{port}\r\n"
               f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n\r\n"
               ).encode() + payload
    lat: list[float] = []
    errors = 0
    queue = iter(range(total))
    conns = [await asyncio.open_connection(host, int(port)) for _ in range(concurrency)]
    for reader, writer in conns[:1] * min(5, total):  # warm-up
        writer.write(request)
        await _answer(reader)

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal errors
        for _ in queue:
            t = time.perf_counter()
            writer.write(request)
            status, _ = await _answer(reader)
            lat.append(time.perf_counter() - t)
            if status != 200:
                errors += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(r, w) for r, w in conns))
    wall = time.perf_counter() - t0
    for _, writer in conns:
        writer.close()
    a = np.asarray(lat) * 1000
    return {"concurrency": concurrency, "requests": total, "errors": errors,
            "req_per_s": round(total / wall, 1), "p50_ms": round(float(np.percentile(a, 50)), 2),
            "p99_ms": round(float(np.percentile(a, 99)), 2)}


def measure(client: str, pid: int | None, base: str, body: dict, concurrency: int,
            total: int) -> dict:
    """One drive with ``client`` (``raw`` or ``httpx``), with the service's CPU per request
    and the client's own."""
    run = drive_raw if client == "raw" else drive
    cpu0, own0 = _process_cpu_s(pid), time.process_time()
    out = asyncio.run(run(base, body, concurrency, total))
    cpu1 = _process_cpu_s(pid)
    n = total + min(5, total)
    out["client"] = client
    out["service_cpu_ms"] = (round((cpu1 - cpu0) / n * 1000, 3)
                             if cpu0 is not None and cpu1 is not None else None)
    out["client_cpu_ms"] = round((time.process_time() - own0) / n * 1000, 3)
    return out


async def drive(base: str, body: dict, concurrency: int, total: int) -> dict:
    lat: list[float] = []
    errors = 0
    payload = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        for _ in range(min(5, total)):  # warm-up
            await client.post("/v1/score", content=payload, headers=headers)
        queue = iter(range(total))

        async def worker() -> None:
            nonlocal errors
            for _ in queue:
                t = time.perf_counter()
                r = await client.post("/v1/score", content=payload, headers=headers)
                lat.append(time.perf_counter() - t)
                if r.status_code != 200:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    a = np.asarray(lat) * 1000
    return {"concurrency": concurrency, "requests": total, "errors": errors,
            "req_per_s": round(total / wall, 1), "p50_ms": round(float(np.percentile(a, 50)), 2),
            "p99_ms": round(float(np.percentile(a, 99)), 2)}


def bench_tick(entities: int = 1000, model_kind: str = "default") -> dict:
    """One steady tick of ``entities`` clusters; ``model_kind`` ``"default"`` is what a job
    trains when it names no detector (``default_model``: kNN on two views), ``"ocsvm"`` the
    classic ``AnomalyModel()`` (the model the issue's "before" tick figure used)."""
    from aws_anomaly.config import JobConfig
    from aws_anomaly.model import AnomalyModel, default_model
    from aws_anomaly.runner import JobRunner
    from aws_anomaly.sources.demo import DemoSource
    from aws_anomaly.store import Store

    t0 = pd.Timestamp("2026-03-01T00:00Z")
    job = JobConfig.model_validate({
        "name": "bench", "lookback": "10m", "interval": "5m",
        "source": {"type": "demo", "clusters": entities, "days": 2, "future_days": 1,
                   "speedup": 60}})
    wall = [0.0]
    t = time.perf_counter()
    src = DemoSource(job.source, start=t0, wall_clock=lambda: wall[0])
    gen_s = time.perf_counter() - t
    print(f"demo source with {entities} entities generated in {gen_s:.1f} s", flush=True)
    train = src.fetch(t0 - pd.Timedelta(days=2), t0, entities=list(src.fetch(
        t0 - pd.Timedelta("10min"), t0).entities[:3]))
    model = (default_model(train.step) if model_kind == "default" else
             AnomalyModel(calibration={"method": "target_fpr", "target_fpr": 0.01})).fit(train)
    with tempfile.TemporaryDirectory() as d:
        runner = JobRunner(job, src, model, [], Store(f"sqlite:///{d}/s.db"))
        t = time.perf_counter()
        first = runner.tick()
        first_s = time.perf_counter() - t
        times = []
        for _ in range(2):
            wall[0] += 5.0  # one new 5-minute point per entity
            res = runner.tick()
            if not res.ok:
                raise SystemExit(f"tick failed: {res.error}")
            times.append((res.total_s, res.fetch_s, res.score_s, res.points))
    total, fetch, score, points = (float(np.median([x[i] for x in times])) for i in range(4))
    return {"entities": entities, "metrics": 3, "model": model_kind,
            "points_per_tick": int(points),
            "tick_s": round(total, 3), "fetch_s": round(fetch, 3), "score_s": round(score, 3),
            "other_s": round(total - fetch - score, 3),
            "load_avg": [round(x, 2) for x in os.getloadavg()],
            "first_tick_s": round(first_s, 3), "first_tick_points": first.points,
            "demo_generation_s": round(gen_s, 2)}


#: The issue's aims (issue 12): (row, figure before, aim).
AIMS = {
    "tick": ("scheduler tick, 1,000 entities x 3 metrics, one new point each", "18.5 s",
             "< 1 s"),
    "api": ("POST /v1/score single point, concurrency 1 / 8",
            "160 req/s (p99 16 ms) / 245 req/s (p99 188 ms)",
            ">= 500 req/s with p99 <= 20 ms at concurrency 8"),
}


def aims(results: dict) -> list[dict]:
    """The aims' rows with this run's figures and whether each is met."""
    rows = []
    single = {r["concurrency"]: r for r in results.get("single_point", [])}
    if 1 in single and 8 in single:
        a, b = single[1], single[8]
        rows.append({"what": AIMS["api"][0], "before": AIMS["api"][1], "aim": AIMS["api"][2],
                     "now": f"{a['req_per_s']:.0f} req/s (p99 {a['p99_ms']:.0f} ms) / "
                            f"{b['req_per_s']:.0f} req/s (p99 {b['p99_ms']:.0f} ms)",
                     "met": bool(b["req_per_s"] >= 500 and b["p99_ms"] <= 20
                                 and b["errors"] == 0)})
    t = results.get("scheduler_tick")
    if t:
        rows.append({"what": AIMS["tick"][0], "before": AIMS["tick"][1], "aim": AIMS["tick"][2],
                     "now": f"{t['tick_s']} s (fetch {t['fetch_s']} s, features + score "
                            f"{t['score_s']} s)", "met": bool(t["tick_s"] < 1.0)})
    return rows


def print_aims(rows: list[dict], load: dict, client: str = "raw") -> None:
    print(f"\nload average (1, 5, 15 min): {load.get('load_avg_start')} at start, "
          f"{load.get('load_avg_end')} at end, {load.get('cpus')} CPUs")
    print(f"HTTP client: {client}")
    print("| what | before | now | aim | met |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['what']} | {r['before']} | {r['now']} | {r['aim']} | "
              f"{'yes' if r['met'] else 'no'} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer requests")
    ap.add_argument("--out", default=str(ROOT / "out" / "bench" / "load.json"))
    ap.add_argument("--tick-entities", type=int, default=1000)
    ap.add_argument("--client", choices=("raw", "httpx"), default="raw",
                    help="the HTTP client driving the service (see the module docstring)")
    ap.add_argument("--tick-model", choices=("default", "ocsvm"), default="default",
                    help="the tick's model: a job's default (kNN, default_model) or the "
                         "classic One-Class SVM AnomalyModel()")
    ap.add_argument("--only", choices=("api", "tick"), default=None,
                    help="run one part: the HTTP API or the scheduler tick")
    args = ap.parse_args()
    n_single = 300 if args.quick else 2000
    n_big = 20 if args.quick else 100
    # The machine is often shared: record its load so figures from runs can be compared.
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                 "load_avg_start": [round(x, 2) for x in os.getloadavg()]},
               "client": args.client,
                     "single_point": [], "thousand_points": []}
    with tempfile.TemporaryDirectory() as tmp:
        if args.only == "tick":
            proc, base = None, ""
        else:
            proc, base = start_service(Path(tmp))
        try:
            if proc is not None:
                single, big = bodies(base)
                for c in (1, 8, 32):
                    results["single_point"].append(measure(args.client, proc.pid, base, single,
                                                           c, n_single))
                for c in (1, 4):
                    results["thousand_points"].append(measure(args.client, proc.pid, base, big,
                                                              c, n_big))
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(30)
    results["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(f"load average (1, 5, 15 min): {results['machine']['load_avg_start']} at start, "
          f"{results['machine']['load_avg_end']} at end")
    print(f"client: {args.client}")
    print(f"{'request':<16}{'conc.':>6}{'reqs':>7}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'errors':>8}{'svc CPU ms':>12}{'client CPU ms':>15}")
    for kind, rows in (("1 point", results["single_point"]),
                       ("1,000 points", results["thousand_points"])):
        for r in rows:
            print(f"{kind:<16}{r['concurrency']:>6}{r['requests']:>7}{r['req_per_s']:>9}"
                  f"{r['p50_ms']:>9}{r['p99_ms']:>9}{r['errors']:>8}"
                  f"{r['service_cpu_ms'] or '-':>12}{r['client_cpu_ms']:>15}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    if args.only != "api":
        results["scheduler_tick"] = t = bench_tick(args.tick_entities, args.tick_model)
        print(f"\nscheduler tick ({t['model']} model): {t['entities']} entities x "
              f"{t['metrics']} metrics, "
              f"{t['points_per_tick']} new points: {t['tick_s']} s (fetch {t['fetch_s']} s, "
              f"features+score {t['score_s']} s, rest {t['other_s']} s); first tick "
              f"{t['first_tick_s']} s for {t['first_tick_points']} points")
        results["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    results["aims"] = aims(results)
    print_aims(results["aims"], results["machine"], args.client)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
