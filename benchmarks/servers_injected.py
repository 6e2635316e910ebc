"""A discriminative member trained on synthetic anomalies injected into the history (H14).

H12 used injected anomalies only to *choose* between fixed member mixes. Here they *train* a
member, without labels. Per dataset (a server, or one demo seed):

1. ``default_model(step)`` is fit as shipped (checked against the member studies' dump of
   its holdout view scores). A copy of its **fit part** (the first 85 % of each entity's
   history: the rows its reference set comes from) gets synthetic anomalies of every kind
   (:func:`aws_anomaly.data.anomalies.inject_anomalies` through servers_selfsup's
   ``inject_holdout``: sized from the copy's own noise and spread, ``--per-day`` events an
   entity and day, seeded by ``--inject-seed``). The model's own transform rebuilds the
   copy's features causally; constants are blinded as the model does.
2. A gradient-boosted classifier (scikit-learn's ``HistGradientBoostingClassifier``, the
   settings of ``SupervisedDetector``) learns to tell the clean reference rows (0: the
   model's own reference, the real un-injected fit rows) from the injected rows of the copy
   (1); at most ``--max-rows`` rows of each class (seeded subsample).
3. Its log-odds on the **real** calibration holdout and test rows (never injected) is the
   member ``G``; ``G'`` is ``G`` put on the default's scale (the holdout's median-to-q99
   range, servers_tails.matched, as H9/H10 did). Scores: ``G`` alone and ``(L + S + w G') /
   (2 + w)``; each flagged at its own POT threshold refit on the holdout's scores, exactly
   as shipped (servers_members.evaluate; on the demo the thresholds per entity,
   servers_tails.demo_f1_entity).

On the demo, rows carrying the demo's own labels are never class 1 (the injector avoids
them) and are not in the reference (the shipped model leaves them out); the labels are
used for nothing else than the final F1.

Caveat: the demo's labels come from the same injectors, so the demo favours this member;
the servers are the fair test.

Usage::

    nice .venv/bin/python benchmarks/servers_injected.py servers --per-server
    nice .venv/bin/python benchmarks/servers_injected.py demo --seeds 0 7 42 1234

Injected features are cached under ``--cache`` (default ``out/h14``).
Results: docs/model.md ("Measured 2026-12-02 (H14): a member trained on injected
anomalies").
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers_members import evaluate, load_dumps, print_tables
from servers_selfsup import inject_holdout
from servers_tails import DEFAULT, demo_arrays, demo_f1_entity, matched, weighted

from aws_anomaly.data.dataset import Dataset

Dump = dict[str, np.ndarray]
Pair = tuple[np.ndarray, np.ndarray]
#: The weights of the matched member in ``(L + S + w G') / (2 + w)``.
WEIGHTS = (0.25, 0.5, 1.0)
#: Log-odds are clipped to this magnitude (probabilities of exactly 0 or 1).
LOGIT_CLIP = 30.0


# ------------------------------------------------------------------------------ injecting
def injected_fit_rows(model: Any, fit_part: Dataset, seed: int, per_day: float
                      ) -> dict[str, Any]:
    """The injected copy of ``fit_part`` as the model sees it: the blinded features ``xi``
    of its injected, ready rows only, their kinds ``ki``, the number of injected events,
    and the seconds injection and features took. ``fit_part`` itself is not changed."""
    from servers_selfsup import events_of

    t0 = time.perf_counter()
    injected, new, kinds = inject_holdout(fit_part, seed, per_day)
    X, ready, _ = model._features(injected, None, "injected fit part")
    rows = ready & new
    xi = model.constant_guard.blind(X[rows])
    return {"xi": xi.astype(np.float32), "ki": kinds[rows],
            "events": np.int64(len(events_of(new))),
            "seconds": np.float64(time.perf_counter() - t0)}


# ------------------------------------------------------------------------------ the member
def fit_member(ref: np.ndarray, xi: np.ndarray, seed: int = 0, max_rows: int = 20_000,
               max_iter: int = 300, min_leaf: int = 20) -> Any:
    """A ``HistGradientBoostingClassifier`` (``SupervisedDetector``'s settings, but
    ``max_iter`` and ``min_leaf`` = ``min_samples_leaf`` as given) telling the
    clean reference rows ``ref`` (0) from the injected rows ``xi`` (1); at most
    ``max_rows`` of each class, a seeded subsample."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    if len(xi) < 10:
        raise SystemExit(f"error: only {len(xi)} injected ready rows to learn from; "
                         "raise --per-day")
    rng = np.random.default_rng(seed)

    def cap(x: np.ndarray) -> np.ndarray:
        return x if len(x) <= max_rows else x[np.sort(rng.choice(len(x), max_rows,
                                                                 replace=False))]
    a, b = cap(np.asarray(ref, dtype=np.float32)), cap(np.asarray(xi, dtype=np.float32))
    X = np.vstack([a, b])
    y = np.r_[np.zeros(len(a), bool), np.ones(len(b), bool)]
    return HistGradientBoostingClassifier(
        max_iter=max_iter, learning_rate=0.05, max_leaf_nodes=31, min_samples_leaf=min_leaf,
        early_stopping=False, random_state=seed).fit(X, y)


