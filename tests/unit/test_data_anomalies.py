"""The anomaly-injection library on users' own data (any metrics, any scale)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.data import ANOMALY_KINDS, Dataset, inject_anomalies
from aws_anomaly.data.anomalies import (
    correlation_break,
    estimate_scale,
    flatline,
    labels_from_events,
)
from aws_anomaly.errors import ConfigError, DataError


def user_dataset(days: int = 10, cycle: bool = True, entities: tuple[str, ...] = ("svc-a",
                                                                                  "svc-b")
                 ) -> Dataset:
    """Two services with latency (ms) and requests/s on very different scales."""
    rng = np.random.default_rng(42)
    ts = pd.date_range("2026-02-02", periods=days * 96, freq="15min", tz="UTC")
    hours = ts.hour.to_numpy() + ts.minute.to_numpy() / 60
    day = np.exp(-0.5 * ((hours - 14) / 3.5) ** 2) if cycle else np.zeros(len(ts))
    parts = []
    for k, e in enumerate(entities):
        rps = 200 + 800 * day * (1 + 0.2 * k) + rng.normal(0, 10, len(ts))
        latency = 40 + 0.02 * rps + rng.normal(0, 1.5, len(ts))
        parts.append(pd.DataFrame({"timestamp": ts, "entity": e, "latency_ms": latency,
                                   "rps": rps}))
    return Dataset.from_frame(pd.concat(parts, ignore_index=True))


def changed_rows(before: Dataset, after: Dataset) -> np.ndarray:
    m = list(before.metrics)
    return (before.frame[m].to_numpy() != after.frame[m].to_numpy()).any(axis=1)


def test_injects_every_kind_on_custom_metrics_and_labels_match_events() -> None:
    ds = user_dataset()
    out, events = inject_anomalies(ds, n_events=18, seed=3)
    assert len(events) == 36
    assert set(events["type"]) == set(ANOMALY_KINDS)
    lab, typ = labels_from_events(out, events)
    assert (out.frame["is_anomaly"].to_numpy() == lab).all()
    assert (out.frame["anomaly_type"].to_numpy() == typ).all()
    # Only labelled rows changed; the input dataset is left alone.
    assert not (changed_rows(ds, out) & (lab == 0)).any()
    assert not ds.has_labels
    assert set(events["metrics"].str.split(";").explode()) <= {"latency_ms", "rps"}


def test_events_do_not_overlap_or_touch_within_an_entity() -> None:
    _, events = inject_anomalies(user_dataset(), n_events=20, seed=5)
    for _, ev in events.groupby("entity"):
        ev = ev.sort_values("start")
        gap = ev["start"].to_numpy()[1:] - ev["end"].to_numpy()[:-1]
        assert (gap > np.timedelta64(15, "m")).all()  # at least one normal row between events


def test_sizes_follow_each_metrics_own_scale() -> None:
    ds = user_dataset()
    _, events = inject_anomalies(ds, kinds=["spike", "level_shift"], n_events=6, seed=1)
    for e in events.itertuples():
        metric = e.metrics.split(";")[0]
        j = ds.metrics.index(metric)
        sc = estimate_scale(ds.values(e.entity))
        # Real deviations (several noise sigmas) but a modest part of the range.
        assert 4 * sc.noise[j] <= abs(e.magnitude) <= 0.6 * sc.spread[j]


def test_rate_sets_the_anomalous_share() -> None:
    out, _ = inject_anomalies(user_dataset(days=20), rate=0.05, seed=0)
    share = out.frame["is_anomaly"].mean()
    assert 0.025 <= share <= 0.1


def test_existing_labels_are_kept_and_avoided() -> None:
    ds = user_dataset()
    first, _ = inject_anomalies(ds, kinds=["level_shift"], n_events=5, seed=0)
    second, ev2 = inject_anomalies(first, kinds=["spike"], n_events=5, seed=1)
    old = first.frame["is_anomaly"].to_numpy() == 1
    assert (second.frame["anomaly_type"].to_numpy()[old] == "level_shift").all()
    lab2, _ = labels_from_events(second, ev2)
    assert not (lab2.astype(bool) & old).any()
    assert second.frame["is_anomaly"].sum() == old.sum() + lab2.sum()


def test_deterministic_per_seed_and_rng() -> None:
    ds = user_dataset(days=4)
    a, ea = inject_anomalies(ds, seed=9)
    b, eb = inject_anomalies(ds, rng=np.random.default_rng(9))
    c, _ = inject_anomalies(ds, seed=10)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    pd.testing.assert_frame_equal(ea, eb)
    assert not a.frame.equals(c.frame)


def test_clip_bounds_changed_values_only() -> None:
    ds = user_dataset(days=4)
    out, _ = inject_anomalies(ds, kinds=["spike", "dip"], n_events=3, clip=(0.0, 900.0),
                                   seed=2)
    lab = out.frame["is_anomaly"].to_numpy() == 1
    assert out.frame.loc[lab, ["latency_ms", "rps"]].to_numpy().max() <= 900.0
    # Normal rows above the bound are data, not ours to clip.
    assert ds.frame["rps"].max() > 900 and out.frame.loc[~lab, "rps"].max() > 900


def test_contextual_copies_busy_values_into_quiet_time() -> None:
    ds = user_dataset(days=10)
    out, events = inject_anomalies(ds, kinds=["contextual"], n_events=5, seed=4)
    assert len(events) == 10
    for e in events.itertuples():
        rows = (out.frame["entity"] == e.entity) & out.frame["timestamp"].between(e.start, e.end)
        before = ds.frame.loc[rows, "rps"].mean()
        after = out.frame.loc[rows, "rps"].mean()
        # Normal magnitude (within the entity's range) at the wrong time (well above the usual).
        assert after > before + 200
        assert after <= ds.frame.loc[ds.frame["entity"] == e.entity, "rps"].max()


def test_contextual_needs_a_daily_cycle() -> None:
    with pytest.raises(DataError, match="contextual needs >= 2 days of data with a daily cycle"):
        inject_anomalies(user_dataset(days=4, cycle=False), kinds=["contextual"], n_events=2)
    # In a mix, kinds that do not apply are replaced by the others.
    _, events = inject_anomalies(user_dataset(days=4, cycle=False), kinds=["contextual", "dip"],
                                 n_events=3)
    assert set(events["type"]) == {"dip"}


def test_correlation_break_needs_two_metrics() -> None:
    ts = pd.date_range("2026-01-01", periods=400, freq="5min", tz="UTC")
    one = Dataset.from_frame(pd.DataFrame({"timestamp": ts,
                                           "x": np.random.default_rng(0).random(400)}))
    with pytest.raises(DataError, match="correlation_break needs two metrics"):
        inject_anomalies(one, kinds=["correlation_break"], n_events=2)


def test_argument_errors() -> None:
    ds = user_dataset(days=2)
    with pytest.raises(ConfigError, match=r"unknown anomaly kind\(s\) \['meteor'\]"):
        inject_anomalies(ds, kinds=["spike", "meteor"])
    with pytest.raises(ConfigError, match="n_events or rate, not both"):
        inject_anomalies(ds, n_events=2, rate=0.05)
    with pytest.raises(ConfigError, match="n_events must be a positive integer"):
        inject_anomalies(ds, n_events=0)
    with pytest.raises(DataError, match="too few for 100 events"):
        inject_anomalies(ds, n_events=100)
    with pytest.raises(DataError, match=r"unknown entities \['svc-z'\]"):
        inject_anomalies(ds, entities=["svc-z"])


def test_only_selected_entities_change() -> None:
    ds = user_dataset(days=3)
    out, events = inject_anomalies(ds, entities=["svc-b"], seed=0)
    assert set(events["entity"]) == {"svc-b"}
    a = (out.frame["entity"] == "svc-a").to_numpy()
    assert out.frame.loc[a, "is_anomaly"].sum() == 0
    assert not changed_rows(ds, out)[a].any()


def test_kind_functions_flatline_and_correlation_break() -> None:
    x = np.column_stack([np.arange(10.0), np.arange(10.0) * 2])
    flatline(x, slice(3, 6), [1])
    assert x[3:6, 1].tolist() == [4.0, 4.0, 4.0] and x[3:6, 0].tolist() == [3.0, 4.0, 5.0]
    y = np.column_stack([np.arange(10.0), np.arange(10.0)])
    correlation_break(y, slice(4, 8), moved=1, flat=0, magnitude=3.0, noise=0.0,
                      rng=np.random.default_rng(0))
    assert y[4:8, 0].tolist() == [3.0] * 4  # the partner stays level
    assert (y[5:8, 1] - np.arange(5.0, 8.0)).tolist() == [3.0] * 3  # the other moved
