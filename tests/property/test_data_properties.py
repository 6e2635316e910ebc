"""Properties of the data layer, checked with hypothesis."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from aws_anomaly.data import DEFAULT_METRICS, Dataset, generate_demo
from aws_anomaly.data.anomalies import ANOMALY_KINDS, inject_anomalies, labels_from_events
from aws_anomaly.data.io import parse_labels
from aws_anomaly.errors import DataError

FAST = settings(max_examples=15, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])

finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
# Names that have tripped loaders: numeric-looking, "NA", unicode, punctuation.
entity_names = st.sampled_from(["eks-prod-eu-west-1", "007", "NA", "null", "1e3", "ünïcødé",
                                "a,b", 'q"uote', "x y", "-"]) | st.text(
    "abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=8)


@st.composite
def valid_frames(draw: st.DrawFn) -> pd.DataFrame:
    """A valid wide frame: sorted by (entity, timestamp), regular, finite, maybe labelled."""
    entities = sorted(draw(st.lists(entity_names, min_size=1, max_size=3, unique=True)))
    step = draw(st.sampled_from(["30s", "5min", "1h"]))
    n = draw(st.integers(2, 30))
    k = draw(st.integers(1, 3))
    start = pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(minutes=draw(st.integers(0, 999)))
    labelled = draw(st.booleans())
    parts = []
    for e in entities:
        vals = draw(arrays(np.float64, (n, k), elements=finite))
        df = pd.DataFrame({"timestamp": pd.date_range(start, periods=n, freq=step),
                           "entity": e})
        for j in range(k):
            df[f"m{j}"] = vals[:, j]
        if labelled:
            lab = draw(arrays(np.int8, n, elements=st.integers(0, 1)))
            df["is_anomaly"] = lab
            df["anomaly_type"] = np.where(lab == 1, "spike", "")
        parts.append(df)
    frame = pd.concat(parts, ignore_index=True)
    frame["timestamp"] = frame["timestamp"].dt.as_unit("ns")
    frame["entity"] = frame["entity"].astype(str)
    if labelled:
        frame["is_anomaly"] = frame["is_anomaly"].astype(np.int8)
        frame["anomaly_type"] = frame["anomaly_type"].astype(str)
    return frame


@FAST
@given(valid_frames())
def test_from_frame_round_trips_a_valid_frame_unchanged(df: pd.DataFrame) -> None:
    ds = Dataset.from_frame(df)
    pd.testing.assert_frame_equal(ds.frame, df)
    again = Dataset.from_frame(ds.frame)
    pd.testing.assert_frame_equal(again.frame, ds.frame)


@FAST
@given(valid_frames(), st.randoms(use_true_random=False))
def test_shuffled_rows_are_rejected_or_give_the_same_dataset(df: pd.DataFrame, rnd) -> None:
    """Documented choice: an entity's rows must come in time order; entities may interleave."""
    order = list(range(len(df)))
    rnd.shuffle(order)
    shuffled = df.iloc[order].reset_index(drop=True)
    in_time_order = all(
        g["timestamp"].is_monotonic_increasing for _, g in shuffled.groupby("entity"))
    if in_time_order:
        pd.testing.assert_frame_equal(Dataset.from_frame(shuffled).frame, df)
    else:
        with pytest.raises(DataError, match="timestamps are not increasing"):
            Dataset.from_frame(shuffled)


@FAST
@given(valid_frames(), st.data())
def test_gaps_are_filled_onto_the_full_grid(df: pd.DataFrame, data: st.DataObject) -> None:
    """Dropping interior rows (short gaps) gives back the full grid, finite, on the same step."""
    first_last = df.groupby("entity").head(1).index.union(df.groupby("entity").tail(1).index)
    droppable = [i for i in df.index if i not in first_last]
    drop = data.draw(st.lists(st.sampled_from(droppable), unique=True, max_size=5)
                     if droppable else st.just([]))
    ds = Dataset.from_frame(df.drop(index=drop), step=df["timestamp"].iloc[1]
                            - df["timestamp"].iloc[0] if len(df) > 1 else None)
    assert len(ds) == len(df)
    assert np.isfinite(ds.frame[list(ds.metrics)].to_numpy()).all()
    assert (ds.frame["timestamp"].to_numpy() == df["timestamp"].to_numpy()).all()
    kept = ~df.index.isin(drop)
    m = list(ds.metrics)
    assert np.array_equal(ds.frame[m].to_numpy()[kept], df[m].to_numpy()[kept])