def member_scores(clf: Any, x: np.ndarray, form: str = "logit") -> np.ndarray:
    """The member ``G`` of the rows ``x``: the classifier's log-odds of 'injected'
    (``form="logit"``) or its probability (``"prob"``, bounded in [0, 1])."""
    if form == "prob":
        return np.asarray(clf.predict_proba(np.asarray(x, dtype=np.float32))[:, 1],
                          dtype=np.float64)
    return np.clip(np.asarray(clf.decision_function(np.asarray(x, dtype=np.float32)),
                              dtype=np.float64), -LOGIT_CLIP, LOGIT_CLIP)


def mixes(d: Dump, g: Pair) -> dict[str, Pair]:
    """The default, ``G`` alone and ``(L + S + w G') / (2 + w)`` (``G'``: ``G`` matched to
    the default's holdout median-to-q99 range), each (holdout, test) raw scores."""
    m: dict[str, Pair] = {"L": (d["vv"][:, 0], d["vt"][:, 0]),
                          "S": (d["vv"][:, 1], d["vt"][:, 1]), "G": g}
    base = weighted([("L", 1), ("S", 1)])(m)
    m["G'"] = matched(g, base[0])
    out = {DEFAULT: base, "G alone": g}
    for w in WEIGHTS:
        out[f"(L + S + {w:g} G') / {2 + w:g}"] = weighted([("L", 1), ("S", 1), ("G'", w)])(m)
    return out


def above_q99(hold: np.ndarray, test: np.ndarray, normal: np.ndarray) -> float:
    """The share of the ``normal`` test rows whose score is above the holdout's q99 (about
    0.01 when the holdout stands for the test's normal rows; more: the score drifts)."""
    return float(np.mean(test[normal] > np.quantile(hold, 0.99)))


# ----------------------------------------------------------------------- fit and inject
def fit_and_inject(train: Dataset, d: Dump, path: Path, seed: int, per_day: float,
                   where: str) -> dict[str, Any]:
    """``default_model`` fit on ``train`` as shipped (checked against the dump's holdout
    view scores), then the injected copy of its fit part (:func:`injected_fit_rows`),
    written to ``path``."""
    from servers_thresholds import _view_scores

    from aws_anomaly.fitting import holdout_split
    from aws_anomaly.presets import default_model

    t0 = time.perf_counter()
    model = default_model(train.step).fit(train)
    fit_s = time.perf_counter() - t0
    parts = holdout_split(model, train)
    if parts is None:
        raise SystemExit(f"error: {where}: too short for the default model's holdout")
    fit_part, holdout = parts
    Xv, ready_v, _ = model._features(holdout, fit_part, "holdout")
    np.testing.assert_allclose(_view_scores(model, Xv[ready_v]), d["vv"], rtol=1e-5,
                               atol=1e-6, err_msg=f"{where}: the refit is not the dump's model")
    out = injected_fit_rows(model, fit_part, seed, per_day)
    out["fit_seconds"] = np.float64(fit_s)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def run_one(d: Dump, inj: dict[str, Any], args: argparse.Namespace, where: str
            ) -> dict[str, Pair]:
    """Fit the member on one dataset's injected rows and return every mix's scores."""
    t0 = time.perf_counter()
    clf = fit_member(d["ref"], inj["xi"], args.inject_seed, args.max_rows, args.max_iter,
                     args.min_leaf)
    g = (member_scores(clf, d["xv"], args.form), member_scores(clf, d["xt"], args.form))
    kinds, counts = np.unique(inj["ki"], return_counts=True)
    print(f"{where}: {int(inj['events'])} injected events, {len(inj['xi'])} injected ready "
          f"rows ({', '.join(f'{k} {c}' for k, c in zip(kinds, counts, strict=True))}) against "
          f"{len(d['ref'])} reference rows; model fit {float(inj['fit_seconds']):.1f} s, "
          f"injection + features {float(inj['seconds']):.1f} s, member fit + scores "
          f"{time.perf_counter() - t0:.1f} s")
    sys.stdout.flush()
    return mixes(d, g)


def _cache_path(cache: Path, name: str, args: argparse.Namespace) -> Path:
    return cache / f"{name}_inj{args.inject_seed}_pd{args.per_day:g}.npz"


