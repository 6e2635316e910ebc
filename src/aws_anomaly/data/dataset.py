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

Row order: the rows of one entity must come in time order; a frame whose rows were shuffled is
rejected ("timestamps are not increasing"), because a time series that arrives out of order
usually means two exports were concatenated by mistake. Entities may be interleaved: the result
is ordered by entity name, then time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from aws_anomaly.errors import ConfigError, DataError

__all__ = [
    "DEFAULT_ENTITY",
    "LABEL_COLUMNS",
    "Dataset",
    "GapPolicy",
    "ResamplePolicy",
    "format_timestamp",
    "parse_timestamps",
]

GapPolicy = Literal["ffill", "interpolate", "error"]
ResamplePolicy = Literal["error", "mean", "last"]
LABEL_COLUMNS = ("is_anomaly", "anomaly_type")
DEFAULT_ENTITY = "default"
_RESERVED = {"timestamp", "entity", *LABEL_COLUMNS}
_GAP_POLICIES = ("ffill", "interpolate", "error")
_RESAMPLE_POLICIES = ("error", "mean", "last")
# Unix seconds above this are milliseconds by mistake (year 5138).
_MAX_UNIX_SECONDS = 1e11


def format_timestamp(ts: pd.Timestamp) -> str:
    """ISO 8601 UTC text for messages and files: ``2026-03-01T10:05:00Z``.

    >>> format_timestamp(pd.Timestamp("2026-03-01 10:05", tz="UTC"))
    '2026-03-01T10:05:00Z'
    """
    ts = pd.Timestamp(ts)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    if ts.microsecond == 0 and ts.nanosecond == 0:
        return ts.strftime("%Y-%m-%dT%H:%M:%SZ")
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_fmt = format_timestamp


def _show(v: object) -> str:
    """repr of a cell for messages, without numpy's ``np.int64(...)`` wrapping."""
    return repr(v.item() if isinstance(v, np.generic) else v)


def parse_timestamps(raw: pd.Series, where: str) -> pd.Series:
    """Parse a timestamp column to ``datetime64[ns, UTC]``.

    Accepts datetimes (naive ones are taken as UTC), unix seconds (as Prometheus exports them;
    rounded to the millisecond, Prometheus' resolution) and ISO 8601 text.

    >>> [str(t) for t in parse_timestamps(pd.Series([1767225600, 1767225900.5]), "x")]
    ['2026-01-01 00:00:00+00:00', '2026-01-01 00:05:00.500000+00:00']
    >>> parse_timestamps(pd.Series(["2026-01-01T00:05:00Z"]), "x").dtype
    datetime64[ns, UTC]
    """
    if pd.api.types.is_datetime64_any_dtype(raw):
        ts = raw
        if getattr(ts.dt, "tz", None) is None:
            ts = ts.dt.tz_localize("UTC")
        ts = ts.dt.tz_convert("UTC")
        bad = ts.isna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"{where}: timestamp in row {row} is missing (NaT)")
        return ts.dt.as_unit("ns")
    if pd.api.types.is_bool_dtype(raw):
        raise DataError(f"{where}: timestamps are booleans; use ISO 8601 or unix seconds")
    if pd.api.types.is_numeric_dtype(raw):
        secs = raw.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(secs)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"{where}: timestamp in row {row} is not a number: "
                            f"{_show(raw.iloc[row])}")
        big = np.abs(secs) > _MAX_UNIX_SECONDS
        if big.any():
            row = int(np.flatnonzero(big)[0])
            raise DataError(
                f"{where}: timestamp {_show(raw.iloc[row])} in row {row} is not plausible unix "
                "seconds (after year 5000); milliseconds? divide by 1000"
            )
        ms = np.round(secs * 1000.0).astype(np.int64)
        out = pd.to_datetime(ms, unit="ms", utc=True).as_unit("ns")
        return pd.Series(out, index=raw.index)
    text = raw.astype("string")
    try:
        parsed = pd.to_datetime(text, utc=True, errors="coerce", format="mixed")
    except (ValueError, OverflowError, TypeError) as exc:
        raise DataError(f"{where}: cannot parse timestamps: {exc}") from exc
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{where}: cannot parse timestamp {_show(raw.iloc[row])} in row {row} "
            f"({int(bad.sum())} unparsable in all); use ISO 8601, e.g. 2026-03-01T10:05:00Z"
        )
    return parsed.dt.as_unit("ns")


