"""The EKS demo generator: contract, labels, spread of anomalies, realism, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.data import ANOMALY_KINDS, DEFAULT_METRICS, Dataset, generate_demo, write_demo
from aws_anomaly.data.anomalies import estimate_scale, labels_from_events
from aws_anomaly.data.generator import cluster_names, generate_frame, parse_step
from aws_anomaly.data.io import read_dataset, read_events
from aws_anomaly.errors import ConfigError

M = list(DEFAULT_METRICS)


@pytest.fixture(scope="module")
def demo() -> tuple[Dataset, pd.DataFrame]:
    return generate_demo()


@pytest.fixture(scope="module")
def clean() -> Dataset:
    return generate_demo(events_per_day=0)[0]


def test_default_demo_shape_and_contract(demo: tuple[Dataset, pd.DataFrame]) -> None:
    ds, events = demo
    f = ds.frame
    assert len(f) == 3 * 28 * 288 == 24192
    assert list(f.columns) == ["timestamp", "entity", *M, "is_anomaly", "anomaly_type"]
    assert ds.metrics == DEFAULT_METRICS and ds.step == pd.Timedelta("5min")
    assert ds.entities == ("eks-prod-ap-southeast-1", "eks-prod-eu-west-1",
                           "eks-prod-us-east-1")
    assert str(f["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert f["timestamp"].iloc[0] == pd.Timestamp("2026-01-01", tz="UTC")
    assert f["is_anomaly"].dtype == np.int8
    values = f[M].to_numpy()
    assert np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1
    # It is a valid Dataset: validation gives it back unchanged.
    pd.testing.assert_frame_equal(Dataset.from_frame(f).frame, f)
    assert list(events.columns) == ["entity", "start", "end", "type", "metrics", "magnitude"]


def test_anomalous_share_and_all_kinds(demo: tuple[Dataset, pd.DataFrame]) -> None:
    ds, events = demo
    share = ds.frame["is_anomaly"].mean()
    assert 0.03 <= share <= 0.10
    counts = events["type"].value_counts()
    assert set(counts.index) == set(ANOMALY_KINDS)
    assert counts.min() >= 6  # a balanced mix: 84 events over 9 kinds


def test_labels_match_events_exactly(demo: tuple[Dataset, pd.DataFrame]) -> None:
    ds, events = demo
    lab, typ = labels_from_events(ds, events)
    assert (ds.frame["is_anomaly"].to_numpy() == lab).all()
    assert (ds.frame["anomaly_type"].to_numpy() == typ).all()
    assert set(events["metrics"].str.split(";").explode()) <= set(M)


def test_events_do_not_overlap(demo: tuple[Dataset, pd.DataFrame]) -> None:
    _, events = demo
    for _, ev in events.groupby("entity"):
        ev = ev.sort_values("start")
        assert (ev["start"].to_numpy()[1:] > ev["end"].to_numpy()[:-1]).all()


def test_every_15_percent_slice_holds_several_events(
        demo: tuple[Dataset, pd.DataFrame]) -> None:
    ds, events = demo
    for entity in ds.entities:
        ts = ds.entity_frame(entity).index
        starts = events.loc[events["entity"] == entity, "start"]
        n = len(ts)
        # Every window of 15% of the timeline, including the last one (the test split).
        for lo in [*range(0, n - int(0.15 * n), n // 40), n - int(0.15 * n)]:
            window = (starts >= ts[lo]) & (starts < ts[min(lo + int(0.15 * n), n - 1)])
            assert window.sum() >= 3, (entity, lo)


def test_anomalies_change_only_their_rows(demo: tuple[Dataset, pd.DataFrame],
                                          clean: Dataset) -> None:
    ds, _ = demo
    normal = ds.frame["is_anomaly"].to_numpy() == 0
    assert np.array_equal(ds.frame[M].to_numpy()[normal], clean.frame[M].to_numpy()[normal])
    changed = (ds.frame[M].to_numpy() != clean.frame[M].to_numpy()).any(axis=1)
    assert changed[~normal].mean() > 0.9  # labelled rows really differ


def test_anomalies_are_real_but_not_absurd(demo: tuple[Dataset, pd.DataFrame],
                                           clean: Dataset) -> None:
    ds, events = demo
    for entity in ds.entities:
        x, x0 = ds.values(entity), clean.values(entity)
        ts = ds.entity_frame(entity).index
        noise = estimate_scale(x0).noise
        for e in events[events["entity"] == entity].itertuples():
            rows = slice(ts.get_loc(e.start), ts.get_loc(e.end) + 1)
            cols = [M.index(c) for c in e.metrics.split(";")]
            dev = np.abs(x[rows][:, cols] - x0[rows][:, cols])
            assert dev.max() <= 0.45, e  # at most a modest fraction of the [0, 1] range
            if e.type == "flatline":
                assert np.ptp(x[rows][:, cols], axis=0).max() == 0.0
            else:
                # Several noise sigmas away from what the cluster would have done.
                assert dev.mean(axis=0).max() >= 3 * noise[cols].min(), e


def test_capacity_loss_moves_all_ratios_up_together(demo: tuple[Dataset, pd.DataFrame],
                                                    clean: Dataset) -> None:
    ds, events = demo
    f, c = ds.frame, clean.frame
    for e in events[events["type"] == "capacity_loss"].itertuples():
        rows = ((f["entity"] == e.entity) & f["timestamp"].between(e.start, e.end)).to_numpy()
        ratio = f.loc[rows, M].to_numpy() / c.loc[rows, M].to_numpy()
        unclipped = f.loc[rows, M].to_numpy() < 1.0
        assert np.allclose(ratio[unclipped], 1 / (1 - e.magnitude), rtol=1e-4)


def test_daily_cycle_and_correlated_metrics(clean: Dataset) -> None:
    for entity in clean.entities:
        ef = clean.entity_frame(entity)
        hourly = ef[M].groupby(ef.index.hour).mean()
        noise = estimate_scale(ef[M].to_numpy()).noise
        # Business-hours peaks and quiet nights: far beyond the measurement noise.
        assert ((hourly.max() - hourly.min()).to_numpy() > 8 * noise).all()
        # Pods drive CPU and memory requests: their movements are correlated, not identical.
        d = ef[M].diff().dropna()
        corr = d.corr().to_numpy()
        assert 0.2 < corr[0, 2] < 0.99 and 0.2 < corr[1, 2] < 0.99


def test_autoscaler_moves_all_ratios_together_and_keeps_a_band(clean: Dataset) -> None:
    for entity in clean.entities:
        ef = clean.entity_frame(entity)[M]
        d = ef.diff().dropna().to_numpy()
        noise = estimate_scale(ef.to_numpy()).noise
        same_way = (np.sign(d) == np.sign(d[:, [0]])).all(axis=1)
        together = same_way & (np.abs(d) > 3 * noise).all(axis=1)
        assert together.sum() >= 20  # nodes added or removed, HPA steps: every ratio jumps
        cpu = ef[M[0]]
        assert cpu.quantile(0.01) > 0.2 and cpu.quantile(0.99) < 0.97


def test_clusters_differ(clean: Dataset) -> None:
    means = clean.frame.groupby("entity")[M].mean()
    stds = clean.frame.groupby("entity")[M].std()
    assert (means.max() - means.min() > 0.02).all()
    assert (stds.max() / stds.min() > 1.1).any()


def test_raw_frame_has_short_scrape_gaps_filled_by_default_policy(
        demo: tuple[Dataset, pd.DataFrame]) -> None:
    ds, _ = demo
    raw, _ = generate_frame()
    assert len(ds) - 200 < len(raw) < len(ds)
    for entity, g in raw.groupby("entity"):
        steps = g["timestamp"].diff().dropna() / pd.Timedelta("5min")
        assert steps.max() <= 37, entity
    pd.testing.assert_frame_equal(Dataset.from_frame(raw).frame, ds.frame)


def test_write_demo_files_round_trip_and_are_byte_identical(tmp_path: Path) -> None:
    m1, e1, ds, events = write_demo(tmp_path / "a", clusters=2, days=3, seed=5)
    m2, e2, _, _ = write_demo(tmp_path / "b", clusters=2, days=3, seed=5)
    m3, _, _, _ = write_demo(tmp_path / "c", clusters=2, days=3, seed=6)
    assert m1.read_bytes() == m2.read_bytes() and e1.read_bytes() == e2.read_bytes()
    assert m1.read_bytes() != m3.read_bytes()
    lines = m1.read_text().splitlines()
    assert lines[0] == ("timestamp,entity,cluster_cpu_request_ratio,cluster_mem_request_ratio,"
                        "cluster_pod_ratio,is_anomaly,anomaly_type")
    assert lines[2].startswith("2026-01-01T00:05:00Z,eks-prod-eu-west-1,")
    pd.testing.assert_frame_equal(read_dataset(m1).frame, ds.frame)
    ev = read_events(e1)
    pd.testing.assert_frame_equal(ev.drop(columns="magnitude"),
                                  events.drop(columns="magnitude"))
    assert np.allclose(ev["magnitude"], events["magnitude"], rtol=1e-5, equal_nan=True)


def test_a_cluster_does_not_change_when_more_are_asked_for() -> None:
    one, _ = generate_demo(clusters=1, days=2, seed=3)
    four, _ = generate_demo(clusters=4, days=2, seed=3)
    pd.testing.assert_frame_equal(one.frame, four.select(one.entities).frame)


def test_other_steps_and_sizes() -> None:
    ds, _ = generate_demo(clusters=2, days=3, step="1h", seed=1)
    assert len(ds) == 2 * 72 and ds.step == pd.Timedelta("1h")
    assert ds.frame[M].to_numpy().min() >= 0 and ds.frame[M].to_numpy().max() <= 1
    many, _ = generate_demo(clusters=14, days=0.5, step="30s", seed=2)
    assert len(many.entities) == 14 and len(many) == 14 * 1440
    assert len(set(cluster_names(500))) == 500


def test_parse_step() -> None:
    assert parse_step("30s") == pd.Timedelta(seconds=30)
    assert parse_step("5m") == parse_step("5min") == pd.Timedelta(minutes=5)
    assert parse_step("1h") == pd.Timedelta(hours=1) and parse_step("1d") == pd.Timedelta("1D")
    for bad in ("5x", "", "m5", "-5m", "five minutes"):
        with pytest.raises(ConfigError, match=r"is not a duration; use a number and a unit"):
            parse_step(bad)
    with pytest.raises(ConfigError, match="step must be positive"):
        parse_step("0s")


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="clusters must be a positive integer"):
        generate_demo(clusters=0)
    with pytest.raises(ConfigError, match="days must be a positive number"):
        generate_demo(days=-1)
    with pytest.raises(ConfigError, match="needs at least 48"):
        generate_demo(days=0.1)
    with pytest.raises(ConfigError, match=r"1 day\(s\) at a step of 1h is 24 points"):
        generate_demo(days=1, step="1h")
    with pytest.raises(ConfigError, match="step must be between 10s and 1h"):
        generate_demo(step="2h")
    with pytest.raises(ConfigError, match=r"unknown anomaly kind\(s\)"):
        generate_demo(days=2, kinds=["tsunami"])
