"""Seasonal level novelty: a daily pattern that fails to happen is flagged, a lone spike is not."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aws_anomaly.errors import ConfigError
from aws_anomaly.streaming import BEST_DETECTOR, NAB_DETECTORS, SeasonalNoveltyDetector
from aws_anomaly.streaming.base import StreamingDetector

DAY = 288  # records a day at 5 minutes
H = 12  # records an hour


def _busy_days(n_days: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """5-minute series: ~20 at night, ~80 from 9:00 to 17:00, with noise."""
    n = n_days * DAY
    t = np.arange(n, dtype=np.int64) * 300 * 10**9
    hour = (t // 3_600_000_000_000) % 24
    rng = np.random.default_rng(seed)
    x = np.where((hour >= 9) & (hour < 17), 80.0, 20.0) + rng.normal(0, 2, n)
    return t, x


def test_a_missing_busy_period_is_flagged_and_normal_days_are_silent() -> None:
    t, x = _busy_days(12)
    quiet_day = 9
    x[quiet_day * DAY + 9 * H: quiet_day * DAY + 17 * H] = 20.0  # stays quiet
    det = SeasonalNoveltyDetector()
    s = det.run(t, x, probationary=3 * DAY)
    before = s[: quiet_day * DAY]
    assert before.max() == 0.0, "ordinary days must not look seasonally novel"
    hit = np.flatnonzero(s == 1.0)
    # Flagged within the missing period, after the one-hour sustain (and the tolerance slot).
    assert hit.size and quiet_day * DAY + 10 * H <= hit[0] <= quiet_day * DAY + 12 * H
    assert hit[-1] < quiet_day * DAY + 17 * H
    # The next day's busy period is normal again.
    assert s[(quiet_day + 1) * DAY:].max() == 0.0


def test_a_lone_spike_at_an_unusual_hour_scores_nothing() -> None:
    t, x = _busy_days(10, seed=3)
    x[8 * DAY + 3 * H] = 80.0  # a busy-level value at 3:00, for one record
    x[8 * DAY + 4 * H: 8 * DAY + 4 * H + 6] = 80.0  # and for half an hour at 4:00
    s = SeasonalNoveltyDetector().run(t, x, probationary=3 * DAY)
    assert s.max() == 0.0
    # With no sustain the same half hour is flagged at once.
    s0 = SeasonalNoveltyDetector(sustain="0s").run(t, x, probationary=3 * DAY)
    assert s0[8 * DAY + 3 * H] == 1.0 and s0[8 * DAY + 4 * H] == 1.0


def test_nothing_is_scored_before_a_slot_was_seen_on_min_days() -> None:
    t, x = _busy_days(6)
    x[2 * DAY + 9 * H: 2 * DAY + 17 * H] = 20.0  # day 2 quiet: only 2 days seen before
    s = SeasonalNoveltyDetector(min_days=3).run(t, x, probationary=H)
    assert s[: 3 * DAY].max() == 0.0
    s1 = SeasonalNoveltyDetector(min_days=2).run(t, x, probationary=H)
    assert s1[2 * DAY: 3 * DAY].max() == 1.0


def test_state_round_trip_through_json_and_causality() -> None:
    t, x = _busy_days(10, seed=5)
    x[8 * DAY + 9 * H: 8 * DAY + 13 * H] = 20.0
    full = SeasonalNoveltyDetector().run(t, x, probationary=2 * DAY)
    det = SeasonalNoveltyDetector().reset(2 * DAY)
    cut = 7 * DAY + 100
    first = [det.update(int(a), b) for a, b in zip(t[:cut], x[:cut], strict=True)]
    back = StreamingDetector.from_state.__func__(  # type: ignore[attr-defined]
        SeasonalNoveltyDetector, json.loads(json.dumps(det.get_state())))
    rest = [back.update(int(a), b) for a, b in zip(t[cut:], x[cut:], strict=True)]
    np.testing.assert_array_equal(np.array(first + rest), full)
    assert full.max() == 1.0
    prefix = SeasonalNoveltyDetector().run(t[: 8 * DAY + 11 * H], x[: 8 * DAY + 11 * H],
                                           probationary=2 * DAY)
    np.testing.assert_array_equal(prefix, full[: len(prefix)])


def test_hourly_series_use_the_same_durations() -> None:
    """On an hourly series the slot is one record and one hour of sustain is two records."""
    t, x = _busy_days(14, seed=2)
    t, x = t[::12], x[::12]
    x[11 * 24 + 9: 11 * 24 + 17] = 20.0
    s = SeasonalNoveltyDetector().run(t, x, probationary=4 * 24)
    assert s[: 11 * 24].max() == 0.0
    assert np.flatnonzero(s == 1.0)[0] == 11 * 24 + 11


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"slot": "7h"}, "slot '7h' must divide season '1D'"),
        ({"slot": "often"}, "slot 'often' is not a duration"),
        ({"sustain": "-1h"}, "sustain '-1h' is not a duration"),
        ({"season": "0s"}, "season must be positive"),
        ({"tolerance": -1}, "tolerance must be an int >= 0"),
        ({"min_days": 0}, "min_days must be an int >= 1"),
        ({"n_levels": 1}, "n_levels must be an int >= 2"),
        ({"n_grids": 0}, "n_grids must be an int >= 1"),
        ({"range_fraction": 0}, "range_fraction must be in"),
    ],
)
def test_bad_parameters_raise_config_error(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SeasonalNoveltyDetector(**kwargs)


def test_the_nab_detector_has_the_seasonal_member() -> None:
    det = NAB_DETECTORS[BEST_DETECTOR]()
    seasonal = [m for m in det.members if isinstance(m, SeasonalNoveltyDetector)]
    assert len(seasonal) == 1 and seasonal[0].season == "1D"


@pytest.mark.nab
def test_the_nab_detector_finds_a_missing_daily_phase_only_with_the_seasonal_member(
    nab_root,
) -> None:
    """art_daily_nojump: one day's high phase never starts (ordinary values, wrong time)."""
    from aws_anomaly.evaluation.nab import load_corpus
    from aws_anomaly.streaming import EnsembleDetector

    f = load_corpus(nab_root, ["artificialWithAnomaly"])[
        "artificialWithAnomaly/art_daily_nojump.csv"]
    (lo, hi), p = f.windows[0], f.probationary
    full = NAB_DETECTORS[BEST_DETECTOR]()
    s = full.run(f.timestamps, f.values, p)
    hits = np.flatnonzero(s[p:] >= 0.45) + p
    assert hits.size and all(lo <= i <= hi for i in hits), "one alarm, inside the window"
    keep = [i for i, m in enumerate(full.members) if not isinstance(m, SeasonalNoveltyDetector)]
    without = NAB_DETECTORS[BEST_DETECTOR]()
    without = EnsembleDetector(
        members=[without.members[i] for i in keep], weights=[without.weights[i] for i in keep],
        rest_level=without.rest_level, rest_period=without.rest_period,
        rest_factor=without.rest_factor, spatial_tolerance=without.spatial_tolerance,
        rest_time=without.rest_time)
    assert without.run(f.timestamps, f.values, p)[lo:hi + 1].max() < 0.2
