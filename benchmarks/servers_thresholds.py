"""Label-free threshold and decision rules for the default model, on the real servers.

The servers bench (``aws-anomaly bench servers``) fits and scores the default model once per
run, which takes minutes a server on a loaded machine. A threshold rule only needs the scores,
so this script fits the shipped ``default_model(step)`` once per server, **dumps** its raw
scores, and then evaluates any number of rules on them in seconds:

* ``rawv``: the raw scores of the calibration holdout (the last 15 % of ``train.parquet``,
  scored against a reference set fit on the first 85 %: exactly what the model's POT
  threshold is fit on), in time order; ``vv``: each view's distance (level, stationary);
  the raw score is their mean plus the detector's volatility-excess term (``excess_term``);
* ``rawt`` / ``vt``: the raw scores of ``test.parquet`` (causal, the training rows as
  look-back); ``readyt``; ``zt``: the largest move of a metric constant in training, in
  tolerance units (>= 1 flags the point whatever the detector says, as the model does);
* ``rawt_refit``: the test's raw scores against a reference refit on every training row
  (the holdout included), the threshold left as the holdout set it;
* ``xl``: the test rows' level-view features (scaled, as the detector sees them);
* ``y``: the test labels (used only to measure), ``thr`` / ``center``: the shipped
  calibrator's threshold and reference level.

A rule maps a server's dump to calibrated test scores (``>= 1`` flagged); the point and
event metrics are the bench's (:func:`aws_anomaly.evaluation.servers_bench.server_metrics`).
``--loso`` chooses the one global scale ``c`` (flag at ``anomaly_score >= c``) leave-one-
server-out: for each held-out server, the ``c`` with the best mean F1 on the other nine among
those keeping every one of them at FPR <= 0.02 (the fewest over it when none does).

Usage::

    nice .venv/bin/python benchmarks/servers_thresholds.py --data ../shared/data/servers \\
        --dump out/bench-thresholds            # fits only the servers not dumped yet
    .venv/bin/python benchmarks/servers_thresholds.py --dump out/bench-thresholds --no-fit \\
        --loso --per-server

Results: docs/benchmarks.md ("Label-free thresholds and decisions on the shipped scores").
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from aws_anomaly.calibration import pot_threshold
from aws_anomaly.evaluation.servers_bench import discover_servers, load_server, server_metrics

if TYPE_CHECKING:
    from aws_anomaly.model import AnomalyModel

#: The issue-8 ceiling on each server's false-positive rate at the model's own flag.
MAX_FPR = 0.02
Dump = dict[str, np.ndarray]
Rule = Callable[[Dump], np.ndarray]


# --------------------------------------------------------------------------------- dumping
def _view_scores(model: AnomalyModel, X: np.ndarray) -> np.ndarray:
    """(rows, views): each view's nearest-reference distance / sqrt(its columns)."""
    det = model.detector_
    Xb = model.constant_guard.blind(X)
    out = np.empty((len(Xb), len(det.views_)))
    for v, cols in enumerate(det.views_):
        for s in range(0, len(Xb), 256):
            out[s:s + 256, v] = (np.sqrt(det._nearest_sq(Xb[s:s + 256], v, None))
                                 / math.sqrt(len(cols)))
    return out


def fit_for_dump(key: str, folder: Path) -> tuple[Any, Any, np.ndarray, np.ndarray,
                                                  np.ndarray, np.ndarray]:
    """What every dump of a server starts from: ``(data, model, Xv, Xt, ready_t, zt)``, the
    server, ``default_model(step)`` fit on its training rows, the features of the
    calibration holdout's ready rows (the last part of ``train.parquet``, with the rows
    before it as look-back), the test rows' features and readiness, and per test row the
    largest move of a metric constant in training (tolerance units). Call it with BLAS
    limited to one thread."""
    from aws_anomaly.fitting import holdout_split
    from aws_anomaly.presets import default_model

    data = load_server(key, folder)
    model = default_model(data.train.step).fit(data.train)
    parts = holdout_split(model, data.train)
    if parts is None:
        raise SystemExit(f"error: {key}: too short for the default model's holdout")
    fit_part, holdout = parts
    Xv, ready_v, _ = model._features(holdout, fit_part, "holdout")
    Xt, ready_t, _ = model._features(data.test, data.train, "test")
    zt = model.constant_guard.breaks(Xt).max(axis=1) if model.constant_ else np.zeros(len(Xt))
    return data, model, Xv[ready_v], Xt, ready_t, zt


