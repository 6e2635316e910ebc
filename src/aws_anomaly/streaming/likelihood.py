"""Numenta-style anomaly likelihood: how unusual the recent raw scores are, as a [0, 1] score.

A raw anomaly score (a normalised forecast error, a novelty fraction...) is noisy and its scale
differs between series. The anomaly likelihood (Ahmad et al. 2017) turns it into a probability:
the short-term mean of the raw scores is compared with a Gaussian fitted to the long-term
distribution of such means, and the upper tail probability ``q`` is log-scaled,
``score = log(q + 1e-10) / log(1e-10)``, so ``q = 1e-5`` gives 0.5 and ``q = 1e-10`` gives 1.
Consecutive "red" tails are damped (only the first stays red), as in Numenta's filter.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, ClassVar

import numpy as np

from aws_anomaly.durations import parse_nanoseconds
from aws_anomaly.errors import ConfigError
from aws_anomaly.streaming.base import (
    DEFAULT_PROBATIONARY,
    StreamingDetector,
    register_state_class,
)

__all__ = ["AnomalyLikelihood", "LikelihoodDetector", "log_tail_score"]

_EPS = 1e-10
_LOG_EPS = math.log(_EPS)
_SQRT2 = math.sqrt(2.0)


def log_tail_score(tail: float) -> float:
    """Map an upper-tail probability to a [0, 1] score (1e-5 -> 0.5, 1e-10 -> 1).

    >>> round(log_tail_score(1e-5), 6)
    0.5
    >>> log_tail_score(1.0) < 0.01
    True
    """
    return min(1.0, max(0.0, math.log(tail + _EPS) / _LOG_EPS))


@register_state_class
class AnomalyLikelihood:
    """Streaming anomaly likelihood over a raw-score stream.

    Parameters
    ----------
    avg_window
        Number of recent raw scores averaged into the short-term mean.
    history
        Number of past short-term means the Gaussian is fitted to.
    learning
        Raw scores seen before any likelihood is reported (the score is 0 until then).
    reestimate
        The Gaussian is refitted every ``reestimate`` records (it stays fixed in between, so a
        burst of anomalies does not immediately explain itself away).
    skip
        The first ``skip`` short-term means are left out of the fit (a member detector's own
        warm-up scores, high because everything is new to it, would inflate the spread).
    trim
        Share of the highest short-term means left out of each fit.
    min_std
        Floor on the fitted standard deviation (raw scores of a very regular series are nearly
        constant; without a floor any wiggle would look like an anomaly).
    red, yellow
        Tail probabilities of Numenta's filter: a red tail (``<= red``) right after a red tail
        is raised to ``yellow``.

    Examples
    --------
    >>> lik = AnomalyLikelihood(avg_window=1, learning=50, reestimate=10)
    >>> scores = [lik.update(0.1 * (i % 3)) for i in range(200)]
    >>> max(scores) < 0.2 and lik.update(5.0) > 0.9
    True
    """

    def __init__(
        self,
        *,
        avg_window: int = 10,
        history: int = 3000,
        learning: int = 300,
        reestimate: int = 100,
        min_std: float = 0.02,
        skip: int = 0,
        trim: float = 0.0,
        red: float = 1e-5,
        yellow: float = 1e-3,
    ) -> None:
        for name, val, lo in (("avg_window", avg_window, 1), ("history", history, 10),
                              ("learning", learning, 2), ("reestimate", reestimate, 1)):
            if not isinstance(val, int) or val < lo:
                raise ConfigError(f"AnomalyLikelihood {name} must be an int >= {lo}, got {val!r}")
        if not isinstance(skip, int) or not 0 <= skip < learning:
            raise ConfigError(
                f"AnomalyLikelihood skip must be an int in [0, learning), got {skip!r}"
            )
        if not min_std > 0:
            raise ConfigError(f"AnomalyLikelihood min_std must be > 0, got {min_std!r}")
        self.avg_window = avg_window
        self.history = history
        self.learning = learning
        self.reestimate = reestimate
        self.min_std = min_std
        self.skip = skip
        if not 0 <= trim < 0.5:
            raise ConfigError(f"AnomalyLikelihood trim must be in [0, 0.5), got {trim!r}")
        self.trim = trim
        self.red = red
        self.yellow = yellow
        self.reset()

    def reset(self) -> None:
        """Forget all history."""
        self.recent_: deque[float] = deque(maxlen=self.avg_window)
        self.means_: deque[float] = deque(maxlen=self.history)
        self.count_ = 0
        self.mu_ = 0.0
        self.sigma_ = 1.0
        self.fitted_ = False
        self.prev_red_ = False

    def update(self, raw: float) -> float:
        """Add one raw score; return the likelihood score of the recent mean, in [0, 1]."""
        recent = self.recent_
        recent.append(raw)
        avg = sum(recent) / len(recent)
        score = 0.0
        if self.count_ >= self.learning:
            if not self.fitted_ or (self.count_ - self.learning) % self.reestimate == 0:
                self._fit()
            z = (avg - self.mu_) / self.sigma_
            tail = 0.5 * math.erfc(z / _SQRT2)
            is_red = tail <= self.red
            if is_red and self.prev_red_:
                tail = self.yellow
            self.prev_red_ = is_red
            score = log_tail_score(tail)
        if self.count_ >= self.skip:
            self.means_.append(avg)
        self.count_ += 1
        return score

    def _fit(self) -> None:
        arr = np.fromiter(self.means_, dtype=np.float64, count=len(self.means_))
        if self.trim > 0 and len(arr) >= 20:
            # Past anomalies are the top tail: fit the bulk, so one burst does not hide the next.
            arr = np.sort(arr)[: max(10, round(len(arr) * (1.0 - self.trim)))]
        self.mu_ = float(arr.mean())
        self.sigma_ = max(float(arr.std()), self.min_std)
        self.fitted_ = True

    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("avg_window", "history", "learning", "reestimate",
                                              "min_std", "skip", "trim", "red", "yellow")}

    def get_state(self) -> dict[str, Any]:
        """JSON-safe state (parameters and learned history)."""
        return {
            "params": self.get_params(),
            "recent": list(self.recent_), "means": list(self.means_), "count": self.count_,
            "mu": self.mu_, "sigma": self.sigma_, "fitted": self.fitted_,
            "prev_red": self.prev_red_,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> AnomalyLikelihood:
        """Rebuild from :meth:`get_state`."""
        obj = cls(**state["params"])
        obj.recent_.extend(state["recent"])
        obj.means_.extend(state["means"])
        obj.count_ = int(state["count"])
        obj.mu_ = float(state["mu"])
        obj.sigma_ = float(state["sigma"])
        obj.fitted_ = bool(state["fitted"])
        obj.prev_red_ = bool(state["prev_red"])
        return obj


class LikelihoodDetector(StreamingDetector):
    """Any streaming detector's score turned into an anomaly likelihood, at one or more scales.

    Parameters
    ----------
    member
        The detector whose score is the raw score (a fresh instance; this wrapper owns it).
    avg_windows
        One :class:`AnomalyLikelihood` per short-term averaging window; the score is their
        maximum (a short window reacts to brief bursts, a long one to sustained ones).
    history, min_std
        Passed to each :class:`AnomalyLikelihood`; its learning period is the probationary
        length (capped at ``history``), so it reports from the end of probation.
    skip_fraction
        Share of the learning period whose scores are left out of the fit (the member's
        warm-up).
    trim
        Passed to :class:`AnomalyLikelihood`.
    record_time
        A duration (``"3D"``) or None. When set, the likelihood of the *first* averaging window
        counts only while its short-term mean of raw scores is at least the highest such mean
        of the last ``record_time`` (a record for the series), leaving out the records seen
        while an enclosing ensemble rested after an alarm (they belong to an anomaly already
        reported). A series whose raw scores often burst this high (news-driven volumes, say)
        then needs a burst bigger than its recent ones; a quiet series is unaffected.
    probationary
        See :class:`StreamingDetector`; passed on to the member.

    Examples
    --------
    >>> import numpy as np
    >>> from aws_anomaly.streaming.context import ContextNoveltyDetector
    >>> x = np.tile([0.0, 1.0, 2.0, 3.0], 400); x[1300:1310] = 9.0
    >>> t = np.arange(1600).astype("datetime64[m]").astype("datetime64[ns]")
    >>> s = LikelihoodDetector(member=ContextNoveltyDetector()).run(t, x, probationary=200)
    >>> 1300 <= int(np.argmax(s)) < 1310
    True
    """

    _params: ClassVar[tuple[str, ...]] = ("member", "avg_windows", "history", "min_std",
                                          "skip_fraction", "trim", "record_time")

    def __init__(
        self,
        *,
        member: StreamingDetector,
        avg_windows: tuple[int, ...] = (10,),
        history: int = 3000,
        min_std: float = 0.02,
        skip_fraction: float = 0.5,
        trim: float = 0.0,
        record_time: str | None = None,
        probationary: int = DEFAULT_PROBATIONARY,
    ) -> None:
        if not 0 <= skip_fraction < 1:
            raise ConfigError(f"skip_fraction must be in [0, 1), got {skip_fraction!r}")
        if not isinstance(member, StreamingDetector):
            raise ConfigError(f"member must be a StreamingDetector, got {type(member).__name__}")
        self.member = member
        avg_windows = tuple(avg_windows)
        if not avg_windows or not all(isinstance(w, int) and w >= 1 for w in avg_windows):
            raise ConfigError(f"avg_windows must be a non-empty tuple of ints >= 1, got "
                              f"{avg_windows!r}")
        self.avg_windows = avg_windows
        self.history = history
        self.min_std = min_std
        self.skip_fraction = skip_fraction
        self.trim = trim
        self.record_time = record_time
        self._record_ns: int | None = None
        if record_time is not None:
            self._record_ns = parse_nanoseconds(record_time, where="record_time")
        super().__init__(probationary=probationary)

    def _reset(self) -> None:
        self.member.reset(self.probationary)
        learning = max(2, min(self.probationary, self.history))
        self.liks_ = [
            AnomalyLikelihood(
                avg_window=w, history=self.history, learning=learning, min_std=self.min_std,
                skip=int(self.skip_fraction * learning), trim=self.trim,
            )
            for w in self.avg_windows
        ]
        # (time, short-term mean) pairs of the last record_time, means decreasing: the first
        # is the record to beat.
        self.record_: deque[list[float]] = deque()

    def _step(self, t_ns: int, x: float) -> float:
        return self._step_member(t_ns, x, False)

    def _step_member(self, t_ns: int, x: float, resting: bool) -> float:
        raw = self.member._step(t_ns, x)
        scores = [lik.update(raw) for lik in self.liks_]
        if self._record_ns is not None:
            recent = self.liks_[0].recent_
            mean = sum(recent) / len(recent)
            rec = self.record_
            while rec and rec[0][0] < t_ns - self._record_ns:
                rec.popleft()
            if rec and mean < rec[0][1]:
                scores[0] = 0.0
            if not resting:
                while rec and rec[-1][1] <= mean:
                    rec.pop()
                rec.append([t_ns, mean])
        return max(scores)
