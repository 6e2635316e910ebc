"""Robust z-score baseline: per-column median and MAD, aggregated over the most deviant columns.

This detector is time-agnostic on purpose. "Seasonal-aware" comes from the feature layer, which
supplies seasonal-difference and rolling-baseline z-score columns; this detector only asks how
far each column is from its training median, in robust standard deviations.

**Scale per column.** ``1.4826 * MAD`` (consistent with the standard deviation for Gaussian
data). A column whose MAD is 0 (more than half the training rows share one value: one-hot
calendar features, counters that are mostly idle) uses its standard deviation instead, so a
rare-but-seen value gives a moderate z rather than an infinite one. Every scale is then floored
at ``min_scale``, so a column that was constant in training gives a large but finite z when it
changes (with standardised features, 1e-3 means "a change of one training std is 1000 robust
sigmas": it dominates, as a never-seen change should, without overflowing).

**Aggregate per row.** The mean of the ``q = ceil(top_fraction * n_features)`` largest ``|z|``.
The plain mean over ~100 columns would dilute a spike in one metric's few features; the plain
max is noisy (with 100 columns some |z| is always ~3). The mean of the top few is in between and
stays in robust-sigma units, so scores are readable ("the 6 most deviant features are on
average 7 sigmas out").
"""

from __future__ import annotations

import math

import numpy as np

from aws_anomaly.detectors.base import (
    BaseDetector,
    check_float_param,
    check_n_jobs_param,
    map_chunks,
)

__all__ = ["MAD_TO_STD", "RobustZDetector"]

MAD_TO_STD = 1.4826  # 1 / Phi^-1(3/4): MAD * this estimates the std of Gaussian data


class RobustZDetector(BaseDetector):
    """Median/MAD z-scores per column; score = mean of the top ``top_fraction`` of ``|z|``.

    Parameters
    ----------
    top_fraction
        Fraction of the columns averaged per row, in (0, 1]; at least one column is used
        (``1/n_features`` or less means "the max").
    min_scale
        Floor of every column's scale (see the module docstring).
    contamination
        Fraction of training rows that ``predict`` calls anomalous (sets ``offset_``).
    n_jobs
        Threads used to score large inputs (``None`` = 1, ``-1`` = all cores).

    Attributes
    ----------
    center_ : ndarray (n_features,)
        Training medians.
    scale_ : ndarray (n_features,)
        Robust scales after the fallbacks and the floor.
    n_top_ : int
        Columns averaged per row.
    offset_ : float

    Examples
    --------
    >>> X = np.array([[0.0, 10.0], [1.0, 10.0], [2.0, 11.0], [1.0, 9.0], [1.0, 10.0]])
    >>> det = RobustZDetector(top_fraction=0.5).fit(X)
    >>> det.center_.tolist()  # both MADs are 0, so the scales fall back to the std
    [1.0, 10.0]
    >>> det.scale_.round(4).tolist()
    [0.6325, 0.6325]
    >>> det.score_samples(np.array([[1.0, 10.0], [1.0, 17.0]])).round(2).tolist()
    [0.0, 11.07]
    """

    def __init__(self, *, top_fraction: float = 0.05, min_scale: float = 1e-3,
                 contamination: float = 0.01, n_jobs: int | None = -1) -> None:
        self.top_fraction = top_fraction
        self.min_scale = min_scale
        self.contamination = contamination
        self.n_jobs = n_jobs

    def _check_params(self) -> None:
        owner = type(self).__name__
        check_float_param(owner, "top_fraction", self.top_fraction, low=0.0, high=1.0)
        check_float_param(owner, "min_scale", self.min_scale, low=0.0, high=np.inf,
                          high_open=True)
        check_n_jobs_param(owner, self.n_jobs)

    def _fit(self, X: np.ndarray) -> np.ndarray:
        self.center_ = np.median(X, axis=0)
        scale = MAD_TO_STD * np.median(np.abs(X - self.center_), axis=0)
        no_mad = scale <= 0
        if no_mad.any():
            scale[no_mad] = X[:, no_mad].std(axis=0)
        self.scale_ = np.maximum(scale, self.min_scale)
        k = X.shape[1]
        self.n_top_ = min(k, max(1, math.ceil(self.top_fraction * k - 1e-9)))
        return self._score(X)

    def _score(self, X: np.ndarray) -> np.ndarray:
        k, q = self.n_features_in_, self.n_top_
        inv_scale = 1.0 / self.scale_

        def chunk(xc: np.ndarray) -> np.ndarray:
            z = xc - self.center_
            z *= inv_scale
            np.abs(z, out=z)
            if q == 1:
                return z.max(axis=1)
            if q == k:
                return z.mean(axis=1)
            return np.partition(z, k - q, axis=1)[:, k - q:].mean(axis=1)

        return map_chunks(chunk, X, n_jobs=self.n_jobs)
