"""Time-of-day neighbours for the default's two views, measured on the real servers (issue 8).

The label-free default scores a row by its nearest training row in each view (docs/model.md),
whatever the time of day that training row was seen at. A server with a daily cycle may visit
a state at 03:00 that is normal only at 15:00 (a nightly batch job seen at noon, a traffic peak
at night); the stationary view carries part of that (the one-day difference and its EWMAs),
the level view none. This study restricts each view's neighbours to the training rows seen
within +-``W`` of the same time of day (circular), for the holdout rows that set the threshold
and for the test rows alike, and measures the result with the shipped POT rule refit on the
holdout's scores (``servers_members.evaluate``).

It reads the dumps of ``benchmarks/servers_members.py`` (``dump_server``: the shipped model's
scaled reference rows in time order, the holdout and test rows, their per-view scores); a
row's time of day is its position on the server's regular grid (train, then test, one step
apart). The mapping is checked on every server: the level view's value columns of the
reference, holdout and test rows must be an affine map of the raw metric values at the
positions given to them.

Usage (``--data``: dump the servers not dumped yet first)::

    nice .venv/bin/python benchmarks/servers_tod.py --data ../shared/data/servers \
        --dump out/dump-s21 [--per-server]

Results: docs/model.md ("Measured 2026-12-02 afternoon: time-of-day neighbours").
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers_members import dump_server, evaluate, load_dumps, print_per_server, summary

from aws_anomaly.evaluation.servers_bench import discover_servers

DAY_S = 86_400.0
#: Windows measured (hours either side of the row's time of day).
WINDOWS_H = (1.0, 3.0, 6.0)


def positions(d: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grid positions (rows since the first training row) of the reference, holdout and test
    rows: the reference is the ready rows of the fit part (the training rows before the
    holdout), the holdout its last rows, the test the rows after training."""
    n_train = int(d["n_train"])
    n_fit = n_train - len(d["xv"])
    ref = np.arange(n_fit - len(d["ref"]), n_fit)
    return ref, np.arange(n_fit, n_train), np.arange(n_train, n_train + len(d["xt"]))


def check_positions(d: dict[str, np.ndarray], key: str) -> None:
    """Fail unless each value column of the level view is an affine map of its metric's raw
    values at the rows' positions (correlation > 0.999 where the metric varies)."""
    pos = np.concatenate(positions(d))
    rows = np.vstack([d["ref"], d["xv"], d["xt"]]).astype(np.float64)
    cols = np.flatnonzero(d["is_value"])
    for c in cols:
        m = int(d["column_metric"][c])
        raw = d["values"][pos, m]
        x = rows[:, c]
        if np.std(raw) == 0 or np.std(x) == 0:
            continue
        r = float(np.corrcoef(raw, x)[0, 1])
        if r < 0.999:
            raise SystemExit(f"error: {key}: column {c} does not follow metric {m} at the "
                             f"rows' positions (correlation {r:.4f}): the dump's row order "
                             "is not the one assumed")


def tod_distance(a: np.ndarray, b: float) -> np.ndarray:
    """Circular distance in seconds between times of day ``a`` (array) and ``b``."""
    d = np.abs(a - b) % DAY_S
    return np.minimum(d, DAY_S - d)


def nearest_in_window(ref: np.ndarray, ref_tod: np.ndarray, x: np.ndarray, x_tod: np.ndarray,
                      window_s: float, bin_s: float = 600.0) -> np.ndarray:
    """Each row of ``x``'s Euclidean distance to its nearest row of ``ref`` among those within
    ``window_s`` of its time of day (circular), divided by the square root of the column
    count (the default's per-view scale). Rows are taken by bins of ``bin_s`` of the day: the
    candidates of a bin are the reference rows within ``window_s + bin_s`` of its start, then
    each row keeps only its own window. A row without any candidate gets the nearest row
    overall (a window that holds no training row is no evidence)."""
    ref = np.asarray(ref, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    r2 = np.einsum("ij,ij->i", ref, ref)
    out = np.empty(len(x))
    bins = np.floor(x_tod / bin_s).astype(np.int64)
    for b in np.unique(bins):
        rows = np.flatnonzero(bins == b)
        cand = np.flatnonzero(tod_distance(ref_tod, b * bin_s) <= window_s + bin_s)
        xb = x[rows]
        d2 = r2[cand][None, :] - 2.0 * (xb @ ref[cand].T) + np.einsum("ij,ij->i", xb, xb)[:, None]
        gap = (ref_tod[cand][None, :] - x_tod[rows][:, None] + DAY_S / 2) % DAY_S - DAY_S / 2
        inside = np.abs(gap) <= window_s
        empty = ~inside.any(axis=1)
        if cand.size:
            d2 = np.where(inside, d2, np.inf)
            out[rows] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
        for r in rows[empty]:  # no reference row in its window: the nearest overall
            out[r] = math.sqrt(max(float((r2 - 2.0 * (ref @ x[r]) + x[r] @ x[r]).min()), 0.0))
    return out / math.sqrt(ref.shape[1])


def view_scores(d: dict[str, np.ndarray], window_s: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """(holdout, test) raw scores: the mean over the two views of the time-of-day
    restricted nearest distances."""
    step = float(d["step_s"])
    pr, pv, pt = positions(d)
    tod = [(p * step) % DAY_S for p in (pr, pv, pt)]
    ref = d["ref"]
    hold = np.zeros(len(d["xv"]))
    test = np.zeros(len(d["xt"]))
    views = (d["lv"], d["sv"])
    for cols in views:
        hold += nearest_in_window(ref[:, cols], tod[0], d["xv"][:, cols], tod[1], window_s)
        test += nearest_in_window(ref[:, cols], tod[0], d["xt"][:, cols], tod[2], window_s)
    return hold / len(views), test / len(views)


def main(argv: list[str] | None = None) -> None:
    """Print the means over servers of each window, against the shipped scores."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--dump", type=Path, default=Path("out/bench-members"))
    ap.add_argument("--data", help="the servers' folder: dump the servers not dumped yet")
    ap.add_argument("--per-server", action="store_true")
    args = ap.parse_args(argv)
    if args.data:
        args.dump.mkdir(parents=True, exist_ok=True)
        for key, path in discover_servers(args.data, None):
            if not (args.dump / f"{key.replace('/', '__')}.npz").exists():
                dump_server(key, path, args.dump)
                print(f"dumped {key}", flush=True)
    dumps = load_dumps(args.dump)
    rows: dict[str, dict[str, dict[str, float]]] = {"shipped": {}}
    for key, d in dumps.items():
        check_positions(d, key)
        rows["shipped"][key] = evaluate(d, d["rawv"], d["rawt"])
        for w in WINDOWS_H:
            hold, test = view_scores(d, w * 3600.0)
            rows.setdefault(f"+-{w:g} h", {})[key] = evaluate(d, hold, test)
        print(f"{key}: " + "; ".join(f"{n} {m[key]['best_f1']:.3f}/{m[key]['f1']:.3f}/"
                                     f"{m[key]['fpr']:.4f}" for n, m in rows.items()),
              flush=True)
    print("\n| neighbours | best F1 | own F1 | mean FPR | max FPR | servers FPR > 0.02 | "
          "event P |\n|---|---|---|---|---|---|---|")
    for name, per in rows.items():
        print(f"| {name} " + summary(per))
    if args.per_server:
        print_per_server(rows, list(dumps))


if __name__ == "__main__":
    main()
