"""The label-free threshold pooled over a model's entities, or one per entity (issue 8).

``default_model`` holds every entity to one POT threshold fit on the pooled held-out scores
(``entity_thresholds=False``), or gives each entity with enough held-out rows its own, the
same rule fit on its own scores (``entity_thresholds=True``, the default since 2026-12-02).
Measured on the demo that ``make run`` serves (3 EKS clusters a seed): ``default_model`` fit
on train + validation without labels as ``train`` does, scored on the test split. Per seed
and rule: F1 at the model's own threshold, FPR, the largest FPR of one entity, event recall
and the best F1 of any single threshold on the scores (each rule calibrates the scores its own
way, so the ranking across entities differs too).

The real-servers bench is unaffected: each server is one entity, and a model of one entity
keeps the pooled threshold (the same one).

Usage::

    nice .venv/bin/python benchmarks/entity_thresholds.py --seeds 0 7 42 1234   # ~3 min
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers_members import best_and_own_f1


def measure(y: np.ndarray, entity: np.ndarray, score: np.ndarray, flag: np.ndarray
            ) -> dict[str, float]:
    """Own F1, FPR, the largest per-entity FPR, event recall and best F1 of one scoring."""
    best, f1 = best_and_own_f1(y, score, flag)
    fp = flag & ~y
    fpr = float(fp.sum() / max((~y).sum(), 1))
    worst = max(float(fp[entity == e].sum() / max((~y & (entity == e)).sum(), 1))
                for e in np.unique(entity))
    runs = np.flatnonzero(np.diff(np.r_[0, y.astype(int), 0])).reshape(-1, 2)
    er = float(np.mean([flag[a:b].any() for a, b in runs])) if len(runs) else float("nan")
    return {"f1": f1, "fpr": fpr, "max_entity_fpr": worst, "event_recall": er, "best_f1": best}


def run(seeds: list[int]) -> list[dict[str, Any]]:
    from threadpoolctl import threadpool_limits

    from aws_anomaly.data import generate_demo
    from aws_anomaly.evaluation.split import chronological_split, concat
    from aws_anomaly.presets import default_model

    rows = []
    for seed in seeds:
        ds, _ = generate_demo(seed=seed)
        sp = chronological_split(ds)
        hist = concat([sp.train, sp.validation])
        y = sp.test.frame["is_anomaly"].to_numpy().astype(bool)
        entity = sp.test.frame["entity"].to_numpy()
        for own in (False, True):
            with threadpool_limits(1):
                m = default_model(ds.step, entity_thresholds=own).fit(hist)
                s = m.score(sp.test, history=hist, explain="none")
            got = measure(y, entity, s["anomaly_score"].to_numpy(), s["is_anomaly"].to_numpy())
            rows.append({"seed": seed, "rule": "per entity" if own else "pooled",
                         "entities_with_own": len(m.entity_calibrators_), **got})
            r = rows[-1]
            print(f"| {seed} | {r['rule']} ({r['entities_with_own']} own) | {r['f1']:.3f} | "
                  f"{r['fpr']:.4f} | {r['max_entity_fpr']:.4f} | {r['event_recall']:.2f} | "
                  f"{r['best_f1']:.3f} |", flush=True)
    for rule in ("pooled", "per entity"):
        sel = [r for r in rows if r["rule"] == rule]
        print(f"| mean | {rule} | {np.mean([r['f1'] for r in sel]):.3f} | "
              f"{np.mean([r['fpr'] for r in sel]):.4f} | "
              f"{max(r['max_entity_fpr'] for r in sel):.4f} | "
              f"{np.mean([r['event_recall'] for r in sel]):.2f} | "
              f"{np.mean([r['best_f1'] for r in sel]):.3f} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 7, 42, 1234])
    args = ap.parse_args(argv)
    print("| seed | rule | own F1 | FPR | max entity FPR | event R | best F1 |\n"
          "|---|---|---|---|---|---|---|")
    run(args.seeds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
