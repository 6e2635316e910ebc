"""Local Outlier Factor (novelty mode) on a bounded training sample."""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import LocalOutlierFactor

from aws_anomaly.detectors.base import (
    SklearnAdapter,
    check_int_param,
    check_n_jobs_param,
    check_random_state_param,
    seed_from,
    subsample_rows,
)
from aws_anomaly.errors import DataError

__all__ = ["LOFDetector"]


class LOFDetector(SklearnAdapter):
    """Local Outlier Factor with ``novelty=True``; the raw score is the LOF itself (>= ~1).

    Scoring a row means a nearest-neighbour search over the stored training rows, so its cost
    grows with the training size: at most ``max_samples`` rows (a uniform random subsample) are
    kept. The training scores that set ``offset_`` are the leave-one-out LOFs of those rows
    (scikit-learn's ``negative_outlier_factor_``), not their novelty scores, which would count
    each row as its own neighbour.

    Parameters
    ----------
    n_neighbors
        Neighbours per row (capped at the number of training rows - 1).
    max_samples
        Training rows kept at most; ``None`` keeps all.
    contamination
        Fraction of training rows that ``predict`` calls anomalous (sets ``offset_``).
    n_jobs
        Parallel jobs for the neighbour search (scikit-learn's meaning).
    random_state
        Seed for the subsample.

    Attributes
    ----------
    estimator_ : sklearn.neighbors.LocalOutlierFactor
    offset_ : float

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 3))
    >>> det = LOFDetector(random_state=0).fit(X)
    >>> det.predict(np.array([[0.0, 0.0, 0.0], [6.0, -6.0, 6.0]])).tolist()
    [1, -1]
    """

    def __init__(self, *, n_neighbors: int = 20, max_samples: int | None = 2000,
                 contamination: float = 0.01, n_jobs: int | None = None,
                 random_state: int | np.random.RandomState | None = None) -> None:
        self.n_neighbors = n_neighbors
        self.max_samples = max_samples
        self.contamination = contamination
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _check_params(self) -> None:
        owner = type(self).__name__
        check_int_param(owner, "n_neighbors", self.n_neighbors, low=1)
        check_int_param(owner, "max_samples", self.max_samples, low=2, allow_none=True)
        check_n_jobs_param(owner, self.n_jobs)
        check_random_state_param(owner, self.random_state)

    def _fit_normality(self, X: np.ndarray) -> np.ndarray:
        if X.shape[0] < 2:
            raise DataError(f"{type(self).__name__}.fit: X has 1 sample; LOF needs at least 2 "
                            "training rows")
        Xs = subsample_rows(X, self.max_samples, seed_from(self.random_state))
        self.estimator_ = LocalOutlierFactor(
            n_neighbors=min(self.n_neighbors, Xs.shape[0] - 1), novelty=True, n_jobs=self.n_jobs,
        ).fit(Xs)
        return self.estimator_.negative_outlier_factor_

    def _normality(self, X: np.ndarray) -> np.ndarray:
        return self.estimator_.score_samples(X)
