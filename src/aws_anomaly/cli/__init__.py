"""Command-line entry point ``aws-anomaly``."""

from __future__ import annotations

import importlib
import sys

from aws_anomaly.cli.app import app
from aws_anomaly.errors import AwsAnomalyError

# Each module registers its commands on ``app`` when imported.
_COMMAND_MODULES = ("data", "core", "bench", "loop", "serve")


def _load_commands() -> None:
    for name in _COMMAND_MODULES:
        importlib.import_module(f"aws_anomaly.cli.{name}")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; ``AwsAnomalyError`` becomes a one-line message and exit status 2."""
    _load_commands()
    try:
        app(args=argv, standalone_mode=False)
    except AwsAnomalyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # typer/click exit codes
        return int(exc.code or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return exc.exit_code
        if isinstance(exc, click.exceptions.Abort):
            return 1
        raise
    return 0


__all__ = ["app", "main"]
