"""Candidate members for the default model's score, measured on the real servers (issue 8).

The default model (``default_model(step)``, docs/model.md) scores a row by the mean of two
nearest-neighbour distances: the *level* view (each metric's value and 15 min / 1 h
volatility, L) and the *stationary* view (z-scores, differences, seasonal terms, S), each an
RMS deviation per standardised column. The detector adds a volatility-excess term (X = 0.25 V,
V the mean positive part of the level view's standardised volatility columns; kept after this
study). This script measures what other members, mixed into the mean of the two views, do to
the ranking (best F1) and to the model's own label-free threshold (POT at risk 1e-3 on the
calibration holdout's scores of the same mix), without refitting per rule:

* ``V``: the volatility excess, added with a weight (0.25 is the shipped ``X``);

* ``pmL`` / ``pmS``: a **per-metric** novelty: for each metric (not constant in training) the
  nearest-neighbour distance of its own level-view (or stationary-view) columns to the
  reference rows, combined across metrics by the max or the mean of the top k (an anomaly on
  one or two of 38 metrics is diluted in the RMS over every column);
* ``val`` / ``vol``: the level view split into its value columns and its volatility columns,
  measured apart;
* ``W``: a **short-window** (subsequence) member: the nearest-neighbour distance of the last
  15 min (or 5, 30 min) of standardised raw values, as a piecewise mean of 5 segments (a
  matrix-profile style shape match);
* ``P``: the PCA reconstruction residual of the value columns (99 % of the variance);
* ``self-level``: the mixed score less a slowly updated robust level of the server's own
  recent scores (or divided by it), so a lasting drift of the normal score does not page;
* ``oof +-6h``: the threshold fit on out-of-fold scores of every training row (each row
  against the training rows more than 6 h away from it) instead of the last 15 %, with the
  reference refit on every training row.

Each server's dump (``dump_server``) holds the shipped model's scaled features of the
reference rows (the first 85 % of ``train.parquet``), the holdout (the last 15 %) and the test
rows, its raw and per-view scores (``vv`` / ``vt``: L and S), the raw metric values and the
labels; members are computed from it. ``pmS`` and ``W`` measure against a seeded subsample
of 8,000 reference rows (every row on the 5-minute servers) to bound the study's cost.
Metrics are the bench's
(:func:`aws_anomaly.evaluation.servers_bench.server_metrics`).

Usage::

    nice .venv/bin/python benchmarks/servers_members.py --data ../shared/data/servers \\
        --dump out/bench-members          # fits the servers not dumped yet (~6 min), then ~10 min

Results: docs/model.md ("Measured 2026-12-01 night (H3)").
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aws_anomaly.calibration import pot_threshold
from aws_anomaly.evaluation.servers_bench import discover_servers, server_metrics
from aws_anomaly.threshold import pot_risk

# The thresholds study's map to ``anomaly_score`` and per-view scores, shared, not copied.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers_thresholds import (
    MAX_FPR,
    _view_scores,
    calibrated,
    excess_term,
    fit_for_dump,
    load_dumps,
)

Dump = dict[str, np.ndarray]
#: Reference rows the brute-force members (per-metric stationary, windows) measure against.
STUDY_REF_ROWS = 8000
_BLOCK = 1024


# --------------------------------------------------------------------------------- dumping
def dump_server(key: str, folder: Path, out: Path) -> Path:
    """Fit ``default_model(step)`` on one server and write what the members need."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        data, model, Xv, Xt, ready_t, zt = fit_for_dump(key, folder)
        Xv, Xt = model.constant_guard.blind(Xv), model.constant_guard.blind(Xt)
        det = model.detector_
        if len(det.reference_) >= det.max_train_rows:
            raise SystemExit(f"error: {key}: the reference set may be a subsample; the "
                             "members need every fit row in time order")
        column_metric = np.full(len(model.columns_), -1, dtype=np.int64)
        for i, metric in enumerate(model.metrics_):
            column_metric[model.groups_.get(metric, [])] = i
        names = np.asarray(model.feature_names_)
        values = np.vstack([data.train.values(data.train.entities[0]),
                            data.test.values(data.test.entities[0])])
        arrays = {
            "ref": det.reference_.astype(np.float32), "xv": Xv.astype(np.float32),
            "xt": Xt.astype(np.float32), "readyt": ready_t, "zt": zt, "y": data.labels,
            "rawv": model._raw(Xv), "rawt": model._raw(Xt),
            "vv": _view_scores(model, Xv), "vt": _view_scores(model, Xt),
            "thr": np.float64(model.calibrator_.threshold_),
            "center": np.float64(model.calibrator_.center_),
            "lv": np.asarray(det.views_[0]), "sv": np.asarray(det.views_[1]),
            "column_metric": column_metric,
            "is_value": np.char.endswith(names.astype(str), "__value"),
            "constant": np.asarray(sorted(model.constant_), dtype=np.int64),
            "values": values, "n_train": np.int64(len(data.train.frame)),
            "step_s": np.float64(data.train.step.total_seconds()),
        }
    path = out / f"{key.replace('/', '__')}.npz"
    np.savez(path, **arrays)
    return path


