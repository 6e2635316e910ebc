"""Prometheus alerting rules for the ``aws_anomaly_*`` metrics.

``aws-anomaly rules --out rules.yml`` writes them; ``deploy/prometheus/`` holds the default set
and its ``promtool test rules`` cases. Three alerts:

``AwsAnomalyDetected``
    an entity's latest point has been anomalous for ``consecutive`` evaluations in a row
    (``for: consecutive x evaluation_interval``), with the entity's top metric in the
    annotations (looked up from ``aws_anomaly_metric_contribution`` at alert time);
``AwsAnomalyDetectorStale``
    a job has had no successful run for ``stale_intervals`` job intervals;
``AwsAnomalyDetectorErroring``
    a job's errors keep rising (any stage) for two evaluations.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from aws_anomaly.durations import parse_seconds
from aws_anomaly.errors import ConfigError

__all__ = ["RuleOptions", "build_rules", "parse_duration_s", "render_rules"]

_SEVERITIES = ("info", "warning", "critical", "page", "ticket")


def parse_duration_s(text: str, *, what: str = "duration") -> int:
    """Parse ``30s``, ``5m``, ``1h``, ``1h30m``, ``1d`` into whole seconds
    (:func:`aws_anomaly.durations.parse_seconds`, the parser config files use).

    >>> parse_duration_s("5m"), parse_duration_s("1h30m")
    (300, 5400)
    """
    return parse_seconds(text, where=what)


def _fmt_duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class RuleOptions:
    """What the generated rules assume about the deployment.

    Parameters
    ----------
    evaluation_interval
        Prometheus's rule evaluation interval (``global.evaluation_interval``).
    job_interval
        How often aws-anomaly jobs tick; staleness is measured in these.
    consecutive
        Anomalous evaluations in a row before ``AwsAnomalyDetected`` fires (>= 1).
    severity
        ``severity`` label of the anomaly alert; the operational alerts use ``warning``.
    stale_intervals
        Job intervals without a successful run before ``AwsAnomalyDetectorStale`` fires.
    dashboard_url
        Base URL of the aws-anomaly dashboard, linked from annotations.
    """

    evaluation_interval: str = "1m"
    job_interval: str = "1m"
    consecutive: int = 3
    severity: str = "warning"
    stale_intervals: int = 3
    dashboard_url: str = "http://127.0.0.1:8080"

    def __post_init__(self) -> None:
        parse_duration_s(self.evaluation_interval, what="evaluation_interval")
        parse_duration_s(self.job_interval, what="job_interval")
        if self.consecutive < 1:
            raise ConfigError(f"consecutive must be >= 1, got {self.consecutive}")
        if self.stale_intervals < 1:
            raise ConfigError(f"stale_intervals must be >= 1, got {self.stale_intervals}")
        if self.severity not in _SEVERITIES:
            raise ConfigError(f"severity {self.severity!r} is not one of {_SEVERITIES}")


def build_rules(opts: RuleOptions | None = None) -> dict:
    """The rule groups as a dict ready for YAML."""
    o = opts or RuleOptions()
    ev = parse_duration_s(o.evaluation_interval)
    stale_s = parse_duration_s(o.job_interval) * o.stale_intervals
    # The anomaly must hold at `consecutive` evaluations: the first one makes it pending, and
    # `for` covers the remaining consecutive - 1.
    for_anomaly = _fmt_duration(ev * (o.consecutive - 1)) if o.consecutive > 1 else "0s"
    top_metric = (
        '{{ with printf "topk(1, aws_anomaly_metric_contribution{entity=%q,model=%q})" '
        "$labels.entity $labels.model | query }}{{ . | first | label \"metric\" }}"
        "{{ else }}unknown{{ end }}"
    )
    dash = o.dashboard_url.rstrip("/")
    return {
        "groups": [
            {
                "name": "aws-anomaly",
                "rules": [
                    {
                        "alert": "AwsAnomalyDetected",
                        "expr": "aws_anomaly_is_anomalous == 1",
                        "for": for_anomaly,
                        "labels": {"severity": o.severity},
                        "annotations": {
                            "summary": "Anomaly on {{ $labels.entity }} ({{ $labels.model }})",
                            "description": (
                                "{{ $labels.entity }} has been anomalous for "
                                f"{o.consecutive} consecutive evaluations; anomaly score "
                                '{{ with printf "aws_anomaly_score{entity=%q,model=%q}" '
                                "$labels.entity $labels.model | query }}"
                                "{{ . | first | value | printf \"%.2f\" }}{{ end }}."
                            ),
                            "top_metric": top_metric,
                            "dashboard": dash + "/?entity={{ $labels.entity | urlquery }}",
                        },
                    },
                    {
                        "alert": "AwsAnomalyDetectorStale",
                        "expr": (
                            "time() - max by (job) "
                            f"(aws_anomaly_last_success_timestamp_seconds) > {stale_s}"
                        ),
                        "for": "0s",
                        "labels": {"severity": "warning"},
                        "annotations": {
                            "summary": "aws-anomaly job {{ $labels.job }} is stale",
                            "description": (
                                "No successful run of {{ $labels.job }} for more than "
                                f"{o.stale_intervals} intervals ({_fmt_duration(stale_s)})."
                            ),
                        },
                    },
                    {
                        "alert": "AwsAnomalyDetectorErroring",
                        "expr": (
                            "sum by (job, stage) "
                            f"(increase(aws_anomaly_errors_total[{_fmt_duration(5 * ev)}])) > 0"
                        ),
                        "for": _fmt_duration(ev),
                        "labels": {"severity": "warning"},
                        "annotations": {
                            "summary": "aws-anomaly job {{ $labels.job }} fails at "
                                       "{{ $labels.stage }}",
                            "description": "Errors at stage {{ $labels.stage }} of job "
                                           "{{ $labels.job }} keep rising.",
                        },
                    },
                ],
            }
        ]
    }


def render_rules(opts: RuleOptions | None = None) -> str:
    """The rules as YAML text, with a header saying how they were made."""
    o = opts or RuleOptions()
    header = (
        "# Prometheus alerting rules for aws-anomaly, written by `aws-anomaly rules`.\n"
        f"# evaluation_interval={o.evaluation_interval} job_interval={o.job_interval} "
        f"consecutive={o.consecutive} severity={o.severity} "
        f"stale_intervals={o.stale_intervals}\n"
    )
    return header + yaml.safe_dump(build_rules(o), sort_keys=False, width=100)
