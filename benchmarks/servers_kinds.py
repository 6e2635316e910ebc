"""Which of the default model's feature kinds earn their place, and how many reference rows
the kNN needs (issue 8, H13).

The default model (``default_model(step)``, docs/model.md) scores a row by the mean of two
nearest-neighbour distances, each divided by the square root of its view's column count: the
*level* view (L: each metric's value and its 15 min / 1 h log volatility, 3 kinds) and the
*stationary* view (S: 16 kinds a metric). The stationary kinds, in the model's column order
within each metric (:data:`STATIONARY_KINDS`; checked against ``model.feature_names_``): the
rolling standard deviation and the z-score over 15 min, 1 h, 3 h and 12 h, the robust z over
1 h, the difference and the rate of change over one step and over 15 min, the difference from
one day earlier, and that difference's persistence EWMAs over 30 min and 3 h less a one-day
baseline. A kind is the same feature of every metric, so dropping a kind drops one column a
metric.

On the dumps of ``benchmarks/servers_members.py`` (each server's scaled feature rows of the
kNN reference ``ref``, the calibration holdout ``xv`` and the test ``xt``), for a subset of a
view's kinds, the view's distance is recomputed on the subset's columns only (every metric,
constant ones included, as the model's view holds them) and divided by the square root of
their count, as shipped; the shipped mix ``(L + S) / 2`` (the dumps' raw scores hold the
volatility excess that was on when they were written; it is off in the default and left out
here) is thresholded by the shipped rule (POT at ``pot_risk(step)`` on the
holdout's scores of the same mix, :func:`servers_members.evaluate`) and scored with the
servers bench's metrics.

``servers``:

* drop-one-kind, for each of the 16 stationary kinds and the 3 level kinds;
* greedy backward elimination of stationary kinds (drop the kind whose removal raises the mean
  best F1 most, repeat while it rises by more than :data:`MIN_GAIN`), on all servers, and
  leave-one-server-out: for each server, the elimination run on the other nine, the held-out
  one scored with the subset they chose;
* reference size: a seeded uniform subsample of 5,000 / 10,000 reference rows (both views;
  seeds :data:`REF_SEEDS`) against all of them (the shipped cap is 20,000 and every server
  dump holds fewer, so all rows is what ships).

The exact distance (:func:`view_distance`, float64) is what the unit test checks against the
model; the study's engine (:class:`KindPass`) computes, per block of rows, the float32 inner
products of each kind's columns with the reference once and every candidate subset's minimum
from them (a subset that drops kind k of the current set is the current set's squared
distance less kind k's), so one pass over the reference gives all 16 drop-one variants. Its
agreement with the dump's S is printed per server (relative error).

``demo``: the same variants on the demo's cached features (``benchmarks/servers_tails.py``'s
``demo_arrays``: ``default_model`` fit on train + validation as ``train`` does, seeds 0, 7, 42,
1234), each entity calibrated by its own POT threshold where the model gives it one
(:func:`servers_tails.demo_f1_entity`): best F1 and F1 at the own threshold.

Usage::

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/servers_kinds.py servers \\
        --dump out/bench-members2 --cache out/h13 --per-server
    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/servers_kinds.py demo \\
        --seeds 0 7 42 1234 --demo-cache out/h10 --subsets out/h13/subsets.json

Results: docs/model.md ("Measured 2026-12-02 (H13): the stationary view's feature kinds, and
the reference size").
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers_members import evaluate, load_dumps, nearest, print_per_server, summary

Dump = dict[str, np.ndarray]
Metrics = dict[str, float]

#: The stationary view's kinds, in the model's column order within each metric.
STATIONARY_KINDS = (
    "std 15m", "z 15m", "std 1h", "z 1h", "std 3h", "z 3h", "std 12h", "z 12h",
    "robust z 1h", "diff 1 step", "roc 1 step", "diff 15m", "roc 15m", "day diff",
    "day diff EWMA 30m", "day diff EWMA 3h",
)
#: Name patterns of each stationary kind (``feature_names_`` less the metric and windows):
#: what :func:`kind_patterns` checks the positional kinds against.
STATIONARY_PATTERNS = (
    "std", "z", "std", "z", "std", "z", "std", "z", "robust_z", "diff", "roc", "diff", "roc",
    "season_diff", "season_diff_ewm", "season_diff_ewm",
)
#: The level view's kinds, in column order within each metric.
LEVEL_KINDS = ("value", "volatility 15m", "volatility 1h")
LEVEL_PATTERNS = ("value", "std", "std")
#: A greedy elimination step is taken only if it raises the mean best F1 by more than this.
MIN_GAIN = 0.003
#: Reference sizes measured and the seeds of their uniform subsamples.
REF_SIZES = (5000, 10000)
REF_SEEDS = (0, 1, 2)
VIEWS = ("lv", "sv")
_BLOCK = 256


# ---------------------------------------------------------------------------------- kinds
def column_kinds(d: Dump, view: str) -> np.ndarray:
    """Per column of ``d[view]`` (in its order), its kind: the column's position among its
    metric's columns in that view. Every metric must hold the same number of columns."""
    cols = np.asarray(d[view])
    owner = np.asarray(d["column_metric"])[cols]
    if (owner < 0).any():
        raise ValueError(f"view {view}: a column belongs to no metric")
    kinds = np.empty(len(cols), dtype=np.int64)
    counts = set()
    for m in np.unique(owner):
        at = np.flatnonzero(owner == m)
        kinds[at] = np.arange(len(at))
        counts.add(len(at))
    if len(counts) != 1:
        raise ValueError(f"view {view}: metrics hold different column counts {sorted(counts)}")
    return kinds


