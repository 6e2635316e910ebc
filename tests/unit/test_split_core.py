"""Chronological splits and rolling folds: per entity, in time order, without overlap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.data import Dataset
from aws_anomaly.errors import ConfigError, DataError
from aws_anomaly.evaluation.split import chronological_split, concat, rolling_origin_folds


def _ds(sizes: dict[str, int]) -> Dataset:
    parts = []
    for i, (e, n) in enumerate(sizes.items()):
        parts.append(pd.DataFrame({
            "timestamp": pd.date_range(f"2026-01-0{i + 1}", periods=n, freq="5min", tz="UTC"),
            "entity": e, "cpu": np.sin(np.arange(n)) + i}))
    return Dataset.from_frame(pd.concat(parts, ignore_index=True))


def test_split_per_entity_fractions_and_order() -> None:
    ds = _ds({"a": 100, "b": 40})
    s = chronological_split(ds)
    for part, (na, nb) in ((s.train, (70, 28)), (s.validation, (15, 6)), (s.test, (15, 6))):
        counts = part.frame["entity"].value_counts().to_dict()
        assert counts == {"a": na, "b": nb}
    for e in ("a", "b"):
        assert s.train.frame.loc[s.train.frame.entity == e, "timestamp"].max() < \
            s.validation.frame.loc[s.validation.frame.entity == e, "timestamp"].min()
    assert s.summary()["train"]["rows"] == 98
    assert len(s.development) == 98 + 21


def test_split_rejects_bad_fractions_and_tiny_entities() -> None:
    ds = _ds({"a": 100})
    with pytest.raises(ConfigError, match="summing to 1"):
        chronological_split(ds, (0.5, 0.2, 0.2))
    with pytest.raises(DataError, match="entity 'a'"):
        chronological_split(_ds({"a": 5}), min_rows=2)


def test_rolling_folds_are_consecutive_and_grow() -> None:
    ds = _ds({"a": 200, "b": 120})
    folds = rolling_origin_folds(ds, n_folds=3)
    assert len(folds) == 3
    prev_train = 0
    for f in folds:
        for e in ("a", "b"):
            tr = f.train.frame.loc[f.train.frame.entity == e, "timestamp"]
            ca = f.calibration.frame.loc[f.calibration.frame.entity == e, "timestamp"]
            ev = f.evaluation.frame.loc[f.evaluation.frame.entity == e, "timestamp"]
            step = pd.Timedelta("5min")
            assert ca.min() == tr.max() + step and ev.min() == ca.max() + step
        assert len(f.train) > prev_train
        prev_train = len(f.train)
    with pytest.raises(DataError, match="too few"):
        rolling_origin_folds(_ds({"a": 6}), n_folds=5)


def test_concat_restores_original() -> None:
    ds = _ds({"a": 50, "b": 30})
    s = chronological_split(ds)
    back = concat([s.test, s.train, s.validation])
    pd.testing.assert_frame_equal(back.frame, ds.frame)
