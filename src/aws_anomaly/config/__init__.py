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

import ipaddress
import json
import os
import re
import typing
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from aws_anomaly.durations import format_duration, parse_duration
from aws_anomaly.errors import ConfigError

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
    "FileSourceConfig",
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
    "load_job",
    "load_settings",
    "parse_duration",
    "resolve_secret",
]

ENV_PREFIX = "AWS_ANOMALY__"
# The demo generator's metrics (aws_anomaly.data.generator.DEFAULT_METRICS); repeated here
# because config sits below data/ in the layering and must not import it.
DEMO_METRICS: tuple[str, ...] = (
    "cluster_cpu_request_ratio",
    "cluster_mem_request_ratio",
    "cluster_pod_ratio",
)

# ---------------------------------------------------------------------------------- durations
# parse_duration and format_duration live in aws_anomaly.durations (one parser for the config,
# the CLI options and the data grids); imported above and re-exported here.


def _duration(v: Any) -> timedelta:
    try:
        return parse_duration(v, where="")
    except ConfigError as exc:
        # pydantic wraps ValueError into a located validation error naming the key.
        raise ValueError(str(exc)) from None


Duration = Annotated[timedelta, BeforeValidator(_duration), PlainSerializer(format_duration)]
"""A positive :class:`~datetime.timedelta` parsed from ``"30s"``, ``"5m"``, ``"14d"``..."""


def _relative_to_file(v: Path, info: ValidationInfo) -> Path:
    # Relative paths in a config file mean "next to the file", as in Prometheus' own config.
    base = (info.context or {}).get("base_dir")
    v = v.expanduser()
    if base is not None and not v.is_absolute():
        return Path(base) / v
    return v


FilePath = Annotated[Path, AfterValidator(_relative_to_file)]


# ---------------------------------------------------------------------------------- secrets
def resolve_secret(value: SecretStr | None, env: str | None, file: Path | None, *,
                   where: str, environ: Mapping[str, str] | None = None) -> str | None:
    """Return a secret given inline, through an environment variable, or in a file.

    At most one of the three may be set (the config models check that); ``None`` when none is.

    Raises
    ------
    ConfigError
        When the environment variable is unset or empty, or the file cannot be read or is empty.
    """
    environ = os.environ if environ is None else environ
    if value is not None:
        return value.get_secret_value()
    if env is not None:
        got = environ.get(env, "")
        if not got:
            raise ConfigError(f"{where}: environment variable {env} is not set or empty")
        return got
    if file is not None:
        try:
            got = file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read secret file {file}: {exc.strerror}") from None
        if not got:
            raise ConfigError(f"{where}: secret file {file} is empty")
        return got
    return None


def _at_most_one(obj: BaseModel, names: tuple[str, ...], *, required: bool) -> None:
    given = [n for n in names if getattr(obj, n) is not None]
    if len(given) > 1:
        raise ValueError(f"give only one of {', '.join(names)}; got {', '.join(given)}")
    if required and not given:
        raise ValueError(f"one of {', '.join(names)} is required")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_http_url(v: str) -> str:
    if not re.match(r"^https?://[^/\s]+", v):
        raise ValueError(f"expected an http:// or https:// URL, got {v!r}")
    return v.rstrip("/")


HttpUrl = Annotated[str, AfterValidator(_check_http_url)]
# Mirrors aws_anomaly.data.dataset.GapPolicy (config must not import data/).
GapPolicyName = Literal["ffill", "interpolate", "error"]


# ---------------------------------------------------------------------------------- sources
class NoAuth(_Model):
    """No authentication."""

    type: Literal["none"] = "none"


class BearerAuth(_Model):
    """``Authorization: Bearer <token>``; the token inline, from ``token_env`` or ``token_file``."""

    type: Literal["bearer"] = "bearer"
    token: SecretStr | None = None
    token_env: str | None = None
    token_file: FilePath | None = None

    @model_validator(mode="after")
    def _one(self) -> BearerAuth:
        _at_most_one(self, ("token", "token_env", "token_file"), required=True)
        return self

    def resolve(self, environ: Mapping[str, str] | None = None) -> str:
        """The token (read from the environment or file now)."""
        got = resolve_secret(self.token, self.token_env, self.token_file, where="bearer auth",
                             environ=environ)
        assert got is not None  # the validator requires one source
        return got


