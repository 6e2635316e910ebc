"""The streaming-detector contract shared by every detector in :mod:`aws_anomaly.streaming`.

A streaming detector sees one ``(timestamp, value)`` record at a time, never looks ahead, and
returns an anomaly score in ``[0, 1]`` (higher = more anomalous) for the record it was just
given. Each detector implements one method, ``_step``, which scores the record and then learns
it; this base class adds input checks, the river-style ``learn_one`` / ``score_one`` pair, the
whole-file ``run`` used by the NAB harness, and JSON-safe state for the service.
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from collections import deque
from typing import Any, ClassVar

import numpy as np

from aws_anomaly.durations import parse_timestamp
from aws_anomaly.errors import AwsAnomalyError, DataError, ModelFileError

__all__ = ["DEFAULT_PROBATIONARY", "StreamingDetector", "register_state_class"]

#: NAB's probationary length for a 14-day, 5-minute file: min(floor(0.15 * N), 750).
DEFAULT_PROBATIONARY = 750


def _as_ns(timestamp: Any) -> int:
    """A timestamp as int nanoseconds since the epoch (tz-aware ones converted to UTC).

    Accepts int nanoseconds and numpy datetime64 (the fast paths of ``run`` and the live
    scorers), or anything :func:`aws_anomaly.durations.parse_timestamp` reads (pandas/py
    datetimes, naive = UTC; ISO strings; a float is Unix seconds there).
    """
    if isinstance(timestamp, (int, np.integer)) and not isinstance(timestamp, bool):
        return int(timestamp)
    if isinstance(timestamp, np.datetime64):
        if np.isnat(timestamp):
            raise DataError("timestamp is NaT; every record needs a timestamp")
        return int(timestamp.astype("datetime64[ns]").astype(np.int64))
    return int(parse_timestamp(timestamp, where="timestamp", error=DataError).value)


def _fmt_ns(t_ns: int) -> str:
    """Integer nanoseconds as ``YYYY-MM-DD HH:MM:SS[.fff]`` (for error messages)."""
    return str(np.datetime64(t_ns, "ns")).replace("T", " ")


class StreamingDetector(ABC):
    """Base class: a univariate detector that scores then learns one record at a time.

    Parameters
    ----------
    probationary
        Number of leading records the detector treats as its learning period. It still returns
        scores there (low ones); NAB ignores them. ``run`` sets it from its argument.

    Notes
    -----
    Subclasses set their hyperparameters in ``__init__`` (stored unchanged, keyword-only, listed
    in ``_params``), build their learned state in ``_reset`` and implement ``_step``.
    """

    #: Names of the constructor's hyperparameters (used by ``get_params`` and ``get_state``).
    _params: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        register_state_class(cls)

    def __init__(self, *, probationary: int = DEFAULT_PROBATIONARY) -> None:
        self.probationary = probationary
        self.reset(probationary)

    # -- the one method each detector implements ------------------------------------------------
    @abstractmethod
    def _reset(self) -> None:
        """Build fresh learned state (attributes ending in ``_``)."""

    @abstractmethod
    def _step(self, t_ns: int, x: float) -> float:
        """Score the record, then learn it; return a score in [0, 1]."""

    def _step_member(self, t_ns: int, x: float, resting: bool) -> float:
        """``_step`` as a member of an ensemble that says whether it is resting after an alarm
        (records seen while resting belong to an anomaly already reported). Default: ``_step``.
        """
        return self._step(t_ns, x)

    # -- public API ------------------------------------------------------------------------------
    def reset(self, probationary: int | None = None) -> StreamingDetector:
        """Forget everything learned; optionally set a new probationary length."""
        if probationary is not None:
            if isinstance(probationary, bool) or not isinstance(probationary, (int, np.integer)):
                raise DataError(
                    f"probationary must be an int >= 1, got {probationary!r}"
                )
            if probationary < 1:
                raise DataError(f"probationary must be >= 1, got {probationary}")
            self.probationary = int(probationary)
        self.n_seen_ = 0
        self.last_t_ = None
        self._reset()
        return self

    def get_params(self) -> dict[str, Any]:
        """The constructor's hyperparameters, as given."""
        return {name: getattr(self, name) for name in (*self._params, "probationary")}

    def update(self, timestamp: Any, value: float) -> float:
        """Score ``value`` at ``timestamp`` against the past, then learn it.

        Raises
        ------
        DataError
            If the value is not finite or the timestamp is earlier than the previous record's
            (a live stream must not replay; :meth:`run` scores a recorded file in its order).
        """
        t_ns = _as_ns(timestamp)
        try:
            x = float(value)
        except (TypeError, ValueError) as exc:
            raise DataError(f"value {value!r} at record {self.n_seen_} is not a number") from exc
        if not math.isfinite(x):
            raise DataError(
                f"value at record {self.n_seen_} is {x}; streaming detectors need finite "
                "values (fill or drop gaps before scoring)"
            )
        if self.last_t_ is not None and t_ns < self.last_t_:
            raise DataError(
                f"timestamp at record {self.n_seen_} goes backwards ({_fmt_ns(t_ns)} < "
                f"{_fmt_ns(self.last_t_)}, the previous record's); live updates must come in "
                "time order (equal timestamps are allowed); to score a recorded file in its "
                "own order, clock jumps included, use run()"
            )
        score = self._step(t_ns, x)
        self.last_t_ = t_ns
        self.n_seen_ += 1
        return min(1.0, max(0.0, score))

    def learn_one(self, timestamp: Any, value: float) -> None:
        """Learn one record (its score is computed and dropped: learning is scoring here)."""
        self.update(timestamp, value)

    def score_one(self, timestamp: Any, value: float) -> float:
        """Score one record without learning it (the detector's state is left unchanged)."""
        return copy.deepcopy(self).update(timestamp, value)

    def run(self, timestamps: np.ndarray, values: np.ndarray, probationary: int) -> np.ndarray:
        """Score a whole series from a fresh state; the same numbers as repeated ``update``.

        Parameters
        ----------
        timestamps
            ``datetime64[ns]`` array (or int64 nanoseconds). Records are scored in the order
            given, as NAB does: recorded files may hold duplicated timestamps, irregular steps
            and clock jumps backwards, and every record gets a score (a detector that uses time,
            e.g. for time-of-day context, uses each record's own timestamp). Live ``update``
            refuses a timestamp earlier than the previous one; ``run`` gives the same numbers
            as repeated ``update`` wherever ``update`` accepts the records.
        values
            float64 array of the same length, finite.
        probationary
            The learning period, in records.

        Returns
        -------
        numpy.ndarray
            float64 scores in [0, 1]; ``score[i]`` depends only on records ``0..i``.
        """
        values = np.asarray(values, dtype=np.float64)
        ts = np.asarray(timestamps)
        if values.ndim != 1 or ts.shape != values.shape:
            raise DataError(
                f"run needs 1-d timestamps and values of equal length, got shapes "
                f"{ts.shape} and {values.shape}"
            )
        bad = ~np.isfinite(values)
        if bad.any():
            raise DataError(
                f"values contain {int(bad.sum())} non-finite entries (first at index "
                f"{int(np.argmax(bad))}); fill or drop them before scoring"
            )
        if ts.dtype.kind == "M" and np.isnat(ts).any():
            raise DataError(
                f"timestamp at index {int(np.argmax(np.isnat(ts)))} is NaT; every record needs "
                "a timestamp"
            )
        t_ns = ts.astype("datetime64[ns]").astype(np.int64) if ts.dtype.kind == "M" else (
            ts.astype(np.int64)
        )
        self.reset(probationary)
        out = np.empty(len(values))
        step = self._step
        i = 0
        try:
            for i in range(len(values)):
                out[i] = step(int(t_ns[i]), float(values[i]))
        except AwsAnomalyError as exc:
            prev = _fmt_ns(int(t_ns[i - 1])) if i else "none (first record)"
            raise DataError(
                f"record {i} (timestamp {_fmt_ns(int(t_ns[i]))}, previous record {prev}): "
                f"{exc}"
            ) from exc
        if len(values):
            self.last_t_ = int(t_ns[-1])
        self.n_seen_ = len(values)
        np.clip(out, 0.0, 1.0, out=out)
        return out

    # -- persistence -----------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """JSON-safe state: class name, hyperparameters and everything learned."""
        learned = {k: _to_json(v) for k, v in vars(self).items() if k.endswith("_")}
        params = {k: _to_json(v) for k, v in self.get_params().items()}
        return {"class": type(self).__name__, "params": params, "learned": learned}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> StreamingDetector:
        """Rebuild a detector saved with :meth:`get_state`."""
        if not isinstance(state, dict) or state.get("class") != cls.__name__:
            got = state.get("class") if isinstance(state, dict) else type(state).__name__
            raise ModelFileError(
                f"state is for {got!r}, not {cls.__name__!r}; load it with that class"
            )
        try:
            det = cls(**{k: _from_json(v) for k, v in state["params"].items()})
            # __init__ reset any member detectors; decode them again to keep what they learned.
            for key, val in state["params"].items():
                if isinstance(getattr(det, key), (StreamingDetector, list)):
                    setattr(det, key, _from_json(val))
            for key, val in state["learned"].items():
                setattr(det, key, _from_json(val))
        except (KeyError, TypeError) as exc:
            raise ModelFileError(
                f"state for {cls.__name__} is incomplete or altered: {exc}"
            ) from exc
        return det


