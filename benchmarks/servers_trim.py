"""Trimming the default model's reference set of its own outliers (issue 8, 2026-12-02).

The default model (``default_model(step)``, docs/model.md) scores a row by its nearest
training row in two views. On a server the training history carries no labels, so an incident
inside it joins the reference set, and a later incident like it finds a near neighbour and
scores low ("kNN remembers what it was trained on"). This study measures the usual remedy:
drop from the reference the rows that are outliers among the training rows themselves.

A row's own outlier score is the default's mix, ``(L + S) / 2``, of its nearest-neighbour
distances to the *other* reference rows more than ``E`` apart in time (an exclusion zone, as
a matrix profile's: a row's temporal neighbours are near it whatever it is, so a one-off
incident of many rows would otherwise look normal to itself). The top ``p`` of the reference
rows by that score are dropped (``p`` in :data:`TRIMS`), for ``E`` of 6 h and 1 day; the
holdout and test rows are then scored against the rows kept, the POT threshold is fit on the
holdout's scores as shipped, and the bench's metrics are computed
(:func:`servers_members.evaluate`). ``p = 0`` is the shipped default (checked against the
dump's per-view scores).

``--relative`` measures the other use of the reference rows' own distances, a LOF-like
density normalisation (k = 1): each view's distance of a row to its nearest reference row
``j`` is divided by ``(r_j + c m) / ((1 + c) m)``, ``r_j`` that row's own distance to its
nearest reference row at least ``E`` rows away (:data:`RELATIVE_ZONES` rows), ``m`` the median
of ``r``, ``c`` in :data:`SOFTNESS` (``c = 0``: the plain ratio; a larger ``c``, closer to the
shipped distance), so a row in a region where normal rows are sparse scores less.

Usage::

    nice .venv/bin/python benchmarks/servers_trim.py --dump out/bench-members2 --per-server

    nice .venv/bin/python benchmarks/servers_trim.py --dump out/bench-members2 --relative

(the dumps of ``benchmarks/servers_members.py``; ~8 min / ~4 min on 2 cores, most of it the
four SMD servers' 19-23k reference rows). Results: docs/model.md ("Measured 2026-12-02: trimming the
reference set").
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers_members import evaluate, load_dumps, nearest, print_tables

Dump = dict[str, np.ndarray]
#: Shares of the reference rows dropped (the highest own-outlier scores first).
TRIMS = (0.0, 0.001, 0.005, 0.01, 0.02, 0.05)
#: Exclusion zones, hours.
ZONES = (6.0, 24.0)
#: ``--relative``: exclusion zones (rows) of the reference rows' own distances, and the
#: softness ``c`` of the normalisation.
RELATIVE_ZONES = (1, 10)
SOFTNESS = (0.0, 0.5, 1.0, 2.0)
_BLOCK = 1024


def own_outlier_scores(ref: np.ndarray, views: Sequence[np.ndarray], exclude: int
                       ) -> np.ndarray:
    """Each reference row's ``(L + S) / 2``-style mix of its per-view RMS distance to the
    nearest reference row at least ``exclude`` rows away (rows in time order)."""
    parts = [nearest(ref[:, v], ref[:, v], exclude=exclude) for v in views]
    return np.mean(parts, axis=0)


def kept_rows(scores: np.ndarray, p: float) -> np.ndarray:
    """Mask of the rows kept when the top ``p`` share by ``scores`` is dropped (ties kept)."""
    if p <= 0:
        return np.ones(len(scores), dtype=bool)
    return scores <= np.quantile(scores, 1.0 - p)


def nearest_kept(ref: np.ndarray, x: np.ndarray, masks: Sequence[np.ndarray]) -> np.ndarray:
    """``(len(masks), rows)``: each row of ``x``'s RMS distance to its nearest row of ``ref``
    among the rows each mask keeps (one product per block for every mask)."""
    ref = np.ascontiguousarray(ref, dtype=np.float64)
    ref_m2, ref_sq = -2.0 * ref, np.einsum("ij,ij->i", ref, ref)
    out = np.empty((len(masks), len(x)))
    for s in range(0, len(x), _BLOCK):
        xb = np.ascontiguousarray(x[s:s + _BLOCK], dtype=np.float64)
        d2 = xb @ ref_m2.T
        d2 += ref_sq
        own = np.einsum("ij,ij->i", xb, xb)
        for k, m in enumerate(masks):
            out[k, s:s + _BLOCK] = np.maximum(d2[:, m].min(axis=1) + own, 0.0)
    return np.sqrt(out) / np.sqrt(ref.shape[1])


def trimmed_scores(d: Dump, hours: float, trims: Sequence[float] = TRIMS
                   ) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """``{p: (holdout, test)}`` mixes ``(L + S) / 2`` against the reference trimmed by ``p``
    with an exclusion zone of ``hours``."""
    ref = d["ref"].astype(np.float64)
    views = [d["lv"], d["sv"]]
    exclude = max(1, round(hours * 3600.0 / float(d["step_s"])))
    own = own_outlier_scores(ref, views, exclude)
    masks = [kept_rows(own, p) for p in trims]
    hold = np.zeros((len(trims), len(d["xv"])))
    test = np.zeros((len(trims), len(d["xt"])))
    for v in views:
        hold += nearest_kept(ref[:, v], d["xv"][:, v], masks) / len(views)
        test += nearest_kept(ref[:, v], d["xt"][:, v], masks) / len(views)
    return {p: (hold[k], test[k]) for k, p in enumerate(trims)}


def relative_scores(d: Dump) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{name: (holdout, test)}`` of the density-normalised mixes (``--relative``), and the
    shipped ``(L + S) / 2`` under ``"shipped"``."""
    ref = d["ref"].astype(np.float64)
    parts = []
    for v in (d["lv"], d["sv"]):
        own = {z: nearest(ref[:, v], ref[:, v], exclude=z) for z in RELATIVE_ZONES}
        parts.append((own, nearest(ref[:, v], d["xv"][:, v].astype(np.float64),
                                   with_index=True),
                      nearest(ref[:, v], d["xt"][:, v].astype(np.float64), with_index=True)))
    out = {"shipped": (sum(p[1][0] for p in parts) / 2, sum(p[2][0] for p in parts) / 2)}
    for z in RELATIVE_ZONES:
        for c in SOFTNESS:
            hold, test = np.zeros(len(d["xv"])), np.zeros(len(d["xt"]))
            for own, (dv, av), (dt, at) in parts:
                r = own[z]
                m = float(np.median(r))
                hold += dv / np.maximum((r[av] + c * m) / ((1 + c) * m), 1e-12) / 2
                test += dt / np.maximum((r[at] + c * m) / ((1 + c) * m), 1e-12) / 2
            out[f"relative, own zone {z} rows, c = {c:g}"] = (hold, test)
    return out


