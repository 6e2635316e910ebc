"""Batch feature builder: a whole series at once, in row chunks, with O(rows) kernels."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from aws_anomaly.errors import DataError
from aws_anomaly.features.kernels import (
    block_reduce,
    block_sums,
    calendar,
    channels,
    finish_corr,
    finish_lag,
    finish_order_stats,
    finish_quantiles,
    finish_ratio,
    finish_window,
    quantile_ranks,
    sort_columns,
    sparse_levels,
    sparse_window,
)
from aws_anomaly.features.spec import MAX_ABS_VALUE, FeaturePlan, FeatureSpec

__all__ = [
    "FeatureMatrix",
    "build_features",
    "check_values",
    "iter_feature_columns",
    "iter_features",
    "plan_for",
    "timestamps_ns",
    "transpose_into",
]

#: Rows per chunk: temporaries stay in cache, the output is written once.
CHUNK_ROWS = 16_384
#: Most worker threads the batch builder uses (chunks are independent).
MAX_THREADS = 2
#: Use the block-vectorised rolling sums once a chunk holds this many blocks of a window.
BLOCK_SUMS_MIN_BLOCKS = 64
#: Rolling quantiles over windows up to this many rows take a sorting network of element-wise
#: min / max over the window's shifted columns (exact); longer ones sort each window.
NETWORK_MAX_WINDOW = 16


@dataclass(frozen=True)
class FeatureMatrix:
    """Features of one series.

    Attributes
    ----------
    values
        ``(n, k)`` float64, finite everywhere (warm-up rows included).
    names
        The ``k`` column names.
    ready
        ``(n,)`` bool: ``ready[i] = i + 1 >= spec.min_history``.
    groups
        Metric -> column indices derived from it (cross-metric columns under both metrics,
        calendar columns under ``"time"``).
    """

    values: np.ndarray
    names: tuple[str, ...]
    ready: np.ndarray
    groups: dict[str, list[int]]

    def frame(self, timestamps: pd.DatetimeIndex | None = None) -> pd.DataFrame:
        """The features as a DataFrame (for notebooks and reports)."""
        return pd.DataFrame(self.values, columns=list(self.names), index=timestamps)


@lru_cache(maxsize=64)
def _plan(metrics: tuple[str, ...], spec: FeatureSpec) -> FeaturePlan:
    return FeaturePlan.build(metrics, spec)


def plan_for(metrics: Sequence[str], spec: FeatureSpec) -> FeaturePlan:
    """The (cached) column layout for ``metrics`` under ``spec``."""
    if isinstance(metrics, str):
        return FeaturePlan.build(metrics, spec)  # raises the clear error
    return _plan(tuple(metrics), spec)


def _fmt_row(i: int, ns: np.ndarray | None) -> str:
    if ns is None or i >= len(ns):
        return f"row {i}"
    return f"row {i} ({pd.Timestamp(int(ns[i]), tz='UTC').isoformat()})"


def check_values(values: object, metrics: Sequence[str], ns: np.ndarray | None = None,
                 where: str = "feature input") -> np.ndarray:
    """Validate a ``(n, m)`` value block: 2-D, one column per metric, finite, not huge."""
    try:
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: values must be numeric, got {type(values).__name__}: "
                        f"{exc}") from None
    if x.ndim != 2:
        raise DataError(f"{where}: values must be 2-D (rows, metrics), got shape {x.shape}")
    if x.shape[1] != len(metrics):
        raise DataError(f"{where}: values have {x.shape[1]} columns but {len(metrics)} metrics "
                        f"were named {list(metrics)}")
    if x.size and not (np.abs(x) <= MAX_ABS_VALUE).all():
        bad = ~(np.abs(x) <= MAX_ABS_VALUE)
        rows, cols = np.nonzero(bad)
        i, j = int(rows[0]), int(cols[0])
        what = "NaN/inf" if not np.isfinite(x[i, j]) else f"magnitude above {MAX_ABS_VALUE:g}"
        raise DataError(
            f"{where}: metric '{metrics[j]}' has {int(bad[:, j].sum())} value(s) with "
            f"{what}, first at {_fmt_row(i, ns)}: {float(x[i, j])!r}; values must be finite with "
            f"|value| <= {MAX_ABS_VALUE:g} (fill gaps in the Dataset layer)")
    return x


def timestamps_ns(timestamps: object, n: int, where: str = "feature input") -> np.ndarray:
    """UTC int64 nanoseconds of a strictly increasing ``DatetimeIndex`` of length ``n``.

    A tz-naive index is taken as UTC.
    """
    if not isinstance(timestamps, pd.DatetimeIndex):
        raise DataError(f"{where}: timestamps must be a pandas DatetimeIndex (UTC), got "
                        f"{type(timestamps).__name__}")
    if len(timestamps) != n:
        raise DataError(f"{where}: {len(timestamps)} timestamps for {n} rows of values")
    if timestamps.hasnans:
        raise DataError(f"{where}: timestamps contain NaT at row "
                        f"{int(np.flatnonzero(timestamps.isna())[0])}")
    ns = np.asarray(timestamps.as_unit("ns").asi8, dtype=np.int64)
    if n > 1:
        step = np.diff(ns)
        if not (step > 0).all():
            i = int(np.flatnonzero(step <= 0)[0]) + 1
            raise DataError(f"{where}: timestamps must be strictly increasing; "
                            f"{_fmt_row(i, ns)} does not come after {_fmt_row(i - 1, ns)}")
    return ns


def build_features(values: np.ndarray, timestamps: pd.DatetimeIndex, metrics: Sequence[str],
                   spec: FeatureSpec | None = None, *,
                   order: Literal["C", "F"] = "C") -> FeatureMatrix:
    """Build the causal features of one series (one entity).

    Parameters
    ----------
    values
        ``(n, m)`` float64, one column per metric, finite. Rows are assumed to be on a
        regular grid (the ``Dataset`` layer regularises); lags and windows count rows.
    timestamps
        ``n`` strictly increasing timestamps (UTC; tz-naive is taken as UTC).
    metrics
        The ``m`` metric names, in column order.
    spec
        The feature spec (default ``FeatureSpec()``).
    order
        Memory layout of ``values``: ``"C"`` (row-major, the default) or ``"F"``
        (column-major, as built; saves a transposing copy).

    Returns
    -------
    FeatureMatrix

    Raises
    ------
    DataError
        Bad shapes, NaN / inf / huge values (naming metric and row), timestamps of the wrong
        length or not strictly increasing.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> ts = pd.date_range("2026-03-01", periods=400, freq="5min", tz="UTC")
    >>> rng = np.random.default_rng(0)
    >>> x = 0.5 + 0.01 * rng.standard_normal((400, 3))
    >>> metrics = ["cluster_cpu_request_ratio", "cluster_mem_request_ratio", "cluster_pod_ratio"]
    >>> fm = build_features(x, ts, metrics)
    >>> fm.values.shape, int(fm.ready.sum()), bool(np.isfinite(fm.values).all())
    ((400, 109), 112, True)
    >>> j = fm.names.index("cluster_cpu_request_ratio__mean_12")
    >>> bool(np.isclose(fm.values[20, j], x[9:21, 0].mean()))
    True
    """
    if order not in ("C", "F"):
        raise DataError(f"order must be 'C' or 'F', got {order!r}")
    spec, plan, x, ns = _prepare(values, timestamps, metrics, spec)
    n = len(ns)
    k = plan.n_features
    if n == 0:
        vals = np.empty((0, k), order=order)
    else:
        xt = np.ascontiguousarray(x.T)
        ref = xt[:, 0].copy()
        vals = np.empty((n, k), order=order)
        bounds = [(c0, min(n, c0 + CHUNK_ROWS)) for c0 in range(0, n, CHUNK_ROWS)]

        def run(part: list[tuple[int, int]]) -> None:
            dst = np.empty((k, CHUNK_ROWS)) if order == "C" else None
            for c0, c1 in part:
                if dst is None:
                    _fill_chunk(vals.T[:, c0:c1], xt, ns, ref, c0, c1, plan)
                else:  # build column-wise in cache, then one transposing copy
                    _fill_chunk(dst[:, : c1 - c0], xt, ns, ref, c0, c1, plan)
                    transpose_into(vals[c0:c1], dst[:, : c1 - c0])

        threads = _threads(len(bounds))
        parts = [bounds[i::threads] for i in range(threads)]
        if threads > 1:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(run, parts))
        else:
            run(bounds)
    ready = np.arange(1, n + 1) >= spec.min_history
    return FeatureMatrix(values=vals, names=plan.names, ready=ready,
                         groups={g: list(cols) for g, cols in plan.groups.items()})


def _prepare(values: object, timestamps: object, metrics: Sequence[str],
             spec: FeatureSpec | None
             ) -> tuple[FeatureSpec, FeaturePlan, np.ndarray, np.ndarray]:
    """Validate the inputs once: spec, layout, values ``(n, m)`` and UTC nanoseconds."""
    spec = FeatureSpec() if spec is None else spec
    if not isinstance(spec, FeatureSpec):
        raise DataError(f"spec must be a FeatureSpec, got {type(spec).__name__}")
    plan = plan_for(metrics, spec)
    arr = np.asarray(values) if not isinstance(values, np.ndarray) else values
    n = arr.shape[0] if arr.ndim >= 1 else 0
    ns = timestamps_ns(timestamps, n)
    return spec, plan, check_values(arr, plan.metrics, ns), ns


def iter_features(values: np.ndarray, timestamps: pd.DatetimeIndex, metrics: Sequence[str],
                  spec: FeatureSpec | None = None, *, chunk_rows: int = CHUNK_ROWS,
                  reuse: bool = False) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(start, stop, block)``: rows ``start:stop`` of :func:`build_features`, in chunks.

    For scoring long series with bounded memory: each ``block`` is ``(stop - start, k)``
    C-ordered and bit-identical to the same rows of ``build_features(...).values`` (every chunk
    sees the history it needs). Inputs are validated when this is called, before the first
    chunk. With ``reuse=True`` the same buffer is refilled for every chunk (copy what you
    keep), which avoids touching fresh memory on every chunk.

    >>> import numpy as np, pandas as pd
    >>> ts = pd.date_range("2026-03-01", periods=1000, freq="5min", tz="UTC")
    >>> x = np.random.default_rng(0).random((1000, 2))
    >>> parts = [b.copy() for _, _, b in iter_features(x, ts, ["a", "b"], chunk_rows=300)]
    >>> bool(np.array_equal(np.vstack(parts), build_features(x, ts, ["a", "b"]).values))
    True
    """
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise DataError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    _, plan, x, ns = _prepare(values, timestamps, metrics, spec)
    return _iter_chunks(plan, x, ns, chunk_rows, reuse)


