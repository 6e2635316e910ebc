"""The feature arithmetic, written once and used by both builders.

Every feature is a *finish* function of a few *primitives* (rolling sums of centred values,
squares and cross products; rolling min / max; sorted windows; lagged values; the timestamp).
The batch builder computes the primitives with vectorised kernels over whole columns, the
streaming builder keeps them up to date one row at a time, and both pass them through the same
finish functions below. The finish functions are plain element-wise numpy expressions, so they
work on ``(metrics, rows)`` blocks and on ``(windows, metrics)`` single-row blocks alike and give
the same bits for the same inputs.

Rolling sums are where batch and streaming could drift apart (a cumulative sum over a million
rows loses precision, and a running sum in the live path rounds differently). Both builders use
the same *aligned block* decomposition instead: rows are cut into blocks of ``w`` rows starting at
row 0, and the window ending at row ``t`` is the suffix of the previous block plus the prefix of
the current one (the van Herk / Gil-Werman scheme). Prefixes and suffixes are sequential
accumulations over at most ``w`` rows, so the rounding error is bounded by the window, not the
series length, and the streaming builder reproduces the very same additions in the same order:
batch and streaming sums are bit-identical. The same scheme gives rolling min / max.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from aws_anomaly.features.spec import P10_P90_SIGMA, QUANTILES

__all__ = [
    "IDENTITY",
    "block_reduce",
    "block_sums",
    "calendar",
    "calendar_one",
    "channels",
    "finish_corr",
    "finish_lag",
    "finish_order_stats",
    "finish_quantiles",
    "finish_ratio",
    "finish_window",
    "quantile_ranks",
    "sort_columns",
    "sorting_network",
    "sparse_levels",
    "sparse_window",
    "suffix_scan",
]

#: Identity element of each reduction, used for padding and "no previous block".
IDENTITY = {np.add: 0.0, np.minimum: np.inf, np.maximum: -np.inf}

_DAY_NS = 86_400 * 10**9


def channels(xc: np.ndarray, pa: np.ndarray, pb: np.ndarray, products: bool) -> np.ndarray:
    """Stack the summed channels: centred values, their squares and (optionally) pair products.

    ``xc`` is ``(m, ...)``; the result is ``(2m [+ pairs], ...)``.
    """
    parts = [xc, xc * xc]
    if products and len(pa):
        parts.append(xc[pa] * xc[pb])
    return np.concatenate(parts, axis=0)


def suffix_scan(a: np.ndarray, op: np.ufunc) -> np.ndarray:
    """Sequential ``op`` accumulation from the end along the last axis."""
    return op.accumulate(a[..., ::-1], axis=-1)[..., ::-1]


def block_reduce(a: np.ndarray, w: int, op: np.ufunc) -> np.ndarray:
    """Causal rolling ``op`` (add / minimum / maximum) over ``w`` rows along the last axis.

    Column 0 of ``a`` must sit on a block boundary (an absolute row index divisible by ``w``).
    Row ``i`` of the result reduces rows ``max(block_start, i - w + 1) .. i`` where windows that
    reach before column 0 are cut at column 0 (the expanding warm-up when column 0 is row 0).
    Each window is ``suffix(previous block) op prefix(current block)``, both accumulated
    sequentially: the streaming builder repeats exactly these operations.

    >>> block_reduce(np.array([[1.0, 2.0, 3.0, 4.0, 5.0]]), 2, np.add)
    array([[1., 3., 5., 7., 9.]])
    """
    c, n = a.shape
    nf, r = divmod(n, w)
    out = np.empty((c, n))
    if nf:
        b3 = a[:, : nf * w].reshape(c, nf, w)
        o3 = out[:, : nf * w].reshape(c, nf, w)  # a view: out rows are contiguous
        op.accumulate(b3, axis=2, out=o3)
        if nf > 1 and w > 1:
            op(o3[:, 1:, : w - 1], suffix_scan(b3[:, :-1, 1:], op), out=o3[:, 1:, : w - 1])
    if r:
        tail = out[:, nf * w:]
        op.accumulate(a[:, nf * w:], axis=1, out=tail)
        if nf:
            last = a[:, (nf - 1) * w: nf * w]
            op(tail, suffix_scan(last, op)[:, 1: r + 1], out=tail)
    return out


def block_sums(xt: np.ndarray, s: int, c1: int, w: int, ref: np.ndarray, pa: np.ndarray,
               pb: np.ndarray, products: bool) -> np.ndarray:
    """Rolling sums of :func:`channels` of ``xt[:, s:c1] - ref`` over ``w`` rows (batch path).

    The same numbers as ``block_reduce(channels(...), w, np.add)`` (the same additions in the
    same order) but laid out ``(position in block, channel, block)`` so that each sequential
    step adds whole vectors of blocks at once instead of running one short dependency chain
    per block. ``s`` must be a multiple of ``w``; returns ``(channels, c1 - s)``.
    """
    m = xt.shape[0]
    n = c1 - s
    nf, r = divmod(n, w)
    nch = 2 * m + (len(pa) if products else 0)
    out = np.empty((nch, n))
    if nf:
        v = xt[:, s: s + nf * w].reshape(m, nf, w).transpose(2, 0, 1)  # (w, m, nf) view
        ch = np.empty((w, nch, nf))
        xc = ch[:, :m]
        np.subtract(v, ref[None, :, None], out=xc)
        np.multiply(xc, xc, out=ch[:, m:2 * m])
        if nch > 2 * m:
            np.multiply(xc[:, pa], xc[:, pb], out=ch[:, 2 * m:])
        pre = np.empty_like(ch)
        pre[0] = ch[0]
        for i in range(1, w):
            np.add(pre[i - 1], ch[i], out=pre[i])
        if nf > 1 and w > 1:
            suf = np.empty((w - 1, nch, nf - 1))  # suffixes from position 1 of blocks 0..nf-2
            suf[-1] = ch[-1, :, :-1]
            for i in range(w - 3, -1, -1):
                np.add(suf[i + 1], ch[i + 1, :, :-1], out=suf[i])
            np.add(pre[: w - 1, :, 1:], suf, out=pre[: w - 1, :, 1:])
        out[:, : nf * w].reshape(nch, nf, w)[...] = pre.transpose(1, 2, 0)
    if r:
        tail_ch = channels(xt[:, s + nf * w: c1] - ref[:, None], pa, pb, products)
        tail = out[:, nf * w:]
        np.add.accumulate(tail_ch, axis=1, out=tail)
        if nf:
            last_ch = channels(xt[:, s + (nf - 1) * w: s + nf * w] - ref[:, None], pa, pb,
                               products)
            np.add(tail, suffix_scan(last_ch, np.add)[:, 1: r + 1], out=tail)
    return out


def sparse_levels(a: np.ndarray, top: int, op: np.ufunc) -> list[np.ndarray]:
    """``levels[k][:, i]`` = ``op`` over columns ``max(0, i - 2**k + 1) .. i``, k <= ``top``.

    Exact for min / max (any order gives the same bits), so batch may use it while the
    streaming builder uses block prefixes and suffixes.
    """
    levels = [a]
    for k in range(top):
        h = 1 << k
        prev = levels[-1]
        nxt = np.empty_like(prev)
        nxt[:, :h] = prev[:, :h]
        if h < a.shape[1]:
            op(prev[:, h:], prev[:, :-h], out=nxt[:, h:])
        levels.append(nxt)
    return levels


def sparse_window(levels: list[np.ndarray], w: int, first: int, op: np.ufunc) -> np.ndarray:
    """Rolling ``op`` over ``w`` columns for columns ``first ..`` from :func:`sparse_levels`.

    Windows reaching before column 0 are cut at column 0 (expanding warm-up).
    """
    k = w.bit_length() - 1
    lv = levels[k]
    n = lv.shape[1]
    back = first - w + (1 << k)
    if back >= 0:
        other = lv[:, back: n - w + (1 << k)]
    else:
        other = lv[:, np.maximum(np.arange(first, n) - w + (1 << k), 0)]
    return op(lv[:, first:], other)


def finish_window(x: np.ndarray, s1: np.ndarray, s2: np.ndarray, cnt: np.ndarray,
                  ref: np.ndarray, scale_floor: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean, population std, z-score, centred mean and "has spread" from rolling sums.

    ``s1``/``s2`` are sums of ``x - ref`` and its square over ``cnt`` rows. Returns
    ``(mean, std, z, centred_mean, spread)``; the variance is clipped at 0 (rounding can make it
    slightly negative), the z denominator is floored at ``scale_floor * (1 + |mean|)`` and
    ``spread`` tells where the std is above that floor.
    """
    d = s1 / cnt
    var = s2 / cnt - d * d
    np.maximum(var, 0.0, out=var)
    std = np.sqrt(var)
    mean = d + ref
    floor = scale_floor * (1.0 + np.abs(mean))
    z = (x - mean) / np.maximum(std, floor)
    return mean, std, z, d, std > floor


