"""Commands: data (registered on import)."""

from aws_anomaly.cli.app import app  # noqa: F401
