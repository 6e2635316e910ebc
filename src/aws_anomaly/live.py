"""The live scoring state of one job: one primed :class:`~aws_anomaly.model.StreamScorer` per
entity (features, persistence EWMAs, band, last point), fed every new point exactly once.

:class:`LiveState` is what :class:`aws_anomaly.runner.JobRunner` scores a tick with and what
``POST /v1/score`` continues an entity's live series from (a copy: requests never change it).
A tick advances each entity's scorer point by point (streaming features, O(1) per point) and
scores the new rows of *all* entities in one vectorised transform + detector + calibrator call.

An entity's scorer is rebuilt from the tick's look-back (as a batch ``AnomalyModel.score`` with
``history`` would warm up) when there is none, when the model changed, or when the next point
does not continue it (a gap longer than ``StreamScorer.max_gap_steps``). Otherwise the live
scores are exactly those of one pass of ``AnomalyModel.score`` over the whole series.

Checkpoints: :meth:`LiveState.checkpoint_rows` serialises every changed scorer (JSON + a
``.npz`` of numpy arrays, no pickle, with a SHA-256 checksum) for the store's
``stream_checkpoints`` table; :meth:`LiveState.restore` loads them back for the same model
version. docs/streaming.md has the rules.

:class:`RecentPoints` keeps each entity's last scored points (raw values, scores, band,
contributions) for the dashboard and ``GET /v1/entities``.

A :class:`~aws_anomaly.streaming.series.SeriesModel` (a job with a streaming detector,
``model.detector: context``) is scored the same way with one
:class:`~aws_anomaly.streaming.series.SeriesStream` per entity (:meth:`LiveState.score`
dispatches on the model): each new point is fed once, the scores and the band are those of
one ``SeriesModel.score`` pass over the whole series, and its checkpoint is the stream's state
(``{"kind": "series", ...}`` + its arrays: the band's windows, its last points) under the same
SHA-256 checksum. Gaps between an entity's points: up to ``SeriesStream.max_gap_steps`` missing
steps are filled as the batch ``Dataset`` fills them; a longer one is crossed while it is no
longer than the look-back (``SeriesStream.restart_steps``); past that the stream starts afresh
after the gap, as a feature scorer does past its fill limit.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from aws_anomaly.errors import DataError, ModelFileError
from aws_anomaly.model import AnomalyModel
from aws_anomaly.store import StreamCheckpoint
from aws_anomaly.stream import StreamScorer
from aws_anomaly.streaming.series import SeriesModel, SeriesStream

__all__ = ["LiveState", "RecentPoints", "decode_state", "encode_state"]

log = logging.getLogger(__name__)


def _digest(state: Mapping[str, Any], arrays: bytes) -> str:
    h = hashlib.sha256(json.dumps(state, sort_keys=True, separators=(",", ":")).encode())
    h.update(arrays)
    return h.hexdigest()


def encode_state(state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
                 ) -> tuple[bytes, str]:
    """``(npz bytes, sha256 checksum of the JSON state and those bytes)``."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.ascontiguousarray(v) for k, v in arrays.items()})
    blob = buf.getvalue()
    return blob, _digest(state, blob)


def decode_state(state: Mapping[str, Any], blob: bytes, checksum: str
                 ) -> dict[str, np.ndarray]:
    """The arrays of a checkpoint; :class:`DataError` when the checksum does not match or the
    bytes are not a plain ``.npz`` (object arrays are refused: no pickle)."""
    if _digest(state, blob) != checksum:
        raise DataError("checkpoint checksum does not match its contents")
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError) as exc:
        raise DataError(f"checkpoint arrays are unreadable: {exc}") from None


def _scorer_state(sc: StreamScorer | SeriesStream) -> tuple[dict[str, Any], dict[str, Any]]:
    """A scorer's checkpoint: (JSON state, arrays)."""
    if isinstance(sc, SeriesStream):
        state, arrays = sc.get_state()
        return {"kind": "series", "last_ns": sc.last_ns, "stream": state}, arrays
    return sc.get_state()


