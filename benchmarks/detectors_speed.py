"""Micro-benchmark of the detectors: fit time, batch scoring rows/s, single-row latency.

Run: ``.venv/bin/python benchmarks/detectors_speed.py [--rows 1000000] [--features 110]
[--train 20000] [--repeats 3] [--detectors ocsvm,robust]``.
Each detector (default hyperparameters, random_state=0) is fitted on ``--train`` random normal
rows and scores ``--rows`` rows; the input check alone (``check_feature_matrix``) is timed too,
since every detector pays it. Prints a table and writes ``out/bench/detectors_speed.json``.
CPU time (all threads) is recorded beside wall time, and so is the load average: on a shared
2-core box, wall times vary with whatever else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import sklearn

from aws_anomaly.detectors import DETECTORS, check_feature_matrix


def _timed(fn, repeats: int) -> tuple[float, float, float]:
    """Best wall, median wall and best CPU seconds over ``repeats`` calls (1 if slow)."""
    walls, cpus = [], []
    for i in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        if i == 0 and walls[0] > 10.0:
            break  # slow detectors: one run says enough
    return min(walls), float(np.median(walls)), min(cpus)


def bench_detector(name: str, train: np.ndarray, X: np.ndarray, repeats: int) -> dict:
    cls = DETECTORS[name]
    params = {"random_state": 0} if "random_state" in cls().get_params() else {}
    det = cls(**params)
    t0 = time.perf_counter()
    det.fit(train)
    fit_s = time.perf_counter() - t0
    best, median, cpu = _timed(lambda: det.score_samples(X), repeats)
    one = X[:1]
    det.score_samples(one)
    lat = []
    for _ in range(200):
        t0 = time.perf_counter()
        det.score_samples(one)
        lat.append(time.perf_counter() - t0)
    row = {"fit_s": fit_s, "score_best_s": best, "score_median_s": median,
           "score_cpu_s": cpu, "rows_per_s": X.shape[0] / best,
           "one_row_p50_ms": float(np.median(lat) * 1e3)}
    if name == "ocsvm":
        row["n_support_vectors"] = det.n_support_vectors_
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=110)
    ap.add_argument("--train", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--detectors", default=",".join(DETECTORS))
    ap.add_argument("--out", type=Path, default=Path("out/bench/detectors_speed.json"))
    args = ap.parse_args()
    names = [n.strip() for n in args.detectors.split(",") if n.strip()]
    unknown = sorted(set(names) - set(DETECTORS))
    if unknown:
        ap.error(f"unknown detector(s) {unknown}; allowed: {sorted(DETECTORS)}")

    rng = np.random.default_rng(0)
    train = rng.standard_normal((args.train, args.features))
    X = rng.standard_normal((args.rows, args.features))
    load_before = os.getloadavg()[0]
    check_best, _, check_cpu = _timed(lambda: check_feature_matrix(X, where="bench"),
                                      args.repeats)
    results = {name: bench_detector(name, train, X, args.repeats) for name in names}
    res = {
        "rows": args.rows, "features": args.features, "train_rows": args.train,
        "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "numpy": np.__version__, "sklearn": sklearn.__version__,
        "input_check_best_s": check_best, "input_check_cpu_s": check_cpu,
        "detectors": results,
        "load_avg_1m_before": load_before, "load_avg_1m_after": os.getloadavg()[0],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2))

    print(f"{args.rows:,} x {args.features} rows scored, fitted on {args.train:,}; "
          f"input check {check_best:.3f} s; load {load_before:.1f} -> "
          f"{res['load_avg_1m_after']:.1f} on {os.cpu_count()} CPUs")
    head = (f"{'detector':<10}{'fit s':>8}{'score s':>10}{'cpu s':>9}{'rows/s':>14}"
            f"{'1-row ms':>10}{'SVs':>6}")
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        print(f"{name:<10}{r['fit_s']:>8.2f}{r['score_best_s']:>10.3f}{r['score_cpu_s']:>9.2f}"
              f"{r['rows_per_s']:>14,.0f}{r['one_row_p50_ms']:>10.3f}"
              f"{r.get('n_support_vectors', ''):>6}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
