"""Simple multivariate baselines for the real-server bench (:mod:`.servers_bench`).

Recent studies of multivariate server-metric benchmarks (SMD, ASD and similar) find that simple
detectors on the raw metrics are hard to beat; the bench runs them next to the product so every
figure has a yardstick. Each baseline here:

* works on the raw metrics, standardised with the mean and standard deviation of its fitting
  rows. A metric that is constant (or nearly) in training gets a **standard-deviation floor**
  of ``STD_FLOOR_RATIO`` (0.1) times the median of the non-zero training standard deviations,
  so a change away from the constant scores high (ten typical deviations for a move of one
  typical deviation) and nothing is ever divided by zero: scores stay finite;
* scores one row at a time from that row's values only, so scoring is causal by construction
  (the ``history`` argument of :meth:`Baseline.score` is accepted and not needed);
* sets its own, label-free threshold by **one rule shared by every baseline**: the rows are
  split in time; the first ``1 - HOLDOUT_SHARE`` (80 %) are used for fitting (scaler and
  detector), the last ``HOLDOUT_SHARE`` (20 %) are held back and scored out-of-fit, and the
  threshold is the lowest score that flags at most ``TARGET_FPR`` (1 %) of those held-back rows
  (:func:`aws_anomaly.calibration.threshold_for_fraction`, the rule the product's own
  ``fpr:0.01`` calibration uses). A row is flagged when its score is ``>=`` the threshold. The
  detector that scores the test rows is the one fit on the first 80 %, so the threshold and the
  scores come from the same fit.

The detectors (higher score = more anomalous):

``knn``
    Mean Euclidean distance to the ``k`` nearest fitting rows (``k = 1``: the 1-nearest-neighbour
    distance), scikit-learn ``NearestNeighbors``; at most ``max_fit_rows`` (20,000) fitting
    rows, a seeded uniform subsample when there are more.
``pca``
    Squared reconstruction error after projecting on the principal components that explain
    ``variance`` (default 95 %) of the fitting rows' variance.
``iforest``
    scikit-learn ``IsolationForest`` (100 trees, seeded), score ``-score_samples``. Its trees
    cannot split on a metric that was constant in training, so it does not see that metric
    move later.
``max_z``
    The largest absolute z-score over the metrics.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> train = rng.normal(size=(500, 3))
>>> det = MaxZBaseline().fit(train)
>>> scores, flags = det.score(np.array([[0.0, 0.0, 0.0], [0.0, 9.0, 0.0]]))
>>> flags.tolist()
[False, True]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from aws_anomaly.calibration import threshold_for_fraction
from aws_anomaly.data import LABEL_COLUMNS, Dataset
from aws_anomaly.errors import ConfigError, DataError, NotFittedError, show

__all__ = [
    "HOLDOUT_SHARE",
    "STD_FLOOR_RATIO",
    "TARGET_FPR",
    "Baseline",
    "IForestBaseline",
    "KnnBaseline",
    "MaxZBaseline",
    "PcaBaseline",
    "StdScaler",
    "as_matrix",
]

#: Share of the training rows (the most recent ones) held back from fitting to set thresholds.
HOLDOUT_SHARE = 0.2
#: Share of the held-back training rows a baseline's own threshold may flag.
TARGET_FPR = 0.01
#: Standard-deviation floor, as a multiple of the median non-zero training standard deviation.
STD_FLOOR_RATIO = 0.1


def as_matrix(data: Any, metrics: Sequence[str] | None = None,
              where: str = "data") -> tuple[np.ndarray, tuple[str, ...]]:
    """``(values, metric names)`` of a :class:`Dataset`, a wide frame or a 2-D array.

    Frames: the ``metrics`` columns when given, else every numeric column other than
    ``timestamp``, ``entity`` and the label columns (labels never reach a detector). Arrays:
    columns are named ``x0, x1, ...``. Values must be finite.
    """
    if isinstance(data, Dataset):
        frame: pd.DataFrame | None = data.frame
        names = tuple(data.metrics)
    elif isinstance(data, pd.DataFrame):
        frame = data
        names = tuple(c for c in data.columns
                      if c not in ("timestamp", "entity", *LABEL_COLUMNS)
                      and pd.api.types.is_numeric_dtype(data[c])
                      and not pd.api.types.is_bool_dtype(data[c]))
    elif isinstance(data, np.ndarray):
        frame = None
        if data.ndim != 2:
            raise DataError(f"{where}: expected a 2-D array (rows x metrics), got shape "
                            f"{data.shape}")
        names = tuple(f"x{j}" for j in range(data.shape[1]))
    else:
        raise DataError(f"{where}: expected a Dataset, a DataFrame or a 2-D array, got "
                        f"{type(data).__name__}")
    if metrics is not None:
        missing = [m for m in metrics if m not in names]
        if missing:
            raise DataError(f"{where}: missing metric(s) {missing}; the detector was fit on "
                            f"{list(metrics)}")
        names = tuple(metrics)
    if frame is not None:
        X = frame[list(names)].to_numpy(dtype=np.float64)
    else:
        X = np.asarray(data, dtype=np.float64)
    if X.shape[1] == 0:
        raise DataError(f"{where}: no metric columns")
    bad = ~np.isfinite(X)
    if bad.any():
        row, col = (int(v[0]) for v in np.nonzero(bad))
        raise DataError(f"{where}: metric '{names[col]}' is not finite at row {row} "
                        f"({show(X[row, col])})")
    return X, names


class StdScaler:
    """Mean / standard-deviation scaling with a floor on the standard deviation.

    The floor is ``STD_FLOOR_RATIO`` times the median of the non-zero standard deviations (1.0
    when every metric is constant), so constant metrics map to 0 in training and a later
    change of them to a large, finite z-score.

    >>> s = StdScaler().fit(np.array([[0.0, 5.0], [2.0, 5.0]]))
    >>> s.scale_.tolist()
    [1.0, 0.1]
    >>> s.transform(np.array([[1.0, 6.0]])).tolist()
    [[0.0, 10.0]]
    """

    def __init__(self, floor_ratio: float = STD_FLOOR_RATIO) -> None:
        if not floor_ratio > 0:
            raise ConfigError(f"floor_ratio must be > 0, got {floor_ratio!r}")
        self.floor_ratio = float(floor_ratio)

    def fit(self, X: np.ndarray) -> StdScaler:
        self.mean_ = X.mean(axis=0)
        std = X.std(axis=0)
        positive = std[std > 1e-12]
        self.floor_ = float(self.floor_ratio * np.median(positive)) if positive.size else 1.0
        self.scale_ = np.maximum(std, self.floor_)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "scale_"):
            raise NotFittedError("StdScaler is not fitted; call fit() first")
        return (X - self.mean_) / self.scale_


class Baseline:
    """Shared fit / threshold / score logic; subclasses implement ``_fit`` and ``_score``.

    ``fit(train)`` takes a :class:`Dataset`, a wide frame or an array (rows in time order);
    ``score(test, history=None)`` returns ``(scores, flags)``, one per test row.
    """

    name = "baseline"

    def __init__(self, *, holdout_share: float = HOLDOUT_SHARE, target_fpr: float = TARGET_FPR,
                 std_floor_ratio: float = STD_FLOOR_RATIO, seed: int = 0) -> None:
        if not 0.0 < holdout_share < 1.0:
            raise ConfigError(f"{self.name}: holdout_share must be in (0, 1), got "
                              f"{holdout_share!r}")
        if not 0.0 < target_fpr < 0.5:
            raise ConfigError(f"{self.name}: target_fpr must be in (0, 0.5), got {target_fpr!r}")
        self.holdout_share = float(holdout_share)
        self.target_fpr = float(target_fpr)
        self.std_floor_ratio = float(std_floor_ratio)
        self.seed = int(seed)

    # subclasses -----------------------------------------------------------------------------
    def _fit(self, Z: np.ndarray) -> None:
        raise NotImplementedError

    def _score(self, Z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # contract -------------------------------------------------------------------------------
    def fit(self, train: Any) -> Baseline:
        """Fit on the first ``1 - holdout_share`` of ``train``; threshold on the rest."""
        X, names = as_matrix(train, where=f"{self.name}: training data")
        n_hold = math.ceil(self.holdout_share * len(X))
        n_fit = len(X) - n_hold
        if n_fit < 10 or n_hold < 10:
            raise DataError(f"{self.name}: training data has {len(X)} rows; need at least 10 to "
                            f"fit and 10 to hold back ({self.holdout_share:.0%}) for the "
                            "threshold")
        self.metrics_ = names
        self.scaler_ = StdScaler(self.std_floor_ratio).fit(X[:n_fit])
        self._fit(self.scaler_.transform(X[:n_fit]))
        held = self._checked(self._score(self.scaler_.transform(X[n_fit:])), n_hold, "held-back")
        self.threshold_ = threshold_for_fraction(held, self.target_fpr)
        self.fit_rows_, self.holdout_rows_ = n_fit, n_hold
        return self

    def score(self, test: Any, history: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, flags)`` of every row of ``test``; flags are ``scores >= threshold_``."""
        if not hasattr(self, "threshold_"):
            raise NotFittedError(f"{self.name} is not fitted; call fit() first")
        X, _ = as_matrix(test, self.metrics_, where=f"{self.name}: scoring data")
        s = self._checked(self._score(self.scaler_.transform(X)), len(X), "scoring")
        return s, s >= self.threshold_

    def _checked(self, s: np.ndarray, n: int, what: str) -> np.ndarray:
        s = np.asarray(s, dtype=np.float64).reshape(-1)
        if s.shape != (n,) or not np.isfinite(s).all():
            raise DataError(f"{self.name}: {what} scores are not {n} finite numbers")
        return s

    def get_params(self) -> dict[str, Any]:
        return {"holdout_share": self.holdout_share, "target_fpr": self.target_fpr,
                "std_floor_ratio": self.std_floor_ratio, "seed": self.seed}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