def _as_step(step: str | pd.Timedelta, source: str) -> pd.Timedelta:
    try:
        td = pd.Timedelta(step)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"{source}: step {step!r} is not a duration; use e.g. '30s', '5min', '1h'"
        ) from exc
    if pd.isna(td) or td <= pd.Timedelta(0):
        raise ConfigError(f"{source}: step must be a positive duration, got {step!r}")
    return td.as_unit("ns")


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) of each run of True in a boolean array."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return edges[0::2], edges[1::2]


def _aggregate(t: np.ndarray, vals: np.ndarray, lab: np.ndarray | None, typ: np.ndarray | None,
               step_ns: int, how: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None,
                                                 np.ndarray | None]:
    """Aggregate time-ordered rows into epoch-aligned buckets ``[b, b + step)``.

    Metrics: mean or last of the non-NaN values (NaN when none). Labels: anomalous when any row
    is, with the last non-empty type.
    """
    bucket = np.floor_divide(t, step_ns) * step_ns
    starts = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    ok = ~np.isnan(vals)
    if how == "mean":
        sums = np.add.reduceat(np.where(ok, vals, 0.0), starts, axis=0)
        counts = np.add.reduceat(ok.astype(np.int64), starts, axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    else:
        idx = np.arange(len(t))[:, None]
        last_ok = np.maximum.reduceat(np.where(ok, idx, -1), starts, axis=0)
        out = np.where(last_ok >= 0, vals[np.maximum(last_ok, 0), np.arange(vals.shape[1])],
                       np.nan)
    if lab is not None and typ is not None:
        lab = np.maximum.reduceat(lab, starts)
        typed = np.where(typ != "", np.arange(len(t)), -1)
        last_typed = np.maximum.reduceat(typed, starts)
        typ = np.where(last_typed >= 0, typ[np.maximum(last_typed, 0)], "")
        typ = np.where(lab == 1, np.where(typ == "", "unknown", typ), "")
    return bucket[starts], out, lab, typ


def _regularise(t: np.ndarray, vals: np.ndarray, lab: np.ndarray | None, typ: np.ndarray | None,
                entity: str, metrics: list[str], step: pd.Timedelta, gap_policy: GapPolicy,
                max_gap_steps: int | None, resample: ResamplePolicy, source: str,
                rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None,
                                           np.ndarray | None]:
    """Put one entity (rows in time order, no duplicates) on its grid and fill gaps.

    Plain numpy on (ns timestamps, values, labels, types): this runs once per entity, and
    pandas' per-call overhead dominated.
    """
    where = f"{source}: entity '{entity}'"
    step_ns = step.value
    has_labels = lab is not None and typ is not None

    def ts(v: int) -> str:
        return _fmt(pd.Timestamp(int(v), unit="ns", tz="UTC"))

    off_grid = (t - t[0]) % step_ns != 0
    if off_grid.any():
        if resample == "error":
            pos = int(np.flatnonzero(off_grid)[0])
            raise DataError(
                f"{where}: irregular time step: {ts(t[pos])} (row {rows[pos]}) is not on the "
                f"{step} grid starting at {ts(t[0])}; pass resample='mean' or 'last' to "
                "aggregate onto the grid"
            )
        t, vals, lab, typ = _aggregate(t, vals, lab, typ, step_ns, resample)
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
                f"{ts(grid[int(np.argmax(col))])}; set gap_policy to 'ffill' or 'interpolate'"
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
                    "max_gap_steps or split the data at the outage"
                )
        # Leading points before a metric's first value cannot be filled causally: trim them.
        first = int(np.argmax(~missing, axis=0).max())
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
    constructor itself does not validate.

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

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        *,
        metrics: Sequence[str] | None = None,
        step: str | pd.Timedelta | None = None,
        gap_policy: GapPolicy = "ffill",
        max_gap_steps: int | None = 36,
        resample: ResamplePolicy = "error",
        source: str = "input",
    ) -> Dataset:
        """Validate a wide frame (``timestamp``, optional ``entity``, metric columns, labels).

        Parameters
        ----------
        df
            The rows. The rows of each entity must be in time order (see the module docstring).
        metrics
            Metric columns to keep. ``None`` takes every numeric column that is not reserved.
            Non-numeric columns that are neither metrics nor reserved are an error, so a typo
            in a column name is never silently ignored.
        step
            Grid step; inferred as the most common difference between consecutive rows of an
            entity when ``None``.
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
            What to do with timestamps off the grid: ``"error"``, or aggregate each grid bucket
            ``[t, t + step)`` with ``"mean"`` / ``"last"``; buckets are aligned to multiples of
            ``step`` since the Unix epoch, so all entities share one grid. Labels: a bucket is
            anomalous when any of its rows is, with the last non-empty type.
        source
            Where the data came from, used in error messages (a file path, a query...).

        Raises
        ------
        DataError
            The data is malformed; the message names the column, entity, row and time.
        ConfigError
            An option has a value outside what is allowed.
        """
        if gap_policy not in _GAP_POLICIES:
            raise ConfigError(f"gap_policy must be one of {list(_GAP_POLICIES)}, "
                              f"got {gap_policy!r}")
        if resample not in _RESAMPLE_POLICIES:
            raise ConfigError(f"resample must be one of {list(_RESAMPLE_POLICIES)}, "
                              f"got {resample!r}")
        if max_gap_steps is not None and (isinstance(max_gap_steps, bool) or
                                          not isinstance(max_gap_steps, int | np.integer)
                                          or max_gap_steps < 0):
            raise ConfigError(f"max_gap_steps must be an integer >= 0 or None, "
                              f"got {max_gap_steps!r}")
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
        df["timestamp"] = parse_timestamps(df["timestamp"], source)
        if "entity" not in df.columns:
            df["entity"] = DEFAULT_ENTITY
        ent_na = df["entity"].isna().to_numpy()
        if ent_na.any():
            row = int(np.flatnonzero(ent_na)[0])
            raise DataError(f"{source}: 'entity' is empty in row {row}")
        df["entity"] = df["entity"].astype(str)
        blank = (df["entity"].str.strip() == "").to_numpy()
        if blank.any():
            row = int(np.flatnonzero(blank)[0])
            raise DataError(f"{source}: 'entity' is blank in row {row}; name every entity")

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
                    f"in row {row}"
                )
            arr = col.to_numpy(dtype=np.float64, na_value=np.nan)
            inf = np.isinf(arr)
            if inf.any():
                row = int(np.flatnonzero(inf)[0])
                raise DataError(
                    f"{source}: metric '{m}' has {int(inf.sum())} infinite value(s), first in "
                    f"row {row} at {_fmt(df['timestamp'].iloc[row])}; infinities are not "
                    "measurements: fix or drop those rows"
                )
            df[m] = arr

        has_labels = "is_anomaly" in df.columns or "anomaly_type" in df.columns
        if has_labels:
            cls._check_labels(df, source)

        keep = ["timestamp", "entity", *metrics] + ([*LABEL_COLUMNS] if has_labels else [])
        df = df[keep]
        # Stable: keeps each entity's own row order, which is checked next.
        order = np.argsort(df["entity"].to_numpy(dtype=object), kind="stable")
        df = df.iloc[order].reset_index(drop=True)
        rows = order  # original row numbers, for messages
        ent = df["entity"].to_numpy(dtype=object)
        tsv = pd.DatetimeIndex(df["timestamp"]).asi8
        same = ent[1:] == ent[:-1]
        diff = np.diff(tsv)
        bad = same & (diff < 0)
        if bad.any():
            k = int(np.flatnonzero(bad)[0]) + 1
            raise DataError(
                f"{source}: entity '{ent[k]}': timestamps are not increasing: "
                f"{_fmt(df['timestamp'].iloc[k])} comes after {_fmt(df['timestamp'].iloc[k - 1])} "
                f"(row {rows[k]}); sort the input by time"
            )
        bad = same & (diff == 0)
        if bad.any():
            k = int(np.flatnonzero(bad)[0]) + 1
            raise DataError(
                f"{source}: entity '{ent[k]}': duplicate timestamp "
                f"{_fmt(df['timestamp'].iloc[k])} (row {rows[k]}); each entity needs one row "
                "per time"
            )
        if step is not None:
            the_step = _as_step(step, source)
        else:
            within = diff[same]
            if len(within) == 0:
                raise DataError(f"{source}: every entity has a single row; cannot infer the "
                                "time step (pass step=...)")
            vals, counts = np.unique(within, return_counts=True)
            the_step = pd.Timedelta(int(vals[np.argmax(counts)]), unit="ns")
        step_ns = the_step.value

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
                                        max_gap_steps, resample, source, rows[s:e])
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
        return cls(frame=frame, metrics=tuple(metrics), step=the_step)

    @staticmethod
    def _check_labels(df: pd.DataFrame, source: str) -> None:
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
                raise DataError(f"{source}: 'is_anomaly' must be 0 or 1 in every row; row {row} "
                                f"has {_show(raw.iloc[row])}")
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
                    f"{source}: row {row} has is_anomaly=0 but anomaly_type "
                    f"{typ.iloc[row]!r}; the type must be empty on normal rows"
                )
            typ = typ.where(~((lab == 1) & (typ == "").to_numpy()), "unknown")
        df["is_anomaly"] = lab
        df["anomaly_type"] = typ.to_numpy(dtype=object).astype(str)

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

    def select(self, entities: Sequence[str] | str) -> Dataset:
        """The rows of some entities (a single name is accepted too).

        >>> ts = pd.date_range("2026-01-01", periods=2, freq="1h", tz="UTC")
        >>> df = pd.DataFrame({"timestamp": list(ts) * 2, "entity": ["a", "a", "b", "b"],
        ...                    "cpu": [0.1, 0.2, 0.3, 0.4]})
        >>> Dataset.from_frame(df).select("b").values("b")[:, 0].tolist()
        [0.3, 0.4]
        """
        wanted = [entities] if isinstance(entities, str) else list(entities)
        unknown = sorted(set(wanted) - set(self.entities))
        if unknown:
            raise DataError(f"unknown entities {unknown}; entities are {list(self.entities)}")
        f = self.frame[self.frame["entity"].isin(wanted)].reset_index(drop=True)
        return Dataset(frame=f, metrics=self.metrics, step=self.step)

    def slice_time(self, start: pd.Timestamp | str | None = None,
                   end: pd.Timestamp | str | None = None) -> Dataset:
        """Rows with ``start <= timestamp < end`` (either bound may be None; naive = UTC).

        >>> ts = pd.date_range("2026-01-01", periods=4, freq="1h", tz="UTC")
        >>> ds = Dataset.from_frame(pd.DataFrame({"timestamp": ts, "cpu": [1.0, 2, 3, 4]}))
        >>> ds.slice_time("2026-01-01 01:00", "2026-01-01T03:00Z").frame["cpu"].tolist()
        [2.0, 3.0]
        """
        m = np.ones(len(self.frame), dtype=bool)
        for bound, keep_ge in ((start, True), (end, False)):
            if bound is None:
                continue
            try:
                t = pd.Timestamp(bound)
            except (ValueError, TypeError) as exc:
                raise DataError(f"slice_time: cannot parse {bound!r} as a time") from exc
            t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
            col = self.frame["timestamp"]
            m &= (col >= t).to_numpy() if keep_ge else (col < t).to_numpy()
        return Dataset(frame=self.frame.loc[m].reset_index(drop=True), metrics=self.metrics,
                       step=self.step)

    def check_not_constant(self, where: str = "training data") -> None:
        """Raise when a metric does not vary for some entity (nothing can be learned).

        >>> ts = pd.date_range("2026-01-01", periods=3, freq="1h", tz="UTC")
        >>> ds = Dataset.from_frame(pd.DataFrame({"timestamp": ts, "cpu": [0.5, 0.5, 0.5]}))
        >>> ds.check_not_constant("training data")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        aws_anomaly.errors.DataError: training data: metric 'cpu' of entity 'default' is constant...
        """
        for entity, g in self.frame.groupby("entity", sort=False):
            for m in self.metrics:
                col = g[m].to_numpy()
                if len(col) and np.ptp(col) == 0.0:
                    raise DataError(
                        f"{where}: metric '{m}' of entity '{entity}' is constant ({col[0]!r}) "
                        f"over all {len(col)} points; a detector cannot learn normal behaviour "
                        "from it: drop the metric or give more history"
                    )
