"""An empirical-tail member (ECOD / COPOD style) for the default model's score (issue 8, H10).

The default model scores a row by the mean of two nearest-neighbour distances, the *level*
view (L) and the *stationary* view (S) (docs/model.md). A distance grows without bound, so a
normal level that drifted beyond the training range (machine-3-3's test period) scores like an
incident. This study measures a member whose score is bounded: for each feature column of a
view, as the model scales it, the **empirical CDF of the training rows** (ECOD: Li et al.,
2022, "ECOD: Unsupervised Outlier Detection Using Empirical Cumulative Distribution
Functions"; COPOD: Li et al., 2020). A value's tail probabilities, with the (n + 1) convention,

    left(x) = (1 + #{train <= x}) / (n + 1),   right(x) = (1 + #{train >= x}) / (n + 1),

give per-column tail scores ``-log left`` and ``-log right`` in ``[0, log(n + 1)]``: a value
beyond every training row scores ``log(n + 1)`` however far it is, a value at the training
median about ``log 2``, a column constant in training (blinded to 0 by the model) 0. Per
column, the forms:

* ``two``: ``-log min(left, right)``, the column's more extreme tail;
* ``skew``: the tail chosen by the sign of the training column's skewness (left when it is
  negative), as ECOD does;
* ``ecod``: ECOD's own aggregate, the largest of the left, right and ``skew`` aggregates.

Aggregated per view by the **mean over its columns** (``mean``: a view's column count does not
matter), the **mean of its top k** columns, ``k = ceil(sqrt(columns))`` (``top``), or each
metric's mean over its columns, then the mean of the top ``ceil(sqrt(metrics))`` metrics
(``metric``); columns of constant metrics are left out. ``T_L`` / ``T_S`` are the level /
stationary view's aggregates, ``T = (T_L + T_S) / 2``. Mixed with the dumped L and S as the
earlier studies do: ``(L + S + w T) / (2 + w)``, the same with ``T_L`` or ``T_S``,
``(T_L + S) / 2`` and ``(L + T_S) / 2`` (a view replaced), ``T`` alone,
``(L + S + w T~) / (2 + w)`` with ``T~`` shifted and scaled so that its holdout
median-to-q99 range is that of ``(L + S) / 2`` (the same weight means the same on every
server), and ``(L + S) / 2 + w T+`` with ``T+`` only ``T``'s excess over its own q0.99 /
q0.999 on the reference rows. Every mix is thresholded by the shipped rule: POT at
``threshold.pot_risk(step)`` on the calibration holdout's scores *of the same mix*.
The ECDF is fit on the reference rows only (the fit rows, the first 85 % of
``train.parquet``); holdout and test rows are only looked up in it, row by row.

``servers``: on the dumps of ``benchmarks/servers_members.py`` (they hold the model's scaled
features of the reference, holdout and test rows, and L and S), the bench's metrics, and
leave-one-server-out over the settings (for each held-out server, the setting of a family
with the best mean best F1 on the other nine, measured on it).

``demo``: the same members on the synthetic EKS demo (seeds 0, 7, 42, 1234: what ``make run``
serves), ``default_model`` fit on train + validation as ``train`` does, its reference rows
the ECDF, scored on the test split: best F1 and F1 at the mix's own threshold, each entity
calibrated by its own POT threshold where the model gives it one (``entity_thresholds``, the
default since 2026-12-02; ``--pooled-threshold``: one threshold for every entity, as before).
The script checks at each seed that the first mix is the model's own raw score and its
pooled and per-entity POT thresholds.
Features per seed are cached under ``--cache``.

Usage::

    nice .venv/bin/python benchmarks/servers_tails.py servers --dump out/bench-members2 \\
        --per-server
    nice .venv/bin/python benchmarks/servers_tails.py demo --seeds 0 7 42 1234 --cache out/h10

Results: docs/model.md ("Measured 2026-12-02 (H10): an empirical-tail member").
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

# The members study's dumps, threshold rule and tables; H9's demo F1, shared, not copied.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers_members import evaluate, load_dumps, print_demo_tables, report_mixes

Dump = dict[str, np.ndarray]
Pair = tuple[np.ndarray, np.ndarray]
FORMS = ("two", "skew", "ecod")
AGGREGATES = ("mean", "top", "metric")


# ------------------------------------------------------------------------ the tail score
class EmpiricalTails:
    """Per column, the empirical CDF of ``train`` (rows, columns) and its skewness sign."""

    def __init__(self, train: np.ndarray) -> None:
        train = np.asarray(train)
        if train.ndim != 2 or len(train) == 0:
            raise ValueError(f"EmpiricalTails: train must be a non-empty 2-D array, got shape "
                             f"{train.shape}")
        self.sorted = np.sort(train, axis=0)
        self.n = len(train)
        x = train.astype(np.float64)
        dev = x - x.mean(axis=0)
        m2, m3 = np.mean(dev ** 2, axis=0), np.mean(dev ** 3, axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            skew = np.where(m2 > 0, m3 / np.maximum(m2, 1e-300) ** 1.5, 0.0)
        #: True where the column's left tail is the anomalous one (negative skewness)
        self.left_skewed = skew < 0

    def tails(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(left, right): ``-log`` of each value's left / right tail probability, (rows,
        columns), each in ``[0, log(n + 1)]``."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.sorted.shape[1]:
            raise ValueError(f"EmpiricalTails: x must have {self.sorted.shape[1]} columns, "
                             f"got shape {x.shape}")
        left, right = np.empty(x.shape), np.empty(x.shape)
        for j in range(x.shape[1]):
            col = self.sorted[:, j]
            at_most = np.searchsorted(col, x[:, j], side="right")
            at_least = self.n - np.searchsorted(col, x[:, j], side="left")
            left[:, j] = at_most
            right[:, j] = at_least
        log_n1 = math.log(self.n + 1)
        return log_n1 - np.log1p(left), log_n1 - np.log1p(right)

    def column_scores(self, x: np.ndarray, form: str) -> np.ndarray | tuple[np.ndarray, ...]:
        """Per column tail scores of ``x``: ``two`` (the larger tail), ``skew`` (the tail of
        the skewness sign); ``ecod``: the (left, right, skew) triple its aggregate needs."""
        return self.forms(*self.tails(x), form)

    def forms(self, left: np.ndarray, right: np.ndarray,
              form: str) -> np.ndarray | tuple[np.ndarray, ...]:
        """:meth:`column_scores` from :meth:`tails`' (left, right)."""
        skew = np.where(self.left_skewed, left, right)
        if form == "two":
            return np.maximum(left, right)
        if form == "skew":
            return skew
        if form == "ecod":
            return left, right, skew
        raise ValueError(f"unknown form {form!r}; choose from {', '.join(FORMS)}")


