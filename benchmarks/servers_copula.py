"""A rank (copula) scaler for the default's kNN views, measured on the servers (issue 8).

The default model robust-scales each feature column (median / IQR) and clips only the
stationary view. A rank scaler maps each column through its training rows' empirical CDF to
normal scores (``z = Phi^-1((mid-rank + 0.5) / (n + 1))``), so heavy-tailed columns no longer
dominate the distance. Beyond the training range it either clips at the extreme normal score
(``clip``) or continues linearly in the column's robust-scaled units (``extend``). Measured
from the dumps of ``servers_members.py`` (``out/bench-members2``): L and S recomputed on the
transformed columns (the ``base`` row recomputes the shipped ones and checks them against the
dump), mixed ``(L + S) / 2``, thresholded by the same POT rule (``servers_members.evaluate``).

Usage::

    OPENBLAS_NUM_THREADS=1 nice .venv/bin/python benchmarks/servers_copula.py [--dump DIR]

(~5 min on one core.) Results: docs/model.md, "Measured 2026-12-02: a rank (copula) scaler".
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import ndtri

sys.path.insert(0, str(Path(__file__).resolve().parent))
import servers_members as SM
from servers_thresholds import load_dumps

Dump = dict[str, np.ndarray]


def copula(ref: np.ndarray, x: np.ndarray, extend: bool) -> np.ndarray:
    """Each column of ``x`` as normal scores of its mid-rank among ``ref``'s column; beyond
    ``ref``'s range: the extreme score (``extend`` False) or that plus the distance past the
    range in the column's own units (``extend`` True)."""
    out = np.empty(x.shape, dtype=np.float64)
    n = len(ref)
    zmax = float(ndtri((n + 0.5) / (n + 1)))
    for j in range(ref.shape[1]):
        r = np.sort(ref[:, j].astype(np.float64))
        v = x[:, j].astype(np.float64)
        lo = np.searchsorted(r, v, "left")
        hi = np.searchsorted(r, v, "right")
        z = ndtri((0.5 * (lo + hi) + 0.5) / (n + 1))
        if extend:
            z = np.where(v > r[-1], zmax + (v - r[-1]), z)
            z = np.where(v < r[0], -zmax + (v - r[0]), z)
        out[:, j] = z
    return out


def view_scores(d: Dump, rank: bool, extend: bool, level_only: bool
                ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(holdout, test) nearest-row distances of each view, its columns rank-scaled or not."""
    res = {}
    for key in ("lv", "sv"):
        cols = d[key]
        ref, xv, xt = d["ref"][:, cols], d["xv"][:, cols], d["xt"][:, cols]
        if rank and (not level_only or key == "lv"):
            ref, xv, xt = (copula(ref, a, extend) for a in (ref, xv, xt))
        res[key] = (SM.nearest(ref, xv), SM.nearest(ref, xt))
    return res


VARIANTS = {"base": (False, False, False), "copula clip": (True, False, False),
            "copula extend": (True, True, False),
            "copula extend, level only": (True, True, True),
            "copula clip, level only": (True, False, True)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dump", type=Path, default=Path("out/bench-members2"))
    args = ap.parse_args()
    from threadpoolctl import threadpool_limits

    rows: dict[str, dict[str, dict[str, float]]] = {k: {} for k in VARIANTS}
    with threadpool_limits(1):
        for name, d in load_dumps(args.dump).items():
            t0 = time.time()
            for vname, (rank, extend, level_only) in VARIANTS.items():
                v = view_scores(d, rank, extend, level_only)
                if vname == "base" and not (
                        np.allclose(v["lv"][0], d["vv"][:, 0], atol=1e-4)
                        and np.allclose(v["sv"][1], d["vt"][:, 1], atol=1e-4)):
                    raise SystemExit(f"error: {name}: the recomputed views are not the dump's")
                hold = (v["lv"][0] + v["sv"][0]) / 2
                test = (v["lv"][1] + v["sv"][1]) / 2
                m = rows[vname][name] = SM.evaluate(d, hold, test)
                print(f"{name:20s} {vname:28s} best {m['best_f1']:.3f} own {m['f1']:.3f} "
                      f"fpr {m['fpr']:.4f} evP {m['event_precision']:.3f}", flush=True)
            print(f"  {time.time() - t0:.0f} s", flush=True)
    print("| variant | best F1 | own F1 | mean FPR | max FPR | servers FPR > 0.02 | event P |")
    for k in VARIANTS:
        print(f"| {k} " + SM.summary(rows[k]))


if __name__ == "__main__":
    main()