# ------------------------------------------------------------------------------ distances
def nearest(ref: np.ndarray, x: np.ndarray, exclude: int | None = None, *,
            with_index: bool = False) -> Any:
    """Euclidean distance of each row of ``x`` to its nearest row of ``ref``, divided by the
    square root of the column count (an RMS deviation per column). ``exclude``: ``x`` is
    ``ref`` itself and rows less than ``exclude`` rows apart are not neighbours.
    ``with_index``: ``(distances, index of each row's nearest row of ref)``."""
    ref = np.ascontiguousarray(ref)
    ref_m2, ref_sq = -2.0 * ref, np.einsum("ij,ij->i", ref, ref)
    out = np.empty(len(x))
    arg = np.empty(len(x), dtype=np.intp)
    cols = np.arange(len(ref))[None, :]
    for s in range(0, len(x), _BLOCK):
        xb = np.ascontiguousarray(x[s:s + _BLOCK])
        d2 = xb @ ref_m2.T
        d2 += ref_sq
        if exclude is not None:
            rows = np.arange(s, s + len(xb))[:, None]
            d2[np.abs(cols - rows) < exclude] = np.inf
        if with_index:
            a = arg[s:s + _BLOCK] = d2.argmin(axis=1)
            low = d2[np.arange(len(xb)), a]
        else:
            low = d2.min(axis=1)
        out[s:s + _BLOCK] = np.maximum(low + np.einsum("ij,ij->i", xb, xb), 0.0)
    dist = np.sqrt(out) / math.sqrt(ref.shape[1])
    return (dist, arg) if with_index else dist


def _subsample(n: int) -> np.ndarray:
    if n <= STUDY_REF_ROWS:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, STUDY_REF_ROWS, replace=False))


def metric_columns(d: Dump, view: str) -> list[np.ndarray]:
    """Per metric not constant in training, its columns (positions) in one view."""
    cols = d[view]
    owner = d["column_metric"][cols]
    const = set(d["constant"].tolist())
    return [cols[owner == i] for i in np.unique(owner) if i >= 0 and i not in const]


def per_metric(d: Dump, view: str) -> tuple[np.ndarray, np.ndarray]:
    """(holdout, test) per-metric nearest distances in ``view`` (``lv`` or ``sv``): arrays
    (rows, metrics)."""
    ref = d["ref"] if view == "lv" else d["ref"][_subsample(len(d["ref"]))]
    parts = [(nearest(ref[:, c], d["xv"][:, c]), nearest(ref[:, c], d["xt"][:, c]))
             for c in metric_columns(d, view)]
    return np.stack([p[0] for p in parts], 1), np.stack([p[1] for p in parts], 1)


def top_k(p: np.ndarray, k: int) -> np.ndarray:
    """Mean of the ``k`` largest per-metric distances of each row."""
    k = min(k, p.shape[1])
    return -np.mean(np.partition(-p, k - 1, axis=1)[:, :k], axis=1)