def top_mean(scores: np.ndarray) -> np.ndarray:
    """Per row, the mean of the ``ceil(sqrt(columns))`` largest values."""
    k = max(1, math.ceil(math.sqrt(scores.shape[1])))
    return -np.mean(np.partition(-scores, k - 1, axis=1)[:, :k], axis=1)


def aggregate(scores: np.ndarray, how: str, metric: np.ndarray | None = None) -> np.ndarray:
    """One value a row: ``mean`` over the columns; ``top``: the mean of the
    ``ceil(sqrt(columns))`` largest; ``metric``: each metric's mean over its columns
    (``metric``: the metric of each column), then the mean of the ``ceil(sqrt(metrics))``
    largest."""
    if how == "mean":
        return scores.mean(axis=1)
    if how == "top":
        return top_mean(scores)
    if how == "metric":
        if metric is None or len(metric) != scores.shape[1]:
            raise ValueError("aggregate 'metric' needs the metric of every column")
        per = np.stack([scores[:, metric == i].mean(axis=1) for i in np.unique(metric)], 1)
        return top_mean(per)
    raise ValueError(f"unknown aggregate {how!r}; choose from {', '.join(AGGREGATES)}")


def view_tail(tails: EmpiricalTails, x: np.ndarray | tuple[np.ndarray, np.ndarray],
              form: str, how: str, metric: np.ndarray | None = None) -> np.ndarray:
    """The view's tail member of the rows ``x`` (module docstring); ``x`` may be the
    (left, right) of :meth:`EmpiricalTails.tails` already computed; ``metric``: the metric
    of each column (aggregate ``metric``)."""
    s = tails.forms(*x, form) if isinstance(x, tuple) else tails.column_scores(x, form)
    if form == "ecod":
        return np.max([aggregate(part, how, metric) for part in s], axis=0)
    return aggregate(s, how, metric)


