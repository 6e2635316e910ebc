"""Expected value and band per metric: ``yhat``, ``lower``, ``upper``, causal.

What a user reads next to each metric (as CloudWatch anomaly detection, vmanomaly, Datadog
and Grafana draw it): where the metric was expected to be at this step given only its past,
and how far from that is still normal.

Model, per metric, at row ``t`` (only rows ``< t`` are used, so the band of a point is known
before the point arrives):

* **Season** ``S_t``: the median of the values one, two, ... ``n_periods`` seasons earlier
  (``x[t - P]``, ``x[t - 2P]``, ...; those that exist), or 0 without a season. A median of past
  seasons keeps one odd day out, and a spike that recurs at the same time every day (a nightly
  cron job) becomes part of the expected value.
* **Level** ``L_t``: the median of the de-seasonalised values ``x - S`` over the last
  ``window`` rows. A short anomaly does not move a median; a shift that lasts longer than half
  the window *is* the new level (re-baselining), so the band follows a deployment that moved a
  metric for good instead of alarming forever.
* ``yhat_t = S_t + L_t``.
* **Scale** ``sigma_t``: the larger of the metric's typical forecast error over training
  (``1.4826 x median |x - yhat|``) and the same statistic over the last ``window`` rows, so
  the band widens in a volatile period and is never narrower than the training told.
* ``lower/upper = yhat -/+ width x sigma_t``.

Which season each metric has (none, daily, weekly) is found from the training data: the
candidate whose one-step forecast error (mean absolute) is smallest wins, if it improves
on the next simpler candidate by at least ``min_gain``. Until a season's history exists the
plain (season-less) baseline is used. Metrics constant over training have a zero scale
floored by a tolerance (any move is outside the band).

One implementation for batch (:func:`band_frame`, vectorised over rows) and streaming
(:class:`BandState`, one row at a time); both take the medians of the same values, so they give
the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from aws_anomaly.errors import ConfigError, ModelFileError

__all__ = ["Band", "BandSpec", "BandState", "band_arrays", "fit_band"]

#: Ratio of the standard deviation to the median absolute deviation of a normal distribution.
MAD_SCALE = 1.4826
#: Relative tolerance of a zero-scale (constant) metric's band: 1e-6 x (1 + |level|).
_ZERO_SCALE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class BandSpec:
    """How bands are computed; every horizon in rows of the model's step.

    Parameters
    ----------
    window
        Rows of the level and scale windows. A level shift lasting more than ``window // 2``
        rows becomes the new baseline.
    periods
        Candidate season lengths (rows), shortest first, e.g. one day and one week.
    n_periods
        Past seasons whose median is the seasonal term.
    width
        Half-width of the band in units of ``sigma``.
    min_gain
        Share by which a season must cut the training forecast error to be kept.
    """

    window: int
    periods: tuple[int, ...] = ()
    n_periods: int = 4
    width: float = 3.0
    min_gain: float = 0.1

    def __post_init__(self) -> None:
        if isinstance(self.window, bool) or not isinstance(self.window, (int, np.integer)) \
                or self.window < 2:
            raise ConfigError(f"band window must be an integer >= 2 rows, got {self.window!r}")
        if any(isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < 2
               for p in self.periods):
            raise ConfigError(f"band periods must be integers >= 2 rows, got {self.periods!r}")
        if list(self.periods) != sorted(set(self.periods)):
            raise ConfigError(f"band periods must be distinct and increasing, got "
                              f"{self.periods!r}")
        if isinstance(self.n_periods, bool) or not isinstance(self.n_periods, (int, np.integer)) \
                or not 1 <= self.n_periods <= 12:
            raise ConfigError(f"band n_periods must be an integer in 1..12, got "
                              f"{self.n_periods!r}")
        if not (isinstance(self.width, (int, float)) and 0 < self.width <= 100):
            raise ConfigError(f"band width must be a number in (0, 100], got {self.width!r}")
        if not (isinstance(self.min_gain, (int, float)) and 0 <= self.min_gain < 1):
            raise ConfigError(f"band min_gain must be in [0, 1), got {self.min_gain!r}")

    @classmethod
    def for_step(cls, step: pd.Timedelta | str, *, window: str | pd.Timedelta = "3h",
                 seasons: Sequence[str | pd.Timedelta] = ("1D", "7D"),
                 **kwargs: Any) -> BandSpec:
        """A spec with horizons stated in time, turned into rows of ``step``.

        >>> BandSpec.for_step("5min")
        BandSpec(window=36, periods=(288, 2016), n_periods=4, width=3.0, min_gain=0.1)
        """
        step = pd.Timedelta(step)
        if step <= pd.Timedelta(0):
            raise ConfigError(f"band: step must be positive, got {step}")
        rows = max(2, round(pd.Timedelta(window) / step))
        periods = sorted({round(pd.Timedelta(s) / step) for s in seasons} - {0, 1})
        return cls(window=int(rows), periods=tuple(int(p) for p in periods), **kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {"window": int(self.window), "periods": [int(p) for p in self.periods],
                "n_periods": int(self.n_periods), "width": float(self.width),
                "min_gain": float(self.min_gain)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BandSpec:
        return cls(window=int(d["window"]), periods=tuple(int(p) for p in d["periods"]),
                   n_periods=int(d["n_periods"]), width=float(d["width"]),
                   min_gain=float(d["min_gain"]))


@dataclass(frozen=True)
class Band:
    """A fitted band: per metric its season (0 = none) and the scale floors."""

    spec: BandSpec
    period: tuple[int, ...]
    sigma: tuple[float, ...]        # floor of sigma with the metric's season
    sigma_plain: tuple[float, ...]  # floor of sigma for the season-less fallback

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec.to_dict(), "period": [int(p) for p in self.period],
                "sigma": [float(s) for s in self.sigma],
                "sigma_plain": [float(s) for s in self.sigma_plain]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], n_metrics: int) -> Band:
        try:
            band = cls(spec=BandSpec.from_dict(d["spec"]),
                       period=tuple(int(p) for p in d["period"]),
                       sigma=tuple(float(s) for s in d["sigma"]),
                       sigma_plain=tuple(float(s) for s in d["sigma_plain"]))
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise ModelFileError(f"band: invalid description ({exc})") from exc
        sizes = {len(band.period), len(band.sigma), len(band.sigma_plain)}
        if sizes != {n_metrics}:
            raise ModelFileError(f"band: expected {n_metrics} values per field, got {sizes}")
        if any(p and p not in band.spec.periods for p in band.period):
            raise ModelFileError(f"band: periods {band.period} not among the spec's "
                                 f"{band.spec.periods}")
        if not all(np.isfinite(s) and s > 0 for s in band.sigma + band.sigma_plain):
            raise ModelFileError("band: scales must be positive and finite")
        return band

    def describe(self, metrics: Sequence[str], step: pd.Timedelta) -> dict[str, str]:
        """Metric -> the season found ("none", "1 days", ...), for reports and the CLI."""
        return {m: ("none" if not p else str(pd.Timedelta(step) * p))
                for m, p in zip(metrics, self.period, strict=True)}


# ---------------------------------------------------------------------------- batch core
def _past_median(v: np.ndarray, w: int) -> np.ndarray:
    """out[t] = median(v[t - w : t]) (NaN for t < w or a NaN in the window).

    The middle one or two values of every window are order statistics from
    ``scipy.ndimage.rank_filter`` (exact values; an even window adds and halves its two, as
    pandas' rolling median, ``np.median`` and the streaming :class:`BandState` do, so the
    numbers are the same), several times faster than pandas' skip list. The NaNs a band
    meets are a prefix (a season's first period has no lag); a series with NaN elsewhere
    takes pandas' rolling median, which skips windows holding one.
    """
    n = len(v)
    out = np.full(n, np.nan)
    if n <= w:
        return out
    nan = np.isnan(v)
    first = int(np.argmax(~nan)) if nan.any() else 0
    if nan[first:].any():
        med = pd.Series(v).rolling(w, min_periods=w).median().to_numpy()
        out[w:] = med[w - 1: -1]
        return out
    seg = v[first:]
    if len(seg) <= w:
        return out
    half = w // 2
    # rank_filter centres a window of w on row j: rows j - half .. j + w - 1 - half, so the
    # window ending at row i is centred on i - (w - 1 - half)
    if w % 2:
        mid = ndimage.rank_filter(seg, half, size=w, mode="nearest")
    else:
        mid = ndimage.rank_filter(seg, half - 1, size=w, mode="nearest")
        mid += ndimage.rank_filter(seg, half, size=w, mode="nearest")
        mid /= 2.0
    shift = w - 1 - half
    # out[first + t] = median(seg[t - w : t]) = window ending at t - 1, for t in w .. len - 1
    out[first + w:] = mid[w - 1 - shift: len(seg) - 1 - shift]
    return out


def _season(x: np.ndarray, period: int, k: int) -> np.ndarray:
    """Median of x[t - P], ..., x[t - kP] (those that exist; NaN when none).

    Row ``t`` has ``c = min(k, t // P)`` lags, so the rows come in runs with the same ``c``;
    each run's ``c`` lag columns are put in order by a sorting network of element-wise
    min / max (exact), and the median is the middle one or the halved sum of the middle two,
    as ``np.nanmedian`` and :class:`BandState` take it.
    """
    n = len(x)
    out = np.full(n, np.nan)
    for c in range(1, k + 1):
        a = c * period
        if a >= n:
            break
        b = n if c == k else min(n, a + period)
        cols = [x[a - j * period: b - j * period] for j in range(1, c + 1)]
        for p in range(c):  # odd-even transposition sort: c passes order c columns
            for i in range(p % 2, c - 1, 2):
                cols[i], cols[i + 1] = (np.minimum(cols[i], cols[i + 1]),
                                        np.maximum(cols[i], cols[i + 1]))
        h = c // 2
        out[a:b] = cols[h] if c % 2 else (cols[h - 1] + cols[h]) / 2.0
    return out


def _baseline(x: np.ndarray, period: int, spec: BandSpec) -> tuple[np.ndarray, np.ndarray]:
    """(yhat, local scale) of one metric with one season (0: none)."""
    s = _season(x, period, spec.n_periods) if period else np.zeros(len(x))
    yhat = s + _past_median(x - s, spec.window)
    local = MAD_SCALE * _past_median(np.abs(x - yhat), spec.window)
    return yhat, local


def _floor_scale(err: np.ndarray, level: float) -> float:
    """Typical forecast error of training: 1.4826 x median |err|, with fallbacks for
    quantised (mostly-zero error) and constant metrics."""
    err = err[np.isfinite(err)]
    tol = _ZERO_SCALE_TOLERANCE * (1.0 + abs(level))
    if not err.size:
        return tol
    s = MAD_SCALE * float(np.median(err))
    if s <= tol:
        s = 1.2533 * float(np.mean(err))  # mean absolute error of a normal -> sigma
    return max(s, tol)


def fit_band(series: Sequence[np.ndarray], spec: BandSpec) -> Band:
    """Find each metric's season and scale floors from training series.

    ``series``: one ``(n_rows, n_metrics)`` array per entity (rows on the step grid).
    """
    if not series:
        raise ConfigError("band: no training series")
    m = series[0].shape[1]
    period, sigma, sigma_plain = [], [], []
    for j in range(m):
        errs: dict[int, list[np.ndarray]] = {0: []}
        level = float(np.median(np.concatenate([np.asarray(v[:, j]) for v in series])))
        for v in series:
            x = np.asarray(v[:, j], dtype=np.float64)
            yhat, _ = _baseline(x, 0, spec)
            errs[0].append(np.abs(x - yhat))
            for p in spec.periods:
                # a season is judged only where it exists: two past seasons at least
                if len(x) >= 2 * p + spec.window + 10:
                    ys, _ = _baseline(x, p, spec)
                    errs.setdefault(p, []).append(np.abs(x - ys)[2 * p:])
        med = {}
        for p, e in errs.items():
            if e:
                cat = np.concatenate(e)
                cat = cat[np.isfinite(cat)]
                if cat.size:
                    med[p] = float(np.mean(cat))
        best = 0
        for p in spec.periods:
            if p in med and med[p] < (1.0 - spec.min_gain) * med[best]:
                best = p
        sp = _floor_scale(np.concatenate(errs[0]), level)
        period.append(int(best))
        sigma_plain.append(sp)
        sigma.append(sp if best == 0 else _floor_scale(np.concatenate(errs[best]), level))
    return Band(spec, tuple(period), tuple(sigma), tuple(sigma_plain))


def band_arrays(values: np.ndarray, band: Band) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expected value, lower and upper bound of every row and metric of one entity.

    ``values``: ``(n_rows, n_metrics)`` on the step grid, oldest first. Returns three arrays of
    that shape; NaN where the level window has no history yet.
    """
    values = np.asarray(values, dtype=np.float64)
    n, m = values.shape
    yhat, sig = np.full((n, m), np.nan), np.full((n, m), np.nan)
    for j in range(m):
        x = values[:, j]
        if not band.period[j]:
            yp, lp = _baseline(x, 0, band.spec)
            y, s = yp, np.fmax(lp, band.sigma_plain[j])
        else:
            ys, ls = _baseline(x, band.period[j], band.spec)
            use = np.isfinite(ys) & np.isfinite(ls)
            # The plain (season-less) forecast is read only where the seasonal one is not
            # defined yet (its first period and two windows): it is computed on the rows up to
            # the last such one. Row t of a baseline uses rows < t only, so those rows get the
            # numbers of the whole series; the half of the rolling medians the seasonal rows
            # never read is not computed.
            miss = np.flatnonzero(~use)
            cut = int(miss[-1]) + 1 if miss.size else 0
            yp, lp = np.full(n, np.nan), np.full(n, np.nan)
            if cut:
                yp[:cut], lp[:cut] = _baseline(x[:cut], 0, band.spec)
            y = np.where(use, ys, yp)
            s = np.where(use, np.fmax(ls, band.sigma[j]), np.fmax(lp, band.sigma_plain[j]))
        yhat[:, j], sig[:, j] = y, np.where(np.isfinite(y), s, np.nan)
    w = band.spec.width
    return yhat, yhat - w * sig, yhat + w * sig


# ---------------------------------------------------------------------------- streaming
class BandState:
    """The band of one entity, one row at a time: :meth:`expected` (before the row),
    then :meth:`update` with the row. Same numbers as :func:`band_arrays`.

    The window medians are one ``np.partition`` of the window (the values ``np.median`` would
    pick, added and halved the same way), without ``np.median``'s per-call overhead; the
    seasonal medians and the per-metric arithmetic run on plain floats (the same operations,
    so the same numbers). This runs once per live point, where numpy's per-call cost on a
    handful of values is most of the time.
    """

    def __init__(self, band: Band) -> None:
        self.band = band
        spec = band.spec
        m = len(band.period)
        self._m = m
        self._n = 0
        self._w = int(spec.window)
        half = self._w // 2
        # the positions np.median reads (the middle one or two)
        self._kth = (half,) if self._w % 2 else (half - 1, half)
        # One window of (plain value, its forecast error, de-seasonalised value, its forecast
        # error) per metric, so one partition gives the four medians of a step.
        self._buf = np.full((spec.window, 4, m), np.nan)
        # the window may hold a NaN (its first rows, the first season's) until this row
        self._clean_from = self._w
        # per period: its metrics (None: every metric) and the ring of their past values
        self._seasons: dict[int, tuple[list[int] | None, np.ndarray]] = {}
        for p in sorted({p for p in band.period if p}):
            cols = [j for j, q in enumerate(band.period) if q == p]
            self._seasons[p] = (None if len(cols) == m else cols,
                                np.full((p * spec.n_periods, len(cols)), np.nan))
        self._season_flags = [bool(p) for p in band.period]
        self._sig_list = [float(v) for v in band.sigma]
        self._sig_plain_list = [float(v) for v in band.sigma_plain]
        self._fc: tuple[list[float], list[float], list[float], list[float], list[float]] | \
            None = None
        self._out: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def _window_median(self) -> np.ndarray:
        """``np.median(self._buf, axis=0)``: NaN where the window holds a NaN."""
        part = np.partition(self._buf, self._kth, axis=0)
        if len(self._kth) == 1:
            med = part[self._kth[0]]
        else:
            med = part[self._kth[0]] + part[self._kth[1]]
            med /= 2.0
        if self._n < self._clean_from:
            med[np.isnan(self._buf).any(axis=0)] = np.nan
        return med

    def _forecast(self) -> tuple[list[float], list[float], list[float], list[float],
                                 list[float]]:
        """(plain yhat, plain local scale, season, seasonal yhat, seasonal local scale), per
        metric, as plain floats."""
        if self._fc is None:
            med = self._window_median().tolist()
            s = [0.0] * self._m
            k = self.band.spec.n_periods
            n = self._n
            for p, (cols, ring) in self._seasons.items():
                # ring row (t % (k p)) holds x[t]; the lags x[n - j p], j = 1..k, that exist
                c = min(k, n // p)
                if not c:
                    meds = [math.nan] * ring.shape[1]
                else:
                    h = c // 2
                    lags = ring.take([(n - j * p) % (k * p) for j in range(1, c + 1)],
                                     axis=0).T.tolist()
                    meds = []
                    for v in lags:
                        v.sort()
                        meds.append(v[h] if c % 2 else (v[h - 1] + v[h]) / 2.0)
                if cols is None:
                    s = meds
                else:
                    for j, v in zip(cols, meds, strict=True):
                        s[j] = v
            self._fc = (med[0], [MAD_SCALE * v for v in med[1]], s,
                        [a + b for a, b in zip(s, med[2], strict=True)],
                        [MAD_SCALE * v for v in med[3]])
        return self._fc

    def expected(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(yhat, lower, upper) of the next row, per metric (NaN without history)."""
        if self._out is None:
            # the same operations as band_arrays, so the same numbers: the seasonal forecast
            # where it and its scale exist, else the plain one; the scale at least its
            # training floor (np.fmax: a NaN local scale gives the floor)
            yp, lp, _, ys, ls = self._forecast()
            w = self.band.spec.width
            ys_out, lo_out, hi_out = [], [], []
            for j, season in enumerate(self._season_flags):
                if season and math.isfinite(ys[j]) and math.isfinite(ls[j]):
                    y, loc, floor = ys[j], ls[j], self._sig_list[j]
                else:
                    y, loc, floor = yp[j], lp[j], self._sig_plain_list[j]
                if not math.isfinite(y):
                    sig = math.nan
                elif loc != loc:  # NaN
                    sig = floor
                else:
                    sig = loc if loc >= floor else floor
                ys_out.append(y)
                lo_out.append(y - w * sig)
                hi_out.append(y + w * sig)
            self._out = (np.array(ys_out), np.array(lo_out), np.array(hi_out))
        return self._out

    def update(self, values: np.ndarray) -> None:
        """Add the row ``values`` (per metric)."""
        x = np.asarray(values, dtype=np.float64)
        xs = x.tolist()
        yp, _, s, ys, _ = self._forecast()
        # metrics without a season: de-seasonalised = value (its errors are never used)
        self._buf[self._n % self._w] = (
            xs, [abs(a - b) for a, b in zip(xs, yp, strict=True)],
            [a - b for a, b in zip(xs, s, strict=True)],
            [abs(a - b) for a, b in zip(xs, ys, strict=True)])
        if any(v != v for v in (*xs, *yp, *ys)):  # a NaN in this row (s NaN: ys NaN)
            self._clean_from = max(self._clean_from, self._n + self._w + 1)
        k = self.band.spec.n_periods
        for p, (cols, ring) in self._seasons.items():
            ring[self._n % (k * p)] = x if cols is None else x.take(cols)
        self._n += 1
        self._fc = self._out = None

    # ------------------------------------------------------------------ state
    def copy(self) -> BandState:
        """An independent state with the same rows seen (shares the fitted band)."""
        new = object.__new__(BandState)
        new.__dict__.update(self.__dict__)
        new._buf = self._buf.copy()
        new._seasons = {p: (cols, ring.copy()) for p, (cols, ring) in self._seasons.items()}
        return new

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(json_dict, arrays)`` from which :meth:`from_state` rebuilds this state."""
        arrays = {"window": self._buf.copy()}
        for p, (_, ring) in self._seasons.items():
            arrays[f"season_{p}"] = ring.copy()
        return {"n": int(self._n), "band": self.band.to_dict()}, arrays

    @classmethod
    def from_state(cls, band: Band, state: Mapping[str, Any],
                   arrays: Mapping[str, np.ndarray]) -> BandState:
        """Rebuild a state of ``band`` saved with :meth:`get_state`; :class:`ConfigError`
        when it belongs to another band or its arrays do not fit."""
        bs = cls(band)
        if not isinstance(state, Mapping) or state.get("band") != band.to_dict():
            raise ConfigError("band state: it belongs to another band")
        n = state.get("n")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ConfigError(f"band state: n must be an integer >= 0, got {n!r}")
        want = {"window": bs._buf.shape,
                **{f"season_{p}": ring.shape for p, (_, ring) in bs._seasons.items()}}
        if set(arrays) != set(want):
            raise ConfigError(f"band state: expected arrays {sorted(want)}, got "
                              f"{sorted(arrays)}")
        for key, shape in want.items():
            if np.shape(arrays[key]) != shape:
                raise ConfigError(f"band state: {key} has shape {np.shape(arrays[key])}, "
                                  f"expected {shape}")
        bs._n = n
        bs._buf = np.array(arrays["window"], dtype=np.float64)
        # a NaN row may have been written at any of the last window's steps
        bs._clean_from = n + bs._w + 1 if np.isnan(bs._buf).any() else 0
        bs._seasons = {p: (cols, np.array(arrays[f"season_{p}"], dtype=np.float64))
                       for p, (cols, _) in bs._seasons.items()}
        return bs