def dump_server(key: str, folder: Path, out: Path) -> Path:
    """Fit ``default_model(step)`` on one server and write its scores (module docstring)."""
    from threadpoolctl import threadpool_limits

    from aws_anomaly.detectors import make_detector

    with threadpool_limits(1):
        data, model, Xv, Xt, ready_t, zt = fit_for_dump(key, folder)
        # The variant "reference refit on all training rows": the same detector parameters,
        # every ready training row (the holdout included) as the reference.
        Xa, ready_a, _ = model._features(data.train, None, "training data")
        refit = make_detector(model.detector, **model.detector_.get_params()).fit(
            model.constant_guard.blind(Xa[ready_a]))
        del Xa
        arrays = {
            "rawv": model._raw(Xv), "vv": _view_scores(model, Xv),
            "rawt": model._raw(Xt), "vt": _view_scores(model, Xt), "readyt": ready_t,
            "rawt_refit": refit.score_samples(model.constant_guard.blind(Xt)),
            # the level view's test rows, for the re-baselining rule
            "xl": model.constant_guard.blind(Xt)[:, model.detector_.views_[0]],
            "zt": zt, "y": data.labels, "thr": np.float64(model.calibrator_.threshold_),
            "center": np.float64(model.calibrator_.center_),
            "step_s": np.float64(data.train.step.total_seconds()),
        }
    path = out / f"{key.replace('/', '__')}.npz"
    np.savez(path, **arrays)
    return path


def load_dumps(folder: Path) -> dict[str, Dump]:
    dumps = {}
    for f in sorted(folder.glob("*__*.npz")):
        with np.load(f) as z:
            dumps[f.stem.replace("__", "/", 1)] = {k: z[k] for k in z.files}
    if not dumps:
        raise SystemExit(f"error: {folder}: no dumped servers (*.npz); run without --no-fit")
    return dumps


# ------------------------------------------------------------------------------ the rules
def calibrated(d: Dump, raw: np.ndarray, thr: float, center: float) -> np.ndarray:
    """The model's map to ``anomaly_score`` (1.0 at ``thr``), with its constant-metric rule,
    on every test row (0 on rows not ready)."""
    scale = max(thr - center, 1e-12)
    s = np.maximum(0.0, 1.0 + (raw - thr) / scale)
    s = np.where(raw >= thr, np.maximum(s, 1.0), np.minimum(s, math.nextafter(1.0, 0.0)))
    z = d["zt"]
    s = np.where(z >= 1.0, np.maximum(s, 1.0 + np.log1p(np.maximum(z - 1.0, 0.0))), s)
    return np.where(d["readyt"], s, 0.0)


def shipped(d: Dump) -> np.ndarray:
    return calibrated(d, d["rawt"], float(d["thr"]), float(d["center"]))


def refit_reference(c: float) -> Rule:
    """The shipped threshold on the scores of a reference refit on all training rows, flagged
    at ``anomaly_score >= c``."""
    return lambda d: calibrated(d, d["rawt_refit"], float(d["thr"]), float(d["center"])) / c


