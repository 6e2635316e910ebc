"""One-Class SVM with an RBF kernel, a bounded number of support vectors and fast scoring.

The original project's final model was an RBF One-Class SVM. Its scoring cost is linear in the
number of support vectors (SVs), and libsvm fitted on all training rows keeps a large share of
them as SVs (hundreds to thousands in 100+ dimensions). Two changes keep it cheap:

**Bounded SVs through weighted k-means centroids.** With ``max_support_vectors=m`` the training
rows are summarised by k-means into ``m`` centroids and libsvm's ``OneClassSVM`` is fitted on the
centroids with ``sample_weight`` = cluster sizes. scikit-learn's libsvm scales each row's box
constraint by its weight, so a centroid stands for its cluster's rows and ``nu`` keeps its meaning
(a fraction of the *training rows*). The model can only pick SVs among the centroids, so there
are at most ``m`` SVs: a hard bound, unlike fitting on a subsample, where libsvm keeps between
``nu * n`` and ``n`` of the subsample as SVs. Summarising uses every training row (a subsample
throws most away), and in our experiments on 110-d mixtures the ranking of held-out rows agreed
with the full-data model at Spearman rho ~0.98 (a 400-row subsample with ~45 SVs reached ~0.97).
``max_support_vectors=None`` fits libsvm on the (sampled) training rows themselves.

**BLAS scoring.** ``score_samples`` evaluates the kernel expansion directly,
``sum_j alpha_j exp(-gamma ||x - s_j||^2)`` with ``||x||^2 + ||s||^2 - 2 x.s^T`` done as one
matrix product per chunk of rows; it equals libsvm's ``score_samples`` to ~1e-12 and is orders of
magnitude faster than libsvm's per-row ``predict``.

``gamma="scale"`` is ``1 / (n_features * X.var())`` computed on the training rows (not on the
centroids, whose variance is smaller), as scikit-learn defines it.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import OneClassSVM

from aws_anomaly.detectors.base import (
    CHUNK_ROWS,
    NonFiniteInputError,
    SklearnAdapter,
    check_float_param,
    check_int_param,
    check_n_jobs_param,
    check_random_state_param,
    map_chunks,
    seed_from,
    subsample_rows,
)
from aws_anomaly.errors import ConfigError

__all__ = ["OneClassSVMDetector", "rbf_constants", "rbf_expansion"]


def rbf_constants(support_vectors: np.ndarray, gamma: float,
                  sv_sq_norms: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(2 * gamma * sv, gamma * ||sv||^2 as a column)``: the support vectors scaled once,
    so each chunk of :func:`rbf_expansion` needs one product and two broadcasts."""
    if sv_sq_norms is None:
        sv_sq_norms = np.einsum("ij,ij->i", support_vectors, support_vectors)
    return (np.ascontiguousarray((2.0 * gamma) * support_vectors),
            (gamma * sv_sq_norms)[:, None])


