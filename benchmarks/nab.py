"""Detection quality on real labelled data: the full NAB benchmark, and the demo-cluster table.

Usage (from the repository root)::

    .venv/bin/python benchmarks/nab.py [--data ../shared/data/nab] [--out out/bench/nab]
                                       [--workers 2] [--folds 5] [--skip-demo]

Runs ``aws-anomaly bench nab`` on every file under ``--data`` (our streaming detectors, the
PyOD / river peers, and every published detector found under ``results/``), then ``aws-anomaly
bench demo`` (3 clusters, 28 days), prints both tables and the run times, and writes
``OUT/nab/scores.{json,md}``, ``OUT/demo/scores.{json,md}`` and ``OUT/nab_bench.json`` (run
times, machine, load).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from aws_anomaly.evaluation.nab_bench import render_markdown, run_demo_bench, run_nab_bench

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> dict:
    """Run both benchmarks; return the summary written to ``OUT/nab_bench.json``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_data = Path(os.environ.get("AWS_ANOMALY_DATA", REPO.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=default_data / "nab")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "bench" / "nab")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args(argv)

    summary: dict = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_before": os.getloadavg()},
        "workers": args.workers,
    }
    t0 = time.perf_counter()
    nab = run_nab_bench(args.data, args.out / "nab", folds=args.folds, workers=args.workers)
    summary["nab_seconds"] = time.perf_counter() - t0
    print(render_markdown(nab))
    summary["nab"] = {
        name: {
            "kind": e["kind"],
            "optimized": e["optimized"]["overall"],
            "published": e["published"]["overall"] if e["published"] else None,
            "cv": e["cv"]["overall"] if e["cv"] else None,
            "event_f1": e["events"]["f1"],
            "run_seconds": e["seconds"],
        }
        for name, e in nab["detectors"].items()
    }
    if not args.skip_demo:
        t1 = time.perf_counter()
        demo = run_demo_bench(args.out / "demo", workers=args.workers)
        summary["demo_seconds"] = time.perf_counter() - t1
        print(render_markdown(demo))
        summary["demo"] = {
            name: {"kind": e["kind"], "events": e["events"],
                   "optimized": e["optimized"]["overall"]}
            for name, e in demo["detectors"].items()
        }
    summary["machine"]["load_after"] = os.getloadavg()
    summary["total_seconds"] = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "nab_bench.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"NAB bench {summary['nab_seconds']:.0f} s, demo bench "
          f"{summary.get('demo_seconds', 0):.0f} s, total {summary['total_seconds']:.0f} s "
          f"on {args.workers} workers; wrote {args.out}")
    return summary


if __name__ == "__main__":
    main()
