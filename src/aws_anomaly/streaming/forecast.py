"""Forecast-residual likelihood: simple causal forecasters, their errors scored as likelihoods.

Every record, each forecaster (an EWMA with its own smoothing; ``alpha = 1`` is the naive
last-value forecast) predicts the value from the past. The absolute error divided by a robust
running error scale gives ``z``; ``raw = 1 - exp(-max(0, z - z_offset) / z_scale)`` is near 0 for
ordinary errors and tends to 1 for large ones. Each forecaster's raw stream goes through its own
:class:`~aws_anomaly.streaming.likelihood.AnomalyLikelihood` and the detector reports the largest.

Short smoothings catch spikes and sudden jumps; long ones catch slower drifts and level shifts
that a fast forecaster follows too quickly. A running value range (estimated from the data seen
so far, so it works live) sets a floor on the error scale, so an almost-constant series does not
turn rounding noise into alarms.
"""

from __future__ import annotations

import math
from collections import deque
from typing import ClassVar

from aws_anomaly.durations import parse_nanoseconds
from aws_anomaly.errors import ConfigError
from aws_anomaly.streaming.base import DEFAULT_PROBATIONARY, StreamingDetector
from aws_anomaly.streaming.likelihood import AnomalyLikelihood

__all__ = ["ForecastLikelihoodDetector"]


