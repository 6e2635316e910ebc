"""``StreamScorer``: one entity's points scored as they arrive, with the numbers of a batch.

A scorer holds the streaming feature builder (:class:`~aws_anomaly.features.
StreamingFeatureBuilder`), the persistence EWMAs (:class:`~aws_anomaly.features.persist.
PersistState`), the band state and the last point; the model's part (columns, scaling,
detector, calibrator) is reached through :class:`~aws_anomaly.model.AnomalyModel`'s public
pieces only: ``spec``, ``metrics_``, ``step_``, ``band_``, :meth:`~aws_anomaly.model.
AnomalyModel.persist_terms`, :meth:`~aws_anomaly.model.AnomalyModel.transform_row` and
:meth:`~aws_anomaly.model.AnomalyModel.score_row`. This module does not import the
model (it sits one import layer below it); :meth:`AnomalyModel.stream` builds scorers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from aws_anomaly.data.dataset import FILL_STEPS, grid_gap_steps, stream_admit
from aws_anomaly.errors import ConfigError, DataError
from aws_anomaly.features import StreamingFeatureBuilder
from aws_anomaly.features.band import BandState
from aws_anomaly.features.persist import PersistState
from aws_anomaly.features.spec import MAX_ABS_VALUE

if TYPE_CHECKING:
    from aws_anomaly.model import AnomalyModel

__all__ = ["PointScore", "StreamScorer"]


@dataclass(frozen=True)
class PointScore:
    """The score of one live point (see :meth:`StreamScorer.update`)."""

    timestamp: pd.Timestamp
    entity: str
    anomaly_score: float
    is_anomaly: bool
    top_metric: str
    contributions: dict[str, float] = field(default_factory=dict)
    ready: bool = True
    #: Expected value and band per metric (NaN before the band has history; see
    #: :mod:`aws_anomaly.features.band`).
    expected: dict[str, float] = field(default_factory=dict)
    lower: dict[str, float] = field(default_factory=dict)
    upper: dict[str, float] = field(default_factory=dict)


class StreamScorer:
    """Scores one entity's points as they arrive; same numbers as :meth:`AnomalyModel.score`.

    Missing steps between two updates are filled by holding the last value (the batch
    ``Dataset`` default, ``gap_policy="ffill"``) up to :attr:`max_gap_steps` steps; longer
    gaps and points off the step grid raise :class:`DataError`. A point at or before the last
    one follows the ``timestamps`` / ``duplicates`` policies
    (:func:`aws_anomaly.data.dataset.stream_admit`): refused with a :class:`DataError` by
    default, or skipped (``update`` returns None).

    The whole state (feature windows, persistence EWMAs, band, last point) round-trips through
    :meth:`get_state` / :meth:`from_state` (JSON + numpy arrays, no pickle); :meth:`copy` gives
    an independent scorer sharing the (read-only) model. :meth:`advance` is the part of
    :meth:`update` before the detector: the job runner advances many entities' scorers and
    scores all their rows in one detector call (:mod:`aws_anomaly.live`).
    """

    max_gap_steps = FILL_STEPS

    def __init__(self, model: AnomalyModel, entity: str, *, timestamps: str = "error",
                 duplicates: str = "error") -> None:
        self.model = model
        self.entity = entity
        self.timestamps = timestamps
        self.duplicates = duplicates
        # only the families the model reads are computed (the other positions are NaN)
        self._builder = StreamingFeatureBuilder(model.spec, list(model.metrics_),
                                                model.read_features())
        self._persist = PersistState(model.persist_terms())
        self._last_ns: int | None = None
        self._last_values: np.ndarray | None = None
        self._m = len(model.metrics_)
        self._k = self._builder.n_features
        self._step_ns = int(model.step_.value)
        band = getattr(model, "band_", None)
        self._band = None if band is None else BandState(band)
        nan = np.full(self._m, np.nan)
        self._nan_band = (nan, nan, nan)
        self._expected: tuple[np.ndarray, np.ndarray, np.ndarray] = self._nan_band

    # ------------------------------------------------------------------ properties
    @property
    def width(self) -> int:
        """Length of the rows :meth:`advance` returns (spec features + persistence columns)."""
        return self._k + len(self._persist)

    @property
    def ready(self) -> bool:
        """True once every feature window is full (``spec.min_history`` points seen)."""
        return self._builder.ready

    @property
    def n_seen(self) -> int:
        """Points fed so far (gap-filled steps included)."""
        return self._builder.n_seen

    @property
    def last_ns(self) -> int | None:
        """Time of the last point fed, in ns since the epoch (UTC); None before the first."""
        return self._last_ns

    @property
    def _last_ts(self) -> pd.Timestamp | None:
        return None if self._last_ns is None else pd.Timestamp(self._last_ns, tz="UTC")

    def band(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Expected value, lower and upper bound per metric at the last point fed (from the
        points before it; NaN without a band or before its window has history). Read-only."""
        return self._expected

    def recent_values(self, n: int) -> np.ndarray:
        """The last ``n`` (at most) points fed, ``(rows, metrics)``, oldest first (a copy)."""
        b = self._builder
        take = min(n, b._nh)
        return b._hist[b._nh - take: b._nh].copy()

    # ------------------------------------------------------------------ feeding
    def prime(self, timestamps: Sequence[pd.Timestamp] | pd.DatetimeIndex,
              values: np.ndarray) -> None:
        """Feed history (not scored)."""
        idx = pd.DatetimeIndex(timestamps)
        if idx.tz is None:
            idx = idx.tz_localize("UTC")
        vals = np.asarray(values, dtype=np.float64)
        if len(vals) != len(idx):
            raise DataError(f"entity '{self.entity}': {len(idx)} timestamps but {len(vals)} "
                            "rows of values")
        for ns, v in zip(idx.asi8.tolist(), vals, strict=True):
            self.advance(ns, v)

    def _admit(self, ts: pd.Timestamp) -> bool:
        return stream_admit(self._last_ts, ts, timestamps=self.timestamps,  # type: ignore[arg-type]
                            duplicates=self.duplicates,  # type: ignore[arg-type]
                            where=f"entity '{self.entity}'")

    def gap_steps(self, ns: int) -> int:
        """Missing steps between the last point and a point at ``ns`` (0: it continues);
        -1 when it is not after the last point or off its grid."""
        return grid_gap_steps(self._last_ns, ns, self._step_ns)

    def advance(self, ns: int, values: np.ndarray) -> np.ndarray:
        """Feed one point (time in ns since the epoch, UTC; ``values`` (metrics,) float64)
        and return its feature row (``width`` values, before the model's transform; the
        spec's features the model does not read are NaN: they are not computed).

        Missing steps before it are filled with the last values; afterwards :meth:`band` is
        the band of this point. Raises :class:`DataError` (state unchanged) for a point with
        the wrong number of values, non-finite values, at or before the last point, off the
        grid, or after a gap longer than :attr:`max_gap_steps`.
        """
        if values.shape != (self._m,):
            raise DataError(f"entity '{self.entity}': expected {self._m} values "
                            f"{list(self.model.metrics_)}, got shape {values.shape}")
        # plain floats: cheaper than numpy reductions for a handful of values (NaN fails)
        if not all(-MAX_ABS_VALUE <= v <= MAX_ABS_VALUE for v in values.tolist()):
            raise DataError(f"entity '{self.entity}' at {pd.Timestamp(ns, tz='UTC')}: values "
                            f"must be finite (|value| <= {MAX_ABS_VALUE:g}), got "
                            f"{values.tolist()}")
        last = self._last_ns
        if last is not None:
            delta = ns - last
            if delta <= 0:
                raise DataError(f"entity '{self.entity}': timestamp "
                                f"{pd.Timestamp(ns, tz='UTC')} is not after the last one "
                                f"{pd.Timestamp(last, tz='UTC')}")
            if delta % self._step_ns:
                raise DataError(f"entity '{self.entity}': timestamp "
                                f"{pd.Timestamp(ns, tz='UTC')} is off the {self.model.step_} "
                                f"grid that started at {pd.Timestamp(last, tz='UTC')}")
            k = delta // self._step_ns
            if k - 1 > self.max_gap_steps:
                raise DataError(f"entity '{self.entity}': gap of {k - 1} missing steps before "
                                f"{pd.Timestamp(ns, tz='UTC')}, longer than "
                                f"{self.max_gap_steps}; start a new stream")
            held = self._last_values
            for i in range(1, k):
                self._advance(last + i * self._step_ns, held)  # type: ignore[arg-type]
        row = self._advance(ns, values)
        self._last_ns, self._last_values = ns, values
        return row

    def _advance(self, ns: int, values: np.ndarray) -> np.ndarray:
        """One step of the spec's features, the persistence EWMAs (see _with_persist) and the
        band (the band of this row is kept before the row updates it)."""
        if self._band is not None:
            self._expected = self._band.expected()
            self._band.update(values)
        persist = self._persist
        if not len(persist):
            return self._builder.push(ns, values)
        out = np.empty(self._k + len(persist))
        row = self._builder.push(ns, values, out[: self._k])
        persist.step(row, out[self._k:])
        return out

    # ------------------------------------------------------------------ scoring
    def update(self, timestamp: Any, values: Any) -> PointScore | None:
        """Add one point (``values`` in the model's metric order) and score it; None when the
        stream's policies skip it (a late or repeated point, see the class docstring)."""
        ts = timestamp if isinstance(timestamp, pd.Timestamp) else pd.Timestamp(timestamp)
        if (self.timestamps != "error" or self.duplicates != "error") and not self._admit(ts):
            return None
        row = self.advance(int(ts.value), np.asarray(values, dtype=np.float64).reshape(-1))
        if ts.tzinfo is None:
            ts = ts.tz_localize("UTC")
        model = self.model
        names = model.metrics_
        y, lo, hi = self._expected
        band = (dict(zip(names, y.tolist(), strict=True)),
                dict(zip(names, lo.tolist(), strict=True)),
                dict(zip(names, hi.tolist(), strict=True)))
        if not self._builder.ready:
            return PointScore(ts, self.entity, 0.0, False, "", dict.fromkeys(names, 0.0), False,
                              *band)
        score, flag, c = model.score_row(model.transform_row(row), self.entity)
        if c is None:  # not flagged: no explanation
            return PointScore(ts, self.entity, score, flag, "", dict.fromkeys(names, 0.0),
                              True, *band)
        cl = c.tolist()  # (a positive sum has no NaN: the first largest is c.argmax())
        top = names[cl.index(max(cl))] if sum(cl) > 0 else ""
        return PointScore(ts, self.entity, score, flag, top,
                          dict(zip(names, cl, strict=True)), True, *band)

    # ------------------------------------------------------------------ state
    def copy(self) -> StreamScorer:
        """An independent scorer in the same state, sharing the (read-only) model."""
        new = object.__new__(StreamScorer)
        new.__dict__.update(self.__dict__)
        new._builder = self._builder.copy()
        new._band = None if self._band is None else self._band.copy()
        new._persist = self._persist.copy()
        # _last_values and _expected are replaced, never changed in place.
        return new

    def _layout(self) -> dict[str, Any]:
        """What the state depends on besides the spec, metrics and band: the step and the
        persistence plan (the detector and calibrator do not matter)."""
        p = self._persist
        return {"step_ns": self._step_ns, "persist": [
            [int(i), float(a), float(b)] for i, a, b in zip(p.src, p.a, p.b, strict=True)]}

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(json_dict, arrays)`` from which :meth:`from_state` rebuilds this scorer."""
        bjs, barr = self._builder.get_state()
        arrays = {f"features.{k}": v for k, v in barr.items()}
        state: dict[str, Any] = {"version": _SCORER_STATE_VERSION, "entity": self.entity,
                                 "features": bjs, "last_ns": self._last_ns,
                                 "layout": self._layout(), "persist": self._persist.s is not None,
                                 "band": None}
        if self._last_values is not None:
            arrays["last_values"] = np.asarray(self._last_values, dtype=np.float64).copy()
        if self._persist.s is not None and self._persist.lo is not None:
            arrays["persist_s"] = self._persist.s.copy()
            arrays["persist_l"] = self._persist.lo.copy()
        if self._band is not None:
            state["band"], band_arrays_ = self._band.get_state()
            arrays.update({f"band.{k}": v for k, v in band_arrays_.items()})
            arrays["expected"] = np.vstack(self._expected)
        return state, arrays

    @classmethod
    def from_state(cls, model: AnomalyModel, state: Mapping[str, Any],
                   arrays: Mapping[str, np.ndarray]) -> StreamScorer:
        """Rebuild a scorer of ``model`` saved with :meth:`get_state`.

        Raises
        ------
        DataError
            The state is of another version, feature spec, metric list or band, or its
            arrays do not fit together.
        """
        if not isinstance(state, Mapping) or state.get("version") != _SCORER_STATE_VERSION:
            got = state.get("version") if isinstance(state, Mapping) else type(state).__name__
            raise DataError(f"stream scorer state version {got!r} is not supported (expected "
                            f"{_SCORER_STATE_VERSION})")
        try:
            scorer = cls(model, str(state["entity"]))
            fs = state["features"]
            if not isinstance(fs, Mapping) or fs.get("spec") != model.spec.to_dict() \
                    or list(fs.get("metrics", ())) != list(model.metrics_):
                raise DataError("its feature spec or metrics are not the model's")
            if state["layout"] != scorer._layout():
                raise DataError("its step or persistence columns are not the model's")
            scorer._builder = StreamingFeatureBuilder.from_state(
                fs, {k[len("features."):]: v for k, v in arrays.items()
                     if k.startswith("features.")}, scorer._builder.columns)
            last = state["last_ns"]
            if (last is None) != ("last_values" not in arrays) or \
                    (last is not None and not isinstance(last, int)):
                raise DataError("last_ns and last_values disagree")
            if last is not None:
                lv = np.asarray(arrays["last_values"], dtype=np.float64)
                if lv.shape != (scorer._m,) or not np.isfinite(lv).all():
                    raise DataError(f"last_values must be {scorer._m} finite numbers")
                scorer._last_ns, scorer._last_values = int(last), lv
            if state["persist"]:
                ps = np.asarray(arrays["persist_s"], dtype=np.float64)
                pl = np.asarray(arrays["persist_l"], dtype=np.float64)
                if ps.shape != scorer._persist.src.shape or pl.shape != ps.shape:
                    raise DataError("persistence EWMAs do not fit the model")
                scorer._persist.s, scorer._persist.lo = ps, pl
            if (state["band"] is None) != (scorer._band is None):
                raise DataError("the band does not fit the model")
            if scorer._band is not None:
                scorer._band = BandState.from_state(
                    scorer._band.band, state["band"],
                    {k[len("band."):]: v for k, v in arrays.items() if k.startswith("band.")})
                exp = np.asarray(arrays["expected"], dtype=np.float64)
                if exp.shape != (3, scorer._m):
                    raise DataError("the expected band does not fit the model")
                scorer._expected = (exp[0].copy(), exp[1].copy(), exp[2].copy())
        except KeyError as exc:
            raise DataError(f"stream scorer state: missing {exc}") from None
        except (TypeError, ValueError) as exc:
            raise DataError(f"stream scorer state: {exc}") from None
        except DataError as exc:
            raise DataError(f"stream scorer state: {exc}") from None
        except ConfigError as exc:
            raise DataError(f"stream scorer state: {exc}") from None
        return scorer


_SCORER_STATE_VERSION = 1