def _scorer_from_state(model: AnomalyModel | SeriesModel, state: Mapping[str, Any],
                       arrays: Mapping[str, np.ndarray]) -> StreamScorer | SeriesStream:
    """The scorer of ``model`` a checkpoint holds; :class:`DataError` when it is another
    kind's or unreadable."""
    series = state.get("kind") == "series"
    if isinstance(model, SeriesModel) != series:
        raise DataError("it is a " + ("series stream's" if series else "feature scorer's")
                        + " state, not one of this model's kind")
    if isinstance(model, SeriesModel):
        try:
            return SeriesStream.from_state(model, state["stream"], arrays)
        except (KeyError, TypeError, ModelFileError) as exc:
            raise DataError(f"unreadable series stream state: {exc}") from None
    return StreamScorer.from_state(model, state, dict(arrays))


class LiveState:
    """Per-entity stream scorers of one job's current model (thread-safe).

    Parameters
    ----------
    job
        The job's name (checkpoints are keyed by job, entity and model version).
    """

    def __init__(self, job: str) -> None:
        self.job = job
        self.lock = threading.Lock()
        self.model: AnomalyModel | SeriesModel | None = None
        self.version = ""
        self._scorers: dict[str, StreamScorer | SeriesStream] = {}
        self._dirty: set[str] = set()
        #: For the current model, how entities' scorers came to be: ``rebuilt`` (from the
        #: look-back), ``resumed`` (from a checkpoint), ``continued`` (an entity's tick fed
        #: its existing scorer).
        self.counts = {"rebuilt": 0, "resumed": 0, "continued": 0}

    # ------------------------------------------------------------------ model
    def use(self, model: AnomalyModel | SeriesModel, version: str) -> bool:
        """Score with ``model`` from now on; True when it replaced another model (every
        scorer is dropped: the next tick rebuilds or resumes them)."""
        with self.lock:
            if self.model is model:
                return False
            self.model, self.version = model, version
            self._scorers.clear()
            self._dirty.clear()
            self.counts = dict.fromkeys(self.counts, 0)
            return True

    def entities(self) -> list[str]:
        with self.lock:
            return sorted(self._scorers)

    def last_ns(self, entity: str) -> int | None:
        """Time (ns) of the last point the entity's scorer has seen; None without one."""
        sc = self._scorers.get(entity)
        return None if sc is None else sc.last_ns

    def drop(self, entities: Iterable[str]) -> None:
        """Forget these entities' scorers (a tick that advanced them was not committed)."""
        with self.lock:
            for e in entities:
                self._scorers.pop(e, None)
                self._dirty.discard(e)

    def snapshot(self, entity: str, first: pd.Timestamp, model: AnomalyModel | SeriesModel
                 ) -> StreamScorer | SeriesStream | None:
        """A private copy of the entity's live scorer when ``first`` is exactly one step after
        its last point and it scores with ``model``; else None. The live state is untouched."""
        with self.lock:
            sc = self._scorers.get(entity)
            if sc is None or sc.model is not model or sc.last_ns is None \
                    or sc.last_ns + int(model.step_.value) != first.value:
                return None
            return sc.copy()

    # ------------------------------------------------------------------ scoring a tick
    def score(self, model: AnomalyModel | SeriesModel, frame: pd.DataFrame, out: np.ndarray
              ) -> pd.DataFrame:
        """Advance every entity's scorer with the rows of ``frame`` it has not seen and score
        the rows where ``out`` is True.

        ``frame``: a ``Dataset`` frame (sorted by entity and timestamp, one regular series per
        entity) holding, per entity, its look-back and the new rows. Rows of an entity at or
        before its scorer's last point are already in the live state: the ones of them to score
        (a re-score for display) are scored by a throw-away scorer primed with the rows before
        them. Returns what ``model.score(frame[out], history=frame[~out])`` returns (same
        columns, rows in ``frame`` order), with one transform + detector + calibrator call.
        A :class:`SeriesModel` is scored by :meth:`_score_series`.
        """
        metrics = list(model.metrics_)
        m = len(metrics)
        n_out = int(out.sum())
        ts = frame["timestamp"].array.asi8  # ns, UTC
        vals = frame[metrics].to_numpy(dtype=np.float64)
        out_pos = np.cumsum(out) - 1  # row of frame -> row of the scored rows
        if isinstance(model, SeriesModel):
            return self._score_series(model, frame, out, ts, vals, out_pos)
        probe = StreamScorer(model, "")
        X = np.empty((n_out, probe.width))
        ready = np.zeros(n_out, dtype=bool)
        band = np.full((3, n_out, m), np.nan)

        def feed(sc: StreamScorer, lo: int, hi: int) -> StreamScorer:
            """Feed rows [lo, hi) to ``sc``, keeping the scored ones; a gap the scorer cannot
            fill starts a fresh scorer there (warming up again)."""
            for i in range(lo, hi):
                t = int(ts[i])
                if not 0 <= sc.gap_steps(t) <= sc.max_gap_steps:
                    sc = StreamScorer(model, sc.entity)
                row = sc.advance(t, vals[i])
                if out[i]:
                    j = out_pos[i]
                    X[j] = row
                    ready[j] = sc.ready
                    band[0, j], band[1, j], band[2, j] = sc.band()
            return sc

        # No scorer, another model, or a gap it cannot fill: a new scorer warmed on the rows
        # before the first one to score (the look-back), as batch does.
        self._advance(model, frame, out, ts, feed, lambda e: StreamScorer(model, e),
                      lambda sc, t: 0 <= sc.gap_steps(t) <= sc.max_gap_steps)
        # (BLAS on one thread inside, as for batch chunks: a tick's or a request's rows are
        # small products, and a BLAS thread waiting for a busy core costs milliseconds)
        score, flag, contrib = model.score_transformed(
            model.transform(X), ready, "flagged", frame["entity"].to_numpy()[out])
        return _score_frame(frame, out, metrics, score, flag, contrib, ready, band)

    def _advance(self, model: AnomalyModel | SeriesModel, frame: pd.DataFrame,
                 out: np.ndarray, ts: np.ndarray, feed: Callable[[Any, int, int], Any],
                 fresh: Callable[[str], Any], resumes: Callable[[Any, int], bool]) -> None:
        """Walk ``frame`` entity by entity for :meth:`score`: ``feed(scorer, lo, hi)`` takes
        rows [lo, hi) and returns the scorer to keep; ``fresh(entity)`` makes a new scorer;
        ``resumes(live, t)`` says whether the live scorer may take the next row at ``t``.

        Rows after the live scorer's last point go to it (when it resumes), else to a fresh
        scorer fed from the entity's first row (the look-back); rows it has already seen that
        are to be scored again (display) go to a throw-away fresh scorer warmed on the rows
        before them, as batch would. Only ticks (under the runner's lock) change the scorers;
        the lock is taken per entity, so a /v1/score snapshot waits for one entity's points,
        not the whole tick.
        """
        with self.lock:
            if self.model is not model:
                raise RuntimeError("LiveState.score: call use(model) first")
        ent = frame["entity"].to_numpy()
        n = len(frame)
        starts = np.flatnonzero(np.r_[True, ent[1:] != ent[:-1]]) if n else np.empty(0, int)
        for a, b in pairwise(np.r_[starts, n].tolist()):
            entity = str(ent[a])
            rows_out = np.flatnonzero(out[a:b])
            live = self._scorers.get(entity)
            if live is not None and live.model is not model:
                live = None
            first_out = a + int(rows_out[0]) if rows_out.size else b
            begin = a
            if live is not None and live.last_ns is not None:
                begin = a + int(np.searchsorted(ts[a:b], live.last_ns, side="right"))
                if first_out < begin:
                    feed(fresh(entity), a, begin)
            if begin >= b:
                continue
            if live is not None and resumes(live, int(ts[begin])):
                with self.lock:
                    self._scorers[entity] = feed(live, begin, b)
                    self._dirty.add(entity)
                    self.counts["continued"] += 1
            elif rows_out.size:
                sc = feed(fresh(entity), begin, b)
                with self.lock:
                    self._scorers[entity] = sc
                    self._dirty.add(entity)
                    self.counts["rebuilt"] += 1

    def _score_series(self, model: SeriesModel, frame: pd.DataFrame, out: np.ndarray,
                      ts: np.ndarray, vals: np.ndarray, out_pos: np.ndarray) -> pd.DataFrame:
        """:meth:`score` for a :class:`SeriesModel` (``ts``, ``vals``, ``out_pos``: the
        frame's times in ns, its metric values and each row's place among the scored rows, as
        :meth:`score` read them): one :class:`SeriesStream` per entity.

        An entity's live stream takes the rows after its last point when they continue it
        (``SeriesStream.continues``: a gap of at most the look-back; short gaps are filled as
        in batch). Without one, after another model or past a longer gap, a fresh stream
        learns the rows before the first one to score (the look-back) and scores the rest, as
        ``SeriesModel.score(data, history)`` does; rows the live stream has seen that are to
        be scored again (display) are scored by a throw-away fresh stream warmed on the rows
        before them. The calibrator runs once on all scored rows.
        """
        metrics = list(model.metrics_)
        m = len(metrics)
        n_out = int(out.sum())
        raw = np.zeros((n_out, m))
        ready = np.zeros(n_out, dtype=bool)
        band = np.full((3, n_out, m), np.nan)

        def feed(st: SeriesStream, lo: int, hi: int) -> SeriesStream:
            for i in range(lo, hi):
                if not st.continues(int(ts[i])):  # a gap (a Dataset frame has none)
                    st = model.stream(st.entity)
                r, was_ready = st.advance(int(ts[i]), vals[i])
                if out[i]:
                    j = out_pos[i]
                    raw[j] = r
                    ready[j] = was_ready
                    band[0, j], band[1, j], band[2, j] = st.band()
            return st

        self._advance(model, frame, out, ts, feed, model.stream,
                      lambda st, t: st.continues(t))
        # As SeriesModel.score: the calibrated largest metric score, each metric's share.
        score = np.where(ready, model.calibrator_.transform(raw.max(axis=1)) if n_out
                         else np.zeros(0), 0.0)
        total = raw.sum(axis=1, keepdims=True)
        contrib = np.divide(raw, total, out=np.zeros_like(raw), where=total > 0)
        contrib[~ready] = 0.0
        return _score_frame(frame, out, metrics, score, ready & (score >= 1.0), contrib, ready,
                            band)

    def recent(self, entity: str, n: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The entity's last ``n`` points in the live state: (times in ns, values)."""
        with self.lock:
            sc = self._scorers.get(entity)
            if sc is None or sc.last_ns is None or self.model is None:
                return None
            if isinstance(sc, SeriesStream):
                return sc.recent_values(n)
            vals = sc.recent_values(n)
            step = int(self.model.step_.value)
            ts = sc.last_ns - step * np.arange(len(vals) - 1, -1, -1, dtype=np.int64)
            return ts, vals

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_rows(self, *, everything: bool = False) -> list[StreamCheckpoint]:
        """Serialised scorers changed since the last call (all with ``everything``)."""
        with self.lock:
            names = sorted(self._scorers) if everything else sorted(self._dirty)
            states = [(e, _scorer_state(self._scorers[e])) for e in names
                      if e in self._scorers]
            self._dirty.clear()
            version = self.version
        rows = []
        for entity, (state, arrays) in states:
            blob, digest = encode_state(state, arrays)
            rows.append(StreamCheckpoint(self.job, entity, version, int(state["last_ns"] or 0),
                                      state, blob, digest))
        return rows

    def mark_dirty(self, entities: Iterable[str]) -> None:
        """Checkpoint these entities again next time (their write failed)."""
        with self.lock:
            self._dirty.update(e for e in entities if e in self._scorers)

    def restore(self, rows: Iterable[StreamCheckpoint]) -> int:
        """Load checkpoints of the current model version; returns how many were usable (a bad
        or foreign one is logged and skipped: that entity is rebuilt from the look-back)."""
        got = 0
        with self.lock:
            model = self.model
            if model is None:
                return 0
            for r in rows:
                if r.model_version != self.version or r.job != self.job:
                    continue
                try:
                    arrays = decode_state(r.state, r.arrays, r.checksum)
                    sc = _scorer_from_state(model, r.state, arrays)
                    if sc.entity != r.entity:
                        raise DataError(f"it holds entity {sc.entity!r}")
                except DataError as exc:
                    log.warning("job %s: checkpoint of entity %r not used (rebuilt from the "
                                "look-back instead): %s", self.job, r.entity, exc)
                    continue
                self._scorers[r.entity] = sc
                self.counts["resumed"] += 1
                got += 1
        return got


class RecentPoints:
    """The last ``size`` scored points of each entity of one job (thread-safe).

    Kept as one numpy array per column (``timestamp``: int64 ns UTC); a frame is built only
    when someone reads it (:meth:`recent`): appending to a pandas frame per entity cost about
    1.2 ms an entity on every tick.
    """

    #: Columns kept besides those starting with one of :attr:`PREFIXES`.
    COLUMNS = ("timestamp", "anomaly_score", "is_anomaly", "ready", "threshold")
    #: ``value_``: raw values; ``expected_``/``lower_``/``upper_``: the model's expected band
    #: (NaN before it has history); ``contrib_``, ``dev_``: the explanation.
    PREFIXES = ("value_", "contrib_", "dev_", "expected_", "lower_", "upper_")

    def __init__(self, size: int) -> None:
        self.size = size
        self._points: dict[str, dict[str, np.ndarray]] = {}
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._points)

    def clear(self) -> None:
        """Forget every entity's points (they came from a model that was replaced)."""
        with self._lock:
            self._points.clear()

    def add(self, scores: pd.DataFrame) -> None:
        """Append a tick's scores (a frame with ``entity`` and the kept columns); a point at
        or after one an entity holds replaces what follows it."""
        if not len(scores):
            return
        keep = [*self.COLUMNS, *[c for c in scores.columns if c.startswith(self.PREFIXES)]]
        codes, uniq = pd.factorize(scores["entity"].to_numpy())
        order = np.argsort(codes, kind="stable")  # each entity's rows, in their given order
        bounds = np.searchsorted(codes[order], np.arange(len(uniq) + 1))
        arrays = {c: scores[c].to_numpy() for c in keep}
        # ns whatever the frame's unit (pandas 3 makes microseconds of date_range and parsing)
        arrays["timestamp"] = pd.DatetimeIndex(scores["timestamp"]).as_unit("ns").asi8
        n = self.size
        with self._lock:
            for j, entity in enumerate(uniq):
                rows = order[bounds[j]:bounds[j + 1]]
                new = {c: a[rows] for c, a in arrays.items()}
                old = self._points.get(str(entity))
                if old is not None and old.keys() == new.keys() and len(old["timestamp"]):
                    before = old["timestamp"] < new["timestamp"].min()
                    new = {c: np.concatenate([old[c][before], new[c]]) for c in new}
                self._points[str(entity)] = {c: a[-n:] for c, a in new.items()}

    def entities(self) -> list[str]:
        with self._lock:
            return sorted(self._points)

    def recent(self, entity: str) -> pd.DataFrame | None:
        """The recent scored points of ``entity`` (values, scores, contributions)."""
        with self._lock:
            got = self._points.get(entity)
        if got is None:
            return None
        # the arrays are replaced, never changed in place: reading them unlocked is safe
        out = pd.DataFrame({c: a.copy() for c, a in got.items()})
        out["timestamp"] = pd.to_datetime(got["timestamp"], utc=True)
        return out

    def history_for(self, entity: str, before: pd.Timestamp, metrics: Iterable[str]
                    ) -> pd.DataFrame | None:
        """Recent raw values of ``entity`` strictly before ``before`` (wide: timestamp,
        entity and ``metrics``); None when there are none."""
        rec = self.recent(entity)
        if rec is None:
            return None
        rec = rec[rec["timestamp"] < before]
        if not len(rec):
            return None
        out = pd.DataFrame({"timestamp": rec["timestamp"].to_numpy(), "entity": entity})
        for m in metrics:
            out[m] = rec[f"value_{m}"].to_numpy()
        return out


