"""The demo replay: virtual clock, determinism, no look-ahead, looping, fault injection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.config import DEMO_METRICS, DemoSourceConfig
from aws_anomaly.data.generator import generate_demo
from aws_anomaly.errors import SourceError
from aws_anomaly.sources import Source, make_source
from aws_anomaly.sources.demo import DemoSource

START = pd.Timestamp("2026-03-10T12:00Z")
STEP = pd.Timedelta("5min")


class Wall:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


def demo(wall: Wall, **kw: object) -> DemoSource:
    cfg = DemoSourceConfig(**{"clusters": 2, "days": 2, "future_days": 1, "speedup": 60, **kw})
    src = make_source(cfg, start=START, wall_clock=wall)
    assert isinstance(src, DemoSource) and isinstance(src, Source)
    return src


def test_history_is_the_generator_output_on_the_replay_axis() -> None:
    wall = Wall()
    src = demo(wall)
    got = src.fetch(START - pd.Timedelta(days=5), START + pd.Timedelta(days=5))
    gen, events = generate_demo(clusters=2, days=3, seed=0,
                                start=(START - pd.Timedelta(days=2)).isoformat())
    # history = the generated rows before the virtual now, plus the point at now
    want = gen.slice_time(None, START + STEP).frame.reset_index(drop=True)
    pd.testing.assert_frame_equal(got.frame, want)
    assert got.metrics == DEMO_METRICS and got.has_labels
    pd.testing.assert_frame_equal(src.events, events)


def test_clock_runs_speedup_times_faster_and_never_serves_the_future() -> None:
    wall = Wall()
    src = demo(wall)
    assert src.now() == START
    assert src.latest(pd.Timedelta("1h")).frame["timestamp"].max() == START
    wall.t += 4.9  # 4.9 s x 60 = 4 min 54 s: no new point yet
    assert src.latest(pd.Timedelta("1h")).frame["timestamp"].max() == START
    wall.t += 0.1
    latest = src.latest(pd.Timedelta("1h"))
    assert latest.frame["timestamp"].max() == START + STEP
    assert latest.frame.groupby("entity").size().eq(12).all()
    with pytest.raises(SourceError, match="no data in"):
        src.fetch(START + pd.Timedelta(hours=1), START + pd.Timedelta(hours=2))


def test_same_seed_same_data_other_seed_other_data() -> None:
    a = demo(Wall()).fetch(START - pd.Timedelta(days=1), START)
    b = demo(Wall()).fetch(START - pd.Timedelta(days=1), START)
    c = demo(Wall(), seed=1).fetch(START - pd.Timedelta(days=1), START)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert not np.allclose(a.frame[list(DEMO_METRICS)], c.frame[list(DEMO_METRICS)])


def test_replay_loops_after_future_days() -> None:
    wall = Wall()
    src = demo(wall, speedup=86_400)  # one wall second = one data day
    wall.t += 2.0  # 2 days after start: past the 1 generated future day
    cycle = pd.Timedelta(days=3)
    first = src.fetch(START - pd.Timedelta(days=2), START - pd.Timedelta(days=1))
    again = src.fetch(START + pd.Timedelta(days=1), START + pd.Timedelta(days=2))
    assert (again.frame["timestamp"] - first.frame["timestamp"]).eq(cycle).all()
    np.testing.assert_array_equal(again.frame[list(DEMO_METRICS)].to_numpy(),
                                  first.frame[list(DEMO_METRICS)].to_numpy())


def test_fail_next_and_failing_flag() -> None:
    src = demo(Wall())
    src.fail_next(2, "scrape target down")
    for left in (1, 0):
        with pytest.raises(SourceError, match=f"scrape target down \\({left} more to come\\)"):
            src.latest(pd.Timedelta("1h"))
    assert len(src.latest(pd.Timedelta("1h"))) > 0
    src.failing = True
    for _ in range(3):
        with pytest.raises(SourceError, match="failure flag set"):
            src.latest(pd.Timedelta("1h"))
    src.failing = False
    assert len(src.latest(pd.Timedelta("1h"))) > 0
    assert src.fetches == 7


def test_entities_and_metrics_selection() -> None:
    src = make_source(DemoSourceConfig(clusters=3, days=1, future_days=1),
                      metrics=["cluster_pod_ratio"], start=START, wall_clock=Wall())
    names = src.fetch(START - pd.Timedelta(hours=1), START).entities
    got = src.fetch(START - pd.Timedelta(hours=1), START, entities=[names[2], "nope"])
    assert got.entities == (names[2],) and got.metrics == ("cluster_pod_ratio",)
    with pytest.raises(SourceError, match=r"none of \['nope'\] is a demo entity"):
        src.fetch(START - pd.Timedelta(hours=1), START, entities=["nope"])
    with pytest.raises(SourceError, match=r"unknown metric\(s\) \['gpu'\]"):
        make_source(DemoSourceConfig(days=1), metrics=["gpu"])


def test_a_window_across_the_loop_seam_is_the_generated_rows_it_maps_to() -> None:
    """Fetches slice precomputed arrays (docs/performance.md): a window that crosses the seam
    where the replay starts again, for some entities and metrics in another order, is exactly
    the generated rows ``k mod n`` of those entities and columns, labels included."""
    wall = Wall()
    metrics = ["cluster_pod_ratio", "cluster_cpu_request_ratio"]
    src = make_source(DemoSourceConfig(clusters=3, days=1, future_days=1, speedup=86_400),
                      metrics=metrics, start=START, wall_clock=wall)
    wall.t += 2.0  # two data days on: past the generated future day
    gen, _ = generate_demo(clusters=3, days=2, seed=0,
                           start=(START - pd.Timedelta(days=1)).isoformat())
    n = len(gen.frame) // 3
    origin = START - pd.Timedelta(days=1)
    seam = origin + n * STEP
    names = list(gen.entities)
    got = src.fetch(seam - 4 * STEP, seam + 3 * STEP, entities=[names[2], names[0]])
    k = np.arange(n - 4, n + 3)
    assert got.entities == (names[0], names[2]) and got.metrics == tuple(metrics)
    for e in (names[0], names[2]):
        want = gen.entity_frame(e).iloc[k % n]
        part = got.entity_frame(e)
        assert list(part.index) == list(origin + k * STEP)
        np.testing.assert_array_equal(part[metrics].to_numpy(), want[metrics].to_numpy())
        np.testing.assert_array_equal(part["is_anomaly"].to_numpy(),
                                      want["is_anomaly"].to_numpy())
        assert part["anomaly_type"].tolist() == want["anomaly_type"].tolist()
    assert got.report is not None and not got.report.changed
    assert got.report.rows_in == got.report.rows_out == len(got.frame) == 14
