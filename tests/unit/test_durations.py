"""One duration parser (aws_anomaly.durations) behind every place that takes a duration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aws_anomaly.alert_rules import RuleOptions, render_rules
from aws_anomaly.config import load_job
from aws_anomaly.data import Dataset
from aws_anomaly.data.generator import parse_step
from aws_anomaly.durations import (
    format_duration,
    format_timestamp,
    parse_duration,
    parse_seconds,
    parse_timedelta,
    parse_timestamp,
    parse_timestamps,
)
from aws_anomaly.errors import ConfigError, SourceError


@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90), ("5m", 300), ("5min", 300), ("30sec", 30), ("1h30m", 5400),
    ("2d12h", 216_000), ("1w", 604_800), ("1D", 86_400), ("1H", 3600), ("250ms", 0.25),
    ("1m30s", 90), ("1.5h", 5400), (" 2m ", 120), ("1h0m5s", 3605),
])
def test_compound_durations(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds
    assert parse_timedelta(text) == pd.Timedelta(seconds=seconds)


def test_values_that_are_already_durations_or_seconds() -> None:
    assert parse_duration(45) == timedelta(seconds=45)
    assert parse_duration(0.25) == timedelta(milliseconds=250)
    assert parse_timedelta(timedelta(minutes=5)) == pd.Timedelta("5min")
    # nanoseconds survive: a pandas step is never rounded to microseconds
    assert parse_timedelta(pd.Timedelta(1, "ns")).value == 1
    assert parse_timedelta(np.timedelta64(5, "m")) == pd.Timedelta("5min")
    assert parse_timedelta(np.int64(60)) == pd.Timedelta("1min")


@pytest.mark.parametrize("bad", ["", "5", "5x", "m5", "5m3", "-5m", "1.5.2h", "five",
                                 "5 min", "1h 30m", True, None, float("nan")])
def test_not_a_duration_names_the_option(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"^--job-interval .* is not a duration; use a number "
                       r"and a unit \(ms, s, m, h, d, w\) or several, e\.g\. 30s, 5m, 1h30m"):
        parse_duration(bad, where="--job-interval")


def test_units_out_of_order_or_repeated_and_non_positive() -> None:
    for bad in ("30m1h", "1h1h", "5s1m"):
        with pytest.raises(ConfigError, match=r"comes after a smaller one; write the parts from "
                           r"the largest unit down"):
            parse_timedelta(bad, where="--step")
    with pytest.raises(ConfigError, match=r"^--step must be positive, got '0s'$"):
        parse_timedelta("0s", where="--step")
    with pytest.raises(ConfigError, match=r"^step must be positive, got 0\.0$"):
        parse_timedelta(np.float64(0.0), where="step")  # a plain number, not np.float64(0.0)
    with pytest.raises(ConfigError, match=r"job_interval must be whole seconds, got '1500ms'"):
        parse_seconds("1500ms", where="job_interval")


def test_format_round_trips() -> None:
    for text in ("30s", "5m", "1h30m", "2d12h", "14d", "1s500ms"):
        assert format_duration(parse_duration(text)) == text


def test_every_entry_point_accepts_compound_durations(tmp_path: Path) -> None:
    # config files
    job = tmp_path / "job.yaml"
    job.write_text("name: a\ninterval: 1h30m\nsource: {type: demo, step: 1m30s}\n")
    cfg = load_job(job, environ={})
    assert cfg.interval == timedelta(minutes=90) and cfg.source.step == timedelta(seconds=90)
    # Prometheus rules (aws-anomaly rules --job-interval)
    text = render_rules(RuleOptions(job_interval="1h30m", stale_intervals=2))
    assert "> 10800" in text and "2 intervals (3h)" in text
    # the generator's step and a data set's step
    assert parse_step("2d12h") == pd.Timedelta(days=2.5)
    t = pd.date_range("2026-01-01", periods=4, freq="90s", tz="UTC")
    ds = Dataset.from_frame(pd.DataFrame({"timestamp": t, "cpu": [1.0, 2.0, 3.0, 4.0]}),
                            step="1m30s")
    assert ds.step == pd.Timedelta(seconds=90) and len(ds) == 4
    with pytest.raises(ConfigError, match=r"^input: step 'soon' is not a duration"):
        Dataset.from_frame(pd.DataFrame({"timestamp": t, "cpu": 1.0}), step="soon")


# ---------------------------------------------------------------- timestamps
@pytest.mark.parametrize("value", [
    "2026-03-01T10:05:00Z", "2026-03-01 10:05", "2026-03-01T11:05:00+01:00",
    pd.Timestamp("2026-03-01 10:05"), pd.Timestamp("2026-03-01T05:05", tz="America/New_York"),
    datetime(2026, 3, 1, 10, 5), np.datetime64("2026-03-01T10:05"),
    1772359500, 1772359500.0, np.int64(1772359500),
])
def test_parse_timestamp_gives_one_utc_instant_whatever_the_spelling(value: object) -> None:
    got = parse_timestamp(value)
    assert str(got.tz) == "UTC"
    assert got == pd.Timestamp("2026-03-01T10:05:00Z")


def test_parse_timestamp_rounds_unix_seconds_to_the_millisecond_as_the_column_parser() -> None:
    secs = [1772359500.0004, 1772359500.25]
    column = parse_timestamps(pd.Series(secs), "x")
    assert [parse_timestamp(s) for s in secs] == list(column)


@pytest.mark.parametrize(("bad", "message"), [
    ("yesterday", r"--start: cannot read 'yesterday' as a time; use ISO 8601"),
    (None, r"--start: None is not a time"),
    (True, r"--start: True is not a time"),
    (float("nan"), r"--start: nan is not a time"),
    (pd.NaT, r"--start: NaT is not a time"),
    (1772359500000, r"--start: 1772359500000 is not plausible Unix seconds .*milliseconds\?"),
    ([2026, 3, 1], r"--start: cannot read \[2026, 3, 1\] as a time"),
])
def test_parse_timestamp_errors_name_the_place_and_keep_the_callers_class(
        bad: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_timestamp(bad, where="--start")
    with pytest.raises(SourceError, match=message.replace("--start", "fetch start")):
        parse_timestamp(bad, where="fetch start", error=SourceError)


def test_the_former_normalisers_share_the_rule() -> None:
    """sources.to_utc, Dataset.slice_time, stream_admit, the generator's start, the store's
    microseconds and event ids all read a time through parse_timestamp."""
    from aws_anomaly.data.dataset import stream_admit
    from aws_anomaly.data.generator import generate_demo
    from aws_anomaly.events import event_id_for
    from aws_anomaly.sources import to_utc
    from aws_anomaly.store.store import to_us

    t = pd.Timestamp("2026-03-01T10:05:00Z")
    naive = "2026-03-01 10:05"
    assert to_utc(naive) == t and to_utc(1772359500) == t
    assert to_us(naive) == to_us(t) == 1772359500 * 10**6
    assert event_id_for("a", naive) == event_id_for("a", t)
    assert stream_admit(naive, t + pd.Timedelta("5min")) and not stream_admit(t, naive)
    with pytest.raises(ConfigError, match=r"^start: cannot read 'soon' as a time"):
        generate_demo(days=1, start="soon")
    with pytest.raises(SourceError, match=r"^end: 1e\+20 is not plausible Unix seconds"):
        to_utc(1e20, where="end")


@given(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1),
                    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7, minutes=-30))])
                    | st.none()))
@settings(max_examples=200, deadline=None)
def test_format_then_parse_is_the_same_instant(value: datetime) -> None:
    ts = parse_timestamp(value)
    assert parse_timestamp(format_timestamp(ts)) == ts
    expected = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    assert ts == pd.Timestamp(expected)
