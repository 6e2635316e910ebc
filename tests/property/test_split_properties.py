"""Hypothesis: chronological splits never leak a later split into an earlier one."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from aws_anomaly.data import Dataset
from aws_anomaly.evaluation.split import chronological_split


@st.composite
def datasets_and_fractions(draw: st.DrawFn) -> tuple[Dataset, tuple[float, float, float]]:
    n_ent = draw(st.integers(1, 4))
    parts = []
    for i in range(n_ent):
        n = draw(st.integers(10, 120))
        start = pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(minutes=5 * draw(
            st.integers(0, 50)))
        parts.append(pd.DataFrame({"timestamp": pd.date_range(start, periods=n, freq="5min"),
                                   "entity": f"e{i}", "cpu": np.arange(n, dtype=float)}))
    a = draw(st.floats(0.2, 0.8))
    b = draw(st.floats(0.05, 0.9 - a))
    return Dataset.from_frame(pd.concat(parts, ignore_index=True)), (a, b, 1.0 - a - b)


@settings(max_examples=60, deadline=None)
@given(datasets_and_fractions())
def test_no_leakage_full_cover_no_overlap(arg: tuple[Dataset, tuple[float, float, float]]) -> None:
    ds, fractions = arg
    s = chronological_split(ds, fractions, min_rows=0)
    parts = [s.train.frame, s.validation.frame, s.test.frame]
    keys = [set(zip(p["entity"], p["timestamp"], strict=True)) for p in parts]
    everything = set(zip(ds.frame["entity"], ds.frame["timestamp"], strict=True))
    # union is the whole data, no overlap
    assert keys[0] | keys[1] | keys[2] == everything
    assert sum(len(k) for k in keys) == len(everything)
    # no timestamp of a later split precedes one of an earlier split, for any entity
    for e in ds.entities:
        spans = [p.loc[p["entity"] == e, "timestamp"] for p in parts]
        for i in range(3):
            for j in range(i + 1, 3):
                if len(spans[i]) and len(spans[j]):
                    assert spans[i].max() < spans[j].min()
