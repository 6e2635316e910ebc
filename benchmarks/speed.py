"""Speed benchmark: batch features and scoring throughput, single-point latency, and a
straightforward pandas + scikit-learn pipeline measured in the same run as the reference.

Usage::

    .venv/bin/python benchmarks/speed.py [--rows 1000000] [--out out/bench/speed.json]

Data: ``generate_demo`` (3 metrics) with ``--entities`` clusters and ``--rows`` rows in all.
Every model is fitted on the first weeks of each cluster (fit time is not what is measured),
then scores all rows in one process. Rows/s are rows of input per wall-clock second.

* ``entity split``: ``Dataset.iter_entities`` + ``to_numpy`` + ``DatetimeIndex`` per entity
  (paid once by every path below that starts from a ``Dataset``; the feature rows start from
  the split arrays so that they measure the features alone).
* ``features``: ``build_features`` over every entity (the default ``FeatureSpec``): one fresh
  ``(n, 109)`` float64 matrix per entity (870 MB at 1M rows, first-touch page faults included).
* ``features iter_features``: the same features in 16,384-row chunks with ``reuse=True`` (one
  buffer refilled; how a long series should be scored with bounded memory).
* ``pipeline <detector>``: features + persistence (EWMA) columns + feature subset + scaler +
  detector + calibrator on whole-entity arrays (the work ``AnomalyModel.score`` does without
  building its output frame).
* ``pipeline chunked <detector>``: the same, chunk by chunk over ``iter_features(reuse=True)``
  with the EWMA state carried across chunks; checked bit-identical to ``pipeline``.
* ``AnomalyModel.score <detector>``: the public call, DataFrame in and out, explanations for
  flagged rows included.
* ``reference``: pandas ``rolling`` mean/std/min/max/z per window + lag differences, then
  ``sklearn.svm.OneClassSVM.decision_function`` fitted to about the same number of support
  vectors as our One-Class SVM.
* ``single point``: ``StreamScorer.update`` (streaming features + score) latency, p50/p99,
  measured three times: as is, with the objects alive before the loop frozen out of the garbage
  collector (``gc.freeze()``: a full collection then no longer walks the model and the data,
  which otherwise shows as a ~5 ms pause in about one update in a few hundred), and "best of
  5": five copies of the scorer fed each point in turn, the fastest of the five counted (on a
  shared, loaded machine the other two are mostly other processes' pauses; a point that is
  slow in every copy, a flagged one or a window-block boundary, stays slow).

At the end it prints the issue's aim for the single point (p99 <= 0.25 ms) with this run's
figure and the load average. ``--only single`` skips the batch rows (quick).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aws_anomaly.data import Dataset
from aws_anomaly.data.generator import generate_demo
from aws_anomaly.evaluation.split import chronological_split
from aws_anomaly.features import FeatureSpec, build_features, iter_features
from aws_anomaly.features.batch import CHUNK_ROWS, plan_for
from aws_anomaly.features.persist import PersistFilter, with_persist
from aws_anomaly.model import AnomalyModel


def _timed(fn: Any, repeat: int = 1) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def split_entities(ds: Dataset, metrics: list[str]
                   ) -> list[tuple[np.ndarray, pd.DatetimeIndex]]:
    return [(ef[metrics].to_numpy(dtype=np.float64), pd.DatetimeIndex(ef.index))
            for _, ef in ds.iter_entities()]


def features_only(parts: list[tuple[np.ndarray, pd.DatetimeIndex]], metrics: list[str],
                  spec: FeatureSpec) -> int:
    n = 0
    for vals, ts in parts:
        n += build_features(vals, ts, metrics, spec).values.shape[0]
    return n


def features_iter(parts: list[tuple[np.ndarray, pd.DatetimeIndex]], metrics: list[str],
                  spec: FeatureSpec) -> int:
    n = 0
    for vals, ts in parts:
        for c0, c1, _ in iter_features(vals, ts, metrics, spec, reuse=True):
            n += c1 - c0
    return n


def pipeline(model: AnomalyModel, parts: list[tuple[np.ndarray, pd.DatetimeIndex]],
             keep: list[np.ndarray] | None = None) -> int:
    """Features -> persistence -> subset -> scaler -> detector -> calibrator, per entity."""
    metrics = list(model.metrics_)
    n = 0
    for vals, ts in parts:
        fm = build_features(vals, ts, metrics, model.spec)
        full = with_persist(fm.values, model.persist_terms())
        X = model.transform(full)
        score = model.calibrator_.transform(model.detector_.score_samples(X))
        n += int(score.shape[0])
        if keep is not None:
            keep.append(score)
    return n


def pipeline_chunked(model: AnomalyModel, parts: list[tuple[np.ndarray, pd.DatetimeIndex]],
                     keep: list[np.ndarray] | None = None,
                     chunk_rows: int = CHUNK_ROWS) -> int:
    """:func:`pipeline` over ``iter_features(reuse=True)`` chunks: nothing of size n x k."""
    metrics = list(model.metrics_)
    names = plan_for(metrics, model.spec).names
    k = len(names)
    plan = model.persist_terms()
    ewm = PersistFilter(plan, k)
    buf = np.empty((chunk_rows, k + len(plan)))
    n = 0
    for vals, ts in parts:
        ewm.reset()
        out = np.empty(len(vals)) if keep is not None else None
        for c0, c1, block in iter_features(vals, ts, metrics, model.spec,
                                           chunk_rows=chunk_rows, reuse=True):
            full = buf[: c1 - c0]
            full[:, :k] = block
            ewm.fill(full)
            score = model.calibrator_.transform(model.detector_.score_samples(
                model.transform(full)))
            if out is not None:
                out[c0:c1] = score
            n += c1 - c0
        if keep is not None and out is not None:
            keep.append(out)
    return n


def reference_pipeline(ds: Dataset, windows: tuple[int, ...], lags: tuple[int, ...],
                       svm: Any, center: np.ndarray, scale: np.ndarray) -> int:
    n = 0
    for _, ef in ds.iter_entities():
        X = reference_features(ef[list(ds.metrics)], windows, lags)
        svm.decision_function((X - center) / scale)
        n += len(X)
    return n


def reference_features(frame: pd.DataFrame, windows: tuple[int, ...],
                       lags: tuple[int, ...]) -> np.ndarray:
    """The usual notebook code: pandas rolling statistics per metric and window."""
    cols = {}
    for m in frame.columns:
        s = frame[m]
        cols[f"{m}__value"] = s
        for w in windows:
            r = s.rolling(w, min_periods=1)
            mean, std = r.mean(), r.std(ddof=0)
            cols[f"{m}__mean_{w}"] = mean
            cols[f"{m}__std_{w}"] = std
            cols[f"{m}__min_{w}"] = r.min()
            cols[f"{m}__max_{w}"] = r.max()
            cols[f"{m}__z_{w}"] = (s - mean) / std.clip(lower=1e-6)
        for lag in lags:
            cols[f"{m}__diff_{lag}"] = s.diff(lag)
    return pd.DataFrame(cols).bfill().fillna(0.0).to_numpy()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--entities", type=int, default=4)
    ap.add_argument("--detectors", default="ocsvm,iforest,lof,robust")
    ap.add_argument("--points", type=int, default=20_000, help="single-point updates timed")
    ap.add_argument("--repeat", type=int, default=1, help="best of this many runs per row")
    ap.add_argument("--out", type=Path, default=Path("out/bench/speed.json"))
    ap.add_argument("--only", choices=("all", "single"), default="all",
                    help="'single': only the single-point latency (fits the models on less)")
    args = ap.parse_args(argv)
    if args.only == "single":
        args.rows = min(args.rows, args.entities * 288 * 40)

    days = args.rows / args.entities / 288
    t0 = time.perf_counter()
    ds, _ = generate_demo(clusters=args.entities, days=days, seed=0)
    print(f"generated {len(ds):,} rows x {len(ds.metrics)} metrics, {args.entities} entities "
          f"in {time.perf_counter() - t0:.1f} s", flush=True)
    n_rows = len(ds)
    spec = FeatureSpec()
    # Fit on the first four weeks of each cluster (what is measured is scoring).
    head = Dataset(frame=ds.frame.groupby("entity", sort=False).head(28 * 288)
                   .reset_index(drop=True), metrics=ds.metrics, step=ds.step)
    split = chronological_split(head)

    rows: list[dict[str, Any]] = []
    metrics = list(ds.metrics)
    if args.only == "single":
        models = {}
        for name in [d for d in args.detectors.split(",") if d]:
            params = {"random_state": 0} if name in ("ocsvm", "iforest") else {}
            models[name] = AnomalyModel(name, params, spec=spec).fit(split.train,
                                                                     split.validation)
        return _finish(args, ds, spec, models, rows, n_rows)
    dt, parts = _timed(lambda: split_entities(ds, metrics))
    rows.append({"what": "entity split", "rows": n_rows, "seconds": dt,
                 "rows_per_s": n_rows / dt})
    print(f"entity split: {n_rows / dt:,.0f} rows/s", flush=True)
    dt, n = _timed(lambda: features_only(parts, metrics, spec), repeat=args.repeat)
    rows.append({"what": "features", "rows": n, "seconds": dt, "rows_per_s": n / dt})
    print(f"features: {n / dt:,.0f} rows/s", flush=True)
    dt, n = _timed(lambda: features_iter(parts, metrics, spec), repeat=args.repeat)
    rows.append({"what": "features iter_features", "rows": n, "seconds": dt,
                 "rows_per_s": n / dt})
    print(f"features iter_features: {n / dt:,.0f} rows/s", flush=True)

    models: dict[str, AnomalyModel] = {}
    for name in [d for d in args.detectors.split(",") if d]:
        params = {"random_state": 0} if name in ("ocsvm", "iforest") else {}
        model = AnomalyModel(name, params, spec=spec).fit(split.train, split.validation)
        models[name] = model
        extra = {}
        if name == "ocsvm":
            extra["support_vectors"] = int(model.detector_.support_vectors_.shape[0])
        dt, n = _timed(lambda m=model: pipeline(m, parts), repeat=args.repeat)
        rows.append({"what": f"pipeline {name}", "rows": n, "seconds": dt, "rows_per_s": n / dt,
                     **extra})
        print(f"pipeline {name}: {n / dt:,.0f} rows/s {extra}", flush=True)
        dt, n = _timed(lambda m=model: pipeline_chunked(m, parts), repeat=args.repeat)
        whole: list[np.ndarray] = []
        chunked: list[np.ndarray] = []
        pipeline(model, parts[:1], whole)
        pipeline_chunked(model, parts[:1], chunked)
        same = bool(np.array_equal(whole[0], chunked[0]))
        rows.append({"what": f"pipeline chunked {name}", "rows": n, "seconds": dt,
                     "rows_per_s": n / dt, "identical_to_pipeline": same, **extra})
        print(f"pipeline chunked {name}: {n / dt:,.0f} rows/s (identical: {same})", flush=True)
        dt, s = _timed(lambda m=model: m.score(ds))
        rows.append({"what": f"AnomalyModel.score {name}", "rows": len(s), "seconds": dt,
                     "rows_per_s": len(s) / dt})
        print(f"AnomalyModel.score {name}: {len(s) / dt:,.0f} rows/s", flush=True)

    # Reference: pandas rolling features + scikit-learn OneClassSVM, ~ the same SV count.
    from sklearn.svm import OneClassSVM

    ref_sv = rows[[r["what"] for r in rows].index("pipeline ocsvm")].get("support_vectors", 40) \
        if "ocsvm" in models else 40
    e0 = head.entity_frame(head.entities[0])[list(ds.metrics)]
    Xtr = reference_features(e0, spec.windows, spec.lags)[spec.min_history:]
    center, scale = Xtr.mean(axis=0), Xtr.std(axis=0) + 1e-9
    rng = np.random.default_rng(0)
    sub = (Xtr[rng.choice(len(Xtr), size=min(len(Xtr), 4 * ref_sv), replace=False)] - center) \
        / scale
    # nu = 0.25 on 4x the SV count leaves about that many SVs (nu is a lower bound on their share)
    svm = OneClassSVM(kernel="rbf", gamma="scale", nu=0.25).fit(sub)
    dt, n = _timed(lambda: reference_pipeline(ds, spec.windows, spec.lags, svm, center, scale),
                   repeat=args.repeat)
    rows.append({"what": "reference pandas+sklearn OCSVM", "rows": n, "seconds": dt,
                 "rows_per_s": n / dt, "support_vectors": int(svm.support_vectors_.shape[0]),
                 "features": int(Xtr.shape[1])})
    print(f"reference: {n / dt:,.0f} rows/s ({svm.support_vectors_.shape[0]} SVs)", flush=True)

    return _finish(args, ds, spec, models, rows, n_rows)


def _latency(scorer: Any, index: pd.DatetimeIndex, vals: np.ndarray, start: int,
             points: int) -> dict[str, float]:
    times = np.empty(points)
    for i in range(points):
        ts, v = index[start + i], vals[start + i]
        t1 = time.perf_counter()
        scorer.update(ts, v)
        times[i] = time.perf_counter() - t1
    return {"p50_ms": float(np.percentile(times, 50) * 1e3),
            "p99_ms": float(np.percentile(times, 99) * 1e3), "points": points}


def _latency_replay(scorer: Any, index: pd.DatetimeIndex, vals: np.ndarray, start: int,
                    points: int, replays: int = 5) -> dict[str, float]:
    """Per point, the best of ``replays`` independent copies of the scorer fed the same
    point in turn: what a point costs without the pauses other processes cause on a shared
    machine (a point that is slow in every copy, a flagged one, stays slow)."""
    copies = [scorer.copy() for _ in range(replays)]
    times = np.empty((replays, points))
    for i in range(points):
        ts, v = index[start + i], vals[start + i]
        for r, c in enumerate(copies):
            t1 = time.perf_counter()
            c.update(ts, v)
            times[r, i] = time.perf_counter() - t1
    best = times.min(axis=0)
    return {"p50_ms": float(np.percentile(best, 50) * 1e3),
            "p99_ms": float(np.percentile(best, 99) * 1e3), "points": points,
            "replays": replays}


def _finish(args: argparse.Namespace, ds: Dataset, spec: FeatureSpec,
            models: dict[str, AnomalyModel], rows: list[dict[str, Any]], n_rows: int) -> int:
    # Single point: streaming features + score, after priming with a day of history.
    latency: dict[str, Any] = {}
    for name in ("ocsvm", "robust"):
        if name not in models:
            continue
        model = models[name]
        entity = ds.entities[0]
        ef = ds.entity_frame(entity)
        vals = ef[list(ds.metrics)].to_numpy(dtype=np.float64)
        prime = spec.history_rows + 1
        scorer = model.stream(entity, history=Dataset(
            frame=ds.frame[ds.frame["entity"] == entity].iloc[:prime].reset_index(drop=True),
            metrics=ds.metrics, step=ds.step))
        n = min(args.points, len(vals) - prime - 1) // 2
        primed = scorer.copy()  # the replay below starts from the same point
        latency[name] = _latency(scorer, ef.index, vals, prime, n)
        gc.collect()
        gc.freeze()
        try:
            latency[name + " gc.freeze"] = _latency(scorer, ef.index, vals, prime + n, n)
        finally:
            gc.unfreeze()
        gc.collect()
        gc.freeze()
        try:
            latency[name + " best of 5"] = _latency_replay(primed, ef.index, vals, prime,
                                                           min(n, 4000))
        finally:
            gc.unfreeze()
        for key in (name, name + " gc.freeze", name + " best of 5"):
            print(f"single point {key}: p50 {latency[key]['p50_ms']:.3f} ms, "
                  f"p99 {latency[key]['p99_ms']:.3f} ms", flush=True)

    if rows:
        ref = rows[-1]["rows_per_s"]
        print(f"\n{'what':<34}{'rows/s':>14}{'vs reference':>14}")
        print("-" * 62)
        for r in rows:
            print(f"{r['what']:<34}{r['rows_per_s']:>14,.0f}{r['rows_per_s'] / ref:>13.1f}x")
    for name, lat in latency.items():
        print(f"{'single point ' + name + ' p50 / p99 ms':<34}"
              f"{lat['p50_ms']:>7.3f} / {lat['p99_ms']:.3f}")
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    aims = []
    by_what = {r["what"]: r for r in rows}
    ref_row = by_what.get("reference pandas+sklearn OCSVM")
    if ref_row is not None and "AnomalyModel.score ocsvm" in by_what:
        got = by_what["AnomalyModel.score ocsvm"]["rows_per_s"]
        ratio = got / ref_row["rows_per_s"]
        aims.append({"what": "AnomalyModel.score batch (ocsvm), vs the pandas + scikit-learn "
                     "reference in the same run", "before": "0.9x (117k rows/s)",
                     "now": f"{ratio:.1f}x ({got / 1e3:,.0f}k rows/s)", "aim": ">= 4x",
                     "met": bool(ratio >= 4.0)})
    for name, lat in latency.items():
        aims.append({"what": f"single point, streaming features + score, p99 ({name})",
                     "before": "0.356 ms", "now": f"{lat['p99_ms']:.3f} ms (p50 "
                     f"{lat['p50_ms']:.3f} ms)", "aim": "<= 0.25 ms",
                     "met": bool(lat["p99_ms"] <= 0.25)})
    print(f"\nload average (1, 5, 15 min): {load}, {os.cpu_count()} CPUs")
    print("| what | before | now | aim | met |\n|---|---|---|---|---|")
    for a in aims:
        print(f"| {a['what']} | {a['before']} | {a['now']} | {a['aim']} | "
              f"{'yes' if a['met'] else 'no'} |")
    result = {"rows": n_rows, "load_avg_1_5_15": load, "cpus": os.cpu_count(), "aims": aims,
              "entities": args.entities, "metrics": list(ds.metrics),
              "throughput": rows, "single_point": latency,
              "python": platform.python_version(), "numpy": np.__version__,
              "machine": platform.machine(), "created": pd.Timestamp.now("UTC").isoformat()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