def level_split(d: Dump) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(holdout, test) distances of the level view's value columns, then of its volatility
    columns (constants left out)."""
    const = set(d["constant"].tolist())
    lv = np.asarray([j for j in d["lv"] if d["column_metric"][j] not in const])
    val, vol = lv[d["is_value"][lv]], lv[~d["is_value"][lv]]
    return (nearest(d["ref"][:, val], d["xv"][:, val]), nearest(d["ref"][:, val], d["xt"][:, val]),
            nearest(d["ref"][:, vol], d["xv"][:, vol]), nearest(d["ref"][:, vol], d["xt"][:, vol]))


def windows(values: np.ndarray, rows: int, segments: int) -> np.ndarray:
    """Causal piecewise means: row t holds the means of ``segments`` equal parts of rows
    ``t - rows + 1 .. t`` (rows before the first repeat it), metric by metric.

    >>> windows(np.arange(6.0)[:, None], 4, 2)[3:].tolist()
    [[0.5, 2.5], [1.5, 3.5], [2.5, 4.5]]
    """
    n, m = values.shape
    pad = np.vstack([np.repeat(values[:1], rows - 1, axis=0), values])
    csum = np.vstack([np.zeros((1, m)), np.cumsum(pad, axis=0)])
    edges = np.linspace(0, rows, segments + 1).round().astype(int)
    t = np.arange(n)
    return np.hstack([(csum[t + b] - csum[t + a]) / (b - a)
                      for a, b in itertools.pairwise(edges)])


def window_member(d: Dump, horizon: str, segments: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(holdout, test) nearest distance of the last ``horizon`` of standardised raw values
    (mean / standard deviation of the fit rows, the deviation floored at 0.1 x the median
    one; constants left out) to the reference rows' windows."""
    const = set(d["constant"].tolist())
    vals = d["values"][:, [i for i in range(d["values"].shape[1]) if i not in const]]
    n_train = int(d["n_train"])
    n_fit = n_train - len(d["xv"])
    mu, sd = vals[:n_fit].mean(0), vals[:n_fit].std(0)
    sd = np.maximum(sd, 0.1 * np.median(sd[sd > 0]) if (sd > 0).any() else 1.0)
    rows = max(1, round(pd.Timedelta(horizon).total_seconds() / float(d["step_s"])))
    win = windows((vals - mu) / sd, rows, min(segments, rows)).astype(np.float32)
    ref = win[n_fit - len(d["ref"]):n_fit]
    ref = ref[_subsample(len(ref))]
    return nearest(ref, win[n_fit:n_train]), nearest(ref, win[n_train:])


def pca_residual(d: Dump, variance: float = 0.99) -> tuple[np.ndarray, np.ndarray]:
    """(holdout, test) RMS residual of the value columns off the reference rows' principal
    components holding ``variance`` of the variance."""
    const = set(d["constant"].tolist())
    lv = np.asarray([j for j in d["lv"] if d["column_metric"][j] not in const])
    val = lv[d["is_value"][lv]]
    ref = d["ref"][:, val].astype(np.float64)
    mu = ref.mean(0)
    _, s, vt = np.linalg.svd(ref - mu, full_matrices=False)
    share = np.cumsum(s ** 2) / np.sum(s ** 2)
    comp = vt[:int(np.searchsorted(share, variance) + 1)]

    def res(x: np.ndarray) -> np.ndarray:
        z = x[:, val].astype(np.float64) - mu
        return np.sqrt(np.mean((z - (z @ comp.T) @ comp) ** 2, axis=1))
    return res(d["xv"]), res(d["xt"])


