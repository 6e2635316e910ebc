"""One typed configuration for aws-anomaly, loaded from YAML plus environment overrides.

Every section is a frozen pydantic model with ``extra="forbid"``: an unknown or misspelt key is a
:class:`~aws_anomaly.errors.ConfigError` naming the key, the file and the keys allowed there.

* :class:`Settings` — the service file (``aws-anomaly serve --config settings.yaml``): a
  ``service`` section and a list of ``jobs``. With no file, :func:`load_settings` returns the
  defaults: a loopback service running the embedded demo job.
* :class:`JobConfig` — one detection job (``aws-anomaly run --config job.yaml``): a source, the
  metrics, a model, the live interval, notifiers and the alert policy.

Environment overrides use the prefix ``AWS_ANOMALY__`` and double underscores for nesting:
``AWS_ANOMALY__SERVICE__PORT=9090`` sets ``service.port``; list items are addressed by index
(``AWS_ANOMALY__JOBS__0__INTERVAL=2m``). Job files loaded with :func:`load_job` take
``AWS_ANOMALY__JOB__...``. Values are strings converted by the field's type; a value starting
with ``[`` or ``{`` is parsed as JSON.

Secrets (API token, bearer token, basic password, Slack URL, store URL) never have a default.
Each can be given inline, from an environment variable (``*_env``) or from a file (``*_file``),
and is held as :class:`pydantic.SecretStr` so it never shows in ``repr`` or logs.

The sections live in modules by subject, and every public name is re-exported here (import
from ``aws_anomaly.config``): :mod:`~aws_anomaly.config.fields` (durations, paths, URLs,
secrets), :mod:`~aws_anomaly.config.sources`, :mod:`~aws_anomaly.config.notifiers`,
:mod:`~aws_anomaly.config.model` (a job's model section), :mod:`~aws_anomaly.config.jobs`,
:mod:`~aws_anomaly.config.service` (the service and :class:`Settings`) and
:mod:`~aws_anomaly.config.loading` (YAML, environment overrides, error messages).

Durations are strings such as ``"30s"``, ``"5m"``, ``"1h"``, ``"14d"``, ``"1w"`` or compounds
(``"1h30m"``), or a number of seconds; they become :class:`datetime.timedelta`.

Examples
--------
>>> s = load_settings(None, environ={})
>>> s.service.host, s.service.port, s.jobs[0].name, s.jobs[0].source.type
('127.0.0.1', 8080, 'demo', 'demo')
>>> s.jobs[0].metrics
('cluster_cpu_request_ratio', 'cluster_mem_request_ratio', 'cluster_pod_ratio')
>>> parse_duration("1h30m")
datetime.timedelta(seconds=5400)
>>> format_duration(parse_duration("14d"))
'14d'
"""

from __future__ import annotations

from aws_anomaly.config.fields import Duration, FilePath, GapPolicyName, HttpUrl, resolve_secret
from aws_anomaly.config.jobs import AlertConfig, DriftConfig, JobConfig, RetrainConfig
from aws_anomaly.config.loading import ENV_PREFIX, load_job, load_settings
from aws_anomaly.config.model import ModelConfig, ThresholdConfig
from aws_anomaly.config.notifiers import (
    AlertmanagerNotifierConfig,
    NotifierConfig,
    SlackNotifierConfig,
    WebhookNotifierConfig,
)
from aws_anomaly.config.service import (
    ExporterConfig,
    ServiceConfig,
    Settings,
    StoreConfig,
    is_loopback,
)
from aws_anomaly.config.sources import (
    DEMO_METRICS,
    BasicAuth,
    BearerAuth,
    CloudWatchQuery,
    CloudWatchSourceConfig,
    DemoSourceConfig,
    FileSourceConfig,
    NoAuth,
    PrometheusAuth,
    PrometheusSourceConfig,
    SigV4Auth,
    SourceConfig,
    TLSConfig,
)
from aws_anomaly.durations import format_duration, parse_duration

__all__ = [
    "DEMO_METRICS",
    "ENV_PREFIX",
    "AlertConfig",
    "AlertmanagerNotifierConfig",
    "BasicAuth",
    "BearerAuth",
    "CloudWatchQuery",
    "CloudWatchSourceConfig",
    "DemoSourceConfig",
    "DriftConfig",
    "Duration",
    "ExporterConfig",
    "FilePath",
    "FileSourceConfig",
    "GapPolicyName",
    "HttpUrl",
    "JobConfig",
    "ModelConfig",
    "NoAuth",
    "NotifierConfig",
    "PrometheusAuth",
    "PrometheusSourceConfig",
    "RetrainConfig",
    "ServiceConfig",
    "Settings",
    "SigV4Auth",
    "SlackNotifierConfig",
    "SourceConfig",
    "StoreConfig",
    "TLSConfig",
    "ThresholdConfig",
    "WebhookNotifierConfig",
    "format_duration",
    "is_loopback",
    "load_job",
    "load_settings",
    "parse_duration",
    "resolve_secret",
]
