"""Explanations that agree with the numbers: observed vs expected, in units of the band.

The detector says *how* unusual a point is (its score) and *which* metrics made it so (their
shares of the score); the band (:mod:`aws_anomaly.features.band`) says *where each metric
was expected* and how far from that is still normal. An explanation puts the two side by
side per metric and never states more than they show:

* ``deviation``: signed distance from the expected value in units of the band's half-width,
  so ``|deviation| <= 1`` is inside the band and ``2.0`` is twice as far out as the band's
  edge. Undefined (None) before the band has history.
* ``kind``: what the recent values of the metric look like, from the points up to this one
  only (:func:`classify`): ``spike``, ``level shift``, ``drift``, ``flatline`` or, for a metric
  inside its band, ``unusual combination`` (normal on its own, unusual together with the other
  metrics: a correlation break) or, for a model that scores each metric on its own (the
  streaming series detectors), ``unusual pattern`` (its value is inside the band, the sequence
  of its recent values is not).

The sentence (:func:`sentence`) is built from these numbers only, so it cannot contradict them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["KINDS", "MetricExplanation", "band_deviation", "band_deviation_one", "classify",
           "sentence"]

Kind = Literal["spike", "level shift", "drift", "flatline", "unusual combination",
               "unusual pattern", "unknown"]
KINDS: tuple[str, ...] = ("spike", "level shift", "drift", "flatline", "unusual combination",
                          "unusual pattern", "unknown")

#: Points looked back on to tell a spike from a shift or a drift.
LOOKBACK = 12
#: A metric whose last FLAT_POINTS values are identical, while its band is not zero-width,
#: has gone flat (stuck exporter, dead process).
FLAT_POINTS = 6


def band_deviation(observed: np.ndarray | float, expected: np.ndarray | float,
                   lower: np.ndarray | float, upper: np.ndarray | float) -> np.ndarray:
    """Signed deviation from ``expected`` in units of the band's half-width (NaN where the
    band is undefined); vectorised.

    >>> float(band_deviation(14.0, 10.0, 8.0, 12.0))
    2.0
    >>> float(band_deviation(9.0, 10.0, 8.0, 12.0))
    -0.5
    """
    x, y, lo, hi = (np.asarray(a, dtype=np.float64) for a in (observed, expected, lower, upper))
    half = np.where(x >= y, hi - y, y - lo)
    with np.errstate(divide="ignore", invalid="ignore"):
        dev = (x - y) / half
        dev = np.where(half > 0, dev, np.where(x == y, 0.0, np.sign(x - y) * np.inf))
    return np.where(np.isfinite(y) & np.isfinite(half), dev, np.nan)


def band_deviation_one(x: float, y: float, lo: float, hi: float) -> float:
    """:func:`band_deviation` of one value, in plain floats (numpy's per-call cost is most of
    a single-point request's explanation); the same number.

    >>> band_deviation_one(14.0, 10.0, 8.0, 12.0), band_deviation_one(9.0, 10.0, 8.0, 12.0)
    (2.0, -0.5)
    """
    half = hi - y if x >= y else y - lo
    if not (math.isfinite(y) and math.isfinite(half)):
        return math.nan
    if half > 0:
        return (x - y) / half
    return 0.0 if x == y else math.copysign(math.inf, x - y)


def classify(values: Sequence[float] | np.ndarray, expected: float, lower: float,
             upper: float) -> Kind:
    """The kind of a metric's behaviour at the last of ``values``.

    ``values`` are the metric's recent points, oldest first, ending with the point explained
    (causal); ``expected``, ``lower``, ``upper`` its band at that point. Each recent point is
    measured against that band: a spike is outside it alone, a level shift has been outside
    on the same side for a few points at a steady distance, a drift at a growing one.

    >>> classify([1, 1, 1, 1, 1, 5], 1.0, 0.5, 1.5)
    'spike'
    >>> classify([1, 1, 5, 5, 5, 5], 1.0, 0.5, 1.5)
    'level shift'
    >>> classify([1, 2, 3, 4, 5, 6], 1.0, 0.5, 1.5)
    'drift'
    >>> classify([3, 3, 3, 3, 3, 3], 3.0, 2.5, 3.5)
    'flatline'
    >>> classify([1, 1.1, 0.9, 1, 1.05, 1], 1.0, 0.5, 1.5)
    'unusual combination'
    """
    v = np.asarray(values, dtype=np.float64)[-LOOKBACK:]
    if not len(v) or not all(math.isfinite(float(a)) for a in (expected, lower, upper)):
        return "unknown"
    d = band_deviation(v, expected, lower, upper)
    if len(v) >= FLAT_POINTS and np.ptp(v[-FLAT_POINTS:]) == 0.0 and upper > lower:
        return "flatline"
    if abs(d[-1]) <= 1.0:
        return "unusual combination"
    side = np.sign(d[-1])
    # the run of points outside the band on the same side, ending now
    run = 0
    for x in d[::-1]:
        if np.sign(x) == side and abs(x) > 1.0:
            run += 1
        else:
            break
    if run <= 2:
        return "spike"
    seg = np.abs(d[-run:])
    # growing steadily away (mostly each step further than the last) = drift; else a shift
    steps = np.diff(seg)
    if len(steps) >= 2 and np.mean(steps > 0) >= 0.75 and seg[-1] >= 1.5 * seg[0]:
        return "drift"
    return "level shift"


@dataclass(frozen=True)
class MetricExplanation:
    """One metric's part of an anomaly."""

    metric: str
    share: float                 # share of the anomaly score (0..1)
    observed: float
    expected: float | None
    lower: float | None
    upper: float | None
    deviation: float | None      # band units, signed (see band_deviation)
    kind: str

    def text(self) -> str:
        """E.g. ``cpu 0.93, expected 0.41 (0.30 to 0.52): 4.7x the band above, level shift``."""
        head = f"{self.metric} {_num(self.observed)}"
        if self.expected is None or self.deviation is None or not math.isfinite(self.expected):
            return f"{head} ({self.share:.0%} of the anomaly; no band yet)"
        band = f"expected {_num(self.expected)} ({_num(self.lower)} to {_num(self.upper)})"
        if self.kind == "flatline":
            return f"{head}, {band}: flat for the last {FLAT_POINTS} points"
        if abs(self.deviation) <= 1.0 and self.kind == "unusual pattern":
            return f"{head}, {band}: inside its band, an unusual pattern of its recent values"
        if abs(self.deviation) <= 1.0:
            return f"{head}, {band}: inside its band, unusual together with the other metrics"
        where = "above" if self.deviation > 0 else "below"
        size = ("far" if not math.isfinite(self.deviation)
                else f"{abs(self.deviation):.1f}x the band")
        return f"{head}, {band}: {size} {where}, {self.kind}"


def sentence(parts: Sequence[MetricExplanation], limit: int = 2) -> str:
    """The metrics that drive an anomaly, most first, in one sentence."""
    chosen = [p for p in parts if p.share > 0][:limit]
    return "; ".join(f"{p.text()} [{p.share:.0%}]" for p in chosen)


def _num(x: float | None) -> str:
    """A plain number: 4 significant digits, no numpy repr."""
    if x is None or not math.isfinite(float(x)):
        return "n/a"
    return f"{float(x):.4g}"
