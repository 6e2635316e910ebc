"""Context novelty re-learns its levels after a lasting level shift (relearn_time)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aws_anomaly.errors import ConfigError
from aws_anomaly.streaming import ContextNoveltyDetector, make_context_ensemble
from aws_anomaly.streaming.base import StreamingDetector


def _shifted_series() -> tuple[np.ndarray, np.ndarray]:
    """A sine in [0, 10]; from point 1000 the same sine in [100, 110]; a zigzag at 2200."""
    n = 2600
    x = 5 + 5 * np.sin(np.arange(n) * 2 * np.pi / 50)
    x[1000:] += 100.0
    x[2200:2210] = np.tile([100.0, 110.0], 5)  # an anomaly within the new regime
    t = np.arange(n, dtype=np.int64) * 300 * 10**9  # 5 minutes
    return t, x


def test_relearn_sees_anomalies_in_the_new_regime() -> None:
    t, x = _shifted_series()
    plain = ContextNoveltyDetector(n_grids=3).run(t, x, probationary=400)
    relearn = ContextNoveltyDetector(n_grids=3, relearn_time="1D")
    s = relearn.run(t, x, probationary=400)
    # 1 day = 288 points after the shift, the levels cover the new range.
    assert 100.0 <= relearn.lo_ < 101.0
    # The old grid sees the whole new regime as one coarse outside level: blind to the zigzag.
    assert plain[2200:2210].max() == 0.0
    assert s[2200:2210].max() >= 0.5
    # Between the re-learning and the anomaly the new regime is familiar.
    quiet = s[1600:2200]
    assert quiet.max() < s[2200:2210].max() and np.mean(quiet > 0) < 0.05


def test_relearn_state_round_trip_and_bad_values() -> None:
    t, x = _shifted_series()
    full = ContextNoveltyDetector(relearn_time="1D").run(t, x, probationary=400)
    det = ContextNoveltyDetector(relearn_time="1D").reset(400)
    first = [det.update(int(a), b) for a, b in zip(t[:1200], x[:1200], strict=True)]
    back = StreamingDetector.from_state.__func__(  # type: ignore[attr-defined]
        ContextNoveltyDetector, json.loads(json.dumps(det.get_state())))
    rest = [back.update(int(a), b) for a, b in zip(t[1200:], x[1200:], strict=True)]
    np.testing.assert_array_equal(np.array(first + rest), full)
    with pytest.raises(ConfigError, match="relearn_time 'often' is not a duration"):
        ContextNoveltyDetector(relearn_time="often")
    with pytest.raises(ConfigError, match="relearn_time must be positive"):
        ContextNoveltyDetector(relearn_time="0s")


def test_the_nab_detector_relearns() -> None:
    det = make_context_ensemble()
    members = [det.members[0].member, det.members[1]]
    assert all(m.relearn_time == "36h" for m in members)
