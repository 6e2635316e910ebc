"""Ready-made models: :func:`default_model`, the label-free default of jobs and the CLI.

A preset turns a data step (and optionally the training span) into an
:class:`~aws_anomaly.model.AnomalyModel` whose horizons are stated in time, so one-minute and
five-minute data see the same windows. docs/model.md gives the measurements behind each choice.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from aws_anomaly.errors import ConfigError
from aws_anomaly.features import FeatureSpec
from aws_anomaly.model import AnomalyModel

__all__ = ["DEFAULT_WINDOWS", "EXCESS_WEIGHT", "MIN_SEASONAL_HISTORY", "TAIL_WEIGHT",
           "WIDE_MIN_METRICS", "default_model"]

#: Horizons of the label-free default model's volatility features, in time (scaled to rows by
#: the data's step, so one-minute and five-minute data see the same horizons).
DEFAULT_WINDOWS = (pd.Timedelta("15min"), pd.Timedelta("1h"))
#: Weight of the volatility-excess term (:class:`~aws_anomaly.detectors.KNNDetector`
#: ``excess``), on from :data:`WIDE_MIN_METRICS` metrics: the mean positive part of the level
#: view's standardised volatility columns (how much more volatile than usual the metrics are,
#: together), added to the mean of the two views' distances. 0.25 was the leave-one-server-out
#: choice on the real servers; on the 3-metric demo it costs best F1 on every seed measured
#: (-0.11 on average over seeds 0, 7, 42, 1234) (docs/model.md).
EXCESS_WEIGHT = 0.25
#: Weight of the kNN's empirical-tail term (:class:`~aws_anomaly.detectors.KNNDetector`
#: ``tail_weight``), on from :data:`WIDE_MIN_METRICS` metrics: the mean over the two views of
#: ECOD's aggregate of each view's top ``ceil(sqrt(columns))`` column tails, added to the mean
#: of the views' distances (0.25 of it ranks as ``(L + S + 0.5 T) / 2.5``, the
#: leave-one-server-out choice on the real servers). On the 3-metric demo it costs best F1 on
#: every seed (docs/model.md, "the terms for many metrics").
TAIL_WEIGHT = 0.25
#: Metrics (not constant over training) from which the default model adds its two terms for
#: many metrics (tail and volatility excess). A distance over hundreds of columns dilutes a
#: few metrics in their far tails, or a volatility that every metric shares a little of; over a
#: handful of metrics it does not, and the terms only add noise. The benches hold 1 (NAB,
#: another model), 3 (demo) and 19-38 (servers) metrics: every cut from 4 to 19 gives the same
#: figures; 10 sits in that gap (docs/model.md).
WIDE_MIN_METRICS = 10
#: Training span per entity under which the default model leaves out its daily terms.
MIN_SEASONAL_HISTORY = pd.Timedelta("3D")


def default_model(step: pd.Timedelta | str, *, history: pd.Timedelta | str | None = None,
                  **overrides: Any) -> AnomalyModel:
    """The label-free default: kNN distance in two views of each metric, POT threshold.

    Two views (``feature_set="hybrid"``), each measured by its own nearest training rows and
    averaged as a root-mean-square deviation per feature (:class:`~aws_anomaly.detectors.
    KNNDetector` ``views``):

    * **level**: the value and ``log(1 + rolling std / training spread)`` over 15 minutes and
      1 hour. Finds states the history never visited (a saturated CPU next to a normal
      memory, a disk that starts being written).
    * **stationary**: deviations from rolling baselines (z-scores over 15 min .. 12 h, robust
      z, differences over one step and 15 minutes, the difference from one day earlier and its
      persistent EWMAs over 30 min and 3 h less a one-day baseline). Finds changes of behaviour
      that stay within the usual range, and follows trends and daily cycles.

    The score is the mean of the two distances, plus, with :data:`WIDE_MIN_METRICS` metrics
    or more, two terms for many metrics: :data:`TAIL_WEIGHT` times an empirical-tail term (each
    view's most extreme columns against the training rows' empirical distribution: the kNN's
    ``tail_weight``) and :data:`EXCESS_WEIGHT` times the mean positive part of the level
    view's standardised volatility columns (how much more volatile than usual the metrics are,
    together: ``excess_weight``). Measured better on the wide real servers and worse on the
    3-metric demo. ``detector_params`` are laid over ``{"tail_weight": ..., "excess_weight":
    ..., "wide_min_metrics": ...}`` (``{"tail_weight": 0, "excess_weight": 0}`` turns both
    off; ``{"wide_min_metrics": 1}`` keeps them on for any number of metrics).

    Every horizon is stated in time and turned into rows of ``step`` (:data:`DEFAULT_WINDOWS`
    are the level view's). ``history``, the span of training data per entity when known:
    under :data:`MIN_SEASONAL_HISTORY` the daily terms are left out (a one-day difference needs
    a day of warm-up before the first usable row) and so are windows longer than a quarter of
    it, so a few hours of fine-grained data still train. No calendar terms and no cross-metric
    ratios (their count grows with the square of the metric count). The threshold is a
    peaks-over-threshold fit of the score tail on held-out history, at the risk
    :func:`~aws_anomaly.threshold.pot_risk` gives the data's step (the same 1.44 normal points
    a day above it at any step: risk 1e-3 at one minute, 5e-3 at five). Metrics constant
    over training must stay constant. docs/model.md gives the
    measurements behind each choice.

    >>> m = default_model("5min")
    >>> m.detector, m.feature_set, m.spec.windows, m.calibration["method"]
    ('knn', 'hybrid', (3, 12, 36, 144), 'pot')
    >>> m.detector_params
    {'tail_weight': 0.25, 'excess_weight': 0.25, 'wide_min_metrics': 10}
    >>> default_model("1min").spec.windows, default_model("1min").spec.seasonal_period
    ((15, 60, 180, 720), 1440)
    >>> short = default_model("1min", history="12h")
    >>> short.spec.windows, short.spec.include_seasonal, short.spec.min_history
    ((15, 60, 180), False, 180)
    """
    step = pd.Timedelta(step)
    if step <= pd.Timedelta(0):
        raise ConfigError(f"default_model: step must be positive, got {step}")

    def rows(horizon: str | pd.Timedelta, minimum: int = 2) -> int:
        return max(minimum, round(pd.Timedelta(horizon) / step))

    span = None if history is None else pd.Timedelta(history)
    short = span is not None and span < MIN_SEASONAL_HISTORY
    windows: list[int] = []
    for horizon in (*DEFAULT_WINDOWS, pd.Timedelta("3h"), pd.Timedelta("12h")):
        if short and len(windows) >= len(DEFAULT_WINDOWS) and horizon > span / 4:
            break
        r = rows(horizon)
        windows.append(r if not windows or r > windows[-1] else windows[-1] + 1)
    lags = sorted({1, rows("15min", 1)})
    day = rows("1D")
    persist = () if short else tuple(sorted({rows("30min"), rows("3h", 3)}))
    spec = FeatureSpec(windows=tuple(windows), lags=tuple(lags),
                       quantile_windows=(min(rows("1h"), 2016),), include_seasonal=not short,
                       seasonal_period=day, include_cross=False, include_calendar=False)
    params: dict[str, Any] = {
        "detector": "knn", "spec": spec, "feature_set": "hybrid", "scaler": "robust",
        "log_std": True, "clip": 10.0, "persist": persist,
        "persist_baseline": None if short else max(day, persist[-1] + 1),
        "calibration": {"method": "pot"}, "calibration_holdout": 0.15,
    }
    if overrides.get("detector", "knn") == "knn":
        # the terms for many metrics; a caller's detector_params are laid over them
        params["detector_params"] = {"tail_weight": TAIL_WEIGHT, "excess_weight": EXCESS_WEIGHT,
                                     "wide_min_metrics": WIDE_MIN_METRICS,
                                     **(overrides.pop("detector_params", None) or {})}
    params.update(overrides)
    return AnomalyModel(**params)
