"""Chronological splits and rolling-origin validation folds, per entity, without leakage.

Every entity is cut in time order: the first ``train`` share of its rows is training data, the
next ``validation`` share validation, the rest test. Everything learned (scaler, detector) is fit
on training rows only; the calibrator sees validation scores and labels; the test split is read
once, for the final report. Feature windows of a later split may look back into earlier rows
(features are causal, so that is what happens in production too), but no label or score of a
later split is ever used to fit anything earlier.

Examples
--------
>>> import pandas as pd
>>> from aws_anomaly.data import Dataset
>>> df = pd.DataFrame({"timestamp": pd.date_range("2026-01-01", periods=20, freq="5min",
...                                               tz="UTC"), "cpu": range(20)})
>>> s = chronological_split(Dataset.from_frame(df))
>>> len(s.train), len(s.validation), len(s.test)
(14, 3, 3)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from aws_anomaly.data import Dataset
from aws_anomaly.durations import parse_timestamp
from aws_anomaly.errors import ConfigError, DataError

__all__ = ["Fold", "Split", "chronological_split", "concat", "holdout_split",
           "rolling_origin_folds", "split_at"]


@dataclass(frozen=True)
class Split:
    """Train / validation / test parts of one dataset (each a :class:`Dataset`)."""

    train: Dataset
    validation: Dataset
    test: Dataset
    fractions: tuple[float, float, float]
    #: how the test part was chosen: "fractions" (the last share of each entity), "split-at"
    #: (everything from a time on) or "separate" (another file)
    mode: str = "fractions"
    split_at: pd.Timestamp | None = None

    @property
    def development(self) -> Dataset:
        """Train and validation together: the only data model selection may look at."""
        return concat([self.train, self.validation])

    def summary(self) -> dict[str, object]:
        """Row counts and time ranges per part, for manifests and logs."""
        out: dict[str, object] = {"fractions": list(self.fractions), "mode": self.mode}
        if self.split_at is not None:
            out["split_at"] = self.split_at.isoformat()
        for name in ("train", "validation", "test"):
            f = getattr(self, name).frame
            out[name] = {
                "rows": len(f),
                "start": f["timestamp"].min().isoformat() if len(f) else None,
                "end": f["timestamp"].max().isoformat() if len(f) else None,
                "anomalous_rows": int(f["is_anomaly"].sum()) if "is_anomaly" in f else None,
            }
        return out


@dataclass(frozen=True)
class Fold:
    """One rolling-origin fold: fit on ``train``, calibrate on ``calibration``, score
    ``evaluation``. The three are consecutive in time for every entity."""

    index: int
    train: Dataset
    calibration: Dataset
    evaluation: Dataset


def _subset(ds: Dataset, mask: np.ndarray) -> Dataset:
    return ds.subset(mask, where="split")


def concat(parts: list[Dataset]) -> Dataset:
    """Stack datasets with the same metrics and step, re-sorted by (entity, timestamp)."""
    return Dataset.concat(parts)


def _positions(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Per row: its position within its entity, and its entity's row count."""
    ent = ds.frame["entity"].to_numpy()
    # frame is sorted by (entity, timestamp), so a running count within runs of equal entity
    # gives the position in time.
    codes, counts = np.unique(ent, return_inverse=False, return_counts=True)
    pos = np.empty(len(ent), dtype=np.int64)
    size = np.empty(len(ent), dtype=np.int64)
    start = 0
    for e in pd.unique(ent):
        n = int(counts[np.searchsorted(codes, e)])
        pos[start:start + n] = np.arange(n)
        size[start:start + n] = n
        start += n
    return pos, size


def chronological_split(ds: Dataset, fractions: tuple[float, float, float] = (0.70, 0.15, 0.15),
                        min_rows: int = 1) -> Split:
    """Cut every entity into consecutive train / validation / test parts.

    Parameters
    ----------
    fractions
        Shares of each entity's rows; must be positive and sum to 1.
    min_rows
        Minimum rows each part must get per entity; fewer raises :class:`DataError`.
    """
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ConfigError(f"split fractions must be three positive numbers summing to 1, got "
                          f"{tuple(fractions)}")
    pos, size = _positions(ds)
    train_end = np.floor(size * fractions[0] + 1e-9).astype(np.int64)
    val_end = np.floor(size * (fractions[0] + fractions[1]) + 1e-9).astype(np.int64)
    part = np.where(pos < train_end, 0, np.where(pos < val_end, 1, 2))
    ent = ds.frame["entity"].to_numpy()
    for e in pd.unique(ent):
        got = np.bincount(part[ent == e], minlength=3)
        if got.min() < min_rows:
            raise DataError(
                f"entity '{e}' has {int((ent == e).sum())} rows: the split gives train/"
                f"validation/test {got.tolist()} rows, fewer than the {min_rows} needed in each; "
                "provide more history"
            )
    return Split(train=_subset(ds, part == 0), validation=_subset(ds, part == 1),
                 test=_subset(ds, part == 2), fractions=tuple(float(f) for f in fractions))


def _utc_time(at: pd.Timestamp | str, where: str) -> pd.Timestamp:
    return parse_timestamp(at, where=where, error=ConfigError)


