"""The base class every detector shares: validation, the score convention and the offset.

One convention for the whole package: :meth:`BaseDetector.score_samples` returns a raw anomaly
score where **higher means more anomalous**. :meth:`~BaseDetector.decision_function` and
:meth:`~BaseDetector.predict` keep scikit-learn's meaning so that users of the original
One-Class SVM code see what they expect::

    decision_function(X) = offset_ - score_samples(X)     (negative = anomalous)
    predict(X)           = -1 where decision_function(X) < 0, else 1

``offset_`` is the ``1 - contamination`` quantile of the training scores, so about
``contamination`` of the training rows are predicted anomalous (the same rule as
:class:`sklearn.ensemble.IsolationForest`). The calibrated threshold used in production comes
from :mod:`aws_anomaly.calibration`; ``offset_`` is only the estimator's own default cut.

Subclasses implement ``_fit(X) -> training scores`` and ``_score(X) -> scores`` on arrays that
are already validated. Detectors wrapping a scikit-learn model derive from
:class:`SklearnAdapter` instead, implement ``_fit_normality(X)`` and ``_normality(X)`` with
scikit-learn's "higher = more normal" meaning, and the sign is flipped once, there.
"""

from __future__ import annotations

import numbers
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from threadpoolctl import ThreadpoolController

from aws_anomaly.errors import ConfigError, DataError, NotFittedError

__all__ = ["BaseDetector", "DetectorNotFittedError", "SklearnAdapter", "blas_one_thread",
           "check_feature_matrix", "seed_from"]

# Detectors score in row chunks of this many rows: large enough that BLAS and numpy run at full
# speed, small enough that the temporaries stay in cache and memory stays flat on 1e6+ rows.
CHUNK_ROWS = 16384


class NonFiniteInputError(Exception):
    """Internal signal from a scorer that met NaN/inf; the base class turns it into the
    :class:`DataError` that :func:`check_feature_matrix` words. Never escapes a detector."""


class DetectorNotFittedError(NotFittedError, SklearnNotFittedError):
    """An unfitted detector was used: the project's :class:`~aws_anomaly.errors.NotFittedError`
    that is also scikit-learn's, so ``except`` clauses written for either catch it."""


def check_feature_matrix(X: Any, *, where: str, finite: bool = True) -> np.ndarray:
    """Return ``X`` as a finite 2-D float64 array, or raise :class:`DataError`.

    Parameters
    ----------
    X
        Array-like of shape (n_samples, n_features); a float64 numpy array passes through
        without a copy.
    where
        Who is asking (e.g. ``"IsolationForestDetector.fit"``), for the error message.
    finite
        Check for NaN/inf. Only a caller that detects them itself, for free, while computing
        (and then calls this function again for the message) passes False.

    Raises
    ------
    DataError
        If ``X`` is sparse, not numeric, complex, not 2-D, empty, or holds NaN/inf (the message
        names the first bad column and how many rows are bad).

    Examples
    --------
    >>> check_feature_matrix([[1, 2], [3, 4]], where="demo").dtype
    dtype('float64')
    >>> check_feature_matrix([[1.0, float("nan")]], where="demo")
    Traceback (most recent call last):
    ...
    aws_anomaly.errors.DataError: demo: X holds NaN/inf in 1 column(s): column 1 has 1 of 1 \
rows non-finite (first at row 0); the feature matrix must be finite everywhere
    """
    if sp.issparse(X):
        raise DataError(f"{where}: X is a sparse matrix; detectors take dense arrays only "
                        "(call X.toarray())")
    raw = np.asarray(X)
    if raw.dtype.kind == "c":
        raise DataError(f"{where}: Complex data not supported; X must be real-valued")
    try:
        arr = raw.astype(np.float64, copy=False)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: X must be numeric, got dtype {raw.dtype} ({exc})") from None
    if arr.ndim != 2:
        raise DataError(f"{where}: X must be 2-D (n_samples, n_features), got shape {arr.shape}; "
                        "Reshape your data with X.reshape(1, -1) if it is a single sample")
    # The phrases follow scikit-learn's so its common checks (and users' habits) recognise them.
    if arr.shape[0] == 0:
        raise DataError(f"{where}: Found array with 0 sample(s) (shape={arr.shape}) while a "
                        "minimum of 1 is required.")
    if arr.shape[1] == 0:
        raise DataError(f"{where}: Found array with 0 feature(s) (shape={arr.shape}) while a "
                        "minimum of 1 is required.")
    if not finite:
        return arr
    # Fast path: a column sum is finite when the column is (overflow is re-checked exactly),
    # which costs one streaming pass instead of a boolean array as large as X.
    with np.errstate(over="ignore", invalid="ignore"):
        col_sums = arr.sum(axis=0)
    suspect = np.flatnonzero(~np.isfinite(col_sums))
    if suspect.size:
        bad_cols = [int(j) for j in suspect if not np.isfinite(arr[:, j]).all()]
        if bad_cols:
            j = bad_cols[0]
            bad_rows = np.flatnonzero(~np.isfinite(arr[:, j]))
            raise DataError(
                f"{where}: X holds NaN/inf in {len(bad_cols)} column(s): column {j} has "
                f"{bad_rows.size} of {arr.shape[0]} rows non-finite (first at row "
                f"{int(bad_rows[0])}); the feature matrix must be finite everywhere")
    return arr


