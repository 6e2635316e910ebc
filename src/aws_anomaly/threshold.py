"""Threshold choices as written on the command line and in job configs -> calibration settings.

:func:`parse_threshold` turns ``best-f1``, ``auto``, ``fpr:0.01``, ``share:0.05`` or
``pot[:risk]`` into the arguments of :class:`~aws_anomaly.calibration.Calibrator`, with a
one-line :class:`~aws_anomaly.errors.ConfigError` for anything else.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from aws_anomaly.errors import ConfigError

__all__ = ["DEFAULT_RISK", "MAX_POT_RISK", "POT_RISK_PER_MINUTE", "parse_threshold",
           "pot_risk"]

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
