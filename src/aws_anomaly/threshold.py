"""A model's threshold: the rule as written, and the thresholds fit with it.

* :func:`parse_threshold` turns ``best-f1``, ``auto``, ``fpr:0.01``, ``share:0.05`` or
  ``pot[:risk]`` (command line, job configs) into the arguments of
  :class:`~aws_anomaly.calibration.Calibrator`, with a one-line
  :class:`~aws_anomaly.errors.ConfigError` for anything else;
* :func:`fit_thresholds` fits them on a fitted detector's held-out raw scores: the rule
  resolved (``auto``, a ``pot`` risk stated in time by :func:`pot_risk`), one pooled calibrator
  and, for a fleet, one per entity with enough held-out rows;
* :func:`calibrator_for` / :func:`calibrate` map raw scores to ``anomaly_score`` by each row's
  entity (its own threshold, else the pooled one).

:class:`~aws_anomaly.model.AnomalyModel` keeps the result as ``calibrator_``,
``calibration_used_`` and ``entity_calibrators_`` (what its bundle saves).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from aws_anomaly.calibration import Calibrator
from aws_anomaly.errors import ConfigError

__all__ = ["AUTO_MAX_FPR", "DEFAULT_RISK", "ENTITY_MIN_EXCEEDANCES", "MAX_POT_RISK",
           "POT_RISK_PER_MINUTE", "Thresholds", "calibrate", "calibrator_for", "fit_thresholds",
           "parse_threshold", "pot_risk"]

#: Tail probability of a ``pot`` threshold when no step is known: one point in a thousand
#: (what :func:`pot_risk` gives one-minute data).
DEFAULT_RISK = 1e-3
#: The label-free ``pot`` threshold's risk per minute of data: its budget of normal points
#: above it is stated in time (1.44 an entity and day), so one-minute and five-minute data
#: page as often; 1e-3 at one minute is the rate the threshold was chosen at on the real
#: servers.
POT_RISK_PER_MINUTE = 1e-3
#: Ceiling on the per-point risk of coarse data (at most 1 % of the points: hourly data would
#: otherwise flag 6 %).
MAX_POT_RISK = 0.01
#: ``auto`` with labels: the largest validation false-positive rate its best-F1 threshold may
#: have; above it the threshold is that rate's quantile of the normal validation scores.
AUTO_MAX_FPR = 0.02
#: Per-entity thresholds: an entity gets its own when its normal held-out rows expect at least
#: this many points above it (rows x risk; about 2 days of rows at the default risk).
ENTITY_MIN_EXCEEDANCES = 3.0


def pot_risk(step: pd.Timedelta | str) -> float:
    """The ``pot`` risk for data at ``step``: :data:`POT_RISK_PER_MINUTE` per minute of step
    (1.44 normal points a day above the threshold), at most :data:`MAX_POT_RISK`.

    >>> pot_risk("1min"), pot_risk("5min"), pot_risk("1h")
    (0.001, 0.005, 0.01)
    """
    step = pd.Timedelta(step)
    if step <= pd.Timedelta(0):
        raise ConfigError(f"pot risk: the step must be positive, got {step}")
    return min(MAX_POT_RISK, POT_RISK_PER_MINUTE * (step / pd.Timedelta("1min")))


def parse_threshold(text: str) -> dict[str, Any]:
    """Turn a CLI threshold choice into calibration settings.

    ``best-f1`` (needs labels), ``fpr:0.01`` (target false-positive rate on normal-looking
    validation data), ``share:0.05`` (expected anomaly share), ``pot`` or ``pot:1e-4`` (the
    score exceeded with that probability, from an extreme-value fit of the score tail; without a
    value the model takes :func:`pot_risk` of its data's step) or ``auto`` (best F1 when the
    validation data has labels, falling back to ``fpr:0.02`` when that threshold flags more than
    2% of the normal validation points; ``fpr:0.01`` without labels).

    >>> parse_threshold("fpr:0.02")
    {'method': 'target_fpr', 'target_fpr': 0.02}
    >>> parse_threshold("share:0.05")
    {'method': 'contamination', 'contamination': 0.05}
    >>> parse_threshold("pot:1e-4")
    {'method': 'pot', 'risk': 0.0001}
    >>> parse_threshold("pot")
    {'method': 'pot'}
    """
    t = text.strip().lower().replace("_", "-")
    if t in ("best-f1", "bestf1", "f1"):
        return {"method": "best_f1"}
    if t == "auto":
        return {"method": "auto"}
    if t == "pot":
        return {"method": "pot"}  # the risk follows the data's step (pot_risk), at fit
    if t.startswith("pot:"):
        try:
            risk = float(t[4:])
        except ValueError:
            risk = float("nan")
        if not 0.0 < risk <= 0.1:
            raise ConfigError(f"threshold {text!r}: the value after 'pot:' must be a tail "
                              "probability in (0, 0.1], e.g. pot:1e-3")
        return {"method": "pot", "risk": risk}
    for prefix, method, key in (("fpr:", "target_fpr", "target_fpr"),
                                ("share:", "contamination", "contamination")):
        if t.startswith(prefix):
            try:
                value = float(t[len(prefix):])
            except ValueError:
                value = float("nan")
            if not 0.0 < value < 0.5:
                raise ConfigError(f"threshold {text!r}: the value after '{prefix}' must be a "
                                  "number in (0, 0.5), e.g. fpr:0.01 or share:0.05")
            return {"method": method, key: value}
    raise ConfigError(f"unknown threshold {text!r}; use best-f1, auto, fpr:<rate> (e.g. "
                      "fpr:0.01), share:<fraction> (e.g. share:0.05) or pot[:<risk>] (e.g. "
                      "pot:1e-3)")


@dataclass(frozen=True)
class Thresholds:
    """What :func:`fit_thresholds` fit: the pooled calibrator, the rule it was fit with (``auto``
    resolved, the ``pot`` risk filled in) and the calibrators of the entities that hold their
    own threshold (empty when none does)."""

    pooled: Calibrator
    rule: dict[str, Any]
    per_entity: dict[str, Calibrator] = field(default_factory=dict)


def _resolve(calibration: Mapping[str, Any], y: np.ndarray | None, step: pd.Timedelta,
             calibrated_on: str) -> dict[str, Any]:
    """The rule to fit: ``auto`` by whether labels exist, a ``pot`` risk from the step,
    ``best_f1`` refused without labelled anomalies."""
    method = dict(calibration)
    if method.get("method") == "auto":
        method = ({"method": "best_f1"} if y is not None and y.any()
                  else {"method": "target_fpr", "target_fpr": 0.01})
    if method.get("method") == "pot" and "risk" not in method:
        # a risk stated in time: the same normal points a day above it at any step
        method["risk"] = pot_risk(step)
    if method.get("method") == "best_f1" and (y is None or not np.any(y)):
        raise ConfigError(
            "threshold best-f1 needs labelled anomalies in the validation data, and "
            f"{calibrated_on} data has none; use fpr:<rate> (e.g. fpr:0.01) or "
            "share:<fraction>")
    return method


def fit_thresholds(calibration: Mapping[str, Any], raw: np.ndarray, y: np.ndarray | None,
                   step: pd.Timedelta, *, entities: np.ndarray | None = None,
                   per_entity: bool = True, calibrated_on: str = "validation") -> Thresholds:
    """Fit the thresholds of ``calibration`` (:func:`parse_threshold`'s settings) on held-out
    raw scores ``raw`` (labels ``y`` or None; ``entities``: each row's entity or None).

    Labels (when present) sharpen ``target_fpr`` and ``pot`` too: the rate is then measured on
    normal points only; ``share`` ignores them by definition. ``auto`` with labels caps the
    validation false-positive rate of its best-F1 threshold at :data:`AUTO_MAX_FPR` (one
    validation block's best-F1 threshold can sit low in a heavy normal tail). With
    ``per_entity``, a ``pot`` rule and several entities, each entity whose normal rows expect at
    least :data:`ENTITY_MIN_EXCEEDANCES` points above the threshold gets the rule fit on its own
    scores; the others (and entities first seen later) keep the pooled threshold.

    >>> rng = np.random.default_rng(0)
    >>> raw = np.r_[rng.normal(0, 1, 4000), rng.normal(0, 3, 4000)]
    >>> ent = np.repeat(["quiet", "noisy"], 4000)
    >>> th = fit_thresholds({"method": "pot"}, raw, None, pd.Timedelta("5min"), entities=ent)
    >>> th.rule, sorted(th.per_entity)
    ({'method': 'pot', 'risk': 0.005}, ['noisy', 'quiet'])
    >>> bool(th.per_entity["quiet"].threshold_ < th.pooled.threshold_
    ...      < th.per_entity["noisy"].threshold_)
    True
    """
    method = _resolve(calibration, y, step, calibrated_on)
    pooled = Calibrator(**method).fit(
        raw, y if method["method"] in ("best_f1", "target_fpr", "pot") else None)
    if calibration.get("method") == "auto" and method["method"] == "best_f1" and y is not None:
        normal = raw[~np.asarray(y, dtype=bool)]
        fpr = float(np.mean(pooled.transform(normal) >= 1.0)) if normal.size else 0.0
        if fpr > AUTO_MAX_FPR:
            method = {"method": "target_fpr", "target_fpr": AUTO_MAX_FPR}
            pooled = Calibrator(**method).fit(raw, y)
    own: dict[str, Calibrator] = {}
    if per_entity and method.get("method") == "pot" and entities is not None:
        names = pd.unique(entities)
        if len(names) >= 2:  # one entity: its own threshold is the pooled one
            normal = np.ones(len(raw), dtype=bool) if y is None else ~np.asarray(y, dtype=bool)
            risk = float(method["risk"])
            for name in names:
                rows = entities == name
                if (rows & normal).sum() * risk >= ENTITY_MIN_EXCEEDANCES:
                    own[str(name)] = Calibrator(**method).fit(
                        raw[rows], None if y is None else y[rows])
    return Thresholds(pooled, method, own)


def calibrator_for(pooled: Calibrator, own: Mapping[str, Calibrator] | None,
                   entity: str | None) -> Calibrator:
    """The calibrator of ``entity``'s scores: its own (``own``) or the pooled one."""
    if own and entity is not None:
        return own.get(entity, pooled)
    return pooled


def calibrate(pooled: Calibrator, own: Mapping[str, Calibrator] | None, raw: np.ndarray,
              entity: str | np.ndarray | None) -> np.ndarray:
    """Calibrated scores of ``raw``: ``entity`` one entity's name for every row, an array of
    the rows' entities, or None (the pooled calibrator)."""
    if not own or entity is None or isinstance(entity, str):
        return calibrator_for(pooled, own, entity).transform(raw)
    out = np.empty(len(raw))
    for name in pd.unique(entity):
        rows = entity == name
        out[rows] = calibrator_for(pooled, own, str(name)).transform(raw[rows])
    return out