def rebaseline_level(delay: str, admit: float, c: float) -> Rule:
    """Re-baselining the level view, simulated causally: a test row joins the level view's
    reference ``delay`` after it was seen if it scored below ``admit * c`` (calibrated), and
    every later row's level distance is the smaller of the one to the training reference and
    the one to those rows; flagged at ``anomaly_score >= c``. The stationary view and the
    threshold are the shipped ones."""
    def rule(d: Dump) -> np.ndarray:
        x = np.asarray(d["xl"], dtype=np.float64)
        n, width = len(x), math.sqrt(x.shape[1])
        lag = max(1, round(pd.Timedelta(delay).total_seconds() / float(d["step_s"])))
        level0, stat = d["vt"][:, 0], d["vt"][:, 1]
        excess = excess_term(d)[1]
        thr, center = float(d["thr"]), float(d["center"])
        sq = np.einsum("ij,ij->i", x, x)
        admitted = np.zeros(n, dtype=bool)
        level = level0.copy()
        out = np.zeros(n)
        for a in range(0, n, lag):  # rows of one block only see rows admitted before it
            b = min(n, a + lag)
            cand = np.flatnonzero(admitted[:a])
            for s0 in range(a, b, 512) if cand.size else ():
                s1 = min(b, s0 + 512)
                d2 = sq[s0:s1, None] + sq[cand][None, :] - 2.0 * (x[s0:s1] @ x[cand].T)
                d2[cand[None, :] > np.arange(s0, s1)[:, None] - lag] = np.inf
                near = np.sqrt(np.maximum(d2.min(axis=1), 0.0)) / width
                level[s0:s1] = np.minimum(level0[s0:s1], near)
            part = {k: d[k][a:b] for k in ("zt", "readyt")}
            out[a:b] = calibrated(part, (level[a:b] + stat[a:b]) / 2.0 + excess[a:b], thr,
                                  center) / c
            admitted[a:b] = d["readyt"][a:b] & (out[a:b] < admit)
        return out
    return rule


def excess_term(d: Dump) -> tuple[np.ndarray, np.ndarray]:
    """(holdout, test) of the part of the raw score that is not the mean of the two views'
    distances: the kNN detector's volatility-excess term (0 in dumps of models without it)."""
    return d["rawv"] - d["vv"].mean(axis=1), d["rawt"] - d["vt"].mean(axis=1)


def scale(c: float) -> Rule:
    """Flag at ``anomaly_score >= c``: the shipped threshold moved towards (c < 1) or away
    from (c > 1) the median score."""
    return lambda d: shipped(d) / c


def pot(risk: float, level: float) -> Rule:
    def rule(d: Dump) -> np.ndarray:
        thr, _ = pot_threshold(d["rawv"], risk, level)
        return calibrated(d, d["rawt"], thr, float(np.median(d["rawv"])))
    return rule


def pot_floor(risk: float, quantile: float) -> Rule:
    """POT at ``risk``, never below the holdout's ``quantile``."""
    def rule(d: Dump) -> np.ndarray:
        thr = max(pot_threshold(d["rawv"], risk, 0.98)[0], float(np.quantile(d["rawv"],
                                                                              quantile)))
        return calibrated(d, d["rawt"], thr, float(np.median(d["rawv"])))
    return rule


def declustered_pot(risk: float, level: float, gap: str) -> Rule:
    """POT on cluster peaks: exceedances of the ``level`` quantile closer than ``gap`` form
    one cluster; the GPD is fit to the clusters' peaks and ``risk`` is per point (the rate of
    clusters whose peak passes the threshold)."""
    from scipy.stats import genpareto

    def rule(d: Dump) -> np.ndarray:
        v = d["rawv"]
        rows = max(1, round(pd.Timedelta(gap).total_seconds() / float(d["step_s"])))
        t = float(np.quantile(v, level))
        idx = np.flatnonzero(v > t)
        starts = np.r_[0, np.flatnonzero(np.diff(idx) > rows) + 1]
        peaks = np.maximum.reduceat(v[idx], starts) - t
        xi, _, sigma = genpareto.fit(peaks, floc=0.0)
        ratio = risk * len(v) / len(peaks)
        thr = t if ratio >= 1 else (t + sigma / xi * (ratio ** -xi - 1) if abs(xi) > 1e-9
                                    else t - sigma * math.log(ratio))
        return calibrated(d, d["rawt"], max(thr, t), float(np.median(v)))
    return rule


def _smooth(x: np.ndarray, rows: int, kind: str) -> np.ndarray:
    if rows <= 1:
        return x
    if kind == "ewm":
        from scipy.signal import lfilter

        a = 2.0 / (rows + 1)
        return lfilter([a], [1.0, -(1.0 - a)], x, zi=[(1.0 - a) * x[0]])[0]
    c = np.cumsum(np.r_[0.0, x])
    i = np.arange(len(x))
    lo = np.maximum(0, i - rows + 1)
    mean = (c[i + 1] - c[lo]) / (i + 1 - lo)
    return np.maximum(x, mean) if kind == "max" else mean


