"""Univariate streaming anomaly detectors for NAB-style use (score, then learn, record by record).

``NAB_DETECTORS`` maps a name to a factory that builds a detector with the project's ONE chosen
parameter set (chosen by leave-files-out cross-validation, see ``docs/streaming.md`` and
``benchmarks/streaming_cv.py``). Every detector has ``update(timestamp, value) -> score``,
``learn_one`` / ``score_one``, ``run(timestamps, values, probationary)`` and
``get_state`` / ``from_state``.
"""

from __future__ import annotations

from collections.abc import Callable

from aws_anomaly.streaming.base import DEFAULT_PROBATIONARY, StreamingDetector
from aws_anomaly.streaming.context import ContextNoveltyDetector
from aws_anomaly.streaming.ensemble import EnsembleDetector
from aws_anomaly.streaming.forecast import ForecastLikelihoodDetector
from aws_anomaly.streaming.likelihood import AnomalyLikelihood, LikelihoodDetector

__all__ = [
    "BEST_DETECTOR",
    "DEFAULT_PROBATIONARY",
    "NAB_DETECTORS",
    "AnomalyLikelihood",
    "ContextNoveltyDetector",
    "EnsembleDetector",
    "ForecastLikelihoodDetector",
    "LikelihoodDetector",
    "StreamingDetector",
    "make_context_ensemble",
    "make_forecast_ensemble",
    "make_full_ensemble",
]

#: Shared alarm shaping: one alarm per anomaly (rest), plus Numenta's spatial novelty.
_ALARM = {"rest_level": 0.5, "rest_period": 100, "rest_factor": 0.0, "spatial_tolerance": 0.05}


def make_context_ensemble() -> EnsembleDetector:
    """Contextual novelty (coarse levels) as an anomaly likelihood, with alarm shaping."""
    return EnsembleDetector(
        members=[LikelihoodDetector(member=ContextNoveltyDetector(), avg_window=10)], **_ALARM
    )


def make_forecast_ensemble() -> EnsembleDetector:
    """Forecast-residual likelihoods (EWMAs and same-time-yesterday), with alarm shaping."""
    return EnsembleDetector(
        members=[ForecastLikelihoodDetector(avg_window=10, season="1D")], **_ALARM
    )


def make_full_ensemble() -> EnsembleDetector:
    """Both families together (max of their likelihood scores), with alarm shaping."""
    return EnsembleDetector(
        members=[
            LikelihoodDetector(member=ContextNoveltyDetector(), avg_window=10),
            ForecastLikelihoodDetector(avg_window=10, season="1D"),
        ],
        **_ALARM,
    )


#: The detectors the NAB harness runs; ``BEST_DETECTOR`` names the one we stand behind.
NAB_DETECTORS: dict[str, Callable[[], StreamingDetector]] = {
    "aws_context": make_context_ensemble,
    "aws_forecast": make_forecast_ensemble,
    "aws_ensemble": make_full_ensemble,
}
BEST_DETECTOR = "aws_context"
