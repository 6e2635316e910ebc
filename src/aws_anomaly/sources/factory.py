"""``make_source``: the source a job's ``source`` section describes."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from aws_anomaly.config import SourceConfig
from aws_anomaly.errors import ConfigError
from aws_anomaly.sources.base import Source

__all__ = ["make_source"]

# type -> (module, class). Imported on use so a Prometheus job never pays for importing boto3
# and the data generator, and the reverse.
_REGISTRY = {
    "prometheus": ("aws_anomaly.sources.prometheus", "PrometheusSource"),
    "cloudwatch": ("aws_anomaly.sources.cloudwatch", "CloudWatchSource"),
    "file": ("aws_anomaly.sources.files", "FileSource"),
    "demo": ("aws_anomaly.sources.demo", "DemoSource"),
}


def make_source(cfg: SourceConfig, *, metrics: Sequence[str] | None = None,
                **kwargs: Any) -> Source:
    """Build the source for ``cfg``; ``metrics`` narrows the configured metrics (a job's
    ``metrics`` list). Extra keyword arguments go to the source class (test hooks such as a
    clock or an HTTP transport).

    >>> from aws_anomaly.config import DemoSourceConfig
    >>> type(make_source(DemoSourceConfig(clusters=1, days=1))).__name__
    'DemoSource'
    """
    try:
        module, cls = _REGISTRY[cfg.type]
    except KeyError:
        raise ConfigError(f"unknown source type {cfg.type!r}; known: {sorted(_REGISTRY)}") from None
    source_cls = getattr(importlib.import_module(module), cls)
    return source_cls(cfg, metrics=metrics, **kwargs)