class BasicAuth(_Model):
    """HTTP basic auth; the password from ``password_env`` or ``password_file`` (or inline)."""

    type: Literal["basic"] = "basic"
    username: str = Field(min_length=1)
    password: SecretStr | None = None
    password_env: str | None = None
    password_file: FilePath | None = None

    @model_validator(mode="after")
    def _one(self) -> BasicAuth:
        _at_most_one(self, ("password", "password_env", "password_file"), required=True)
        return self

    def resolve(self, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
        """``(username, password)``."""
        got = resolve_secret(self.password, self.password_env, self.password_file,
                             where="basic auth", environ=environ)
        assert got is not None  # the validator requires one source
        return self.username, got


class SigV4Auth(_Model):
    """AWS SigV4 signing (Amazon Managed Prometheus): credentials from the standard AWS chain.

    ``profile`` picks a named profile; ``role_arn`` is assumed with STS before signing.
    """

    type: Literal["sigv4"] = "sigv4"
    region: str = Field(min_length=1)
    service: str = "aps"
    profile: str | None = None
    role_arn: str | None = None


PrometheusAuth = Annotated[NoAuth | BearerAuth | BasicAuth | SigV4Auth,
                           Field(discriminator="type")]


class TLSConfig(_Model):
    """TLS options: a CA bundle to trust, a client certificate, or (tests only) no checks."""

    ca_file: FilePath | None = None
    cert_file: FilePath | None = None
    key_file: FilePath | None = None
    insecure_skip_verify: bool = False

    @model_validator(mode="after")
    def _pair(self) -> TLSConfig:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file (the client certificate)")
        return self


class PrometheusSourceConfig(_Model):
    """Prometheus HTTP API (also Amazon Managed Prometheus with ``auth: {type: sigv4}``).

    ``queries`` maps each metric name to a PromQL expression whose result has one series per
    entity, told apart by the label ``entity_label``.
    """

    type: Literal["prometheus"] = "prometheus"
    url: HttpUrl
    queries: dict[str, str] = Field(min_length=1)
    entity_label: str = "cluster"
    step: Duration = timedelta(minutes=5)
    timeout_s: float = Field(30.0, gt=0)
    max_retries: int = Field(3, ge=0, le=20)
    backoff_s: float = Field(0.5, ge=0)
    # Prometheus refuses a range query of more than 11,000 points per series.
    max_points_per_request: int = Field(11_000, ge=2, le=11_000)
    # Metrics are queried in parallel, up to this many requests at once.
    concurrency: int = Field(4, ge=1, le=32)
    auth: PrometheusAuth = NoAuth()
    tls: TLSConfig = TLSConfig()
    headers: dict[str, str] = Field(default_factory=dict)
    gap_policy: GapPolicyName = "ffill"
    max_gap_steps: int | None = Field(36, ge=0)

    @field_validator("queries")
    @classmethod
    def _non_empty(cls, v: dict[str, str]) -> dict[str, str]:
        for name, q in v.items():
            if not q.strip():
                raise ValueError(f"query for metric {name!r} is empty")
        return v

    def metric_names(self) -> tuple[str, ...]:
        return tuple(self.queries)


class CloudWatchQuery(_Model):
    """One CloudWatch metric: namespace, name, fixed dimensions, statistic.

    The entity of each series is the value of ``entity_dimension`` (e.g. ``ClusterName``).
    """

    metric: str = Field(min_length=1, description="the metric name in the Dataset")
    namespace: str = Field(min_length=1)
    metric_name: str = Field(min_length=1)
    dimensions: dict[str, str] = Field(default_factory=dict)
    stat: str = "Average"
    entity_dimension: str = Field(min_length=1)

    @model_validator(mode="after")
    def _entity_not_fixed(self) -> CloudWatchQuery:
        if self.entity_dimension in self.dimensions:
            raise ValueError(f"entity_dimension {self.entity_dimension!r} must not also be a "
                             "fixed dimension")
        return self


class CloudWatchSourceConfig(_Model):
    """CloudWatch GetMetricData. ``entities`` lists the entity-dimension values to read; when
    omitted they are discovered with ListMetrics."""

    type: Literal["cloudwatch"] = "cloudwatch"
    region: str = Field(min_length=1)
    queries: list[CloudWatchQuery] = Field(min_length=1)
    period: Duration = timedelta(minutes=5)
    entities: list[str] | None = None
    profile: str | None = None
    endpoint_url: HttpUrl | None = None
    max_retries: int = Field(3, ge=0, le=20)
    gap_policy: GapPolicyName = "ffill"
    max_gap_steps: int | None = Field(36, ge=0)

    @field_validator("queries")
    @classmethod
    def _unique(cls, v: list[CloudWatchQuery]) -> list[CloudWatchQuery]:
        names = [q.metric for q in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"metric names repeat: {dup}")
        return v

    @field_validator("period")
    @classmethod
    def _whole_minutes(cls, v: timedelta) -> timedelta:
        s = v.total_seconds()
        if s not in (1, 5, 10, 30) and s % 60:
            raise ValueError(f"CloudWatch period must be 1, 5, 10, 30 s or a multiple of 60 s, "
                             f"got {format_duration(v)}")
        return v

    def metric_names(self) -> tuple[str, ...]:
        return tuple(q.metric for q in self.queries)


class FileSourceConfig(_Model):
    """A CSV or Parquet file read with :func:`aws_anomaly.data.io.read_dataset`.

    The loading keys are those of ``read_dataset`` and of the CLI's ``--step``,
    ``--gap-policy``, ``--max-gap-steps``, ``--resample``, ``--timestamps`` and
    ``--duplicates``: an error message that names one of them names a key here too.
    """

    type: Literal["file"] = "file"
    path: FilePath
    layout: Literal["auto", "wide", "long"] = "auto"
    metrics: list[str] | None = None
    # long layout: the label that names the entity (None: one entity); wide files use the
    # `entity` column
    entity_label: str | None = "cluster"
    step: Duration | None = None
    gap_policy: GapPolicyName = "ffill"
    max_gap_steps: int | None = Field(36, ge=0)
    resample: Literal["auto", "error", "mean", "last"] = "auto"
    # rows going back in time: None = error (wide layout) / sort (long layout)
    timestamps: Literal["error", "sort", "clamp", "drop"] | None = None
    # rows of one entity sharing a timestamp
    duplicates: Literal["first", "last", "mean", "error"] = "first"

    def metric_names(self) -> tuple[str, ...] | None:
        return tuple(self.metrics) if self.metrics else None


class DemoSourceConfig(_Model):
    """The demo generator replayed as a live source in accelerated real time.

    ``days`` of history exist before the moment the source starts; afterwards data time runs
    ``speedup`` times faster than wall time. After ``future_days`` of data time the replay
    starts again from the first generated day (timestamps keep increasing).
    """

    type: Literal["demo"] = "demo"
    clusters: int = Field(3, ge=1, le=1000)
    seed: int = 0
    speedup: float = Field(60.0, gt=0)
    days: int = Field(28, ge=1)
    future_days: int = Field(28, ge=1, description="data generated after the start; the "
                             "replay then loops over history + future")
    step: Duration = timedelta(minutes=5)

    def metric_names(self) -> tuple[str, ...]:
        return DEMO_METRICS


SourceConfig = Annotated[
    PrometheusSourceConfig | CloudWatchSourceConfig | FileSourceConfig | DemoSourceConfig,
    Field(discriminator="type"),
]


# ---------------------------------------------------------------------------------- notifiers
class _NotifierBase(_Model):
    min_consecutive: int | None = Field(None, ge=1, description="overrides alert.min_consecutive")
    repeat_interval: Duration | None = Field(
        timedelta(hours=1), description="re-send a still-firing alert this long after its "
        "last delivery (null: once per event); Alertmanager gets one at least every minute")
    max_age: Duration = Field(timedelta(days=1), description="drop an alert still undelivered "
                              "after this long (logged and counted)")
    dashboard_url: HttpUrl | None = None
    timeout_s: float = Field(10.0, gt=0)


class AlertmanagerNotifierConfig(_NotifierBase):
    """Posts alerts to Alertmanager's ``/api/v2/alerts``."""

    type: Literal["alertmanager"] = "alertmanager"
    url: HttpUrl
    labels: dict[str, str] = Field(default_factory=dict)


class WebhookNotifierConfig(_NotifierBase):
    """POSTs a JSON event; ``headers_env`` maps header names to environment variables (secrets)."""

    type: Literal["webhook"] = "webhook"
    url: HttpUrl
    headers: dict[str, str] = Field(default_factory=dict)
    headers_env: dict[str, str] = Field(default_factory=dict)

    def resolved_headers(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        out = dict(self.headers)
        for header, env in self.headers_env.items():
            value = resolve_secret(None, env, None, where=f"webhook header {header}",
                                   environ=environ)
            assert value is not None
            out[header] = value
        return out


class SlackNotifierConfig(_NotifierBase):
    """A Slack incoming webhook; its URL is a secret: ``url``, ``url_env`` or ``url_file``."""

    type: Literal["slack"] = "slack"
    url: SecretStr | None = None
    url_env: str | None = None
    url_file: FilePath | None = None

    @model_validator(mode="after")
    def _one(self) -> SlackNotifierConfig:
        _at_most_one(self, ("url", "url_env", "url_file"), required=True)
        return self

    def resolved_url(self, environ: Mapping[str, str] | None = None) -> str:
        got = resolve_secret(self.url, self.url_env, self.url_file, where="slack notifier",
                             environ=environ)
        assert got is not None
        return got


NotifierConfig = Annotated[
    AlertmanagerNotifierConfig | WebhookNotifierConfig | SlackNotifierConfig,
    Field(discriminator="type"),
]


# ---------------------------------------------------------------------------------- job
class ThresholdConfig(_Model):
    """How the calibrator picks the threshold (see :class:`aws_anomaly.calibration.Calibrator`).

    ``auto`` (the default): ``pot`` at ``risk`` for the ``default`` detector, ``target_fpr``
    for the others. ``pot`` fits the tail of the held-out scores (peaks over threshold) and
    needs no labels; ``best_f1`` needs labelled validation data.
    """

    method: Literal["auto", "pot", "best_f1", "target_fpr", "contamination"] = "auto"
    target_fpr: float = Field(0.01, gt=0, lt=1)
    contamination: float = Field(0.05, gt=0, le=0.5)
    risk: float = Field(1e-3, gt=0, le=0.1)


class ModelConfig(_Model):
    """The model bundle a job scores with; trained from ``history`` when ``path`` is missing.

    ``path`` defaults to ``<service.data_dir>/models/<job name>``.
    """

    path: FilePath | None = None
    #: ``default``: the label-free default model (:func:`aws_anomaly.model.default_model`);
    #: or a detector name of :data:`aws_anomaly.detectors.DETECTORS` on the classic features.
    #: A job trains on the ``history`` that ends where its ``lookback`` starts, so the model
    #: never learns the points it scores first.
    detector: str = "default"
    detector_params: dict[str, Any] = Field(default_factory=dict)
    history: Duration = timedelta(days=14)
    threshold: ThresholdConfig = ThresholdConfig()


class AlertConfig(_Model):
    """When a run of anomalous points becomes an alert."""

    min_consecutive: int = Field(3, ge=1)
    severity: Literal["info", "warning", "critical"] = "warning"
    threshold: float = Field(1.0, gt=0, description="anomaly_score at or above which a point "
                             "counts as anomalous")


class DriftConfig(_Model):
    """When drift of the live data away from the training data triggers a retrain.

    Drift is always measured and exported (``aws_anomaly_drift_*``); this section makes it
    trigger. Two measures over the last ``window`` of live points (docs/configuration.md):
    the *alert-rate ratio* (the share of points at or above the threshold over the share
    measured on held-back data when the model was trained; it triggers at or above
    ``alert_rate_ratio`` when also significant at ``p_value`` under a binomial test) and the
    per-metric *population stability index* of the recent inputs against the training rows
    (mean over entities; it triggers at or above ``psi``). ``null`` turns a measure's trigger
    off. After a drift-triggered retrain another waits at least ``cooldown``.
    """

    window: Duration = timedelta(days=1)
    alert_rate_ratio: float | None = Field(3.0, gt=1, description="trigger when the recent "
                                           "flagged share is this many times the expected one")
    p_value: float = Field(1e-3, gt=0, lt=1, description="... and that excess is significant "
                           "at this level (binomial test)")
    psi: float | None = Field(0.25, gt=0, description="trigger when a metric's population "
                              "stability index (mean over entities) reaches this")
    min_points: int = Field(100, ge=10, description="ready live points needed in the window "
                            "before drift can trigger")
    cooldown: Duration = timedelta(days=1)


class RetrainConfig(_Model):
    """Automated retraining: a schedule and/or a drift trigger train a *challenger* on the
    recent ``window`` less the last ``holdout``; it replaces the champion only when, on that
    held-back data, its alert rate is within ``budget`` (alerts per entity per day) or no
    higher than the champion's, and it still flags every feedback-confirmed anomaly the
    champion flags. Training runs in the background; scoring keeps the champion until then.
    """

    every: Duration | None = Field(None, description="retrain on this schedule (data time); "
                                   "null: no schedule")
    drift: DriftConfig | None = Field(None, description="drift thresholds that trigger a "
                                      "retrain; null: drift is measured but never triggers")
    window: Duration | None = Field(None, description="recent data a challenger trains and is "
                                    "judged on; default model.history")
    holdout: Duration | None = Field(None, description="the most recent part of window, held "
                                     "back to judge challenger against champion; default a "
                                     "quarter of window, at most 1d")
    budget: float = Field(1.0, gt=0, description="alerts per entity per day allowed on the "
                          "held-back data")


_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


class JobConfig(_Model):
    """One detection job: where metrics come from, which model scores them, who is told.

    ``metrics`` defaults to the source's metric names (the keys of a Prometheus ``queries``
    map, the ``metric`` of each CloudWatch query, the demo metrics); for a file source without
    a ``metrics`` list it stays ``None``, meaning every metric column in the file.
    """

    name: str
    source: SourceConfig = DemoSourceConfig()
    metrics: tuple[str, ...] | None = None
    entities: tuple[str, ...] | None = None
    model: ModelConfig = ModelConfig()
    interval: Duration = timedelta(minutes=1)
    lookback: Duration = timedelta(days=1)
    notifiers: tuple[NotifierConfig, ...] = ()
    alert: AlertConfig = AlertConfig()
    retrain: RetrainConfig = RetrainConfig()

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError(f"job name {v!r} must be 1-63 characters of a-z, 0-9, '_', '.', "
                             "'-', starting with a letter or digit")
        return v

    @model_validator(mode="after")
    def _metrics(self) -> JobConfig:
        available = self.source.metric_names()
        if self.metrics is None:
            # Frozen model: set the derived default once, while it is being built.
            object.__setattr__(self, "metrics", available)
        elif available is not None:
            unknown = [m for m in self.metrics if m not in available]
            if unknown:
                raise ValueError(f"metrics {unknown} are not provided by the {self.source.type} "
                                 f"source, which has {list(available)}")
        if self.metrics is not None and len(set(self.metrics)) != len(self.metrics):
            raise ValueError(f"metrics repeat: {list(self.metrics)}")
        return self

    def retrain_window(self) -> tuple[timedelta, timedelta]:
        """(window, holdout) of automated retraining, defaults applied."""
        window = self.retrain.window or self.model.history
        return window, self.retrain.holdout or min(window / 4, timedelta(days=1))

    @model_validator(mode="after")
    def _retrain_window(self) -> JobConfig:
        window = self.retrain.window or self.model.history
        key = "retrain.window" if self.retrain.window else "model.history"
        if self.retrain.holdout is not None and self.retrain.holdout * 2 > window:
            raise ValueError(f"retrain.holdout ({format_duration(self.retrain.holdout)}) must "
                             f"be at most half of {key} ({format_duration(window)}): the "
                             "challenger trains on the rest")
        return self


# ---------------------------------------------------------------------------------- service
class StoreConfig(_Model):
    """The anomaly store: a SQLAlchemy URL; default SQLite ``<data_dir>/aws_anomaly.db``.

    A URL with a password (PostgreSQL) should come from ``url_env`` or ``url_file``.
    """

    url: SecretStr | None = None
    url_env: str | None = None
    url_file: FilePath | None = None

    @model_validator(mode="after")
    def _one(self) -> StoreConfig:
        _at_most_one(self, ("url", "url_env", "url_file"), required=False)
        return self

    def resolved_url(self, data_dir: Path, environ: Mapping[str, str] | None = None) -> str:
        got = resolve_secret(self.url, self.url_env, self.url_file, where="store",
                             environ=environ)
        return got if got is not None else f"sqlite:///{data_dir / 'aws_anomaly.db'}"


class ExporterConfig(_Model):
    """The Prometheus ``/metrics`` exporter of the service."""

    enabled: bool = True
    # Also export the raw input metrics next to the scores (handy in Grafana).
    include_inputs: bool = False


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1).

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ServiceConfig(_Model):
    """The HTTP service. ``token`` protects the API; it is required off loopback."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    token: SecretStr | None = None
    token_env: str | None = None
    token_file: FilePath | None = None
    data_dir: FilePath = Path("aws-anomaly-data")
    store: StoreConfig = StoreConfig()
    exporter: ExporterConfig = ExporterConfig()
    # Slow or abusive clients (see aws_anomaly.service.server): open connections beyond this
    # evict the oldest idle or half-sent one; a request's headers and its body must each
    # arrive within their timeout.
    max_connections: int = Field(1000, ge=8, le=100_000)
    header_timeout_s: float = Field(10.0, gt=0, le=600)
    body_timeout_s: float = Field(60.0, gt=0, le=3600)
    # POST /v1/score: at most this many requests are scored at once, this many more wait;
    # beyond that the answer is 429 with Retry-After.
    score_concurrency: int = Field(2, ge=1, le=64)
    score_queue: int = Field(8, ge=0, le=1000)

    @model_validator(mode="after")
    def _token(self) -> ServiceConfig:
        _at_most_one(self, ("token", "token_env", "token_file"), required=False)
        if not is_loopback(self.host) and all(
            getattr(self, n) is None for n in ("token", "token_env", "token_file")
        ):
            raise ValueError(f"host {self.host!r} is not loopback: set token, token_env or "
                             "token_file so the API is not open to the network")
        return self

    def resolved_token(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The API token, or ``None`` when the service runs without one (loopback only)."""
        return resolve_secret(self.token, self.token_env, self.token_file,
                              where="service token", environ=environ)

    def store_url(self, environ: Mapping[str, str] | None = None) -> str:
        return self.store.resolved_url(self.data_dir, environ)


def _default_jobs() -> tuple[JobConfig, ...]:
    return (JobConfig(name="demo"),)


class Settings(_Model):
    """Top level: the service and its jobs (default: the embedded demo job)."""

    service: ServiceConfig = ServiceConfig()
    jobs: tuple[JobConfig, ...] = Field(default_factory=_default_jobs)

    @field_validator("jobs")
    @classmethod
    def _unique_names(cls, v: tuple[JobConfig, ...]) -> tuple[JobConfig, ...]:
        names = [j.name for j in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"job names repeat: {dup}")
        return v

    def model_path(self, job: JobConfig) -> Path:
        """Where the job's model bundle lives (``job.model.path`` or under ``data_dir``)."""
        return job.model.path or self.service.data_dir / "models" / job.name

    def job(self, name: str) -> JobConfig:
        for j in self.jobs:
            if j.name == name:
                return j
        raise ConfigError(f"unknown job {name!r}; jobs are {[j.name for j in self.jobs]}")


# ---------------------------------------------------------------------------------- loading
def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"config file {path}: invalid YAML{where}: "
                          f"{getattr(exc, 'problem', exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping at the top level, "
                          f"got {type(data).__name__}")
    return data


