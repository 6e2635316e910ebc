"""File source: a CSV or Parquet file read with :func:`aws_anomaly.data.io.read_dataset`.

The file is read once and read again only when its modification time or size changes, so a
live job can follow a file that another process rewrites (or appends to). Each read applies the
same stated policies for time order, duplicates, irregular steps and gaps (the ``timestamps``,
``duplicates``, ``resample``, ``step``, ``gap_policy`` and ``max_gap_steps`` keys of the
source), and what they changed is logged as a warning, once per read.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pandas as pd

from aws_anomaly.config import FileSourceConfig
from aws_anomaly.data import Dataset
from aws_anomaly.data.io import read_dataset
from aws_anomaly.errors import DataError, SourceError
from aws_anomaly.sources.base import BaseSource, TimeLike, to_utc

__all__ = ["FileSource"]

log = logging.getLogger(__name__)


class FileSource(BaseSource):
    """Serves slices of a metrics file as Datasets.

    ``metrics`` narrows the file's metrics (default: ``cfg.metrics``, else every metric
    column). Read errors become :class:`SourceError` naming the file.
    """

    def __init__(self, cfg: FileSourceConfig, *, metrics: Sequence[str] | None = None) -> None:
        self.cfg = cfg
        self.path = cfg.path
        self.name = f"file {cfg.path}"
        self._want = tuple(metrics) if metrics is not None else cfg.metric_names()
        self._cache: Dataset | None = None
        self._stamp: tuple[float, int] | None = None
        ds = self._load()
        self.metrics = ds.metrics
        self.step = ds.step

    def _load(self) -> Dataset:
        try:
            st = self.path.stat()
        except OSError as exc:
            raise SourceError(f"{self.name}: cannot read {self.path}: {exc.strerror}") from None
        stamp = (st.st_mtime, st.st_size)
        if self._cache is not None and stamp == self._stamp:
            return self._cache
        try:
            ds = read_dataset(
                self.path, layout=self.cfg.layout,
                metrics=list(self._want) if self._want else None,
                entity_label=self.cfg.entity_label,
                step=pd.Timedelta(self.cfg.step) if self.cfg.step is not None else None,
                gap_policy=self.cfg.gap_policy, max_gap_steps=self.cfg.max_gap_steps,
                resample=self.cfg.resample, timestamps=self.cfg.timestamps,
                duplicates=self.cfg.duplicates)
        except DataError as exc:
            raise SourceError(f"{self.name}: {exc}") from exc
        if ds.report is not None and ds.report.changed:
            # Once per (re)read: what the loading policies changed in the file.
            log.warning("%s: %s", self.name, "; ".join(ds.report.lines()[1:]))
        if self._cache is not None and (ds.metrics != self.metrics or ds.step != self.step):
            raise SourceError(f"{self.name}: the file changed shape while in use: metrics "
                              f"{list(ds.metrics)} step {ds.step}, was {list(self.metrics)} "
                              f"step {self.step}")
        self._cache, self._stamp = ds, stamp
        return ds

    def fetch(self, start: TimeLike, end: TimeLike, *,
              entities: Sequence[str] | None = None) -> Dataset:
        """Rows with ``start <= t < end`` (and only ``entities`` when given)."""
        ds = self._load()
        if entities is not None:
            present = [e for e in entities if e in set(ds.entities)]
            if not present:
                raise SourceError(f"{self.name}: none of the entities {list(entities)} is in the "
                                  f"file; it has {list(ds.entities)}")
            ds = ds.select(present)
        out = ds.slice_time(to_utc(start, where="start"), to_utc(end, where="end"))
        if len(out) == 0:
            first, last = ds.frame["timestamp"].min(), ds.frame["timestamp"].max()
            raise SourceError(f"{self.name}: no rows in [{to_utc(start)}, {to_utc(end)}); the "
                              f"file covers {first} to {last}")
        return out

    def now(self) -> pd.Timestamp:
        """The file's last timestamp: a file has no live edge, so :meth:`latest` ends there."""
        return self._load().frame["timestamp"].max()
