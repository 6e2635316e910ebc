"""Command-line entry point ``aws-anomaly``."""

from __future__ import annotations

import importlib
import sys

from aws_anomaly.cli.app import app
from aws_anomaly.errors import AwsAnomalyError

# Which module registers which command. Only the module of the command being run is imported,
# so `aws-anomaly generate` does not pay for importing scikit-learn, FastAPI and boto3;
# `--help` (or an unknown command) loads them all. tests/unit/test_cli_registry.py keeps this
# map equal to what the modules really register.
COMMAND_MODULES: dict[str, str] = {
    "generate": "data",
    "demo": "core", "evaluate": "core", "score": "core", "train": "core", "tune": "core",
    "bench": "bench",
    "backtest": "loop", "exporter": "loop", "rules": "loop", "run": "loop",
    "serve": "serve",
}


def load_commands(argv: list[str] | None = None) -> None:
    """Import the command module(s) needed for ``argv`` (all of them when unsure)."""
    args = sys.argv[1:] if argv is None else argv
    name = next((a for a in args if not a.startswith("-")), None)
    module = COMMAND_MODULES.get(name or "")
    modules = [module] if module else sorted(set(COMMAND_MODULES.values()))
    for m in modules:
        importlib.import_module(f"aws_anomaly.cli.{m}")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status.

    Usage errors are printed by Typer (exit 2); an ``AwsAnomalyError`` (bad data, bad config,
    an unreachable source...) becomes one ``error: ...`` line on stderr and exit status 2.
    Anything else is a bug and keeps its traceback.
    """
    try:
        load_commands(argv)
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


__all__ = ["COMMAND_MODULES", "app", "load_commands", "main"]