def out_of_fold(d: Dump, hours: float) -> tuple[np.ndarray, np.ndarray]:
    """(every training row's mean-of-views distance to the training rows more than ``hours``
    away, the test rows' distance to every training row): the reference refit on all rows."""
    X = np.vstack([d["ref"], d["xv"]])
    gap = round(hours * 3600 / float(d["step_s"]))
    train, test = np.zeros(len(X)), np.zeros(len(d["xt"]))
    for view in ("lv", "sv"):
        cols = d[view]
        train += nearest(X[:, cols], X[:, cols], exclude=gap) / 2
        test += nearest(X[:, cols], d["xt"][:, cols]) / 2
    return train, test


def self_level(holdout: np.ndarray, test: np.ndarray, thr: float, window: str, q: float,
               step_s: float, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Scores less (``diff``) or divided by (``ratio``) the ``q`` quantile of the scores of
    the last ``window`` before each row that stayed under ``thr``, plus the holdout's own
    ``q`` quantile (causal; the holdout precedes the test)."""
    rows = max(2, round(pd.Timedelta(window).total_seconds() / step_s))
    c = np.r_[holdout, test]
    s = pd.Series(np.where(c < thr, c, np.nan)).shift(1)
    base = float(np.quantile(holdout, q))
    level = s.rolling(rows, min_periods=min(rows, 288)).quantile(q).to_numpy()
    level = np.where(np.isnan(level), base, level)
    out = c - level + base if mode == "diff" else c * base / np.maximum(level, 1e-9)
    return out[:len(holdout)], out[len(holdout):]


# ------------------------------------------------------------------------------ measuring
Members = dict[str, tuple[np.ndarray, np.ndarray]]
Variant = Callable[[Members], tuple[np.ndarray, np.ndarray]]


def volatility_excess(d: Dump) -> tuple[np.ndarray, np.ndarray]:
    """(holdout, test) mean over the level view's volatility columns of ``max(0, x)`` (the
    columns of constant metrics, blinded to 0, included): the default's excess term before
    its weight."""
    vol = d["lv"][~d["is_value"][d["lv"]]]
    return tuple(np.maximum(x[:, vol].astype(np.float64), 0.0).mean(axis=1)
                 for x in (d["xv"], d["xt"]))


def members_of(d: Dump) -> Members:
    """Every member's (holdout, test) scores for one server."""
    m: Members = {"L": (d["vv"][:, 0], d["vt"][:, 0]), "S": (d["vv"][:, 1], d["vt"][:, 1]),
                  "X": excess_term(d), "V": volatility_excess(d)}
    m["pmL"] = per_metric(d, "lv")
    m["pmS"] = per_metric(d, "sv")
    a, b, c, e = level_split(d)
    m["val"], m["vol"] = (a, b), (c, e)
    for horizon in ("5min", "15min", "30min"):
        m[f"W{horizon}"] = window_member(d, horizon)
    m["P"] = pca_residual(d)
    return m


def mix(*terms: str, k: int = 3) -> Variant:
    """The mean of the named members; ``pmL`` / ``pmS`` enter as their top-``k`` mean."""
    def f(m: Members) -> tuple[np.ndarray, np.ndarray]:
        parts = [(top_k(m[t][0], k), top_k(m[t][1], k)) if t.startswith("pm") else m[t]
                 for t in terms]
        return (np.mean([p[0] for p in parts], 0), np.mean([p[1] for p in parts], 0))
    return f


def max_level(other: str, k: int = 3) -> Variant:
    """(max(L, top-k of ``other``) + S) / 2: the member replaces the level view where larger."""
    def f(m: Members) -> tuple[np.ndarray, np.ndarray]:
        o = m[other] if not other.startswith("pm") else tuple(top_k(x, k) for x in m[other])
        return tuple((np.maximum(m["L"][i], o[i]) + m["S"][i]) / 2 for i in (0, 1))
    return f


def plus(base: Variant, member: str, weight: float = 1.0) -> Variant:
    """``base`` plus ``weight`` x ``member``."""
    def f(m: Members) -> tuple[np.ndarray, np.ndarray]:
        b = base(m)
        return b[0] + weight * m[member][0], b[1] + weight * m[member][1]
    return f


