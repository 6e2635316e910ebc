"""Issue 8's demo row: what limits ``train --detector auto`` on seed 1234, and designs that lift it.

Three parts (H15, docs/model.md "Measured 2026-12-02 (H15)"):

``ceiling``
    For each seed (0, 7, 42, 1234: ``aws-anomaly generate --seed S``), ``train --detector
    auto``'s own path (:func:`aws_anomaly.workflows.train_model`) and, on its test split, the
    anomalous points and events by kind and the F1 / event recall the chosen model would have if
    each kind in turn were found perfectly (its points flagged, nothing else changed). For the
    drifts, how many points lie within 1 / 2 noise sigmas of the clean series: the demo is
    regenerated without events (the same clean series, ``events_per_day=0``) and the noise is
    the injector's estimator (:func:`aws_anomaly.data.anomalies.estimate_scale`) on it (as
    read: its scrape gaps filled).

``designs``
    Designs for the supervised candidate, each through the same path ``auto`` takes: the three
    rolling folds of train + validation (:func:`aws_anomaly.evaluation.split.
    rolling_origin_folds`, F1 on each fold's evaluation block at the threshold set on its
    calibration block), the objective ``mean - 0.5 std`` against the other candidates' (which
    the design does not change: read from the baseline's selection table), and, for the
    candidate chosen, the test split. The supervised rows use the model's own feature rows
    (``AnomalyModel._fit_inputs`` / ``_features``), so the unchanged design reproduces
    ``train --detector auto`` exactly (checked: the script prints both).

``separation``
    For each feature family a design appends, the share of the test split's drift and
    level-shift points on which some metric's column is beyond the normal rows' two-sided 2 %
    tail: what that evidence alone can show.

Run (2 cores shared: ``nice``, one thread)::

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/demo_ceiling.py ceiling
    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/demo_ceiling.py designs
    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/demo_ceiling.py separation

Intermediate results are cached under ``out/h15`` (``--cache``).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.signal import lfilter
from sklearn.ensemble import HistGradientBoostingClassifier

from aws_anomaly.data import Dataset
from aws_anomaly.data.anomalies import estimate_scale
from aws_anomaly.data.generator import generate_demo, write_demo
from aws_anomaly.detectors import KNNDetector
from aws_anomaly.detectors.base import seed_from
from aws_anomaly.evaluation.metrics import evaluate_flags
from aws_anomaly.evaluation.split import chronological_split, concat, rolling_origin_folds
from aws_anomaly.features.band import Band, BandSpec, band_arrays, fit_band
from aws_anomaly.fitting import capped, ready_rows
from aws_anomaly.model import AnomalyModel
from aws_anomaly.presets import default_model
from aws_anomaly.threshold import calibrate, fit_thresholds
from aws_anomaly.tuning import seeded_params
from aws_anomaly.workflows import load_data, train_model

SEEDS = (0, 7, 42, 1234)
DAY_ROWS = 288  # one day of the demo's 5-minute rows
PENALTY = 0.5  # select_detector's objective: mean F1 - PENALTY x std F1


# ---------------------------------------------------------------------- the ceiling
def kind_ceiling(frame: pd.DataFrame, flags: np.ndarray,
                 events: pd.DataFrame | None = None) -> list[dict[str, Any]]:
    """Per anomaly kind of ``frame``: its points, their share of the anomalous points, its
    events, its point recall at ``flags``, and F1 / event recall if its points were all
    flagged (the other flags unchanged). The first row (kind ``""``) is ``flags`` as they are.

    >>> f = pd.DataFrame({"entity": ["a"] * 6, "timestamp": pd.date_range(
    ...     "2026-01-01", periods=6, freq="5min", tz="UTC"), "is_anomaly": [0, 1, 1, 0, 1, 0],
    ...     "anomaly_type": ["", "drift", "drift", "", "spike", ""]})
    >>> rows = kind_ceiling(f, np.array([0, 0, 0, 0, 1, 0], bool))
    >>> [(r["kind"], r["points"], round(r["f1"], 3)) for r in rows]
    [('', 3, 0.5), ('drift', 2, 1.0), ('spike', 1, 0.5)]
    """
    flags = np.asarray(flags, dtype=bool)
    kinds = frame["anomaly_type"].astype(str).to_numpy()
    lab = frame["is_anomaly"].to_numpy() == 1
    base = evaluate_flags(frame, flags, events=events)
    rows = [{"kind": "", "points": int(lab.sum()), "share": 1.0,
             "events": int(base["n_events"]), "recall": float(base["recall"]),
             "f1": float(base["f1"]), "event_recall": float(base["event_recall"])}]
    for kind in sorted(set(kinds[lab])):
        mine = lab & (kinds == kind)
        m = evaluate_flags(frame, flags | mine, events=events)
        n_ev = sum(1 for e in pd.unique(frame["entity"])
                   for _ in _runs(mine[frame["entity"].to_numpy() == e]))
        rows.append({"kind": kind, "points": int(mine.sum()),
                     "share": float(mine.sum() / max(lab.sum(), 1)), "events": n_ev,
                     "recall": float(flags[mine].mean()), "f1": float(m["f1"]),
                     "event_recall": float(m["event_recall"])})
    return rows


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of the True runs of ``mask``."""
    d = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(),
                    strict=True))


