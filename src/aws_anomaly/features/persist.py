"""Persistence terms: exponentially weighted means of the seasonal differences.

A level shift or a slow leak keeps ``value - value one period earlier`` away from zero for its
whole duration, where rolling z-scores fade as their windows absorb it. The persistence columns
``{m}__season_diff_{P}__ewm_{s}`` (less a slow baseline, ``..._less_{b}``, when one is set)
carry that memory. They are appended after the spec's columns (:class:`~.spec.FeaturePlan`):
their sources are found from the plan's structure (``idx_season``), never from column names.

One recursion, ``s_0 = x_0``, ``s_t = s_{t-1} + a (x_t - s_{t-1})``, three ways of running it:

* :func:`with_persist` / :class:`PersistFilter` — batch, a whole series or chunk by chunk with
  the filter state carried across chunks (bit-identical to the whole series: the same
  ``lfilter`` recursion);
* :class:`PersistState` — streaming, one row at a time (equal to batch to rounding, ~1e-15).

>>> from aws_anomaly.features import FeatureSpec
>>> from aws_anomaly.features.spec import FeaturePlan
>>> fp = FeaturePlan.build(["cpu"], FeatureSpec(windows=(3,), lags=(1,), seasonal_period=4,
...                                              include_quantiles=False))
>>> plan = persist_plan(fp, (2, 6), baseline=12)
>>> [t.name for t in plan]
['cpu__season_diff_4__ewm_2_less_12', 'cpu__season_diff_4__ewm_6_less_12']
>>> x = np.arange(10.0)[:, None] * np.ones((1, fp.n_features))
>>> full = with_persist(x, plan)
>>> full.shape, bool(np.allclose(full[:, -1], ewm(x[:, 0], 2 / 7) - ewm(x[:, 0], 2 / 13)))
((10, 15), True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from scipy.signal import lfilter

from aws_anomaly.errors import ConfigError
from aws_anomaly.features.spec import FeaturePlan

__all__ = [
    "PersistFilter",
    "PersistPlan",
    "PersistState",
    "PersistTerm",
    "check_persist",
    "ewm",
    "persist_layout",
    "persist_plan",
    "with_persist",
]


class PersistTerm(NamedTuple):
    """One persistence column: ``ewm(x, a) - ewm(x, b)`` of spec column ``src`` (no second
    term when ``b`` is 0)."""

    src: int
    a: float
    b: float
    name: str


#: The persistence columns, in the order they are appended.
PersistPlan = list[PersistTerm]


def check_persist(persist: Any) -> tuple[int, ...]:
    """The persistence spans (rows) as a tuple; :class:`ConfigError` naming the bad one."""
    if isinstance(persist, (str, bytes)) or not isinstance(persist, Sequence):
        raise ConfigError(f"persist must be a list of spans in rows (integers >= 2), got "
                          f"{persist!r}")
    out = []
    for v in persist:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 2:
            raise ConfigError(f"persist spans must be integers >= 2 (rows), got {v!r} in "
                              f"{list(persist)!r}")
        out.append(int(v))
    if len(set(out)) != len(out):
        raise ConfigError(f"persist spans must not repeat, got {out!r}")
    return tuple(out)


def persist_plan(plan: FeaturePlan, spans: Sequence[int], baseline: int | None) -> PersistPlan:
    """The columns to append to ``plan``'s features: one per span and seasonal difference
    (span-major, then in column order), with weight ``2 / (span + 1)``, less the ``baseline``
    EWMA (weight ``2 / (baseline + 1)``) when one is given."""
    src = sorted(int(i) for i in plan.idx_season.ravel() if i >= 0)
    b = 0.0 if baseline is None else 2.0 / (baseline + 1.0)
    tail = "" if baseline is None else f"_less_{baseline}"
    return [PersistTerm(i, 2.0 / (span + 1.0), b, f"{plan.names[i]}__ewm_{span}{tail}")
            for span in spans for i in src]


def persist_layout(names: Sequence[str], groups: Mapping[str, Sequence[int]],
                   plan: PersistPlan) -> tuple[tuple[str, ...], dict[str, list[int]]]:
    """Feature names and metric groups once the plan's columns are appended (each column
    counts towards the group of its source)."""
    out_groups = {k: [int(i) for i in v] for k, v in groups.items()}
    for k, term in enumerate(plan):
        owner = next((g for g, v in groups.items() if term.src in v), None)
        if owner is not None:
            out_groups[owner].append(len(names) + k)
    return tuple(names) + tuple(t.name for t in plan), out_groups


def ewm(x: np.ndarray, a: float) -> np.ndarray:
    """Column-wise ``s_0 = x_0``, ``s_t = s_{t-1} + a (x_t - s_{t-1})``."""
    return lfilter([a], [1.0, -(1.0 - a)], x, axis=0, zi=(1.0 - a) * x[:1])[0]


class PersistFilter:
    """Writes a plan's columns into ``full[:, k:]`` from the spec columns ``full[:, :k]``, in
    place, chunk after chunk of one series (:meth:`reset` between series).

    Each distinct weight is one ``lfilter`` call over the columns that share it; its final
    state is carried into the next chunk, so a series cut into chunks gets the very bits of
    the whole series.
    """

    def __init__(self, plan: PersistPlan, k: int) -> None:
        self.k = k
        self.n = len(plan)
        #: (weight, source columns, output columns, subtract)
        self._terms: list[tuple[float, np.ndarray, np.ndarray, bool]] = []
        for a in sorted({t.a for t in plan}):
            idx = [j for j, t in enumerate(plan) if t.a == a]
            self._terms.append((a, np.asarray([plan[j].src for j in idx], dtype=np.intp),
                                np.asarray([k + j for j in idx], dtype=np.intp), False))
        for b in sorted({t.b for t in plan if t.b > 0}):
            idx = [j for j, t in enumerate(plan) if t.b == b]
            self._terms.append((b, np.asarray([plan[j].src for j in idx], dtype=np.intp),
                                np.asarray([k + j for j in idx], dtype=np.intp), True))
        self._state: list[np.ndarray | None] = [None] * len(self._terms)

    def reset(self) -> None:
        """Forget the carried state: the next chunk starts a new series."""
        self._state = [None] * len(self._terms)

    def fill(self, full: np.ndarray) -> None:
        """Write the columns ``full[:, k:k + n]`` of the next rows of the series."""
        if not len(full):
            return
        for i, (w, src, dst, subtract) in enumerate(self._terms):
            x = full[:, src]
            zi = self._state[i]
            if zi is None:
                zi = (1.0 - w) * x[:1]
            y, self._state[i] = lfilter([w], [1.0, -(1.0 - w)], x, axis=0, zi=zi)
            if subtract:
                full[:, dst] -= y
            else:
                full[:, dst] = y


    def fill_columns(self, cols: np.ndarray) -> None:
        """:meth:`fill` for a feature-major chunk: ``cols`` is ``(k + n, rows)``, row ``i``
        the feature ``i`` (as :func:`~aws_anomaly.features.batch.iter_feature_columns`
        yields); the same recursion, so the same bits."""
        if not cols.shape[1]:
            return
        for i, (w, src, dst, subtract) in enumerate(self._terms):
            x = cols[src]
            zi = self._state[i]
            if zi is None:
                zi = (1.0 - w) * x[:, :1]
            y, self._state[i] = lfilter([w], [1.0, -(1.0 - w)], x, axis=1, zi=zi)
            if subtract:
                cols[dst] -= y
            else:
                cols[dst] = y


def with_persist(values: np.ndarray, plan: PersistPlan) -> np.ndarray:
    """``values`` (one series' spec features, in time order) with the plan's columns appended
    (a new array; ``values`` itself when the plan is empty)."""
    if not plan or len(values) == 0:
        return values
    k = values.shape[1]
    out = np.empty((len(values), k + len(plan)))
    out[:, :k] = values
    PersistFilter(plan, k).fill(out)
    return out


class PersistState:
    """The plan's columns one row at a time (the streaming side of :func:`with_persist`).

    ``s`` holds the fast EWMAs and ``lo`` the slow baselines (``lo`` unused where ``b`` is 0);
    both are replaced, never changed in place, so a shallow copy is an independent state.
    """

    __slots__ = ("a", "all_b", "b", "has_b", "lo", "s", "src")

    def __init__(self, plan: PersistPlan) -> None:
        self.src = np.asarray([t.src for t in plan], dtype=np.intp)
        self.a = np.asarray([t.a for t in plan], dtype=np.float64)
        self.b = np.asarray([t.b for t in plan], dtype=np.float64)
        self.has_b = bool((self.b > 0).any())
        self.all_b = bool((self.b > 0).all())
        self.s: np.ndarray | None = None
        self.lo: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.src.size)

    def step(self, row: np.ndarray, out: np.ndarray) -> None:
        """Advance with the spec row ``row`` and write the plan's columns into ``out``."""
        x = row.take(self.src)
        s, lo = self.s, self.lo
        if s is None or lo is None:
            s, lo = x, x.copy()
        else:
            s = s + self.a * (x - s)
            lo = lo + self.b * (x - lo)
        self.s, self.lo = s, lo
        if self.all_b:
            np.subtract(s, lo, out=out)
        elif self.has_b:
            np.subtract(s, lo, out=out, where=self.b > 0)
            np.copyto(out, s, where=self.b <= 0)
        else:
            out[:] = s

    def copy(self) -> PersistState:
        new = object.__new__(PersistState)
        for name in self.__slots__:
            setattr(new, name, getattr(self, name))
        return new
