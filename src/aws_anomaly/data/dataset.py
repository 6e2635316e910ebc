"""The ``Dataset`` contract: entities x regular UTC time index x metric columns.

Everything downstream (features, models, sources, the service) takes a :class:`Dataset`, so the
checks live here, once. A valid dataset has:

* a ``timestamp`` column of tz-aware UTC datetimes (``datetime64[ns, UTC]``) on a regular grid
  of ``step`` per entity, strictly increasing, without duplicates;
* an ``entity`` column (string; ``"default"`` when the input had none);
* one float64 column per metric, finite everywhere (gaps are filled by the gap policy, which is
  causal by default so batch and streaming see the same values);
* optionally ``is_anomaly`` (int8 0/1) and ``anomaly_type`` (str, "" for normal) labels.

Rows are sorted by (entity, timestamp).

Real exports are not that clean, so :meth:`Dataset.from_frame` applies stated policies, each
counted in :attr:`Dataset.report` (a :class:`LoadReport`) so nothing changes silently:

* **time order** (``timestamps``): the rows of one entity must come in time order. A row
  earlier than the one before it is an error by default (``"error"``: a series that goes back
  in time usually means two exports were concatenated by mistake); ``"sort"`` sorts each
  entity's rows by time, ``"clamp"`` gives a late row the latest time seen so far (it then
  counts as a duplicate of that time), ``"drop"`` drops it. Entities may be interleaved: the
  result is ordered by entity name, then time.
* **duplicates** (``duplicates``): rows of one entity sharing a timestamp are merged:
  ``"first"`` (default) keeps the first row's values (per metric, the first value present),
  ``"last"`` the last, ``"mean"`` averages them; ``"error"`` refuses them.
* **irregular steps** (``step``, ``resample``): the step is the most common difference between
  consecutive rows unless given (when no difference is shared by half of them, as with
  timestamps that carry milliseconds of scrape jitter, the median difference to the second).
  ``"auto"`` (default) moves a row within a tenth of a step of a grid point to that point (a
  scrape that arrived a little early or late: :data:`JITTER_FRACTION`), aggregates each grid
  bucket with the mean when at most 1 % of an entity's rows are further off the grid (a
  daylight-saving repeat, a stray row), and refuses the data when more are; ``"mean"`` or
  ``"last"`` aggregate each grid bucket ``[t, t + step)`` however many rows are off it;
  ``"error"`` refuses any row off the grid.
* **gaps** (``gap_policy``, ``max_gap_steps``): missing grid points and NaN are filled.

Errors name the source, the entity, the row and the times involved, and the option that would
accept the data, spelled as on the command line (``--resample mean|last``), with the name of the
same key in a job's file source and of :func:`aws_anomaly.data.io.read_dataset`'s argument.
Rows are named by ``row_names`` (the readers pass CSV line numbers as an editor shows them,
header = line 1); a plain DataFrame's rows are named by their 0-based position.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

# format_timestamp and parse_timestamps live in aws_anomaly.durations (the one parser of
# durations and timestamps); re-exported here, where they always were.
from aws_anomaly.durations import (
    format_timestamp,
    parse_timedelta,
    parse_timestamp,
    parse_timestamps,
)
from aws_anomaly.errors import ConfigError, DataError

__all__ = [
    "AUTO_RESAMPLE_MAX_PERCENT",
    "CONSTANT_POLICIES",
    "DEFAULT_ENTITY",
    "DUPLICATE_POLICIES",
    "FILL_STEPS",
    "JITTER_FRACTION",
    "LABEL_COLUMNS",
    "TIMESTAMP_POLICIES",
    "ConstantPolicy",
    "Dataset",
    "DuplicatePolicy",
    "GapPolicy",
    "LoadReport",
    "ResamplePolicy",
    "TimestampPolicy",
    "constant_summary",
    "format_step",
    "format_timestamp",
    "grid_gap_steps",
    "jitter_offsets",
    "parse_timestamps",
    "stream_admit",
]

GapPolicy = Literal["ffill", "interpolate", "error"]
ResamplePolicy = Literal["auto", "error", "mean", "last"]
TimestampPolicy = Literal["error", "sort", "clamp", "drop"]
DuplicatePolicy = Literal["first", "last", "mean", "error"]
ConstantPolicy = Literal["keep", "drop", "error"]
RowNames = Callable[[int], str]
LABEL_COLUMNS = ("is_anomaly", "anomaly_type")
DEFAULT_ENTITY = "default"
_RESERVED = {"timestamp", "entity", *LABEL_COLUMNS}
_GAP_POLICIES = ("ffill", "interpolate", "error")
_RESAMPLE_POLICIES = ("auto", "error", "mean", "last")
#: ``resample="auto"`` aggregates an entity's rows (with the mean) only when at most this
#: percentage of them is off the grid; more is refused as with ``"error"``.
AUTO_RESAMPLE_MAX_PERCENT = 1
#: ``resample="auto"`` takes a row within this fraction of the step of a grid point for that
#: point's sample, early or late (scrape jitter: a node exporter's samples a few seconds off
#: its 30 s grid), and moves it there: the nearest grid point, not the bucket it falls in (an
#: early row would land in the step before and leave its own step empty).
JITTER_FRACTION = 0.1
TIMESTAMP_POLICIES: tuple[str, ...] = ("error", "sort", "clamp", "drop")
DUPLICATE_POLICIES: tuple[str, ...] = ("first", "last", "mean", "error")
CONSTANT_POLICIES: tuple[str, ...] = ("keep", "drop", "error")
#: Missing grid steps filled by holding the last values (``max_gap_steps``' default); the
#: live streams fill the same, so live scores stay those of one pass over the filled series.
FILL_STEPS = 36


_fmt = format_timestamp


def format_step(step: pd.Timedelta) -> str:
    """A duration in the largest whole unit, as the options take it: ``5min``, ``1h``, ``30s``.

    >>> [format_step(pd.Timedelta(x)) for x in ("5min", "1h", "90s", "1D", "250ms")]
    ['5min', '1h', '90s', '1d', '250ms']
    """
    ns = int(pd.Timedelta(step).value)
    for unit, size in (("d", 86_400 * 10**9), ("h", 3_600 * 10**9), ("min", 60 * 10**9),
                       ("s", 10**9), ("ms", 10**6), ("us", 10**3)):
        if ns and ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns}ns"


def _hint(key: str, values: str) -> str:
    """How to set a loading option: the CLI flag, and the key of a job's source (every source
    has the gap keys; the others belong to the file source)."""
    where = "source" if key in ("gap_policy", "max_gap_steps") else "file source"
    return f"--{key.replace('_', '-')} {values} (`{key}` in a job's {where})"


def _show(v: object) -> str:
    """repr of a cell for messages, without numpy's ``np.int64(...)`` wrapping."""
    return repr(v.item() if isinstance(v, np.generic) else v)


def _position(i: int) -> str:
    return f"row {i}"


def _as_step(step: str | pd.Timedelta, source: str) -> pd.Timedelta:
    return parse_timedelta(step, where=f"{source}: step")


