"""The default's member mix chosen per dataset, without labels, by injected anomalies (H12).

H10 found that ``(L + S + 0.5 T[ecod,top]) / 2.5`` (L, S: the default's level and stationary
nearest-neighbour views; T: servers_tails' empirical-tail member) wins on the real servers
but loses on the 3-metric demo, where ``(L + S) / 2`` (the shipped default) wins. This study
measures whether the mix can be **picked per dataset at fit time** by a label-free surrogate:
how well each candidate finds synthetic anomalies injected into the model's own held-out
normal rows (the surrogate of unsupervised model selection for time series; Goswami et al.,
ICLR 2023, "Unsupervised Model Selection for Time-series Anomaly Detection").

Per dataset (a server, or one demo seed):

1. ``default_model(step)`` is fit as shipped; the calibration holdout (the last 15 % of each
   entity's history, the rows its POT threshold is fit on) gets synthetic anomalies of every
   kind (:func:`aws_anomaly.data.anomalies.inject_anomalies`: sized from the holdout's own
   noise and spread, ``--per-day`` events an entity and day, seeded by ``--inject-seed``);
   its features are rebuilt causally by the model's own transform, warm-started with the
   rows before the holdout; each candidate's members are scored on the injected rows (L, S
   from the model's kNN, T from the ECDF of the reference rows only). The reference rows
   (the fit part) are never changed.
2. A surrogate per candidate against the injected labels: best point F1 (``f1``), average
   precision (``ap``), or the share of injected events with a point at or above the
   candidate's own POT threshold (``recall``: the threshold fit on the clean holdout's scores
   of the candidate, per entity where the model has one). The candidate with the best
   surrogate is chosen; ties (within ``--margin``) keep the default.
3. The real test split is scored with the chosen candidate and its own POT threshold fit on
   the clean holdout, as shipped; the bench's metrics.

On the demo, rows of the holdout that carry the demo's own labels are left out of the
surrogate (the model leaves them out of its reference and threshold too).

Caveat: the demo's labels come from the same injectors, so the surrogate is closer to the
demo's truth than to the servers'; the servers are the fair test.

Usage (the kept procedure: the default or the 0.5 T mix by mean average precision over 16
injection seeds at 2 events an entity and day; ``--subsets``: the same on random draws of
the seeds)::

    nice .venv/bin/python benchmarks/servers_selfsup.py servers --dump out/bench-members2 \\
        --per-server --inject-seed $(seq -s ' ' 0 15) --per-day 2
    nice .venv/bin/python benchmarks/servers_selfsup.py demo --seeds 0 7 42 1234 \\
        --inject-seed $(seq -s ' ' 0 31) --per-day 2 --subsets 4 8 16

Injected features are cached under ``--cache`` (default ``out/h12``).
Results: docs/model.md ("Measured 2026-12-02 (H12): the member mix chosen by injected
anomalies").
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# The member studies' dumps, tail member, mixes, thresholds and tables: shared, not copied.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers_members import evaluate, load_dumps, print_tables
from servers_tails import (
    DEFAULT,
    EmpiricalTails,
    Pair,
    demo_arrays,
    demo_f1_entity,
    entity_thresholds,
    view_columns,
    view_tail,
    weighted,
)

from aws_anomaly.calibration import pot_threshold
from aws_anomaly.data.anomalies import ANOMALY_KINDS, inject_anomalies
from aws_anomaly.data.dataset import Dataset
from aws_anomaly.errors import DataError

Dump = dict[str, np.ndarray]
#: The tail member (H10's best form and aggregate).
TAIL = "T[ecod,top]"
#: The candidates, a small fixed set: the default first (it wins ties).
CANDIDATES = {
    DEFAULT: weighted([("L", 1), ("S", 1)]),
    "(L + S + 0.25 T) / 2.25": weighted([("L", 1), ("S", 1), (TAIL, 0.25)]),
    "(L + S + 0.5 T) / 2.5": weighted([("L", 1), ("S", 1), (TAIL, 0.5)]),
    "(L + S + T) / 3": weighted([("L", 1), ("S", 1), (TAIL, 1.0)]),
}
SURROGATES = ("f1", "ap", "recall")


# ------------------------------------------------------------------------------ injecting
def inject_holdout(holdout: Dataset, seed: int, per_day: float, min_events: int = 1
                   ) -> tuple[Dataset, np.ndarray, np.ndarray]:
    """``(injected, new, kinds)``: ``holdout`` with synthetic anomalies of every kind,
    ``per_day`` events an entity and day (at least ``min_events``), seeded; ``new``: the
    rows the injection labelled (rows labelled before are never touched); ``kinds``: their
    kind."""
    f = holdout.frame
    days = f.groupby("entity", sort=False)["timestamp"].agg(lambda t: (t.max() - t.min())
                                                            / pd.Timedelta("1D"))
    n_events = max(1, min_events, round(per_day * float(days.min())))
    old = (f["is_anomaly"].to_numpy() == 1) if holdout.has_labels else np.zeros(len(f), bool)
    try:
        injected, _ = inject_anomalies(holdout, kinds=ANOMALY_KINDS, n_events=n_events,
                                       seed=seed)
    except DataError as exc:
        raise SystemExit(f"error: injecting into the calibration holdout: {exc}") from None
    g = injected.frame
    new = (g["is_anomaly"].to_numpy() == 1) & ~old
    return injected, new, np.where(new, g["anomaly_type"].to_numpy().astype(str), "")


def injected_rows(model: Any, fit_part: Dataset, holdout: Dataset, seed: int,
                  per_day: float, codes: Mapping[str, int] | None = None,
                  min_events: int = 1) -> dict[str, Any]:
    """The injected holdout as the model sees it: its ready rows' blinded features ``xi``,
    view scores ``vi`` (L, S), injected labels ``yi``, rows labelled before ``oi`` (left
    out of the surrogate), kinds ``ki``, entity codes ``ei`` (by ``codes``), and ``seconds``
    (the time injection, features and view scores took)."""
    from servers_thresholds import _view_scores

    t0 = time.perf_counter()
    injected, new, kinds = inject_holdout(holdout, seed, per_day, min_events)
    X, ready, _ = model._features(injected, fit_part, "injected holdout")
    xi = model.constant_guard.blind(X[ready])
    vi = _view_scores(model, X[ready])
    old = (holdout.frame["is_anomaly"].to_numpy() == 1) if holdout.has_labels \
        else np.zeros(len(ready), bool)
    ent = injected.frame["entity"].to_numpy()
    return {"xi": xi.astype(np.float32), "vi": vi, "yi": new[ready], "oi": old[ready],
            "ki": kinds[ready],
            "ei": (np.asarray([codes[e] for e in ent[ready]], dtype=np.int64) if codes
                   else np.zeros(int(ready.sum()), dtype=np.int64)),
            "seconds": np.float64(time.perf_counter() - t0)}


# ----------------------------------------------------------------------------- candidates
class TailMember:
    """H10's ``T[ecod,top]`` of one dataset: per view (constant metrics' columns left out)
    the ECDF of the reference rows, ECOD's aggregate of the top ``ceil(sqrt(columns))``
    columns, the mean of both views (servers_tails.tail_members, fit once). ``clean``: its
    (holdout, test) values."""

    def __init__(self, d: Dump) -> None:
        self.parts = []
        for view in ("lv", "sv"):
            cols = view_columns(d, view)
            self.parts.append((cols, EmpiricalTails(d["ref"][:, cols]), d["column_metric"][cols]))
        self.clean = (self(d["xv"]), self(d["xt"]))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The member of the rows ``x`` (scaled features, constants blinded)."""
        return np.mean([view_tail(tails, x[:, cols], "ecod", "top", owner)
                        for cols, tails, owner in self.parts], axis=0)


