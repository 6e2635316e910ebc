"""Supervised: gradient-boosted trees that learn from labelled anomalies.

Every other detector learns what normal looks like and nothing else. When the history holds
labelled incidents (a labelled dataset, the demo, or the anomalies users confirmed), those
labels say what *this* system's anomalies look like: a slow leak in one metric while the
others hold, a correlation that breaks, a level that stays shifted. Those are exactly the
anomalies a distance to normal rows ranks low, because each feature stays inside its usual
range. This detector fits scikit-learn's ``HistGradientBoostingClassifier`` to the feature
rows, normal (0) against labelled anomalous (1), and scores a row by the log-odds that it is
anomalous (higher = more anomalous, as every detector).

It is the one detector that needs labels: ``fit(X)`` without ``y``, or with fewer than
:data:`MIN_ANOMALOUS_ROWS` anomalous rows, raises :class:`~aws_anomaly.errors.DataError`.
:class:`~aws_anomaly.model.AnomalyModel` hands it the labelled rows it leaves out of every
other detector's training (``exclude_labelled``), so it is used as any other detector is:
``train --detector supervised`` on labelled data, and ``--detector auto`` compares it with the
others on rolling folds when the training history holds labelled anomalies. It cannot find a
kind of anomaly it was never shown; the label-free detectors can.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(400, 3))
>>> y = np.zeros(400, dtype=bool)
>>> X[:40, 0] += 2.5  # the anomalies: one column shifted
>>> y[:40] = True
>>> det = SupervisedDetector(max_iter=50, random_state=0).fit(X, y)
>>> s = det.score_samples(np.array([[0.0, 0.0, 0.0], [2.5, 0.0, 0.0]]))
>>> bool(s[1] > s[0])
True
>>> SupervisedDetector().fit(X)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
aws_anomaly.errors.DataError: SupervisedDetector.fit: needs labels (y: 1 = anomalous) ...
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from aws_anomaly.detectors.base import (
    BaseDetector,
    check_float_param,
    check_int_param,
    check_random_state_param,
    seed_from,
    subsample_index,
)
from aws_anomaly.errors import DataError

__all__ = ["MIN_ANOMALOUS_ROWS", "SupervisedDetector"]

#: Fewest labelled anomalous rows to learn from: below it the trees learn the noise of a
#: handful of rows.
MIN_ANOMALOUS_ROWS = 10


class SupervisedDetector(BaseDetector):
    """Gradient-boosted trees on labelled rows; the raw score is the log-odds of "anomalous".

    Parameters
    ----------
    max_iter
        Boosting iterations (trees).
    learning_rate
        Shrinkage of each tree's contribution, in (0, 1].
    max_rows_per_class
        Rows of each class (normal, anomalous) it learns from at most: a seeded uniform
        subsample of a class above it. The fit's cost grows with the rows; on 500,000 rows
        (benchmarks/train_scale.py) the cap keeps ``train --detector auto`` within a minute.
    max_leaf_nodes
        Leaves per tree (>= 2).
    min_samples_leaf
        Fewest rows in a leaf (>= 1).
    l2_regularization
        L2 penalty on the leaf values (>= 0).
    contamination
        Fraction of the *normal* training rows that ``predict`` calls anomalous (sets
        ``offset_``: the anomalous rows were labelled, so they do not set it).
    random_state
        Seed (the trees are grown without a random validation split, so a seed only matters
        for ties).

    Attributes
    ----------
    estimator_ : sklearn.ensemble.HistGradientBoostingClassifier
    offset_ : float
    """

    requires_labels = True  # fit needs y (BaseDetector.requires_labels)

    def __init__(self, *, max_iter: int = 300, learning_rate: float = 0.05,
                 max_rows_per_class: int | None = 20_000,
                 max_leaf_nodes: int = 31, min_samples_leaf: int = 20,
                 l2_regularization: float = 0.0, contamination: float = 0.01,
                 random_state: int | np.random.RandomState | None = None) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_rows_per_class = max_rows_per_class
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.contamination = contamination
        self.random_state = random_state

    def _check_params(self) -> None:
        owner = type(self).__name__
        check_int_param(owner, "max_iter", self.max_iter, low=1)
        check_float_param(owner, "learning_rate", self.learning_rate, low=0.0, high=1.0)
        check_int_param(owner, "max_rows_per_class", self.max_rows_per_class,
                        low=MIN_ANOMALOUS_ROWS, allow_none=True)
        check_int_param(owner, "max_leaf_nodes", self.max_leaf_nodes, low=2)
        check_int_param(owner, "min_samples_leaf", self.min_samples_leaf, low=1)
        check_float_param(owner, "l2_regularization", self.l2_regularization, low=0.0,
                          high=1e12, low_open=False)
        check_random_state_param(owner, self.random_state)

    def fit(self, X: Any, y: Any = None) -> SupervisedDetector:
        """Learn normal (``y`` 0 / False) against anomalous (1 / True) rows of ``X``.

        Raises
        ------
        DataError
            ``y`` is missing, not one 0/1 value per row, or holds fewer than
            :data:`MIN_ANOMALOUS_ROWS` anomalous or normal rows.
        """
        where = f"{type(self).__name__}.fit"
        if y is None:
            raise DataError(f"{where}: needs labels (y: 1 = anomalous) of the training rows; "
                            "it learns what the labelled anomalies look like")
        owner = type(self).__name__
        check_float_param(owner, "contamination", self.contamination, low=0.0, high=0.5)
        self._check_params()
        arr = self._validate(X, method="fit", reset=True)
        labels = np.asarray(y)
        if labels.shape != (arr.shape[0],) or not np.isin(labels, (0, 1)).all():
            raise DataError(f"{where}: y must hold one label per row of X, 0 (normal) or 1 "
                            f"(anomalous); got shape {labels.shape} for {arr.shape[0]} rows")
        labels = labels.astype(bool)
        n_anomalous = int(labels.sum())
        if min(n_anomalous, int((~labels).sum())) < MIN_ANOMALOUS_ROWS:
            raise DataError(f"{where}: {n_anomalous} of {len(labels)} training rows are "
                            f"labelled anomalous; it needs at least {MIN_ANOMALOUS_ROWS} "
                            "anomalous and as many normal rows to learn from")
        seed = seed_from(self.random_state)
        cap = self.max_rows_per_class
        if cap is not None and max(n_anomalous, len(labels) - n_anomalous) > cap:
            parts = []
            for cls in (False, True):
                rows = np.flatnonzero(labels == cls)
                pick = subsample_index(len(rows), cap, seed)
                parts.append(rows if pick is None else rows[pick])
            keep = np.sort(np.concatenate(parts))
            arr, labels = arr[keep], labels[keep]
        self.estimator_ = HistGradientBoostingClassifier(
            max_iter=self.max_iter, learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes, min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization, early_stopping=False,
            random_state=seed).fit(arr, labels)
        normal = self._score(arr[~labels])
        self.offset_ = float(np.quantile(normal, 1.0 - self.contamination))
        return self

    def _fit(self, X: np.ndarray) -> np.ndarray:
        raise DataError(f"{type(self).__name__}.fit: needs labels (y: 1 = anomalous)")

    def _score(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.estimator_.decision_function(X), dtype=np.float64)