@SLOW
@given(seed=st.integers(0, 2**32 - 1), clusters=st.integers(1, 3),
       days=st.sampled_from([1, 2.5, 4]), step=st.sampled_from(["1min", "5min", "15min", "1h"]))
def test_generator_in_range_and_labels_match_events(seed: int, clusters: int, days: float,
                                                     step: str) -> None:
    assume(pd.Timedelta(days=days) / pd.Timedelta(step) >= 48)  # the demo's minimum length
    ds, events = generate_demo(clusters=clusters, days=days, step=step, seed=seed)
    values = ds.frame[list(DEFAULT_METRICS)].to_numpy()
    assert np.isfinite(values).all() and values.min() >= 0.0 and values.max() <= 1.0
    lab, typ = labels_from_events(ds, events)
    assert (ds.frame["is_anomaly"].to_numpy() == lab).all()
    assert (ds.frame["anomaly_type"].to_numpy() == typ).all()
    assert set(events["type"]) <= set(ANOMALY_KINDS)
    assert len(events) == clusters * round(days)
    for _, ev in events.groupby("entity"):
        ev = ev.sort_values("start")
        assert (ev["start"].to_numpy()[1:] > ev["end"].to_numpy()[:-1]).all()


@SLOW
@given(seed=st.integers(0, 2**32 - 1))
def test_generator_is_deterministic_per_seed(seed: int) -> None:
    a, ea = generate_demo(clusters=2, days=1, seed=seed)
    b, eb = generate_demo(clusters=2, days=1, seed=seed)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    pd.testing.assert_frame_equal(ea, eb)
    c, _ = generate_demo(clusters=2, days=1, seed=seed + 1)
    assert not np.array_equal(a.frame[list(DEFAULT_METRICS)].to_numpy(),
                              c.frame[list(DEFAULT_METRICS)].to_numpy())


@SLOW
@given(seed=st.integers(0, 10_000), kinds=st.lists(st.sampled_from(
    [k for k in ANOMALY_KINDS if k != "contextual"]), min_size=1, max_size=4, unique=True),
    scale=st.sampled_from([1e-6, 1.0, 1e6]))
def test_injection_changes_only_labelled_rows(seed: int, kinds: list[str], scale: float) -> None:
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2026-01-01", periods=600, freq="5min", tz="UTC")
    df = pd.DataFrame({"timestamp": ts, "a": scale * (5 + rng.normal(size=600).cumsum() / 10),
                       "b": scale * rng.random(600)})
    ds = Dataset.from_frame(df)
    out, events = inject_anomalies(ds, kinds=kinds, n_events=4, seed=seed)
    lab, _ = labels_from_events(out, events)
    changed = (out.frame[["a", "b"]].to_numpy() != ds.frame[["a", "b"]].to_numpy()).any(axis=1)
    assert not (changed & (lab == 0)).any()
    assert (out.frame["is_anomaly"].to_numpy() == lab).all()
    assert np.isfinite(out.frame[["a", "b"]].to_numpy()).all()
    assert 1 <= len(events) <= 4


label_values = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=15)
label_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,10}", fullmatch=True)


@FAST
@given(st.dictionaries(label_names, label_values, max_size=4))
def test_prometheus_label_text_round_trips(labels: dict[str, str]) -> None:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    text = "{" + ",".join(f'{k}="{esc(v)}"' for k, v in labels.items()) + "}"
    assert parse_labels(text) == labels