def view_columns(d: Dump, view: str) -> np.ndarray:
    """The view's columns (``lv`` or ``sv``), those of constant metrics left out."""
    const = set(d["constant"].tolist())
    cols = np.asarray(d[view])
    return cols[[int(d["column_metric"][j]) not in const for j in cols]]


def tail_members(d: Dump, settings: Sequence[tuple[str, str]] | None = None,
                 per_entity: bool = False, with_ref: bool = False) -> dict[str, Pair]:
    """(holdout, test) of ``T_L``, ``T_S`` and ``T`` per (form, aggregate) setting, the
    ECDF fit on ``d["ref"]`` only; names ``T_L[two,mean]`` etc. ``per_entity``: each
    entity's rows (``d["eref"]``, ``d["ev"]``, ``d["et"]``: entity codes of the reference,
    holdout and test rows) looked up in the ECDF of that entity's reference rows alone.
    ``with_ref``: also ``<name>@fit``, the member on the reference rows themselves (in
    sample; the first array of the pair, the second empty), for the tail-excess forms."""
    fit: dict[str, list[np.ndarray]] = {}
    settings = [(f, a) for f in FORMS for a in AGGREGATES] if settings is None else settings
    out: dict[str, Pair] = {}
    if per_entity:
        groups = [(d["eref"] == e, d["ev"] == e, d["et"] == e) for e in np.unique(d["eref"])]
        if not all(np.any([g[i] for g in groups], axis=0).all() for i in (1, 2)):
            raise SystemExit("error: per-entity tails: a holdout or test row's entity has no "
                             "reference rows")
    else:
        groups = [(slice(None), slice(None), slice(None))]
    for view, tag in (("lv", "T_L"), ("sv", "T_S")):
        cols = view_columns(d, view)
        owner = d["column_metric"][cols]
        parts = {f"{tag}[{f},{a}]": (np.empty(len(d["xv"])), np.empty(len(d["xt"])))
                 for f, a in settings}
        for r, v, t in groups:
            tails = EmpiricalTails(d["ref"][r][:, cols])
            xv, xt = tails.tails(d["xv"][v][:, cols]), tails.tails(d["xt"][t][:, cols])
            xr = tails.tails(d["ref"][r][:, cols]) if with_ref else None
            for form, how in settings:
                name = f"{tag}[{form},{how}]"
                hold, test = parts[name]
                hold[v] = view_tail(tails, xv, form, how, owner)
                test[t] = view_tail(tails, xt, form, how, owner)
                if xr is not None:
                    fit.setdefault(name, []).append(view_tail(tails, xr, form, how, owner))
        out.update(parts)
    for form, how in settings:
        a, b = out[f"T_L[{form},{how}]"], out[f"T_S[{form},{how}]"]
        out[f"T[{form},{how}]"] = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
        if with_ref:
            fit[f"T[{form},{how}]"] = [(x + y) / 2 for x, y in
                                       zip(fit[f"T_L[{form},{how}]"], fit[f"T_S[{form},{how}]"],
                                           strict=True)]
    for name, values in fit.items():
        out[f"{name}@fit"] = (np.concatenate(values), np.empty(0))
    return out


def matched(member: Pair, to: np.ndarray) -> Pair:
    """``member`` shifted by its holdout median and scaled so that its holdout
    median-to-q99 range is that of ``to`` (a holdout score), plus ``to``'s median."""
    h, t = member
    mh, rh = float(np.median(h)), float(np.quantile(h, 0.99) - np.median(h))
    mt, rt = float(np.median(to)), float(np.quantile(to, 0.99) - np.median(to))
    a = rt / max(rh, 1e-12)
    return mt + a * (h - mh), mt + a * (t - mh)


