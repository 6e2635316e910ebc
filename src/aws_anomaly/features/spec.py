"""``FeatureSpec``: which causal features to build, and the column layout they produce.

The spec is a frozen, JSON-serialisable dataclass; it is saved with every model so training,
batch scoring and live streaming build the same columns. :func:`feature_names` and
:class:`FeaturePlan` turn a spec plus the metric names into the column layout (names, groups and
index maps) shared by the batch and the streaming builders.

Feature families (``{m}`` is a metric name, ``{w}`` a window in rows, ``{L}`` a lag in rows):

* ``{m}__value`` — the value itself.
* ``{m}__mean_{w}``, ``{m}__std_{w}`` (population std), ``{m}__min_{w}``, ``{m}__max_{w}`` and
  ``{m}__z_{w}`` = (value - mean) / max(std, floor) for every ``w`` in ``windows``.
* ``{m}__p10_{w}``, ``{m}__median_{w}``, ``{m}__p90_{w}`` (linear interpolation between order
  statistics, as ``numpy.quantile``) and the robust z-score ``{m}__robust_z_{w}`` =
  (value - median) / max((p90 - p10) / 2.5631, floor) for every ``w`` in ``quantile_windows``
  when ``include_quantiles`` (the p10-p90 range of a normal sample is 2.5631 sigma).
* ``{m}__diff_{L}`` = value - value ``L`` rows earlier and ``{m}__roc_{L}`` = diff /
  max(|earlier value|, ``ratio_floor``) for every ``L`` in ``lags``.
* ``{m}__season_diff_{P}`` = value - value ``P`` rows earlier for ``P = seasonal_period`` (one
  day of 5-minute steps) when ``include_seasonal``, and ``P = 7 * seasonal_period`` as well
  when ``include_weekly``.
* cross-metric terms for every pair ``a < b`` (in metric order) when ``include_cross``:
  ``{a}__per__{b}`` = a / max(|b|, ``ratio_floor``) and ``{a}__corr_{w}__{b}`` (rolling Pearson
  correlation, 0 where either side is flat) for every ``w`` in ``cross_windows``.
* ``time__hour_sin``, ``time__hour_cos`` (time of day) and ``time__week_sin``,
  ``time__week_cos`` (day of week, Monday 00:00 UTC = angle 0) when ``include_calendar``.

Warm-up (rows before ``min_history``): windows use the rows available (expanding until full),
lags and seasonal terms compare with the first row, and the std of a single row is 0, so every
value is finite. ``floor`` above is ``scale_floor * (1 + |centre|)``: it keeps z-scores finite on
flat stretches and scales with the metric's level.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from typing import Any

import numpy as np

from aws_anomaly.errors import ConfigError, DataError, show

__all__ = [
    "MAX_ABS_VALUE",
    "TIME_GROUP",
    "FeaturePlan",
    "FeatureSpec",
    "check_history",
    "check_metrics",
    "feature_names",
]

TIME_GROUP = "time"
#: Longest window or lag accepted (rows).
MAX_WINDOW = 1_000_000
#: Longest quantile window accepted (rows): one week of 5-minute steps.
MAX_QUANTILE_WINDOW = 2016
#: Values beyond this magnitude are refused: sums of squares over long windows must stay finite.
MAX_ABS_VALUE = 1e100
#: Quantile levels of the quantile family (fixed, so the robust z-score is always defined).
QUANTILES = (0.1, 0.5, 0.9)
QUANTILE_NAMES = ("p10", "median", "p90")
#: (p90 - p10) of a standard normal sample, to make the robust z-score sigma-like.
P10_P90_SIGMA = 2.5631031310892007
WINDOW_KINDS = ("mean", "std", "min", "max", "z")
CALENDAR_NAMES = ("hour_sin", "hour_cos", "week_sin", "week_cos")


def _int_tuple(name: str, value: Any, minimum: int, *, allow_empty: bool = True) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(f"feature spec: {name} must be a list of integers, got {value!r}")
    out: list[int] = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ConfigError(f"feature spec: {name} must hold integers, got {show(v)} in "
                              f"{show(value)}")
        if v < minimum:
            raise ConfigError(f"feature spec: {name} values must be >= {minimum}, got {v} "
                              f"in {show(list(value))}")
        out.append(int(v))
    if not allow_empty and not out:
        raise ConfigError(f"feature spec: {name} must not be empty")
    if any(b <= a for a, b in itertools.pairwise(out)):
        raise ConfigError(f"feature spec: {name} must be strictly increasing (sorted, no "
                          f"duplicates), got {out!r}")
    return tuple(out)


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"feature spec: {name} must be true or false, got {value!r}")


def _check_pos_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"feature spec: {name} must be a number, got {value!r}")
    v = float(value)
    if not (math.isfinite(v) and 1e-12 <= v <= 1e3):
        raise ConfigError(f"feature spec: {name} must be in [1e-12, 1e3], got {value!r}")
    return v


@dataclass(frozen=True)
class FeatureSpec:
    """Which causal features to build; frozen, validated and JSON-serialisable.

    All lengths are in rows (5-minute steps for the default data). See the module docstring for
    the exact definition of every feature.

    Parameters
    ----------
    windows
        Rolling windows for mean / std / min / max / z-score, strictly increasing, each >= 2.
    lags
        Lags for differences and rates of change, strictly increasing, each >= 1.
    include_quantiles
        Add rolling p10 / median / p90 and the robust z-score over ``quantile_windows``.
    quantile_windows
        Windows for the quantile family; keep them short, the cost is O(rows * window).
    include_seasonal
        Add ``season_diff_{seasonal_period}`` (value minus the value one period earlier).
    seasonal_period
        Rows in a seasonal period: 288 = one day of 5-minute steps.
    include_weekly
        Also add ``season_diff_{7 * seasonal_period}`` (needs a week of history).
    include_cross
        Add ratios and rolling correlations between every pair of metrics.
    cross_windows
        Windows for the rolling correlations.
    include_calendar
        Add sin/cos encodings of the time of day and the day of the week (UTC).
    scale_floor
        Relative floor of z-score denominators: ``scale_floor * (1 + |centre|)``.
    ratio_floor
        Floor of the denominator magnitude in rates of change and cross ratios.

    Examples
    --------
    >>> spec = FeatureSpec()
    >>> spec.min_history, len(feature_names(
    ...     ["cluster_cpu_request_ratio", "cluster_mem_request_ratio", "cluster_pod_ratio"], spec))
    (289, 109)
    >>> small = FeatureSpec(windows=(3, 6), lags=(1,), include_quantiles=False,
    ...                     include_seasonal=False, include_cross=False, include_calendar=False)
    >>> feature_names(["cpu"], small)[:4]
    ('cpu__value', 'cpu__mean_3', 'cpu__std_3', 'cpu__min_3')
    >>> FeatureSpec.from_dict(small.to_dict()) == small
    True
    """

    windows: tuple[int, ...] = (12, 36, 144, 288)
    lags: tuple[int, ...] = (1, 3, 12)
    include_quantiles: bool = True
    quantile_windows: tuple[int, ...] = (12,)
    include_seasonal: bool = True
    seasonal_period: int = 288
    include_weekly: bool = False
    include_cross: bool = True
    cross_windows: tuple[int, ...] = (36, 288)
    include_calendar: bool = True
    scale_floor: float = 1e-6
    ratio_floor: float = 1e-3

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "windows", _int_tuple("windows", self.windows, 2, allow_empty=False))
        set_(self, "lags", _int_tuple("lags", self.lags, 1))
        set_(self, "quantile_windows", _int_tuple("quantile_windows", self.quantile_windows, 2))
        set_(self, "cross_windows", _int_tuple("cross_windows", self.cross_windows, 2))
        for name in ("include_quantiles", "include_seasonal", "include_weekly", "include_cross",
                     "include_calendar"):
            _check_bool(name, getattr(self, name))
        p = self.seasonal_period
        if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < 2:
            raise ConfigError(f"feature spec: seasonal_period must be an integer >= 2, got {p!r}")
        set_(self, "seasonal_period", int(p))
        if self.include_weekly and not self.include_seasonal:
            raise ConfigError("feature spec: include_weekly needs include_seasonal=true")
        set_(self, "scale_floor", _check_pos_float("scale_floor", self.scale_floor))
        set_(self, "ratio_floor", _check_pos_float("ratio_floor", self.ratio_floor))
        longest = max(self.windows[-1], *self.cross_windows, *self.seasonal_lags, *self.lags)
        if longest > MAX_WINDOW:
            raise ConfigError(f"feature spec: windows and lags must be <= {MAX_WINDOW} rows, "
                              f"got {longest}")
        if self.quantile_windows and self.quantile_windows[-1] > MAX_QUANTILE_WINDOW:
            raise ConfigError(
                f"feature spec: quantile_windows must be <= {MAX_QUANTILE_WINDOW} rows (they "
                f"cost O(rows x window)), got {self.quantile_windows[-1]}")

    # -- derived ------------------------------------------------------------------------------
    @property
    def seasonal_lags(self) -> tuple[int, ...]:
        """Lags of the ``season_diff`` features (empty when ``include_seasonal`` is off)."""
        if not self.include_seasonal:
            return ()
        if self.include_weekly:
            return (self.seasonal_period, 7 * self.seasonal_period)
        return (self.seasonal_period,)

    @property
    def active_quantile_windows(self) -> tuple[int, ...]:
        """``quantile_windows`` when ``include_quantiles``, else empty."""
        return self.quantile_windows if self.include_quantiles else ()

    @property
    def active_cross_windows(self) -> tuple[int, ...]:
        """``cross_windows`` when ``include_cross``, else empty."""
        return self.cross_windows if self.include_cross else ()

    @cached_property  # read on every live point; the spec is frozen
    def sum_windows(self) -> tuple[int, ...]:
        """Every window needing rolling sums (``windows`` and the active cross windows)."""
        return tuple(sorted(set(self.windows) | set(self.active_cross_windows)))

    @cached_property  # read on every live point; the spec is frozen
    def min_history(self) -> int:
        """Rows needed before every feature is fully defined (``ready``).

        A window of ``w`` rows is full at ``w`` rows; a lag of ``L`` rows needs ``L + 1``.
        """
        need = [*self.sum_windows, *self.active_quantile_windows]
        need += [lag + 1 for lag in (*self.lags, *self.seasonal_lags)]
        return max(need)

    @property
    def history_rows(self) -> int:
        """Rows the streaming builder keeps: two blocks of the longest window, every lag."""
        need = [2 * self.sum_windows[-1], *self.active_quantile_windows]
        need += [lag + 1 for lag in (*self.lags, *self.seasonal_lags)]
        return max(need)

    # -- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (tuples become lists)."""
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """Build a spec from :meth:`to_dict` output; unknown keys raise :class:`ConfigError`."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"feature spec must be a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"feature spec: unknown key(s) {unknown}; allowed: {sorted(known)}")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**kwargs)


def check_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    """Validate metric names: a non-empty sequence of unique, non-empty strings."""
    if isinstance(metrics, str) or not isinstance(metrics, Sequence) or not metrics:
        raise DataError(f"metrics must be a non-empty list of names, got {metrics!r}")
    out = tuple(metrics)
    for m in out:
        if not isinstance(m, str) or not m:
            raise DataError(f"metric names must be non-empty strings, got {m!r}")
        if m == TIME_GROUP:
            raise DataError(f"metric name {m!r} is reserved for the calendar features")
    if len(set(out)) != len(out):
        dup = sorted({m for m in out if out.count(m) > 1})
        raise DataError(f"metric names must be unique, got duplicates {dup}")
    return out


def check_history(n_rows: int, spec: FeatureSpec, where: str = "data") -> None:
    """Raise :class:`DataError` when ``n_rows`` is below ``spec.min_history``.

    >>> check_history(50, FeatureSpec(), "entity 'x'")
    Traceback (most recent call last):
    ...
    aws_anomaly.errors.DataError: entity 'x' has 50 points; the feature spec needs at least 289 (longest window 288 rows, seasonal lag 288 rows); provide more history or use shorter windows
    """  # noqa: E501
    if n_rows >= spec.min_history:
        return
    parts = [f"longest window {max((*spec.sum_windows, *spec.active_quantile_windows))} rows"]
    if spec.seasonal_lags:
        parts.append(f"seasonal lag {spec.seasonal_lags[-1]} rows")
    if spec.lags and spec.lags[-1] + 1 == spec.min_history:
        parts.append(f"longest lag {spec.lags[-1]} rows")
    raise DataError(
        f"{where} has {n_rows} points; the feature spec needs at least {spec.min_history} "
        f"({', '.join(parts)}); provide more history or use shorter windows")


@dataclass(frozen=True)
class FeaturePlan:
    """The column layout of a spec for given metrics, shared by both builders.

    Index arrays map computed blocks to output columns; ``-1`` marks "not built".
    """

    metrics: tuple[str, ...]
    spec: FeatureSpec
    names: tuple[str, ...]
    groups: dict[str, list[int]]
    sum_windows: tuple[int, ...]
    pairs: tuple[tuple[int, int], ...]
    idx_value: np.ndarray  # (m,)
    idx_window: dict[str, np.ndarray]  # kind -> (n_sum_windows, m), -1 where not in windows
    idx_corr: np.ndarray  # (n_sum_windows, n_pairs), -1 where not a cross window
    idx_ratio: np.ndarray  # (n_pairs,)
    idx_diff: np.ndarray  # (n_lags, m)
    idx_roc: np.ndarray  # (n_lags, m)
    idx_season: np.ndarray  # (n_seasonal, m)
    idx_quant: np.ndarray  # (n_qwindows, 4, m): p10, median, p90, robust_z
    idx_calendar: np.ndarray  # (4,) or (0,)

    @classmethod
    def build(cls, metrics: Sequence[str], spec: FeatureSpec) -> FeaturePlan:
        """Lay out the columns: per metric, then cross-metric pairs, then calendar."""
        metrics = check_metrics(metrics)
        m = len(metrics)
        names: list[str] = []
        groups: dict[str, list[int]] = {name: [] for name in metrics}
        sw = spec.sum_windows
        pairs = tuple((a, b) for a in range(m) for b in range(a + 1, m)) if spec.include_cross \
            else ()
        idx_value = np.full(m, -1, dtype=np.intp)
        idx_window = {k: np.full((len(sw), m), -1, dtype=np.intp) for k in WINDOW_KINDS}
        idx_corr = np.full((len(sw), len(pairs)), -1, dtype=np.intp)
        idx_ratio = np.full(len(pairs), -1, dtype=np.intp)
        idx_diff = np.full((len(spec.lags), m), -1, dtype=np.intp)
        idx_roc = np.full((len(spec.lags), m), -1, dtype=np.intp)
        idx_season = np.full((len(spec.seasonal_lags), m), -1, dtype=np.intp)
        qws = spec.active_quantile_windows
        idx_quant = np.full((len(qws), 4, m), -1, dtype=np.intp)

        def add(name: str, owners: Sequence[str]) -> int:
            names.append(name)
            for o in owners:
                groups.setdefault(o, []).append(len(names) - 1)
            return len(names) - 1

        for j, met in enumerate(metrics):
            idx_value[j] = add(f"{met}__value", [met])
            for w in spec.windows:
                wi = sw.index(w)
                for kind in WINDOW_KINDS:
                    idx_window[kind][wi, j] = add(f"{met}__{kind}_{w}", [met])
            for qi, w in enumerate(qws):
                for r, qname in enumerate((*QUANTILE_NAMES, "robust_z")):
                    idx_quant[qi, r, j] = add(f"{met}__{qname}_{w}", [met])
            for li, lag in enumerate(spec.lags):
                idx_diff[li, j] = add(f"{met}__diff_{lag}", [met])
                idx_roc[li, j] = add(f"{met}__roc_{lag}", [met])
            for si, lag in enumerate(spec.seasonal_lags):
                idx_season[si, j] = add(f"{met}__season_diff_{lag}", [met])
        for pi, (a, b) in enumerate(pairs):
            ma, mb = metrics[a], metrics[b]
            idx_ratio[pi] = add(f"{ma}__per__{mb}", [ma, mb])
            for w in spec.active_cross_windows:
                idx_corr[sw.index(w), pi] = add(f"{ma}__corr_{w}__{mb}", [ma, mb])
        cal = [add(f"{TIME_GROUP}__{c}", [TIME_GROUP]) for c in CALENDAR_NAMES] \
            if spec.include_calendar else []
        return cls(metrics=metrics, spec=spec, names=tuple(names), groups=groups,
                   sum_windows=sw, pairs=pairs, idx_value=idx_value, idx_window=idx_window,
                   idx_corr=idx_corr, idx_ratio=idx_ratio, idx_diff=idx_diff, idx_roc=idx_roc,
                   idx_season=idx_season, idx_quant=idx_quant,
                   idx_calendar=np.asarray(cal, dtype=np.intp))

    @property
    def n_features(self) -> int:
        """Number of output columns."""
        return len(self.names)


def feature_names(metrics: Sequence[str], spec: FeatureSpec) -> tuple[str, ...]:
    """The output column names for ``metrics`` under ``spec``, without any data."""
    return FeaturePlan.build(metrics, spec).names
