"""Issue 8 (H7): the short likelihood's record gate and the ensemble's alarm floor."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aws_anomaly.errors import ConfigError
from aws_anomaly.streaming import ContextNoveltyDetector, EnsembleDetector, LikelihoodDetector

P = 300


def _series() -> tuple[np.ndarray, np.ndarray]:
    """A 4-record cycle (5-minute steps) with two bursts of random levels 50 hours apart: the
    first 20 records long, the second 6 (a smaller burst of the same kind)."""
    n = 3000
    t = np.datetime64("2024-01-01T00:00", "ns") + np.arange(n) * np.timedelta64(5, "m")
    x = np.tile([0.0, 1.0, 2.0, 3.0], n // 4)
    rng = np.random.default_rng(3)
    x[1000:1020] = rng.integers(0, 4, 20)
    x[1600:1606] = rng.integers(0, 4, 6)
    return t, x


def _lik(record_time: str | None) -> LikelihoodDetector:
    return LikelihoodDetector(member=ContextNoveltyDetector(), avg_windows=(10,),
                              record_time=record_time)


def test_record_gate_needs_a_burst_bigger_than_the_recent_ones() -> None:
    t, x = _series()
    plain = _lik(None).run(t, x, P)
    assert plain[1000:1030].max() > 0.5 and plain[1600:1620].max() > 0.5  # both alarm
    day = _lik("1D").run(t, x, P)  # the first burst is 50 h old: forgotten
    assert day[1600:1620].max() == pytest.approx(plain[1600:1620].max())
    three = _lik("3D").run(t, x, P)  # within 3 days of a bigger burst: silent
    assert three[1000:1030].max() == pytest.approx(plain[1000:1030].max())
    assert three[1600:1620].max() == 0.0
    assert np.all(three <= plain + 1e-12)  # the gate only ever removes score


def test_records_seen_while_the_ensemble_rests_do_not_raise_the_bar() -> None:
    t, x = _series()
    det = _lik("3D")
    det.reset(P)
    t_ns = t.astype(np.int64)
    out = [det._step_member(int(ti), float(xi), 1000 <= i < 1100)
           for i, (ti, xi) in enumerate(zip(t_ns, x, strict=True))]
    assert max(out[1600:1620]) > 0.5  # the first burst was "already reported": no bar from it


def test_record_gate_state_round_trip_and_bad_value() -> None:
    t, x = _series()
    full = _lik("3D").run(t, x, P)
    det = _lik("3D")
    first = det.run(t[:1610], x[:1610], P)
    det = LikelihoodDetector.from_state(json.loads(json.dumps(det.get_state())))
    rest = [det.update(ti, xi) for ti, xi in zip(t[1610:], x[1610:], strict=True)]
    np.testing.assert_array_equal(np.concatenate([first, rest]), full)
    with pytest.raises(ConfigError, match="record_time"):
        _lik("recently")
    with pytest.raises(ConfigError, match="record_time"):
        _lik("-1D")


def test_alarm_floor_lifts_every_alarm_to_one_threshold() -> None:
    t, x = _series()

    def ens(floor: float | None) -> EnsembleDetector:
        return EnsembleDetector(members=[_lik(None)], rest_level=0.45, rest_period=0,
                                rest_factor=0.0, rest_time="12h", alarm_floor=floor)

    plain, floored = ens(None).run(t, x, P), ens(0.7).run(t, x, P)
    alarms = np.flatnonzero(plain >= 0.45)
    assert len(alarms) >= 2 and plain[alarms].min() < 0.7
    np.testing.assert_array_equal(np.flatnonzero(floored >= 0.45), alarms)
    np.testing.assert_array_equal(floored[alarms], np.maximum(plain[alarms], 0.7))
    others = np.setdiff1d(np.arange(len(x)), alarms)
    np.testing.assert_array_equal(floored[others], plain[others])
    with pytest.raises(ConfigError, match="alarm_floor"):
        ens(0.3)  # below the alarm level: not an alarm floor
