"""The ``Source`` protocol every metrics source follows, and the helpers they share.

A source turns a time range into a :class:`~aws_anomaly.data.Dataset`: one row per entity and
grid point, one column per configured metric. Ranges are half-open, ``start <= t < end``, and
snapped to the source's step grid (multiples of ``step`` since the Unix epoch), so two fetches
of adjacent ranges never overlap or leave a hole, whatever times the caller passes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from aws_anomaly.data import Dataset
from aws_anomaly.data.dataset import GapPolicy
from aws_anomaly.durations import parse_timestamp
from aws_anomaly.errors import SourceError

__all__ = [
    "BaseSource",
    "Source",
    "TimeLike",
    "align_range",
    "build_dataset",
    "to_utc",
]

log = logging.getLogger(__name__)

TimeLike = pd.Timestamp | datetime | str | float | int


@runtime_checkable
class Source(Protocol):
    """What the service, the CLI and the scheduler need from a metrics source.

    Attributes
    ----------
    name
        Short description for logs and errors (``"prometheus http://prom:9090"``).
    metrics
        The metric columns every returned Dataset has, in order.
    step
        The grid step of returned Datasets.
    """

    name: str
    metrics: tuple[str, ...]
    step: pd.Timedelta

    def fetch(self, start: TimeLike, end: TimeLike, *,
              entities: Sequence[str] | None = None) -> Dataset:
        """Points with ``start <= timestamp < end`` on the step grid, for every entity (or
        only ``entities``). Raises :class:`SourceError` when the source cannot be read."""
        ...

    def latest(self, lookback: timedelta | pd.Timedelta, *,
               entities: Sequence[str] | None = None) -> Dataset:
        """The last ``lookback`` of data up to the source's :meth:`now` (the live loop)."""
        ...

    def now(self) -> pd.Timestamp:
        """The source's current time: the wall clock, or the demo replay's virtual clock."""
        ...

    def close(self) -> None:
        """Release connections; the source cannot be used afterwards."""
        ...


def to_utc(value: TimeLike, *, where: str = "time") -> pd.Timestamp:
    """A tz-aware UTC timestamp from a Timestamp, datetime, ISO text or Unix seconds.

    Naive times are taken as UTC.

    >>> to_utc(0)
    Timestamp('1970-01-01 00:00:00+0000', tz='UTC')
    >>> to_utc("2026-03-01T10:05:00+01:00")
    Timestamp('2026-03-01 09:05:00+0000', tz='UTC')
    """
    return parse_timestamp(value, where=where, error=SourceError)


def align_range(start: TimeLike, end: TimeLike, step: pd.Timedelta
                ) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """First and last grid points in ``[start, end)``; ``None`` when there is none.

    The grid is every multiple of ``step`` since the Unix epoch.

    >>> s, e = align_range("2026-01-01T00:01Z", "2026-01-01T00:20Z", pd.Timedelta("5min"))
    >>> s.isoformat(), e.isoformat()
    ('2026-01-01T00:05:00+00:00', '2026-01-01T00:15:00+00:00')
    >>> align_range("2026-01-01T00:01Z", "2026-01-01T00:04Z", pd.Timedelta("5min")) is None
    True
    """
    s, e = to_utc(start, where="start"), to_utc(end, where="end")
    ns = step.value
    if ns <= 0:
        raise SourceError(f"step must be positive, got {step}")
    first = -(-s.value // ns) * ns  # ceil
    last = ((e.value - 1) // ns) * ns  # the last grid point strictly before end
    if last < first:
        return None
    return pd.Timestamp(first, tz="UTC"), pd.Timestamp(last, tz="UTC")


def build_dataset(
    series: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]],
    *,
    metrics: Sequence[str],
    step: pd.Timedelta,
    source: str,
    gap_policy: GapPolicy = "ffill",
    max_gap_steps: int | None = 36,
    entities: Sequence[str] | None = None,
    span: str = "this range",
) -> Dataset:
    """Assemble a Dataset from ``series[metric][entity] = (timestamps_ns, values)``.

    Missing points and NaN values become gaps handled by ``gap_policy``. An entity that lacks
    a metric altogether in this range (a series that vanished or has not appeared yet) cannot
    be scored, so it is left out with a warning in the log; the other entities are returned.
    ``span`` describes the range in messages.

    Raises
    ------
    SourceError
        When no entity has data for every metric.
    """
    wanted = set(entities) if entities is not None else None
    per_metric: dict[str, pd.Series] = {}
    have: dict[str, set[str]] = {}
    for m in metrics:
        parts = []
        for entity, (ts, vals) in series.get(m, {}).items():
            if wanted is not None and entity not in wanted:
                continue
            if len(ts) == 0:
                continue
            have.setdefault(entity, set()).add(m)
            idx = pd.MultiIndex.from_arrays(
                [np.full(len(ts), entity, dtype=object),
                 pd.to_datetime(np.asarray(ts, dtype=np.int64), unit="ns", utc=True)],
                names=["entity", "timestamp"])
            parts.append(pd.Series(np.asarray(vals, dtype=np.float64), index=idx))
        if parts:
            per_metric[m] = pd.concat(parts)
    complete = sorted(e for e, ms in have.items() if len(ms) == len(metrics))
    for e in sorted(set(have) - set(complete)):
        missing = [m for m in metrics if m not in have[e]]
        log.warning("%s: entity %r has no data for metric(s) %s in %s; left out",
                    source, e, missing, span)
    if not complete:
        asked = f" (entities asked: {sorted(wanted)})" if wanted else ""
        raise SourceError(f"{source}: no entity has data for all metrics {list(metrics)} in "
                          f"{span}{asked}")
    wide = pd.DataFrame({m: per_metric[m] for m in metrics})
    wide = wide[wide.index.get_level_values("entity").isin(complete)].reset_index()
    wide["entity"] = wide["entity"].astype(str)
    # All-NaN rows carry no information; the gap policy fills the grid point instead.
    wide = wide.dropna(subset=list(metrics), how="all")
    return Dataset.from_frame(wide, metrics=list(metrics), step=step, gap_policy=gap_policy,
                              max_gap_steps=max_gap_steps, resample="error", source=source)


class BaseSource:
    """Shared behaviour: :meth:`latest`, :meth:`now`, context manager. Subclasses set
    ``name``, ``metrics`` and ``step`` and implement :meth:`fetch` (and :meth:`close` when
    they hold connections)."""

    name: str
    metrics: tuple[str, ...]
    step: pd.Timedelta

    def fetch(self, start: TimeLike, end: TimeLike, *,
              entities: Sequence[str] | None = None) -> Dataset:
        raise NotImplementedError

    def now(self) -> pd.Timestamp:
        return pd.Timestamp.now(tz="UTC")

    def latest(self, lookback: timedelta | pd.Timedelta, *,
               entities: Sequence[str] | None = None) -> Dataset:
        """Grid points in ``(now - lookback, now]``: the window the live loop scores."""
        now = self.now()
        # +1 ns: the grid point exactly at `now` is already measured, so include it.
        end = now + pd.Timedelta(1, "ns")
        return self.fetch(end - pd.Timedelta(lookback), end, entities=entities)

    def close(self) -> None:
        return None

    def __enter__(self) -> BaseSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