def ramp_within_noise(magnitude: float, length: int, noise: float, sigmas: float) -> int:
    """Points of a drift (the injector's ramp: ``magnitude * j / length`` at its j-th point,
    j = 1..length) less than ``sigmas`` noise sigmas from the clean series.

    >>> ramp_within_noise(0.8, 8, 0.1, 1.0), ramp_within_noise(0.8, 8, 0.1, 2.0)
    (0, 1)
    >>> ramp_within_noise(0.8, 80, 0.1, 2.0)
    19
    """
    j = np.arange(1, length + 1, dtype=np.float64)
    return int(np.sum(np.abs(magnitude) * j / length < sigmas * noise - 1e-12))


def drift_visibility(seed: int, events: pd.DataFrame, split_test: Dataset) -> list[dict]:
    """For every drift event of the demo: its length, its peak in noise sigmas, and how many
    of its points are within 1 / 2 noise sigmas (the injector's noise) and within 1 / 2
    standard deviations of the clean series' one-day difference; whether it lies in the
    test split."""
    clean, _ = generate_demo(seed=seed, events_per_day=0)
    test_start = {e: f.index[0] for e, f in split_test.iter_entities()}
    out = []
    for entity, ef in clean.iter_entities():
        vals = ef[list(clean.metrics)].to_numpy()
        scale = estimate_scale(vals)
        sd = vals[DAY_ROWS:] - vals[:-DAY_ROWS]
        sd_std = np.std(sd, axis=0)
        for e in events[(events["entity"] == entity) & (events["type"] == "drift")].itertuples():
            start, end = pd.Timestamp(e.start), pd.Timestamp(e.end)
            n = int((end - start) / clean.step) + 1
            cols = [list(clean.metrics).index(m) for m in str(e.metrics).split(";")]
            c = cols[0]
            out.append({
                "entity": entity, "start": str(start), "length": n,
                "peak_noise_sigmas": abs(e.magnitude) / scale.noise[c],
                "within_1_noise": ramp_within_noise(e.magnitude, n, scale.noise[c], 1.0),
                "within_2_noise": ramp_within_noise(e.magnitude, n, scale.noise[c], 2.0),
                "within_1_daydiff_std": ramp_within_noise(e.magnitude, n, sd_std[c], 1.0),
                "within_2_daydiff_std": ramp_within_noise(e.magnitude, n, sd_std[c], 2.0),
                "in_test": bool(start >= test_start[entity])})
    return out


def late_drift_points(frame: pd.DataFrame, drifts: Sequence[dict], key: str) -> np.ndarray:
    """Rows of ``frame`` in the given drift events (:func:`drift_visibility`'s rows) after
    their first ``d[key]`` points (the part of a drift beyond that many sigmas).

    >>> f = pd.DataFrame({"entity": ["a"] * 5, "timestamp": pd.date_range(
    ...     "2026-01-01", periods=5, freq="5min", tz="UTC")})
    >>> d = {"entity": "a", "start": "2026-01-01 00:05:00+00:00", "length": 3, "k": 1}
    >>> late_drift_points(f, [d], "k").tolist()
    [False, False, True, True, False]
    """
    out = np.zeros(len(frame), dtype=bool)
    ent = frame["entity"].to_numpy()
    for d in drifts:
        at = (frame["timestamp"] == pd.Timestamp(d["start"])).to_numpy()
        first = np.flatnonzero((ent == d["entity"]) & at)
        if len(first):
            i = int(first[0])
            out[i + d[key]:i + d["length"]] = True
    return out


# ---------------------------------------------------------------------- causal features
def ewma(x: np.ndarray, span: float) -> np.ndarray:
    """Causal EWMA down axis 0: ``s_0 = x_0``, ``s_t = s_{t-1} + a (x_t - s_{t-1})``,
    ``a = 2 / (span + 1)`` (the recursion of the model's persistence columns).

    >>> ewma(np.array([0.0, 1.0, 1.0]), 3).tolist()
    [0.0, 0.5, 0.75]
    """
    a = 2.0 / (span + 1.0)
    x = np.asarray(x, dtype=np.float64)
    zi = (1.0 - a) * x[:1]
    y, _ = lfilter([a], [1.0, -(1.0 - a)], x, axis=0, zi=zi)
    return y


def cusum(u: np.ndarray, k: float) -> tuple[np.ndarray, np.ndarray]:
    """One-sided CUSUMs down axis 0: ``S+_t = max(0, S+_{t-1} + u_t - k)`` and
    ``S-_t = max(0, S-_{t-1} - u_t - k)``.

    >>> up, down = cusum(np.array([[1.0], [1.0], [-3.0]]), 0.5)
    >>> up[:, 0].tolist(), down[:, 0].tolist()
    ([0.5, 1.0, 0.0], [0.0, 0.0, 2.5])
    """
    u = np.asarray(u, dtype=np.float64)
    up = np.zeros_like(u)
    down = np.zeros_like(u)
    s_up = np.zeros(u.shape[1:])
    s_down = np.zeros(u.shape[1:])
    for t in range(len(u)):
        s_up = np.maximum(0.0, s_up + u[t] - k)
        s_down = np.maximum(0.0, s_down - u[t] - k)
        up[t], down[t] = s_up, s_down
    return up, down


