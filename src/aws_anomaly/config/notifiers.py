"""Who is told about an anomaly: Alertmanager, a webhook, Slack (``notifiers: [...]``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator

from aws_anomaly.config.fields import (
    Duration,
    FilePath,
    HttpUrl,
    _at_most_one,
    _Model,
    resolve_secret,
)


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