def finish_corr(sab: np.ndarray, da: np.ndarray, db: np.ndarray, std_a: np.ndarray,
                std_b: np.ndarray, spread_a: np.ndarray, spread_b: np.ndarray,
                cnt: np.ndarray) -> np.ndarray:
    """Rolling Pearson correlation from the sum of centred products; 0 where a side is flat."""
    cov = sab / cnt - da * db
    ok = spread_a & spread_b
    # where a side is flat: divide by (product + 1), a safe finite value, then zero it out
    r = cov / (std_a * std_b + ~ok) * ok
    return np.minimum(np.maximum(r, -1.0), 1.0)


def finish_lag(x: np.ndarray, lagged: np.ndarray, ratio_floor: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """Difference and rate of change against a lagged value."""
    diff = x - lagged
    roc = diff / np.maximum(np.abs(lagged), ratio_floor)
    return diff, roc


def finish_ratio(a: np.ndarray, b: np.ndarray, ratio_floor: float) -> np.ndarray:
    """Cross-metric ratio ``a / max(|b|, ratio_floor)``."""
    return a / np.maximum(np.abs(b), ratio_floor)


def quantile_ranks(cnt: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The ranks (0 = smallest) below and above each of ``QUANTILES`` in ``cnt`` values."""
    lo, hi, _ = _positions(cnt)
    return tuple(int(i) for i in lo), tuple(int(i) for i in hi)


@lru_cache(maxsize=64)
def sorting_network(n: int) -> tuple[tuple[int, int], ...]:
    """Comparators ``(i, j)``, ``i < j``, of Batcher's odd-even merge sort of ``n`` inputs:
    applied in order (``i`` gets the smaller, ``j`` the larger), they sort any input. The
    network of the next power of two with the comparators that touch an input ``>= n``
    dropped (those inputs would be +inf and never move).

    >>> sorting_network(3)
    ((0, 1), (0, 2), (1, 2))
    """
    size = 1
    while size < n:
        size *= 2
    out = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p) and i + j + k < n:
                        out.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return tuple(out)


def sort_columns(cols: list[np.ndarray]) -> list[np.ndarray]:
    """Element-wise order statistics of equally shaped arrays: ``out[r]`` holds, at each
    position, the ``r``-th smallest of the ``cols`` there (:func:`sorting_network` of
    ``np.minimum`` / ``np.maximum``: exact, the values ``np.sort`` puts there; finite input).

    For a few columns this is cheaper than sorting each position's values: a window of 12
    values over 16k rows takes 42 comparators of two vector operations.
    """
    n = len(cols)
    buf = np.empty((n + 1, *cols[0].shape))
    for i, c in enumerate(cols):
        buf[i] = c
    where = list(range(n))  # buffer holding each rank's current values
    spare = n
    for a, b in sorting_network(n):
        ia, ib = where[a], where[b]
        np.minimum(buf[ia], buf[ib], out=buf[spare])
        np.maximum(buf[ia], buf[ib], out=buf[ib])
        where[a], spare = spare, ia
    return [buf[i] for i in where]


@lru_cache(maxsize=256)
def _positions(cnt: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Order-statistic indices (low, high) and interpolation weights of ``QUANTILES``."""
    pos = np.asarray(QUANTILES) * (cnt - 1)
    lo = np.floor(pos).astype(np.intp)
    return lo, np.minimum(lo + 1, cnt - 1), pos - lo


def finish_quantiles(sorted_: np.ndarray, cnt: int, x: np.ndarray, scale_floor: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Quantiles (p10, median, p90; linear interpolation) and the robust z-score.

    ``sorted_`` holds windows of ``cnt`` rows sorted along the last axis; returns
    ``(quantiles (..., 3), robust_z (...))``.
    """
    lo, hi, _ = _positions(cnt)
    return finish_order_stats(np.take(sorted_, lo, axis=-1), np.take(sorted_, hi, axis=-1),
                              cnt, x, scale_floor)


def finish_order_stats(a: np.ndarray, b: np.ndarray, cnt: int, x: np.ndarray,
                       scale_floor: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`finish_quantiles` from the two order statistics each quantile interpolates
    between: ``a`` / ``b`` ``(..., 3)`` the values of ranks ``quantile_ranks(cnt)``."""
    frac = _positions(cnt)[2]
    q = a + frac * (b - a)
    med = q[..., 1]
    scale = (q[..., 2] - q[..., 0]) / P10_P90_SIGMA
    robust_z = (x - med) / np.maximum(scale, scale_floor * (1.0 + np.abs(med)))
    return q, robust_z


def calendar(ns: np.ndarray) -> np.ndarray:
    """Time-of-day and day-of-week sin/cos from int64 UTC nanoseconds; ``(4, n)``.

    >>> np.round(calendar(np.array([0, 6 * 3600 * 10**9])), 6)  # Thursday 00:00 and 06:00
    array([[ 0.      ,  1.      ],
           [ 1.      ,  0.      ],
           [ 0.433884,  0.222521],
           [-0.900969, -0.974928]])
    """
    # Float arithmetic (integer division is slow); the error is ~1e-11 days.
    days = ns.astype(np.float64) / _DAY_NS
    tod = days - np.floor(days)
    week = (days + 3.0) / 7.0  # 1970-01-01 was a Thursday; Monday 00:00 = angle 0
    week -= np.floor(week)
    a = (2.0 * np.pi) * tod
    b = (2.0 * np.pi) * week
    return np.stack([np.sin(a), np.cos(a), np.sin(b), np.cos(b)])


def calendar_one(ns: int) -> np.ndarray:
    """:func:`calendar` of a single timestamp, with scalar math (the streaming fast path).

    The arithmetic is the same; ``math.sin`` and numpy's vectorised ``sin`` may differ in the
    last bit.
    """
    days = float(ns) / _DAY_NS
    tod = days - math.floor(days)
    week = (days + 3.0) / 7.0
    week -= math.floor(week)
    a = (2.0 * math.pi) * tod
    b = (2.0 * math.pi) * week
    return np.array([math.sin(a), math.cos(a), math.sin(b), math.cos(b)])
