"""The demo replay never serves points ahead of the wall clock (issue 9: the dashboard showed
a demo replay hours ahead of the time of day)."""

from __future__ import annotations

import pandas as pd
import pytest

from aws_anomaly.config import DemoSourceConfig
from aws_anomaly.errors import SourceError
from aws_anomaly.sources.demo import DemoSource

WALL0 = pd.Timestamp("2026-03-10T12:02:30Z").timestamp()
STEP = pd.Timedelta("5min")


class Wall:
    def __init__(self) -> None:
        self.t = WALL0

    def __call__(self) -> float:
        return self.t

    @property
    def now(self) -> pd.Timestamp:
        return pd.Timestamp(self.t, unit="s", tz="UTC")


def test_default_replay_fast_forwards_then_follows_the_wall_clock() -> None:
    wall = Wall()
    src = DemoSource(DemoSourceConfig(clusters=2, days=2, future_days=1, speedup=600),
                     wall_clock=wall)
    # Starts future_days behind the wall clock, on the grid, with `days` of history before.
    assert src.follows_wall
    assert src.now() == src.start == (wall.now - pd.Timedelta(days=1)).floor(STEP)
    assert src.latest(pd.Timedelta("1h")).frame["timestamp"].max() == src.start
    # Fast-forward: 60 wall seconds are 10 data hours at speedup 600.
    wall.t += 60
    assert src.now() == src.start + pd.Timedelta(hours=10)
    # 3 wall minutes would be 30 data hours at speedup 600, more than the day it is behind:
    # the replay stops at the wall clock instead of running ahead of it.
    for minutes in (3, 30, 300):
        wall.t = WALL0 + 60 * minutes
        assert src.now() == wall.now
        got = src.fetch(wall.now - pd.Timedelta(hours=2), wall.now + pd.Timedelta(days=2))
        assert got.frame["timestamp"].max() == wall.now.floor(STEP)
    with pytest.raises(SourceError, match="no data in"):
        src.fetch(wall.now + STEP, wall.now + pd.Timedelta(hours=1))


def test_a_start_given_at_the_wall_clock_is_capped_too() -> None:
    # What the service does after a restart: resume at the last scored point (<= wall clock).
    wall = Wall()
    src = DemoSource(DemoSourceConfig(clusters=1, days=1, future_days=1, speedup=6000),
                     start=wall.now.floor(STEP), wall_clock=wall)
    wall.t += 3.0  # 5 data hours at speedup 6000, 3 s of wall time
    assert src.now() == wall.now
    assert src.latest(pd.Timedelta("1h")).frame["timestamp"].max() <= wall.now


def test_a_start_after_the_wall_clock_is_a_simulation_and_is_not_capped() -> None:
    wall = Wall()
    start = pd.Timestamp("2030-01-01T00:00Z")
    src = DemoSource(DemoSourceConfig(clusters=1, days=1, future_days=1, speedup=60),
                     start=start, wall_clock=wall)
    wall.t += 60
    assert not src.follows_wall and src.now() == start + pd.Timedelta(hours=1)


def test_a_configured_start_pins_the_replay_whatever_the_wall_clock() -> None:
    # source: {type: demo, start: ...} serves the same data hours at any time of day, so a
    # test (or a demo) does not depend on when it runs
    cfg = DemoSourceConfig.model_validate(
        {"clusters": 2, "days": 2, "future_days": 1, "speedup": 600,
         "start": "2026-03-01T06:02:00Z"})
    seen = []
    for offset_h in (0, 7, 13):
        wall = Wall()
        wall.t += offset_h * 3600
        src = DemoSource(cfg, wall_clock=wall)
        assert src.start == pd.Timestamp("2026-03-01T06:00Z")  # floored to the step
        wall.t += 60  # ten data hours later
        seen.append(src.latest(pd.Timedelta("1h")).frame.reset_index(drop=True))
    pd.testing.assert_frame_equal(seen[0], seen[1])
    pd.testing.assert_frame_equal(seen[0], seen[2])
    assert seen[0]["timestamp"].max() == pd.Timestamp("2026-03-01T16:00Z")
    # Unix seconds and round trips through the config's own output
    same = DemoSourceConfig.model_validate({"start": 1772344920})
    assert same.start == cfg.start
    assert DemoSourceConfig.model_validate(cfg.model_dump(mode="json")).start == cfg.start


def test_an_unreadable_demo_start_is_a_config_error_naming_the_value() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="cannot read 'noon' as a time"):
        DemoSourceConfig.model_validate({"start": "noon"})