def rbf_expansion(X: np.ndarray, support_vectors: np.ndarray, dual_coef: np.ndarray,
                  gamma: float, *, sv_sq_norms: np.ndarray | None = None, n_jobs: int | None = 1,
                  chunk_rows: int = CHUNK_ROWS, check_finite: bool = False,
                  scaled: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """``sum_j dual_coef[j] * exp(-gamma * ||x_i - sv_j||^2)`` for every row ``x_i`` of ``X``.

    Computed in chunks of rows with one BLAS product each (``sv @ chunk.T``: the short side
    first, which OpenBLAS runs about twice as fast as ``chunk @ sv.T``). Squared distances are
    not clipped at 0: rounding can make ``||x||^2 + ||s||^2 - 2 x.s`` slightly negative when
    x ~ s (a kernel value above 1 by ~1e-15), and libsvm does not clip either.

    With ``check_finite``, a chunk holding NaN/inf raises
    :class:`~aws_anomaly.detectors.base.NonFiniteInputError`: the row norms are computed anyway
    and are non-finite exactly then (overflow is told apart), so the detector needs no separate
    pass over X to validate it. ``scaled`` is ``rbf_constants(support_vectors, gamma,
    sv_sq_norms)`` made once by the caller (what a one-row call would otherwise spend most of
    its time on). ``n_jobs`` threads share the chunks
    (:func:`~aws_anomaly.detectors.base.map_chunks`): numpy's float64 ``exp`` is single-threaded
    and costs about as much as the product, so this is where the second core pays.

    Examples
    --------
    >>> sv = np.array([[0.0, 0.0], [1.0, 0.0]])
    >>> rbf_expansion(np.array([[0.0, 0.0]]), sv, np.array([1.0, 1.0]), 1.0).round(6)
    array([1.367879])
    """
    sv2, g_sv = rbf_constants(support_vectors, gamma, sv_sq_norms) if scaled is None \
        else scaled
    if X.shape[0] == 1:
        # one row (the live path): the same operations on 1-d arrays, so the same number,
        # without the chunking and 2-d broadcasts that are most of a one-row call's cost
        x = X[0]
        gx1 = gamma * float(np.einsum("i,i->", x, x))
        if check_finite and not math.isfinite(gx1) and not np.isfinite(x).all():
            raise NonFiniteInputError
        k1 = sv2 @ x
        k1 -= gx1
        k1 -= g_sv[:, 0]
        np.exp(k1, out=k1)
        return np.array([dual_coef @ k1])

    def chunk(xc: np.ndarray) -> np.ndarray:
        gx = gamma * np.einsum("ij,ij->i", xc, xc)
        if check_finite and not np.isfinite(gx).all() and not np.isfinite(xc).all():
            raise NonFiniteInputError
        k = sv2 @ xc.T                  # (n_sv, rows): 2*gamma*s.x
        k -= gx
        k -= g_sv                       # = -gamma * ||x - s||^2
        np.exp(k, out=k)
        return dual_coef @ k

    return map_chunks(chunk, X, n_jobs=n_jobs, chunk_rows=chunk_rows)


class OneClassSVMDetector(SklearnAdapter):
    """RBF One-Class SVM with at most ``max_support_vectors`` SVs and BLAS scoring.

    Parameters
    ----------
    nu
        libsvm's nu in (0, 1]: an upper bound on the fraction of training rows outside the
        boundary and a lower bound on the (weighted) fraction that are SVs.
    gamma
        RBF width: ``"scale"`` (``1 / (n_features * X.var())``), ``"auto"`` (``1 /
        n_features``) or a positive float.
    max_support_vectors
        Hard bound on the number of SVs (k-means centroids the SVM is fitted on); ``None`` fits
        on the training rows themselves (unbounded SVs, slow scoring on large data).
    max_samples
        Training rows used at most (uniform subsample without replacement when there are more);
        bounds the k-means and libsvm cost on long histories.
    tol
        libsvm's stopping tolerance.
    contamination
        Fraction of training rows that ``predict`` calls anomalous (sets ``offset_``).
    n_jobs
        Threads used to score large inputs (``None`` = 1, ``-1`` = all cores); one-chunk
        inputs (the live path) always score in the calling thread.
    random_state
        Seed for the subsample and k-means.

    Attributes
    ----------
    support_vectors_, dual_coef_ : ndarray
        The kernel expansion (``dual_coef_`` is 1-D).
    gamma_ : float
        The RBF width used.
    intercept_ : float
        libsvm's ``-rho``.
    estimator_ : sklearn.svm.OneClassSVM
        The fitted libsvm model (kept for inspection; scoring does not use it).
    offset_ : float
        ``1 - contamination`` quantile of the training scores.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 4))
    >>> det = OneClassSVMDetector(max_support_vectors=20, random_state=0).fit(X)
    >>> det.support_vectors_.shape[0] <= 20
    True
    >>> det.predict(np.array([[0.0, 0.0, 0.0, 0.0], [8.0, 8.0, 8.0, 8.0]])).tolist()
    [1, -1]
    """

    def __init__(self, *, nu: float = 0.05, gamma: str | float = "scale",
                 max_support_vectors: int | None = 40, max_samples: int | None = 50_000,
                 tol: float = 1e-4, contamination: float = 0.01, n_jobs: int | None = -1,
                 random_state: int | np.random.RandomState | None = None) -> None:
        self.nu = nu
        self.gamma = gamma
        self.max_support_vectors = max_support_vectors
        self.max_samples = max_samples
        self.tol = tol
        self.contamination = contamination
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _check_params(self) -> None:
        owner = type(self).__name__
        check_float_param(owner, "nu", self.nu, low=0.0, high=1.0)
        if isinstance(self.gamma, str):
            if self.gamma not in ("scale", "auto"):
                raise ConfigError(f"{owner}: gamma={self.gamma!r} is not allowed; use 'scale', "
                                  "'auto' or a positive float")
        elif (isinstance(self.gamma, bool) or not isinstance(self.gamma, numbers.Real)
              or not np.isfinite(self.gamma) or self.gamma <= 0):
            raise ConfigError(f"{owner}: gamma={self.gamma!r} is not allowed; use 'scale', "
                              "'auto' or a positive float")
        check_int_param(owner, "max_support_vectors", self.max_support_vectors, low=1,
                        allow_none=True)
        check_int_param(owner, "max_samples", self.max_samples, low=2, allow_none=True)
        check_float_param(owner, "tol", self.tol, low=0.0, high=np.inf, high_open=True)
        check_random_state_param(owner, self.random_state)
        check_n_jobs_param(owner, self.n_jobs)

    def _gamma_for(self, X: np.ndarray) -> float:
        if self.gamma == "auto":
            return 1.0 / X.shape[1]
        if self.gamma == "scale":
            var = float(X.var())
            return 1.0 / (X.shape[1] * var) if var > 0 else 1.0
        return float(self.gamma)

    def _fit_normality(self, X: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(seed_from(self.random_state))
        seed_sub, seed_km = (int(s) for s in rng.integers(2**31 - 1, size=2))
        Xs = subsample_rows(X, self.max_samples, seed_sub)
        self.gamma_ = self._gamma_for(Xs)
        svm = OneClassSVM(kernel="rbf", gamma=self.gamma_, nu=self.nu, tol=self.tol)
        m = self.max_support_vectors
        if m is None or Xs.shape[0] <= m:
            svm.fit(Xs)
        else:
            with warnings.catch_warnings():
                # Fewer distinct rows than clusters: the empty/duplicate clusters are dropped.
                warnings.simplefilter("ignore", ConvergenceWarning)
                km = KMeans(n_clusters=m, n_init=1, max_iter=100, random_state=seed_km).fit(Xs)
            counts = np.bincount(km.labels_, minlength=m).astype(np.float64)
            keep = counts > 0
            svm.fit(km.cluster_centers_[keep], sample_weight=counts[keep])
        self.estimator_ = svm
        self.support_vectors_ = np.ascontiguousarray(svm.support_vectors_, dtype=np.float64)
        self.dual_coef_ = np.ascontiguousarray(svm.dual_coef_.ravel(), dtype=np.float64)
        self.intercept_ = float(svm.intercept_[0])
        self.sv_sq_norms_ = np.einsum("ij,ij->i", self.support_vectors_, self.support_vectors_)
        return self._normality(Xs)

    def _normality(self, X: np.ndarray) -> np.ndarray:
        # libsvm's score_samples: decision_function + rho = the kernel expansion itself.
        # The scaled support vectors are made once per fitted (or loaded) model, not per call:
        # the same arrays, so the same numbers.
        cache = self.__dict__.get("_rbf_cache")
        if cache is None or cache[0] is not self.support_vectors_:
            cache = (self.support_vectors_,
                     rbf_constants(self.support_vectors_, self.gamma_, self.sv_sq_norms_))
            self._rbf_cache = cache
        return rbf_expansion(X, self.support_vectors_, self.dual_coef_, self.gamma_,
                             n_jobs=self.n_jobs, check_finite=True, scaled=cache[1])

    def __getstate__(self) -> dict:  # type: ignore[type-arg]
        state = super().__getstate__()
        state.pop("_rbf_cache", None)  # derived from the fitted arrays; never saved
        return state

    _finite_checked_in_score = True  # rbf_expansion(check_finite=True) detects NaN/inf

    @property
    def n_support_vectors_(self) -> int:
        """Number of support vectors (sets the scoring cost)."""
        self._check_fitted("n_support_vectors_")
        return int(self.support_vectors_.shape[0])
