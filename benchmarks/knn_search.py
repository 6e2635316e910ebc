"""The default model's live nearest-neighbour search on real servers: full first pass against
the projected one (``KNNDetector._projected_candidates``), in one process.

Usage::

    .venv/bin/python benchmarks/knn_search.py [--data ../shared/data/servers]
        [--servers smd/machine-3-3 asd/omi-4] [--points 1500] [--out out/bench/knn_search.json]

Per server (all of ``--data`` by default): ``default_model(step)`` fit on ``train.parquet`` as
``train`` does, then the first ``--points`` ready rows of the test period (features built with
the training rows as look-back, constant metrics blinded: what the live path hands the
detector). For each row, the detector's part of a live point (``_scores_few``: one row, every
view) is timed with the projection and, on a copy of the detector, without it (the full
float32 pass over every column), alternately, best of ``--repeat`` passes, one BLAS thread.
The projected time holds the tail term where the model has it on (many metrics); its own
part is timed too (``tail p50/p99``). Also: each view's column count and projected axes, the
projection's first-use cost (made once per process, on the first live point), and the
largest relative difference between the one-row scores and the batch scores of the same rows
(both are the exact nearest distance).

Prints a table and writes the JSON (with the load average: the machine is shared).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from aws_anomaly.detectors.knn import KNNDetector
from aws_anomaly.evaluation.servers_bench import discover_servers, load_server
from aws_anomaly.presets import default_model

DATA = Path(os.environ.get("AWS_ANOMALY_DATA", Path(__file__).resolve().parents[2] / "shared"
                           / "data")) / "servers"


def without_projection(det: KNNDetector) -> KNNDetector:
    """A copy of ``det`` whose views all take the full first pass."""
    off = copy.deepcopy(det)
    off.__dict__.pop("_view_cache", None)
    cache = off.__dict__.setdefault("_view_cache", {})
    for view in range(len(off.views_)):
        cache[("proj", view)] = None
    return off


def ab_times(det: KNNDetector, X: np.ndarray, repeat: int = 3) -> dict[str, float]:
    """p50 / p99 microseconds of one row's ``_scores_few``, full pass against projected
    (alternating per row, best of ``repeat`` passes), and the one-row vs batch gap."""
    first = time.perf_counter()
    projected = [det._projection(v) for v in range(len(det.views_))]
    first_ms = (time.perf_counter() - first) * 1e3
    off = without_projection(det)
    full, proj = np.full(len(X), np.inf), np.full(len(X), np.inf)
    tail = np.full(len(X), np.inf)
    if det.tail_weight:
        det._tail_term(X[:1])  # its sorted tables, made on first use
    with threadpool_limits(1):
        for _ in range(repeat):
            for i in range(len(X)):
                row = X[i:i + 1]
                t0 = time.perf_counter()
                off._scores_few(row)
                t1 = time.perf_counter()
                det._scores_few(row)
                t2 = time.perf_counter()
                if det.tail_weight:
                    det._tail_term(row)
                t3 = time.perf_counter()
                full[i] = min(full[i], t1 - t0)
                proj[i] = min(proj[i], t2 - t1)
                tail[i] = min(tail[i], t3 - t2)
    check = X[:300]
    batch = det.score_samples(check)
    one = np.array([det.score_samples(check[i:i + 1])[0] for i in range(len(check))])
    gap = float(np.max(np.abs(one - batch) / np.maximum(np.abs(batch), 1e-12))) if len(check) \
        else 0.0
    us = 1e6
    return {"views": [len(v) for v in det.views_],
            "axes": [None if p is None else int(p[1].shape[1]) for p in projected],
            "first_use_ms": first_ms,
            "full_p50_us": float(np.median(full) * us), "full_p99_us": float(
                np.percentile(full, 99) * us),
            "projected_p50_us": float(np.median(proj) * us), "projected_p99_us": float(
                np.percentile(proj, 99) * us),
            # the tail term's part of both (0 when the model leaves it off)
            "tail_p50_us": float(np.median(tail) * us) if det.tail_weight else 0.0,
            "tail_p99_us": float(np.percentile(tail, 99) * us) if det.tail_weight else 0.0,
            "one_row_vs_batch_rel": gap}


def server_rows(key: str, folder: Path, points: int) -> tuple[KNNDetector, np.ndarray]:
    """The fitted default model's detector and the first ``points`` live rows of the test."""
    sd = load_server(key, folder)
    model = default_model(sd.train.step).fit(sd.train)
    X, ready, _ = model._features(sd.test, sd.train, "test")
    return model.detector_, model.constant_guard.blind(X)[ready][:points]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--servers", nargs="*", default=None, help="keys such as smd/machine-3-3")
    ap.add_argument("--points", type=int, default=1500)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("out/bench/knn_search.json"))
    args = ap.parse_args()
    found = dict(discover_servers(args.data))
    keys = args.servers or sorted(found)
    rows: list[dict[str, Any]] = []
    head = (f"{'server':18} {'views':>10} {'axes':>10} {'first use':>10} "
            f"{'full p50/p99 us':>16} {'projected p50/p99':>18} {'tail p50/p99':>13} "
            f"{'1-row vs batch':>15}")
    print(head)
    for key in keys:
        det, X = server_rows(key, found[key], args.points)
        r = {"server": key, "rows": len(X), **ab_times(det, X, args.repeat)}
        rows.append(r)
        print(f"{key:18} {'/'.join(map(str, r['views'])):>10} "
              f"{'/'.join('-' if a is None else str(a) for a in r['axes']):>10} "
              f"{r['first_use_ms']:8.0f}ms {r['full_p50_us']:7.0f}/{r['full_p99_us']:<7.0f}  "
              f"{r['projected_p50_us']:8.0f}/{r['projected_p99_us']:<8.0f} "
              f"{r['tail_p50_us']:6.0f}/{r['tail_p99_us']:<6.0f} "
              f"{r['one_row_vs_batch_rel']:15.1e}", flush=True)
    load = os.getloadavg()
    print(f"\nload average (1, 5, 15 min): {load}, {os.cpu_count()} CPUs")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "load_average": load,
                                    "python": platform.python_version()}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
