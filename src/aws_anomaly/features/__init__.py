"""Causal features of metric series: one spec, one implementation, batch and streaming.

* :class:`FeatureSpec` — which features (windows, lags, quantiles, seasonal, cross-metric and
  calendar terms); frozen and JSON-serialisable, saved with every model.
* :func:`build_features` — a whole series at once -> :class:`FeatureMatrix`.
* :class:`StreamingFeatureBuilder` — one row at a time, the same numbers (to ~1e-12).
* :func:`feature_names`, :func:`check_history` — layout and length checks without data.

Row ``t`` of every feature uses rows ``<= t`` only.
"""

from aws_anomaly.features.batch import FeatureMatrix, build_features
from aws_anomaly.features.spec import FeatureSpec, check_history, feature_names
from aws_anomaly.features.streaming import StreamingFeatureBuilder

__all__ = [
    "FeatureMatrix",
    "FeatureSpec",
    "StreamingFeatureBuilder",
    "build_features",
    "check_history",
    "feature_names",
]