def _iter_chunks(plan: FeaturePlan, x: np.ndarray, ns: np.ndarray, chunk_rows: int,
                 reuse: bool) -> Iterator[tuple[int, int, np.ndarray]]:
    n, k = len(ns), plan.n_features
    if n == 0:
        return
    xt = np.ascontiguousarray(x.T)
    ref = xt[:, 0].copy()
    dst = np.empty((k, chunk_rows))
    block = np.empty((chunk_rows, k)) if reuse else None
    for c0 in range(0, n, chunk_rows):
        c1 = min(n, c0 + chunk_rows)
        _fill_chunk(dst[:, : c1 - c0], xt, ns, ref, c0, c1, plan)
        out = block[: c1 - c0] if block is not None else np.empty((c1 - c0, k))
        transpose_into(out, dst[:, : c1 - c0])
        yield c0, c1, out


def iter_feature_columns(values: np.ndarray, timestamps: pd.DatetimeIndex,
                         metrics: Sequence[str], spec: FeatureSpec | None = None, *,
                         chunk_rows: int = CHUNK_ROWS, extra: int = 0,
                         columns: Sequence[int] | np.ndarray | None = None
                         ) -> Iterator[tuple[int, int, np.ndarray]]:
    """Like :func:`iter_features` with ``reuse=True``, feature-major: yield ``(start, stop,
    cols)`` with ``cols`` of shape ``(k + extra, stop - start)``, row ``i`` the feature ``i``
    of rows ``start:stop`` (bit-identical to the same cells of :func:`build_features`).

    One buffer is refilled for every chunk (copy what you keep); its last ``extra`` rows are
    left for the caller (the persistence columns of :mod:`.persist`). No transposing copy is
    made: a caller that needs a few of the columns row-major transposes only those.

    ``columns`` (feature positions, ``0 <= i < k``) names the rows the caller reads; only
    those are written (the families no named column comes from, e.g. rolling min / max or
    cross ratios a model does not use, are not computed) and the other rows hold whatever
    the buffer held. ``None`` (the default) writes every row. The rows written are the same
    bits either way.

    >>> import numpy as np, pandas as pd
    >>> ts = pd.date_range("2026-03-01", periods=1000, freq="5min", tz="UTC")
    >>> x = np.random.default_rng(0).random((1000, 2))
    >>> parts = [c[:-1].T.copy() for _, _, c in iter_feature_columns(x, ts, ["a", "b"],
    ...                                                            chunk_rows=300, extra=1)]
    >>> bool(np.array_equal(np.vstack(parts), build_features(x, ts, ["a", "b"]).values))
    True
    """
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise DataError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    _, plan, x, ns = _prepare(values, timestamps, metrics, spec)
    need = None if columns is None else column_mask(columns, plan.n_features)
    return _iter_columns(plan, x, ns, chunk_rows, int(extra), need)


