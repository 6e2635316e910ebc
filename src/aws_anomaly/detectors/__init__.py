"""Anomaly detectors: scikit-learn estimators over feature matrices (they know nothing of time).

Every detector follows one contract (see :mod:`aws_anomaly.detectors.base`): ``fit(X) ->
self``; ``score_samples(X)`` is a raw score where **higher = more anomalous**;
``decision_function`` / ``predict`` keep scikit-learn's meaning (negative / -1 = anomalous).

Examples
--------
>>> import numpy as np
>>> det = make_detector("robust")
>>> det.fit(np.random.default_rng(0).normal(size=(200, 3))).n_features_in_
3
>>> make_detector("svm")
Traceback (most recent call last):
...
aws_anomaly.errors.ConfigError: unknown detector 'svm'; allowed: 'ensemble', 'iforest', \
'knn', 'lof', 'lstm_ae', 'ocsvm', 'robust', 'supervised'
"""

from __future__ import annotations

from typing import Any

from aws_anomaly.detectors.base import BaseDetector, check_feature_matrix
from aws_anomaly.detectors.ensemble import EnsembleDetector
from aws_anomaly.detectors.iforest import IsolationForestDetector
from aws_anomaly.detectors.knn import KNNDetector
from aws_anomaly.detectors.lof import LOFDetector
from aws_anomaly.detectors.lstm_ae import LSTMAutoencoderDetector
from aws_anomaly.detectors.ocsvm import OneClassSVMDetector
from aws_anomaly.detectors.robust import RobustZDetector
from aws_anomaly.detectors.supervised import SupervisedDetector
from aws_anomaly.errors import ConfigError

__all__ = [
    "DETECTORS",
    "TRUSTED_TYPES",
    "BaseDetector",
    "EnsembleDetector",
    "IsolationForestDetector",
    "KNNDetector",
    "LOFDetector",
    "LSTMAutoencoderDetector",
    "OneClassSVMDetector",
    "RobustZDetector",
    "SupervisedDetector",
    "check_feature_matrix",
    "make_detector",
]

DETECTORS: dict[str, type[BaseDetector]] = {
    "ocsvm": OneClassSVMDetector,
    "iforest": IsolationForestDetector,
    "knn": KNNDetector,
    "lof": LOFDetector,
    "robust": RobustZDetector,
    "ensemble": EnsembleDetector,
    # PyTorch, optional (the 'deep' extra): imported on first fit or score, never here.
    "lstm_ae": LSTMAutoencoderDetector,
    # Learns from labelled anomalies (fit needs y): see detectors/supervised.py.
    "supervised": SupervisedDetector,
}

# Fully-qualified names of every type a fitted detector holds, for
# ``skops.io.load(path, trusted=TRUSTED_TYPES)``. Keep in step with the detectors: the test
# suite checks that ``skops.io.get_untrusted_types`` of each saved detector is a subset.
TRUSTED_TYPES: list[str] = sorted({
    *(f"{cls.__module__}.{cls.__qualname__}" for cls in DETECTORS.values()),
    "builtins.slice",
    "numpy.dtype",
    "numpy.float64",
    "numpy.int64",
    "numpy.ndarray",
    "numpy.random._mt19937.MT19937",
    "numpy.random.mtrand.RandomState",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._iforest.IsolationForest",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.metrics._dist_metrics.MinkowskiDistance64",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.neighbors._lof.LocalOutlierFactor",
    "sklearn.svm._classes.OneClassSVM",
    "sklearn.tree._classes.ExtraTreeRegressor",
    "sklearn.tree._tree.Tree",
})


def make_detector(name: str, **params: Any) -> BaseDetector:
    """A new, unfitted detector by registry name, with ``params`` as its hyperparameters.

    Raises
    ------
    ConfigError
        If ``name`` is not registered, or a parameter name is unknown to that detector.
    """
    cls = DETECTORS.get(name)
    if cls is None:
        allowed = ", ".join(repr(n) for n in sorted(DETECTORS))
        raise ConfigError(f"unknown detector {name!r}; allowed: {allowed}")
    valid = cls().get_params(deep=False)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError(f"detector {name!r} has no parameter(s) {', '.join(unknown)}; "
                          f"allowed: {', '.join(sorted(valid))}")
    return cls(**params)