def members_of(d: Dump, per_entity: bool = False) -> dict[str, Pair]:
    """L, S, every tail member and its matched form ``T~[..]``."""
    m: dict[str, Pair] = {"L": (d["vv"][:, 0], d["vt"][:, 0]),
                          "S": (d["vv"][:, 1], d["vt"][:, 1])}
    m.update(tail_members(d, per_entity=per_entity, with_ref=True))
    base = (m["L"][0] + m["S"][0]) / 2
    for form in FORMS:
        for how in AGGREGATES:
            name = f"T[{form},{how}]"
            m[f"T~[{form},{how}]"] = matched(m[name], base)
            for q in EXCESS_QUANTILES:
                m[f"T+[{form},{how},q{q:g}]"] = excess(m[name], m[f"{name}@fit"][0], q)
    return m


#: Quantiles of the reference rows' own T over which the tail-excess forms count.
EXCESS_QUANTILES = (0.99, 0.999)


def excess(member: Pair, fit: np.ndarray, q: float) -> Pair:
    """``max(0, member - its q quantile on the reference rows)``: only what is rarer than
    the training rows' own tail adds (H8 / H9's tail forms)."""
    low = float(np.quantile(fit, q))
    return np.maximum(member[0] - low, 0.0), np.maximum(member[1] - low, 0.0)


# ------------------------------------------------------------------------------ the mixes
Variant = Callable[[dict[str, Pair]], Pair]
DEFAULT = "(L + S) / 2: the default"
WEIGHTS = (0.0625, 0.125, 0.25, 0.5, 1.0, 2.0)


def weighted(terms: Sequence[tuple[str, float]], total: float | None = None) -> Variant:
    """The weighted mean of the named members (``total``: divided by it instead of the sum
    of the weights)."""
    total = sum(w for _, w in terms) if total is None else total

    def f(m: dict[str, Pair]) -> Pair:
        return (sum(w * m[n][0] for n, w in terms) / total,
                sum(w * m[n][1] for n, w in terms) / total)
    return f


def build_variants() -> dict[str, Variant]:
    """Every mix measured, by name; families for leave-one-server-out by name prefix."""
    v: dict[str, Variant] = {DEFAULT: weighted([("L", 1), ("S", 1)])}
    for form in FORMS:
        for how in AGGREGATES:
            s = f"{form},{how}"
            for w in WEIGHTS:
                v[f"(L + S + {w:g} T[{s}]) / {2 + w:g}"] = weighted(
                    [("L", 1), ("S", 1), (f"T[{s}]", w)])
            for w in (0.5, 1.0):
                v[f"(L + S + {w:g} T~[{s}]) / {2 + w:g}"] = weighted(
                    [("L", 1), ("S", 1), (f"T~[{s}]", w)])
            for part in ("T_L", "T_S"):
                for w in (0.5, 1.0):
                    v[f"(L + S + {w:g} {part}[{s}]) / {2 + w:g}"] = weighted(
                        [("L", 1), ("S", 1), (f"{part}[{s}]", w)])
            v[f"(T_L[{s}] + S) / 2"] = weighted([(f"T_L[{s}]", 1), ("S", 1)])
            v[f"(L + T_S[{s}]) / 2"] = weighted([("L", 1), (f"T_S[{s}]", 1)])
            v[f"T[{s}] alone"] = weighted([(f"T[{s}]", 1)])
            for q in EXCESS_QUANTILES:
                for w in (0.5, 1.0, 2.0):
                    v[f"(L + S) / 2 + {w:g} T+[{s},q{q:g}]"] = weighted(
                        [("L", 0.5), ("S", 0.5), (f"T+[{s},q{q:g}]", w)], total=1.0)
    return v


#: Leave-one-server-out families: name -> predicate on the variant's name.
FAMILIES: dict[str, Callable[[str], bool]] = {
    "(L + S + w T) / (2 + w), every form, aggregate, w": (
        lambda n: n.startswith("(L + S + ") and " T[" in n),
    "(L + S + w T~) / (2 + w), every form, aggregate, w": (
        lambda n: n.startswith("(L + S + ") and " T~[" in n),
    "(L + S + w T_L or T_S) / (2 + w)": (
        lambda n: n.startswith("(L + S + ") and (" T_L[" in n or " T_S[" in n)),
    "(L + S) / 2 + w T+, every form, aggregate, q, w": lambda n: " T+[" in n,
    "every mix with a tail member": lambda n: n != DEFAULT,
}


