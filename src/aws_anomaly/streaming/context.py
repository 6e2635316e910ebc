"""Contextual novelty, in the spirit of CAD OSE: is the recent pattern of coarse levels new?

Values are cut into a few coarse levels (``n_levels`` equal bins over the value range seen in the
first part of the probationary period; values outside it get levels that widen in octaves of the
range width). The context of order ``k`` is the tuple of the last ``k`` levels. The detector
remembers every context it has seen; the raw novelty of a record is the weighted share of its
contexts (orders ``1..max_order``, order ``k`` weighted ``1/k``) never seen before. Coarse levels
make the detector blind to noise and sensitive to changes of shape and level that no
forecast-error scale would call large.

The range is estimated from the data, so the detector also works live: the first
``range_fraction * probationary`` raw values are kept; then they are replayed through the fixed
levels to learn their contexts (still strictly causal), and novelty scores start.

Re-learning (``relearn_time``): when every value for that long has been outside the learned
range (a lasting level shift), the levels are cut afresh over the most recent
``range_fraction * probationary`` values and the contexts are learned again from them. After
a shift the old grid sees the new regime through a few coarse outside levels only and is blind
to anomalies within it.
"""

from __future__ import annotations

import math
from collections import deque
from typing import ClassVar

from aws_anomaly.durations import parse_nanoseconds
from aws_anomaly.errors import ConfigError
from aws_anomaly.streaming.base import DEFAULT_PROBATIONARY, StreamingDetector

__all__ = ["ContextNoveltyDetector", "octave_level"]


def octave_level(x: float, lo: float, step: float, n_levels: int, shift: float = 0.0) -> int:
    """The coarse level of ``x``: ``n_levels`` bins of width ``step`` from ``lo`` (the grid
    moved by ``shift`` of a level); beyond that range, levels widen in octaves of its width.

    A value just outside the range differs from one far outside it (excess in ``[0, 1)``,
    ``[1, 3)``, ``[3, 7)``... range widths), but the number of outside levels stays small
    however wild the value.

    >>> [octave_level(v, 0.0, 1.0, 4) for v in (-9.0, -0.5, 0.5, 3.5, 4.5, 9.0, 100.0)]
    [-2, -1, 0, 3, 4, 5, 8]
    """
    lv = math.floor((x - lo) / step + shift)
    if 0 <= lv < n_levels:
        return lv
    width = step * n_levels
    if lv >= n_levels:
        octave = math.floor(math.log2(1.0 + max(0.0, x - lo - width) / width))
        return n_levels + min(octave, 30)
    octave = math.floor(math.log2(1.0 + max(0.0, lo - x) / width))
    return -1 - min(octave, 30)


