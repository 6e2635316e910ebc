"""The model registry's versions, drift measurement and automated retraining of one job.

A :class:`Retrainer` belongs to one job's :class:`~aws_anomaly.jobmodel.JobModel`
(``jobmodel.retrainer``, also ``runner.retrainer``) and is one of the job runner's score sinks, so
it sees every tick's live scores without touching the tick.

**Versions.** Every training registers a new version ``1, 2, 3 ...`` of the job's model in the
store (:meth:`aws_anomaly.store.Store.next_model_version`), with its training rows, data range,
figures on held-back data and the promotion decision. Each version's bundle is kept at
``<model path>@v<N>`` next to the job's model path (checksummed like every bundle, and the
registry records the sha256 of its manifest, so a folder swapped behind the registry's back is
refused); the champion is also written at the model path itself, which is what a restart loads.
The version is stamped into the bundle's manifest (``registry.version``), so a loaded bundle
knows which registry row it is, and a crash between writing the champion and updating the
registry is repaired at the next start. Rollback (:meth:`Retrainer.rollback`) loads a kept
bundle (checksums verified) and promotes it: no retraining.

**Drift** (always measured over the last ``retrain.drift.window`` of live points, default 1 d,
exported as ``aws_anomaly_drift_*``):

* *alert-rate ratio*: the share of ready points at or above their threshold, divided by the
  share the model flagged on held-back data when it was trained (smoothed: ``(k + 0.5) /
  (n + 1)``). It triggers at ``alert_rate_ratio`` or more when a one-sided binomial test of the
  recent count against the expected share also gives ``p < p_value``, so a handful of points on
  a quiet day does not retrain;
* *population stability index* per metric: recent raw values against the decile bins of the
  training rows of the same entity, ``sum((q - p) ln(q / p))`` with half-count smoothing, mean
  over entities. 0.1 is commonly read as a moderate shift, 0.25 as a large one (the default
  trigger).

**Automated retraining** (``retrain.every``, ``retrain.drift``) trains a *challenger* in a
background thread on the ``window`` less its last ``holdout``, then scores the held-back part
with champion and challenger and decides without labels: the challenger is promoted when its
alerts per entity per day there are within ``budget`` or no more than the champion's, and it
flags every feedback-confirmed anomaly the champion flags. Otherwise it is recorded as
``rejected`` with the same figures. Scoring keeps using the champion all along; the swap is
one assignment under the runner's lock. A requested retrain (the API, a missing bundle) trains
on the whole history and replaces the champion directly, as before, recorded as ``forced``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from aws_anomaly.bundle import MANIFEST_SUM
from aws_anomaly.data import Dataset
from aws_anomaly.durations import parse_timestamp
from aws_anomaly.errors import AwsAnomalyError, DataError, ModelFileError, StoreError
from aws_anomaly.events import AnomalyEvent, merge_events
from aws_anomaly.model import AnomalyModel
from aws_anomaly.models_io import load_model, warm_rows
from aws_anomaly.store import ModelRecord

if TYPE_CHECKING:
    from aws_anomaly.jobmodel import JobModel

__all__ = ["REGISTRY_KEY", "Evaluation", "RetrainBusyError", "RetrainMetrics", "Retrainer",
           "decide", "input_reference", "population_stability", "publish", "stamp",
           "version_of", "version_path"]

log = logging.getLogger(__name__)

#: The manifest key holding a bundle's registry version and its drift reference.
REGISTRY_KEY = "registry"
#: Decile bins per (entity, metric) for the population stability index.
PSI_BINS = 10
#: Versions whose status gauges are exported (the newest), to bound cardinality.
DECISIONS = ("promoted", "rejected", "forced", "rollback", "failed")


class RetrainBusyError(AwsAnomalyError):
    """A training or rollback of the job is already running."""


@runtime_checkable
class RetrainMetrics(Protocol):
    """Registry and drift gauges (``aws_anomaly.service.exporter.Exporter`` implements them)."""

    def set_drift(self, job: str, *, alert_rate_ratio: float | None,
                  psi: Mapping[str, float]) -> None: ...
    def set_model_versions(self, job: str, *, champion: str | None,
                           statuses: Mapping[str, int]) -> None: ...
    def record_retrain(self, job: str, decision: str) -> None: ...


# ---------------------------------------------------------------------------------- versions
def version_path(model_path: Path, version: str) -> Path:
    """Where version ``version`` of the bundle at ``model_path`` is kept: ``<path>@v<N>``
    (``@`` cannot occur in a job name, so it never collides with another job's path)."""
    return model_path.with_name(f"{model_path.name}@v{version}")


def _registry_meta(model: AnomalyModel) -> dict[str, Any]:
    got = (getattr(model, "metadata", None) or {}).get(REGISTRY_KEY)
    if not isinstance(got, dict):
        got = (getattr(model, "manifest_", None) or {}).get(REGISTRY_KEY)
    return got if isinstance(got, dict) else {}


def version_of(model: AnomalyModel) -> str | None:
    """The registry version stamped into the model's bundle, or None (an unregistered model,
    or a bundle written before the registry kept history)."""
    v = _registry_meta(model).get("version")
    return str(v) if v is not None else None


def reference_of(model: AnomalyModel) -> dict[str, Any]:
    """The drift reference stamped into the model (empty when it has none)."""
    ref = _registry_meta(model).get("reference")
    return ref if isinstance(ref, dict) else {}


def stamp(model: AnomalyModel, version: str, reference: Mapping[str, Any]) -> None:
    """Write the registry version and drift reference into the model's bundle description
    (saved in the checksummed manifest by the next ``save``)."""
    model.metadata = {**model.metadata, REGISTRY_KEY: {"version": str(version),
                                                       "reference": dict(reference)}}


def manifest_sha256(path: Path) -> str | None:
    """The recorded sha256 of a bundle's manifest (its ``manifest.sha256``), or None."""
    try:
        return (path / MANIFEST_SUM).read_text(encoding="utf-8").split()[0]
    except (OSError, IndexError):
        return None


def publish(kept: Path, target: Path) -> Path:
    """Make ``target`` a byte-identical copy of the kept bundle folder ``kept`` (hard links;
    a copy where the file system has none), swapped into place as ``write_bundle`` does:
    built in a temporary sibling, renamed over the old folder. Bundles are never changed in
    place, so sharing their files is safe, and no second fsync of the data is needed."""
    import os
    import shutil
    import tempfile

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for f in sorted(kept.iterdir()):
            if f.is_symlink() or not f.is_file():
                raise ModelFileError(f"model bundle {kept} holds {f.name}, not a plain file; "
                                     "refusing to publish it")
            try:
                os.link(f, tmp / f.name)
            except OSError:
                shutil.copy2(f, tmp / f.name)
                with open(tmp / f.name, "rb") as fh:
                    os.fsync(fh.fileno())
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            if old.exists():
                shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
        fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


# ---------------------------------------------------------------------------------- drift
def input_reference(data: Dataset, metrics: Sequence[str], *,
                    bins: int = PSI_BINS) -> dict[str, dict[str, dict[str, list[float]]]]:
    """Per entity and metric: the interior decile edges of the training values and the
    (half-count smoothed) share of training rows in each bin. Constant metrics are left out
    (the model itself flags any move of those)."""
    out: dict[str, dict[str, dict[str, list[float]]]] = {}
    qs = np.linspace(0, 1, bins + 1)[1:-1]
    cols = list(data.metrics)
    for entity in data.entities:
        v = data.values(entity)
        per: dict[str, dict[str, list[float]]] = {}
        for m in metrics:
            x = v[:, cols.index(m)]
            x = x[np.isfinite(x)]
            if x.size < 2 * bins or float(x.min()) == float(x.max()):
                continue
            edges = np.unique(np.quantile(x, qs))
            counts = np.bincount(np.searchsorted(edges, x, side="right"),
                                 minlength=edges.size + 1)
            p = (counts + 0.5) / (x.size + 0.5 * counts.size)
            per[m] = {"edges": [float(e) for e in edges], "p": [float(a) for a in p]}
        if per:
            out[str(entity)] = per
    return out


def population_stability(ref: Mapping[str, Sequence[float]], x: np.ndarray) -> float:
    """PSI of the values ``x`` against one reference ``{"edges", "p"}``."""
    edges = np.asarray(ref["edges"], dtype=np.float64)
    p = np.asarray(ref["p"], dtype=np.float64)
    counts = np.bincount(np.searchsorted(edges, x, side="right"), minlength=p.size)
    q = (counts + 0.5) / (x.size + 0.5 * p.size)
    return float(np.sum((q - p) * np.log(q / p)))


@dataclass
class Drift:
    """The latest drift figures of a job (``None``: not enough recent points yet)."""

    points: int = 0
    flagged: int = 0
    expected_share: float | None = None
    alert_rate_ratio: float | None = None
    p_value: float | None = None
    psi: dict[str, float] = field(default_factory=dict)
    triggered: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"points": self.points, "flagged": self.flagged,
                "expected_share": self.expected_share,
                "alert_rate_ratio": self.alert_rate_ratio, "p_value": self.p_value,
                "psi": dict(self.psi), "triggered": self.triggered}


