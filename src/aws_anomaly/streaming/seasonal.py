"""Seasonal level novelty: is the value at a level never seen at this time of day before?

The context detectors ask whether the recent *sequence* of coarse levels is new; they know
nothing about the clock, so a daily pattern that fails to happen (the nightly batch job that
does not start, a day's traffic peak that stays flat, a quiet spell in the middle of a busy
day) looks familiar to them: every level and every short sequence has been seen, only at
another time of day.

This detector cuts the day into slots (``slot``, found from each record's timestamp, so it
means the same on any sampling step) and remembers, per slot, which coarse levels it has seen
on earlier days (the same octave levels and shifted grids as
:class:`~aws_anomaly.streaming.context.ContextNoveltyDetector`). A record is *seasonally novel*
in a grid when its level was never seen in its slot, or the ``tolerance`` slots either side, on
an earlier day (what happened earlier the same day does not count, so a lasting deviation stays
novel). The score is the share of grids in which every record for at least ``sustain`` has been
seasonally novel: a lone spike at an unusual hour scores 0; a pattern missing for an hour
scores 1.

Nothing is scored until the record's slot has been seen on ``min_days`` days and the
probationary period is over, so a series too short for the season, or one without a daily
pattern, simply stays silent here once all its usual levels have been seen at every hour.
"""

from __future__ import annotations

import math
from typing import ClassVar

from aws_anomaly.durations import parse_nanoseconds
from aws_anomaly.errors import ConfigError
from aws_anomaly.streaming.base import DEFAULT_PROBATIONARY, StreamingDetector
from aws_anomaly.streaming.context import octave_level

__all__ = ["SeasonalNoveltyDetector"]


