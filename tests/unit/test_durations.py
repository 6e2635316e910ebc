"""One duration parser (aws_anomaly.durations) behind every place that takes a duration."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.alert_rules import RuleOptions, render_rules
from aws_anomaly.config import load_job
from aws_anomaly.data import Dataset
from aws_anomaly.data.generator import parse_step
from aws_anomaly.durations import format_duration, parse_duration, parse_seconds, parse_timedelta
from aws_anomaly.errors import ConfigError


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
