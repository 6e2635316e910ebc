"""An ensemble that averages its members' robustly standardised scores.

Raw scores of different detectors live on different scales (an SVM's kernel sum, an isolation
depth, a LOF ratio, robust sigmas), so each member's score is first standardised with the median
and the inter-quartile range of its scores on the training rows; the ensemble score is the mean
of those. Median/IQR rather than mean/std because the training scores are skewed and may hold a
few anomalies; rank averaging was rejected because it saturates: every row beyond the most
anomalous training row would get the same top rank, which flattens exactly the tail we alert on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aws_anomaly.detectors.base import BaseDetector, check_random_state_param, seed_from
from aws_anomaly.detectors.iforest import IsolationForestDetector
from aws_anomaly.detectors.lof import LOFDetector
from aws_anomaly.detectors.ocsvm import OneClassSVMDetector
from aws_anomaly.detectors.robust import RobustZDetector
from aws_anomaly.errors import ConfigError

__all__ = ["MEMBER_TYPES", "EnsembleDetector"]

MEMBER_TYPES: dict[str, type[BaseDetector]] = {
    "ocsvm": OneClassSVMDetector,
    "iforest": IsolationForestDetector,
    "lof": LOFDetector,
    "robust": RobustZDetector,
}


class EnsembleDetector(BaseDetector):
    """Mean of the members' scores, each standardised by its training median and IQR.

    Parameters
    ----------
    members
        Registry names of the member detectors (each at most once).
    member_params
        Hyperparameters per member name, e.g. ``{"ocsvm": {"nu": 0.1}}``.
    contamination
        Fraction of training rows that ``predict`` calls anomalous (sets ``offset_``).
    random_state
        Seed; each member that takes a ``random_state`` and has none in ``member_params`` gets
        one drawn from it.

    Attributes
    ----------
    detectors_ : list of BaseDetector
        The fitted members, in ``members`` order.
    centers_, scales_ : ndarray (n_members,)
        Median and IQR of each member's training scores.
    offset_ : float

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(400, 3))
    >>> det = EnsembleDetector(members=("iforest", "robust"), random_state=0).fit(X)
    >>> det.predict(np.array([[0.0, 0.0, 0.0], [6.0, -6.0, 6.0]])).tolist()
    [1, -1]
    """

    def __init__(self, *, members: tuple[str, ...] = ("ocsvm", "iforest", "robust"),
                 member_params: dict[str, dict[str, Any]] | None = None,
                 contamination: float = 0.01,
                 random_state: int | np.random.RandomState | None = None) -> None:
        self.members = members
        self.member_params = member_params
        self.contamination = contamination
        self.random_state = random_state

    def _check_params(self) -> None:
        owner = type(self).__name__
        allowed = ", ".join(repr(n) for n in MEMBER_TYPES)
        if isinstance(self.members, str) or not self.members:
            raise ConfigError(f"{owner}: members={self.members!r} is not allowed; use a "
                              f"non-empty tuple of names from {allowed}")
        unknown = [m for m in self.members if m not in MEMBER_TYPES]
        if unknown or len(set(self.members)) != len(self.members):
            raise ConfigError(f"{owner}: members={self.members!r} is not allowed; use distinct "
                              f"names from {allowed}")
        params = self.member_params or {}
        if not isinstance(params, dict) or not set(params) <= set(self.members):
            raise ConfigError(f"{owner}: member_params={self.member_params!r} is not allowed; "
                              "use a dict keyed by names listed in members")
        check_random_state_param(owner, self.random_state)

    def _fit(self, X: np.ndarray) -> np.ndarray:
        rng = np.random.RandomState(seed_from(self.random_state))
        params = self.member_params or {}
        self.detectors_: list[BaseDetector] = []
        centers, scales, standardised = [], [], []
        for name in self.members:
            kwargs = dict(params.get(name, {}))
            cls = MEMBER_TYPES[name]
            if "random_state" in cls().get_params() and "random_state" not in kwargs:
                kwargs["random_state"] = int(rng.randint(2**31 - 1))
            try:
                det = cls(**kwargs)
            except TypeError as exc:
                raise ConfigError(f"{type(self).__name__}: member_params[{name!r}] has an "
                                  f"unknown parameter ({exc})") from None
            own = det._fit_and_score(X, where=f"{type(self).__name__}.fit[{name}]")
            # Each member is standardised by the scores of the rows it trained on; a member
            # that trains on a subsample (LOF) returns fewer scores than X has rows, so the
            # ensemble's own training scores need that member's score of every row.
            q25, q50, q75 = np.quantile(own, [0.25, 0.5, 0.75])
            scale = q75 - q25
            if scale <= 0:  # an IQR of 0 (mostly tied scores): the std, then 1.0
                scale = own.std()
            scale = scale if scale > 0 else 1.0
            rows = own if own.shape[0] == X.shape[0] else det._score(X)
            centers.append(q50)
            scales.append(scale)
            standardised.append((rows - q50) / scale)
            self.detectors_.append(det)
        self.centers_ = np.asarray(centers, dtype=np.float64)
        self.scales_ = np.asarray(scales, dtype=np.float64)
        return np.mean(standardised, axis=0)

    def _score(self, X: np.ndarray) -> np.ndarray:
        total = np.zeros(X.shape[0])
        for det, center, scale in zip(self.detectors_, self.centers_, self.scales_, strict=True):
            total += (det._score(X) - center) / scale
        return total / len(self.detectors_)
