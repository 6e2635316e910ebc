"""The "use rate()" hint for Prometheus queries that read a raw counter."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from aws_anomaly.config import PrometheusSourceConfig
from aws_anomaly.sources.prometheus import PrometheusSource, counter_hint, looks_like_counter


@pytest.mark.parametrize(("query", "example"), [
    ("container_cpu_usage_seconds_total", "rate(container_cpu_usage_seconds_total[5m])"),
    ('sum by (cluster) (http_requests_total{code=~"5.."})',
     'sum by (cluster) (rate(http_requests_total{code=~"5.."}[5m]))'),
    ("sum(x_total) by (cluster)", "sum(rate(x_total[5m])) by (cluster)"),
    ("x_sum / x_count", "rate(x_sum[5m]) / x_count"),
    ("x_bucket offset 1h", "rate(x_bucket[5m]) offset 1h"),
])
def test_a_counter_read_as_is_gets_the_hint(query: str, example: str) -> None:
    hint = counter_hint(query)
    assert hint is not None and hint.endswith(f"wrap it in rate(), e.g. {example}")


@pytest.mark.parametrize("query", [
    "sum by (cluster) (rate(http_requests_total[5m]))",
    "histogram_quantile(0.9, sum by (le, cluster) (rate(x_bucket[5m])))",
    "increase(x_total[1h])", "sum(irate(x_total[5m:1m]))",
    "rate(x_sum[5m]) / rate(x_count[5m])",
    "sum by (cluster, job_total) (rate(y[5m]))",  # a label named like a counter
    "max by (cluster) (kube_node_status_allocatable)", 'label_replace(up, "a_total", "$1", '
    '"b", "(.*)")',
])
def test_rates_and_gauges_get_none(query: str) -> None:
    assert counter_hint(query) is None


def test_series_shapes() -> None:
    rng = np.random.default_rng(0)
    total = np.cumsum(rng.integers(0, 5, 300)).astype(float)
    assert looks_like_counter(total) == (True, 0)
    restarted = np.r_[total[:150], total[150:] - total[150]]  # a process restart
    assert looks_like_counter(restarted) == (True, 1)
    assert looks_like_counter(total[:10]) == (False, 0)  # too short to tell
    gauge = 0.5 + 0.1 * np.sin(np.arange(300) / 20) + rng.normal(0, 0.01, 300)
    assert looks_like_counter(gauge) == (False, 0)
    flat = np.full(300, 3.0)  # never rises: not a counter at work
    assert looks_like_counter(flat) == (False, 0)
    small_dips = total - np.r_[0, 0.1 * (np.arange(299) % 7 == 0)]  # falls, not resets
    assert looks_like_counter(small_dips) == (False, 0)


def test_the_source_warns_when_it_is_made(caplog: pytest.LogCaptureFixture) -> None:
    cfg = PrometheusSourceConfig(url="http://127.0.0.1:9", queries={
        "cpu": "sum by (cluster) (rate(cpu_seconds_total[5m]))",
        "requests": "sum by (cluster) (http_requests_total)"})
    with caplog.at_level(logging.WARNING, logger="aws_anomaly.sources.prometheus"):
        PrometheusSource(cfg).close()
    (record,) = caplog.records
    assert record.getMessage() == (
        "prometheus http://127.0.0.1:9: query 'sum by (cluster) (http_requests_total)' for "
        "metric 'requests': it reads the counter http_requests_total as is: wrap it in rate(), "
        "e.g. sum by (cluster) (rate(http_requests_total[5m]))")