def seed_from(random_state: Any) -> int:
    """An int seed for a sub-estimator, drawn from ``random_state`` (None, int or RandomState).

    Examples
    --------
    >>> seed_from(0) == seed_from(0)
    True
    """
    if random_state is None:
        return int(np.random.default_rng().integers(2**31 - 1))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31 - 1))
    return int(np.random.RandomState(random_state).randint(2**31 - 1))


def check_int_param(owner: str, name: str, value: Any, *, low: int, allow_none: bool = False
                    ) -> None:
    """Raise :class:`ConfigError` unless ``value`` is an int >= ``low`` (or None if allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        allowed = f"an int >= {low}" + (" or None" if allow_none else "")
        raise ConfigError(f"{owner}: {name}={value!r} is not allowed; use {allowed}")


def check_float_param(owner: str, name: str, value: Any, *, low: float, high: float,
                      low_open: bool = True, high_open: bool = False) -> None:
    """Raise :class:`ConfigError` unless ``value`` is a real number in the given interval."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ConfigError(f"{owner}: {name}={value!r} is not allowed; use a float in {interval}")


def check_random_state_param(owner: str, value: Any) -> None:
    """Raise :class:`ConfigError` unless ``value`` is None, a non-negative int or RandomState."""
    if value is None or isinstance(value, np.random.RandomState):
        return
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0:
        return
    raise ConfigError(f"{owner}: random_state={value!r} is not allowed; use None, an int >= 0 "
                      "or a numpy RandomState")


