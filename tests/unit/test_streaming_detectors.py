"""Contract tests for the streaming detectors: causality, range, run == update, detection, state."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.errors import ConfigError, DataError, ModelFileError
from aws_anomaly.streaming import (
    BEST_DETECTOR,
    NAB_DETECTORS,
    AnomalyLikelihood,
    ContextNoveltyDetector,
    EnsembleDetector,
    ForecastLikelihoodDetector,
    LikelihoodDetector,
    SeasonalNoveltyDetector,
    StreamingDetector,
)

P = 150  # probationary length for the synthetic series


def _times(n: int, step_min: int = 5) -> np.ndarray:
    start = np.datetime64("2024-01-01T00:00", "ns")
    return start + np.arange(n) * np.timedelta64(step_min, "m")


def _daily(n: int, seed: int = 0) -> np.ndarray:
    """A noisy daily cycle on a 5-minute grid (288 records a day)."""
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    return 50 + 10 * np.sin(2 * np.pi * i / 288) + rng.normal(0, 1, n)


FACTORIES = {
    **NAB_DETECTORS,
    "forecast_min": lambda: ForecastLikelihoodDetector(combine="min", season="1D"),
    "context_raw": lambda: ContextNoveltyDetector(),
    "seasonal_raw": lambda: SeasonalNoveltyDetector(min_days=1, sustain="0s"),
}


@pytest.fixture(params=sorted(FACTORIES))
def factory(request: pytest.FixtureRequest):
    return FACTORIES[request.param]


def test_prefix_runs_equal_and_scores_in_unit_interval(factory) -> None:
    n = 900
    t, x = _times(n), _daily(n)
    x[700] += 40
    full = factory().run(t, x, P)
    assert full.shape == (n,) and full.dtype == np.float64
    assert np.all((full >= 0) & (full <= 1))
    for cut in (P + 1, 520, 701):
        part = factory().run(t[:cut], x[:cut], P)
        np.testing.assert_array_equal(part, full[:cut])


def test_run_equals_repeated_update(factory) -> None:
    n = 400
    t, x = _times(n), _daily(n, seed=3)
    x[300:320] += 25
    batch = factory().run(t, x, P)
    det = factory().reset(P)
    online = np.array([det.update(ti, xi) for ti, xi in zip(t, x, strict=True)])
    np.testing.assert_array_equal(batch, online)


def test_deterministic(factory) -> None:
    t, x = _times(600), _daily(600, seed=5)
    np.testing.assert_array_equal(factory().run(t, x, P), factory().run(t, x, P))


@pytest.mark.parametrize("name", sorted(NAB_DETECTORS))
@pytest.mark.parametrize("kind", ["spike", "level_shift"])
def test_obvious_anomaly_gets_the_top_score(name: str, kind: str) -> None:
    n, at = 1600, 1200
    t, x = _times(n), _daily(n, seed=11)
    if kind == "spike":
        x[at] += 60
    else:
        x[at:] += 40
    s = NAB_DETECTORS[name]().run(t, x, 400)
    after = s[400:]
    peak = int(np.argmax(after)) + 400
    assert at <= peak <= at + 10, f"{name}: peak at {peak}, anomaly at {at}"
    # the alarm stands out: nothing before the anomaly comes close
    assert after.max() >= 0.5
    assert s[400:at].max() < after.max() - 0.2


def test_rest_period_gives_one_alarm_per_anomaly() -> None:
    n, at = 1600, 1200
    t, x = _times(n), _daily(n, seed=2)
    x[at:] += 40  # a lasting shift would otherwise keep alarming
    s = NAB_DETECTORS[BEST_DETECTOR]().run(t, x, 400)
    alarms = np.nonzero(s[at:] >= 0.45)[0] + at
    assert len(alarms) >= 1 and alarms[0] <= at + 10
    # without the rest the shifted level would keep alarming for many records; the rest lasts
    # 12 hours, 144 records at 5 minutes (the alarm's own record included)
    assert not ((alarms > alarms[0]) & (alarms < alarms[0] + 144)).any()
    assert s[alarms[0] + 1 : alarms[0] + 144].max() == 0.0


def test_rest_is_measured_in_time_not_records() -> None:
    """On an hourly series the 12-hour rest is 12 records: a second anomaly a day later is
    still reported (a rest of 150 records would have slept through it for 6 days)."""
    n = 1200
    t = _times(n, step_min=60)
    rng = np.random.default_rng(3)
    x = 50 + 10 * np.sin(2 * np.pi * np.arange(n) / 24) + rng.normal(0, 1, n)
    x[800] += 60
    x[830] -= 60
    s = NAB_DETECTORS[BEST_DETECTOR]().run(t, x, 200)
    assert s[800] >= 0.45 and s[801:812].max() == 0.0
    assert s[830] >= 0.45


def test_ensemble_rest_time_alone_and_bad_value() -> None:
    t = _times(400)
    x = np.full(400, 5.0)
    x[300:] = 50.0 * 2.0 ** np.arange(100)  # each record far beyond the running max: spatial 1
    det = EnsembleDetector(members=[ContextNoveltyDetector(max_order=1)], rest_level=0.5,
                           rest_period=0, rest_factor=0.0, rest_time="1h",
                           spatial_tolerance=0.05)
    s = det.run(t, x, 100)
    assert s[300] == 1.0
    assert s[301:312].max() == 0.0  # 11 records of 5 minutes after the alarm: within the hour
    assert s[312] == 1.0  # an hour later it alarms again, then rests again
    assert s[313:324].max() == 0.0 and s[324] == 1.0
    with pytest.raises(ConfigError, match="rest_time"):
        EnsembleDetector(members=[ContextNoveltyDetector()], rest_time="soon")
    with pytest.raises(ConfigError, match="rest_time"):
        EnsembleDetector(members=[ContextNoveltyDetector()], rest_time="-1h")


def test_score_one_does_not_learn_and_learn_one_does() -> None:
    t, x = _times(300), _daily(300)
    det = NAB_DETECTORS[BEST_DETECTOR]().reset(P)
    for ti, xi in zip(t[:299], x[:299], strict=True):
        det.learn_one(ti, xi)
    before = det.get_state()
    s1 = det.score_one(t[299], x[299])
    assert det.get_state() == before
    assert det.update(t[299], x[299]) == s1


def test_state_round_trip_through_json_continues_identically() -> None:
    n = 800
    t, x = _times(n), _daily(n, seed=7)
    x[600] += 50
    det = NAB_DETECTORS["aws_ensemble"]().reset(P)
    for ti, xi in zip(t[:500], x[:500], strict=True):
        det.update(ti, xi)
    state = json.loads(json.dumps(det.get_state()))
    clone = EnsembleDetector.from_state(state)
    rest_a = [det.update(ti, xi) for ti, xi in zip(t[500:], x[500:], strict=True)]
    rest_b = [clone.update(ti, xi) for ti, xi in zip(t[500:], x[500:], strict=True)]
    assert rest_a == rest_b
    assert max(rest_a) > 0.5


def test_from_state_refuses_another_class_and_unknown_members() -> None:
    state = ForecastLikelihoodDetector().get_state()
    with pytest.raises(ModelFileError, match="ForecastLikelihoodDetector"):
        ContextNoveltyDetector.from_state(state)
    bad = json.loads(json.dumps(LikelihoodDetector(member=ContextNoveltyDetector()).get_state()))
    bad["params"]["member"]["__detector__"]["class"] = "os.system"
    with pytest.raises(ModelFileError, match=r"unknown class 'os\.system'"):
        LikelihoodDetector.from_state(bad)


def test_bad_input_raises_data_error() -> None:
    det = ForecastLikelihoodDetector()
    t = _times(3)
    with pytest.raises(DataError, match="finite"):
        det.update(t[0], float("nan"))
    det.update(t[1], 1.0)
    with pytest.raises(DataError, match="backwards"):
        det.update(t[0], 1.0)
    with pytest.raises(DataError, match="non-finite"):
        det.run(t, np.array([1.0, np.inf, 2.0]), 1)
    with pytest.raises(DataError, match="equal length"):
        det.run(t, np.ones(2), 1)
    with pytest.raises(DataError, match="probationary"):
        det.run(t, np.ones(3), 0)
    # equal timestamps (NAB has DST duplicates) are allowed
    det.update(t[1], 2.0)


def test_timestamp_kinds_give_the_same_scores() -> None:
    """datetime64, tz-aware pandas (the Dataset's UTC), ISO strings and ns ints agree."""
    n = 320
    t, x = _times(n), _daily(n, seed=8)
    x[300] += 50
    kinds = [
        list(t),
        list(pd.DatetimeIndex(t).tz_localize("UTC")),
        [str(v) for v in t],
        [int(v) for v in t.astype(np.int64)],
    ]
    results = []
    for stamps in kinds:
        det = NAB_DETECTORS[BEST_DETECTOR]().reset(P)
        results.append([det.update(ti, xi) for ti, xi in zip(stamps, x, strict=True)])
    assert all(r == results[0] for r in results[1:])
    with pytest.raises(DataError, match=r"cannot read 'yesterday-ish' as a time"):
        NAB_DETECTORS[BEST_DETECTOR]().update("yesterday-ish", 1.0)
    with pytest.raises(DataError, match="NaT"):
        NAB_DETECTORS[BEST_DETECTOR]().update(np.datetime64("NaT"), 1.0)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: ForecastLikelihoodDetector(alphas=(0.0,)), "alphas"),
        (lambda: ForecastLikelihoodDetector(season="yesterday"), "season"),
        (lambda: ForecastLikelihoodDetector(combine="median"), "combine"),
        (lambda: ContextNoveltyDetector(n_levels=1), "n_levels"),
        (lambda: EnsembleDetector(members=[]), "members"),
        (lambda: EnsembleDetector(members=[ContextNoveltyDetector()], weights=[1, 2]), "weights"),
        (lambda: AnomalyLikelihood(avg_window=0), "avg_window"),
    ],
)
def test_bad_parameters_raise_config_error(build, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build()


def test_likelihood_is_low_for_stationary_noise_and_high_for_a_burst() -> None:
    rng = np.random.default_rng(4)
    lik = AnomalyLikelihood(avg_window=5, learning=300)
    quiet = [lik.update(float(v)) for v in rng.uniform(0, 0.2, 1500)]
    assert max(quiet[300:]) < 0.5
    burst = [lik.update(1.0) for _ in range(5)]
    assert max(burst) > 0.9


def test_seasonal_forecaster_ignores_a_spike_that_recurs_daily() -> None:
    n = 288 * 8
    rng = np.random.default_rng(9)
    x = 1 + rng.normal(0, 0.05, n)
    x[np.arange(100, n, 288)] = 5.0  # the same daily batch job
    t = _times(n)
    with_season = ForecastLikelihoodDetector(season="1D", combine="min").run(t, x, 700)
    without = ForecastLikelihoodDetector(combine="min").run(t, x, 700)
    late = np.arange(100 + 288 * 4, n, 288)
    # the same-time-yesterday forecast explains the job; EWMAs alone keep flagging it
    assert with_season[late].max() < 0.1 < 0.2 < without[late].min()


def test_all_factories_build_fresh_streaming_detectors() -> None:
    assert BEST_DETECTOR in NAB_DETECTORS
    a, b = NAB_DETECTORS[BEST_DETECTOR](), NAB_DETECTORS[BEST_DETECTOR]()
    assert isinstance(a, StreamingDetector) and a is not b


def _hold_detector(rest_hold: str | None) -> EnsembleDetector:
    return EnsembleDetector(members=[ContextNoveltyDetector(max_order=1)], rest_level=0.5,
                            rest_period=0, rest_factor=0.0, rest_time="1h",
                            rest_hold=rest_hold, spatial_tolerance=0.05)


def test_rest_hold_keeps_resting_while_the_anomaly_lasts() -> None:
    t = _times(480)
    x = np.full(480, 5.0)
    x[300:320] = 50.0 * 2.0 ** np.arange(20)  # 100 minutes of ever-new values: score 1 each
    x[400] = 1e30  # a second, separate anomaly long after the first one ended
    plain = _hold_detector(None).run(t, x, 100)
    assert plain[300] == 1.0 and plain[312] == 1.0  # the rest ran out mid-anomaly: two alarms
    held = _hold_detector("30min").run(t, x, 100)
    assert held[300] == 1.0
    # The anomaly's last high record is 319; the rest lasts 30 minutes (6 records) beyond it.
    assert held[301:326].max() == 0.0
    assert held[400] == 1.0  # the rest did end: the next anomaly alarms
    # Checkpointed mid-rest and resumed: the same scores (the hold is part of the state).
    det = _hold_detector("30min")
    first = det.run(t[:310], x[:310], 100)
    det = EnsembleDetector.from_state(json.loads(json.dumps(det.get_state())))
    rest = np.array([det.update(ti, xi) for ti, xi in zip(t[310:], x[310:], strict=True)])
    np.testing.assert_array_equal(np.concatenate([first, rest]), held)
    with pytest.raises(ConfigError, match="rest_hold"):
        _hold_detector("a while")
