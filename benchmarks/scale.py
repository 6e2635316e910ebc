"""Scale benchmark: scoring many entities in one process vs on a Dask ``LocalCluster``.

Usage::

    .venv/bin/python benchmarks/scale.py [--entities 200] [--days 7] [--workers 2]
        [--detectors robust,ocsvm] [--repeat 2] [--out out/bench/scale.json]

Data: ``generate_demo`` with ``--entities`` clusters over ``--days`` days (5-minute steps). A
model per detector is fitted on the first five days of eight of the clusters (fit time is not
what is measured). Then every row of every entity is scored (the first day of each entity is
its feature warm-up, as in ``AnomalyModel.score`` without history):

* ``in-process``: ``AnomalyModel.score(data)`` in this process, one call;
* ``in-process chunked``: the same partitions the cluster gets (``--chunk`` entities each, by
  default what ``score_dataset`` picks for the workers), scored one after the other in this
  process with :func:`aws_anomaly.scale.score_partition` and concatenated: the fair one-core
  baseline, since scoring 400k rows in one call is slower per row than in chunks;
* ``dask object``: :func:`aws_anomaly.scale.score_dataset` with the fitted model scattered to
  the workers (the first call is timed separately as ``cold``: worker imports, model transfer);
* ``dask bundle``: the same with a bundle path that each worker loads (checksums verified) once.

The cluster is ``local_cluster(n_workers=--workers, threads_per_worker=1)``: worker processes
bound to 127.0.0.1; its start-up time is reported, not counted in rows/s. Rows/s = input rows
per wall-clock second, best of ``--repeat`` warm runs. Each distributed result is compared with
the in-process one (largest absolute difference of ``anomaly_score``, equal flags).

On a machine with N cores, N workers can at best divide the in-process time by about N; the
client still splits the dataset, ships it to the workers and concatenates the results, which is
serial work.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aws_anomaly.data.generator import generate_demo
from aws_anomaly.model import AnomalyModel
from aws_anomaly.scale import local_cluster, score_dataset, score_partition


def _timed(fn: Any, repeat: int = 1) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _compare(got: pd.DataFrame, ref: pd.DataFrame) -> dict[str, Any]:
    return {
        "max_abs_diff_anomaly_score": float(np.abs(got["anomaly_score"].to_numpy()
                                                   - ref["anomaly_score"].to_numpy()).max()),
        "flags_equal": bool((got["is_anomaly"].to_numpy() == ref["is_anomaly"].to_numpy()).all()),
        "identical": bool(got.equals(ref)),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entities", type=int, default=200)
    ap.add_argument("--days", type=float, default=7)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--detectors", default="robust,ocsvm")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=None,
                    help="entities per chunk / task (default: ceil(entities / (4 * workers)))")
    ap.add_argument("--out", default="out/bench/scale.json")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    data, _ = generate_demo(clusters=args.entities, days=args.days, seed=0)
    gen_s = time.perf_counter() - t0
    n_rows = len(data)
    print(f"data: {args.entities} entities x {args.days:g} days = {n_rows} rows "
          f"(generated in {gen_s:.1f} s)", flush=True)
    fit_on = data.select(list(data.entities[:8])).slice_time(
        None, data.frame["timestamp"].min() + pd.Timedelta(days=min(5.0, args.days)))

    chunk = args.chunk or math.ceil(args.entities / (4 * args.workers))
    ents = list(data.entities)
    groups = [ents[i:i + chunk] for i in range(0, len(ents), chunk)]
    rows: list[dict[str, Any]] = []
    tmp = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    models = {}
    for det in args.detectors.split(","):
        models[det] = AnomalyModel(detector=det).fit(fit_on)
        # In-process reference, measured before the cluster exists so it has every core.
        secs, ref = _timed(lambda m=models[det]: m.score(data), args.repeat)
        rows.append({"detector": det, "mode": "in-process", "workers": 0, "seconds": secs,
                     "rows_per_s": n_rows / secs, "ref": ref})
        print(f"{det:8s} in-process      {secs:8.2f} s  {n_rows / secs:10.0f} rows/s", flush=True)
        secs, got = _timed(lambda m=models[det]: pd.concat(
            [score_partition(m, data.select(g)) for g in groups], ignore_index=True),
            args.repeat)
        check = _compare(got, ref)
        rows.append({"detector": det, "mode": "in-process chunked", "workers": 0,
                     "seconds": secs, "rows_per_s": n_rows / secs, **check})
        print(f"{det:8s} in-proc chunked {secs:8.2f} s  {n_rows / secs:10.0f} rows/s  "
              f"(chunks of {chunk} entities, max |diff| "
              f"{check['max_abs_diff_anomaly_score']:.1e})", flush=True)

    t0 = time.perf_counter()
    with local_cluster(args.workers, threads_per_worker=1) as client:
        start_s = time.perf_counter() - t0
        print(f"LocalCluster with {args.workers} workers started in {start_s:.1f} s", flush=True)
        for det, model in models.items():
            ref = next(r["ref"] for r in rows if r["detector"] == det)
            path = model.save(tmp / det)
            for mode, ref_model in (("dask object", model), ("dask bundle", path)):
                cold, got = _timed(lambda rm=ref_model: score_dataset(
                    rm, data, client=client, entities_per_task=chunk))
                secs, got = _timed(lambda rm=ref_model: score_dataset(
                    rm, data, client=client, entities_per_task=chunk), args.repeat)
                check = _compare(got, ref)
                rows.append({"detector": det, "mode": mode, "workers": args.workers,
                             "seconds": secs, "rows_per_s": n_rows / secs, "cold_seconds": cold,
                             **check})
                print(f"{det:8s} {mode:14s} {secs:8.2f} s  {n_rows / secs:10.0f} rows/s  "
                      f"(cold {cold:.2f} s, max |diff| {check['max_abs_diff_anomaly_score']:.1e}"
                      f", flags equal {check['flags_equal']})", flush=True)

    for r in rows:
        r.pop("ref", None)
        one = next(b for b in rows if b["detector"] == r["detector"]
                   and b["mode"] == "in-process")
        chunked = next(b for b in rows if b["detector"] == r["detector"]
                       and b["mode"] == "in-process chunked")
        r["speedup_vs_one_call"] = one["seconds"] / r["seconds"]
        r["speedup_vs_chunked"] = chunked["seconds"] / r["seconds"]

    header = (f"{'detector':8s} {'mode':18s} {'workers':>7s} {'seconds':>8s} {'rows/s':>10s} "
              f"{'x one call':>10s} {'x chunked':>9s}")
    print()
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['detector']:8s} {r['mode']:18s} {r['workers']:7d} {r['seconds']:8.2f} "
              f"{r['rows_per_s']:10.0f} {r['speedup_vs_one_call']:10.2f} "
              f"{r['speedup_vs_chunked']:9.2f}")
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    result = {
        "benchmark": "scale", "entities": args.entities, "days": args.days, "rows": n_rows,
        "workers": args.workers, "threads_per_worker": 1, "repeat": args.repeat,
        "entities_per_task": chunk,
        "cluster_start_seconds": start_s, "data_generation_seconds": gen_s,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": sys.version.split()[0], "load_average_at_end": load},
        "results": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