VARIANTS: dict[str, Variant] = {
    "shipped: (L + S) / 2 + excess": plus(mix("L", "S"), "X"),
    "(L + S) / 2: the default before the excess term": mix("L", "S"),
    **{f"(L + S) / 2 + {w:g} V": plus(mix("L", "S"), "V", w) for w in (0.125, 0.25, 0.5)},
    **{f"(L + S + top{k} pmL) / 3": mix("L", "S", "pmL", k=k) for k in (1, 3, 5)},
    **{f"(max(L, top{k} pmL) + S) / 2": max_level("pmL", k) for k in (1, 3, 5)},
    **{f"(L + top{k} pmS) / 2": mix("L", "pmS", k=k) for k in (1, 3)},
    **{f"(L + S + top{k} pmL + top{k} pmS) / 4": mix("L", "S", "pmL", "pmS", k=k)
       for k in (1, 3)},
    "(val + vol + S) / 3": mix("val", "vol", "S"),
    "(L + S + vol) / 3": mix("L", "S", "vol"),
    **{f"(L + S + W{h}) / 3": mix("L", "S", f"W{h}") for h in ("5min", "15min", "30min")},
    **{f"(W{h} + S) / 2": mix(f"W{h}", "S") for h in ("5min", "15min", "30min")},
    "(max(L, W15min) + S) / 2": max_level("W15min"),
    "(L + S + P) / 3": mix("L", "S", "P"),
    **{f"(L + S + W{h} + P) / 4": mix("L", "S", f"W{h}", "P") for h in ("15min", "30min")},
}


def evaluate(d: Dump, holdout: np.ndarray, test: np.ndarray, c: float = 1.0,
             risk: float | None = None) -> dict[str, float]:
    """The bench's metrics of ``test`` scores flagged at ``c`` x the POT threshold (risk
    ``risk``, level 0.98) of the ``holdout`` scores, with the model's constant-metric rule.
    ``risk`` None: the shipped default's for the server's step (:func:`pot_risk`; the tables
    of docs/model.md measured before 2026-12-02 02:00 UTC used 1e-3 for every step)."""
    step = pd.Timedelta(seconds=float(d["step_s"]))
    thr = pot_threshold(holdout, pot_risk(step) if risk is None else risk, 0.98)[0]
    s = calibrated(d, test, thr, float(np.median(holdout))) / c
    return server_metrics(d["y"], s, s >= 1.0, step)


def summary(per: dict[str, dict[str, float]]) -> str:
    best = np.array([m["best_f1"] for m in per.values()])
    f1 = np.array([m["f1"] for m in per.values()])
    fpr = np.array([m["fpr"] for m in per.values()])
    evp = np.array([m["event_precision"] for m in per.values()])
    return (f"| {best.mean():.3f} | {f1.mean():.3f} | {fpr.mean():.4f} | {fpr.max():.3f} | "
            f"{int((fpr > MAX_FPR).sum())} | {evp.mean():.3f} |")


def choose_leave_one_out(rows: dict[str, dict[str, dict[str, float]]], keys: list[str],
                         grids: Mapping[str, Sequence[str]]) -> None:
    """For each grid of settings, the leave-one-server-out choice: each held-out server gets
    the setting with the best mean best F1 on the other servers, and is measured with it.
    Added to ``rows`` as ``"<label>, chosen leave-one-server-out over <n>"``; the choices are
    printed."""
    for label, grid in grids.items():
        chosen = {held: max(grid, key=lambda n, held=held: np.mean(
            [m["best_f1"] for k, m in rows[n].items() if k != held])) for held in keys}
        rows[f"{label}, chosen leave-one-server-out over {len(grid)}"] = {
            k: rows[chosen[k]][k] for k in keys}
        print(f"chosen leave-one-server-out ({label}): " + "; ".join(
            f"{k.split('/')[-1]} {n}" for k, n in chosen.items()) + "\n")