def _to_json(v: Any) -> Any:
    if isinstance(v, StreamingDetector):
        return {"__detector__": v.get_state()}
    if isinstance(v, np.ndarray):
        return {"__array__": v.tolist(), "dtype": str(v.dtype)}
    if isinstance(v, deque):
        return {"__deque__": [_to_json(x) for x in v], "maxlen": v.maxlen}
    if isinstance(v, dict):
        return {"__dict__": [[_to_json(k), _to_json(x)] for k, x in v.items()]}
    if isinstance(v, tuple):
        return {"__tuple__": [_to_json(x) for x in v]}
    if isinstance(v, list):
        return [_to_json(x) for x in v]
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return {"__float__": repr(v)}
    if hasattr(v, "get_state") and hasattr(type(v), "from_state"):
        return {"__object__": type(v).__name__, "state": v.get_state()}
    return v


def _from_json(v: Any) -> Any:
    if isinstance(v, list):
        return [_from_json(x) for x in v]
    if not isinstance(v, dict):
        return v
    if "__array__" in v:
        return np.asarray(v["__array__"], dtype=v["dtype"])
    if "__dict__" in v:
        return {_from_json(k): _from_json(x) for k, x in v["__dict__"]}
    if "__deque__" in v:
        return deque((_from_json(x) for x in v["__deque__"]), maxlen=v["maxlen"])
    if "__tuple__" in v:
        return tuple(_from_json(x) for x in v["__tuple__"])
    if "__float__" in v:
        return float(v["__float__"])
    if "__detector__" in v:
        st = v["__detector__"]
        return _state_class(st["class"]).from_state(st)
    if "__object__" in v:
        return _state_class(v["__object__"]).from_state(v["state"])
    return v


#: Classes whose instances can appear inside a saved state, by name (filled at class creation,
#: so loading never imports or evaluates anything named in the file).
_STATE_CLASSES: dict[str, type] = {}


def register_state_class(cls: type) -> type:
    """Allow instances of ``cls`` (with get_state/from_state) inside saved detector states."""
    _STATE_CLASSES[cls.__name__] = cls
    return cls


def _state_class(name: str) -> type:
    try:
        return _STATE_CLASSES[name]
    except KeyError:
        raise ModelFileError(
            f"state names unknown class {name!r}; known: {sorted(_STATE_CLASSES)}"
        ) from None
