"""Which feature columns a model uses (``feature_set``), read from the plan's structure.

The column roles come from :class:`~.spec.FeaturePlan`'s index arrays (which family built each
column), never from matching names, so a metric called ``value`` or ``cpu__std_6`` cannot be
mistaken for a feature family. Columns after the plan's own (the persistence terms of
:mod:`.persist`) are stationary.

Feature sets:

* ``"stationary"``: every column but the *level* ones (the value, rolling mean / min / max,
  the quantiles p10 / median / p90 and cross-metric ratios), which follow each entity's own
  load level and its trend;
* ``"all"``: every column;
* ``"level"``: the value and its rolling standard deviations;
* ``"hybrid"``: two views side by side, the *level* view (the value and its rolling standard
  deviations over the two shortest windows) then the *stationary* view.

>>> from aws_anomaly.features import FeatureSpec
>>> from aws_anomaly.features.spec import FeaturePlan
>>> fp = FeaturePlan.build(["value"], FeatureSpec(windows=(3, 6), lags=(1,),
...                                                include_quantiles=False,
...                                                include_seasonal=False))
>>> cols, views = select_columns(fp, "hybrid", fp.n_features)
>>> [fp.names[c] for c in cols[:3]], views[0]
(['value__value', 'value__std_3', 'value__std_6'], [0, 1, 2])
"""

from __future__ import annotations

import numpy as np

from aws_anomaly.errors import ConfigError
from aws_anomaly.features.spec import FeaturePlan

__all__ = ["FEATURE_SETS", "level_columns", "select_columns", "std_columns"]

FEATURE_SETS = ("stationary", "all", "level", "hybrid")


def _built(idx: np.ndarray) -> set[int]:
    return {int(i) for i in np.asarray(idx).ravel() if i >= 0}


def level_columns(plan: FeaturePlan) -> set[int]:
    """Columns that follow the level of their metric: value, rolling mean / min / max,
    quantiles (not the robust z-score) and cross-metric ratios."""
    out = _built(plan.idx_value) | _built(plan.idx_ratio)
    for kind in ("mean", "min", "max"):
        out |= _built(plan.idx_window[kind])
    if plan.idx_quant.size:
        out |= _built(plan.idx_quant[:, :3, :])
    return out


def std_columns(plan: FeaturePlan, windows: tuple[int, ...] | None = None) -> dict[int, int]:
    """Rolling standard deviation column -> its metric's value column (``windows``: only
    those windows; None: every window of the spec)."""
    std = plan.idx_window["std"]
    out: dict[int, int] = {}
    for wi, w in enumerate(plan.sum_windows):
        if windows is not None and w not in windows:
            continue
        for j in range(len(plan.metrics)):
            if std[wi, j] >= 0:
                out[int(std[wi, j])] = int(plan.idx_value[j])
    return out


def select_columns(plan: FeaturePlan, feature_set: str, n_columns: int
                   ) -> tuple[list[int], list[list[int]] | None]:
    """``(columns, views)`` for ``feature_set`` among ``n_columns`` columns (the plan's, then
    any appended ones); ``views`` (positions in ``columns``) only for ``"hybrid"``."""
    if feature_set not in FEATURE_SETS:
        raise ConfigError(f"feature_set must be one of {', '.join(map(repr, FEATURE_SETS))}, "
                          f"got {feature_set!r}")
    if feature_set == "all":
        return list(range(n_columns)), None
    values = _built(plan.idx_value)
    if feature_set == "level":
        keep = values | set(std_columns(plan))
        return [i for i in range(n_columns) if i in keep], None
    level = level_columns(plan)
    stationary = [i for i in range(n_columns) if i not in level]
    if feature_set == "stationary":
        return stationary, None
    short = values | set(std_columns(plan, plan.spec.windows[:2]))
    level_view = [i for i in range(n_columns) if i in short]
    cols = level_view + stationary  # a column may sit in both views
    return cols, [list(range(len(level_view))), list(range(len(level_view), len(cols)))]