def smoothed(window: str, kind: str, risk: float) -> Rule:
    """The raw score smoothed causally over ``window`` (``mean``, ``ewm`` or ``max`` of the
    raw and the mean) on the holdout and the test alike; POT on the smoothed holdout."""
    def rule(d: Dump) -> np.ndarray:
        rows = max(1, round(pd.Timedelta(window).total_seconds() / float(d["step_s"])))
        v, t = _smooth(d["rawv"], rows, kind), _smooth(d["rawt"], rows, kind)
        return calibrated(d, t, pot_threshold(v, risk, 0.98)[0], float(np.median(v)))
    return rule


def views(name: str, combine: Callable[[np.ndarray], np.ndarray], risk: float = 1e-3) -> Rule:
    def rule(d: Dump) -> np.ndarray:
        ev, et = excess_term(d)
        v, t = combine(d["vv"]) + ev, combine(d["vt"]) + et
        return calibrated(d, t, pot_threshold(v, risk, 0.98)[0], float(np.median(v)))
    rule.__name__ = name
    return rule


def hysteresis(low: float) -> Rule:
    """A flag held while the score stays at or above ``low`` (hysteresis): a point is flagged
    at ``anomaly_score >= 1``, and after a flagged point also at ``>= low``; the held points
    score 1.0 (causal: each point looks at the previous flag only)."""
    def rule(d: Dump) -> np.ndarray:
        s = shipped(d)
        out = s.copy()
        on = False
        for i, v in enumerate(s.tolist()):
            if v >= 1.0:
                on = True
            elif on and v >= low:
                out[i] = 1.0
            else:
                on = False
        return out
    return rule


RULES: dict[str, Rule] = {
    # the dump's own threshold: POT level 0.98 at the risk of its time (1e-3 for every step
    # until 2026-12-02; since then pot_risk of the step: 5e-3 at the ASD servers' 5 minutes)
    "shipped: the model's own POT threshold": shipped,
    **{f"flag at anomaly_score >= {c}": scale(c) for c in (0.6, 0.7, 0.8, 0.9, 1.1, 1.2)},
    **{f"POT risk {r:g} level {lv}": pot(r, lv)
       for r in (1e-3, 2e-3, 3e-3, 5e-3) for lv in (0.95, 0.99)},
    **{f"POT risk {r:g} level 0.98": pot(r, 0.98) for r in (2e-3, 3e-3, 5e-3)},
    **{f"max(POT risk {r:g}, holdout q{q})": pot_floor(r, q)
       for r in (2e-3, 3e-3) for q in (0.995, 0.999, 1.0)},
    **{f"declustered POT risk {r:g} level {lv} gap {g}": declustered_pot(r, lv, g)
       for r in (1e-3,) for lv in (0.95, 0.98) for g in ("15min", "1h")},
    **{f"smoothed {k} {w}, POT risk {r:g}": smoothed(w, k, r)
       for k in ("mean", "ewm", "max") for w in ("5min", "15min", "30min") for r in (1e-3, 2e-3)},
    "views: level weight 0.5": views("l.5", lambda v: (0.5 * v[:, 0] + v[:, 1]) / 1.5),
    "views: level weight 1.5": views("l1.5", lambda v: (1.5 * v[:, 0] + v[:, 1]) / 2.5),
    "views: root mean square": views("rms", lambda v: np.sqrt((v ** 2).mean(axis=1))),
    "views: geometric mean": views("geo", lambda v: np.sqrt(v[:, 0] * v[:, 1])),
    "views: stationary alone": views("stat", lambda v: v[:, 1]),
    **{f"reference refit on all training rows, flag at >= {c}": refit_reference(c)
       for c in (0.7, 0.8, 1.0)},
    **{f"level view re-baselined after {w} (rows under {a:g} x the flag), flag at >= {c}":
       rebaseline_level(w, a, c)
       for w in ("6h", "1D", "3D") for a in (1.0, 0.5) for c in (1.0, 0.8, 0.7)},
    **{f"hysteresis: a flag held while anomaly_score >= {h}": hysteresis(h)
       for h in (0.5, 0.6, 0.7, 0.8, 0.9)},
}