def candidate_scores(d: Dump, inj: Mapping[str, np.ndarray], tail: TailMember | None = None
                     ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per candidate, (clean holdout, test, injected holdout) raw scores. T is fit on the
    reference rows only; the three row sets are looked up in it (``tail``: fit already)."""
    tail = TailMember(d) if tail is None else tail
    t_inj = tail(inj["xi"])
    m: dict[str, Pair] = {
        "L": (d["vv"][:, 0], np.r_[d["vt"][:, 0], inj["vi"][:, 0]]),
        "S": (d["vv"][:, 1], np.r_[d["vt"][:, 1], inj["vi"][:, 1]]),
        TAIL: (tail.clean[0], np.r_[tail.clean[1], t_inj])}
    n = len(d["xt"])
    out = {}
    for name, mix in CANDIDATES.items():
        hold, rest = mix(m)
        out[name] = (hold, rest[:n], rest[n:])
    return out


def events_of(y: np.ndarray) -> list[tuple[int, int]]:
    """(start, end exclusive) of each run of True in ``y``."""
    edges = np.flatnonzero(np.diff(np.r_[0, y.astype(np.int8), 0]))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def surrogates(y: np.ndarray, score: np.ndarray, threshold: np.ndarray) -> dict[str, float]:
    """Against the injected labels ``y``: best point F1 of ``score`` (``f1``), its average
    precision (``ap``), and the share of injected events (runs of ``y``) with a point at or
    above ``threshold`` (per row; ``recall``)."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    y = np.asarray(y, dtype=bool)
    if not y.any():
        raise SystemExit("error: no injected anomaly among the holdout's ready rows")
    p, r, _ = precision_recall_curve(y, score)
    best = float(np.nanmax(2 * p * r / np.maximum(p + r, 1e-12)))
    flag = score >= threshold
    events = events_of(y)
    hit = sum(bool(flag[a:b].any()) for a, b in events)
    return {"f1": best, "ap": float(average_precision_score(y, score)),
            "recall": hit / len(events)}


def select(values: Mapping[str, float], default: str = DEFAULT, margin: float = 0.0) -> str:
    """The candidate with the largest surrogate; the default unless another beats it by
    more than ``margin`` (ties keep the default)."""
    best = max(values, key=lambda n: (values[n], n == default))
    return best if values[best] > values[default] + margin else default


#: Candidate sets a selection may choose from: every candidate, or the default against H10's
#: servers mix only.
CANDIDATE_SETS = {"all 4": tuple(CANDIDATES),
                  "default or 0.5 T": (DEFAULT, "(L + S + 0.5 T) / 2.5")}


def selections(per_seed: Mapping[int, Mapping[str, Mapping[str, float]]],
               margins: Sequence[float]) -> dict[str, str]:
    """Label -> chosen candidate, for every candidate set, surrogate and margin, at each
    injection seed of ``per_seed`` (seed -> candidate -> surrogate -> value) and, with
    several seeds, on the surrogate's mean over the seeds."""
    out = {}
    seeds = list(per_seed)
    runs = [(f"inject seed {s}", [s]) for s in seeds]
    if len(seeds) > 1:
        runs.append((f"mean over inject seeds {'+'.join(map(str, seeds))}", seeds))
    for set_name, names in CANDIDATE_SETS.items():
        for sur in SURROGATES:
            for margin in margins:
                for run, use in runs:
                    values = {n: float(np.mean([per_seed[s][n][sur] for s in use]))
                              for n in names}
                    out[f"{set_name} by {sur}, margin {margin:g}, {run}"] = select(
                        values, margin=margin)
    return out


def measure(d: Dump, inj: Mapping[str, np.ndarray], step: pd.Timedelta | None,
            tail: TailMember | None = None) -> tuple[dict[str, dict[str, float]],
                       dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """Each candidate's surrogates on one dataset's injected holdout, and its scores.
    ``step``: the servers' (pooled POT at ``pot_risk(step)`` on the clean holdout); None:
    the demo's thresholds per entity (servers_tails.entity_thresholds, pooled elsewhere)."""
    from aws_anomaly.threshold import pot_risk

    scores = candidate_scores(d, inj, tail)
    keep = ~inj["oi"]
    out = {}
    for name, (hold, _, inj_score) in scores.items():
        if step is not None:
            thr = np.full(len(inj_score), pot_threshold(hold, pot_risk(step), 0.98)[0])
        else:
            normal = ~d["yv"]
            pooled = pot_threshold(hold[normal], float(d["risk"]), 0.98)[0]
            per, _ = entity_thresholds(d, hold)
            thr = np.array([per[e] if e < len(per) and np.isfinite(per[e]) else pooled
                            for e in inj["ei"]])
        out[name] = surrogates(inj["yi"][keep], inj_score[keep], thr[keep])
    return out, scores


# ---------------------------------------------------------------------------- the servers
def server_injections(key: str, folder: Path, d: Dump, seeds: Sequence[int], per_day: float,
                      cache: Path, min_events: int = 1) -> dict[int, dict[str, Any]]:
    """Per injection seed, the server's injected holdout (cached): the model refit as
    shipped (checked against the dump's holdout view scores)."""
    paths = {s: cache / f"{key.replace('/', '__')}_inj{s}_pd{per_day:g}_min{min_events}.npz"
             for s in seeds}
    if all(p.exists() for p in paths.values()):
        return {s: dict(np.load(p)) for s, p in paths.items()}
    from aws_anomaly.evaluation.servers_bench import load_server

    data = load_server(key, folder)
    return _fit_and_inject(data.train, d, paths, per_day, None, min_events, key)


def _fit_and_inject(train: Any, d: Dump, paths: dict[int, Path], per_day: float,
                    codes: dict[str, int] | None, min_events: int, where: str
                    ) -> dict[int, dict[str, Any]]:
    """``default_model`` fit on ``train`` as shipped, checked against the dump's holdout view
    scores, then each injection seed's injected holdout (:func:`injected_rows`), written to
    ``paths[seed]``."""
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
    out = {}
    for s, path in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        out[s] = injected_rows(model, fit_part, holdout, s, per_day, codes, min_events)
        out[s]["fit_seconds"] = np.float64(fit_s)
        np.savez(path, **out[s])
    return out


#: Random subsets of the injection seeds drawn by ``--subsets``.
SUBSET_DRAWS = 200


def subset_picks(surr: Mapping[int, Mapping[str, Mapping[str, float]]], k: int,
                 rng: np.random.Generator) -> dict[str, str]:
    """For one dataset and one random draw of ``k`` of its injection seeds, the choice of
    each candidate set and surrogate (margin 0) on the surrogate's mean over the draw."""
    use = rng.choice(list(surr), size=k, replace=False)
    return {f"{set_name} by {sur}": select({n: float(np.mean([surr[s][n][sur] for s in use]))
                                            for n in names})
            for set_name, names in CANDIDATE_SETS.items() for sur in SURROGATES}


def servers_subsets(rows: Mapping[str, Mapping[str, Mapping[str, float]]],
                    surr_of: Mapping[str, Mapping[int, Mapping[str, Mapping[str, float]]]],
                    k: int) -> None:
    """Injection-seed sensitivity: over ``SUBSET_DRAWS`` random draws of ``k`` injection
    seeds per server, how often the selection passes the servers' rule against the default
    (best F1 up, own F1 not down, max FPR not up), and the spread of its figures."""
    rng = np.random.default_rng(0)
    keys = list(surr_of)
    base = rows[DEFAULT]
    b_best = np.mean([base[k_]["best_f1"] for k_ in keys])
    b_own = np.mean([base[k_]["f1"] for k_ in keys])
    b_fpr = max(base[k_]["fpr"] for k_ in keys)
    figs: dict[str, list[tuple[float, float, float]]] = {}
    for _ in range(SUBSET_DRAWS):
        picks = {key: subset_picks(surr_of[key], k, rng) for key in keys}
        for label in picks[keys[0]]:
            per = [rows[picks[key][label]][key] for key in keys]
            figs.setdefault(label, []).append((float(np.mean([m["best_f1"] for m in per])),
                                               float(np.mean([m["f1"] for m in per])),
                                               max(m["fpr"] for m in per)))
    print(f"\nInjection-seed sensitivity: {SUBSET_DRAWS} random draws of {k} of the "
          f"{len(next(iter(surr_of.values())))} injection seeds per server (margin 0)\n")
    print("| selection | passes the servers' rule | best F1 (min / median / max) | own F1 "
          "(min / median / max) | max FPR (median) |")
    print("|---|---|---|---|---|")
    for label, f in figs.items():
        a = np.asarray(f)
        ok = (a[:, 0] > b_best) & (a[:, 1] >= b_own) & (a[:, 2] <= b_fpr)
        print(f"| {label} | {ok.mean():.0%} | {a[:, 0].min():.3f} / {np.median(a[:, 0]):.3f} "
              f"/ {a[:, 0].max():.3f} | {a[:, 1].min():.3f} / {np.median(a[:, 1]):.3f} / "
              f"{a[:, 1].max():.3f} | {np.median(a[:, 2]):.3f} |")


def demo_subsets(results: Mapping[str, Sequence[tuple[float, float]]],
                 surr_of: Sequence[Mapping[int, Mapping[str, Mapping[str, float]]]],
                 k: int) -> None:
    """Injection-seed sensitivity on the demo: over ``SUBSET_DRAWS`` random draws of ``k``
    injection seeds per demo seed, how often the selection keeps the default on every
    seed, and how often its mean best F1 and own F1 are both not below the default's."""
    rng = np.random.default_rng(0)
    names = list(CANDIDATES)
    per_mix = {n: results[n] for n in names}
    base = np.mean(per_mix[DEFAULT], axis=0)
    out: dict[str, list[tuple[bool, bool]]] = {}
    for _ in range(SUBSET_DRAWS):
        picks = [subset_picks(surr, k, rng) for surr in surr_of]
        for label in picks[0]:
            figs = np.mean([per_mix[p[label]][i] for i, p in enumerate(picks)], axis=0)
            out.setdefault(label, []).append(
                (all(p[label] == DEFAULT for p in picks), bool((figs >= base - 1e-12).all())))
    print(f"\nInjection-seed sensitivity: {SUBSET_DRAWS} random draws of {k} of the "
          f"{len(surr_of[0])} injection seeds per demo seed (margin 0)\n")
    print("| selection | the default on every seed | mean best F1 and own F1 not below the "
          "default's |")
    print("|---|---|---|")
    for label, v in out.items():
        a = np.asarray(v)
        print(f"| {label} | {a[:, 0].mean():.0%} | {a[:, 1].mean():.0%} |")


def servers(args: argparse.Namespace) -> None:
    """The servers table: each fixed candidate, then each surrogate's selection."""
    from threadpoolctl import threadpool_limits

    from aws_anomaly.evaluation.servers_bench import discover_servers

    dumps = load_dumps(Path(args.dump))
    folders = dict(discover_servers(args.data))
    rows: dict[str, dict[str, dict[str, float]]] = {}
    chosen: dict[str, dict[str, str]] = {}
    surr_of: dict[str, dict[int, dict[str, dict[str, float]]]] = {}
    with threadpool_limits(1):
        for key, d in dumps.items():
            if key not in folders:
                raise SystemExit(f"error: {key}: no server folder under {args.data}")
            step = pd.Timedelta(seconds=float(d["step_s"]))
            injs = server_injections(key, folders[key], d, args.inject_seed, args.per_day,
                                     Path(args.cache), args.min_events)
            per_seed = {}
            t0 = time.perf_counter()
            tail = TailMember(d)
            tail_s = time.perf_counter() - t0
            for s, inj in injs.items():
                t0 = time.perf_counter()
                per_seed[s], scores = measure(d, inj, step, tail)
                surr = per_seed[s]
                t_s = time.perf_counter() - t0
                if s == args.inject_seed[0]:
                    for name, (hold, test, _) in scores.items():
                        rows.setdefault(name, {})[key] = evaluate(d, hold, test)
                print(f"{key} inject seed {s}: {int(inj['yi'].sum())} injected points in "
                      f"{len(events_of(inj['yi']))} events of {len(inj['yi'])} rows; "
                      f"injection + features + L, S {float(inj['seconds']):.1f} s, T on them "
                      f"and surrogates {t_s:.1f} s (model fit {float(inj['fit_seconds']):.1f} "
                      f"s, T's ECDF with the clean holdout and test rows {tail_s:.1f} s)")
                for name, v in surr.items():
                    print("    " + " ".join(f"{k} {x:.3f}" for k, x in v.items()) + f"  {name}")
                sys.stdout.flush()
            surr_of[key] = per_seed
            for label, pick in selections(per_seed, args.margin).items():
                chosen.setdefault(label, {})[key] = pick
                rows.setdefault(label, {})[key] = evaluate(d, *scores[pick][:2])
    print("\nChoices per server:\n")
    for label, per in chosen.items():
        print(f"{label}: " + "; ".join(f"{k.split('/')[-1]} {_short(n)}"
                                       for k, n in per.items()))
    print()
    print_tables(rows, list(dumps), args.per_server)
    for k in args.subsets:
        servers_subsets(rows, surr_of, k)


def _short(name: str) -> str:
    return "default" if name == DEFAULT else name


# -------------------------------------------------------------------------------- the demo
def demo_injection(seed: int, d: Dump, inject_seeds: Sequence[int], per_day: float,
                   cache: Path, min_events: int = 1, days: float = 28
                   ) -> dict[int, dict[str, Any]]:
    """Per injection seed, the demo seed's injected holdout (cached), the model refit as
    servers_tails.demo_arrays does (checked against its cached holdout view scores)."""
    paths = {s: cache / f"demo_seed{seed}_inj{s}_pd{per_day:g}_min{min_events}.npz"
             for s in inject_seeds}
    if all(p.exists() for p in paths.values()):
        return {s: dict(np.load(p)) for s, p in paths.items()}
    from aws_anomaly.data import generate_demo
    from aws_anomaly.evaluation.split import chronological_split, concat

    ds, _ = generate_demo(seed=seed, days=days)
    sp = chronological_split(ds)
    hist = concat([sp.train, sp.validation])
    codes = {e: i for i, e in enumerate(hist.entities)}
    return _fit_and_inject(hist, d, paths, per_day, codes, min_events, f"demo seed {seed}")


def demo(args: argparse.Namespace) -> None:
    """The demo table: each fixed candidate and each surrogate's selection, per seed."""
    from threadpoolctl import threadpool_limits

    results: dict[str, list[tuple[float, float]]] = {}
    picks: dict[str, list[str]] = {}
    surr_of: list[dict[int, dict[str, dict[str, float]]]] = []
    with threadpool_limits(1):
        for seed in args.seeds:
            d = demo_arrays(seed, Path(args.h10_cache))
            injs = demo_injection(seed, d, args.inject_seed, args.per_day, Path(args.cache),
                                  args.min_events)
            per_seed = {}
            tail = TailMember(d)
            for s, inj in injs.items():
                per_seed[s], scores = measure(d, inj, None, tail)
                surr = per_seed[s]
                print(f"demo seed {seed} inject seed {s}: {int(inj['yi'].sum())} injected "
                      f"points in {len(events_of(inj['yi']))} runs of {len(inj['yi'])} rows "
                      f"({int(inj['oi'].sum())} rows with the demo's own labels left out); "
                      f"injection + features + L, S {float(inj['seconds']):.1f} s")
                for name, v in surr.items():
                    print("    " + " ".join(f"{k} {x:.3f}" for k, x in v.items()) + f"  {name}")
                if s == args.inject_seed[0]:
                    for name, (hold, test, _) in scores.items():
                        results.setdefault(name, []).append(demo_f1_entity(d, hold, test))
                sys.stdout.flush()
            surr_of.append(per_seed)
            for label, pick in selections(per_seed, args.margin).items():
                picks.setdefault(label, []).append(_short(pick))
                results.setdefault(label, []).append(demo_f1_entity(d, *scores[pick][:2]))
    print("\nChoices per seed (" + ", ".join(map(str, args.seeds)) + "):\n")
    for label, per in picks.items():
        print(f"{label}: " + "; ".join(per))
    print(f"\ndemo seeds {', '.join(map(str, args.seeds))}, thresholds per entity: best F1 / "
          "own F1 per seed, then the mean\n")
    print("| mix | " + " | ".join(f"seed {s}" for s in args.seeds)
          + " | mean best F1 | mean own F1 |")
    print("|---|" + "---|" * (len(args.seeds) + 2))
    for name, per in results.items():
        cells = " | ".join(f"{b:.3f} / {o:.3f}" for b, o in per)
        print(f"| {name} | {cells} | {np.mean([b for b, _ in per]):.3f} | "
              f"{np.mean([o for _, o in per]):.3f} |")
    for k in args.subsets:
        demo_subsets(results, surr_of, k)


def main() -> None:
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
        p.add_argument("--cache", default="out/h12", help="where injected features are kept")
        p.add_argument("--inject-seed", type=int, nargs="+", default=[0],
                       help="injection seeds (the first one is the table's)")
        p.add_argument("--per-day", type=float, default=1.0,
                       help="injected events per entity and day of holdout")
        p.add_argument("--min-events", type=int, default=1,
                       help="at least this many injected events an entity")
        p.add_argument("--subsets", type=int, nargs="+", default=[],
                       help="also the selection on random draws of this many injection seeds")
        p.add_argument("--margin", type=float, nargs="+", default=[0.0],
                       help="a candidate must beat the default's surrogate by more than this")
    args = parser.parse_args()
    if args.per_day <= 0:
        parser.error(f"--per-day must be positive, got {args.per_day}")
    if any(not 0 < k < len(args.inject_seed) for k in args.subsets):
        parser.error(f"--subsets must be between 1 and the number of --inject-seed less one, "
                     f"got {args.subsets}")
    if args.min_events < 1:
        parser.error(f"--min-events must be at least 1, got {args.min_events}")
    (servers if args.bench == "servers" else demo)(args)


if __name__ == "__main__":
    main()