def kind_patterns(names: Sequence[str]) -> list[str]:
    """A feature name's kind pattern: the name less its metric and its window numbers
    (``cpu__season_diff_288__ewm_6_less_288`` -> ``season_diff_ewm``)."""
    out = []
    for name in names:
        parts = str(name).split("__")[1:]
        words = [w for p in parts for w in p.split("_") if not w.isdigit() and w != "less"]
        out.append("_".join(words))
    return out


def kept_columns(d: Dump, view: str, kinds: Iterable[int]) -> np.ndarray:
    """The columns of ``d[view]`` whose kind is in ``kinds``, every metric's."""
    keep = np.isin(column_kinds(d, view), np.fromiter(kinds, dtype=np.int64))
    return np.asarray(d[view])[keep]


def view_distance(ref: np.ndarray, x: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Exact (float64) nearest-reference distance of each row of ``x`` over the columns
    ``cols``, divided by the square root of their count: the shipped view score."""
    if len(cols) == 0:
        raise ValueError("view_distance: no columns left")
    return nearest(np.asarray(ref, dtype=np.float64)[:, cols],
                   np.asarray(x, dtype=np.float64)[:, cols])


class KindPass:
    """One pass over a view's reference rows that gives the distance of every row of ``x``
    for several kind subsets at once (float32 inner products, float64 minima).

    ``kinds``: the kind of each of ``cols`` (the view's columns). :meth:`run` takes a base
    subset, candidate subsets each the base less some kinds, and reference row subsets
    (index arrays, measured with the base subset's columns)."""

    def __init__(self, ref: np.ndarray, x: np.ndarray, cols: np.ndarray,
                 kinds: np.ndarray) -> None:
        self.kinds = np.asarray(kinds)
        self.ids = sorted(set(self.kinds.tolist()))
        self.ref = {k: np.ascontiguousarray(ref[:, cols[self.kinds == k]], dtype=np.float32)
                    for k in self.ids}
        self.x = {k: np.ascontiguousarray(x[:, cols[self.kinds == k]], dtype=np.float32)
                  for k in self.ids}
        self.width = {k: int((self.kinds == k).sum()) for k in self.ids}
        self.rsq = {k: np.einsum("ij,ij->i", r.astype(np.float64), r.astype(np.float64))
                    for k, r in self.ref.items()}
        self.xsq = {k: np.einsum("ij,ij->i", v.astype(np.float64), v.astype(np.float64))
                    for k, v in self.x.items()}
        self.rows = len(x)

    def run(self, base: frozenset[int], drops: Sequence[frozenset[int]],
            ref_rows: Sequence[np.ndarray] = ()) -> tuple[dict[frozenset[int], np.ndarray],
                                                          list[np.ndarray]]:
        """({base - drop: distances} for every drop (and the empty drop: the base), [distances
        of the base subset against each reference row subset])."""
        base_k = [k for k in self.ids if k in base]
        drops = [frozenset()] + [dr for dr in drops if dr]
        out = {base - dr: np.empty(self.rows) for dr in drops}
        sub = [np.empty(self.rows) for _ in ref_rows]
        rsq_base = np.sum([self.rsq[k] for k in base_k], axis=0).astype(np.float32)
        xsq_base = np.sum([self.xsq[k] for k in base_k], axis=0)
        needed = sorted({k for dr in drops for k in dr})
        xb_all = np.hstack([self.x[k] for k in base_k])
        rb = np.ascontiguousarray(-2.0 * np.hstack([self.ref[k] for k in base_k]).T)
        r_part = {k: np.ascontiguousarray(-2.0 * self.ref[k].T) for k in needed}
        rsq_part = {k: self.rsq[k].astype(np.float32) for k in needed}
        for s in range(0, self.rows, _BLOCK):
            e = min(s + _BLOCK, self.rows)
            # -2 x.r over the base's columns, then + |r|^2: |x - r|^2 - |x|^2
            m = xb_all[s:e] @ rb
            m += rsq_base
            part = {}
            for k in needed:
                part[k] = self.x[k][s:e] @ r_part[k]
                part[k] += rsq_part[k]
            for dr in drops:
                if dr:
                    t = m.copy()
                    for k in dr:
                        t -= part[k]
                else:
                    t = m
                xsq = xsq_base[s:e] - np.sum([self.xsq[k][s:e] for k in dr], axis=0)
                width = sum(self.width[k] for k in base_k if k not in dr)
                low = t.min(axis=1).astype(np.float64) + xsq
                out[base - dr][s:e] = np.sqrt(np.maximum(low, 0.0)) / math.sqrt(width)
            width = sum(self.width[k] for k in base_k)
            for i, idx in enumerate(ref_rows):
                low = m[:, idx].min(axis=1).astype(np.float64) + xsq_base[s:e]
                sub[i][s:e] = np.sqrt(np.maximum(low, 0.0)) / math.sqrt(width)
        return out, sub


def subsample(n: int, size: int, seed: int) -> np.ndarray:
    """A seeded uniform subsample of ``size`` of ``n`` rows, in order (all rows if fewer)."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def key_of(view: str, kinds: Iterable[int]) -> str:
    """A cache key naming a view's kind subset."""
    return f"{view}:" + ",".join(str(k) for k in sorted(kinds))


def label(view: str, kinds: frozenset[int]) -> str:
    names = STATIONARY_KINDS if view == "sv" else LEVEL_KINDS
    dropped = [names[k] for k in range(len(names)) if k not in kinds]
    return "shipped: every kind" if not dropped else "without " + ", ".join(dropped)


# -------------------------------------------------------------------------------- servers
class ServerStudy:
    """Each server's view distances per kind subset, cached under ``cache`` (npz per server),
    and the bench's metrics of each mix."""

    def __init__(self, dumps: dict[str, Dump], cache: Path) -> None:
        self.dumps = dumps
        self.cache = cache
        cache.mkdir(parents=True, exist_ok=True)
        self.dist: dict[str, dict[str, np.ndarray]] = {}
        for key in dumps:
            path = self._path(key)
            self.dist[key] = dict(np.load(path)) if path.exists() else {}
        self.passes: dict[tuple[str, str], KindPass] = {}
        self.metrics: dict[tuple[str, str, str], Metrics] = {}

    def _path(self, key: str) -> Path:
        return self.cache / f"{key.replace('/', '__')}.npz"

    def _save(self, key: str) -> None:
        np.savez(self._path(key), **self.dist[key])

    def kinds(self, view: str) -> frozenset[int]:
        d = next(iter(self.dumps.values()))
        return frozenset(set(column_kinds(d, view).tolist()))

    def _pass(self, key: str, view: str) -> KindPass:
        if (key, view) not in self.passes:
            self.passes.clear()           # one server's blocks in memory at a time
            d = self.dumps[key]
            x = np.vstack([d["xv"], d["xt"]])
            self.passes[(key, view)] = KindPass(d["ref"], x, np.asarray(d[view]),
                                                column_kinds(d, view))
        return self.passes[(key, view)]

    def ensure(self, view: str, base: frozenset[int], drop_one: bool,
               ref_sizes: bool = False) -> None:
        """Compute (unless cached) every server's distances of ``base`` and, with
        ``drop_one``, of ``base`` less each of its kinds; ``ref_sizes``: also ``base``
        against each reference subsample."""
        for key, d in self.dumps.items():
            cached = self.dist[key]
            drops = [frozenset({k}) for k in sorted(base)] if drop_one and len(base) > 1 else []
            want = [key_of(view, base - dr) for dr in [frozenset(), *drops]]
            sizes = [(n, s) for n in REF_SIZES for s in REF_SEEDS] if ref_sizes else []
            want += [f"{key_of(view, base)}@{n}/{s}" for n, s in sizes]
            if all(w in cached for w in want):
                continue
            t0 = time.perf_counter()
            idx = [subsample(len(d["ref"]), n, s) for n, s in sizes]
            out, sub = self._pass(key, view).run(base, drops, idx)
            for kinds, dist in out.items():
                cached[key_of(view, kinds)] = dist
            for (n, s), dist in zip(sizes, sub, strict=True):
                cached[f"{key_of(view, base)}@{n}/{s}"] = dist
            self._save(key)
            print(f"  {key} {view} base {len(base)} kinds, {len(drops)} drops, "
                  f"{len(sizes)} ref sizes: {time.perf_counter() - t0:.0f} s", flush=True)

    def score(self, key: str, lv: str, sv: str) -> Metrics:
        """The bench's metrics of one server for the level / stationary distances cached
        under the keys ``lv`` / ``sv``."""
        if (key, lv, sv) not in self.metrics:
            d = self.dumps[key]
            n = len(d["xv"])
            a, b = self.dist[key][lv], self.dist[key][sv]
            self.metrics[(key, lv, sv)] = evaluate(d, (a[:n] + b[:n]) / 2, (a[n:] + b[n:]) / 2)
        return self.metrics[(key, lv, sv)]

    def rows(self, lv: str, sv: str, keys: Sequence[str] | None = None) -> dict[str, Metrics]:
        return {k: self.score(k, lv, sv) for k in (keys or list(self.dumps))}


def mean_best(per: dict[str, Metrics]) -> float:
    return float(np.mean([m["best_f1"] for m in per.values()]))


def eliminate(study: ServerStudy, keys: Sequence[str], log: list[str]) -> frozenset[int]:
    """Greedy backward elimination of stationary kinds on ``keys`` (module docstring); the
    steps are appended to ``log``."""
    lv = key_of("lv", study.kinds("lv"))
    current = study.kinds("sv")
    score = mean_best(study.rows(lv, key_of("sv", current), keys))
    while len(current) > 1:
        study.ensure("sv", current, drop_one=True)
        cands = {k: mean_best(study.rows(lv, key_of("sv", current - {k}), keys))
                 for k in sorted(current)}
        k = max(cands, key=lambda c: cands[c])
        if cands[k] - score <= MIN_GAIN:
            log.append(f"stop: the best drop ({STATIONARY_KINDS[k]}) gives {cands[k]:.4f} "
                       f"against {score:.4f}")
            break
        log.append(f"drop {STATIONARY_KINDS[k]}: mean best F1 {score:.4f} -> {cands[k]:.4f}")
        current, score = current - {k}, cands[k]
    return current


def rule_loso(variants: dict[int, dict[str, Metrics]], base: dict[str, Metrics],
              keys: Sequence[str]) -> dict[str, Metrics]:
    """For each held-out server, among the drop-one ``variants`` (kind -> per-server
    metrics) those that pass the servers' keep rule against ``base`` on the other servers
    (best F1 up, own F1 not down, max FPR not up), the one with the best mean best F1 (the
    shipped ``base`` where none passes), measured on the held-out server; the choices are
    printed."""
    out, picks = {}, []
    for held in keys:
        rest = [k for k in keys if k != held]

        def stats(per: dict[str, Metrics], rest: list[str] = rest) -> tuple[float, ...]:
            return (float(np.mean([per[k]["best_f1"] for k in rest])),
                    float(np.mean([per[k]["f1"] for k in rest])),
                    max(per[k]["fpr"] for k in rest))
        b = stats(base)
        ok = {k: stats(v) for k, v in variants.items()}
        ok = {k: s for k, s in ok.items() if s[0] > b[0] and s[1] >= b[1] and s[2] <= b[2]}
        pick = max(ok, key=lambda k: ok[k][0]) if ok else None
        out[held] = (variants[pick] if pick is not None else base)[held]
        picks.append(f"{held.split('/')[-1]}: "
                     f"{'shipped' if pick is None else 'without ' + STATIONARY_KINDS[pick]}")
    print("drop-one chosen leave-one-server-out by the keep rule: " + "; ".join(picks),
          flush=True)
    return out


def servers(args: argparse.Namespace) -> None:
    from threadpoolctl import threadpool_limits

    dumps = load_dumps(Path(args.dump))
    study = ServerStudy(dumps, Path(args.cache))
    keys = list(dumps)
    all_l, all_s = study.kinds("lv"), study.kinds("sv")
    if len(all_s) != len(STATIONARY_KINDS) or len(all_l) != len(LEVEL_KINDS):
        raise SystemExit(f"error: the dumps' views hold {len(all_l)} level and {len(all_s)} "
                         "stationary kinds a metric, not 3 and 16")
    lv0, sv0 = key_of("lv", all_l), key_of("sv", all_s)
    table: dict[str, dict[str, Metrics]] = {}
    with threadpool_limits(1):
        print("pass: every kind, drop-one, reference sizes", flush=True)
        study.ensure("lv", all_l, drop_one=True, ref_sizes=True)
        study.ensure("sv", all_s, drop_one=True, ref_sizes=True)
        for key, d in dumps.items():
            n = len(d["xv"])
            for view, i in (("lv", 0), ("sv", 1)):
                got = study.dist[key][key_of(view, all_l if view == "lv" else all_s)]
                want = np.r_[d["vv"][:, i], d["vt"][:, i]]
                err = np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-12))
                print(f"  {key} {view}: largest relative error against the dump "
                      f"{err:.2e} ({n} holdout rows)", flush=True)
        table["(L + S) / 2 from the dump's view scores (check)"] = {
            k: evaluate(d, d["vv"].mean(axis=1), d["vt"].mean(axis=1))
            for k, d in dumps.items()}
        table[label("sv", all_s)] = study.rows(lv0, sv0)
        for k in sorted(all_s):
            table[label("sv", all_s - {k})] = study.rows(lv0, key_of("sv", all_s - {k}))
        for k in sorted(all_l):
            table[f"level view {label('lv', all_l - {k})}"] = study.rows(
                key_of("lv", all_l - {k}), sv0)
        for n in REF_SIZES:
            for s in REF_SEEDS:
                table[f"reference {n} rows, seed {s}"] = study.rows(
                    f"{lv0}@{n}/{s}", f"{sv0}@{n}/{s}")
        log: list[str] = []
        chosen = eliminate(study, keys, log)
        print("\ngreedy elimination on all servers:\n" + "\n".join(log), flush=True)
        if chosen != all_s:
            table[f"greedy on all servers: {label('sv', chosen)}"] = study.rows(
                lv0, key_of("sv", chosen))
        loso: dict[str, Metrics] = {}
        picks = {}
        for held in keys:
            flog: list[str] = []
            sub = eliminate(study, [k for k in keys if k != held], flog)
            picks[held] = sub
            loso[held] = study.score(held, lv0, key_of("sv", sub))
            print(f"LOSO {held}: {label('sv', sub)} ({'; '.join(flog)})", flush=True)
        table["greedy elimination chosen leave-one-server-out"] = loso
        table["drop-one chosen leave-one-server-out by the keep rule"] = rule_loso(
            {k: table[label("sv", all_s - {k})] for k in sorted(all_s)},
            table[label("sv", all_s)], keys)
    Path(args.cache, "subsets.json").write_text(json.dumps(
        {"all": sorted(chosen), **{k: sorted(v) for k, v in picks.items()}}, indent=1))
    print(f"\n{len(keys)} servers: {', '.join(keys)}\n")
    print("| variant | best F1 | own F1 | mean FPR | max FPR | servers FPR > 0.02 | event P |")
    print("|---|---|---|---|---|---|---|")
    for name, per in table.items():
        print(f"| {name} {summary(per)}")
    base = table[label("sv", all_s)]
    print("\nAgainst the shipped row: paired best-F1 gain (standard error over the servers), "
          "and the servers' keep rule (best F1 up, own F1 not down, max FPR not up):\n")
    b_own = np.mean([m["f1"] for m in base.values()])
    b_fpr = max(m["fpr"] for m in base.values())
    for name, per in table.items():
        if per is base or name.startswith("(L + S) / 2 from"):
            continue
        diff = np.array([per[k]["best_f1"] - base[k]["best_f1"] for k in keys])
        own = np.mean([m["f1"] for m in per.values()])
        fpr = max(m["fpr"] for m in per.values())
        ok = diff.mean() > 0 and own >= b_own and fpr <= b_fpr
        print(f"{name}: {diff.mean():+.4f} ({diff.std(ddof=1) / np.sqrt(len(diff)):.4f}; "
              f"{int((diff > 0).sum())} up, {int((diff < 0).sum())} down); own F1 "
              f"{own - b_own:+.4f}, max FPR {fpr - b_fpr:+.4f}: "
              f"{'passes' if ok else 'fails'}")
    stats = {"best F1": lambda p: mean_best(p),
             "own F1": lambda p: np.mean([m["f1"] for m in p.values()]),
             "mean FPR": lambda p: np.mean([m["fpr"] for m in p.values()]),
             "max FPR": lambda p: max(m["fpr"] for m in p.values()),
             "event P": lambda p: np.mean([m["event_precision"] for m in p.values()])}
    for n in REF_SIZES:
        parts = []
        for stat, f in stats.items():
            v = [f(table[f"reference {n} rows, seed {s}"]) for s in REF_SEEDS]
            move = np.mean(v) - f(base)
            parts.append(f"{stat} {np.mean(v):.4f} (move {move:+.4f}, seed spread "
                         f"{np.ptp(v):.4f}{', MOVES MORE' if abs(move) > np.ptp(v) else ''})")
        print(f"\nreference {n} rows, seeds {REF_SEEDS}: " + "; ".join(parts))
    if args.per_server:
        print_per_server(table, keys)


# ----------------------------------------------------------------------------------- demo
def demo(args: argparse.Namespace) -> None:
    """Best F1 / own F1 per seed of every drop-one variant, the subsets of ``--subsets`` and
    the reference sizes on the demo's cached features (exact float64 distances)."""
    from servers_members import print_demo_tables
    from servers_tails import demo_arrays, demo_f1_entity
    from threadpoolctl import threadpool_limits

    subsets: dict[str, list[int]] = {}
    if args.subsets and Path(args.subsets).exists():
        subsets = json.loads(Path(args.subsets).read_text())
    results: dict[str, list[tuple[float, float]]] = {}
    with threadpool_limits(1):
        for seed in args.seeds:
            t0 = time.perf_counter()
            d = demo_arrays(seed, Path(args.demo_cache))
            n = len(d["xv"])
            x = np.vstack([d["xv"], d["xt"]])
            all_l = frozenset(set(column_kinds(d, "lv").tolist()))
            all_s = frozenset(set(column_kinds(d, "sv").tolist()))

            def dist(view: str, kinds: frozenset[int], ref: np.ndarray,
                     d: Dump = d, x: np.ndarray = x) -> np.ndarray:
                return view_distance(ref, x, kept_columns(d, view, kinds))

            L, S = dist("lv", all_l, d["ref"]), dist("sv", all_s, d["ref"])
            np.testing.assert_allclose(np.c_[L[:n], S[:n]], d["vv"], rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(np.c_[L[n:], S[n:]], d["vt"], rtol=1e-9, atol=1e-12)

            def add(name: str, a: np.ndarray, b: np.ndarray, d: Dump = d, n: int = n) -> None:
                mixed = (a + b) / 2
                results.setdefault(name, []).append(demo_f1_entity(d, mixed[:n], mixed[n:]))
            add(label("sv", all_s), L, S)
            for k in sorted(all_s):
                add(label("sv", all_s - {k}), L, dist("sv", all_s - {k}, d["ref"]))
            for k in sorted(all_l):
                add(f"level view {label('lv', all_l - {k})}", dist("lv", all_l - {k}, d["ref"]),
                    S)
            seen = {all_s}
            for name, kinds in subsets.items():
                if frozenset(kinds) not in seen:
                    seen.add(frozenset(kinds))
                    add(f"chosen on the servers ({name}): {label('sv', frozenset(kinds))}", L,
                        dist("sv", frozenset(kinds), d["ref"]))
            for size in REF_SIZES:
                for s in REF_SEEDS:
                    ref = d["ref"][subsample(len(d["ref"]), size, s)]
                    add(f"reference {size} rows, seed {s}", dist("lv", all_l, ref),
                        dist("sv", all_s, ref))
            print(f"measured seed {seed} in {time.perf_counter() - t0:.0f} s", flush=True)
            cost = point_cost(d["ref"][:, d["sv"]], x[:, d["sv"]])
            print("  one row's stationary-view pass, best of 300 (us): " + ", ".join(
                f"{n} rows {t * 1e6:.1f}" for n, t in cost.items()), flush=True)
    print_demo_tables(", thresholds per entity", args.seeds, results, {}, [])


def point_cost(ref: np.ndarray, x: np.ndarray, repeat: int = 300) -> dict[int, float]:
    """Seconds (best of ``repeat``) of one row's pass over the first ``n`` reference rows,
    as ``KNNDetector._nearest_sq`` does it (float64 product with the -2 x reference, plus the
    squared norms, minimum), for ``n`` in :data:`REF_SIZES` and all rows."""
    out = {}
    for n in (*REF_SIZES, len(ref)):
        r = np.ascontiguousarray(ref[subsample(len(ref), n, 0)], dtype=np.float64)
        m2, sq = np.ascontiguousarray(-2.0 * r), np.einsum("ij,ij->i", r, r)
        best = math.inf
        for i in range(repeat):
            row = x[i % len(x)][None, :].astype(np.float64)
            t0 = time.perf_counter()
            d2 = row @ m2.T
            d2 += sq
            d2.min(axis=1)
            best = min(best, time.perf_counter() - t0)
        out[len(r)] = best
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    sub = parser.add_subparsers(dest="bench", required=True)
    s = sub.add_parser("servers", help="on servers_members.py's dumps")
    s.add_argument("--dump", default="out/bench-members2")
    s.add_argument("--cache", default="out/h13", help="where the distances are kept")
    s.add_argument("--per-server", action="store_true")
    d = sub.add_parser("demo", help="on the demo's cached features")
    d.add_argument("--seeds", type=int, nargs="+", default=[0, 7, 42, 1234])
    d.add_argument("--demo-cache", default="out/h10")
    d.add_argument("--subsets", default="out/h13/subsets.json",
                   help="kind subsets chosen by the servers study (JSON)")
    args = parser.parse_args()
    (servers if args.bench == "servers" else demo)(args)


if __name__ == "__main__":
    main()