def split_at(ds: Dataset, at: pd.Timestamp | str, where: str = "--split-at"
             ) -> tuple[Dataset, Dataset]:
    """Rows before ``at`` and rows from ``at`` on (naive times are UTC).

    Every entity must have rows on both sides, else :class:`DataError` says which and the
    range its rows cover.

    >>> import pandas as pd
    >>> from aws_anomaly.data import Dataset
    >>> df = pd.DataFrame({"timestamp": pd.date_range("2026-01-01", periods=6, freq="1h",
    ...                                               tz="UTC"), "cpu": range(6)})
    >>> before, after = split_at(Dataset.from_frame(df), "2026-01-01 04:00")
    >>> len(before), len(after)
    (4, 2)
    """
    t = _utc_time(at, where)
    ts = ds.frame["timestamp"]
    before_mask = (ts < t).to_numpy()
    ent = ds.frame["entity"].to_numpy()
    for e in pd.unique(ent):
        sel = ent == e
        if before_mask[sel].all() or not before_mask[sel].any():
            side = "after" if before_mask[sel].all() else "before"
            raise DataError(
                f"{where} {t.isoformat()}: entity '{e}' has no rows {side} it (its rows run "
                f"from {ts[sel].min().isoformat()} to {ts[sel].max().isoformat()}); choose a "
                "time inside every entity's range"
            )
    return _subset(ds, before_mask), _subset(ds, ~before_mask)


def holdout_split(history: Dataset, test: Dataset,
                  fractions: tuple[float, float, float] = (0.70, 0.15, 0.15), *,
                  mode: str = "separate", at: pd.Timestamp | None = None,
                  min_rows: int = 1) -> Split:
    """A split whose test part is given: ``history`` is cut per entity into train and
    validation in the ratio of the first two ``fractions`` (70:15 by default, i.e. the last
    17.6 % of the history is validation); ``test`` is taken as it is.

    The test data must have the history's metrics (extra metrics are left out) and step.
    """
    if len(fractions) != 3 or any(f <= 0 for f in fractions):
        raise ConfigError(f"split fractions must be three positive numbers, got "
                          f"{tuple(fractions)}")
    missing = [m for m in history.metrics if m not in test.metrics]
    if missing:
        raise DataError(f"the test data lacks metric(s) {missing} of the training data; it has "
                        f"{list(test.metrics)}")
    if test.step != history.step:
        raise DataError(f"the test data's step {test.step} differs from the training data's "
                        f"{history.step}; pass --step to read both on one grid")
    if tuple(test.metrics) != tuple(history.metrics):
        test = test.subset(metrics=history.metrics, where="the test data")
    share = fractions[0] / (fractions[0] + fractions[1])
    pos, size = _positions(history)
    cut = np.floor(size * share + 1e-9).astype(np.int64)
    part = pos >= cut
    ent = history.frame["entity"].to_numpy()
    for e in pd.unique(ent):
        got = np.bincount(part[ent == e].astype(np.int64), minlength=2)
        if got.min() < min_rows:
            raise DataError(f"entity '{e}' has {int((ent == e).sum())} training rows: the "
                            f"train/validation cut gives {got.tolist()} rows, fewer than "
                            f"{min_rows} in each; provide more history")
    return Split(train=_subset(history, ~part), validation=_subset(history, part), test=test,
                 fractions=tuple(float(f) for f in fractions), mode=mode, split_at=at)


def rolling_origin_folds(ds: Dataset, n_folds: int = 3, min_train_fraction: float = 0.5,
                         min_rows: int = 1) -> list[Fold]:
    """Rolling-origin folds over ``ds`` (normally the development data: train + validation).

    The first ``min_train_fraction`` of each entity is always training data; the rest is cut
    into ``n_folds + 1`` equal blocks. Fold ``i`` fits on everything before block ``i``,
    calibrates its threshold on block ``i`` and is scored on block ``i + 1``, so every number a
    fold reports comes from data later than anything it learned from.

    >>> import pandas as pd
    >>> from aws_anomaly.data import Dataset
    >>> df = pd.DataFrame({"timestamp": pd.date_range("2026-01-01", periods=100, freq="5min",
    ...                                               tz="UTC"), "cpu": range(100)})
    >>> [(len(f.train), len(f.calibration), len(f.evaluation))
    ...  for f in rolling_origin_folds(Dataset.from_frame(df), n_folds=2)]
    [(50, 16, 16), (66, 16, 16)]
    """
    if n_folds < 1:
        raise ConfigError(f"n_folds must be >= 1, got {n_folds}")
    if not 0 < min_train_fraction < 1:
        raise ConfigError(f"min_train_fraction must be in (0, 1), got {min_train_fraction}")
    pos, size = _positions(ds)
    first = np.floor(size * min_train_fraction + 1e-9).astype(np.int64)
    block = (size - first) // (n_folds + 1)
    ent = ds.frame["entity"].to_numpy()
    for e in pd.unique(ent):
        b = int(block[ent == e][0])
        if b < min_rows:
            raise DataError(
                f"entity '{e}' has {int((ent == e).sum())} rows: too few for {n_folds} rolling "
                f"folds with blocks of at least {min_rows} rows; use fewer folds or more data"
            )
    folds = []
    for i in range(n_folds):
        cal_start = first + i * block
        ev_start = cal_start + block
        ev_end = ev_start + block
        folds.append(Fold(
            index=i,
            train=_subset(ds, pos < cal_start),
            calibration=_subset(ds, (pos >= cal_start) & (pos < ev_start)),
            evaluation=_subset(ds, (pos >= ev_start) & (pos < ev_end)),
        ))
    return folds
