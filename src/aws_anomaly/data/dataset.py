"""The ``Dataset`` contract: entities x regular UTC time index x metric columns.

Everything downstream (features, models, sources, the service) takes a :class:`Dataset`, so the
checks live here, once. A valid dataset has:

* a ``timestamp`` column of tz-aware UTC datetimes on a regular grid of ``step`` per entity,
  strictly increasing, without duplicates;
* an ``entity`` column (string; ``"default"`` when the input had none);
* one float64 column per metric, finite everywhere (gaps are filled by the gap policy, which is
  causal by default so batch and streaming see the same values);
* optionally ``is_anomaly`` (int8 0/1) and ``anomaly_type`` (str, "" for normal) labels.

Rows are sorted by (entity, timestamp).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from aws_anomaly.errors import DataError

__all__ = ["Dataset", "GapPolicy", "ResamplePolicy", "LABEL_COLUMNS", "DEFAULT_ENTITY"]

GapPolicy = Literal["ffill", "interpolate", "error"]
ResamplePolicy = Literal["error", "mean", "last"]
LABEL_COLUMNS = ("is_anomaly", "anomaly_type")
DEFAULT_ENTITY = "default"
_RESERVED = {"timestamp", "entity", *LABEL_COLUMNS}


def _fmt(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%dT%H:%MZ") if ts.second == 0 else ts.isoformat()


def _parse_timestamps(raw: pd.Series, where: str) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(raw):
        ts = raw
        if getattr(ts.dt, "tz", None) is None:
            ts = ts.dt.tz_localize("UTC")
        return ts.dt.tz_convert("UTC")
    if pd.api.types.is_numeric_dtype(raw):
        # Unix seconds, as Prometheus exports them.
        bad = ~np.isfinite(raw.to_numpy(dtype=float))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"{where}: timestamp in row {row} is not a number: {raw.iloc[row]!r}")
        return pd.to_datetime(raw.astype(float), unit="s", utc=True)
    parsed = pd.to_datetime(raw, utc=True, errors="coerce", format="mixed")
    bad = parsed.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{where}: cannot parse timestamp {raw.iloc[row]!r} in row {row} "
            f"({int(bad.sum())} unparsable in all); use ISO 8601, e.g. 2026-03-01T10:05:00Z"
        )
    return parsed


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
        metrics
            Metric columns to keep. ``None`` takes every numeric column that is not reserved.
            Non-numeric columns that are neither metrics nor reserved are an error, so a typo
            in a column name is never silently ignored.
        step
            Grid step; inferred as the most common difference when ``None``.
        gap_policy
            How missing grid points / NaN values are filled: ``"ffill"`` (hold the last value;
            causal, the default), ``"interpolate"`` (linear; uses the next value, so batch only)
            or ``"error"``.
        max_gap_steps
            Longest run of missing steps the gap policy may fill; longer gaps are an error.
        resample
            What to do with timestamps off the grid: ``"error"``, or aggregate each grid bucket
            with ``"mean"`` / ``"last"``.
        source
            Where the data came from, used in error messages (a file path, a query...).
        """
        if not isinstance(df, pd.DataFrame):
            raise DataError(f"{source}: expected a pandas DataFrame, got {type(df).__name__}")
        if "timestamp" not in df.columns:
            raise DataError(
                f"{source}: missing column 'timestamp'; columns are {list(df.columns)}"
            )
        if len(df) == 0:
            raise DataError(f"{source}: no rows")
        df = df.copy()
        df["timestamp"] = _parse_timestamps(df["timestamp"], source)
        if "entity" not in df.columns:
            df["entity"] = DEFAULT_ENTITY
        if df["entity"].isna().any():
            row = int(np.flatnonzero(df["entity"].isna().to_numpy())[0])
            raise DataError(f"{source}: 'entity' is empty in row {row}")
        df["entity"] = df["entity"].astype(str)

        if metrics is None:
            metrics = [c for c in df.columns if c not in _RESERVED
                       and pd.api.types.is_numeric_dtype(df[c])]
            unknown = [c for c in df.columns if c not in _RESERVED and c not in metrics]
            if unknown:
                raise DataError(
                    f"{source}: column(s) {unknown} are not numeric, so they are not metrics, "
                    f"and are not one of {sorted(_RESERVED)}; drop them or fix their values"
                )
        else:
            metrics = list(metrics)
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
            col = pd.to_numeric(df[m], errors="coerce")
            bad = col.isna() & df[m].notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataError(
                    f"{source}: metric '{m}' has a non-numeric value {df[m].iloc[row]!r} "
                    f"in row {row}"
                )
            arr = col.to_numpy(dtype=np.float64)
            inf = np.isinf(arr)
            if inf.any():
                row = int(np.flatnonzero(inf)[0])
                raise DataError(
                    f"{source}: metric '{m}' has {int(inf.sum())} infinite value(s), first in "
                    f"row {row} at {_fmt(df['timestamp'].iloc[row])}; infinities are not "
                    "measurements: fix or drop those rows"
                )
            df[m] = arr

        has_labels = "is_anomaly" in df.columns
        if has_labels:
            lab = pd.to_numeric(df["is_anomaly"], errors="coerce")
            if lab.isna().any() or not lab.isin([0, 1]).all():
                raise DataError(f"{source}: 'is_anomaly' must be 0 or 1 in every row")
            df["is_anomaly"] = lab.astype(np.int8)
            if "anomaly_type" not in df.columns:
                df["anomaly_type"] = np.where(df["is_anomaly"] == 1, "unknown", "")
            df["anomaly_type"] = df["anomaly_type"].fillna("").astype(str)

        keep = ["timestamp", "entity", *metrics] + ([*LABEL_COLUMNS] if has_labels else [])
        df = df[keep]

        parts = []
        inferred: pd.Timedelta | None = pd.Timedelta(step) if step is not None else None
        for entity, g in df.groupby("entity", sort=True):
            where = f"{source}: entity '{entity}'"
            ts = g["timestamp"]
            diffs = ts.diff().iloc[1:]
            if (diffs < pd.Timedelta(0)).any():
                pos = int(np.flatnonzero((diffs < pd.Timedelta(0)).to_numpy())[0]) + 1
                raise DataError(
                    f"{where}: timestamps are not increasing: {_fmt(ts.iloc[pos])} comes after "
                    f"{_fmt(ts.iloc[pos - 1])} (row {g.index[pos]}); sort the input by time"
                )
            if (diffs == pd.Timedelta(0)).any():
                pos = int(np.flatnonzero((diffs == pd.Timedelta(0)).to_numpy())[0]) + 1
                raise DataError(
                    f"{where}: duplicate timestamp {_fmt(ts.iloc[pos])} (row {g.index[pos]}); "
                    "each entity needs one row per time"
                )
            if len(g) < 2 and inferred is None:
                raise DataError(f"{where}: a single row; cannot infer the time step")
            if inferred is None:
                inferred = diffs.mode().iloc[0]
            parts.append((entity, g))
        assert inferred is not None  # set above: at least one entity with two rows
        if inferred <= pd.Timedelta(0):
            raise DataError(f"{source}: step must be positive, got {inferred}")

        out = [cls._regularise(g, str(e), metrics, inferred, gap_policy, max_gap_steps,
                               resample, has_labels, source) for e, g in parts]
        frame = pd.concat(out, ignore_index=True)
        return cls(frame=frame, metrics=tuple(metrics), step=inferred)

    @staticmethod
    def _regularise(g: pd.DataFrame, entity: str, metrics: list[str], step: pd.Timedelta,
                    gap_policy: GapPolicy, max_gap_steps: int | None, resample: ResamplePolicy,
                    has_labels: bool, source: str) -> pd.DataFrame:
        where = f"{source}: entity '{entity}'"
        ts = g["timestamp"]
        origin = ts.iloc[0]
        offset = (ts - origin) % step
        off_grid = offset != pd.Timedelta(0)
        if off_grid.any():
            if resample == "error":
                pos = int(np.flatnonzero(off_grid.to_numpy())[0])
                raise DataError(
                    f"{where}: irregular time step: {_fmt(ts.iloc[pos])} is not on the "
                    f"{step} grid starting at {_fmt(origin)}; pass resample='mean' or 'last' "
                    "to aggregate onto the grid"
                )
            bucket = origin + ((ts - origin) // step) * step
            agg = {m: resample for m in metrics}
            if has_labels:
                agg.update({"is_anomaly": "max", "anomaly_type": "last"})
            g = g.assign(timestamp=bucket).groupby("timestamp", sort=True).agg(agg).reset_index()
        grid = pd.date_range(g["timestamp"].iloc[0], g["timestamp"].iloc[-1], freq=step)
        w = g.set_index("timestamp").reindex(grid)
        w.index.name = "timestamp"
        vals = w[metrics]
        missing = vals.isna()
        if missing.to_numpy().any():
            if gap_policy == "error":
                m = missing.any(axis=0).idxmax()
                first = missing.index[missing[m].to_numpy()][0]
                raise DataError(
                    f"{where}: metric '{m}' has {int(missing[m].sum())} missing value(s) from "
                    f"{_fmt(first)}; set gap_policy to 'ffill' or 'interpolate'"
                )
            if max_gap_steps is not None:
                for m in metrics:
                    run = missing[m].to_numpy()
                    # length of each run of consecutive missing points
                    idx = np.flatnonzero(np.diff(np.concatenate(([0], run.view(np.int8), [0]))))
                    starts, ends = idx[0::2], idx[1::2]
                    long = (ends - starts) > max_gap_steps
                    interior = starts > 0
                    if (long & interior).any():
                        k = int(np.flatnonzero(long & interior)[0])
                        raise DataError(
                            f"{where}: metric '{m}' has a gap of {ends[k] - starts[k]} steps from "
                            f"{_fmt(grid[starts[k]])}, longer than max_gap_steps={max_gap_steps}; "
                            "raise max_gap_steps or split the data at the outage"
                        )
            vals = vals.ffill() if gap_policy == "ffill" else vals.interpolate(limit_area="inside")
            # Leading points before a metric's first value cannot be filled causally: trim them.
            first_ok = int(np.argmax(vals.notna().all(axis=1).to_numpy()))
            if not vals.iloc[first_ok].notna().all():
                raise DataError(f"{where}: some metric has no values at all")
            w = w.iloc[first_ok:]
            vals = vals.iloc[first_ok:]
        out = pd.DataFrame({"timestamp": w.index, "entity": entity})
        for m in metrics:
            out[m] = vals[m].to_numpy(dtype=np.float64)
        if has_labels:
            out["is_anomaly"] = w["is_anomaly"].fillna(0).to_numpy().astype(np.int8)
            out["anomaly_type"] = w["anomaly_type"].fillna("").to_numpy().astype(str)
        return out

    # ------------------------------------------------------------------ access
    @property
    def entities(self) -> tuple[str, ...]:
        return tuple(pd.unique(self.frame["entity"]))

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

    def select(self, entities: Sequence[str]) -> Dataset:
        unknown = sorted(set(entities) - set(self.entities))
        if unknown:
            raise DataError(f"unknown entities {unknown}; entities are {list(self.entities)}")
        f = self.frame[self.frame["entity"].isin(list(entities))].reset_index(drop=True)
        return Dataset(frame=f, metrics=self.metrics, step=self.step)

    def slice_time(self, start: pd.Timestamp | None = None,
                   end: pd.Timestamp | None = None) -> Dataset:
        """Rows with ``start <= timestamp < end`` (either bound may be None)."""
        m = np.ones(len(self.frame), dtype=bool)
        if start is not None:
            m &= (self.frame["timestamp"] >= pd.Timestamp(start)).to_numpy()
        if end is not None:
            m &= (self.frame["timestamp"] < pd.Timestamp(end)).to_numpy()
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