# ---------------------------------------------------------------------------- the servers
def servers(args: argparse.Namespace) -> None:
    """The servers table (module docstring)."""
    from threadpoolctl import threadpool_limits

    dumps = load_dumps(Path(args.dump))
    members: dict[str, dict[str, Pair]] = {}
    with threadpool_limits(1):
        for key, d in dumps.items():
            t0 = time.perf_counter()
            members[key] = m = members_of(d)
            h = m["T[two,mean]"][0]
            print(f"members of {key} in {time.perf_counter() - t0:.1f} s (holdout median / "
                  f"q99: L {np.median(m['L'][0]):.2f} / {np.quantile(m['L'][0], 0.99):.2f}, "
                  f"S {np.median(m['S'][0]):.2f} / {np.quantile(m['S'][0], 0.99):.2f}, "
                  f"T[two,mean] {np.median(h):.2f} / {np.quantile(h, 0.99):.2f}; test q99 "
                  f"{np.quantile(m['T[two,mean]'][1], 0.99):.2f})", flush=True)
    variants = build_variants()
    rows = {name: {k: evaluate(d, *v(members[k])) for k, d in dumps.items()}
            for name, v in variants.items()}
    report_mixes(rows, list(dumps), list(variants), FAMILIES, DEFAULT, args.per_server)


# -------------------------------------------------------------------------------- the demo
def demo_arrays(seed: int, cache: Path, days: float = 28) -> dict[str, np.ndarray]:
    """One demo seed's scaled features and calibration inputs (cached): ``default_model``
    fit on train + validation as ``train`` does; its reference rows (``ref``), the
    calibration holdout's (``xv``, the last 15 % of each entity) and the test split's
    (``xt``) features with constants blinded, L and S of both, the model's raw scores and
    threshold, the labels."""
    path = cache / f"demo_seed{seed}.npz"
    if path.exists():
        with np.load(path) as z:
            if "ethr" in z.files:          # a cache from before the per-entity thresholds: refit
                return {k: z[k] for k in z.files}
    from servers_thresholds import _view_scores

    from aws_anomaly.data import generate_demo
    from aws_anomaly.evaluation.split import chronological_split, concat
    from aws_anomaly.fitting import holdout_split
    from aws_anomaly.presets import default_model

    ds, _ = generate_demo(seed=seed, days=days)
    sp = chronological_split(ds)
    hist = concat([sp.train, sp.validation])
    model = default_model(ds.step).fit(hist)
    parts = holdout_split(model, hist)
    if parts is None:
        raise SystemExit(f"error: demo seed {seed}: no calibration holdout")
    fit_part, holdout = parts
    Xv, ready_v, _ = model._features(holdout, fit_part, "holdout")
    Xt, ready_t, _ = model._features(sp.test, hist, "test")
    Xv = Xv[ready_v]
    det = model.detector_
    # the reference rows' entities: the fit part's ready, unlabelled rows, as ``fit`` keeps
    Xf, ready_f, _ = model._features(fit_part, None, "fit")
    use = ready_f & (fit_part.frame["is_anomaly"].to_numpy() != 1)
    ref = model.constant_guard.blind(np.asarray(det.reference_))
    if len(ref) != int(use.sum()) or not np.allclose(model.constant_guard.blind(Xf[use]), ref):
        raise SystemExit(f"error: demo seed {seed}: the reference is not the fit part's ready, "
                         "unlabelled rows in order (subsampled?); per-entity tails need them")
    names = {e: i for i, e in enumerate(hist.entities)}

    def codes(frame: pd.DataFrame) -> np.ndarray:
        return frame["entity"].map(names).to_numpy().astype(np.int64)
    column_metric = np.full(len(model.columns_), -1, dtype=np.int64)
    for i, metric in enumerate(model.metrics_):
        column_metric[model.groups_.get(metric, [])] = i
    own = getattr(model, "entity_calibrators_", {})
    arrays = {
        "ref": ref, "eref": codes(fit_part.frame)[use],
        "ev": codes(holdout.frame)[ready_v], "et": codes(sp.test.frame),
        "kinds": sp.test.frame["anomaly_type"].to_numpy().astype(str),
        "xv": model.constant_guard.blind(Xv), "xt": model.constant_guard.blind(Xt),
        "vv": _view_scores(model, Xv), "vt": _view_scores(model, Xt),
        "lv": np.asarray(det.views_[0]), "sv": np.asarray(det.views_[1]),
        "column_metric": column_metric,
        "constant": np.asarray(sorted(model.constant_), dtype=np.int64),
        "zt": (model.constant_guard.breaks(Xt).max(axis=1) if model.constant_
               else np.zeros(len(Xt))),
        "readyt": ready_t, "rawv": model._raw(Xv), "rawt": model._raw(Xt),
        "yv": holdout.frame["is_anomaly"].to_numpy()[ready_v].astype(bool),
        "thr": np.float64(model.calibrator_.threshold_),
        # the model's own threshold and center per entity (``entity_thresholds``; NaN: the
        # entity keeps the pooled one), by entity code
        "ethr": np.array([own[e].threshold_ if e in own else np.nan for e in hist.entities]),
        "risk": np.float64(model.calibration_used_["risk"]),
        "y": sp.test.frame["is_anomaly"].to_numpy().astype(bool),
    }
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return arrays