def _check_choice(name: str, value: object, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {list(allowed)}, got {value!r}")


@dataclass(frozen=True)
class LoadReport:
    """What loading did to the rows, so that no change is silent.

    Every count is of rows (or of values for ``filled_values``); the policies are the ones in
    force. ``lines()`` says it in words, one line per thing that happened.
    """

    source: str = "input"
    rows_in: int = 0
    rows_out: int = 0
    timestamps: str = "error"
    #: rows earlier than an earlier row of their series (sorted, clamped or dropped)
    behind: int = 0
    duplicates: str = "first"
    #: rows merged into an earlier row of the same series with the same timestamp
    duplicate_rows: int = 0
    step: pd.Timedelta | None = None
    step_inferred: bool = False
    #: share of consecutive differences (within an entity) equal to the step (with
    #: ``step_jitter``: within two tenths of it)
    step_share: float = 1.0
    #: the inferred step is the median difference to the second (no difference was shared
    #: by half the rows: their times jitter)
    step_jitter: bool = False
    resample: str = "auto"
    #: rows within a tenth of a step of a grid point moved to it (``resample="auto"``)
    snapped: int = 0
    #: rows off the grid, aggregated into the grid point of their bucket
    moved: int = 0
    #: rows merged with another row of the same bucket by the resampling
    merged: int = 0
    gap_policy: str = "ffill"
    #: grid points without any row, filled by the gap policy
    filled_points: int = 0
    #: missing (NaN) values in rows that exist, filled by the gap policy
    filled_values: int = 0
    #: leading points dropped because some metric had no value yet
    trimmed: int = 0

    @property
    def changed(self) -> bool:
        """Whether loading changed anything beyond parsing."""
        return bool(self.behind or self.duplicate_rows or self.snapped or self.moved
                    or self.merged or self.filled_points or self.filled_values or self.trimmed)

    def lines(self) -> list[str]:
        """One sentence per thing that happened (the step always).

        >>> LoadReport(rows_in=10, rows_out=9, duplicate_rows=1, step=pd.Timedelta("5min"),
        ...            step_inferred=True, step_share=0.9).lines()  # doctest: +NORMALIZE_WHITESPACE
        ['step 5min (the most common difference between rows: 90.0% of them)',
         'duplicates: 1 row shared a timestamp with an earlier row of its series; kept the first
          (--duplicates first)']
        """
        out = []
        if self.step is not None:
            if not self.step_inferred:
                how = "given"
            elif self.step_jitter:
                how = (f"the median difference between rows, to the second: their times "
                       f"jitter; {self.step_share:.1%} of the differences are within "
                       f"{2 * JITTER_FRACTION:.0%} of it")
            else:
                how = f"the most common difference between rows: {self.step_share:.1%} of them"
            out.append(f"step {format_step(self.step)} ({how})")
        if self.behind:
            what = {"sort": "sorted into time order", "clamp": "given the latest time before "
                    "them (then merged as duplicates)", "drop": "dropped"}[self.timestamps]
            out.append(f"time order: {_n(self.behind)} earlier than a row before "
                       f"{_them(self.behind)}; {what} (--timestamps {self.timestamps})")
        if self.duplicate_rows:
            what = {"first": "kept the first", "last": "kept the last",
                    "mean": "averaged them"}[self.duplicates]
            out.append(f"duplicates: {_n(self.duplicate_rows)} shared a timestamp with an "
                       f"earlier row of {'its' if self.duplicate_rows == 1 else 'their'} "
                       f"series; {what} (--duplicates {self.duplicates})")
        if self.snapped:
            step = format_step(self.step) if self.step is not None else "step"
            out.append(f"jitter: {_n(self.snapped)} within {JITTER_FRACTION:.0%} of a step of "
                       f"a {step} grid point moved to it (--resample auto)")
        if self.moved or self.merged:
            step = format_step(self.step) if self.step is not None else "step"
            parts = []
            if self.moved:
                parts.append(f"{_n(self.moved)} off the {step} grid moved to "
                             f"{'its' if self.moved == 1 else 'their'} grid point")
            if self.merged:
                parts.append(f"{_n(self.merged)} merged with another row of the same step")
            if self.resample == "auto":
                out.append(f"resample: auto chose mean of each step ({_n(self.moved)} moved): "
                           f"{'; '.join(parts)} (--resample auto: at most "
                           f"{AUTO_RESAMPLE_MAX_PERCENT}% of an entity's rows off the grid)")
            else:
                out.append(f"resample: {'; '.join(parts)} ({self.resample} of each step, "
                           f"--resample {self.resample})")
        if self.filled_points or self.filled_values:
            out.append(f"gaps: {self.filled_points} missing grid point(s) and "
                       f"{self.filled_values} missing value(s) filled ({self.gap_policy}, "
                       "--gap-policy)")
        if self.trimmed:
            out.append(f"start: the first {self.trimmed} point(s) of an entity dropped: a metric "
                       "had no value yet")
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (the step as text)."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["step"] = None if self.step is None else format_step(self.step)
        return d


def _n(k: int) -> str:
    return f"{k} row" if k == 1 else f"{k} rows"


def _them(k: int) -> str:
    return "it" if k == 1 else "them"


def grid_gap_steps(last_ns: int | None, ns: int, step_ns: int) -> int:
    """Missing steps between a stream's last point (``last_ns``, None before the first) and
    a point at ``ns`` on its grid of ``step_ns`` (all in ns): 0 when it continues, -1 when
    it is not after the last point or off the grid.

    >>> grid_gap_steps(0, 300, 300), grid_gap_steps(0, 1200, 300), grid_gap_steps(0, 450, 300)
    (0, 3, -1)
    """
    if last_ns is None:
        return 0
    delta = int(ns) - last_ns
    if delta <= 0 or delta % step_ns:
        return -1
    return delta // step_ns - 1


def stream_admit(last: pd.Timestamp | None, ts: pd.Timestamp, *,
                 timestamps: TimestampPolicy = "error", duplicates: DuplicatePolicy = "first",
                 where: str = "stream") -> bool:
    """The time-order and duplicate policies for live points, one point at a time.

    A stream cannot reorder or revise points it has already scored, so for a point at ``ts``
    after the last accepted point ``last``: a later point is admitted (``True``); a point at
    the same time is skipped (``False``: the first one stands, whatever ``duplicates`` says,
    except ``"error"``, which raises); an earlier point raises with ``timestamps="error"``
    and is skipped otherwise (``sort``, ``clamp`` and ``drop`` all come to dropping it live).

    >>> t = pd.Timestamp("2026-01-01T00:05Z")
    >>> stream_admit(t, t + pd.Timedelta("5min")), stream_admit(t, t)
    (True, False)
    >>> stream_admit(t, t - pd.Timedelta("5min"), timestamps="drop")
    False
    """
    _check_choice("timestamps", timestamps, TIMESTAMP_POLICIES)
    _check_choice("duplicates", duplicates, DUPLICATE_POLICIES)
    if last is None:
        return True
    last, ts = _utc(last, where), _utc(ts, where)
    if ts > last:
        return True
    if ts == last:
        if duplicates == "error":
            raise DataError(f"{where}: duplicate timestamp {_fmt(ts)}: a point at that time was "
                            f"already received; {_hint('duplicates', 'first')} skips it")
        return False
    if timestamps == "error":
        raise DataError(f"{where}: timestamps are not increasing: {_fmt(ts)} comes after "
                        f"{_fmt(last)}; {_hint('timestamps', 'drop')} skips late points")
    return False


def _utc(t: Any, where: str = "stream") -> pd.Timestamp:
    return parse_timestamp(t, where=where, error=DataError)


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) of each run of True in a boolean array."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return edges[0::2], edges[1::2]