def main() -> None:
    from threadpoolctl import threadpool_limits

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dump", type=Path, default=Path("out/bench-members2"))
    ap.add_argument("--per-server", action="store_true")
    ap.add_argument("--relative", action="store_true",
                    help="the density-normalised distances instead of the trims")
    args = ap.parse_args()
    dumps = load_dumps(args.dump)
    rows: dict[str, dict[str, dict[str, float]]] = {}
    with threadpool_limits(1):
        for key, d in dumps.items():
            t0 = time.perf_counter()
            if args.relative:
                for name, (hold, test) in relative_scores(d).items():
                    if name == "shipped":
                        np.testing.assert_allclose(test, d["vt"].mean(axis=1), atol=1e-5)
                    rows.setdefault(name, {})[key] = evaluate(d, hold, test)
                print(f"{key} in {time.perf_counter() - t0:.0f} s", flush=True)
                continue
            for hours in ZONES:
                for p, (hold, test) in trimmed_scores(d, hours).items():
                    if p == 0:  # the shipped mix, as the model scores it
                        np.testing.assert_allclose(test, d["vt"].mean(axis=1), atol=1e-5)
                    name = "shipped: no trim" if p == 0 else f"trim {p:g}, zone {hours:g} h"
                    rows.setdefault(name, {})[key] = evaluate(d, hold, test)
            print(f"{key} in {time.perf_counter() - t0:.0f} s", flush=True)
    print_tables(rows, list(dumps), args.per_server)


if __name__ == "__main__":
    main()