# ---------------------------------------------------------------------------- the servers
def servers(args: argparse.Namespace) -> None:
    """The servers table: the default, G alone and each weight."""
    from threadpoolctl import threadpool_limits

    from aws_anomaly.evaluation.servers_bench import discover_servers, load_server

    dumps = load_dumps(Path(args.dump))
    folders = dict(discover_servers(args.data))
    rows: dict[str, dict[str, dict[str, float]]] = {}
    with threadpool_limits(1):
        for key, d in dumps.items():
            if key not in folders:
                raise SystemExit(f"error: {key}: no server folder under {args.data}")
            path = _cache_path(Path(args.cache), key.replace("/", "__"), args)
            if path.exists():
                inj = dict(np.load(path))
            else:
                data = load_server(key, folders[key])
                inj = fit_and_inject(data.train, d, path, args.inject_seed, args.per_day, key)
            scores = run_one(d, inj, args, key)
            normal = ~d["y"].astype(bool)
            print("    normal test rows above the holdout's q99: " + ", ".join(
                f"{name} {above_q99(*scores[name], normal):.3f}"
                for name in (DEFAULT, "G alone")))
            for name, (hold, test) in scores.items():
                rows.setdefault(name, {})[key] = evaluate(d, hold, test)
    print_tables(rows, list(dumps), args.per_server)


# -------------------------------------------------------------------------------- the demo
def demo(args: argparse.Namespace) -> None:
    """The demo table (thresholds per entity): best F1 / own F1 per seed and the mean."""
    from threadpoolctl import threadpool_limits

    results: dict[str, list[tuple[float, float]]] = {}
    with threadpool_limits(1):
        for seed in args.seeds:
            d = demo_arrays(seed, Path(args.h10_cache))
            path = _cache_path(Path(args.cache), f"demo_seed{seed}", args)
            if path.exists():
                inj = dict(np.load(path))
            else:
                from aws_anomaly.data import generate_demo
                from aws_anomaly.evaluation.split import chronological_split, concat

                ds, _ = generate_demo(seed=seed, days=28)
                sp = chronological_split(ds)
                hist = concat([sp.train, sp.validation])
                inj = fit_and_inject(hist, d, path, args.inject_seed, args.per_day,
                                     f"demo seed {seed}")
            for name, (hold, test) in run_one(d, inj, args, f"demo seed {seed}").items():
                results.setdefault(name, []).append(demo_f1_entity(d, hold, test))
    print(f"\ndemo seeds {', '.join(map(str, args.seeds))}, thresholds per entity: best F1 / "
          "own F1 per seed, then the mean\n")
    print("| mix | " + " | ".join(f"seed {s}" for s in args.seeds)
          + " | mean best F1 | mean own F1 |")
    print("|---|" + "---|" * (len(args.seeds) + 2))
    for name, per in results.items():
        cells = " | ".join(f"{b:.3f} / {o:.3f}" for b, o in per)
        print(f"| {name} | {cells} | {np.mean([b for b, _ in per]):.3f} | "
              f"{np.mean([o for _, o in per]):.3f} |")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    sub = parser.add_subparsers(dest="bench", required=True)
    sv = sub.add_parser("servers", help="on servers_members.py's dumps")
    dm = sub.add_parser("demo", help="on the synthetic EKS demo")
    sv.add_argument("--dump", default="out/bench-members2",
                    help="folder of servers_members.py's dumps")
    sv.add_argument("--data", default="../shared/data/servers")
    sv.add_argument("--per-server", action="store_true", help="best F1 / F1 / FPR per server")
    dm.add_argument("--seeds", type=int, nargs="+", default=[0, 7, 42, 1234])
    dm.add_argument("--h10-cache", default="out/h10", help="servers_tails.py's demo cache")
    for p in (sv, dm):
        p.add_argument("--cache", default="out/h14", help="where injected features are kept")
        p.add_argument("--inject-seed", type=int, default=0, help="the injection seed")
        p.add_argument("--per-day", type=float, default=2.0,
                       help="injected events per entity and day of the fit part")
        p.add_argument("--max-rows", type=int, default=20_000,
                       help="at most this many rows of each class for the member")
        p.add_argument("--max-iter", type=int, default=300, help="boosting iterations")
        p.add_argument("--form", choices=("logit", "prob"), default="logit",
                       help="the member: the classifier's log-odds or its probability")
        p.add_argument("--min-leaf", type=int, default=20,
                       help="the member's min_samples_leaf (more: smoother, less fit)")
    args = parser.parse_args(argv)
    if args.per_day <= 0:
        parser.error(f"--per-day must be positive, got {args.per_day}")
    if args.max_rows < 10 or args.max_iter < 1 or args.min_leaf < 1:
        parser.error(f"--max-rows must be at least 10, --max-iter and --min-leaf at least 1; "
                     f"got {args.max_rows}, {args.max_iter} and {args.min_leaf}")
    (servers if args.bench == "servers" else demo)(args)


if __name__ == "__main__":
    main()