def column_mask(columns: Sequence[int] | np.ndarray, k: int) -> np.ndarray:
    """``(k,)`` bool, True at ``columns`` (feature positions a caller reads; the batch and
    streaming builders compute only the families those come from); :class:`DataError` for a
    position outside 0..k-1."""
    idx = np.asarray(columns)
    if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
        raise DataError(f"columns must be a list of feature positions, got {columns!r}")
    bad = idx[(idx < 0) | (idx >= k)]
    if bad.size:
        raise DataError(f"columns: feature position {int(bad[0])} is outside 0..{k - 1} "
                        f"({k} features)")
    need = np.zeros(k, dtype=bool)
    need[idx] = True
    return need


def _iter_columns(plan: FeaturePlan, x: np.ndarray, ns: np.ndarray, chunk_rows: int,
                  extra: int, need: np.ndarray | None = None
                  ) -> Iterator[tuple[int, int, np.ndarray]]:
    n, k = len(ns), plan.n_features
    if n == 0:
        return
    xt = np.ascontiguousarray(x.T)
    ref = xt[:, 0].copy()
    dst = np.empty((k + extra, chunk_rows))
    for c0 in range(0, n, chunk_rows):
        c1 = min(n, c0 + chunk_rows)
        _fill_chunk(dst[:k, : c1 - c0], xt, ns, ref, c0, c1, plan, need)
        yield c0, c1, dst[:, : c1 - c0]


