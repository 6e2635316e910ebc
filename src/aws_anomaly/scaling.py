"""Scaling of the detector's input: which columns, the log of spreads, centring and units.

* :func:`prepare` — the model's columns of the raw features, with the log of the rolling
  standard deviations (``log(max(std, 0) + floor)``, floors from :func:`fit_log_floor`);
* :class:`Scaler` — per-column centre and unit (robust or standard), clipped to ``clip``;
* :data:`CONSTANT_TOLERANCE` — the unit of a metric that was constant over training, so any
  move from the constant is at least one unit.

Everything works on numpy arrays, on the rows it is given: batch scoring calls it chunk by
chunk, the stream scorer on one row.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np

from aws_anomaly.errors import ConfigError, NotFittedError
from aws_anomaly.features.batch import transpose_into

__all__ = ["CONSTANT_TOLERANCE", "Scaler", "fit_log_floor", "prepare"]

#: Relative tolerance of the "should stay constant" check: a constant metric has moved when it
#: differs from its training value by more than this times (1 + |value|).
CONSTANT_TOLERANCE = 1e-6


@dataclass
class Scaler:
    """Per-feature centring and scaling, fit on training rows only.

    ``robust``: median and IQR / 1.349 (the standard deviation for normal data, but not moved by
    the anomalies the training data may hold); ``standard``: mean and standard deviation. A
    feature with zero spread keeps scale 1 so it cannot produce infinities.

    >>> s = Scaler("robust").fit(np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]]))
    >>> s.transform(np.array([[2.0, 5.0]])).tolist()
    [[0.0, 0.0]]
    """

    kind: str = "robust"
    center_: np.ndarray | None = None
    scale_: np.ndarray | None = None
    clip: float | None = None
    #: Columns exempt from ``clip`` (the level view of ``feature_set="hybrid"``).
    unclipped: tuple[int, ...] = ()

    def fit(self, X: np.ndarray) -> Scaler:
        if self.kind not in ("robust", "standard"):
            raise ConfigError(f"scaler must be 'robust' or 'standard', got {self.kind!r}")
        if self.kind == "robust":
            q1, med, q3 = np.percentile(X, [25, 50, 75], axis=0)
            center, scale = med, (q3 - q1) / 1.349
            # Features that are constant most of the time (flags, counts) have IQR 0; their
            # standard deviation is a better unit than 1.
            std = X.std(axis=0)
            scale = np.where(scale > 1e-12, scale, std)
        else:
            center, scale = X.mean(axis=0), X.std(axis=0)
        self.center_ = np.asarray(center, dtype=np.float64)
        self.scale_ = np.where(scale > 1e-12, scale, 1.0).astype(np.float64)
        return self

    def transform(self, X: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Centred, scaled and clipped ``X`` (into ``out`` when given: ``X``'s shape,
        C-ordered; ``X`` may be any view, a transposed one included)."""
        if self.center_ is None or self.scale_ is None:
            raise NotFittedError("Scaler is not fitted; call fit() first")
        Z = np.subtract(X, self.center_, out=out)
        Z /= self.scale_
        if self.clip is not None:
            # A single feature far out (a rate of change over a near-zero level) must not
            # swamp every other: beyond ``clip`` robust sigmas it counts as "very far", no more.
            # (maximum then minimum: np.clip's numbers without its wrapper's per-call cost,
            # which the live path pays on every point)
            lo, hi = self._bounds(Z.shape[1])
            np.maximum(Z, lo, out=Z)
            np.minimum(Z, hi, out=Z)
        return Z

    def _bounds(self, n: int) -> tuple[np.ndarray | float, np.ndarray | float]:
        """(lower, upper) clip bounds of ``n`` columns (``unclipped`` ones: +-inf), cached."""
        cached = self.__dict__.get("_bound_cache")
        if cached is None or cached[0] != (n, self.clip, self.unclipped):
            if self.unclipped:
                hi = np.full(n, float(self.clip))  # type: ignore[arg-type]
                hi[list(self.unclipped)] = np.inf
                bounds: tuple[np.ndarray | float, np.ndarray | float] = (-hi, hi)
            else:
                bounds = (-float(self.clip), float(self.clip))  # type: ignore[arg-type]
            cached = ((n, self.clip, self.unclipped), bounds)
            self._bound_cache = cached
        return cached[1]

    def transform_columns(self, cols: np.ndarray, out: np.ndarray) -> np.ndarray:
        """:meth:`transform` of ``cols.T`` for a feature-major block ``cols`` (``(features,
        rows)``, row ``i`` the feature ``i``), written row-major into ``out`` (``(rows,
        features)``) and returned; ``cols`` is scaled in place (overwritten).

        The same element-wise operations on the same values, so the same numbers; each runs
        along contiguous rows, then one tiled transposing copy fills ``out`` (:meth:`transform`
        of the transposed view reads with a stride and costs about three times as much: the
        batch scorer builds its features feature-major).
        """
        if self.center_ is None or self.scale_ is None:
            raise NotFittedError("Scaler is not fitted; call fit() first")
        np.subtract(cols, self.center_[:, None], out=cols)
        cols /= self.scale_[:, None]
        if self.clip is not None:
            lo, hi = self._bounds(cols.shape[0])
            if self.unclipped:
                lo, hi = lo[:, None], hi[:, None]  # type: ignore[index]
            np.maximum(cols, lo, out=cols)
            np.minimum(cols, hi, out=cols)
        transpose_into(out, cols)
        return out


def fit_log_floor(X_full: np.ndarray, columns: np.ndarray, std_value: Mapping[int, int],
                  spread_at: Collection[int]) -> np.ndarray:
    """Per-column floors for the log of rolling standard deviations (0 = no log).

    ``X_full``: training rows of every raw feature; ``columns``: the model's columns (raw
    feature positions); ``std_value``: raw std column -> its metric's raw value column;
    ``spread_at``: positions in ``columns`` whose floor is the metric's training standard
    deviation (``log(1 + std / spread)``). Elsewhere the floor is a thousandth of the
    column's typical (median) training value: a flat-lined metric has std 0, and the log turns
    "much quieter than usual" into a deviation as large as "much noisier than usual"; the
    floor keeps it finite.
    """
    floor = np.zeros(len(columns))
    stds = [j for j, c in enumerate(columns) if int(c) in std_value]
    for j in stds:
        if j in spread_at:
            spread = float(np.std(X_full[:, std_value[int(columns[j])]]))
            floor[j] = max(spread, 1e-12)
    for j in stds:
        if j not in spread_at:
            typical = float(np.median(X_full[:, columns[j]]))
            floor[j] = max(typical * 1e-3, 1e-12)
    return floor


def prepare(X_full: np.ndarray, columns: np.ndarray, log_floor: np.ndarray,
            log_columns: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The model's ``columns`` of the raw features ``X_full``, spreads at ``log_columns``
    (positions in ``columns``) as ``log(max(x, 0) + floor)``; into ``out`` when given."""
    # np.take copies the columns several times faster than X_full[:, columns].
    X = np.take(X_full, columns, axis=1, out=out)
    if log_columns.size:
        X[:, log_columns] = np.log(np.maximum(np.take(X, log_columns, axis=1), 0.0)
                                   + log_floor[log_columns])
    return X