@dataclass
class _Chunk:
    """One tick's live points still inside the drift window, in the scores' row order."""

    ns: np.ndarray  # timestamps, int64 nanoseconds
    ent: np.ndarray  # entity codes of the window
    ready: np.ndarray
    flagged: np.ndarray  # ready and anomalous
    values: dict[str, np.ndarray]  # raw values per metric (a metric the tick lacked: absent)
    cells: np.ndarray  # per point and metric, its cell in `_DriftWindow.counts` (-1: none)

    def keep(self, mask: np.ndarray) -> _Chunk:
        return _Chunk(self.ns[mask], self.ent[mask], self.ready[mask], self.flagged[mask],
                      {m: v[mask] for m, v in self.values.items()}, self.cells[mask])


class _DriftWindow:
    """The live points of the last drift ``window`` as running counts: each tick adds its
    points and takes off those that left the window, so a tick costs its own points, not the
    window's. The figures equal a recomputation over the window's rows (``Drift``): the
    ready and flagged counts, and per (entity, metric) with a reference the count of points in
    each of its bins (a flat array: one cell per bin). Each stored point keeps its raw values
    and the cell it counts in; a new reference (another model) or another metric list
    recounts the stored points once."""

    def __init__(self) -> None:
        self.chunks: list[_Chunk] = []
        self.names: list[str] = []
        self.codes: dict[str, int] = {}
        self.max_ns: int | None = None
        self.ready = 0
        self.flagged = 0
        self.rows = np.zeros(0, dtype=np.int64)  # points per entity code
        self.model: Any = None
        self.ref: Any = None
        self.metrics: tuple[str, ...] = ()
        self.inputs: dict[str, Any] = {}
        # per metric: padded interior edges per entity code (+inf past its own), the number
        # of its edges (-1: no reference), the offset of its first cell, its shares `p`
        self.edges: list[np.ndarray] = []
        self.n_edges: list[np.ndarray] = []
        self.offset: list[np.ndarray] = []
        self.p: list[list[np.ndarray | None]] = []
        self.counts = np.zeros(0, dtype=np.int64)

    # ------------------------------------------------------------------ points in and out
    def add(self, scores: pd.DataFrame, metrics: Sequence[str]) -> None:
        ts = pd.DatetimeIndex(scores["timestamp"])
        ns = ts.as_unit("ns").asi8
        codes, uniques = pd.factorize(scores["entity"].astype(str))
        table = np.array([self._code(str(u)) for u in uniques], dtype=np.int64)
        ent = table[codes] if len(table) else np.zeros(0, dtype=np.int64)
        if len(self.rows) < len(self.names):
            self.rows = np.concatenate([self.rows, np.zeros(len(self.names) - len(self.rows),
                                                            dtype=np.int64)])
        ready = scores["ready"].to_numpy(dtype=bool)
        chunk = _Chunk(ns, ent, ready, ready & scores["is_anomaly"].to_numpy(dtype=bool),
                       {m: scores[f"value_{m}"].to_numpy(dtype=np.float64) for m in metrics},
                       np.full((len(ns), 0), -1, dtype=np.int64))
        self.chunks.append(chunk)
        if len(ns):
            top = int(ts.max().as_unit("ns").value) if ts.notna().any() else None
            if top is not None:
                self.max_ns = top if self.max_ns is None else max(self.max_ns, top)
        self._count(chunk, +1, new=True)

    def trim(self, window: pd.Timedelta) -> None:
        """Drop the points at or before the newest time less ``window``."""
        if self.max_ns is None:
            return
        cut = self.max_ns - int(window.value)
        kept: list[_Chunk] = []
        for c in self.chunks:
            if len(c.ns) and int(c.ns.min()) <= cut:
                gone = c.ns <= cut
                self._count(c.keep(gone), -1)
                c = c.keep(~gone)
            if len(c.ns):
                kept.append(c)
        self.chunks = kept

    def _code(self, name: str) -> int:
        code = self.codes.get(name)
        if code is None:
            code = self.codes[name] = len(self.names)
            self.names.append(name)
        return code

    def _count(self, c: _Chunk, sign: int, *, new: bool = False) -> None:
        self.ready += sign * int(c.ready.sum())
        self.flagged += sign * int(c.flagged.sum())
        self.rows += sign * np.bincount(c.ent, minlength=len(self.rows))
        if new:
            if self.model is None:
                return  # no reference yet: `measure` counts every stored point
            self._grow()
            c.cells = self._cells(c)
        cells = c.cells[c.cells >= 0]
        if len(cells):
            self.counts += sign * np.bincount(cells, minlength=len(self.counts))

    # ------------------------------------------------------------------ the reference
    def _rebuild(self, model: AnomalyModel, ref: Any, metrics: tuple[str, ...]) -> None:
        self.model, self.ref, self.metrics = model, ref, metrics
        self.inputs = ref.get("inputs") or {}
        self.edges = [np.zeros((0, PSI_BINS - 1)) for _ in metrics]
        self.n_edges = [np.zeros(0, dtype=np.int64) for _ in metrics]
        self.offset = [np.zeros(0, dtype=np.int64) for _ in metrics]
        self.p = [[] for _ in metrics]
        self.counts = np.zeros(0, dtype=np.int64)
        self._grow()
        for c in self.chunks:
            c.cells = self._cells(c)
            cells = c.cells[c.cells >= 0]
            self.counts += np.bincount(cells, minlength=len(self.counts))

    def _grow(self) -> None:
        """Reference tables for entity codes seen since they were built."""
        have = len(self.n_edges[0]) if self.metrics else len(self.names)
        new = self.names[have:]
        if not new or not self.metrics:
            return
        width = self.edges[0].shape[1]
        total = len(self.counts)
        for i, m in enumerate(self.metrics):
            e = np.full((len(new), width), np.inf)
            ne = np.full(len(new), -1, dtype=np.int64)
            off = np.zeros(len(new), dtype=np.int64)
            for j, name in enumerate(new):
                r = (self.inputs.get(name) or {}).get(m)
                if r is None:
                    self.p[i].append(None)
                    continue
                edges = np.asarray(r["edges"], dtype=np.float64)
                if edges.size > width:  # a reference with more bins than the default
                    pad = np.full((self.edges[i].shape[0], edges.size - width), np.inf)
                    self.edges[i] = np.hstack([self.edges[i], pad])
                    e = np.hstack([e, np.full((len(new), edges.size - width), np.inf)])
                    width = edges.size
                    for k in range(len(self.edges)):
                        if k != i and self.edges[k].shape[1] < width:
                            self.edges[k] = np.hstack([self.edges[k], np.full(
                                (self.edges[k].shape[0], width - self.edges[k].shape[1]),
                                np.inf)])
                e[j, :edges.size] = edges
                ne[j] = edges.size
                off[j] = total
                p = np.asarray(r["p"], dtype=np.float64)
                self.p[i].append(p)
                total += p.size
            self.edges[i] = np.vstack([self.edges[i], e]) if len(self.edges[i]) else e
            self.n_edges[i] = np.concatenate([self.n_edges[i], ne])
            self.offset[i] = np.concatenate([self.offset[i], off])
        self.counts = np.concatenate([self.counts, np.zeros(total - len(self.counts),
                                                            dtype=np.int64)])

    def _cells(self, c: _Chunk) -> np.ndarray:
        """Per point and metric, the cell its value counts in (-1: no reference). The bin is
        the number of edges at or below the value (``searchsorted(edges, x, "right")``: a NaN
        lands in the last bin)."""
        out = np.full((len(c.ns), len(self.metrics)), -1, dtype=np.int64)
        for i, m in enumerate(self.metrics):
            ne = self.n_edges[i][c.ent]
            has = ne >= 0
            if not has.any():
                continue
            x = c.values.get(m)
            if x is None:
                x = np.full(len(c.ns), np.nan)
            with np.errstate(invalid="ignore"):
                b = (x[:, None] >= self.edges[i][c.ent]).sum(axis=1)
            b = np.where(np.isnan(x), ne, np.minimum(b, ne))
            out[:, i] = np.where(has, self.offset[i][c.ent] + b, -1)
        return out

    # ------------------------------------------------------------------ the figures
    def measure(self, model: AnomalyModel, metrics: Sequence[str]) -> Drift:
        from scipy.stats import binom

        ref = reference_of(model)
        if model is not self.model or ref is not self.ref or tuple(metrics) != self.metrics:
            self._rebuild(model, ref, tuple(metrics))
        n, k = self.ready, self.flagged
        d = Drift(points=n, flagged=k)
        held = ref.get("held_back") or {}
        if n and held.get("points"):
            p0 = (float(held["flagged"]) + 0.5) / (float(held["points"]) + 1.0)
            d.expected_share = p0
            d.alert_rate_ratio = (k / n) / p0
            d.p_value = float(binom.sf(k - 1, n, p0)) if k else 1.0
        if not self.metrics:
            return d
        eligible = self.rows >= 2 * PSI_BINS
        eligible &= np.any([ne >= 0 for ne in self.n_edges], axis=0)
        if not eligible.any():
            return d
        sums: dict[str, list[float]] = {}
        for code in self._first_seen(eligible):
            size = int(self.rows[code])
            for i, m in enumerate(self.metrics):
                p = self.p[i][code]
                if p is None:
                    continue
                o = int(self.offset[i][code])
                counts = self.counts[o:o + p.size]
                q = (counts + 0.5) / (size + 0.5 * p.size)
                sums.setdefault(m, []).append(float(np.sum((q - p) * np.log(q / p))))
        d.psi = {m: round(float(np.mean(v)), 6) for m, v in sums.items()}
        return d

    def _first_seen(self, wanted: np.ndarray) -> list[int]:
        """The entity codes in ``wanted``, in the order they first occur in the window's rows
        (the order a grouping of the rows meets them: it sets the order of the PSI mean)."""
        left = int(wanted.sum())
        seen = np.zeros(len(wanted), dtype=bool)
        out: list[int] = []
        for c in self.chunks:
            u, first = np.unique(c.ent, return_index=True)
            for code in u[np.argsort(first, kind="stable")]:
                if wanted[code] and not seen[code]:
                    seen[code] = True
                    out.append(int(code))
                    left -= 1
            if not left:
                break
        return out