def _env_value(raw: str) -> Any:
    # Plain strings go to pydantic, which converts them by field type ("8081" -> 8081); JSON
    # only for lists and maps, so a secret like "0123" is never mangled into a number.
    if raw[:1] in "[{":
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


def _apply_env(data: dict[str, Any], prefix: str, environ: Mapping[str, str]) -> dict[str, Any]:
    for key in sorted(k for k in environ if k.startswith(prefix)):
        path = [p.lower() for p in key[len(prefix):].split("__")]
        if not all(path):
            raise ConfigError(f"environment variable {key}: empty key part; use "
                              f"{prefix}SECTION__KEY=value")
        node: Any = data
        for i, part in enumerate(path):
            last = i == len(path) - 1
            value = _env_value(environ[key]) if last else None
            if isinstance(node, list):
                if not part.isdigit() or int(part) > len(node):
                    raise ConfigError(f"environment variable {key}: {part!r} is not an index "
                                      f"into a list of {len(node)} item(s)")
                idx = int(part)
                if idx == len(node):
                    node.append({} if not last else value)
                if last:
                    node[idx] = value
                else:
                    if node[idx] is None:
                        node[idx] = {}
                    node = node[idx]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    if node.get(part) is None:
                        node[part] = [] if path[i + 1].isdigit() else {}
                    node = node[part]
            else:
                raise ConfigError(f"environment variable {key}: "
                                  f"{'.'.join(path[:i])} is a value, not a section")
    return data


