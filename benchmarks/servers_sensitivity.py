"""Sensitivity of the label-free default's main parameters on the real servers (issue 8, item 7).

Issue 8 asks for one parameter set, chosen leave-one-server-out, "reported with the
sensitivity of the main parameters". The POT risk's sensitivity is in docs/benchmarks.md
("Label-free thresholds and decisions"); this script measures the model's other main
parameters, one change at a time from the shipped ``default_model(step)``:

* ``n_neighbors`` 3 (shipped 1): the distance to the 3 nearest reference rows, averaged;
* ``clip`` 5 and 20 (shipped 10): where each scaled column is clipped;
* ``calibration_holdout`` 0.10 and 0.25 (shipped 0.15): the share of each entity's history
  held out for the threshold;
* ``scaler`` standard (shipped robust): mean / standard deviation instead of median / IQR;
* ``log_std`` off (shipped on): the level view's rolling spreads as they are, not their log;
* ``tail_weight`` 0, 0.125 and 0.5 (shipped 0.25, on from 10 metrics): the empirical-tail term;
* ``excess_weight`` 0, 0.125 and 0.5 (shipped 0.25, on from 10 metrics): the volatility excess;
  and both terms off (the default for fewer than 10 metrics).

Each variant runs through the bench itself (:func:`aws_anomaly.evaluation.servers_bench.
run_servers_bench`, the same rules, metrics and tables as ``aws-anomaly bench servers``), then
leave-one-server-out picks, per held-out server, the variant with the best mean best F1 on
the other nine (:func:`~aws_anomaly.evaluation.servers_bench.leave_one_server_out`).

Usage::

    nice .venv/bin/python benchmarks/servers_sensitivity.py --data ../shared/data/servers \\
        --out out/bench-sensitivity [--workers 2] [--variants shipped tail_weight=0.5]

(~15 min on 2 cores.) Prints the table and writes ``OUT/scores.{json,md}``. Results:
docs/benchmarks.md ("Sensitivity of the default's main parameters").
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from aws_anomaly.evaluation.servers_bench import (
    DetectorSpec,
    ModelDetector,
    leave_one_server_out,
    run_servers_bench,
)

#: name -> the overrides of ``default_model(step, **overrides)``; the first is the shipped one.
VARIANTS: dict[str, dict[str, Any]] = {
    "shipped": {},
    "n_neighbors=3": {"detector_params": {"n_neighbors": 3}},
    "clip=5": {"clip": 5.0},
    "clip=20": {"clip": 20.0},
    "calibration_holdout=0.10": {"calibration_holdout": 0.10},
    "calibration_holdout=0.25": {"calibration_holdout": 0.25},
    "scaler=standard": {"scaler": "standard"},
    "log_std=False": {"log_std": False},
    "tail_weight=0": {"detector_params": {"tail_weight": 0.0}},
    "tail_weight=0.125": {"detector_params": {"tail_weight": 0.125}},
    "tail_weight=0.5": {"detector_params": {"tail_weight": 0.5}},
    "excess_weight=0": {"detector_params": {"excess_weight": 0.0}},
    "excess_weight=0.125": {"detector_params": {"excess_weight": 0.125}},
    "excess_weight=0.5": {"detector_params": {"excess_weight": 0.5}},
    "no terms for many metrics": {"detector_params": {"tail_weight": 0.0, "excess_weight": 0.0}},
}
MAX_FPR = 0.02


def registry() -> dict[str, DetectorSpec]:
    """One bench detector per variant."""
    return {name: DetectorSpec(ModelDetector, {"builder": "default_model",
                                                "validation_share": None, **overrides},
                               (), "product", f"default_model(step, **{overrides!r})")
            for name, overrides in VARIANTS.items()}


def table(report: dict[str, Any]) -> str:
    """The variants' means (best F1, own F1, mean / max FPR, servers over 2 %, event P) and
    the leave-one-server-out row."""
    rows = ["| variant | best F1 | own F1 | mean FPR | max FPR | servers FPR > 0.02 | event P |",
            "|---|---|---|---|---|---|---|"]

    def line(name: str, per: list[dict[str, Any]]) -> str:
        fpr = np.array([m["fpr"] for m in per])
        return (f"| {name} | {np.mean([m['best_f1'] for m in per]):.3f} | "
                f"{np.mean([m['f1'] for m in per]):.3f} | {fpr.mean():.4f} | {fpr.max():.3f} | "
                f"{int((fpr > MAX_FPR).sum())} | "
                f"{np.mean([m['event_precision'] for m in per]):.3f} |")

    per_config = {}
    names = [n for n in VARIANTS if n in report["detectors"]]
    for name in names:
        servers = report["detectors"][name]["servers"]
        per_config[name] = servers
        rows.append(line(name, [m for m in servers.values() if m["status"] == "ok"]))
    loso = leave_one_server_out(per_config, names)
    chosen = [v for v in loso["servers"].values() if v.get("status") == "ok"]
    rows.append(line("chosen leave-one-server-out", chosen))
    picks = "; ".join(f"{k.split('/')[-1]} {v.get('params')}"
                      for k, v in loso["servers"].items())
    return "\n".join(rows) + f"\n\nleave-one-server-out choices: {picks}\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("out/bench-sensitivity"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--servers", nargs="*", default=None, help="globs, as the bench's")
    ap.add_argument("--variants", nargs="*", default=None, choices=list(VARIANTS),
                    help="a subset of the variants (default: all)")
    args = ap.parse_args()
    report = run_servers_bench(args.data, args.out, servers=args.servers,
                               detectors=args.variants or list(VARIANTS), registry=registry(),
                               workers=args.workers, progress=False, check_causality=False)
    print(table(report))


if __name__ == "__main__":
    main()