# ---------------------------------------------------------------------------------- judging
@dataclass(frozen=True)
class Evaluation:
    """One model on the held-back data: alerts, flagged share, confirmed anomalies caught."""

    alerts: int
    alerts_per_entity_day: float
    flagged: int
    points: int
    confirmed: int
    confirmed_detected: tuple[str, ...]

    @property
    def flagged_share(self) -> float:
        return self.flagged / self.points if self.points else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"alerts": self.alerts,
                "alerts_per_entity_day": round(self.alerts_per_entity_day, 4),
                "flagged_points": self.flagged, "points": self.points,
                "flagged_share": round(self.flagged_share, 6),
                "confirmed_anomalies": self.confirmed,
                "confirmed_detected": list(self.confirmed_detected)}


def decide(challenger: Evaluation, champion: Evaluation | None, budget: float
           ) -> tuple[bool, list[str]]:
    """Whether the challenger may replace the champion, and why (label-free check).

    Promoted when (a) its alerts per entity per day on the held-back data are within
    ``budget`` or no more than the champion's, and (b) it flags every feedback-confirmed
    anomaly the champion flags.
    """
    reasons: list[str] = []
    ok = True
    rate = challenger.alerts_per_entity_day
    if rate <= budget:
        reasons.append(f"alert rate {rate:.3g}/entity/day is within the budget {budget:g}")
    elif champion is not None and rate <= champion.alerts_per_entity_day:
        reasons.append(f"alert rate {rate:.3g}/entity/day is over the budget {budget:g} but "
                       f"no higher than the champion's {champion.alerts_per_entity_day:.3g}")
    else:
        ok = False
        theirs = (f" and the champion's {champion.alerts_per_entity_day:.3g}"
                  if champion is not None else "")
        reasons.append(f"alert rate {rate:.3g}/entity/day is over the budget {budget:g}"
                       f"{theirs}")
    if champion is not None:
        lost = sorted(set(champion.confirmed_detected) - set(challenger.confirmed_detected))
        if lost:
            ok = False
            reasons.append(f"misses {len(lost)} confirmed anomal{'y' if len(lost) == 1 else 'ies'}"
                           f" the champion flags: {lost[:5]}")
        elif champion.confirmed:
            reasons.append(f"flags {len(challenger.confirmed_detected)} of "
                           f"{challenger.confirmed} confirmed anomalies (champion "
                           f"{len(champion.confirmed_detected)})")
    return ok, reasons