def _reduce(starts: np.ndarray, vals: np.ndarray, lab: np.ndarray | None,
            typ: np.ndarray | None, how: str
            ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Reduce consecutive groups of rows (group k = ``starts[k]:starts[k + 1]``) to one row.

    Metrics: first, last or mean of the values present in each group (NaN when none). Labels:
    anomalous when any row is, with the last non-empty type.
    """
    n = len(vals)
    ok = ~np.isnan(vals)
    if how == "mean":
        sums = np.add.reduceat(np.where(ok, vals, 0.0), starts, axis=0)
        counts = np.add.reduceat(ok.astype(np.int64), starts, axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    else:
        idx = np.arange(n)[:, None]
        cols = np.arange(vals.shape[1])
        if how == "last":
            pick = np.maximum.reduceat(np.where(ok, idx, -1), starts, axis=0)
            present = pick >= 0
        else:
            pick = np.minimum.reduceat(np.where(ok, idx, n), starts, axis=0)
            present = pick < n
        out = np.where(present, vals[np.clip(pick, 0, n - 1), cols], np.nan)
    if lab is not None and typ is not None:
        lab = np.maximum.reduceat(lab, starts)
        typed = np.where(typ != "", np.arange(n), -1)
        last_typed = np.maximum.reduceat(typed, starts)
        typ = np.where(last_typed >= 0, typ[np.maximum(last_typed, 0)], "")
        typ = np.where(lab == 1, np.where(typ == "", "unknown", typ), "").astype(object)
    return out, lab, typ


def jitter_offsets(t: np.ndarray, base: int, step_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """``(d, near)`` of times ``t`` (ns): each one's signed offset from its nearest point of the
    grid of ``step_ns`` through ``base``, and whether that is within :data:`JITTER_FRACTION`
    of a step (the point's sample, early or late: ``t - d`` is its grid time). The one rule of
    file loading and of the API's points.

    >>> d, near = jitter_offsets(np.array([3, 58, 25]) * 10**9, 0, 60 * 10**9)
    >>> (d // 10**9).tolist(), near.tolist()
    ([3, -2, 25], [True, True, False])
    """
    half = step_ns // 2
    d = (t - base + half) % step_ns - half
    return d, np.abs(d) <= JITTER_FRACTION * step_ns


def _jitter_step(within: np.ndarray) -> tuple[pd.Timedelta, float] | None:
    """The step of jittered timestamps (consecutive differences ``within`` an entity, ns):
    the median difference, to the second from one second up, with the share of differences
    within two tenths of it (two jittered times); None when that is under half of them.

    >>> d = np.array([59_812, 60_204, 59_990, 60_051, 119_870]) * 10**6  # ms jitter, one gap
    >>> _jitter_step(d)
    (Timedelta('0 days 00:01:00'), 0.8)
    """
    med = float(np.median(within))
    step = round(med / 10**9) * 10**9 if med >= 10**9 else round(med)
    if step <= 0:
        return None
    share = float(np.mean(np.abs(within - step) <= 2 * JITTER_FRACTION * step))
    return (pd.Timedelta(step, unit="ns"), share) if share >= 0.5 else None


def _aggregate(t: np.ndarray, vals: np.ndarray, lab: np.ndarray | None, typ: np.ndarray | None,
               step_ns: int, how: str, phase: int = 0
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Aggregate time-ordered rows into buckets ``[b, b + step)`` with ``b = phase`` modulo the
    step (``phase`` 0: multiples of the step since the Unix epoch)."""
    bucket = np.floor_divide(t - phase, step_ns) * step_ns + phase
    starts = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    out, lab, typ = _reduce(starts, vals, lab, typ, how)
    return bucket[starts], out, lab, typ


def _grid_phase(t: np.ndarray, step_ns: int) -> int:
    """The offset (modulo the step) that more than half the timestamps share; else, where
    the offsets gather around one value (jittered times: their circular mean has length
    >= 0.9, a spread of about a tenth of a step), that value rounded to the largest of 1 h,
    1 min, 10 s and 1 s that divides the step and is at most :data:`JITTER_FRACTION` of it
    (symmetric jitter around whole minutes gives whole minutes); else 0.

    >>> step = 60 * 10**9
    >>> _grid_phase(np.array([0, 1, 2]) * step + 5 * 10**9, step) // 10**9
    5
    >>> jitter = np.array([-400, 250, 0, 120, -90, 310]) * 10**6  # ms around :00
    >>> _grid_phase(np.arange(6) * step + jitter, step)
    0
    >>> late = np.array([29, 31, 30, 32, 28, 30]) * 10**9  # about 30 s late: a 30 s phase
    >>> _grid_phase(np.arange(6) * 5 * step + late, 5 * step) // 10**9
    30
    """
    if len(t) == 0:
        return 0
    off, counts = np.unique(np.mod(t, step_ns), return_counts=True)
    k = int(np.argmax(counts))
    if 2 * int(counts[k]) > len(t):
        return int(off[k])
    angle = np.mod(t, step_ns).astype(np.float64) * (2.0 * np.pi / step_ns)
    mean = complex(np.cos(angle).mean(), np.sin(angle).mean())
    if abs(mean) < 0.9:
        return 0
    phase = round(np.angle(mean) / (2.0 * np.pi) * step_ns) % step_ns
    for unit in (3600 * 10**9, 60 * 10**9, 10 * 10**9, 10**9):
        if unit <= JITTER_FRACTION * step_ns and step_ns % unit == 0:
            return round(phase / unit) * unit % step_ns
    return phase


def _order_rows(t: np.ndarray, groups: np.ndarray, vals: np.ndarray, lab: np.ndarray | None,
                typ: np.ndarray | None, rows: np.ndarray, *, timestamps: str, duplicates: str,
                source: str, series: Callable[[int], str], names: RowNames
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None,
                           np.ndarray | None, np.ndarray, int, int]:
    """Apply the time-order and duplicate policies to rows grouped by series.

    ``groups`` (series codes) must be non-decreasing with each series' rows in input order;
    ``rows`` are the input positions (for messages), ``series(code)`` names a series.
    Returns the arrays with rows strictly increasing in time within each series, and the
    counts of rows that were behind and of duplicate rows merged.
    """
    n = len(t)
    behind_count = dup_count = 0
    if n < 2:
        return t, groups, vals, lab, typ, rows, 0, 0
    same = groups[1:] == groups[:-1]
    diff = np.diff(t)
    back = same & (diff < 0)
    if back.any():
        k = int(np.flatnonzero(back)[0]) + 1
        if timestamps == "error":
            raise DataError(
                f"{source}: {series(int(groups[k]))}: timestamps are not increasing: "
                f"{_fmt(_ts(t[k]))} "
                f"({names(int(rows[k]))}) comes after {_fmt(_ts(t[k - 1]))} "
                f"({names(int(rows[k - 1]))}); sort the input by time, or accept it with "
                f"{_hint('timestamps', 'sort|clamp|drop')}"
            )
        cummax = pd.Series(t).groupby(groups, sort=False).cummax().to_numpy()
        behind = np.zeros(n, dtype=bool)
        behind[1:] = same & (t[1:] < cummax[:-1])
        behind_count = int(behind.sum())
        if timestamps == "sort":
            order = np.lexsort((t, groups))  # stable: equal times keep their input order
        elif timestamps == "clamp":
            order = None
            t = t.copy()
            t[1:] = np.where(behind[1:], cummax[:-1], t[1:])
        else:  # drop
            order = np.flatnonzero(~behind)
        if order is not None:
            t, groups, vals, rows = t[order], groups[order], vals[order], rows[order]
            lab = None if lab is None else lab[order]
            typ = None if typ is None else typ[order]
        same = groups[1:] == groups[:-1]
        diff = np.diff(t)
    dup = same & (diff == 0)
    if dup.any():
        if duplicates == "error":
            k = int(np.flatnonzero(dup)[0]) + 1
            raise DataError(
                f"{source}: {series(int(groups[k]))}: duplicate timestamp "
                f"{_fmt(_ts(t[k]))} "
                f"({names(int(rows[k - 1]))} and {names(int(rows[k]))}); each series needs one "
                f"row per time: merge them with {_hint('duplicates', 'first|last|mean')}"
            )
        starts = np.flatnonzero(np.concatenate(([True], ~dup)))
        dup_count = len(t) - len(starts)
        vals, lab, typ = _reduce(starts, vals, lab, typ, duplicates)
        t, groups, rows = t[starts], groups[starts], rows[starts]
    return t, groups, vals, lab, typ, rows, behind_count, dup_count


def _ts(v: int) -> pd.Timestamp:
    return pd.Timestamp(int(v), unit="ns", tz="UTC")


def _regularise(t: np.ndarray, vals: np.ndarray, lab: np.ndarray | None, typ: np.ndarray | None,
                entity: str, metrics: list[str], step: pd.Timedelta, gap_policy: GapPolicy,
                max_gap_steps: int | None, resample: ResamplePolicy, source: str,
                rows: np.ndarray, names: RowNames, phase: int, counts: dict[str, int]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Put one entity (rows in time order, no duplicates) on its grid and fill gaps.

    Plain numpy on (ns timestamps, values, labels, types): this runs once per entity, and
    pandas' per-call overhead dominated. Adds what it did to ``counts``.
    """
    where = f"{source}: entity '{entity}'"
    step_ns = step.value
    has_labels = lab is not None and typ is not None

    def ts(v: int) -> str:
        return _fmt(_ts(v))

    off_grid = (t - t[0]) % step_ns != 0
    if off_grid.any():
        n_rows = len(t)
        off_phase = (t - phase) % step_ns != 0
        snap = None
        if resample == "auto":
            d, near = jitter_offsets(t, phase, step_ns)  # rows within the jitter move there
            snap = off_phase & near
            off_phase &= ~near
        moved = int(off_phase.sum())
        too_many = resample == "auto" and 100 * moved > AUTO_RESAMPLE_MAX_PERCENT * n_rows
        if resample == "error" or too_many:
            start = f"starting at {ts(t[0])}"
            why = ""
            if too_many:
                # Against the grid auto would have used: the rows that would have moved.
                off_grid = off_phase
                if off_phase[0]:
                    start = (f"most rows are on (through "
                             f"{ts(t[0] - (t[0] - phase) % step_ns)})")
                why = (f"; --resample auto only resamples when at most "
                       f"{AUTO_RESAMPLE_MAX_PERCENT}% of an entity's rows are off the grid, "
                       f"counting as on it a row within {JITTER_FRACTION:.0%} of a step of "
                       "a grid point")
            pos = int(np.flatnonzero(off_grid)[0])
            raise DataError(
                f"{where}: irregular time step: {ts(t[pos])} ({names(int(rows[pos]))}) is not "
                f"on the {format_step(step)} grid {start} "
                f"({int(off_grid.sum())} of {n_rows} rows are off it{why}); aggregate each "
                f"step with {_hint('resample', 'mean|last')}, or set the step with "
                f"{_hint('step', 'DURATION')}"
            )
        how = "mean" if resample == "auto" else resample
        if snap is not None and snap.any():  # in time order still: each row moves < step / 2
            t = np.where(snap, t - d, t)
            counts["snapped"] += int(snap.sum())
        t, vals, lab, typ = _aggregate(t, vals, lab, typ, step_ns, how, phase)
        counts["moved"] += moved
        counts["merged"] += n_rows - len(t)
    pos = (t - t[0]) // step_ns
    n = int(pos[-1]) + 1
    grid = t[0] + np.arange(n, dtype=np.int64) * step_ns
    grid_vals = np.full((n, len(metrics)), np.nan)
    grid_vals[pos] = vals
    observed = np.zeros(n, dtype=bool)
    observed[pos] = True
    missing = np.isnan(grid_vals)
    first = 0
    if missing.any():
        if gap_policy == "error":
            j = int(np.flatnonzero(missing.any(axis=0))[0])
            col = missing[:, j]
            raise DataError(
                f"{where}: metric '{metrics[j]}' has {int(col.sum())} missing value(s) from "
                f"{ts(grid[int(np.argmax(col))])}; fill them with "
                f"{_hint('gap_policy', 'ffill|interpolate')}"
            )
        for j, m in enumerate(metrics):
            col = missing[:, j]
            if col.all():
                raise DataError(f"{where}: metric '{m}' has no values at all; drop the metric "
                                "or the entity")
            if max_gap_steps is None:
                continue
            starts, ends = _runs(col)
            long = (ends - starts) > max_gap_steps
            if long.any():
                k = int(np.flatnonzero(long)[0])
                what = "no values for the first" if starts[k] == 0 else "a gap of"
                raise DataError(
                    f"{where}: metric '{m}' has {what} {ends[k] - starts[k]} steps from "
                    f"{ts(grid[starts[k]])}, longer than max_gap_steps={max_gap_steps}; raise "
                    f"the limit with {_hint('max_gap_steps', f'{ends[k] - starts[k]}|none')}, "
                    "or split the data at the outage"
                )
        # Leading points before a metric's first value cannot be filled causally: trim them.
        first = int(np.argmax(~missing, axis=0).max())
        counts["trimmed"] += first
        counts["filled_points"] += int((~observed[first:]).sum())
        counts["filled_values"] += int((missing[first:] & observed[first:, None]).sum())
        idx = np.arange(n)
        for j in range(len(metrics)):
            ok = ~missing[:, j]
            if gap_policy == "interpolate":
                # Linear inside; a gap at the end is held (nothing after it to aim at).
                grid_vals[:, j] = np.interp(idx, idx[ok], grid_vals[ok, j])
            else:
                last = np.maximum.accumulate(np.where(ok, idx, 0))
                grid_vals[:, j] = grid_vals[last, j]
    if not has_labels:
        return grid[first:], grid_vals[first:], None, None
    glab = np.zeros(n, dtype=np.int8)
    gtyp = np.full(n, "", dtype=object)
    glab[pos] = lab
    gtyp[pos] = typ
    if not observed.all():
        # A filled row is anomalous only inside an anomaly: both observed neighbours anomalous,
        # with the same type.
        idx = np.arange(n)
        prev = np.maximum.accumulate(np.where(observed, idx, 0))
        nxt = np.minimum.accumulate(np.where(observed, idx, n - 1)[::-1])[::-1]
        inside = ~observed & (glab[prev] == 1) & (glab[nxt] == 1) & (gtyp[prev] == gtyp[nxt])
        glab[inside] = 1
        gtyp[inside] = gtyp[prev][inside]
    return grid[first:], grid_vals[first:], glab[first:], gtyp[first:]


@dataclass(frozen=True)
class Dataset:
    """A validated multi-entity, multi-metric time series.

    Build one with :meth:`from_frame` (or the readers in :mod:`aws_anomaly.data.io`); the
    constructor itself does not validate. ``report`` says what loading changed (``None`` for
    datasets built otherwise, e.g. slices).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({
    ...     "timestamp": pd.date_range("2026-01-01", periods=4, freq="5min", tz="UTC"),
    ...     "cpu": [0.1, 0.2, 0.3, 0.4]})
    >>> ds = Dataset.from_frame(df)
    >>> ds.metrics, ds.entities, str(ds.step)
    (('cpu',), ('default',), '0 days 00:05:00')
    >>> ds.values("default")[:, 0].tolist()
    [0.1, 0.2, 0.3, 0.4]
    """

    frame: pd.DataFrame
    metrics: tuple[str, ...]
    step: pd.Timedelta
    report: LoadReport | None = field(default=None, compare=False, repr=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        *,
        metrics: Sequence[str] | None = None,
        step: str | pd.Timedelta | None = None,
        gap_policy: GapPolicy = "ffill",
        max_gap_steps: int | None = FILL_STEPS,
        resample: ResamplePolicy = "auto",
        timestamps: TimestampPolicy = "error",
        duplicates: DuplicatePolicy = "first",
        source: str = "input",
        row_names: RowNames | None = None,
    ) -> Dataset:
        """Validate a wide frame (``timestamp``, optional ``entity``, metric columns, labels).

        Parameters
        ----------
        df
            The rows. The rows of each entity must be in time order unless ``timestamps``
            says otherwise (see the module docstring).
        metrics
            Metric columns to keep. ``None`` takes every numeric column that is not reserved.
            Non-numeric columns that are neither metrics nor reserved are an error, so a typo
            in a column name is never silently ignored.
        step
            Grid step; inferred as the most common difference between consecutive rows of an
            entity when ``None`` (with ``resample="auto"``, when no difference is shared by
            half of them: the median difference to the second, their times jittering).
        gap_policy
            How missing grid points / NaN values are filled: ``"ffill"`` (hold the last value;
            causal, the default), ``"interpolate"`` (linear; uses the next value, so batch only;
            a gap at the end is held) or ``"error"``. A filled row inside a labelled anomaly
            (anomalous on both sides, same type) keeps the label; other filled rows are normal.
        max_gap_steps
            Longest run of missing steps the gap policy may fill; longer gaps are an error.
            Rows before every metric has a first value are dropped (they cannot be filled
            causally), within the same limit.
        resample
            What to do with timestamps off the grid: ``"auto"`` (default) moves a row within
            :data:`JITTER_FRACTION` of a step of a grid point to that point (scrape jitter;
            the report counts them), then aggregates each grid bucket ``[t, t + step)`` with
            the mean when at most 1 % of an entity's rows are further off the grid (the report
            says that auto chose mean and how many rows moved) and refuses
            the data (as ``"error"``, saying why) when more are; ``"error"`` refuses any row off
            the grid; ``"mean"`` / ``"last"`` aggregate each bucket. The buckets start at the
            offset (modulo the step) that more than half of all timestamps share, so a series
            sampled at :01, :06, ... keeps its times and only the stray rows move; without such a
            majority, at the offset jittered times gather around (:func:`_grid_phase`), else
            at multiples of ``step`` since the Unix epoch. All entities
            share that one grid. Labels: a bucket is anomalous when any of its rows is, with the
            last non-empty type.
        timestamps
            A row earlier than the row before it (same entity): ``"error"`` (default), or
            ``"sort"``, ``"clamp"`` (take the latest time seen so far; it then merges as a
            duplicate), ``"drop"``.
        duplicates
            Rows of one entity with the same timestamp: ``"first"`` (default; per metric the
            first value present), ``"last"``, ``"mean"`` or ``"error"``.
        source
            Where the data came from, used in error messages (a file path, a query...).
        row_names
            Names row ``i`` (0-based position in ``df``) in messages; default ``row i``. The
            file readers pass ``line N`` (CSV, header = line 1) or ``row N`` (Parquet, from 1).

        The result's :attr:`report` counts what each policy did.

        Raises
        ------
        DataError
            The data is malformed; the message names the column, entity, row and time.
        ConfigError
            An option has a value outside what is allowed.
        """
        _check_choice("gap_policy", gap_policy, _GAP_POLICIES)
        _check_choice("resample", resample, _RESAMPLE_POLICIES)
        _check_choice("timestamps", timestamps, TIMESTAMP_POLICIES)
        _check_choice("duplicates", duplicates, DUPLICATE_POLICIES)
        if max_gap_steps is not None and (isinstance(max_gap_steps, bool) or
                                          not isinstance(max_gap_steps, int | np.integer)
                                          or max_gap_steps < 0):
            raise ConfigError(f"max_gap_steps must be an integer >= 0 or None, "
                              f"got {max_gap_steps!r}")
        name = row_names or _position
        if not isinstance(df, pd.DataFrame):
            raise DataError(f"{source}: expected a pandas DataFrame, got {type(df).__name__}")
        dup_cols = df.columns[df.columns.duplicated()].tolist()
        if dup_cols:
            raise DataError(f"{source}: column name(s) {dup_cols} appear more than once")
        if "timestamp" not in df.columns:
            hint = ("; it is the index: call df.reset_index() first"
                    if df.index.name == "timestamp" else "")
            raise DataError(
                f"{source}: missing column 'timestamp'; columns are {list(df.columns)}{hint}"
            )
        if len(df) == 0:
            raise DataError(f"{source}: no rows")
        df = df.reset_index(drop=True)
        df["timestamp"] = parse_timestamps(df["timestamp"], source, name)
        if "entity" not in df.columns:
            df["entity"] = DEFAULT_ENTITY
        ent_na = df["entity"].isna().to_numpy()
        if ent_na.any():
            row = int(np.flatnonzero(ent_na)[0])
            raise DataError(f"{source}: 'entity' is empty in {name(row)}")
        df["entity"] = df["entity"].astype(str)
        blank = (df["entity"].str.strip() == "").to_numpy()
        if blank.any():
            row = int(np.flatnonzero(blank)[0])
            raise DataError(f"{source}: 'entity' is blank in {name(row)}; name every entity")

        if metrics is None:
            metrics = [c for c in df.columns if c not in _RESERVED
                       and pd.api.types.is_numeric_dtype(df[c])
                       and not pd.api.types.is_bool_dtype(df[c])]
            unknown = [c for c in df.columns if c not in _RESERVED and c not in metrics]
            if unknown:
                raise DataError(
                    f"{source}: column(s) {unknown} are not numeric, so they are not metrics, "
                    f"and are not one of {sorted(_RESERVED)}; drop them or fix their values"
                )
        else:
            if isinstance(metrics, str):
                metrics = [metrics]
            metrics = list(metrics)
            reserved = [m for m in metrics if m in _RESERVED]
            if reserved:
                raise DataError(f"{source}: {reserved} cannot be metrics: the names "
                                f"{sorted(_RESERVED)} are reserved")
            missing = [m for m in metrics if m not in df.columns]
            if missing:
                raise DataError(
                    f"{source}: missing metric column(s) {missing}; columns are {list(df.columns)}"
                )
        if not metrics:
            raise DataError(f"{source}: no metric columns; expected at least one numeric column")
        if len(set(metrics)) != len(metrics):
            raise DataError(f"{source}: metric names repeat: {metrics}")
        for m in metrics:
            if pd.api.types.is_bool_dtype(df[m]):
                raise DataError(f"{source}: metric '{m}' holds booleans; metrics are numbers")
            col = pd.to_numeric(df[m], errors="coerce")
            bad = (col.isna() & df[m].notna()).to_numpy()
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise DataError(
                    f"{source}: metric '{m}' has a non-numeric value {_show(df[m].iloc[row])} "
                    f"in {name(row)}"
                )
            arr = col.to_numpy(dtype=np.float64, na_value=np.nan)
            inf = np.isinf(arr)
            if inf.any():
                row = int(np.flatnonzero(inf)[0])
                raise DataError(
                    f"{source}: metric '{m}' has {int(inf.sum())} infinite value(s), first in "
                    f"{name(row)} at {_fmt(df['timestamp'].iloc[row])}; infinities are not "
                    "measurements: fix or drop those rows"
                )
            df[m] = arr

        has_labels = "is_anomaly" in df.columns or "anomaly_type" in df.columns
        if has_labels:
            cls._check_labels(df, source, name)

        keep = ["timestamp", "entity", *metrics] + ([*LABEL_COLUMNS] if has_labels else [])
        df = df[keep]
        rows_in = len(df)
        # Stable: keeps each entity's own row order, which the time-order policy checks next.
        order = np.argsort(df["entity"].to_numpy(dtype=object), kind="stable")
        df = df.iloc[order].reset_index(drop=True)
        rows = order  # original row numbers, for messages
        ent = df["entity"].to_numpy(dtype=object)
        tsv = pd.DatetimeIndex(df["timestamp"]).asi8
        same = ent[1:] == ent[:-1]
        diff = np.diff(tsv)
        behind = dups = 0
        if (same & (diff <= 0)).any():
            codes = np.concatenate(([0], np.cumsum(~same))).astype(np.int64)
            ent_names = ent[np.flatnonzero(np.concatenate(([True], ~same)))]
            all_vals = df[metrics].to_numpy(dtype=np.float64)
            lab0 = df["is_anomaly"].to_numpy(dtype=np.int8) if has_labels else None
            typ0 = df["anomaly_type"].to_numpy(dtype=object) if has_labels else None
            tsv, codes, all_vals, lab0, typ0, rows, behind, dups = _order_rows(
                tsv, codes, all_vals, lab0, typ0, rows, timestamps=timestamps,
                duplicates=duplicates, source=source,
                series=lambda c: f"entity '{ent_names[c]}'", names=name)
            ent = ent_names[codes]
            df = pd.DataFrame({"timestamp": pd.to_datetime(tsv, utc=True), "entity": ent})
            for j, m in enumerate(metrics):
                df[m] = all_vals[:, j]
            if has_labels:
                df["is_anomaly"] = lab0
                df["anomaly_type"] = typ0
            same = ent[1:] == ent[:-1]
            diff = np.diff(tsv)
        step_share = 1.0
        step_jitter = False
        if step is not None:
            the_step = _as_step(step, source)
        else:
            within = diff[same]
            if len(within) == 0:
                raise DataError(f"{source}: every entity has a single row; cannot infer the "
                                f"time step: set it with {_hint('step', 'DURATION')}, e.g. "
                                "--step 5min")
            vals, counts = np.unique(within, return_counts=True)
            k = int(np.argmax(counts))
            the_step = pd.Timedelta(int(vals[k]), unit="ns")
            step_share = float(counts[k]) / len(within)
            if step_share < 0.5 and resample == "auto":
                jittered = _jitter_step(within)
                if jittered is not None and jittered[1] > step_share:
                    the_step, step_share = jittered
                    step_jitter = True
        step_ns = the_step.value
        tally = {"snapped": 0, "moved": 0, "merged": 0, "filled_points": 0, "filled_values": 0,
                 "trimmed": 0}

        # Entities that are already regular and complete pass through untouched (fast path).
        starts = np.flatnonzero(np.concatenate(([True], ~same)))
        ends = np.append(starts[1:], len(df))
        row_bad = np.zeros(len(df), dtype=bool)
        row_bad[1:] = same & (diff != step_ns)
        vals_nan = np.isnan(df[metrics].to_numpy(dtype=np.float64)).any(axis=1)
        row_bad |= vals_nan
        ent_bad = np.logical_or.reduceat(row_bad, starts)
        if not ent_bad.any():
            frame = df
        else:
            phase = _grid_phase(tsv, step_ns) if resample != "error" else 0
            # Work on arrays and build one frame at the end: per-entity DataFrames are slow.
            all_vals = df[metrics].to_numpy(dtype=np.float64)
            all_lab = df["is_anomaly"].to_numpy(dtype=np.int8) if has_labels else None
            all_typ = df["anomaly_type"].to_numpy(dtype=object) if has_labels else None
            pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]]
            pieces = []
            for s, e, b in zip(starts, ends, ent_bad, strict=True):
                piece = (tsv[s:e], all_vals[s:e], None if all_lab is None else all_lab[s:e],
                         None if all_typ is None else all_typ[s:e])
                if b:
                    piece = _regularise(*piece, str(ent[s]), metrics, the_step, gap_policy,
                                        max_gap_steps, resample, source, rows[s:e], name,
                                        phase, tally)
                pieces.append(piece)
            lengths = [len(p[0]) for p in pieces]
            frame = pd.DataFrame({
                "timestamp": pd.to_datetime(np.concatenate([p[0] for p in pieces]), utc=True),
                "entity": pd.Series(pd.Categorical.from_codes(
                    np.repeat(np.arange(len(starts)), lengths), list(ent[starts]))).astype(str),
            })
            stacked = np.concatenate([p[1] for p in pieces])
            for j, m in enumerate(metrics):
                frame[m] = stacked[:, j]
            if has_labels:
                frame["is_anomaly"] = np.concatenate([p[2] for p in pieces])
                frame["anomaly_type"] = np.concatenate([p[3] for p in pieces]).astype(str)
        frame = frame.reset_index(drop=True)
        frame["timestamp"] = frame["timestamp"].dt.as_unit("ns")
        if has_labels:
            frame["is_anomaly"] = frame["is_anomaly"].to_numpy().astype(np.int8)
            frame["anomaly_type"] = frame["anomaly_type"].astype(str)
        report = LoadReport(
            source=source, rows_in=rows_in, rows_out=len(frame), timestamps=timestamps,
            behind=behind, duplicates=duplicates, duplicate_rows=dups, step=the_step,
            step_inferred=step is None, step_share=step_share, step_jitter=step_jitter,
            resample=resample,
            gap_policy=gap_policy, **tally)
        return cls(frame=frame, metrics=tuple(metrics), step=the_step, report=report)

    @staticmethod
    def _check_labels(df: pd.DataFrame, source: str, name: RowNames = _position) -> None:
        """Normalise ``is_anomaly`` / ``anomaly_type`` in place; either may be missing."""
        if "anomaly_type" in df.columns:
            typ = df["anomaly_type"].astype("string").fillna("").str.strip().astype(str)
        else:
            typ = None
        if "is_anomaly" in df.columns:
            raw = df["is_anomaly"]
            lab = pd.to_numeric(raw.astype(float) if pd.api.types.is_bool_dtype(raw) else raw,
                                errors="coerce")
            bad = (lab.isna() | ~lab.isin([0, 1])).to_numpy()
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise DataError(f"{source}: 'is_anomaly' must be 0 or 1 in every row; "
                                f"{name(row)} has {_show(raw.iloc[row])}")
            lab = lab.to_numpy().astype(np.int8)
        else:
            lab = (typ != "").to_numpy().astype(np.int8)
        if typ is None:
            typ = pd.Series(np.where(lab == 1, "unknown", ""), index=df.index, dtype=str)
        else:
            normal_typed = (lab == 0) & (typ != "").to_numpy()
            if normal_typed.any():
                row = int(np.flatnonzero(normal_typed)[0])
                raise DataError(
                    f"{source}: {name(row)} has is_anomaly=0 but anomaly_type "
                    f"{typ.iloc[row]!r}; the type must be empty on normal rows"
                )
            typ = typ.where(~((lab == 1) & (typ == "").to_numpy()), "unknown")
        df["is_anomaly"] = lab
        df["anomaly_type"] = typ.to_numpy(dtype=object).astype(str)

    @classmethod
    def checked(cls, frame: pd.DataFrame, *, metrics: Sequence[str], step: pd.Timedelta,
                where: str = "dataset", report: LoadReport | None = None) -> Dataset:
        """A dataset from a frame that is already in the contract's shape, checked, not changed.

        For code that builds the frame itself (the demo generator, the anomaly injector): no
        loading policy is applied, nothing is sorted, filled or converted. Raises
        :class:`DataError` naming ``where`` and the first broken invariant (see :meth:`check`).
        To load data from outside use :meth:`from_frame`; to take part of a dataset,
        :meth:`subset`.

        >>> ts = pd.date_range("2026-01-01", periods=3, freq="5min", tz="UTC").as_unit("ns")
        >>> df = pd.DataFrame({"timestamp": ts, "entity": "a", "cpu": [0.1, 0.2, 0.3]})
        >>> len(Dataset.checked(df, metrics=["cpu"], step=pd.Timedelta("5min")))
        3
        >>> Dataset.checked(df.iloc[[0, 2]], metrics=["cpu"], step=pd.Timedelta("5min"),
        ...                 where="demo")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        aws_anomaly.errors.DataError: demo: entity 'a' jumps from 2026-01-01T00:00:00Z to ...
        """
        ds = cls(frame=frame, metrics=tuple(metrics), step=pd.Timedelta(step), report=report)
        return ds.check(where)

    @classmethod
    def coerce(cls, data: Dataset | pd.DataFrame, *, where: str,
               metrics: Sequence[str] | None = None) -> Dataset:
        """A model's input as a dataset: a :class:`Dataset` as it is, a DataFrame loaded with
        :meth:`from_frame` (for ``metrics`` when given). Raises :class:`DataError` naming
        ``where`` for anything else, or when one of ``metrics`` (the model's) is missing.

        >>> ts = pd.date_range("2026-01-01", periods=2, freq="1h", tz="UTC")
        >>> df = pd.DataFrame({"timestamp": ts, "cpu": [1.0, 2.0], "mem": [3.0, 4.0]})
        >>> Dataset.coerce(df, where="score", metrics=["cpu"]).metrics
        ('cpu',)
        >>> Dataset.coerce(Dataset.from_frame(df), where="score", metrics=["disk"])
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        aws_anomaly.errors.DataError: score: missing metric(s) ['disk']; the model was trained ...
        """
        if isinstance(data, pd.DataFrame):
            data = cls.from_frame(data, metrics=None if metrics is None else list(metrics),
                                  source=where)
        if not isinstance(data, Dataset):
            raise DataError(f"{where}: expected a Dataset or a DataFrame, got "
                            f"{type(data).__name__}")
        if metrics is not None:
            missing = [m for m in metrics if m not in data.metrics]
            if missing:
                raise DataError(f"{where}: missing metric(s) {missing}; the model was trained "
                                f"on {list(metrics)}")
        return data

    @classmethod
    def concat(cls, parts: Sequence[Dataset], *, where: str = "concat") -> Dataset:
        """Stack datasets with the same metrics and step, ordered by (entity, timestamp).

        Parts may hold different entities, or consecutive periods of one entity (a chronological
        split put back together); the result is checked (:meth:`check`), so overlapping or
        gapped periods are refused with a :class:`DataError` naming the entity and times.

        >>> ts = pd.date_range("2026-01-01", periods=4, freq="1h", tz="UTC")
        >>> ds = Dataset.from_frame(pd.DataFrame({"timestamp": ts, "cpu": [1.0, 2, 3, 4]}))
        >>> head, tail = ds.split_tail(0.5)
        >>> Dataset.concat([tail, head]).frame["cpu"].tolist()
        [1.0, 2.0, 3.0, 4.0]
        """
        if not parts:
            raise DataError(f"{where}: nothing to concatenate")
        first = parts[0]
        for p in parts[1:]:
            if p.metrics != first.metrics or p.step != first.step:
                raise DataError(f"{where}: cannot concatenate datasets with metrics "
                                f"{list(first.metrics)} / step {format_step(first.step)} and "
                                f"{list(p.metrics)} / {format_step(p.step)}")
            if p.has_labels != first.has_labels:
                raise DataError(f"{where}: some parts have labels (is_anomaly) and some not")
        if len(parts) == 1:
            return first
        frame = pd.concat([p.frame for p in parts], ignore_index=True)
        if not _sorted(frame):
            frame = frame.sort_values(["entity", "timestamp"], kind="stable")
            frame = frame.reset_index(drop=True)
        return cls.checked(frame, metrics=first.metrics, step=first.step, where=where)

    def check(self, where: str = "dataset") -> Dataset:
        """This dataset when it keeps the contract, else a :class:`DataError` naming the first
        broken invariant: the ``timestamp``, ``entity`` and metric columns with their dtypes
        (``datetime64[ns, UTC]``, text, finite float64; labels int8 0/1 and text), metrics
        named once, each entity's rows together, entities in name order, and every entity's
        rows one ``step`` apart (increasing, no duplicates, no gaps)."""
        _check_contract(self.frame, self.metrics, self.step, where)
        return self

    # ------------------------------------------------------------------ access
    @property
    def entities(self) -> tuple[str, ...]:
        """Entity names, in frame order (sorted)."""
        return tuple(str(e) for e in pd.unique(self.frame["entity"]))

    @property
    def has_labels(self) -> bool:
        return "is_anomaly" in self.frame.columns

    def __len__(self) -> int:
        return len(self.frame)

    def entity_frame(self, entity: str) -> pd.DataFrame:
        """Rows of one entity, indexed by timestamp (metric and label columns)."""
        mask = self.frame["entity"].to_numpy() == entity
        if not mask.any():
            raise DataError(f"unknown entity {entity!r}; entities are {list(self.entities)}")
        return self.frame.loc[mask].drop(columns="entity").set_index("timestamp")

    def values(self, entity: str) -> np.ndarray:
        """The (n, len(metrics)) float64 array of one entity."""
        return self.entity_frame(entity)[list(self.metrics)].to_numpy(dtype=np.float64)

    def labels(self, entity: str) -> np.ndarray | None:
        """0/1 labels of one entity, or None when the data has no labels."""
        if not self.has_labels:
            return None
        return self.entity_frame(entity)["is_anomaly"].to_numpy(dtype=np.int8)

    def iter_entities(self) -> Iterable[tuple[str, pd.DataFrame]]:
        """``(entity, entity_frame(entity))`` for every entity, in order, in one pass.

        One groupby instead of one full-frame mask per entity: a tick over 1,000 entities
        would otherwise scan the frame 1,000 times.
        """
        for e, g in self.frame.groupby("entity", sort=False):
            yield str(e), g.drop(columns="entity").set_index("timestamp")

    def subset(self, rows: np.ndarray | Sequence[int] | slice | None = None, *,
               entities: Sequence[str] | str | None = None,
               start: Any = None, end: Any = None,
               metrics: Sequence[str] | None = None, labels: bool = True,
               where: str = "subset") -> Dataset:
        """Part of this dataset, still a valid one: the validated way to slice.

        Every filter given applies (their intersection):

        * ``rows`` — a boolean mask (one value per row), increasing row positions, or a
          ``slice`` of positions (step 1). Within an entity the rows kept must be consecutive:
          a dataset has no gaps, so keeping rows 1 and 3 of an entity but not 2 is refused
          (rebuild with :meth:`from_frame` to fill gaps instead);
        * ``entities`` — entity names (one name is accepted too); unknown names are refused;
        * ``start`` / ``end`` — ``start <= timestamp < end`` (anything
          :func:`~aws_anomaly.durations.parse_timestamp` reads; naive = UTC);
        * ``metrics`` — the metric columns to keep, in this order (known, at least one, each
          once);
        * ``labels=False`` leaves out ``is_anomaly`` and ``anomaly_type``.

        Rows stay in order, dtypes are kept, and so is ``report`` (what loading changed in the
        data this part comes from). Raises :class:`DataError` naming ``where`` and the problem.
        The result may be empty (a time range with no rows).

        >>> ts = pd.date_range("2026-01-01", periods=4, freq="1h", tz="UTC")
        >>> df = pd.DataFrame({"timestamp": list(ts) * 2, "entity": ["a"] * 4 + ["b"] * 4,
        ...                    "cpu": range(8), "mem": 0.5})
        >>> ds = Dataset.from_frame(df)
        >>> part = ds.subset(entities="b", start="2026-01-01 01:00", metrics=["cpu"])
        >>> part.entities, part.metrics, part.frame["cpu"].tolist()
        (('b',), ('cpu',), [5.0, 6.0, 7.0])
        >>> ds.subset(slice(2, 6)).frame["cpu"].tolist()
        [2.0, 3.0, 4.0, 5.0]
        >>> ds.subset([0, 2])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        aws_anomaly.errors.DataError: subset: the rows keep 2026-01-01T00:00:00Z and ...
        """
        f = self.frame
        n = len(f)
        keep: np.ndarray | None = None  # boolean mask over the rows, None: all
        window: tuple[int, int] | None = None  # a plain slice of rows
        if rows is not None:
            if isinstance(rows, slice):
                a, b, s = rows.indices(n)
                if s != 1:
                    raise DataError(f"{where}: a slice of rows with a step of {s} leaves gaps "
                                    "within an entity; take consecutive rows")
                window = (a, max(a, b))
            else:
                idx = self._positions(rows, where)
                self._check_consecutive(idx, where)
                keep = np.zeros(n, dtype=bool)
                keep[idx] = True
        if entities is not None:
            wanted = [entities] if isinstance(entities, str) else list(entities)
            unknown = sorted(set(wanted) - set(self.entities))
            if unknown:
                raise DataError(f"{where}: unknown entities {unknown}; entities are "
                                f"{list(self.entities)}")
            m = f["entity"].isin(wanted).to_numpy()
            keep = m if keep is None else keep & m
        for bound, keep_ge in ((start, True), (end, False)):
            if bound is None:
                continue
            t = _utc(bound, f"{where}: {'start' if keep_ge else 'end'}")
            col = f["timestamp"]
            m = (col >= t).to_numpy() if keep_ge else (col < t).to_numpy()
            keep = m if keep is None else keep & m
        columns = list(f.columns)
        new_metrics = self.metrics
        if metrics is not None:
            new_metrics = self._metric_names(metrics, where)
            gone = set(self.metrics) - set(new_metrics)
            columns = ["timestamp", "entity", *new_metrics] + [
                c for c in f.columns
                if c not in ("timestamp", "entity") and c not in self.metrics]
            columns = [c for c in columns if c not in gone]
        if not labels:
            columns = [c for c in columns if c not in LABEL_COLUMNS]
        if window is not None and keep is not None:
            w = np.zeros(n, dtype=bool)
            w[window[0]:window[1]] = True
            keep &= w
            window = None
        out = f
        if window is not None:
            out = f.iloc[window[0]:window[1]].reset_index(drop=True)
        elif keep is not None:
            out = f.loc[keep].reset_index(drop=True)
        if columns != list(f.columns):
            out = out[columns]
        if out is f:
            out = f.copy(deep=False)
        return replace(self, frame=out, metrics=new_metrics)

    def _positions(self, rows: np.ndarray | Sequence[int], where: str) -> np.ndarray:
        n = len(self.frame)
        arr = np.asarray(rows)
        if arr.ndim != 1:
            raise DataError(f"{where}: rows must be one-dimensional, got shape {arr.shape}")
        if arr.dtype == bool:
            if len(arr) != n:
                raise DataError(f"{where}: the row mask has {len(arr)} values for {n} rows")
            return np.flatnonzero(arr)
        if len(arr) == 0:
            return np.zeros(0, dtype=np.int64)
        if not np.issubdtype(arr.dtype, np.integer):
            raise DataError(f"{where}: rows must be a boolean mask, row positions or a slice, "
                            f"got {arr.dtype} values")
        idx = arr.astype(np.int64)
        bad = (idx < 0) | (idx >= n)
        if bad.any():
            raise DataError(f"{where}: row position {_show(arr[np.flatnonzero(bad)[0]])} is "
                            f"outside the {n} rows")
        back = np.flatnonzero(np.diff(idx) <= 0)
        if len(back):
            k = int(back[0])
            raise DataError(f"{where}: row positions must increase without repeats (a dataset "
                            f"is sorted by entity and time): {int(idx[k + 1])} comes after "
                            f"{int(idx[k])}")
        return idx

    def _check_consecutive(self, idx: np.ndarray, where: str) -> None:
        jumps = np.flatnonzero(np.diff(idx) > 1)
        if not len(jumps):
            return
        ent = self.frame["entity"]
        a, b = idx[jumps], idx[jumps + 1]
        same = np.flatnonzero(ent.iloc[a].to_numpy() == ent.iloc[b].to_numpy())
        if len(same):
            i, j = int(a[same[0]]), int(b[same[0]])
            ts = self.frame["timestamp"]
            raise DataError(
                f"{where}: the rows keep {format_timestamp(ts.iloc[i])} and "
                f"{format_timestamp(ts.iloc[j])} of entity {ent.iloc[i]!r} but not the {j - i - 1} "
                "row(s) between; a dataset has no gaps within an entity: keep consecutive rows "
                "(or rebuild with Dataset.from_frame, which fills gaps)")

    def _metric_names(self, metrics: Sequence[str], where: str) -> tuple[str, ...]:
        names = [metrics] if isinstance(metrics, str) else list(metrics)
        if not names:
            raise DataError(f"{where}: no metrics; keep at least one of {list(self.metrics)}")
        unknown = [m for m in names if m not in self.metrics]
        if unknown:
            raise DataError(f"{where}: unknown metric(s) {unknown}; the dataset has "
                            f"{list(self.metrics)}")
        dup = sorted({m for m in names if names.count(m) > 1})
        if dup:
            raise DataError(f"{where}: metric(s) {dup} named more than once")
        return tuple(names)

    def select(self, entities: Sequence[str] | str) -> Dataset:
        """The rows of some entities (a single name is accepted too).

        >>> ts = pd.date_range("2026-01-01", periods=2, freq="1h", tz="UTC")
        >>> df = pd.DataFrame({"timestamp": list(ts) * 2, "entity": ["a", "a", "b", "b"],
        ...                    "cpu": [0.1, 0.2, 0.3, 0.4]})
        >>> Dataset.from_frame(df).select("b").values("b")[:, 0].tolist()
        [0.3, 0.4]
        """
        return self.subset(entities=entities, where="select")

    def split_tail(self, share: float) -> tuple[Dataset, Dataset]:
        """(head, tail): the last ``ceil(share * rows)`` rows of each entity in ``tail``.

        >>> ts = pd.date_range("2026-01-01", periods=10, freq="1h", tz="UTC")
        >>> head, tail = Dataset.from_frame(pd.DataFrame({"timestamp": ts, "cpu": range(10)})
        ...                                 ).split_tail(0.15)
        >>> len(head), tail.frame["cpu"].tolist()
        (8, [8.0, 9.0])
        """
        if not 0.0 < share < 1.0:
            raise ConfigError(f"split_tail: share must be in (0, 1), got {share!r}")
        f = self.frame
        grouped = f.groupby("entity", sort=False)
        pos = grouped.cumcount().to_numpy()
        size = grouped["entity"].transform("size").to_numpy()
        head = pos < size - np.ceil(share * size)
        return (self.subset(head, where="split_tail"), self.subset(~head, where="split_tail"))

    def slice_time(self, start: pd.Timestamp | str | None = None,
                   end: pd.Timestamp | str | None = None) -> Dataset:
        """Rows with ``start <= timestamp < end`` (either bound may be None; naive = UTC).

        >>> ts = pd.date_range("2026-01-01", periods=4, freq="1h", tz="UTC")
        >>> ds = Dataset.from_frame(pd.DataFrame({"timestamp": ts, "cpu": [1.0, 2, 3, 4]}))
        >>> ds.slice_time("2026-01-01 01:00", "2026-01-01T03:00Z").frame["cpu"].tolist()
        [2.0, 3.0]
        """
        return self.subset(start=start, end=end, where="slice_time")

    def constant_metrics(self) -> dict[str, list[str]]:
        """Metrics that do not vary, per entity: ``{entity: [metric, ...]}`` (entities with
        none are left out).

        Real servers have several (an unused disk or network interface reads 0 all along).

        >>> ts = pd.date_range("2026-01-01", periods=3, freq="1h", tz="UTC")
        >>> df = pd.DataFrame({"timestamp": ts, "cpu": [0.1, 0.5, 0.2], "disk2": 0.0})
        >>> Dataset.from_frame(df).constant_metrics()
        {'default': ['disk2']}
        """
        if not len(self.frame):
            return {}
        g = self.frame.groupby("entity", sort=False)[list(self.metrics)]
        flat = (g.max() - g.min()) == 0.0
        out: dict[str, list[str]] = {}
        for entity, row in flat.iterrows():
            names = [m for m in self.metrics if bool(row[m])]
            if names:
                out[str(entity)] = names
        return out

    def check_not_constant(self, where: str = "training data", policy: ConstantPolicy = "keep"
                           ) -> dict[str, list[str]]:
        """The metrics constant for some entity (as :meth:`constant_metrics`), by policy.

        ``"keep"`` (default) returns them: a model may train on a constant metric, and any
        change from that constant is then unusual. ``"error"`` raises :class:`DataError`
        naming the first one. To leave them out of training use :meth:`drop_constant`.

        >>> ts = pd.date_range("2026-01-01", periods=3, freq="1h", tz="UTC")
        >>> ds = Dataset.from_frame(pd.DataFrame({"timestamp": ts, "cpu": [0.5, 0.5, 0.5]}))
        >>> ds.check_not_constant("training data")
        {'default': ['cpu']}
        >>> ds.check_not_constant("training data", policy="error")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        aws_anomaly.errors.DataError: training data: metric 'cpu' of entity 'default' is constant...
        """
        if policy not in ("keep", "error"):
            hint = ("; to leave them out use Dataset.drop_constant()" if policy == "drop"
                    else "")
            raise ConfigError(f"check_not_constant: policy must be 'keep' or 'error', got "
                              f"{policy!r}{hint}")
        found = self.constant_metrics()
        if policy == "error" and found:
            entity, names = next(iter(found.items()))
            col = self.frame.loc[self.frame["entity"] == entity, names[0]].to_numpy()
            more = sum(len(v) for v in found.values()) - 1
            raise DataError(
                f"{where}: metric '{names[0]}' of entity '{entity}' is constant ({_show(col[0])}) "
                f"over all {len(col)} points"
                + (f" ({more} more constant metric(s))" if more else "")
                + "; a detector cannot learn its normal variation: drop it (--constant drop) "
                "or give more history"
            )
        return found

    def drop_constant(self, where: str = "training data", *, warn: bool = True) -> Dataset:
        """This dataset without the metrics that are constant for any entity.

        Metrics are shared by all entities, so one constant for a single entity goes for all.
        With ``warn`` a :class:`UserWarning` names them (and the entities). Refuses
        (:class:`DataError`) when every metric would go.

        >>> ts = pd.date_range("2026-01-01", periods=3, freq="1h", tz="UTC")
        >>> df = pd.DataFrame({"timestamp": ts, "cpu": [0.1, 0.5, 0.2], "disk2": 0.0})
        >>> Dataset.from_frame(df).drop_constant(warn=False).metrics
        ('cpu',)
        """
        found = self.constant_metrics()
        gone = [m for m in self.metrics if any(m in v for v in found.values())]
        if not gone:
            return self
        kept = tuple(m for m in self.metrics if m not in gone)
        if not kept:
            raise DataError(f"{where}: every metric is constant ({list(gone)}); nothing is left "
                            "to learn from: give more history")
        if warn:
            warnings.warn(f"{where}: dropped {len(gone)} constant metric(s): "
                          f"{constant_summary(found)}", UserWarning, stacklevel=2)
        return self.subset(metrics=kept, where=where)


def _entity_runs(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(same, starts, names)``: whether each row after the first has the entity of the row
    before it, the rows where a new entity starts (after row 0) and the entity of each run.
    Compared in the column's own (Arrow) type: converting the column to Python objects would
    cost ~0.2 us a row."""
    ent = frame["entity"]
    same = ent.eq(ent.shift()).to_numpy(dtype=bool, na_value=False)[1:]
    starts = np.flatnonzero(~same) + 1
    names = [str(e) for e in ent.iloc[np.r_[0, starts]].tolist()]
    return same, starts, names


def _sorted(frame: pd.DataFrame) -> bool:
    """Whether the rows are in (entity, timestamp) order: each entity's rows together, entities
    in name order, times increasing within an entity."""
    if len(frame) < 2:
        return True
    same, _, names = _entity_runs(frame)
    if not all(x < y for x, y in itertools.pairwise(names)):
        return False
    return bool((np.diff(frame["timestamp"].array.asi8)[same] > 0).all())


def _check_contract(frame: pd.DataFrame, metrics: tuple[str, ...], step: pd.Timedelta,
                    where: str) -> None:
    """Raise :class:`DataError` naming the first broken invariant of a dataset's frame."""
    if not metrics:
        raise DataError(f"{where}: a dataset needs at least one metric")
    dup = sorted({m for m in metrics if metrics.count(m) > 1})
    if dup:
        raise DataError(f"{where}: metric(s) {dup} named more than once")
    reserved = [m for m in metrics if m in _RESERVED]
    if reserved:
        raise DataError(f"{where}: {reserved} cannot be metrics (reserved column names)")
    missing = [c for c in ("timestamp", "entity", *metrics) if c not in frame.columns]
    if missing:
        raise DataError(f"{where}: missing column(s) {missing}; a dataset has timestamp, entity "
                        f"and its metrics {list(metrics)}")
    if not isinstance(step, pd.Timedelta) or step <= pd.Timedelta(0):
        raise DataError(f"{where}: step must be a positive pandas Timedelta, got {step!r}")
    ts = frame["timestamp"]
    dtype = ts.dtype
    if (not isinstance(dtype, pd.DatetimeTZDtype) or str(dtype.tz) != "UTC"
            or dtype.unit != "ns"):
        raise DataError(f"{where}: column 'timestamp' is {dtype}, not datetime64[ns, UTC]")
    ent_dtype = frame["entity"].dtype
    if not (ent_dtype == np.dtype(object) or isinstance(ent_dtype, pd.StringDtype)):
        raise DataError(f"{where}: column 'entity' is {ent_dtype}, not text")
    for m in metrics:
        if frame[m].dtype != np.float64:
            raise DataError(f"{where}: metric column {m!r} is {frame[m].dtype}, not float64")
    if len(frame):
        values = frame[list(metrics)].to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            row, col = (int(v[0]) for v in np.nonzero(bad))
            raise DataError(f"{where}: metric {metrics[col]!r} of entity "
                            f"{frame['entity'].iloc[row]!r} at "
                            f"{format_timestamp(ts.iloc[row])} is {_show(values[row, col])}; "
                            "a dataset's values are finite")
    if "is_anomaly" in frame.columns:
        lab = frame["is_anomaly"]
        if lab.dtype != np.int8 or not lab.isin([0, 1]).all():
            raise DataError(f"{where}: column 'is_anomaly' must be int8 0/1, got {lab.dtype}")
    if len(frame) < 2:
        return
    t = ts.array.asi8
    same, starts, names = _entity_runs(frame)
    for k, (x, y) in enumerate(itertools.pairwise(names)):
        if x < y:
            continue
        row = int(starts[k])
        if y in names[:k + 1]:
            raise DataError(f"{where}: rows are not grouped by entity: entity {y!r} appears "
                            f"again at row {row}")
        raise DataError(f"{where}: entities are not in name order: {y!r} at row {row} comes "
                        f"after {x!r}")
    step_ns = int(step.value)
    wrong = np.flatnonzero(same & (np.diff(t) != step_ns))
    if len(wrong):
        i = int(wrong[0])
        a, b = pd.Timestamp(int(t[i]), tz="UTC"), pd.Timestamp(int(t[i + 1]), tz="UTC")
        gap = int(t[i + 1] - t[i])
        how = ("repeats" if gap == 0 else "goes back" if gap < 0
               else f"skips {gap // step_ns - 1} step(s)" if gap % step_ns == 0
               else f"is off the {format_step(step)} grid")
        raise DataError(f"{where}: entity {frame['entity'].iloc[i]!r} jumps from "
                        f"{format_timestamp(a)} to "
                        f"{format_timestamp(b)} (row {i + 1}): it {how}; a dataset's rows are "
                        f"one step ({format_step(step)}) apart")


def constant_summary(found: dict[str, list[str]]) -> str:
    """``{entity: [metric, ...]}`` in words: ``m03, m07 (entity a); m03 (entity b)``.

    >>> constant_summary({"a": ["m03", "m07"]})
    'm03, m07 (entity a)'
    """
    return "; ".join(f"{', '.join(v)} (entity {e})" for e, v in found.items())