def _block_start(c0: int, w: int) -> int:
    """First row of the aligned block holding row ``c0 - w + 1`` (0 when before the start)."""
    return max(0, ((c0 - w + 1) // w) * w)


def _threads(n_chunks: int) -> int:
    """Worker threads for the chunk loop: numpy releases the GIL in its kernels."""
    return max(1, min(MAX_THREADS, os.cpu_count() or 1, n_chunks))


def _fill_chunk(dst: np.ndarray, xt: np.ndarray, ns: np.ndarray, ref: np.ndarray, c0: int,
                c1: int, plan: FeaturePlan, need: np.ndarray | None = None) -> None:
    """Write the features of rows ``c0:c1`` into ``dst`` (``(k, c1 - c0)``); with ``need``
    (``(k,)`` bool) only the rows it marks, computing only the families they come from."""
    spec = plan.spec
    m = len(plan.metrics)
    sw = plan.sum_windows
    cross = set(spec.active_cross_windows)
    wins = set(spec.windows)
    pa = np.asarray([a for a, _ in plan.pairs], dtype=np.intp)
    pb = np.asarray([b for _, b in plan.pairs], dtype=np.intp)
    x = xt[:, c0:c1]
    t = np.arange(c0, c1)

    def wanted(*idx: np.ndarray) -> bool:
        if need is None:
            return True
        return any(bool(need[i[i >= 0]].any()) for i in idx)

    def put(cols: np.ndarray, block: np.ndarray, at: slice | int = slice(None)) -> None:
        _put(dst, cols, block, need, at)

    put(plan.idx_value, x)

    e0 = min(_block_start(c0, w) for w in sw)
    ch: np.ndarray | None = None
    iw = plan.idx_window
    # Rolling min / max: exact, so a sparse table over the chunk (plus the longest window
    # before it) serves every window at once.
    wmax = spec.windows[-1]
    m0 = max(0, c0 - wmax + 1)
    top = wmax.bit_length() - 1
    lmin = sparse_levels(xt[:, m0:c1], top, np.minimum) if wanted(iw["min"]) else None
    lmax = sparse_levels(xt[:, m0:c1], top, np.maximum) if wanted(iw["max"]) else None
    for wi, w in enumerate(sw):
        stats = w in wins and wanted(iw["mean"][wi], iw["std"][wi], iw["z"][wi])
        corr = w in cross and wanted(plan.idx_corr[wi])
        if stats or corr:
            s = _block_start(c0, w)
            if (c1 - s) // w >= BLOCK_SUMS_MIN_BLOCKS:
                sums = block_sums(xt, s, c1, w, ref, pa, pb, corr)[:, c0 - s:]
            else:  # few blocks: per-block accumulation is cheaper than many short vector steps
                if ch is None:
                    ch = channels(xt[:, e0:c1] - ref[:, None], pa, pb, products=bool(cross))
                nch = ch.shape[0] if corr else 2 * m
                sums = block_reduce(ch[:nch, s - e0:], w, np.add)[:, c0 - s:]
            cnt = np.minimum(t + 1, w).astype(np.float64)
            mean, std, z, d, spread = finish_window(x, sums[:m], sums[m:2 * m], cnt,
                                                    ref[:, None], spec.scale_floor)
            if stats:
                put(iw["mean"][wi], mean)
                put(iw["std"][wi], std)
                put(iw["z"][wi], z)
            if corr:
                put(plan.idx_corr[wi], finish_corr(sums[2 * m:], d[pa], d[pb], std[pa],
                                                   std[pb], spread[pa], spread[pb], cnt))
        if w in wins:
            if lmin is not None and wanted(iw["min"][wi]):
                put(iw["min"][wi], sparse_window(lmin, w, c0 - m0, np.minimum))
            if lmax is not None and wanted(iw["max"][wi]):
                put(iw["max"][wi], sparse_window(lmax, w, c0 - m0, np.maximum))

    for qi, w in enumerate(spec.active_quantile_windows):
        cols = plan.idx_quant[qi]  # (4, m)
        if not wanted(cols):
            continue
        # Warm-up rows (fewer than w rows seen): one sort per row, with its own count.
        for i in range(c0, min(c1, w - 1)):
            q, rz = finish_quantiles(np.sort(xt[:, : i + 1], axis=-1), i + 1, xt[:, i],
                                     spec.scale_floor)
            for r in range(3):
                put(cols[r], q[:, r], i - c0)
            put(cols[3], rz, i - c0)
        r0 = max(c0, w - 1)
        if r0 < c1 and w <= NETWORK_MAX_WINDOW:
            # the window's values as w shifted columns, put in order element-wise
            srt = sort_columns([xt[:, r0 - w + 1 + i: c1 - w + 1 + i] for i in range(w)])
            lo, hi = quantile_ranks(w)
            q, rz = finish_order_stats(np.stack([srt[i] for i in lo], axis=-1),
                                       np.stack([srt[i] for i in hi], axis=-1), w,
                                       xt[:, r0:c1], spec.scale_floor)
        elif r0 < c1:
            srt = np.sort(sliding_window_view(xt[:, r0 - w + 1:c1], w, axis=1), axis=-1)
            q, rz = finish_quantiles(srt, w, xt[:, r0:c1], spec.scale_floor)
        if r0 < c1:
            for r in range(3):
                put(cols[r], q[..., r], slice(r0 - c0, None))
            put(cols[3], rz, slice(r0 - c0, None))

    for li, lag in enumerate(spec.lags):
        if wanted(plan.idx_diff[li], plan.idx_roc[li]):
            diff, roc = finish_lag(x, _lagged(xt, c0, c1, lag), spec.ratio_floor)
            put(plan.idx_diff[li], diff)
            put(plan.idx_roc[li], roc)
    for si, lag in enumerate(spec.seasonal_lags):
        if wanted(plan.idx_season[si]):
            put(plan.idx_season[si], x - _lagged(xt, c0, c1, lag))
    if len(plan.pairs) and wanted(plan.idx_ratio):
        put(plan.idx_ratio, finish_ratio(x[pa], x[pb], spec.ratio_floor))
    if len(plan.idx_calendar) and wanted(plan.idx_calendar):
        put(plan.idx_calendar, calendar(ns[c0:c1]))


#: Output rows per tile of :func:`transpose_into`.
TRANSPOSE_TILE_ROWS = 1024


def transpose_into(out: np.ndarray, src: np.ndarray) -> None:
    """``out[...] = src.T`` in tiles of 1024 rows x 16 columns.

    Bands of 16 columns keep each band's source rows in cache while the output rows are
    written; cutting the bands into 1024-row tiles keeps the output pages of a tile (~900 KB
    for 109 features) in the TLB and in L2 while all bands visit them. Without the row tiles,
    each band walked the whole 14 MB output chunk: on a freshly allocated ``build_features``
    result (page faults on first touch) that made the copy about a third of the build.
    """
    k, n = src.shape
    for r0 in range(0, n, TRANSPOSE_TILE_ROWS):
        r1 = min(n, r0 + TRANSPOSE_TILE_ROWS)
        o, s = out[r0:r1], src[:, r0:r1]
        for c0 in range(0, k, 16):
            o[:, c0:c0 + 16] = s[c0:c0 + 16].T


def _put(dst: np.ndarray, cols: np.ndarray, block: np.ndarray, need: np.ndarray | None = None,
         at: slice | int = slice(None)) -> None:
    """``dst[cols, at] = block`` row by row (plain copies beat fancy assignment here); with
    ``need``, only the rows it marks."""
    for j, c in enumerate(cols.tolist()):
        if need is None or need[c]:
            dst[c, at] = block[j]


def _lagged(xt: np.ndarray, c0: int, c1: int, lag: int) -> np.ndarray:
    """Rows ``max(t - lag, 0)`` for ``t`` in ``c0:c1`` (the first row stands in before it)."""
    if c0 - lag >= 0:
        return xt[:, c0 - lag:c1 - lag]
    idx = np.maximum(np.arange(c0, c1) - lag, 0)
    return xt[:, idx]