class SeasonalNoveltyDetector(StreamingDetector):
    """Share of level grids in which the value has been new for its time of day for a while.

    Parameters
    ----------
    n_levels, n_grids
        Coarse levels over the probationary value range (octaves beyond it) and the number of
        shifted level grids, as in ``ContextNoveltyDetector``.
    season
        The period (a duration; ``"1D"``: time of day). Days are counted in whole seasons
        since the epoch, in the timestamps' own clock.
    slot
        Width of a time-of-day slot; must divide ``season``.
    tolerance
        A level seen in a slot up to this many slots away counts as seen (timing jitter).
    sustain
        How long every record must have been seasonally novel before the grid scores 1
        (``"0s"``: at once).
    min_days
        A slot is scored only after it has been seen on this many distinct days.
    range_fraction
        The level range is estimated from the first ``range_fraction * probationary`` records;
        they are then replayed (with their timestamps) to learn their slots' levels.
    probationary
        See :class:`StreamingDetector`: nothing scores before it ends.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(12 * 24 * 10, dtype=np.int64) * 300 * 10**9       # 10 days, 5 minutes
    >>> hour = (t // 3_600_000_000_000) % 24
    >>> x = np.where((hour >= 9) & (hour < 17), 80.0, 20.0)              # a daily busy period
    >>> x[12 * 24 * 8 + 12 * 9: 12 * 24 * 8 + 12 * 17] = 20.0             # day 8 stays quiet
    >>> s = SeasonalNoveltyDetector().run(t, x, probationary=12 * 24 * 3)
    >>> hit = np.flatnonzero(s > 0)          # from 10:00 novel (9:00 is next to a quiet 8:00)
    >>> int(hit[0]) == 12 * 24 * 8 + 12 * 11, float(s[hit[0]])          # sustained one hour
    (True, 1.0)
    >>> bool(s[: 12 * 24 * 8].max() == 0.0)
    True
    """

    _params: ClassVar[tuple[str, ...]] = ("n_levels", "n_grids", "season", "slot", "tolerance",
                                          "sustain", "min_days", "range_fraction")

    def __init__(
        self,
        *,
        n_levels: int = 8,
        n_grids: int = 5,
        season: str = "1D",
        slot: str = "1h",
        tolerance: int = 1,
        sustain: str = "1h",
        min_days: int = 3,
        range_fraction: float = 0.5,
        probationary: int = DEFAULT_PROBATIONARY,
    ) -> None:
        if not isinstance(n_levels, int) or n_levels < 2:
            raise ConfigError(f"n_levels must be an int >= 2, got {n_levels!r}")
        if not isinstance(n_grids, int) or n_grids < 1:
            raise ConfigError(f"n_grids must be an int >= 1, got {n_grids!r}")
        if not isinstance(tolerance, int) or tolerance < 0:
            raise ConfigError(f"tolerance must be an int >= 0, got {tolerance!r}")
        if not isinstance(min_days, int) or min_days < 1:
            raise ConfigError(f"min_days must be an int >= 1, got {min_days!r}")
        if not 0 < range_fraction <= 1:
            raise ConfigError(f"range_fraction must be in (0, 1], got {range_fraction}")
        season_ns = parse_nanoseconds(season, where="season")
        slot_ns = parse_nanoseconds(slot, where="slot")
        if season_ns % slot_ns:
            raise ConfigError(f"slot {slot!r} must divide season {season!r} evenly")
        self._season_ns = season_ns
        self._slot_ns = slot_ns
        self._n_slots = season_ns // slot_ns
        self._sustain_ns = parse_nanoseconds(sustain, where="sustain", allow_zero=True)
        self.n_levels = n_levels
        self.n_grids = n_grids
        self.season = season
        self.slot = slot
        self.tolerance = tolerance
        self.sustain = sustain
        self.min_days = min_days
        self.range_fraction = range_fraction
        super().__init__(probationary=probationary)

    def _reset(self) -> None:
        self.count_ = 0
        self.range_records_ = max(2, math.ceil(self.range_fraction * self.probationary))
        self.warm_: list[tuple[int, float]] = []
        self.lo_ = 0.0
        self.step_ = 1.0
        # (grid, slot, level) -> the first day (season index) it was seen.
        self.seen_: dict[tuple[int, int, int], int] = {}
        # slot -> [last day seen, number of distinct days seen].
        self.days_: dict[int, list[int]] = {}
        # Per grid: since when every record has been seasonally novel (None: the last was not).
        self.since_: list[int | None] = [None] * self.n_grids

    def _step(self, t_ns: int, x: float) -> float:
        n = self.count_
        self.count_ = n + 1
        if n < self.range_records_:
            self.warm_.append((t_ns, x))
            if n + 1 == self.range_records_:
                self._start()
            return 0.0
        return self._learn(t_ns, x, score=n >= self.probationary)

    def _start(self) -> None:
        """Cut the levels over the warm-up values, then learn their slots' levels."""
        values = [x for _, x in self.warm_]
        lo, hi = min(values), max(values)
        width = hi - lo
        if width <= 0:
            width = abs(hi) * 0.01 or 1.0
        self.lo_ = lo
        self.step_ = width / self.n_levels * (1 + 1e-9)
        for t_ns, x in self.warm_:
            self._learn(t_ns, x, score=False)
        self.warm_ = []

    def _learn(self, t_ns: int, x: float, *, score: bool) -> float:
        """Score the record (if asked and its slot is known well enough), then remember it."""
        day, offset = divmod(t_ns, self._season_ns)
        slot = offset // self._slot_ns
        g = self.n_grids
        levels = [octave_level(x, self.lo_, self.step_, self.n_levels, i / g) for i in range(g)]
        known = self.days_.get(slot)
        out = 0.0
        if score and known is not None and known[1] >= self.min_days:
            seen = self.seen_
            n_slots = self._n_slots
            for i, lv in enumerate(levels):
                novel = True
                for d in range(-self.tolerance, self.tolerance + 1):
                    first = seen.get((i, (slot + d) % n_slots, lv))
                    if first is not None and first < day:
                        novel = False
                        break
                if not novel:
                    self.since_[i] = None
                    continue
                since = self.since_[i]
                if since is None:
                    self.since_[i] = since = t_ns
                if t_ns - since >= self._sustain_ns:
                    out += 1.0
            out /= g
        else:
            self.since_ = [None] * g
        for i, lv in enumerate(levels):
            key = (i, slot, lv)
            first = self.seen_.get(key)
            if first is None or day < first:
                self.seen_[key] = day
        if known is None:
            self.days_[slot] = [day, 1]
        elif known[0] != day:
            known[0] = day
            known[1] += 1
        return out
