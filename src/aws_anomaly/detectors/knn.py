"""Nearest-neighbour distance: how far a point is from everything seen in training.

The score of a row is the mean Euclidean distance to its ``n_neighbors`` nearest training rows.
On real server metrics this simple rule is one of the hardest baselines to beat (it needs no
assumption about the shape of normal behaviour: every normal state the training history visited
is a reference point), and it is the multivariate member of the label-free default model
(see docs/model.md for the measurements).

**Training scores are out-of-fit.** A training row's nearest neighbour is itself, at distance
0, so scores computed on the fitting rows would all be 0 and useless for thresholds. ``fit``
returns (and ``offset_`` uses) leave-one-out distances: each fitting row against the others.
Exact duplicates still count: a state visited twice has distance 0 to its twin, as it should.

**Views.** With ``views`` (lists of column indices), each view gets its own nearest
neighbours and the score is the mean over views of the distance divided by the square root of
the view's column count: the root-mean-square deviation per standardised feature, so a view of
3 columns and one of 12 weigh alike without any fitted weight. The label-free default model
uses two views: each metric's level and short-term volatility, and its stationary deviations
(z-scores, differences, seasonal differences); a point is far when it is far in either.

**Excess.** With ``excess`` (column indices) and ``excess_weight`` w > 0, the score adds w
times the mean over those columns of ``max(0, x)``: how far, on average, those standardised
columns sit above their training mean. A row-wise term (no neighbour, no state), so batch and
live scores stay equal. The label-free default model passes the level view's volatility
columns with w = 0.25: a server whose metrics all turn more volatile at once (an incident that
shakes every metric) scores high even when each metric's volatility alone, or the joint state,
was seen in training. Measured on the real servers: docs/model.md.

**Tail.** With ``tail_weight`` w > 0, the score adds w times an empirical-tail member (after
ECOD: Li et al., 2022): per view, each column of the reference rows that is not constant over
them gives a row's value its left and right tail probabilities under the reference's empirical
CDF, ``(1 + #{reference <= x}) / (n + 1)`` and ``(1 + #{reference >= x}) / (n + 1)``, scored as
``-log`` of each (in ``[0, log(n + 1)]``: bounded, a value beyond every reference row scores
``log(n + 1)`` however far it is), and the tail of the column's skewness sign; the view's
member is the largest of the three tails' means over the ``ceil(sqrt(columns))`` largest
columns, and the term is the mean over the views. A distance in hundreds of columns dilutes
a few columns in their far tails among many ordinary ones; the top columns' tails do not. A
row-wise term against the fixed reference (no state), so batch and live scores stay equal.
The label-free default model turns it on (w = 0.25) for data with many metrics: measured on
the real servers and the demo in docs/model.md.

**Cost.** Distances are computed with BLAS in row chunks (``|x|^2 + |t|^2 - 2 x.t``): exact up
to rounding, O(rows x reference rows x features). ``max_train_rows`` caps the reference set
with a seeded uniform subsample, so scoring cost is bounded whatever the history length.
A call of a few rows (the live path scores one point a call) with one neighbour reads the
reference set once in float32, feature-major (half the bytes of the float64 rows, in the
layout a one-row product streams best), keeps the reference rows whose float32 distance is
within a proven rounding bound of the smallest, and computes those few in float64 as the batch
path does: the same nearest distance, for about a third of the time a point. A wide view
(16 to 1,024 columns) whose leading principal axes hold most of the reference's variance reads
only those axes in the first pass: the distance along them is a lower bound of the whole
distance (an orthonormal projection never lengthens a vector), so every row whose bound is
above the distance of the best guess is left out, and the rest is checked in float64 as
before (:meth:`KNNDetector._projected_candidates`): the same nearest row, for half the reads.

Examples
--------
>>> X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
>>> det = KNNDetector().fit(X)
>>> det.training_scores_.tolist()  # leave-one-out: each corner's nearest other corner
[1.0, 1.0, 1.0, 1.0]
>>> det.score_samples(np.array([[0.5, 0.0], [4.0, 5.0]])).round(3).tolist()
[0.5, 5.0]
>>> det.explain_samples(np.array([[4.0, 5.0]])).tolist()  # nearest corner (1, 1): 9 + 16
[[9.0, 16.0]]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from aws_anomaly.detectors.base import (
    BaseDetector,
    check_float_param,
    check_int_param,
    check_n_jobs_param,
    check_random_state_param,
    map_chunks,
    seed_from,
    subsample_index,
)
from aws_anomaly.errors import ConfigError

__all__ = ["KNNDetector"]

#: Rows per distance block: (block x reference) float64 stays around 40 MB at 20k references.
_BLOCK = 256

#: Calls of at most this many rows (the live path: one row) find the nearest reference row
#: with a float32 first pass and an exact float64 check (:meth:`KNNDetector._nearest_few`).
_FEW = 4

#: Unit roundoff of float32.
_U32 = 2.0 ** -24

#: Largest ``2 |x| max|t| + max|t|^2`` (and ``|x|^2``) the float32 first pass takes (float32
#: ends at 3.4e38; a reference of tiny rows does not make a huge ``x`` safe to cast).
_F32_SAFE = 1e36

#: Views of this many columns (inclusive) get a projected first pass
#: (:meth:`KNNDetector._projected_candidates`); below, a pass over every column costs as little;
#: above, finding the axes at first use (a 608-column view: 0.16 s, once) would take seconds.
_PROJECT_COLUMNS = (16, 1024)

#: Share of the reference's variance the projected first pass keeps (its leading axes); the
#: rest is what the bound leaves out, so less would keep more candidates to check in float64.
_PROJECT_VARIANCE = 0.97

#: Fewest reference rows for which a projection pays (a small reference is read in no time).
_PROJECT_MIN_ROWS = 2048

#: About this many reference rows (a strided sample) find the projection's axes.
_PROJECT_SAMPLE = 4096

#: The tail term's few-row search reads every ``_COARSE``-th sorted reference value from a
#: small table first (:class:`_TailTable`).
_COARSE = 128


class KNNDetector(BaseDetector):
    """Mean distance to the ``n_neighbors`` nearest training rows (higher = more anomalous).

    Parameters
    ----------
    n_neighbors
        Neighbours averaged per row (>= 1).
    max_train_rows
        Reference rows kept from the training data (a seeded uniform subsample above it).
    views
        None: one view of all columns. Else a list of column-index lists (each non-empty,
        indices in range; a column may sit in several views): see the module docstring.
    excess
        None or column indices whose mean positive part is added to the score, times
        ``excess_weight`` (see the module docstring).
    excess_weight
        Weight (>= 0) of the excess term; 0 leaves the score a plain distance.
    tail_weight
        Weight (>= 0) of the tail term (see the module docstring); 0: off.
    contamination
        Fraction of training rows that ``predict`` calls anomalous (sets ``offset_``).
    random_state
        Seed of the subsample.
    n_jobs
        Threads used to score large inputs (``None`` = 1, ``-1`` = all cores).

    Attributes
    ----------
    reference_ : ndarray (n_reference, n_features)
        The training rows distances are measured to.
    views_ : list of ndarray
        Column indices of each view (one view of every column when ``views`` is None).
    reference_sq_ : ndarray (n_views, n_reference)
        Squared norms of the reference rows, per view.
    excess_ : ndarray
        Column indices of the excess term (empty when it is off).
    training_scores_ : ndarray (n_reference,)
        Leave-one-out scores of the reference rows.
    offset_ : float
    """

    _finite_checked_in_score = False
    blas_bound = True  # one row: a product with up to max_train_rows reference rows
    tail_weight: float = 0.0  # (bundles written before the tail term have no such parameter)

    def __init__(self, *, n_neighbors: int = 1, max_train_rows: int = 20000,
                 views: Sequence[Sequence[int]] | None = None,
                 excess: Sequence[int] | None = None, excess_weight: float = 0.0,
                 tail_weight: float = 0.0, contamination: float = 0.01,
                 random_state: int | None = None, n_jobs: int | None = -1) -> None:
        self.n_neighbors = n_neighbors
        self.max_train_rows = max_train_rows
        self.views = views
        self.excess = excess
        self.excess_weight = excess_weight
        self.tail_weight = tail_weight
        self.contamination = contamination
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _check_params(self) -> None:
        owner = type(self).__name__
        check_int_param(owner, "n_neighbors", self.n_neighbors, low=1)
        check_int_param(owner, "max_train_rows", self.max_train_rows, low=2)
        check_float_param(owner, "excess_weight", self.excess_weight, low=0.0, high=math.inf,
                          low_open=False)
        check_float_param(owner, "tail_weight", self.tail_weight, low=0.0, high=math.inf,
                          low_open=False)
        check_random_state_param(owner, self.random_state)
        check_n_jobs_param(owner, self.n_jobs)

    def _check_views(self, n_features: int) -> list[np.ndarray]:
        if self.views is None:
            return [np.arange(n_features, dtype=np.int64)]
        owner = type(self).__name__
        if isinstance(self.views, (str, bytes)) or not isinstance(self.views, Sequence) \
                or not self.views:
            raise ConfigError(f"{owner}: views must be None or a non-empty list of column-index "
                              f"lists, got {self.views!r}")
        out = []
        for k, view in enumerate(self.views):
            try:
                idx = np.asarray(view, dtype=np.int64).reshape(-1)
            except (TypeError, ValueError):
                idx = np.empty(0, dtype=np.int64)
            if idx.size == 0 or idx.min() < 0 or idx.max() >= n_features:
                raise ConfigError(f"{owner}: view {k} must be a non-empty list of column "
                                  f"indices in [0, {n_features}), got {view!r}")
            out.append(idx)
        return out

    def _check_excess(self, n_features: int) -> np.ndarray:
        if self.excess is None or not self.excess_weight:
            return np.empty(0, dtype=np.int64)
        try:
            idx = np.asarray(self.excess, dtype=np.int64).reshape(-1)
        except (TypeError, ValueError):
            idx = np.empty(0, dtype=np.int64)
        if isinstance(self.excess, (str, bytes)) or idx.size == 0 or idx.min() < 0 \
                or idx.max() >= n_features:
            raise ConfigError(f"{type(self).__name__}: excess must be None or a non-empty "
                              f"list of column indices in [0, {n_features}), got "
                              f"{self.excess!r}")
        return idx

    def _excess_columns(self) -> np.ndarray | None:
        """The excess term's columns, or None when it is off (bundles written before the term
        existed have no ``excess_``)."""
        idx = getattr(self, "excess_", None)
        return None if idx is None or idx.size == 0 else idx

    def _excess_term(self, xc: np.ndarray) -> np.ndarray | None:
        """``excess_weight x mean(max(0, x[excess]))`` per row, or None when it is off."""
        idx = self._excess_columns()
        if idx is None:
            return None
        return self.excess_weight * np.maximum(xc[:, idx], 0.0).mean(axis=1)

    def _row_terms(self, xc: np.ndarray) -> np.ndarray | None:
        """The row-wise terms added to the views' distances (excess, tail) of the rows ``xc``,
        or None when both are off."""
        extra = self._excess_term(xc)
        tail = self._tail_term(xc)
        if tail is None:
            return extra
        return tail if extra is None else extra + tail

    def _tail_table(self) -> _TailTable:
        """The tail term's data, made from the reference rows on first use and kept (not
        saved; :class:`_TailTable`)."""
        cache = self.__dict__.setdefault("_view_cache", {})
        hit = cache.get("tail")
        if hit is None:
            hit = cache["tail"] = _TailTable.build(
                [self._view_reference(v) for v in range(len(self.views_))], self.views_)
        return hit  # type: ignore[no-any-return]

    def _tails(self, xc: np.ndarray) -> tuple[_TailTable, np.ndarray]:
        """(the tail table, the rows' ``(3, rows, c)`` left, right and skewness-sign tail
        scores on its columns: every view's, one after the other)."""
        tt = self._tail_table()
        x = xc[:, tt.columns]
        if len(xc) <= _FEW:
            at_most, below = tt.counts_few(x)
        else:
            at_most = np.empty(x.shape, dtype=np.intp)
            below = np.empty(x.shape, dtype=np.intp)
            for j in range(len(tt.columns)):
                at_most[:, j] = np.searchsorted(tt.sorted[j], x[:, j], side="right")
                below[:, j] = np.searchsorted(tt.sorted[j], x[:, j], side="left")
        left = tt.log_tail[at_most]
        right = tt.log_tail[tt.sorted.shape[1] - below]
        return tt, np.stack([left, right, np.where(tt.left_skewed, left, right)])

    def _tail_term(self, xc: np.ndarray) -> np.ndarray | None:
        """``tail_weight`` x the mean over the views of ECOD's aggregate (the largest of the
        left, right and skewness tails' top-columns means), or None when the term is off."""
        if not self.tail_weight:
            return None
        tt, tails = self._tails(xc)
        total = np.zeros(len(xc))
        for a, b in tt.bounds:
            if b > a:
                total += np.max([_top_mean(part[:, a:b]) for part in tails], axis=0)
        return self.tail_weight * (total / len(self.views_))

    def _tail_parts(self, xc: np.ndarray, out: np.ndarray) -> None:
        """Add the tail term of the rows ``xc`` to ``out`` ``(rows, n_features)``, split over
        the columns it is the mean of: each view's winning tail's top columns, each with its
        own tail score times ``tail_weight / (views x top columns)``."""
        tt, tails = self._tails(xc)
        rows = np.arange(len(xc))
        for a, b in tt.bounds:
            if b <= a:
                continue
            parts = tails[:, :, a:b]
            win = np.argmax([_top_mean(part) for part in parts], axis=0)
            chosen = parts[win, rows]
            k = _top_k(b - a)
            top = np.argpartition(-chosen, k - 1, axis=1)[:, :k]
            out[rows[:, None], tt.columns[a + top]] += (
                (self.tail_weight / (len(self.views_) * k)) * chosen[rows[:, None], top])

    def _fit(self, X: np.ndarray) -> np.ndarray:
        self.views_ = self._check_views(X.shape[1])
        self.excess_ = self._check_excess(X.shape[1])
        n = X.shape[0]
        idx = subsample_index(n, self.max_train_rows, seed_from(self.random_state))
        if idx is None:
            idx = np.arange(n)
        self.reference_ = np.ascontiguousarray(X[idx], dtype=np.float64)
        self.reference_sq_ = np.stack([
            np.einsum("ij,ij->i", self.reference_[:, v], self.reference_[:, v])
            for v in self.views_])
        k = min(self.n_neighbors, len(self.reference_) - 1)
        self.training_scores_ = self._scores(self.reference_, k, leave_one_out=True)
        if len(idx) == n:
            return self.training_scores_
        # Rows left out of the reference set are scored against it (out-of-fit already);
        # reference rows keep their leave-one-out scores, so offset_ is out-of-fit throughout.
        scores = self._score(X)
        scores[idx] = self.training_scores_
        return scores

    def _view_reference(self, view: int) -> np.ndarray:
        """The reference rows' columns of one view, contiguous. Taken once and kept (not
        saved): a column subset is a copy, and copying the whole reference set for every
        scored block (every live point) cost more than the distances themselves."""
        v = self.views_[view]
        if len(v) == self.reference_.shape[1]:
            return self.reference_
        cache = self.__dict__.setdefault("_view_cache", {})
        ref = cache.get(view)
        if ref is None:
            ref = cache[view] = np.ascontiguousarray(self.reference_[:, v])
        return ref

    def __getstate__(self) -> dict:  # type: ignore[type-arg]
        state = super().__getstate__()
        state.pop("_view_cache", None)  # derived from reference_; rebuilt on first use
        return state

    def _sq_distances(self, xc: np.ndarray, view: int, start: int | None) -> np.ndarray:
        """(rows, reference) squared distances in one view; the diagonal block starting at
        ``start`` (leave-one-out) is set to +inf."""
        v = self.views_[view]
        ref = self._view_reference(view)
        x = xc[:, v] if len(v) < xc.shape[1] else xc
        d2 = x @ ref.T
        d2 *= -2.0
        d2 += self.reference_sq_[view]
        d2 += np.einsum("ij,ij->i", x, x)[:, None]
        if start is not None:
            rows = np.arange(len(xc))
            d2[rows, start + rows] = np.inf
        np.maximum(d2, 0.0, out=d2)
        return d2

    def _nearest_sq(self, xc: np.ndarray, view: int, start: int | None) -> np.ndarray:
        """(rows,) squared distance to the nearest reference row in one view: the same bits as
        the minimum of :meth:`_sq_distances`, in a third of the passes over the (rows x
        reference) block. The factor -2 sits in a cached copy of the reference (a power of
        two: every product and partial sum is scaled exactly), and the row's own ``|x|^2`` and
        the clamp at 0 come after the minimum (rounding is monotone, so the minimum of the
        rounded sums is the rounded sum of the minimum)."""
        v = self.views_[view]
        ref_m2 = self._reference_m2(view)
        x = xc[:, v] if len(v) < xc.shape[1] else xc
        d2 = x @ ref_m2.T
        d2 += self.reference_sq_[view]
        if start is not None:
            rows = np.arange(len(xc))
            d2[rows, start + rows] = np.inf
        nearest = d2.min(axis=1)
        nearest += np.einsum("ij,ij->i", x, x)
        return np.maximum(nearest, 0.0, out=nearest)

    def _reference_m2(self, view: int) -> np.ndarray:
        """The view's reference rows times -2, contiguous (cached like
        :meth:`_view_reference`)."""
        cache = self.__dict__.setdefault("_view_cache", {})
        ref_m2 = cache.get(("-2", view))
        if ref_m2 is None:
            ref_m2 = cache[("-2", view)] = np.ascontiguousarray(-2.0 * self._view_reference(view))
        return ref_m2

    def _few_reference(self, view: int) -> tuple[np.ndarray, np.ndarray, float, float]:
        """(the float32 feature-major table ``(d + 1, n)``: the reference rows times -2, then
        their squared norms, so that its product with ``(x, 1)`` is ``|t_i|^2 - 2 x.t_i``; the
        float64 reference times -2; the rounding factor ``2 (d + 4) u`` and the largest
        reference norm ``T`` of :meth:`_nearest_few`) of a view, made on first use and kept
        (not saved: derived from ``reference_``)."""
        cache = self.__dict__.setdefault("_view_cache", {})
        few = cache.get(("f32", view))
        if few is None:
            sq = self.reference_sq_[view]
            ref_m2 = self._reference_m2(view)
            table = np.empty((ref_m2.shape[1] + 1, len(sq)), dtype=np.float32)
            table[:-1] = ref_m2.T
            table[-1] = sq
            few = cache[("f32", view)] = (table, ref_m2, 2.0 * (len(self.views_[view]) + 4) * _U32,
                                          float(np.sqrt(sq.max())))
        return few

    def _nearest_few(self, x: np.ndarray, view: int) -> tuple[float, int]:
        """(:meth:`_nearest_sq` without leave-one-out, the nearest reference row) of one row
        ``x`` (the view's columns), for a fraction of the cost of a pass over the reference
        in float64.

        A float32 first pass estimates ``e_i = |t_i|^2 - 2 x.t_i`` for every reference row
        ``t_i`` as one product of ``(x, 1)`` with a feature-major float32 table of the view's
        reference times -2 and its squared norms (half the bytes, in the layout a one-row
        product streams best). Rounding (of ``x`` and ``t`` to float32, of the products, of
        any summation order of the ``d + 1`` terms, of ``|t|^2``) moves an estimate by at most
        ``E = (d + 4) u (2 |x| T + T^2)`` (``u`` = 2^-24, ``T`` the largest ``|t_i|``), so the
        rows whose estimate is within ``2 E`` of the smallest hold every row whose exact
        ``e_i`` is the smallest; the bound used is twice that. A wide view may estimate a lower
        bound on its leading axes instead (:meth:`_projected_candidates`). The candidates (a
        few rows in practice) are computed in float64 as :meth:`_nearest_sq` computes every
        row, so the result is its nearest distance, up to the last bits of the float64
        products (a one-row product may sum in another order than a block's)."""
        table, ref_m2, rel, tmax = self._few_reference(view)
        sq = self.reference_sq_[view]
        x2 = float(x @ x)
        size = 2.0 * math.sqrt(x2) * tmax + tmax * tmax
        if not (size < _F32_SAFE and x2 < _F32_SAFE):  # float32 would overflow: float64
            row = np.zeros((1, self.reference_.shape[1]))
            row[0, self.views_[view]] = x
            d2 = self._sq_distances(row, view, None)[0]  # _nearest_sq's values, every row
            i = int(np.argmin(d2))
            return float(d2[i]), i
        proj = self._projection(view)
        if proj is not None:
            cand = self._projected_candidates(x, x2, view, proj)
        else:
            q = np.empty(len(x) + 1, dtype=np.float32)
            q[:-1] = x
            q[-1] = 1.0
            est = q @ table
            cand = (est <= float(est.min()) + 2.0 * rel * size).nonzero()[0]
        d2 = ref_m2.take(cand, axis=0) @ x
        d2 += sq.take(cand)
        i = int(d2.argmin())
        return max(float(d2[i]) + x2, 0.0), int(cand[i])

    def _projection(self, view: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float] | None:
        """The projected first pass's pieces for a view, or None where it does not pay
        (:data:`_PROJECT_COLUMNS`, :data:`_PROJECT_MIN_ROWS`, or more than half the columns
        needed to hold :data:`_PROJECT_VARIANCE` of the variance): ``(centre (d,), axes (d,
        p) orthonormal, the float32 feature-major table (p + 1, n) whose product with ``(a,
        1)`` is ``|b_i|^2 - 2 a.b_i`` (``a``, ``b_i`` the projected query and reference rows),
        the largest ``|b_i|``, the largest ``|t_i|``)``. Made on first use from the covariance
        of a strided sample of the reference (:data:`_PROJECT_SAMPLE` rows: the axes only
        decide how many rows the bound rules out, never which row is the nearest) and kept,
        not saved."""
        cache = self.__dict__.setdefault("_view_cache", {})
        key = ("proj", view)
        if key in cache:
            return cache[key]  # type: ignore[no-any-return]
        ref = self._view_reference(view)
        n, d = ref.shape
        out = None
        if _PROJECT_COLUMNS[0] <= d <= _PROJECT_COLUMNS[1] and n >= _PROJECT_MIN_ROWS:
            centre = ref.mean(axis=0)
            dev = ref - centre
            # any orthonormal axes keep the bound exact; a strided sample finds good ones
            sample = dev[::max(1, n // _PROJECT_SAMPLE)]
            var, axes = np.linalg.eigh(sample.T @ sample)
            var, axes = var[::-1], axes[:, ::-1]
            share = np.cumsum(np.maximum(var, 0.0))
            p = int(np.searchsorted(share, _PROJECT_VARIANCE * share[-1])) + 1
            if share[-1] > 0 and p <= d // 2:
                axes = np.ascontiguousarray(axes[:, :p])
                b = dev @ axes
                b2 = np.einsum("ij,ij->i", b, b)
                table = np.empty((p + 1, n), dtype=np.float32)
                table[:p] = (b * -2.0).T
                table[p] = b2
                out = (centre, axes, table, float(np.sqrt(b2.max())),
                       float(np.sqrt(self.reference_sq_[view].max())))
        cache[key] = out
        return out

    def _projected_candidates(self, x: np.ndarray, x2: float, view: int,
                              proj: tuple[np.ndarray, np.ndarray, np.ndarray, float, float]
                              ) -> np.ndarray:
        """Reference rows (indices) that may be the nearest to ``x`` (the view's columns;
        ``x2`` = ``|x|^2``), from the projection on the view's leading axes.

        With ``a`` and ``b_i`` the projections of ``x`` and of reference row ``t_i`` (centred),
        ``|x - t_i|^2 >= |a - b_i|^2 = |a|^2 + f_i`` with ``f_i = |b_i|^2 - 2 a.b_i`` (the axes
        are orthonormal). ``f_i`` is estimated in float32, within ``E = 2 (p + 4) u (2 |a| B +
        B^2)`` (``B`` the largest ``|b_i|``; the same rounding argument as the unprojected
        pass, doubled). The row ``j`` of the smallest estimate is the guess: its exact
        ``e_j = |t_j|^2 - 2 x.t_j`` (float64, as every candidate is computed). A row ``i`` can
        be the nearest only if ``|a|^2 + f_i - |x|^2 <= e_j``, so the rows whose estimate is
        within that (plus ``2 E`` and a float64 allowance of ``1e-9 (|x| + T)^2``, ``T`` the
        largest ``|t_i|``, for the products and the axes' orthonormality) are the candidates:
        the guess and, in practice, a few more."""
        centre, axes, table, bmax, tmax = proj
        p = axes.shape[1]
        q = np.empty(p + 1)
        np.dot(x - centre, axes, out=q[:p])
        q[p] = 1.0
        a2 = float(q[:p] @ q[:p])
        est = q.astype(np.float32) @ table
        j = int(est.argmin())
        ref_m2 = self._few_reference(view)[1]
        e_j = float(ref_m2[j] @ x) + float(self.reference_sq_[view][j])
        size = 2.0 * math.sqrt(a2) * bmax + bmax * bmax
        slack = 4.0 * (p + 4) * _U32 * size + 1e-9 * (math.sqrt(x2) + tmax) ** 2
        return (est <= e_j + x2 - a2 + slack).nonzero()[0]

    def _nearest_rows(self, xc: np.ndarray, view: int) -> np.ndarray:
        """Index of each row's nearest reference row in one view (the argmin of
        :meth:`_sq_distances`; a few rows through :meth:`_nearest_few`)."""
        v = self.views_[view]
        if len(xc) <= _FEW and len(self.reference_) > 1:
            return np.array([self._nearest_few(xc[r, v], view)[1] for r in range(len(xc))],
                            dtype=np.intp)
        return np.argmin(self._sq_distances(xc, view, None), axis=1)

    def _scores_few(self, X: np.ndarray, nearest: list[np.ndarray] | None = None
                    ) -> np.ndarray:
        """:meth:`_block` (one neighbour, no leave-one-out) of a few rows, with the nearest
        distances of :meth:`_nearest_few` and the per-row arithmetic on plain floats (the
        same operations in the same order, so the same numbers). ``nearest``: a list to
        which each view's nearest reference rows (one index per row) are appended."""
        views = self.views_
        whole = X.shape[1]
        scaled = bool(self.views)
        out = np.empty(len(X))
        rows = np.empty((len(views), len(X)), dtype=np.intp)
        for r in range(len(X)):
            total = 0.0
            for view, cols in enumerate(views):
                x = X[r, cols] if len(cols) < whole else X[r]
                d2, rows[view, r] = self._nearest_few(x, view)
                part = math.sqrt(d2)
                total += part / math.sqrt(len(cols)) if scaled else part
            out[r] = total / len(views)
        if nearest is not None:
            nearest.extend(rows)
        extra = self._row_terms(X)
        if extra is not None:
            out += extra
        return out

    def _block(self, xc: np.ndarray, k: int, start: int | None) -> np.ndarray:
        n_ref = len(self.reference_)
        total = np.zeros(len(xc))
        for view, cols in enumerate(self.views_):
            if k == 1 and n_ref > 1:
                part = self._nearest_sq(xc, view, start)[:, None]
            else:
                d2 = self._sq_distances(xc, view, start)
                part = np.partition(d2, k - 1, axis=1)[:, :k] if k < n_ref else d2
            total += np.sqrt(part).mean(axis=1) / (np.sqrt(len(cols)) if self.views else 1.0)
        total /= len(self.views_)
        extra = self._row_terms(xc)
        if extra is not None:
            total += extra
        return total

    def _scores(self, X: np.ndarray, k: int, leave_one_out: bool = False) -> np.ndarray:
        n_ref = len(self.reference_)
        k = max(1, min(k, n_ref - (1 if leave_one_out else 0)))
        if k == 1 and n_ref > 1 and not leave_one_out and len(X) <= _FEW:
            return self._scores_few(X)
        if leave_one_out:
            out = np.empty(len(X))
            for s in range(0, len(X), _BLOCK):
                out[s:s + _BLOCK] = self._block(X[s:s + _BLOCK], k, s)
            return out

        def chunk(xc: np.ndarray) -> np.ndarray:
            res = np.empty(len(xc))
            for s in range(0, len(xc), _BLOCK):
                res[s:s + _BLOCK] = self._block(xc[s:s + _BLOCK], k, None)
            return res

        return map_chunks(chunk, X, n_jobs=self.n_jobs)

    def _score(self, X: np.ndarray) -> np.ndarray:
        return self._scores(X, self.n_neighbors)

    def explain_samples(self, X: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Per-feature squared differences to each row's nearest reference row, (n, n_features).

        Per view, the squared distance is the sum of these over the view's columns, so each
        feature's share is an exact, additive attribution ("which features make this point far
        from everything seen in training"). With several views, each view's differences are
        divided by its column count (as its distance is by the square root) and summed over
        the views a column belongs to.

        With the excess term on, the parts are the score itself split over the columns
        (:meth:`_explain_score`): each row's parts sum to its score.

        ``weights`` ``(n_features, k)``: the parts times ``weights``, ``(n, k)``, summed view
        by view without the ``(n, n_features)`` parts (a model passes its metrics' column
        membership, :func:`aws_anomaly.attribution.metric_membership`: each metric's part).
        """
        arr = self._validate(X, method="explain_samples", reset=False)
        return self._explain(arr, None, weights)

    def prepare_live(self) -> None:
        """Build now what the first few-row search would build (:meth:`_nearest_few`: each
        view's float32 table and, for a wide view, its projection; the tail term's sorted
        table), so that the first live point of a freshly trained or loaded model does not pay
        for it (31-152 ms on the real servers' views). The search's tables only where that
        search runs (one neighbour, more than one reference row); the same numbers either way
        (kept, not saved)."""
        self._check_fitted("prepare_live")
        if self.tail_weight:
            self._tail_table()
        if self.n_neighbors != 1 or len(self.reference_) <= 1:
            return
        for view in range(len(self.views_)):
            self._few_reference(view)
            self._projection(view)

    def score_explained(self, X: np.ndarray
                        ) -> tuple[np.ndarray, Callable[..., np.ndarray]]:
        """(:meth:`score_prepared` of ``X``, a function ``explain(weights=None)`` that returns
        :meth:`explain_samples` of ``X``): the explanation reuses the nearest reference rows
        the score found, so a flagged live point costs one search, not two. The same numbers
        as the two calls (the same rows, found the same way). ``X`` as for
        :meth:`score_prepared`."""
        if not (self.n_neighbors == 1 and len(self.reference_) > 1 and len(X) <= _FEW):
            return self.score_prepared(X), lambda weights=None: self._explain(X, None, weights)
        nearest: list[np.ndarray] = []
        scores = self._scores_few(X, nearest)
        return scores, lambda weights=None: self._explain(X, nearest, weights)

    def _block_nearest(self, xc: np.ndarray, view: int, nearest: list[np.ndarray] | None,
                       start: int) -> np.ndarray:
        """The nearest reference rows (in ``view``) of the block ``xc`` starting at row
        ``start``: taken from ``nearest`` (:meth:`score_explained`'s search) or found here."""
        if nearest is None:
            return self._nearest_rows(xc, view)
        return nearest[view][start:start + len(xc)]

    def _explain(self, arr: np.ndarray, nearest: list[np.ndarray] | None,
                 weights: np.ndarray | None = None) -> np.ndarray:
        """:meth:`explain_samples` of validated rows; ``nearest``: each view's nearest
        reference rows when the caller has them (:meth:`score_explained`), else found here."""
        if self._excess_columns() is not None or self.tail_weight:
            parts = self._explain_score(arr, nearest)
            return parts if weights is None else parts @ weights
        out = np.zeros((len(arr), arr.shape[1] if weights is None else weights.shape[1]))
        for s in range(0, len(arr), _BLOCK):
            xc = arr[s:s + _BLOCK]
            for view, cols in enumerate(self.views_):
                near = self._block_nearest(xc, view, nearest, s)
                diff = xc[:, cols] - self._view_reference(view)[near]
                diff *= diff
                if weights is not None:  # the column count's division sits in the weights
                    out[s:s + _BLOCK] += diff @ self._view_weights(view, weights)
                    continue
                if self.views:
                    diff /= len(cols)
                out[s:s + _BLOCK, cols] += diff
        return out

    def _view_weights(self, view: int, weights: np.ndarray) -> np.ndarray:
        """``weights``' rows of the view's columns, divided by the view's column count when
        there are views (as its parts are): kept for the last ``weights`` object seen (a
        model passes the same one on every call), not saved."""
        cache = self.__dict__.setdefault("_view_cache", {})
        hit = cache.get(("w", view))
        if hit is not None and hit[0] is weights:
            return hit[1]  # type: ignore[no-any-return]
        cols = self.views_[view]
        w = weights[cols] / len(cols) if self.views else weights[cols]
        cache[("w", view)] = (weights, w)
        return w

    def _explain_score(self, arr: np.ndarray, nearest: list[np.ndarray] | None = None
                       ) -> np.ndarray:
        """With the excess term on: the score itself split over the columns, (n, n_features).

        Each view's part of the score (its distance / sqrt(columns) / number of views) is
        split over its columns in proportion to their squared differences to the nearest
        reference row; the excess term's part over its columns in proportion to
        ``max(0, x)``. The parts of a row sum to its score (one nearest neighbour)."""
        out = np.zeros_like(arr)
        n_views = len(self.views_)
        for s in range(0, len(arr), _BLOCK):
            xc = arr[s:s + _BLOCK]
            for view, cols in enumerate(self.views_):
                near = self._block_nearest(xc, view, nearest, s)
                diff = (xc[:, cols] - self._view_reference(view)[near]) ** 2
                total = diff.sum(axis=1, keepdims=True)
                part = np.sqrt(total) / (np.sqrt(len(cols)) if self.views else 1.0) / n_views
                out[s:s + _BLOCK, cols] += np.divide(diff * part, total,
                                                     out=np.zeros_like(diff), where=total > 0)
            idx = self._excess_columns()
            if idx is not None:
                out[s:s + _BLOCK, idx] += ((self.excess_weight / idx.size)
                                           * np.maximum(xc[:, idx], 0.0))
            if self.tail_weight:
                self._tail_parts(xc, out[s:s + _BLOCK])
        return out


def _top_k(columns: int) -> int:
    """How many of a view's tail columns its aggregate averages: ``ceil(sqrt(columns))``."""
    return max(1, math.ceil(math.sqrt(columns)))


def _top_mean(scores: np.ndarray) -> np.ndarray:
    """Per row, the mean of the :func:`_top_k` largest of ``scores`` ``(rows, columns)``."""
    k = _top_k(scores.shape[1])
    return -np.mean(np.partition(-scores, k - 1, axis=1)[:, :k], axis=1)


class _TailTable:
    """What the tail term looks values up in (:meth:`KNNDetector._tail_table`), every view's
    columns one after the other.

    ``columns``: the positions (in the detector's rows) of each view's columns that are not
    constant over the reference; ``bounds``: each view's ``[a, b)`` in them; ``sorted``: their
    reference values sorted, one column a row ``(c, n)``; ``coarse``: every ``_COARSE``-th of
    those and each column's largest, the first levels of :meth:`counts_few` (a table that
    stays in cache); ``left_skewed``: negative third central moment (ECOD's choice of tail);
    ``log_tail``: ``log(n + 1) - log(1 + count)`` for every count 0..n (a lookup, so every path
    gives the same bits)."""

    def __init__(self, columns: np.ndarray, bounds: list[tuple[int, int]], srt: np.ndarray,
                 left_skewed: np.ndarray) -> None:
        self.columns, self.bounds, self.sorted = columns, bounds, srt
        self.left_skewed = left_skewed
        n = srt.shape[1]
        self.coarse = np.ascontiguousarray(
            np.hstack([srt[:, _COARSE - 1::_COARSE][:, :n // _COARSE], srt[:, -1:]]))
        self.log_tail = math.log(n + 1) - np.log1p(np.arange(n + 1, dtype=np.float64))

    @classmethod
    def build(cls, references: list[np.ndarray], views: list[np.ndarray]) -> _TailTable:
        """From each view's reference rows ``(n, view columns)`` and column positions."""
        cols, bounds, parts, left = [], [], [], []
        at = 0
        for ref, view in zip(references, views, strict=True):
            keep = np.flatnonzero(ref.max(axis=0) > ref.min(axis=0))
            sub = ref[:, keep]
            cols.append(view[keep])
            bounds.append((at, at + len(keep)))
            at += len(keep)
            left.append(np.mean((sub - sub.mean(axis=0)) ** 3, axis=0) < 0)
            parts.append(np.sort(sub, axis=0).T)
        n = len(references[0])
        srt = np.ascontiguousarray(np.vstack(parts)) if at else np.empty((0, n))
        return cls(np.concatenate(cols).astype(np.intp), bounds, srt, np.concatenate(left))

    def counts_few(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(#{reference <= x}, #{reference < x})`` per value of the few rows ``x`` ``(rows,
        c)``: the two ``np.searchsorted`` sides of every column at once (the same integers),
        for the live path, where ``2 c`` calls of a few microseconds each cost more than the
        rest of the point.

        Binary lifting over ``(rows, 2 c)`` values: ``#{reference < x}`` is ``#{reference <=
        the float just below x}``, so both sides are one search; each step adds a power of two
        to the count where the reference value it lands on is still ``<= x``. While the steps
        are ``_COARSE`` or more, every probe is a multiple of it and reads :attr:`coarse`. A
        probe past the end reads the column's largest value: where that is ``<= x`` every
        value is, and the count, capped at ``n``, is ``n``."""
        c, n = self.sorted.shape
        q = np.concatenate([x, np.nextafter(x, -np.inf)], axis=1)
        pos = np.zeros(q.shape, dtype=np.intp)
        step = 1 << (n.bit_length() - 1)
        if step >= _COARSE:
            m = self.coarse.shape[1]  # n // _COARSE multiples, then the largest value
            base = np.tile(np.arange(c, dtype=np.intp) * m - 1, 2)
            flat = self.coarse.reshape(-1)
            while step >= _COARSE:
                probe = np.minimum(pos + step, m * _COARSE)
                probe //= _COARSE
                probe += base
                pos += (flat.take(probe) <= q) * step
                step >>= 1
        base = np.tile(np.arange(c, dtype=np.intp) * n - 1, 2)
        flat = self.sorted.reshape(-1)
        while step:
            probe = np.minimum(pos + step, n)
            probe += base
            pos += (flat.take(probe) <= q) * step
            step >>= 1
        np.minimum(pos, n, out=pos)
        return pos[:, :c], pos[:, c:]