class ContextNoveltyDetector(StreamingDetector):
    """Share of never-seen level contexts among the last ``max_order`` orders.

    Parameters
    ----------
    n_levels
        Number of coarse levels spanning the probationary value range.
    max_order
        Longest context (in records).
    n_grids
        Number of level grids, each shifted by ``1 / n_grids`` of a level; the novelty is their
        mean. One grid makes the score depend on where the level edges happen to fall; a few
        shifted grids (as in tile coding) smooth that luck away.
    range_margin
        The estimated range is widened by this fraction on each side before cutting it.
    range_fraction
        The range is estimated from the first ``range_fraction * probationary`` records; the
        rest of the probationary period already yields novelty scores (so a likelihood wrapped
        around this detector sees real scores before probation ends).
    max_contexts
        Memory bound: when more contexts are stored, the least recently seen half is forgotten.
    relearn_time
        A duration (``"2D"``): after every value for this long has been outside the learned
        range, learn the range and the contexts afresh from the recent values. None: never.
    probationary
        See :class:`StreamingDetector`.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.tile([0.0, 1.0, 2.0, 3.0], 300); x[1000] = 9.0
    >>> t = np.arange(1200).astype("datetime64[m]").astype("datetime64[ns]")
    >>> s = ContextNoveltyDetector().run(t, x, probationary=200)
    >>> int(np.argmax(s)), float(s[999])
    (1000, 0.0)
    """

    _params: ClassVar[tuple[str, ...]] = ("n_levels", "max_order", "n_grids", "range_margin",
                                          "range_fraction", "max_contexts", "relearn_time")

    def __init__(
        self,
        *,
        n_levels: int = 8,
        max_order: int = 6,
        n_grids: int = 1,
        range_margin: float = 0.0,
        range_fraction: float = 0.5,
        max_contexts: int = 200_000,
        relearn_time: str | None = None,
        probationary: int = DEFAULT_PROBATIONARY,
    ) -> None:
        if not isinstance(n_levels, int) or n_levels < 2:
            raise ConfigError(f"n_levels must be an int >= 2, got {n_levels!r}")
        if not isinstance(max_order, int) or max_order < 1:
            raise ConfigError(f"max_order must be an int >= 1, got {max_order!r}")
        if range_margin < 0 or max_contexts < 100:
            raise ConfigError(
                f"need range_margin >= 0 and max_contexts >= 100, got {range_margin}, "
                f"{max_contexts}"
            )
        if not isinstance(n_grids, int) or n_grids < 1:
            raise ConfigError(f"n_grids must be an int >= 1, got {n_grids!r}")
        self.n_grids = n_grids
        self.n_levels = n_levels
        self.max_order = max_order
        if not 0 < range_fraction <= 1:
            raise ConfigError(f"range_fraction must be in (0, 1], got {range_fraction}")
        self.range_margin = range_margin
        self.range_fraction = range_fraction
        self.max_contexts = max_contexts
        self.relearn_time = relearn_time
        self._relearn_ns: int | None = None
        if relearn_time is not None:
            self._relearn_ns = parse_nanoseconds(relearn_time, where="relearn_time")
        super().__init__(probationary=probationary)

    def _reset(self) -> None:
        self.count_ = 0
        self.range_records_ = max(2, math.ceil(self.range_fraction * self.probationary))
        self.warm_: list[float] = []
        self.lo_ = 0.0
        self.step_ = 1.0
        self.levels_: list[list[int]] = [[] for _ in range(self.n_grids)]
        self.seen_: dict[tuple[int, ...], int] = {}
        self.out_since_: int | None = None
        self.recent_: deque[float] = deque(maxlen=self.range_records_ if self._relearn_ns
                                           else 1)

    def _level(self, x: float, shift: float = 0.0) -> int:
        return octave_level(x, self.lo_, self.step_, self.n_levels, shift)

    def _novelty(self, x: float) -> float:
        g = self.n_grids
        total = 0.0
        for i in range(g):
            total += self._learn_level(i, self._level(x, i / g))
        return total / g

    def _learn_level(self, grid: int, lv: int) -> float:
        """Append a level to a grid's history; return its contexts' novelty; remember them."""
        levels = self.levels_[grid]
        levels.append(lv)
        if len(levels) > self.max_order:
            del levels[0]
        seen = self.seen_
        n = self.count_
        novel = 0.0
        total = 0.0
        m = len(levels)
        for k in range(1, m + 1):
            key = (grid, *levels[m - k:])
            # Low orders weigh more: an unseen level is a stronger signal than an unseen
            # long sequence of known levels.
            wgt = 1.0 / k
            total += wgt
            if key not in seen:
                novel += wgt
            seen[key] = n
        if len(seen) > self.max_contexts:
            keep = sorted(seen.items(), key=lambda kv: kv[1])[len(seen) // 2:]
            self.seen_ = dict(keep)
        return novel / total

    def _step(self, t_ns: int, x: float) -> float:
        n = self.count_
        if self._relearn_ns is not None:
            self.recent_.append(x)
            if n >= self.range_records_:
                self._maybe_relearn(t_ns, x)
        self.count_ = n + 1
        if n < self.range_records_:
            self.warm_.append(x)
            if n + 1 == self.range_records_:
                self._start()
            return 0.0
        return self._novelty(x)

    def _maybe_relearn(self, t_ns: int, x: float) -> None:
        """Track how long values have stayed outside the range; re-learn after relearn_time."""
        if self.lo_ <= x <= self.lo_ + self.step_ * self.n_levels:
            self.out_since_ = None
            return
        if self.out_since_ is None:
            self.out_since_ = t_ns
            return
        if self._relearn_ns is not None and t_ns - self.out_since_ >= self._relearn_ns:
            # The recent values before this one become the new warm-up: new levels, new
            # contexts (the replay is causal: it uses values already seen).
            self.warm_ = list(self.recent_)[:-1]
            self.seen_ = {}
            self.levels_ = [[] for _ in range(self.n_grids)]
            self._start()
            self.out_since_ = None

    def _start(self) -> None:
        lo, hi = min(self.warm_), max(self.warm_)
        width = hi - lo
        if width <= 0:
            width = abs(hi) * 0.01 or 1.0
        lo -= self.range_margin * width
        width *= 1 + 2 * self.range_margin
        self.lo_ = lo
        self.step_ = width / self.n_levels * (1 + 1e-9)
        saved = self.count_
        for i, v in enumerate(self.warm_):
            self.count_ = i
            self._novelty(v)
        self.count_ = saved
        self.warm_ = []
