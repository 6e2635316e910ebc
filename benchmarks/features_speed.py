"""Micro-benchmark of the feature layer: batch rows/s and streaming update latency.

Run: ``.venv/bin/python benchmarks/features_speed.py [--rows 1000000] [--repeats 3]``.
Prints a table and writes ``out/bench/features_speed.json``. The machine load is recorded too:
on a shared 2-core box, wall times vary with whatever else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from aws_anomaly.features import (
    FeatureSpec,
    StreamingFeatureBuilder,
    build_features,
    iter_features,
)

METRICS = ["cluster_cpu_request_ratio", "cluster_mem_request_ratio", "cluster_pod_ratio"]


def make_series(n: int, seed: int = 0) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """Cluster-like ratios: daily cycle, noise, pod ratio in steps."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2026-01-01", periods=n, freq="5min", tz="UTC")
    day = np.sin(2 * np.pi * np.arange(n) / 288)
    x = np.c_[0.55 + 0.2 * day, 0.6 + 0.1 * day, 0.4 + 0.15 * day]
    x += 0.01 * rng.standard_normal((n, 3))
    x[:, 2] = np.round(x[:, 2] * 110) / 110
    return x, ts


def bench_batch(n: int, repeats: int, spec: FeatureSpec) -> dict[str, float]:
    x, ts = make_series(n)
    out: dict[str, float] = {}
    for order in ("C", "F"):
        times, cpu = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            fm = build_features(x, ts, METRICS, spec, order=order)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            del fm
        out[f"batch_{order}_best_s"] = min(times)
        out[f"batch_{order}_median_s"] = float(np.median(times))
        out[f"batch_{order}_rows_per_s"] = n / min(times)
        out[f"batch_{order}_cpu_s"] = min(cpu)  # all threads; less sensitive to other load
    # Chunked, one reused buffer: what a score-as-you-go pipeline would do.
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        total = 0.0
        for _, _, block in iter_features(x, ts, METRICS, spec, reuse=True):
            total += float(block[-1, 0])  # touch the block, as a consumer would
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    out["iter_best_s"] = min(times)
    out["iter_rows_per_s"] = n / min(times)
    out["iter_cpu_s"] = min(cpu)
    return out


def bench_streaming(updates: int, spec: FeatureSpec) -> dict[str, float]:
    warm_rows = spec.min_history * 2
    x, ts = make_series(warm_rows + updates, seed=1)
    sb = StreamingFeatureBuilder(spec, METRICS)
    sb.warm(x[:warm_rows], ts[:warm_rows])
    stamps = list(ts[warm_rows:])
    lat = np.empty(updates)
    for i in range(updates):
        t0 = time.perf_counter()
        sb.update(stamps[i], x[warm_rows + i])
        lat[i] = time.perf_counter() - t0
    lat *= 1e3
    return {"stream_p50_ms": float(np.percentile(lat, 50)),
            "stream_p90_ms": float(np.percentile(lat, 90)),
            "stream_p99_ms": float(np.percentile(lat, 99)),
            "stream_min_ms": float(lat.min())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--updates", type=int, default=5000)
    ap.add_argument("--out", type=Path, default=Path("out/bench/features_speed.json"))
    args = ap.parse_args()
    spec = FeatureSpec()
    load_before = os.getloadavg()[0]
    res: dict[str, object] = {
        "rows": args.rows, "metrics": len(METRICS),
        "n_features": len(build_features(*make_series(2), METRICS, spec).names),
        "min_history": spec.min_history, "cpu_count": os.cpu_count(),
        "python": platform.python_version(), "numpy": np.__version__,
    }
    res.update(bench_batch(args.rows, args.repeats, spec))
    res.update(bench_streaming(args.updates, spec))
    res["load_avg_1m_before"] = load_before
    res["load_avg_1m_after"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2))
    print(f"{'measure':<28}{'value':>16}")
    for key, val in res.items():
        shown = f"{val:,.4f}" if isinstance(val, float) else str(val)
        print(f"{key:<28}{shown:>16}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