def report_mixes(rows: dict[str, dict[str, dict[str, float]]], keys: list[str],
                 variants: Sequence[str], families: dict[str, Callable[[str], bool]],
                 default: str, per_server: bool) -> None:
    """The member studies' servers report: for each family of ``variants`` the setting chosen
    leave-one-server-out (the best mean best F1 on the other servers; single settings only,
    added to ``rows``), the rows that pass the keep rule against ``default`` (best F1 up, own
    F1 not down, max FPR not up) with their paired best-F1 gain, then :func:`print_tables`."""
    print(f"\n{len(keys)} servers: {', '.join(keys)}\n")
    # single settings only, never a chosen row
    choose_leave_one_out(rows, keys, {label: [n for n in variants if pick(n)]
                                      for label, pick in families.items()})
    base = rows[default]
    base_best = np.mean([m["best_f1"] for m in base.values()])
    base_own = np.mean([m["f1"] for m in base.values()])
    base_fpr = max(m["fpr"] for m in base.values())
    passing = []
    for name, per in rows.items():
        best = np.mean([m["best_f1"] for m in per.values()])
        own = np.mean([m["f1"] for m in per.values()])
        fpr = max(m["fpr"] for m in per.values())
        if name != default and best > base_best and own >= base_own and fpr <= base_fpr:
            diff = np.array([per[k]["best_f1"] - base[k]["best_f1"] for k in keys])
            passing.append(f"{name}: best {best:.3f} own {own:.3f} max FPR {fpr:.3f}; paired "
                           f"best-F1 gain {diff.mean():+.4f} (standard error "
                           f"{diff.std(ddof=1) / np.sqrt(len(diff)):.4f}, "
                           f"{int((diff > 0).sum())} of {len(diff)} up)")
    print("Rows that pass the servers' rule (best F1 up, own F1 not down, max FPR not up):")
    print("\n".join(passing) if passing else "none")
    print()
    print_tables(rows, keys, per_server)


def print_demo_tables(title: str, seeds: Sequence[int],
                      results: dict[str, list[tuple[float, float]]],
                      kinds: dict[str, dict[str, list[float]]], shown: Sequence[str]) -> None:
    """The demo studies' tables: best F1 / own F1 per mix and seed with their means, then
    (when ``kinds`` holds any) the recall per anomaly kind of the ``shown`` mixes."""
    print(f"\ndemo seeds {', '.join(map(str, seeds))}{title}: best F1 / own F1 per seed, "
          "then the mean\n")
    print("| mix | " + " | ".join(f"seed {s}" for s in seeds)
          + " | mean best F1 | mean own F1 |")
    print("|---|" + "---|" * (len(seeds) + 2))
    for name, per in results.items():
        cells = " | ".join(f"{b:.3f} / {o:.3f}" for b, o in per)
        print(f"| {name} | {cells} | {np.mean([b for b, _ in per]):.3f} | "
              f"{np.mean([o for _, o in per]):.3f} |")
    if kinds:
        print("\nRecall per anomaly kind at the score flagging 1 % of the normal test points, "
              "mean over the seeds where the kind occurs (seeds)\n")
        print("| kind | " + " | ".join(shown) + " |")
        print("|---|" + "---|" * len(shown))
        for k, per_mix in sorted(kinds.items()):
            n = len(next(iter(per_mix.values())))
            print(f"| {k} ({n}) | " + " | ".join(f"{np.mean(per_mix[v]):.2f}" for v in shown)
                  + " |")


def print_tables(rows: dict[str, dict[str, dict[str, float]]], keys: list[str],
                 per_server: bool) -> None:
    """The variants' means (:func:`summary`) and, with ``per_server``, each server's best F1 /
    F1 / FPR at the own flag."""
    print("| variant | best F1 | own F1 | mean FPR | max FPR | servers FPR > 0.02 | event P |")
    print("|---|---|---|---|---|---|---|")
    for name, per in rows.items():
        print(f"| {name} {summary(per)}")
    if per_server:
        print_per_server(rows, keys)


