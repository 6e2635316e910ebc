"""Fetch throughput of the Prometheus source from a real, backfilled Prometheus.

Usage (from the repository root; needs ``prometheus`` and ``promtool`` on PATH)::

    .venv/bin/python -m benchmarks.prometheus_fetch [--clusters 10] [--days 28] [--repeats 3]

Generates the demo history (3 metrics, 5-minute step, ending now), backfills it with promtool,
starts Prometheus on 127.0.0.1 and times:

* the full history through ``PrometheusSource.fetch`` with the default chunking (one request
  per metric while a series fits in 11,000 points) and with 1,000-point chunks;
* the live loop's window, ``latest(1d)``.

Throughput is points per second, points = rows x metrics of the returned Dataset. The HTTP +
JSON decoding share is timed apart from assembling the Dataset (summed over the metrics,
which are queried in parallel, so it can exceed the wall time). Prints a table and writes
``out/bench/prometheus_fetch.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from aws_anomaly.config import PrometheusSourceConfig
from aws_anomaly.data import Dataset
from aws_anomaly.data.generator import DEFAULT_METRICS, generate_demo, generate_frame
from aws_anomaly.sources.prometheus import PrometheusSource

try:
    from tests.integration.promkit import backfill, running_prometheus, write_openmetrics
except ImportError:  # run as a script instead of a module
    sys.exit("run from the repository root as: python -m benchmarks.prometheus_fetch")

QUERIES = {m: f"max by (cluster) ({m})" for m in DEFAULT_METRICS}


class TimedSource(PrometheusSource):
    """Adds up the time spent in HTTP requests and JSON decoding."""

    http_s = 0.0

    def query_range(self, metric, first, last):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        try:
            return super().query_range(metric, first, last)
        finally:
            self.http_s += time.perf_counter() - t


def run_case(url: str, name: str, repeats: int, call: Callable[[PrometheusSource], Dataset],
             **cfg: object) -> dict[str, object]:
    walls, https, points, requests = [], [], 0, 0
    for _ in range(repeats):
        src = TimedSource(PrometheusSourceConfig(url=url, queries=QUERIES, step="5m",
                                                 timeout_s=120, **cfg))
        t = time.perf_counter()
        ds = call(src)
        walls.append(time.perf_counter() - t)
        https.append(src.http_s)
        points = len(ds) * len(ds.metrics)
        requests = src.requests_sent
        src.close()
    best = min(walls)
    return {"case": name, "points": points, "requests": requests,
            "best_s": best, "median_s": statistics.median(walls),
            "http_json_s": min(https), "points_per_s": points / best}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clusters", type=int, default=10)
    ap.add_argument("--days", type=int, default=28)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("out/bench/prometheus_fetch.json"))
    args = ap.parse_args()
    if not (shutil.which("prometheus") and shutil.which("promtool")):
        sys.exit("prometheus and promtool must be installed (apt-get install prometheus)")

    step = pd.Timedelta("5min")
    end = pd.Timestamp.now(tz="UTC").floor(step)
    start = end - pd.Timedelta(days=args.days)
    tmp = Path(tempfile.mkdtemp(prefix="bench-prom-"))
    try:
        raw, _ = generate_frame(clusters=args.clusters, days=args.days, seed=0,
                                start=start.isoformat())
        ds, _ = generate_demo(clusters=args.clusters, days=args.days, seed=0,
                              start=start.isoformat())
        t = time.perf_counter()
        write_openmetrics(raw, tmp / "demo.om")
        backfill(tmp / "demo.om", tmp / "tsdb")
        backfill_s = time.perf_counter() - t
        t = time.perf_counter()
        with running_prometheus(tmp / "tsdb") as url:
            ready_s = time.perf_counter() - t
            history = (start, end)
            rows = [
                run_case(url, f"history {args.days}d, 11000-point chunks", args.repeats,
                         lambda s: s.fetch(*history)),
                run_case(url, f"history {args.days}d, 1000-point chunks", args.repeats,
                         lambda s: s.fetch(*history), max_points_per_request=1000),
                run_case(url, "latest(1d) (live window)", args.repeats,
                         lambda s: s.latest(pd.Timedelta(days=1))),
            ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"Prometheus fetch: {args.clusters} clusters x {args.days} days x "
          f"{len(DEFAULT_METRICS)} metrics, 5m step ({len(ds) * len(ds.metrics):,} points); "
          f"backfill {backfill_s:.1f} s, Prometheus ready in {ready_s:.1f} s")
    head = f"{'case':<36} {'points':>9} {'requests':>8} {'best s':>8} {'median s':>9} " \
           f"{'http+json s*':>12} {'points/s':>11}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['case']:<36} {r['points']:>9,} {r['requests']:>8} {r['best_s']:>8.3f} "
              f"{r['median_s']:>9.3f} {r['http_json_s']:>12.3f} {r['points_per_s']:>11,.0f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "prometheus_fetch", "clusters": args.clusters, "days": args.days,
        "metrics": list(DEFAULT_METRICS), "step": "5m", "repeats": args.repeats,
        "backfill_s": backfill_s, "prometheus_ready_s": ready_s, "results": rows,
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(),
                    "platform": platform.platform()},
    }, indent=2))
    print("* time inside query_range (HTTP, Prometheus evaluation, JSON decoding), summed over "
          "the metrics queried in parallel")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
