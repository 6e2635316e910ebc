"""Command-line entry point ``aws-anomaly``."""

from __future__ import annotations

import importlib
import sys

import typer

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
    an unreachable source...) or an ``OSError`` (a folder that cannot be written, a port in
    use) becomes one ``error: ...`` line on stderr and exit status 2. Anything else is a bug
    and keeps its traceback.
    """
    try:
        load_commands(argv)
        # Not standalone: usage errors come back here as exceptions, to be printed as one
        # line like every other error (Typer's own display is a multi-line box).
        rv = app(args=argv, prog_name="aws-anomaly", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except typer.TyperException as exc:  # Typer's usage errors (its own copy of click's)
        return _usage_error(exc)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 1
    except AwsAnomalyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # The machine refused a file or a socket (a read-only folder, a full disk, a port in
        # use): the user's environment, not a bug, so one line like every other bad input.
        print(f"error: {_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def _usage_error(exc: Exception) -> int:
    """One ``error:`` line for a usage error (unknown option, bad value, missing option); the
    help text when a group was called without a command."""
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    code = getattr(exc, "exit_code", 2)
    if type(exc).__name__ == "NoArgsIsHelpError":
        print(message, file=sys.stderr)
        return code
    ctx = getattr(exc, "ctx", None)
    where = getattr(ctx, "command_path", None) or "aws-anomaly"
    print(f"error: {where}: {message} (see {where} --help)", file=sys.stderr)
    return code


def _os_error(exc: OSError) -> str:
    """``'/data/x: Permission denied'`` rather than ``'[Errno 13] Permission denied: ...'``."""
    if exc.strerror and exc.filename is not None:
        where = f"{exc.filename}" + (f" -> {exc.filename2}" if exc.filename2 else "")
        return f"{where}: {exc.strerror}"
    return exc.strerror or str(exc) or type(exc).__name__


__all__ = ["COMMAND_MODULES", "app", "load_commands", "main"]