def _warm_rows(model: AnomalyModel) -> int:
    return warm_rows(model)


def _flag(scores: pd.DataFrame, thresholds: Mapping[str, float], base: float) -> pd.DataFrame:
    limit = scores["entity"].map(lambda e: thresholds.get(e, base)).to_numpy(dtype=np.float64)
    ready = scores["ready"].to_numpy(dtype=bool)
    return scores.assign(is_anomaly=ready & (scores["anomaly_score"].to_numpy() >= limit))


def evaluate(model: AnomalyModel, fit_part: Dataset, held: Dataset, *,
             thresholds: Mapping[str, float], base: float, confirmed: Sequence[AnomalyEvent],
             data: Dataset, min_consecutive: int, max_gap_steps: int,
             repeat: pd.Timedelta = pd.Timedelta(hours=1)) -> Evaluation:
    """Score ``held`` (with the end of ``fit_part`` as feature look-back) and the spans of the
    ``confirmed`` anomalies in ``data``; count alerts and the confirmed anomalies whose peak
    reaches the entity's threshold.

    Alerts are what a receiver gets: each event of at least ``min_consecutive`` anomalous
    points is one, plus one per ``repeat`` it stays open (a still-firing alert is sent again
    every ``repeat_interval``), so a model that flags everything as one endless event does not
    look quiet.
    """
    step = pd.Timedelta(held.step)
    first = held.frame["timestamp"].min()
    look = fit_part.slice_time(first - step * _warm_rows(model), first)
    scores = model.score(held, history=look if len(look) else None, explain="none")
    scores = _flag(scores, thresholds, base)
    events = merge_events(scores, max_gap_steps=max_gap_steps, step=step)
    alerts = sum(1 + int((e.end - e.start) // repeat) for e in events
                 if e.n_points >= min_consecutive)
    ready = scores["ready"].to_numpy(dtype=bool)
    days = max(len(held.frame) / max(len(held.entities), 1) * step / pd.Timedelta(days=1),
               1e-9)
    detected: list[str] = []
    for ev in confirmed:
        seg = data.select([ev.entity]).slice_time(ev.start - step * _warm_rows(model),
                                                  ev.end + step)
        if not len(seg):
            continue
        s = model.score(seg, explain="none")
        w = s[(s["timestamp"] >= ev.start) & (s["timestamp"] <= ev.end) & s["ready"]]
        if len(w) and float(w["anomaly_score"].max()) >= thresholds.get(ev.entity, base):
            detected.append(ev.event_id)
    return Evaluation(alerts=alerts, alerts_per_entity_day=alerts / (len(held.entities) * days),
                      flagged=int(scores["is_anomaly"].sum()), points=int(ready.sum()),
                      confirmed=len(confirmed), confirmed_detected=tuple(sorted(detected)))


# ---------------------------------------------------------------------------------- retrainer
class Retrainer:
    """Registry, drift and automated retraining of one job.

    Parameters
    ----------
    jobmodel
        The job's model management (its model, source, store, feedback thresholds, locks).
    clock
        Data-time clock for the schedule and cooldowns (default: the source's ``now``).
    background
        Run automated retrains in a thread (the default); ``False`` runs them inline (tests).
    """

    def __init__(self, jobmodel: JobModel, *, clock: Callable[[], pd.Timestamp] | None = None,
                 background: bool = True) -> None:
        self.jobmodel = jobmodel
        self.clock = clock
        self.background = background
        self.drift = Drift()
        self.last_decision: dict[str, Any] | None = None
        self._recent: _DriftWindow | None = None
        self._lock = threading.Lock()  # the recent buffer and drift figures
        self._thread: threading.Thread | None = None
        self._last_train: pd.Timestamp | None = None
        self._next_try: pd.Timestamp | None = None

    # ------------------------------------------------------------------ helpers
    @property
    def job(self) -> Any:
        return self.jobmodel.job

    @property
    def name(self) -> str:
        return self.jobmodel.model_name

    def now(self) -> pd.Timestamp:
        now = self.clock() if self.clock is not None else self.jobmodel.source.now()
        return parse_timestamp(now, where="retrain clock")

    def _metrics(self) -> RetrainMetrics | None:
        m = self.jobmodel.metrics
        return m if isinstance(m, RetrainMetrics) else None

    def running(self) -> bool:
        """Whether an automated retrain is running in the background."""
        t = self._thread
        return t is not None and t.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for a background retrain; True when none is running any more."""
        t = self._thread
        if t is not None:
            t.join(timeout)
        return not self.running()

    def trained_at(self, now: pd.Timestamp) -> None:
        """Record the data time of a training done outside :meth:`challenge` (the schedule
        counts from it)."""
        self._last_train = now

    def reset(self) -> None:
        """Forget the recent live points (the champion changed)."""
        with self._lock:
            self._recent = None
            self.drift = Drift()

    def publish_versions(self) -> None:
        """Export the champion's version and the number of versions per status."""
        m = self._metrics()
        if m is None:
            return
        try:
            recs = self.jobmodel.store.list_models(name=self.name)
        except StoreError as exc:
            self.jobmodel.record_error("store", exc)
            return
        statuses = dict.fromkeys(("champion", "challenger", "rejected", "retired"), 0)
        for r in recs:
            statuses[r.status] = statuses.get(r.status, 0) + 1
        champ = next((r.version for r in recs if r.active), None)
        m.set_model_versions(self.job.name, champion=champ, statuses=statuses)

    def count(self, decision: str) -> None:
        """Count a retrain decision (``forced``, ``promoted``, ``failed``...) in the metrics."""
        m = self._metrics()
        if m is not None:
            m.record_retrain(self.job.name, decision)

    # ------------------------------------------------------------------ registration
    def info(self, model: AnomalyModel, *, rows: int, data_start: pd.Timestamp | None,
             data_end: pd.Timestamp | None, figures: Mapping[str, Any] | None,
             path: Path | None) -> dict[str, Any]:
        """What the registry keeps about a version (besides status and decision)."""
        summary = getattr(model, "training_summary_", {}) or {}
        return {"metrics": list(model.metrics_), "step_seconds": model.step_.total_seconds(),
                "calibration": getattr(model, "calibration_used_", {}),
                "training_summary": summary, "detector_params": model.detector_params,
                "rows": int(rows),
                "data_start": data_start.isoformat() if data_start is not None else None,
                "data_end": data_end.isoformat() if data_end is not None else None,
                "figures": dict(figures or {}),
                "manifest_sha256": manifest_sha256(path) if path is not None else None}

    def save_version(self, model: AnomalyModel, version: str, reference: Mapping[str, Any]
                     ) -> Path | None:
        """Stamp the model and keep its bundle at the version's path (None: no model path)."""
        stamp(model, version, reference)
        base = self.jobmodel.model_path
        if base is None:
            return None
        path = version_path(base, version)
        model.save(path)
        return path

    def install(self, model: AnomalyModel, thresholds: Mapping[str, tuple[float, str]],
                version: str, decision: Mapping[str, Any]) -> None:
        """Make ``model`` (already registered as ``version``) the champion: its bundle at the
        model path, the feedback thresholds, the registry, then one swap under the runner's
        lock (a tick runs entirely with the old or the new model)."""
        r = self.jobmodel
        if r.model_path is not None:
            kept = version_path(r.model_path, version)
            if (kept / "manifest.json").exists():
                publish(kept, r.model_path)
            else:
                if REGISTRY_KEY not in model.metadata:  # keep a loaded bundle's stamp
                    stamp(model, version, reference_of(model))
                model.save(r.model_path)
        r.store.replace_entity_thresholds(r.name, dict(thresholds))
        r.store.promote_model(self.name, version, decision=decision)
        model.prepare_live()  # before the lock: ticks go on
        with r.lock:
            r.swap_model(model, {e: t for e, (t, _) in thresholds.items()})
        self.reset()
        self.publish_versions()

    # ------------------------------------------------------------------ live points
    def on_scores(self, job: str, scores: pd.DataFrame, *, model: str) -> None:
        """Sink of every tick's live scores: update drift, then maybe start a retrain."""
        try:
            self._observe(scores)
            self.maybe_retrain()
        except Exception as exc:  # drift must never break the tick
            log.exception("job %s: drift/retrain check failed", job)
            self.jobmodel.record_error("train", exc)

    def _observe(self, scores: pd.DataFrame) -> None:
        model = self.jobmodel.model
        if model is None or not len(scores):
            return
        metrics = [m for m in model.metrics_ if f"value_{m}" in scores.columns]
        window = (self.job.retrain.drift.window if self.job.retrain.drift is not None
                  else pd.Timedelta(days=1))
        with self._lock:
            if self._recent is None:
                self._recent = _DriftWindow()
            self._recent.add(scores, metrics)
            self._recent.trim(pd.Timedelta(window))
            self.drift = self._recent.measure(model, metrics)
            d = self.drift
        m = self._metrics()
        if m is not None:
            m.set_drift(self.job.name, alert_rate_ratio=d.alert_rate_ratio, psi=d.psi)

    # ------------------------------------------------------------------ triggers
    def _last_trained(self) -> pd.Timestamp | None:
        """Data time of the job's latest training (any outcome); from the registry once."""
        if self._last_train is None:
            recs = self.jobmodel.store.list_models(name=self.name)
            if recs:
                latest = recs[0]
                end = latest.info.get("data_end")
                self._last_train = (parse_timestamp(end, where="registry data_end") if end
                                    else latest.trained_at)
        return self._last_train

    def due(self, now: pd.Timestamp | None = None) -> str | None:
        """Why an automated retrain should start now (``schedule``/``drift: ...``), or None."""
        cfg = self.job.retrain
        if (cfg.every is None and cfg.drift is None) or self.jobmodel.model is None:
            return None
        now = self.now() if now is None else now
        if self._next_try is not None and now < self._next_try:
            return None
        last = self._last_trained()
        if last is None:  # a model given from outside: the schedule starts now
            self._last_train = last = now
        if cfg.every is not None and now - last >= pd.Timedelta(cfg.every):
            return f"schedule: last trained {last.isoformat()}, every {cfg.every}"
        dc = cfg.drift
        if dc is None or now - last < pd.Timedelta(dc.cooldown):
            return None
        with self._lock:
            d = self.drift
        if d.points < dc.min_points:
            return None
        if (dc.alert_rate_ratio is not None and d.alert_rate_ratio is not None
                and d.alert_rate_ratio >= dc.alert_rate_ratio
                and d.p_value is not None and d.p_value < dc.p_value):
            d.triggered = (f"drift: alert rate {d.alert_rate_ratio:.2f} x expected "
                           f"(p = {d.p_value:.2g})")
            return d.triggered
        if dc.psi is not None and d.psi:
            worst = max(d.psi, key=lambda m: d.psi[m])
            if d.psi[worst] >= dc.psi:
                d.triggered = f"drift: PSI of {worst} {d.psi[worst]:.3f} >= {dc.psi:g}"
                return d.triggered
        return None

    def maybe_retrain(self, now: pd.Timestamp | None = None) -> bool:
        """Start an automated retrain when one is due and none runs; True when started."""
        if self.running() or self.jobmodel.progress.state == "training":
            return False
        reason = self.due(now)
        if reason is None:
            return False
        if self.background:
            self._thread = threading.Thread(target=self._challenge_safely, args=(reason,),
                                            name=f"retrain-{self.job.name}", daemon=True)
            self._thread.start()
        else:
            self._challenge_safely(reason)
        return True

    def _challenge_safely(self, reason: str) -> None:
        try:
            self.challenge(reason)
        except RetrainBusyError:
            pass
        except Exception as exc:
            # Counted and shown by challenge(); a failed attempt waits before the next.
            log.warning("job %s: automated retrain failed: %s", self.job.name, exc)

    # ------------------------------------------------------------------ challenger
    def challenge(self, trigger: str) -> dict[str, Any]:
        """Train a challenger on the recent window less its held-back tail, judge it against
        the champion on the held-back tail, promote or reject it; returns the decision."""
        r = self.jobmodel
        if not r.train_lock.acquire(blocking=False):
            raise RetrainBusyError(f"job {r.name}: a training is already running")
        try:
            try:
                return self._challenge(trigger)
            except Exception as exc:
                stage = "store" if isinstance(exc, StoreError) else "train"
                msg = r.record_error(stage, exc)
                r.set_progress(state="failed", error=msg, finished=time.time())
                self.count("failed")
                now = self.now()
                cfg = self.job.retrain
                wait = min(pd.Timedelta(cfg.every) if cfg.every else pd.Timedelta(hours=1),
                           pd.Timedelta(hours=1))
                self._next_try = now + wait
                raise
        finally:
            r.train_lock.release()

    def _challenge(self, trigger: str) -> dict[str, Any]:
        r = self.jobmodel
        window, holdout = self.job.retrain_window()
        r.set_progress(state="training", step=f"challenger: fetching {window} of history "
                    f"({trigger})", started=time.time(), finished=None, error=None)
        now = self.now()
        data, labels = r.training_data(pd.Timedelta(window), now)
        cut = now - pd.Timedelta(holdout)
        fit_part, held = data.slice_time(None, cut), data.slice_time(cut, None)
        if not len(held) or not len(fit_part):
            raise DataError(f"job {r.name}: no data on one side of the held-back cut "
                            f"{cut.isoformat()}; check retrain.window and retrain.holdout")
        r.set_progress(step=f"challenger: fitting on {len(fit_part):,} points, holding back "
                         f"{len(held):,}", history_points=len(data))
        challenger = r.new_model(data.step)
        challenger.fit(*fit_part.split_tail(0.2))
        r.set_progress(step="challenger: judging on the held-back data")
        new_thr = r.thresholds_from_feedback(challenger, data, labels)
        confirmed = [ev for verdict, ev in labels.values()
                     if verdict == "true_positive" and ev.entity in data.entities]
        repeats = [n.repeat_interval for n in self.job.notifiers if n.repeat_interval]
        common = dict(base=r.base_threshold, confirmed=confirmed, data=data,
                      min_consecutive=self.job.alert.min_consecutive,
                      max_gap_steps=r.max_gap_steps,
                      repeat=pd.Timedelta(min(repeats, default=pd.Timedelta(hours=1))))
        ch = evaluate(challenger, fit_part, held,
                      thresholds={e: t for e, (t, _) in new_thr.items()}, **common)
        champion = r.model
        cp = (evaluate(champion, fit_part, held, thresholds=r.thresholds(), **common)
              if champion is not None else None)
        promoted, reasons = decide(ch, cp, self.job.retrain.budget)
        version = r.store.next_model_version(self.name)
        decision: dict[str, Any] = {
            "trigger": trigger, "check": "held-back", "promoted": promoted,
            "decision": "promoted" if promoted else "rejected", "reasons": reasons,
            "at": now.isoformat(), "champion_version": version_of(champion)
            if champion is not None else None,
            "budget_alerts_per_entity_day": self.job.retrain.budget,
            "held_back": {"start": cut.isoformat(), "end": now.isoformat(),
                          "points": len(held), "entities": len(held.entities)},
            "challenger": ch.as_dict(), "champion": cp.as_dict() if cp is not None else None}
        reference = {"held_back": {"flagged": ch.flagged, "points": ch.points},
                     "inputs": input_reference(fit_part, list(challenger.metrics_))}
        path = self.save_version(challenger, version, reference)
        r.store.register_model(ModelRecord(
            name=self.name, version=version, job=r.name, path=str(path or ""),
            detector=challenger.detector, trained_at=pd.Timestamp.now(tz="UTC"),
            info={**self.info(challenger, rows=len(fit_part), data_start=data.frame[
                "timestamp"].min(), data_end=now, figures=ch.as_dict(), path=path),
                "entity_thresholds": {e: t for e, (t, _) in new_thr.items()}},
            status="challenger", decision=decision), activate=False)
        self._last_train = now
        self.last_decision = decision
        if promoted:
            self.install(challenger, new_thr, version, decision)
            r.set_progress(state="ready", step=f"challenger v{version} promoted: "
                        f"{'; '.join(reasons)}", finished=time.time())
        else:
            r.store.set_model_status(self.name, version, "rejected", decision=decision)
            r.set_progress(state="ready", step=f"challenger v{version} rejected: "
                        f"{'; '.join(reasons)}", finished=time.time())
            self.publish_versions()
        self.count(decision["decision"])
        log.info("job %s: challenger v%s %s (%s)", r.name, version, decision["decision"],
                 "; ".join(reasons))
        return decision

    # ------------------------------------------------------------------ rollback
    def rollback(self, version: str | None = None) -> ModelRecord:
        """Make ``version`` (default: the champion before the current one) the champion
        again from its kept bundle, checksums verified; returns its registry record."""
        r = self.jobmodel
        if not r.train_lock.acquire(blocking=False):
            raise RetrainBusyError(f"job {r.name}: a training is running; roll back after it")
        try:
            recs = r.store.list_models(name=self.name)
            current = next((m for m in recs if m.active), None)
            if version is None:
                older = [m for m in recs if m.status == "retired" and (
                    current is None or current.number is None or m.number is None
                    or m.number < current.number)]
                if not older:
                    raise DataError(f"model {self.name!r} has no earlier champion to roll back "
                                    f"to; versions are {[m.version for m in recs]}")
                target = older[0]
            else:
                target = next((m for m in recs if m.version == version), None)
                if target is None:
                    raise DataError(f"model {self.name!r} has no version {version!r}; "
                                    f"versions are {[m.version for m in recs]}")
            if target.active:
                raise DataError(f"version {target.version} of model {self.name!r} is already "
                                "the champion")
            model = self._load_kept(target)
            thresholds = {e: (float(t), f"restored with version {target.version}")
                          for e, t in (target.info.get("entity_thresholds") or {}).items()}
            now = pd.Timestamp.now(tz="UTC")
            decision = {**(target.decision or {}), "restored": {
                "by": "rollback", "from_version": current.version if current else None,
                "at": now.isoformat()}}
            self.install(model, thresholds, target.version, decision)
            r.set_progress(state="ready", step=f"rolled back to version {target.version}",
                        finished=time.time(), error=None)
            self.count("rollback")
            got = r.store.get_model(self.name, target.version)
            assert got is not None
            return got
        finally:
            r.train_lock.release()

    def _load_kept(self, rec: ModelRecord) -> AnomalyModel:
        if not rec.path:
            raise DataError(f"version {rec.version} of model {self.name!r} has no kept bundle "
                            "(the job has no model path)")
        path = Path(rec.path)
        if not (path / "manifest.json").exists():
            raise ModelFileError(f"version {rec.version} of model {self.name!r}: its bundle "
                                 f"is missing at {path}")
        want = rec.info.get("manifest_sha256")
        got = manifest_sha256(path)
        if want and got != want:
            raise ModelFileError(f"version {rec.version} of model {self.name!r}: the bundle at "
                                 f"{path} is not the one registered (manifest sha256 "
                                 f"{str(got)[:12]}…, registered {str(want)[:12]}…); refusing "
                                 "to load it")
        model = load_model(path)  # verifies every file's checksum (any model kind)
        if version_of(model) != rec.version:
            raise ModelFileError(f"version {rec.version} of model {self.name!r}: the bundle at "
                                 f"{path} says it is version {version_of(model)!r}")
        return model

