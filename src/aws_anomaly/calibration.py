"""Raw detector score -> calibrated ``anomaly_score`` where 1.0 is the alert threshold.

Every detector's raw score means "higher = more anomalous", but each on its own scale. A
:class:`Calibrator` learns, on a validation split, a threshold ``threshold_`` and a reference
level ``center_`` (the median raw score of normal points), and maps raw scores linearly so that
``center_ -> 0`` and ``threshold_ -> 1``::

    anomaly_score = max(0, 1 + (raw - threshold_) / (threshold_ - center_))

clamped so that ``anomaly_score >= 1.0`` holds *exactly* when ``raw >= threshold_`` (floating
point could otherwise round a raw score just below the threshold up to 1.0), and capped at the
largest finite float, so it is never NaN or inf. The map is monotone
non-decreasing, is 0 for anything at or below the typical normal score, and reads as "how far
above normal, in units of the threshold's distance": 2.0 is twice as far out as the threshold.
Alert rules, dashboards and the API rely on this one meaning for every model.

Threshold methods
-----------------
``"best_f1"``
    The threshold (among the distinct fitting scores) with the best F1 on labelled data; ties
    go to the higher threshold (fewer false positives). Needs ``y``.
``"target_fpr"``
    The lowest threshold that flags at most ``target_fpr`` of the normal points (``y == 0``
    when ``y`` is given, else all points): the realised false-positive rate on the fitting data
    never exceeds the target, ties included.
``"contamination"``
    The same rule on all points with ``contamination`` as the fraction: no labels needed.
``"pot"``
    Peaks over threshold (extreme-value theory, as SPOT: Siffer et al., KDD 2017): the scores
    above their ``pot_level`` quantile are fitted with a generalised Pareto distribution and the
    threshold is the score exceeded with probability ``risk``. Needs no labels, and unlike an
    empirical quantile it extrapolates past the largest fitting score, so a small ``risk``
    (1e-3: about one point in a thousand) stays meaningful on a few thousand scores. Labels,
    when given, keep the fit on the normal points. Too few excesses (fewer than
    ``POT_MIN_EXCESSES``) or a failed fit fall back to the empirical ``1 - risk`` quantile and
    say so in ``fallback_``.

Degenerate fitting data fall back to ``target_fpr`` and say why in ``fallback_``: ``best_f1``
with no anomalies in ``y``, with all scores equal, or when the best-F1 threshold is not above the
median normal score (the scores do not separate the classes).

Examples
--------
>>> import numpy as np
>>> raw = np.array([0.1, 0.2, 0.2, 0.3, 0.4, 2.0, 3.0])
>>> y = np.array([0, 0, 0, 0, 0, 1, 1])
>>> cal = Calibrator(method="best_f1").fit(raw, y)
>>> cal.threshold_, cal.center_
(2.0, 0.2)
>>> cal.transform(np.array([0.0, 0.2, 1.1, 2.0, 3.8])).round(3).tolist()
[0.0, 0.0, 0.5, 1.0, 2.0]
>>> cal.predict(np.array([1.9, 2.0])).tolist()
[False, True]
>>> Calibrator.from_dict(cal.to_dict()).threshold_
2.0
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from aws_anomaly.errors import ConfigError, DataError, ModelFileError, NotFittedError, show

__all__ = ["METHODS", "Calibrator", "Method", "fpr_at_threshold", "pot_threshold", "pr_curve",
           "threshold_for_fraction"]

Method = Literal["best_f1", "target_fpr", "contamination", "pot"]
METHODS: tuple[str, ...] = ("best_f1", "target_fpr", "contamination", "pot")
#: ``pot`` needs at least this many scores above its initial quantile to fit the tail.
POT_MIN_EXCESSES = 20
_FORMAT = "aws_anomaly.calibrator"
_VERSION = 1
_BELOW_ONE = math.nextafter(1.0, 0.0)  # the largest float < 1.0
_MAX_SCORE = float(np.finfo(np.float64).max)  # scores stay finite (JSON, Prometheus)


def _check_scores(raw: Any, where: str, *, allow_inf: bool = False) -> np.ndarray:
    try:
        arr = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: raw scores must be numeric ({exc})") from None
    bad = np.isnan(arr) if allow_inf else ~np.isfinite(arr)
    if bad.any():
        flat = np.flatnonzero(bad.ravel())
        kind = "NaN" if allow_inf else "NaN/inf"
        raise DataError(f"{where}: raw scores hold {flat.size} {kind} value(s) of {arr.size} "
                        f"(first at index {int(flat[0])}); detectors' scores must be finite")
    return arr


def _check_1d(raw: Any, where: str) -> np.ndarray:
    arr = _check_scores(raw, where)
    if arr.ndim != 1 or arr.size == 0:
        raise DataError(f"{where}: raw scores must be a non-empty 1-D array, got shape "
                        f"{arr.shape}")
    return arr


def _check_labels(y: Any, n: int, where: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.shape != (n,):
        raise DataError(f"{where}: y has shape {arr.shape}, expected ({n},) like the scores")
    if arr.dtype == bool:
        return arr
    ok = np.isin(arr, (0, 1))
    if not ok.all():
        bad = arr[~ok][:3].tolist()
        raise DataError(f"{where}: y must hold 0 (normal) / 1 (anomaly) or booleans, found "
                        f"{bad}")
    return arr.astype(bool)


def threshold_for_fraction(scores: np.ndarray, fraction: float) -> float:
    """The lowest threshold ``t`` with ``mean(scores >= t) <= fraction``, ties included.

    Sorted once (O(n log n)). The threshold is an observed score when one fits, else the
    float just above the largest score (nothing in ``scores`` is flagged).

    Examples
    --------
    >>> threshold_for_fraction(np.arange(100.0), 0.05)
    95.0
    >>> threshold_for_fraction(np.array([1.0, 2.0, 2.0, 2.0]), 0.5)  # ties above the cut
    2.0000000000000004
    """
    v = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    n = v.size
    # The tolerance absorbs products like 0.07 * 100 = 7.000000000000001.
    allowed = min(n - 1, math.floor(fraction * n + 1e-9))
    cut = v[allowed]  # the (allowed+1)-th largest: must not be flagged
    first_at_or_below = int(np.searchsorted(-v, -cut, side="left"))
    if first_at_or_below > 0:
        return float(v[first_at_or_below - 1])  # smallest score strictly above the cut
    return float(np.nextafter(cut, np.inf)) if cut < np.finfo(np.float64).max else float(cut)


def pot_threshold(scores: np.ndarray, risk: float, level: float = 0.98
                  ) -> tuple[float, str | None]:
    """The score exceeded with probability ``risk``, from a generalised Pareto tail fit.

    Returns ``(threshold, fallback)``: ``fallback`` is None after a good fit, else why the
    empirical ``1 - risk`` quantile was used instead. The fit is maximum likelihood on the
    excesses over the ``level`` quantile (location fixed at 0); the threshold is
    ``t + sigma / xi * ((risk * n / n_t) ** -xi - 1)`` (``t - sigma * log(risk * n / n_t)``
    when ``xi`` is 0), never below the initial quantile ``t``.

    >>> rng = np.random.default_rng(0)
    >>> x = rng.exponential(size=20000)
    >>> thr, why = pot_threshold(x, 1e-3)
    >>> why is None, round(thr, 1), round(float(np.log(1e3)), 1)  # exact: -log(1e-3)
    (True, 6.9, 6.9)
    """
    from scipy.stats import genpareto  # scipy.stats costs ~0.3 s to import: only here

    scores = np.asarray(scores, dtype=np.float64)
    n = scores.size
    empirical = float(np.quantile(scores, 1.0 - risk)) if n else 0.0
    if n == 0:
        return empirical, "no scores to fit"
    t = float(np.quantile(scores, level))
    excess = scores[scores > t] - t
    if excess.size < POT_MIN_EXCESSES:
        return empirical, (f"only {excess.size} scores above the {level} quantile (need "
                           f"{POT_MIN_EXCESSES}); used the empirical {1 - risk} quantile")
    if risk * n / excess.size >= 1.0:
        # The wanted tail is not beyond the initial quantile: the empirical one is exact.
        return empirical, None
    with np.errstate(all="ignore"):
        try:
            xi, _, sigma = genpareto.fit(excess, floc=0.0)
        except (ValueError, RuntimeError, FloatingPointError) as exc:
            return empirical, f"tail fit failed ({exc}); used the empirical quantile"
    if not (np.isfinite(xi) and np.isfinite(sigma) and sigma > 0):
        return empirical, "tail fit gave no finite scale; used the empirical quantile"
    ratio = risk * n / excess.size
    if abs(xi) < 1e-9:
        thr = t - sigma * math.log(ratio)
    else:
        thr = t + sigma / xi * (ratio ** (-xi) - 1.0)
    if not math.isfinite(thr):
        return empirical, "tail fit gave an infinite threshold; used the empirical quantile"
    return max(float(thr), t), None


def _descending_counts(raw: np.ndarray, labels: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct scores (descending) with true/false positives when flagging ``raw >= t``."""
    order = np.argsort(-raw, kind="stable")
    s, lab = raw[order], labels[order]
    tp = np.cumsum(lab, dtype=np.int64)
    fp = np.arange(1, s.size + 1, dtype=np.int64) - tp
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]  # last row of each tie group
    return s[last], tp[last], fp[last]


