"""Explanations agree with the numbers (explain.py) and the runner labels anomalies by kind."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aws_anomaly.explain import (
    FLAT_POINTS,
    KINDS,
    MetricExplanation,
    band_deviation,
    classify,
    sentence,
)


def test_deviation_is_in_band_units_on_each_side() -> None:
    # an asymmetric band: 2 above, 1 below the expected value
    dev = band_deviation([12.0, 14.0, 9.5, 8.0, 10.0], 10.0, 9.0, 12.0)
    np.testing.assert_allclose(dev, [1.0, 2.0, -0.5, -2.0, 0.0])
    assert np.isnan(band_deviation(5.0, np.nan, np.nan, np.nan))
    # a zero-width band (a constant metric): any move is infinitely far, no move is 0
    assert band_deviation(7.01, 7.0, 7.0, 7.0) == math.inf
    assert band_deviation(7.0, 7.0, 7.0, 7.0) == 0.0


@pytest.mark.parametrize("values,kind", [
    ([1.0] * 11 + [5.0], "spike"),
    ([1.0] * 10 + [5.0, 5.2], "spike"),  # two points: not yet a shift
    ([1.0] * 6 + [5.0, 5.1, 4.9, 5.0, 5.05, 5.0], "level shift"),
    ([1.0] * 6 + [1.6, 2.0, 2.5, 3.0, 3.6, 4.2], "drift"),
    ([0.2] * 6 + [-3.0, -3.0, -3.1, -2.9, -3.0, -3.0], "level shift"),
    ([1.0, 1.2, 0.9, 1.1] + [1.05] * FLAT_POINTS, "flatline"),
    ([1.0, 1.2, 0.9, 1.1, 1.0, 0.95], "unusual combination"),
])
def test_kinds(values, kind) -> None:
    assert classify(values, 1.0, 0.5, 1.5) == kind


def test_kind_without_band_is_unknown() -> None:
    assert classify([1.0, 2.0], math.nan, math.nan, math.nan) == "unknown"


def test_sentence_never_contradicts_the_numbers() -> None:
    out = MetricExplanation("cpu", 0.7, 0.93, 0.41, 0.30, 0.52, float(
        band_deviation(0.93, 0.41, 0.30, 0.52)), "level shift")
    assert out.text() == ("cpu 0.93, expected 0.41 (0.3 to 0.52): 4.7x the band above, "
                          "level shift")
    inside = MetricExplanation("mem", 0.3, 0.45, 0.41, 0.30, 0.52, 0.36, "unusual combination")
    assert "inside its band" in inside.text() and "above" not in inside.text()
    assert sentence([out, inside]).startswith("cpu 0.93") and "[30%]" in sentence([out, inside])
    # numpy scalars print as plain numbers
    assert "np.float64" not in MetricExplanation(
        "x", 1.0, np.float64(2.0), np.float64(1.0), np.float64(0.5), np.float64(1.5), 2.0,
        "spike").text()


def test_a_per_metric_models_inside_band_sentence_names_its_own_pattern() -> None:
    """A metric a per-metric (streaming series) model flags inside its band: the sentence says
    its own recent values, never the other metrics (that model never saw them together)."""
    inside = MetricExplanation("mem", 1.0, 0.45, 0.41, 0.30, 0.52, 0.36, "unusual pattern")
    assert inside.text() == ("mem 0.45, expected 0.41 (0.3 to 0.52): inside its band, an "
                             "unusual pattern of its recent values")
    assert "unusual pattern" in KINDS
