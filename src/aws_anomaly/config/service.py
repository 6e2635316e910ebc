"""The service file (``aws-anomaly serve --config settings.yaml``): the HTTP service, its
store and exporter, and its jobs."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator

from aws_anomaly.config.fields import FilePath, _at_most_one, _Model, resolve_secret
from aws_anomaly.config.jobs import JobConfig
from aws_anomaly.errors import ConfigError


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