def pr_curve(raw: Any, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and thresholds as :func:`sklearn.metrics.precision_recall_curve`.

    ``thresholds`` are the distinct scores, increasing; ``precision[i]`` / ``recall[i]`` are
    those of flagging ``raw >= thresholds[i]``; the last entries are 1 and 0 (no threshold).

    Raises
    ------
    DataError
        If the scores are not finite, ``y`` is not 0/1, or ``y`` has no anomalies.

    Examples
    --------
    >>> p, r, t = pr_curve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    >>> p.tolist(), r.tolist(), t.tolist()
    ([0.5, 0.6666666666666666, 0.5, 1.0, 1.0], [1.0, 1.0, 0.5, 0.5, 0.0], [0.1, 0.35, 0.4, 0.8])
    """
    arr = _check_1d(raw, "pr_curve")
    labels = _check_labels(y, arr.size, "pr_curve")
    if not labels.any():
        raise DataError("pr_curve: y has no anomalies (1), so recall is undefined")
    thr, tp, fp = _descending_counts(arr, labels)
    precision = tp / (tp + fp)
    recall = tp / tp[-1]
    return (np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], thr[::-1].copy())


def fpr_at_threshold(raw: Any, threshold: float, y: Any = None) -> float:
    """Fraction of normal points (``y == 0``, or all points without ``y``) with raw >= threshold.

    Examples
    --------
    >>> fpr_at_threshold([0.1, 0.5, 0.9, 2.0], 0.9, y=[0, 0, 0, 1])
    0.3333333333333333
    """
    arr = _check_1d(raw, "fpr_at_threshold")
    if y is not None:
        labels = _check_labels(y, arr.size, "fpr_at_threshold")
        arr = arr[~labels]
        if arr.size == 0:
            raise DataError("fpr_at_threshold: y has no normal (0) points")
    return float(np.mean(arr >= threshold))


class Calibrator:
    """Learns ``threshold_`` and ``center_`` from raw scores; maps raw -> ``anomaly_score``.

    Parameters
    ----------
    method
        ``"best_f1"`` (needs labels), ``"target_fpr"`` or ``"contamination"``; see the module
        docstring.
    target_fpr
        False-positive rate for ``"target_fpr"`` (and for the fallback), in (0, 0.5].
    contamination
        Fraction flagged by ``"contamination"``, in (0, 0.5].
    risk
        Tail probability of the ``"pot"`` threshold, in (0, 0.1].
    pot_level
        Quantile above which ``"pot"`` fits the tail, in [0.8, 0.999].

    Attributes
    ----------
    threshold_ : float
        Raw scores ``>= threshold_`` are anomalous (``anomaly_score >= 1``).
    center_ : float
        Median raw score of the normal fitting points (all points without labels): maps to 0.
    scale_ : float
        ``threshold_ - center_`` (> 0).
    method_used_ : str
        The method that set the threshold (differs from ``method`` after a fallback).
    fallback_ : str or None
        Why the method fell back to ``target_fpr``; None when it did not.
    best_f1_ : float or None
        The F1 reached on the fitting data by ``best_f1``.
    n_fit_ : int
        Number of fitting scores.
    """

    def __init__(self, method: Method = "best_f1", *, target_fpr: float = 0.01,
                 contamination: float = 0.05, risk: float = 1e-3,
                 pot_level: float = 0.98) -> None:
        self.method = method
        self.target_fpr = target_fpr
        self.contamination = contamination
        self.risk = risk
        self.pot_level = pot_level

    def __repr__(self) -> str:
        extra = (f", risk={self.risk!r}, pot_level={self.pot_level!r}"
                 if self.method == "pot" else "")
        return (f"Calibrator(method={self.method!r}, target_fpr={self.target_fpr!r}, "
                f"contamination={self.contamination!r}{extra})")

    def _check_params(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"Calibrator: method={self.method!r} is not allowed; use one of "
                              f"{', '.join(repr(m) for m in METHODS)}")
        for name in ("target_fpr", "contamination"):
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, int | float)
                    or not 0.0 < value <= 0.5):
                raise ConfigError(f"Calibrator: {name}={value!r} is not allowed; use a float in "
                                  "(0, 0.5]")
        for name, low, high in (("risk", 0.0, 0.1), ("pot_level", 0.8, 0.999)):
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, int | float)
                    or not low < value <= high):
                raise ConfigError(f"Calibrator: {name}={value!r} is not allowed; use a float in "
                                  f"({low}, {high}]")

    def fit(self, raw_scores: Any, y: Any = None) -> Calibrator:
        """Learn the threshold and the reference level from validation scores.

        Parameters
        ----------
        raw_scores
            1-D finite raw scores (higher = more anomalous).
        y
            Optional 0/1 labels (1 = anomaly); required by ``method="best_f1"``.

        Returns
        -------
        self

        Raises
        ------
        DataError
            Non-finite or empty scores, bad labels, ``best_f1`` without ``y``, or ``y`` without
            a single normal point.
        ConfigError
            A bad ``method``, ``target_fpr`` or ``contamination``.
        """
        self._check_params()
        raw = _check_1d(raw_scores, "Calibrator.fit")
        labels = None if y is None else _check_labels(y, raw.size, "Calibrator.fit")
        if self.method == "best_f1" and labels is None:
            raise DataError("Calibrator(method='best_f1').fit needs labels y (0 normal / 1 "
                            "anomaly); pass y, or use method='target_fpr' or 'contamination'")
        if labels is not None and labels.all():
            raise DataError(f"Calibrator.fit: all {raw.size} points are labelled anomalous; "
                            "at least one normal (0) point is needed for the reference level")
        normal = raw if labels is None else raw[~labels]
        center = float(np.median(normal))
        fallback: str | None = None
        best_f1: float | None = None
        method_used = self.method

        if self.method == "best_f1" and labels is not None:
            if not labels.any():
                fallback = "y has no anomalies (1), so F1 is undefined"
            elif raw.min() == raw.max():
                fallback = f"all {raw.size} scores are equal ({show(raw[0])}); no threshold " \
                           "separates anomalies from normal points"
            else:
                thr, tp, fp = _descending_counts(raw, labels)
                # 2TP / (TP + FP + P): integers below 2**53, so equal ratios are equal floats
                # and argmax's first hit is the highest threshold among exact ties.
                f1 = 2.0 * tp / (tp + fp + tp[-1])
                best = int(np.argmax(f1))
                threshold = float(thr[best])
                if threshold <= center:
                    fallback = (f"the best-F1 threshold {show(threshold)} is not above the median "
                                f"normal score {show(center)}: the scores do not separate the "
                                "labelled anomalies")
                else:
                    best_f1 = float(f1[best])
            if fallback is not None:
                method_used = "target_fpr"
                threshold = threshold_for_fraction(normal, self.target_fpr)
        elif self.method == "target_fpr":
            threshold = threshold_for_fraction(normal, self.target_fpr)
        elif self.method == "pot":
            threshold, fallback = pot_threshold(normal, self.risk, self.pot_level)
        else:
            threshold = threshold_for_fraction(raw, self.contamination)

        if not threshold > center:
            # Only reachable with labels whose normal median lies above the contamination
            # cut; the reference then moves to the normal points below the threshold.
            below = normal[normal < threshold]
            center = float(np.median(below)) if below.size else threshold - max(1.0,
                                                                                abs(threshold))
        scale = threshold - center
        self.threshold_ = threshold
        self.center_ = center
        self.scale_ = scale if math.isfinite(scale) else float(np.finfo(np.float64).max)
        self.method_used_ = method_used
        self.fallback_ = fallback
        self.best_f1_ = best_f1
        self.n_fit_ = int(raw.size)
        return self

    def _check_fitted(self, method: str) -> None:
        if not hasattr(self, "threshold_"):
            raise NotFittedError(f"This Calibrator is not fitted yet; call fit(raw_scores, y) "
                                 f"before {method}()")

    def transform(self, raw: Any) -> np.ndarray:
        """Calibrated ``anomaly_score`` (same shape as ``raw``): 0 at or below the typical
        normal score, ``>= 1.0`` exactly when ``raw >= threshold_``; always finite (+inf and
        overflowing scores map to the largest float).

        Raises
        ------
        DataError
            If ``raw`` holds NaN.
        """
        self._check_fitted("transform")
        arr = _check_scores(raw, "Calibrator.transform", allow_inf=True)
        with np.errstate(over="ignore"):  # a tiny scale can overflow: capped below
            score = 1.0 + (arr - self.threshold_) / self.scale_
        at_or_above = arr >= self.threshold_
        score = np.where(at_or_above, np.maximum(score, 1.0), np.minimum(score, _BELOW_ONE))
        return np.clip(score, 0.0, _MAX_SCORE)

    def transform_one(self, raw: float) -> float:
        """:meth:`transform` of one raw score, in plain float arithmetic (the live path scores
        one point at a time): the same operations in the same order, so the same number."""
        if raw != raw or not hasattr(self, "threshold_") or not self.scale_:
            # NaN, unfitted, a zero scale: transform's errors and numpy's inf / NaN
            return float(self.transform(np.asarray([raw], dtype=np.float64))[0])
        score = 1.0 + (raw - self.threshold_) / self.scale_
        score = max(score, 1.0) if raw >= self.threshold_ else min(score, _BELOW_ONE)
        return min(max(score, 0.0), _MAX_SCORE)

    def predict(self, raw: Any) -> np.ndarray:
        """True where ``raw >= threshold_`` (the same rows as ``transform(raw) >= 1``)."""
        self._check_fitted("predict")
        return _check_scores(raw, "Calibrator.predict", allow_inf=True) >= self.threshold_

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable state (floats round-trip exactly through ``json``)."""
        self._check_fitted("to_dict")
        return {
            "format": _FORMAT, "version": _VERSION,
            "params": {"method": self.method, "target_fpr": self.target_fpr,
                       "contamination": self.contamination, "risk": self.risk,
                       "pot_level": self.pot_level},
            "threshold": self.threshold_, "center": self.center_, "scale": self.scale_,
            "method_used": self.method_used_, "fallback": self.fallback_,
            "best_f1": self.best_f1_, "n_fit": self.n_fit_,
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Calibrator:
        """Rebuild a fitted calibrator from :meth:`to_dict` output.

        Raises
        ------
        ModelFileError
            If the dict is not a calibrator state this version can read.
        """
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise ModelFileError(f"not a calibrator state (expected format={_FORMAT!r}); got "
                                 f"{type(state).__name__}")
        if state.get("version") != _VERSION:
            raise ModelFileError(f"calibrator state version {state.get('version')!r} is not "
                                 f"supported; this version reads {_VERSION}")
        try:
            params = state["params"]
            cal = cls(params["method"], target_fpr=params["target_fpr"],
                      contamination=params["contamination"],
                      risk=params.get("risk", 1e-3), pot_level=params.get("pot_level", 0.98))
            threshold, center, scale = (float(state[k]) for k in ("threshold", "center", "scale"))
            method_used, fallback = state["method_used"], state["fallback"]
            best_f1, n_fit = state["best_f1"], int(state["n_fit"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"calibrator state is incomplete or malformed: {exc!r}") from None
        try:
            cal._check_params()
        except ConfigError as exc:
            raise ModelFileError(f"calibrator state has bad parameters: {exc}") from None
        if not (math.isfinite(threshold) and math.isfinite(center) and scale > 0
                and threshold > center):
            raise ModelFileError(f"calibrator state is inconsistent: threshold={threshold!r}, "
                                 f"center={center!r}, scale={scale!r}")
        cal.threshold_, cal.center_, cal.scale_ = threshold, center, scale
        cal.method_used_, cal.fallback_ = method_used, fallback
        cal.best_f1_ = None if best_f1 is None else float(best_f1)
        cal.n_fit_ = n_fit
        return cal
