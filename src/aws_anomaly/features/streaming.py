"""Streaming feature builder: one row at a time, the same numbers as the batch builder.

The builder keeps the last ``spec.history_rows`` raw rows and, per rolling window, the running
prefix (sum / min / max) of the current aligned block and the suffix scans of the previous
block: exactly the primitives :func:`aws_anomaly.features.kernels.block_reduce` builds in batch,
with the same additions in the same order, fed through the same finish functions. The whole
state can therefore be rebuilt from the raw history alone (:meth:`warm`, :meth:`from_state`).

Rows are taken as consecutive grid steps: timestamps must increase, but a gap in time (a
timestamp that is not the previous one plus the step) is not detected here — the ``Dataset``
layer regularises series before they reach the features.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from aws_anomaly.errors import DataError
from aws_anomaly.features.batch import check_values, column_mask, plan_for, timestamps_ns
from aws_anomaly.features.kernels import (
    IDENTITY,
    calendar_one,
    finish_corr,
    finish_lag,
    finish_quantiles,
    finish_ratio,
    finish_window,
)
from aws_anomaly.features.spec import MAX_ABS_VALUE, WINDOW_KINDS, FeatureSpec

__all__ = ["StreamingFeatureBuilder"]

_STATE_VERSION = 1


def _to_ns(timestamp: Any) -> int:
    if isinstance(timestamp, pd.Timestamp) and timestamp is not pd.NaT:
        return int(timestamp.value)  # UTC ns (tz-naive taken as UTC)
    if isinstance(timestamp, (int, np.integer)) and not isinstance(timestamp, bool):
        return int(timestamp)
    try:
        ts = pd.Timestamp(timestamp)
    except (TypeError, ValueError) as exc:
        raise DataError(f"streaming features: cannot read timestamp {timestamp!r}: {exc}") \
            from None
    if ts is pd.NaT:
        raise DataError("streaming features: timestamp is NaT")
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.value)


class StreamingFeatureBuilder:
    """Build the features of a live series one row at a time.

    ``update`` returns the same vector as row ``i`` of :func:`build_features` on the rows fed so
    far (to ~1e-12; bit-identical apart from the calendar's sin/cos).

    Parameters
    ----------
    spec
        The feature spec (default ``FeatureSpec()``).
    metrics
        Metric names, in the order of the values passed to :meth:`update`.
    columns
        Feature positions the caller reads (None: all). Families none of them comes from
        (rolling min / max, correlations, ratios, quantiles, seasonal differences, calendar)
        are not computed, as the batch builder's ``columns``; their positions hold NaN.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from aws_anomaly.features import build_features
    >>> spec = FeatureSpec(windows=(3, 6), lags=(1,), quantile_windows=(4,), seasonal_period=8,
    ...                    cross_windows=(6,))
    >>> ts = pd.date_range("2026-03-01", periods=20, freq="5min", tz="UTC")
    >>> x = np.random.default_rng(1).random((20, 2))
    >>> sb = StreamingFeatureBuilder(spec, ["cpu", "mem"])
    >>> rows = np.array([sb.update(t, v) for t, v in zip(ts, x)])
    >>> bool(np.allclose(rows, build_features(x, ts, ["cpu", "mem"], spec).values,
    ...                  rtol=1e-12, atol=1e-12)), sb.ready, sb.n_seen
    (True, True, 20)
    """

    def __init__(self, spec: FeatureSpec | None = None,
                 metrics: Sequence[str] = (), columns: Sequence[int] | None = None) -> None:
        spec = FeatureSpec() if spec is None else spec
        if not isinstance(spec, FeatureSpec):
            raise DataError(f"spec must be a FeatureSpec, got {type(spec).__name__}")
        self.spec = spec
        self.plan = plan_for(metrics, spec)
        self.metrics = self.plan.metrics
        self.names = self.plan.names
        m = len(self.metrics)
        self._m = m
        p = self.plan
        need = None if columns is None else column_mask(columns, p.n_features)
        #: the feature positions a caller reads (None: all); the others are NaN in the rows
        self.columns = None if need is None else tuple(int(i) for i in np.flatnonzero(need))

        def wanted(*idx: np.ndarray) -> bool:
            return need is None or any(bool(need[i[i >= 0]].any()) for i in idx)

        # families no read column comes from are not computed (as in batch): rolling min /
        # max (and their prefix / suffix state), cross-metric correlations (and the pair
        # products in the channels), ratios, quantiles, seasonal differences, calendar
        self._minmax = wanted(p.idx_window["min"], p.idx_window["max"])
        self._ratio = wanted(p.idx_ratio)
        self._quant = wanted(p.idx_quant)
        self._season = wanted(p.idx_season)
        self._calendar = spec.include_calendar and wanted(p.idx_calendar)
        self._pa = np.asarray([a for a, _ in p.pairs], dtype=np.intp)
        self._pb = np.asarray([b for _, b in p.pairs], dtype=np.intp)
        self._products = bool(spec.active_cross_windows) and wanted(p.idx_corr)
        self._nch = 2 * m + (len(self._pa) if self._products else 0)
        sw = np.asarray(self.plan.sum_windows, dtype=np.int64)
        self._sw = sw
        self._ar = np.arange(len(sw))
        self._wmax = int(sw.max())
        self._swl = [int(w) for w in sw]
        self._slot0 = [i * (self._wmax + 1) for i in range(len(sw))]  # flat row of slot i
        self._cnt_full = sw.astype(np.float64)[:, None]
        self._corr_a = self._ar[:, None] * m + self._pa[None, :]
        self._corr_b = self._ar[:, None] * m + self._pb[None, :]
        self._lags = np.asarray(spec.lags, dtype=np.int64)
        self._all_lags_l = [*spec.lags, *(spec.seasonal_lags if self._season else ())]
        nu, npair = len(sw), len(self._pa)
        # what a family that is not computed puts in its place (read by nobody)
        self._nan = {"minmax": np.full(nu * m, np.nan), "corr": np.full(nu * npair, np.nan),
                     "ratio": np.full(npair, np.nan),
                     "season": np.full(len(spec.seasonal_lags) * m, np.nan),
                     "quant": (np.full(3 * m, np.nan), np.full(m, np.nan)),
                     "calendar": np.full(4, np.nan)}
        self._qws = spec.active_quantile_windows
        self._cap_rows = spec.history_rows
        self._hist = np.empty((self._cap_rows + max(256, self._cap_rows), m))
        self._chist = np.empty((len(self._hist), self._nch))  # channels of each _hist row
        self._gather = self._build_gather()
        self.reset()

    # -- state --------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every row seen.

        State per sum window ``i``: the prefix (sum / min / max) of its current block, which
        starts at the identity (-0.0, the exact additive identity, so the first row's
        channels come out unchanged; +inf; -inf), and in ``_gidx[i]`` the flat row (in the
        suffix slots) of the previous block's suffix that the next row adds. Slot ``i`` holds
        suffix scans of window ``i``'s blocks, identity from position ``w_i`` on. When several
        windows end a block on the same row, only the largest one's block is scanned (into its
        slot) and the others point at its tail: a suffix scan runs from the end, so the last
        ``w`` positions of a longer block's scan are the very additions of the ``w``-row
        block's own scan. A window re-points at every end of its own block, before the slot it
        points into can be rewritten (that window's next end is at least as far away).
        """
        nu, m, c = len(self._sw), self._m, self._nch
        self._n = 0
        self._nh = 0
        self._last_ns: int | None = None
        self._ref = np.zeros(m)
        self._pre_sum = np.full((nu, c), -0.0)
        self._pre_min = np.full((nu, m), np.inf)
        self._pre_max = np.full((nu, m), -np.inf)
        self._suf_sum = np.zeros((nu, self._wmax + 1, c))
        self._suf_min = np.full((nu, self._wmax + 1, m), np.inf)
        self._suf_max = np.full((nu, self._wmax + 1, m), -np.inf)
        # flat views (same memory) for one-call gathers in push()
        self._suf_sum_flat = self._suf_sum.reshape(-1, c)
        self._suf_min_flat = self._suf_min.reshape(-1, m)
        self._suf_max_flat = self._suf_max.reshape(-1, m)
        self._gidx = np.asarray(self._slot0, dtype=np.intp) + 1
        self._next_end = min(self._swl) - 1  # the next row that ends some window's block

    @property
    def n_seen(self) -> int:
        """Rows fed so far (through :meth:`update` and :meth:`warm`)."""
        return self._n

    @property
    def ready(self) -> bool:
        """True once ``spec.min_history`` rows have been seen (every feature fully defined)."""
        return self._n >= self.spec.min_history

    @property
    def n_features(self) -> int:
        """Length of the vectors :meth:`update` returns."""
        return len(self.names)

    def _build_gather(self) -> np.ndarray:
        """Output column -> position in the pooled vector that :meth:`_finish` concatenates."""
        p = self.plan
        pieces = [p.idx_value, *(p.idx_window[k] for k in WINDOW_KINDS), p.idx_corr,
                  p.idx_ratio, p.idx_diff, p.idx_roc, p.idx_season, p.idx_quant,
                  p.idx_calendar]
        gather = np.full(p.n_features, -1, dtype=np.intp)
        offset = 0
        for idx in pieces:
            flat = idx.ravel()
            pos = np.arange(offset, offset + flat.size)
            gather[flat[flat >= 0]] = pos[flat >= 0]
            offset += flat.size
        if (gather < 0).any():  # a layout bug, never the caller's input
            raise RuntimeError("feature plan and streaming layout disagree")
        return gather

    def _append(self, rows: np.ndarray) -> None:
        """Append raw rows to the history ring, keeping at least ``history_rows`` (the
        channel ring ``_chist`` moves with it; the caller fills the new rows' channels)."""
        k = len(rows)
        cap = len(self._hist)
        if k >= self._cap_rows:
            self._hist[: self._cap_rows] = rows[-self._cap_rows:]
            self._nh = self._cap_rows
            return
        if self._nh + k > cap:
            keep = self._cap_rows - k
            self._hist[:keep] = self._hist[self._nh - keep: self._nh]
            self._chist[:keep] = self._chist[self._nh - keep: self._nh]
            self._nh = keep
        self._hist[self._nh: self._nh + k] = rows
        self._nh += k

    def _fill_channels(self, start: int, stop: int) -> None:
        """``_chist[start:stop]`` = the summed channels of ``_hist[start:stop]``, row-major
        (as :func:`~aws_anomaly.features.kernels.channels`: centred values, their squares,
        pair products)."""
        m = self._m
        ch = self._chist[start:stop]
        xc = ch[:, :m]
        np.subtract(self._hist[start:stop], self._ref, out=xc)
        np.multiply(xc, xc, out=ch[:, m:2 * m])
        if self._nch > 2 * m:
            np.multiply(xc[:, self._pa], xc[:, self._pb], out=ch[:, 2 * m:])

    def _scan_suffix(self, i: int, stop: int) -> None:
        """Suffix scans (sum of channels, min, max) of window ``i``'s block that ends at
        ``_hist`` row ``stop`` into slot ``i``: the same sequential additions as
        :func:`~aws_anomaly.features.kernels.suffix_scan` in batch, written straight into the
        slot (reversed views)."""
        w = self._swl[i]
        rev = slice(w - 1, None, -1)
        np.add.accumulate(self._chist[stop - w: stop][::-1], axis=0, out=self._suf_sum[i, rev])
        if not self._minmax:
            return
        hist = self._hist[stop - w: stop][::-1]
        np.minimum.accumulate(hist, axis=0, out=self._suf_min[i, rev])
        np.maximum.accumulate(hist, axis=0, out=self._suf_max[i, rev])

    def _end_blocks(self, t: int) -> None:
        """Row ``t`` (just pushed) ends a block of one or more windows: scan the largest
        such block once, point each ending window at its tail, restart their prefixes."""
        swl = self._swl
        ends = [i for i, w in enumerate(swl) if (t + 1) % w == 0]
        big = ends[-1]  # windows are sorted: the largest block ending here
        self._scan_suffix(big, self._nh)
        wb, g = swl[big], self._gidx
        for i in ends:
            g[i] = self._slot0[big] + wb - swl[i] + 1
        # nested windows (the default 12 | 36 | 144 | 288) end together as a leading run
        sel = slice(0, big + 1) if len(ends) == big + 1 else ends
        self._pre_sum[sel] = -0.0
        self._pre_min[sel] = np.inf
        self._pre_max[sel] = -np.inf
        self._next_end = min((t + 1) // w * w + w for w in swl) - 1

    def _rebuild(self) -> None:
        """Recompute the block prefixes and suffixes from the raw history (after warm/load)."""
        t = self._n - 1
        nh = self._nh
        self._fill_channels(0, nh)
        base = self._n - nh  # absolute index of hist[0]
        for i, w in enumerate(self._swl):
            j = t % w
            bs = t - j
            self._suf_sum[i] = IDENTITY[np.add]
            self._suf_min[i] = IDENTITY[np.minimum]
            self._suf_max[i] = IDENTITY[np.maximum]
            if j == w - 1:  # the block is complete: the next row starts a new one
                self._pre_sum[i] = -0.0
                self._pre_min[i] = np.inf
                self._pre_max[i] = -np.inf
                self._scan_suffix(i, nh)
                self._gidx[i] = self._slot0[i] + 1
                continue
            cur = slice(bs - base, t + 1 - base)
            # the prefix: the same sequential additions as one push per row
            self._pre_sum[i] = np.add.accumulate(self._chist[cur], axis=0)[-1]
            self._pre_min[i] = self._hist[cur].min(axis=0)
            self._pre_max[i] = self._hist[cur].max(axis=0)
            if bs >= w:
                self._scan_suffix(i, bs - base)
            self._gidx[i] = self._slot0[i] + j + 2
        self._next_end = min((t + 1) // w * w + w for w in self._swl) - 1

    # -- public API ---------------------------------------------------------------------------
    def update(self, timestamp: Any, values: Sequence[float] | np.ndarray) -> np.ndarray:
        """Add one row and return its feature vector ``(k,)``.

        Raises
        ------
        DataError
            Wrong number of values, NaN / inf / huge values, or a timestamp that does not come
            after the previous one.
        """
        ns = _to_ns(timestamp)
        try:
            x = np.array(values, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise DataError(f"streaming features: values must be {self._m} numbers, got "
                            f"{values!r}: {exc}") from None
        if x.shape[0] != self._m:
            raise DataError(f"streaming features: got {x.shape[0]} values for {self._m} metrics "
                            f"{list(self.metrics)}")
        # plain floats: cheaper than numpy reductions for a handful of values
        if not all(-MAX_ABS_VALUE <= v <= MAX_ABS_VALUE for v in x.tolist()):  # NaN fails too
            j = int(np.flatnonzero(~(np.abs(x) <= MAX_ABS_VALUE))[0])
            raise DataError(
                f"streaming features: metric '{self.metrics[j]}' has value {float(x[j])!r} at "
                f"{pd.Timestamp(ns, tz='UTC').isoformat()}; values must be finite with "
                f"|value| <= {MAX_ABS_VALUE:g}")
        if self._last_ns is not None and ns <= self._last_ns:
            raise DataError(
                f"streaming features: timestamp {pd.Timestamp(ns, tz='UTC').isoformat()} does "
                f"not come after the previous one "
                f"{pd.Timestamp(self._last_ns, tz='UTC').isoformat()}")
        return self.push(ns, x)

    def push(self, ns: int, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """:meth:`update` for a caller that has checked the point already (the live scorer,
        once per point): ``ns`` an int after the last one, ``x`` ``(m,)`` float64 with
        ``|value| <= MAX_ABS_VALUE`` (read, never kept). Writes the feature
        vector into ``out`` (``(k,)``) when given and returns it."""
        t = self._n
        if t == 0:
            self._ref = x.copy()
        nh = self._nh
        if nh == len(self._hist):
            self._append(x[None, :])  # compacts the rings
        else:
            self._hist[nh] = x
            self._nh = nh + 1
        self._n = t + 1
        self._last_ns = ns

        # This row's channels, straight into the channel ring (read again when a block ends).
        m = self._m
        ch = self._chist[self._nh - 1]
        xc = ch[:m]
        np.subtract(x, self._ref, out=xc)
        np.multiply(xc, xc, out=ch[m:2 * m])
        if self._nch > 2 * m:
            np.multiply(xc.take(self._pa), xc.take(self._pb), out=ch[2 * m:])
        # Block prefixes: the same sequential additions as np.add.accumulate in batch,
        # plus each window's previous-block suffix at the next position (see reset).
        self._pre_sum += ch
        g = self._gidx
        sums = self._pre_sum + self._suf_sum_flat.take(g, axis=0)
        if self._minmax:
            np.minimum(self._pre_min, x, out=self._pre_min)
            np.maximum(self._pre_max, x, out=self._pre_max)
            mins = np.minimum(self._pre_min, self._suf_min_flat.take(g, axis=0))
            maxs = np.maximum(self._pre_max, self._suf_max_flat.take(g, axis=0))
        else:
            mins = maxs = self._nan["minmax"]
        out = self._finish(t, ns, x, sums, mins, maxs, out)
        g += 1
        if t == self._next_end:
            self._end_blocks(t)
        return out

    def _finish(self, t: int, ns: int, x: np.ndarray, sums: np.ndarray, mins: np.ndarray,
                maxs: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        spec, m = self.spec, self._m
        pa, pb = self._pa, self._pb
        cnt = self._cnt_full if t + 1 >= self._wmax else \
            np.minimum(t + 1, self._sw).astype(np.float64)[:, None]
        mean, std, z, d, spread = finish_window(x, sums[:, :m], sums[:, m:2 * m], cnt,
                                                self._ref, spec.scale_floor)
        if self._products and len(pa):
            # every sum window; the gather keeps the cross windows' rows
            ia, ib = self._corr_a, self._corr_b  # flat (window, metric) indices per pair
            corr = finish_corr(sums[:, 2 * m:], d.take(ia), d.take(ib), std.take(ia),
                               std.take(ib), spread.take(ia), spread.take(ib), cnt)
        else:
            corr = self._nan["corr"]
        hist, base = self._hist, self._n - self._nh
        lagged = hist.take([max(t - lag, 0) - base for lag in self._all_lags_l], axis=0)
        nl = len(self._lags)
        diff, roc = finish_lag(x, lagged[:nl], spec.ratio_floor)
        nan = self._nan
        pieces = [x, mean, std, mins, maxs, z, corr,
                  finish_ratio(x.take(pa), x.take(pb), spec.ratio_floor) if self._ratio
                  else nan["ratio"], diff, roc, x - lagged[nl:] if self._season else nan["season"]]
        for w in self._qws:
            if not self._quant:
                pieces.extend(nan["quant"])
                continue
            c = min(t + 1, w)
            srt = hist[self._nh - c: self._nh].T.copy(order="K")  # what np.sort does
            srt.sort(axis=-1)
            q, rz = finish_quantiles(srt, c, x, spec.scale_floor)
            pieces.extend((q.T, rz))
        if spec.include_calendar:
            pieces.append(calendar_one(ns) if self._calendar else nan["calendar"])
        return np.concatenate(pieces, axis=None).take(self._gather, out=out)

    def warm(self, values: np.ndarray, timestamps: pd.DatetimeIndex) -> None:
        """Prime the builder with history rows (vectorised; no feature vectors returned).

        Afterwards :meth:`update` continues as if every row had been fed one by one.
        """
        arr = np.asarray(values) if not isinstance(values, np.ndarray) else values
        n = arr.shape[0] if arr.ndim >= 1 else 0
        ns = timestamps_ns(timestamps, n, where="streaming warm-up")
        x = check_values(arr, self.metrics, ns, where="streaming warm-up")
        if n == 0:
            return
        if self._last_ns is not None and ns[0] <= self._last_ns:
            raise DataError(
                f"streaming warm-up: first timestamp {pd.Timestamp(int(ns[0]), tz='UTC')} "
                f"does not come after the last one seen "
                f"{pd.Timestamp(self._last_ns, tz='UTC')}")
        if self._n == 0:
            self._ref = x[0].copy()
        self._append(x)
        self._n += n
        self._last_ns = int(ns[-1])
        self._rebuild()

    def copy(self) -> StreamingFeatureBuilder:
        """An independent builder in the same state (shares the read-only plan and spec)."""
        new = object.__new__(StreamingFeatureBuilder)
        new.__dict__.update(self.__dict__)
        for name in ("_hist", "_chist", "_ref", "_pre_sum", "_pre_min", "_pre_max", "_suf_sum",
                     "_suf_min", "_suf_max", "_gidx"):
            setattr(new, name, getattr(self, name).copy())
        # the flat views must view the copies
        new._suf_sum_flat = new._suf_sum.reshape(-1, self._nch)
        new._suf_min_flat = new._suf_min.reshape(-1, self._m)
        new._suf_max_flat = new._suf_max.reshape(-1, self._m)
        return new

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(json_dict, arrays)`` from which :meth:`from_state` rebuilds this builder."""
        state = {
            "version": _STATE_VERSION,
            "spec": self.spec.to_dict(),
            "metrics": list(self.metrics),
            "n_seen": self._n,
            "last_ns": self._last_ns,
            "ref": [float(v) for v in self._ref],
        }
        # the last min(n, history_rows) rows: the ring may hold a few more before it compacts
        keep = min(self._nh, self._cap_rows)
        return state, {"history": self._hist[self._nh - keep: self._nh].copy()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                   columns: Sequence[int] | None = None) -> StreamingFeatureBuilder:
        """Rebuild a builder saved with :meth:`get_state` (``columns`` as in the constructor:
        what the caller reads; the state is the raw history, whatever was computed from it).

        Raises
        ------
        DataError
            The state is not from this version, or is inconsistent (history shape, counts).
        """
        keys = {"version", "spec", "metrics", "n_seen", "last_ns", "ref"}
        if not isinstance(state, Mapping) or set(state) != keys:
            got = sorted(state) if isinstance(state, Mapping) else type(state).__name__
            raise DataError(f"streaming feature state must have keys {sorted(keys)}, got {got}")
        if state["version"] != _STATE_VERSION:
            raise DataError(f"streaming feature state version {state['version']!r} is not "
                            f"supported (expected {_STATE_VERSION})")
        sb = cls(FeatureSpec.from_dict(state["spec"]), state["metrics"], columns)
        n = state["n_seen"]
        hist = np.asarray(arrays.get("history", np.empty((0, sb._m))), dtype=np.float64)
        if not isinstance(n, int) or n < 0 or hist.ndim != 2 or hist.shape[1] != sb._m or \
                len(hist) != min(n, sb._cap_rows):
            raise DataError(f"streaming feature state is inconsistent: n_seen={n!r}, history "
                            f"shape {hist.shape}, expected ({min(n, sb._cap_rows) if isinstance(n, int) else '?'}, {sb._m})")  # noqa: E501
        check_values(hist, sb.metrics, where="streaming feature state")
        ref = np.asarray(state["ref"], dtype=np.float64)
        if ref.shape != (sb._m,) or not np.isfinite(ref).all():
            raise DataError(f"streaming feature state: ref must be {sb._m} finite numbers")
        if n == 0:
            return sb
        sb._ref = ref
        sb._hist[: len(hist)] = hist
        sb._nh = len(hist)
        sb._n = n
        sb._last_ns = None if state["last_ns"] is None else int(state["last_ns"])
        sb._rebuild()
        return sb
