"""The Typer application every command module registers on.

Command groups live in their own modules under ``aws_anomaly.cli`` (``core``, ``bench``, ``loop``,
``serve``); each does ``from aws_anomaly.cli.app import app`` and decorates its commands with
``@app.command()`` (or adds a sub-app with ``app.add_typer``). ``aws_anomaly.cli.main`` imports
them all. Errors derived from ``AwsAnomalyError`` are printed as one clear line and exit 2;
nothing else is caught, so real bugs keep their traceback.
"""

from __future__ import annotations

import typer

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