def season_z(values: np.ndarray, day_rows: int = DAY_ROWS, scale_span: int = 3 * DAY_ROWS
             ) -> np.ndarray:
    """The one-day difference of each column in units of its own causal scale (the EWMA,
    span ``scale_span``, of its absolute value up to the row before), clipped at +-50; 0
    over the first day.

    >>> z = season_z(np.r_[np.zeros(4), 1.0, -1.0, 2.0][:, None], day_rows=2, scale_span=3)
    >>> np.round(z[:, 0], 3).tolist()  # row 4: no variation seen before it, so 0
    [0.0, 0.0, 0.0, 0.0, 0.0, -2.0, 1.333]
    """
    v = np.asarray(values, dtype=np.float64)
    z = np.zeros_like(v)
    if len(v) <= day_rows:
        return z
    sd = v[day_rows:] - v[:-day_rows]
    a = np.abs(sd)
    scale = np.empty_like(a)
    scale[0] = a[0]
    scale[1:] = ewma(a, scale_span)[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        z[day_rows:] = np.where(scale > 1e-9, sd / np.maximum(scale, 1e-9), 0.0)
    return np.clip(z, -50.0, 50.0)


def extra_features(values: np.ndarray, kind: str) -> np.ndarray:
    """Causal columns appended to the supervised detector's rows (one entity's ``(n, m)``
    metrics): ``ewm`` the one-day difference's z (:func:`season_z`) averaged over 6 h and
    12 h; ``cusum`` one-sided CUSUMs (k = 0.5) of that z less its one-day EWMA; ``both``.

    Row t depends only on rows <= t (the test checks it on every prefix).
    """
    z = season_z(values)
    cols = []
    if kind in ("ewm", "both"):
        cols += [ewma(z, 72), ewma(z, 144)]
    if kind in ("cusum", "both"):
        base = np.zeros_like(z)
        base[1:] = ewma(z, DAY_ROWS)[:-1]
        up, down = cusum(np.clip(z - base, -10.0, 10.0), 0.5)
        cols += [up, down]
    if not cols:
        raise ValueError(f"unknown extra feature kind {kind!r}; use ewm, cusum or both")
    return np.hstack(cols)


def event_weights(pos: np.ndarray, entity: np.ndarray) -> np.ndarray:
    """Weights of the labelled anomalous training rows (their positions in the data and
    entities, in order) that give every labelled event (a run of rows one position apart, of
    one entity) the same total weight, whatever its length; together they weigh as many as
    they are, and normal rows weigh 1 (label-only information: no kind is used).

    >>> event_weights(np.array([1, 2, 3, 5]), np.array(["a"] * 4)).tolist()
    [0.6666666666666666, 0.6666666666666666, 0.6666666666666666, 2.0]
    """
    pos = np.asarray(pos)
    ent = np.asarray(entity)
    brk = np.r_[True, (np.diff(pos) != 1) | (ent[1:] != ent[:-1])]
    run = np.cumsum(brk) - 1
    size = np.bincount(run)
    return (len(pos) / len(size)) / size[run]


# ---------------------------------------------------------------------- data and parts
def demo_data(seed: int, cache: Path) -> tuple[Dataset, pd.DataFrame]:
    """``aws-anomaly generate --seed S`` (written once under ``cache``), read as ``train``
    reads it."""
    folder = cache / f"d{seed}"
    if not (folder / "metrics.csv").is_file():
        write_demo(folder, seed=seed)
    ds, events = load_data(folder)
    assert events is not None
    return ds, events


@dataclass
class Part:
    """One fit / calibrate / evaluate triple (a rolling fold, or the final split)."""

    name: str
    train: Dataset
    calibration: Dataset
    evaluation: Dataset
    history: Dataset
    events: pd.DataFrame | None  # the final split's test part is scored with the events


def parts_of(ds: Dataset, events: pd.DataFrame) -> list[Part]:
    """The three rolling folds ``auto`` compares on, then the final split (train,
    validation, test) it fits and reports."""
    split = chronological_split(ds, (0.70, 0.15, 0.15))
    out = [Part(f"fold{f.index + 1}", f.train, f.calibration, f.evaluation,
                concat([f.train, f.calibration]), None)
           for f in rolling_origin_folds(split.development, n_folds=3)]
    ev = events[events["entity"].astype(str).isin(split.test.entities)]
    out.append(Part("test", split.train, split.validation, split.test,
                    concat([split.train, split.validation]), ev))
    return out


def _positions(ds: Dataset, part: Dataset) -> np.ndarray:
    key = pd.MultiIndex.from_frame(ds.frame[["entity", "timestamp"]])
    pos = key.get_indexer(pd.MultiIndex.from_frame(part.frame[["entity", "timestamp"]]))
    assert (pos >= 0).all()
    return pos


@dataclass
class Rows:
    """The supervised candidate's matrices of one part, and where each row is in the data."""

    Xs: np.ndarray
    Xa: np.ndarray
    Xv: np.ndarray
    yv: np.ndarray
    ent_v: np.ndarray
    Xe: np.ndarray
    ready_e: np.ndarray
    ent_e: np.ndarray
    pos_s: np.ndarray
    pos_a: np.ndarray
    ent_a: np.ndarray
    pos_v: np.ndarray
    pos_e: np.ndarray
    model: AnomalyModel


def supervised_rows(ds: Dataset, part: Part, seed: int = 0, features: str = "shipped"
                    ) -> Rows:
    """The rows the supervised candidate learns from and is scored on, built by the model
    itself (the same features, columns and scaler as ``train --detector auto``); with
    ``features="default"`` the label-free default's features instead (``default_model``'s
    spec, hybrid views, persistence terms and scaling, as :func:`fit_default` builds it)."""
    params = seeded_params({}, "supervised", seed)
    if features == "default":
        per = int(part.train.frame.groupby("entity").size().min())
        m = default_model(part.train.step, history=part.train.step * per,
                          detector="supervised", detector_params=params, calibration="auto",
                          band=None)
    else:
        m = AnomalyModel("supervised", params, calibration="auto", band=None)
    inp = m._fit_inputs(part.train, part.calibration, labelled_rows=True)
    tr = part.train.frame
    lab = tr["is_anomaly"].to_numpy() == 1
    ready = ready_rows(tr["entity"].to_numpy(), m.spec.min_history)
    keep_s = capped(ready & ~lab, m.max_fit_rows, 0)
    keep_a = capped(ready & lab, m.max_fit_rows, 1)
    pos_tr = _positions(ds, part.train)
    assert inp.Xa is not None and len(inp.Xs) == keep_s.sum() and len(inp.Xa) == keep_a.sum()
    assert inp.Xv is not None and inp.y is not None and len(inp.Xv) == len(part.calibration)
    Xe, ready_e, _ = m._features(part.evaluation, part.history, "evaluation data")
    return Rows(Xs=inp.Xs, Xa=inp.Xa, Xv=inp.Xv, yv=np.asarray(inp.y), ent_v=inp.entities,
                Xe=Xe, ready_e=ready_e, ent_e=part.evaluation.frame["entity"].to_numpy(),
                pos_s=pos_tr[keep_s], pos_a=pos_tr[keep_a],
                ent_a=tr["entity"].to_numpy()[keep_a],
                pos_v=_positions(ds, part.calibration), pos_e=_positions(ds, part.evaluation),
                model=m)


def extra_matrix(ds: Dataset, kind: str) -> np.ndarray:
    """:func:`extra_features` of every row of ``ds`` (entity by entity, in ``ds``'s order)."""
    blocks = [extra_features(ef[list(ds.metrics)].to_numpy(np.float64), kind)
              for _, ef in ds.iter_entities()]
    return np.vstack(blocks)


# ---------------------------------------------------------------------- designs
@dataclass
class Scored:
    """Calibrated scores of a part's calibration and evaluation rows, and the flags."""

    cal_v: np.ndarray
    cal_e: np.ndarray
    flags: np.ndarray


def fit_supervised(rows: Rows, extra: np.ndarray | None = None, weighted: bool = False,
                   seed: int = 0) -> Scored:
    """The supervised detector's fit (the parameters of ``SupervisedDetector``'s defaults),
    optionally with ``extra`` columns (every row of the data) and event-balanced weights;
    threshold as ``auto`` sets it (best F1 on the calibration rows, capped at 2 % FPR)."""
    return _threshold(rows, *supervised_raw(rows, extra, weighted, seed))


def supervised_raw(rows: Rows, extra: np.ndarray | None = None, weighted: bool = False,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """:func:`fit_supervised`'s raw log-odds of the calibration and evaluation rows."""
    Xs, Xa, Xv, Xe = rows.Xs, rows.Xa, rows.Xv, rows.Xe
    if extra is not None:
        Xs = np.hstack([Xs, extra[rows.pos_s]])
        Xa = np.hstack([Xa, extra[rows.pos_a]])
        Xv = np.hstack([Xv, extra[rows.pos_v]])
        Xe = np.hstack([Xe, extra[rows.pos_e]])
    X = np.vstack([Xs, Xa])
    y = np.r_[np.zeros(len(Xs), bool), np.ones(len(Xa), bool)]
    w = np.r_[np.ones(len(Xs)), event_weights(rows.pos_a, rows.ent_a)] if weighted else None
    est = HistGradientBoostingClassifier(
        max_iter=300, learning_rate=0.05, max_leaf_nodes=31, min_samples_leaf=20,
        l2_regularization=0.0, early_stopping=False, random_state=seed_from(seed)
    ).fit(X, y, sample_weight=w)
    raw_v = est.decision_function(Xv).astype(np.float64)
    raw_e = np.zeros(len(Xe))
    ok = rows.ready_e
    raw_e[ok] = est.decision_function(Xe[ok])
    return raw_v, raw_e


def max_knn_inner(rows: Rows, quantile: float = 0.999) -> Scored:
    """What a detector could do inside its own fit, without the calibration rows: the
    trees' probability against half the 1-NN distance (the normal training rows as the
    reference) over the ``quantile`` of its leave-one-out training distances, so both
    are 0.5 at their own boundary; the max, thresholded as ``auto`` does."""
    sv, se = supervised_raw(rows)
    views = rows.model.views_
    knn = KNNDetector(views=None if views is None else [list(v) for v in views]).fit(rows.Xs)
    t = float(np.quantile(knn.training_scores_, quantile))
    kv = knn.score_samples(rows.Xv)
    ke = np.zeros(len(rows.Xe))
    ok = rows.ready_e
    ke[ok] = knn.score_samples(rows.Xe[ok])
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    return _threshold(rows, np.maximum(sig(sv), 0.5 * kv / t),
                      np.where(ok, np.maximum(sig(se), 0.5 * ke / t), 0.0))


def _threshold(rows: Rows, raw_v: np.ndarray, raw_e: np.ndarray) -> Scored:
    m = rows.model
    th = fit_thresholds(m.calibration, raw_v, rows.yv, m.step_, entities=rows.ent_v,
                        per_entity=m.entity_thresholds, calibrated_on="validation")
    cal_v = calibrate(th.pooled, th.per_entity, raw_v, rows.ent_v)
    cal_e = np.zeros(len(raw_e))
    ok = rows.ready_e
    cal_e[ok] = calibrate(th.pooled, th.per_entity, raw_e[ok], rows.ent_e[ok])
    return Scored(cal_v=cal_v, cal_e=cal_e, flags=ok & (cal_e >= 1.0))


def fit_default(part: Part) -> Scored:
    """The label-free default as ``train --detector default`` builds it (its own POT
    threshold per entity), fit on the part's training rows, calibrated on its calibration
    rows; the calibrated scores of the calibration and evaluation rows."""
    per = int(part.train.frame.groupby("entity").size().min())
    m = default_model(part.train.step, history=part.train.step * per)
    m.fit(part.train, part.calibration)
    sv = m.score(part.calibration, history=part.train, explain="none")
    se = m.score(part.evaluation, history=part.history, explain="none")
    return Scored(cal_v=sv["anomaly_score"].to_numpy(), cal_e=se["anomaly_score"].to_numpy(),
                  flags=se["is_anomaly"].to_numpy().astype(bool))


def fit_knn_same(rows: Rows, pot: bool = True) -> Scored:
    """A one-nearest-neighbour member on the supervised candidate's own rows: the normal
    training rows as the reference (``KNNDetector`` defaults, at most 20,000 of them), its
    raw distance thresholded per entity by the label-free default's rule (POT, risk stated
    in time; the labels only keep the tail fit on normal rows) when ``pot``, else as the
    supervised candidate (best F1 capped at 2 % FPR)."""
    knn = KNNDetector().fit(rows.Xs)
    raw_v = knn.score_samples(rows.Xv)
    raw_e = np.zeros(len(rows.Xe))
    ok = rows.ready_e
    raw_e[ok] = knn.score_samples(rows.Xe[ok])
    if not pot:
        return _threshold(rows, raw_v, raw_e)
    m = rows.model
    th = fit_thresholds({"method": "pot"}, raw_v, rows.yv, m.step_, entities=rows.ent_v,
                        per_entity=True, calibrated_on="validation")
    cal_v = calibrate(th.pooled, th.per_entity, raw_v, rows.ent_v)
    cal_e = np.zeros(len(raw_e))
    cal_e[ok] = calibrate(th.pooled, th.per_entity, raw_e[ok], rows.ent_e[ok])
    return Scored(cal_v=cal_v, cal_e=cal_e, flags=ok & (cal_e >= 1.0))


def combine_max(rows: Rows, a: Scored, b: Scored) -> Scored:
    """The max of two calibrated scores, its threshold re-chosen as ``auto`` does."""
    return _threshold(rows, np.maximum(a.cal_v, b.cal_v), np.maximum(a.cal_e, b.cal_e))


def part_metrics(part: Part, flags: np.ndarray) -> dict[str, float]:
    """F1 / FPR / event recall of ``flags`` on the part's evaluation rows, as ``auto``'s
    folds (no events table) or ``evaluate`` (the test part, with the events) count them."""
    m = evaluate_flags(part.evaluation.frame, flags, events=part.events)
    return {"f1": float(m["f1"]), "fpr": float(m["fpr"]),
            "event_recall": float(m["event_recall"]),
            "kinds": {k: round(float(v), 3) for k, v in m["per_type_point_recall"].items()}}


DESIGNS: dict[str, str] = {
    "supervised": "the supervised candidate as shipped (must reproduce train --detector auto)",
    "or_default": "supervised OR the default's own flags (POT per entity)",
    "max_default": "max(supervised, default) calibrated scores, threshold re-chosen",
    "ewm": "+ the one-day difference's z, EWMA 6 h and 12 h (6 columns)",
    "cusum": "+ one-sided CUSUMs (k 0.5) of that z less its one-day EWMA (6 columns)",
    "both": "+ ewm and cusum (12 columns)",
    "weighted": "event-balanced sample weights",
    "ewm_weighted": "+ ewm and event-balanced weights",
    "band": "+ the deviation from the expected band (fit on the part's training rows) in band "
            "sigmas, its EWMA 1 h and 6 h, its CUSUMs (15 columns)",
    "max_band": "band, then max with the default as max_default",
    "max_knn": "max(supervised, a 1-NN on the same rows with the default's POT per entity), "
               "threshold re-chosen",
    "max_knn_f1": "max(supervised, a 1-NN on the same rows, its own best-F1 threshold), "
                  "threshold re-chosen",
    "max_knn_inner": "max(trees' probability, 0.5 x 1-NN distance / its leave-one-out "
                     "q0.999), threshold as auto's",
    "sup_dfeat": "the trees on the label-free default's features (its spec, hybrid views, "
                 "persistence, scaling)",
    "inner_dfeat": "max_knn_inner on the default's features (the kNN in its two views)",
    "max_default_dfeat": "sup_dfeat, then max with the default as max_default",
}
#: Designs whose supervised rows are built on the label-free default's features.
DFEAT = ("sup_dfeat", "inner_dfeat", "max_default_dfeat")


def band_features(values: np.ndarray, band: Band) -> np.ndarray:
    """Causal columns from the model's expected band (one entity's ``(n, m)`` metrics): the
    deviation from the expected value in band sigmas (clipped at +-50, 0 before the band is
    defined), its EWMA over 1 h and 6 h, and its one-sided CUSUMs (k = 0.5)."""
    yhat, _, upper = band_arrays(values, band)
    sigma = (upper - yhat) / band.spec.width
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(np.isfinite(yhat) & (sigma > 0), (values - yhat) / sigma, 0.0)
    z = np.clip(np.nan_to_num(z), -50.0, 50.0)
    up, down = cusum(z, 0.5)
    return np.hstack([z, ewma(z, 12), ewma(z, 72), up, down])


def part_extras(name: str, ds: Dataset, parts: Sequence[Part]) -> list[np.ndarray | None]:
    """The columns design ``name`` appends, per part (every row of ``ds``), or None."""
    kind = {"ewm": "ewm", "cusum": "cusum", "both": "both", "ewm_weighted": "ewm"}.get(name)
    if kind is not None:
        extra = extra_matrix(ds, kind)
        return [extra] * len(parts)
    if name in ("band", "max_band"):
        out = []
        for part in parts:
            band = fit_band([ef[list(ds.metrics)].to_numpy(np.float64)
                             for _, ef in part.train.iter_entities()],
                            BandSpec.for_step(ds.step))
            out.append(np.vstack([band_features(ef[list(ds.metrics)].to_numpy(np.float64), band)
                                  for _, ef in ds.iter_entities()]))
        return out
    return [None] * len(parts)


def run_design(name: str, ds: Dataset, parts: Sequence[Part], rows: Sequence[Rows],
               default: Callable[[int], Scored]) -> list[dict[str, float]]:
    """Metrics of design ``name`` on each part (folds, then test)."""
    out = []
    extras = part_extras(name, ds, parts)
    if name in DFEAT:
        rows = [supervised_rows(ds, p, features="default") for p in parts]
    for i, (part, r) in enumerate(zip(parts, rows, strict=True)):
        if name in ("max_knn_inner", "inner_dfeat"):  # its own trees' fit
            out.append(part_metrics(part, max_knn_inner(r).flags))
            continue
        if name == "max_default_dfeat":
            out.append(part_metrics(part, combine_max(r, fit_supervised(r), default(i)).flags))
            continue
        sup = fit_supervised(r, extra=extras[i], weighted=name in ("weighted", "ewm_weighted"))
        if name == "or_default":
            flags = sup.flags | default(i).flags
        elif name in ("max_default", "max_band"):
            flags = combine_max(r, sup, default(i)).flags
        elif name in ("max_knn", "max_knn_f1"):
            flags = combine_max(r, sup, fit_knn_same(r, pot=name == "max_knn")).flags
        else:
            flags = sup.flags
        out.append(part_metrics(part, flags))
    return out


def choose(design: list[dict[str, float]], table: list[dict[str, Any]]) -> tuple[str, float]:
    """What ``auto`` picks when the supervised candidate's folds are ``design``'s: its name
    ('supervised' or another candidate) and the objective that won."""
    f1 = np.array([d["f1"] for d in design[:3]])
    obj = float(f1.mean() - PENALTY * f1.std())
    best, best_obj = "supervised", obj
    for row in table:
        if row["candidate"] == "supervised" or row.get("error"):
            continue
        if row["objective"] > best_obj:
            best, best_obj = row["candidate"], row["objective"]
    return best, best_obj


# ---------------------------------------------------------------------- commands
def baseline(seed: int, cache: Path) -> dict[str, Any]:
    """``train --detector auto`` on the seed (cached): chosen, selection table, test
    metrics and flags."""
    path = cache / f"baseline{seed}.json"
    if path.is_file():
        return json.loads(path.read_text())
    ds, events = demo_data(seed, cache)
    t0 = time.perf_counter()
    model, _, metrics, scores = train_model(ds, detector="auto", events=events, echo=False)
    sel = model.metadata["selection"]
    out = {"seed": seed, "chosen": sel["chosen"], "table": sel["table"],
           "test": {k: metrics["test"][k] for k in ("f1", "precision", "recall", "fpr",
                                                    "event_recall")},
           "flags": scores["test"]["is_anomaly"].to_numpy().astype(int).tolist(),
           "seconds": round(time.perf_counter() - t0, 1)}
    path.write_text(json.dumps(out))
    return out


def candidate_test(seed: int, name: str, cache: Path) -> dict[str, float]:
    """Test metrics of a fixed candidate through ``train --detector NAME`` (cached)."""
    path = cache / f"cand{seed}_{name}.json"
    if path.is_file():
        return json.loads(path.read_text())
    ds, events = demo_data(seed, cache)
    _, _, metrics, _ = train_model(ds, detector=name, events=events, echo=False)
    out = {k: float(metrics["test"][k]) for k in ("f1", "fpr", "event_recall")}
    path.write_text(json.dumps(out))
    return out


def cmd_ceiling(seeds: Sequence[int], cache: Path) -> None:
    """Print the ceiling tables."""
    for seed in seeds:
        b = baseline(seed, cache)
        ds, events = demo_data(seed, cache)
        split = chronological_split(ds, (0.70, 0.15, 0.15))
        frame = split.test.frame.reset_index(drop=True)
        ev = events[events["entity"].astype(str).isin(split.test.entities)]
        t = b["test"]
        print(f"== seed {seed}: auto chose {b['chosen']} ({b['seconds']} s); test F1 "
              f"{t['f1']:.3f} FPR {t['fpr']:.3f} event recall {t['event_recall']:.2f}")
        print(f"  {'kind':<18}{'points':>7}{'share':>7}{'events':>7}{'recall':>8}"
              f"{'F1 if found':>12}{'ev.R if found':>14}")
        for r in kind_ceiling(frame, np.array(b["flags"], bool), ev):
            print(f"  {r['kind'] or '(as is)':<18}{r['points']:>7}{r['share']:>7.2f}"
                  f"{r['events']:>7}{r['recall']:>8.2f}{r['f1']:>12.3f}{r['event_recall']:>14.2f}")
        lab = frame["is_anomaly"].to_numpy() == 1
        kinds = frame["anomaly_type"].astype(str).to_numpy()
        fl = np.array(b["flags"], bool)
        for words, bound in (("no false positive (the points found, nothing else)", fl & lab),
                             ("every kind but drift found", fl | (lab & (kinds != "drift"))),
                             ("every anomalous point found, false positives kept", fl | lab)):
            m = evaluate_flags(frame, bound, events=ev)
            print(f"  {words}: F1 {m['f1']:.3f}, event recall {m['event_recall']:.2f}")
        print(f"  flagged: {int((fl & lab).sum())} anomalous, {int((fl & ~lab).sum())} normal")
        vis = drift_visibility(seed, events, split.test)
        for d in vis:
            print(f"  drift {d['entity']} {d['start'][:16]}: {d['length']} points, peak "
                  f"{d['peak_noise_sigmas']:.1f} noise sigmas; within 1 / 2 noise sigmas "
                  f"{d['within_1_noise']} / {d['within_2_noise']}; within 1 / 2 one-day-"
                  f"difference std {d['within_1_daydiff_std']} / {d['within_2_daydiff_std']}"
                  f"{' (test)' if d['in_test'] else ''}")
        flags = np.array(b["flags"], bool)
        for key, words in (("within_1_noise", "1 noise sigma"), ("within_2_noise",
                                                                  "2 noise sigmas"),
                           ("within_1_daydiff_std", "1 one-day-difference std"),
                           ("within_2_daydiff_std", "2 one-day-difference std")):
            late = late_drift_points(frame, [d for d in vis if d["in_test"]], key)
            m = evaluate_flags(frame, flags | late, events=ev)
            print(f"  drift points beyond {words} flagged ({int(late.sum())}): F1 "
                  f"{m['f1']:.3f}, event recall {m['event_recall']:.2f}")
        tot = {k: sum(d[k] for d in vis) for k in ("length", "within_1_noise",
                                                     "within_2_noise", "within_1_daydiff_std",
                                                     "within_2_daydiff_std")}
        print(f"  all drifts: {tot['length']} points; within 1 / 2 noise sigmas "
              f"{tot['within_1_noise']} / {tot['within_2_noise']}; within 1 / 2 one-day-"
              f"difference std {tot['within_1_daydiff_std']} / {tot['within_2_daydiff_std']}")


def separation(values: np.ndarray, labels: np.ndarray, kinds: np.ndarray, kind: str,
               fpr: float = 0.02) -> float:
    """Share of ``kind``'s rows on which some column of ``values`` is beyond its own
    two-sided normal quantile: ``|v|`` above the ``1 - fpr / n_columns`` quantile of the
    normal rows' ``|v|`` (a Bonferroni split, so the normal rows flagged by any column stay
    near ``fpr``). A label-aware upper bound on what one feature family alone shows.

    >>> v = np.r_[np.linspace(-1, 1, 100), [5.0, 0.1]][:, None]
    >>> lab = np.r_[np.zeros(100), 1, 1]; k = np.array([""] * 100 + ["drift"] * 2)
    >>> separation(v, lab, k, "drift")
    0.5
    """
    normal = labels == 0
    a = np.abs(values)
    q = np.quantile(a[normal], 1.0 - fpr / a.shape[1], axis=0)
    hit = (a > q).any(axis=1)
    mine = kinds == kind
    return float(hit[mine].mean()) if mine.any() else float("nan")


def cmd_separation(seeds: Sequence[int], cache: Path) -> None:
    """For each feature family appended by a design: the share of the test split's drift
    (and level shift) points it puts beyond the normal rows' 2 % tail."""
    for seed in seeds:
        ds, _ = demo_data(seed, cache)
        split = chronological_split(ds, (0.70, 0.15, 0.15))
        pos = _positions(ds, split.test)
        f = ds.frame
        lab = f["is_anomaly"].to_numpy()[pos]
        kinds = f["anomaly_type"].astype(str).to_numpy()[pos]
        band = fit_band([ef[list(ds.metrics)].to_numpy(np.float64)
                         for _, ef in split.train.iter_entities()], BandSpec.for_step(ds.step))
        bf = np.vstack([band_features(ef[list(ds.metrics)].to_numpy(np.float64), band)
                        for _, ef in ds.iter_entities()])[pos]
        m = len(ds.metrics)
        fam = {"one-day difference z": season_z_matrix(ds)[pos],
               "its EWMA 6 h": extra_matrix(ds, "ewm")[pos][:, :m],
               "its EWMA 12 h": extra_matrix(ds, "ewm")[pos][:, m:],
               "CUSUMs of z less its 1-day EWMA": extra_matrix(ds, "cusum")[pos],
               "band deviation (sigmas)": bf[:, :m], "its EWMA 1 h": bf[:, m:2 * m],
               "its EWMA 6 h ": bf[:, 2 * m:3 * m], "band CUSUMs": bf[:, 3 * m:]}
        print(f"== seed {seed}: test rows {len(pos)}, drift points {int((kinds == 'drift').sum())}"
              f", level shift points {int((kinds == 'level_shift').sum())}")
        for name, v in fam.items():
            print(f"  {name:<34} drift {separation(v, lab, kinds, 'drift'):.2f}  level shift "
                  f"{separation(v, lab, kinds, 'level_shift'):.2f}")


def season_z_matrix(ds: Dataset) -> np.ndarray:
    """:func:`season_z` of every row of ``ds`` (entity by entity)."""
    return np.vstack([season_z(ef[list(ds.metrics)].to_numpy(np.float64))
                      for _, ef in ds.iter_entities()])


def cmd_designs(seeds: Sequence[int], names: Sequence[str], cache: Path) -> None:
    """Print every design's folds and chosen test row per seed, and the four-seed means."""
    summary: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for seed in seeds:
        b = baseline(seed, cache)
        ds, events = demo_data(seed, cache)
        parts = parts_of(ds, events)
        t0 = time.perf_counter()
        rows = [supervised_rows(ds, p) for p in parts]
        print(f"== seed {seed}: rows built in {time.perf_counter() - t0:.0f} s; auto chose "
              f"{b['chosen']}, test F1 {b['test']['f1']:.3f}; selection table: "
              + "; ".join(f"{r['candidate']} {r['objective']}" for r in b["table"]))
        defaults: dict[int, Scored] = {}

        def default(i: int, parts: list[Part] = parts,
                    defaults: dict[int, Scored] = defaults) -> Scored:
            if i not in defaults:
                defaults[i] = fit_default(parts[i])
            return defaults[i]

        for name in names:
            path = cache / f"design{seed}_{name}.json"
            if path.is_file():
                res = json.loads(path.read_text())
            else:
                t0 = time.perf_counter()
                res = {"parts": run_design(name, ds, parts, rows, default),
                       "seconds": round(time.perf_counter() - t0, 1)}
                path.write_text(json.dumps(res))
            folds = res["parts"][:3]
            f1 = np.array([f["f1"] for f in folds])
            chosen, _ = choose(res["parts"], b["table"])
            test = (res["parts"][3] if chosen == "supervised"
                    else candidate_test(seed, chosen, cache))
            row = {"seed": seed, "chosen": chosen, "fold_mean": float(f1.mean()),
                   "fold_std": float(f1.std()), **test}
            summary[name].append(row)
            print(f"  {name:<13} folds {' '.join(f'{v:.3f}' for v in f1)} "
                  f"({f1.mean():.3f} ± {f1.std():.3f}); supervised-path test F1 "
                  f"{res['parts'][3]['f1']:.3f} FPR {res['parts'][3]['fpr']:.3f} ev.R "
                  f"{res['parts'][3]['event_recall']:.2f}; auto -> {chosen}: F1 "
                  f"{test['f1']:.3f} FPR {test['fpr']:.3f} ev.R {test['event_recall']:.2f} "
                  f"({res['seconds']} s)")
            kinds = res["parts"][3].get("kinds")
            if kinds:
                print("      test point recall: " + ", ".join(f"{k} {v:.2f}"
                                                         for k, v in sorted(kinds.items())))
    print("== four-seed summary (auto's pick per seed; test split)")
    for name in names:
        rs = summary[name]
        if not rs:
            continue
        cells = "; ".join(f"{r['seed']}: {r['chosen']} {r['f1']:.3f}/{r['fpr']:.3f}/"
                          f"{r['event_recall']:.2f}" for r in rs)
        print(f"  {name:<13} mean F1 {np.mean([r['f1'] for r in rs]):.3f} | {cells}")


def main(argv: list[str] | None = None) -> None:
    """Parse the options and run a part of the study."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("what", choices=("ceiling", "designs", "separation"))
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    ap.add_argument("--designs", nargs="+", default=list(DESIGNS), choices=list(DESIGNS))
    ap.add_argument("--cache", type=Path, default=Path("out/h15"))
    args = ap.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.what == "ceiling":
        cmd_ceiling(args.seeds, args.cache)
    elif args.what == "separation":
        cmd_separation(args.seeds, args.cache)
    else:
        cmd_designs(args.seeds, args.designs, args.cache)


if __name__ == "__main__":
    main()