class KnnBaseline(Baseline):
    """Mean distance to the ``k`` nearest fitting rows (k = 1: nearest-neighbour distance)."""

    name = "knn"

    def __init__(self, k: int = 1, max_fit_rows: int = 20_000, **kw: Any) -> None:
        super().__init__(**kw)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"knn: k must be an integer >= 1, got {k!r}")
        if max_fit_rows < 10:
            raise ConfigError(f"knn: max_fit_rows must be >= 10, got {max_fit_rows!r}")
        self.k = int(k)
        self.max_fit_rows = int(max_fit_rows)

    def _fit(self, Z: np.ndarray) -> None:
        from sklearn.neighbors import NearestNeighbors

        if len(Z) > self.max_fit_rows:
            rng = np.random.default_rng(self.seed)
            Z = Z[np.sort(rng.choice(len(Z), self.max_fit_rows, replace=False))]
        if len(Z) < self.k:
            raise DataError(f"knn: {len(Z)} fitting rows, fewer than k={self.k}")
        # Brute force: exact, and faster than trees in 20-40 dimensions.
        self.nn_ = NearestNeighbors(n_neighbors=self.k, algorithm="brute").fit(Z)

    def _score(self, Z: np.ndarray) -> np.ndarray:
        dist, _ = self.nn_.kneighbors(Z, n_neighbors=self.k)
        return dist.mean(axis=1)

    def get_params(self) -> dict[str, Any]:
        return {"k": self.k, "max_fit_rows": self.max_fit_rows, **super().get_params()}


