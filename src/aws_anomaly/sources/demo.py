"""Demo replay: the demo generator served as a live source in accelerated real time.

A virtual clock maps wall time to data time: when the source is created, data time is
``start`` and ``days`` of history lie before it; afterwards data time runs ``speedup`` times
faster than the wall clock. :meth:`fetch` never returns a point after the virtual now, so a live
loop sees new points arrive as in production.

The replay never runs ahead of the wall clock: by default ``start`` is ``future_days`` before
the wall clock (floored to the step), the replay fast-forwards through those days and, once it
has caught up, follows the wall clock (data time is capped at it). A ``start`` given after the
wall clock (tests pin the data time and pass a fake clock) is a deliberate simulation and is not
capped. Generated data covers ``days + future_days``; past that the replay starts again from the
first generated point (timestamps keep increasing, so the seam shows as one level change).

For fault tests, :meth:`DemoSource.fail_next` makes the next *n* fetches raise
:class:`SourceError`, and :attr:`DemoSource.failing` makes every fetch raise until cleared.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from aws_anomaly.config import DEMO_METRICS, DemoSourceConfig
from aws_anomaly.data import Dataset
from aws_anomaly.data.dataset import LoadReport
from aws_anomaly.data.generator import generate_demo
from aws_anomaly.errors import SourceError
from aws_anomaly.sources.base import BaseSource, TimeLike, align_range, to_utc

__all__ = ["DemoSource"]


class DemoSource(BaseSource):
    """The demo generator replayed on a virtual clock.

    Parameters
    ----------
    cfg
        ``clusters``, ``seed``, ``speedup``, ``days`` (history before start), ``future_days``
        and ``step``.
    metrics
        Which demo metrics to serve (default: all three).
    start
        Data time at creation (default: ``cfg.start``, else ``future_days`` before the wall
        clock; floored to the step). Fixing it makes the timestamps, not only the values,
        reproducible.
    wall_clock
        Seconds since the epoch, :func:`time.time` by default; tests pass a fake clock.

    Examples
    --------
    >>> from aws_anomaly.config import DEMO_METRICS, DemoSourceConfig
    >>> wall = [0.0]
    >>> src = DemoSource(DemoSourceConfig(clusters=2, days=1, speedup=300),
    ...                  start="2026-03-01T00:00Z", wall_clock=lambda: wall[0])
    >>> src.now().isoformat()
    '2026-03-01T00:00:00+00:00'
    >>> ds = src.latest(pd.Timedelta("1h"))
    >>> len(ds.frame), ds.frame["timestamp"].max().isoformat()
    (24, '2026-03-01T00:00:00+00:00')
    >>> wall[0] = 60.0  # one wall minute = five data hours at speedup 300
    >>> src.now().isoformat()
    '2026-03-01T05:00:00+00:00'
    """

    def __init__(self, cfg: DemoSourceConfig, *, metrics: Sequence[str] | None = None,
                 start: TimeLike | None = None,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.name = f"demo ({cfg.clusters} clusters, seed {cfg.seed}, x{cfg.speedup:g})"
        self.step = pd.Timedelta(cfg.step)
        self.metrics = tuple(metrics) if metrics is not None else DEMO_METRICS
        unknown = [m for m in self.metrics if m not in DEMO_METRICS]
        if unknown:
            raise SourceError(f"{self.name}: unknown metric(s) {unknown}; the demo has "
                              f"{list(DEMO_METRICS)}")
        self._wall = wall_clock
        self._wall0 = wall_clock()
        wall_now = pd.Timestamp(self._wall0, unit="s", tz="UTC")
        if start is None:
            start = cfg.start
        now = (to_utc(start, where="start") if start is not None
               else wall_now - pd.Timedelta(days=cfg.future_days))
        self.start = now.floor(self.step)
        #: Whether data time is capped at the wall clock (see the module docstring).
        self.follows_wall = self.start <= wall_now
        self.origin = self.start - pd.Timedelta(days=cfg.days)  # data time of generated row 0
        # Generated on the replay's own time axis, so daily and weekly cycles fall on the
        # right hours and the events need no shifting.
        gen, events = generate_demo(clusters=cfg.clusters, days=cfg.days + cfg.future_days,
                                    step=self.step, seed=cfg.seed, start=self.origin.isoformat())
        if gen.step != self.step or gen.frame["timestamp"].min() != self.origin:
            raise SourceError(f"{self.name}: the generator's grid ({gen.step} from "
                              f"{gen.frame['timestamp'].min()}) is not the replay's ({self.step} "
                              f"from {self.origin}); use a step that divides one day")
        self._entities = gen.entities
        self._position = {e: i for i, e in enumerate(self._entities)}
        # One (entities, rows, metrics) array (and the labels as (entities, rows) codes), so a
        # fetch is a slice of it: a tick's fetch of one new step for 1,000 entities costs
        # milliseconds, not one frame per entity.
        f = gen.frame
        bounds = np.r_[np.flatnonzero(np.r_[True, f["entity"].to_numpy()[1:]
                                            != f["entity"].to_numpy()[:-1]]), len(f)]
        self._n = int(np.diff(bounds).min())
        rows = (bounds[:-1, None] + np.arange(self._n)).ravel()
        shape = (len(self._entities), self._n)
        self._values = f[list(self.metrics)].to_numpy(dtype=np.float64)[rows].reshape(
            (*shape, len(self.metrics)))
        self._labels: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        if gen.has_labels:
            codes, kinds = pd.factorize(f["anomaly_type"].to_numpy(dtype=object)[rows])
            self._labels = (f["is_anomaly"].to_numpy(dtype=np.int8)[rows].reshape(shape),
                            codes.reshape(shape), np.asarray(kinds, dtype=object))
        #: The injected anomalies of the first replay cycle (entity, start, end, type, ...).
        self.events = events
        self._lock = threading.Lock()
        self._fail_left = 0
        self._fail_message = ""
        self.failing = False
        self.fetches = 0

    # ------------------------------------------------------------------ clock and faults
    def now(self) -> pd.Timestamp:
        """Virtual data time: ``start + (wall - wall at creation) * speedup``, never past the
        wall clock when :attr:`follows_wall`."""
        wall = self._wall()
        virtual = self.start + pd.Timedelta(seconds=(wall - self._wall0) * self.cfg.speedup)
        if self.follows_wall:
            return min(virtual, pd.Timestamp(wall, unit="s", tz="UTC"))
        return virtual

    def fail_next(self, n: int = 1, message: str = "injected failure") -> None:
        """Make the next ``n`` calls to :meth:`fetch` raise :class:`SourceError`."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        with self._lock:
            self._fail_left = n
            self._fail_message = message

    # ------------------------------------------------------------------ data
    def fetch(self, start: TimeLike, end: TimeLike, *,
              entities: Sequence[str] | None = None) -> Dataset:
        """Generated points with ``start <= t < end`` and ``t <= now()``."""
        with self._lock:
            self.fetches += 1
            if self.failing:
                raise SourceError(f"{self.name}: failing (failure flag set)")
            if self._fail_left > 0:
                self._fail_left -= 1
                raise SourceError(f"{self.name}: {self._fail_message} "
                                  f"({self._fail_left} more to come)")
        s = max(to_utc(start, where="start"), self.origin)
        e = min(to_utc(end, where="end"), self.now() + pd.Timedelta(1, "ns"))
        rng = align_range(s, e, self.step) if s < e else None
        if rng is None:
            raise SourceError(f"{self.name}: no data in [{to_utc(start)}, {to_utc(end)}); "
                              f"history starts at {self.origin} and the virtual now is "
                              f"{self.now()}")
        first, last = rng
        k0 = (first - self.origin) // self.step
        k1 = (last - self.origin) // self.step
        k = np.arange(k0, k1 + 1)
        rows = k % self._n  # loop over the generated data
        chosen = self._entities if entities is None else [e for e in self._entities
                                                          if e in set(entities)]
        if not chosen:
            raise SourceError(f"{self.name}: none of {list(entities or [])} is a demo entity; "
                              f"entities are {list(self._entities)}")
        which = (slice(None) if len(chosen) == len(self._entities)
                 else np.asarray([self._position[e] for e in chosen]))
        r = len(rows)
        ns = (self.origin.as_unit("ns").value + k * self.step.value).astype(np.int64)
        frame: dict[str, object] = {
            "timestamp": pd.DatetimeIndex(np.tile(ns, len(chosen)),
                                          dtype="datetime64[ns, UTC]"),
            "entity": pd.array(np.repeat(np.asarray(chosen, dtype=object), r), dtype="str"),
        }
        vals = self._values[which][:, rows].reshape(-1, len(self.metrics))
        for j, m in enumerate(self.metrics):
            frame[m] = vals[:, j]
        if self._labels is not None:
            flags, codes, kinds = self._labels
            frame["is_anomaly"] = flags[which][:, rows].ravel()
            frame["anomaly_type"] = pd.array(kinds[codes[which][:, rows].ravel()], dtype="str")
        n = r * len(chosen)
        # Built in the contract's shape (on the grid, complete, sorted): checked, not reloaded.
        return Dataset.checked(pd.DataFrame(frame), metrics=list(self.metrics), step=self.step,
                               where=self.name, report=LoadReport(
                                   source=self.name, rows_in=n, rows_out=n, step=self.step))
