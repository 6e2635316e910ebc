"""Isolation Forest: scikit-learn's ``IsolationForest`` behind the package's score convention."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import IsolationForest

from aws_anomaly.detectors.base import (
    SklearnAdapter,
    check_float_param,
    check_int_param,
    check_n_jobs_param,
    check_random_state_param,
    seed_from,
)
from aws_anomaly.errors import ConfigError

__all__ = ["IsolationForestDetector"]


class IsolationForestDetector(SklearnAdapter):
    """Isolation Forest; the raw score is the negated scikit-learn ``score_samples``.

    A tree ensemble's scoring cost does not depend on the training size (each tree is grown on
    ``max_samples`` rows), so no extra bound is needed.

    Parameters
    ----------
    n_estimators
        Number of trees.
    max_samples
        Rows drawn to grow each tree: ``"auto"`` (min(256, n)), an int, or a fraction in (0, 1].
    max_features
        Fraction of the columns each tree sees, in (0, 1].
    contamination
        Fraction of training rows that ``predict`` calls anomalous (sets ``offset_``).
    n_jobs
        Parallel jobs for fitting and scoring (scikit-learn's meaning).
    random_state
        Seed.

    Attributes
    ----------
    estimator_ : sklearn.ensemble.IsolationForest
    offset_ : float

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 3))
    >>> det = IsolationForestDetector(n_estimators=50, random_state=0).fit(X)
    >>> s = det.score_samples(np.array([[0.0, 0.0, 0.0], [6.0, -6.0, 6.0]]))
    >>> bool(s[1] > s[0])
    True
    """

    def __init__(self, *, n_estimators: int = 100, max_samples: str | int | float = "auto",
                 max_features: float = 1.0, contamination: float = 0.01,
                 n_jobs: int | None = None,
                 random_state: int | np.random.RandomState | None = None) -> None:
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_features = max_features
        self.contamination = contamination
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _check_params(self) -> None:
        owner = type(self).__name__
        check_int_param(owner, "n_estimators", self.n_estimators, low=1)
        ms = self.max_samples
        if isinstance(ms, str):
            if ms != "auto":
                raise ConfigError(f"{owner}: max_samples={ms!r} is not allowed; use 'auto', an "
                                  "int >= 1 or a float in (0, 1]")
        elif isinstance(ms, float):
            check_float_param(owner, "max_samples", ms, low=0.0, high=1.0)
        else:
            check_int_param(owner, "max_samples", ms, low=1)
        check_float_param(owner, "max_features", self.max_features, low=0.0, high=1.0)
        check_n_jobs_param(owner, self.n_jobs)
        check_random_state_param(owner, self.random_state)

    def _fit_normality(self, X: np.ndarray) -> np.ndarray:
        ms = self.max_samples
        if not isinstance(ms, str | float) and ms > X.shape[0]:
            ms = X.shape[0]  # scikit-learn would warn and do the same
        self.estimator_ = IsolationForest(
            n_estimators=self.n_estimators, max_samples=ms, max_features=self.max_features,
            n_jobs=self.n_jobs, random_state=seed_from(self.random_state),
        ).fit(X)
        return self._normality(X)

    def _normality(self, X: np.ndarray) -> np.ndarray:
        return self.estimator_.score_samples(X)
