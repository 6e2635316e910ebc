"""The "should stay constant" check: metrics that held one value over every training row.

An unused disk reads 0 all along: its columns tell a detector nothing about normal behaviour,
yet any later move away from that value is worth a page. So a metric constant over training
(:func:`constant_metrics`) is taken away from the detector and watched on its own by a
:class:`ConstantGuard`:

* at fit, :meth:`ConstantGuard.scale` sets the scaler of the metric's value column to centre
  the training value with a unit of :data:`~aws_anomaly.scaling.CONSTANT_TOLERANCE`
  ``x (1 + |value|)``, so a scaled value of 1 or more (either sign) is a move;
* the detector sees :meth:`ConstantGuard.blind` of its rows: every column derived from a
  constant metric at 0 (its training value), so it learns nothing from them and is not thrown
  off when they move;
* on scoring, :meth:`ConstantGuard.breaks` measures each constant metric's distance from its
  training value in tolerance units, :meth:`ConstantGuard.lift` raises the score of a row where
  one moved to at least ``1 + log1p(distance - 1)`` (>= 1.0: anomalous whatever the detector
  says, growing slowly so it stays readable), and :meth:`ConstantGuard.shares` explains the row
  by the metrics that moved, in proportion to their distances.

Batch scoring (:meth:`AnomalyModel.score_transformed <aws_anomaly.model.AnomalyModel.
score_transformed>`) and the live path (``AnomalyModel.score_row``) both use these methods, so
the two give the same numbers.

Examples
--------
Metric 1 (``disk``, trained at 0.0) of three; the model's columns are ``cpu``, ``disk`` and a
``disk`` spread column:

>>> guard = ConstantGuard.build({1: 0.0}, ["cpu", "disk", "mem"], columns=[0, 1, 4],
...                             idx_value=[0, 1, 2], groups={"cpu": [0], "disk": [1, 2]})
>>> bool(guard), guard.value_columns.tolist(), guard.columns.tolist()
(True, [1], [1, 2])
>>> Xs = np.array([[0.3, 0.2, 5.0], [0.1, -4.0, 1.0]])
>>> guard.blind(Xs).tolist()
[[0.3, 0.0, 0.0], [0.1, 0.0, 0.0]]
>>> z = guard.breaks(Xs)
>>> guard.moved(z).tolist()
[False, True]
>>> guard.lift(np.array([0.5]), z[1:]).round(3).tolist()
[2.386]
>>> guard.shares(z[1:]).tolist()
[[0.0, 1.0, 0.0]]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from aws_anomaly.scaling import CONSTANT_TOLERANCE, Scaler

if TYPE_CHECKING:
    from aws_anomaly.data import Dataset

__all__ = ["ConstantGuard", "constant_metrics"]


def constant_metrics(ds: Dataset) -> dict[str, float]:
    """Metrics that hold one value over every row of ``ds`` (all entities): metric -> value.

    >>> import pandas as pd
    >>> from aws_anomaly.data import Dataset
    >>> ts = pd.date_range("2026-01-01", periods=3, freq="1h", tz="UTC")
    >>> constant_metrics(Dataset.from_frame(pd.DataFrame(
    ...     {"timestamp": ts, "cpu": [0.1, 0.2, 0.3], "disk": [0.0, 0.0, 0.0]})))
    {'disk': 0.0}
    """
    out = {}
    for m in ds.metrics:
        col = ds.frame[m].to_numpy(dtype=np.float64)
        if col.size and np.ptp(col) == 0.0:
            out[m] = float(col[0])
    return out


@dataclass(frozen=True, eq=False)
class ConstantGuard:
    """The constant-in-training metrics of a fitted model, and what scoring does about them.

    Build it with :meth:`build`; a guard without constant metrics is false and changes
    nothing (:meth:`blind` returns its input).
    """

    #: Positions (among the model's metrics) of the constant metrics, in the model's order
    #: of ``constant_``.
    metrics: tuple[int, ...]
    #: Their training values, in the same order.
    values: np.ndarray
    #: Position (among the model's columns) of each one's value column, in the same order.
    value_columns: np.ndarray
    #: Every model column derived from a constant metric, sorted: what the detector never sees.
    columns: np.ndarray
    #: The number of the model's metrics (the width of :meth:`shares`).
    n_metrics: int

    @classmethod
    def build(cls, constant: Mapping[int, float], metrics: Sequence[str],
              columns: Sequence[int] | np.ndarray, idx_value: Sequence[int] | np.ndarray,
              groups: Mapping[str, Sequence[int]]) -> ConstantGuard:
        """The guard of a model: ``constant`` (metric position -> training value, the model's
        ``constant_``), its ``metrics``, ``columns`` (the spec feature of each model column),
        ``idx_value`` (the spec feature holding each metric's value) and ``groups`` (metric ->
        the model columns derived from it)."""
        # the last position of each constant metric's value column among the model's columns
        pos = {int(c): j for j, c in enumerate(columns)}
        values = [pos[int(idx_value[m])] for m in constant]
        blinded = sorted({c for m in constant for c in groups.get(metrics[m], [])})
        return cls(metrics=tuple(constant), values=np.asarray(list(constant.values()),
                                                                 dtype=np.float64),
                   value_columns=np.asarray(values, dtype=np.int64),
                   columns=np.asarray(blinded, dtype=np.int64), n_metrics=len(metrics))

    def __bool__(self) -> bool:
        return bool(self.metrics)

    def scale(self, scaler: Scaler) -> None:
        """Set the fitted ``scaler``'s unit of each value column (in place): centred on the
        training value, one unit = :data:`CONSTANT_TOLERANCE` x (1 + |value|), so any move
        beyond the tolerance reads >= 1 after scaling."""
        if not self:
            return
        scaler.center_[self.value_columns] = self.values
        scaler.scale_[self.value_columns] = CONSTANT_TOLERANCE * (1.0 + np.abs(self.values))

    def blind(self, Xs: np.ndarray) -> np.ndarray:
        """``Xs`` (scaled rows) with the constant metrics' columns at their training value (0),
        a copy; ``Xs`` itself when there are none."""
        if not self.metrics:
            return Xs
        out = Xs.copy()
        out[:, self.columns] = 0.0
        return out

    def breaks(self, Xs: np.ndarray) -> np.ndarray:
        """(n, n_constant) distance of each constant metric from its training value in the
        scaled rows ``Xs``, in units of the tolerance: >= 1 means it moved."""
        return np.abs(Xs[:, self.value_columns])

    @staticmethod
    def moved(z: np.ndarray) -> np.ndarray:
        """Rows of :meth:`breaks` ``z`` where some constant metric moved."""
        return z.max(axis=1) >= 1.0

    @staticmethod
    def lift(score: np.ndarray | float, z: np.ndarray) -> np.ndarray:
        """``score`` of rows where a constant metric moved (``z``: their :meth:`breaks`),
        raised to at least ``1 + log1p(largest distance - 1)``."""
        return np.maximum(score, 1.0 + np.log1p(z.max(axis=1) - 1.0))

    def shares(self, z: np.ndarray) -> np.ndarray:
        """(n, n_metrics) explanation of rows where a constant metric moved (``z``: their
        :meth:`breaks`): the metrics that moved, each by its share of the distances."""
        zb = np.where(z >= 1.0, z, 0.0)
        share = np.zeros((len(z), self.n_metrics))
        share[:, list(self.metrics)] = zb / zb.sum(axis=1, keepdims=True)
        return share