class PcaBaseline(Baseline):
    """Squared reconstruction error on the components explaining ``variance`` of the variance."""

    name = "pca"

    def __init__(self, variance: float = 0.95, **kw: Any) -> None:
        super().__init__(**kw)
        if not 0.0 < variance < 1.0:
            raise ConfigError(f"pca: variance must be in (0, 1), got {variance!r}")
        self.variance = float(variance)

    def _fit(self, Z: np.ndarray) -> None:
        self.center_ = Z.mean(axis=0)
        _, sv, vt = np.linalg.svd(Z - self.center_, full_matrices=False)
        var = sv ** 2
        total = float(var.sum())
        if total <= 0.0:  # every metric constant: the error is the distance to the centre
            k = 0
        else:
            # The fewest components whose cumulative share reaches ``variance``.
            share = np.cumsum(var) / total
            k = int(np.searchsorted(share, self.variance - 1e-12) + 1)
        self.n_components_ = min(k, vt.shape[0])
        self.components_ = vt[: self.n_components_]

    def _score(self, Z: np.ndarray) -> np.ndarray:
        C = Z - self.center_
        resid = C - (C @ self.components_.T) @ self.components_
        return np.einsum("ij,ij->i", resid, resid)

    def get_params(self) -> dict[str, Any]:
        return {"variance": self.variance, **super().get_params()}


class IForestBaseline(Baseline):
    """scikit-learn Isolation Forest; score ``-score_samples`` (higher = more anomalous)."""

    name = "iforest"

    def __init__(self, n_estimators: int = 100, **kw: Any) -> None:
        super().__init__(**kw)
        if n_estimators < 1:
            raise ConfigError(f"iforest: n_estimators must be >= 1, got {n_estimators!r}")
        self.n_estimators = int(n_estimators)

    def _fit(self, Z: np.ndarray) -> None:
        from sklearn.ensemble import IsolationForest

        self.forest_ = IsolationForest(n_estimators=self.n_estimators, random_state=self.seed,
                                       n_jobs=1).fit(Z)

    def _score(self, Z: np.ndarray) -> np.ndarray:
        return -self.forest_.score_samples(Z)

    def get_params(self) -> dict[str, Any]:
        return {"n_estimators": self.n_estimators, **super().get_params()}


class MaxZBaseline(Baseline):
    """The largest absolute z-score over the metrics."""

    name = "max_z"

    def _fit(self, Z: np.ndarray) -> None:
        pass  # the scaler is the whole model

    def _score(self, Z: np.ndarray) -> np.ndarray:
        return np.abs(Z).max(axis=1)