# ----------------------------------------------------------------------------- measuring
def measure(dumps: dict[str, Dump], rule: Rule) -> dict[str, dict[str, float]]:
    out = {}
    for key, d in dumps.items():
        s = rule(d)
        out[key] = server_metrics(d["y"], s, s >= 1.0, pd.Timedelta(seconds=float(d["step_s"])))
    return out


def summary(per: dict[str, dict[str, float]]) -> str:
    f1 = np.array([m["f1"] for m in per.values()])
    fpr = np.array([m["fpr"] for m in per.values()])
    best = np.array([m["best_f1"] for m in per.values()])
    evp = np.array([m["event_precision"] for m in per.values()])
    return (f"| {f1.mean():.3f} | {fpr.mean():.4f} | {fpr.max():.3f} | "
            f"{int((fpr > MAX_FPR).sum())} | {best.mean():.3f} | {evp.mean():.3f} |")


def loso_scale(dumps: dict[str, Dump], grid: tuple[float, ...]) -> list[tuple[str, float, dict]]:
    per_c = {c: measure(dumps, scale(c)) for c in grid}
    rows = []
    for held in dumps:
        def key(c: float, held: str = held) -> tuple[int, float]:
            others = [m for k, m in per_c[c].items() if k != held]
            over = sum(m["fpr"] > MAX_FPR for m in others)
            return (-over, float(np.mean([m["f1"] for m in others])))
        c = max(grid, key=key)
        rows.append((held, c, per_c[c][held]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data/servers")
    parser.add_argument("--dump", default="out/bench-thresholds", help="folder of the dumps")
    parser.add_argument("--servers", action="append", help="glob on dataset/server")
    parser.add_argument("--no-fit", action="store_true", help="use the dumps as they are")
    parser.add_argument("--refresh", action="store_true", help="refit every server")
    parser.add_argument("--loso", action="store_true", help="leave-one-server-out scale c")
    parser.add_argument("--per-server", action="store_true", help="F1/FPR per server")
    args = parser.parse_args()
    folder = Path(args.dump)
    folder.mkdir(parents=True, exist_ok=True)
    if not args.no_fit:
        for key, path in discover_servers(args.data, args.servers):
            target = folder / f"{key.replace('/', '__')}.npz"
            if target.exists() and not args.refresh:
                continue
            t0 = time.perf_counter()
            dump_server(key, path, folder)
            print(f"dumped {key} in {time.perf_counter() - t0:.0f} s", flush=True)
    dumps = load_dumps(folder)
    print(f"\n{len(dumps)} servers: {', '.join(dumps)}\n")
    print("| rule | F1 | mean FPR | max FPR | servers FPR > 0.02 | best F1 | event P |")
    print("|---|---|---|---|---|---|---|")
    results = {}
    for name, rule in RULES.items():
        results[name] = measure(dumps, rule)
        print(f"| {name} {summary(results[name])}")
    if args.per_server:
        print("\nPer server, F1 / FPR at the own flag:\n")
        keys = list(dumps)
        print("| rule | " + " | ".join(k.split("/")[-1] for k in keys) + " |")
        print("|---|" + "---|" * len(keys))
        for name, per in results.items():
            print(f"| {name} | " + " | ".join(f"{per[k]['f1']:.2f}/{per[k]['fpr']:.3f}"
                                              for k in keys) + " |")
    if args.loso:
        grid = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4)
        rows = loso_scale(dumps, grid)
        print("\nLeave-one-server-out scale c (flag at anomaly_score >= c):\n")
        print("| held-out server | chosen c | F1 | FPR |")
        print("|---|---|---|---|")
        for held, c, m in rows:
            print(f"| {held} | {c} | {m['f1']:.3f} | {m['fpr']:.4f} |")
        f1 = np.mean([m["f1"] for _, _, m in rows])
        fpr = [m["fpr"] for _, _, m in rows]
        print(f"| **mean** | | {f1:.3f} | max {max(fpr):.3f} |")


if __name__ == "__main__":
    main()
