"""Command: ``aws-anomaly serve`` — the long-running service (API, scheduler, dashboard)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aws_anomaly.cli.app import app, check_output
from aws_anomaly.errors import ConfigError

if TYPE_CHECKING:
    from aws_anomaly.config import ServiceConfig

#: The environment variable of the API token: ``aws_anomaly.config.ENV_PREFIX`` +
#: ``SERVICE__TOKEN``, written out so that ``--help`` does not import the configuration
#: (pydantic) module; tests/unit/test_cli_startup.py keeps the two equal.
TOKEN_ENV_HINT = "AWS_ANOMALY__SERVICE__TOKEN"


@app.command()
def serve(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="settings YAML; "
                                                 "default: the embedded demo")] = None,
    host: Annotated[str | None, typer.Option(help="bind address (default 127.0.0.1); any "
                                             "other than loopback needs a token")] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535,
                                             help="port (default 8080; 0: any free)")] = None,
    token: Annotated[str | None, typer.Option(
        help=f"API token (16+ characters), replacing the config file's token source; "
        f"{TOKEN_ENV_HINT} gives one without showing it in the process list")]
    = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="where the store and "
                                                  "model bundles live")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
) -> None:
    """Run the service: score jobs on their schedule, serve the API and the dashboard.

    With no config it serves the embedded demo: generated multi-cluster data replayed in
    accelerated time with anomalies; a model is trained on first start if none exists.
    """
    from aws_anomaly.config import load_settings
    from aws_anomaly.service.app import create_app

    level = getattr(logging, log_level.upper(), None)
    if not isinstance(level, int):
        raise ConfigError(f"--log-level must be debug, info or warning, got {log_level!r}")
    if data_dir is not None:
        check_output(data_dir, "--data-dir")
    settings = load_settings(config)
    settings = settings.model_copy(update={"service": service_settings(
        settings.service, host=host, port=port, token=token, data_dir=data_dir)})
    check_output(settings.service.data_dir, "service.data_dir")
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from aws_anomaly.service.redact import install_logging

    # Every line redacted (credentials in URLs, webhook URLs, tokens); httpx/httpcore's
    # per-request INFO lines (each with its URL) silenced.
    install_logging(level)
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
        lines.append(f"  API token : {state.token}  (generated for this run; choose one "
                     f"with --token or {TOKEN_ENV_HINT})")
    for line in lines:
        typer.echo(line, err=True)
    from aws_anomaly.service.server import run_server

    run_server(application, settings.service, log_level=log_level.lower())


def service_settings(svc: ServiceConfig, *, host: str | None = None, port: int | None = None,
                     token: str | None = None, data_dir: Path | None = None) -> ServiceConfig:
    """The service section with ``serve``'s options applied, validated as the file is.

    ``--token`` replaces whichever of ``token``, ``token_env`` or ``token_file`` the file set.
    A non-loopback ``--host`` without any token is refused in one line that names the ways
    to give one; any other invalid value is one line naming the option.
    """
    from aws_anomaly.config import ServiceConfig, is_loopback

    updates: dict[str, object] = {k: v for k, v in (("host", host), ("port", port),
                                                    ("data_dir", data_dir)) if v is not None}
    if token is not None:
        if not token.strip():
            raise ConfigError("--token is empty; give the API token (16+ characters)")
        updates.update(token=token, token_env=None, token_file=None)
    if not updates:
        return svc
    has_token = any(getattr(svc, n) is not None for n in ("token", "token_env", "token_file"))
    new_host = updates.get("host", svc.host)
    if token is None and not has_token and not is_loopback(str(new_host)):
        raise ConfigError(
            f"--host {new_host} is not loopback, so the API needs a token: pass --token TOKEN, "
            f"set {TOKEN_ENV_HINT}, or set service.token_env in the config file")
    data = {**svc.model_dump(), **updates}
    for name in ("token", "token_env", "token_file"):
        if name not in updates:
            data[name] = getattr(svc, name)  # the dump hides a SecretStr's value
    try:
        return ServiceConfig.model_validate(data)
    except ValueError as exc:
        errors = getattr(exc, "errors", None)
        first = errors()[0] if callable(errors) else {}
        field = ".".join(str(p) for p in first.get("loc", ())) or "service"
        msg = str(first.get("msg", exc)).removeprefix("Value error, ")
        flag = {"host": "--host", "port": "--port", "data_dir": "--data-dir",
                "token": "--token"}.get(field, f"service.{field}")
        raise ConfigError(f"{flag}: {msg}") from None
