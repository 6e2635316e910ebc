"""Command: ``aws-anomaly serve`` — the long-running service (API, scheduler, dashboard)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from aws_anomaly.cli.app import app
from aws_anomaly.config import load_settings
from aws_anomaly.errors import ConfigError


@app.command()
def serve(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="settings YAML; "
                                                 "default: the embedded demo")] = None,
    host: Annotated[str | None, typer.Option(help="bind address (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default 8080)")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="where the store and "
                                                  "model bundles live")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
) -> None:
    """Run the service: score jobs on their schedule, serve the API and the dashboard.

    With no config it serves the embedded demo: generated multi-cluster data replayed in
    accelerated time with anomalies; a model is trained on first start if none exists.
    """
    from aws_anomaly.service.app import create_app

    level = getattr(logging, log_level.upper(), None)
    if not isinstance(level, int):
        raise ConfigError(f"--log-level must be debug, info or warning, got {log_level!r}")
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from aws_anomaly.service.redact import install_logging

    # Every line redacted (credentials in URLs, webhook URLs, tokens); httpx/httpcore's
    # per-request INFO lines (each with its URL) silenced.
    install_logging(level)
    settings = load_settings(config)
    updates = {k: v for k, v in (("host", host), ("port", port), ("data_dir", data_dir))
               if v is not None}
    if updates:
        svc = settings.service.model_dump()
        svc.update(updates)
        # Re-validate so a non-loopback --host without a token is refused like in the file.
        from aws_anomaly.config import ServiceConfig

        try:
            new_svc = ServiceConfig.model_validate(
                {**svc, "token": settings.service.token})
        except ValueError as exc:
            raise ConfigError(f"serve: {exc}") from None
        settings = settings.model_copy(update={"service": new_svc})
    application = create_app(settings)
    state = application.state.aws_anomaly
    svc = settings.service
    shown = f"[{svc.host}]" if ":" in svc.host else svc.host
    base = f"http://{shown}:{svc.port}"
    generated = svc.resolved_token() is None
    lines = [
        f"aws-anomaly service on {base}",
        f"  dashboard : {base}/" + (f"#token={state.token}" if generated else ""),
        f"  API schema: {base}/openapi.json",
        f"  metrics   : {base}/metrics",
        f"  readiness : {base}/readyz",
        f"  data dir  : {svc.data_dir.resolve()}",
        f"  jobs      : {', '.join(f'{j.name} ({j.source.type})' for j in settings.jobs)}",
    ]
    if generated:
        lines.append(f"  API token : {state.token}  (generated for this run; set "
                     "service.token_env to choose one)")
    for line in lines:
        typer.echo(line, err=True)
    from aws_anomaly.service.server import run_server

    run_server(application, settings.service, log_level=log_level.lower())
