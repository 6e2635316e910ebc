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
    """Run the CLI and return its exit status.

    Usage errors are printed by Typer (exit 2); an ``AwsAnomalyError`` (bad data, bad config,
    an unreachable source...) becomes one ``error: ...`` line on stderr and exit status 2.
    Anything else is a bug and keeps its traceback.
    """
    _load_commands()
    try:
        app(args=argv, prog_name="aws-anomaly")
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except AwsAnomalyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


__all__ = ["app", "main"]
