"""An ensemble of complementary streaming detectors with one alarm-shaped output.

The members' scores are combined (max, or a weighted mean), then shaped for alarm use:

* **rest period** — after the output reaches ``rest_level`` the detector has raised an alarm;
  for the next ``rest_period`` records (and/or ``rest_time`` of time) its output is multiplied
  by ``rest_factor``. One anomaly
  then gives one alarm instead of a burst (NAB counts only the first detection in a window and
  charges for the ones after it; an operator's pager does the same). With ``rest_hold`` the rest
  also lasts until the combined score has stayed below ``rest_level`` for that long: an anomaly
  still under way when the rest ends does not alarm a second time (CAD OSE's rest runs from
  its last high raw score in the same way).
* **alarm floor** — optionally, a record that raises an alarm scores at least ``alarm_floor``,
  so every alarm clears one threshold: the best threshold on one set of series is then the
  best on another (without it, alarms just above ``rest_level`` start a rest but fall below a
  threshold tuned a hair higher elsewhere, and the detector goes silent uncounted).
* **spatial novelty** — optionally, a value beyond the running min/max by more than
  ``spatial_tolerance`` of the range scores ``spatial_score`` (Numenta's "spatial anomaly").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

from aws_anomaly.durations import parse_nanoseconds
from aws_anomaly.errors import ConfigError
from aws_anomaly.streaming.base import DEFAULT_PROBATIONARY, StreamingDetector

__all__ = ["EnsembleDetector"]


class EnsembleDetector(StreamingDetector):
    """Combine member detectors' scores, add spatial novelty, and rest after each alarm.

    Parameters
    ----------
    members
        The member detectors (fresh instances; the ensemble owns and resets them).
    weights
        One weight per member, used by ``combine="mean"`` and to scale members under ``"max"``.
    combine
        ``"max"`` (any member can raise an alarm) or ``"mean"`` (weighted mean).
    rest_level, rest_period, rest_factor
        The alarm level, how many records to damp after an alarm, and the damping factor.
    rest_time
        A rest measured in time (a pandas duration such as ``"12h"``): records whose timestamp is
        earlier than the alarm's plus ``rest_time`` are damped too (on top of ``rest_period``
        records; set ``rest_period=0`` for a rest in time only). A rest in time means the same
        on any sampling step: 150 records are 12.5 hours at 5 minutes but 6 days at 1 hour.
    rest_hold
        A duration (``"6h"``): while resting, every record whose combined score (before the
        damping) reaches ``rest_level`` extends the rest to its timestamp plus ``rest_hold``, so
        the rest ends only once the score has stayed below the alarm level that long. ``None``
        (the default): the rest ends when ``rest_period`` / ``rest_time`` run out.
    spatial_tolerance, spatial_score
        Spatial novelty: ``None`` turns it off.
    alarm_floor
        An alarm record's output is raised to at least this (``None``: left as it is). Must be
        >= ``rest_level``.
    quiet_factor
        Scores below ``rest_level`` (outside rest periods) are multiplied by this: a gap between
        "alarm" and "not alarm" makes the best threshold the same on any set of series.
    probationary
        See :class:`StreamingDetector`; passed on to every member.

    Examples
    --------
    >>> import numpy as np
    >>> from aws_anomaly.streaming.forecast import ForecastLikelihoodDetector
    >>> rng = np.random.default_rng(1)
    >>> x = 5 + rng.normal(0, 1, 1200); x[900:] += 8
    >>> t = np.arange(1200).astype("datetime64[m]").astype("datetime64[ns]")
    >>> det = EnsembleDetector(members=[ForecastLikelihoodDetector()], rest_period=100)
    >>> s = det.run(t, x, probationary=300)
    >>> alarms = np.flatnonzero(s >= 0.5)
    >>> bool(900 <= alarms[0] <= 905), bool(np.all(alarms[1:] > alarms[0] + 100))
    (True, True)
    """

    _params: ClassVar[tuple[str, ...]] = (
        "members", "weights", "combine", "rest_level", "rest_period", "rest_factor",
        "spatial_tolerance", "spatial_score", "quiet_factor", "rest_time", "rest_hold",
        "alarm_floor",
    )

    def __init__(
        self,
        *,
        members: Sequence[StreamingDetector],
        weights: Sequence[float] | None = None,
        combine: str = "max",
        rest_level: float = 0.5,
        rest_period: int = 150,
        rest_factor: float = 0.5,
        spatial_tolerance: float | None = None,
        spatial_score: float = 1.0,
        quiet_factor: float = 1.0,
        rest_time: str | None = None,
        rest_hold: str | None = None,
        alarm_floor: float | None = None,
        probationary: int = DEFAULT_PROBATIONARY,
    ) -> None:
        members = list(members)
        if not members or not all(isinstance(m, StreamingDetector) for m in members):
            raise ConfigError("members must be a non-empty list of StreamingDetector instances")
        weights = [1.0] * len(members) if weights is None else [float(w) for w in weights]
        if len(weights) != len(members) or any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ConfigError(
                f"weights must be {len(members)} non-negative numbers with a positive sum, "
                f"got {weights}"
            )
        if combine not in ("max", "mean"):
            raise ConfigError(f"combine must be 'max' or 'mean', got {combine!r}")
        if not 0 < rest_level <= 1 or rest_period < 0 or not 0 <= rest_factor <= 1:
            raise ConfigError(
                "need 0 < rest_level <= 1, rest_period >= 0, 0 <= rest_factor <= 1; got "
                f"{rest_level}, {rest_period}, {rest_factor}"
            )
        if spatial_tolerance is not None and spatial_tolerance < 0:
            raise ConfigError(f"spatial_tolerance must be >= 0 or None, got {spatial_tolerance}")
        self.members = members
        self.weights = weights
        self.combine = combine
        self.rest_level = rest_level
        self.rest_period = int(rest_period)
        self.rest_factor = rest_factor
        self.spatial_tolerance = spatial_tolerance
        if not 0 <= quiet_factor <= 1:
            raise ConfigError(f"quiet_factor must be in [0, 1], got {quiet_factor}")
        self.spatial_score = spatial_score
        self.quiet_factor = quiet_factor
        self.rest_time = rest_time
        self.rest_hold = rest_hold
        if alarm_floor is not None and not rest_level <= alarm_floor <= 1:
            raise ConfigError(f"alarm_floor must be in [rest_level, 1] = [{rest_level}, 1] or "
                              f"None, got {alarm_floor}")
        self.alarm_floor = alarm_floor
        self._rest_ns = None if rest_time is None else \
            parse_nanoseconds(rest_time, where="rest_time", allow_zero=True)
        self._hold_ns = None if rest_hold is None else \
            parse_nanoseconds(rest_hold, where="rest_hold", allow_zero=True)
        super().__init__(probationary=probationary)

    def _reset(self) -> None:
        for m in self.members:
            m.reset(self.probationary)
        self.count_ = 0
        self.rest_until_ = -1
        self.rest_until_t_: int | None = None
        self.hold_until_t_: int | None = None
        self.lo_ = math.inf
        self.hi_ = -math.inf

    def _step(self, t_ns: int, x: float) -> float:
        n = self.count_
        self.count_ = n + 1
        # Whether this record falls in a rest is known before the members score it.
        resting = n <= self.rest_until_
        if self.rest_until_t_ is not None:
            resting = resting or t_ns < self.rest_until_t_
        if self.hold_until_t_ is not None:
            resting = resting or t_ns < self.hold_until_t_
        if self.combine == "max":
            s = 0.0
            for m, w in zip(self.members, self.weights, strict=True):
                v = w * m._step_member(t_ns, x, resting)
                if v > s:
                    s = v
        else:
            s = sum(w * m._step_member(t_ns, x, resting)
                    for m, w in zip(self.members, self.weights, strict=True)) / sum(self.weights)
        tol = self.spatial_tolerance
        if tol is not None:
            lo, hi = self.lo_, self.hi_
            if n >= self.probationary and hi > lo:
                margin = tol * (hi - lo)
                if (x > hi + margin or x < lo - margin) and self.spatial_score > s:
                    s = self.spatial_score
            if x < lo:
                self.lo_ = x
            if x > hi:
                self.hi_ = x
        if resting:
            if self._hold_ns is not None and s >= self.rest_level:
                self.hold_until_t_ = t_ns + self._hold_ns
            s *= self.rest_factor
        elif s >= self.rest_level:
            if n >= self.probationary:
                self.rest_until_ = n + self.rest_period
                if self._rest_ns is not None:
                    self.rest_until_t_ = t_ns + self._rest_ns
                if self.alarm_floor is not None and s < self.alarm_floor:
                    s = self.alarm_floor
        else:
            s *= self.quiet_factor
        return s if s < 1.0 else 1.0