def entity_thresholds(d: Dump, hold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(threshold, center) per entity code as ``default_model`` calibrates (its
    ``entity_thresholds``): an entity whose normal holdout rows expect at least
    ``ENTITY_MIN_EXCEEDANCES`` points above the threshold (rows x risk) gets the POT rule fit
    on its own normal holdout scores, the others the pooled one; NaN where pooled."""
    from aws_anomaly.calibration import pot_threshold
    from aws_anomaly.model import ENTITY_MIN_EXCEEDANCES

    risk = float(d["risk"])
    normal = ~d["yv"]
    codes = np.unique(np.r_[d["eref"], d["ev"], d["et"]])
    thr, center = np.full(codes.max() + 1, np.nan), np.full(codes.max() + 1, np.nan)
    if len(codes) < 2:
        return thr, center
    for e in codes:
        rows = (d["ev"] == e) & normal
        if rows.sum() * risk >= ENTITY_MIN_EXCEEDANCES:
            thr[e] = pot_threshold(hold[rows], risk, 0.98)[0]
            center[e] = float(np.median(hold[rows]))
    return thr, center


def demo_f1_entity(d: Dump, hold: np.ndarray, test: np.ndarray) -> tuple[float, float]:
    """:func:`servers_dynamics.demo_f1` with each entity calibrated by its own POT threshold
    (:func:`entity_thresholds`), as the shipped default does since 2026-12-02: (best F1 over
    one threshold on the calibrated scores, F1 at ``anomaly_score >= 1``)."""
    from servers_members import best_and_own_f1
    from servers_thresholds import calibrated

    from aws_anomaly.calibration import pot_threshold

    normal = hold[~d["yv"]]
    pooled = (pot_threshold(normal, float(d["risk"]), 0.98)[0], float(np.median(normal)))
    thr, center = entity_thresholds(d, hold)
    score = np.empty(len(test))
    for e in np.unique(d["et"]):
        rows = d["et"] == e
        t, c = (thr[e], center[e]) if np.isfinite(thr[e]) else pooled
        score[rows] = calibrated(d, test, t, c)[rows]
    return best_and_own_f1(d["y"], score, score >= 1.0)


def run_demo(args: argparse.Namespace, variants: dict[str, Variant],
             members: Callable[[Dump], dict[str, Pair]],
             score: Callable[[Dump, np.ndarray, np.ndarray], tuple[float, float]],
             title: str) -> None:
    """A member study's demo table (the harness of this script and servers_whiten.py): at
    each seed, the members (``members``) of the cached demo arrays, a check that the default
    mix is the model's own raw score, pooled and per-entity thresholds, each mix's best F1 /
    own F1 (``score``), the recall per kind with ``--kinds``, then the tables."""
    from servers_dynamics import kind_recall
    from threadpoolctl import threadpool_limits

    from aws_anomaly.calibration import pot_threshold

    names = list(variants) if args.all else [DEFAULT, *args.mix]
    unknown = [n for n in names if n not in variants]
    if unknown:
        raise SystemExit(f"error: --mix: unknown mix {unknown[0]!r}")
    results: dict[str, list[tuple[float, float]]] = {}
    kinds: dict[str, dict[str, list[float]]] = {}
    with threadpool_limits(1):
        for seed in args.seeds:
            t0 = time.perf_counter()
            d = demo_arrays(seed, Path(args.cache))
            m = members(d)
            hold, test = variants[DEFAULT](m)
            np.testing.assert_allclose(test, d["rawt"], rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(pot_threshold(hold[~d["yv"]], float(d["risk"]),
                                                     0.98)[0], d["thr"], rtol=1e-9)
            np.testing.assert_allclose(entity_thresholds(d, hold)[0], d["ethr"], rtol=1e-9)
            for name in names:
                results.setdefault(name, []).append(score(d, *variants[name](m)))
            for name in [DEFAULT, *args.mix] if args.kinds else ():
                for k, r in kind_recall(variants[name](m)[1], d["y"], d["kinds"]).items():
                    kinds.setdefault(k, {}).setdefault(name, []).append(r)
            print(f"measured seed {seed} in {time.perf_counter() - t0:.0f} s", flush=True)
    print_demo_tables(title, args.seeds, results, kinds, [DEFAULT, *args.mix])


def demo(args: argparse.Namespace) -> None:
    """The demo table: best F1 / own F1 of each mix per seed and their means."""
    from servers_dynamics import demo_f1

    def score(d: Dump, hold: np.ndarray, test: np.ndarray) -> tuple[float, float]:
        return (demo_f1(d, hold, test, d["y"]) if args.pooled_threshold
                else demo_f1_entity(d, hold, test))

    run_demo(args, build_variants(), lambda d: members_of(d, per_entity=args.per_entity),
             score,
             f"{' (per-entity tails)' if args.per_entity else ''}"
             f"{', one pooled threshold' if args.pooled_threshold else ', thresholds per entity'}")


def study_parser(doc: str, cache: str
                 ) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser,
                            argparse.ArgumentParser]:
    """``(parser, servers, demo)``: a member study's command line with the arguments its
    ``servers`` and ``demo`` commands share (each script adds its own)."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    sub = parser.add_subparsers(dest="bench", required=True)
    servers_parser = sub.add_parser("servers", help="on servers_members.py's dumps")
    demo_parser = sub.add_parser("demo", help="on the synthetic EKS demo")
    servers_parser.add_argument("--dump", default="out/bench-members2",
                                help="folder of servers_members.py's dumps")
    servers_parser.add_argument("--per-server", action="store_true",
                                help="best F1 / F1 / FPR per server")
    demo_parser.add_argument("--seeds", type=int, nargs="+", default=[0, 7, 42, 1234])
    demo_parser.add_argument("--cache", default=cache,
                             help="where each seed's features are kept")
    demo_parser.add_argument("--mix", action="append", default=[],
                             help="a mix to measure (by name)")
    demo_parser.add_argument("--all", action="store_true", help="measure every mix")
    demo_parser.add_argument("--kinds", action="store_true",
                             help="recall per anomaly kind of the default and each --mix")
    return parser, servers_parser, demo_parser


def main() -> None:
    parser, _, d = study_parser(__doc__ or "", "out/h10")
    d.add_argument("--per-entity", action="store_true",
                   help="each entity's rows against the ECDF of its own reference rows")
    d.add_argument("--pooled-threshold", action="store_true",
                   help="one POT threshold for every entity (the default before 2026-12-02 "
                        "03:30 UTC) instead of one per entity")
    args = parser.parse_args()
    (servers if args.bench == "servers" else demo)(args)


if __name__ == "__main__":
    main()