class ForecastLikelihoodDetector(StreamingDetector):
    """Max over forecasters of the anomaly likelihood of their normalised errors.

    Parameters
    ----------
    alphas
        EWMA smoothing factor of each forecaster, in (0, 1].
    scale_alpha
        Smoothing of the running mean absolute error (the error scale).
    scale_clip
        An error counts at most ``scale_clip`` times the current scale when the scale is
        updated, so one outlier does not blind the detector to the next.
    range_floor
        The error scale is at least ``range_floor`` times the running value range.
    z_offset, z_scale
        Shape of the raw score ``1 - exp(-max(0, z - z_offset) / z_scale)``.
    avg_window, history, min_std
        Passed to each :class:`AnomalyLikelihood`; its learning period is the probationary
        length (capped at ``history``).
    probationary
        See :class:`StreamingDetector`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = 10 + rng.normal(0, 1, 1500); x[1200] += 15
    >>> t = np.arange(1500).astype("datetime64[m]").astype("datetime64[ns]")
    >>> s = ForecastLikelihoodDetector().run(t, x, probationary=300)
    >>> peak = int(np.argmax(s[300:])) + 300  # averaged over a few records, so just after
    >>> 1200 <= peak <= 1205, bool(s[300:1200].max() < 0.5 < s[peak])
    (True, True)
    """

    _params: ClassVar[tuple[str, ...]] = (
        "alphas", "scale_alpha", "scale_clip", "range_floor", "z_offset", "z_scale",
        "avg_window", "history", "min_std", "season", "combine",
    )

    def __init__(
        self,
        *,
        alphas: tuple[float, ...] = (1.0, 0.3, 0.05),
        scale_alpha: float = 0.01,
        scale_clip: float = 4.0,
        range_floor: float = 0.002,
        z_offset: float = 1.0,
        z_scale: float = 3.0,
        avg_window: int = 5,
        history: int = 3000,
        min_std: float = 0.02,
        season: str | None = None,
        combine: str = "max",
        probationary: int = DEFAULT_PROBATIONARY,
    ) -> None:
        alphas = tuple(float(a) for a in alphas)
        if not alphas or any(not 0 < a <= 1 for a in alphas):
            raise ConfigError(f"alphas must be a non-empty tuple of values in (0, 1], got {alphas}")
        if not 0 < scale_alpha < 1:
            raise ConfigError(f"scale_alpha must be in (0, 1), got {scale_alpha}")
        if scale_clip <= 1 or range_floor < 0 or z_offset < 0 or z_scale <= 0:
            raise ConfigError(
                "need scale_clip > 1, range_floor >= 0, z_offset >= 0, z_scale > 0; got "
                f"{scale_clip}, {range_floor}, {z_offset}, {z_scale}"
            )
        if combine not in ("max", "min"):
            raise ConfigError(f"combine must be 'max' or 'min', got {combine!r}")
        self.season_ns_ = None
        if season is not None:
            self.season_ns_ = parse_nanoseconds(season, where="season")  # > 0 or ConfigError
        self.season = season
        self.combine = combine
        self.alphas = alphas
        self.scale_alpha = scale_alpha
        self.scale_clip = scale_clip
        self.range_floor = range_floor
        self.z_offset = z_offset
        self.z_scale = z_scale
        self.avg_window = avg_window
        self.history = history
        self.min_std = min_std
        super().__init__(probationary=probationary)

    def _reset(self) -> None:
        k = len(self.alphas) + (self.season_ns_ is not None)
        self.past_t_: deque[int] = deque()
        self.past_x_: deque[float] = deque()
        self.pred_ = [0.0] * k
        self.scale_ = [0.0] * k
        self.lo_ = math.inf
        self.hi_ = -math.inf
        self.count_ = 0
        learning = max(2, min(self.probationary, self.history))
        self.lik_ = [
            AnomalyLikelihood(avg_window=self.avg_window, history=self.history,
                              learning=learning, min_std=self.min_std)
            for _ in range(k if self.combine == "max" else 1)
        ]

    def _seasonal(self, t_ns: int, x: float) -> float | None:
        """The value one season ago (the record nearest ``t - season``), then remember ``x``."""
        period = self.season_ns_
        pt, px = self.past_t_, self.past_x_
        target = t_ns - period
        # Keep one record at or before the target so the nearest neighbour is always at hand.
        while len(pt) >= 2 and pt[1] <= target:
            pt.popleft()
            px.popleft()
        pred = None
        if pt and pt[0] <= target + period // 24:
            pred = px[0]
            if len(pt) >= 2 and abs(pt[1] - target) < abs(pt[0] - target):
                pred = px[1]
            if abs(pt[0] - target) > period // 24 and (len(pt) < 2 or abs(pt[1] - target) >
                                                        period // 24):
                pred = None
        pt.append(t_ns)
        px.append(x)
        return pred

    def _step(self, t_ns: int, x: float) -> float:
        n = self.count_
        self.count_ = n + 1
        if x < self.lo_:
            self.lo_ = x
        if x > self.hi_:
            self.hi_ = x
        na = len(self.alphas)
        seasonal = self._seasonal(t_ns, x) if self.season_ns_ is not None else None
        if n == 0:
            self.pred_ = [x] * len(self.scale_)
            for lik in self.lik_:
                lik.update(0.0)
            return 0.0
        floor = self.range_floor * (self.hi_ - self.lo_) + 1e-12
        sa, clip, z0, z1 = self.scale_alpha, self.scale_clip, self.z_offset, self.z_scale
        # Until the scale has seen ~1/scale_alpha errors it is a plain running mean.
        w = max(sa, 1.0 / n)
        pred, scale = self.pred_, self.scale_
        if seasonal is not None:
            pred[na] = seasonal
        best = 0.0
        zmin = math.inf
        use_max = self.combine == "max"
        for j in range(len(scale)):
            if j == na and seasonal is None:
                continue
            err = abs(x - pred[j])
            sc = scale[j]
            z = err / (sc if sc > floor else floor)
            if use_max:
                raw = 1.0 - math.exp(-(z - z0) / z1) if z > z0 else 0.0
                s = self.lik_[j].update(raw)
                if s > best:
                    best = s
            elif z < zmin:
                zmin = z
            capped = err if n < 30 or err < clip * sc else clip * sc
            scale[j] = sc + w * (capped - sc)
            if j < na:
                pred[j] += self.alphas[j] * (x - pred[j])
        if use_max:
            if seasonal is None and len(scale) > na:
                self.lik_[na].update(0.0)
            return best
        raw = 1.0 - math.exp(-(zmin - z0) / z1) if zmin > z0 else 0.0
        return self.lik_[0].update(raw)