def _locate(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[str, list[str] | None]:
    """The dotted key of a pydantic error location as the user wrote it (without the union
    tags pydantic inserts) and the field names allowed next to it, when known."""
    node: Any = model
    shown: list[str] = []
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(part, int) or node is None:
            shown.append(str(part))
            continue
        fields = getattr(node, "model_fields", None)
        if fields is None:
            # a discriminated union: this location part is the tag ("prometheus"), not a key
            options = typing.get_args(node)
            node = next((o for o in options
                         if "type" in getattr(o, "model_fields", {})
                         and o.model_fields["type"].default == part), None)
            if node is not None:
                continue
            shown.append(str(part))
            continue
        shown.append(str(part))
        if not last:
            node = _unwrap(fields[part].annotation) if part in fields else None
    fields = getattr(node, "model_fields", None)
    return ".".join(shown), (sorted(fields) if fields else None)


def _unwrap(tp: Any) -> Any:
    # Strip Optional / tuple[...] / list[...] / Annotated to reach a model or a union.
    while True:
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin is Annotated or (origin in (tuple, list) and args):
            tp = args[0]
        elif args and type(None) in args:
            rest = [a for a in args if a is not type(None)]
            tp = rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]  # noqa: UP007
        else:
            return tp


def _config_error(exc: ValidationError, model: type[BaseModel], where: str) -> ConfigError:
    lines = []
    for err in exc.errors(include_url=False):
        key, allowed = _locate(model, tuple(err["loc"]))
        key = key or "(top level)"
        if err["type"] == "extra_forbidden":
            hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
            lines.append(f"unknown key '{key}'{hint}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"'{key}': {msg}")
    head = f"{where}: " if len(lines) == 1 else f"{where}: {len(lines)} problems: "
    return ConfigError(head + "; ".join(lines))


def _validate(model: type[BaseModel], data: dict[str, Any], where: str,
              base_dir: Path | None) -> Any:
    try:
        return model.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise _config_error(exc, model, where) from None


def load_settings(path: str | Path | None = None, *,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Load :class:`Settings` from a YAML file (or the defaults when ``path`` is None), then
    apply ``AWS_ANOMALY__...`` environment overrides.

    Relative paths in the file are taken relative to the file's folder.

    Raises
    ------
    ConfigError
        Unreadable file, invalid YAML, unknown key, bad value or bad override, naming the key
        and the file.
    """
    environ = os.environ if environ is None else environ
    if path is None:
        data: dict[str, Any] = {}
        where, base = "default settings", None
    else:
        p = Path(path)
        data, where, base = _read_yaml(p), f"config file {p}", p.resolve().parent
    if "jobs" not in data and any(k.startswith(f"{ENV_PREFIX}JOBS__") for k in environ):
        # Overriding a default job's field keeps the default job (its name included).
        data["jobs"] = [job.model_dump(mode="json", exclude={"metrics"})
                        for job in _default_jobs()]
    data = _apply_env(data, ENV_PREFIX, environ)
    if any(k.startswith(ENV_PREFIX) for k in environ):
        where += f" (with {ENV_PREFIX}* environment overrides)"
    return _validate(Settings, data, where, base)


def load_job(path: str | Path, *, environ: Mapping[str, str] | None = None) -> JobConfig:
    """Load one :class:`JobConfig` from a YAML file (``aws-anomaly run --config job.yaml``).

    Overrides use ``AWS_ANOMALY__JOB__...`` (e.g. ``AWS_ANOMALY__JOB__INTERVAL=30s``).
    """
    environ = os.environ if environ is None else environ
    p = Path(path)
    prefix = f"{ENV_PREFIX}JOB__"
    data = _apply_env(_read_yaml(p), prefix, environ)
    where = f"config file {p}"
    if any(k.startswith(prefix) for k in environ):
        where += f" (with {prefix}* environment overrides)"
    return _validate(JobConfig, data, where, p.resolve().parent)