def _score_frame(frame: pd.DataFrame, out: np.ndarray, metrics: list[str], score: np.ndarray,
                 flag: np.ndarray, contrib: np.ndarray, ready: np.ndarray, band: np.ndarray
                 ) -> pd.DataFrame:
    """The scored rows of ``frame`` (where ``out``) in the columns ``model.score`` returns:
    score, flag, top metric, per-metric shares, ready, and the band (expected, lower, upper:
    ``band[0..2]``, rows x metrics)."""
    has = contrib.sum(axis=1) > 0
    top = np.where(has, np.asarray(metrics, dtype=object)[contrib.argmax(axis=1)], "")
    fo = frame.loc[out]
    cols: dict[str, Any] = {
        "timestamp": fo["timestamp"].reset_index(drop=True),
        "entity": fo["entity"].reset_index(drop=True),
        "anomaly_score": score, "is_anomaly": flag,
        "top_metric": pd.array(top, dtype="str"),
    }
    for j, metric in enumerate(metrics):
        cols[f"contrib_{metric}"] = contrib[:, j]
    cols["ready"] = ready
    for j, metric in enumerate(metrics):
        cols[f"expected_{metric}"] = band[0, :, j]
        cols[f"lower_{metric}"] = band[1, :, j]
        cols[f"upper_{metric}"] = band[2, :, j]
    return pd.DataFrame(cols)
