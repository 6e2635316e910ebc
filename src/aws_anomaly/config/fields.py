"""The field types every section shares: durations, paths next to the file, http URLs,
secrets given inline, through the environment or in a file, and the frozen base model."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    SecretStr,
    ValidationInfo,
)

from aws_anomaly.durations import (
    format_duration,
    format_timestamp,
    parse_duration,
    parse_timestamp,
)
from aws_anomaly.errors import ConfigError

# Durations are parsed by aws_anomaly.durations (one parser for the config, the CLI options and
# the data grids).


def _duration(v: Any) -> timedelta:
    try:
        return parse_duration(v, where="")
    except ConfigError as exc:
        # pydantic wraps ValueError into a located validation error naming the key.
        raise ValueError(str(exc)) from None


Duration = Annotated[timedelta, BeforeValidator(_duration), PlainSerializer(format_duration)]
"""A positive :class:`~datetime.timedelta` parsed from ``"30s"``, ``"5m"``, ``"14d"``..."""


def _timestamp(v: Any) -> datetime:
    try:
        return parse_timestamp(v, where="").to_pydatetime()
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


Timestamp = Annotated[datetime, BeforeValidator(_timestamp), PlainSerializer(format_timestamp)]
"""A UTC :class:`~datetime.datetime` parsed from ISO 8601 (``"2026-03-01T10:05:00Z"``; naive
times are UTC) or Unix seconds, by :func:`aws_anomaly.durations.parse_timestamp`."""


def _relative_to_file(v: Path, info: ValidationInfo) -> Path:
    # Relative paths in a config file mean "next to the file", as in Prometheus' own config.
    base = (info.context or {}).get("base_dir")
    v = v.expanduser()
    if base is not None and not v.is_absolute():
        return Path(base) / v
    return v


FilePath = Annotated[Path, AfterValidator(_relative_to_file)]


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

