"""Shared source helpers: time parsing, grid alignment, Dataset assembly with churn."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.errors import SourceError
from aws_anomaly.sources import align_range, build_dataset, to_utc
from aws_anomaly.sources.base import BaseSource

STEP = pd.Timedelta("5min")
T0 = pd.Timestamp("2026-03-01T00:00Z")


def ns(times: pd.DatetimeIndex) -> np.ndarray:
    return times.as_unit("ns").asi8


@pytest.mark.parametrize(
    ("value", "iso"),
    [(0, "1970-01-01T00:00:00+00:00"),
     (1772323200.5, "2026-03-01T00:00:00.500000+00:00"),
     ("2026-03-01 01:00", "2026-03-01T01:00:00+00:00"),  # naive = UTC
     (pd.Timestamp("2026-03-01T02:00+02:00"), "2026-03-01T00:00:00+00:00")],
)
def test_to_utc(value: object, iso: str) -> None:
    assert to_utc(value).isoformat() == iso  # type: ignore[arg-type]


def test_to_utc_rejects_garbage() -> None:
    with pytest.raises(SourceError, match=r"start: cannot read 'yesterday-ish' as a time"):
        to_utc("yesterday-ish", where="start")


def test_align_range_is_half_open_on_the_epoch_grid() -> None:
    assert align_range(T0, T0 + STEP, STEP) == (T0, T0)
    assert align_range(T0, T0 + STEP + pd.Timedelta(1, "ns"), STEP) == (T0, T0 + STEP)
    assert align_range(T0 + pd.Timedelta(1, "ns"), T0 + STEP, STEP) is None
    # a 7-minute step has its own epoch grid, not one relative to the start
    first, _ = align_range(T0, T0 + pd.Timedelta(hours=1), pd.Timedelta("7min"))
    assert first.value % pd.Timedelta("7min").value == 0 and first >= T0


def test_build_dataset_fills_gaps_and_drops_incomplete_entities(
        caplog: pytest.LogCaptureFixture) -> None:
    t = pd.date_range(T0, periods=6, freq=STEP)
    series = {
        "cpu": {"a": (ns(t), np.array([1, 2, np.nan, 4, 5, 6.0])),
                "b": (ns(t[[0, 1, 4, 5]]), np.array([1, 2, 5, 6.0])),
                "gone": (ns(t[:2]), np.array([1, 1.0]))},
        "mem": {"a": (ns(t), np.arange(6.0)), "b": (ns(t), np.arange(6.0))},
    }
    with caplog.at_level(logging.WARNING):
        ds = build_dataset(series, metrics=["cpu", "mem"], step=STEP, source="test",
                           span="the test range")
    assert ds.entities == ("a", "b")
    assert ds.values("a")[:, 0].tolist() == [1, 2, 2, 4, 5, 6]  # NaN held (ffill)
    assert ds.values("b")[:, 0].tolist() == [1, 2, 2, 2, 5, 6]  # missing points held
    assert "entity 'gone' has no data for metric(s) ['mem'] in the test range; left out" in \
        caplog.text


def test_build_dataset_entity_filter_and_empty_result() -> None:
    t = pd.date_range(T0, periods=3, freq=STEP)
    series = {"cpu": {"a": (ns(t), np.ones(3)), "b": (ns(t), np.zeros(3))}}
    assert build_dataset(series, metrics=["cpu"], step=STEP, source="s",
                         entities=["b"]).entities == ("b",)
    with pytest.raises(SourceError, match=r"s: no entity has data for all metrics \['cpu'\] in "
                                          r"\[x\] \(entities asked: \['zz'\]\)"):
        build_dataset(series, metrics=["cpu"], step=STEP, source="s", entities=["zz"],
                      span="[x]")


def test_build_dataset_too_long_gap_is_a_data_error() -> None:
    t = pd.date_range(T0, periods=10, freq=STEP)
    keep = [0, 1, 8, 9]
    series = {"cpu": {"a": (ns(t[keep]), np.ones(4))}}
    with pytest.raises(ValueError, match="gap of 6 steps"):
        build_dataset(series, metrics=["cpu"], step=STEP, source="s", max_gap_steps=3)


class Fixed(BaseSource):
    """A source whose clock is fixed, recording the range it was asked for."""

    def __init__(self) -> None:
        self.name, self.metrics, self.step = "fixed", ("cpu",), STEP
        self.asked: tuple[pd.Timestamp, pd.Timestamp] | None = None

    def now(self) -> pd.Timestamp:
        return T0 + pd.Timedelta(hours=1)

    def fetch(self, start, end, *, entities=None):  # type: ignore[no-untyped-def]
        self.asked = (start, end)
        return None


def test_latest_asks_for_the_window_ending_at_now_inclusive() -> None:
    src = Fixed()
    src.latest(pd.Timedelta("30min"))
    start, end = src.asked  # type: ignore[misc]
    now = T0 + pd.Timedelta(hours=1)
    assert align_range(start, end, STEP) == (now - pd.Timedelta("25min"), now)