def print_per_server(rows: dict[str, dict[str, dict[str, float]]], keys: list[str]) -> None:
    """Each variant's best F1 / F1 / FPR at the own flag, one column per server."""
    print("\nPer server, best F1 / F1 / FPR at the own flag:\n")
    print("| variant | " + " | ".join(k.split("/")[-1] for k in keys) + " |")
    print("|---|" + "---|" * len(keys))
    for name, per in rows.items():
        print(f"| {name} | " + " | ".join(
            f"{per[k]['best_f1']:.2f}/{per[k]['f1']:.2f}/{per[k]['fpr']:.3f}"
            for k in keys) + " |")


def best_and_own_f1(y: np.ndarray, score: np.ndarray, flag: np.ndarray) -> tuple[float, float]:
    """(best point F1 over every threshold on ``score``, F1 of ``flag``) against labels ``y``:
    the demo studies' two figures."""
    from sklearn.metrics import precision_recall_curve

    p, r, _ = precision_recall_curve(y, score)
    best = float(np.nanmax(2 * p * r / np.maximum(p + r, 1e-12)))
    tp = float((y & flag).sum())
    return best, 0.0 if tp == 0 else 2 * tp / (flag.sum() + y.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data/servers")
    parser.add_argument("--dump", default="out/bench-members", help="folder of the dumps")
    parser.add_argument("--servers", action="append", help="glob on dataset/server")
    parser.add_argument("--no-fit", action="store_true", help="use the dumps as they are")
    parser.add_argument("--per-server", action="store_true",
                        help="best F1 / F1 / FPR per server")
    args = parser.parse_args()
    folder = Path(args.dump)
    folder.mkdir(parents=True, exist_ok=True)
    if not args.no_fit:
        for key, path in discover_servers(args.data, args.servers):
            if not (folder / f"{key.replace('/', '__')}.npz").exists():
                t0 = time.perf_counter()
                dump_server(key, path, folder)
                print(f"dumped {key} in {time.perf_counter() - t0:.0f} s", flush=True)
    dumps = load_dumps(folder)
    from threadpoolctl import threadpool_limits

    members, oof = {}, {}
    with threadpool_limits(1):
        for key, d in dumps.items():
            t0 = time.perf_counter()
            members[key] = members_of(d)
            oof[key] = out_of_fold(d, 6.0)
            print(f"members of {key} in {time.perf_counter() - t0:.0f} s", flush=True)
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for name, variant in VARIANTS.items():
        rows[name] = {k: evaluate(d, *variant(members[k])) for k, d in dumps.items()}
    for window in ("1D", "3D"):
        for mode in ("diff", "ratio"):
            rows[f"shipped, self-level {mode} over {window} (q0.25 of unflagged)"] = {
                k: evaluate(d, *self_level(d["rawv"], d["rawt"], float(d["thr"]), window, 0.25,
                                           float(d["step_s"]), mode))
                for k, d in dumps.items()}
    for c in (1.0, 0.8):
        rows[f"all-rows reference, threshold on out-of-fold +-6h scores, flag at {c}"] = {
            k: evaluate(d, *oof[k], c=c) for k, d in dumps.items()}
    # leave-one-server-out choice of the excess weight: the best mean best F1 on the others
    grid = (0.125, 0.1875, 0.25, 1 / 3, 0.5, 0.75)
    per_w = {w: {k: evaluate(d, *plus(mix("L", "S"), "V", w)(members[k]))
                 for k, d in dumps.items()} for w in grid}
    chosen = {held: max(grid, key=lambda w, held=held: np.mean(
        [m["best_f1"] for k, m in per_w[w].items() if k != held])) for held in dumps}
    rows["(L + S) / 2 + w V, w chosen leave-one-server-out"] = {
        k: per_w[chosen[k]][k] for k in dumps}
    print(f"\n{len(dumps)} servers: {', '.join(dumps)}\n")
    print("excess weight chosen leave-one-server-out: " + ", ".join(
        f"{k.split('/')[-1]} {w:.3g}" for k, w in chosen.items()) + "\n")
    print_tables(rows, list(dumps), args.per_server)


if __name__ == "__main__":
    main()
