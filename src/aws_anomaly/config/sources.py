"""Where a job's metrics come from: Prometheus (and Amazon Managed Prometheus), CloudWatch,
a CSV or Parquet file, or the demo generator (``source: {type: ...}``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from aws_anomaly.config.fields import (
    Duration,
    FilePath,
    GapPolicyName,
    HttpUrl,
    Timestamp,
    _at_most_one,
    _Model,
    resolve_secret,
)
from aws_anomaly.durations import format_duration

# The demo generator's metrics (aws_anomaly.data.generator.DEFAULT_METRICS); repeated here
# because config sits below data/ in the layering and must not import it.
DEMO_METRICS: tuple[str, ...] = (
    "cluster_cpu_request_ratio",
    "cluster_mem_request_ratio",
    "cluster_pod_ratio",
)


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
    start: Timestamp | None = Field(
        None, description="data time when the source starts (ISO 8601 or Unix seconds); "
        "default: future_days before the wall clock. Fixed, the replay serves the same hours "
        "of the same data whenever it runs")

    def metric_names(self) -> tuple[str, ...]:
        return DEMO_METRICS


SourceConfig = Annotated[
    PrometheusSourceConfig | CloudWatchSourceConfig | FileSourceConfig | DemoSourceConfig,
    Field(discriminator="type"),
]


