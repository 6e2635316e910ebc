"""Prometheus alerting rules for the ``aws_anomaly_*`` metrics.

``aws-anomaly rules --out rules.yml`` writes them; ``deploy/prometheus/`` holds the default set
and its ``promtool test rules`` cases. Three alerts:

``AwsAnomalyDetected``
    the service says an alert fires on an entity (``aws_anomaly_alert_active == 1``): the
    job's :class:`~aws_anomaly.events.AlertPolicy` decided it, the same decision the
    notifiers send (an event reached ``alert.min_consecutive`` anomalous points and has not
    closed), so a one-point blip never pages and the rules need no ``for:`` of their own. The
    alert's labels are exactly those the Alertmanager notifier sends (``alertname``, ``job``
    (the aws-anomaly job, also when Prometheus renamed it ``exported_job``), ``entity``,
    ``model``, ``severity`` (the job's ``alert.severity``)); scrape labels such as
    ``instance`` are dropped. With both delivery paths on, Alertmanager sees one alert per
    incident. The entity's top metric is looked up from ``aws_anomaly_metric_contribution``
    at alert time;
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

__all__ = ["ALERT_LABELS", "RuleOptions", "build_rules", "parse_duration_s", "render_rules"]



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

    When an anomaly alerts (``alert.min_consecutive``, the merge gap, ``alert.severity``) is
    the job's configuration, decided in the service and exported as
    ``aws_anomaly_alert_active``; it is not repeated here.

    Parameters
    ----------
    evaluation_interval
        Prometheus's rule evaluation interval (``global.evaluation_interval``).
    job_interval
        How often aws-anomaly jobs tick; staleness is measured in these.
    stale_intervals
        Job intervals without a successful run before ``AwsAnomalyDetectorStale`` fires.
    dashboard_url
        Base URL of the aws-anomaly dashboard, linked from annotations.
    """

    evaluation_interval: str = "1m"
    job_interval: str = "1m"
    stale_intervals: int = 3
    dashboard_url: str = "http://127.0.0.1:8080"

    def __post_init__(self) -> None:
        parse_duration_s(self.evaluation_interval, what="evaluation_interval")
        parse_duration_s(self.job_interval, what="job_interval")
        if self.stale_intervals < 1:
            raise ConfigError(f"stale_intervals must be >= 1, got {self.stale_intervals}")
        if not self.dashboard_url.startswith(("http://", "https://")):
            raise ConfigError(f"dashboard_url {self.dashboard_url!r} must start with "
                              "http:// or https://")


#: Labels of the anomaly alert: the same set the Alertmanager notifier sends.
ALERT_LABELS = ("job", "entity", "model", "severity")


def _job_label(expr: str) -> str:
    """``expr`` with ``job`` set to the aws-anomaly job: Prometheus renames the exporter's
    ``job`` label to ``exported_job`` (unless ``honor_labels: true``), and its own ``job`` is
    the scrape job."""
    return f'label_replace({expr}, "job", "$1", "exported_job", "(.+)")'


def build_rules(opts: RuleOptions | None = None) -> dict:
    """The rule groups as a dict ready for YAML."""
    o = opts or RuleOptions()
    ev = parse_duration_s(o.evaluation_interval)
    stale_s = parse_duration_s(o.job_interval) * o.stale_intervals
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
                        # The decision (minimum points, merge gap, resolve) is the service's;
                        # `max by` keeps exactly the notifier's labels (and merges replicas).
                        "expr": (f"max by ({', '.join(ALERT_LABELS)}) "
                                 f"({_job_label('aws_anomaly_alert_active')}) == 1"),
                        "for": "0s",
                        "annotations": {
                            "summary": "Anomaly on {{ $labels.entity }} ({{ $labels.model }})",
                            "description": (
                                "aws-anomaly job {{ $labels.job }} has an open alert on "
                                "{{ $labels.entity }}: an anomaly event reached the job's "
                                "alert.min_consecutive anomalous points and has not ended; "
                                "latest anomaly score "
                                '{{ with printf "aws_anomaly_score{entity=%q,model=%q}" '
                                "$labels.entity $labels.model | query }}"
                                "{{ . | first | value | printf \"%.2f\" }}"
                                "{{ else }}unknown{{ end }}."
                            ),
                            "top_metric": top_metric,
                            "dashboard": dash + "/?entity={{ $labels.entity | urlquery }}",
                        },
                    },
                    {
                        "alert": "AwsAnomalyDetectorStale",
                        "expr": (
                            "time() - max by (job) "
                            f"({_job_label('aws_anomaly_last_success_timestamp_seconds')}) "
                            f"> {stale_s}"
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
                            "sum by (job, stage) ("
                            + _job_label(
                                f"increase(aws_anomaly_errors_total[{_fmt_duration(5 * ev)}])")
                            + ") > 0"
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
        f"stale_intervals={o.stale_intervals}\n"
        "# AwsAnomalyDetected follows aws_anomaly_alert_active: the service's alert decision\n"
        "# (alert.min_consecutive, merge gap, resolve), the same one its notifiers send.\n"
    )
    return header + yaml.safe_dump(build_rules(o), sort_keys=False, width=100)