def check_n_jobs_param(owner: str, value: Any) -> None:
    """Raise :class:`ConfigError` unless ``value`` is None or a non-zero int."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value == 0:
        raise ConfigError(f"{owner}: n_jobs={value!r} is not allowed; use None (1 thread), a "
                          "positive int, or a negative int (-1 = all cores)")


def resolve_n_jobs(n_jobs: int | None) -> int:
    """Threads for ``n_jobs`` with scikit-learn's meaning (None = 1, -1 = all cores).

    Examples
    --------
    >>> resolve_n_jobs(None), resolve_n_jobs(3)
    (1, 3)
    """
    if n_jobs is None:
        return 1
    cpus = os.cpu_count() or 1
    return max(1, cpus + 1 + n_jobs) if n_jobs < 0 else int(n_jobs)


#: (how many modules were imported when the BLAS libraries were last looked for, their knobs)
_BLAS: list[tuple[int, list[_BlasKnob]]] = []


class _BlasKnob:
    """One BLAS library's thread count: ``get()``, ``set(n)``, and whether the count is the
    calling thread's own (OpenBLAS built on OpenMP) rather than the process's.

    OpenBLAS on its own threads (the numpy and scipy wheels) is driven through its C
    functions directly: threadpoolctl's ``set_num_threads`` for it does nothing when called
    from any thread but the first one that ever called it (threadpoolctl >= 3.6 keeps one
    "controlling" thread per process), so the service's request and scheduler threads could
    not limit it; and each call through it costs several microseconds a live point.
    ``_OneBlasThread``'s lock keeps the process-wide counts consistent instead."""

    __slots__ = ("filepath", "get", "per_thread", "set")

    def __init__(self, lib: Any) -> None:
        self.filepath: str = lib.filepath
        self.get: Callable[[], Any] = lib.get_num_threads
        self.set: Callable[[int], Any] = lib.set_num_threads
        self.per_thread = False
        if lib.internal_api != "openblas":
            return
        if getattr(lib, "threading_layer", None) == "openmp":
            self.per_thread = True  # OpenMP's count is the calling thread's
            return
        for prefix in ("", "scipy_"):
            for suffix in ("", "64_", "_64"):
                get = getattr(lib.dynlib, f"{prefix}openblas_get_num_threads{suffix}", None)
                set_ = getattr(lib.dynlib, f"{prefix}openblas_set_num_threads{suffix}", None)
                if get is not None and set_ is not None:
                    self.get, self.set = get, set_
                    return


class _OneBlasThread:
    """Context manager: BLAS libraries on one thread inside, their previous counts after.

    A process-wide count (OpenBLAS on its own threads) is shared by every thread, and the
    service scores in several threads at once (requests, the scheduler's tick, a retrain):
    the first thread in records the counts and sets one thread, the last one out restores
    them, so one thread leaving never lifts the limit under another that is still inside. A
    per-thread count (OpenBLAS on OpenMP) is set and restored by each thread for itself."""

    __slots__ = ("_own",)
    _lock = threading.Lock()
    _inside = 0
    _saved: ClassVar[list[tuple[_BlasKnob, int]]] = []

    def __enter__(self) -> None:
        cls = _OneBlasThread
        knobs = _blas_libraries()
        with cls._lock:
            if cls._inside == 0:
                cls._saved = [(k, k.get()) for k in knobs if not k.per_thread]
                for k, n in cls._saved:
                    if n != 1:
                        k.set(1)
            cls._inside += 1
        self._own = [(k, k.get()) for k in knobs if k.per_thread]
        for k, n in self._own:
            if n != 1:
                k.set(1)

    def __exit__(self, *exc: object) -> None:
        for k, n in self._own:
            if n is not None and n != 1:
                k.set(n)
        cls = _OneBlasThread
        with cls._lock:
            cls._inside -= 1
            if cls._inside == 0:
                for k, n in cls._saved:
                    if n is not None and n != 1:
                        k.set(n)
                cls._saved = []


def _blas_libraries() -> list[_BlasKnob]:
    """The BLAS libraries loaded in the process (a :class:`_BlasKnob` of each of
    threadpoolctl's controllers). Looked for again only after an import (a new extension
    module, e.g. scipy or torch, may bring its own BLAS); the live path imports nothing, so
    it reuses the last look."""
    n = len(sys.modules)
    if not _BLAS or _BLAS[0][0] != n:
        _BLAS[:] = [(n, [_BlasKnob(lib) for lib in ThreadpoolController().lib_controllers
                         if lib.user_api == "blas"])]
    return _BLAS[0][1]


def blas_one_thread() -> Any:
    """Context manager limiting BLAS to one thread (the previous counts come back after).

    Used where our own code already spreads work over the cores (chunks on a thread pool)
    or calls BLAS on products too small for its threads to pay (a live point): OpenBLAS's
    threads spin after each product, and on a loaded machine a 16k-row product took 28 ms
    with two threads against 1.4 ms with one (docs/performance.md, H2); one live point of the
    default kNN model took 7.8 ms (p50) instead of 0.3 ms with the other core busy.

    ``threadpool_limits(...)`` scans every loaded shared library on each call (~4 ms here);
    the libraries are looked for again only after an import, and each use is a few C calls
    (~2.5 us with the two OpenBLAS of numpy and scipy, against ~9.5 us through
    threadpoolctl's methods: worth it only around a large product). It limits BLAS in any
    thread, not only the first one that used it (see :class:`_BlasKnob`).
    """
    return _OneBlasThread()


