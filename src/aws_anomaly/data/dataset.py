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
            raise DataError(f"{where}: timestamp in row {row} is not a number: {raw.iloc[row]!r}")
        big = np.abs(secs) > _MAX_UNIX_SECONDS
        if big.any():
            row = int(np.flatnonzero(big)[0])
            raise DataError(
                f"{where}: timestamp {raw.iloc[row]!r} in row {row} is not plausible unix "
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
            f"{where}: cannot parse timestamp {raw.iloc[row]!r} in row {row} "
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
            raise DataError(
                f"{source}: missing column 'timestamp'; columns are {list(df.columns)}"
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
                    f"{source}: metric '{m}' has a non-numeric value {df[m].iloc[row]!r} "
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
            parts = []
            for s, e, b in zip(starts, ends, ent_bad, strict=True):
                g = df.iloc[s:e]
                if b:
                    parts.append(cls._regularise(g, str(ent[s]), metrics, the_step, gap_policy,
                                                 max_gap_steps, resample, has_labels, source,
                                                 rows[s:e]))
                else:
                    parts.append(g)
            frame = pd.concat(parts, ignore_index=True)
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
                                f"has {raw.iloc[row]!r}")
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

    @staticmethod
    def _regularise(g: pd.DataFrame, entity: str, metrics: list[str], step: pd.Timedelta,
                    gap_policy: GapPolicy, max_gap_steps: int | None, resample: ResamplePolicy,
                    has_labels: bool, source: str, rows: np.ndarray) -> pd.DataFrame:
        where = f"{source}: entity '{entity}'"
        ts = g["timestamp"]
        origin = ts.iloc[0]
        off_grid = ((ts - origin) % step != pd.Timedelta(0)).to_numpy()
        if off_grid.any():
            if resample == "error":
                pos = int(np.flatnonzero(off_grid)[0])
                raise DataError(
                    f"{where}: irregular time step: {_fmt(ts.iloc[pos])} (row {rows[pos]}) is "
                    f"not on the {step} grid starting at {_fmt(origin)}; pass resample='mean' "
                    "or 'last' to aggregate onto the grid"
                )
            bucket = ts.dt.floor(step)
            agg: dict[str, str] = dict.fromkeys(metrics, resample)
            g = g.assign(timestamp=bucket)
            if has_labels:
                agg.update({"is_anomaly": "max", "anomaly_type": "last"})
                # "last" skips NaN: the last non-empty type of the bucket wins.
                g = g.assign(anomaly_type=g["anomaly_type"].replace("", np.nan))
            g = g.groupby("timestamp", sort=True).agg(agg).reset_index()
            if has_labels:
                g["anomaly_type"] = g["anomaly_type"].fillna("").astype(str)
        grid = pd.date_range(g["timestamp"].iloc[0], g["timestamp"].iloc[-1], freq=step)
        w = g.set_index("timestamp").reindex(grid)
        w.index.name = "timestamp"
        vals = w[metrics]
        missing = vals.isna().to_numpy()
        first = 0
        if missing.any():
            if gap_policy == "error":
                j = int(np.flatnonzero(missing.any(axis=0))[0])
                col = missing[:, j]
                raise DataError(
                    f"{where}: metric '{metrics[j]}' has {int(col.sum())} missing value(s) from "
                    f"{_fmt(grid[int(np.argmax(col))])}; set gap_policy to 'ffill' or "
                    "'interpolate'"
                )
            for j, m in enumerate(metrics):
                col = missing[:, j]
                if col.all():
                    raise DataError(f"{where}: metric '{m}' has no values at all; drop the "
                                    "metric or the entity")
                if max_gap_steps is None:
                    continue
                starts, ends = _runs(col)
                long = (ends - starts) > max_gap_steps
                if long.any():
                    k = int(np.flatnonzero(long)[0])
                    what = "no values for the first" if starts[k] == 0 else "a gap of"
                    raise DataError(
                        f"{where}: metric '{m}' has {what} {ends[k] - starts[k]} steps from "
                        f"{_fmt(grid[starts[k]])}, longer than max_gap_steps={max_gap_steps}; "
                        "raise max_gap_steps or split the data at the outage"
                    )
            # Leading points before a metric's first value cannot be filled causally: trim them.
            first = int(np.argmax(~missing, axis=0).max())
            if gap_policy == "ffill":
                vals = vals.ffill()
            else:
                vals = vals.interpolate(limit_area="inside").ffill()
        out = pd.DataFrame({"timestamp": w.index[first:], "entity": entity})
        for m in metrics:
            out[m] = vals[m].to_numpy(dtype=np.float64)[first:]
        if has_labels:
            lab = w["is_anomaly"].astype("Float64")
            # A filled row is anomalous only inside an anomaly: both observed neighbours agree.
            inside = (lab.ffill() == 1) & (lab.bfill() == 1)
            typ = w["anomaly_type"].astype("string")
            same_type = typ.ffill() == typ.bfill()
            filled = lab.isna()
            lab_f = lab.where(~filled, (inside & same_type).astype("Float64"))
            typ_f = typ.where(~filled, typ.ffill().where(lab_f == 1, ""))
            out["is_anomaly"] = lab_f.fillna(0).to_numpy(dtype=np.int8)[first:]
            out["anomaly_type"] = typ_f.fillna("").to_numpy(dtype=object)[first:].astype(str)
        return out

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
        for e in self.entities:
            yield e, self.entity_frame(e)

    def select(self, entities: Sequence[str] | str) -> Dataset:
        """The rows of some entities (a single name is accepted too)."""
        wanted = [entities] if isinstance(entities, str) else list(entities)
        unknown = sorted(set(wanted) - set(self.entities))
        if unknown:
            raise DataError(f"unknown entities {unknown}; entities are {list(self.entities)}")
        f = self.frame[self.frame["entity"].isin(wanted)].reset_index(drop=True)
        return Dataset(frame=f, metrics=self.metrics, step=self.step)

    def slice_time(self, start: pd.Timestamp | str | None = None,
                   end: pd.Timestamp | str | None = None) -> Dataset:
        """Rows with ``start <= timestamp < end`` (either bound may be None; naive = UTC)."""
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
        """Raise when a metric does not vary for some entity (nothing can be learned)."""
        for entity, g in self.frame.groupby("entity", sort=False):
            for m in self.metrics:
                col = g[m].to_numpy()
                if len(col) and np.ptp(col) == 0.0:
                    raise DataError(
                        f"{where}: metric '{m}' of entity '{entity}' is constant ({col[0]!r}) "
                        f"over all {len(col)} points; a detector cannot learn normal behaviour "
                        "from it: drop the metric or give more history"
                    )
