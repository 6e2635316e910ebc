"""The Typer application every command module registers on.

Command groups live in their own modules under ``aws_anomaly.cli`` (``core``, ``bench``, ``loop``,
``serve``); each does ``from aws_anomaly.cli.app import app`` and decorates its commands with
``@app.command()`` (or adds a sub-app with ``app.add_typer``). ``aws_anomaly.cli.main`` imports
them all. Errors derived from ``AwsAnomalyError`` are printed as one clear line and exit 2;
nothing else is caught, so real bugs keep their traceback.

Command modules import nothing heavy at module level (no numpy, pandas, scikit-learn, FastAPI,
pydantic...): ``aws-anomaly --help`` imports every command module to list them, and must stay
fast. A command imports what it needs when it runs (tests/unit/test_cli_startup.py checks it).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from aws_anomaly.errors import ConfigError
from aws_anomaly.progress import StderrProgress, reporting

app = typer.Typer(
    name="aws-anomaly",
    help="Anomaly detection for AWS / Kubernetes cluster metrics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from aws_anomaly import __version__

        typer.echo(f"aws-anomaly {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Anomaly detection for AWS / Kubernetes cluster metrics.

    Start with `aws-anomaly demo` (or `make run`), or `aws-anomaly generate --out data/`.
    """


def check_output(path: Path, option: str, *, kind: str = "folder") -> Path:
    """Check, before any work, that ``option``'s output ``path`` can be written.

    ``kind`` is ``"folder"`` (created later, with its parents) or ``"file"`` (its folder is
    created later). Raises one :class:`ConfigError` line naming the option when an existing
    path is the wrong kind, a parent is a file, or the nearest existing folder is read-only;
    creates nothing, so a command refused later leaves no empty folder behind.
    """
    p = Path(path)
    if p.exists():
        if kind == "folder" and not p.is_dir():
            raise ConfigError(f"{option} {p}: this is a file, not a folder; give a folder path")
        if kind == "file" and p.is_dir():
            raise ConfigError(f"{option} {p}: this is a folder; give a file path")
    folder = p.absolute() if kind == "folder" else p.absolute().parent
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{option} {p}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ConfigError(f"{option} {p}: the folder {parent} is not writable")
            break
    return p


ProgressOpt = Annotated[bool | None, typer.Option(
    "--progress/--no-progress", show_default=False,
    help="Progress of the long steps on stderr: bars on a terminal, plain lines otherwise. "
    "Default: shown when stderr is a terminal; --progress forces it, --no-progress hides it.")]


def show_progress(flag: bool | None) -> bool:
    """``--progress`` (True), ``--no-progress`` (False), or by default whether stderr is a
    terminal."""
    if flag is not None:
        return flag
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty is not None and isatty())


@contextmanager
def progress_to_stderr(flag: bool | None) -> Iterator[bool]:
    """Report the long steps run inside the block on stderr (see :func:`show_progress`): tqdm
    bars when stderr is a terminal, ``progress: ...`` lines when it is not (forced)."""
    on = show_progress(flag)
    isatty = getattr(sys.stderr, "isatty", None)
    bars = bool(isatty is not None and isatty())
    with reporting(StderrProgress(bars=bars) if on else None):
        yield on