def map_chunks(fn: Callable[[np.ndarray], np.ndarray], X: np.ndarray, *,
               n_jobs: int | None = 1, chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """``fn`` applied to row chunks of ``X`` (each returning one float per row), concatenated.

    With ``n_jobs > 1`` and more than one chunk, chunks run on a thread pool (numpy and BLAS
    release the GIL) while BLAS is limited to one thread, so the two levels of parallelism do
    not oversubscribe the cores. A single chunk (the live path: a few rows) always runs in the
    calling thread, without the pool's start-up cost.

    Examples
    --------
    >>> map_chunks(lambda c: c.sum(axis=1), np.ones((5, 2)), chunk_rows=2).tolist()
    [2.0, 2.0, 2.0, 2.0, 2.0]
    """
    n = X.shape[0]
    if 0 < n <= chunk_rows:
        # The live path (one row per call): no pool, no thread-count lookup (os.cpu_count
        # reads the affinity mask on every call), no extra output copy.
        return np.asarray(fn(X), dtype=np.float64).reshape(n)
    out = np.empty(n, dtype=np.float64)
    starts = range(0, n, chunk_rows)

    def run(start: int) -> None:
        out[start:start + chunk_rows] = fn(X[start:start + chunk_rows])

    workers = min(resolve_n_jobs(n_jobs), len(starts))
    if workers <= 1:
        for start in starts:
            run(start)
    else:
        with blas_one_thread(), ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(run, starts):
                pass  # re-raises the first error from a worker
    return out


class BaseDetector(OutlierMixin, BaseEstimator):
    """Base of all detectors: validation, ``offset_``, ``decision_function`` and ``predict``.

    Subclasses declare their hyperparameters as keyword-only ``__init__`` arguments (stored
    unchanged, as scikit-learn requires), including ``contamination``, and implement
    ``_check_params()``, ``_fit(X)`` (returns the training scores) and ``_score(X)``.
    """

    contamination: float
    # True when ``_score`` detects NaN/inf on its own, as a by-product of its arithmetic, and
    # raises NonFiniteInputError: score-time validation then skips the separate pass over X.
    _finite_checked_in_score: bool = False
    #: True when scoring even one row is a large BLAS product (against a reference set): the
    #: live path then runs it with BLAS on one thread (:func:`blas_one_thread`), whose own
    #: cost (~10 us) a detector with small products would only pay for nothing.
    blas_bound: bool = False
    #: True when ``fit(X, y)`` learns from labels (``y``: 1 = anomalous) and cannot fit
    #: without them: :class:`~aws_anomaly.model.AnomalyModel` then hands it the labelled
    #: anomalous rows every other detector is kept from, and jobs (unlabelled) do not offer it.
    requires_labels: bool = False

    # -- hooks ------------------------------------------------------------------------------
    def _check_params(self) -> None:
        """Validate subclass hyperparameters; raise :class:`ConfigError`."""

    def _fit(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _score(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- validation, in one place -------------------------------------------------------------
    def _validate(self, X: Any, *, method: str, reset: bool, where: str | None = None,
                  finite: bool = True) -> np.ndarray:
        where = where or f"{type(self).__name__}.{method}"
        if not reset:
            self._check_fitted(method)
        arr = check_feature_matrix(X, where=where, finite=finite)
        if reset:
            self.n_features_in_ = arr.shape[1]
        elif arr.shape[1] != self.n_features_in_:
            raise DataError(f"{where}: X has {arr.shape[1]} features, but "
                            f"{type(self).__name__} is expecting {self.n_features_in_} features "
                            "as input (the column count seen in fit)")
        return arr

    def _check_fitted(self, method: str) -> None:
        if not self.__sklearn_is_fitted__():
            raise DetectorNotFittedError(f"This {type(self).__name__} instance is not fitted "
                                         f"yet; call fit(X) before {method}()")

    def __sklearn_is_fitted__(self) -> bool:
        """Fitted once ``offset_`` exists (lets ``sklearn.utils.validation.check_is_fitted``
        answer correctly)."""
        return hasattr(self, "offset_")

    # -- public API ---------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> BaseDetector:
        """Learn what normal looks like from ``X`` (n_samples, n_features); ``y`` is ignored.

        Returns
        -------
        self
        """
        self._fit_and_score(X)
        return self

    def _fit_and_score(self, X: Any, *, where: str | None = None) -> np.ndarray:
        """Validate, fit, set ``offset_``; return the training scores (for ensembles)."""
        owner = type(self).__name__
        check_float_param(owner, "contamination", self.contamination, low=0.0, high=0.5)
        self._check_params()
        arr = self._validate(X, method="fit", reset=True, where=where)
        train_scores = np.asarray(self._fit(arr), dtype=np.float64)
        self.offset_ = float(np.quantile(train_scores, 1.0 - self.contamination))
        return train_scores

    def score_samples(self, X: Any) -> np.ndarray:
        """Raw anomaly score per row: **higher = more anomalous**. Shape (n_samples,)."""
        return self._checked_scores(X, "score_samples")

    def score_prepared(self, X: np.ndarray) -> np.ndarray:
        """:meth:`score_samples` of rows the caller made itself and vouches for: a float64
        ``(n, n_features_in_)`` array of finite values from a fitted detector, such as the
        rows a fitted model's own transform gives (the live path, one row a call). Nothing is
        validated here, which is most of a one-row call's cost; anything else goes through
        :meth:`score_samples`."""
        return self._score(X)

    def decision_function(self, X: Any) -> np.ndarray:
        """``offset_ - score_samples(X)``: negative for rows predicted anomalous."""
        scores = self._checked_scores(X, "decision_function")
        return self.offset_ - scores

    def predict(self, X: Any) -> np.ndarray:
        """-1 for anomalous rows, 1 for normal rows (scikit-learn's outlier convention)."""
        scores = self._checked_scores(X, "predict")
        return np.where(self.offset_ - scores < 0, -1, 1)

    def _checked_scores(self, X: Any, method: str) -> np.ndarray:
        # Validation (fitted state included) runs before offset_ is read, so an unfitted
        # detector raises NotFittedError naming the method the caller used.
        arr = self._validate(X, method=method, reset=False,
                             finite=not self._finite_checked_in_score)
        try:
            return self._score(arr)
        except NonFiniteInputError:
            # The full check builds the message (column, row count) and raises DataError.
            check_feature_matrix(arr, where=f"{type(self).__name__}.{method}")
            raise

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        return tags


class SklearnAdapter(BaseDetector):
    """A detector whose core is a scikit-learn outlier model ("higher = more normal").

    Subclasses implement ``_fit_normality(X)`` (fit; return the training rows' normality) and
    ``_normality(X)``, both with scikit-learn's sign; the flip to "higher = more anomalous"
    happens here and nowhere else.
    """

    def _fit_normality(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _normality(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _fit(self, X: np.ndarray) -> np.ndarray:
        return -self._fit_normality(X)

    def _score(self, X: np.ndarray) -> np.ndarray:
        return -self._normality(X)


def subsample_index(n: int, max_rows: int | None, seed: int) -> np.ndarray | None:
    """Sorted row indices of a uniform random subset of ``max_rows`` of ``n`` rows (without
    replacement); None when ``n`` is at most ``max_rows`` (keep every row)."""
    if max_rows is None or n <= max_rows:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))


def subsample_rows(X: np.ndarray, max_rows: int | None, seed: int) -> np.ndarray:
    """``X`` itself when it has at most ``max_rows`` rows, else a uniform random subset
    (without replacement, kept in the original row order)."""
    idx = subsample_index(X.shape[0], max_rows, seed)
    return X if idx is None else X[idx]
