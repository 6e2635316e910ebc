"""Labelled synthetic anomalies, injected into any :class:`~aws_anomaly.data.Dataset`.

Two layers:

* one small function per anomaly kind (:func:`spike`, :func:`dip`, :func:`level_shift`,
  :func:`drift`, :func:`variance_burst`, :func:`flatline`, :func:`contextual`,
  :func:`correlation_break`, :func:`capacity_loss`) that changes an ``(n, m)`` float array in
  place over a row range and some metric columns, with an explicit size;
* :func:`inject_anomalies`, which plans non-overlapping events spread evenly over each entity's
  timeline, sizes them from the entity's own noise and range (so they are real but not absurd
  deviations), applies them and returns the new dataset with ``is_anomaly`` / ``anomaly_type``
  labels plus one row per event.

The demo generator (:mod:`aws_anomaly.data.generator`) injects its anomalies through
:func:`inject_into_array`, the per-entity core of :func:`inject_anomalies`.

Sizes are relative to two robust scales per metric: ``noise`` (the step-to-step noise, from the
median absolute first difference) and ``spread`` (the 1st-99th percentile range of the series):
a spike is 25-50% of the spread and at least 6 noise sigmas; a level shift 15-30% of the spread;
a drift reaches 20-40% of the spread; a capacity loss removes 10-30% of the capacity, so
ratio-like metrics (demand / capacity) jump by 11-43% of their value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from aws_anomaly.data.dataset import Dataset
from aws_anomaly.errors import ConfigError, DataError

__all__ = [
    "ANOMALY_KINDS",
    "EVENT_COLUMNS",
    "Scale",
    "capacity_loss",
    "contextual",
    "correlation_break",
    "dip",
    "drift",
    "estimate_scale",
    "event_rows",
    "flatline",
    "inject_anomalies",
    "inject_into_array",
    "labels_from_events",
    "level_shift",
    "spike",
    "variance_burst",
]

ANOMALY_KINDS = ("spike", "dip", "level_shift", "drift", "variance_burst", "flatline",
                 "contextual", "correlation_break", "capacity_loss")
EVENT_COLUMNS = ("entity", "start", "end", "type", "metrics", "magnitude")

# Duration range of each kind, as wall-clock time (converted to steps, at least one).
_DURATIONS: dict[str, tuple[str, str]] = {
    "spike": ("5min", "15min"),
    "dip": ("5min", "20min"),
    "level_shift": ("1h", "4h"),
    "drift": ("2h", "6h"),
    "variance_burst": ("30min", "2h"),
    "flatline": ("1h", "3h"),
    "contextual": ("1h", "3h"),
    "correlation_break": ("1h", "3h"),
    "capacity_loss": ("15min", "90min"),
}


# ---------------------------------------------------------------------- the kinds
_DURATION_S = {k: (pd.Timedelta(a).total_seconds(), pd.Timedelta(b).total_seconds())
               for k, (a, b) in _DURATIONS.items()}
_TWO_HOURS, _TWO_DAYS, _EIGHT_DAYS = pd.Timedelta("2h"), pd.Timedelta("2D"), pd.Timedelta("8D")


def _cols(cols: Sequence[int] | int) -> list[int]:
    return [int(cols)] if isinstance(cols, int | np.integer) else [int(c) for c in cols]


def spike(x: np.ndarray, rows: slice, cols: Sequence[int] | int,
          magnitude: float | np.ndarray) -> None:
    """Add a short positive burst of ``magnitude`` (per column) over ``rows``.

    >>> x = np.zeros((5, 2)); spike(x, slice(2, 3), [1], 0.3); x[:, 1].tolist()
    [0.0, 0.0, 0.3, 0.0, 0.0]
    """
    x[rows, _cols(cols)] += np.abs(magnitude)


def dip(x: np.ndarray, rows: slice, cols: Sequence[int] | int,
        magnitude: float | np.ndarray) -> None:
    """Subtract a short burst of ``magnitude`` (evictions, a crash loop emptying requests).

    >>> x = np.ones((4, 1)); dip(x, slice(1, 3), 0, 0.5); x[:, 0].tolist()
    [1.0, 0.5, 0.5, 1.0]
    """
    x[rows, _cols(cols)] -= np.abs(magnitude)


def level_shift(x: np.ndarray, rows: slice, cols: Sequence[int] | int,
                magnitude: float | np.ndarray) -> None:
    """Shift the level by ``magnitude`` (signed) for the whole of ``rows``.

    >>> x = np.zeros((4, 1)); level_shift(x, slice(1, 4), 0, -0.2); x[:, 0].tolist()
    [0.0, -0.2, -0.2, -0.2]
    """
    x[rows, _cols(cols)] += magnitude


def drift(x: np.ndarray, rows: slice, cols: Sequence[int] | int,
          magnitude: float | np.ndarray) -> None:
    """A gradual leak: a linear ramp reaching ``magnitude`` at the last row of ``rows``.

    >>> x = np.zeros((5, 1)); drift(x, slice(1, 5), 0, 0.4); np.round(x[:, 0], 2).tolist()
    [0.0, 0.1, 0.2, 0.3, 0.4]
    """
    n = len(range(*rows.indices(len(x))))
    ramp = np.arange(1, n + 1, dtype=np.float64) / n
    x[rows, _cols(cols)] += ramp[:, None] * np.atleast_1d(magnitude)[None, :]


def variance_burst(x: np.ndarray, rows: slice, cols: Sequence[int] | int, sigma: float |
                   np.ndarray, rng: np.random.Generator) -> None:
    """Add zero-mean Gaussian noise of standard deviation ``sigma`` (an unstable workload).

    >>> x = np.zeros((200, 1)); variance_burst(x, slice(0, 200), 0, 1.0, np.random.default_rng(0))
    >>> bool(0.8 < x.std() < 1.2)
    True
    """
    c = _cols(cols)
    n = len(range(*rows.indices(len(x))))
    x[rows, c] += rng.normal(0.0, 1.0, size=(n, len(c))) * np.atleast_1d(sigma)[None, :]


def flatline(x: np.ndarray, rows: slice, cols: Sequence[int] | int) -> None:
    """Freeze the columns at the value just before ``rows`` (a stuck exporter).

    >>> x = np.arange(5.0)[:, None]; flatline(x, slice(2, 5), 0); x[:, 0].tolist()
    [0.0, 1.0, 1.0, 1.0, 1.0]
    """
    start = rows.indices(len(x))[0]
    c = _cols(cols)
    x[rows, c] = x[max(start - 1, 0), c]


def contextual(x: np.ndarray, rows: slice, cols: Sequence[int] | int, source: np.ndarray) -> None:
    """Replace the columns by ``source`` rows: values normal at another time (day load at night).

    ``source`` is an ``(len(rows), len(cols))`` array taken from the same series at a busy time.

    >>> x = np.zeros((4, 1)); contextual(x, slice(1, 3), 0, np.array([[0.7], [0.8]]))
    >>> x[:, 0].tolist()
    [0.0, 0.7, 0.8, 0.0]
    """
    x[rows, _cols(cols)] = source


def correlation_break(x: np.ndarray, rows: slice, moved: int, flat: int, magnitude: float,
                      noise: float, rng: np.random.Generator) -> None:
    """Move column ``moved`` by ``magnitude`` while its usual partner ``flat`` stays level.

    Pods scaling up without their CPU requests (best-effort pods), or the reverse. The moving
    column ramps over the first few rows and holds; the flat one keeps its pre-event level plus
    its usual noise (so it is not a flatline).

    >>> x = np.tile(np.arange(6.0)[:, None], (1, 2))
    >>> correlation_break(x, slice(2, 6), 0, 1, 1.0, 0.0, np.random.default_rng(0))
    >>> x[:, 0].tolist(), x[:, 1].tolist()
    ([0.0, 1.0, 2.5, 4.0, 5.0, 6.0], [0.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    """
    start, stop, _ = rows.indices(len(x))
    n = stop - start
    ramp = np.minimum(np.arange(1, n + 1) / min(n, 2), 1.0)
    x[start:stop, moved] += magnitude * ramp
    x[start:stop, flat] = x[max(start - 1, 0), flat] + rng.normal(0.0, noise, size=n)


def capacity_loss(x: np.ndarray, rows: slice, cols: Sequence[int] | int, fraction: float) -> None:
    """Lose ``fraction`` of the capacity (nodes fail): demand/capacity ratios jump together.

    >>> x = np.full((3, 2), 0.5); capacity_loss(x, slice(1, 2), [0, 1], 0.2); x[1].tolist()
    [0.625, 0.625]
    """
    x[rows, _cols(cols)] /= 1.0 - fraction


# ---------------------------------------------------------------------- planning
@dataclass(frozen=True)
class Scale:
    """Robust scales of one entity's metrics: step noise, 1-99% spread, median level."""

    noise: np.ndarray
    spread: np.ndarray
    level: np.ndarray


def estimate_scale(values: np.ndarray) -> Scale:
    """Robust per-column scales of an ``(n, m)`` array (NaN ignored), or of a stack of them.

    >>> x = np.column_stack([np.linspace(0, 1, 101), np.full(101, 2.0)])
    >>> s = estimate_scale(x); np.round(s.spread, 2).tolist(), s.level.tolist()
    ([0.98, 0.2], [0.5, 2.0])
    """
    v = np.asarray(values, dtype=np.float64)
    # The nan-aware reductions are ~10x slower on small arrays: use them only when needed.
    has_nan = bool(np.isnan(v).any())
    median = np.nanmedian if has_nan else np.median
    # Works on (n, m) and, stacked, on (entities, n, m): reductions run over the time axis.
    d = np.diff(v, axis=-2)
    if d.shape[-2]:
        mad = median(np.abs(d - median(d, axis=-2, keepdims=True)), axis=-2)
        noise = 1.4826 * mad / np.sqrt(2.0)
    else:
        noise = np.zeros(v.shape[:-2] + v.shape[-1:])
    p1, p99 = (np.nanpercentile if has_nan else np.percentile)(v, [1, 99], axis=-2)
    level = median(v, axis=-2)
    spread = p99 - p1
    # A constant (or nearly) metric still gets a usable size: 10% of its level, or 1e-3.
    floor = np.maximum(np.maximum(np.abs(level) * 0.1, noise * 10), 1e-3)
    spread = np.where(spread > 0, spread, floor)
    noise = np.where(noise > 0, noise, spread * 1e-3)
    return Scale(noise=noise, spread=spread, level=level)


@dataclass(frozen=True)
class _Event:
    start: int
    length: int
    kind: str
    cols: tuple[int, ...]
    magnitude: float


def _context_profile(timestamps: pd.DatetimeIndex, values: np.ndarray, scale: Scale,
                     step: pd.Timedelta) -> tuple[np.ndarray, np.ndarray] | None:
    """Busy and quiet time-of-week (or day) bins, or None when the data has no usable cycle."""
    span = timestamps[-1] - timestamps[0]
    if step > _TWO_HOURS or span < _TWO_DAYS:
        return None
    weekly = span >= _EIGHT_DAYS
    hour = np.asarray(timestamps.hour)
    bins = hour + 24 * np.asarray(timestamps.day_of_week) if weekly else hour
    nb = 168 if weekly else 24
    z = ((values - scale.level) / scale.spread).mean(axis=1)
    total = np.bincount(bins, weights=z, minlength=nb)
    count = np.bincount(bins, minlength=nb)
    seen = count > 0
    prof = np.full(nb, np.nan)
    prof[seen] = total[seen] / count[seen]
    lo, hi = np.nanpercentile(prof, [25, 90])
    quiet = seen & (prof <= lo)
    busy = seen & (prof >= hi)
    # The cycle must be a real deviation: busy vs quiet well beyond the step noise.
    contrast = np.nanmean(prof[busy]) - np.nanmean(prof[quiet])
    if not contrast > 6 * float(np.mean(scale.noise / scale.spread)) or contrast < 0.05:
        return None
    return quiet[bins], busy[bins]


def _pick_cols(kind: str, m: int, rng: np.random.Generator) -> tuple[int, ...]:
    if kind in ("contextual", "capacity_loss"):
        return tuple(range(m))
    if kind == "correlation_break":
        pair = rng.choice(m, size=2, replace=False)
        return (int(pair[0]), int(pair[1]))
    if kind == "flatline":
        k = m if rng.random() < 0.5 else 1
    elif kind == "variance_burst":
        k = int(rng.integers(1, m + 1))
    else:
        k = 1 if m == 1 or rng.random() < 0.6 else 2
    return tuple(sorted(int(c) for c in rng.choice(m, size=k, replace=False)))


def _free_starts(forbidden: np.ndarray, lo: int, hi: int, length: int) -> np.ndarray:
    """Starts s in [lo, hi - length] such that rows s-1 .. s+length are all free."""
    if hi - lo < length:
        return np.empty(0, dtype=np.int64)
    f = np.concatenate(([0], np.cumsum(forbidden.astype(np.int64))))
    s = np.arange(lo, hi - length + 1)
    a = np.maximum(s - 1, 0)
    b = np.minimum(s + length + 1, len(forbidden))
    return s[(f[b] - f[a]) == 0]


def inject_into_array(
    x: np.ndarray,
    timestamps: pd.DatetimeIndex,
    step: pd.Timedelta,
    *,
    kinds: Sequence[str],
    n_events: int,
    rng: np.random.Generator,
    forbidden: np.ndarray | None = None,
    clip: tuple[float, float] | None = None,
    scale: Scale | None = None,
) -> tuple[np.ndarray, np.ndarray, list[_Event]]:
    """Inject ``n_events`` anomalies into one entity's ``(n, m)`` array, in place.

    The timeline is cut into ``n_events`` equal slots and each slot gets one event of the next
    kind in a shuffled, balanced cycle of ``kinds``, at a random free position (rows in
    ``forbidden`` and their neighbours are avoided, so events never touch). Kinds that do not
    apply to this entity (``correlation_break`` with one metric, ``contextual`` without a daily
    cycle) are replaced by other requested kinds, and so is a kind that finds no room in its
    slot (a contextual anomaly needs a free quiet time); a slot where nothing fits (all taken
    by existing anomalies) gets no event.

    Returns
    -------
    labels, types, events
        ``is_anomaly`` (int8 (n,)), ``anomaly_type`` (object (n,)) and the events placed.

    Examples
    --------
    >>> ts = pd.date_range("2026-01-01", periods=100, freq="5min", tz="UTC")
    >>> x = np.random.default_rng(0).normal(0.5, 0.01, (100, 2))
    >>> lab, typ, events = inject_into_array(x, ts, pd.Timedelta("5min"), kinds=["dip"],
    ...                                      n_events=2, rng=np.random.default_rng(1))
    >>> [e.kind for e in events], int(lab.sum()) == sum(e.length for e in events)
    (['dip', 'dip'], True)
    """
    n, m = x.shape
    kinds = list(kinds)
    original = x.copy()
    scale = estimate_scale(original) if scale is None else scale
    blocked = np.zeros(n, dtype=bool) if forbidden is None else forbidden.astype(bool).copy()
    labels = np.zeros(n, dtype=np.int8)
    types = np.full(n, "", dtype=object)
    profile = _context_profile(timestamps, original, scale, step) if "contextual" in kinds \
        else None
    usable = [k for k in kinds if not ((k == "correlation_break" and m < 2)
                                       or (k == "contextual" and profile is None))]
    if not usable:
        raise DataError(f"none of the anomaly kinds {kinds} applies to this data "
                        "(correlation_break needs two metrics; contextual needs >= 2 days of "
                        "data with a daily cycle at a step <= 2h)")
    cycle: list[str] = []
    events: list[_Event] = []
    slot = n / n_events
    step_s = step.total_seconds()
    for i in range(n_events):
        if not cycle:
            cycle = [usable[j] for j in rng.permutation(len(usable))]
        first_kind = cycle.pop()
        lo, hi = round(i * slot), round((i + 1) * slot)
        lo_s = max(lo, 1)  # flatline and friends read the row before the event
        tried = [first_kind]
        while tried:
            kind = tried.pop(0)
            placed = _place(kind, x, original, blocked, lo_s, hi, step_s, m, scale, rng, profile)
            if placed is not None:
                start, length, cols, mag = placed
                rows = slice(start, start + length)
                if clip is not None:
                    x[rows] = np.clip(x[rows], clip[0], clip[1])
                blocked[rows] = True
                labels[rows] = 1
                types[rows] = kind
                events.append(_Event(start, length, kind, cols, mag))
                break
            if kind == first_kind:
                # This slot cannot take that kind (e.g. no quiet hours free for a contextual
                # anomaly): try the others, in random order, rather than drop the event.
                others = [k for k in usable if k != first_kind]
                tried = [others[j] for j in rng.permutation(len(others))]
    return labels, types, events


def _place(kind: str, x: np.ndarray, original: np.ndarray, blocked: np.ndarray, lo: int, hi: int,
           step_s: float, m: int, scale: Scale, rng: np.random.Generator,
           profile: tuple[np.ndarray, np.ndarray] | None
           ) -> tuple[int, int, tuple[int, ...], float] | None:
    """Place and apply one event of ``kind`` in rows ``[lo, hi)``; None when it cannot."""
    dmin, dmax = (d / step_s for d in _DURATION_S[kind])
    length = max(1, round(rng.uniform(dmin, dmax)))
    length = min(length, max(1, hi - lo - 2))
    starts = _free_starts(blocked, lo, hi, length)
    if kind == "contextual" and profile is not None:
        starts = starts[profile[0][starts]]
    if len(starts) == 0:
        return None
    start = int(starts[rng.integers(len(starts))])
    cols = _pick_cols(kind, m, rng)
    mag = _apply(kind, x, original, start, length, cols, scale, rng, profile)
    if mag is None:
        return None
    return start, length, cols, mag


def _apply(kind: str, x: np.ndarray, original: np.ndarray, start: int, length: int,
           cols: tuple[int, ...], scale: Scale, rng: np.random.Generator,
           profile: tuple[np.ndarray, np.ndarray] | None) -> float | None:
    rows = slice(start, start + length)
    c = list(cols)
    spread, noise = scale.spread[c], scale.noise[c]
    if kind in ("spike", "dip"):
        mag = np.maximum(spread * rng.uniform(0.25, 0.5, len(c)), 6 * noise)
        (spike if kind == "spike" else dip)(x, rows, c, mag)
        return float(mag[0] if kind == "spike" else -mag[0])
    if kind == "level_shift":
        sign = rng.choice([-1.0, 1.0])
        mag = sign * np.maximum(spread * rng.uniform(0.15, 0.3, len(c)), 5 * noise)
        level_shift(x, rows, c, mag)
        return float(mag[0])
    if kind == "drift":
        sign = 1.0 if rng.random() < 0.8 else -1.0  # leaks mostly grow
        mag = sign * np.maximum(spread * rng.uniform(0.2, 0.4, len(c)), 8 * noise)
        drift(x, rows, c, mag)
        return float(mag[0])
    if kind == "variance_burst":
        sigma = np.maximum(spread * rng.uniform(0.05, 0.1, len(c)), 5 * noise)
        variance_burst(x, rows, c, sigma, rng)
        return float(sigma[0])
    if kind == "flatline":
        flatline(x, rows, c)
        return float("nan")
    if kind == "capacity_loss":
        frac = float(rng.uniform(0.1, 0.3))
        capacity_loss(x, rows, c, frac)
        return frac
    if kind == "correlation_break":
        moved, flat = c
        mag = float(max(spread[0] * rng.uniform(0.2, 0.35), 6 * noise[0]))
        correlation_break(x, rows, moved, flat, mag, float(noise[1]), rng)
        return mag
    if kind == "contextual":
        if profile is None:
            return None
        busy = np.flatnonzero(profile[1][: max(start - length, 0) + 1])
        # The most recent busy time before the event whose window ends before it.
        busy = busy[busy + length <= start]
        if len(busy) == 0:
            busy_after = np.flatnonzero(profile[1])
            busy = busy_after[busy_after >= start + length]
            busy = busy[busy + length <= len(x)]
            if len(busy) == 0:
                return None
            src = int(busy[0])
        else:
            src = int(busy[-1])
        source = original[src:src + length, c]
        contextual(x, rows, c, source)
        return float(np.mean(source[:, 0] - original[rows, c[0]]))
    raise ConfigError(f"unknown anomaly kind {kind!r}; kinds are {list(ANOMALY_KINDS)}")


def _check_kinds(kinds: Sequence[str] | None) -> list[str]:
    if kinds is None:
        return list(ANOMALY_KINDS)
    if isinstance(kinds, str):
        kinds = [kinds]
    unknown = [k for k in kinds if k not in ANOMALY_KINDS]
    if unknown or not kinds:
        raise ConfigError(f"unknown anomaly kind(s) {unknown or kinds}; kinds are "
                          f"{list(ANOMALY_KINDS)}")
    return list(dict.fromkeys(kinds))


def _expected_length(kinds: Sequence[str], step: pd.Timedelta) -> float:
    s = step.total_seconds()
    return float(np.mean([max(1.0, (pd.Timedelta(a).total_seconds()
                                    + pd.Timedelta(b).total_seconds()) / 2 / s)
                          for a, b in (_DURATIONS[k] for k in kinds)]))


def _events_frame(rows: list[dict]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame({
            "entity": pd.Series([], dtype=str),
            "start": pd.Series([], dtype="datetime64[ns, UTC]"),
            "end": pd.Series([], dtype="datetime64[ns, UTC]"),
            "type": pd.Series([], dtype=str),
            "metrics": pd.Series([], dtype=str),
            "magnitude": pd.Series([], dtype=np.float64),
        })
    out = pd.DataFrame(rows, columns=list(EVENT_COLUMNS))
    out["start"] = pd.to_datetime(out["start"], utc=True).dt.as_unit("ns")
    out["end"] = pd.to_datetime(out["end"], utc=True).dt.as_unit("ns")
    out["magnitude"] = out["magnitude"].astype(np.float64)
    return out.sort_values(["entity", "start"], kind="stable").reset_index(drop=True)


def event_rows(entity: str, timestamps: pd.DatetimeIndex, metrics: Sequence[str],
               events: Sequence[_Event]) -> list[dict]:
    """Rows of the events frame for one entity (``end`` is the last anomalous timestamp).

    >>> ts = pd.date_range("2026-01-01", periods=4, freq="5min", tz="UTC")
    >>> row = event_rows("a", ts, ["cpu", "mem"], [_Event(1, 2, "spike", (1,), 0.2)])[0]
    >>> row["metrics"], str(row["start"]), str(row["end"])
    ('mem', '2026-01-01 00:05:00+00:00', '2026-01-01 00:10:00+00:00')
    """
    return [{"entity": entity, "start": timestamps[e.start],
             "end": timestamps[e.start + e.length - 1], "type": e.kind,
             "metrics": ";".join(metrics[c] for c in e.cols), "magnitude": e.magnitude}
            for e in events]


def inject_anomalies(
    dataset: Dataset,
    *,
    kinds: Sequence[str] | None = None,
    n_events: int | None = None,
    rate: float | None = None,
    seed: int = 0,
    rng: np.random.Generator | None = None,
    clip: tuple[float, float] | None = None,
    entities: Sequence[str] | None = None,
) -> tuple[Dataset, pd.DataFrame]:
    """Inject labelled anomalies into a dataset.

    Parameters
    ----------
    dataset
        Any valid dataset, on any metric columns. Rows already labelled anomalous are kept and
        new events avoid them.
    kinds
        Kinds to use (a balanced mix, in random order); default all of :data:`ANOMALY_KINDS`.
    n_events
        Events per entity. Default: one per day of data (at least one).
    rate
        Alternatively, the target share of anomalous points per entity (e.g. ``0.05``); the
        number of events follows from the kinds' mean duration.
    seed, rng
        Randomness: ``rng`` when given, else ``numpy.random.default_rng(seed)``.
    clip
        ``(low, high)`` bounds for the changed values, e.g. ``(0, 1)`` for ratios.
    entities
        Entities to change (default all).

    Returns
    -------
    dataset, events
        The new dataset (with labels) and a frame with one row per event: ``entity``,
        ``start``, ``end`` (inclusive), ``type``, ``metrics`` (";"-joined), ``magnitude``
        (the change in metric units of the first metric; the lost capacity fraction for
        ``capacity_loss``; the noise sigma for ``variance_burst``; NaN for ``flatline``).

    Examples
    --------
    >>> ts = pd.date_range("2026-01-01", periods=288, freq="5min", tz="UTC")
    >>> x = 0.5 + 0.1 * np.sin(np.arange(288) / 20)
    >>> ds = Dataset.from_frame(pd.DataFrame({"timestamp": ts, "load": x}))
    >>> out, events = inject_anomalies(ds, kinds=["spike", "level_shift"], n_events=4, seed=1)
    >>> len(events), sorted(set(events["type"]))
    (4, ['level_shift', 'spike'])
    >>> int(out.frame["is_anomaly"].sum()) == int(sum(
    ...     ((out.frame["timestamp"] >= e.start) & (out.frame["timestamp"] <= e.end)).sum()
    ...     for e in events.itertuples()))
    True
    """
    if not isinstance(dataset, Dataset):
        raise DataError(f"inject_anomalies expects a Dataset, got {type(dataset).__name__}")
    kinds = _check_kinds(kinds)
    if n_events is not None and rate is not None:
        raise ConfigError("pass n_events or rate, not both")
    if n_events is not None and (isinstance(n_events, bool) or not isinstance(
            n_events, int | np.integer) or n_events < 1):
        raise ConfigError(f"n_events must be a positive integer, got {n_events!r}")
    if rate is not None and not 0 < rate < 0.5:
        raise ConfigError(f"rate must be a share of points in (0, 0.5), got {rate!r}")
    if clip is not None and not clip[0] < clip[1]:
        raise ConfigError(f"clip must be (low, high) with low < high, got {clip!r}")
    rng = rng if rng is not None else np.random.default_rng(seed)
    targets = list(dataset.entities) if entities is None else list(entities)
    unknown = sorted(set(targets) - set(dataset.entities))
    if unknown:
        raise DataError(f"unknown entities {unknown}; entities are {list(dataset.entities)}")
    frame = dataset.frame.copy()
    metrics = list(dataset.metrics)
    if not dataset.has_labels:
        frame["is_anomaly"] = np.zeros(len(frame), dtype=np.int8)
        frame["anomaly_type"] = ""
    ent = frame["entity"].to_numpy()
    rows: list[dict] = []
    for entity in targets:
        idx = np.flatnonzero(ent == entity)
        x = frame[metrics].to_numpy(dtype=np.float64)[idx]
        ts = pd.DatetimeIndex(frame["timestamp"].iloc[idx])
        n = len(idx)
        if n_events is not None:
            k = n_events
        elif rate is not None:
            k = max(1, round(rate * n / _expected_length(kinds, dataset.step)))
        else:
            k = max(1, round((ts[-1] - ts[0]) / pd.Timedelta("1D")))
        if n < 4 * k:
            raise DataError(f"entity '{entity}' has {n} rows, too few for {k} events "
                            "(at least 4 rows per event); ask for fewer events")
        old = frame["is_anomaly"].to_numpy()[idx] == 1
        lab, typ, events = inject_into_array(x, ts, dataset.step, kinds=kinds, n_events=k,
                                             rng=rng, forbidden=old, clip=clip)
        frame.loc[idx, metrics] = x
        new = lab == 1
        frame.loc[idx[new], "is_anomaly"] = np.int8(1)
        frame.loc[idx[new], "anomaly_type"] = typ[new].astype(str)
        rows += event_rows(entity, ts, metrics, events)
    frame["is_anomaly"] = frame["is_anomaly"].astype(np.int8)
    frame["anomaly_type"] = frame["anomaly_type"].astype(str)
    return (Dataset.checked(frame, metrics=dataset.metrics, step=dataset.step,
                            where="inject_anomalies"), _events_frame(rows))


def labels_from_events(dataset: Dataset, events: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``is_anomaly`` and ``anomaly_type`` arrays for ``dataset.frame`` implied by ``events``.

    Handy to check labels, or to label a dataset from an incident list.

    >>> ts = pd.date_range("2026-01-01", periods=4, freq="5min", tz="UTC")
    >>> ds = Dataset.from_frame(pd.DataFrame({"timestamp": ts, "x": [1.0, 2, 3, 4]}))
    >>> ev = pd.DataFrame({"entity": ["default"], "start": [ts[1]], "end": [ts[2]],
    ...                    "type": ["spike"]})
    >>> lab, typ = labels_from_events(ds, ev); lab.tolist(), typ.tolist()
    ([0, 1, 1, 0], ['', 'spike', 'spike', ''])
    """
    f = dataset.frame
    lab = np.zeros(len(f), dtype=np.int8)
    typ = np.full(len(f), "", dtype=object)
    ent = f["entity"].to_numpy()
    ts = f["timestamp"]
    for e in events.itertuples(index=False):
        m = (ent == e.entity) & (ts >= pd.Timestamp(e.start)).to_numpy() \
            & (ts <= pd.Timestamp(e.end)).to_numpy()
        lab[m] = 1
        typ[m] = e.type
    return lab, typ

